"""How a device config becomes a Realtime room request and its ``session.update``."""

from __future__ import annotations

import pytest

from voicegw.config import (
    CloudConfig,
    Config,
    OutputConfig,
    RealtimeConfig,
    TurnConfig,
    parse_config,
)
from voicegw.errors import ConfigError
from voicegw.realtime.config import room_request, session_config, turn_type
from voicegw.realtime.rooms import encode_create_room
from voicegw.realtime.session import RealtimeSession


@pytest.mark.parametrize(
    ("mode", "room"),
    [
        ("ptt", "client_interrupt"),
        ("server_vad", "server_vad"),
        ("semantic_vad", "semantic_vad"),
        ("local_vad", "client_vad"),
    ],
)
def test_each_turn_mode_maps_to_a_room_type(mode: str, room: str) -> None:
    cfg = Config(cloud=CloudConfig(bot_id="7"), turn=TurnConfig(mode=mode))  # type: ignore[arg-type]
    assert turn_type(mode) == room
    req = encode_create_room(room_request(cfg))
    assert req["config"]["turn_detection"] == {"type": room}
    update = session_config(cfg)
    # client_interrupt is fixed at room creation: push-to-talk sends no VAD type.
    if room == "client_interrupt":
        assert update.turn_detection is None
    else:
        assert update.turn_detection is not None and update.turn_detection.type == room
    # The session accepts what the config produces, in the room type it asked for.
    RealtimeSession(update, turn_mode=room)


def test_server_vad_and_semantic_vad_carry_their_timings() -> None:
    turn = TurnConfig(mode="server_vad", silence_duration_ms=700, prefix_padding_ms=300)
    td = session_config(Config(turn=turn)).turn_detection
    assert td is not None and (td.silence_duration_ms, td.prefix_padding_ms) == (700, 300)
    turn = TurnConfig(mode="semantic_vad", silence_threshold_ms=400)
    td = session_config(Config(turn=turn)).turn_detection
    assert td is not None and td.semantic_vad_config is not None
    assert td.semantic_vad_config.silence_threshold_ms == 400


def test_room_request_carries_the_cloud_and_realtime_settings() -> None:
    cfg = Config(
        cloud=CloudConfig(bot_id="7001", user_id="kiosk-3", conversation_id="c-9"),
        output=OutputConfig(voice_id="v-1", speech_rate=20),
        realtime=RealtimeConfig(
            connector_id="999",
            prologue_content="Hello!",
            prologue_delay_ms=0,
            longest_silence_ms=60000,
            allow_voice_interrupt=False,
            interrupt_keywords=("stop", "wait"),
        ),
    )
    req = encode_create_room(room_request(cfg))
    assert req["bot_id"] == "7001" and req["uid"] == "kiosk-3"
    assert req["conversation_id"] == "c-9" and req["voice_id"] == "v-1"
    assert req["connector_id"] == "999"
    assert req["config"]["prologue_content"] == "Hello!"
    assert req["config"]["prologue_delay_duration_ms"] == 0
    assert req["config"]["audio_config"] == {"codec": "OPUS"}
    update = session_config(cfg)
    assert update.speech_rate == 20 and update.voice_id == "v-1"
    assert update.longest_silence_ms == 60000
    chat = update.chat_config
    assert chat is not None and chat.allow_voice_interrupt is False
    assert chat.interrupt_config is not None
    assert chat.interrupt_config.keywords == ("stop", "wait")


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("realtime", "interrupt_keywords", ["a"] * 11, "at most 10"),
        ("realtime", "interrupt_keywords", ["toolongword"], "1-8 characters"),
        ("realtime", "interrupt_keywords", "stop", "expected a list"),
        ("realtime", "prologue_delay_ms", 6000, "0-5000"),
        ("realtime", "longest_silence_ms", 10, "at least 1000"),
        ("realtime", "connector_id", " ", "must not be empty"),
        ("realtime", "join_timeout_s", 0, "0-120"),
        ("realtime", "room_mode", "party", "not one of"),
        ("cloud", "api", "rtc", "not one of"),
        ("cloud", "api_url", "ftp://x", "https://"),
        ("cloud", "api_url", "http://api.example.com", "loopback"),
    ],
)
def test_bad_realtime_settings_name_the_key(
    section: str, key: str, value: object, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({section: {key: value}})
    assert f"{section}.{key}" in str(info.value)
    assert needle in str(info.value)


def test_the_webrtc_transport_needs_opus() -> None:
    with pytest.raises(ConfigError, match=r"realtime\.audio_codec"):
        parse_config({"cloud": {"api": "realtime"}, "realtime": {"audio_codec": "G711A"}})


@pytest.mark.parametrize(
    ("url", "api_url", "want"),
    [
        ("wss://ws.coze.cn", "", "https://api.coze.cn"),
        ("wss://ws.coze.com/", "", "https://api.coze.com"),
        ("ws://127.0.0.1:8765", "", "http://127.0.0.1:8766"),
        ("wss://ws.coze.cn", "https://proxy.example.com/coze/", "https://proxy.example.com/coze"),
    ],
)
def test_the_http_api_url_is_derived_or_given(url: str, api_url: str, want: str) -> None:
    assert CloudConfig(url=url, api_url=api_url).http_url == want
