"""The data objects of the Realtime (RTC) API's signalling events (coze-protocol.md 3.4, 3.5).

Realtime rooms carry their events as JSON RTC user messages in the ``/v1/chat`` envelope, so the
same table-driven codec (:mod:`voicegw.protocol.schema`) encodes and decodes these frozen
dataclasses; field names, enums, ranges and defaults follow the spec. A field left ``None`` is
"not sent". The :class:`~voicegw.protocol.objects.Chat`, :class:`~voicegw.protocol.objects.Message`,
tool-call and :class:`~voicegw.protocol.objects.ToolOutput` objects are the ``/v1/chat`` ones
(spec 3.3); so are ``asr_config`` (:class:`~voicegw.protocol.objects.ASRConfig`),
``voice_processing_config`` and ``semantic_vad_config``, whose Realtime fields are the same.

Where the Realtime API differs from ``/v1/chat`` it gets its own class:

* ``session.update`` (:class:`SessionUpdateData`) keeps ``speech_rate``/``loudness_rate``
  (-50..100) and ``voice_id`` at the top level of ``data`` and adds ``longest_silence_ms`` and
  ``tts_config``;
* ``chat_config`` (:class:`RealtimeChatConfig`) holds ``plugin_interrupt_mode``,
  ``allow_voice_interrupt`` and ``interrupt_config`` (mode ``all`` is the default; at most 10
  keywords of at most 8 characters each, unlike the 5 keywords of 6-24 bytes of ``/v1/chat``);
* ``turn_detection`` (:class:`RealtimeTurnDetection`) knows ``client_vad``;
* ``voice_print_config`` (:class:`RealtimeVoicePrintConfig`) adds ``feature_id``.

INFERRED choices (spec 3.4, 3.5 and 9 leave these open):

* ``keywords`` vs ``keyword``: the table says ``keywords``, one ``session.updated`` doc example
  says ``keyword``. We send ``keywords``; a received ``keyword`` is accepted into its own field
  (:attr:`RealtimeInterruptConfig.keyword`), so it is neither an error nor an "unknown field",
  and :meth:`RealtimeInterruptConfig.effective_keywords` reads either.
* ``turn_detection.type`` also accepts ``client_interrupt``: it is fixed at room creation for
  push-to-talk rooms and the agent may echo it in ``session.updated``. The session never sends
  it and sends no type at all in push-to-talk rooms (see :mod:`voicegw.realtime.session`).
* ``longest_silence_ms`` must be positive and is otherwise unbounded: the spec gives only the
  default, 180000 (short limits are useful against the emulator).
* ``prefix_padding_ms`` is checked against 0-10000, as for ``/v1/chat``.
* ``asr_config.context`` is limited to 800 *tokens*; tokens cannot be counted here, so it is not
  checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import RemoteProtocolError
from ..protocol.objects import (
    EMOTIONS,
    ASRConfig,
    SemanticVADConfig,
    VoiceProcessingConfig,
)
from ..protocol.schema import spec_field

__all__ = [
    "KEYWORD_MAX_CHARS",
    "PRE_ANSWER_TEXT_MAX_CHARS",
    "REALTIME_DEFAULTS",
    "ModeChat",
    "ModeData",
    "PreAnswer",
    "PreAnswerData",
    "PreAnswerTrigger",
    "RealtimeChatConfig",
    "RealtimeErrorDetail",
    "RealtimeInterruptConfig",
    "RealtimeTurnDetection",
    "RealtimeVoicePrintConfig",
    "SessionUpdateData",
    "TTSConfig",
]

#: Longest interrupt keyword, in characters (spec 3.4).
KEYWORD_MAX_CHARS = 8
#: Longest ``pre_answer_list`` entry, in characters (spec 3.4).
PRE_ANSWER_TEXT_MAX_CHARS = 10


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ---------------------------------------------------------------- session.update (3.4)


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeInterruptConfig:
    """Which user speech interrupts the agent: all of it, or a keyword match."""

    mode: Literal["all", "keyword_contains", "keyword_prefix"] | None = None
    keywords: tuple[str, ...] | None = spec_field(max_items=10)
    #: The singular spelling of one ``session.updated`` doc example; accepted, never sent by us.
    keyword: tuple[str, ...] | None = spec_field(max_items=10)
    extra: dict[str, Any] = field(default_factory=dict)

    def effective_keywords(self) -> tuple[str, ...]:
        """The keywords, whichever spelling carried them."""
        return self.keywords or self.keyword or ()

    def _check(self, path: str) -> None:
        for name in ("keywords", "keyword"):
            for i, kw in enumerate(getattr(self, name) or ()):
                if not 1 <= len(kw) <= KEYWORD_MAX_CHARS:
                    raise RemoteProtocolError(
                        f"is {len(kw)} characters long, keywords need 1-{KEYWORD_MAX_CHARS}",
                        path=_at(path, f"{name}[{i}]"),
                    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeChatConfig:
    """``chat_config`` of ``session.update``."""

    meta_data: dict[str, Any] | None = None
    custom_variables: dict[str, Any] | None = None
    extra_params: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    plugin_interrupt_mode: Literal["blocking", "nonblocking"] | None = None
    allow_voice_interrupt: bool | None = None
    interrupt_config: RealtimeInterruptConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def _check(self, path: str) -> None:
        for k in self.extra_params or {}:
            if k not in ("latitude", "longitude"):
                raise RemoteProtocolError(
                    "only latitude and longitude are allowed", path=_at(path, f"extra_params.{k}")
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeTurnDetection:
    """``turn_detection`` of ``session.update``. Agent default: server_vad, 600/500 ms."""

    type: Literal["server_vad", "client_vad", "semantic_vad", "client_interrupt"] | None = None
    prefix_padding_ms: int | None = spec_field(lo=0, hi=10000)
    silence_duration_ms: int | None = spec_field(lo=200, hi=2000)
    semantic_vad_config: SemanticVADConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeVoicePrintConfig:
    """Voiceprint recognition; ``feature_id`` selects PDNS "active mode"."""

    group_id: str | None = None
    score: int | None = spec_field(lo=0, hi=100)
    reuse_voice_info: bool | None = None
    feature_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TTSConfig:
    """``tts_config``: context texts (TTS 2.0 voices), emotion and its strength."""

    context_texts: tuple[str, ...] | None = None
    emotion: str | None = spec_field(choices=EMOTIONS)
    emotion_scale: float | None = spec_field(lo=1.0, hi=5.0)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdateData:
    """``data`` of ``session.update`` and ``session.updated``: only present fields change."""

    voice_id: str | None = None
    speech_rate: int | None = spec_field(lo=-50, hi=100)
    loudness_rate: int | None = spec_field(lo=-50, hi=100)
    longest_silence_ms: int | None = spec_field(lo=1)
    event_subscriptions: tuple[str, ...] | None = None
    chat_config: RealtimeChatConfig | None = None
    turn_detection: RealtimeTurnDetection | None = None
    asr_config: ASRConfig | None = None
    voice_print_config: RealtimeVoicePrintConfig | None = None
    tts_config: TTSConfig | None = None
    voice_processing_config: VoiceProcessingConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: What the agent applies for anything ``session.update`` leaves out (spec 3.4).
REALTIME_DEFAULTS = SessionUpdateData(
    speech_rate=0,
    loudness_rate=0,
    longest_silence_ms=180000,
    event_subscriptions=(),
    chat_config=RealtimeChatConfig(
        plugin_interrupt_mode="nonblocking",
        allow_voice_interrupt=True,
        interrupt_config=RealtimeInterruptConfig(mode="all"),
    ),
    turn_detection=RealtimeTurnDetection(
        type="server_vad",
        prefix_padding_ms=600,
        silence_duration_ms=500,
        semantic_vad_config=SemanticVADConfig(
            silence_threshold_ms=300, semantic_unfinished_wait_time_ms=500
        ),
    ),
    asr_config=ASRConfig(
        stream_mode="bidirectional_stream", enable_ddc=True, enable_nostream=False
    ),
    voice_print_config=RealtimeVoicePrintConfig(score=40, reuse_voice_info=False),
    tts_config=TTSConfig(emotion_scale=4.0),
)


# ---------------------------------------------------------------- pre-answer, mode (3.4, 3.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class PreAnswer:
    """Filler replies while the model thinks: none (default), audio file, texts or a bot."""

    type: Literal["none", "audio", "text", "bot"] | None = None
    file_id: str | None = None
    pre_answer_list: tuple[str, ...] | None = None
    bot_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def _check(self, path: str) -> None:
        for i, text in enumerate(self.pre_answer_list or ()):
            if len(text) > PRE_ANSWER_TEXT_MAX_CHARS:
                raise RemoteProtocolError(
                    f"is {len(text)} characters long, at most {PRE_ANSWER_TEXT_MAX_CHARS} allowed",
                    path=_at(path, f"pre_answer_list[{i}]"),
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class PreAnswerTrigger:
    """When a filler reply plays; ``time_after`` in ms (default 1500)."""

    type: Literal["mandatory", "time-trigger", "event-driven"] | None = None
    time_after: int | None = spec_field(lo=0, hi=3000)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PreAnswerData:
    """``data`` of ``session.pre_answer.update`` and ``session.pre_answer.updated``."""

    pre_answer: PreAnswer | None = None
    trigger: PreAnswerTrigger | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeChat:
    """``chat`` of ``mode.update``: the language the user speaks."""

    user_language: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeData:
    """``data`` of ``mode.update`` and ``mode.updated``."""

    mode: Literal["chat"] = spec_field("chat")
    chat: ModeChat | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- downstream payloads (3.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeErrorDetail:
    """``data.detail`` of a Realtime ``error`` (nested inside ``data``, spec 3.3)."""

    logid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
