"""Configuration: one TOML file loaded once into frozen dataclasses.

The loader is the only place defaults live. It rejects unknown keys and bad values with a
:class:`ConfigError` naming the dotted key, and it never reads a token from the file: the token
comes from ``COZE_API_TOKEN`` or from the file named by ``cloud.token_file``.

See ``configs/voicegw.example.toml`` for every key with its unit and default.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints
from urllib.parse import urlsplit

from .echo import default_policy
from .errors import ConfigError
from .limits import LimitPlan, plan_limits
from .protocol.objects import (
    AUDIO_RATES,
    OPUS_FRAME_MS,
    ChatConfig,
    ChatUpdateData,
    InputAudio,
    LimitConfig,
    MP3Config,
    OpusConfig,
    OutputAudio,
    PCMConfig,
    SemanticVADConfig,
    TurnDetection,
    VoiceProcessingConfig,
)

__all__ = [
    "AudioConfig",
    "ButtonConfig",
    "CloudConfig",
    "Config",
    "InputConfig",
    "OutputConfig",
    "RealtimeConfig",
    "ServiceConfig",
    "ToolsConfig",
    "TurnConfig",
    "load_config",
    "parse_config",
    "read_token",
]

TurnModeName = Literal["ptt", "server_vad", "semantic_vad", "local_vad"]
#: On the wire a local VAD is push-to-talk: the device decides when speech starts and ends.
_TURN_TYPES = {
    "ptt": "client_interrupt",
    "server_vad": "server_vad",
    "semantic_vad": "semantic_vad",
    "local_vad": "client_interrupt",
}


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """Where and as whom to connect."""

    url: str = "wss://ws.coze.cn"
    """WebSocket base URL (``wss://ws.coze.cn`` or ``wss://ws.coze.com``); ``/v1/chat`` is added."""
    api: Literal["chat", "realtime"] = "chat"
    """``chat``: the ``/v1/chat`` WebSocket. ``realtime``: create a room (``POST
    /v1/audio/rooms``) and talk over the RTC transport (see ``[realtime]``)."""
    api_url: str = ""
    """HTTP API base URL (create room, bind device). "" derives it from ``url``:
    ``wss://ws.coze.cn`` -> ``https://api.coze.cn``; a loopback ``ws://host:P`` emulator ->
    ``http://host:P+1``, where ``voicegw emulator`` serves its HTTP endpoints by default."""
    bot_id: str = ""
    """The agent, published to the API channel. Required."""
    workflow_id: str = ""
    """Optional chatflow id."""
    device_id: int = 0
    """Numeric device id sent as ``device_id`` (0 = not sent)."""
    user_id: str = "voicegw"
    """End-user id (memory and history are kept per user)."""
    conversation_id: str = ""
    """Conversation to continue ("" = the service creates one)."""
    token_file: str = ""
    """File holding the token, when ``COZE_API_TOKEN`` is not set."""
    connect_timeout_s: float = 10.0
    """Seconds to wait for the upgrade and for ``chat.created``/``chat.updated``."""
    ping_interval_s: float = 15.0
    """WebSocket ping interval in seconds (the service closes after 4 missed pongs)."""

    @property
    def chat_url(self) -> str:
        return self.url.rstrip("/") + "/v1/chat"

    @property
    def http_url(self) -> str:
        """The HTTP API base, without a trailing slash (see ``api_url``)."""
        if self.api_url:
            return self.api_url.rstrip("/")
        parts = urlsplit(self.url)
        host = parts.netloc
        if parts.scheme == "wss":
            if host.startswith("ws."):
                host = "api." + host[3:]
            return f"https://{host}"
        port = (parts.port or 80) + 1
        host = parts.hostname or ""
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """How a user turn starts and ends."""

    mode: TurnModeName = "ptt"
    """``ptt`` (push-to-talk), ``server_vad``, ``semantic_vad`` or ``local_vad`` (the device's
    own VAD presses and releases; client_interrupt on the wire)."""
    prefix_padding_ms: int = 600
    """server VAD: audio kept before the detected onset, ms."""
    silence_duration_ms: int = 500
    """server VAD: silence that ends the turn, ms (200-2000)."""
    silence_threshold_ms: int = 300
    """semantic VAD: silence before the semantic check, ms (100-2000)."""
    semantic_unfinished_wait_time_ms: int = 500
    """semantic VAD: further wait when the sentence seems unfinished, ms (100-2000)."""
    preroll_ms: int = 300
    """Audio kept from before a press or a local VAD trigger, ms (0-2000)."""
    vad_aggressiveness: int = 2
    """local VAD: webrtcvad mode 0-3 (3 rejects the most noise)."""
    vad_stop_ms: int = 600
    """local VAD: silence that ends the utterance, ms (100-5000)."""


@dataclass(frozen=True, slots=True)
class InputConfig:
    """Audio sent upstream."""

    codec: Literal["pcm", "g711a", "g711u", "opus"] = "pcm"
    sample_rate: int = 16000
    """Hz; 8000 for G.711; 8000/12000/16000/24000/48000 for Opus."""
    frame_ms: float = 20.0
    """Audio per ``input_audio_buffer.append``, ms (10-60)."""


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """Audio the service sends back."""

    codec: Literal["pcm", "g711a", "g711u", "opus", "mp3"] = "pcm"
    sample_rate: int = 24000
    """Hz. 8000 for G.711; 32000/44100/48000 for MP3."""
    frame_size_ms: float = 0.0
    """Audio per delta, ms (0 = unset: the service sends ~250 ms bursts)."""
    limit_period_s: int = 0
    """limit_config.period, s (0 = no limit)."""
    limit_max_frames: int = 0
    """limit_config.max_frame_num: deltas per period."""
    bitrate: int = 48000
    """Opus/MP3 bitrate, bps."""
    voice_id: str = ""
    """Voice to speak with ("" = the agent's)."""
    speech_rate: int = 0
    """-50..100 (0 = normal)."""
    loudness_rate: int = 0
    """-50..100 (0 = normal)."""
    enable_ans: bool = False
    """Server-side noise suppression."""
    enable_pdns: bool = False
    """Server-side personal noise suppression (excludes enable_ans)."""


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """The device side: sound cards by stable name pattern, or ``file:PATH`` WAV files."""

    profile: str = ""
    """Device profile (a name from ``devices/`` or a path); its values fill unset keys."""
    source: str = ""
    """Microphone: a device name pattern (``"USB Audio"``, ``"seeed-2mic"``, ``"default"``)
    or ``file:PATH.wav``."""
    sink: str = ""
    """Speaker: a device name pattern or ``file:PATH.wav``."""
    input_rate: int = 0
    """Capture rate, Hz (0 = probe the device: the API rate if it can, else 48000/44100...)."""
    input_channels: int = 0
    """Capture channels (0 = probe: 1 if the device can, else 2)."""
    input_channel: int = -1
    """Channel to use from a multi-channel capture (-1 = average them)."""
    gain_db: float = 0.0
    """Microphone gain, dB (-40..40)."""
    sink_rate: int = 0
    """Speaker rate in Hz (0 = the output rate if the device can, else what it supports)."""
    output_channels: int = 0
    """Speaker channels (0 = probe)."""
    period_ms: int = 20
    """Device period, ms (10-100)."""
    realtime: bool = True
    """Pace file-backed devices in real time (False: as fast as possible)."""
    playback_prefill_ms: int = 60
    """Audio buffered before playback starts, ms."""
    playback_max_s: float = 30.0
    """Largest playout buffer, s (overflow drops the oldest audio and counts it)."""
    buffer_budget_ms: int = 0
    """The device's playback memory, ms (0 = unbounded). When set and output.frame_size_ms
    is 0, frame_size_ms and limit_config are derived from it so the service never floods
    the device, and the playout buffer enforces the same budget."""
    echo_policy: Literal["auto", "half_duplex", "full_duplex", "duck"] = "auto"
    """Microphone while the speaker plays: ``auto`` = full_duplex for ptt, half_duplex for
    VAD modes; ``full_duplex`` only with hardware echo cancellation."""
    echo_tail_ms: int = 300
    """half_duplex/duck: how long after playback stops the microphone stays guarded, ms."""


@dataclass(frozen=True, slots=True)
class ButtonConfig:
    """The push-to-talk button."""

    kind: Literal["none", "gpio", "evdev", "terminal"] = "none"
    """Where presses come from: a GPIO pin, a Linux input device, the terminal, or none."""
    mode: Literal["hold", "toggle", "interrupt"] = "hold"
    """``hold`` to talk, ``toggle`` (press to start, press to stop), or ``interrupt`` (a press
    only stops the reply)."""
    gpio_pin: int = 17
    """BCM pin number (GPIO 17 is the ReSpeaker 2-mic HAT's button)."""
    active_low: bool = True
    """The pin reads low while pressed (a button to ground with a pull-up)."""
    bounce_ms: int = 50
    """Edges closer than this are contact bounce, ms (0-500)."""
    evdev_device: str = ""
    """Input device name pattern (a foot pedal, a HID button, a keyboard)."""
    evdev_key: str = "KEY_SPACE"
    """Key code name or number of the evdev button."""
    terminal_key: str = " "
    """Key for the terminal button (development)."""
    max_hold_s: float = 60.0
    """A button held longer than this ends the utterance (a stuck key), s."""
    earcons: bool = True
    """Play a short tone on press, release and error (never sent upstream)."""
    earcon_level_dbfs: float = -20.0
    """Earcon peak level, dBFS."""


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Running as a daemon."""

    control_socket: str = ""
    """Path of the local control socket (JSON lines; "" = off)."""
    health_listen: str = ""
    """``HOST:PORT`` of the /healthz and /metrics endpoint ("" = off; loopback only)."""
    capture_timeout_s: float = 5.0
    """A capture stream silent this long is dead: reopened, and the watchdog is not fed, s."""
    reconnect_max_s: float = 30.0
    """Longest wait between reconnection attempts, s."""
    offline_ptt_s: float = 30.0
    """Push-to-talk audio kept while disconnected and sent on reconnect, s (1-300)."""


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """The Realtime API (``cloud.api = "realtime"``): the room and its session.

    Turn modes map onto rooms: ``ptt`` -> a ``client_interrupt`` room (push-to-talk with
    ``input_audio_buffer.start``/``complete``), ``server_vad`` and ``semantic_vad`` as named,
    ``local_vad`` -> ``client_vad`` (the device's own VAD sends ``client.vad`` on change)."""

    connector_id: str = "1024"
    """Channel the room is created on (1024 = API)."""
    room_mode: Literal["default", "podcast", "s2s", "translate"] = "default"
    audio_codec: Literal["OPUS", "G711A", "G722", "AACLC"] = "OPUS"
    """Codec of the room's audio (the WebRTC transport carries Opus)."""
    prologue_content: str = ""
    """Custom opening line ("" = the agent's own)."""
    prologue_delay_ms: int = 500
    """Delay after joining before the prologue plays, ms (0-5000)."""
    longest_silence_ms: int = 180000
    """The room is dismissed (error 4029) after this long without user speech, ms; a new one
    is then created."""
    allow_voice_interrupt: bool = True
    """Speech while the agent talks interrupts it (barge-in)."""
    interrupt_keywords: tuple[str, ...] = ()
    """Only these words interrupt (max 10, each up to 8 characters; empty = any speech)."""
    join_timeout_s: float = 10.0
    """Seconds to wait for the transport to connect and for the agent to join."""
    transport: Literal["webrtc"] = "webrtc"
    """RTC transport. ``webrtc`` (aiortc) talks to the emulator and any standard WebRTC room;
    Coze's hosted rooms need a Volcengine veRTC binding (see README)."""


@dataclass(frozen=True, slots=True)
class ToolsConfig:
    """Tools the agent may run on the device (``requires_action``)."""

    builtin: bool = True
    """Offer set_volume, mute and device_status."""
    allow: dict[str, str] = field(default_factory=dict)
    """Extra tools: ``name = "module:function"``. Anything not listed is refused."""


@dataclass(frozen=True, slots=True)
class Config:
    cloud: CloudConfig = field(default_factory=CloudConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    button: ButtonConfig = field(default_factory=ButtonConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)

    def limit_plan(self) -> LimitPlan | None:
        """``frame_size_ms``/``limit_config`` derived from ``audio.buffer_budget_ms``, if any."""
        out = self.output
        if not self.audio.buffer_budget_ms or out.frame_size_ms or out.codec == "mp3":
            return None
        return plan_limits(out.codec, float(self.audio.buffer_budget_ms))

    @property
    def echo_policy(self) -> str:
        """The echo policy in force (``auto`` resolved for the turn mode)."""
        if self.audio.echo_policy != "auto":
            return self.audio.echo_policy
        return default_policy(self.turn.mode)

    def chat_update(self) -> ChatUpdateData:
        """The ``chat.update`` data this config asks for (sent on every connect)."""
        inp, out, turn = self.input, self.output, self.turn
        input_audio = InputAudio(
            format="pcm",
            codec=inp.codec,
            sample_rate=inp.sample_rate,
            channel=1,
            bit_depth=8 if inp.codec in ("g711a", "g711u") else 16,
        )
        limit = (
            LimitConfig(period=out.limit_period_s, max_frame_num=out.limit_max_frames)
            if out.limit_period_s
            else None
        )
        frame = out.frame_size_ms or None
        plan = self.limit_plan()
        if plan is not None:
            frame = plan.frame_size_ms
            limit = plan.limit_config()
        pcm = opus = mp3 = None
        if out.codec == "opus":
            opus = OpusConfig(
                bitrate=out.bitrate,
                frame_size_ms=frame,
                limit_config=limit,
                sample_rate=out.sample_rate,
            )
        elif out.codec == "mp3":
            mp3 = MP3Config(sample_rate=out.sample_rate, bit_rate=out.bitrate)
        else:
            pcm = PCMConfig(sample_rate=out.sample_rate, frame_size_ms=frame, limit_config=limit)
        output_audio = OutputAudio(
            codec=out.codec,
            pcm_config=pcm,
            opus_config=opus,
            mp3_config=mp3,
            speech_rate=out.speech_rate,
            loudness_rate=out.loudness_rate,
            voice_id=out.voice_id or None,
        )
        td = TurnDetection(type=_TURN_TYPES[turn.mode])  # type: ignore[arg-type]
        if turn.mode == "server_vad":
            td = dataclasses.replace(
                td,
                prefix_padding_ms=turn.prefix_padding_ms,
                silence_duration_ms=turn.silence_duration_ms,
            )
        elif turn.mode == "semantic_vad":
            td = dataclasses.replace(
                td,
                prefix_padding_ms=turn.prefix_padding_ms,
                semantic_vad_config=SemanticVADConfig(
                    silence_threshold_ms=turn.silence_threshold_ms,
                    semantic_unfinished_wait_time_ms=turn.semantic_unfinished_wait_time_ms,
                ),
            )
        vpc = None
        if out.enable_ans or out.enable_pdns:
            vpc = VoiceProcessingConfig(enable_ans=out.enable_ans, enable_pdns=out.enable_pdns)
        return ChatUpdateData(
            chat_config=ChatConfig(
                user_id=self.cloud.user_id or None,
                conversation_id=self.cloud.conversation_id or None,
            ),
            input_audio=input_audio,
            output_audio=output_audio,
            turn_detection=td,
            voice_processing_config=vpc,
        )


# ---------------------------------------------------------------- loading


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = getattr(tp, "__origin__", None)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{value!r} is not one of {', '.join(map(repr, allowed))}", key=key)
        return value
    if tp is bool:
        if type(value) is not bool:
            raise ConfigError(f"expected true or false, got {value!r}", key=key)
        return value
    if tp is int:
        if type(value) is not int:
            raise ConfigError(f"expected an integer, got {value!r}", key=key)
        return value
    if tp is float:
        if type(value) not in (int, float):
            raise ConfigError(f"expected a number, got {value!r}", key=key)
        return float(value)
    if tp is str:
        if type(value) is not str:
            raise ConfigError(f"expected a string, got {value!r}", key=key)
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {value!r}", key=key)
        for i, v in enumerate(value):
            if type(v) is not str:
                raise ConfigError(f"expected a string, got {v!r}", key=f"{key}[{i}]")
        return tuple(value)
    if getattr(tp, "__origin__", None) is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table, got {value!r}", key=key)
        for k, v in value.items():
            if type(v) is not str:
                raise ConfigError(f"expected a string, got {v!r}", key=f"{key}.{k}")
        return dict(value)
    raise ConfigError(f"unsupported type {tp!r}", key=key)  # pragma: no cover


def _section(cls: type[Any], raw: Any, name: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", key=name)
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if key == "token":
            raise ConfigError(
                "tokens are never read from the config file; set COZE_API_TOKEN "
                "or cloud.token_file",
                key=dotted,
            )
        if key not in known:
            raise ConfigError(f"unknown key (known: {', '.join(sorted(known))})", key=dotted)
        kwargs[key] = _convert(value, hints[key], dotted)
    return cls(**kwargs)


def _validate(cfg: Config) -> None:
    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(msg, key=key)

    c, t, i, o, a = cfg.cloud, cfg.turn, cfg.input, cfg.output, cfg.audio
    try:
        url = urlsplit(c.url)
        scheme, host = url.scheme, url.hostname
    except ValueError as exc:
        raise bad("cloud.url", f"not a valid URL: {exc}") from None
    if scheme not in ("ws", "wss"):
        raise bad("cloud.url", f"must start with wss:// or ws://, got {c.url!r}")
    if scheme == "ws" and host not in ("127.0.0.1", "localhost", "::1"):
        raise bad("cloud.url", "plain ws:// is only allowed to a loopback emulator; use wss://")
    if c.api_url:
        try:
            api = urlsplit(c.api_url)
            api_scheme, api_host = api.scheme, api.hostname
        except ValueError as exc:
            raise bad("cloud.api_url", f"not a valid URL: {exc}") from None
        if api_scheme not in ("http", "https") or not api_host:
            raise bad("cloud.api_url", f"must be an https:// URL, got {c.api_url!r}")
        if api_scheme == "http" and api_host not in ("127.0.0.1", "localhost", "::1"):
            raise bad("cloud.api_url", "plain http:// is only allowed to a loopback emulator")
    if c.device_id < 0:
        raise bad("cloud.device_id", "must be a non-negative integer")
    if not 200 <= t.silence_duration_ms <= 2000:
        raise bad("turn.silence_duration_ms", "must be 200-2000 ms")
    if not 0 <= t.prefix_padding_ms <= 10000:
        raise bad("turn.prefix_padding_ms", "must be 0-10000 ms")
    for k in ("silence_threshold_ms", "semantic_unfinished_wait_time_ms"):
        if not 100 <= getattr(t, k) <= 2000:
            raise bad(f"turn.{k}", "must be 100-2000 ms")
    g711 = ("g711a", "g711u")
    if i.codec in g711 and i.sample_rate != 8000:
        raise bad("input.sample_rate", f"G.711 needs 8000 Hz, got {i.sample_rate}")
    if i.codec == "opus" and i.sample_rate not in (8000, 12000, 16000, 24000, 48000):
        raise bad("input.sample_rate", "Opus needs 8000, 12000, 16000, 24000 or 48000 Hz")
    if i.codec == "pcm" and i.sample_rate not in AUDIO_RATES:
        raise bad("input.sample_rate", f"must be one of {AUDIO_RATES}")
    if not 10 <= i.frame_ms <= 60:
        raise bad("input.frame_ms", "must be 10-60 ms")
    if o.codec in g711 and o.sample_rate != 8000:
        raise bad("output.sample_rate", f"G.711 needs 8000 Hz, got {o.sample_rate}")
    if o.codec == "mp3" and o.sample_rate not in (32000, 44100, 48000):
        raise bad("output.sample_rate", "MP3 needs 32000, 44100 or 48000 Hz")
    if o.codec == "opus":
        if o.sample_rate not in (8000, 12000, 16000, 24000, 48000):
            raise bad("output.sample_rate", "Opus needs 8000, 12000, 16000, 24000 or 48000 Hz")
        if o.frame_size_ms and o.frame_size_ms not in OPUS_FRAME_MS:
            raise bad("output.frame_size_ms", f"Opus frames are {OPUS_FRAME_MS} ms")
    elif o.codec == "pcm" and o.sample_rate not in AUDIO_RATES:
        raise bad("output.sample_rate", f"must be one of {AUDIO_RATES}")
    if o.frame_size_ms < 0:
        raise bad("output.frame_size_ms", "must be >= 0")
    if (o.limit_period_s > 0) != (o.limit_max_frames > 0):
        raise bad("output.limit_max_frames", "limit_period_s and limit_max_frames go together")
    if o.limit_period_s and not o.frame_size_ms:
        raise bad("output.frame_size_ms", "limit_config only takes effect with frame_size_ms")
    for k in ("speech_rate", "loudness_rate"):
        if not -50 <= getattr(o, k) <= 100:
            raise bad(f"output.{k}", "must be -50..100")
    if o.enable_ans and o.enable_pdns:
        raise bad("output.enable_pdns", "enable_ans and enable_pdns exclude each other")
    if not 0 <= t.preroll_ms <= 2000:
        raise bad("turn.preroll_ms", "must be 0-2000 ms")
    if t.vad_aggressiveness not in (0, 1, 2, 3):
        raise bad("turn.vad_aggressiveness", "must be 0, 1, 2 or 3")
    if not 100 <= t.vad_stop_ms <= 5000:
        raise bad("turn.vad_stop_ms", "must be 100-5000 ms")
    if not 0 <= a.echo_tail_ms <= 5000:
        raise bad("audio.echo_tail_ms", "must be 0-5000 ms")
    if a.buffer_budget_ms < 0:
        raise bad("audio.buffer_budget_ms", "must be >= 0")
    if a.buffer_budget_ms and not o.frame_size_ms:
        if o.codec == "mp3":
            raise bad(
                "audio.buffer_budget_ms",
                "mp3 output cannot be throttled (no limit_config); use pcm, g711 or opus",
            )
        try:
            cfg.limit_plan()
        except ConfigError as exc:
            raise bad("audio.buffer_budget_ms", str(exc)) from None
    if a.playback_prefill_ms < 0 or a.playback_max_s <= 0:
        raise bad("audio.playback_max_s", "buffer sizes must be positive")
    for k in ("source", "sink"):
        v = getattr(a, k)
        if v.startswith("file:") and len(v) == 5:
            raise bad(f"audio.{k}", "file: needs a path (file:/path/to.wav)")
    if a.input_rate and a.input_rate not in (*AUDIO_RATES, 11025, 12000, 96000):
        raise bad("audio.input_rate", f"unsupported rate {a.input_rate}")
    if a.input_channels not in (0, 1, 2, 4, 6, 8):
        raise bad("audio.input_channels", "must be 0 (probe), 1, 2, 4, 6 or 8")
    if a.input_channel < -1 or (a.input_channels and a.input_channel >= a.input_channels):
        raise bad("audio.input_channel", "must be -1 (average) or a channel index")
    if not -40 <= a.gain_db <= 40:
        raise bad("audio.gain_db", "must be -40..40 dB")
    if a.output_channels not in (0, 1, 2):
        raise bad("audio.output_channels", "must be 0 (probe), 1 or 2")
    if not 10 <= a.period_ms <= 100:
        raise bad("audio.period_ms", "must be 10-100 ms")
    r = cfg.realtime
    if not r.connector_id.strip():
        raise bad("realtime.connector_id", "must not be empty (1024 is the API channel)")
    if not 0 <= r.prologue_delay_ms <= 5000:
        raise bad("realtime.prologue_delay_ms", "must be 0-5000 ms")
    if r.longest_silence_ms < 1000:
        raise bad("realtime.longest_silence_ms", "must be at least 1000 ms")
    if len(r.interrupt_keywords) > 10:
        raise bad("realtime.interrupt_keywords", "at most 10 keywords")
    for word in r.interrupt_keywords:
        if not 0 < len(word) <= 8:
            raise bad("realtime.interrupt_keywords", f"{word!r}: each keyword is 1-8 characters")
    if not 0 < r.join_timeout_s <= 120:
        raise bad("realtime.join_timeout_s", "must be 0-120 s")
    if cfg.cloud.api == "realtime" and r.transport == "webrtc":
        if r.audio_codec != "OPUS":
            raise bad("realtime.audio_codec", "the webrtc transport carries OPUS only")
        api_host = (urlsplit(cfg.cloud.http_url).hostname or "").lower()
        if api_host.endswith(("coze.cn", "coze.com")):
            # Hosted rooms run on Volcengine veRTC, which this transport cannot join: every
            # attempt would create a room (billed for at least 3 minutes) for nothing.
            raise bad(
                "realtime.transport",
                "webrtc cannot join Coze's hosted rooms (they run on Volcengine veRTC); use "
                'cloud.api = "chat" with the real service, or point cloud.api_url at an emulator',
            )
    b = cfg.button
    if not 0 <= b.gpio_pin <= 53:
        raise bad("button.gpio_pin", "must be a BCM pin number 0-53")
    if not 0 <= b.bounce_ms <= 500:
        raise bad("button.bounce_ms", "must be 0-500 ms")
    if b.kind == "evdev" and not b.evdev_device:
        raise bad("button.evdev_device", "is required for an evdev button")
    if b.max_hold_s <= 0:
        raise bad("button.max_hold_s", "must be positive")
    if not -60 <= b.earcon_level_dbfs <= 0:
        raise bad("button.earcon_level_dbfs", "must be -60..0 dBFS")
    if b.kind != "none" and t.mode not in ("ptt", "local_vad") and b.mode != "interrupt":
        raise bad("button.mode", f'a {t.mode} session only takes mode = "interrupt"')
    sv = cfg.service
    if sv.health_listen:
        host, _, port = sv.health_listen.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]") or not port.isdigit():
            raise bad("service.health_listen", "must be a loopback HOST:PORT, e.g. 127.0.0.1:9733")
    if not 1 <= sv.offline_ptt_s <= 300:
        raise bad("service.offline_ptt_s", "must be 1-300 s")
    if sv.capture_timeout_s <= 0 or sv.reconnect_max_s <= 0:
        raise bad("service.capture_timeout_s", "timeouts must be positive")
    for name in cfg.tools.allow:
        if not name.replace("_", "").isalnum():
            raise bad(f"tools.allow.{name}", "tool names are letters, digits and _, not only _")


_SECTIONS: dict[str, type[Any]] = {
    "cloud": CloudConfig,
    "turn": TurnConfig,
    "input": InputConfig,
    "output": OutputConfig,
    "audio": AudioConfig,
    "button": ButtonConfig,
    "service": ServiceConfig,
    "tools": ToolsConfig,
    "realtime": RealtimeConfig,
}


def _profile_defaults(name: str) -> dict[str, dict[str, Any]]:
    """The config keys a device profile fills in (the user's own keys win)."""
    from .profiles import load_profile

    p = load_profile(name)
    audio: dict[str, Any] = {"period_ms": round(p.period_ms), "echo_tail_ms": round(p.echo_tail_ms)}
    audio["echo_policy"] = "full_duplex" if p.hardware_aec else p.echo_policy
    if p.backend == "file" and p.file is not None:
        audio.update(
            source=f"file:{p.file.source_wav}",
            sink=f"file:{p.file.sink_wav}",
            sink_rate=p.file.sink_rate,
            realtime=p.file.realtime,
        )
    else:
        audio.update(
            source=p.input.device,
            sink=p.output.device,
            input_rate=p.input.rate,
            input_channels=p.input.channels,
            input_channel=p.input.channel if p.input.channels > 1 else -1,
            gain_db=p.input.gain_db,
            sink_rate=p.output.rate,
            output_channels=p.output.channels,
        )
    b = p.button
    button: dict[str, Any] = {
        "kind": b.kind,
        "active_low": b.active_low,
        "bounce_ms": round(b.bounce_ms),
    }
    if b.kind == "gpio":
        button["gpio_pin"] = b.pin
    if b.kind == "evdev":
        button.update(evdev_device=b.device, evdev_key=str(b.key))
    return {"audio": audio, "button": button}


def parse_config(data: Mapping[str, Any]) -> Config:
    """Build a validated :class:`Config` from a parsed TOML mapping.

    When ``audio.profile`` names a device profile, its values fill every key the mapping
    leaves unset.

    Raises:
        ConfigError: naming the first unknown key or bad value (or the bad profile).
    """
    audio = data.get("audio")
    profile = audio.get("profile") if isinstance(audio, Mapping) else None
    if profile:
        if not isinstance(profile, str):
            raise ConfigError(f"expected a string, got {profile!r}", key="audio.profile")
        try:
            defaults = _profile_defaults(profile)
        except ConfigError as exc:
            raise ConfigError(str(exc), key="audio.profile") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load device profile: {exc}", key="audio.profile") from None
        merged: dict[str, Any] = dict(data)
        for section, values in defaults.items():
            own = data.get(section, {})
            if isinstance(own, Mapping):
                merged[section] = {**values, **own}
        data = merged
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        cls = _SECTIONS.get(name)
        if cls is None:
            raise ConfigError(f"unknown section (known: {', '.join(_SECTIONS)})", key=name)
        kwargs[name] = _section(cls, value, name)
    cfg = Config(**kwargs)
    _validate(cfg)
    return cfg


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read and validate a TOML config file; ``overrides`` maps dotted keys to values.

    Raises:
        ConfigError: the file is missing or unreadable, is not TOML, or has a bad key/value.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError("must be a table", key=section)
        table[key] = value
    return parse_config(data)


_log = logging.getLogger("voicegw.config")
_warned_token_files: set[str] = set()


def _warn_if_exposed(path: str) -> None:
    """Warn once per file when a token file is readable or writable by group or others."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return  # reading it reports the problem
    if not mode & 0o077 or path in _warned_token_files:
        return
    _warned_token_files.add(path)
    _log.warning(
        "token file %s is accessible by other users (mode %s); run: chmod 600 %s",
        path,
        stat.filemode(mode),
        path,
    )


def read_token(cfg: CloudConfig, env: Mapping[str, str] | None = None) -> str:
    """The API token from ``COZE_API_TOKEN`` or ``cloud.token_file``.

    Raises:
        ConfigError: no token is available, or the token file cannot be read.
    """
    env = os.environ if env is None else env
    token = env.get("COZE_API_TOKEN", "").strip()
    if token:
        return token
    if cfg.token_file:
        _warn_if_exposed(cfg.token_file)
        try:
            token = Path(cfg.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read token file: {exc.strerror}", key="cloud.token_file"
            ) from None
        if token:
            return token
        raise ConfigError("token file is empty", key="cloud.token_file")
    raise ConfigError("no API token: set COZE_API_TOKEN or cloud.token_file")
