"""The shared data objects of ``/v1/chat`` (coze-protocol.md section 2.2).

Field names, enums, ranges and defaults follow the spec exactly. Every class is a frozen,
slotted, keyword-only dataclass; :mod:`voicegw.protocol.schema` encodes and decodes all of them
from their annotations. A field left ``None`` is "not sent"; the service's defaults for such
fields are in :data:`DEFAULTS` (used by the emulator to build a full ``chat.updated``).

Ranges the spec documents only for the Realtime API (``silence_duration_ms`` 200-2000) are
applied here too, as an INFERRED choice: a gateway should not send what the sibling API rejects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import RemoteProtocolError
from .schema import spec_field

__all__ = [
    "ASR_LANGUAGES",
    "AUDIO_RATES",
    "DEFAULTS",
    "EMOTIONS",
    "EMOTION_DEFAULTS",
    "MP3_DEFAULTS",
    "MP3_RATES",
    "OPUS_DEFAULTS",
    "OPUS_FRAME_MS",
    "SEMANTIC_VAD_DEFAULTS",
    "ASRConfig",
    "Chat",
    "ChatConfig",
    "ChatUpdateData",
    "EmotionConfig",
    "InputAudio",
    "InterruptConfig",
    "LastError",
    "LimitConfig",
    "MP3Config",
    "Message",
    "OpusConfig",
    "OutputAudio",
    "PCMConfig",
    "RequiredAction",
    "SemanticVADConfig",
    "SensitiveWordsFilter",
    "SubmitToolOutputs",
    "ToolCall",
    "ToolCallFunction",
    "ToolOutput",
    "TurnDetection",
    "Usage",
    "VoicePrintConfig",
    "VoiceProcessingConfig",
]

#: Sample rates of InputAudio and PCMConfig (spec 2.2.1, 2.2.2).
AUDIO_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
#: MP3Config.sample_rate values (spec 2.2.2).
MP3_RATES = (32000, 44100, 48000)
#: OpusConfig.frame_size_ms values (spec 2.2.2).
OPUS_FRAME_MS = (2.5, 5.0, 10.0, 20.0, 40.0, 60.0)
#: emotion_config.emotion values (spec 2.2.2).
EMOTIONS = ("happy", "sad", "angry", "surprised", "fear", "hate", "excited", "coldness", "neutral")
#: Both user_language vocabularies (spec 2.2.5): SDK short codes and doc locale codes.
ASR_LANGUAGES = (
    "common",
    "zh",
    "cant",
    "sc",
    "en",
    "ja",
    "ko",
    "fr",
    "id",
    "es",
    "pt",
    "ms",
    "ru",
    "en-US",
    "ja-JP",
    "id-ID",
    "es-MX",
    "pt-BR",
    "de-DE",
    "fr-FR",
    "ko-KR",
    "fil-PH",
    "ms-MY",
    "th-TH",
    "ar-SA",
)


def _extra() -> Any:
    return field(default_factory=dict)


# ---------------------------------------------------------------- audio formats (2.2.1, 2.2.2)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudio:
    """Format of the audio the client appends. Service default: wav/pcm/24000/1/16."""

    format: Literal["pcm", "wav", "ogg"] | None = None
    codec: Literal["pcm", "opus", "g711a", "g711u"] | None = None
    sample_rate: int | None = spec_field(choices=AUDIO_RATES)
    channel: int | None = spec_field(choices=(1, 2))
    bit_depth: int | None = spec_field(choices=(8, 16, 24))
    extra: dict[str, Any] = _extra()

    def _check(self, path: str) -> None:
        if self.codec in ("g711a", "g711u"):
            if self.sample_rate not in (None, 8000):
                raise RemoteProtocolError(
                    f"G.711 needs sample_rate 8000, got {self.sample_rate}",
                    path=f"{path}.sample_rate" if path else "sample_rate",
                )
            if self.format not in (None, "pcm"):
                raise RemoteProtocolError(
                    f"G.711 needs format 'pcm', got {self.format!r}",
                    path=f"{path}.format" if path else "format",
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitConfig:
    """At most ``max_frame_num`` deltas per ``period`` seconds (spec 2.5.4)."""

    period: int | None = spec_field(lo=1, hi=3600)
    max_frame_num: int | None = spec_field(lo=1, hi=100000)
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class PCMConfig:
    """Output settings for pcm, g711a and g711u."""

    sample_rate: int | None = spec_field(choices=AUDIO_RATES)
    frame_size_ms: float | None = spec_field(lo=1, hi=10000)
    limit_config: LimitConfig | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class OpusConfig:
    """Output settings for opus."""

    bitrate: int | None = spec_field(lo=6000, hi=510000)
    use_cbr: bool | None = None
    frame_size_ms: float | None = spec_field(choices=OPUS_FRAME_MS)
    limit_config: LimitConfig | None = None
    sample_rate: int | None = spec_field(choices=(8000, 12000, 16000, 24000, 48000))
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class MP3Config:
    """Output settings for mp3. The documented bit_rate range is "8000~1600000" (sic)."""

    sample_rate: int | None = spec_field(choices=MP3_RATES)
    bit_rate: int | None = spec_field(lo=8000, hi=1600000)
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class EmotionConfig:
    """Emotion of voices that support it."""

    emotion: str | None = spec_field(choices=EMOTIONS)
    emotion_scale: float | None = spec_field(lo=1.0, hi=5.0)
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAudio:
    """Format and voice of the reply audio. Service default: pcm at 24000 Hz."""

    codec: Literal["pcm", "g711a", "g711u", "opus", "mp3"] | None = None
    pcm_config: PCMConfig | None = None
    opus_config: OpusConfig | None = None
    mp3_config: MP3Config | None = None
    speech_rate: int | None = spec_field(lo=-50, hi=100)
    loudness_rate: int | None = spec_field(lo=-50, hi=100)
    voice_id: str | None = None
    emotion_config: EmotionConfig | None = None
    context_texts: tuple[str, ...] | None = None
    extra: dict[str, Any] = _extra()

    def _check(self, path: str) -> None:
        if self.codec in ("g711a", "g711u") and self.pcm_config is not None:
            rate = self.pcm_config.sample_rate
            if rate not in (None, 8000):
                p = f"{path}.pcm_config.sample_rate" if path else "pcm_config.sample_rate"
                raise RemoteProtocolError(f"G.711 needs sample_rate 8000, got {rate}", path=p)


# ---------------------------------------------------------------- session behaviour (2.2.3-2.2.7)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatConfig:
    """Conversation and user the session belongs to."""

    conversation_id: str | None = None
    user_id: str | None = None
    meta_data: dict[str, str] | None = None
    custom_variables: dict[str, str] | None = None
    extra_params: dict[str, str] | None = None
    auto_save_history: bool | None = None
    parameters: dict[str, Any] | None = None
    extra: dict[str, Any] = _extra()

    def _check(self, path: str) -> None:
        p = f"{path}." if path else ""
        if self.meta_data is not None:
            if len(self.meta_data) > 16:
                raise RemoteProtocolError("at most 16 pairs allowed", path=p + "meta_data")
            for k, v in self.meta_data.items():
                if not 1 <= len(k) <= 64 or not 1 <= len(v) <= 512:
                    raise RemoteProtocolError(
                        "keys must be 1-64 and values 1-512 characters", path=f"{p}meta_data.{k}"
                    )
        if self.extra_params is not None:
            for k in self.extra_params:
                if k not in ("latitude", "longitude"):
                    raise RemoteProtocolError(
                        "only latitude and longitude are allowed", path=f"{p}extra_params.{k}"
                    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticVADConfig:
    """Semantic end-of-turn timing (spec 2.2.4)."""

    silence_threshold_ms: int | None = spec_field(lo=100, hi=2000)
    semantic_unfinished_wait_time_ms: int | None = spec_field(lo=100, hi=2000)
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptConfig:
    """Keyword barge-in: at most 5 keywords of 6-24 UTF-8 bytes each."""

    mode: Literal["keyword_contains", "keyword_prefix"] | None = None
    keywords: tuple[str, ...] | None = spec_field(max_items=5)
    extra: dict[str, Any] = _extra()

    def _check(self, path: str) -> None:
        for i, kw in enumerate(self.keywords or ()):
            n = len(kw.encode("utf-8"))
            if not 6 <= n <= 24:
                p = f"{path}.keywords[{i}]" if path else f"keywords[{i}]"
                raise RemoteProtocolError(f"is {n} bytes long, keywords need 6-24", path=p)


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnDetection:
    """How a user turn ends. Service default: client_interrupt (push-to-talk), 600/500 ms."""

    type: Literal["client_interrupt", "server_vad", "semantic_vad"] | None = None
    prefix_padding_ms: int | None = spec_field(lo=0, hi=10000)
    silence_duration_ms: int | None = spec_field(lo=200, hi=2000)
    semantic_vad_config: SemanticVADConfig | None = None
    interrupt_config: InterruptConfig | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class SensitiveWordsFilter:
    system_reserved_filter: bool | None = None
    filter_with_empty: tuple[str, ...] | None = None
    filter_with_signed: tuple[str, ...] | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class ASRConfig:
    """Speech recognition options (spec 2.2.5)."""

    hot_words: tuple[str, ...] | None = None
    context: str | None = None
    context_type: str | None = None
    user_language: str | None = spec_field(choices=ASR_LANGUAGES)
    enable_ddc: bool | None = None
    enable_itn: bool | None = None
    enable_punc: bool | None = None
    stream_mode: Literal["bidirectional_stream", "output_no_stream"] | None = None
    enable_nostream: bool | None = None
    enable_emotion: bool | None = None
    enable_gender: bool | None = None
    sensitive_words_filter: SensitiveWordsFilter | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceProcessingConfig:
    """Server-side noise suppression. ``enable_ans`` and ``enable_pdns`` exclude each other."""

    enable_ans: bool | None = None
    enable_pdns: bool | None = None
    voice_print_feature_id: str | None = None
    extra: dict[str, Any] = _extra()

    def _check(self, path: str) -> None:
        if self.enable_ans and self.enable_pdns:
            p = f"{path}.enable_pdns" if path else "enable_pdns"
            raise RemoteProtocolError("enable_ans and enable_pdns are mutually exclusive", path=p)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicePrintConfig:
    group_id: str | None = None
    score: int | None = spec_field(lo=0, hi=100)
    reuse_voice_info: bool | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatUpdateData:
    """``data`` of ``chat.update`` and ``chat.updated``: the whole session configuration."""

    chat_config: ChatConfig | None = None
    input_audio: InputAudio | None = None
    output_audio: OutputAudio | None = None
    turn_detection: TurnDetection | None = None
    asr_config: ASRConfig | None = None
    voice_processing_config: VoiceProcessingConfig | None = None
    voice_print_config: VoicePrintConfig | None = None
    event_subscriptions: tuple[str, ...] | None = None
    need_play_prologue: bool | None = None
    prologue_content: str | None = None
    extra: dict[str, Any] = _extra()


# ---------------------------------------------------------------- chats, messages, tools (2.2.8-10)


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    token_count: int | None = None
    output_count: int | None = None
    input_count: int | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class LastError:
    code: int | None = None
    msg: str | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallFunction:
    name: str | None = None
    arguments: str | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    id: str = spec_field(required=True)
    type: Literal["function", "reply_message"] | None = None
    function: ToolCallFunction | None = None
    require_info: Any = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitToolOutputs:
    tool_calls: tuple[ToolCall, ...] = spec_field(required=True)
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class RequiredAction:
    type: str | None = None
    submit_tool_outputs: SubmitToolOutputs | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class Chat:
    """One run of the agent (a turn). ``created_at`` etc. are Unix seconds."""

    id: str = spec_field(required=True)
    conversation_id: str | None = None
    bot_id: str | None = None
    created_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    meta_data: dict[str, Any] | None = None
    last_error: LastError | None = None
    status: (
        Literal["created", "in_progress", "completed", "failed", "requires_action", "canceled"]
        | None
    ) = None
    required_action: RequiredAction | None = None
    usage: Usage | None = None
    section_id: str | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A message of a chat; for ``conversation.audio.delta`` ``content`` is base64 audio."""

    id: str = spec_field(required=True)
    conversation_id: str | None = None
    bot_id: str | None = None
    chat_id: str | None = None
    section_id: str | None = None
    role: Literal["user", "assistant"] | None = None
    type: (
        Literal[
            "question",
            "answer",
            "function_call",
            "tool_output",
            "tool_response",
            "follow_up",
            "verbose",
        ]
        | None
    ) = None
    content: str | None = None
    content_type: Literal["text", "object_string", "card", "audio"] | None = None
    meta_data: dict[str, Any] | None = None
    created_at: int | None = None
    updated_at: int | None = None
    reasoning_content: str | None = None
    extra: dict[str, Any] = _extra()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutput:
    tool_call_id: str = spec_field(required=True)
    output: str = spec_field(required=True)
    extra: dict[str, Any] = _extra()


