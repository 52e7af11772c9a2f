"""The sans-I/O client session of ``/v1/chat`` (spec 2.1, 2.6).

Theory of operation: the caller owns the socket, the microphone and the speaker. It feeds the
session every text frame it receives (:meth:`Session.receive_text`) and every local action
(:meth:`~Session.send_audio`, :meth:`~Session.press`, :meth:`~Session.send_text`...), each with
the current monotonic time. After each call it writes :meth:`Session.data_to_send` to the socket,
in order, and acts on :meth:`Session.events_received`: above all :class:`FlushPlayback`, which
must empty the local playback buffer at once because the service pushes audio faster than real
time (spec 2.6.6). The session never performs I/O and never reads a clock.

State lives in three machines whose legal transitions are the tables of :mod:`.states`. Late audio
of a reply that was interrupted keeps arriving for a while (spec 2.6.6), so the session remembers
the chats it cancelled and drops their ``conversation.audio.delta`` and ``sentence_start`` events.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import MutableMapping, Sequence
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from . import events as ev
from .events import ClientEvent, ServerEvent
from .objects import Chat, ChatUpdateData, ToolOutput
from .outputs import (
    ConfigUpdated,
    FlushPlayback,
    Notice,
    Ready,
    Received,
    ServerError,
    SessionEvent,
    ToolCallsRequested,
    _EventIds,
)
from .schema import decode_object, encode_object, merge
from .states import (
    CHAT_TRANSITIONS,
    CONN_TRANSITIONS,
    FATAL_ERROR_CODES,
    INPUT_TRANSITIONS,
    LIVE_CHAT,
    SERVER_CHAT_TARGET,
    ChatState,
    ConnState,
    InputState,
    TurnMode,
    config_mismatch,
    turn_mode_of,
)
from .wire import decode_server, encode, encode_append, unknown_fields

__all__ = [
    "TTS_CHAT_ID",
    "ChatState",
    "ConfigUpdated",
    "ConnState",
    "FlushPlayback",
    "InputState",
    "Notice",
    "Ready",
    "Received",
    "ServerError",
    "Session",
    "SessionEvent",
    "ToolCallsRequested",
    "TurnMode",
]

_LOG = logging.getLogger(__name__)

#: ``chat_id`` of the messages ``input_text.generate_audio`` produces (spec 2.6.8).
TTS_CHAT_ID = "0"
#: How many ended chat ids are remembered, to recognise their late events.
_PAST_MEMORY = 64
#: ``code`` of the :class:`ServerError` reported when ``chat.updated`` contradicts the request;
#: the service uses the same code for a mismatched input format (spec 2.1).
_MISMATCH_CODE = 4000


#: Events whose data is a Chat and that drive the chat machine (``canceled`` carries no chat).
_CHAT_EVENTS = (
    ev.ConversationChatCreated,
    ev.ConversationChatInProgress,
    ev.ConversationChatRequiresAction,
    ev.ConversationChatCompleted,
    ev.ConversationChatFailed,
)


class _SessionLog(logging.LoggerAdapter[logging.Logger]):
    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['session'] if self.extra else '?'}] {msg}", kwargs


class Session:
    """Client side of one ``/v1/chat`` connection.

    Args:
        config: what ``chat.update`` sends; it is sent automatically once ``chat.created``
            arrives. ``config.turn_detection.type`` fixes the turn mode (absent means
            push-to-talk, the service default).
        logger: where debug lines go (default: this module's logger).
        debug: log one line per frame and per transition at debug level.

    Raises:
        LocalProtocolError: ``config`` breaks a documented range or rule (names the field).
    """

    def __init__(
        self, config: ChatUpdateData, *, logger: logging.Logger | None = None, debug: bool = False
    ) -> None:
        self._config = _validated(config)
        self._turn_mode = turn_mode_of(config)
        self._conn = ConnState.AWAIT_CREATED
        self._input = InputState.IDLE
        self._chat = ChatState.NONE
        self._chat_id: str | None = None
        cc = config.chat_config
        self._conversation_id = cc.conversation_id if cc is not None else None
        self._logid: str | None = None
        self._effective: ChatUpdateData | None = None
        self._epoch = 0
        #: Late ``audio.delta``/``sentence_start`` events of cancelled chats dropped so far.
        self.dropped_deltas = 0
        #: Monotonic times: ``speech_end`` (release or ``speech_stopped``) and ``first_delta``
        #: (first audio delta of the current chat or ``generate_audio``).
        self.marks: dict[str, float] = {}
        self._debug = debug
        self._ids = _EventIds()
        self._log = _SessionLog(logger or _LOG, {"session": uuid.uuid4().hex[:8]})
        self._out: list[str] = []
        self._events: list[SessionEvent] = []
        self._pending = 0  # committed user turns without a chat yet (oldest first)
        self._cancel_pending = 0  # how many of those to cancel once their chat is created
        self._past: dict[str, bool] = {}  # ended chats -> cancelled?; ordered, bounded
        self._unacked: dict[str, None] = {}  # cancelled locally; conversation.chat.canceled due
        self._tool_calls: frozenset[str] = frozenset()
        self._audio_owner: str | None = None  # chat whose audio is expected next
        self._tts_live = False  # generate_audio (or prologue) audio may still be arriving
        self._audio_since_flush = False
        self._reported: set[str] = set()
        self._unconfirmed: deque[ChatUpdateData] = deque()  # chat.update sent, no chat.updated

    # ------------------------------------------------------------ read-only state

    @property
    def conn_state(self) -> ConnState:
        """Connection setup and life: AWAIT_CREATED, CONFIGURING, READY, FAILED, CLOSED."""
        return self._conn

    @property
    def input_state(self) -> InputState:
        """Whether :meth:`send_audio` is allowed (LISTENING or STREAMING)."""
        return self._input

    @property
    def chat_state(self) -> ChatState:
        """The agent's side of the current turn."""
        return self._chat

    @property
    def turn_mode(self) -> TurnMode:
        """Fixed for the connection by ``turn_detection.type`` (spec 2.2.4)."""
        return self._turn_mode

    @property
    def chat_id(self) -> str | None:
        """The running chat; ``None`` unless ``chat_state`` is ACTIVE or REQUIRES_ACTION."""
        return self._chat_id

    @property
    def conversation_id(self) -> str | None:
        """Pass it in ``chat_config`` after a reconnect to keep the context (spec 2.1)."""
        return self._conversation_id

    @property
    def logid(self) -> str | None:
        """The service's log id of this connection (quote it in support requests)."""
        return self._logid

    @property
    def config(self) -> ChatUpdateData:
        """The configuration requested so far (every ``update_config`` merged in)."""
        return self._config

    @property
    def effective_config(self) -> ChatUpdateData | None:
        """The configuration of the last ``chat.updated``."""
        return self._effective

    @property
    def playback_epoch(self) -> int:
        """How many :class:`FlushPlayback` events were emitted; tag queued audio with it."""
        return self._epoch

    def is_cancelled(self, chat_id: str | None) -> bool:
        """Whether ``chat_id`` was interrupted (its late events are stale)."""
        return chat_id is not None and self._past.get(chat_id) is True

    # ------------------------------------------------------------ outputs

    def data_to_send(self) -> list[str]:
        """Text frames to write to the socket, in order. Call after every input method."""
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[SessionEvent]:
        """What the caller must act on, in order. Call after every input method."""
        events, self._events = self._events, []
        return events

    def close_expected(self) -> bool:
        """True once the session FAILED (or CLOSED): the caller should close the connection."""
        return self._conn is ConnState.FAILED or self._conn is ConnState.CLOSED

    # ------------------------------------------------------------ inputs: from the service

    def receive_text(self, frame: str | bytes, now: float) -> None:
        """Feed one text frame from the service, then drain both outputs.

        Raises:
            RemoteProtocolError: the frame is malformed; the session is unchanged and usable.
            LocalProtocolError: the connection was already reported lost.
        """
        if self._conn is ConnState.CLOSED:
            raise LocalProtocolError("receive_text() after connection_lost()")
        event = decode_server(frame)
        if isinstance(event, ev.UnknownEvent):
            self._trace("< %s (unknown type)", event.unknown_type)
            self._notice_once(f"unknown event type {event.unknown_type!r} ignored")
            return
        if not isinstance(event, ServerEvent):  # pragma: no cover - the table holds only these
            raise RemoteProtocolError("not a server event", event_type=event.event_type)
        if event.detail is not None and event.detail.logid:
            self._logid = event.detail.logid
        if self._debug:
            self._log.debug("< %s%s", event.event_type, _describe(event))
        if self._is_stale_audio(event):
            self.dropped_deltas += 1
            self._trace("  dropped: late audio of a cancelled chat")
            return
        self._events.append(Received(event))
        extra = unknown_fields(event)
        if extra:
            self._notice_once(f"{event.event_type} carried unknown fields: {', '.join(extra)}")
        configuring = self._conn is ConnState.AWAIT_CREATED or self._conn is ConnState.CONFIGURING
        if configuring and not isinstance(event, (ev.ChatCreated, ev.ChatUpdated, ev.Error)):
            self._notice_once(f"{event.event_type} arrived before the session was configured")
        self._dispatch(event, now)

    def connection_lost(self, now: float) -> None:
        """Report that the transport closed. Emits a final :class:`FlushPlayback`.

        Any pending turn is abandoned. A new connection needs a new :class:`Session` (pass
        ``conversation_id`` in its ``chat_config`` to keep the context).
        """
        if self._conn is ConnState.CLOSED:
            return
        self._move_conn("=lost")
        self._move_input("=stop")
        self._move_chat("=lost")
        self._chat_id = None
        self._pending = self._cancel_pending = 0
        self._tts_live = False
        self._flush("connection lost")

    # ------------------------------------------------------------ inputs: local actions

    def send_audio(self, data: bytes, now: float) -> None:
        """Append microphone audio, already encoded in the configured input format.

        Raises:
            LocalProtocolError: not READY (before ``chat.updated`` the service assumes wav
                input and would misread the audio, spec 2.1), or push-to-talk is not pressed.
        """
        self._require_ready("send_audio()")
        if self._input is InputState.IDLE:
            raise LocalProtocolError("send_audio() while the push-to-talk key is up: press() first")
        if not data:
            raise LocalProtocolError("send_audio() with no audio")
        self._out.append(encode_append(self._ids.next(), data))
        if self._debug:
            self._log.debug("> input_audio_buffer.append %dB", len(data))

    def press(self, now: float) -> None:
        """Push-to-talk key down: interrupt any reply, flush playback, start LISTENING.

        A running chat is cancelled now; a committed turn whose chat has not started yet is
        cancelled as soon as its ``conversation.chat.created`` arrives (an idle session is never
        cancelled, spec 2.6.6). Then call :meth:`send_audio` for each chunk and :meth:`release`.

        Raises:
            LocalProtocolError: not push-to-talk, not READY, or already LISTENING.
        """
        self._require_ptt("press()")
        if self._input is not InputState.IDLE:
            raise LocalProtocolError("press() while already LISTENING: release() first")
        self._barge_in(send_cancel=True, expect_ack=True)
        self._cancel_pending = self._pending
        self._flush("push-to-talk pressed")
        self._move_input("=press")

    def release(self, now: float) -> None:
        """Push-to-talk key up: commit the audio (``input_audio_buffer.complete``).

        The chat becomes PENDING until the service creates the reply's chat.

        Raises:
            LocalProtocolError: not push-to-talk, not READY, or not LISTENING.
        """
        self._require_ptt("release()")
        if self._input is not InputState.LISTENING:
            raise LocalProtocolError("release() without press()")
        self._send(ev.InputAudioBufferComplete)
        self._move_input("input_audio_buffer.complete")
        self.marks["speech_end"] = now
        self._pending += 1
        self._settle()

    def send_text(self, text: str, now: float, *, role: str = "user") -> None:
        """Send a typed message (``conversation.message.create``).

        ``role="user"`` starts a turn (the chat becomes PENDING) and interrupts a running reply,
        which the service reports with ``conversation.chat.canceled`` code 3 (spec 2.6.6); if
        audio may be playing a :class:`FlushPlayback` is emitted. ``role="assistant"`` only adds
        the text to the context.

        Raises:
            LocalProtocolError: not READY, empty text, or an unknown role.
        """
        self._require_ready("send_text()")
        if role not in ("user", "assistant"):
            raise LocalProtocolError(f"role must be 'user' or 'assistant', got {role!r}")
        if not text:
            raise LocalProtocolError("send_text() with empty text")
        if role == "user":
            self._interrupt_for_new_output("conversation.message.create")
        self._send(ev.ConversationMessageCreate, role=role, content_type="text", content=text)
        if role == "user":
            self._pending += 1
            self._settle()

    def generate_audio(self, text: str, now: float) -> None:
        """Have the service speak ``text`` in the session's voice without running the agent.

        Interrupts a running reply (flushing playback if audio may be playing). The audio comes
        back as ``conversation.audio.*`` events with ``chat_id`` ``"0"`` and no chat (spec 2.6.8).

        Raises:
            LocalProtocolError: not READY, or ``text`` is empty or 1024 UTF-8 bytes or longer.
        """
        self._require_ready("generate_audio()")
        size = len(text.encode("utf-8"))
        if not 0 < size < 1024:
            raise LocalProtocolError(f"text must be 1-1023 UTF-8 bytes, got {size}")
        self._interrupt_for_new_output("input_text.generate_audio")
        self._send(ev.InputTextGenerateAudio, mode="text", text=text)
        self._past.pop(TTS_CHAT_ID, None)
        self._tts_live = True
        self._audio_owner = TTS_CHAT_ID
        self.marks.pop("first_delta", None)

    def cancel(self, now: float) -> bool:
        """Stop the agent talking: always flushes playback.

        ``conversation.chat.cancel`` is sent only while a chat is ACTIVE or REQUIRES_ACTION
        (cancelling an idle session breaks it, spec 2.6.6). A committed turn whose chat has not
        started yet is cancelled as soon as the chat is created.

        Returns:
            Whether ``conversation.chat.cancel`` was sent now.
        """
        sent = False
        if self._conn is ConnState.READY:
            sent = self._barge_in(send_cancel=True, expect_ack=True)
            self._cancel_pending = self._pending
        self._flush("cancelled locally")
        return sent

    def clear_context(self, now: float) -> None:
        """Start a new context section (``conversation.clear``; ack ``conversation.cleared``).

        Raises:
            LocalProtocolError: not READY.
        """
        self._require_ready("clear_context()")
        self._send(ev.ConversationClear)

    def clear_buffer(self, now: float) -> None:
        """Discard uncommitted push-to-talk audio (``input_audio_buffer.clear``).

        Raises:
            LocalProtocolError: not READY, or a VAD mode, where clear is invalid (spec 2.6.4).
        """
        self._require_ptt("clear_buffer()")
        self._send(ev.InputAudioBufferClear)

    def submit_tool_outputs(self, chat_id: str, outputs: Sequence[ToolOutput], now: float) -> None:
        """Answer a :class:`ToolCallsRequested`; the chat becomes ACTIVE again.

        Raises:
            LocalProtocolError: ``chat_id`` is not the chat in REQUIRES_ACTION, ``outputs`` is
                empty, or an output names a tool call that was not requested.
        """
        self._require_ready("submit_tool_outputs()")
        if self._chat is not ChatState.REQUIRES_ACTION or chat_id != self._chat_id:
            raise LocalProtocolError(
                f"chat {chat_id} is not waiting for tool outputs "
                f"(chat {self._chat_id} is {self._chat.value})"
            )
        outputs = tuple(outputs)
        if not outputs:
            raise LocalProtocolError("submit_tool_outputs() with no outputs")
        unknown = sorted({o.tool_call_id for o in outputs} - self._tool_calls)
        if unknown:
            raise LocalProtocolError(f"tool calls {unknown} were not requested by chat {chat_id}")
        self._send(ev.ConversationChatSubmitToolOutputs, chat_id=chat_id, tool_outputs=outputs)
        self._move_chat("conversation.chat.submit_tool_outputs")

    def update_config(self, config: ChatUpdateData, now: float) -> None:
        """Merge ``config`` into the current configuration and send it as ``chat.update``.

        The service answers ``chat.updated`` (:class:`ConfigUpdated`). Before ``chat.created``
        the merged configuration is only stored, and sent with the first ``chat.update``.

        Raises:
            LocalProtocolError: FAILED or CLOSED, an invalid field, or a change of
                ``turn_detection.type`` (that needs a reconnect, spec 2.1).
        """
        if self._conn is ConnState.FAILED or self._conn is ConnState.CLOSED:
            raise LocalProtocolError(f"update_config() while {self._conn.value}")
        merged = _validated(merge(self._config, config))
        if turn_mode_of(merged) is not self._turn_mode:
            raise LocalProtocolError(
                "changing turn_detection.type needs a new connection", path="turn_detection.type"
            )
        self._config = merged
        if self._conn is not ConnState.AWAIT_CREATED:
            self._send_config()

    # ------------------------------------------------------------ server event handling

    def _dispatch(self, event: ServerEvent, now: float) -> None:
        if isinstance(event, _CHAT_EVENTS):
            self._on_chat_event(event.event_type, event.chat)
            return
        match event:
            case ev.ChatCreated():
                if self._move_conn("chat.created"):
                    self._send_config()
                else:
                    self._notice_once("chat.created arrived twice")
            case ev.ChatUpdated():
                self._on_chat_updated(event.config)
            case ev.Error():
                self._on_error(event)
            case ev.ConversationChatCanceled():
                self._on_canceled()
            case ev.InputAudioBufferSpeechStarted():
                self._on_speech_started()
            case ev.InputAudioBufferSpeechStopped():
                if self._turn_mode is TurnMode.PUSH_TO_TALK:
                    # release() commits a push-to-talk turn; a stray VAD event must not
                    # count as one, or the next press() would cancel the real reply
                    self._notice_once(
                        "input_audio_buffer.speech_stopped in push-to-talk mode ignored"
                    )
                    return
                self.marks["speech_end"] = now
                if self._chat is ChatState.NONE or self._chat is ChatState.PENDING:
                    self._pending = max(self._pending, 1)
                    self._settle()
            case ev.ConversationAudioTranscriptCompleted():
                if not event.content:  # nothing was recognised: no chat will follow
                    self._abandon_pending()
            case ev.ConversationAudioDelta():
                cid = event.message.chat_id or self._audio_owner
                self._audio_owner = cid
                self._audio_since_flush = True
                if cid == TTS_CHAT_ID:
                    self._tts_live = True
                self.marks.setdefault("first_delta", now)
            case ev.ConversationAudioCompleted():
                if event.message.chat_id == TTS_CHAT_ID:
                    self._tts_live = False
            case _:
                pass

    def _on_chat_updated(self, config: ChatUpdateData) -> None:
        self._effective = config
        if config.chat_config is not None and config.chat_config.conversation_id:
            self._conversation_id = config.chat_config.conversation_id
        # Each chat.updated acknowledges the oldest chat.update not yet acknowledged.
        requested = self._unconfirmed.popleft() if self._unconfirmed else self._config
        problem = config_mismatch(requested, config)
        if problem is not None:
            self._fail(_MISMATCH_CODE, f"chat.updated did not honour the request: {problem}")
            return
        if config.input_audio is None:
            self._notice_once("chat.updated did not echo input_audio; the format is unconfirmed")
        first = self._conn is ConnState.CONFIGURING
        if not self._move_conn("chat.updated"):
            self._notice_once(f"chat.updated ignored while {self._conn.value}")
            return
        if first:
            self._events.append(Ready(config))
            if self._turn_mode is not TurnMode.PUSH_TO_TALK:
                self._move_input("=stream")
        else:
            self._events.append(ConfigUpdated(config))

    def _on_error(self, event: ev.Error) -> None:
        if event.code in FATAL_ERROR_CODES or self._conn is ConnState.CONFIGURING:
            self._fail(event.code, event.msg)
            return
        self._events.append(ServerError(event.code, event.msg, fatal=False))
        # A committed turn the service rejected (e.g. 4000 for a bad audio format) yields no chat.
        self._abandon_pending()

    def _on_chat_event(self, event_type: str, chat: Chat) -> None:
        cid = chat.id
        if chat.conversation_id:
            self._conversation_id = chat.conversation_id
        if cid in self._past:
            self._trace("  stale: chat %s has ended", cid)
            return
        if cid != self._chat_id:
            if event_type != "conversation.chat.created":
                self._notice_once(f"{event_type} for chat {cid}, which was never created")
            if not self._adopt(cid) or event_type == "conversation.chat.created":
                return
        self._move_chat(event_type, server=True)
        if self._chat is ChatState.REQUIRES_ACTION:
            ra = chat.required_action
            calls = ra.submit_tool_outputs.tool_calls if ra and ra.submit_tool_outputs else ()
            self._tool_calls = frozenset(tc.id for tc in calls)
            if calls:
                self._events.append(ToolCallsRequested(cid, calls))
            else:
                self._notice_once(f"chat {cid} requires action but named no tool calls")
        elif self._chat is ChatState.NONE:
            self._remember(cid, cancelled=False)
            self._chat_id = None
            self._settle()

    def _adopt(self, cid: str) -> bool:
        """A chat the session did not know starts; False if it was cancelled on arrival."""
        if self._pending:
            self._pending -= 1
            if self._cancel_pending:
                self._cancel_pending -= 1
                self._send(ev.ConversationChatCancel)
                self._remember(cid, cancelled=True, expect_ack=True)
                self._audio_owner = cid
                self._settle()
                return False
        self._move_chat("conversation.chat.created", server=True)
        self._chat_id = self._audio_owner = cid
        self._unacked.clear()  # acknowledgements of older cancels come before a new chat
        self._tool_calls = frozenset()
        self.marks.pop("first_delta", None)
        return True

    def _on_canceled(self) -> None:
        if self._unacked:
            # Acknowledges an interruption this session already flushed for; every later delta
            # of that chat was dropped, so any queued audio belongs to a newer reply: keep it.
            del self._unacked[next(iter(self._unacked))]
            return
        if self._chat in LIVE_CHAT and self._chat_id is not None:
            self._remember(self._chat_id, cancelled=True)
            self._move_chat("conversation.chat.canceled", server=True)
            self._chat_id = None
            self._settle()
        self._tts_live = False
        self._flush("conversation.chat.canceled")

    def _on_speech_started(self) -> None:
        if self._turn_mode is TurnMode.PUSH_TO_TALK:
            self._notice_once("input_audio_buffer.speech_started in push-to-talk mode ignored")
            return
        self._cancel_pending = 0  # a new utterance supersedes a cancel() of the previous one
        td = self._config.turn_detection
        if td is not None and td.interrupt_config is not None and td.interrupt_config.keywords:
            # Keyword barge-in: plain speech does not interrupt; canceled will if it does.
            return
        self._barge_in(send_cancel=False, expect_ack=True)
        self._flush("input_audio_buffer.speech_started")

    # ------------------------------------------------------------ helpers

    def _interrupt_for_new_output(self, reason: str) -> None:
        playing = self._audio_since_flush or self._tts_live or self._chat in LIVE_CHAT
        self._barge_in(send_cancel=False, expect_ack=True)
        if playing:
            self._flush(reason)

    def _barge_in(self, *, send_cancel: bool, expect_ack: bool) -> bool:
        """Interrupt the running chat and any generate_audio output; True if cancel was sent."""
        sent = False
        if self._chat in LIVE_CHAT and self._chat_id is not None:
            if send_cancel:
                self._send(ev.ConversationChatCancel)
                sent = True
            self._remember(self._chat_id, cancelled=True, expect_ack=expect_ack)
            self._move_chat("=barge_in")
            self._chat_id = None
            self._settle()
        if self._tts_live:
            self._remember(TTS_CHAT_ID, cancelled=True)
            self._tts_live = False
        return sent

    def _remember(self, cid: str, *, cancelled: bool, expect_ack: bool = False) -> None:
        self._past[cid] = cancelled
        if len(self._past) > _PAST_MEMORY:
            del self._past[next(iter(self._past))]
        if expect_ack:
            self._unacked[cid] = None

    def _is_stale_audio(self, event: ServerEvent) -> bool:
        if isinstance(event, ev.ConversationAudioDelta):
            cid = event.message.chat_id or self._audio_owner
        elif isinstance(event, ev.ConversationAudioSentenceStart):
            cid = self._audio_owner  # carries no ids: it belongs to the audio that follows
        else:
            return False
        return cid is not None and self._past.get(cid) is True

    def _abandon_pending(self) -> None:
        if self._pending:
            self._pending -= 1
            self._cancel_pending = max(0, self._cancel_pending - 1)
            self._settle()

    def _settle(self) -> None:
        self._cancel_pending = min(self._cancel_pending, self._pending)
        if self._chat is ChatState.NONE and self._pending:
            self._move_chat("=await")
        elif self._chat is ChatState.PENDING and not self._pending:
            self._move_chat("=settle")

    def _fail(self, code: int, msg: str) -> None:
        self._events.append(ServerError(code, msg, fatal=True))
        trigger = "error" if self._conn is ConnState.CONFIGURING else "=fatal"
        self._move_conn(trigger)
        self._move_input("=stop")

    def _flush(self, reason: str) -> None:
        self._epoch += 1
        self._audio_since_flush = False
        self._events.append(FlushPlayback(reason, self._epoch))
        self._trace("= flush #%d (%s)", self._epoch, reason)

    def _send_config(self) -> None:
        self._unconfirmed.append(self._config)
        self._send(ev.ChatUpdate, config=self._config)

    def _send(self, cls: type[ClientEvent], **fields: Any) -> None:
        event = cls(id=self._ids.next(), **fields)
        self._out.append(encode(event))
        if self._debug:
            self._log.debug("> %s%s", event.event_type, _describe(event))

    def _require_ready(self, what: str) -> None:
        if self._conn is ConnState.READY:
            return
        why = "start a new session"
        if self._conn is ConnState.AWAIT_CREATED or self._conn is ConnState.CONFIGURING:
            why = "until chat.updated confirms the configuration the service assumes wav input"
        raise LocalProtocolError(f"{what} while {self._conn.value}, not READY: {why} (spec 2.1)")

    def _require_ptt(self, what: str) -> None:
        if self._turn_mode is not TurnMode.PUSH_TO_TALK:
            raise LocalProtocolError(
                f"{what} is for push-to-talk; in {self._turn_mode.value} mode the service "
                "detects turns itself and input_audio_buffer.complete/clear are invalid"
            )
        self._require_ready(what)

    def _notice_once(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            self._events.append(Notice(message))
        self._trace("  notice: %s", message)

    def _trace(self, msg: str, *args: object) -> None:
        if self._debug:
            self._log.debug(msg, *args)

    def _move_conn(self, trigger: str) -> bool:
        new = CONN_TRANSITIONS.get((self._conn, trigger))
        if new is None:
            return False
        self._conn = new
        self._trace("= %s (%s)", new.value, trigger)
        return True

    def _move_input(self, trigger: str) -> None:
        new = INPUT_TRANSITIONS.get((self._input, trigger))
        if new is None:
            raise LocalProtocolError(f"input cannot go from {self._input.value} by {trigger}")
        self._input = new
        self._trace("= input %s (%s)", new.value, trigger)

    def _move_chat(self, trigger: str, *, server: bool = False) -> None:
        new = CHAT_TRANSITIONS.get((self._chat, trigger))
        if new is None:
            if not server:
                raise LocalProtocolError(f"chat cannot go from {self._chat.value} by {trigger}")
            # The service is the authority on its chats: note the surprise and follow it.
            self._notice_once(f"unexpected {trigger} while chat is {self._chat.value}")
            new = SERVER_CHAT_TARGET[trigger]
        self._chat = new
        self._trace("= chat %s (%s)", new.value, trigger)


def _validated(config: ChatUpdateData) -> ChatUpdateData:
    try:
        decode_object(ChatUpdateData, encode_object(config))
    except RemoteProtocolError as exc:
        raise LocalProtocolError(
            f"invalid configuration: {exc.reason}", event_type="chat.update", path=exc.path
        ) from None
    return config


def _describe(event: ClientEvent | ServerEvent) -> str:
    """Short, payload-free details for a debug line (never audio, text or tokens)."""
    match event:
        case ev.InputAudioBufferAppend():
            return f" {len(event.delta)}B"
        case ev.ConversationAudioDelta():
            return f" chat={event.message.chat_id} {len(event.message.content or '') * 3 // 4}B"
        case ev.ChatUpdate() | ev.ChatUpdated():
            ia, td = event.config.input_audio, event.config.turn_detection
            fmt = f"{ia.format}/{ia.codec}/{ia.sample_rate}" if ia is not None else "-"
            return f" in={fmt} turn={td.type if td is not None else '-'}"
        case _ if isinstance(event, _CHAT_EVENTS):
            return f" chat={event.chat.id}"
        case ev.ConversationChatSubmitToolOutputs():
            return f" chat={event.chat_id} outputs={len(event.tool_outputs)}"
        case ev.Error() | ev.ConversationChatCanceled():
            return f" code={event.code}"
        case ev.ConversationMessageCreate():
            return f" role={event.role} {len(event.content)} chars"
        case _:
            return ""
