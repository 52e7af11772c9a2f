"""The sans-I/O Realtime session (spec 3.1, 3.4-3.7) driven with message strings only."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from voicegw.errors import LocalProtocolError, RemoteProtocolError
from voicegw.protocol.events import ClientEvent
from voicegw.protocol.objects import ASRConfig, ToolOutput
from voicegw.realtime import events as rt
from voicegw.realtime.objects import (
    PreAnswer,
    PreAnswerTrigger,
    RealtimeChatConfig,
    RealtimeInterruptConfig,
    RealtimeTurnDetection,
    SessionUpdateData,
)
from voicegw.realtime.session import (
    BILLING_RETRY_S,
    ChatPhase,
    FlushPlayback,
    Notice,
    RealtimeConfigUpdated,
    RealtimeOutput,
    RealtimeSession,
    Received,
    RoomClosed,
    RoomReady,
    RoomState,
    ServerError,
    ToolCallsRequested,
)

CONV = "7446668538246561827"


def msg(event_type: str, data: dict[str, Any] | None = None, **env: Any) -> str:
    obj: dict[str, Any] = {"id": "event_1", "event_type": event_type, **env}
    if data is not None:
        obj["data"] = data
    return json.dumps(obj, ensure_ascii=False)


def chat_msg(event_type: str, chat_id: str, **extra: Any) -> str:
    return msg(event_type, {"id": chat_id, "conversation_id": CONV, **extra})


def tools_msg(chat_id: str, *call_ids: str) -> str:
    calls = [
        {"id": c, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for c in call_ids
    ]
    return chat_msg(
        "conversation.chat.requires_action",
        chat_id,
        status="requires_action",
        required_action={
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {"tool_calls": calls},
        },
    )


def error_msg(code: int, text: str = "") -> str:
    return msg("error", {"code": code, "msg": text, "detail": {"logid": "L1"}})


def counter_ids() -> Any:
    n = itertools.count(1)
    return lambda: f"id-{next(n)}"


def sent(session: RealtimeSession) -> list[ClientEvent]:
    out = []
    for text in session.data_to_send():
        event = rt.decode_realtime_client(text)
        assert isinstance(event, ClientEvent), text
        assert json.loads(text)["data"] is not None  # data is always present (doc form)
        out.append(event)
    return out


def types(session: RealtimeSession) -> list[str]:
    return [e.event_type for e in sent(session)]


def outputs(session: RealtimeSession) -> list[RealtimeOutput]:
    return session.events_received()


def flushes(events: list[RealtimeOutput]) -> list[FlushPlayback]:
    return [e for e in events if isinstance(e, FlushPlayback)]


def received(events: list[RealtimeOutput]) -> list[str]:
    return [e.event.event_type for e in events if isinstance(e, Received)]


def config(**kw: Any) -> SessionUpdateData:
    base: dict[str, Any] = {"voice_id": "v1", "speech_rate": 10}
    base.update(kw)
    return SessionUpdateData(**base)


def joined(turn_mode: str = "server_vad", cfg: SessionUpdateData | None = None) -> RealtimeSession:
    """A ready session: the join sequence of spec 3.6, outputs drained."""
    if cfg is None:
        td = None if turn_mode == "client_interrupt" else RealtimeTurnDetection(type=turn_mode)
        cfg = config(turn_detection=td)
    s = RealtimeSession(cfg, turn_mode=turn_mode, ids=counter_ids())
    s.agent_joined()
    s.receive_text(msg("session.created", {"voice_id": "v1", "log_id": "LOG"}))
    s.receive_text(msg("session.updated", {"voice_id": "v1"}))
    s.receive_text(msg("conversation.created", {"conversation_id": CONV, "prologue": "你好"}))
    assert s.state == "ready"
    s.data_to_send()
    s.events_received()
    return s


def agent_reply(s: RealtimeSession, chat_id: str, *, finish: bool = True) -> None:
    """The agent's side of a turn (spec 3.6 free talk, after the user's message)."""
    s.receive_text(chat_msg("conversation.chat.created", chat_id, status="created"))
    s.receive_text(chat_msg("conversation.chat.in_progress", chat_id, status="in_progress"))
    s.receive_text(
        msg(
            "conversation.message.delta",
            {
                "id": "m1",
                "chat_id": chat_id,
                "role": "assistant",
                "type": "answer",
                "content": "好",
            },
        )
    )
    s.receive_text(msg("audio.agent.speech_started", {}))
    if finish:
        s.receive_text(
            msg(
                "conversation.message.completed",
                {"id": "m1", "chat_id": chat_id, "role": "assistant", "type": "answer"},
            )
        )
        s.receive_text(chat_msg("conversation.chat.completed", chat_id, status="completed"))
        s.receive_text(msg("audio.agent.speech_stopped", {}))


# ---------------------------------------------------------------- join (3.6)


def test_join_sequence_sends_the_full_config_after_session_created() -> None:
    cfg = config(
        longest_silence_ms=60000,
        turn_detection=RealtimeTurnDetection(type="server_vad", silence_duration_ms=800),
    )
    s = RealtimeSession(cfg, turn_mode="server_vad", ids=counter_ids())
    assert s.state == RoomState.JOINING == "joining"
    s.agent_joined()
    assert s.data_to_send() == []  # nothing until session.created
    s.receive_text(msg("session.created", {"voice_id": "v1", "log_id": "LOG"}))
    assert s.state == "configuring"
    out = sent(s)
    assert len(out) == 1 and isinstance(out[0], rt.SessionUpdate)
    assert out[0].config == cfg and out[0].id == "id-1"
    assert s.logid == "LOG"
    s.receive_text(msg("session.updated", {"voice_id": "v1", "speech_rate": 10}))
    s.receive_text(msg("conversation.created", {"conversation_id": CONV, "prologue": "你好"}))
    events = outputs(s)
    assert received(events) == ["session.created", "session.updated", "conversation.created"]
    updated = [e for e in events if isinstance(e, RealtimeConfigUpdated)]
    assert updated and updated[0].config.speech_rate == 10
    ready = [e for e in events if isinstance(e, RoomReady)]
    assert ready == [RoomReady(CONV, "你好", s.effective_config)]
    assert s.state == "ready" and s.ready and s.conversation_id == CONV
    assert not [e for e in events if isinstance(e, Notice)]


def test_nothing_is_sent_before_the_agent_joins() -> None:
    s = RealtimeSession(config(), turn_mode="server_vad")
    s.receive_text(msg("session.created", {"voice_id": "v1"}))
    assert s.state == "created"
    assert s.data_to_send() == []
    with pytest.raises(LocalProtocolError, match="before the agent joined"):
        s.update_mode("en")
    with pytest.raises(LocalProtocolError):
        s.send_text("hi")
    s.update_config(speech_rate=5)  # stored: goes with the first session.update
    assert s.data_to_send() == []
    s.agent_joined()
    out = sent(s)
    assert [type(e) for e in out] == [rt.SessionUpdate]
    assert isinstance(out[0], rt.SessionUpdate) and out[0].config.speech_rate == 5
    assert s.state == "configuring"
    s.agent_joined()  # twice: nothing new
    assert s.data_to_send() == []


def test_conversation_created_without_session_created_is_tolerated() -> None:
    s = RealtimeSession(config(), turn_mode="server_vad")
    s.agent_joined()
    s.receive_text(msg("conversation.created", {"conversation_id": CONV, "prologue": ""}))
    assert s.state == "ready"
    assert types(s) == ["session.update"]
    events = outputs(s)
    assert any(isinstance(e, Notice) and "joining" in e.message for e in events)
    assert next(e for e in events if isinstance(e, RoomReady)).prologue == ""


def test_session_created_twice_is_a_notice() -> None:
    s = joined()
    s.receive_text(msg("session.created", {}))
    assert s.state == "ready" and s.data_to_send() == []
    assert any(isinstance(e, Notice) for e in outputs(s))


def test_effective_config_overlays_the_echo() -> None:
    s = joined()
    s.receive_text(msg("session.updated", {"loudness_rate": -20, "voice_id": "v2"}))
    eff = s.effective_config
    assert eff.voice_id == "v2" and eff.loudness_rate == -20 and eff.speech_rate == 10
    assert s.config.voice_id == "v1"


# ---------------------------------------------------------------- free talk and barge-in (3.6)


def test_free_talk_turn_has_no_flush_and_no_notice() -> None:
    s = joined()
    s.receive_text(msg("audio.user.speech_started", {}))
    s.receive_text(msg("conversation.audio_transcript.delta", {"content": "今天"}))
    s.receive_text(msg("audio.user.speech_stopped", {}))
    s.receive_text(
        msg(
            "conversation.message.completed",
            {"id": "q", "role": "user", "type": "question", "content": "今天"},
        )
    )
    agent_reply(s, "c1")
    events = outputs(s)
    assert flushes(events) == []
    assert not [e for e in events if isinstance(e, Notice)]
    assert s.chat_phase is ChatPhase.NONE and not s.agent_speaking
    assert s.data_to_send() == []  # server VAD: the client sends nothing during a turn


def test_barge_in_flushes_once_and_forgets_the_chat() -> None:
    s = joined()
    agent_reply(s, "c1", finish=False)
    assert s.chat_phase is ChatPhase.ACTIVE and s.agent_speaking
    outputs(s)
    s.receive_text(msg("audio.user.speech_started", {}))
    first = flushes(outputs(s))
    assert [f.reason for f in first] == ["audio.user.speech_started"]
    assert s.chat_phase is ChatPhase.NONE and s.chat_id is None
    s.receive_text(msg("audio.agent.speech_stopped", {}))
    assert flushes(outputs(s)) == []  # already flushed for this utterance
    # late events of the interrupted chat are reported but change nothing
    s.receive_text(chat_msg("conversation.chat.completed", "c1"))
    events = outputs(s)
    assert received(events) == ["conversation.chat.completed"] and s.chat_phase is ChatPhase.NONE
    assert s.data_to_send() == []  # the agent interrupted itself: no cancel sent
    agent_reply(s, "c2")
    assert flushes(outputs(s)) == [] and s.playback_epoch == 1


def test_keyword_interrupt_flushes_only_when_the_agent_stops() -> None:
    cfg = config(
        turn_detection=RealtimeTurnDetection(type="server_vad"),
        chat_config=RealtimeChatConfig(
            interrupt_config=RealtimeInterruptConfig(mode="keyword_prefix", keywords=("扣子",))
        ),
    )
    s = joined(cfg=cfg)
    agent_reply(s, "c1", finish=False)
    outputs(s)
    s.receive_text(msg("audio.user.speech_started", {}))
    assert flushes(outputs(s)) == []  # plain speech does not interrupt
    s.receive_text(msg("audio.agent.speech_stopped", {}))  # the keyword matched
    assert [f.reason for f in flushes(outputs(s))] == ["audio.agent.speech_stopped"]
    assert s.chat_phase is ChatPhase.NONE


def test_no_voice_interrupt_means_no_flush_on_user_speech() -> None:
    cfg = config(
        turn_detection=RealtimeTurnDetection(type="server_vad"),
        chat_config=RealtimeChatConfig(allow_voice_interrupt=False),
    )
    s = joined(cfg=cfg)
    agent_reply(s, "c1", finish=False)
    outputs(s)
    s.receive_text(msg("audio.user.speech_started", {}))
    assert flushes(outputs(s)) == []


def test_prologue_speech_ends_without_flush() -> None:
    s = joined()
    s.receive_text(msg("audio.agent.speech_started", {}))
    s.receive_text(msg("audio.agent.speech_stopped", {}))
    assert flushes(outputs(s)) == []


# ---------------------------------------------------------------- cancel


def test_cancel_while_speaking_sends_cancel_and_flushes() -> None:
    s = joined()
    agent_reply(s, "c1", finish=False)
    outputs(s)
    assert s.cancel() is True
    out = sent(s)
    assert [type(e) for e in out] == [rt.ConversationChatCancel]
    assert [f.reason for f in flushes(outputs(s))] == ["cancelled locally"]
    assert s.chat_phase is ChatPhase.NONE
    s.receive_text(msg("audio.agent.speech_stopped", {}))
    assert flushes(outputs(s)) == []


def test_cancel_when_idle_sends_nothing_but_flushes() -> None:
    s = joined()
    assert s.cancel() is False
    assert s.data_to_send() == []
    assert len(flushes(outputs(s))) == 1
    fresh = RealtimeSession(config(), turn_mode="server_vad")
    assert fresh.cancel() is False and fresh.data_to_send() == []


# ---------------------------------------------------------------- push-to-talk (3.6)


def test_ptt_press_release_and_duplicates() -> None:
    s = joined("client_interrupt")
    assert s.press() is True
    assert s.press() is False  # duplicate: ignored, like the service
    assert types(s) == ["input_audio_buffer.start"]
    s.receive_text(msg("input_audio_buffer.started", {}))
    assert s.ptt_pressed
    assert s.release() is True
    assert s.release() is False
    assert types(s) == ["input_audio_buffer.complete"]
    s.receive_text(msg("input_audio_buffer.completed", {}))
    agent_reply(s, "c1")
    events = outputs(s)
    assert received(events)[:2] == ["input_audio_buffer.started", "input_audio_buffer.completed"]
    assert flushes(events) == []


def test_ptt_press_during_reply_cancels_then_starts() -> None:
    s = joined("client_interrupt")
    agent_reply(s, "c1", finish=False)
    outputs(s)
    assert s.press() is True
    assert types(s) == ["conversation.chat.cancel", "input_audio_buffer.start"]
    assert [f.reason for f in flushes(outputs(s))] == ["push-to-talk pressed"]


def test_ptt_commands_need_a_ptt_room_and_readiness() -> None:
    s = joined("server_vad")
    with pytest.raises(LocalProtocolError, match="push-to-talk"):
        s.press()
    with pytest.raises(LocalProtocolError, match="push-to-talk"):
        s.release()
    early = RealtimeSession(config(), turn_mode="client_interrupt")
    early.agent_joined()
    early.receive_text(msg("session.created", {}))
    with pytest.raises(LocalProtocolError, match="configuring"):
        early.press()


def test_ptt_room_refuses_a_turn_type_in_session_update() -> None:
    with pytest.raises(LocalProtocolError) as info:
        RealtimeSession(
            config(turn_detection=RealtimeTurnDetection(type="server_vad")),
            turn_mode="client_interrupt",
        )
    assert info.value.path == "turn_detection.type"
    s = joined("client_interrupt")
    with pytest.raises(LocalProtocolError) as info:
        s.update_config(turn_detection={"type": "client_vad"})
    assert info.value.path == "turn_detection.type"


# ---------------------------------------------------------------- client VAD


def test_client_vad_sends_on_change_only() -> None:
    s = joined("client_vad")
    assert s.client_vad(False) is False
    assert s.client_vad(True) is True
    assert s.client_vad(True) is False
    assert s.client_vad(False) is True
    out = sent(s)
    assert [(type(e), getattr(e, "vad", None)) for e in out] == [
        (rt.ClientVad, True),
        (rt.ClientVad, False),
    ]


def test_client_vad_barge_in_flushes_locally() -> None:
    s = joined("client_vad")
    agent_reply(s, "c1", finish=False)
    outputs(s)
    assert s.client_vad(True)
    assert [f.reason for f in flushes(outputs(s))] == ["client.vad"]
    s.receive_text(msg("audio.user.speech_started", {}))
    s.receive_text(msg("audio.agent.speech_stopped", {}))
    assert flushes(outputs(s)) == []


def test_client_vad_only_in_client_vad_mode() -> None:
    s = joined("server_vad")
    with pytest.raises(LocalProtocolError, match="client_vad"):
        s.client_vad(True)
    s.update_config(turn_detection=RealtimeTurnDetection(type="client_vad"))
    assert isinstance(sent(s)[0], rt.SessionUpdate)
    assert s.turn_mode == "client_vad" and s.client_vad(True)


# ---------------------------------------------------------------- text, audio, tools


def test_send_text_and_generate_audio() -> None:
    s = joined()
    s.send_text("讲个笑话")
    s.generate_audio("亲，你怎么不说话了")
    out = sent(s)
    assert isinstance(out[0], rt.ConversationMessageCreate)
    assert (out[0].role, out[0].content_type, out[0].content) == ("user", "text", "讲个笑话")
    assert isinstance(out[1], rt.InputTextGenerateAudio) and out[1].text == "亲，你怎么不说话了"
    with pytest.raises(LocalProtocolError) as info:
        s.generate_audio("字" * 342)  # 1026 bytes
    assert info.value.path == "text"
    with pytest.raises(LocalProtocolError):
        s.generate_audio("")
    with pytest.raises(LocalProtocolError) as info:
        s.send_text("")
    assert info.value.path == "content"


def test_tool_call_round_trip() -> None:
    s = joined()
    s.receive_text(chat_msg("conversation.chat.created", "c1"))
    s.receive_text(tools_msg("c1", "t1", "t2"))
    events = outputs(s)
    calls = [e for e in events if isinstance(e, ToolCallsRequested)]
    assert len(calls) == 1 and calls[0].chat_id == "c1"
    assert [c.id for c in calls[0].tool_calls] == ["t1", "t2"]
    assert s.chat_phase is ChatPhase.REQUIRES_ACTION
    with pytest.raises(LocalProtocolError, match="not requested"):
        s.submit_tool_outputs("c1", [ToolOutput(tool_call_id="t9", output="x")])
    with pytest.raises(LocalProtocolError, match="not waiting"):
        s.submit_tool_outputs("c2", [ToolOutput(tool_call_id="t1", output="x")])
    with pytest.raises(LocalProtocolError, match="no outputs"):
        s.submit_tool_outputs("c1", [])
    s.submit_tool_outputs(
        "c1", [ToolOutput(tool_call_id="t1", output="晴"), ToolOutput(tool_call_id="t2", output="")]
    )
    out = sent(s)
    assert isinstance(out[0], rt.ConversationChatSubmitToolOutputs)
    assert out[0].chat_id == "c1" and len(out[0].tool_outputs) == 2
    assert s.chat_phase is ChatPhase.ACTIVE
    s.receive_text(chat_msg("conversation.chat.completed", "c1"))
    assert s.chat_phase is ChatPhase.NONE
    with pytest.raises(LocalProtocolError):
        s.submit_tool_outputs("c1", [ToolOutput(tool_call_id="t1", output="x")])


def test_tool_outputs_spelling_of_the_doc_table_is_read() -> None:
    s = joined()
    s.receive_text(chat_msg("conversation.chat.created", "c1"))
    s.receive_text(tools_msg("c1", "t1").replace('"tool_calls"', '"tool_outputs"'))
    calls = [e for e in outputs(s) if isinstance(e, ToolCallsRequested)]
    assert [c.id for c in calls[0].tool_calls] == ["t1"]


def test_requires_action_without_calls_is_a_notice() -> None:
    s = joined()
    s.receive_text(chat_msg("conversation.chat.created", "c1"))
    s.receive_text(
        chat_msg(
            "conversation.chat.requires_action",
            "c1",
            required_action={"type": "reply_message"},
        )
    )
    events = outputs(s)
    assert not [e for e in events if isinstance(e, ToolCallsRequested)]
    assert any(isinstance(e, Notice) and "no tool calls" in e.message for e in events)


def test_unexpected_chat_events_are_followed_with_a_notice() -> None:
    s = joined()
    s.receive_text(chat_msg("conversation.chat.in_progress", "c9"))
    assert s.chat_phase is ChatPhase.ACTIVE and s.chat_id == "c9"
    assert any(isinstance(e, Notice) and "never created" in e.message for e in outputs(s))
    s.receive_text(chat_msg("conversation.chat.failed", "c9", last_error={"code": 1, "msg": "x"}))
    assert s.chat_phase is ChatPhase.NONE


# ---------------------------------------------------------------- settings updates


def test_update_config_sends_only_the_changes() -> None:
    s = joined()
    s.update_config(speech_rate=-50, event_subscriptions=("error",))
    out = sent(s)
    assert isinstance(out[0], rt.SessionUpdate)
    assert rt.encode_realtime(out[0]).count('"data":{"speech_rate":-50,"event_subscriptions"') == 1
    assert s.config.speech_rate == -50 and s.config.voice_id == "v1"


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"speech_rate": 101}, "speech_rate"),
        ({"speech_rate": -51}, "speech_rate"),
        ({"loudness_rate": 200}, "loudness_rate"),
        ({"longest_silence_ms": 0}, "longest_silence_ms"),
        ({"turn_detection": {"silence_duration_ms": 199}}, "turn_detection.silence_duration_ms"),
        (
            {"turn_detection": RealtimeTurnDetection(silence_duration_ms=2001)},
            "turn_detection.silence_duration_ms",
        ),
        (
            {"turn_detection": {"semantic_vad_config": {"silence_threshold_ms": 50}}},
            "turn_detection.semantic_vad_config.silence_threshold_ms",
        ),
        (
            {"chat_config": {"interrupt_config": {"keywords": ["一二三四五六七八九"]}}},
            "chat_config.interrupt_config.keywords[0]",
        ),
        (
            {"chat_config": {"interrupt_config": {"keywords": [str(i) for i in range(11)]}}},
            "chat_config.interrupt_config.keywords",
        ),
        ({"voice_print_config": {"score": 101}}, "voice_print_config.score"),
        ({"tts_config": {"emotion_scale": 0.5}}, "tts_config.emotion_scale"),
        ({"asr_config": {"stream_mode": "fast"}}, "asr_config.stream_mode"),
        (
            {"voice_processing_config": {"enable_ans": True, "enable_pdns": True}},
            "voice_processing_config.enable_pdns",
        ),
        ({"speed": 1}, "speed"),
        ({"turn_detection": {"type": "client_interrupt"}}, "turn_detection.type"),
    ],
)
def test_update_config_validation_names_the_field(changes: dict[str, Any], path: str) -> None:
    s = joined()
    with pytest.raises(LocalProtocolError) as info:
        s.update_config(**changes)
    assert info.value.path == path
    assert path in str(info.value)
    assert s.data_to_send() == []


def test_constructor_validates_the_config() -> None:
    with pytest.raises(LocalProtocolError) as info:
        RealtimeSession(config(speech_rate=500), turn_mode="server_vad")
    assert info.value.path == "speech_rate" and info.value.event_type == "session.update"
    with pytest.raises(LocalProtocolError, match="turn_mode"):
        RealtimeSession(config(), turn_mode="ptt")
    with pytest.raises(LocalProtocolError) as info:
        RealtimeSession(
            config(turn_detection=RealtimeTurnDetection(type="client_vad")), turn_mode="server_vad"
        )
    assert info.value.path == "turn_detection.type" and "contradicts" in str(info.value)


def test_pre_answer_and_mode_updates() -> None:
    s = joined()
    s.update_pre_answer(
        PreAnswer(type="text", pre_answer_list=("嗯", "让我想想")),
        PreAnswerTrigger(type="time-trigger", time_after=1500),
    )
    s.update_mode("en")
    out = sent(s)
    assert isinstance(out[0], rt.SessionPreAnswerUpdate)
    assert out[0].config.trigger == PreAnswerTrigger(type="time-trigger", time_after=1500)
    assert isinstance(out[1], rt.ModeUpdate) and out[1].config.chat is not None
    assert out[1].config.chat.user_language == "en"
    assert any(isinstance(e, Notice) and "output_no_stream" in e.message for e in outputs(s))
    with pytest.raises(LocalProtocolError) as info:
        s.update_pre_answer(PreAnswer(type="text", pre_answer_list=("一二三四五六七八九十一",)))
    assert info.value.path == "pre_answer.pre_answer_list[0]"
    with pytest.raises(LocalProtocolError) as info:
        s.update_pre_answer(None, PreAnswerTrigger(time_after=3001))
    assert info.value.path == "trigger.time_after"


def test_mode_update_without_notice_in_no_stream_mode() -> None:
    s = joined(cfg=config(asr_config=ASRConfig(stream_mode="output_no_stream")))
    s.update_mode("zh")
    assert types(s) == ["mode.update"]
    assert not [e for e in outputs(s) if isinstance(e, Notice)]


# ---------------------------------------------------------------- errors and closing (3.7)


def test_error_4029_closes_the_room() -> None:
    s = joined()
    agent_reply(s, "c1", finish=False)
    outputs(s)
    s.receive_text(error_msg(4029, "The connection was closed due to prolonged user inactivity."))
    events = outputs(s)
    closed = [e for e in events if isinstance(e, RoomClosed)]
    assert closed == [RoomClosed(4029, closed[0].reason, 0.0)]
    assert "inactivity" in closed[0].reason
    assert flushes(events)
    assert s.state == "closed" and s.needs_new_room and s.logid == "L1"
    assert s.chat_phase is ChatPhase.NONE and not s.agent_speaking
    with pytest.raises(LocalProtocolError, match="closed"):
        s.send_text("hello?")
    assert s.cancel() is False
    s.receive_text(msg("audio.agent.speech_stopped", {}))  # late: ignored
    assert [type(e) for e in outputs(s)] == [FlushPlayback, Notice]
    with pytest.raises(LocalProtocolError):
        s.agent_joined()


@pytest.mark.parametrize("code", [4027, 4028])
def test_billing_errors_close_with_a_long_backoff(code: int) -> None:
    s = joined()
    s.receive_text(error_msg(code, "pay"))
    closed = [e for e in outputs(s) if isinstance(e, RoomClosed)]
    assert closed == [RoomClosed(code, "pay", BILLING_RETRY_S)]
    assert s.needs_new_room and s.retry_after_s == BILLING_RETRY_S


def test_auth_errors_are_fatal_and_others_are_not() -> None:
    s = joined()
    s.receive_text(error_msg(4000, "bad session.update"))
    assert [e for e in outputs(s) if isinstance(e, ServerError)] == [
        ServerError(4000, "bad session.update", fatal=False)
    ]
    assert s.state == "ready"
    s.receive_text(error_msg(4101))
    events = outputs(s)
    assert [e for e in events if isinstance(e, ServerError)] == [
        ServerError(4101, "error 4101", fatal=True)
    ]
    assert s.state == "closed" and s.needs_new_room


def test_agent_left_and_transport_lost() -> None:
    s = joined("client_interrupt")
    s.press()
    s.agent_left()
    events = outputs(s)
    assert [e for e in events if isinstance(e, RoomClosed)] == [
        RoomClosed(0, "the agent left the room", 0.0)
    ]
    assert not s.ptt_pressed and s.needs_new_room
    t = joined()
    t.transport_lost()
    events = outputs(t)
    assert [type(e) for e in events] == [FlushPlayback]
    assert t.state == "closed" and t.needs_new_room
    t.transport_lost()
    assert outputs(t) == []


# ---------------------------------------------------------------- malformed and unknown input


def test_malformed_messages_raise_and_leave_the_session_usable() -> None:
    s = joined()
    for bad in ["{", "[]", msg("session.updated", {"speech_rate": "fast"}), msg("error", {})]:
        with pytest.raises(RemoteProtocolError):
            s.receive_text(bad)
    with pytest.raises(RemoteProtocolError) as info:
        s.receive_text(msg("conversation.created", {"prologue": 3}))
    assert info.value.path == "data.prologue"
    assert s.state == "ready" and outputs(s) == []
    s.send_text("still here")
    assert types(s) == ["conversation.message.create"]


def test_unknown_events_and_fields_are_notices() -> None:
    s = joined()
    s.receive_text(msg("live.created", {"x": 1}))
    s.receive_text(msg("live.created", {"x": 2}))
    s.receive_text(msg("audio.agent.speech_started", {"volume": 3}, trace="t"))
    events = outputs(s)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert notices == [
        "unknown event type 'live.created' ignored",
        "audio.agent.speech_started carried unknown fields: data.volume, trace",
    ]
    assert received(events) == ["audio.agent.speech_started"]


def test_event_ids_are_unique_by_default() -> None:
    s = RealtimeSession(config(), turn_mode="client_interrupt")
    s.agent_joined()
    s.receive_text(msg("session.created", {}))
    s.receive_text(msg("conversation.created", {"conversation_id": CONV}))
    for _ in range(5):
        s.press()
        s.release()
    ids = [e.id for e in sent(s)]
    assert len(ids) == 11 and len(set(ids)) == 11 and all(ids)


# ---------------------------------------------------------------- wrong-state commands

_COMMANDS: dict[str, Any] = {
    "press": lambda s: s.press(),
    "release": lambda s: s.release(),
    "client_vad": lambda s: s.client_vad(True),
    "send_text": lambda s: s.send_text("hi"),
    "generate_audio": lambda s: s.generate_audio("hi"),
    "submit_tool_outputs": lambda s: s.submit_tool_outputs(
        "c1", [ToolOutput(tool_call_id="t1", output="x")]
    ),
}


def _at(stage: str, turn_mode: str) -> RealtimeSession:
    td = None if turn_mode == "client_interrupt" else RealtimeTurnDetection(type=turn_mode)  # type: ignore[arg-type]
    s = RealtimeSession(config(turn_detection=td), turn_mode=turn_mode)
    if stage == "joining":
        return s
    if stage == "created":  # session.created seen, agent not yet reported
        s.receive_text(msg("session.created", {}))
        return s
    s.agent_joined()
    s.receive_text(msg("session.created", {}))
    if stage == "configuring":
        return s
    s.receive_text(msg("conversation.created", {"conversation_id": CONV}))
    s.receive_text(error_msg(4029))
    assert stage == "closed"
    return s


@pytest.mark.parametrize("stage", ["joining", "created", "configuring", "closed"])
@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_turn_commands_before_ready_or_after_close_raise(stage: str, command: str) -> None:
    mode = {"press": "client_interrupt", "release": "client_interrupt", "client_vad": "client_vad"}
    s = _at(stage, mode.get(command, "server_vad"))
    assert s.state == stage
    s.data_to_send()
    with pytest.raises(LocalProtocolError) as info:
        _COMMANDS[command](s)
    assert str(info.value)
    assert s.data_to_send() == []
    assert s.state == stage


@pytest.mark.parametrize("stage", ["joining", "created", "closed"])
def test_setting_updates_need_the_agent(stage: str) -> None:
    s = _at(stage, "server_vad")
    s.data_to_send()
    with pytest.raises(LocalProtocolError):
        s.update_pre_answer(PreAnswer(type="none"))
    with pytest.raises(LocalProtocolError):
        s.update_mode("en")
    assert s.data_to_send() == []


def test_setting_updates_allowed_while_configuring() -> None:
    s = _at("configuring", "server_vad")
    s.data_to_send()
    s.update_pre_answer(PreAnswer(type="none"))
    s.update_config(voice_id="")  # empty values are applied by the agent, so they are sent
    assert types(s) == ["session.pre_answer.update", "session.update"]
    s.update_config(voice_id="x")
    (update,) = sent(s)
    assert isinstance(update, rt.SessionUpdate)
    assert json.loads(rt.encode_realtime(update))["data"] == {"voice_id": "x"}


def test_update_config_refuses_nothing_and_closed() -> None:
    s = joined()
    with pytest.raises(LocalProtocolError, match="no changes"):
        s.update_config()
    s.transport_lost()
    with pytest.raises(LocalProtocolError, match="closed"):
        s.update_config(speech_rate=1)


# ---------------------------------------------------------------- against the emulated agent


class _Room:
    """The session and the emulator's sans-I/O agent wired together on a simulated clock."""

    def __init__(self, turn_type: str, cfg: SessionUpdateData) -> None:
        import random

        from voicegw.emulator.agent import RealtimeAgent, RoomSetup
        from voicegw.emulator.bots import ToneBot
        from voicegw.emulator.ids import IdFactory

        setup = RoomSetup(
            room_id="r",
            bot_id="b",
            uid="u",
            conversation_id=CONV,
            turn_type=turn_type,
            prologue="hello there",
        )
        ids = IdFactory(random.Random(7), lambda: 1_700_000_000_000)
        self.agent = RealtimeAgent(ToneBot(), setup, now=0.0, ids=ids, wall_clock=lambda: 1.7e9)
        self.session = RealtimeSession(cfg, turn_mode=turn_type)
        self.now = 0.0
        self.log: list[RealtimeOutput] = []
        self.agent.join(0.0)
        self.session.agent_joined()

    def run(self, until: float) -> None:
        from voicegw.emulator.agent import SendText

        pending = self.session.data_to_send()
        while True:
            for text in pending:
                self.agent.receive_text(text, self.now)
            for out in self.agent.due(self.now):
                if isinstance(out, SendText):
                    self.session.receive_text(out.text)
            for event in self.session.events_received():
                self.log.append(event)
                if isinstance(event, ToolCallsRequested):
                    outs = [ToolOutput(tool_call_id=c.id, output="42") for c in event.tool_calls]
                    self.session.submit_tool_outputs(event.chat_id, outs)
            pending = self.session.data_to_send()
            if pending:  # answers queued while handling outputs go out at once
                continue
            deadline = self.agent.next_deadline()
            if deadline is None or deadline > until:
                self.now = until
                return
            self.now = max(self.now, deadline)

    def types(self) -> list[str]:
        return [e.event.event_type for e in self.log if isinstance(e, Received)]


