"""Device profiles: what a kind of hardware needs, as data in ``devices/*.toml``.

A profile names the sound card by a stable name pattern (never an index), the formats it
does natively, how the microphone channel is picked, the echo policy the hardware allows and
the talk button. It holds no code: :mod:`voicegw.io.device` and :mod:`voicegw.io.buttons`
turn it into streams and edge sources, and the chain converts formats.

A profile file looks like this (every key optional unless noted; unknown keys are errors)::

    name = "usb-generic"             # defaults to the file name without .toml
    description = "Generic USB audio dongle"
    backend = "portaudio"            # or "file": WAV files instead of a sound card
    period_ms = 20.0                 # device buffer, ms (5-200)
    echo_policy = "half_duplex"      # "half_duplex", "full_duplex", "duck" or "auto"
    hardware_aec = false             # the device cancels its own echo (needed for full_duplex)
    echo_tail_ms = 300.0             # microphone guard after playback ends, ms (0-5000)
    open_order = "input_first"       # or "output_first": which stream to open first

    [input]                          # the microphone
    device = "USB Audio"             # name pattern: "|"-separated substrings or globs
    rate = 48000                     # Hz the card does natively (0: choose at startup)
    channels = 1                     # channels to capture (1-16)
    channel = 0                      # channel that feeds the uplink (-1: mix all)
    gain_db = 0.0                    # software gain, dB (-40..40)

    [output]                         # the speaker
    device = "USB Audio"
    rate = 48000
    channels = 2                     # mono is duplicated to every channel (1-8)

    [button]                         # the talk button
    kind = "none"                    # "gpio", "evdev", "terminal" or "none"
    pin = 17                         # gpio: BCM number (0-27), required
    active_low = true                # gpio: the button pulls the pin to ground
    bounce_ms = 50.0                 # gpio: debounce, ms (0-1000)
    device = ""                      # evdev: input device pattern, required
    key = "KEY_SPACE"                # evdev: key name or code
    grab = false                     # evdev: take the device exclusively

    [file]                           # backend = "file" only
    source_wav = "var/fixtures/speech16k.wav"   # microphone (relative: to the working dir)
    sink_wav = "var/out/reply.wav"              # speaker
    sink_rate = 0                    # speaker rate, Hz (0: the service's output rate)
    realtime = true                  # pace the files like a sound card

Profiles are found by name in ``devices/`` next to the package (a source checkout) and in
``<prefix>/share/voicegw/devices`` (an installed copy); see :func:`profile_dirs`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .echo import EchoPolicy, default_policy
from .errors import ConfigError

__all__ = [
    "ButtonSpec",
    "DeviceProfile",
    "FileSpec",
    "InputSpec",
    "OutputSpec",
    "list_profiles",
    "load_profile",
    "parse_profile",
    "profile_dirs",
]

#: Sample rates a profile may pin a device to (0 leaves the choice to startup probing).
DEVICE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """The microphone."""

    device: str = "default"
    """Device name pattern: ``|``-separated alternatives, each a substring or a glob."""
    rate: int = 0
    """Capture rate the card does natively, Hz (0: choose at startup)."""
    channels: int = 1
    """Channels to capture, 1-16."""
    channel: int = 0
    """Channel that feeds the uplink, 0-based (-1: mix all channels)."""
    gain_db: float = 0.0
    """Software gain applied before anything else, dB (-40..40)."""


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """The speaker."""

    device: str = "default"
    """Device name pattern, as for the input."""
    rate: int = 0
    """Playback rate the card does natively, Hz (0: choose at startup)."""
    channels: int = 1
    """Channels to play, 1-8; mono audio is duplicated to each."""


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """The talk button."""

    kind: Literal["gpio", "evdev", "terminal", "none"] = "none"
    """Where presses come from."""
    pin: int = -1
    """gpio: BCM pin number, 0-27 (required for gpio)."""
    active_low: bool = True
    """gpio: the button connects the pin to ground (internal pull-up on)."""
    bounce_ms: float = 50.0
    """gpio: debounce time, ms (0-1000)."""
    device: str = ""
    """evdev: input device pattern (a ``/dev/input/by-id`` path, a glob or a substring)."""
    key: int | str = "KEY_SPACE"
    """evdev: key name (``KEY_SPACE``, ``BTN_0``) or code (0-767)."""
    grab: bool = False
    """evdev: take the device exclusively."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    """WAV files standing in for the sound card (``backend = "file"``)."""

    source_wav: str = ""
    """Microphone WAV (required); a relative path is relative to the working directory."""
    sink_wav: str = ""
    """Speaker WAV (required), written 16-bit mono."""
    sink_rate: int = 0
    """Speaker rate, Hz (0: the service's output rate)."""
    realtime: bool = True
    """Pace the files like a sound card (False: as fast as possible)."""


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A kind of hardware, loaded from ``devices/<name>.toml`` by :func:`load_profile`."""

    name: str
    """The profile's name (the file name without ``.toml`` unless set)."""
    description: str = ""
    """One line for listings."""
    backend: Literal["portaudio", "file"] = "portaudio"
    """``portaudio``: a sound card; ``file``: WAV files (demos, tests)."""
    period_ms: float = 20.0
    """Device buffer period, ms (5-200)."""
    echo_policy: Literal["half_duplex", "full_duplex", "duck", "auto"] = "auto"
    """Microphone policy while the speaker plays; ``auto`` decides by turn mode."""
    hardware_aec: bool = False
    """The device cancels its own echo (speakerphones); required for ``full_duplex``."""
    echo_tail_ms: float = 300.0
    """How long the microphone stays guarded after playback ends, ms (0-5000)."""
    open_order: Literal["input_first", "output_first"] = "input_first"
    """Which stream to open first. Cards whose capture and playback share one clock run
    both at the rate of the first stream; a kiosk speaker wants playback to choose."""
    input: InputSpec = InputSpec()
    output: OutputSpec = OutputSpec()
    button: ButtonSpec = ButtonSpec()
    file: FileSpec | None = None
    """Set exactly when ``backend == "file"``."""
    path: Path | None = field(default=None, compare=False)
    """The file the profile was loaded from."""

    def echo_policy_for(self, turn_mode: str) -> EchoPolicy:
        """The echo policy to run with ``turn_mode`` (resolves ``auto``).

        Raises:
            ConfigError: ``turn_mode`` is unknown.
        """
        if self.echo_policy == "auto":
            return default_policy(turn_mode, aec=self.hardware_aec)
        return self.echo_policy


# ---------------------------------------------------------------- parsing

_SECTIONS: dict[str, type[Any]] = {
    "input": InputSpec,
    "output": OutputSpec,
    "button": ButtonSpec,
    "file": FileSpec,
}


_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}


