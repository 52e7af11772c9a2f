"""Config loading: defaults, chat.update mapping, and a clear error for each bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicegw.config import Config, load_config, parse_config, read_token
from voicegw.errors import ConfigError
from voicegw.protocol import ChatUpdate, decode_client, encode

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_matches_defaults() -> None:
    cfg = load_config(REPO / "configs" / "voicegw.example.toml")
    assert cfg == Config()


def test_chat_update_for_server_vad_is_valid_on_the_wire() -> None:
    cfg = parse_config(
        {
            "cloud": {"bot_id": "1", "conversation_id": "c1"},
            "turn": {"mode": "server_vad", "silence_duration_ms": 700},
            "output": {
                "codec": "pcm",
                "sample_rate": 16000,
                "frame_size_ms": 50,
                "limit_period_s": 1,
                "limit_max_frames": 22,
            },
        }
    )
    data = cfg.chat_update()
    frame = encode(ChatUpdate(config=data))
    back = decode_client(frame)  # the protocol validator accepts what we send
    assert isinstance(back, ChatUpdate)
    assert back.config.input_audio is not None
    assert back.config.input_audio.format == "pcm"  # never the service's wav default
    assert back.config.turn_detection is not None
    assert back.config.turn_detection.silence_duration_ms == 700
    assert back.config.chat_config is not None
    assert back.config.chat_config.conversation_id == "c1"
    pcm = back.config.output_audio.pcm_config if back.config.output_audio else None
    assert pcm is not None and pcm.limit_config is not None
    assert (pcm.frame_size_ms, pcm.limit_config.max_frame_num) == (50.0, 22)


@pytest.mark.parametrize("codec,rate", [("opus", 24000), ("mp3", 44100), ("g711u", 8000)])
def test_chat_update_for_each_output_codec(codec: str, rate: int) -> None:
    cfg = parse_config({"output": {"codec": codec, "sample_rate": rate}})
    back = decode_client(encode(ChatUpdate(config=cfg.chat_update())))
    assert isinstance(back, ChatUpdate) and back.config.output_audio is not None
    assert back.config.output_audio.codec == codec


@pytest.mark.parametrize(
    "data,key",
    [
        ({"clod": {}}, "clod"),
        ({"cloud": {"bot": "x"}}, "cloud.bot"),
        ({"cloud": {"token": "secret"}}, "cloud.token"),
        ({"cloud": {"url": "http://x"}}, "cloud.url"),
        ({"cloud": {"url": "ws://example.com"}}, "cloud.url"),
        ({"cloud": {"device_id": "12"}}, "cloud.device_id"),
        ({"turn": {"mode": "vad"}}, "turn.mode"),
        ({"turn": {"silence_duration_ms": 50}}, "turn.silence_duration_ms"),
        ({"input": {"codec": "g711a", "sample_rate": 16000}}, "input.sample_rate"),
        ({"input": {"frame_ms": 5}}, "input.frame_ms"),
        ({"output": {"codec": "mp3", "sample_rate": 24000}}, "output.sample_rate"),
        ({"output": {"codec": "opus", "frame_size_ms": 30}}, "output.frame_size_ms"),
        ({"output": {"limit_period_s": 1}}, "output.limit_max_frames"),
        ({"output": {"limit_period_s": 1, "limit_max_frames": 5}}, "output.frame_size_ms"),
        ({"output": {"enable_ans": True, "enable_pdns": True}}, "output.enable_pdns"),
        ({"output": {"speech_rate": 101}}, "output.speech_rate"),
        ({"audio": {"realtime": "yes"}}, "audio.realtime"),
        ({"audio": {"source": "file:"}}, "audio.source"),
        ({"audio": {"gain_db": 60}}, "audio.gain_db"),
        ({"audio": {"input_channels": 3}}, "audio.input_channels"),
        ({"audio": {"period_ms": 5}}, "audio.period_ms"),
        ({"button": {"kind": "usb"}}, "button.kind"),
        ({"button": {"kind": "evdev"}}, "button.evdev_device"),
        ({"button": {"gpio_pin": 99}}, "button.gpio_pin"),
        ({"button": {"kind": "gpio"}, "turn": {"mode": "server_vad"}}, "button.mode"),
        ({"service": {"health_listen": "0.0.0.0:9733"}}, "service.health_listen"),
        ({"service": {"offline_ptt_s": 0.5}}, "service.offline_ptt_s"),
        ({"service": {"capture_timeout_s": 0}}, "service.capture_timeout_s"),
        ({"service": {"control_socket": 5}}, "service.control_socket"),
        ({"tools": {"allow": {"x": 1}}}, "tools.allow.x"),
        ({"tools": {"allow": {"bad-name": "m:f"}}}, "tools.allow.bad-name"),
        ({"tools": {"allow": {"__": "m:f"}}}, "tools.allow.__"),
        ({"turn": []}, "turn"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"cloud": {"token": "pat_supersecret"}})
    assert "pat_supersecret" not in str(info.value)


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[cloud\nbot_id = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_read_token_sources(tmp_path: Path) -> None:
    cfg = parse_config({}).cloud
    assert read_token(cfg, {"COZE_API_TOKEN": " pat_x \n"}) == "pat_x"
    with pytest.raises(ConfigError, match="COZE_API_TOKEN"):
        read_token(cfg, {})
    f = tmp_path / "tok"
    f.write_text("pat_file\n")
    cfg2 = parse_config({"cloud": {"token_file": str(f)}}).cloud
    assert read_token(cfg2, {}) == "pat_file"
    f.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_token(cfg2, {})
    cfg3 = parse_config({"cloud": {"token_file": str(tmp_path / "nope")}}).cloud
    with pytest.raises(ConfigError) as info:
        read_token(cfg3, {})
    assert info.value.key == "cloud.token_file"


@pytest.mark.parametrize(
    "data,key",
    [
        ({"turn": {"preroll_ms": -1}}, "turn.preroll_ms"),
        ({"turn": {"vad_aggressiveness": 4}}, "turn.vad_aggressiveness"),
        ({"turn": {"vad_stop_ms": 50}}, "turn.vad_stop_ms"),
        ({"audio": {"echo_policy": "mute"}}, "audio.echo_policy"),
        ({"audio": {"echo_tail_ms": -5}}, "audio.echo_tail_ms"),
        ({"audio": {"buffer_budget_ms": -1}}, "audio.buffer_budget_ms"),
        ({"audio": {"buffer_budget_ms": 200}}, "audio.buffer_budget_ms"),  # burst > budget
        (
            {"audio": {"buffer_budget_ms": 3000}, "output": {"codec": "mp3", "sample_rate": 44100}},
            "audio.buffer_budget_ms",
        ),
    ],
)
def test_bad_hot_path_keys_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.key == key


def test_buffer_budget_derives_frame_size_and_limit_config() -> None:
    cfg = parse_config({"audio": {"buffer_budget_ms": 3000}})
    data = cfg.chat_update()
    pcm = data.output_audio.pcm_config if data.output_audio else None
    assert pcm is not None and pcm.limit_config is not None and pcm.frame_size_ms
    frames = pcm.limit_config.max_frame_num or 0
    period = pcm.limit_config.period or 0
    # Never starves: at least real time; never floods: one period's burst fits the budget.
    assert frames * pcm.frame_size_ms >= period * 1000
    assert frames * pcm.frame_size_ms <= 3000
    # An explicit frame size wins over the budget.
    explicit = parse_config({"audio": {"buffer_budget_ms": 3000}, "output": {"frame_size_ms": 40}})
    epcm = explicit.chat_update().output_audio
    assert epcm is not None and epcm.pcm_config is not None
    assert epcm.pcm_config.frame_size_ms == 40 and epcm.pcm_config.limit_config is None


@pytest.mark.parametrize(
    "mode,policy",
    [
        ("ptt", "full_duplex"),
        ("server_vad", "half_duplex"),
        ("semantic_vad", "half_duplex"),
        ("local_vad", "half_duplex"),
    ],
)
def test_echo_policy_auto_depends_on_turn_mode(mode: str, policy: str) -> None:
    assert parse_config({"turn": {"mode": mode}}).echo_policy == policy
    forced = parse_config({"turn": {"mode": mode}, "audio": {"echo_policy": "duck"}})
    assert forced.echo_policy == "duck"


def test_local_vad_is_push_to_talk_on_the_wire() -> None:
    data = parse_config({"turn": {"mode": "local_vad"}}).chat_update()
    assert data.turn_detection is not None
    assert data.turn_detection.type == "client_interrupt"
