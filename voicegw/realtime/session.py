"""The sans-I/O client session of one Realtime (RTC) room (coze-protocol.md 3.1, 3.4-3.7).

Theory of operation: the caller owns the RTC transport. Audio travels as RTC media and never
passes through the session; the signalling events travel as RTC user messages. The caller reports
the agent joining (:meth:`RealtimeSession.agent_joined`, the RTC ``onUserJoined`` of the bot),
feeds every message the agent sends (:meth:`~RealtimeSession.receive_text`) and every local action
(:meth:`~RealtimeSession.press`, :meth:`~RealtimeSession.client_vad`,
:meth:`~RealtimeSession.cancel`...). After each call it sends :meth:`~RealtimeSession.data_to_send`
to the agent, in order, and acts on :meth:`~RealtimeSession.events_received`: above all
:class:`~voicegw.protocol.outputs.FlushPlayback`, which must empty the local playback buffer of
agent audio at once. The session never performs I/O and never reads a clock.

Room life (the table :data:`~.states.ROOM_TRANSITIONS`, states :class:`~.states.RoomState`)::

    joining --session.created--> created --=configure--> configuring --conversation.created--> ready
    (any) --=close--> closed      (error 4029/4027/4028, a fatal error, agent left, transport lost)

``=configure`` is the automatic ``session.update`` carrying the whole configured
:class:`~voicegw.realtime.objects.SessionUpdateData`: it is sent as soon as both the agent has
joined and ``session.created`` has arrived (spec 3.1: nothing may be sent before the agent joins).
``conversation.created`` makes the room ready (:class:`RoomReady`). Turn state runs beside it:
the chat (:data:`~.states.CHAT_TRANSITIONS`), the push-to-talk key
(:data:`~.states.PTT_TRANSITIONS`), whether the agent and the user are speaking, and the last
``client.vad`` value.

INFERRED choices (the spec leaves these open; section 3 has no complete trace):

* Turn commands (press, release, client_vad, send_text, generate_audio, submit_tool_outputs)
  need ``ready``; the setting updates (update_config, update_pre_answer, update_mode) need only
  the agent present; before that, update_config changes what the first ``session.update`` sends.
* Duplicate ``press()``/``release()`` return ``False`` and send nothing: the service ignores
  duplicate ``input_audio_buffer.start``/``complete`` (spec 3.4), so sending them is useless.
* ``press()`` while the agent speaks or a chat runs first sends ``conversation.chat.cancel`` (the
  documented client interrupt, spec 3.6) and flushes playback; the spec does not say whether
  ``input_audio_buffer.start`` interrupts by itself.
* ``cancel()`` sends ``conversation.chat.cancel`` only while a chat runs or the agent speaks
  (cancelling an idle ``/v1/chat`` session breaks it, spec 2.6.6; assumed the same here) and
  returns whether it did; it always emits a ``FlushPlayback``, as on ``/v1/chat``.
* Barge-in flushes playback at ``audio.user.speech_started`` (or ``client_vad(True)``) while the
  agent speaks, unless ``allow_voice_interrupt`` is false or interrupt keywords are configured (then
  plain speech does not interrupt). ``audio.agent.speech_stopped`` flushes when it looks like an
  interruption: its chat is still running (a normal reply completes its chat first, spec 3.6).
  At most one flush per agent utterance, plus explicit cancels.
* An interrupted chat is over for the session; later events of that chat are still reported
  (:class:`Received`) but change no state. There is no ``conversation.chat.canceled`` on Realtime.
* Errors: 4029 (inactivity) closes the room, :attr:`~RealtimeSession.needs_new_room`; 4027/4028
  (billing) close it with :data:`BILLING_RETRY_S` as the back-off hint; 4100/4101 are fatal
  (:class:`ServerError` with ``fatal``); any other code is reported and the room stays usable (a
  refused ``session.update`` leaves the agent's previous settings in force).
* The agent leaving closes the room with :class:`RoomClosed` code 0; a lost transport closes the
  session with only a final flush (the caller knows why). Messages after closing are ignored.
* ``turn_detection.type`` in ``session.update`` must match the room: push-to-talk rooms
  (``client_interrupt``, fixed at creation) send none; VAD rooms may switch among ``server_vad``,
  ``client_vad`` and ``semantic_vad`` with :meth:`~RealtimeSession.update_config`.
* ``mode.update`` is sent even when ``asr_config.stream_mode`` is not ``output_no_stream``
  (where the agent ignores it), with a :class:`Notice`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..errors import LocalProtocolError, RemoteProtocolError
from ..protocol.events import ClientEvent, ServerEvent, UnknownEvent
from ..protocol.objects import Chat, ToolOutput
from ..protocol.outputs import (
    FlushPlayback,
    Notice,
    Received,
    ServerError,
    ToolCallsRequested,
    _EventIds,
)
from ..protocol.schema import decode_object, encode_object, merge
from ..protocol.wire import unknown_fields
from . import events as ev
from .objects import (
    ModeChat,
    ModeData,
    PreAnswer,
    PreAnswerData,
    PreAnswerTrigger,
    SessionUpdateData,
)
from .outputs import RealtimeConfigUpdated, RealtimeOutput, RoomClosed, RoomReady
from .states import (
    CHAT_TRANSITIONS,
    LIVE_CHAT,
    PTT_TRANSITIONS,
    ROOM_TRANSITIONS,
    SERVER_CHAT_TARGET,
    TURN_MODES,
    ChatPhase,
    PttState,
    RoomState,
)

__all__ = [
    "BILLING_RETRY_S",
    "CHAT_TRANSITIONS",
    "PTT_TRANSITIONS",
    "ROOM_TRANSITIONS",
    "TURN_MODES",
    "ChatPhase",
    "FlushPlayback",
    "Notice",
    "PttState",
    "RealtimeConfigUpdated",
    "RealtimeOutput",
    "RealtimeSession",
    "Received",
    "RoomClosed",
    "RoomReady",
    "RoomState",
    "ServerError",
    "ToolCallsRequested",
]

#: Back-off hint after 4027/4028 (billing), seconds: retrying sooner cannot help.
BILLING_RETRY_S: Final = 600.0
#: Codes that close the room (spec 3.7).
_ROOM_CLOSING: Final = {4029: 0.0, 4027: BILLING_RETRY_S, 4028: BILLING_RETRY_S}
#: Codes after which nothing can work (authentication, permission; spec 6).
_FATAL: Final = frozenset({4100, 4101})
#: How many distinct notices are remembered (to report each once) before starting over.
_NOTICE_MEMORY: Final = 256
#: How many ended chat ids are remembered, to recognise their late events.
_PAST_MEMORY: Final = 64


_CHAT_EVENTS = (
    ev.ConversationChatCreated,
    ev.ConversationChatInProgress,
    ev.ConversationChatRequiresAction,
    ev.ConversationChatCompleted,
    ev.ConversationChatFailed,
)


class RealtimeSession:
    """Client side of the signalling of one Realtime room.

    Args:
        config: the full ``session.update`` sent once the agent has joined and
            ``session.created`` arrived.
        turn_mode: the room's ``turn_detection.type`` (:data:`TURN_MODES`).
        ids: makes event ids (default: unique UUID-shaped ids, spec 3.1 asks for unique ids).

    Raises:
        LocalProtocolError: ``config`` breaks a documented range or rule, or contradicts
            ``turn_mode`` (``path`` names the field).
    """

    def __init__(
        self,
        config: SessionUpdateData,
        *,
        turn_mode: str,
        ids: Callable[[], str] | None = None,
    ) -> None:
        if turn_mode not in TURN_MODES:
            raise LocalProtocolError(
                f"turn_mode must be one of {', '.join(TURN_MODES)}, got {turn_mode!r}"
            )
        self._turn_mode = turn_mode
        self._config = self._checked(config)
        td = config.turn_detection
        if td is not None and td.type is not None and td.type != turn_mode:
            raise LocalProtocolError(
                f"{td.type!r} contradicts the room's turn mode {turn_mode!r}",
                event_type="session.update",
                path="turn_detection.type",
            )
        self._ids = ids or _EventIds().next
        self._state = RoomState.JOINING
        self._chat = ChatPhase.NONE
        self._ptt = PttState.UP
        self._chat_id: str | None = None
        self._tool_calls: frozenset[str] = frozenset()
        self._past: dict[str, None] = {}  # interrupted chats, oldest first (bounded)
        self._agent_present = False
        self._config_sent = False
        self._echo: SessionUpdateData | None = None
        self._conversation_id: str | None = None
        self._logid: str | None = None
        self._agent_speaking = False
        self._user_speaking = False
        self._flushed_speech = False  # flushed during the current agent utterance
        self._vad = False
        self._epoch = 0
        self._needs_new_room = False
        self._retry_after = 0.0
        self._out: list[str] = []
        self._events: list[RealtimeOutput] = []
        self._reported: set[str] = set()

    # ------------------------------------------------------------ read-only state

    @property
    def state(self) -> RoomState:
        """``joining``, ``created``, ``configuring``, ``ready`` or ``closed`` (a str enum)."""
        return self._state

    @property
    def ready(self) -> bool:
        """Whether turn commands are allowed now."""
        return self._state is RoomState.READY

    @property
    def turn_mode(self) -> str:
        """The room's turn mode; VAD rooms may switch with :meth:`update_config`."""
        return self._turn_mode

    @property
    def chat_phase(self) -> ChatPhase:
        return self._chat

    @property
    def chat_id(self) -> str | None:
        """The running chat, if any."""
        return self._chat_id

    @property
    def ptt_pressed(self) -> bool:
        return self._ptt is PttState.DOWN

    @property
    def user_speaking(self) -> bool:
        """Between ``audio.user.speech_started`` and ``speech_stopped``."""
        return self._user_speaking

    @property
    def agent_speaking(self) -> bool:
        """Between ``audio.agent.speech_started`` and ``speech_stopped``."""
        return self._agent_speaking

    @property
    def conversation_id(self) -> str | None:
        """From ``conversation.created`` (pass it to the next room to keep the context)."""
        return self._conversation_id

    @property
    def logid(self) -> str | None:
        """``log_id`` of ``session.created`` or the last error's logid (for support requests)."""
        return self._logid

    @property
    def config(self) -> SessionUpdateData:
        """What this session asked for (the initial config merged with every update)."""
        return self._config

    @property
    def effective_config(self) -> SessionUpdateData:
        """The requested configuration overlaid with the agent's last ``session.updated``."""
        return merge(self._config, self._echo) if self._echo is not None else self._config

    @property
    def playback_epoch(self) -> int:
        """How many :class:`FlushPlayback` were emitted so far."""
        return self._epoch

    @property
    def needs_new_room(self) -> bool:
        """The room is gone (4029, billing, a fatal error, the agent left, transport lost)."""
        return self._needs_new_room

    @property
    def retry_after_s(self) -> float:
        """How long to wait before creating the next room (long after 4027/4028)."""
        return self._retry_after

    # ------------------------------------------------------------ outputs

    def data_to_send(self) -> list[str]:
        """JSON texts to send to the agent as RTC user messages, in order."""
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[RealtimeOutput]:
        """What the caller must act on, in order."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ transport notifications

    def agent_joined(self) -> None:
        """The agent's RTC user joined: from now on events may be sent.

        Raises:
            LocalProtocolError: the session is closed (a new room needs a new session).
        """
        if self._state is RoomState.CLOSED:
            raise LocalProtocolError("agent_joined() after the room closed: use a new session")
        self._agent_present = True
        self._maybe_configure()

    def agent_left(self) -> None:
        """The agent's RTC user left: the room is over."""
        self._agent_present = False
        self._close(0, "the agent left the room", 0.0, report=True)

    def transport_lost(self) -> None:
        """The RTC connection is gone: close with a final flush."""
        self._close(0, "transport lost", 0.0, report=False)

    def receive_text(self, text: str | bytes) -> None:
        """Feed one RTC user message from the agent.

        Raises:
            RemoteProtocolError: the message is malformed; the session is unchanged and usable.
        """
        event = ev.decode_realtime_server(text)
        if self._state is RoomState.CLOSED:
            self._notice_once("messages after the room closed are ignored")
            return
        if isinstance(event, UnknownEvent):
            self._notice_once(f"unknown event type {event.unknown_type!r} ignored")
            return
        if not isinstance(event, ServerEvent):  # pragma: no cover - the table holds only these
            raise RemoteProtocolError("not a server event", event_type=event.event_type)
        self._events.append(Received(event))
        extra = unknown_fields(event)
        if extra:
            self._notice_once(f"{event.event_type} carried unknown fields: {', '.join(extra)}")
        self._dispatch(event)

    # ------------------------------------------------------------ commands

    def press(self) -> bool:
        """Push-to-talk key down (``input_audio_buffer.start``); ``False``: already down.

        Raises:
            LocalProtocolError: not a push-to-talk room, or not ready.
        """
        self._require_ptt("press()")
        if (self._ptt, "input_audio_buffer.start") not in PTT_TRANSITIONS:
            return False
        if self._agent_speaking or self._chat in LIVE_CHAT:
            self._interrupt(send=True)
            self._flush("push-to-talk pressed")
        self._send(ev.InputAudioBufferStart())
        self._move_ptt("input_audio_buffer.start")
        return True

    def release(self) -> bool:
        """Push-to-talk key up (``input_audio_buffer.complete``); ``False``: not pressed.

        Raises:
            LocalProtocolError: not a push-to-talk room, or not ready.
        """
        self._require_ptt("release()")
        if (self._ptt, "input_audio_buffer.complete") not in PTT_TRANSITIONS:
            return False
        self._send(ev.InputAudioBufferComplete())
        self._move_ptt("input_audio_buffer.complete")
        return True

    def client_vad(self, speaking: bool) -> bool:
        """The device's VAD (``client_vad`` mode): sends ``client.vad`` on change only.

        Returns:
            Whether an event was sent (``False``: same value as last time).

        Raises:
            LocalProtocolError: not in ``client_vad`` mode, or not ready.
        """
        if self._turn_mode != "client_vad":
            raise LocalProtocolError(
                f"client_vad() is for client_vad rooms, this one is {self._turn_mode}"
            )
        self._require_ready("client_vad()")
        if speaking == self._vad:
            return False
        self._vad = speaking
        self._send(ev.ClientVad(vad=speaking))
        if speaking:
            self._on_user_speech("client.vad")
        return True

    def cancel(self) -> bool:
        """Stop the agent (``conversation.chat.cancel``); always emits a :class:`FlushPlayback`.

        Returns:
            Whether the cancel was sent (``False``: not ready, or nothing to cancel).
        """
        sent = False
        if self.ready and (self._agent_speaking or self._chat in LIVE_CHAT):
            self._interrupt(send=True)
            sent = True
        self._flush("cancelled locally")
        return sent

    def send_text(self, text: str) -> None:
        """A typed user message (``conversation.message.create``, role user, text).

        Raises:
            LocalProtocolError: not ready, or ``text`` is empty.
        """
        self._require_ready("send_text()")
        if not text:
            raise LocalProtocolError(
                "is empty", event_type="conversation.message.create", path="content"
            )
        self._send(ev.ConversationMessageCreate(role="user", content_type="text", content=text))

    def generate_audio(self, text: str) -> None:
        """Have the agent speak ``text`` (``input_text.generate_audio``, 1-1023 UTF-8 bytes).

        Raises:
            LocalProtocolError: not ready, or the text length is out of range.
        """
        self._require_ready("generate_audio()")
        size = len(text.encode("utf-8"))
        if not 0 < size < 1024:
            raise LocalProtocolError(
                f"is {size} bytes long, 1-1023 allowed",
                event_type="input_text.generate_audio",
                path="text",
            )
        self._send(ev.InputTextGenerateAudio(mode="text", text=text))

    def submit_tool_outputs(self, chat_id: str, outputs: Sequence[ToolOutput]) -> None:
        """Answer a :class:`ToolCallsRequested`; the chat runs again.

        Raises:
            LocalProtocolError: ``chat_id`` is not waiting for outputs, ``outputs`` is empty or
                names a tool call that was not requested.
        """
        self._require_ready("submit_tool_outputs()")
        if self._chat is not ChatPhase.REQUIRES_ACTION or chat_id != self._chat_id:
            raise LocalProtocolError(
                f"chat {chat_id} is not waiting for tool outputs "
                f"(chat {self._chat_id} is {self._chat.value})"
            )
        outs = tuple(outputs)
        if not outs:
            raise LocalProtocolError("submit_tool_outputs() with no outputs", path="tool_outputs")
        unknown = sorted({o.tool_call_id for o in outs} - self._tool_calls)
        if unknown:
            raise LocalProtocolError(
                f"names tool calls that were not requested: {', '.join(unknown)}",
                path="tool_outputs.tool_call_id",
            )
        self._send(ev.ConversationChatSubmitToolOutputs(chat_id=chat_id, tool_outputs=outs))
        self._move_chat("conversation.chat.submit_tool_outputs")

    def update_config(self, **changes: Any) -> None:
        """``session.update`` with just these fields (``SessionUpdateData`` field names).

        Values are the field types (``turn_detection=RealtimeTurnDetection(...)``) or plain JSON
        values (``turn_detection={"silence_duration_ms": 800}``). Before the first
        ``session.update`` the changes are merged into what it will send.

        Raises:
            LocalProtocolError: closed, an unknown field, a value out of range, or a
                ``turn_detection.type`` the room cannot take (``path`` names the field).
        """
        if self._state is RoomState.CLOSED:
            raise LocalProtocolError("update_config() after the room closed")
        update = self._checked(_build_update(changes))
        self._config = merge(self._config, update)
        td = update.turn_detection
        if td is not None and td.type is not None and td.type != self._turn_mode:
            self._turn_mode = td.type
            self._vad = False
        if self._config_sent:
            self._send(ev.SessionUpdate(config=update))

    def update_pre_answer(
        self, pre_answer: PreAnswer | None, trigger: PreAnswerTrigger | None = None
    ) -> None:
        """``session.pre_answer.update``: filler replies while the model thinks.

        Raises:
            LocalProtocolError: the agent is not present yet, closed, or a field is out of range.
        """
        self._require_agent("update_pre_answer()")
        data = _checked_object(
            PreAnswerData(pre_answer=pre_answer, trigger=trigger), "session.pre_answer.update"
        )
        self._send(ev.SessionPreAnswerUpdate(config=data))

    def update_mode(self, user_language: str) -> None:
        """``mode.update``: the language the user speaks.

        Raises:
            LocalProtocolError: the agent is not present yet, closed, or empty ``user_language``.
        """
        self._require_agent("update_mode()")
        if not user_language:
            raise LocalProtocolError(
                "is empty", event_type="mode.update", path="chat.user_language"
            )
        asr = self.effective_config.asr_config
        if asr is None or asr.stream_mode != "output_no_stream":
            self._notice_once(
                "mode.update is honoured only with asr_config.stream_mode=output_no_stream"
            )
        data = ModeData(mode="chat", chat=ModeChat(user_language=user_language))
        self._send(ev.ModeUpdate(config=data))

    # ------------------------------------------------------------ server events

    def _dispatch(self, event: ServerEvent) -> None:
        if isinstance(event, _CHAT_EVENTS):
            self._on_chat_event(event.event_type, event.chat)
            return
        match event:
            case ev.SessionCreated():
                if event.log_id:
                    self._logid = event.log_id
                if self._move_room("session.created"):
                    self._maybe_configure()
                else:
                    self._notice_once(f"session.created ignored while {self._state}")
            case ev.SessionUpdated():
                self._on_session_updated(event.config)
            case ev.ConversationCreated():
                self._on_conversation_created(event)
            case ev.RealtimeError():
                self._on_error(event)
            case ev.AudioUserSpeechStarted():
                self._user_speaking = True
                self._on_user_speech("audio.user.speech_started")
            case ev.AudioUserSpeechStopped():
                self._user_speaking = False
            case ev.AudioAgentSpeechStarted():
                self._agent_speaking = True
                self._flushed_speech = False
            case ev.AudioAgentSpeechStopped():
                # A normal reply completes its chat first (spec 3.6): a live chat means the
                # agent was interrupted (voice, keyword, or a cancel from elsewhere).
                if self._agent_speaking and self._chat in LIVE_CHAT and not self._flushed_speech:
                    self._interrupt(send=False)
                    self._flush("audio.agent.speech_stopped")
                self._agent_speaking = False
            case _:
                pass

    def _on_session_updated(self, echo: SessionUpdateData) -> None:
        self._echo = echo if self._echo is None else merge(self._echo, echo)
        td = echo.turn_detection
        if td is not None and td.type is not None and td.type != self._turn_mode:
            self._notice_once(
                f"session.updated says turn_detection.type {td.type!r}, "
                f"the session runs {self._turn_mode!r}"
            )
        self._events.append(RealtimeConfigUpdated(self.effective_config))

    def _on_conversation_created(self, event: ev.ConversationCreated) -> None:
        if event.conversation_id:
            self._conversation_id = event.conversation_id
        before = self._state
        if not self._move_room("conversation.created"):
            self._notice_once(f"conversation.created ignored while {self._state}")
            return
        if before is not RoomState.CONFIGURING:
            self._notice_once(f"conversation.created arrived while {before}")
        self._maybe_configure()
        self._events.append(
            RoomReady(self._conversation_id, event.prologue or "", self.effective_config)
        )

    def _on_error(self, event: ev.RealtimeError) -> None:
        if event.logid:
            self._logid = event.logid
        msg = event.msg or f"error {event.code}"
        if event.code in _ROOM_CLOSING:
            self._close(event.code, msg, _ROOM_CLOSING[event.code], report=True)
        elif event.code in _FATAL:
            self._events.append(ServerError(event.code, msg, fatal=True))
            self._close(event.code, msg, 0.0, report=False)
        else:
            self._events.append(ServerError(event.code, msg, fatal=False))

    def _on_chat_event(self, event_type: str, chat: Chat) -> None:
        cid = chat.id
        if chat.conversation_id:
            self._conversation_id = chat.conversation_id
        if cid in self._past:
            return  # a chat this session interrupted: reported, but it changes nothing
        if cid != self._chat_id:
            if event_type != "conversation.chat.created":
                self._notice_once(f"{event_type} for chat {cid}, which was never created")
            self._chat_id = cid
            self._tool_calls = frozenset()
        self._move_chat(event_type, server=True)
        if self._chat is ChatPhase.REQUIRES_ACTION:
            ra = chat.required_action
            calls = ra.submit_tool_outputs.tool_calls if ra and ra.submit_tool_outputs else ()
            self._tool_calls = frozenset(tc.id for tc in calls)
            if calls:
                self._events.append(ToolCallsRequested(cid, calls))
            else:
                self._notice_once(f"chat {cid} requires action but named no tool calls")
        elif self._chat is ChatPhase.NONE:
            self._chat_id = None

    # ------------------------------------------------------------ helpers

    def _on_user_speech(self, reason: str) -> None:
        if not self._agent_speaking or self._flushed_speech or not self._voice_interrupts():
            return
        self._interrupt(send=False)
        self._flush(reason)

    def _voice_interrupts(self) -> bool:
        cc = self.effective_config.chat_config
        if cc is None:
            return True
        if cc.allow_voice_interrupt is False:
            return False
        ic = cc.interrupt_config
        return ic is None or ic.mode in (None, "all") or not ic.effective_keywords()

    def _interrupt(self, *, send: bool) -> None:
        if send:
            self._send(ev.ConversationChatCancel())
        if self._chat in LIVE_CHAT and self._chat_id is not None:
            self._past[self._chat_id] = None
            if len(self._past) > _PAST_MEMORY:
                del self._past[next(iter(self._past))]
            self._move_chat("=interrupt")
            self._chat_id = None

    def _flush(self, reason: str) -> None:
        self._epoch += 1
        if self._agent_speaking:
            self._flushed_speech = True
        self._events.append(FlushPlayback(reason, self._epoch))

    def _close(self, code: int, reason: str, retry_after: float, *, report: bool) -> None:
        if self._state is RoomState.CLOSED:
            return
        self._move_room("=close")
        self._move_chat("=close")
        self._move_ptt("=close")
        self._chat_id = None
        self._agent_speaking = self._user_speaking = self._vad = False
        self._needs_new_room = True
        self._retry_after = retry_after
        self._flush(reason)
        if report:
            self._events.append(RoomClosed(code, reason, retry_after))

    def _maybe_configure(self) -> None:
        if self._config_sent or not self._agent_present:
            return
        if self._state is RoomState.JOINING or self._state is RoomState.CLOSED:
            return
        self._config_sent = True
        self._send(ev.SessionUpdate(config=self._config))
        if self._state is RoomState.CREATED:
            self._move_room("=configure")

    def _checked(self, config: SessionUpdateData) -> SessionUpdateData:
        config = _checked_object(config, "session.update")
        td = config.turn_detection
        kind = td.type if td is not None else None
        if kind is not None:
            if self._turn_mode == "client_interrupt":
                raise LocalProtocolError(
                    "push-to-talk rooms fix the turn mode at creation; send no type",
                    event_type="session.update",
                    path="turn_detection.type",
                )
            if kind == "client_interrupt":
                raise LocalProtocolError(
                    "client_interrupt is set at room creation, not by session.update",
                    event_type="session.update",
                    path="turn_detection.type",
                )
        return config

    def _send(self, event: ClientEvent) -> None:
        if not self._agent_present:  # pragma: no cover - every caller checks first
            raise LocalProtocolError(f"{event.event_type} before the agent joined")
        self._out.append(ev.encode_realtime(dataclasses.replace(event, id=self._ids())))

    def _require_agent(self, what: str) -> None:
        if self._state is RoomState.CLOSED:
            raise LocalProtocolError(f"{what} after the room closed")
        if not self._agent_present:
            raise LocalProtocolError(f"{what} before the agent joined the room (spec 3.1)")

    def _require_ready(self, what: str) -> None:
        self._require_agent(what)
        if self._state is not RoomState.READY:
            raise LocalProtocolError(
                f"{what} while {self._state}: wait for conversation.created (the room is ready)"
            )

    def _require_ptt(self, what: str) -> None:
        if self._turn_mode != "client_interrupt":
            raise LocalProtocolError(
                f"{what} is for push-to-talk rooms (client_interrupt), this one is "
                f"{self._turn_mode}"
            )
        self._require_ready(what)

    def _notice_once(self, message: str) -> None:
        # Messages can carry ids the agent chose: remember a bounded number, so a peer that
        # sends endless distinct oddities costs a bounded set (and at worst repeated notices).
        if message in self._reported:
            return
        if len(self._reported) >= _NOTICE_MEMORY:
            self._reported.clear()
        self._reported.add(message)
        self._events.append(Notice(message))

    def _move_room(self, trigger: str) -> bool:
        new = ROOM_TRANSITIONS.get((self._state, trigger))
        if new is None:
            return False
        self._state = new
        return True

    def _move_ptt(self, trigger: str) -> None:
        self._ptt = PTT_TRANSITIONS[(self._ptt, trigger)]

    def _move_chat(self, trigger: str, *, server: bool = False) -> None:
        new = CHAT_TRANSITIONS.get((self._chat, trigger))
        if new is None:
            if not server:  # pragma: no cover - local callers check the state first
                raise LocalProtocolError(f"chat cannot go from {self._chat.value} by {trigger}")
            self._notice_once(f"unexpected {trigger} while chat is {self._chat.value}")
            new = SERVER_CHAT_TARGET[trigger]
        self._chat = new


def _checked_object(obj: Any, event_type: str) -> Any:
    """Validate a schema object as the agent would; LocalProtocolError names the field."""
    try:
        decode_object(type(obj), encode_object(obj))
    except RemoteProtocolError as exc:
        raise LocalProtocolError(exc.reason, event_type=event_type, path=exc.path) from None
    return obj


_UPDATE_FIELDS: Final = frozenset(
    f.name for f in dataclasses.fields(SessionUpdateData) if f.name != "extra"
)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode_object(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _build_update(changes: dict[str, Any]) -> SessionUpdateData:
    unknown = sorted(set(changes) - _UPDATE_FIELDS)
    if unknown:
        raise LocalProtocolError(
            f"unknown session.update field {unknown[0]!r}",
            event_type="session.update",
            path=unknown[0],
        )
    if not changes:
        raise LocalProtocolError("update_config() with no changes", event_type="session.update")
    raw = {k: _jsonable(v) for k, v in changes.items() if v is not None}
    try:
        return decode_object(SessionUpdateData, raw)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(exc.reason, event_type="session.update", path=exc.path) from None