def _convert(value: Any, tp: Any, key: str) -> Any:
    if get_origin(tp) is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(map(repr, get_args(tp)))
            raise ConfigError(f"{value!r} is not one of {allowed}", key=key)
        return value
    kinds = get_args(tp) or (tp,)
    if bool in kinds and type(value) is bool:
        return value
    if int in kinds and type(value) is int:
        return value
    if float in kinds and type(value) in (int, float):
        return float(value)
    if str in kinds and type(value) is str:
        return value
    expected = " or ".join(_TYPE_NAMES[k] for k in kinds)
    raise ConfigError(f"expected {expected}, got {value!r}", key=key)


def _table(cls: type[Any], raw: Any, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", key=prefix or None)
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)} - set(skip)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in known:
            raise ConfigError(f"unknown key (known: {', '.join(sorted(known))})", key=dotted)
        if key in _SECTIONS and not prefix:
            kwargs[key] = _SECTIONS[key](**_table(_SECTIONS[key], value, key))
        else:
            kwargs[key] = _convert(value, hints[key], dotted)
    return kwargs


def _check_pattern(pattern: str, key: str) -> None:
    alternatives = pattern.split("|")
    if not pattern.strip() or any(not alt.strip() for alt in alternatives):
        raise ConfigError(
            f"{pattern!r} is not a device pattern: use non-empty alternatives separated by "
            "'|', such as \"seeed-2mic|seeed2micvoicec\"",
            key=key,
        )


def _check_range(value: float, low: float, high: float, key: str, unit: str = "") -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"must be {low:g}..{high:g}{unit}, got {value!r}", key=key)