# ---------------------------------------------------------------- the service's defaults (2.7)

#: What the service applies for anything ``chat.update`` leaves out (spec 2.2, 2.7).
DEFAULTS = ChatUpdateData(
    chat_config=ChatConfig(auto_save_history=True),
    input_audio=InputAudio(format="wav", codec="pcm", sample_rate=24000, channel=1, bit_depth=16),
    output_audio=OutputAudio(
        codec="pcm",
        pcm_config=PCMConfig(sample_rate=24000),
        speech_rate=0,
        loudness_rate=0,
        voice_id="7426720361733046281",
    ),
    turn_detection=TurnDetection(
        type="client_interrupt", prefix_padding_ms=600, silence_duration_ms=500
    ),
    asr_config=ASRConfig(
        user_language="common",
        enable_ddc=True,
        enable_itn=True,
        enable_punc=True,
        stream_mode="bidirectional_stream",
        enable_nostream=False,
        enable_emotion=False,
        enable_gender=False,
    ),
    voice_processing_config=VoiceProcessingConfig(enable_ans=False, enable_pdns=False),
    voice_print_config=VoicePrintConfig(score=40, reuse_voice_info=False),
    event_subscriptions=(),
    need_play_prologue=False,
)

#: Defaults that apply when a sub-object is present (spec 2.2.2, 2.2.4).
OPUS_DEFAULTS = OpusConfig(bitrate=48000, use_cbr=False, frame_size_ms=10.0)
MP3_DEFAULTS = MP3Config(sample_rate=44100)
SEMANTIC_VAD_DEFAULTS = SemanticVADConfig(
    silence_threshold_ms=300, semantic_unfinished_wait_time_ms=500
)
EMOTION_DEFAULTS = EmotionConfig(emotion_scale=4.0)
