"""Audio device descriptions, name patterns, format choice, error messages, stream counters.

Everything here is plain data and arithmetic: no PortAudio calls, no threads, no event loop.
:mod:`voicegw.io.device` probes the hardware, fills in :class:`DeviceInfo` and opens the
streams; this module describes what was found and decides with it.

**Formats.** A device is opened at a rate and channel count it supports natively;
:func:`choose_format` picks one from the probed formats, and voicegw's audio chain converts.

**Name patterns.** Devices are chosen by a case-insensitive name pattern
(:func:`name_matches`), never by index alone: indices change whenever a USB device comes or
goes.

**Errors.** PortAudio's ``(text, code)`` errors are explained in words that name the device,
the direction and the format, and list what the device supports.

**Streams.** The counters of capture and playback streams, and the sample ring a playback
stream feeds its callback from, are plain objects here; the streams and their locking live in
:mod:`voicegw.io.device`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..audio import Samples
from ..errors import DeviceError

__all__ = [
    "CaptureStats",
    "DeviceInfo",
    "Direction",
    "PlaybackStats",
    "choose_format",
    "name_matches",
]

Direction = Literal["input", "output"]
_DIRECTIONS: tuple[Direction, ...] = ("input", "output")
_VERB = {"input": "capture", "output": "play"}

#: Rates tried after the caller's preferred ones, best first (see :func:`choose_format`).
_FALLBACK_RATES = (48000, 44100, 16000, 32000, 24000, 22050, 8000)

# PortAudio error codes (portaudio.h, PaErrorCode).
_PA_HOST_ERROR = -9999
_PA_BAD_CHANNELS = -9998
_PA_BAD_RATE = -9997
_PA_BAD_DEVICE = -9996
_PA_BAD_FORMAT = (-9994, -9993)  # paSampleFormatNotSupported, paBadIODeviceCombination
_PA_UNAVAILABLE = -9985


# ---------------------------------------------------------------- device descriptions


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device, with the int16 formats it accepts where they were probed."""

    index: int
    """PortAudio's index: valid only until PortAudio is re-initialised; never store it."""
    name: str
    """The name, the stable key to select by (``seeed-2mic-voicecard: ... (hw:1,0)``)."""
    host_api: str
    """``ALSA``, ``JACK Audio Connection Kit``, ..."""
    max_input_channels: int
    """Capture channels (0: playback only)."""
    max_output_channels: int
    """Playback channels (0: capture only)."""
    default_rate: float
    """The device's default sample rate, Hz."""
    is_default_input: bool = False
    is_default_output: bool = False
    formats: frozenset[tuple[Direction, int, int]] = frozenset()
    """Accepted ``(direction, channels, rate)`` triples, for the directions in ``probed``."""
    probed: frozenset[Direction] = frozenset()
    """Directions whose formats were probed."""
    busy: bool = False
    """Probing was refused: another program holds the device."""

    def max_channels(self, direction: Direction) -> int:
        """Channel count the device reports for ``direction``."""
        return self.max_input_channels if direction == "input" else self.max_output_channels

    def supports(self, direction: Direction, rate: int, channels: int) -> bool:
        """Whether probing accepted ``rate`` Hz with ``channels`` channels in ``direction``."""
        return (direction, channels, rate) in self.formats

    def rates(self, direction: Direction, channels: int) -> tuple[int, ...]:
        """Probed rates accepted for ``channels`` channels, ascending."""
        return tuple(sorted(r for d, c, r in self.formats if d == direction and c == channels))

    def describe_formats(self, direction: Direction) -> str:
        """What the device accepts in ``direction``, for messages and listings."""
        if direction not in self.probed:
            return "formats not probed"
        if self.busy:
            return "unknown formats: the device is busy (another program has it open)"
        counts = sorted({c for d, c, _ in self.formats if d == direction})
        if not counts:
            return (
                "no 16-bit format at the probed rates (a device that refuses every format may "
                "be unplugged or failing)"
            )
        rates = (", ".join(map(str, self.rates(direction, c))) for c in counts)
        return "; ".join(f"{c} ch at {r} Hz" for c, r in zip(counts, rates, strict=True))

    def describe(self) -> str:
        """A listing entry, as ``python -m voicegw.io.device`` prints it."""
        flags = (("default in", self.is_default_input), ("default out", self.is_default_output))
        marks = [mark for mark, on in flags if on]
        lines = [
            f"[{self.index}] {self.name!r} ({self.host_api}): in {self.max_input_channels} / "
            f"out {self.max_output_channels} ch, default {self.default_rate:g} Hz"
            + (f" [{', '.join(marks)}]" if marks else "")
        ]
        for direction in _DIRECTIONS:
            if self.max_channels(direction) and direction in self.probed:
                lines.append(f"    {_VERB[direction]}: {self.describe_formats(direction)}")
        return "\n".join(lines)