def _validate(p: DeviceProfile) -> None:
    if not _NAME.fullmatch(p.name):
        raise ConfigError(f"{p.name!r} is not a profile name (letters, digits, . _ -)", key="name")
    _check_range(p.period_ms, 5, 200, "period_ms", " ms")
    _check_range(p.echo_tail_ms, 0, 5000, "echo_tail_ms", " ms")
    if p.echo_policy == "full_duplex" and not p.hardware_aec:
        raise ConfigError(
            "full_duplex lets the microphone hear the speaker; it needs hardware_aec = true "
            "(a device that cancels its own echo); use half_duplex or duck otherwise",
            key="echo_policy",
        )
    i, o, b = p.input, p.output, p.button
    for section, spec, most in (("input", i, 16), ("output", o, 8)):
        _check_pattern(spec.device, f"{section}.device")
        if spec.rate and spec.rate not in DEVICE_RATES:
            raise ConfigError(f"must be 0 or one of {DEVICE_RATES}", key=f"{section}.rate")
        _check_range(spec.channels, 1, most, f"{section}.channels")
    _check_range(i.channel, -1, i.channels - 1, "input.channel")
    _check_range(i.gain_db, -40, 40, "input.gain_db", " dB")
    if b.kind == "gpio":
        if b.pin < 0:
            raise ConfigError("required for a gpio button (the BCM pin number)", key="button.pin")
        _check_range(b.pin, 0, 27, "button.pin")
    _check_range(b.bounce_ms, 0, 1000, "button.bounce_ms", " ms")
    if b.kind == "evdev":
        _check_pattern(b.device, "button.device")
    if isinstance(b.key, int):
        _check_range(b.key, 0, 767, "button.key")
    elif not re.fullmatch(r"(KEY|BTN)_[A-Z0-9_]+", b.key):
        raise ConfigError(f"{b.key!r} is not a key name such as KEY_SPACE", key="button.key")
    if p.backend == "file":
        if p.file is None:
            raise ConfigError('backend = "file" needs a [file] table', key="file")
        for key in ("source_wav", "sink_wav"):
            if not getattr(p.file, key):
                raise ConfigError('required with backend = "file"', key=f"file.{key}")
        if p.file.sink_rate and p.file.sink_rate not in DEVICE_RATES:
            raise ConfigError(f"must be 0 or one of {DEVICE_RATES}", key="file.sink_rate")
    elif p.file is not None:
        raise ConfigError('only for backend = "file"', key="file")


def parse_profile(
    data: Mapping[str, Any], *, name: str | None = None, path: Path | None = None
) -> DeviceProfile:
    """Build a validated :class:`DeviceProfile` from a parsed TOML mapping.

    Args:
        data: the TOML document.
        name: the name to use when ``data`` has no ``name`` key.
        path: where ``data`` came from, kept in :attr:`DeviceProfile.path`.

    Raises:
        ConfigError: naming the first unknown key or bad value (dotted: ``input.rate``).
    """
    kwargs = _table(DeviceProfile, data, "", skip=("path",))
    kwargs.setdefault("name", name)
    if kwargs["name"] is None:
        raise ConfigError("required", key="name")
    profile = DeviceProfile(**kwargs, path=path)
    _validate(profile)
    return profile


# ---------------------------------------------------------------- finding


def profile_dirs() -> list[Path]:
    """Folders searched for profiles by name, first match wins.

    ``devices/`` at the root of a source checkout, then ``<sys.prefix>/share/voicegw/devices``
    for an installed copy.
    """
    return [
        Path(__file__).resolve().parent.parent / "devices",
        Path(sys.prefix) / "share" / "voicegw" / "devices",
    ]


def list_profiles(search_path: Sequence[Path] | None = None) -> list[str]:
    """Names of the profiles in ``search_path`` (default :func:`profile_dirs`), sorted."""
    names: set[str] = set()
    for folder in profile_dirs() if search_path is None else search_path:
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def load_profile(
    name_or_path: str | Path, search_path: Sequence[Path] | None = None
) -> DeviceProfile:
    """Load a profile by name (``"respeaker-2mic"``) or from a file (``"./my-card.toml"``).

    A value with a path separator or ending in ``.toml`` is a file; anything else is looked
    up as ``<name>.toml`` in ``search_path`` (default :func:`profile_dirs`).

    Raises:
        ConfigError: no such profile (the message lists the known ones), the file cannot be
            read or is not TOML, or a key or value is wrong (named, dotted).
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".toml"):
        path = Path(name_or_path)
    else:
        folders = profile_dirs() if search_path is None else list(search_path)
        found = [f / f"{text}.toml" for f in folders if (f / f"{text}.toml").is_file()]
        if not found:
            known = ", ".join(list_profiles(folders)) or "none"
            where = ", ".join(map(str, folders))
            raise ConfigError(f"no device profile {text!r} in {where}; known profiles: {known}")
        path = found[0]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"device profile not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read device profile {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse_profile(data, name=path.stem, path=path)
    except ConfigError as exc:
        located = ConfigError(f"{path}: {exc}")
        located.key = exc.key
        raise located from None
