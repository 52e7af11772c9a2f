"""The sans-I/O session: gating of local actions, robustness, outputs and logging."""

from __future__ import annotations

import base64
import logging
import uuid

import pytest
from coze_frames import (
    CONV,
    PCM,
    audio_delta,
    canceled,
    chat_event,
    config,
    echo,
    frame,
    kinds,
    ready_session,
    requires_action,
    sent,
)

from voicegw.errors import LocalProtocolError, RemoteProtocolError
from voicegw.protocol import (
    ChatConfig,
    ChatUpdate,
    ChatUpdateData,
    InputAudio,
    OutputAudio,
    ToolOutput,
    TurnDetection,
    VoiceProcessingConfig,
    decode_client,
)
from voicegw.protocol.session import (
    ChatState,
    ConfigUpdated,
    ConnState,
    FlushPlayback,
    InputState,
    Notice,
    Received,
    Session,
    TurnMode,
)
from voicegw.protocol.states import (
    CHAT_TRANSITIONS,
    CONN_TRANSITIONS,
    INPUT_TRANSITIONS,
    SERVER_CHAT_TARGET,
)


def _turn(session: Session, chat_id: str, now: float) -> None:
    session.send_text("你好", now)
    session.receive_text(chat_event("conversation.chat.created", chat_id), now + 0.1)
    session.receive_text(audio_delta(chat_id), now + 0.2)
    session.receive_text(chat_event("conversation.chat.completed", chat_id), now + 0.3)


# ---------------------------------------------------------------- before READY


def test_audio_before_ready_is_refused_with_the_reason() -> None:
    session = Session(config("server_vad"))
    with pytest.raises(LocalProtocolError, match="wav") as info:
        session.send_audio(PCM, 0.0)
    assert "AWAIT_CREATED" in str(info.value)
    session.receive_text(frame("chat.created"), 0.1)
    with pytest.raises(LocalProtocolError, match="CONFIGURING"):
        session.send_audio(PCM, 0.2)
    assert [e.event_type for e in sent(session)] == ["chat.update"]


@pytest.mark.parametrize("action", ["press", "clear_context", "clear_buffer"])
def test_local_actions_before_ready_are_refused(action: str) -> None:
    session = Session(config())
    with pytest.raises(LocalProtocolError, match="not READY"):
        getattr(session, action)(0.0)
    with pytest.raises(LocalProtocolError, match="not READY"):
        session.send_text("hi", 0.0)
    with pytest.raises(LocalProtocolError, match="not READY"):
        session.generate_audio("hi", 0.0)
    assert session.data_to_send() == []


def test_cancel_before_ready_only_flushes() -> None:
    session = Session(config())
    assert session.cancel(0.0) is False
    assert session.data_to_send() == []
    assert kinds(session.events_received()) == ["FLUSH cancelled locally"]


# ---------------------------------------------------------------- push-to-talk gating


def test_ptt_gating() -> None:
    session = ready_session()
    assert session.turn_mode is TurnMode.PUSH_TO_TALK
    with pytest.raises(LocalProtocolError, match="press"):
        session.send_audio(PCM, 1.0)
    with pytest.raises(LocalProtocolError, match="without press"):
        session.release(1.0)
    session.press(1.1)
    with pytest.raises(LocalProtocolError, match="already LISTENING"):
        session.press(1.2)
    with pytest.raises(LocalProtocolError, match="no audio"):
        session.send_audio(b"", 1.2)
    session.send_audio(PCM, 1.3)
    session.release(1.4)
    assert session.input_state is InputState.IDLE
    with pytest.raises(LocalProtocolError):
        session.send_audio(PCM, 1.5)


def test_send_text_validation() -> None:
    session = ready_session()
    with pytest.raises(LocalProtocolError, match="role"):
        session.send_text("hi", 1.0, role="system")
    with pytest.raises(LocalProtocolError, match="empty"):
        session.send_text("", 1.0)
    assert session.data_to_send() == []


# ---------------------------------------------------------------- cancel()


