"""The gateway: one connection's worth of microphone -> Coze -> speaker, in one TaskGroup.

Three long-lived tasks, one owner per resource:

* ``read``  owns ``ws.recv()``: frames go into the sans-I/O session; what the session says
  (ready, flush, reply audio, transcripts, tool calls, errors) is acted on here;
* ``mic``   owns the audio source: frames go through the uplink chain into the session;
* ``play``  owns the audio sink: the :class:`~voicegw.player.Player` pulls from the playout
  buffer on an absolute timeline (shared with the Realtime gateway).

Frames the session wants sent are written right after each input, in order, by whichever task
fed the session (websockets writes each frame whole, so order is kept). Nothing here decides
protocol rules: the session does.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .audio import Samples
from .chains import Downlink, Uplink
from .clock import Clock, SystemClock
from .config import Config
from .dsp.channels import is_loud
from .echo import EchoGuard
from .errors import (
    CloudError,
    LocalProtocolError,
    RemoteProtocolError,
    first_error,
)
from .io.cloud import FrameObserver, open_chat
from .player import PLAY_PERIOD_S, AudioSink, Player
from .preroll import PreRoll
from .protocol.events import (
    ConversationAudioCompleted,
    ConversationAudioDelta,
    ConversationAudioTranscriptCompleted,
    ConversationChatCanceled,
    ConversationChatCompleted,
    ConversationChatCreated,
    ConversationChatFailed,
    ConversationMessageCompleted,
)
from .protocol.session import (
    FlushPlayback,
    InputState,
    Notice,
    Ready,
    Received,
    ServerError,
    Session,
    ToolCallsRequested,
    TurnMode,
)
from .retry import SLOW_RETRY_S
from .tools import ToolBox
from .vad import SpeechEnd, SpeechStart, Vad

__all__ = [
    "SLOW_RETRY_S",
    "AudioSink",
    "AudioSource",
    "Gateway",
    "RunReport",
    "TurnKeeper",
    "TurnReport",
    "service_error",
]

log = logging.getLogger(__name__)

_PLAY_PERIOD_S = PLAY_PERIOD_S
#: Service errors worth retrying only after a long wait (s): see voicegw.retry.
SLOW_RETRY_CODES = frozenset(SLOW_RETRY_S)
#: VAD modes: quiet time after the mic ends before the run is considered over.
_SETTLE_S = 1.0


class AudioSource(Protocol):
    """A microphone: fixed-size int16 frames on the device's own clock."""

    rate: int
    channels: int

    def frames(self) -> AsyncIterator[Samples]: ...


@dataclass
class TurnReport:
    """What one user turn produced, with monotonic timestamps (seconds)."""

    chat_id: str = ""
    transcript: str = ""
    reply_text: str = ""
    status: str = ""
    speech_end: float | None = None
    first_delta: float | None = None
    first_play: float | None = None
    reply_samples: int = 0

    @property
    def reply_latency_ms(self) -> float | None:
        """End of user speech -> first reply audio received."""
        if self.speech_end is None or self.first_delta is None:
            return None
        return (self.first_delta - self.speech_end) * 1000

    @property
    def play_latency_ms(self) -> float | None:
        """End of user speech -> first reply audio written to the speaker."""
        if self.speech_end is None or self.first_play is None:
            return None
        return (self.first_play - self.speech_end) * 1000


@dataclass
class RunReport:
    turns: list[TurnReport] = field(default_factory=list)
    logid: str = ""
    conversation_id: str = ""
    dropped_mic_frames: int = 0
    playback_errors: int = 0
    underruns: int = 0
    flushes: int = 0


class _Stop(Exception):
    """Raised inside the TaskGroup to end the run cleanly."""


