"""WebRTC (aiortc) implementation of :class:`~voicegw.realtime.transport.RtcTransport`.

Coze's hosted Realtime rooms use Volcengine veRTC, which has no Python SDK; this transport
speaks plain WebRTC to the local emulator (:mod:`voicegw.emulator.room`) so the whole
Realtime path can run and be tested without the cloud. A veRTC binding would implement the
same interface.

One peer connection carries:

* one Opus audio track each way. Outbound, :meth:`AiortcTransport.send_audio` cuts mono PCM
  into 20 ms frames in a bounded queue (the oldest frame is dropped when it is full, counted
  in :attr:`TransportStats.frames_dropped`); the track's ``recv`` paces itself by its own
  timestamps, as aiortc's sample tracks do, and sends silence when nothing is queued (counted
  in ``frames_padded``). Inbound, the remote track delivers s16 stereo 48 kHz frames of 960
  samples (environment.md 4g); they are mixed to mono and, when :attr:`rate` is not 48000,
  resampled.
* one data channel, ``"events"`` (ordered, reliable), carrying the JSON events. The
  emulator's ``bot.join``/``bot.leave`` pseudo-messages (see
  :mod:`voicegw.realtime.transport`) complete :meth:`wait_agent` and end :meth:`messages`;
  they are never passed on.

Signalling is the emulator-defined HTTP offer/answer of :func:`voicegw.io.rest.rtc_signal`.
No STUN or TURN servers are configured (the peer is the emulator, on this machine or the
local network). When the signalling host is loopback, aioice's host address discovery is also
restricted to ``127.0.0.1`` (aioice skips loopback otherwise and would offer every other
interface), so all traffic stays on loopback. That restriction is process-wide.

aiortc is imported lazily (about 0.3 s), on the first :meth:`join`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..dsp import to_mono
from ..errors import CloudError
from ..realtime.transport import (
    AGENT_JOIN,
    AGENT_LEAVE,
    DATA_CHANNEL_LABEL,
    FRAME_MS,
    TransportStats,
    agent_presence,
)
from ..urls import is_loopback_url

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCPeerConnection

    from ..config import CloudConfig
    from ..realtime.rooms import RoomInfo

__all__ = [
    "AiortcTransport",
    "FrameQueue",
    "close_peer",
    "is_loopback_url",
    "make_source_track",
    "new_peer_connection",
    "restrict_ice_to_loopback",
    "track_to_mono",
]

log = logging.getLogger(__name__)

#: Rate of decoded WebRTC audio.
WEBRTC_RATE = 48000


def restrict_ice_to_loopback() -> None:
    """Make aioice gather only ``127.0.0.1`` host candidates (process-wide, idempotent)."""
    import aioice.ice

    def loopback_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = loopback_only


def new_peer_connection(loopback: bool) -> RTCPeerConnection:
    """A peer connection without STUN/TURN servers; on loopback, with loopback-only ICE.

    The peer is always the emulator, on this machine or the local network, where host
    candidates suffice; aiortc's default public STUN server is never contacted.
    """
    from aiortc import RTCConfiguration, RTCPeerConnection

    if loopback:
        restrict_ice_to_loopback()
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class FrameQueue:
    """Mono int16 audio cut into frames of ``frame`` samples, at most ``max_frames`` queued."""

    def __init__(self, frame: int, max_frames: int, stats: TransportStats) -> None:
        self.frame = frame
        self.stats = stats
        self._frames: deque[NDArray[np.int16]] = deque()
        self._max = max_frames
        self._rest = np.zeros(0, dtype=np.int16)

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, pcm: NDArray[np.int16]) -> None:
        """Append audio of any length; a partial frame waits for more."""
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        if self._rest.size:
            pcm = np.concatenate((self._rest, pcm))
        full = pcm.size - pcm.size % self.frame
        for lo in range(0, full, self.frame):
            if len(self._frames) >= self._max:
                self._frames.popleft()
                self.stats.frames_dropped += 1
            self._frames.append(pcm[lo : lo + self.frame])
        self._rest = pcm[full:].copy()

    def pop(self) -> NDArray[np.int16] | None:
        """The next frame; a pending partial frame is padded with zeros; None when empty."""
        if self._frames:
            return self._frames.popleft()
        if self._rest.size:
            out = np.zeros(self.frame, dtype=np.int16)
            out[: self._rest.size] = self._rest
            self._rest = np.zeros(0, dtype=np.int16)
            return out
        return None

    def clear(self) -> None:
        """Drop everything queued."""
        self._frames.clear()
        self._rest = np.zeros(0, dtype=np.int16)


def make_source_track(
    rate: int, queue: FrameQueue, *, clock: Callable[[], float] = time.monotonic
) -> MediaStreamTrack:
    """An outbound audio track playing ``queue``, paced by its own timestamps on ``clock``."""
    import av
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    time_base = fractions.Fraction(1, rate)
    frame_len = queue.frame

    class QueueTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._start = 0.0
            self._pts: int | None = None

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            # Paced on the monotonic clock (a wall-clock step after NTP sync must neither
            # stall the track nor burst it); a track that fell behind (a stalled loop)
            # restarts its timeline instead of catching up in a burst.
            now = clock()
            if self._pts is None:
                self._start = now
                self._pts = 0
            else:
                self._pts += frame_len
                wait = self._start + self._pts / rate - now
                if wait > 0:
                    await asyncio.sleep(wait)
                elif wait < -_RESYNC_S:
                    self._start = now - self._pts / rate
            pcm = queue.pop()
            if pcm is None:
                pcm = np.zeros(frame_len, dtype=np.int16)
                queue.stats.frames_padded += 1
            else:
                queue.stats.frames_sent += 1
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = self._pts
            frame.time_base = time_base
            return frame

    return QueueTrack()


#: An outbound track this far behind its timeline restarts it rather than bursting, s.
_RESYNC_S = 0.1


def track_to_mono(frame: Any) -> NDArray[np.int16]:
    """A decoded ``av.AudioFrame`` (s16, packed or planar, any channels) as mono int16."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if channels == 1:
        mono: NDArray[np.int16] = np.asarray(arr, dtype=np.int16).reshape(-1)
        return mono
    # (n, ch) for to_mono, which averages without overflow (3x faster than a sum in int32).
    shaped = arr.T if frame.format.is_planar else arr.reshape(-1, channels)
    out: NDArray[np.int16] = to_mono(np.ascontiguousarray(shaped, dtype=np.int16))
    return out