def test_cancel_when_idle_never_sends() -> None:
    session = ready_session()
    assert session.cancel(1.0) is False
    assert session.data_to_send() == []
    assert kinds(session.events_received()) == ["FLUSH cancelled locally"]


def test_cancel_during_reply_sends_once_and_flushes() -> None:
    session = ready_session("server_vad")
    session.send_text("讲个故事", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    session.data_to_send()
    session.events_received()
    assert session.cancel(3.0) is True
    assert [e.event_type for e in sent(session)] == ["conversation.chat.cancel"]
    assert kinds(session.events_received()) == ["FLUSH cancelled locally"]
    assert session.cancel(3.1) is False  # nothing is running any more
    assert session.data_to_send() == []


def test_cancel_while_pending_is_deferred_to_chat_created() -> None:
    session = ready_session()
    session.send_text("讲个故事", 1.0)
    session.data_to_send()
    assert session.cancel(1.1) is False
    assert session.data_to_send() == []
    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    assert [e.event_type for e in sent(session)] == ["conversation.chat.cancel"]
    assert session.chat_state is ChatState.NONE
    session.receive_text(audio_delta("c1"), 2.1)
    assert session.dropped_deltas == 1


def test_cancel_during_requires_action() -> None:
    session = ready_session()
    session.send_text("天气", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    session.receive_text(requires_action("c1", "tc"), 2.1)
    assert session.chat_state is ChatState.REQUIRES_ACTION
    session.data_to_send()
    assert session.cancel(2.2) is True
    with pytest.raises(LocalProtocolError):
        session.submit_tool_outputs("c1", [ToolOutput(tool_call_id="tc", output="x")], 2.3)


# ---------------------------------------------------------------- flushes and epochs


def test_flush_epochs_count_up() -> None:
    session = ready_session("server_vad")
    for i in range(3):
        session.receive_text(frame("input_audio_buffer.speech_started"), float(i))
    session.cancel(4.0)
    session.connection_lost(5.0)
    flushes = [e for e in session.events_received() if isinstance(e, FlushPlayback)]
    assert [f.epoch for f in flushes] == [1, 2, 3, 4, 5]
    assert session.playback_epoch == 5
    assert flushes[-1].reason == "connection lost"


def test_send_text_when_nothing_played_does_not_flush() -> None:
    session = ready_session()
    _turn(session, "c1", 1.0)  # audio arrived: the device may still be playing it
    session.events_received()
    session.send_text("再说一遍", 2.0)
    assert kinds(session.events_received()) == ["FLUSH conversation.message.create"]
    session.send_text("还有", 2.1)  # nothing arrived since that flush
    assert session.events_received() == []


# ---------------------------------------------------------------- robustness


def test_malformed_frame_raises_and_leaves_the_session_usable() -> None:
    session = ready_session()
    session.send_text("你好", 1.0)
    session.data_to_send()
    before = (session.conn_state, session.chat_state, session.input_state, session.playback_epoch)
    bad: list[str | bytes] = [
        b"\xff\xfe",
        "{not json",
        "[]",
        '{"data":{}}',
        frame("conversation.chat.created", {"id": 7}),
        frame("conversation.audio.delta", {"id": "m", "chat_id": "c", "content": "@@@"}),
        frame("error", {"msg": "no code"}),
    ]
    for text in bad:
        with pytest.raises(RemoteProtocolError):
            session.receive_text(text, 1.5)
    assert session.events_received() == [] and session.data_to_send() == []
    after = (session.conn_state, session.chat_state, session.input_state, session.playback_epoch)
    assert after == before

    session.receive_text(chat_event("conversation.chat.created", "c1"), 2.0)
    session.receive_text(audio_delta("c1"), 2.1)
    session.receive_text(chat_event("conversation.chat.completed", "c1"), 2.2)
    assert kinds(session.events_received()) == [
        "conversation.chat.created",
        "conversation.audio.delta",
        "conversation.chat.completed",
    ]
    assert session.chat_state is ChatState.NONE


def test_malformed_frame_error_names_event_type_and_path() -> None:
    session = ready_session()
    text = frame("chat.updated", {"output_audio": {"speech_rate": 500}})
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_text(text, 1.0)
    assert info.value.event_type == "chat.updated"
    assert info.value.path == "data.output_audio.speech_rate"


def test_unknown_event_type_is_a_notice_once() -> None:
    session = ready_session()
    session.receive_text(frame("live.created", {"secret_payload": "abc"}), 1.0)
    session.receive_text(frame("live.created"), 1.1)
    events = session.events_received()
    assert kinds(events) == ["NOTICE unknown event type 'live.created' ignored"]
    assert "abc" not in repr(events)
    _turn(session, "c1", 2.0)
    assert session.chat_state is ChatState.NONE
    assert "conversation.audio.delta" in kinds(session.events_received())


def test_unknown_fields_are_reported_by_path_without_payloads() -> None:
    session = ready_session()
    session.send_text("你好", 1.0)
    text = chat_event("conversation.chat.created", "c1", mood={"secret": "s3cr3t"})
    session.receive_text(text, 2.0)
    events = session.events_received()
    assert kinds(events) == [
        "conversation.chat.created",
        "NOTICE conversation.chat.created carried unknown fields: data.mood",
    ]
    assert "s3cr3t" not in repr(events[1])
    assert session.chat_state is ChatState.ACTIVE  # the event was still acted on
    session.receive_text(chat_event("conversation.chat.in_progress", "c1", mood=1), 2.1)
    assert kinds(session.events_received())[1].endswith("unknown fields: data.mood")


def test_out_of_order_server_events_are_tolerated() -> None:
    session = ready_session()
    session.receive_text(chat_event("conversation.chat.in_progress", "c9"), 1.0)
    events = kinds(session.events_received())
    assert any("never created" in e for e in events)
    assert session.chat_state is ChatState.ACTIVE and session.chat_id == "c9"
    session.receive_text(chat_event("conversation.chat.created", "c10"), 1.1)
    assert any(
        "unexpected conversation.chat.created" in e for e in kinds(session.events_received())
    )
    assert session.chat_id == "c10"
    session.receive_text(chat_event("conversation.chat.completed", "c10"), 1.2)
    session.receive_text(chat_event("conversation.chat.completed", "c10"), 1.3)  # duplicate
    assert session.chat_state is ChatState.NONE
    session.receive_text(frame("chat.created"), 1.4)
    assert "NOTICE chat.created arrived twice" in kinds(session.events_received())
    assert session.conn_state is ConnState.READY
    assert session.data_to_send() == []


def test_requires_action_without_tool_calls_is_a_notice() -> None:
    session = ready_session()
    session.send_text("x", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 1.1)
    session.receive_text(requires_action("c1"), 1.2)
    assert kinds(session.events_received())[-1] == (
        "NOTICE chat c1 requires action but named no tool calls"
    )
    assert session.chat_state is ChatState.REQUIRES_ACTION


def test_speech_started_in_ptt_is_ignored_with_a_notice() -> None:
    session = ready_session()
    session.receive_text(frame("input_audio_buffer.speech_started"), 1.0)
    assert kinds(session.events_received()) == [
        "input_audio_buffer.speech_started",
        "NOTICE input_audio_buffer.speech_started in push-to-talk mode ignored",
    ]


def test_events_before_configuration_are_noticed_and_handled() -> None:
    session = Session(config())
    session.receive_text(frame("conversation.cleared"), 0.0)
    assert kinds(session.events_received()) == [
        "conversation.cleared",
        "NOTICE conversation.cleared arrived before the session was configured",
    ]
    assert session.conn_state is ConnState.AWAIT_CREATED


def test_canceled_with_nothing_expected_flushes() -> None:
    session = ready_session()
    session.receive_text(canceled(1), 1.0)
    assert kinds(session.events_received()) == [
        "conversation.chat.canceled",
        "FLUSH conversation.chat.canceled",
    ]


# ---------------------------------------------------------------- connection lost


def test_connection_lost_during_a_turn() -> None:
    session = ready_session()
    session.press(1.0)
    session.release(1.1)
    session.events_received()
    session.connection_lost(1.2)
    assert session.conn_state is ConnState.CLOSED
    assert session.chat_state is ChatState.NONE and session.chat_id is None
    assert session.input_state is InputState.IDLE
    assert session.close_expected()
    assert kinds(session.events_received()) == ["FLUSH connection lost"]
    session.connection_lost(1.3)  # idempotent
    assert session.events_received() == []
    with pytest.raises(LocalProtocolError):
        session.receive_text(frame("chat.created"), 1.4)
    with pytest.raises(LocalProtocolError):
        session.press(1.5)
    with pytest.raises(LocalProtocolError):
        session.update_config(config(), 1.6)
    assert session.cancel(1.7) is False


def test_connection_lost_while_streaming() -> None:
    session = ready_session("server_vad")
    session.send_text("x", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 1.1)
    session.connection_lost(1.2)
    assert session.input_state is InputState.IDLE and session.chat_state is ChatState.NONE
    with pytest.raises(LocalProtocolError):
        session.send_audio(PCM, 1.3)


# ---------------------------------------------------------------- configuration


def test_invalid_config_is_refused_up_front() -> None:
    bad = ChatUpdateData(
        voice_processing_config=VoiceProcessingConfig(enable_ans=True, enable_pdns=True)
    )
    with pytest.raises(LocalProtocolError) as info:
        Session(bad)
    assert info.value.path == "voice_processing_config.enable_pdns"
    g711 = ChatUpdateData(input_audio=InputAudio(format="pcm", codec="g711u", sample_rate=16000))
    with pytest.raises(LocalProtocolError, match="8000"):
        Session(g711)


def test_update_config_merges_and_resends() -> None:
    session = ready_session()
    louder = ChatUpdateData(output_audio=OutputAudio(loudness_rate=20))
    session.update_config(louder, 1.0)
    (update,) = sent(session)
    assert isinstance(update, ChatUpdate)
    assert update.config.output_audio is not None
    assert update.config.output_audio.loudness_rate == 20
    assert update.config.output_audio.codec == "pcm"  # kept from the first configuration
    assert update.config.input_audio == config().input_audio
    assert session.config == update.config
    session.receive_text(echo(update.config), 1.1)
    events = session.events_received()
    assert kinds(events) == ["chat.updated", "CONFIG UPDATED"]
    assert isinstance(events[1], ConfigUpdated)
    assert session.effective_config == events[1].config


def test_update_config_refuses_a_turn_mode_change_and_bad_values() -> None:
    session = ready_session()
    with pytest.raises(LocalProtocolError, match="new connection"):
        session.update_config(ChatUpdateData(turn_detection=TurnDetection(type="server_vad")), 1.0)
    with pytest.raises(LocalProtocolError) as info:
        session.update_config(ChatUpdateData(output_audio=OutputAudio(speech_rate=300)), 1.0)
    assert info.value.path == "output_audio.speech_rate"
    assert session.data_to_send() == []


def test_update_config_before_chat_created_goes_into_the_first_update() -> None:
    session = Session(config())
    session.update_config(ChatUpdateData(chat_config=ChatConfig(user_id="dev-42")), 0.0)
    assert session.data_to_send() == []
    session.receive_text(frame("chat.created"), 0.1)
    (update,) = sent(session)
    assert isinstance(update, ChatUpdate) and update.config.chat_config is not None
    assert update.config.chat_config.user_id == "dev-42"


def test_conversation_id_is_learned() -> None:
    cfg = config()
    session = Session(cfg)
    assert session.conversation_id is None
    session.receive_text(frame("chat.created"), 0.0)
    data = echo(cfg).replace('"chat_config": {', '"chat_config": {"conversation_id": "conv-1", ')
    session.receive_text(data, 0.1)
    assert session.conversation_id == "conv-1"
    session.send_text("x", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 1.1)
    assert session.conversation_id == CONV
    resumed = Session(ChatUpdateData(chat_config=ChatConfig(conversation_id="conv-2")))
    assert resumed.conversation_id == "conv-2"


# ---------------------------------------------------------------- outputs


def test_outputs_swap_and_every_frame_has_a_fresh_uuid() -> None:
    session = ready_session()
    session.press(1.0)
    for i in range(5):
        session.send_audio(PCM, 1.0 + i / 50)
    session.release(1.2)
    session.clear_context(1.3)
    frames = session.data_to_send()
    assert session.data_to_send() == []
    ids = [decode_client(f).id for f in frames]
    assert len(ids) == 7 and len(set(ids)) == 7
    assert all(i is not None and uuid.UUID(i).version == 4 for i in ids)
    assert len(session.events_received()) == 1
    assert session.events_received() == []


def test_received_events_never_show_audio() -> None:
    session = ready_session()
    session.send_text("x", 1.0)
    session.receive_text(chat_event("conversation.chat.created", "c1"), 1.1)
    audio = bytes(range(200))
    session.receive_text(audio_delta("c1", audio=audio), 1.2)
    event = session.events_received()[-1]
    assert isinstance(event, Received)
    assert base64.b64encode(audio).decode()[:16] not in repr(event)


def test_debug_log_lines_have_direction_prefixes_and_no_payloads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.session")
    audio = bytes(range(256))
    with caplog.at_level(logging.DEBUG, logger="test.session"):
        session = ready_session(logger=log, debug=True)
        session.press(1.0)
        session.send_audio(audio, 1.0)
        session.release(1.1)
        session.receive_text(chat_event("conversation.chat.created", "c1"), 1.2)
        session.receive_text(audio_delta("c1", audio=audio), 1.3)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "> chat.update in=pcm/pcm/16000" in text
    assert "= READY (chat.updated)" in text
    assert "> input_audio_buffer.append 256B" in text
    assert "< conversation.chat.created chat=c1" in text
    assert "= chat ACTIVE" in text
    assert "= input LISTENING" in text
    assert base64.b64encode(audio).decode()[:16] not in text
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert all(r.getMessage().startswith("[") for r in caplog.records)


def test_no_log_lines_without_debug(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.session.quiet")
    with caplog.at_level(logging.DEBUG, logger="test.session.quiet"):
        session = ready_session(logger=log)
        _turn(session, "c1", 1.0)
    assert caplog.records == []


def test_notices_are_session_events() -> None:
    session = ready_session()
    session.receive_text(frame("x.y"), 1.0)
    (notice,) = session.events_received()
    assert isinstance(notice, Notice) and "x.y" in notice.message


def test_each_chat_updated_is_checked_against_its_own_request() -> None:
    first = config()
    session = Session(first)
    session.receive_text(frame("chat.created"), 0.0)
    faster = ChatUpdateData(input_audio=InputAudio(sample_rate=24000))
    session.update_config(faster, 0.05)  # a second chat.update before the first is confirmed
    updates = sent(session)
    assert [e.event_type for e in updates] == ["chat.update", "chat.update"]
    second = updates[1]
    assert isinstance(second, ChatUpdate)
    session.receive_text(echo(first), 0.1)  # acknowledges the first request: 16 kHz
    session.receive_text(echo(second.config), 0.2)  # then the second: 24 kHz
    assert kinds(session.events_received()) == [
        "chat.created",
        "chat.updated",
        "READY",
        "chat.updated",
        "CONFIG UPDATED",
    ]
    assert session.conn_state is ConnState.READY


def test_transition_tables_cover_the_forced_moves() -> None:
    assert all((s, "=lost") in CHAT_TRANSITIONS for s in ChatState)
    assert all((s, "=stop") in INPUT_TRANSITIONS for s in InputState)
    assert all((s, "=lost") in CONN_TRANSITIONS for s in ConnState if s is not ConnState.CLOSED)
    assert not any(s is ConnState.CLOSED for s, _ in CONN_TRANSITIONS)  # CLOSED is final
    chat_triggers = {t for _, t in CHAT_TRANSITIONS if not t.startswith("=")}
    assert set(SERVER_CHAT_TARGET) <= chat_triggers
    assert set(SERVER_CHAT_TARGET) | {"conversation.chat.submit_tool_outputs"} == chat_triggers