def _pa_error(exc: BaseException) -> tuple[int, str] | None:
    """PyAudio's ``(code, text)``: ``OSError(code, text)`` or ``ValueError(text, code)``."""
    args = exc.args
    if len(args) == 2:
        if isinstance(args[0], int) and isinstance(args[1], str):
            return args[0], args[1]
        if isinstance(args[0], str) and isinstance(args[1], int):
            return args[1], args[0]
    return None


def _pa_code(exc: BaseException) -> int | None:
    err = _pa_error(exc)
    return err[0] if err else None


# ---------------------------------------------------------------- selection


def _alternatives(pattern: str) -> list[str]:
    return [alt.strip().lower() for alt in pattern.split("|") if alt.strip()]


def name_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern``.

    A pattern is one or more ``|``-separated alternatives compared case-insensitively: a glob
    over the whole name when it contains ``*``, ``?`` or ``[``, otherwise a substring
    (``"USB Audio"``, ``"seeed-2mic|seeed2micvoicec"``, ``"default"``).
    """
    low = name.lower()
    for alt in _alternatives(pattern):
        if any(ch in alt for ch in "*?["):
            if fnmatch.fnmatchcase(low, alt):
                return True
        elif alt in low:
            return True
    return False


def _names(devices: Iterable[DeviceInfo], direction: Direction | None = None) -> str:
    chosen = [d.name for d in devices if direction is None or d.max_channels(direction)]
    return ", ".join(map(repr, chosen)) or "none"


def _format_error(info: DeviceInfo, direction: Direction, rate: int, channels: int) -> DeviceError:
    return DeviceError(
        f"audio device {info.name!r} cannot {_VERB[direction]} {rate} Hz with {channels} "
        f"channel(s) of 16-bit audio; it supports {info.describe_formats(direction)}. "
        "Choose one of those: voicegw converts rate and channels itself"
    )


def _unusable_error(
    info: DeviceInfo, direction: Direction, rate: int | None, channels: int | None
) -> DeviceError:
    """Why ``info``, the best match, cannot take ``rate``/``channels`` in ``direction``."""
    if channels is not None and channels > info.max_channels(direction):
        return DeviceError(
            f"audio device {info.name!r} has {info.max_channels(direction)} channel(s) to "
            f"{_VERB[direction]}, {channels} requested; it supports "
            f"{info.describe_formats(direction)}"
        )
    return _format_error(info, direction, rate or round(info.default_rate), channels or 1)


def choose_format(
    info: DeviceInfo,
    preferred_rates: Sequence[int],
    channels: int,
    *,
    direction: Direction = "input",
) -> tuple[int, int]:
    """A ``(rate, channels)`` pair the device supports natively, best first.

    ``preferred_rates`` (the API rate first, so nothing needs converting) are tried, then
    48000, 44100, 16000, 32000, 24000, 22050 and 8000 Hz. At each rate ``channels`` is tried
    first, then 1 and 2: picking one channel is cheap and lossless, resampling is neither.
    Conversion to the API format happens in voicegw's chain; ALSA is never asked to resample.

    Args:
        info: a device probed in ``direction`` (from :func:`~voicegw.io.device.find_device`/
            :func:`~voicegw.io.device.list_devices`).
        preferred_rates: rates to try first, best first.
        channels: the channel count wanted.
        direction: ``"input"`` or ``"output"``.

    Raises:
        DeviceError: the device was not probed in ``direction``, or supports none of these.
    """
    if direction not in info.probed:
        raise DeviceError(
            f"the formats of audio device {info.name!r} are unknown for {_VERB[direction]}; "
            "get it from find_device() or list_devices()"
        )
    for rates in (preferred_rates, _FALLBACK_RATES):
        for rate in rates:
            for count in dict.fromkeys([channels, 1, 2]):
                if info.supports(direction, rate, count):
                    return rate, count
    raise DeviceError(
        f"audio device {info.name!r} has no usable format to {_VERB[direction]}: "
        f"{info.describe_formats(direction)}"
    )


# ---------------------------------------------------------------- error messages


_MESSAGES = {
    _PA_BAD_RATE: " cannot {verb} at {rate} Hz (PortAudio -9997, invalid sample rate){supported}. "
    "Choose a supported rate: voicegw resamples itself",
    _PA_BAD_CHANNELS: " cannot {verb} with {channels} channel(s) (PortAudio -9998){supported}",
    _PA_UNAVAILABLE: " is busy or unavailable (PortAudio -9985): another program may have it "
    "open (`fuser -v /dev/snd/*` shows which), or it was unplugged",
    _PA_BAD_DEVICE: " is not a valid device (PortAudio -9996): it may have been unplugged; "
    "indices change on hot-plug, so select devices by name",
    **dict.fromkeys(_PA_BAD_FORMAT, " refused {rate} Hz, {channels} channel(s): {text}{supported}"),
    _PA_HOST_ERROR: " failed to {verb} (PortAudio -9999: {text}): it may be gone, or not do "
    "{rate} Hz{supported}",
}


def _explain(
    exc: BaseException,
    device: str | DeviceInfo,
    direction: Direction | None,
    rate: int | None,
    channels: int | None,
    supported: Callable[[DeviceInfo | None, Direction | None, int | None], str],
) -> str:
    """Words for the PortAudio error ``exc``; ``supported`` describes the device's formats."""
    err = _pa_error(exc)
    code = err[0] if err else None
    info = device if isinstance(device, DeviceInfo) else None
    template = _MESSAGES.get(code or 0, ": {text}" + (f" (PortAudio {code})" if code else ""))
    detail = template.format(
        verb=_VERB[direction] if direction else "use",
        rate=rate,
        channels=channels,
        text=err[1] if err else exc,
        supported=supported(info, direction, rate) if "{supported}" in template else "",
    )
    return f"audio device {(info.name if info else device)!r}{detail}"


# ---------------------------------------------------------------- stream counters


@dataclass(slots=True)
class CaptureStats:
    """Counters of a capture stream (each has one writer thread)."""

    frames: int = 0
    """Buffers the device delivered."""
    dropped: int = 0
    """Frames dropped from a full queue (the oldest go)."""
    input_overflows: int = 0
    """Buffers flagged ``paInputOverflow``: the device overran before we took its data."""
    input_underflows: int = 0
    """Buffers flagged ``paInputUnderflow``."""


@dataclass(slots=True)
class PlaybackStats:
    """Counters of a playback stream."""

    callbacks: int = 0
    """Periods the device asked for."""
    played: int = 0
    """Frames (samples per channel) taken from the ring."""
    padded: int = 0
    """Frames of silence filled in because the ring ran short."""
    underruns: int = 0
    """Times the ring ran dry while audio was playing. The end of each burst of audio counts
    once and :meth:`~voicegw.io.device.PyAudioSink.flush` does not; a producer that keeps
    writing (silence included) never runs dry, so every further count is a stall."""
    dropped: int = 0
    """Frames dropped from a full ring (the oldest go)."""
    flushed: int = 0
    """Frames discarded by :meth:`~voicegw.io.device.PyAudioSink.flush`."""
    device_underflows: int = 0
    """Periods flagged ``paOutputUnderflow``: the callback itself came too late."""
    device_overflows: int = 0
    """Periods flagged ``paOutputOverflow``."""
    failures: int = 0
    """Times the stream died under us (PortAudio stopped calling back: device unplugged)."""


class _Ring:
    """A fixed-capacity FIFO of interleaved int16 samples; the caller holds the lock."""

    def __init__(self, frames: int, channels: int) -> None:
        self.channels = channels
        self._buf = np.zeros(frames * channels, dtype=np.int16)
        self._start = 0
        self.count = 0
        """Samples held (all channels)."""

    def write(self, x: Samples) -> int:
        """Append ``x``; return the frames dropped from the head to make room."""
        cap, n = len(self._buf), len(x)
        dropped = max(0, self.count + n - cap)
        if n >= cap:
            x, n = x[n - cap :], cap
            self._start = self.count = 0
        elif dropped:
            self._start = (self._start + dropped) % cap
            self.count -= dropped
        end = (self._start + self.count) % cap
        first = min(n, cap - end)
        self._buf[end : end + first] = x[:first]
        self._buf[: n - first] = x[first:]
        self.count += n
        return dropped // self.channels

    def read_into(self, out: Samples) -> int:
        """Fill the head of ``out``; return the frames copied."""
        cap = len(self._buf)
        n = min(len(out), self.count)
        first = min(n, cap - self._start)
        out[:first] = self._buf[self._start : self._start + first]
        out[first:n] = self._buf[: n - first]
        self._start = (self._start + n) % cap
        self.count -= n
        return n // self.channels

    def clear(self) -> int:
        """Empty the ring; return the frames discarded."""
        n, self._start, self.count = self.count, 0, 0
        return n // self.channels
