"""Create room (spec 3.2): request encoding and validation, response envelope decoding."""

from __future__ import annotations

from typing import Any

import pytest

from voicegw.errors import CloudError, LocalProtocolError, RemoteProtocolError, is_retryable
from voicegw.realtime.rooms import (
    API_CONNECTOR_ID,
    ROOM_DEFAULTS,
    CreateRoomRequest,
    GlossaryEntry,
    RoomAudioConfig,
    RoomConfig,
    RoomInfo,
    RoomTranslateConfig,
    RoomTurnDetection,
    RoomVideoConfig,
    decode_create_room,
    decode_room_response,
    encode_create_room,
    encode_room_error,
    encode_room_response,
)

#: The response example of spec 3.2, verbatim.
DOC_RESPONSE: dict[str, Any] = {
    "code": 0,
    "msg": "",
    "detail": {"logid": "202410291302044CD1CC3B4AE0897***"},
    "data": {
        "room_id": "room_id_743105798342***",
        "app_id": "6705332c79516e01****",
        "token": "0016705…",
        "uid": "uid_74310579834270***",
    },
}


def test_minimal_request_sends_only_the_bot() -> None:
    assert encode_create_room(CreateRoomRequest(bot_id="7496347519799787557")) == {
        "bot_id": "7496347519799787557"
    }


def test_full_request_encodes_every_documented_field() -> None:
    req = CreateRoomRequest(
        bot_id="b",
        conversation_id="c",
        voice_id="v",
        uid="u",
        workflow_id="w",
        connector_id=API_CONNECTOR_ID,
        config=RoomConfig(
            room_mode="default",
            audio_config=RoomAudioConfig(codec="G711A"),
            video_config=RoomVideoConfig(
                codec="BYTEVC1",
                stream_video_type="screen",
                video_frame_rate=24,
                video_frame_expire_duration=10,
            ),
            turn_detection=RoomTurnDetection(type="client_interrupt"),
            prologue_content="你好呀",
            prologue_delay_duration_ms=0,
        ),
    )
    body = encode_create_room(req)
    assert body == {
        "bot_id": "b",
        "conversation_id": "c",
        "voice_id": "v",
        "uid": "u",
        "workflow_id": "w",
        "connector_id": "1024",
        "config": {
            "room_mode": "default",
            "audio_config": {"codec": "G711A"},
            "video_config": {
                "codec": "BYTEVC1",
                "stream_video_type": "screen",
                "video_frame_rate": 24,
                "video_frame_expire_duration": 10,
            },
            "turn_detection": {"type": "client_interrupt"},
            "prologue_content": "你好呀",
            "prologue_delay_duration_ms": 0,
        },
    }
    assert decode_create_room(body) == req


def test_translate_config_uses_the_from_key() -> None:
    req = CreateRoomRequest(
        bot_id="b",
        config=RoomConfig(
            room_mode="translate",
            translate_config=RoomTranslateConfig(
                from_="zh",
                to="en",
                hot_words=("扣子",),
                glossary=(GlossaryEntry(original="扣子", translation="Coze"),),
            ),
        ),
    )
    body = encode_create_room(req)
    assert body["config"]["translate_config"] == {
        "from": "zh",
        "to": "en",
        "hot_words": ["扣子"],
        "glossary": [{"original": "扣子", "translation": "Coze"}],
    }
    assert decode_create_room(body) == req


def test_defaults_per_spec() -> None:
    eff = RoomConfig().effective()
    assert eff == ROOM_DEFAULTS
    assert eff.audio_config == RoomAudioConfig(codec="OPUS")
    assert eff.turn_detection == RoomTurnDetection(type="server_vad")
    assert eff.prologue_delay_duration_ms == 500 and eff.room_mode == "default"
    assert RoomConfig().turn_type == "server_vad"
    mine = RoomConfig(turn_detection=RoomTurnDetection(type="client_interrupt"))
    assert mine.turn_type == "client_interrupt"
    assert mine.effective().turn_detection == RoomTurnDetection(type="client_interrupt")
    assert mine.effective().audio_config == RoomAudioConfig(codec="OPUS")


