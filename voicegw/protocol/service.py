"""What the small sans-I/O sessions of the speech APIs (TTS, ASR) have in common.

Each holds a state from its own transition table, the frames to send, the outputs for its
caller, and the bookkeeping every client of the shared envelope needs: unique event ids, the
connection's ``logid``, unknown events and fields reported once as :class:`Notice`, and an
optional debug trace that never shows audio or text content. Subclasses add their commands
and their ``match`` on decoded events; nothing here does I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from .events import ClientEvent, Event, ServerEvent, UnknownEvent
from .outputs import Notice, _EventIds
from .wire import decode_with, encode, unknown_fields

__all__ = ["ServiceSession"]

S = TypeVar("S", bound=Enum)
Out = TypeVar("Out")

#: Distinct notices remembered (to report each once) before starting over: a bounded set.
_NOTICE_MEMORY = 256


class ServiceSession(Generic[S, Out]):
    """Base of :class:`~voicegw.protocol.tts.TtsSession` and ``AsrSession``.

    Subclasses set :attr:`TRANSITIONS` (``(state, trigger) -> state``) and :attr:`SERVER_EVENTS`
    (the decode table), and start in ``state``.
    """

    TRANSITIONS: ClassVar[Mapping[tuple[Any, str], Any]] = {}
    SERVER_EVENTS: ClassVar[Mapping[str, type[ServerEvent]]] = {}
    #: Logger of the debug trace (the subclass's module).
    LOG: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(self, state: S, *, debug: bool = False) -> None:
        self._state = state
        self._logid: str | None = None
        self._ids = _EventIds()
        self._out: list[str] = []
        self._events: list[Any] = []
        self._reported: set[str] = set()
        self._debug = debug

    @property
    def state(self) -> S:
        return self._state

    @property
    def logid(self) -> str | None:
        """The connection's ``logid`` (from the service's ``detail``), once seen."""
        return self._logid

    def data_to_send(self) -> list[str]:
        """Text frames to write to the socket, in order. Call after every input method."""
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[Out]:
        """What the caller must act on, in order. Call after every input method."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ for subclasses

    def _decode(self, frame: str | bytes) -> Event | None:
        """Decode one frame; ``None`` for an unknown event (reported once).

        Raises:
            RemoteProtocolError: the frame is malformed; nothing has changed.
        """
        event = decode_with(frame, self.SERVER_EVENTS)
        if isinstance(event, UnknownEvent):
            self._notice_once(f"unknown event type {event.unknown_type!r} ignored")
            return None
        if event.detail is not None and event.detail.logid:
            self._logid = event.detail.logid
        self._trace("< %s", event.event_type)
        extra = unknown_fields(event)
        if extra:
            self._notice_once(f"{event.event_type} carried unknown fields: {', '.join(extra)}")
        return event

    def _send(self, cls: type[ClientEvent], **fields: Any) -> None:
        event = cls(id=self._ids.next(), **fields)
        self._out.append(encode(event))
        self._trace("> %s", event.event_type)

    def _move(self, trigger: str) -> bool:
        new = self.TRANSITIONS.get((self._state, trigger))
        if new is None:
            return False
        self._state = new
        self._trace("= %s (%s)", new.value, trigger)
        return True

    def _notice_once(self, message: str) -> None:
        if message in self._reported:
            return
        if len(self._reported) >= _NOTICE_MEMORY:
            self._reported.clear()
        self._reported.add(message)
        self._events.append(Notice(message))

    def _trace(self, msg: str, *args: object) -> None:
        if self._debug:
            self.LOG.debug(msg, *args)
