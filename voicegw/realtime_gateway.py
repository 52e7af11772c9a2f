"""The Realtime gateway: one room's worth of microphone -> agent -> speaker.

Where the chat gateway carries audio inside JSON events, a Realtime room carries it as RTC media
and only the signalling events travel as JSON user messages (spec 3.1). One run is one room:

1. ``POST /v1/audio/rooms`` creates the room (turn mode -> ``turn_detection.type``, spec 3.2);
2. the :class:`~voicegw.realtime.transport.RtcTransport` joins it and waits for the agent;
3. the sans-I/O :class:`~voicegw.realtime.session.RealtimeSession` sends ``session.update``
   after ``session.created`` and is ready at ``conversation.created``;
4. five tasks, one owner per resource: ``read`` (agent messages into the session), ``agent``
   (the agent's audio track into the player), ``mic`` (the source onto the RTC track, gated
   by the turn mode), ``play`` (the :class:`~voicegw.player.Player`), ``watch`` (the end).

Turn modes, on the same devices and buttons as the chat gateway:

* ``ptt``: a ``client_interrupt`` room. A press sends ``input_audio_buffer.start`` and opens
  the microphone; a release sends ``complete`` and closes it again: the room hears silence
  between turns (the RTC track keeps running, as media does).
* ``server_vad`` / ``semantic_vad``: the microphone is always open; the agent decides turns.
* ``local_vad``: a ``client_vad`` session: the device's VAD sends ``client.vad`` on change.

The agent's track is continuous, so what reaches the speaker is decided by the agent's events:
audio between ``audio.agent.speech_started`` and ``speech_stopped`` (plus a short grace period
for media that lags the data channel) is played; a barge-in or a cancel flushes the player and
drops the agent's audio until it next starts speaking. Silence outside replies is never queued,
so the echo guard sees the speaker idle between replies.

A room dismissed for inactivity (4029) or a dropped transport ends the run with a retryable
:class:`~voicegw.errors.CloudError`; the daemon then creates a new room.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable

import numpy as np

from .audio import Samples
from .chains import Uplink
from .clock import Clock, SystemClock
from .config import Config
from .dsp import StreamResampler
from .dsp.channels import is_loud
from .echo import EchoGuard
from .errors import CloudError, LocalProtocolError, RemoteProtocolError, first_error
from .gateway import AudioSink, AudioSource, RunReport, TurnKeeper, TurnReport, service_error
from .player import PLAY_PERIOD_S, Player
from .protocol.outputs import FlushPlayback, Notice, Received, ServerError, ToolCallsRequested
from .realtime.config import room_request, session_config, turn_type
from .realtime.events import (
    AudioAgentSpeechStarted,
    AudioAgentSpeechStopped,
    AudioUserSpeechStopped,
    ConversationAudioTranscriptDelta,
    ConversationChatCompleted,
    ConversationChatCreated,
    ConversationChatFailed,
    ConversationMessageCompleted,
)
from .realtime.rooms import RoomInfo
from .realtime.session import RealtimeSession, RoomClosed, RoomReady
from .realtime.transport import RtcTransport
from .tools import ToolBox
from .vad import SpeechEnd, SpeechStart, Vad

__all__ = ["MEDIA_LAG_S", "RealtimeGateway", "TransportFactory"]

log = logging.getLogger(__name__)

#: Makes a transport for one room.
TransportFactory = Callable[[], RtcTransport]

#: Agent frames still accepted after ``audio.agent.speech_stopped``: RTC media lags the data
#: channel by the jitter buffer (tens of ms); 300 ms covers it with margin.
_GRACE_S = 0.3
#: Agent frames kept before ``speech_started`` arrives, s (media may also lead the event).
_LEAD_S = 0.2
#: How far RTC media lags the data channel, s: the far side's jitter buffer (80 ms in aiortc)
#: plus up to one 20 ms frame of pacing; measured ~93 ms one way on loopback (voicegw bench).
MEDIA_LAG_S = 0.15
#: Longest wait for the outbound queue to drain before ``complete`` is sent anyway, s.
_DRAIN_MAX_S = 2.0
#: Microphone audio queued for the RTC track beyond which the source is held back, ms.
_MAX_BACKLOG_MS = 200.0
_SETTLE_S = 1.0


class RealtimeGateway(TurnKeeper):
    """Runs one Realtime room with the given devices (same surface as the chat gateway).

    Args:
        config: the loaded configuration (``cloud.api = "realtime"``).
        token: the API token (memory only).
        source, sink: microphone and speaker.
        transport_factory: makes the RTC transport (default: aiortc WebRTC).
        clock: monotonic clock.
        hold_to_talk: push-to-talk with no button: hold for the whole source.
        observer: called with (">" or "<", text) for every signalling message.
    """

    def __init__(
        self,
        config: Config,
        token: str,
        *,
        source: AudioSource,
        sink: AudioSink,
        transport_factory: TransportFactory | None = None,
        clock: Clock | None = None,
        hold_to_talk: bool = True,
        reply_timeout_s: float = 20.0,
        tools: ToolBox | None = None,
        on_turn: Callable[[TurnReport], None] | None = None,
        on_frame: Callable[[float], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        observer: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self._token = token
        self.source = source
        self.sink = sink
        self.clock = clock or SystemClock()
        self.hold_to_talk = hold_to_talk
        self.reply_timeout_s = reply_timeout_s
        self.tools = tools or ToolBox()
        self.on_turn = on_turn
        self.on_frame = on_frame
        self.on_ready = on_ready
        self.observer = observer
        self._transport_factory = transport_factory or _webrtc_factory
        self.turn_type = turn_type(config.turn.mode)
        self.session = RealtimeSession(session_config(config), turn_mode=self.turn_type)
        self.report = RunReport()
        self.player = Player(
            sink,
            self.clock,
            self.tools.state,
            realtime=config.audio.realtime,
            max_s=config.audio.playback_max_s,
            prefill_ms=config.audio.playback_prefill_ms,
            on_played=self._played,
        )
        self.echo = EchoGuard(
            config.echo_policy,  # type: ignore[arg-type]
            tail_ms=config.audio.echo_tail_ms,
        )
        self.transport: RtcTransport | None = None
        self.room: RoomInfo | None = None
        self._uplink: Uplink | None = None
        self._downlink: StreamResampler | None = None
        self.vad: Vad | None = None
        self._ready = asyncio.Event()
        self._mic_done = asyncio.Event()
        self._talking = False  # push-to-talk: the microphone is open
        self._agent_speaking = False
        self._agent_muted = False  # after a flush, until the agent next starts speaking
        self._grace_left = 0.0
        self._lead: deque[Samples] = deque()
        self._turn: TurnReport | None = None
        self._audio_turn: TurnReport | None = None
        self._chat_done = False
        self._last_speech: float | None = None
        self._last_activity = 0.0
        self._completing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ public
    @property
    def ready(self) -> bool:
        """The room is set up (``conversation.created``) and still connected."""
        transport = self.transport
        return (
            self._ready.is_set()
            and self.session.ready
            and transport is not None
            and not transport.is_closed
        )

    async def run(self) -> RunReport:
        """Create a room, join it, run until the source ends and the last reply has played.

        Raises:
            CloudError: the room could not be created or joined, the transport dropped, or the
                agent closed the room (4029: retryable; 4027/4028: retry slowly).
        """
        from .io.rest import create_room

        rt = self.config.realtime
        self.room = await create_room(self.config.cloud, self._token, room_request(self.config))
        transport = self._transport_factory()
        self.transport = transport
        rate = transport.rate
        self._uplink = Uplink(
            device_rate=self.source.rate,
            device_channels=self.source.channels,
            codec="pcm",
            rate=rate,
            frame_ms=PLAY_PERIOD_S * 1000,
        )
        self._downlink = StreamResampler(rate, self.sink.rate, channels=1)
        if self.config.turn.mode == "local_vad":
            self.vad = Vad(
                rate,
                aggressiveness=self.config.turn.vad_aggressiveness,
                stop_ms=self.config.turn.vad_stop_ms,
                preroll_ms=self.config.turn.preroll_ms,
            )
        try:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation
                # that arrives as the wait ends (the TaskGroup's, when another task fails).
                async with asyncio.timeout(rt.join_timeout_s):
                    await transport.join(self.room, self.config.cloud, self.config.cloud.bot_id)
                await transport.wait_agent(rt.join_timeout_s)
            except TimeoutError:
                raise CloudError(
                    f"the room was not joined within {rt.join_timeout_s:g} s"
                ) from None
            self.session.agent_joined()
            self._last_activity = self.clock.now()
            self._pump()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_loop(transport))
                tg.create_task(self._agent_audio_loop(transport))
                tg.create_task(self._mic_loop())
                tg.create_task(self.player.run())
                tg.create_task(self._watch_done())
        except BaseExceptionGroup as group:
            error = first_error(group, ignore=(_Stop,))
            if error is not None:
                raise error from None
        finally:
            if self._completing is not None:
                self._completing.cancel()
                self._completing = None
            self.transport = None
            await transport.close()
            # Filled in also when the run ends in an error (the daemon reads it).
            self.report.conversation_id = self.session.conversation_id or ""
            self.report.logid = self.session.logid or ""
            self.report.playback_errors = self.player.errors
            self.report.flushes = self.player.flushes
            self.report.underruns = self.player.buffer.stats.underruns
        return self.report

    def press(self) -> None:
        """Push-to-talk key down: ``input_audio_buffer.start``, open the microphone.

        In a VAD room a press interrupts the agent instead (``conversation.chat.cancel``).

        Raises:
            LocalProtocolError: the room is not ready.
        """
        now = self.clock.now()
        if self.turn_type != "client_interrupt":
            self.cancel()
            return
        if self._completing is not None:
            # Pressed again before the last release was sent: send it now, in order.
            self._completing.cancel()
            self._completing = None
            self._send_complete()
        pressed = self.session.press()
        self._handle_events(now)  # a press during a reply interrupts it first
        if pressed:
            self._talking = True
            self._turn = None
        self._pump()

    def release(self) -> None:
        """Push-to-talk key up: close the microphone, then ``input_audio_buffer.complete``.

        The event travels on the data channel, which overtakes the media: sent at once, it
        would reach the agent while the utterance's last ~100 ms (queued for the track, in
        flight, in the far side's jitter buffer) had not, and the agent ignores audio after
        ``complete``. So it is sent once the outbound queue has drained plus
        :data:`MEDIA_LAG_S`.
        """
        now = self.clock.now()
        if self.turn_type != "client_interrupt" or not self._talking:
            return
        self._talking = False
        self._turn = TurnReport(speech_end=self._last_speech or now)
        self._chat_done = False
        self._completing = asyncio.get_running_loop().create_task(self._complete_after_media())

    async def _complete_after_media(self) -> None:
        transport = self.transport
        start = self.clock.now()
        while (
            transport is not None
            and not transport.is_closed
            and transport.queued_ms > 0
            and self.clock.now() - start < _DRAIN_MAX_S
        ):
            await asyncio.sleep(PLAY_PERIOD_S)
        await asyncio.sleep(MEDIA_LAG_S)
        self._completing = None
        self._send_complete()

    def _send_complete(self) -> None:
        now = self.clock.now()
        try:
            self.session.release()
        except LocalProtocolError as exc:
            log.info("push-to-talk release not sent: %s", exc)  # the room closed meanwhile
            return
        self._handle_events(now)
        self._pump()

    def cancel(self) -> bool:
        """Stop the agent (press-to-interrupt): ``conversation.chat.cancel`` and a flush."""
        now = self.clock.now()
        sent = self.session.cancel()  # always reports a FlushPlayback
        self._handle_events(now)
        self._pump()
        return sent

    def send_text(self, text: str) -> None:
        """Type a user message instead of speaking."""
        now = self.clock.now()
        self._turn = TurnReport(speech_end=now)
        self._chat_done = False
        self.session.send_text(text)
        self._handle_events(now)
        self._pump()

    def play_local(self, samples: Samples) -> None:
        """Play a local sound (an earcon); the microphone sends silence meanwhile."""
        self.player.play_local(samples)

    def state(self) -> dict[str, object]:
        """A snapshot for the control socket and the health endpoint."""
        return {
            "api": "realtime",
            "connection": str(self.session.state),
            "room": self.room.room_id if self.room else "",
            "input": "listening" if self._talking else "idle",
            "agent": "speaking" if self._agent_speaking else "idle",
            "playing": not self.player.idle,
            "volume": round(self.tools.state.volume, 3),
            "muted": self.tools.state.muted,
            "turns": len(self.report.turns),
        }

    # ------------------------------------------------------------ sending
    def _pump(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for text in self.session.data_to_send():
            if self.observer is not None:
                self.observer(">", text)
            try:
                transport.send_message(text)
            except CloudError as exc:
                # The room's connection is going: the read loop reports the loss; a button
                # press in that window must not take the daemon down.
                log.info("not sent, the room's connection is gone: %s", exc)
                return

    # ------------------------------------------------------------ tasks
    async def _read_loop(self, transport: RtcTransport) -> None:
        async for text in transport.messages():
            now = self.clock.now()
            self._last_activity = now
            if self.observer is not None:
                self.observer("<", text)
            try:
                self.session.receive_text(text)
            except RemoteProtocolError as exc:
                log.warning("ignored a malformed message from the agent: %s", exc)
                continue
            self._handle_events(now)
            self._pump()
        self.session.transport_lost()
        self._handle_events(self.clock.now())
        if not self._mic_done.is_set() or self._turn is not None:
            raise CloudError("the RTC connection to the room was lost")
        raise _Stop

    async def _agent_audio_loop(self, transport: RtcTransport) -> None:
        lead_max = max(1, round(_LEAD_S / PLAY_PERIOD_S))
        async for frame in transport.audio():
            self._agent_frame(frame, lead_max)

    def _agent_frame(self, frame: Samples, lead_max: int) -> None:
        down = self._downlink
        assert down is not None
        period = len(frame) / (self.transport.rate if self.transport else 48000)
        if self._agent_muted:
            return
        if not self._agent_speaking:
            if self._grace_left > 0:
                self._grace_left -= period
                self._write_agent(down.process(frame))
                if self._grace_left <= 0:
                    self.player.end_of_reply()
                return
            self._lead.append(frame)
            while len(self._lead) > lead_max:
                self._lead.popleft()
            return
        self._write_agent(down.process(frame))

    def _write_agent(self, samples: Samples) -> None:
        if not len(samples):
            return
        turn = self._audio_turn
        if turn is not None and turn.first_delta is None and is_loud(samples):
            turn.first_delta = self.clock.now()
        self.player.write(samples)

    async def _mic_loop(self) -> None:
        try:
            async with asyncio.timeout(self.config.realtime.join_timeout_s):
                await self._ready.wait()
        except TimeoutError:
            raise CloudError(
                "the agent did not finish setting up the room (conversation.created) in "
                f"{self.config.realtime.join_timeout_s:g} s"
            ) from None
        uplink = self._uplink
        assert uplink is not None
        ptt = self.turn_type == "client_interrupt"
        hold = ptt and self.hold_to_talk
        first = True
        async for frame in self.source.frames():
            now = self.clock.now()
            if hold and first:
                self.press()  # the button goes down with the first frame (no button)
            first = False
            if self.on_frame is not None:
                self.on_frame(now)
            self._mic_frame(uplink.convert(frame), now)
            await self._backpressure()
        if not ptt:
            await self._silence_tail()
        if hold and self._talking:
            self.release()
        self._mic_done.set()
        self._last_activity = self.clock.now()

    def _mic_frame(self, mono: Samples, now: float) -> None:
        if not len(mono):
            return
        if now < self.player.local_until:
            mono = np.zeros_like(mono)  # our own earcon: never sent upstream
        if is_loud(mono):
            self._last_speech = now
        self.echo.playback(not self.player.idle, now)
        gated = self.echo.gate(mono, now)
        if gated is None:
            gated = np.zeros_like(mono)
        if self.vad is not None:
            for ev in self.vad.process(gated, now):
                if not self.session.ready:
                    continue  # the room is closing: nothing more to tell it
                if isinstance(ev, SpeechStart):
                    started = self.session.client_vad(True)
                    self._handle_events(now)  # speech during a reply interrupts it first
                    if started:
                        self._turn = None
                elif isinstance(ev, SpeechEnd):
                    self._last_speech = ev.at
                    if self.session.client_vad(False):
                        self._turn = TurnReport(speech_end=ev.at)
                        self._chat_done = False
                    self._handle_events(now)
            self._pump()
        if self.turn_type == "client_interrupt" and not self._talking:
            return  # push-to-talk: the microphone is closed between presses
        transport = self.transport
        if transport is not None:
            transport.send_audio(gated)

    async def _backpressure(self) -> None:
        """Media is real time: audio that arrives faster (a push-to-talk utterance kept through
        a disconnect and replayed at once, an unpaced file) waits here rather than overflowing
        the transport's queue, which would drop the oldest of it."""
        transport = self.transport
        while transport is not None and transport.queued_ms > _MAX_BACKLOG_MS:
            await asyncio.sleep(PLAY_PERIOD_S)
            if transport.is_closed:
                return

    async def _silence_tail(self) -> None:
        """After the source ends in a VAD mode, the microphone goes quiet rather than away."""
        turn = self.config.turn
        tail_ms = (
            max(
                turn.silence_duration_ms,
                turn.silence_threshold_ms + turn.semantic_unfinished_wait_time_ms,
                turn.vad_stop_ms,
            )
            + 300
        )
        rate = self.transport.rate if self.transport else 48000
        silence = np.zeros(round(rate * PLAY_PERIOD_S), dtype=np.int16)
        start = self.clock.now()
        for i in range(math.ceil(tail_ms / 1000 / PLAY_PERIOD_S)):
            delay = start + (i + 1) * PLAY_PERIOD_S - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            self._mic_frame(silence, self.clock.now())

    async def _watch_done(self) -> None:
        await self._mic_done.wait()
        settle = 0.0 if self.turn_type == "client_interrupt" else _SETTLE_S
        while True:
            await asyncio.sleep(0.05)
            now = self.clock.now()
            quiet = now - self._last_activity
            busy = self._turn is not None or not self.player.idle or self._agent_speaking
            if not busy and quiet >= settle:
                raise _Stop
            if quiet > self.reply_timeout_s:
                log.warning("no reply within %.0f s; giving up on this turn", self.reply_timeout_s)
                if self._turn is not None:
                    self._finish_turn("timeout")
                raise _Stop

    # ------------------------------------------------------------ session outputs
    def _flush(self) -> None:
        self.player.flush()
        self._agent_muted = True
        self._grace_left = 0.0
        self._lead.clear()
        if self.transport is not None:
            self._downlink = StreamResampler(self.transport.rate, self.sink.rate, channels=1)

    def _handle_events(self, now: float) -> None:
        for ev in self.session.events_received():
            if isinstance(ev, RoomReady):
                self._ready.set()
                if self.on_ready is not None:
                    self.on_ready()
            elif isinstance(ev, FlushPlayback):
                if self._turn is not None and self._turn.chat_id:
                    self._finish_turn("interrupted")  # its reply was cut short
                self._flush()
            elif isinstance(ev, Received):
                self._on_agent_event(ev, now)
            elif isinstance(ev, ToolCallsRequested):
                self.session.submit_tool_outputs(ev.chat_id, self.tools.run(ev.tool_calls))
            elif isinstance(ev, RoomClosed) and self._mic_done.is_set() and self._turn is None:
                # Nothing left to say or hear: the run is over, not the connection lost.
                log.info("the room was closed (%s) after the last turn", ev.code or "-")
                raise _Stop
            elif isinstance(ev, RoomClosed):
                # 4029 (inactivity) and the agent leaving need a new room, at once; billing
                # stops (4027/4028) one much later (the daemon's SLOW_RETRY_S).
                log.warning("the room was closed (%s): %s", ev.code or "-", ev.reason)
                raise CloudError(
                    f"the room was closed ({ev.code}): {ev.reason}",
                    code=ev.code or None,
                    retryable=True,
                )
            elif isinstance(ev, ServerError):
                service_error(ev)
            elif isinstance(ev, Notice):
                log.info("%s", ev.message)

    def _on_agent_event(self, ev: Received, now: float) -> None:
        event = ev.event
        if isinstance(event, AudioAgentSpeechStarted):
            self._agent_speaking = True
            self._agent_muted = False
            self._grace_left = 0.0
            # The reply to the open turn; a prologue or generate_audio opens none.
            self._audio_turn = self._turn
            down = self._downlink
            # Media that led the event: from the first audible frame on.
            lead = list(self._lead)
            self._lead.clear()
            while lead and not is_loud(lead[0]):
                lead.pop(0)
            if down is not None:
                for frame in lead:
                    self._write_agent(down.process(frame))
        elif isinstance(event, AudioAgentSpeechStopped):
            was = self._agent_speaking
            self._agent_speaking = False
            if was and not self._agent_muted:
                self._grace_left = _GRACE_S
            if self._chat_done:
                self._finish_turn("completed")
        elif isinstance(event, AudioUserSpeechStopped):
            # The agent's VAD ended the utterance: the device's own mark is the last frame it
            # heard speech in (not when the turn was first seen, at speech_started).
            turn = self._current_turn(now)
            turn.speech_end = self._last_speech or now
        elif isinstance(event, ConversationAudioTranscriptDelta):
            self._current_turn(now).transcript = event.content or ""
        elif isinstance(event, ConversationChatCreated):
            self._current_turn(now).chat_id = event.chat.id
        elif isinstance(event, ConversationMessageCompleted):
            msg = event.message
            if msg.role == "user" and msg.content:
                self._current_turn(now).transcript = msg.content
            elif msg.role == "assistant" and msg.type == "answer" and msg.content_type == "text":
                self._current_turn(now).reply_text = msg.content or ""
        elif isinstance(event, ConversationChatCompleted):
            self._chat_done = True
            if not self._agent_speaking:
                self._finish_turn("completed")
        elif isinstance(event, ConversationChatFailed):
            self._finish_turn("failed")

    # The chat-completed flag belongs to the open turn: a new or finished turn clears it.
    def _current_turn(self, now: float) -> TurnReport:
        if self._turn is None:
            self._chat_done = False
        return super()._current_turn(now)

    def _finish_turn(self, status: str) -> None:
        super()._finish_turn(status)
        self._chat_done = False


class _Stop(Exception):
    """Raised inside the TaskGroup to end the run cleanly."""


def _webrtc_factory() -> RtcTransport:
    from .io.webrtc import AiortcTransport

    return AiortcTransport()
