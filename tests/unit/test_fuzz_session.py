"""Fuzz the session and the wire decoders with arbitrary and mutated server frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
from coze_frames import (
    audio_completed,
    audio_delta,
    canceled,
    chat_event,
    config,
    echo,
    error,
    frame,
    message,
    ready_session,
    requires_action,
    sent,
    sentence,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicegw.errors import LocalProtocolError, RemoteProtocolError
from voicegw.protocol import InputAudioBufferAppend, decode_client, decode_server
from voicegw.protocol.session import ChatState, ConnState, InputState, Received, Session

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: list[str] = [
    frame("chat.created"),
    echo(config()),
    frame("input_audio_buffer.completed"),
    frame("input_audio_buffer.cleared"),
    frame("conversation.cleared"),
    frame("conversation.audio_transcript.update", {"content": "今天"}),
    frame("conversation.audio_transcript.completed", {"content": "今天天气"}),
    frame("input_audio_buffer.speech_started"),
    frame("input_audio_buffer.speech_stopped"),
    chat_event("conversation.chat.created", "fz"),
    chat_event("conversation.chat.in_progress", "fz"),
    chat_event("conversation.chat.completed", "fz"),
    chat_event("conversation.chat.failed", "fz", last_error={"code": 1, "msg": "x"}),
    requires_action("fz", "call-1"),
    message("conversation.message.delta", "fz", "m1", content="好"),
    message("conversation.message.completed", "fz", "m1", content="好的"),
    audio_delta("fz"),
    audio_completed("fz"),
    sentence("好的。"),
    canceled(3),
    error(4000),
    error(4100),
]

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["fz", "", "pcm", "AAAA", "conversation.chat.created", "chat.updated"]),
)
_json = st.recursive(
    _json_scalars,
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
def mutated_frames(draw: st.DrawFn) -> str | bytes:
    """A valid frame changed structurally (a field replaced, removed or added) or as text."""
    text = draw(st.sampled_from(VALID))
    how = draw(st.sampled_from(["replace", "delete", "add", "text", "bytes"]))
    if how in ("text", "bytes"):
        raw = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 4))):
            if raw:
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


arbitrary_frames = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    _json.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["event_type", "id", "data", "detail", "x"]), _json, max_size=5
    ).map(json.dumps),
)
any_frames = st.one_of(arbitrary_frames, mutated_frames(), st.sampled_from(VALID))


def _state(session: Session) -> tuple[Any, ...]:
    return (
        session.conn_state,
        session.input_state,
        session.chat_state,
        session.chat_id,
        session.playback_epoch,
    )


def _feed(session: Session, frames: list[str | bytes]) -> int:
    """Feed frames; only RemoteProtocolError may escape, and a rejected frame changes nothing."""
    accepted = 0
    for i, f in enumerate(frames):
        session.data_to_send()
        session.events_received()
        before = _state(session)
        try:
            session.receive_text(f, 1.0 + i * 0.001)
        except RemoteProtocolError as exc:
            assert str(exc)
            assert _state(session) == before
            assert session.data_to_send() == []
        else:
            accepted += 1
        session.data_to_send()
        session.events_received()
    return accepted


def _ptt_turn(session: Session, chat_id: str = "ptt-after-fuzz") -> None:
    """A complete push-to-talk turn; the reply's audio must reach the caller."""
    session.press(10.0)
    session.data_to_send()
    session.events_received()
    session.send_audio(bytes(640), 10.1)
    appends = sent(session)
    assert len(appends) == 1 and isinstance(appends[0], InputAudioBufferAppend)
    session.release(10.2)
    assert [e.event_type for e in sent(session)] == ["input_audio_buffer.complete"]
    assert session.input_state is InputState.IDLE
    session.receive_text(frame("input_audio_buffer.completed"), 10.3)
    session.receive_text(chat_event("conversation.chat.created", chat_id), 10.4)
    session.receive_text(chat_event("conversation.chat.in_progress", chat_id), 10.4)
    session.receive_text(audio_delta(chat_id), 10.5)
    session.receive_text(audio_completed(chat_id), 10.6)
    session.receive_text(chat_event("conversation.chat.completed", chat_id), 10.7)
    types = [e.event.event_type for e in session.events_received() if isinstance(e, Received)]
    assert "conversation.audio.delta" in types
    assert types[-1] == "conversation.chat.completed"
    assert session.chat_state is ChatState.NONE
    assert session.conn_state is ConnState.READY


@FUZZ
@given(frames=st.lists(arbitrary_frames, min_size=1, max_size=8))
def test_arbitrary_frames_leave_the_session_usable(frames: list[str | bytes]) -> None:
    session = ready_session()
    _feed(session, frames)
    _ptt_turn(session)


@FUZZ
@given(frames=st.lists(mutated_frames(), min_size=1, max_size=8))
def test_mutated_frames_only_raise_remote_protocol_error(frames: list[str | bytes]) -> None:
    session = ready_session()
    _feed(session, frames)
    _settle(session)
    _turn_if_ready(session)


@FUZZ
@given(frames=st.lists(any_frames, min_size=1, max_size=12))
def test_mixed_frames_before_and_during_a_turn(frames: list[str | bytes]) -> None:
    session = ready_session()
    session.press(0.5)
    session.send_audio(bytes(640), 0.6)
    half = len(frames) // 2
    _feed(session, frames[:half])
    if session.input_state is InputState.LISTENING:
        session.release(0.7)
    _feed(session, frames[half:])
    _settle(session)
    _turn_if_ready(session)


@FUZZ
@given(frames=st.lists(any_frames, min_size=1, max_size=6))
def test_fuzz_during_setup(frames: list[str | bytes]) -> None:
    cfg = config()
    session = Session(cfg)
    _feed(session, frames)


def _settle(session: Session) -> None:
    """End whatever chat the accepted fuzz frames started, as the service would."""
    if session.conn_state is not ConnState.READY:
        return
    if session.input_state is InputState.LISTENING:
        session.release(5.0)
    for n in range(4):
        if session.chat_state is ChatState.PENDING:
            session.receive_text(chat_event("conversation.chat.created", f"settle-{n}"), 5.1)
        if session.chat_id is not None:
            session.receive_text(chat_event("conversation.chat.completed", session.chat_id), 5.2)
    assert session.chat_state is ChatState.NONE
    session.data_to_send()
    session.events_received()


def _turn_if_ready(session: Session) -> None:
    """A PTT turn completes unless an accepted fatal error ended the session."""
    if session.conn_state is ConnState.READY:
        _ptt_turn(session)
        return
    assert session.conn_state is ConnState.FAILED
    with pytest.raises(LocalProtocolError, match="not READY"):
        session.press(10.0)


@FUZZ
@given(data=any_frames)
def test_wire_decoders_raise_only_remote_protocol_error(data: str | bytes) -> None:
    for decode in (decode_server, decode_client):
        try:
            event = decode(data)
        except RemoteProtocolError as exc:
            assert str(exc)
        else:
            assert isinstance(event.event_type, str)


def test_stray_speech_stopped_in_push_to_talk_does_not_cancel_the_next_reply() -> None:
    session = ready_session()
    session.receive_text(frame("input_audio_buffer.speech_stopped"), 1.0)
    assert session.chat_state is ChatState.NONE
    session.data_to_send()
    session.events_received()
    _ptt_turn(session)
