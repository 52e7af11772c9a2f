"""``voicegw devices``: every sound device, the API rates it accepts, and what profiles pick."""

from __future__ import annotations

from collections.abc import Callable

from .audio import API_RATES
from .errors import ConfigError
from .profiles import list_profiles, load_profile

__all__ = ["print_devices"]


def print_devices(*, profile: str = "", emit: Callable[[str], None] = print) -> int:
    """List input and output devices; mark those a device profile would choose.

    Returns the exit status: 0, or 5 when PortAudio sees no device at all.
    """
    from .io.device import list_devices, name_matches

    devices = list_devices(probe=True)
    if not devices:
        emit("no sound devices found (is the user in the 'audio' group? is a card attached?)")
        return 5
    names = [profile] if profile else list_profiles()
    picks: dict[tuple[str, int], list[str]] = {}
    for name in names:
        try:
            p = load_profile(name)
        except ConfigError as exc:
            emit(f"profile {name}: {exc}")
            return 2
        if p.backend != "portaudio":
            continue
        for direction, pattern in (("input", p.input.device), ("output", p.output.device)):
            for d in devices:
                if d.max_channels(direction) and name_matches(pattern, d.name):  # type: ignore[arg-type]
                    picks.setdefault((direction, d.index), []).append(p.name)
                    break
    for direction in ("input", "output"):
        emit(f"{direction} devices:")
        for d in devices:
            channels = d.max_channels(direction)  # type: ignore[arg-type]
            if not channels:
                continue
            default = d.is_default_input if direction == "input" else d.is_default_output
            emit(f"  {d.name!r} ({d.host_api}), {channels} ch" + (" [default]" if default else ""))
            for ch in sorted({1, min(2, channels)}):
                ok = [r for r in d.rates(direction, ch) if r in API_RATES]  # type: ignore[arg-type]
                shown = ", ".join(str(r) for r in ok) or "none of the API rates"
                emit(f"      {ch} ch: {shown}")
            if d.busy:
                emit("      busy: another program holds it")
            chosen = picks.get((direction, d.index))
            if chosen:
                emit(f"      <- picked by profile {', '.join(chosen)}")
    return 0
