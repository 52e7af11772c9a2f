"""The event sequences of spec 2.6, driven through the sans-I/O session with strings only."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
from coze_frames import (
    CONV,
    LOGID,
    PCM,
    audio_completed,
    audio_delta,
    canceled,
    chat_event,
    config,
    echo,
    error,
    frame,
    kinds,
    message,
    ready_session,
    requires_action,
    sent,
    sentence,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import event as event_stats
from hypothesis import strategies as st

from voicegw.errors import LocalProtocolError
from voicegw.protocol import (
    ChatUpdate,
    ConversationAudioDelta,
    ConversationChatCancel,
    ConversationChatFailed,
    ConversationChatSubmitToolOutputs,
    ConversationMessageCreate,
    InputAudioBufferAppend,
    InputTextGenerateAudio,
    InterruptConfig,
    ToolOutput,
    TurnDetection,
    decode_client,
)
from voicegw.protocol.session import (
    ChatState,
    ConnState,
    FlushPlayback,
    InputState,
    Ready,
    Received,
    Session,
    ToolCallsRequested,
    TurnMode,
)


def types(session: Session) -> list[str]:
    return [e.event_type for e in sent(session)]


def reply(session: Session, chat_id: str, now: float = 5.0, deltas: int = 2) -> None:
    """The service's reply to a committed turn (the order of spec 2.6.2)."""
    session.receive_text(chat_event("conversation.chat.created", chat_id), now)
    session.receive_text(chat_event("conversation.chat.in_progress", chat_id), now)
    session.receive_text(sentence("好的。"), now)
    for i in range(deltas):
        session.receive_text(audio_delta(chat_id), now + 0.01 * (i + 1))


def finish(session: Session, chat_id: str, now: float = 6.0) -> None:
    session.receive_text(audio_completed(chat_id), now)
    session.receive_text(chat_event("conversation.chat.completed", chat_id), now)


# ---------------------------------------------------------------- 2.6.1 connection setup


@pytest.mark.parametrize(
    ("mode", "turn_mode", "input_state"),
    [
        (None, TurnMode.PUSH_TO_TALK, InputState.IDLE),
        ("client_interrupt", TurnMode.PUSH_TO_TALK, InputState.IDLE),
        ("server_vad", TurnMode.SERVER_VAD, InputState.STREAMING),
        ("semantic_vad", TurnMode.SEMANTIC_VAD, InputState.STREAMING),
    ],
)
def test_setup(mode: str | None, turn_mode: TurnMode, input_state: InputState) -> None:
    cfg = config(mode)
    session = Session(cfg)
    assert session.conn_state is ConnState.AWAIT_CREATED
    assert session.turn_mode is turn_mode
    assert session.data_to_send() == []

    session.receive_text(frame("chat.created"), 0.0)
    (update,) = sent(session)
    assert isinstance(update, ChatUpdate)
    assert update.config == cfg
    assert update.id is not None and uuid.UUID(update.id).version == 4
    assert session.conn_state is ConnState.CONFIGURING
    assert kinds(session.events_received()) == ["chat.created"]
    assert session.logid == LOGID

    session.receive_text(echo(cfg), 0.1)
    events = session.events_received()
    assert kinds(events) == ["chat.updated", "READY"]
    assert isinstance(events[1], Ready)
    assert events[1].config == session.effective_config
    assert session.effective_config is not None
    assert session.effective_config.input_audio is not None
    assert session.effective_config.input_audio.bit_depth == 16  # the service default, echoed
    assert session.conn_state is ConnState.READY
    assert session.input_state is input_state
    assert session.chat_state is ChatState.NONE
    assert session.data_to_send() == []


# ---------------------------------------------------------------- 2.6.2 text turn


