"""The JSON codec of ``/v1/chat`` (spec 1.5-1.7, 2.2-2.4, Appendix B)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.errors import RemoteProtocolError
from voicegw.protocol import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    ASRConfig,
    Chat,
    ChatConfig,
    ChatCreated,
    ChatUpdate,
    ChatUpdated,
    ChatUpdateData,
    ConversationAudioCompleted,
    ConversationAudioDelta,
    ConversationAudioSentenceStart,
    ConversationAudioTranscriptCompleted,
    ConversationAudioTranscriptUpdate,
    ConversationChatCancel,
    ConversationChatCanceled,
    ConversationChatCompleted,
    ConversationChatCreated,
    ConversationChatFailed,
    ConversationChatInProgress,
    ConversationChatRequiresAction,
    ConversationChatSubmitToolOutputs,
    ConversationClear,
    ConversationCleared,
    ConversationMessageCompleted,
    ConversationMessageCreate,
    ConversationMessageDelta,
    Detail,
    DumpAudio,
    EmotionConfig,
    Error,
    Event,
    InputAudio,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferComplete,
    InputAudioBufferCompleted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputTextGenerateAudio,
    InterruptConfig,
    LastError,
    LimitConfig,
    Message,
    MP3Config,
    OpusConfig,
    OutputAudio,
    PCMConfig,
    RequiredAction,
    SemanticVADConfig,
    SensitiveWordsFilter,
    SubmitToolOutputs,
    ToolCall,
    ToolCallFunction,
    ToolOutput,
    TurnDetection,
    UnknownEvent,
    Usage,
    VoicePrintConfig,
    VoiceProcessingConfig,
    decode_client,
    decode_server,
    encode,
    unknown_fields,
)

DETAIL = Detail(logid="021752487682057fdbddc02000f04370000000000000017b2b5a3", respond_at="17")
AUDIO = bytes(range(256)) * 4
AUDIO_B64 = base64.b64encode(AUDIO).decode()

FULL_CONFIG = ChatUpdateData(
    chat_config=ChatConfig(
        conversation_id="7526821722323025972",
        user_id="dev-42",
        meta_data={"room": "kitchen"},
        custom_variables={"name": "Ada"},
        extra_params={"latitude": "39.98", "longitude": "116.30"},
        auto_save_history=True,
        parameters={"k": [1, 2, {"x": None}]},
    ),
    input_audio=InputAudio(format="pcm", codec="pcm", sample_rate=16000, channel=1, bit_depth=16),
    output_audio=OutputAudio(
        codec="opus",
        pcm_config=PCMConfig(
            sample_rate=16000,
            frame_size_ms=50.0,
            limit_config=LimitConfig(period=1, max_frame_num=22),
        ),
        opus_config=OpusConfig(bitrate=48000, use_cbr=False, frame_size_ms=10.0, sample_rate=24000),
        mp3_config=MP3Config(sample_rate=44100, bit_rate=128000),
        speech_rate=50,
        loudness_rate=-10,
        voice_id="7426720361733046281",
        emotion_config=EmotionConfig(emotion="happy", emotion_scale=4.0),
        context_texts=("please sound cheerful",),
    ),
    turn_detection=TurnDetection(
        type="server_vad",
        prefix_padding_ms=600,
        silence_duration_ms=500,
        semantic_vad_config=SemanticVADConfig(
            silence_threshold_ms=300, semantic_unfinished_wait_time_ms=500
        ),
        interrupt_config=InterruptConfig(mode="keyword_contains", keywords=("扣子扣子",)),
    ),
    asr_config=ASRConfig(
        hot_words=("扣子",),
        context="kitchen",
        user_language="zh",
        enable_ddc=True,
        enable_itn=True,
        enable_punc=True,
        stream_mode="output_no_stream",
        enable_nostream=False,
        enable_emotion=True,
        enable_gender=False,
        sensitive_words_filter=SensitiveWordsFilter(
            system_reserved_filter=True, filter_with_empty=("a",), filter_with_signed=("b",)
        ),
    ),
    voice_processing_config=VoiceProcessingConfig(enable_ans=True, voice_print_feature_id="f"),
    voice_print_config=VoicePrintConfig(group_id="g", score=40, reuse_voice_info=False),
    event_subscriptions=("conversation.audio.delta", "error"),
    need_play_prologue=True,
    prologue_content="Hello!",
)

CHAT = Chat(
    id="7526821559890198568",
    conversation_id="7526821722323025972",
    bot_id="7496347519799787557",
    created_at=1752474749,
    completed_at=1752474750,
    status="completed",
    usage=Usage(token_count=45, output_count=28, input_count=17),
    section_id="7526821722323025972",
    meta_data={"a": 1},
)
FAILED_CHAT = Chat(
    id="1", status="failed", failed_at=1752474750, last_error=LastError(code=1, msg="发生异常")
)
ACTION_CHAT = Chat(
    id="2",
    status="requires_action",
    required_action=RequiredAction(
        type="submit_tool_outputs",
        submit_tool_outputs=SubmitToolOutputs(
            tool_calls=(
                ToolCall(
                    id="tc-1",
                    type="function",
                    function=ToolCallFunction(name="get_weather", arguments='{"city":"Beijing"}'),
                ),
                ToolCall(id="tc-2", type="reply_message", require_info={"infos": []}),
            )
        ),
    ),
)
TEXT_MSG = Message(
    id="7526821714748293172",
    conversation_id="c",
    bot_id="b",
    chat_id="7526821559890198568",
    section_id="s",
    role="assistant",
    type="answer",
    content="是啊",
    content_type="text",
    meta_data={"x": "y"},
    created_at=1,
    updated_at=2,
    reasoning_content="thinking",
)
AUDIO_MSG = Message(
    id="0", chat_id="0", role="assistant", type="answer", content=AUDIO_B64, content_type="audio"
)

CLIENT_SAMPLES: list[Event] = [
    ChatUpdate(id="evt-1", config=FULL_CONFIG),
    InputAudioBufferAppend(id="a1", delta=AUDIO),
    InputAudioBufferComplete(id="c1"),
    InputAudioBufferClear(id="c2"),
    ConversationMessageCreate(id="m1", role="user", content_type="text", content="今天天气真不错"),
    ConversationClear(),
    ConversationChatSubmitToolOutputs(
        id="s1",
        chat_id="2",
        tool_outputs=(ToolOutput(tool_call_id="tc-1", output='{"ok":true}'),),
    ),
    ConversationChatCancel(id="x1"),
    InputTextGenerateAudio(id="g1", mode="text", text="亲，你怎么不说话了。"),
]

SERVER_SAMPLES: list[Event] = [
    ChatCreated(id="0d08d06b-88cb-46ef-b2b9-04b70d6fd5a7", detail=DETAIL),
    ChatUpdated(id="evt-1", detail=DETAIL, config=FULL_CONFIG),
    ConversationChatCreated(id="e3", detail=DETAIL, chat=CHAT),
    ConversationChatInProgress(id="e4", detail=DETAIL, chat=CHAT),
    ConversationMessageDelta(id="e5", detail=DETAIL, message=TEXT_MSG),
    ConversationAudioSentenceStart(id="e6", detail=DETAIL, text="是啊。"),
    ConversationAudioDelta(id="e7", detail=DETAIL, message=AUDIO_MSG),
    ConversationMessageCompleted(id="e8", detail=DETAIL, message=TEXT_MSG),
    ConversationAudioCompleted(id="e9", detail=DETAIL, message=Message(id="0", content="")),
    ConversationChatCompleted(id="e10", detail=DETAIL, chat=CHAT),
    ConversationChatFailed(id="e11", detail=DETAIL, chat=FAILED_CHAT),
    Error(
        id="e12",
        detail=Detail(logid="l", respond_at="1", origin_message='{"event_type":"x"}'),
        code=4000,
        msg="The parameter audio is invalid.",
    ),
    InputAudioBufferCompleted(id="e13", detail=DETAIL),
    InputAudioBufferCleared(id="e14", detail=DETAIL),
    ConversationCleared(id="e15", detail=DETAIL),
    ConversationChatCanceled(id="e16", detail=DETAIL, code=2, msg="canceled by client"),
    ConversationAudioTranscriptUpdate(id="e17", detail=DETAIL, content="今天"),
    ConversationAudioTranscriptCompleted(id="e18", detail=DETAIL, content="今天天气不错"),
    ConversationChatRequiresAction(id="e19", detail=DETAIL, chat=ACTION_CHAT),
    InputAudioBufferSpeechStarted(id="e20", detail=DETAIL),
    InputAudioBufferSpeechStopped(id="e21", detail=DETAIL),
    DumpAudio(id="e22", detail=DETAIL, url="https://example.invalid/dump.wav"),
]

#: Real frames from the recorded traffic (spec Appendix B, 2.2.8, 6), with ids completed.
REAL_FRAMES = [
    '{"event_type":"chat.created","id":"0d08d06b-88cb-46ef-b2b9-04b70d6fd5a7","detail":{"logid":'
    '"021752487682057fdbddc02000f04370000000000000017b2b5a3","respond_at":"1752487682150"}}',
    '{"event_type":"conversation.audio.sentence_start","id":"2c036619-1","data":{"text":'
    '"亲，你怎么不说话了。"},"detail":{"logid":"021752487682057","respond_at":"1752487682150"}}',
    '{"event_type":"conversation.audio.delta","id":"0709834a-1","data":{"id":"0","conversation_id":'
    '"0","bot_id":"0","role":"assistant","type":"answer","content":"AAAEAAUA","content_type":'
    '"audio","chat_id":"0","section_id":"0"},"detail":{"logid":"02","respond_at":"1"}}',
    '{"event_type":"conversation.audio.completed","id":"11f39a86-1","data":{"id":"0",'
    '"conversation_id":"0","bot_id":"0","role":"assistant","type":"answer","content":"",'
    '"content_type":"audio","chat_id":"0","section_id":"0"},"detail":{"logid":"02",'
    '"respond_at":"1"}}',
    '{"event_type":"conversation.chat.completed","id":"46503467-1","data":{"id":'
    '"7526821559890198568","conversation_id":"7526821722323025972","bot_id":"7496347519799787557",'
    '"created_at":1752474749,"completed_at":1752474750,"status":"completed","usage":'
    '{"token_count":45,"output_count":28,"input_count":17},"section_id":"7526821722323025972"},'
    '"detail":{"logid":"02","respond_at":"1"}}',
    '{"event_type":"conversation.chat.created","id":"c17ebda1-5cc0-4e52-a4a7-d633ebbfdd44","data":'
    '{"id":"7526821559890198568","conversation_id":"7526821722323025972","bot_id":'
    '"7496347519799787557","created_at":1752474749,"status":"created","usage":{"token_count":0,'
    '"output_count":0,"input_count":0},"section_id":"7526821722323025972"},"detail":{"logid":"02",'
    '"respond_at":"1"}}',
    '{"event_type":"conversation.message.delta","id":"d1","data":{"id":"7526821714748293172",'
    '"conversation_id":"7526821722323025972","bot_id":"7496347519799787557","role":"assistant",'
    '"type":"answer","content":"是啊","content_type":"text","chat_id":"7526821559890198568",'
    '"section_id":"7526821722323025972"},"detail":{"logid":"02","respond_at":"1"}}',
    '{"event_type":"error","id":"3c16ff11-1","data":{"code":4000,"msg":"The parameter audio is '
    "invalid. It should follow the format: wav. or set input_audio via chat.update event. Please "
    'review your input."},"detail":{"logid":"0217665","respond_at":"1766544115264"}}',
    '{"event_type":"input_audio_buffer.completed","id":"u1","detail":{"logid":"02",'
    '"respond_at":"1"}}',
]

REAL_CLIENT_FRAMES = [
    '{"event_type":"conversation.message.create","data":{"role":"user","content_type":"text",'
    '"content":"今天天气真不错"}}',
    '{"event_type":"input_text_buffer.complete"}',
    '{"event_type":"input_text.generate_audio","data":{"mode":"text","text":"亲，你怎么不说话了。"}}',
    '{"id":"evt-1","event_type":"chat.update","data":{"chat_config":{"auto_save_history":true,'
    '"user_id":"dev-42","meta_data":{},"custom_variables":{},"extra_params":{},"parameters":{}},'
    '"input_audio":{"format":"pcm","codec":"pcm","sample_rate":16000,"channel":1,"bit_depth":16},'
    '"output_audio":{"codec":"pcm","pcm_config":{"sample_rate":16000,"frame_size_ms":50,'
    '"limit_config":{"period":1,"max_frame_num":22}},"speech_rate":0,"voice_id":'
    '"7426720361733046281"},"turn_detection":{"type":"server_vad","prefix_padding_ms":600,'
    '"silence_duration_ms":500},"need_play_prologue":false,"event_subscriptions":[]}}',
]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _server(event_type: str, data: Any = None, **envelope: Any) -> str:
    obj: dict[str, Any] = {"event_type": event_type, "id": "x"}
    if data is not None:
        obj["data"] = data
    obj.update(envelope)
    return json.dumps(obj)


def _raises(frame: str | bytes, *, event_type: str | None, path: str, client: bool = False) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        (decode_client if client else decode_server)(frame)
    assert info.value.event_type == event_type
    assert info.value.path == path
    return str(info.value)


# ---------------------------------------------------------------- round trips


def test_samples_cover_every_event_type() -> None:
    assert {type(e).event_type for e in CLIENT_SAMPLES} == set(CLIENT_EVENTS)
    assert {type(e).event_type for e in SERVER_SAMPLES} == set(SERVER_EVENTS)
    assert len(CLIENT_EVENTS) == 9
    assert len(SERVER_EVENTS) == 22  # 21 documented + dump.audio


@pytest.mark.parametrize("event", CLIENT_SAMPLES, ids=lambda e: type(e).event_type)
def test_client_event_round_trips(event: Event) -> None:
    text = encode(event)
    assert decode_client(text) == event
    assert json.loads(text)["event_type"] == type(event).event_type


@pytest.mark.parametrize("event", SERVER_SAMPLES, ids=lambda e: type(e).event_type)
def test_server_event_round_trips(event: Event) -> None:
    text = encode(event)
    decoded = decode_server(text)
    assert decoded == event
    assert type(decoded) is type(event)
    assert encode(decoded) == text


@pytest.mark.parametrize(
    "frame", REAL_FRAMES + REAL_CLIENT_FRAMES, ids=lambda f: json.loads(f)["event_type"]
)
def test_real_frames_decode_and_reencode_with_the_same_keys(frame: str) -> None:
    client = frame in REAL_CLIENT_FRAMES
    event = (decode_client if client else decode_server)(frame)
    again = json.loads(encode(event))
    assert again == _without_nulls(json.loads(frame))


def test_real_frames_decode_to_the_documented_values() -> None:
    created = decode_server(REAL_FRAMES[0])
    assert isinstance(created, ChatCreated)
    assert created.detail == Detail(
        logid="021752487682057fdbddc02000f04370000000000000017b2b5a3", respond_at="1752487682150"
    )
    delta = decode_server(REAL_FRAMES[2])
    assert isinstance(delta, ConversationAudioDelta)
    assert delta.message.chat_id == "0"
    assert delta.audio == base64.b64decode("AAAEAAUA")
    completed = decode_server(REAL_FRAMES[4])
    assert isinstance(completed, ConversationChatCompleted)
    assert completed.chat.usage == Usage(token_count=45, output_count=28, input_count=17)
    error = decode_server(REAL_FRAMES[7])
    assert isinstance(error, Error) and error.code == 4000 and error.msg.startswith("The param")
    update = decode_client(REAL_CLIENT_FRAMES[3])
    assert isinstance(update, ChatUpdate)
    assert update.config.turn_detection == TurnDetection(
        type="server_vad", prefix_padding_ms=600, silence_duration_ms=500
    )
    assert update.config.output_audio is not None
    assert update.config.output_audio.pcm_config == PCMConfig(
        sample_rate=16000, frame_size_ms=50.0, limit_config=LimitConfig(period=1, max_frame_num=22)
    )


def test_encode_omits_data_for_payload_free_events_and_keeps_key_order() -> None:
    text = encode(InputAudioBufferComplete())
    assert text == '{"event_type":"input_audio_buffer.complete"}'
    text = encode(ConversationChatCancel(id="1"))
    assert text == '{"event_type":"conversation.chat.cancel","id":"1"}'
    keys = list(json.loads(encode(SERVER_SAMPLES[2])))
    assert keys == ["event_type", "id", "data", "detail"]


@pytest.mark.parametrize(
    "cls", [InputAudioBufferComplete, InputAudioBufferClear, ConversationClear]
)
def test_payload_free_client_events_accept_absent_or_empty_data(cls: type[Event]) -> None:
    absent = decode_client(json.dumps({"event_type": cls.event_type}))
    empty = decode_client(json.dumps({"event_type": cls.event_type, "data": {}}))
    assert absent == empty == cls()


@pytest.mark.parametrize(
    "cls",
    [
        ChatCreated,
        InputAudioBufferCompleted,
        InputAudioBufferCleared,
        ConversationCleared,
        InputAudioBufferSpeechStarted,
        InputAudioBufferSpeechStopped,
        ConversationChatCanceled,
    ],
)
def test_payload_free_server_events_accept_absent_or_empty_data(cls: type[Event]) -> None:
    absent = decode_server(_server(cls.event_type))
    empty = decode_server(_server(cls.event_type, {}))
    assert type(absent) is cls
    assert absent == empty == cls(id="x")


def test_numeric_id_is_accepted_as_text() -> None:
    event = decode_server('{"event_type":"chat.created","id":7446668538246561828}')
    assert event.id == "7446668538246561828"


def test_integral_numbers_are_integers_only_within_int64() -> None:
    event = decode_server(_server("error", {"code": 4000.0}))
    assert isinstance(event, Error) and event.code == 4000 and type(event.code) is int
    assert '"code":4000' in encode(event)
    for huge in ("1e19", "-1e19", "123456789012345678901234567890"):
        text = '{"event_type":"error","data":{"code":' + huge + "}}"
        _raises(text, event_type="error", path="data.code")


def test_nulls_are_tolerated() -> None:
    data = {
        "id": "1",
        "status": "created",
        "completed_at": None,
        "last_error": None,
        "usage": None,
        "required_action": None,
    }
    event = decode_server(_server("conversation.chat.created", data, detail=None))
    assert isinstance(event, ConversationChatCreated)
    assert event.chat == Chat(id="1", status="created")
    assert event.detail is None


def test_repr_never_shows_audio() -> None:
    append = InputAudioBufferAppend(id="a", delta=AUDIO)
    delta = SERVER_SAMPLES[6]
    for text in (repr(append), str(append), repr(delta), repr([append, delta])):
        assert AUDIO_B64[:12] not in text
        assert "<1024 bytes>" in text or "<~102" in text


# ---------------------------------------------------------------- unknown types and fields


def test_unknown_event_type_keeps_everything() -> None:
    frame = _server("live.created", {"room": {"id": 5}}, detail={"logid": "l"}, trace="t")
    event = decode_server(frame)
    assert isinstance(event, UnknownEvent)
    assert event.unknown_type == "live.created"
    assert event.data == {"room": {"id": 5}}
    assert event.envelope_extra == {"trace": "t"}
    assert unknown_fields(event) == []
    assert json.loads(encode(event)) == json.loads(frame)


def test_unknown_event_type_keeps_non_object_data() -> None:
    event = decode_server(_server("future.thing", [1, 2]))
    assert isinstance(event, UnknownEvent) and event.data == [1, 2]


def test_unknown_fields_are_kept_reencoded_and_reported() -> None:
    data = {
        "id": "2",
        "status": "requires_action",
        "new_top": 1,
        "usage": {"token_count": 1, "cache_count": 3},
        "required_action": {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {"tool_calls": [{"id": "t", "function": {"name": "n", "x": 1}}]},
        },
    }
    frame = _server(
        "conversation.chat.requires_action", data, detail={"logid": "l", "region": "cn"}, seq=9
    )
    event = decode_server(frame)
    assert unknown_fields(event) == [
        "data.new_top",
        "data.required_action.submit_tool_outputs.tool_calls[0].function.x",
        "data.usage.cache_count",
        "detail.region",
        "seq",
    ]
    assert json.loads(encode(event)) == json.loads(frame)


def test_unknown_fields_of_flat_events() -> None:
    event = decode_server(_server("error", {"code": 1, "msg": "m", "hint": "h"}))
    assert unknown_fields(event) == ["data.hint"]
    assert json.loads(encode(event))["data"]["hint"] == "h"
    config = decode_server(_server("chat.updated", {"output_audio": {"pcm_config": {"z": 1}}}))
    assert unknown_fields(config) == ["data.output_audio.pcm_config.z"]
    assert unknown_fields(SERVER_SAMPLES[2]) == []


# ---------------------------------------------------------------- malformed input


def test_invalid_utf8_bytes() -> None:
    message = _raises(b'{"event_type":"chat.created","id":"\xff"}', event_type=None, path="frame")
    assert "UTF-8" in message


def test_lone_surrogate_in_text() -> None:
    _raises('{"event_type":"chat.created","id":"\ud800"}', event_type=None, path="frame")


@pytest.mark.parametrize("frame", ["", "{", '{"event_type":"error"} x', "NaN", "{'a':1}"])
def test_invalid_json(frame: str) -> None:
    assert "not valid JSON" in _raises(frame, event_type=None, path="frame")


@pytest.mark.parametrize("frame", ["[]", '"chat.created"', "1", "null", "true"])
def test_non_object_frame(frame: str) -> None:
    assert "not a JSON object" in _raises(frame, event_type=None, path="frame")


@pytest.mark.parametrize("frame", ["{}", '{"data":{}}', '{"event_type":null}'])
def test_missing_event_type(frame: str) -> None:
    _raises(frame, event_type=None, path="event_type")


@pytest.mark.parametrize("value", [1, ["chat.created"], {"a": 1}, True])
def test_non_string_event_type(value: Any) -> None:
    _raises(json.dumps({"event_type": value}), event_type=None, path="event_type")


@pytest.mark.parametrize("data", [[], "x", 1, True])
def test_data_not_an_object(data: Any) -> None:
    _raises(_server("error", data), event_type="error", path="data")
    _raises(_server("chat.created", data), event_type="chat.created", path="data")


@pytest.mark.parametrize("value", [1.5, [1], {"a": 1}, True])
def test_bad_envelope_id(value: Any) -> None:
    _raises(_server("chat.created", id=value), event_type="chat.created", path="id")


def test_bad_detail() -> None:
    _raises(_server("chat.created", detail=[1]), event_type="chat.created", path="detail")
    _raises(
        _server("chat.created", detail={"respond_at": 1752474748918}),
        event_type="chat.created",
        path="detail.respond_at",
    )


@pytest.mark.parametrize(
    ("event_type", "data", "path"),
    [
        ("error", {"code": "4000"}, "data.code"),
        ("error", {"code": True}, "data.code"),
        ("error", {"code": 1.5}, "data.code"),
        ("error", {"code": 1, "msg": 5}, "data.msg"),
        ("conversation.chat.created", {"id": 5}, "data.id"),
        ("conversation.chat.completed", {"id": "1", "usage": []}, "data.usage"),
        (
            "conversation.chat.completed",
            {"id": "1", "usage": {"token_count": "4"}},
            "data.usage.token_count",
        ),
        (
            "conversation.chat.requires_action",
            {"id": "1", "required_action": {"submit_tool_outputs": {"tool_calls": {}}}},
            "data.required_action.submit_tool_outputs.tool_calls",
        ),
        (
            "conversation.chat.requires_action",
            {"id": "1", "required_action": {"submit_tool_outputs": {"tool_calls": [{"id": 1}]}}},
            "data.required_action.submit_tool_outputs.tool_calls[0].id",
        ),
        ("conversation.message.delta", {"id": "m", "content": ["x"]}, "data.content"),
        ("conversation.audio.sentence_start", {"text": None}, "data.text"),
        ("chat.updated", {"input_audio": "pcm"}, "data.input_audio"),
        (
            "chat.updated",
            {"output_audio": {"pcm_config": {"sample_rate": "16000"}}},
            "data.output_audio.pcm_config.sample_rate",
        ),
        ("chat.updated", {"chat_config": {"meta_data": {"k": 1}}}, "data.chat_config.meta_data.k"),
        ("chat.updated", {"event_subscriptions": "error"}, "data.event_subscriptions"),
        ("chat.updated", {"event_subscriptions": ["error", 3]}, "data.event_subscriptions[1]"),
        ("chat.updated", {"need_play_prologue": "yes"}, "data.need_play_prologue"),
        (
            "chat.updated",
            {"output_audio": {"opus_config": {"use_cbr": 0}}},
            "data.output_audio.opus_config.use_cbr",
        ),
    ],
)
def test_wrong_types_name_the_nested_path(event_type: str, data: Any, path: str) -> None:
    message = _raises(_server(event_type, data), event_type=event_type, path=path)
    assert event_type in message and path in message


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"output_audio": {"speech_rate": 101}}, "data.output_audio.speech_rate"),
        ({"output_audio": {"loudness_rate": -51}}, "data.output_audio.loudness_rate"),
        ({"input_audio": {"sample_rate": 11025}}, "data.input_audio.sample_rate"),
        ({"input_audio": {"channel": 3}}, "data.input_audio.channel"),
        ({"input_audio": {"bit_depth": 32}}, "data.input_audio.bit_depth"),
        (
            {"output_audio": {"opus_config": {"frame_size_ms": 15}}},
            "data.output_audio.opus_config.frame_size_ms",
        ),
        (
            {"output_audio": {"emotion_config": {"emotion_scale": 5.5}}},
            "data.output_audio.emotion_config.emotion_scale",
        ),
        (
            {"turn_detection": {"silence_duration_ms": 100}},
            "data.turn_detection.silence_duration_ms",
        ),
        ({"voice_print_config": {"score": 101}}, "data.voice_print_config.score"),
        (
            {"chat_config": {"extra_params": {"altitude": "1"}}},
            "data.chat_config.extra_params.altitude",
        ),
    ],
)
def test_out_of_range_values(data: dict[str, Any], path: str) -> None:
    _raises(_server("chat.updated", data), event_type="chat.updated", path=path)
    _raises(_server("chat.update", data), event_type="chat.update", path=path, client=True)


@pytest.mark.parametrize(
    ("event_type", "data", "path"),
    [
        ("chat.updated", {"input_audio": {"format": "mp3"}}, "data.input_audio.format"),
        ("chat.updated", {"output_audio": {"codec": "aac"}}, "data.output_audio.codec"),
        ("chat.updated", {"turn_detection": {"type": "client_vad"}}, "data.turn_detection.type"),
        ("chat.updated", {"asr_config": {"user_language": "xx"}}, "data.asr_config.user_language"),
        ("conversation.chat.created", {"id": "1", "status": "done"}, "data.status"),
        ("conversation.message.delta", {"id": "1", "role": "system"}, "data.role"),
        ("conversation.message.delta", {"id": "1", "content_type": True}, "data.content_type"),
        ("conversation.chat.canceled", {"code": 4}, "data.code"),
    ],
)
def test_bad_enum_values(event_type: str, data: dict[str, Any], path: str) -> None:
    _raises(_server(event_type, data), event_type=event_type, path=path)


@pytest.mark.parametrize("bad", ["AAA", "A===", "!!!!", "AAAA\nAAAA", "AA-_"])
def test_bad_base64(bad: str) -> None:
    frame = json.dumps({"event_type": "input_audio_buffer.append", "data": {"delta": bad}})
    message = _raises(frame, event_type="input_audio_buffer.append", path="data.delta", client=True)
    assert "base64" in message
    audio = {"id": "m", "chat_id": "c", "content": bad, "content_type": "audio"}
    _raises(
        _server("conversation.audio.delta", audio),
        event_type="conversation.audio.delta",
        path="data.content",
    )


@pytest.mark.parametrize(
    ("event_type", "data", "path", "client"),
    [
        ("error", {"msg": "m"}, "data.code", False),
        ("error", {"code": None}, "data.code", False),
        ("conversation.chat.created", {}, "data.id", False),
        ("conversation.audio.delta", {"content": "AAAA"}, "data.id", False),
        ("conversation.audio.sentence_start", {}, "data.text", False),
        ("conversation.audio_transcript.completed", {}, "data.content", False),
        (
            "conversation.chat.requires_action",
            {"id": "1", "required_action": {"submit_tool_outputs": {}}},
            "data.required_action.submit_tool_outputs.tool_calls",
            False,
        ),
        ("input_audio_buffer.append", {}, "data.delta", True),
        (
            "conversation.message.create",
            {"role": "user", "content_type": "text"},
            "data.content",
            True,
        ),
        ("conversation.chat.submit_tool_outputs", {"chat_id": "1"}, "data.tool_outputs", True),
        (
            "conversation.chat.submit_tool_outputs",
            {"chat_id": "1", "tool_outputs": [{"tool_call_id": "t"}]},
            "data.tool_outputs[0].output",
            True,
        ),
        ("input_text.generate_audio", {"mode": "text"}, "data.text", True),
    ],
)
def test_missing_required_fields(event_type: str, data: Any, path: str, client: bool) -> None:
    frame = _server(event_type, data)
    assert "is required" in _raises(frame, event_type=event_type, path=path, client=client)


@pytest.mark.parametrize("codec", ["g711a", "g711u"])
def test_g711_needs_8000_hz(codec: str) -> None:
    data = {"input_audio": {"format": "pcm", "codec": codec, "sample_rate": 16000}}
    _raises(
        _server("chat.update", data),
        event_type="chat.update",
        path="data.input_audio.sample_rate",
        client=True,
    )
    _raises(
        _server("chat.updated", data),
        event_type="chat.updated",
        path="data.input_audio.sample_rate",
    )
    data = {"input_audio": {"format": "wav", "codec": codec, "sample_rate": 8000}}
    _raises(
        _server("chat.update", data),
        event_type="chat.update",
        path="data.input_audio.format",
        client=True,
    )
    out = {"output_audio": {"codec": codec, "pcm_config": {"sample_rate": 24000}}}
    _raises(
        _server("chat.update", out),
        event_type="chat.update",
        path="data.output_audio.pcm_config.sample_rate",
        client=True,
    )
    ok = {"input_audio": {"format": "pcm", "codec": codec, "sample_rate": 8000, "bit_depth": 8}}
    event = decode_client(_server("chat.update", ok))
    assert isinstance(event, ChatUpdate) and event.config.input_audio is not None
    assert event.config.input_audio.codec == codec


def test_ans_and_pdns_exclude_each_other() -> None:
    data = {"voice_processing_config": {"enable_ans": True, "enable_pdns": True}}
    message = _raises(
        _server("chat.update", data),
        event_type="chat.update",
        path="data.voice_processing_config.enable_pdns",
        client=True,
    )
    assert "mutually exclusive" in message
    data = {"voice_processing_config": {"enable_ans": False, "enable_pdns": True}}
    assert isinstance(decode_client(_server("chat.update", data)), ChatUpdate)


def test_interrupt_keywords_limits() -> None:
    base = {"type": "server_vad", "interrupt_config": {"mode": "keyword_prefix"}}
    six = ["扣子扣子" + str(i) for i in range(6)]
    base["interrupt_config"]["keywords"] = six  # type: ignore[index]
    frame = _server("chat.update", {"turn_detection": base})
    path = "data.turn_detection.interrupt_config.keywords"
    assert "at most 5" in _raises(frame, event_type="chat.update", path=path, client=True)
    base["interrupt_config"]["keywords"] = ["扣"]  # type: ignore[index]
    frame = _server("chat.update", {"turn_detection": base})
    _raises(frame, event_type="chat.update", path=path + "[0]", client=True)
    base["interrupt_config"]["keywords"] = six[:5]  # type: ignore[index]
    assert isinstance(decode_client(_server("chat.update", {"turn_detection": base})), ChatUpdate)


def test_generate_audio_text_must_be_shorter_than_1024_bytes() -> None:
    def frame(text: str) -> str:
        return json.dumps({"event_type": "input_text.generate_audio", "data": {"text": text}})

    _raises(
        frame("a" * 1024), event_type="input_text.generate_audio", path="data.text", client=True
    )
    _raises(
        frame("语" * 342), event_type="input_text.generate_audio", path="data.text", client=True
    )
    _raises(frame(""), event_type="input_text.generate_audio", path="data.text", client=True)
    ok = decode_client(frame("a" * 1023))
    assert isinstance(ok, InputTextGenerateAudio) and ok.mode == "text"


def test_errors_are_remote_protocol_errors_only() -> None:
    frames: list[str | bytes] = [b"\x80", "[", "{}", _server("error", {"code": "x"})]
    for frame in frames:
        with pytest.raises(RemoteProtocolError):
            decode_server(frame)


# ---------------------------------------------------------------- fuzzing

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replaced(copy[head], rest, new)
    return copy


@settings(max_examples=300, deadline=None)
@given(sample=st.sampled_from(CLIENT_SAMPLES + SERVER_SAMPLES), data=st.data())
def test_mutated_frames_raise_only_remote_protocol_errors(
    sample: Event, data: st.DataObject
) -> None:
    obj = json.loads(encode(sample))
    path = data.draw(st.sampled_from(_paths(obj)))
    mutated = _replaced(obj, path, data.draw(_JSON))
    decode = decode_client if sample in CLIENT_SAMPLES else decode_server
    try:
        event = decode(json.dumps(mutated))
    except RemoteProtocolError as exc:
        if exc.path not in ("frame", "event_type"):
            assert exc.event_type == mutated["event_type"]
    else:
        assert isinstance(event, Event)
        encode(event)  # whatever decodes also encodes


@settings(max_examples=200, deadline=None)
@given(frame=st.binary(max_size=64) | st.text(max_size=64) | _JSON.map(json.dumps))
def test_arbitrary_input_raises_only_remote_protocol_errors(frame: str | bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        assert isinstance(decode_server(frame), Event)


@given(st.binary(max_size=4000))
def test_encode_append_fast_path_equals_the_generic_encoder(audio: bytes) -> None:
    from voicegw.protocol.wire import encode_append

    if not audio:
        audio = b"\x00"
    event_id = "0a1b2c3d-0000-4000-8000-00000000002a"
    generic = encode(InputAudioBufferAppend(id=event_id, delta=audio))
    assert encode_append(event_id, audio) == generic
