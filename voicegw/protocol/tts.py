"""Streaming TTS, ``/v1/audio/speech`` (spec 4): its events and a sans-I/O client session.

Events share the ``/v1/chat`` envelope and codec (:mod:`.wire`, :func:`.wire.decode_with`),
and ``speech.update`` carries the shared :class:`~.objects.OutputAudio` (spec 2.2.2).
``conversation.audio.sentence_start`` is not in the TTS docs but appears in real TTS traffic
(spec 4.2, 9.22): it is decoded and passed on as a subtitle, never required.

:class:`TtsSession` mirrors the chat :class:`~.session.Session`, smaller: the caller feeds it
every text frame (:meth:`TtsSession.receive_text`), writes :meth:`TtsSession.data_to_send`
after each call and acts on :meth:`TtsSession.events_received`. It never does I/O.

Choices where the spec is silent (INFERRED):

* **1024 bytes per request** (spec 4, error 3010). :func:`split_text` cuts longer text into
  pieces of at most :data:`MAX_TEXT_BYTES` UTF-8 bytes, at the coarsest boundary that fits:
  sentence ends, then clause punctuation, then whitespace, then characters (never inside a
  UTF-8 sequence, and never just before a combining mark when another cut fits). Pieces are
  packed greedily, so short sentences share a request.
* **No wait for ``speech.created``.** The first frames (``speech.update``, or the first text
  when no update is needed) are queued at once: recorded traffic shows the service accepting
  client frames before its ``speech.created`` (spec 4.2), and a client that waited would
  depend on the service sending it unprompted. Text still waits for ``speech.updated``, so
  the configured voice and format apply to all of it.
* **Several requests per connection.** Whether one connection may synthesise several texts is
  undocumented (spec 4.2). Each piece is its own request (one ``input_text_buffer.append``
  and ``input_text_buffer.complete``), and the next piece is sent only after the previous
  one's ``speech.audio.completed``, on the same connection. If the service closes the
  connection between requests (as SDKs that close after ``completed`` would expect), the
  caller opens a new one for :attr:`TtsSession.pending` (see :mod:`voicegw.io.speech_api`).
  Sending pieces in order and one at a time keeps the audio in text order without relying on
  any undocumented queueing.
* ``context_texts`` is a list of strings (spec 9.2 leaves list-or-string open; the TTS doc's
  table wording suggests a list).
* Any ``error`` event fails the session: a refused piece (3010) or configuration (4000) would
  leave a hole in the speech, so nothing more is sent.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Final, TypeAlias

from ..errors import LocalProtocolError, RemoteProtocolError
from .events import (
    ClientEvent,
    ConversationAudioSentenceStart,
    Error,
    ServerEvent,
)
from .objects import OutputAudio
from .outputs import Notice, ServerError
from .schema import decode_object, encode_object, spec_field
from .service import ServiceSession

__all__ = [
    "MAX_TEXT_BYTES",
    "TTS_CLIENT_EVENTS",
    "TTS_SERVER_EVENTS",
    "TTS_TRANSITIONS",
    "AudioChunk",
    "InputTextBufferAppend",
    "InputTextBufferComplete",
    "InputTextBufferCompleted",
    "PieceCompleted",
    "SentenceStart",
    "SpeechAudioCompleted",
    "SpeechAudioUpdate",
    "SpeechCreated",
    "SpeechFinished",
    "SpeechUpdate",
    "SpeechUpdateData",
    "SpeechUpdated",
    "TtsEvent",
    "TtsReady",
    "TtsSession",
    "TtsState",
    "split_text",
    "utf8_len",
]

_LOG = logging.getLogger(__name__)

#: The service's text limit per request, UTF-8 bytes (spec 4, error 3010 beyond it).
MAX_TEXT_BYTES: Final = 1024


# ---------------------------------------------------------------- events (spec 4.1, 4.2)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechUpdateData:
    """``data`` of ``speech.update`` and ``speech.updated``."""

    output_audio: OutputAudio | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechUpdate(ClientEvent):
    """Set the voice and output format; answered by ``speech.updated`` or ``error``."""

    event_type: ClassVar[str] = "speech.update"
    data_field: ClassVar[str | None] = "config"
    config: SpeechUpdateData = field(default_factory=SpeechUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputTextBufferAppend(ClientEvent):
    """Text to speak; a request's appends together hold at most 1024 UTF-8 bytes."""

    event_type: ClassVar[str] = "input_text_buffer.append"
    delta: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputTextBufferComplete(ClientEvent):
    """End of the request's text: synthesis starts."""

    event_type: ClassVar[str] = "input_text_buffer.complete"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechCreated(ServerEvent):
    """First event of a connection."""

    event_type: ClassVar[str] = "speech.created"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechUpdated(ServerEvent):
    """The effective configuration (``speech_rate`` and ``voice_id`` always present)."""

    event_type: ClassVar[str] = "speech.updated"
    data_field: ClassVar[str | None] = "config"
    config: SpeechUpdateData = field(default_factory=SpeechUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputTextBufferCompleted(ServerEvent):
    """Acknowledges ``input_text_buffer.complete``; audio follows."""

    event_type: ClassVar[str] = "input_text_buffer.completed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechAudioUpdate(ServerEvent):
    """One chunk of audio in the configured codec (base64 on the wire)."""

    event_type: ClassVar[str] = "speech.audio.update"
    delta: bytes = spec_field(required=True)

    def __repr__(self) -> str:  # never print audio
        return f"SpeechAudioUpdate(id={self.id!r}, delta=<{len(self.delta)} bytes>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechAudioCompleted(ServerEvent):
    """All audio of the request has been sent (not played)."""

    event_type: ClassVar[str] = "speech.audio.completed"


TTS_CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    cls.event_type: cls for cls in (SpeechUpdate, InputTextBufferAppend, InputTextBufferComplete)
}

