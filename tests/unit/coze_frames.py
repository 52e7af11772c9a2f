"""Server frames of ``/v1/chat`` as text, shaped like the recorded traffic (spec Appendix B).

Shared by the session tests: they feed these strings to a :class:`Session` and read back the
frames it wants sent. Nothing here opens a socket.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from voicegw.protocol import (
    ChatUpdateData,
    ClientEvent,
    InputAudio,
    OutputAudio,
    PCMConfig,
    TurnDetection,
    decode_client,
)
from voicegw.protocol.objects import DEFAULTS
from voicegw.protocol.schema import encode_object, merge
from voicegw.protocol.session import (
    ConfigUpdated,
    FlushPlayback,
    Notice,
    Ready,
    Received,
    ServerError,
    Session,
    SessionEvent,
    ToolCallsRequested,
)

__all__ = [
    "BOT",
    "CONV",
    "LOGID",
    "PCM",
    "audio_completed",
    "audio_delta",
    "canceled",
    "chat_event",
    "config",
    "echo",
    "error",
    "frame",
    "kinds",
    "message",
    "ready_session",
    "requires_action",
    "sent",
    "sentence",
]

LOGID = "021752474748819fdbddc030017070c0000000000000029f6daa2"
BOT = "7496347519799787557"
CONV = "7526821722323025972"
#: 20 ms of 16 kHz s16 mono: what one append carries.
PCM = bytes(640)

_ids = itertools.count(1)


def frame(event_type: str, data: dict[str, Any] | None = None, **envelope: Any) -> str:
    """One server frame, key order as in real traffic (event_type, id, data, detail)."""
    obj: dict[str, Any] = {"event_type": event_type, "id": f"srv-{next(_ids)}"}
    if data is not None:
        obj["data"] = data
    obj["detail"] = {"logid": LOGID, "respond_at": "1752474748918"}
    obj.update(envelope)
    return json.dumps(obj, ensure_ascii=False)


def chat_event(event_type: str, chat_id: str, **fields: Any) -> str:
    """A ``conversation.chat.*`` frame whose data is a Chat object."""
    status = event_type.rsplit(".", 1)[1]
    data = {
        "id": chat_id,
        "conversation_id": CONV,
        "bot_id": BOT,
        "created_at": 1752474749,
        "status": status,
        "usage": {"token_count": 0, "output_count": 0, "input_count": 0},
        "section_id": CONV,
    }
    data.update(fields)
    return frame(event_type, data)


def requires_action(chat_id: str, *call_ids: str) -> str:
    calls = [
        {"id": c, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for c in call_ids
    ]
    action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}
    return chat_event("conversation.chat.requires_action", chat_id, required_action=action)


def message(event_type: str, chat_id: str, msg_id: str, **fields: Any) -> str:
    """A message frame (``conversation.message.*``, ``conversation.audio.*``)."""
    data = {
        "id": msg_id,
        "conversation_id": CONV,
        "bot_id": BOT,
        "role": "assistant",
        "type": "answer",
        "content": "",
        "content_type": "text",
        "chat_id": chat_id,
        "section_id": CONV,
    }
    data.update(fields)
    return frame(event_type, data)


def audio_delta(chat_id: str, msg_id: str = "m-answer", audio: bytes = b"\x01\x00" * 8) -> str:
    content = base64.b64encode(audio).decode()
    return message(
        "conversation.audio.delta", chat_id, msg_id, content=content, content_type="audio"
    )


def audio_completed(chat_id: str, msg_id: str = "m-answer") -> str:
    return message("conversation.audio.completed", chat_id, msg_id, content_type="audio")


def sentence(text: str) -> str:
    return frame("conversation.audio.sentence_start", {"text": text})


def canceled(code: int) -> str:
    return frame("conversation.chat.canceled", {"code": code, "msg": "canceled"})


def error(code: int, msg: str = "something went wrong") -> str:
    return frame("error", {"code": code, "msg": msg})


def config(
    mode: str | None = None, *, turn_detection: TurnDetection | None = None, **changes: Any
) -> ChatUpdateData:
    """A device configuration: 16 kHz PCM in and out, in the given turn mode."""
    if turn_detection is None and mode is not None:
        turn_detection = TurnDetection(type=mode)  # type: ignore[arg-type]
    return ChatUpdateData(
        input_audio=InputAudio(format="pcm", codec="pcm", sample_rate=16000, channel=1),
        output_audio=OutputAudio(codec="pcm", pcm_config=PCMConfig(sample_rate=16000)),
        turn_detection=turn_detection,
        **changes,
    )


def echo(requested: ChatUpdateData, **changes: Any) -> str:
    """The ``chat.updated`` a faithful service sends for ``requested`` (defaults merged in)."""
    data = encode_object(merge(DEFAULTS, requested))
    data.update(changes)
    return frame("chat.updated", data)


def kinds(events: list[SessionEvent]) -> list[str]:
    """A compact, comparable view of session events."""
    out = []
    for e in events:
        match e:
            case Received():
                out.append(e.event.event_type)
            case FlushPlayback():
                out.append(f"FLUSH {e.reason}")
            case Ready():
                out.append("READY")
            case ConfigUpdated():
                out.append("CONFIG UPDATED")
            case ToolCallsRequested():
                out.append(f"TOOLS {e.chat_id} {','.join(tc.id for tc in e.tool_calls)}")
            case ServerError():
                out.append(f"ERROR {e.code}{' fatal' if e.fatal else ''}")
            case Notice():
                out.append(f"NOTICE {e.message}")
    return out


def sent(session: Session) -> list[ClientEvent]:
    """Decode the frames the session wants sent (as the service would)."""
    out = []
    for text in session.data_to_send():
        event = decode_client(text)
        assert isinstance(event, ClientEvent), text
        out.append(event)
    return out


def ready_session(mode: str | None = None, **kwargs: Any) -> Session:
    """A session driven through setup (spec 2.6.1) with both outputs drained."""
    cfg = config(mode)
    session = Session(cfg, **kwargs)
    session.receive_text(frame("chat.created"), 0.0)
    session.receive_text(echo(cfg), 0.1)
    session.data_to_send()
    session.events_received()
    return session
