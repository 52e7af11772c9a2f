"""Fault injection for the emulator: what to break on a connection, and when.

A :class:`FaultPlan` says which faults one connection gets. It is parsed from a compact
string (the CLI's ``--fault SPEC``)::

    FaultPlan.parse("close_at=12,abrupt=true")
    FaultPlan.parse("refuse=429")
    FaultPlan.parse("error_at=3:4028")
    FaultPlan.parse("on=2,silent")        # only the second connection

A spec is comma-separated items, each ``key=value`` or a bare flag (``silent``, ``no_pong``,
``close_mid_reply``, ``abrupt``; ``flag=true|false`` works too). Event positions ``N`` count
the text frames the emulator sends on the connection, from 1, injected frames included.

:class:`FaultRun` is the per-connection, sans-I/O bookkeeping the server consults around each
frame it sends: which frame to inject next, and whether to close after a frame.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "DEFAULT_OVERSIZED_BYTES",
    "ERROR_MESSAGES",
    "REFUSALS",
    "CloseAction",
    "FaultPlan",
    "FaultRun",
    "plan_for",
]

#: Size of the ``oversized_at`` frame unless ``oversized_bytes`` says otherwise.
DEFAULT_OVERSIZED_BYTES = 2 * 1024 * 1024

#: ``refuse=STATUS``: status -> (reason phrase, body ``code``, body ``msg``) (spec 1.4).
REFUSALS: dict[int, tuple[str, int, str]] = {
    400: ("Bad Request", 4000, "bad request"),
    401: ("Unauthorized", 4100, "authentication is invalid"),
    403: ("Forbidden", 4101, "permission denied"),
    404: ("Not Found", 4200, "not found"),
    429: ("Too Many Requests", 4013, "too many requests"),
    500: ("Internal Server Error", 5000, "internal server error"),
    502: ("Bad Gateway", 5000, "internal server error"),
    503: ("Service Unavailable", 5000, "service unavailable"),
}

#: ``error_at=N:CODE``: the documented error codes and the ``msg`` sent with each (spec 6).
ERROR_MESSAGES: dict[int, str] = {
    1: "发生异常",
    3010: "text too long: the limit is 1024 bytes",
    4000: "bad request",
    4013: "too many requests",
    4027: "account overdue",
    4028: "insufficient credits",
    4029: "closed for prolonged inactivity",
    4100: "authentication is invalid",
    4101: "permission denied",
    4200: "not found",
}

#: Error codes after which the service closes the connection (spec 1.8).
CLOSING_ERRORS = frozenset({4027, 4028})

_FLAGS = ("silent", "no_pong", "close_mid_reply", "abrupt")
_POSITIONS = ("close_at", "malformed_at", "unknown_event_at", "wrong_type_at", "oversized_at")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults one connection gets; the default plan injects nothing.

    Attributes:
        refuse: refuse the upgrade with this HTTP status (a key of :data:`REFUSALS`).
        silent: accept, but never send anything (not even ``chat.created``) and ignore input.
        close_at: close right after the N-th frame sent.
        close_mid_reply: close right after the first ``conversation.audio.delta`` sent.
        close_code: close code for the closes above and after 4027/4028 errors.
        abrupt: close by dropping TCP (``transport.abort()``) instead of a close frame.
        no_pong: never answer the client's pings (the pongs websockets sends are dropped);
            everything else keeps working.
        stall_reads: stop reading from the socket for this many seconds after the handshake.
        throttle_reads: read at about this many bytes per second.
        malformed_at: the N-th frame is not JSON.
        unknown_event_at: the N-th frame is an ``x.future_event`` event.
        wrong_type_at: the N-th frame is ``conversation.chat.created`` with
            ``"created_at": "soon"``.
        oversized_at: the N-th frame is valid JSON of exactly ``oversized_bytes`` bytes.
        oversized_bytes: size of that frame.
        error_at: ``(N, CODE)``: the N-th frame is an ``error`` event with that code (a key
            of :data:`ERROR_MESSAGES`); 4027 and 4028 are followed by a close.
        on: 1-based connection indexes the plan applies to; empty means every connection
            (used by :func:`plan_for`).
    """

    refuse: int | None = None
    silent: bool = False
    close_at: int | None = None
    close_mid_reply: bool = False
    close_code: int = 1011
    abrupt: bool = False
    no_pong: bool = False
    stall_reads: float | None = None
    throttle_reads: int | None = None
    malformed_at: int | None = None
    unknown_event_at: int | None = None
    wrong_type_at: int | None = None
    oversized_at: int | None = None
    oversized_bytes: int = DEFAULT_OVERSIZED_BYTES
    error_at: tuple[int, int] | None = None
    on: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.refuse is not None and self.refuse not in REFUSALS:
            raise ValueError(f"refuse={self.refuse}: status must be one of {sorted(REFUSALS)}")
        for name in _POSITIONS:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value}: positions count from 1")
        if not _valid_close_code(self.close_code):
            raise ValueError(f"close_code={self.close_code}: not a code a server may send")
        if self.stall_reads is not None and not self.stall_reads > 0:
            raise ValueError(f"stall_reads={self.stall_reads}: seconds must be positive")
        if self.throttle_reads is not None and self.throttle_reads < 1:
            raise ValueError(f"throttle_reads={self.throttle_reads}: bytes/s must be positive")
        if self.oversized_bytes < 256:
            raise ValueError(f"oversized_bytes={self.oversized_bytes}: at least 256")
        if self.error_at is not None:
            at, code = self.error_at
            if at < 1:
                raise ValueError(f"error_at={at}:{code}: positions count from 1")
            if code not in ERROR_MESSAGES:
                raise ValueError(
                    f"error_at={at}:{code}: code must be one of {sorted(ERROR_MESSAGES)}"
                )
        if any(i < 1 for i in self.on):
            raise ValueError("on: connection indexes count from 1")

    @property
    def active(self) -> bool:
        """Whether the plan injects anything (``on`` aside)."""
        return dataclasses.replace(self, on=frozenset()) != FaultPlan()

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Parse ``key=value,flag,...`` (see the module docstring).

        Raises:
            ValueError: naming the item that is wrong and why.
        """
        values: dict[str, Any] = {}
        items = [item.strip() for item in spec.split(",")]
        if not spec.strip():
            raise ValueError("empty fault spec")
        for item in items:
            if not item:
                raise ValueError(f"empty item in fault spec {spec!r}")
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            try:
                values[key] = _parse_value(key, raw if sep else None)
            except ValueError as exc:
                raise ValueError(f"bad fault item {item!r}: {exc}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from None

    def merged(self, other: FaultPlan) -> FaultPlan:
        """This plan with every field ``other`` sets (differs from the default) overriding."""
        changes = {
            f.name: getattr(other, f.name)
            for f in dataclasses.fields(other)
            if getattr(other, f.name) != f.default
        }
        return dataclasses.replace(self, **changes)


def _parse_value(key: str, raw: str | None) -> Any:
    if key in _FLAGS:
        if raw is None or raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{key} takes true or false, not {raw!r}")
    if raw is None or raw == "":
        known = ", ".join(f.name for f in dataclasses.fields(FaultPlan))
        if key not in {f.name for f in dataclasses.fields(FaultPlan)}:
            raise ValueError(f"unknown fault {key!r} (known: {known})")
        raise ValueError(f"{key} needs a value ({key}=...)")
    if key in (*_POSITIONS, "refuse", "close_code", "throttle_reads", "oversized_bytes"):
        return _int(key, raw)
    if key == "stall_reads":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"stall_reads takes seconds, not {raw!r}") from None
    if key == "error_at":
        at, sep, code = raw.partition(":")
        if not sep:
            raise ValueError(f"error_at takes N:CODE, not {raw!r}")
        return (_int("error_at position", at), _int("error_at code", code))
    if key == "on":
        return frozenset(_int("on", part) for part in raw.split("+"))
    known = ", ".join(f.name for f in dataclasses.fields(FaultPlan))
    raise ValueError(f"unknown fault {key!r} (known: {known})")


def _int(what: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{what} takes an integer, not {raw!r}") from None


def plan_for(index: int, plans: Sequence[FaultPlan]) -> FaultPlan:
    """Merge, in order, the ``plans`` that apply to connection ``index`` (1-based)."""
    out = FaultPlan()
    for plan in plans:
        if not plan.on or index in plan.on:
            out = out.merged(dataclasses.replace(plan, on=frozenset()))
    return out


FaultSource = FaultPlan | Sequence[FaultPlan] | Callable[[int], FaultPlan]


def resolve(source: FaultSource | None, index: int) -> FaultPlan:
    """The plan for connection ``index`` from whatever the emulator was given."""
    if source is None:
        return FaultPlan()
    if isinstance(source, FaultPlan):
        return plan_for(index, [source])
    if callable(source):
        return source(index)
    return plan_for(index, source)


@dataclass(frozen=True, slots=True)
class CloseAction:
    """Close the connection now: with ``code``, or by dropping TCP when ``abrupt``."""

    code: int
    abrupt: bool
    reason: str


class FaultRun:
    """One connection's progress through its :class:`FaultPlan` (sans-I/O).

    The server calls :meth:`next_injection` until it returns ``None`` before and after every
    frame, sends what it returns, and calls :meth:`after_send` for every frame it sent
    (injected or not), closing when that returns a :class:`CloseAction`.
    """

    def __init__(
        self,
        plan: FaultPlan,
        *,
        logid: str,
        bot_id: str,
        wall_clock: Callable[[], float] = time.time,
        injected: list[str] | None = None,
    ) -> None:
        self.plan = plan
        self.logid = logid
        self.bot_id = bot_id
        self._wall = wall_clock
        #: Frames sent so far.
        self.count = 0
        #: Labels of the faults injected, in order (shared with the connection's record).
        self.injected: list[str] = injected if injected is not None else []
        self._done: set[str] = set()
        self._mid_reply_done = False

    def note(self, label: str) -> None:
        """Record a fault the server carried out itself (refusal, silence, read stalls)."""
        self.injected.append(label)

    def _detail(self) -> dict[str, str]:
        return {"logid": self.logid, "respond_at": str(int(self._wall() * 1000))}

    def _due(self, name: str, at: int | None) -> bool:
        return at is not None and at == self.count + 1 and name not in self._done

    def next_injection(self) -> tuple[str, str] | None:
        """``(label, frame text)`` to send as the next frame, or ``None``."""
        p = self.plan
        if self._due("malformed_at", p.malformed_at):
            return self._take("malformed_at", '{"event_type": "conversation.audio.delta", "id": ')
        if self._due("unknown_event_at", p.unknown_event_at):
            event = {
                "event_type": "x.future_event",
                "id": str(uuid.uuid4()),
                "data": {"note": "an event type from a newer protocol version"},
                "detail": self._detail(),
            }
            return self._take("unknown_event_at", orjson.dumps(event).decode())
        if self._due("wrong_type_at", p.wrong_type_at):
            chat_id = str(7_000_000_000_000_000_000 + uuid.uuid4().int % 10**18)
            event = {
                "event_type": "conversation.chat.created",
                "id": str(uuid.uuid4()),
                "data": {
                    "id": chat_id,
                    "conversation_id": chat_id,
                    "bot_id": self.bot_id,
                    "created_at": "soon",
                    "status": "created",
                },
                "detail": self._detail(),
            }
            return self._take("wrong_type_at", orjson.dumps(event).decode())
        if self._due("oversized_at", p.oversized_at):
            return self._take("oversized_at", self._oversized())
        if p.error_at is not None and self._due("error_at", p.error_at[0]):
            code = p.error_at[1]
            event = {
                "event_type": "error",
                "id": str(uuid.uuid4()),
                "data": {"code": code, "msg": ERROR_MESSAGES[code]},
                "detail": self._detail(),
            }
            return self._take("error_at", orjson.dumps(event).decode(), f"error_at={code}")
        return None

    def _take(self, name: str, text: str, label: str | None = None) -> tuple[str, str]:
        self._done.add(name)
        return label or name, text

    def _oversized(self) -> str:
        event: dict[str, object] = {
            "event_type": "x.oversized_event",
            "id": str(uuid.uuid4()),
            "data": {"padding": ""},
            "detail": self._detail(),
        }
        empty = len(orjson.dumps(event))
        event["data"] = {"padding": "x" * (self.plan.oversized_bytes - empty)}
        return orjson.dumps(event).decode()

    def after_send(self, text: str, label: str | None = None) -> CloseAction | None:
        """Count a frame just sent (``label`` when it was injected); say whether to close."""
        self.count += 1
        p = self.plan
        if label is not None:
            self.injected.append(f"{label}@{self.count}")
            if label == "error_at" or label.startswith("error_at="):
                assert p.error_at is not None
                if p.error_at[1] in CLOSING_ERRORS:
                    return self._close(f"closed after error {p.error_at[1]}")
        if p.close_at is not None and self.count == p.close_at:
            return self._close(f"close_at={p.close_at}")
        if (
            p.close_mid_reply
            and not self._mid_reply_done
            and text.startswith('{"event_type":"conversation.audio.delta"')
        ):
            self._mid_reply_done = True
            return self._close("close_mid_reply")
        return None

    def _close(self, label: str) -> CloseAction:
        how = "abort" if self.plan.abrupt else str(self.plan.close_code)
        self.injected.append(f"{label}:{how}")
        return CloseAction(self.plan.close_code, self.plan.abrupt, "fault injected")


def describe(plan: FaultPlan) -> Iterable[str]:
    """``key=value`` for every field that differs from the default (for logs)."""
    for f in dataclasses.fields(plan):
        value = getattr(plan, f.name)
        if value != f.default:
            yield f"{f.name}={value}"
