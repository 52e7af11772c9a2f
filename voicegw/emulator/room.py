"""The emulator's side of one Realtime room: an aiortc peer wrapped around the agent core.

A room is created by ``POST /v1/audio/rooms`` (the agent "joins immediately", spec 3.2) and
gets its user when the user's WebRTC offer arrives (:meth:`EmulatorRoom.accept`):

* the user's audio track is decoded (s16 stereo 48 kHz), mixed to mono and fed to the
  :class:`~.agent.RealtimeAgent` with the loop time it arrived;
* the agent's audio goes out on a paced Opus track (:func:`voicegw.io.webrtc.make_source_track`:
  silence when nothing is queued; :class:`~.agent.StopAudio` empties the queue);
* the data channel ``"events"`` carries the JSON events both ways. When it opens the room
  sends the ``bot.join`` pseudo-message (:mod:`voicegw.realtime.transport`; emulator/transport-
  internal, not a Coze event) and starts the agent (``session.created``).

One task drives the agent: it releases due outputs and sleeps until the agent's next deadline
or new input. :class:`~.agent.CloseRoom` (error 4029 after ``longest_silence_ms``) sends
``bot.leave`` and closes the peer connection; the room is then closed for good and a new
one must be created. A room nobody joins is closed after :data:`UNJOINED_TIMEOUT_S` (the
service's agent waits 3 minutes, spec 3.2). A user who leaves (the connection fails or
closes) also closes the room (INFERRED).

The agent core runs on the event loop: the echo and tone bots are cheap; espeak-ng synthesis
(tens of milliseconds per sentence) briefly delays other rooms' audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from ..errors import RemoteProtocolError
from ..realtime.transport import AGENT_JOIN, AGENT_LEAVE, FRAME_MS, TransportStats, presence_message
from .agent import RATE, CloseRoom, PlayAudio, RealtimeAgent, RoomSetup, SendText, StopAudio
from .bots import Bot
from .ids import IdFactory
from .turns import Timing

__all__ = ["UNJOINED_TIMEOUT_S", "EmulatorRoom", "room_factory"]

log = logging.getLogger(__name__)

#: Seconds a room waits for its user before it is closed.
UNJOINED_TIMEOUT_S = 180.0


class EmulatorRoom:
    """One room: the agent core, and (once the user joined) its peer connection.

    Args:
        setup: the room's creation parameters.
        token: the room's join token (checked by the HTTP layer).
        make_agent: builds the agent core given the loop time now.
        loopback: keep ICE on loopback (the emulator is bound to a loopback address).
    """

    def __init__(
        self,
        setup: RoomSetup,
        token: str,
        make_agent: Callable[[float], RealtimeAgent],
        *,
        loopback: bool = True,
    ) -> None:
        self.setup = setup
        self.token = token
        self._loop = asyncio.get_running_loop()
        self.agent = make_agent(self._loop.time())
        self.loopback = loopback
        self.stats = TransportStats()
        #: Set once the room is closed (never reopened).
        self.closed_event = asyncio.Event()
        self.close_code: int | None = None
        self._pc: Any = None
        self._channel: Any = None
        self._queue: Any = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unjoined = self._loop.call_later(UNJOINED_TIMEOUT_S, self._abandon)

    @property
    def closed(self) -> bool:
        return self.closed_event.is_set()

    @property
    def has_user(self) -> bool:
        return self._pc is not None

    async def accept(self, offer_sdp: str) -> str:
        """Answer the user's offer; the agent starts when the data channel opens."""
        from aiortc import RTCSessionDescription

        from ..io.webrtc import FrameQueue, make_source_track, new_peer_connection

        if self.closed:
            raise RemoteProtocolError("the room is closed", path="room_id")
        pc = new_peer_connection(self.loopback)
        self._pc = pc
        self._queue = FrameQueue(RATE * FRAME_MS // 1000, 5000 // FRAME_MS, self.stats)
        pc.on("datachannel", self._on_channel)
        pc.on("track", self._on_track)  # fires inside setRemoteDescription
        pc.on("connectionstatechange", self._on_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            pc.addTrack(make_source_track(RATE, self._queue))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError and others for a bad offer
            self._pc = None
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await pc.close()
            raise RemoteProtocolError(f"invalid offer: {exc}", path="sdp") from None
        if self.closed:  # closed while the offer was being answered: leave nothing behind
            self._pc = None
            with contextlib.suppress(Exception):
                await pc.close()
            raise RemoteProtocolError("the room is closed", path="room_id")
        self._unjoined.cancel()
        self._spawn(self._drive())
        log.info("room %s: user %s connecting", self.setup.room_id, self.setup.uid)
        return str(pc.localDescription.sdp)

    async def close(self, code: int | None = None) -> None:
        """Close the room for good; idempotent."""
        if self.closed:
            return
        if code is not None:
            self.close_code = code
        self.closed_event.set()
        self._unjoined.cancel()
        self.agent.closed = True
        from ..io.webrtc import close_peer

        await close_peer(self._pc, self._tasks)
        log.info("room %s closed (code %s)", self.setup.room_id, self.close_code)

    # ------------------------------------------------------------------ callbacks

    def _abandon(self) -> None:
        log.info("room %s: nobody joined; closing", self.setup.room_id)
        self._spawn(self.close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_channel(self, channel: Any) -> None:
        if self._channel is not None:
            log.warning("room %s: ignoring a second data channel", self.setup.room_id)
            return
        self._channel = channel
        channel.on("message", self._on_message)

        def joined() -> None:
            channel.send(presence_message(AGENT_JOIN, self.setup.bot_id))
            self.agent.join(self._loop.time())
            self._wake.set()

        if channel.readyState == "open":
            joined()
        else:
            channel.on("open", joined)

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self.stats.messages_received += 1
        self.agent.receive_text(message, self._loop.time())
        self._wake.set()

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._spawn(self._pump(track))

    def _on_state(self) -> None:
        if self._pc is not None and self._pc.connectionState in ("failed", "closed"):
            self._spawn(self.close())

    async def _pump(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        from ..io.webrtc import track_to_mono

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.stats.frames_received += 1
            self.agent.receive_audio(track_to_mono(frame), self._loop.time())
            self._wake.set()

    async def _drive(self) -> None:
        while not self.closed:
            for out in self.agent.due(self._loop.time()):
                if isinstance(out, SendText):
                    if self._channel is not None and self._channel.readyState == "open":
                        self._channel.send(out.text)
                        self.stats.messages_sent += 1
                elif isinstance(out, PlayAudio):
                    self._queue.push(out.samples)
                elif isinstance(out, StopAudio):
                    self._queue.clear()
                elif isinstance(out, CloseRoom):
                    await self._dismiss(out)
                    return
            deadline = self.agent.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _dismiss(self, out: CloseRoom) -> None:
        # the user may hang up on the error before we finish: the code is already decided
        self.close_code = out.code
        log.info("room %s: dismissed with %d", self.setup.room_id, out.code)
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(presence_message(AGENT_LEAVE, self.setup.bot_id, out.reason))
            # let SCTP flush the error and bot.leave before the connection goes
            for _ in range(50):
                if not self._channel.bufferedAmount:
                    break
                await asyncio.sleep(0.01)
        await self.close(out.code)


def room_factory(
    make_bot: Callable[[], Bot],
    *,
    rng: random.Random,
    wall_clock: Callable[[], float],
    timing: Timing,
    vad_threshold_dbfs: float,
    loopback: bool,
) -> Callable[[RoomSetup, str], EmulatorRoom]:
    """What :class:`~.http.HttpApi` calls to create a room: a fresh bot and agent per room."""

    def make(setup: RoomSetup, token: str) -> EmulatorRoom:
        ids = IdFactory(random.Random(rng.getrandbits(64)), lambda: int(wall_clock() * 1000))

        def agent(now: float) -> RealtimeAgent:
            return RealtimeAgent(
                make_bot(),
                setup,
                now=now,
                ids=ids,
                timing=timing,
                vad_threshold_dbfs=vad_threshold_dbfs,
                wall_clock=wall_clock,
            )

        return EmulatorRoom(setup, token, agent, loopback=loopback)

    return make
