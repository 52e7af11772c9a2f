"""PortAudio's one owner, and finding sound devices by stable name.

PortAudio enumerates devices when it is initialised; :func:`portaudio` (reference counted)
initialises it on first use and terminates it after the last user, so listing again once every
stream is closed sees hot-plugged hardware. Devices are found by a case-insensitive name
pattern (:func:`find_device`), never by index alone: indices change whenever a USB device comes
or goes. :func:`map_device_errors` turns PortAudio's ``(text, code)`` errors into
:class:`~voicegw.errors.DeviceError` naming the device. The streams are in :mod:`.device`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pyaudio

from ..audio import API_RATES
from ..errors import DeviceError
from .device_info import (
    _DIRECTIONS,
    _PA_UNAVAILABLE,
    _VERB,
    DeviceInfo,
    Direction,
    _alternatives,
    _explain,
    _names,
    _pa_code,
    _unusable_error,
    name_matches,
)

__all__ = ["find_device", "list_devices", "map_device_errors", "portaudio", "portaudio_active"]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the PortAudio owner

_owner_lock = threading.Lock()
_owner_pa: Any = None
_owner_refs = 0


def _acquire() -> Any:
    global _owner_pa, _owner_refs
    with _owner_lock:
        if _owner_refs == 0:
            # Debian's PortAudio is built with JACK; never let it start a JACK server.
            os.environ.setdefault("JACK_NO_START_SERVER", "1")
            _owner_pa = pyaudio.PyAudio()
            log.debug("PortAudio initialised")
        _owner_refs += 1
        return _owner_pa


def _release() -> None:
    global _owner_pa, _owner_refs
    with _owner_lock:
        if _owner_refs <= 0:
            return
        _owner_refs -= 1
        if _owner_refs == 0:
            pa, _owner_pa = _owner_pa, None
            pa.terminate()
            log.debug("PortAudio terminated")


@contextmanager
def portaudio() -> Iterator[Any]:
    """Use the process's single ``pyaudio.PyAudio`` for the duration of a ``with`` block.

    The first user initialises PortAudio and the last one terminates it; open streams hold
    a reference until they are closed. Never call ``terminate()`` on the object yielded.
    """
    pa = _acquire()
    try:
        yield pa
    finally:
        _release()


def portaudio_active() -> bool:
    """Whether PortAudio is initialised now (a stream or a listing holds it)."""
    with _owner_lock:
        return _owner_refs > 0


# ---------------------------------------------------------------- probing


def _enumerate(pa: Any) -> list[DeviceInfo]:
    defaults = []
    for getter in (pa.get_default_input_device_info, pa.get_default_output_device_info):
        try:
            defaults.append(int(getter()["index"]))
        except OSError:
            defaults.append(-1)
    devices = []
    for index in range(pa.get_device_count()):
        raw = pa.get_device_info_by_index(index)
        devices.append(
            DeviceInfo(
                index=index,
                name=str(raw["name"]),
                host_api=str(pa.get_host_api_info_by_index(raw["hostApi"])["name"]),
                max_input_channels=int(raw["maxInputChannels"]),
                max_output_channels=int(raw["maxOutputChannels"]),
                default_rate=float(raw["defaultSampleRate"]),
                is_default_input=index == defaults[0],
                is_default_output=index == defaults[1],
            )
        )
    return devices


def _probe(
    pa: Any,
    info: DeviceInfo,
    directions: Iterable[Direction],
    *,
    rates: Iterable[int] = (),
    channels: Iterable[int] = (),
) -> DeviceInfo:
    """``info`` with its formats in ``directions``: API rates (+ ``rates``), 1, 2 channels."""
    formats, probed, busy = set(info.formats), set(info.probed), info.busy
    for direction in directions:
        probed.add(direction)
        for count in sorted({1, 2, *channels}):
            if count > info.max_channels(direction) or busy:
                continue
            for rate in sorted({*API_RATES, *rates}):
                params = {
                    f"{direction}_device": info.index,
                    f"{direction}_channels": count,
                    f"{direction}_format": pyaudio.paInt16,
                }
                try:
                    pa.is_format_supported(rate, **params)
                except ValueError as exc:
                    if _pa_code(exc) == _PA_UNAVAILABLE:
                        busy = True
                        break
                    continue
                formats.add((direction, count, rate))
    return dataclasses.replace(
        info, formats=frozenset(formats), probed=frozenset(probed), busy=busy
    )


def list_devices(*, probe: bool = True) -> list[DeviceInfo]:
    """Every device PortAudio sees, in index order.

    Args:
        probe: also test which API rates (``voicegw.audio.API_RATES``) each direction accepts
            with 1 and 2 channels. Probing opens each device briefly; one that another
            program holds is marked ``busy``.

    Raises:
        DeviceError: PortAudio failed.
    """
    with map_device_errors("PortAudio"), portaudio() as pa:
        devices = _enumerate(pa)
        if probe:
            devices = [
                _probe(pa, d, [x for x in _DIRECTIONS if d.max_channels(x)]) for d in devices
            ]
    return devices


# ---------------------------------------------------------------- selection


def find_device(
    pattern: str, direction: Direction, *, rate: int | None = None, channels: int | None = None
) -> DeviceInfo:
    """The device whose name matches ``pattern`` and that works in ``direction``.

    Matches are ranked: an exact (case-insensitive) name first, then PortAudio's order. With
    ``rate`` and/or ``channels``, the first match that supports them wins. The result has its
    formats in ``direction`` probed, ready for :func:`choose_format`.

    Args:
        pattern: see :func:`name_matches`. An integer is taken as a PortAudio index, with a
            warning: indices change when USB devices come and go.
        direction: ``"input"`` (capture) or ``"output"`` (playback).
        rate: required sample rate, Hz.
        channels: required channel count.

    Raises:
        DeviceError: nothing matches (the message lists every device), no match works in
            ``direction``, or none supports ``rate``/``channels`` (the message says what the
            best match supports).
        ValueError: ``direction`` is neither ``"input"`` nor ``"output"``.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'input' or 'output', got {direction!r}")
    text = pattern.strip()
    with map_device_errors(pattern), portaudio() as pa:
        devices = _enumerate(pa)
        if text.isdigit():
            warnings.warn(
                f"selecting audio device {text} by index: indices change when USB devices are "
                "plugged or unplugged; select by a name pattern instead",
                UserWarning,
                stacklevel=2,
            )
            matches = [d for d in devices if d.index == int(text)]
        else:
            exact = set(_alternatives(text))
            matches = sorted(
                (d for d in devices if name_matches(text, d.name)),
                key=lambda d: (d.name.lower() not in exact, d.index),
            )
        if not matches:
            raise DeviceError(
                f"no audio device matches {pattern!r}; available devices: {_names(devices)}"
            )
        usable = [d for d in matches if d.max_channels(direction)]
        if not usable:
            raise DeviceError(
                f"{_names(matches)} (matching {pattern!r}) cannot {_VERB[direction]}; devices "
                f"that can: {_names(devices, direction)}"
            )
        probed = []
        for candidate in usable:
            info = _probe(
                pa,
                candidate,
                [direction],
                rates=[rate] if rate else [],
                channels=[channels] if channels else [],
            )
            probed.append(info)
            if any(
                d == direction and rate in (None, r) and channels in (None, c)
                for d, c, r in info.formats
            ) or (rate is None and channels is None):
                if len(usable) > 1:
                    log.info("audio device pattern %r chose %r", pattern, info.name)
                return info
    raise _unusable_error(probed[0], direction, rate, channels)


