"""The first step of every emulator core with a client frame: decode it, or say why not.

The ``/v1/chat``, TTS and ASR cores all answer a bad frame the same way (an ``error`` event
carrying the frame as ``origin_message``, truncated), so this is written once. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RemoteProtocolError
from ..protocol.events import Event, UnknownEvent

__all__ = ["MAX_ORIGIN_CHARS", "Intake", "take_frame"]

#: Longest ``origin_message`` echoed in an error (the rest is cut, marked with "…").
MAX_ORIGIN_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Intake:
    """One client frame: the decoded ``event``, or the ``error`` text to answer with."""

    origin: str
    #: The event type (or ``(binary)``/``(malformed)``), for the connection's history.
    name: str
    event: Event | None = None
    error: str | None = None
    #: When decoding failed: the exception (its ``event_type`` names the event, if known).
    exc: RemoteProtocolError | None = None


def take_frame(frame: str | bytes, decode: Callable[[str], Event]) -> Intake:
    """Decode one client frame with ``decode``; never raises for bad input."""
    origin = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    if len(origin) > MAX_ORIGIN_CHARS:
        origin = origin[:MAX_ORIGIN_CHARS] + "…"
    if isinstance(frame, bytes):
        return Intake(
            origin,
            "(binary)",
            error="binary frames are not supported: send each event as JSON text",
        )
    try:
        event = decode(frame)
    except RemoteProtocolError as exc:
        return Intake(origin, exc.event_type or "(malformed)", error=str(exc), exc=exc)
    name = event.unknown_type if isinstance(event, UnknownEvent) else event.event_type
    return Intake(origin, name, event=event)