TTS_SERVER_EVENTS: dict[str, type[ServerEvent]] = {
    cls.event_type: cls
    for cls in (
        SpeechCreated,
        SpeechUpdated,
        InputTextBufferCompleted,
        ConversationAudioSentenceStart,
        SpeechAudioUpdate,
        SpeechAudioCompleted,
        Error,
    )
}


# ---------------------------------------------------------------- text splitting


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes."""
    return len(text.encode("utf-8"))


# Each pattern matches the separator *after* which a cut may go (the separator stays with the
# text before it). Sentence ends need whitespace after ASCII punctuation ("3.14" is not a
# sentence end); CJK full stops end a sentence on their own.
_SENTENCE: Final = re.compile(r"[.!?…]+[\"'”’)\]»]*\s+|[。！？]+[”’」』）]*\s*|\n\s*")
_CLAUSE: Final = re.compile(r"[,;:]+[\"'”’)\]]*\s+|[、，；：]\s*|\s[-–—]+\s")
_WORD: Final = re.compile(r"\s+")


def _cut(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        if m.end() > pos:
            parts.append(text[pos : m.end()])
            pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def _cut_chars(text: str, limit: int) -> list[str]:
    parts: list[str] = []
    start = 0
    size = 0
    for i, ch in enumerate(text):
        n = utf8_len(ch)
        if size + n > limit and i > start:
            cut = i
            # Keep a base character with its combining marks when an earlier cut exists.
            while (
                cut > start + 1 and _joins(text[cut]) and utf8_len(text[cut - 1 : i + 1]) <= limit
            ):
                cut -= 1
            parts.append(text[start:cut])
            start = cut
            size = utf8_len(text[cut:i])
        size += n
    parts.append(text[start:])
    return parts


def _joins(ch: str) -> bool:
    return bool(unicodedata.combining(ch)) or ch in "\u200d\ufe0e\ufe0f"


_LEVELS: Final = (_SENTENCE, _CLAUSE, _WORD)


def _units(text: str, limit: int, level: int) -> list[str]:
    if utf8_len(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return _cut_chars(text, limit)
    out: list[str] = []
    for part in _cut(text, _LEVELS[level]):
        out.extend(_units(part, limit, level + 1))
    return out


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` UTF-8 bytes, at natural boundaries.

    Boundaries are tried coarsest first: sentence ends (``. ! ? …`` followed by whitespace,
    ``。！？``, line breaks), clause punctuation (``, ; :``, ``、，；：``, dashes), whitespace,
    and finally characters. Units are packed greedily into pieces; each piece is stripped of
    surrounding whitespace and empty pieces are dropped. Joining the pieces with the
    whitespace they lost gives back the text.

    Raises:
        ValueError: ``limit`` is below 4 (one UTF-8 character must always fit).
    """
    if limit < 4:
        raise ValueError(f"limit must be at least 4 bytes, got {limit}")
    pieces: list[str] = []
    current = ""
    for unit in _units(text, limit, 0):
        if current and utf8_len(current) + utf8_len(unit) > limit:
            pieces.append(current)
            current = ""
        current += unit
    pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


# ---------------------------------------------------------------- session outputs