def test_text_turn_in_real_traffic_order() -> None:
    session = ready_session()
    session.send_text("今天天气真不错", 1.0)
    (create,) = sent(session)
    assert isinstance(create, ConversationMessageCreate)
    assert (create.role, create.content_type, create.content) == ("user", "text", "今天天气真不错")
    assert session.chat_state is ChatState.PENDING
    assert session.events_received() == []  # nothing was playing: no flush

    c = "7526821559890198568"
    script = [
        message(
            "conversation.message.completed",
            c,
            "q1",
            role="user",
            type="question",
            content="今天天气真不错",
        ),
        chat_event("conversation.chat.created", c),
        chat_event("conversation.chat.in_progress", c),
        message("conversation.message.delta", c, "a1", content="是啊"),
        sentence("是啊。"),
        audio_delta(c, "a1"),
        message("conversation.message.delta", c, "a1", content="，好天气"),
        audio_delta(c, "a1"),
        sentence("好天气总能让人心情也跟着变好呢！"),
        message("conversation.message.completed", c, "a1", content="是啊，好天气"),
        message(
            "conversation.message.completed",
            c,
            "v1",
            type="verbose",
            content='{"msg_type":"generate_answer_finish"}',
        ),
        audio_delta(c, "a1"),
        audio_completed(c, "a1"),
        chat_event("conversation.chat.completed", c, completed_at=1752474750),
    ]
    states = []
    for i, text in enumerate(script):
        session.receive_text(text, 2.0 + i / 10)
        states.append(session.chat_state)
    events = session.events_received()
    assert kinds(events) == [json.loads(t)["event_type"] for t in script]
    assert states[0] is ChatState.PENDING
    assert states[1:-1] == [ChatState.ACTIVE] * (len(script) - 2)
    assert states[-1] is ChatState.NONE
    assert session.chat_id is None
    assert session.conversation_id == CONV
    assert session.marks["first_delta"] == pytest.approx(2.5)
    assert session.dropped_deltas == 0
    assert session.data_to_send() == []


# ---------------------------------------------------------------- 2.6.3 push-to-talk


def test_ptt_turn() -> None:
    session = ready_session()
    session.press(1.0)
    assert kinds(session.events_received()) == ["FLUSH push-to-talk pressed"]
    assert session.input_state is InputState.LISTENING
    assert session.data_to_send() == []  # nothing to cancel: an idle session is never cancelled
    for i in range(3):
        session.send_audio(PCM, 1.0 + i * 0.02)
    appends = sent(session)
    assert [type(a) for a in appends] == [InputAudioBufferAppend] * 3
    assert all(isinstance(a, InputAudioBufferAppend) and a.delta == PCM for a in appends)
    assert len({a.id for a in appends}) == 3

    session.release(1.5)
    assert types(session) == ["input_audio_buffer.complete"]
    assert session.input_state is InputState.IDLE
    assert session.chat_state is ChatState.PENDING
    assert session.marks["speech_end"] == 1.5

    session.receive_text(frame("input_audio_buffer.completed"), 1.6)
    session.receive_text(frame("conversation.audio_transcript.update", {"content": "今天"}), 1.7)
    session.receive_text(
        frame("conversation.audio_transcript.completed", {"content": "今天天气"}), 1.8
    )
    assert session.chat_state is ChatState.PENDING
    reply(session, "c1", now=2.0)
    assert session.chat_state is ChatState.ACTIVE and session.chat_id == "c1"
    finish(session, "c1")
    assert session.chat_state is ChatState.NONE
    assert kinds(session.events_received()) == [
        "input_audio_buffer.completed",
        "conversation.audio_transcript.update",
        "conversation.audio_transcript.completed",
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
        "conversation.audio.delta",
        "conversation.audio.completed",
        "conversation.chat.completed",
    ]
    assert session.marks["first_delta"] - session.marks["speech_end"] == pytest.approx(0.51)


def test_ptt_press_during_reply_cancels_flushes_and_drops_late_audio() -> None:
    session = ready_session()
    session.send_text("讲个故事", 1.0)
    reply(session, "c1", now=2.0)
    session.events_received()
    session.data_to_send()

    session.press(3.0)
    assert types(session) == ["conversation.chat.cancel"]
    events = session.events_received()
    assert kinds(events) == ["FLUSH push-to-talk pressed"]
    assert isinstance(events[0], FlushPlayback) and events[0].epoch == session.playback_epoch
    assert session.input_state is InputState.LISTENING
    assert session.chat_state is ChatState.NONE and session.chat_id is None
    assert session.is_cancelled("c1")

    # Late audio of the cancelled reply, before and after the acknowledgement.
    session.receive_text(audio_delta("c1"), 3.01)
    session.receive_text(sentence("从前有座山。"), 3.02)
    session.receive_text(canceled(2), 3.03)
    session.receive_text(audio_delta("c1"), 3.04)
    session.receive_text(audio_completed("c1"), 3.05)
    assert kinds(session.events_received()) == [
        "conversation.chat.canceled",
        "conversation.audio.completed",
    ]
    assert session.dropped_deltas == 3
    session.send_audio(PCM, 3.1)
    session.release(3.5)
    assert types(session) == ["input_audio_buffer.append", "input_audio_buffer.complete"]
    reply(session, "c2", now=4.0)
    assert kinds(session.events_received()).count("conversation.audio.delta") == 2
    assert session.chat_id == "c2" and session.dropped_deltas == 3


