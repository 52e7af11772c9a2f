"""From the device's configuration to a Realtime room request and its ``session.update``.

The same ``[turn]``, ``[output]`` and ``[cloud]`` settings drive both APIs; this module is the
one place that says how they map onto a room (spec 3.2, 3.4):

=============  ========================  ====================================================
turn.mode      room ``turn_detection``   who ends a turn
=============  ========================  ====================================================
``ptt``        ``client_interrupt``      the button: ``input_audio_buffer.start``/``complete``
``server_vad`` ``server_vad``            the agent's VAD (``silence_duration_ms``)
``semantic_vad`` ``semantic_vad``        the agent's semantic VAD
``local_vad``  ``client_vad``            the device's VAD: ``client.vad`` on change
=============  ========================  ====================================================

``client_interrupt`` is fixed when the room is created (spec 3.4: "set at room creation"), so
``session.update`` carries no ``turn_detection.type`` for push-to-talk rooms; the other types
are set both at creation and in ``session.update``.
"""

from __future__ import annotations

from typing import Literal

from ..config import Config
from ..protocol.objects import SemanticVADConfig, VoiceProcessingConfig
from .objects import (
    RealtimeChatConfig,
    RealtimeInterruptConfig,
    RealtimeTurnDetection,
    SessionUpdateData,
)
from .rooms import CreateRoomRequest, RoomAudioConfig, RoomConfig, RoomTurnDetection

__all__ = ["TurnType", "room_request", "session_config", "turn_type"]

TurnType = Literal["client_interrupt", "server_vad", "semantic_vad", "client_vad"]

_TURN_TYPES: dict[str, TurnType] = {
    "ptt": "client_interrupt",
    "server_vad": "server_vad",
    "semantic_vad": "semantic_vad",
    "local_vad": "client_vad",
}


def turn_type(mode: str) -> TurnType:
    """The room's ``turn_detection.type`` for a ``turn.mode``."""
    return _TURN_TYPES[mode]


def session_config(cfg: Config) -> SessionUpdateData:
    """The full ``session.update`` data sent once the session is created."""
    turn, out, rt = cfg.turn, cfg.output, cfg.realtime
    kind = turn_type(turn.mode)
    td: RealtimeTurnDetection | None = None
    if kind == "server_vad":
        td = RealtimeTurnDetection(
            type="server_vad",
            prefix_padding_ms=turn.prefix_padding_ms,
            silence_duration_ms=turn.silence_duration_ms,
        )
    elif kind == "semantic_vad":
        td = RealtimeTurnDetection(
            type="semantic_vad",
            prefix_padding_ms=turn.prefix_padding_ms,
            semantic_vad_config=SemanticVADConfig(
                silence_threshold_ms=turn.silence_threshold_ms,
                semantic_unfinished_wait_time_ms=turn.semantic_unfinished_wait_time_ms,
            ),
        )
    elif kind == "client_vad":
        td = RealtimeTurnDetection(type="client_vad")
    interrupt = None
    if rt.interrupt_keywords:
        interrupt = RealtimeInterruptConfig(
            mode="keyword_contains", keywords=tuple(rt.interrupt_keywords)
        )
    vpc = None
    if out.enable_ans or out.enable_pdns:
        vpc = VoiceProcessingConfig(enable_ans=out.enable_ans, enable_pdns=out.enable_pdns)
    return SessionUpdateData(
        voice_id=out.voice_id or None,
        speech_rate=out.speech_rate,
        loudness_rate=out.loudness_rate,
        longest_silence_ms=rt.longest_silence_ms,
        chat_config=RealtimeChatConfig(
            allow_voice_interrupt=rt.allow_voice_interrupt,
            interrupt_config=interrupt,
        ),
        turn_detection=td,
        voice_processing_config=vpc,
    )


def room_request(cfg: Config) -> CreateRoomRequest:
    """The ``POST /v1/audio/rooms`` body for this device."""
    c, rt = cfg.cloud, cfg.realtime
    return CreateRoomRequest(
        bot_id=c.bot_id,
        conversation_id=c.conversation_id or None,
        voice_id=cfg.output.voice_id or None,
        uid=c.user_id or None,
        workflow_id=c.workflow_id or None,
        connector_id=rt.connector_id,
        config=RoomConfig(
            room_mode=rt.room_mode,
            audio_config=RoomAudioConfig(codec=rt.audio_codec),
            turn_detection=RoomTurnDetection(type=turn_type(cfg.turn.mode)),
            prologue_content=rt.prologue_content or None,
            prologue_delay_duration_ms=rt.prologue_delay_ms,
        ),
    )