@dataclass(frozen=True, slots=True)
class TtsReady:
    """The service confirmed the configuration (``speech.updated``; ``None`` if none was sent)."""

    output_audio: OutputAudio | None


@dataclass(frozen=True, slots=True)
class SentenceStart:
    """Subtitle: the audio that follows speaks ``text`` (``conversation.audio.sentence_start``)."""

    text: str
    piece: int


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio of piece ``piece`` in the configured codec, in arrival order."""

    data: bytes
    piece: int

    def __repr__(self) -> str:
        return f"AudioChunk(<{len(self.data)} bytes>, piece={self.piece})"


@dataclass(frozen=True, slots=True)
class PieceCompleted:
    """``speech.audio.completed`` for piece ``piece`` (0-based, in :attr:`TtsSession.pieces`)."""

    piece: int


@dataclass(frozen=True, slots=True)
class SpeechFinished:
    """Every queued piece has been synthesised."""


TtsEvent: TypeAlias = (
    TtsReady | SentenceStart | AudioChunk | PieceCompleted | SpeechFinished | ServerError | Notice
)


# ---------------------------------------------------------------- state machine


class TtsState(Enum):
    CONFIGURING = "CONFIGURING"  # speech.update sent, speech.updated awaited
    READY = "READY"  # idle: the next piece may be sent
    SPEAKING = "SPEAKING"  # a piece is in flight
    FAILED = "FAILED"
    CLOSED = "CLOSED"


_T = TtsState
#: Legal transitions; triggers are wire event types or ``=name`` for local causes.
TTS_TRANSITIONS: Final[dict[tuple[TtsState, str], TtsState]] = {
    (_T.CONFIGURING, "speech.updated"): _T.READY,
    (_T.READY, "speech.updated"): _T.READY,
    (_T.SPEAKING, "speech.updated"): _T.SPEAKING,
    (_T.READY, "input_text_buffer.complete"): _T.SPEAKING,
    (_T.SPEAKING, "speech.audio.completed"): _T.READY,
    **{(s, "error"): _T.FAILED for s in (_T.CONFIGURING, _T.READY, _T.SPEAKING)},
    **{(s, "=lost"): _T.CLOSED for s in TtsState},
}


class TtsSession(ServiceSession[TtsState, "TtsEvent"]):
    """Client side of one ``/v1/audio/speech`` connection.

    Args:
        output_audio: what ``speech.update`` sends (the first frame, queued at once);
            ``None`` sends no update and uses the service's defaults (pcm, 24 kHz), and the
            first text goes out at once.
        texts: text to speak, split with :func:`split_text` (more with :meth:`speak`).
        pieces: text already split (each at most 1024 bytes), queued before ``texts``: what
            :attr:`pending` of a closed session left, for a new connection.
        debug: log one line per frame and transition at debug level.

    Raises:
        LocalProtocolError: ``output_audio`` breaks a documented range (names the field).
    """

    TRANSITIONS = TTS_TRANSITIONS
    SERVER_EVENTS = TTS_SERVER_EVENTS
    LOG = _LOG

    def __init__(
        self,
        output_audio: OutputAudio | None = None,
        *,
        texts: Sequence[str] = (),
        pieces: Sequence[str] = (),
        debug: bool = False,
    ) -> None:
        if output_audio is not None:
            try:
                decode_object(OutputAudio, encode_object(output_audio), "output_audio")
            except RemoteProtocolError as exc:
                raise LocalProtocolError(
                    f"invalid configuration: {exc.reason}",
                    event_type="speech.update",
                    path=exc.path,
                ) from None
        super().__init__(
            TtsState.CONFIGURING if output_audio is not None else TtsState.READY, debug=debug
        )
        self._created = False
        #: Every piece queued so far, in order.
        self.pieces: list[str] = []
        self._next = 0  # index of the next piece to send
        self._current: int | None = None  # piece in flight
        self._started = False  # audio or a subtitle of the piece in flight arrived
        self._finished_sent = True
        self._effective: OutputAudio | None = None
        for piece in pieces:
            if not piece.strip() or utf8_len(piece) > MAX_TEXT_BYTES:
                raise LocalProtocolError(
                    f"a piece must hold 1-{MAX_TEXT_BYTES} UTF-8 bytes, got {utf8_len(piece)}"
                )
        self.pieces.extend(pieces)
        self._finished_sent = not self.pieces
        if output_audio is not None:
            self._send(SpeechUpdate, config=SpeechUpdateData(output_audio=output_audio))
        else:
            self._events.append(TtsReady(None))
        for text in texts:
            self.speak(text)
        self._send_next()

    # ------------------------------------------------------------ state

    @property
    def effective_output(self) -> OutputAudio | None:
        """``output_audio`` of the last ``speech.updated``."""
        return self._effective

    @property
    def pending(self) -> list[str]:
        """Pieces not yet completed (the one in flight first), for a new connection."""
        first = self._current if self._current is not None else self._next
        return self.pieces[first:]

    @property
    def in_flight_started(self) -> bool:
        """Audio of the piece in flight has arrived: it cannot be resent without repeating."""
        return self._current is not None and self._started

    @property
    def completed(self) -> int:
        """How many pieces were completed on this connection."""
        return self._next if self._current is None else self._current

    @property
    def finished(self) -> bool:
        """Every queued piece was synthesised."""
        return self._current is None and self._next == len(self.pieces)

    # ------------------------------------------------------------ outputs

    def close_expected(self) -> bool:
        """True once the session FAILED or finished: the caller may close the connection."""
        return self._state in (TtsState.FAILED, TtsState.CLOSED) or (
            self._state is TtsState.READY and self.finished
        )

    # ------------------------------------------------------------ inputs

    def speak(self, text: str) -> list[str]:
        """Queue ``text`` (split into pieces of at most 1024 bytes); returns the new pieces.

        Raises:
            LocalProtocolError: the session FAILED or CLOSED, or ``text`` has nothing to say.
        """
        if self._state in (TtsState.FAILED, TtsState.CLOSED):
            raise LocalProtocolError(f"speak() while {self._state.value}")
        new = split_text(text)
        if not new:
            raise LocalProtocolError("speak() with empty text: nothing to synthesise")
        self.pieces.extend(new)
        self._finished_sent = False
        self._send_next()
        return new

    def receive_text(self, frame: str | bytes) -> None:
        """Feed one text frame from the service.

        Raises:
            RemoteProtocolError: the frame is malformed; the session is unchanged.
            LocalProtocolError: the connection was already reported lost.
        """
        if self._state is TtsState.CLOSED:
            raise LocalProtocolError("receive_text() after connection_lost()")
        event = self._decode(frame)
        if event is None:
            return
        match event:
            case SpeechCreated():
                if self._created:
                    self._notice_once("speech.created arrived twice")
                self._created = True
            case SpeechUpdated():
                first = self._state is TtsState.CONFIGURING
                self._effective = event.config.output_audio
                if not self._move("speech.updated"):
                    self._notice_once(f"speech.updated ignored while {self._state.value}")
                    return
                if first:
                    self._events.append(TtsReady(self._effective))
                    self._send_next()
            case ConversationAudioSentenceStart():
                if self._current is None:
                    self._notice_once("sentence_start outside a request ignored")
                    return
                self._started = True
                self._events.append(SentenceStart(event.text, self._current))
            case SpeechAudioUpdate():
                if self._current is None:
                    self._notice_once("speech.audio.update outside a request ignored")
                    return
                self._started = True
                if event.delta:
                    self._events.append(AudioChunk(event.delta, self._current))
            case SpeechAudioCompleted():
                if self._current is None or not self._move("speech.audio.completed"):
                    self._notice_once(f"speech.audio.completed while {self._state.value}")
                    return
                self._events.append(PieceCompleted(self._current))
                self._current = None
                self._started = False
                self._send_next()
            case InputTextBufferCompleted():
                if self._current is None:
                    self._notice_once("input_text_buffer.completed outside a request")
            case Error():
                self._move("error")
                self._events.append(ServerError(event.code, event.msg, fatal=True))
            case _:  # pragma: no cover - the table holds only the cases above
                pass

    def connection_lost(self) -> None:
        """Report that the transport closed; :attr:`pending` says what is left to speak."""
        self._move("=lost")

    # ------------------------------------------------------------ helpers

    def _send_next(self) -> None:
        if self._state is not TtsState.READY or self._current is not None:
            return
        if self._next >= len(self.pieces):
            if not self._finished_sent:
                self._finished_sent = True
                self._events.append(SpeechFinished())
            return
        self._current = self._next
        self._next += 1
        self._started = False
        self._send(InputTextBufferAppend, delta=self.pieces[self._current])
        self._send(InputTextBufferComplete)
        self._move("input_text_buffer.complete")

    def _send(self, cls: type[ClientEvent], **fields: Any) -> None:
        if cls is InputTextBufferAppend:
            # The trace shows the size of the text, never the text.
            self._trace("(%d bytes of text)", utf8_len(str(fields.get("delta", ""))))
        super()._send(cls, **fields)