def _find_again(old: DeviceInfo, direction: Direction) -> DeviceInfo:
    """The device named exactly ``old.name`` as PortAudio lists it now (after a hot-plug).

    Raises:
        DeviceError: no device of that name is listed (still unplugged).
    """
    with map_device_errors(old.name), portaudio() as pa:
        for info in _enumerate(pa):
            if info.name == old.name and info.max_channels(direction):
                return _probe(pa, info, [direction])
    raise DeviceError(f"audio device {old.name!r} is not connected (not listed by PortAudio)")


# ---------------------------------------------------------------- error mapping


def _supported(info: DeviceInfo | None, direction: Direction | None, rate: int | None) -> str:
    if info is None or direction is None:
        return ""
    if direction not in info.probed:
        try:
            with portaudio() as pa:
                info = _probe(pa, info, [direction], rates=[rate] if rate else [])
        except (OSError, ValueError):
            return ""
    return f"; it supports {info.describe_formats(direction)}"


@contextmanager
def map_device_errors(
    device: str | DeviceInfo,
    *,
    direction: Direction | None = None,
    rate: int | None = None,
    channels: int | None = None,
) -> Iterator[None]:
    """Turn PortAudio errors raised inside the block into :class:`DeviceError`.

    PyAudio raises ``OSError`` (streams) or ``ValueError`` (format checks) carrying
    ``(text, code)``. The :class:`DeviceError` names the device, the direction and the
    format; for an unsupported rate or channel count it lists what the device supports
    (probing it first when ``device`` is an unprobed :class:`DeviceInfo`).

    Args:
        device: the device, or its name or pattern.
        direction: ``"input"`` or ``"output"``, when a stream is involved.
        rate: the sample rate asked for, Hz.
        channels: the channel count asked for.

    Raises:
        DeviceError: chained to the PortAudio error.
    """
    try:
        yield
    except DeviceError:
        raise
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and _pa_code(exc) is None:
            raise
        raise DeviceError(_explain(exc, device, direction, rate, channels, _supported)) from exc


# ---------------------------------------------------------------- streams