def test_ptt_press_while_pending_cancels_the_reply_when_it_is_created() -> None:
    session = ready_session()
    session.press(1.0)
    session.release(1.5)
    assert types(session) == ["input_audio_buffer.complete"]
    session.press(1.6)  # changed my mind before the reply started
    assert session.data_to_send() == []  # no chat yet: nothing may be cancelled now
    assert kinds(session.events_received()) == [
        "FLUSH push-to-talk pressed",
        "FLUSH push-to-talk pressed",
    ]
    session.receive_text(frame("conversation.audio_transcript.completed", {"content": "a"}), 1.7)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 1.8)
    assert types(session) == ["conversation.chat.cancel"]
    assert session.is_cancelled("c1")
    assert session.chat_state is ChatState.NONE
    session.receive_text(audio_delta("c1"), 1.9)
    session.receive_text(canceled(2), 2.0)
    assert session.dropped_deltas == 1
    assert "FLUSH" not in " ".join(kinds(session.events_received()))

    session.release(2.5)
    reply(session, "c2", now=3.0)
    assert types(session) == ["input_audio_buffer.complete"]  # the new reply is not cancelled
    assert session.chat_state is ChatState.ACTIVE and session.chat_id == "c2"


def test_ptt_press_while_pending_then_quick_release_cancels_only_the_first_reply() -> None:
    session = ready_session()
    session.press(1.0)
    session.release(1.5)
    session.press(1.6)
    session.release(1.8)
    session.data_to_send()
    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    assert types(session) == ["conversation.chat.cancel"]
    assert session.chat_state is ChatState.PENDING  # the second turn is still due
    session.receive_text(canceled(2), 2.1)
    reply(session, "c2", now=2.5)
    assert session.data_to_send() == []
    assert session.chat_state is ChatState.ACTIVE and session.chat_id == "c2"
    assert session.dropped_deltas == 0


def test_ptt_press_while_idle_flushes_but_never_cancels() -> None:
    session = ready_session()
    session.send_text("你好", 1.0)
    reply(session, "c1", now=2.0)
    finish(session, "c1", now=2.5)  # all audio sent, but the device may still be playing it
    session.events_received()
    session.data_to_send()
    session.press(3.0)
    assert session.data_to_send() == []
    assert kinds(session.events_received()) == ["FLUSH push-to-talk pressed"]
    assert not session.is_cancelled("c1")


def test_ptt_empty_utterance_yields_no_chat() -> None:
    session = ready_session()
    session.press(1.0)
    session.release(1.2)
    session.receive_text(frame("input_audio_buffer.completed"), 1.3)
    session.receive_text(frame("conversation.audio_transcript.completed", {"content": ""}), 1.4)
    assert session.chat_state is ChatState.NONE
    assert types(session) == ["input_audio_buffer.complete"]
    session.press(2.0)
    assert session.data_to_send() == []  # the abandoned turn left no cancel due
    session.release(2.5)
    reply(session, "c1", now=3.0)
    assert "conversation.chat.cancel" not in types(session)


# ---------------------------------------------------------------- 2.6.4 / 2.6.5 VAD


