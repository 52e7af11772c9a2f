"""Sound cards through PortAudio: listing, selection by stable name, and callback streams.

With :mod:`.portaudio` (PortAudio's owner and the lookup of devices by name), the only module
in voicegw that touches PortAudio (PyAudio) or threads.

**Thread boundary.** PortAudio calls each stream's callback on a thread of its own. The capture
callback copies the buffer into an int16 array, stamps ``last_frame_at``, counts status flags
and hands the array over with one ``loop.call_soon_threadsafe`` per buffer (never
``run_coroutine_threadsafe``); the bounded drop-oldest queue lives on the loop. The playback
callback takes one period from a small lock-protected ring that ``write()`` fills from the
loop, padding a short ring with silence (counted): the sound card's clock paces playback and
nothing here sleeps. Streams start and stop explicitly (``start()``/``close()``, idempotent);
``close()`` blocks while PortAudio stops the callback thread, at most a few periods.

**Formats.** A device is opened at a rate and channel count it supports natively (probed with
``Pa_IsFormatSupported``); voicegw's audio chain converts. ALSA is never asked to: select the
card's ``hw`` device by name, not a ``plughw``/``plug`` PCM, whose hidden resampler masks rate
mistakes (wrong pitch or speed) and spends CPU outside our control. USB cards often do only
44.1/48 kHz; :func:`choose_format` picks what the card can do and the chain resamples.

**Selection and hot-plug.** Devices are chosen by a case-insensitive name pattern, never by
index alone: indices change whenever a USB device comes or goes. PortAudio enumerates devices
when it is initialised; one reference-counted owner (:func:`.portaudio.portaudio`) initialises
it on first use and terminates it after the last, so listing again once every stream is closed
sees hot-plugged hardware (while any stream is open, the list PortAudio built at initialisation
stays in use). A capture stream that stops delivering makes :meth:`PyAudioSource.frames` raise
:class:`DeviceError` after ``stall_s``; the daemon then opens the microphone again by name,
with backoff, until it is back. A playback stream whose device vanishes (PortAudio stops
calling back) is noticed by the next :meth:`PyAudioSink.write`, which raises
:class:`DeviceError` and, after a backoff delay, looks the device up again by name and restarts
it, so a speaker that returns plays again.

**Errors.** :func:`map_device_errors` turns PortAudio's ``(text, code)`` errors into
:class:`DeviceError` naming the device; an unsupported rate (-9997) or channel count (-9998)
lists what the device supports, and a busy device (-9985) says so.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from types import TracebackType
from typing import Any

import numpy as np
import pyaudio

from ..audio import API_RATES, Samples, ms_to_samples
from ..errors import DeviceError
from ..retry import RetryPolicy
from .device_info import (
    _VERB,
    CaptureStats,
    DeviceInfo,
    Direction,
    PlaybackStats,
    _format_error,
    _Ring,
    choose_format,
    name_matches,
)
from .portaudio import (
    _acquire,
    _find_again,
    _release,
    find_device,
    list_devices,
    map_device_errors,
    portaudio,
    portaudio_active,
)

__all__ = [
    "CaptureStats",
    "DeviceInfo",
    "Direction",
    "PlaybackStats",
    "PyAudioSink",
    "PyAudioSource",
    "choose_format",
    "find_device",
    "list_devices",
    "map_device_errors",
    "name_matches",
    "portaudio",
    "portaudio_active",
]

log = logging.getLogger(__name__)

_Waiters = list[tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]]


class _Stream:
    """What capture and playback share: the device, the format, start and close."""

    _direction: Direction

    def __init__(self, device: DeviceInfo | str, rate: int, channels: int, ms: float) -> None:
        if rate <= 0 or channels <= 0:
            raise ValueError("rate and channels must be positive")
        self._frames_per_buffer = ms_to_samples(ms, rate)
        if self._frames_per_buffer < 1:
            raise ValueError(f"{ms} ms is shorter than one sample")
        direction = self._direction
        if isinstance(device, str):
            device = find_device(device, direction, rate=rate, channels=channels)
        elif (
            direction in device.probed  # only API rates at 1 and 2 channels are always probed
            and (rate in API_RATES and channels <= 2)
            and not device.supports(direction, rate, channels)
        ):
            raise _format_error(device, direction, rate, channels)
        self.device = device
        self.name = device.name
        self.rate = rate
        self.channels = channels
        self._stream: Any = None
        self._closed = False

    def start(self) -> None:
        """Open and start the stream (idempotent).

        Raises:
            DeviceError: the stream was closed, or PortAudio refused it (device missing,
                busy, or the format unsupported).
            RuntimeError: a capture stream has no ``loop`` and no event loop is running.
        """
        if self._closed:
            raise DeviceError(f"the stream to {self.name!r} is closed; open a new one")
        if self._stream is not None:
            return
        self._bind()
        with map_device_errors("PortAudio"):
            pa = _acquire()
        try:
            with map_device_errors(
                self.device, direction=self._direction, rate=self.rate, channels=self.channels
            ):
                self._stream = pa.open(
                    format=pyaudio.paInt16,
                    channels=self.channels,
                    rate=self.rate,
                    frames_per_buffer=self._frames_per_buffer,
                    stream_callback=self._callback,
                    start=False,
                    **{self._direction: True, f"{self._direction}_device_index": self.device.index},
                )
                self._stream.start_stream()
        except BaseException:
            stream, self._stream = self._stream, None
            if stream is not None:
                _close_stream(stream, self.name)
            _release()
            raise
        log.debug(
            "%s %r: %d Hz, %d ch, %d-sample buffers",
            _VERB[self._direction],
            self.name,
            self.rate,
            self.channels,
            self._frames_per_buffer,
        )

    def close(self) -> None:
        """Stop and close the stream and release PortAudio (idempotent)."""
        if self._closed:
            return
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                _close_stream(stream, self.name)
            finally:
                _release()
        self._after_close()

    def __enter__(self) -> _Stream:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _bind(self) -> None:
        """Prepare for callbacks, just before the stream opens."""

    def _after_close(self) -> None:
        """Release waiters once the stream is closed."""

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes | None, int]:
        raise NotImplementedError


def _close_stream(stream: Any, name: str) -> None:
    try:
        if not stream.is_stopped():
            stream.stop_stream()
        stream.close()
    except OSError as exc:
        log.warning("closing audio device %r: %s", name, exc)


# ---------------------------------------------------------------- capture


class PyAudioSource(_Stream):
    """A microphone: fixed-size int16 frames from a PortAudio capture stream.

    Frames are ``frame_ms`` long, shape ``(n,)`` for mono or ``(n, channels)``. They wait on
    the event loop in a bounded queue that drops the oldest frame when full (counted in
    ``stats.dropped``): a stalled consumer loses old audio, never memory.

    Args:
        device: a :class:`DeviceInfo`, or a name pattern for :func:`find_device`.
        rate: sample rate, Hz, native to the device (see :func:`choose_format`).
        channels: channels to capture.
        frame_ms: frame length, ms; also PortAudio's buffer size.
        loop: the loop to deliver frames to (default: the running loop at :meth:`start`).
        queue_ms: queue bound, ms of audio (at least one frame).
        max_frames: stop after this many frames (a timed recording); ``None``: until
            :meth:`close`.
        stall_s: :meth:`frames` raises :class:`DeviceError` after this long without a frame
            (a vanished USB device stops the callbacks silently); ``None`` waits forever.

    Call :meth:`start`, :meth:`frames` and :meth:`close` on the loop's thread; :meth:`start`
    needs ``loop`` or a running loop. After :meth:`close`, frames already queued can still be
    read, then :meth:`frames` ends.

    Raises:
        DeviceError: the device is missing or does not support ``rate``/``channels``.
    """

    _direction: Direction = "input"

    def __init__(
        self,
        device: DeviceInfo | str,
        rate: int,
        channels: int,
        frame_ms: float = 20.0,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        queue_ms: float = 500.0,
        max_frames: int | None = None,
        stall_s: float | None = 5.0,
    ) -> None:
        super().__init__(device, rate, channels, frame_ms)
        self.frame = self._frames_per_buffer
        """Samples per channel in each frame."""
        self.stats = CaptureStats()
        self.last_frame_at: float | None = None
        """``time.monotonic()`` when the device last delivered a buffer (for a watchdog)."""
        self._loop = loop
        self._hand_over: Callable[..., object] = _no_loop
        self._queue: deque[Samples] = deque(maxlen=max(1, round(queue_ms / frame_ms)))
        self._ready = asyncio.Event()
        self._max_frames = max_frames
        self._stall_s = stall_s
        self._ended = False

    @property
    def queued(self) -> int:
        """Frames waiting in the queue."""
        return len(self._queue)

    @property
    def ended(self) -> bool:
        """No more frames will arrive (``max_frames`` reached, or closed)."""
        return self._ended

    async def frames(self) -> AsyncIterator[Samples]:
        """Yield frames as the device delivers them, starting the stream if needed.

        Ends after ``max_frames`` frames or :meth:`close`, once the queue is empty.

        Raises:
            DeviceError: no frame for ``stall_s`` seconds, or the stream could not start.
        """
        if not self._closed:
            self.start()
        while True:
            if self._queue:
                yield self._queue.popleft()
                continue
            if self._ended:
                return
            self._ready.clear()
            try:
                async with asyncio.timeout(self._stall_s):
                    await self._ready.wait()
            except TimeoutError:
                raise DeviceError(
                    f"no audio from {self.name!r} for {self._stall_s:g} s: the device stalled "
                    "or was unplugged"
                ) from None

    def _bind(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._hand_over = self._loop.call_soon_threadsafe

    def _after_close(self) -> None:
        self._ended = True
        self._ready.set()

    # The PortAudio thread: copy, stamp, count, hand over. Nothing else.
    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes | None, int]:
        if status & pyaudio.paInputOverflow:
            self.stats.input_overflows += 1
        if status & pyaudio.paInputUnderflow:
            self.stats.input_underflows += 1
        if in_data is None:
            frame = np.zeros(frame_count * self.channels, dtype=np.int16)
        else:
            frame = np.frombuffer(in_data, dtype=np.int16).copy()
        self.last_frame_at = time.monotonic()
        self.stats.frames += 1
        last = self._max_frames is not None and self.stats.frames >= self._max_frames
        try:
            self._hand_over(self._deliver, frame, last)
        except RuntimeError:  # the loop is closed: nobody will read
            return None, pyaudio.paAbort
        return None, (pyaudio.paComplete if last else pyaudio.paContinue)

    # The event loop.
    def _deliver(self, frame: Samples, last: bool) -> None:
        if self._closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self.stats.dropped += 1
        self._queue.append(frame.reshape(-1, self.channels) if self.channels > 1 else frame)
        self._ended = self._ended or last
        self._ready.set()


def _no_loop(*args: object) -> object:
    raise RuntimeError("no event loop to deliver frames to")


# ---------------------------------------------------------------- playback


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _wake_all(waiters: _Waiters) -> None:
    for loop, fut in waiters:
        with suppress(RuntimeError):  # that loop is closed
            loop.call_soon_threadsafe(_wake, fut)


class PyAudioSink(_Stream):
    """A speaker: a PortAudio playback stream fed from a small ring.

    :meth:`write` takes mono int16 at ``rate`` and duplicates it to every device channel.
    The sound card's callback takes one period at a time from the ring; whatever the ring
    lacks is silence (``stats.padded``, ``stats.underruns``). A full ring drops its oldest
    audio (``stats.dropped``): pace writes with a playout buffer, and keep ``buffer_ms`` small
    so that :meth:`flush` (barge-in) silences the speaker quickly.

    Args:
        device: a :class:`DeviceInfo`, or a name pattern for :func:`find_device`.
        rate: sample rate, Hz, native to the device (see :func:`choose_format`).
        channels: device channels; mono input is duplicated to each.
        period_ms: PortAudio's buffer size, ms.
        buffer_ms: ring capacity, ms (at least one period).

    :meth:`close` discards what is left in the ring; the device plays out what PortAudio holds.

    **A vanished device** (a USB DAC unplugged) makes PortAudio stop calling back: the stream
    is no longer active. The next :meth:`write` notices, drops the dead stream and the audio
    waiting for it, and raises :class:`DeviceError` (``stats.failures``). Later writes raise
    too until a retry is due (capped backoff, ``retry_max_s``); then the device is looked up
    again by name (indices change on hot-plug) and a new stream starts. So a speaker that comes
    back plays again, and the caller only has to count the errors.

    Raises:
        DeviceError: the device is missing or does not support ``rate``/``channels``.
    """

    _direction: Direction = "output"

    def __init__(
        self,
        device: DeviceInfo | str,
        rate: int,
        channels: int = 1,
        *,
        period_ms: float = 20.0,
        buffer_ms: float = 400.0,
        retry_max_s: float = 5.0,
    ) -> None:
        super().__init__(device, rate, channels, period_ms)
        self.period = self._frames_per_buffer
        """Samples per channel in each period."""
        self.stats = PlaybackStats()
        self._lock = threading.Lock()
        self._ring = _Ring(max(self.period, ms_to_samples(buffer_ms, rate)), channels)
        self._waiters: _Waiters = []
        self._playing = False
        self._retry = RetryPolicy(initial_s=0.25, cap_s=max(0.25, retry_max_s), slow={})
        self._retry_at: float | None = None

    @property
    def queued_ms(self) -> float:
        """Audio written but not yet handed to the device, ms."""
        return self._ring.count / self.channels * 1000.0 / self.rate

    @property
    def latency_ms(self) -> float:
        """PortAudio's estimate of the device's own output latency, ms (0 before start)."""
        stream = self._stream
        return float(stream.get_output_latency()) * 1000.0 if stream is not None else 0.0

    def write(self, samples: Samples) -> None:
        """Queue mono int16 samples, shape ``(n,)`` or ``(n, 1)``; starts the stream.

        Raises:
            DeviceError: the sink is closed, or the stream could not start.
            ValueError: ``samples`` is not mono int16.
        """
        x = np.asarray(samples)
        if x.dtype != np.int16:
            raise ValueError(f"int16 samples expected, got {x.dtype}")
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(f"mono samples expected, got shape {x.shape}")
        if self._closed:
            raise DeviceError(f"playback to {self.name!r} is closed")
        self._ensure_running()
        if self.channels > 1:
            x = np.repeat(x, self.channels)
        with self._lock:
            self.stats.dropped += self._ring.write(x)

    def _ensure_running(self) -> None:
        """Start the stream, or find that the device failed and retry it with backoff.

        Raises:
            DeviceError: the device stopped (unplugged), is still missing, or the stream
                could not start.
        """
        stream = self._stream
        if stream is not None:
            if stream.is_active():
                return
            # PortAudio stopped calling back: the device failed (a USB DAC was unplugged).
            self._stream = None
            try:
                _close_stream(stream, self.name)
            finally:
                _release()
            with self._lock:
                self._ring.clear()
                self._playing = False
            self.stats.failures += 1
            self._retry_at = time.monotonic() + self._retry.next_delay()
            raise DeviceError(
                f"playback to {self.name!r} stopped: the device failed or was unplugged; "
                "it will be opened again by name"
            )
        retrying = self._retry_at is not None
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            raise DeviceError(f"audio device {self.name!r} is unavailable; retrying shortly")
        try:
            if retrying:
                self.device = _find_again(self.device, "output")
            self.start()
        except DeviceError:
            self._retry_at = time.monotonic() + self._retry.next_delay()
            raise
        if retrying:
            log.info("playback device %r is back", self.name)
            self._retry_at = None
            self._retry.reset()

    def flush(self) -> int:
        """Discard the audio waiting in the ring (barge-in); return the frames discarded.

        The device still plays what PortAudio already holds (:attr:`latency_ms`).
        """
        with self._lock:
            n = self._ring.clear()
            self._playing = False
            self.stats.flushed += n
            waiters, self._waiters = self._waiters, []
        _wake_all(waiters)
        return n

    async def drain(self) -> None:
        """Wait until everything written has been handed to the device.

        The device then still holds about :attr:`latency_ms` of audio. Returns at once when
        nothing is queued or the sink is closed. A vanished device never drains: wrap the
        wait in a timeout.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._ring.count == 0 or self._stream is None:
                return
            self._waiters.append((loop, fut))
        await fut

    def _after_close(self) -> None:
        with self._lock:
            self._ring.clear()
            waiters, self._waiters = self._waiters, []
        _wake_all(waiters)

    # The PortAudio thread: one period out of the ring, silence for whatever is missing.
    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes | None, int]:
        stats = self.stats
        if status & pyaudio.paOutputUnderflow:
            stats.device_underflows += 1
        if status & pyaudio.paOutputOverflow:
            stats.device_overflows += 1
        out = np.zeros(frame_count * self.channels, dtype=np.int16)
        waiters: _Waiters = []
        with self._lock:
            got = self._ring.read_into(out)
            if got < frame_count:
                if got or self._playing:
                    stats.underruns += 1
                self._playing = False
            else:
                self._playing = True
            if self._ring.count == 0 and self._waiters:
                waiters, self._waiters = self._waiters, []
        stats.callbacks += 1
        stats.played += got
        stats.padded += frame_count - got
        _wake_all(waiters)
        return out.tobytes(), pyaudio.paContinue


# ---------------------------------------------------------------- listing from the shell


def _main() -> int:
    try:
        devices = list_devices()
    except DeviceError as exc:
        print(f"error: {exc}")
        return 1
    for info in devices:
        print(info.describe())
    if not devices:
        print("no audio devices found")
    return 0 if devices else 1


if __name__ == "__main__":
    raise SystemExit(_main())