def test_against_the_emulated_agent_join_tools_cancel_and_silence() -> None:
    room = _Room("client_interrupt", SessionUpdateData(voice_id="v", longest_silence_ms=30000))
    room.run(3.0)
    s = room.session
    assert s.state == "ready" and s.conversation_id == CONV
    ready = [e for e in room.log if isinstance(e, RoomReady)]
    assert len(ready) == 1 and ready[0].prologue == "hello there"
    assert room.types()[:3] == ["session.created", "session.updated", "conversation.created"]
    assert not [e for e in room.log if isinstance(e, (Notice, ServerError))]
    room.log.clear()
    s.send_text('/tool get_weather {"city": "x"}')
    room.run(12.0)
    assert [e for e in room.log if isinstance(e, ToolCallsRequested)]
    assert "conversation.chat.completed" in room.types() and s.chat_phase is ChatPhase.NONE
    assert "get_weather tool returned 42" in "".join(
        e.event.message.content or ""
        for e in room.log
        if isinstance(e, Received) and isinstance(e.event, rt.ConversationMessageCompleted)
    )
    room.log.clear()
    assert s.press() and s.release()
    room.run(13.0)
    assert room.types()[:2] == ["input_audio_buffer.started", "input_audio_buffer.completed"]
    room.log.clear()
    s.send_text("hello")
    room.run(room.now + 0.2)
    assert s.chat_phase is ChatPhase.ACTIVE
    assert s.cancel() is True
    room.run(room.now + 5.0)
    assert "conversation.chat.completed" not in room.types()  # the agent dropped the reply
    room.log.clear()
    room.run(80.0)
    closed = [e for e in room.log if isinstance(e, RoomClosed)]
    assert [c.code for c in closed] == [4029]
    assert s.state == "closed" and s.needs_new_room
    assert not [e for e in room.log if isinstance(e, (Notice, ServerError))]


def test_against_the_emulated_agent_client_vad_barge_in() -> None:
    cfg = SessionUpdateData(turn_detection=RealtimeTurnDetection(type="client_vad"))
    room = _Room("client_vad", cfg)
    room.run(3.0)
    s = room.session
    room.log.clear()
    s.send_text("tell me a long story about the sea and the wind and the stars")
    # run until the agent speaks, then barge in with the device's VAD
    for _ in range(200):
        room.run(room.now + 0.05)
        if s.agent_speaking:
            break
    assert s.agent_speaking
    before = s.playback_epoch
    assert s.client_vad(True)
    room.run(room.now + 0.5)
    assert s.playback_epoch == before + 1  # exactly one flush for the interruption
    assert "audio.agent.speech_stopped" in room.types() and not s.agent_speaking
    assert s.client_vad(False)
    room.run(room.now + 10)
    assert not [e for e in room.log if isinstance(e, ServerError)]