@pytest.mark.parametrize("mode", ["server_vad", "semantic_vad"])
def test_vad_turn_with_barge_in(mode: str) -> None:
    session = ready_session(mode)
    assert session.input_state is InputState.STREAMING
    session.send_audio(PCM, 1.0)  # no press needed: the mic always streams
    session.receive_text(frame("input_audio_buffer.speech_started"), 1.1)
    assert kinds(session.events_received()) == [
        "input_audio_buffer.speech_started",
        "FLUSH input_audio_buffer.speech_started",
    ]
    session.receive_text(frame("conversation.audio_transcript.update", {"content": "讲"}), 1.2)
    session.receive_text(frame("input_audio_buffer.speech_stopped"), 1.5)
    assert session.chat_state is ChatState.PENDING
    assert session.marks["speech_end"] == 1.5
    session.receive_text(
        frame("conversation.audio_transcript.completed", {"content": "讲个故事"}), 1.6
    )
    reply(session, "c1", now=2.0)
    session.send_audio(PCM, 2.1)  # still streaming during the reply
    session.events_received()

    # The user talks over the reply.
    session.receive_text(frame("input_audio_buffer.speech_started"), 3.0)
    assert kinds(session.events_received()) == [
        "input_audio_buffer.speech_started",
        "FLUSH input_audio_buffer.speech_started",
    ]
    assert session.chat_state is ChatState.NONE
    session.receive_text(audio_delta("c1"), 3.01)
    session.receive_text(canceled(1), 3.02)
    session.receive_text(sentence("late"), 3.03)
    session.receive_text(audio_delta("c1"), 3.04)
    session.receive_text(frame("input_audio_buffer.speech_stopped"), 3.5)
    reply(session, "c2", now=4.0, deltas=3)
    session.receive_text(audio_delta("c1"), 4.1)  # very late: still dropped
    finish(session, "c2", now=5.0)
    assert kinds(session.events_received()) == [
        "conversation.chat.canceled",
        "input_audio_buffer.speech_stopped",
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
        "conversation.audio.delta",
        "conversation.audio.delta",
        "conversation.audio.completed",
        "conversation.chat.completed",
    ]
    assert session.dropped_deltas == 4
    assert set(types(session)) == {"input_audio_buffer.append"}  # the client never cancels
    assert session.chat_state is ChatState.NONE


@pytest.mark.parametrize("mode", ["server_vad", "semantic_vad"])
def test_vad_refuses_push_to_talk_actions(mode: str) -> None:
    session = ready_session(mode)
    for action in (session.press, session.release, session.clear_buffer):
        with pytest.raises(LocalProtocolError, match="push-to-talk"):
            action(1.0)
    assert session.data_to_send() == []


def test_keyword_interrupt_flushes_on_canceled_not_on_speech() -> None:
    td = TurnDetection(
        type="server_vad",
        interrupt_config=InterruptConfig(mode="keyword_contains", keywords=("扣子扣子",)),
    )
    cfg = config(turn_detection=td)
    session = Session(cfg)
    session.receive_text(frame("chat.created"), 0.0)
    session.receive_text(echo(cfg), 0.1)
    session.send_text("讲个故事", 1.0)
    reply(session, "c1", now=2.0)
    session.events_received()
    session.receive_text(frame("input_audio_buffer.speech_started"), 3.0)
    assert kinds(session.events_received()) == ["input_audio_buffer.speech_started"]
    session.receive_text(audio_delta("c1"), 3.1)  # plain speech does not interrupt
    assert kinds(session.events_received()) == ["conversation.audio.delta"]
    session.receive_text(canceled(1), 3.5)  # the keyword matched
    assert kinds(session.events_received()) == [
        "conversation.chat.canceled",
        "FLUSH conversation.chat.canceled",
    ]
    session.receive_text(audio_delta("c1"), 3.6)
    assert session.dropped_deltas == 1 and session.chat_state is ChatState.NONE


# ---------------------------------------------------------------- 2.6.6 barge-in by message


def test_message_create_barge_in_code_3() -> None:
    session = ready_session("server_vad")
    session.send_text("讲个故事", 1.0)
    reply(session, "c1", now=2.0)
    session.events_received()
    session.data_to_send()

    session.send_text("换一个", 3.0)
    assert types(session) == ["conversation.message.create"]  # no explicit cancel
    assert kinds(session.events_received()) == ["FLUSH conversation.message.create"]
    assert session.chat_state is ChatState.PENDING
    session.receive_text(audio_delta("c1"), 3.1)
    session.receive_text(canceled(3), 3.2)
    reply(session, "c2", now=4.0)
    assert kinds(session.events_received()) == [
        "conversation.chat.canceled",
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
        "conversation.audio.delta",
    ]
    assert session.dropped_deltas == 1