class TurnKeeper:
    """The turn bookkeeping both gateways share: the open turn, the one being played, and
    the report they end up in. The gateway sets the attributes in its constructor."""

    clock: Clock
    report: RunReport
    on_turn: Callable[[TurnReport], None] | None
    #: The turn being spoken or answered; None between turns.
    _turn: TurnReport | None
    #: The turn whose reply is in the playout buffer (outlives ``_turn`` until played).
    _audio_turn: TurnReport | None
    #: When the device last heard speech itself (a latency mark, not a turn rule).
    _last_speech: float | None

    def _current_turn(self, now: float) -> TurnReport:
        if self._turn is None:
            # A VAD turn: the server decided when speech ended; the device's own mark is the
            # last frame it heard speech in.
            self._turn = TurnReport(speech_end=self._last_speech or now)
        return self._turn

    def _finish_turn(self, status: str) -> None:
        if self._turn is not None:
            self._turn.status = status
            self.report.turns.append(self._turn)
            if self.on_turn is not None:
                self.on_turn(self._turn)
            self._turn = None

    def _played(self, chunk: Samples) -> None:
        """The Player's hook: the first audible period of a reply, and how much was played."""
        turn = self._audio_turn
        if turn is not None:
            if turn.first_play is None and np.any(chunk):
                turn.first_play = self.clock.now()
            turn.reply_samples += len(chunk)


def service_error(ev: ServerError) -> None:
    """Log an ``error`` the session reported; raise :class:`CloudError` when it is fatal.

    Billing stops (4027/4028) and rate limits end the connection but may heal: they are
    retryable, slowly (``SLOW_RETRY_S``). Auth errors never heal.
    """
    log.error("service error %s: %s", ev.code, ev.msg)
    if ev.fatal:
        raise CloudError(
            f"service error {ev.code}: {ev.msg}",
            code=ev.code,
            retryable=ev.code in SLOW_RETRY_CODES,
        )