@pytest.mark.parametrize(
    ("req", "path"),
    [
        (CreateRoomRequest(bot_id=""), "bot_id"),
        (
            CreateRoomRequest(bot_id="b", config=RoomConfig(prologue_delay_duration_ms=5001)),
            "config.prologue_delay_duration_ms",
        ),
        (
            CreateRoomRequest(bot_id="b", config=RoomConfig(prologue_delay_duration_ms=-1)),
            "config.prologue_delay_duration_ms",
        ),
        (
            CreateRoomRequest(
                bot_id="b", config=RoomConfig(video_config=RoomVideoConfig(video_frame_rate=25))
            ),
            "config.video_config.video_frame_rate",
        ),
        (
            CreateRoomRequest(
                bot_id="b",
                config=RoomConfig(video_config=RoomVideoConfig(video_frame_expire_duration=0)),
            ),
            "config.video_config.video_frame_expire_duration",
        ),
        (
            CreateRoomRequest(
                bot_id="b",
                config=RoomConfig(translate_config=RoomTranslateConfig(from_="en", to="zh")),
            ),
            "config.translate_config",
        ),
        (
            CreateRoomRequest(
                bot_id="b",
                config=RoomConfig(audio_config=RoomAudioConfig(codec="MP3")),  # type: ignore[arg-type]
            ),
            "config.audio_config.codec",
        ),
        (
            CreateRoomRequest(
                bot_id="b",
                config=RoomConfig(turn_detection=RoomTurnDetection(type="ptt")),  # type: ignore[arg-type]
            ),
            "config.turn_detection.type",
        ),
    ],
)
def test_invalid_requests_name_the_field(req: CreateRoomRequest, path: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_create_room(req)
    assert info.value.path == path
    assert path in str(info.value)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "bot_id"),
        ({"bot_id": 7}, "bot_id"),
        ({"bot_id": "b", "config": {"room_mode": "karaoke"}}, "config.room_mode"),
        ({"bot_id": "b", "config": []}, "config"),
        ([], "data"),
    ],
)
def test_decoding_a_bad_body_names_the_field(body: Any, path: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_create_room(body)
    assert info.value.path == path


def test_doc_response_decodes() -> None:
    info = decode_room_response(DOC_RESPONSE)
    assert info == RoomInfo(
        room_id="room_id_743105798342***",
        app_id="6705332c79516e01****",
        token="0016705…",
        uid="uid_74310579834270***",
    )
    assert "0016705" not in repr(info) and "token=<hidden>" in repr(info)
    assert encode_room_response(info, logid=DOC_RESPONSE["detail"]["logid"]) == DOC_RESPONSE


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(4100, False), (4101, False), (4200, False), (4000, False), (4027, False), (5000, True)],
)
def test_refusals_raise_cloud_error_with_code_msg_and_logid(code: int, retryable: bool) -> None:
    envelope = encode_room_error(code, "refused for a reason", logid="LOG123")
    with pytest.raises(CloudError) as info:
        decode_room_response(envelope)
    err = info.value
    assert err.code == code and err.logid == "LOG123"
    assert "refused for a reason" in str(err) and "LOG123" in str(err) and str(code) in str(err)
    assert err.retryable is retryable
    assert is_retryable(err) is retryable


@pytest.mark.parametrize(
    ("envelope", "path"),
    [
        ("text", "response"),
        ({"msg": ""}, "code"),
        ({"code": "0"}, "code"),
        ({"code": 0}, "data"),
        ({"code": 0, "data": {"room_id": "r", "app_id": "a", "token": "t"}}, "data.uid"),
        (
            {"code": 0, "data": {"room_id": "r", "app_id": "a", "token": "", "uid": "u"}},
            "data.token",
        ),
        (
            {"code": 0, "data": {"room_id": 1, "app_id": "a", "token": "t", "uid": "u"}},
            "data.room_id",
        ),
    ],
)
def test_malformed_responses_name_the_field(envelope: Any, path: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_room_response(envelope)
    assert info.value.path == path


def test_refusal_without_detail_or_message_still_explains() -> None:
    with pytest.raises(CloudError) as info:
        decode_room_response({"code": 4013})
    assert info.value.code == 4013 and info.value.logid == ""
    assert "4013" in str(info.value) and "no message" in str(info.value)
    with pytest.raises(ValueError):
        encode_room_error(0, "ok", logid="x")