def test_assistant_message_only_adds_context() -> None:
    session = ready_session()
    session.send_text("讲个故事", 1.0)
    reply(session, "c1", now=2.0)
    session.events_received()
    session.data_to_send()
    session.send_text("(note)", 3.0, role="assistant")
    (create,) = sent(session)
    assert isinstance(create, ConversationMessageCreate) and create.role == "assistant"
    assert session.events_received() == []
    assert session.chat_state is ChatState.ACTIVE and session.chat_id == "c1"


def test_generate_audio_barge_in_on_a_reply() -> None:
    session = ready_session()
    session.send_text("讲个故事", 1.0)
    reply(session, "c1", now=2.0)
    session.events_received()
    session.data_to_send()
    session.generate_audio("请稍等。", 3.0)
    assert types(session) == ["input_text.generate_audio"]
    assert kinds(session.events_received()) == ["FLUSH input_text.generate_audio"]
    assert session.chat_state is ChatState.NONE and session.is_cancelled("c1")
    session.receive_text(audio_delta("c1"), 3.1)
    session.receive_text(sentence("请稍等。"), 3.2)
    session.receive_text(audio_delta("0", "0"), 3.3)
    assert kinds(session.events_received()) == [
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
    ]
    assert session.dropped_deltas == 1


def test_barge_in_during_generate_audio_drops_chat_0_until_the_next_generate_audio() -> None:
    session = ready_session()
    session.generate_audio("亲，你怎么不说话了。", 1.0)
    assert types(session) == ["input_text.generate_audio"]
    session.receive_text(sentence("亲，你怎么不说话了。"), 1.1)
    session.receive_text(audio_delta("0", "0"), 1.2)
    session.events_received()
    session.press(1.3)  # the user talks over the nudge
    assert session.data_to_send() == []  # generate_audio has no chat to cancel
    assert kinds(session.events_received()) == ["FLUSH push-to-talk pressed"]
    session.receive_text(audio_delta("0", "0"), 1.31)
    session.receive_text(sentence("more"), 1.32)
    session.receive_text(audio_completed("0", "0"), 1.33)
    assert kinds(session.events_received()) == ["conversation.audio.completed"]
    assert session.dropped_deltas == 2
    session.release(1.5)
    session.receive_text(frame("conversation.audio_transcript.completed", {"content": ""}), 1.6)
    session.events_received()

    session.generate_audio("还在吗？", 2.0)
    assert session.events_received() == []  # nothing is playing any more
    session.receive_text(sentence("还在吗？"), 2.1)
    session.receive_text(audio_delta("0", "0"), 2.2)
    assert kinds(session.events_received()) == [
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
    ]
    assert session.dropped_deltas == 2


# ---------------------------------------------------------------- 2.6.7 tool calls