async def close_peer(pc: Any, tasks: set[asyncio.Task[None]]) -> None:
    """Tear down one side of a connection: cancel its tasks (not the caller), close the peer
    connection (errors while closing are moot), and wait for the tasks to finish."""
    me = asyncio.current_task()
    others = [t for t in tasks if t is not me]
    for task in others:
        task.cancel()
    if pc is not None:
        with contextlib.suppress(Exception):
            await pc.close()
    if others:
        await asyncio.wait(others)


_END = object()
#: Unread messages from the agent beyond which the transport gives up on the peer.
MAX_PENDING_MESSAGES = 1000


class AiortcTransport:
    """A device's WebRTC connection to one (emulated) Realtime room.

    Args:
        rate: PCM rate of :meth:`send_audio` and :meth:`audio` (Opus runs at 48 kHz; other
            rates are resampled).
        max_queue_ms: outbound audio buffered at most; beyond it the oldest frames drop.
        inbound_queue_ms: agent audio buffered for :meth:`audio` at most (oldest dropped).
    """

    def __init__(
        self, rate: int = WEBRTC_RATE, *, max_queue_ms: int = 1000, inbound_queue_ms: int = 5000
    ) -> None:
        self.rate = rate
        self.stats = TransportStats()
        self._frame = rate * FRAME_MS // 1000
        self.outbound = FrameQueue(self._frame, max(1, max_queue_ms // FRAME_MS), self.stats)
        self._in_max = max(1, inbound_queue_ms // FRAME_MS)
        self._pc: RTCPeerConnection | None = None
        self._channel: Any = None
        self._open = asyncio.Event()
        self._agent = asyncio.Event()
        self._closed = asyncio.Event()
        # Signalling is a handful of events per turn; a flood (a broken or hostile peer) is
        # cut off rather than buffered without bound.
        self._messages: asyncio.Queue[object] = asyncio.Queue()
        self._closing: asyncio.Task[None] | None = None
        self._audio: asyncio.Queue[object] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resampler: Any = None
        #: The agent's RTC user id (veRTC sends user messages to it; informational here).
        self.bot_id = ""
        #: The raw ``bot.leave`` message, once the agent has left.
        self.agent_left_reason: str | None = None

    @property
    def queued_ms(self) -> float:
        """Outbound audio waiting for the track, ms (whole frames)."""
        return len(self.outbound) * FRAME_MS

    @property
    def is_closed(self) -> bool:
        """True once closed or dropped."""
        return self._closed.is_set()

    @property
    def agent_joined(self) -> bool:
        """Whether ``bot.join`` has arrived."""
        return self._agent.is_set()

    async def join(self, room: RoomInfo, cloud: CloudConfig, bot_id: str) -> None:
        """Offer, signal, and wait until ICE/DTLS and the data channel are up.

        Raises:
            CloudError: signalling refused, or the connection did not come up within
                ``cloud.connect_timeout_s``.
        """
        from aiortc import RTCSessionDescription

        from .rest import rtc_signal

        if self._pc is not None:
            raise RuntimeError("AiortcTransport.join() may only be called once")
        pc = new_peer_connection(is_loopback_url(cloud.http_url))
        self._pc = pc
        self.bot_id = bot_id
        pc.addTrack(make_source_track(self.rate, self.outbound))
        channel = pc.createDataChannel(DATA_CHANNEL_LABEL, ordered=True)
        self._channel = channel
        channel.on("open", self._open.set)
        channel.on("message", self._on_message)
        channel.on("close", self._on_drop)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer = await rtc_signal(
                cloud.http_url, room, pc.localDescription.sdp, timeout=cloud.connect_timeout_s
            )
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(cloud.connect_timeout_s):  # (not wait_for: see gateway)
                await self._open.wait()
        except TimeoutError:
            await self.close()
            raise CloudError(
                f"room {room.room_id}: the WebRTC connection did not open within "
                f"{cloud.connect_timeout_s:g} s"
            ) from None
        except BaseException:
            await self.close()
            raise
        log.info("joined room %s as %s", room.room_id, room.uid)

    async def wait_agent(self, timeout: float) -> None:
        """Wait for the agent's ``bot.join``.

        Raises:
            CloudError: not within ``timeout`` seconds, or the transport dropped first.
        """
        waiter = asyncio.ensure_future(self._agent.wait())
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({waiter, closer}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
            closer.cancel()
        if not self._agent.is_set():
            why = "the transport closed" if self.is_closed else f"not within {timeout:g} s"
            raise CloudError(f"the agent did not join the room: {why}")

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        """Queue mono int16 audio at :attr:`rate` (dropped silently once closed)."""
        if not self.is_closed:
            self.outbound.push(pcm)

    def send_message(self, text: str) -> None:
        """Send one JSON event on the data channel.

        Raises:
            CloudError: the channel is not open (not joined yet, or closed).
        """
        ch = self._channel
        if ch is None or ch.readyState != "open" or self.is_closed:
            raise CloudError("cannot send: the room's event channel is not open")
        ch.send(text)
        self.stats.messages_sent += 1

    async def messages(self) -> AsyncIterator[str]:
        """JSON events from the agent until it leaves or the transport drops."""
        while True:
            item = await self._messages.get()
            if item is _END:
                self._messages.put_nowait(_END)  # later iterators end too
                return
            assert isinstance(item, str)
            yield item

    async def audio(self) -> AsyncIterator[NDArray[np.int16]]:
        """The agent's audio, mono int16 at :attr:`rate`, until the transport drops."""
        while True:
            item = await self._audio.get()
            if item is _END:
                self._audio.put_nowait(_END)
                return
            assert isinstance(item, np.ndarray)
            yield item

    async def close(self) -> None:
        """Close the peer connection and end both iterators; idempotent.

        Every caller returns only once the connection is closed, also when a drop had
        already started closing it.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        if self._closing is not asyncio.current_task():
            await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._closed.set()
        self._messages.put_nowait(_END)
        self._audio.put_nowait(_END)
        await close_peer(self._pc, self._tasks)

    # ------------------------------------------------------------------ callbacks

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            log.warning("ignoring a binary data-channel message (%d bytes)", len(message))
            return
        kind = agent_presence(message)
        if kind == AGENT_JOIN:
            self._agent.set()
            return
        if kind == AGENT_LEAVE:
            self.agent_left_reason = message
            log.info("the agent left the room")
            self._messages.put_nowait(_END)
            return
        self.stats.messages_received += 1
        if self._messages.qsize() >= MAX_PENDING_MESSAGES:
            log.warning(
                "the agent sent %d messages that were not read; closing", MAX_PENDING_MESSAGES
            )
            self._on_drop()
            return
        self._messages.put_nowait(message)

    def _on_drop(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    def _on_state(self) -> None:
        pc = self._pc
        if pc is not None and pc.connectionState in ("failed", "closed"):
            log.info("WebRTC connection %s", pc.connectionState)
            self._on_drop()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._pump(track))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, track: MediaStreamTrack) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame: Any = await track.recv()
            except MediaStreamError:
                break
            self.stats.frames_received += 1
            pcm = track_to_mono(frame)
            src = int(frame.sample_rate)
            if src != self.rate:
                if self._resampler is None:
                    from ..dsp.resample import StreamResampler

                    self._resampler = StreamResampler(src, self.rate)
                pcm = self._resampler.process(pcm)
            if self._audio.qsize() >= self._in_max:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._audio.get_nowait()
            self._audio.put_nowait(pcm)
        self._on_drop()


if TYPE_CHECKING:  # static check that the class implements the interface
    from ..realtime.transport import RtcTransport

    _conforms: RtcTransport = AiortcTransport()
