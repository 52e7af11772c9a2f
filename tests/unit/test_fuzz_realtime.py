"""Fuzz the Realtime session with arbitrary and mutated agent messages.

Only :class:`RemoteProtocolError` may escape ``receive_text``; a rejected message changes nothing;
afterwards the session still works: a ready room completes a push-to-talk turn, a closed room
refuses commands cleanly and ignores messages.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicegw.errors import LocalProtocolError, RemoteProtocolError
from voicegw.realtime import events as rt
from voicegw.realtime.objects import SessionUpdateData
from voicegw.realtime.session import (
    ChatPhase,
    Notice,
    RealtimeSession,
    Received,
    RoomClosed,
    ServerError,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def m(event_type: str, data: dict[str, Any] | None = None) -> str:
    obj: dict[str, Any] = {"id": "e", "event_type": event_type}
    if data is not None:
        obj["data"] = data
    return json.dumps(obj, ensure_ascii=False)


def chat(event_type: str, cid: str = "fz", **extra: Any) -> str:
    return m(event_type, {"id": cid, "conversation_id": "c", **extra})


VALID: list[str] = [
    m("session.created", {"voice_id": "v", "log_id": "l"}),
    m(
        "session.updated",
        {"voice_id": "v", "speech_rate": 5, "turn_detection": {"type": "server_vad"}},
    ),
    m("conversation.created", {"conversation_id": "c", "prologue": "你好"}),
    chat("conversation.chat.created", status="created"),
    chat("conversation.chat.in_progress"),
    chat(
        "conversation.chat.requires_action",
        required_action={
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f"}}]
            },
        },
    ),
    chat(
        "conversation.chat.requires_action",
        required_action={
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {"tool_outputs": [{"id": "t2", "type": "reply_message"}]},
        },
    ),
    chat("conversation.chat.completed"),
    chat("conversation.chat.failed", last_error={"code": 1, "msg": "x"}),
    m(
        "conversation.message.delta",
        {"id": "m1", "chat_id": "fz", "role": "assistant", "content": "好"},
    ),
    m("conversation.message.completed", {"id": "m1", "type": "follow_up", "content": "?"}),
    m("audio.user.speech_started", {}),
    m("audio.user.speech_stopped", {}),
    m("audio.agent.speech_started", {}),
    m("audio.agent.speech_stopped"),
    m("conversation.audio_transcript.delta", {"content": "今天"}),
    m("session.pre_answer.updated", {"pre_answer": {"type": "none"}, "trigger": {"time_after": 1}}),
    m("conversation.chat.pre_answer", {"content": ""}),
    m("mode.updated", {"mode": "chat", "chat": {"user_language": "en"}}),
    m("input_audio_buffer.started", {}),
    m("input_audio_buffer.completed", {}),
    m("error", {"code": 4000, "msg": "bad", "detail": {"logid": "x"}}),
    m("error", {"code": 4029, "msg": "idle"}),
    m("live.created", {}),
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["fz", "", "error", "conversation.created", "tool_outputs", "keyword"]),
)
_json = st.recursive(
    _scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)
    ),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> str | bytes:
    """A valid message with a field replaced, removed or added, or its bytes damaged."""
    text = draw(st.sampled_from(VALID))
    how = draw(st.sampled_from(["replace", "delete", "add", "text", "bytes"]))
    if how in ("text", "bytes"):
        raw = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = raw[: draw(st.integers(0, len(raw)))]
        return bytes(raw) if how == "bytes" else raw.decode("utf-8", "replace")
    obj = json.loads(text)
    path = draw(st.sampled_from(_paths(obj)))
    if not path:
        return json.dumps(draw(_json))
    parent = obj
    for part in path[:-1]:
        parent = parent[part]
    if how == "replace":
        parent[path[-1]] = draw(_json)
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(_json)
    else:
        parent.append(draw(_json))
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


arbitrary = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    _json.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["event_type", "id", "data", "detail", "x"]), _json, max_size=5
    ).map(json.dumps),
    st.builds(
        lambda t, d: json.dumps({"event_type": t, "data": d}),
        st.sampled_from(sorted(rt.REALTIME_SERVER_EVENTS)),
        _json,
    ),
)
any_message = st.one_of(arbitrary, mutated(), st.sampled_from(VALID))


def _snapshot(s: RealtimeSession) -> tuple[Any, ...]:
    return (
        s.state,
        s.chat_phase,
        s.chat_id,
        s.ptt_pressed,
        s.agent_speaking,
        s.user_speaking,
        s.playback_epoch,
        s.conversation_id,
        s.effective_config,
    )


def _feed(s: RealtimeSession, messages: list[str | bytes]) -> None:
    for text in messages:
        s.data_to_send()
        s.events_received()
        before = _snapshot(s)
        try:
            s.receive_text(text)
        except RemoteProtocolError as exc:
            assert str(exc)
            assert _snapshot(s) == before
            assert s.data_to_send() == [] and s.events_received() == []
        else:
            for out in s.data_to_send():  # whatever it sends is a valid client event
                assert not isinstance(rt.decode_realtime_client(out), rt.UnknownEvent)


def _ptt_room() -> RealtimeSession:
    s = RealtimeSession(SessionUpdateData(voice_id="v"), turn_mode="client_interrupt")
    s.agent_joined()
    return s


def _prove_usable(s: RealtimeSession) -> None:
    s.data_to_send()
    s.events_received()
    if s.state == "closed":
        assert s.needs_new_room
        try:
            s.press()
        except LocalProtocolError as exc:
            assert "closed" in str(exc)
        else:  # pragma: no cover - a closed room must refuse
            raise AssertionError("press() accepted after the room closed")
        s.receive_text(VALID[0])  # ignored, no error
        return
    if s.state != "ready":
        s.receive_text(m("conversation.created", {"conversation_id": "c2"}))
    assert s.state == "ready"
    if s.chat_phase is not ChatPhase.NONE or s.agent_speaking:
        s.cancel()
    if s.ptt_pressed:
        s.release()
    assert s.press() is True
    assert s.release() is True
    types = [rt.decode_realtime_client(t).event_type for t in s.data_to_send()]
    assert types[-2:] == ["input_audio_buffer.start", "input_audio_buffer.complete"]
    s.receive_text(chat("conversation.chat.created", "after"))
    s.receive_text(chat("conversation.chat.completed", "after"))
    got = [e.event.event_type for e in s.events_received() if isinstance(e, Received)]
    assert got[-1] == "conversation.chat.completed"
    assert s.chat_phase is ChatPhase.NONE


@FUZZ
@given(messages=st.lists(any_message, min_size=1, max_size=12))
def test_fuzz_from_joining(messages: list[str | bytes]) -> None:
    s = _ptt_room()
    _feed(s, messages)
    _prove_usable(s)


@FUZZ
@given(messages=st.lists(any_message, min_size=1, max_size=12))
def test_fuzz_in_a_ready_room(messages: list[str | bytes]) -> None:
    s = _ptt_room()
    s.receive_text(VALID[0])
    s.receive_text(VALID[2])
    assert s.state == "ready"
    _feed(s, messages)
    _prove_usable(s)


@FUZZ
@given(messages=st.lists(mutated(), min_size=1, max_size=8))
def test_mutated_messages_only_raise_remote_protocol_error(messages: list[str | bytes]) -> None:
    s = _ptt_room()
    s.receive_text(VALID[0])
    s.receive_text(VALID[2])
    _feed(s, messages)
    _prove_usable(s)


def test_closing_errors_are_reported_once() -> None:
    s = _ptt_room()
    s.receive_text(VALID[0])
    s.receive_text(m("error", {"code": 4029, "msg": "idle"}))
    s.receive_text(m("error", {"code": 4029, "msg": "idle"}))
    s.receive_text(m("error", {"code": 4101}))
    events = s.events_received()
    assert [e for e in events if isinstance(e, RoomClosed)] == [RoomClosed(4029, "idle", 0.0)]
    assert not [e for e in events if isinstance(e, ServerError)]


def test_distinct_oddities_cost_bounded_memory() -> None:
    # Endless events for chats that were never created, each with a new id: the session
    # reports them but remembers only a bounded number.
    session = RealtimeSession(SessionUpdateData(), turn_mode="server_vad")
    session.agent_joined()
    for i in range(2000):
        frame = json.dumps(
            {
                "event_type": "conversation.chat.in_progress",
                "data": {"id": f"chat-{i}", "status": "in_progress"},
            }
        )
        session.receive_text(frame)
    notices = [e for e in session.events_received() if isinstance(e, Notice)]
    assert len(notices) >= 2000  # each reported
    assert len(session._reported) <= 256