def test_tool_call_round_trip() -> None:
    session = ready_session()
    session.send_text("北京天气怎么样", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    session.receive_text(chat_event("conversation.chat.in_progress", "c1"), 2.0)
    session.receive_text(
        message(
            "conversation.message.completed",
            "c1",
            "f1",
            type="function_call",
            content='{"name":"get_weather","arguments":{}}',
        ),
        2.1,
    )
    session.receive_text(requires_action("c1", "tc-1", "tc-2"), 2.2)
    events = session.events_received()
    assert kinds(events)[-2:] == ["conversation.chat.requires_action", "TOOLS c1 tc-1,tc-2"]
    request = events[-1]
    assert isinstance(request, ToolCallsRequested)
    assert request.tool_calls[0].function is not None
    assert request.tool_calls[0].function.name == "get_weather"
    assert session.chat_state is ChatState.REQUIRES_ACTION
    session.data_to_send()

    outputs = [ToolOutput(tool_call_id="tc-1", output='{"temp":20}')]
    with pytest.raises(LocalProtocolError, match="not waiting"):
        session.submit_tool_outputs("c-other", outputs, 2.5)
    with pytest.raises(LocalProtocolError, match="not requested"):
        session.submit_tool_outputs("c1", [ToolOutput(tool_call_id="tc-9", output="")], 2.5)
    with pytest.raises(LocalProtocolError, match="no outputs"):
        session.submit_tool_outputs("c1", [], 2.5)
    assert session.data_to_send() == []

    session.submit_tool_outputs("c1", outputs, 3.0)
    (submit,) = sent(session)
    assert isinstance(submit, ConversationChatSubmitToolOutputs)
    assert submit.chat_id == "c1" and submit.tool_outputs == tuple(outputs)
    assert session.chat_state is ChatState.ACTIVE
    session.receive_text(chat_event("conversation.chat.in_progress", "c1"), 3.1)
    session.receive_text(audio_delta("c1"), 3.2)
    finish(session, "c1", now=4.0)
    assert session.chat_state is ChatState.NONE
    with pytest.raises(LocalProtocolError):
        session.submit_tool_outputs("c1", outputs, 4.5)


# ---------------------------------------------------------------- 2.6.8 generate_audio


def test_generate_audio_sequence() -> None:
    session = ready_session()
    session.generate_audio("亲，你怎么不说话了。", 1.0)
    (gen,) = sent(session)
    assert isinstance(gen, InputTextGenerateAudio)
    assert (gen.mode, gen.text) == ("text", "亲，你怎么不说话了。")
    session.receive_text(sentence("亲，你怎么不说话了。"), 1.1)
    for i in range(12):
        session.receive_text(audio_delta("0", "0"), 1.2 + i / 100)
    session.receive_text(audio_completed("0", "0"), 1.4)
    events = session.events_received()
    assert len(events) == 14 and all(isinstance(e, Received) for e in events)
    assert isinstance(events[1], Received) and isinstance(events[1].event, ConversationAudioDelta)
    assert session.chat_state is ChatState.NONE and session.chat_id is None
    assert session.marks["first_delta"] == 1.2
    assert session.events_received() == []


@pytest.mark.parametrize("text", ["", "a" * 1024, "语" * 342])
def test_generate_audio_text_limits(text: str) -> None:
    session = ready_session()
    with pytest.raises(LocalProtocolError, match="1-1023 UTF-8 bytes"):
        session.generate_audio(text, 1.0)
    assert session.data_to_send() == []


# ---------------------------------------------------------------- 2.6.10 clear


def test_clear_context_and_buffer() -> None:
    session = ready_session()
    session.clear_context(1.0)
    session.press(1.1)
    session.send_audio(PCM, 1.2)
    session.clear_buffer(1.3)
    assert types(session) == [
        "conversation.clear",
        "input_audio_buffer.append",
        "input_audio_buffer.clear",
    ]
    assert session.input_state is InputState.LISTENING
    session.receive_text(frame("conversation.cleared"), 1.4)
    session.receive_text(frame("input_audio_buffer.cleared"), 1.5)
    assert kinds(session.events_received())[-2:] == [
        "conversation.cleared",
        "input_audio_buffer.cleared",
    ]
    vad = ready_session("server_vad")
    vad.clear_context(1.0)
    assert types(vad) == ["conversation.clear"]
    with pytest.raises(LocalProtocolError, match="invalid"):
        vad.clear_buffer(1.1)


# ---------------------------------------------------------------- 2.6.11 failure


def test_chat_failed() -> None:
    session = ready_session()
    session.send_text("你好", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    session.receive_text(
        chat_event(
            "conversation.chat.failed",
            "c1",
            failed_at=1752474750,
            last_error={"code": 1, "msg": "发生异常"},
        ),
        2.5,
    )
    events = session.events_received()
    assert isinstance(events[-1], Received)
    failed = events[-1].event
    assert isinstance(failed, ConversationChatFailed)
    assert failed.chat.last_error is not None and failed.chat.last_error.code == 1
    assert session.chat_state is ChatState.NONE and session.conn_state is ConnState.READY
    session.send_text("再试一次", 3.0)
    reply(session, "c2", now=4.0)
    assert session.chat_id == "c2"


def test_non_fatal_error_keeps_the_session() -> None:
    session = ready_session()
    session.receive_text(error(4013, "too many requests"), 1.0)
    assert kinds(session.events_received()) == ["error", "ERROR 4013"]
    assert session.conn_state is ConnState.READY and not session.close_expected()
    session.press(1.1)
    session.send_audio(PCM, 1.2)


def test_error_after_commit_abandons_the_pending_turn() -> None:
    session = ready_session()
    session.press(1.0)
    session.release(1.2)
    session.receive_text(error(4000, "The parameter audio is invalid."), 1.3)
    assert session.chat_state is ChatState.NONE
    assert session.conn_state is ConnState.READY


@pytest.mark.parametrize("code", [4027, 4028, 4100, 4101])
def test_fatal_error_codes(code: int) -> None:
    session = ready_session("server_vad")
    session.receive_text(error(code), 1.0)
    events = session.events_received()
    assert kinds(events) == ["error", f"ERROR {code} fatal"]
    assert session.conn_state is ConnState.FAILED and session.close_expected()
    assert session.input_state is InputState.IDLE
    with pytest.raises(LocalProtocolError, match="FAILED"):
        session.send_audio(PCM, 1.1)


def test_chat_update_rejected_while_configuring() -> None:
    session = Session(config())
    session.receive_text(frame("chat.created"), 0.0)
    session.receive_text(error(4000, "invalid voice_id"), 0.1)
    assert kinds(session.events_received()) == ["chat.created", "error", "ERROR 4000 fatal"]
    assert session.conn_state is ConnState.FAILED
    assert session.close_expected()
    with pytest.raises(LocalProtocolError):
        session.press(0.2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("sample_rate", 24000), ("format", "wav"), ("codec", "opus"), ("channel", 2)],
)
def test_chat_updated_with_another_input_format_fails(field: str, value: object) -> None:
    cfg = config("server_vad")
    session = Session(cfg)
    session.receive_text(frame("chat.created"), 0.0)
    bad = json.loads(echo(cfg))["data"]
    bad["input_audio"][field] = value
    session.receive_text(frame("chat.updated", bad), 0.1)
    events = session.events_received()
    assert kinds(events)[:2] == ["chat.created", "chat.updated"]
    assert kinds(events)[2] == "ERROR 4000 fatal"
    assert f"input_audio.{field}" in getattr(events[2], "msg", "")
    assert not any(isinstance(e, Ready) for e in events)
    assert session.conn_state is ConnState.FAILED and session.close_expected()
    with pytest.raises(LocalProtocolError):
        session.send_audio(PCM, 0.2)


def test_chat_updated_with_another_turn_mode_fails() -> None:
    cfg = config("semantic_vad")
    session = Session(cfg)
    session.receive_text(frame("chat.created"), 0.0)
    session.receive_text(echo(cfg, turn_detection={"type": "client_interrupt"}), 0.1)
    assert kinds(session.events_received())[-1] == "ERROR 4000 fatal"
    assert session.conn_state is ConnState.FAILED


def test_bit_depth_echo_is_not_a_mismatch() -> None:
    cfg = config()
    session = Session(cfg)
    session.receive_text(frame("chat.created"), 0.0)
    session.receive_text(echo(cfg), 0.1)  # the echo adds bit_depth 16, never requested
    assert session.conn_state is ConnState.READY


def test_cancel_sent_frames_have_ids() -> None:
    session = ready_session()
    session.send_text("你好", 1.0)
    reply(session, "c1", now=2.0)
    session.data_to_send()
    assert session.cancel(3.0) is True
    (frame_text,) = session.data_to_send()
    cancel = decode_client(frame_text)
    assert isinstance(cancel, ConversationChatCancel)
    assert cancel.id is not None and uuid.UUID(cancel.id).version == 4


# ---------------------------------------------------------------- any order


_CHAT_IDS = st.sampled_from(["c1", "c2", "c3", "0"])
_SERVER_FRAMES = st.one_of(
    st.just(frame("chat.created")),
    st.sampled_from(
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "conversation.chat.completed",
            "conversation.chat.failed",
        ]
    ).flatmap(lambda t: _CHAT_IDS.map(lambda c: chat_event(t, c))),
    _CHAT_IDS.map(lambda c: requires_action(c, "t1")),
    _CHAT_IDS.map(audio_delta),
    _CHAT_IDS.map(audio_completed),
    _CHAT_IDS.map(lambda c: message("conversation.message.delta", c, "m", content="x")),
    st.just(sentence("s")),
    st.sampled_from([1, 2, 3]).map(canceled),
    st.just(frame("conversation.chat.canceled")),
    st.sampled_from(
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.completed",
            "input_audio_buffer.cleared",
            "conversation.cleared",
            "future.event",
        ]
    ).map(frame),
    st.sampled_from(["", "讲个故事"]).map(
        lambda t: frame("conversation.audio_transcript.completed", {"content": t})
    ),
    st.sampled_from([1, 4000, 4013, 4027, 4100]).map(error),
)
_LOCAL = st.sampled_from(
    [
        "press",
        "release",
        "audio",
        "text",
        "assistant",
        "generate",
        "cancel",
        "submit",
        "clear_context",
        "clear_buffer",
        "update",
        "lost",
    ]
)
_STEP = st.one_of(
    st.tuples(st.just("server"), _SERVER_FRAMES),
    st.tuples(st.just("server"), st.just("echo")),
    st.tuples(st.just("local"), _LOCAL),
)


