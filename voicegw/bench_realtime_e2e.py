"""The end-to-end rows of ``voicegw bench``'s realtime section: clicks over aiortc on loopback.

One :class:`E2e` round is one connection: an :class:`~voicegw.io.webrtc.AiortcTransport`
joins, through its own HTTP signalling (an aiohttp endpoint on ``127.0.0.1:0``), a bench room
made of the transport's own pieces, as the emulator's rooms are (an answering peer from
:func:`~voicegw.io.webrtc.new_peer_connection`, a :func:`~voicegw.io.webrtc.make_source_track`
fed by a :class:`~voicegw.io.webrtc.FrameQueue`, :func:`~voicegw.io.webrtc.track_to_mono` on
what it receives). The room echoes every data-channel message.

After the first audio has arrived both ways and :data:`SETTLE_S` more, each click (see
:func:`click_frame`) is sent both ways at once: ``AiortcTransport.send_audio`` to the room's
decoded frame that carries it (``up``), and the room's ``FrameQueue.push`` to the transport's
``audio()`` iterator (``down``). A frame is loud when its peak reaches
:data:`CLICK_THRESHOLD`; the line is digitally silent otherwise (Opus decodes silence to
zeros). Once both are heard, a data-channel message goes out and its echo is timed (``rtt``).
The next click follows a random 20-60 ms later (seeded), so clicks land at random phases of
the 20 ms track clock. :data:`WARMUP_CLICKS` clicks per connection are discarded. Nothing here
decides an order by sleeping: every wait is for an event, with a timeout that fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any, Final

import numpy as np

from .audio import Samples
from .bench_timing import Recorder
from .config import CloudConfig

__all__ = ["CLICK_THRESHOLD", "FRAME", "RATE", "SETTLE_S", "WARMUP_CLICKS", "E2e", "click_frame"]

RATE: Final = 48000  # WebRTC audio
FRAME: Final = 960  # 20 ms at 48 kHz
#: A decoded frame whose peak reaches this is a click (the line is digitally silent otherwise).
CLICK_THRESHOLD: Final = 2000
#: Connection settling time before the first click of a round, s.
SETTLE_S: Final = 0.3
#: Clicks sent and discarded at the start of each round.
WARMUP_CLICKS: Final = 2
#: Longest wait for one click or one data-channel echo, s.
_HEARD_TIMEOUT_S: Final = 2.0
_JOIN_TIMEOUT_S: Final = 10.0
_PING: Final = '{"event_type":"bench.ping","data":{"seq":%d,"pad":"%s"}}'


def click_frame(amplitude: int = 16000, ms: float = 1.0) -> Samples:
    """One 20 ms frame at 48 kHz: a Hann-windowed 4 kHz burst of ``ms`` at its start, then zeros.

    A burst at the frame's start stays in the same decoded frame after Opus's few ms of delay.
    """
    n = round(RATE * ms / 1000)
    out = np.zeros(FRAME, dtype=np.int16)
    burst = amplitude * np.sin(2 * np.pi * 4000 * np.arange(n) / RATE) * np.hanning(n)
    out[:n] = np.rint(burst).astype(np.int16)
    return out


class _Detector:
    """Times one click at a time: armed when it is sent, fired by the first loud frame after."""

    def __init__(self) -> None:
        self.heard = asyncio.Event()
        self.latency_ms = 0.0
        self.unexpected = 0  # loud frames while no click was pending
        self._sent: float | None = None

    def arm(self) -> None:
        self.heard.clear()
        self._sent = time.perf_counter()

    def frame(self, pcm: Samples) -> None:
        if not len(pcm) or max(int(pcm.max()), -int(pcm.min())) < CLICK_THRESHOLD:
            return
        if self._sent is None:
            self.unexpected += 1
            return
        self.latency_ms = (time.perf_counter() - self._sent) * 1000
        self._sent = None
        self.heard.set()


class _Room:
    """The far end: an answering peer made of the transport's own pieces, as an emulator room.

    It times clicks on the audio it receives, sends what is pushed onto :attr:`queue`, and
    echoes every data-channel message.
    """

    def __init__(self, detector: _Detector) -> None:
        from .io.webrtc import FrameQueue
        from .realtime.transport import TransportStats

        self.detector = detector
        self.queue = FrameQueue(FRAME, 50, TransportStats())
        self.audio = asyncio.Event()
        self._pc: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def answer(self, offer: str) -> str:
        from aiortc import RTCSessionDescription

        from .io.webrtc import make_source_track, new_peer_connection

        pc = new_peer_connection(True)
        self._pc = pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_channel)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        pc.addTrack(make_source_track(RATE, self.queue))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def _on_channel(self, channel: Any) -> None:
        channel.on("message", channel.send)

    def _on_track(self, track: Any) -> None:
        task = asyncio.ensure_future(self._pump(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        from .io.webrtc import track_to_mono

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.audio.set()
            self.detector.frame(track_to_mono(frame))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._pc is not None:
            with contextlib.suppress(Exception):  # a failed peer must not hide the real error
                await self._pc.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks))


class E2e:
    """The e2e measurements: one connection per :meth:`round`, ``clicks`` clicks each.

    Attributes:
        up: ``send_audio`` -> the room's decoded frame, ms per click.
        down: the room's ``FrameQueue.push`` -> ``audio()``, ms per click.
        rtt: data-channel round trips on the same connections, ms.
        connect_ms: per connection, ``join`` (signalling, ICE, DTLS, channel open), ms.
        first_audio_ms: per connection, from ``join`` until audio arrived both ways, ms.
        unexpected: loud frames that arrived while no click was pending (expected 0).
    """

    def __init__(self, clicks: int, seed: int) -> None:
        self.clicks = clicks
        self.rng = random.Random(seed)
        self.up = Recorder("e2e up")
        self.down = Recorder("e2e down")
        self.rtt = Recorder("data-channel round trip")
        self.connect_ms: list[float] = []
        self.first_audio_ms: list[float] = []
        self.unexpected = 0
        self.click = click_frame()

    def round(self) -> None:
        """Open a connection, time the clicks, close it (a new event loop each time).

        Raises:
            RuntimeError: the connection, a click or an echo did not arrive in time.
        """
        asyncio.run(self._session())

    async def _session(self) -> None:
        from aiohttp import web

        from .io.webrtc import AiortcTransport
        from .realtime.rooms import RoomInfo
        from .realtime.transport import SignalAnswer, SignalOffer, signal_path

        up, down = _Detector(), _Detector()
        room = _Room(up)

        async def signal(request: web.Request) -> web.Response:
            offer = SignalOffer.from_json(await request.json())
            answer = SignalAnswer(await room.answer(offer.sdp)).to_json()
            return web.json_response(
                {"code": 0, "msg": "", "detail": {"logid": ""}, "data": answer}
            )

        app = web.Application()
        app.router.add_post(signal_path("bench"), signal)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        transport = AiortcTransport(RATE)
        tasks: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            cloud = CloudConfig(
                api="realtime", api_url=f"http://127.0.0.1:{port}", connect_timeout_s=5.0
            )
            info = RoomInfo(room_id="bench", app_id="bench", token="bench", uid="device")
            t0 = time.perf_counter()
            await asyncio.wait_for(transport.join(info, cloud, "bench-agent"), _JOIN_TIMEOUT_S)
            self.connect_ms.append((time.perf_counter() - t0) * 1000)
            heard_device = asyncio.Event()
            pongs: asyncio.Queue[str] = asyncio.Queue()

            async def listen() -> None:
                async for pcm in transport.audio():
                    heard_device.set()
                    down.frame(pcm)

            async def read() -> None:
                async for text in transport.messages():
                    pongs.put_nowait(text)

            tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(read())]
            await _within(asyncio.gather(room.audio.wait(), heard_device.wait()), "first audio")
            self.first_audio_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(SETTLE_S)
            for k in range(WARMUP_CLICKS + self.clicks):
                await asyncio.sleep(self.rng.uniform(0.02, 0.06))  # a random phase of the tick
                up.arm()
                transport.send_audio(self.click)
                down.arm()
                room.queue.push(self.click)
                await _within(asyncio.gather(up.heard.wait(), down.heard.wait()), f"click {k}")
                ping = _PING % (k, "x" * 120)
                t1 = time.perf_counter()
                transport.send_message(ping)
                echo = await _within(pongs.get(), f"the echo of data-channel message {k}")
                rtt_ms = (time.perf_counter() - t1) * 1000
                if echo != ping:
                    raise RuntimeError("realtime e2e: the data channel echoed another message")
                if k >= WARMUP_CLICKS:
                    self.up.add(up.latency_ms)
                    self.down.add(down.latency_ms)
                    self.rtt.add(rtt_ms)
        finally:
            await transport.close()
            await room.close()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            await runner.cleanup()
        self.unexpected += up.unexpected + down.unexpected

    def detail(self) -> str:
        """The connections' set-up times and the unexpected loud frames, for the rows' notes."""
        return (
            f"{len(self.connect_ms)} connection(s): join {_span(self.connect_ms)} ms, first audio "
            f"both ways {_span(self.first_audio_ms)} ms; loud frames with no click pending: "
            f"{self.unexpected}"
        )


async def _within(awaitable: Any, what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, _HEARD_TIMEOUT_S)
    except TimeoutError:
        raise RuntimeError(
            f"realtime e2e: {what} did not arrive within {_HEARD_TIMEOUT_S:g} s"
        ) from None


def _span(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}" if values else "-"
