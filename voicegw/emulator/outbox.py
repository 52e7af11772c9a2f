"""Server events waiting for their due time, and the output streams they belong to.

Everything the emulator sends is queued here with a due time (from the ``now`` of the input
that caused it, plus the pacing of :mod:`.pacing`). Events of one reply carry a tag, so
interrupting the reply (spec 2.6.6) drops exactly its events that are not yet due.

Time semantics: at time ``now``, an event due at or before ``now`` counts as already sent, even
if :meth:`Outbox.pop_due` has not handed it out yet. So an interruption at ``now`` keeps those
events (they go out first) and drops only later ones; a stream is *in flight* while its last
event is due after ``now`` or while its chat waits for tool outputs (spec 2.6.7).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ..protocol.events import ServerEvent
from ..protocol.objects import ToolCall
from .bots import ToolRequest
from .turns import ChatContext, Timed

__all__ = ["Outbox", "Queued", "Stream"]


@dataclass(slots=True)
class Queued:
    """One queued event: its stream tag and, for errors, the client frame that caused it."""

    tag: str | None
    event: ServerEvent
    origin: str | None


@dataclass(slots=True)
class Stream:
    """Output in flight: a chat's reply (``kind="chat"``) or TTS-only audio (``"tts"``)."""

    tag: str
    kind: str
    ctx: ChatContext
    end: float = 0.0
    awaiting: ToolCall | None = None
    request: ToolRequest | None = None
    question: str = ""


class Outbox:
    """A time-ordered queue of server events (ties keep insertion order)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Queued]] = []
        self._seq = 0
        #: Output streams by tag; finished ones are forgotten by :meth:`in_flight`.
        self.streams: dict[str, Stream] = {}

    def push(
        self, t: float, event: ServerEvent, tag: str | None = None, origin: str | None = None
    ) -> None:
        """Queue ``event`` to be sent at ``t``."""
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, Queued(tag, event, origin)))

    def add_stream(self, stream: Stream, timed: Timed) -> None:
        """Queue a stream's events and track it until its last event is due."""
        for t, ev in timed:
            self.push(t, ev, stream.tag)
            stream.end = max(stream.end, t)
        self.streams[stream.tag] = stream

    def pop_due(self, now: float) -> list[Queued]:
        """Every event due at or before ``now``, in order."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def next_deadline(self) -> float | None:
        """Due time of the next event, or ``None``."""
        return self._heap[0][0] if self._heap else None

    def in_flight(self, now: float) -> list[Stream]:
        """Streams still sending after ``now`` or waiting for tool outputs."""
        for tag, s in list(self.streams.items()):
            if s.awaiting is None and s.end <= now:
                del self.streams[tag]
        return list(self.streams.values())

    def stop(self, streams: list[Stream], now: float) -> None:
        """Forget ``streams`` and drop their events due after ``now``."""
        tags = {s.tag for s in streams}
        self._heap = [x for x in self._heap if x[2].tag not in tags or x[0] <= now]
        heapq.heapify(self._heap)
        for s in streams:
            self.streams.pop(s.tag, None)
