"""Fuzz the config loader: any TOML or text gives a Config or a ConfigError with a message."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicegw.config import Config, load_config, parse_config
from voicegw.errors import ConfigError

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SECTION_FIELDS: dict[str, list[str]] = {
    f.name: [g.name for g in dataclasses.fields(f.default_factory())]  # type: ignore[misc]
    for f in dataclasses.fields(Config)
}
SECTIONS = list(SECTION_FIELDS)
ALL_KEYS = sorted({k for keys in SECTION_FIELDS.values() for k in keys} | {"token"})

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalars = st.one_of(
    _text,
    st.sampled_from(
        [
            "",
            "pcm",
            "opus",
            "mp3",
            "g711a",
            "ptt",
            "gpio",
            "file:",
            "file:/x.wav",
            "wss://ws.coze.cn",
            "ws://[::1",
            "ws://[",
            "wss://h:99999",
            "usb-generic",
            "/nonexistent/p.toml",
            "x.toml",
            "127.0.0.1:x",
            "::1:80",
        ]
    ),
    st.integers(),
    st.integers(-10, 50000),
    st.floats(),
    st.booleans(),
)
_keys = st.one_of(st.sampled_from(ALL_KEYS), _text)


def _values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4))


_value = st.recursive(_scalars, _values, max_leaves=12)


@st.composite
def _section_body(draw: st.DrawFn, section: str) -> dict[str, Any]:
    known = st.sampled_from(SECTION_FIELDS.get(section, ALL_KEYS))
    return draw(st.dictionaries(st.one_of(known, _keys), _value, max_size=6))


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.one_of(st.sampled_from(SECTIONS), _text), max_size=4, unique=True))
    doc: dict[str, Any] = {}
    for name in names:
        doc[name] = draw(st.one_of(_section_body(name), _value))
    return doc


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return _toml_str(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(doc: dict[str, Any]) -> str:
    lines = []
    for name, body in doc.items():
        if isinstance(body, dict):
            lines.append(f"[{_toml_key(name)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items())
        else:
            lines.insert(0, f"{_toml_key(name)} = {_toml_value(body)}")
    return "\n".join(lines) + "\n"


def _parse(doc: Any) -> Config | None:
    try:
        cfg = parse_config(doc)
    except ConfigError as exc:
        assert str(exc).strip()
        return None
    assert isinstance(cfg, Config)
    return cfg


def _load(path: Path, text: str, overrides: dict[str, Any] | None = None) -> Config | None:
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path, overrides)
    except ConfigError as exc:
        assert str(exc).strip()
        return None
    assert isinstance(cfg, Config)
    return cfg


@FUZZ
@given(doc=_documents())
def test_parse_config_random_mappings(doc: dict[str, Any]) -> None:
    _parse(doc)


@FUZZ
@given(doc=_documents())
def test_load_config_random_toml(tmp_path: Path, doc: dict[str, Any]) -> None:
    text = to_toml(doc)
    cfg = _load(tmp_path / "c.toml", text)
    if cfg is not None:
        assert parse_config(__import__("tomllib").loads(text)) == cfg


@FUZZ
@given(text=st.text(max_size=300))
def test_load_config_random_text(tmp_path: Path, text: str) -> None:
    _load(tmp_path / "c.toml", text)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_load_config_random_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc).strip()


@FUZZ
@given(
    doc=_documents(),
    overrides=st.dictionaries(
        st.one_of(
            st.builds(
                lambda s, k: f"{s}.{k}", st.sampled_from(SECTIONS), st.sampled_from(ALL_KEYS)
            ),
            _text,
        ),
        _value,
        max_size=3,
    ),
)
def test_load_config_with_overrides(
    tmp_path: Path, doc: dict[str, Any], overrides: dict[str, Any]
) -> None:
    _load(tmp_path / "c.toml", to_toml(doc), overrides)


@pytest.mark.parametrize(
    "doc",
    [
        {"cloud": None},
        {"cloud": [1]},
        {"audio": None},
        {"audio": {"profile": 1}},
        {"audio": {"profile": "a/\x00b"}},
        {"audio": {"profile": "x" * 5000}},
        {"audio": {"profile": "/"}},
        {"cloud": {"url": "ws://["}},
        {"cloud": {"url": "wss://[::1"}},
        {"cloud": {"url": "ws://[zz]:1"}},
    ],
)
def test_parse_config_hostile_values_are_config_errors(doc: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert str(info.value).strip()


def test_override_into_a_non_table_section_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('cloud = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="cloud"):
        load_config(path, {"cloud.bot_id": "1"})


# -- valid configs load ----------------------------------------------------------------------

_RATES = [8000, 16000, 22050, 24000, 32000, 44100, 48000]
_OPUS_RATES = [8000, 12000, 16000, 24000, 48000]


@st.composite
def _valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    def maybe(section: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
        if draw(st.booleans()):
            section[key] = draw(strategy)

    cloud: dict[str, Any] = {}
    maybe(
        cloud,
        "url",
        st.sampled_from(
            [
                "wss://ws.coze.cn",
                "wss://ws.coze.com",
                "ws://127.0.0.1:8080",
                "ws://localhost:1",
                "wss://127.0.0.1:4443",
            ]
        ),
    )
    maybe(cloud, "bot_id", st.text(st.characters(blacklist_categories=("Cs",)), max_size=10))
    maybe(cloud, "device_id", st.integers(0, 2**40))
    maybe(cloud, "connect_timeout_s", st.floats(0.1, 60))

    turn: dict[str, Any] = {}
    mode = draw(st.sampled_from(["ptt", "server_vad", "semantic_vad", "local_vad"]))
    turn["mode"] = mode
    maybe(turn, "silence_duration_ms", st.integers(200, 2000))
    maybe(turn, "prefix_padding_ms", st.integers(0, 10000))
    maybe(turn, "silence_threshold_ms", st.integers(100, 2000))
    maybe(turn, "preroll_ms", st.integers(0, 2000))
    maybe(turn, "vad_aggressiveness", st.integers(0, 3))
    maybe(turn, "vad_stop_ms", st.integers(100, 5000))

    inp: dict[str, Any] = {"codec": draw(st.sampled_from(["pcm", "g711a", "g711u", "opus"]))}
    inp["sample_rate"] = {
        "pcm": draw(st.sampled_from(_RATES)),
        "opus": draw(st.sampled_from(_OPUS_RATES)),
    }.get(inp["codec"], 8000)
    maybe(inp, "frame_ms", st.sampled_from([10, 20.0, 40, 60]))

    out: dict[str, Any] = {"codec": draw(st.sampled_from(["pcm", "g711a", "g711u", "opus", "mp3"]))}
    out["sample_rate"] = {
        "pcm": draw(st.sampled_from(_RATES)),
        "opus": draw(st.sampled_from(_OPUS_RATES)),
        "mp3": draw(st.sampled_from([32000, 44100, 48000])),
    }.get(out["codec"], 8000)
    if out["codec"] != "mp3" and draw(st.booleans()):
        out["frame_size_ms"] = draw(st.sampled_from([20, 40, 60]))
        if draw(st.booleans()):
            out["limit_period_s"] = draw(st.integers(1, 5))
            out["limit_max_frames"] = draw(st.integers(1, 100))
    maybe(out, "speech_rate", st.integers(-50, 100))
    maybe(out, "loudness_rate", st.integers(-50, 100))
    maybe(out, "enable_ans", st.booleans())

    audio: dict[str, Any] = {}
    maybe(audio, "gain_db", st.floats(-40, 40))
    maybe(audio, "period_ms", st.integers(10, 100))
    maybe(audio, "echo_policy", st.sampled_from(["auto", "half_duplex", "full_duplex", "duck"]))
    maybe(audio, "input_channels", st.sampled_from([0, 1, 2, 4]))
    maybe(audio, "source", st.sampled_from(["", "default", "file:/tmp/x.wav"]))
    maybe(audio, "realtime", st.booleans())

    button: dict[str, Any] = {}
    maybe(button, "kind", st.sampled_from(["none", "gpio", "terminal"]))
    button["mode"] = (
        "interrupt"
        if mode not in ("ptt", "local_vad")
        else draw(st.sampled_from(["hold", "toggle", "interrupt"]))
    )
    maybe(button, "gpio_pin", st.integers(0, 53))
    maybe(button, "bounce_ms", st.integers(0, 500))
    maybe(button, "earcon_level_dbfs", st.floats(-60, 0))

    service: dict[str, Any] = {}
    maybe(service, "health_listen", st.sampled_from(["", "127.0.0.1:9733", "localhost:1"]))
    tools: dict[str, Any] = {}
    maybe(
        tools,
        "allow",
        st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
            st.just("pkg.mod:fn"),
            max_size=2,
        ),
    )
    if draw(st.booleans()):
        # Realtime: the webrtc transport only talks to a (loopback) emulator's HTTP API.
        cloud["api"] = "realtime"
        cloud["api_url"] = draw(st.sampled_from(["http://127.0.0.1:8766", "http://[::1]:9"]))
    realtime: dict[str, Any] = {}
    maybe(realtime, "connector_id", st.from_regex(r"[0-9]{1,19}", fullmatch=True))
    maybe(realtime, "room_mode", st.sampled_from(["default", "podcast", "s2s", "translate"]))
    maybe(realtime, "prologue_content", st.text(max_size=20))
    maybe(realtime, "prologue_delay_ms", st.integers(0, 5000))
    maybe(realtime, "longest_silence_ms", st.integers(1000, 600000))
    maybe(realtime, "allow_voice_interrupt", st.booleans())
    maybe(
        realtime,
        "interrupt_keywords",
        st.lists(st.text(st.characters(categories=("L",)), min_size=1, max_size=8), max_size=10),
    )
    maybe(realtime, "join_timeout_s", st.floats(0.5, 120))
    doc = {
        "cloud": cloud,
        "realtime": realtime,
        "turn": turn,
        "input": inp,
        "output": out,
        "audio": audio,
        "button": button,
        "service": service,
        "tools": tools,
    }
    keep = draw(st.lists(st.sampled_from(list(doc)), unique=True))
    return {k: doc[k] for k in keep}


@FUZZ
@given(doc=_valid_documents())
def test_valid_random_configs_load(tmp_path: Path, doc: dict[str, Any]) -> None:
    assert isinstance(parse_config(doc), Config)
    path = tmp_path / "ok.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    cfg = load_config(path)
    for section, body in doc.items():
        for key, value in body.items():
            got = getattr(getattr(cfg, section), key)
            assert (list(got) if isinstance(got, tuple) else got) == value  # TOML arrays