def _act(session: Session, action: str, now: float) -> None:
    match action:
        case "press":
            session.press(now)
        case "release":
            session.release(now)
        case "audio":
            session.send_audio(PCM, now)
        case "text":
            session.send_text("你好", now)
        case "assistant":
            session.send_text("note", now, role="assistant")
        case "generate":
            session.generate_audio("还在吗？", now)
        case "cancel":
            session.cancel(now)
        case "submit":
            outputs = [ToolOutput(tool_call_id="t1", output="{}")]
            session.submit_tool_outputs(session.chat_id or "c1", outputs, now)
        case "clear_context":
            session.clear_context(now)
        case "clear_buffer":
            session.clear_buffer(now)
        case "update":
            session.update_config(config(), now)
        case "lost":
            session.connection_lost(now)


def _check_invariants(session: Session, mode: str | None) -> None:
    live = session.chat_state in (ChatState.ACTIVE, ChatState.REQUIRES_ACTION)
    assert live == (session.chat_id is not None)
    assert session.close_expected() == (session.conn_state in (ConnState.FAILED, ConnState.CLOSED))
    if session.input_state is InputState.LISTENING:
        assert session.turn_mode is TurnMode.PUSH_TO_TALK
        assert session.conn_state is ConnState.READY
    if session.input_state is InputState.STREAMING:
        assert session.turn_mode is not TurnMode.PUSH_TO_TALK
        assert session.conn_state is ConnState.READY
    if session.conn_state is ConnState.READY and mode is not None:
        assert session.input_state is InputState.STREAMING
    if session.conn_state in (ConnState.FAILED, ConnState.CLOSED, ConnState.AWAIT_CREATED):
        assert session.input_state is InputState.IDLE
    if session.conn_state is ConnState.CLOSED:
        assert session.chat_state is ChatState.NONE


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from([None, "server_vad", "semantic_vad"]),
    setup=st.booleans(),
    steps=st.lists(_STEP, max_size=60),
)
def test_any_sequence_keeps_the_session_consistent(
    mode: str | None, setup: bool, steps: list[tuple[str, str]]
) -> None:
    cfg = config(mode)
    session = Session(cfg)
    if setup:
        steps = [("server", frame("chat.created")), ("server", "echo"), *steps]
    epoch = 0
    ids: set[str] = set()
    for i, (kind, what) in enumerate(steps):
        now = float(i)
        before = session.chat_state
        if kind == "server":
            if session.conn_state is ConnState.CLOSED:
                with pytest.raises(LocalProtocolError):
                    session.receive_text(frame("chat.created"), now)
                continue
            text = echo(cfg) if what == "echo" else what
            session.receive_text(text, now)  # valid frames never raise
        else:
            with contextlib.suppress(LocalProtocolError):
                _act(session, what, now)
        frames = [decode_client(f) for f in session.data_to_send()]
        for event in frames:
            assert event.id is not None and event.id not in ids
            ids.add(event.id)
            if isinstance(event, ConversationChatCancel):
                # Only while a chat runs, or when a chat whose turn was cancelled is created.
                if kind == "local":
                    assert what in ("press", "cancel")
                    assert before in (ChatState.ACTIVE, ChatState.REQUIRES_ACTION)
                else:
                    assert json.loads(what)["event_type"].startswith("conversation.chat.")
        for out in session.events_received():
            if isinstance(out, FlushPlayback):
                epoch += 1
                assert out.epoch == epoch
            elif isinstance(out, Received) and isinstance(out.event, ConversationAudioDelta):
                assert not session.is_cancelled(out.event.message.chat_id)
            elif isinstance(out, ToolCallsRequested):
                assert session.chat_state is ChatState.REQUIRES_ACTION
                assert session.chat_id == out.chat_id
        assert session.playback_epoch == epoch
        _check_invariants(session, mode)
        event_stats(f"{session.conn_state.value} {session.chat_state.value}")
