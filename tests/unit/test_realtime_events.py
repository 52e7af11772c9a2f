"""The Realtime signalling events (spec 3.3-3.5): every event round-trips, doc examples decode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from voicegw.errors import RemoteProtocolError
from voicegw.protocol.events import ClientEvent, ServerEvent, UnknownEvent
from voicegw.protocol.objects import Chat, Message, ToolOutput
from voicegw.protocol.wire import encode, unknown_fields
from voicegw.realtime import events as rt
from voicegw.realtime.objects import (
    REALTIME_DEFAULTS,
    ModeChat,
    ModeData,
    PreAnswer,
    PreAnswerData,
    PreAnswerTrigger,
    RealtimeChatConfig,
    RealtimeInterruptConfig,
    RealtimeTurnDetection,
    SessionUpdateData,
)
from voicegw.realtime.objects import (
    TTSConfig as RealtimeTTSConfig,
)

#: The ``session.update`` doc example of spec 3.4, verbatim.
SESSION_UPDATE_DOC = (
    '{"id":"7446668538246561828","event_type":"session.update","data":{"voice_id":'
    '"7426720361733046281","speech_rate":0,"longest_silence_ms":180000,"event_subscriptions":'
    '["error"],"chat_config":{"plugin_interrupt_mode":"nonblocking","allow_voice_interrupt":'
    'true,"interrupt_config":{"mode":"keyword_prefix","keywords":["扣子"]},"parameters":{"a":'
    '123,"b":"abc"}},"turn_detection":{"type":"server_vad","prefix_padding_ms":600,'
    '"silence_duration_ms":500},"asr_config":{"hot_words":["扣子"],"enable_itn":true,'
    '"enable_punc":true,"enable_ddc":true}}}'
)

CHAT = (
    '{"id":"7526821559890198568","conversation_id":"7526821722323025972","bot_id":'
    '"7496347519799787557","created_at":1752474749,"status":"created","usage":{"token_count":0,'
    '"output_count":0,"input_count":0},"section_id":"7526821722323025972"}'
)
MESSAGE = (
    '{"id":"7526821714748293172","conversation_id":"c","bot_id":"b","role":"assistant","type":'
    '"answer","content":"是啊","content_type":"text","chat_id":"7526821559890198568",'
    '"section_id":"s"}'
)
REQUIRES_ACTION = (
    '{"id":"ch1","conversation_id":"c","status":"requires_action","required_action":{"type":'
    '"submit_tool_outputs","submit_tool_outputs":{"tool_calls":[{"id":"call_1","type":'
    '"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"北京\\"}"}'
    "}]}}}"
)


def frame(event_type: str, data: str | None = None, event_id: str = "event_1") -> str:
    body = f',"data":{data}' if data is not None else ""
    return f'{{"id":"{event_id}","event_type":"{event_type}"{body}}}'


#: One documented-shape message per downstream event type (spec 3.5 examples).
SERVER_FRAMES: dict[str, str] = {
    "session.created": frame(
        "session.created", '{"voice_id":"7426720361733046281","log_id":"20241210152xxx"}'
    ),
    "session.updated": frame(
        "session.updated",
        '{"voice_id":"v","speech_rate":10,"loudness_rate":-5,"longest_silence_ms":180000,'
        '"event_subscriptions":["error"],"chat_config":{"allow_voice_interrupt":true,'
        '"interrupt_config":{"mode":"keyword_contains","keyword":["扣子"]}},"turn_detection":'
        '{"type":"semantic_vad","silence_duration_ms":500,"semantic_vad_config":'
        '{"silence_threshold_ms":300,"semantic_unfinished_wait_time_ms":500}},"asr_config":'
        '{"enable_ddc":true},"voice_print_config":{"group_id":"g","score":40,'
        '"reuse_voice_info":false},"voice_processing_config":{"enable_ans":true}}',
    ),
    "conversation.created": frame(
        "conversation.created", '{"conversation_id":"7446668538246561827","prologue":"你好"}'
    ),
    "conversation.chat.created": frame("conversation.chat.created", CHAT),
    "conversation.chat.in_progress": frame("conversation.chat.in_progress", CHAT),
    "conversation.message.delta": frame("conversation.message.delta", MESSAGE),
    "conversation.message.completed": frame("conversation.message.completed", MESSAGE),
    "conversation.chat.completed": frame("conversation.chat.completed", CHAT),
    "conversation.chat.requires_action": frame(
        "conversation.chat.requires_action", REQUIRES_ACTION
    ),
    "conversation.chat.failed": frame(
        "conversation.chat.failed",
        '{"id":"ch1","status":"failed","failed_at":1752474750,'
        '"last_error":{"code":1,"msg":"发生异常"}}',
    ),
    "audio.user.speech_started": frame("audio.user.speech_started", "{}"),
    "audio.user.speech_stopped": frame("audio.user.speech_stopped", "{}"),
    "audio.agent.speech_started": frame("audio.agent.speech_started", "{}"),
    "audio.agent.speech_stopped": frame("audio.agent.speech_stopped", "{}"),
    "conversation.audio_transcript.delta": frame(
        "conversation.audio_transcript.delta", '{"content":"今天天气"}'
    ),
    "session.pre_answer.updated": frame(
        "session.pre_answer.updated",
        '{"pre_answer":{"type":"text","pre_answer_list":["嗯","让我想想"]},'
        '"trigger":{"type":"time-trigger","time_after":1500}}',
    ),
    "conversation.chat.pre_answer": frame(
        "conversation.chat.pre_answer",
        '{"content":"让我想想","usage":{"token_count":3,"output_count":2,"input_count":1}}',
    ),
    "mode.updated": frame("mode.updated", '{"mode":"chat","chat":{"user_language":"en"}}', ""),
    "input_audio_buffer.started": frame("input_audio_buffer.started", "{}"),
    "input_audio_buffer.completed": frame("input_audio_buffer.completed", "{}"),
    "error": frame(
        "error",
        '{"code":4029,"msg":"The connection was closed due to prolonged user inactivity. '
        'Please retry your request.","detail":{"logid":"20241210152xxx"}}',
    ),
}

#: One documented-shape message per upstream event type (spec 3.4).
CLIENT_FRAMES: dict[str, str] = {
    "session.update": SESSION_UPDATE_DOC,
    "conversation.message.create": frame(
        "conversation.message.create",
        '{"role":"user","content_type":"text","content":"你好"}',
    ),
    "conversation.chat.submit_tool_outputs": frame(
        "conversation.chat.submit_tool_outputs",
        '{"chat_id":"ch1","tool_outputs":[{"tool_call_id":"call_1","output":"晴"}]}',
    ),
    "conversation.chat.cancel": frame("conversation.chat.cancel", "{}"),
    "client.vad": frame("client.vad", '{"vad":true}'),
    "session.pre_answer.update": frame(
        "session.pre_answer.update",
        '{"pre_answer":{"type":"audio","file_id":"f1"},"trigger":{"type":"mandatory"}}',
    ),
    "mode.update": frame("mode.update", '{"mode":"chat","chat":{"user_language":"zh"}}'),
    "input_text.generate_audio": frame(
        "input_text.generate_audio", '{"mode":"text","text":"亲，你怎么不说话了"}'
    ),
    "input_audio_buffer.start": frame("input_audio_buffer.start", "{}"),
    "input_audio_buffer.complete": frame("input_audio_buffer.complete", "{}"),
}


def test_tables_hold_exactly_the_documented_events() -> None:
    assert len(rt.REALTIME_CLIENT_EVENTS) == 10
    assert len(rt.REALTIME_SERVER_EVENTS) == 21
    assert set(rt.REALTIME_CLIENT_EVENTS) == set(CLIENT_FRAMES)
    assert set(rt.REALTIME_SERVER_EVENTS) == set(SERVER_FRAMES)
    assert "live.created" not in rt.REALTIME_SERVER_EVENTS
    for name, cls in rt.REALTIME_CLIENT_EVENTS.items():
        assert cls.event_type == name and issubclass(cls, ClientEvent)
    for name, scls in rt.REALTIME_SERVER_EVENTS.items():
        assert scls.event_type == name and issubclass(scls, ServerEvent)


@pytest.mark.parametrize("event_type", sorted(SERVER_FRAMES))
def test_server_event_round_trips(event_type: str) -> None:
    text = SERVER_FRAMES[event_type]
    event = rt.decode_realtime_server(text)
    assert type(event) is rt.REALTIME_SERVER_EVENTS[event_type]
    assert unknown_fields(event) == []
    assert json.loads(rt.encode_realtime(event)) == json.loads(text)
    assert rt.decode_realtime_server(encode(event)) == event
    assert rt.decode_realtime_server(rt.encode_realtime(event)) == event


@pytest.mark.parametrize("event_type", sorted(CLIENT_FRAMES))
def test_client_event_round_trips(event_type: str) -> None:
    text = CLIENT_FRAMES[event_type]
    event = rt.decode_realtime_client(text)
    assert type(event) is rt.REALTIME_CLIENT_EVENTS[event_type]
    assert unknown_fields(event) == []
    assert json.loads(rt.encode_realtime(event)) == json.loads(text)
    assert rt.decode_realtime_client(encode(event)) == event


def test_session_update_doc_example_verbatim() -> None:
    event = rt.decode_realtime_client(SESSION_UPDATE_DOC)
    assert isinstance(event, rt.SessionUpdate)
    cfg = event.config
    assert event.id == "7446668538246561828"
    assert cfg.voice_id == "7426720361733046281"
    assert cfg.speech_rate == 0 and cfg.longest_silence_ms == 180000
    assert cfg.event_subscriptions == ("error",)
    assert cfg.chat_config is not None and cfg.chat_config.interrupt_config is not None
    assert cfg.chat_config.interrupt_config.keywords == ("扣子",)
    assert cfg.chat_config.parameters == {"a": 123, "b": "abc"}
    assert cfg.turn_detection == RealtimeTurnDetection(
        type="server_vad", prefix_padding_ms=600, silence_duration_ms=500
    )
    assert cfg.asr_config is not None and cfg.asr_config.hot_words == ("扣子",)
    text = rt.encode_realtime(event)
    # envelope in real-traffic order; key order inside data follows the field declarations
    assert text.startswith('{"event_type":"session.update","id":"7446668538246561828","data":{')
    assert json.loads(text) == json.loads(SESSION_UPDATE_DOC)


def test_payload_free_events_encode_with_empty_data_and_accept_both_forms() -> None:
    assert rt.encode_realtime(rt.ConversationChatCancel(id="1")) == (
        '{"event_type":"conversation.chat.cancel","id":"1","data":{}}'
    )
    assert rt.encode_realtime(rt.InputAudioBufferStart()) == (
        '{"event_type":"input_audio_buffer.start","data":{}}'
    )
    without = rt.decode_realtime_server('{"event_type":"audio.agent.speech_started","id":"e"}')
    with_data = rt.decode_realtime_server(
        '{"event_type":"audio.agent.speech_started","id":"e","data":{}}'
    )
    assert without == with_data == rt.AudioAgentSpeechStarted(id="e")


def test_error_detail_inside_data_and_in_envelope() -> None:
    event = rt.decode_realtime_server(SERVER_FRAMES["error"])
    assert isinstance(event, rt.RealtimeError)
    assert event.code == 4029 and event.logid == "20241210152xxx"
    assert event.detail is None  # the envelope carried none
    env = rt.decode_realtime_server(
        '{"event_type":"error","data":{"code":4028,"msg":"m"},"detail":{"logid":"L"}}'
    )
    assert isinstance(env, rt.RealtimeError) and env.logid == "L" and env.error_detail is None
    bare = rt.decode_realtime_server('{"event_type":"error","data":{"code":4027}}')
    assert isinstance(bare, rt.RealtimeError) and bare.logid is None and bare.msg == ""


def test_requires_action_reads_tool_calls_and_the_tool_outputs_spelling() -> None:
    event = rt.decode_realtime_server(SERVER_FRAMES["conversation.chat.requires_action"])
    assert isinstance(event, rt.ConversationChatRequiresAction)
    ra = event.chat.required_action
    assert ra is not None and ra.submit_tool_outputs is not None
    call = ra.submit_tool_outputs.tool_calls[0]
    assert call.id == "call_1" and call.function is not None
    assert call.function.name == "get_weather"
    table_spelling = (
        SERVER_FRAMES["conversation.chat.requires_action"]
        .replace('"tool_calls"', '"tool_outputs"')
        .replace('"}}]', '"},"require_info":null}]')  # the doc example's null is tolerated
    )
    assert '"require_info":null' in table_spelling
    again = rt.decode_realtime_server(table_spelling)
    assert again == event
    again_bytes = rt.decode_realtime_server(table_spelling.encode())
    assert again_bytes == event


def test_requires_action_without_any_tool_array_names_the_field() -> None:
    bad = frame(
        "conversation.chat.requires_action",
        '{"id":"c","required_action":{"type":"submit_tool_outputs","submit_tool_outputs":{}}}',
    )
    with pytest.raises(RemoteProtocolError) as info:
        rt.decode_realtime_server(bad)
    assert info.value.path == "data.required_action.submit_tool_outputs.tool_calls"


def test_keyword_singular_spelling_is_accepted_and_not_unknown() -> None:
    event = rt.decode_realtime_server(SERVER_FRAMES["session.updated"])
    assert isinstance(event, rt.SessionUpdated)
    cc = event.config.chat_config
    assert cc is not None and cc.interrupt_config is not None
    assert cc.interrupt_config.effective_keywords() == ("扣子",)
    assert unknown_fields(event) == []


def test_follow_up_messages_decode() -> None:
    text = frame(
        "conversation.message.completed",
        '{"id":"m","role":"assistant","type":"follow_up","content":"还想聊什么？",'
        '"content_type":"text"}',
    )
    event = rt.decode_realtime_server(text)
    assert isinstance(event, rt.ConversationMessageCompleted)
    assert event.message == Message(
        id="m", role="assistant", type="follow_up", content="还想聊什么？", content_type="text"
    )


def test_live_created_and_other_unknown_types_decode_as_unknown() -> None:
    event = rt.decode_realtime_server('{"event_type":"live.created","id":"x","data":{"a":1}}')
    assert isinstance(event, UnknownEvent)
    assert event.unknown_type == "live.created" and event.data == {"a": 1}
    # /v1/chat-only events are unknown on the Realtime channel
    assert isinstance(
        rt.decode_realtime_server('{"event_type":"conversation.audio.delta","data":{}}'),
        UnknownEvent,
    )


def test_unknown_fields_are_kept_and_listed() -> None:
    text = frame("conversation.created", '{"conversation_id":"c","prologue":"","new_thing":1}')
    event = rt.decode_realtime_server(text)
    assert unknown_fields(event) == ["data.new_thing"]
    assert json.loads(rt.encode_realtime(event)) == json.loads(text)


def test_numeric_ids_are_kept_as_text() -> None:
    event = rt.decode_realtime_server('{"id":7,"event_type":"audio.user.speech_stopped"}')
    assert event.id == "7"


BAD_SERVER: list[tuple[str, str]] = [
    (frame("session.updated", '{"speech_rate":101}'), "data.speech_rate"),
    (frame("session.updated", '{"loudness_rate":-51}'), "data.loudness_rate"),
    (frame("session.updated", '{"longest_silence_ms":"long"}'), "data.longest_silence_ms"),
    (
        frame("session.updated", '{"turn_detection":{"silence_duration_ms":199}}'),
        "data.turn_detection.silence_duration_ms",
    ),
    (
        frame("session.updated", '{"turn_detection":{"type":"push"}}'),
        "data.turn_detection.type",
    ),
    (
        frame(
            "session.updated",
            '{"chat_config":{"interrupt_config":{"keywords":["123456789"]}}}',
        ),
        "data.chat_config.interrupt_config.keywords[0]",
    ),
    (frame("conversation.audio_transcript.delta", "{}"), "data.content"),
    (frame("error", '{"msg":"no code"}'), "data.code"),
    (frame("error", '{"code":4029,"detail":"x"}'), "data.detail"),
    (frame("conversation.chat.created", '{"status":"created"}'), "data.id"),
    (frame("mode.updated", '{"mode":"podcast"}'), "data.mode"),
    (frame("session.pre_answer.updated", '{"trigger":{"time_after":3001}}'), "data.trigger"),
    (frame("conversation.created", "[]"), "data"),
    (frame("session.created", '{"voice_id":5}'), "data.voice_id"),
]


@pytest.mark.parametrize(("text", "path"), BAD_SERVER)
def test_malformed_server_events_name_the_field(text: str, path: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        rt.decode_realtime_server(text)
    assert info.value.path is not None and info.value.path.startswith(path)
    assert info.value.event_type == json.loads(text)["event_type"]


BAD_CLIENT: list[tuple[str, str]] = [
    (frame("client.vad", "{}"), "data.vad"),
    (frame("client.vad", '{"vad":1}'), "data.vad"),
    (frame("input_text.generate_audio", '{"mode":"text","text":""}'), "data.text"),
    (
        frame("input_text.generate_audio", '{"mode":"text","text":"' + "a" * 1024 + '"}'),
        "data.text",
    ),
    (
        frame(
            "session.pre_answer.update",
            '{"pre_answer":{"pre_answer_list":["一二三四五六七八九十一"]}}',
        ),
        "data.pre_answer.pre_answer_list[0]",
    ),
    (
        frame("conversation.chat.submit_tool_outputs", '{"chat_id":"c"}'),
        "data.tool_outputs",
    ),
    (
        frame(
            "conversation.message.create", '{"role":"system","content_type":"text","content":""}'
        ),
        "data.role",
    ),
    (
        frame(
            "session.update",
            '{"chat_config":{"interrupt_config":{"keywords":'
            '["a","b","c","d","e","f","g","h","i","j","k"]}}}',
        ),
        "data.chat_config.interrupt_config.keywords",
    ),
    (
        frame("session.update", '{"chat_config":{"extra_params":{"city":"x"}}}'),
        "data.chat_config.extra_params.city",
    ),
]


@pytest.mark.parametrize(("text", "path"), BAD_CLIENT)
def test_malformed_client_events_name_the_field(text: str, path: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        rt.decode_realtime_client(text)
    assert info.value.path == path


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"data":{}}', '{"event_type":3}', b"\xff\xfe"],
)
def test_broken_envelopes_raise_remote_protocol_error(text: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        rt.decode_realtime_server(text)


def test_built_events_encode_as_documented() -> None:
    cfg = SessionUpdateData(
        voice_id="v",
        speech_rate=20,
        chat_config=RealtimeChatConfig(
            allow_voice_interrupt=False,
            interrupt_config=RealtimeInterruptConfig(mode="keyword_contains", keywords=("扣子",)),
        ),
        tts_config=RealtimeTTSConfig(emotion="happy", emotion_scale=4.5),
    )
    text = rt.encode_realtime(rt.SessionUpdate(id="u1", config=cfg))
    assert json.loads(text) == {
        "event_type": "session.update",
        "id": "u1",
        "data": {
            "voice_id": "v",
            "speech_rate": 20,
            "chat_config": {
                "allow_voice_interrupt": False,
                "interrupt_config": {"mode": "keyword_contains", "keywords": ["扣子"]},
            },
            "tts_config": {"emotion": "happy", "emotion_scale": 4.5},
        },
    }
    pre = rt.SessionPreAnswerUpdate(
        config=PreAnswerData(
            pre_answer=PreAnswer(type="bot", bot_id="b"),
            trigger=PreAnswerTrigger(type="event-driven", time_after=0),
        )
    )
    assert json.loads(rt.encode_realtime(pre))["data"] == {
        "pre_answer": {"type": "bot", "bot_id": "b"},
        "trigger": {"type": "event-driven", "time_after": 0},
    }
    mode = rt.ModeUpdate(config=ModeData(chat=ModeChat(user_language="en")))
    assert json.loads(rt.encode_realtime(mode))["data"] == {
        "mode": "chat",
        "chat": {"user_language": "en"},
    }
    tools = rt.ConversationChatSubmitToolOutputs(
        chat_id="c", tool_outputs=(ToolOutput(tool_call_id="t", output="o"),)
    )
    assert json.loads(rt.encode_realtime(tools))["data"] == {
        "chat_id": "c",
        "tool_outputs": [{"tool_call_id": "t", "output": "o"}],
    }
    vad = json.loads(rt.encode_realtime(rt.ClientVad(vad=False)))
    assert vad == {"event_type": "client.vad", "data": {"vad": False}}


def test_realtime_defaults_are_a_valid_session_update() -> None:
    text = rt.encode_realtime(rt.SessionUpdated(config=REALTIME_DEFAULTS))
    event = rt.decode_realtime_server(text)
    assert isinstance(event, rt.SessionUpdated) and event.config == REALTIME_DEFAULTS
    td = REALTIME_DEFAULTS.turn_detection
    assert td is not None and td.type == "server_vad" and td.silence_duration_ms == 500
    assert REALTIME_DEFAULTS.longest_silence_ms == 180000


def test_chat_objects_are_the_chat_api_ones() -> None:
    event = rt.decode_realtime_server(SERVER_FRAMES["conversation.chat.created"])
    assert isinstance(event, rt.ConversationChatCreated)
    assert isinstance(event.chat, Chat) and event.chat.id == "7526821559890198568"


def _all_server_examples() -> list[Any]:
    return [rt.decode_realtime_server(t) for t in SERVER_FRAMES.values()]


def test_decoded_events_are_hashable_free_values() -> None:
    # frozen: a decoded event cannot be changed by a consumer
    event = _all_server_examples()[0]
    with pytest.raises(AttributeError):
        event.id = "other"
