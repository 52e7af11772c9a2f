"""Streaming ASR, ``/v1/audio/transcriptions`` (spec 5): its events and a sans-I/O session.

Events share the ``/v1/chat`` envelope and codec (:func:`.wire.decode_with`), and
``transcriptions.update`` carries the shared :class:`~.objects.InputAudio` (spec 2.2.1) and
:class:`~.objects.ASRConfig` (spec 2.2.5, 5.1). ``input_audio_buffer.append``/``complete``/
``clear`` and their acknowledgements are the chat API's own event classes.

:class:`AsrSession` mirrors the chat :class:`~.session.Session`, smaller: feed it every text
frame (:meth:`AsrSession.receive_text`) and every audio payload (:meth:`AsrSession.send_audio`),
write :meth:`AsrSession.data_to_send` after each call, act on
:meth:`AsrSession.events_received`. It never does I/O.

Choices (INFERRED where the spec is silent):

* ``transcriptions.update`` is the first frame, queued at once, without waiting for
  ``transcriptions.created``: recorded traffic shows the service accepting client frames
  before it (spec 5.2), and waiting would depend on the service sending it unprompted;
* audio appended before ``transcriptions.updated`` confirms the format is held (at most
  ``max_pending_bytes``, oldest dropped and counted) and sent right after it, so a microphone
  may start before the handshake ends without the service misreading raw PCM as WAV;
* each ``transcriptions.message.update`` carries the whole hypothesis (spec 5.2): the session
  reports it as an interim :class:`Transcript`; ``transcriptions.message.completed`` makes the
  last hypothesis final (or its own ``content``, which [JS] types, when present);
* one utterance per session: after the final transcript the session is DONE;
* any ``error`` fails the session.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Final, TypeAlias

from ..errors import LocalProtocolError, RemoteProtocolError
from .events import (
    ClientEvent,
    Error,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferComplete,
    InputAudioBufferCompleted,
    ServerEvent,
)
from .objects import ASRConfig, InputAudio
from .outputs import Notice, ServerError
from .schema import decode_object, encode_object, spec_field
from .service import ServiceSession
from .wire import encode_append

__all__ = [
    "ASR_CLIENT_EVENTS",
    "ASR_SERVER_EVENTS",
    "ASR_TRANSITIONS",
    "AsrEvent",
    "AsrReady",
    "AsrSession",
    "AsrState",
    "Transcript",
    "TranscriptionsCreated",
    "TranscriptionsMessageCompleted",
    "TranscriptionsMessageUpdate",
    "TranscriptionsUpdate",
    "TranscriptionsUpdateData",
    "TranscriptionsUpdated",
]

_LOG = logging.getLogger(__name__)


# ---------------------------------------------------------------- events (spec 5.1, 5.2)


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionsUpdateData:
    """``data`` of ``transcriptions.update`` and ``transcriptions.updated``."""

    input_audio: InputAudio | None = None
    asr_config: ASRConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionsUpdate(ClientEvent):
    """Set the input format and recognition options."""

    event_type: ClassVar[str] = "transcriptions.update"
    data_field: ClassVar[str | None] = "config"
    config: TranscriptionsUpdateData = field(default_factory=TranscriptionsUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionsCreated(ServerEvent):
    """First event of a connection."""

    event_type: ClassVar[str] = "transcriptions.created"


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionsUpdated(ServerEvent):
    """The effective input format (all five ``input_audio`` fields)."""

    event_type: ClassVar[str] = "transcriptions.updated"
    data_field: ClassVar[str | None] = "config"
    config: TranscriptionsUpdateData = field(default_factory=TranscriptionsUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionsMessageUpdate(ServerEvent):
    """The whole hypothesis so far (interim, or the final text before ``completed``)."""

    event_type: ClassVar[str] = "transcriptions.message.update"
    content: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionsMessageCompleted(ServerEvent):
    """Recognition finished (no data per the doc; [JS] types a ``content``)."""

    event_type: ClassVar[str] = "transcriptions.message.completed"
    content: str | None = None


ASR_CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    cls.event_type: cls
    for cls in (
        TranscriptionsUpdate,
        InputAudioBufferAppend,
        InputAudioBufferComplete,
        InputAudioBufferClear,
    )
}

ASR_SERVER_EVENTS: dict[str, type[ServerEvent]] = {
    cls.event_type: cls
    for cls in (
        TranscriptionsCreated,
        TranscriptionsUpdated,
        InputAudioBufferCompleted,
        InputAudioBufferCleared,
        TranscriptionsMessageUpdate,
        TranscriptionsMessageCompleted,
        Error,
    )
}


# ---------------------------------------------------------------- session outputs


@dataclass(frozen=True, slots=True)
class AsrReady:
    """``transcriptions.updated`` confirmed the format; held audio has been sent."""

    config: TranscriptionsUpdateData


@dataclass(frozen=True, slots=True)
class Transcript:
    """The whole hypothesis so far; ``final`` once recognition finished."""

    text: str
    final: bool


AsrEvent: TypeAlias = AsrReady | Transcript | ServerError | Notice


class AsrState(Enum):
    CONFIGURING = "CONFIGURING"  # transcriptions.update sent, transcriptions.updated awaited
    STREAMING = "STREAMING"  # appends flow
    COMMITTED = "COMMITTED"  # input_audio_buffer.complete sent, waiting for the result
    DONE = "DONE"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


_A = AsrState
_LIVE = (_A.CONFIGURING, _A.STREAMING, _A.COMMITTED)
#: Legal transitions; triggers are wire event types or ``=name`` for local causes.
ASR_TRANSITIONS: Final[dict[tuple[AsrState, str], AsrState]] = {
    (_A.CONFIGURING, "transcriptions.updated"): _A.STREAMING,
    (_A.STREAMING, "transcriptions.updated"): _A.STREAMING,
    (_A.STREAMING, "input_audio_buffer.complete"): _A.COMMITTED,
    (_A.STREAMING, "transcriptions.message.completed"): _A.DONE,
    (_A.COMMITTED, "transcriptions.message.completed"): _A.DONE,
    **{(s, "error"): _A.FAILED for s in _LIVE},
    **{(s, "=lost"): _A.CLOSED for s in AsrState},
}


class AsrSession(ServiceSession[AsrState, "AsrEvent"]):
    """Client side of one ``/v1/audio/transcriptions`` connection.

    Args:
        input_audio: the format of the payloads :meth:`send_audio` gets (sent in
            ``transcriptions.update``; state every field: the service default is wav).
        asr_config: recognition options, or ``None``.
        max_pending_bytes: audio held before the format is confirmed.
        debug: log one line per frame and transition at debug level.

    Raises:
        LocalProtocolError: a field breaks a documented range or rule (names it).
    """

    TRANSITIONS = ASR_TRANSITIONS
    SERVER_EVENTS = ASR_SERVER_EVENTS
    LOG = _LOG

    def __init__(
        self,
        input_audio: InputAudio,
        asr_config: ASRConfig | None = None,
        *,
        max_pending_bytes: int = 1 << 20,
        debug: bool = False,
    ) -> None:
        self._config = TranscriptionsUpdateData(input_audio=input_audio, asr_config=asr_config)
        try:
            decode_object(TranscriptionsUpdateData, encode_object(self._config))
        except RemoteProtocolError as exc:
            raise LocalProtocolError(
                f"invalid configuration: {exc.reason}",
                event_type="transcriptions.update",
                path=exc.path,
            ) from None
        super().__init__(AsrState.CONFIGURING, debug=debug)
        self._created = False
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._max_held = max_pending_bytes
        #: Audio payloads dropped because too much was held before the handshake ended.
        self.dropped = 0
        self._complete_due = False
        self._text = ""
        self._effective: TranscriptionsUpdateData | None = None
        self._send(TranscriptionsUpdate, config=self._config)

    # ------------------------------------------------------------ state

    @property
    def text(self) -> str:
        """The latest hypothesis (final once DONE)."""
        return self._text

    @property
    def effective_config(self) -> TranscriptionsUpdateData | None:
        """The configuration ``transcriptions.updated`` echoed."""
        return self._effective

    def close_expected(self) -> bool:
        """True once DONE, FAILED or CLOSED."""
        return self._state in (AsrState.DONE, AsrState.FAILED, AsrState.CLOSED)

    # ------------------------------------------------------------ local inputs

    def send_audio(self, data: bytes) -> None:
        """Append one payload in the configured format (held until the format is confirmed).

        Raises:
            LocalProtocolError: after :meth:`complete`, or once DONE, FAILED or CLOSED.
        """
        if self._complete_due or self._state not in (AsrState.CONFIGURING, AsrState.STREAMING):
            raise LocalProtocolError(f"send_audio() while {self._state.value} (after complete)")
        if not data:
            return
        if self._state is AsrState.STREAMING:
            self._append(data)
            return
        self._held.append(data)
        self._held_bytes += len(data)
        while self._held_bytes > self._max_held and len(self._held) > 1:
            self._held_bytes -= len(self._held.popleft())
            self.dropped += 1

    def complete(self) -> None:
        """End of the audio: ``input_audio_buffer.complete`` (after held audio, if any).

        Raises:
            LocalProtocolError: already completed, or DONE, FAILED or CLOSED.
        """
        if self._complete_due or self._state not in (AsrState.CONFIGURING, AsrState.STREAMING):
            raise LocalProtocolError(f"complete() while {self._state.value}")
        if self._state is AsrState.STREAMING:
            self._send(InputAudioBufferComplete)
            self._move("input_audio_buffer.complete")
        else:
            self._complete_due = True

    def clear(self) -> None:
        """Discard the audio sent so far (``input_audio_buffer.clear``).

        Raises:
            LocalProtocolError: not STREAMING.
        """
        if self._state is not AsrState.STREAMING or self._complete_due:
            raise LocalProtocolError(f"clear() while {self._state.value}")
        self._text = ""
        self._send(InputAudioBufferClear)

    # ------------------------------------------------------------ service inputs

    def receive_text(self, frame: str | bytes) -> None:
        """Feed one text frame from the service.

        Raises:
            RemoteProtocolError: the frame is malformed; the session is unchanged.
            LocalProtocolError: the connection was already reported lost.
        """
        if self._state is AsrState.CLOSED:
            raise LocalProtocolError("receive_text() after connection_lost()")
        event = self._decode(frame)
        if event is None:
            return
        match event:
            case TranscriptionsCreated():
                if self._created:
                    self._notice_once("transcriptions.created arrived twice")
                self._created = True
            case TranscriptionsUpdated():
                first = self._state is AsrState.CONFIGURING
                if not self._move("transcriptions.updated"):
                    self._notice_once(f"transcriptions.updated ignored while {self._state.value}")
                    return
                self._effective = event.config
                if first:
                    self._on_ready(event.config)
            case TranscriptionsMessageUpdate():
                if self._state not in (AsrState.STREAMING, AsrState.COMMITTED):
                    self._notice_once(f"transcript update ignored while {self._state.value}")
                    return
                self._text = event.content
                self._events.append(Transcript(event.content, final=False))
            case TranscriptionsMessageCompleted():
                if not self._move("transcriptions.message.completed"):
                    self._notice_once(f"message.completed ignored while {self._state.value}")
                    return
                if event.content is not None:
                    self._text = event.content
                self._events.append(Transcript(self._text, final=True))
            case InputAudioBufferCompleted() | InputAudioBufferCleared():
                pass
            case Error():
                self._move("error")
                self._events.append(ServerError(event.code, event.msg, fatal=True))
            case _:  # pragma: no cover - the table holds only the cases above
                pass

    def connection_lost(self) -> None:
        """Report that the transport closed."""
        self._move("=lost")

    # ------------------------------------------------------------ helpers

    def _on_ready(self, config: TranscriptionsUpdateData) -> None:
        if config.input_audio is None:
            self._notice_once("transcriptions.updated did not echo input_audio")
        else:
            want = self._config.input_audio
            assert want is not None
            for name in ("format", "codec", "sample_rate", "channel", "bit_depth"):
                asked, got = getattr(want, name), getattr(config.input_audio, name)
                if asked is not None and got is not None and asked != got:
                    self._state = AsrState.FAILED
                    self._events.append(
                        ServerError(
                            4000,
                            f"transcriptions.updated did not honour input_audio.{name}: "
                            f"asked {asked!r}, got {got!r}",
                            fatal=True,
                        )
                    )
                    return
        self._events.append(AsrReady(config))
        while self._held:
            self._append(self._held.popleft())
        self._held_bytes = 0
        if self._complete_due:
            self._complete_due = False
            self._send(InputAudioBufferComplete)
            self._move("input_audio_buffer.complete")

    def _append(self, data: bytes) -> None:
        self._out.append(encode_append(self._ids.next(), data))
        if self._debug:
            _LOG.debug("> input_audio_buffer.append %dB", len(data))