class Gateway(TurnKeeper):
    """Runs one session against ``/v1/chat`` with the given devices.

    Args:
        config: the loaded configuration.
        token: the API token (kept in memory only, never logged).
        source: the microphone; when it ends, the run ends after the last reply has played.
        sink: the speaker.
        clock: monotonic clock (injectable for tests).
        observer: optional callback for every frame sent (">") and received ("<").
        hold_to_talk: push-to-talk mode only: hold the button for the whole source.
    """

    def __init__(
        self,
        config: Config,
        token: str,
        *,
        source: AudioSource,
        sink: AudioSink,
        clock: Clock | None = None,
        observer: FrameObserver | None = None,
        hold_to_talk: bool = True,
        reply_timeout_s: float = 20.0,
        tools: ToolBox | None = None,
        on_turn: Callable[[TurnReport], None] | None = None,
        on_frame: Callable[[float], None] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self._token = token
        self.source = source
        self.sink = sink
        self.clock = clock or SystemClock()
        self.observer = observer
        self.hold_to_talk = hold_to_talk
        self.reply_timeout_s = reply_timeout_s
        self.tools = tools or ToolBox()
        self.on_turn = on_turn
        self.on_frame = on_frame
        self.on_ready = on_ready
        out = config.output
        self.player = Player(
            sink,
            self.clock,
            self.tools.state,
            realtime=config.audio.realtime,
            max_s=config.audio.playback_max_s,
            prefill_ms=config.audio.playback_prefill_ms,
            budget_ms=config.audio.buffer_budget_ms,
            on_played=self._played,
        )
        opts: dict[str, object] = {}
        if out.codec == "opus":
            opts["frame_size_ms"] = out.frame_size_ms or 10.0
        self.downlink = Downlink(codec=out.codec, rate=out.sample_rate, sink_rate=sink.rate, **opts)
        self.uplink = Uplink(
            device_rate=source.rate,
            device_channels=source.channels,
            codec=config.input.codec,
            rate=config.input.sample_rate,
            frame_ms=config.input.frame_ms,
        )
        self.session = Session(config.chat_update())
        api_rate = config.input.sample_rate
        self.preroll = PreRoll(api_rate, max(config.turn.preroll_ms, 1))
        self.echo = EchoGuard(
            config.echo_policy,  # type: ignore[arg-type]
            tail_ms=config.audio.echo_tail_ms,
        )
        self.vad: Vad | None = None
        if config.turn.mode == "local_vad":
            self.vad = Vad(
                api_rate,
                aggressiveness=config.turn.vad_aggressiveness,
                stop_ms=config.turn.vad_stop_ms,
                preroll_ms=config.turn.preroll_ms,
            )
        self.report = RunReport()
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._mic_done = asyncio.Event()
        self._turn: TurnReport | None = None
        # The turn whose reply is in the playout buffer (outlives _turn until played).
        self._audio_turn: TurnReport | None = None
        self._last_speech: float | None = None
        self._last_activity = 0.0
        self._realtime = config.audio.realtime

    # ------------------------------------------------------------ public
    async def run(self) -> RunReport:
        """Connect, run until the source ends and the last reply has played, then close.

        Raises:
            CloudError: the connection was refused or a fatal service error arrived.
        """
        async with open_chat(self.config.cloud, self._token) as ws:
            self._ws = ws
            self._last_activity = self.clock.now()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._read_loop(ws))
                    tg.create_task(self._mic_loop())
                    tg.create_task(self.player.run())
                    tg.create_task(self._watch_done())
            except BaseExceptionGroup as group:
                error = first_error(group, ignore=(_Stop,))
                if error is not None:
                    # Surface the real error (CloudError, DeviceError) rather than a group.
                    raise error from None
            finally:
                self._ws = None
                self._close_report()  # also when the run ends in an error
        return self.report

    def _close_report(self) -> None:
        self.report.logid = self.session.logid or ""
        self.report.conversation_id = self.session.conversation_id or ""
        self.report.underruns = self.player.buffer.stats.underruns
        self.report.flushes = self.player.flushes
        self.report.playback_errors = self.player.errors

    # ------------------------------------------------------------ sending
    async def _pump(self) -> None:
        ws = self._ws
        if ws is None:
            return
        for frame in self.session.data_to_send():
            if self.observer is not None:
                self.observer(">", frame)
            try:
                await ws.send(frame)
            except ConnectionClosed as exc:
                # Whichever task notices first: the connection is gone, reconnecting may help.
                raise CloudError(f"the service closed the connection: {exc}") from None

    # ------------------------------------------------------------ tasks
    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                now = self.clock.now()
                self._last_activity = now
                if self.observer is not None:
                    # A binary frame need not be UTF-8 (the service sends text frames only).
                    text = frame if isinstance(frame, str) else frame.decode(errors="replace")
                    self.observer("<", text)
                try:
                    self.session.receive_text(frame, now)
                except RemoteProtocolError as exc:
                    log.warning("ignored a malformed frame from the service: %s", exc)
                    continue
                self._handle_events(now)
                await self._pump()
        except ConnectionClosed as exc:
            self.session.connection_lost(self.clock.now())
            self._handle_events(self.clock.now())
            if not self._mic_done.is_set() or self._turn is not None:
                raise CloudError(f"the service closed the connection: {exc}") from None
        raise _Stop

    async def _mic_loop(self) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives
        # as the wait completes (a fatal error right after chat.updated), and this task would
        # then wait for microphone frames forever while the TaskGroup waits for it.
        try:
            async with asyncio.timeout(self.config.cloud.connect_timeout_s):
                await self._ready.wait()
        except TimeoutError:
            raise CloudError(
                "the service did not confirm the session configuration (chat.updated) in "
                f"{self.config.cloud.connect_timeout_s:g} s"
            ) from None
        ptt = self.session.turn_mode is TurnMode.PUSH_TO_TALK
        hold = ptt and self.hold_to_talk and self.vad is None
        pressed = False
        async for frame in self.source.frames():
            now = self.clock.now()
            if hold and not pressed and self.session.input_state is InputState.IDLE:
                # The button goes down with the first frame (none: no turn), once per run. Not
                # "no turn yet": a chat the service started on its own is not the user's turn.
                self.press()
                pressed = True
            if self.on_frame is not None:
                self.on_frame(now)
            self._mic_frame(self.uplink.convert(frame), now)
            await self._pump()
        if not ptt or self.vad is not None:
            await self._silence_tail()
        now = self.clock.now()
        if (hold or self.vad is not None) and self.session.input_state is InputState.LISTENING:
            self.release()
        await self._pump()
        self._mic_done.set()
        self._last_activity = now

    def _mic_frame(self, mono: Samples, now: float) -> None:
        """One frame of API-rate mono audio: echo guard, local VAD, pre-roll, uplink."""
        if not len(mono):
            return
        if now < self.player.local_until:
            mono = np.zeros_like(mono)  # our own earcon is playing: never send it upstream
        if is_loud(mono):
            self._last_speech = now
        self.echo.playback(not self.player.idle, now)
        gated = self.echo.gate(mono, now)
        if gated is None:
            # Muted by the echo guard: the uplink stays continuous with digital silence.
            gated = np.zeros_like(mono)
        sent_in_preroll = False
        if self.vad is not None:
            for ev in self.vad.process(gated, now):
                if isinstance(ev, SpeechStart) and self.session.input_state is InputState.IDLE:
                    self._turn = None
                    self._start_talking(ev.preroll, now)
                    sent_in_preroll = True
                elif isinstance(ev, SpeechEnd) and self.session.input_state is InputState.LISTENING:
                    self._last_speech = ev.at
                    self.release()
        if self.session.input_state is InputState.IDLE:
            self.preroll.push(gated)
        elif not sent_in_preroll:
            self._send(gated, now)

    def _send(self, samples: Samples, now: float) -> None:
        for payload in self.uplink.encode(samples):
            try:
                self.session.send_audio(payload, now)
            except LocalProtocolError:
                self.report.dropped_mic_frames += 1

    # ------------------------------------------------------------ turn control
    def press(self) -> None:
        """Push-to-talk key down (or a local VAD onset): barge in and start sending.

        The pre-roll (``turn.preroll_ms`` of audio from before the press) is sent first, so
        the first syllable survives a late press.

        Raises:
            LocalProtocolError: not push-to-talk, not ready, or already pressed.
        """
        self._start_talking(self.preroll.take(), self.clock.now())

    def release(self) -> None:
        """Push-to-talk key up: commit the utterance (``input_audio_buffer.complete``)."""
        now = self.clock.now()
        self._turn = TurnReport(speech_end=self._last_speech or now)
        self.session.release(now)
        self._handle_events(now)

    @property
    def ready(self) -> bool:
        """The service confirmed the configuration; audio may be sent."""
        return self._ready.is_set()

    def play_local(self, samples: Samples) -> None:
        """Play a local sound (an earcon) on the speaker; it is never sent upstream.

        The uplink carries silence while it plays, so push-to-talk (full duplex) does not
        send the device's own beep to the service.
        """
        self.player.play_local(samples)

    def cancel(self) -> bool:
        """Stop the reply (press-to-interrupt): flushes playback, cancels a running chat."""
        now = self.clock.now()
        sent = self.session.cancel(now)
        self._handle_events(now)
        return sent

    def state(self) -> dict[str, object]:
        """A snapshot for the control socket and the health endpoint."""
        s = self.session
        return {
            "connection": s.conn_state.name.lower(),
            "input": s.input_state.name.lower(),
            "chat": s.chat_state.name.lower(),
            "playing": not self.player.idle,
            "volume": round(self.tools.state.volume, 3),
            "muted": self.tools.state.muted,
            "turns": len(self.report.turns),
        }

    def send_text(self, text: str) -> None:
        """Type a user message instead of speaking (barges in on a reply in progress)."""
        now = self.clock.now()
        self._turn = TurnReport(speech_end=now)
        self.session.send_text(text, now)
        self._handle_events(now)

    def _start_talking(self, preroll: Samples, now: float) -> None:
        self.session.press(now)
        self._handle_events(now)
        self.uplink.reset()
        self.preroll.clear()
        if len(preroll):
            self._send(preroll, now)

    async def _silence_tail(self) -> None:
        """After the source ends in a VAD mode, the microphone goes quiet rather than away.

        (Also for the local VAD, whose own stop rule then ends an utterance cut by the file.)

        Digital silence long enough for the server's end-of-turn rule is sent, paced like the
        source, so an utterance that runs to the end of a file still ends as a turn.
        """
        turn = self.config.turn
        tail_ms = (
            max(
                turn.silence_duration_ms,
                turn.silence_threshold_ms + turn.semantic_unfinished_wait_time_ms,
            )
            + 300
        )
        shape: tuple[int, ...] = (round(self.source.rate * _PLAY_PERIOD_S),)
        if self.source.channels > 1:
            shape = (*shape, self.source.channels)
        silence = np.zeros(shape, dtype=np.int16)
        start = self.clock.now()
        for i in range(math.ceil(tail_ms / 1000 / _PLAY_PERIOD_S)):
            if self._realtime:
                delay = start + (i + 1) * _PLAY_PERIOD_S - self.clock.now()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._mic_frame(self.uplink.convert(silence), self.clock.now())
            await self._pump()

    async def _watch_done(self) -> None:
        """End the run once the mic is done and nothing is pending, playing or still coming.

        In VAD modes the server may still be deciding about the last audio when the mic ends,
        so the run also waits for ``_SETTLE_S`` without any frame from the service.
        """
        await self._mic_done.wait()
        settle = 0.0 if self.session.turn_mode is TurnMode.PUSH_TO_TALK else _SETTLE_S
        while True:
            await asyncio.sleep(0.05)
            now = self.clock.now()
            quiet = now - self._last_activity
            busy = self._turn is not None or not self.player.idle
            if not busy and quiet >= settle:
                raise _Stop
            if quiet > self.reply_timeout_s:
                log.warning("no reply within %.0f s; giving up on this turn", self.reply_timeout_s)
                if self._turn is not None:
                    self._turn.status = "timeout"
                    self.report.turns.append(self._turn)
                    self._turn = None
                raise _Stop

    # ------------------------------------------------------------ session events
    def _handle_events(self, now: float) -> None:
        for ev in self.session.events_received():
            if isinstance(ev, Ready):
                self._ready.set()
                if self.on_ready is not None:
                    self.on_ready()
            elif isinstance(ev, FlushPlayback):
                self.player.flush()  # and the sound card's own ring: barge-in is heard at once
                self.downlink.reset()
            elif isinstance(ev, Received):
                self._on_server_event(ev, now)
            elif isinstance(ev, ToolCallsRequested):
                self.session.submit_tool_outputs(ev.chat_id, self.tools.run(ev.tool_calls), now)
            elif isinstance(ev, ServerError):
                service_error(ev)
            elif isinstance(ev, Notice):
                log.info("%s", ev.message)

    def _on_server_event(self, ev: Received, now: float) -> None:
        event = ev.event
        if isinstance(event, ConversationAudioDelta):
            turn = self._current_turn(now)
            if turn.first_delta is None:
                turn.first_delta = now
            self._audio_turn = turn
            self.player.write(self.downlink.decode(event.audio))
        elif isinstance(event, ConversationAudioCompleted):
            if self.session.is_cancelled(event.message.chat_id):
                return
            self.player.write(self.downlink.drain())
            self.player.end_of_reply()
        elif isinstance(event, ConversationAudioTranscriptCompleted):
            self._current_turn(now).transcript = event.content
            if not event.content and self.session.turn_mode is TurnMode.PUSH_TO_TALK:
                self._finish_turn("empty")
        elif isinstance(event, ConversationChatCreated):
            self._current_turn(now).chat_id = event.chat.id
        elif isinstance(event, ConversationMessageCompleted):
            msg = event.message
            if msg.role == "assistant" and msg.type == "answer" and msg.content_type == "text":
                self._current_turn(now).reply_text = msg.content or ""
        elif isinstance(event, ConversationChatCompleted):
            self._finish_turn("completed")
        elif isinstance(event, ConversationChatFailed):
            self._finish_turn("failed")
        elif isinstance(event, ConversationChatCanceled):
            self._finish_turn("canceled")
