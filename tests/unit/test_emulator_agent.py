"""The emulated Realtime agent core, driven by a fake clock (spec 3.4-3.7).

Every test steps the agent through its own deadlines with an injected ``now``: no sleeps,
no sockets. Every event the agent sends must decode as a Realtime server event.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from voicegw.emulator.agent import (
    CONFIG_GRACE_S,
    RATE,
    SILENCE_MSG,
    CloseRoom,
    PlayAudio,
    RealtimeAgent,
    RoomSetup,
    SendText,
    StopAudio,
)
from voicegw.emulator.bots import Bot, EchoBot, ScriptBot, ScriptTurn, ToneBot
from voicegw.emulator.ids import IdFactory
from voicegw.emulator.turns import Timing
from voicegw.protocol.events import Event, UnknownEvent
from voicegw.protocol.objects import SemanticVADConfig, ToolOutput
from voicegw.protocol.wire import encode
from voicegw.realtime.events import (
    ClientVad,
    ConversationChatCancel,
    ConversationChatSubmitToolOutputs,
    ConversationMessageCreate,
    InputAudioBufferComplete,
    InputAudioBufferStart,
    InputTextGenerateAudio,
    ModeUpdate,
    SessionPreAnswerUpdate,
    SessionUpdate,
    decode_realtime_server,
)
from voicegw.realtime.objects import (
    ModeChat,
    ModeData,
    PreAnswer,
    PreAnswerData,
    RealtimeChatConfig,
    RealtimeTurnDetection,
    SessionUpdateData,
)

FRAME = RATE // 50  # 20 ms
TIMING = Timing(think_s=0.2, word_s=0.03, tts_s=0.15)


def tone(seconds: float, level: float = 0.3) -> NDArray[np.int16]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * level * 32767).astype(np.int16)


def silence(seconds: float) -> NDArray[np.int16]:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


class Room:
    """One agent and everything it emitted, with the time it was released."""

    def __init__(
        self, turn_type: Any = "server_vad", bot: Bot | None = None, prologue: str = ""
    ) -> None:
        setup = RoomSetup(
            room_id="room_1",
            bot_id="7000000000000000001",
            uid="uid_1",
            conversation_id="7400000000000000001",
            turn_type=turn_type,
            prologue=prologue,
            prologue_delay_ms=500,
            logid="02" + "1" * 13 + "a" * 38,
        )
        self.now = 0.0
        self.agent = RealtimeAgent(
            bot or EchoBot(),
            setup,
            now=0.0,
            ids=IdFactory(random.Random(5), lambda: 1_700_000_000_000),
            timing=TIMING,
            wall_clock=lambda: 1_700_000_000.0,
        )
        self.events: list[tuple[float, dict[str, Any], Event]] = []
        self.audio: list[tuple[float, int]] = []
        self.stops: list[float] = []
        self.closed: list[tuple[float, CloseRoom]] = []

    def _collect(self) -> None:
        for out in self.agent.due(self.now):
            if isinstance(out, SendText):
                ev = decode_realtime_server(out.text)
                assert not isinstance(ev, UnknownEvent), out.text
                self.events.append((self.now, json.loads(out.text), ev))
            elif isinstance(out, PlayAudio):
                self.audio.append((self.now, out.samples.size))
            elif isinstance(out, StopAudio):
                self.stops.append(self.now)
            else:
                self.closed.append((self.now, out))

    def advance(self, to: float) -> None:
        """Step through every deadline up to ``to``."""
        while (d := self.agent.next_deadline()) is not None and d <= to:
            self.now = max(self.now, d)
            self._collect()
        self.now = to
        self._collect()

    def wait(self, seconds: float) -> None:
        self.advance(self.now + seconds)

    def send(self, event: Event) -> None:
        self.agent.receive_text(encode(event), self.now)
        self._collect()

    def send_raw(self, text: str) -> None:
        self.agent.receive_text(text, self.now)
        self._collect()

    def feed(self, pcm: NDArray[np.int16]) -> None:
        """Audio arriving in real time, 20 ms per frame."""
        for lo in range(0, pcm.size, FRAME):
            self.agent.receive_audio(pcm[lo : lo + FRAME], self.now)
            self.advance(self.now + FRAME / RATE)

    def start(self, update: SessionUpdateData | None = None) -> None:
        """Join and configure (session.update right after session.created)."""
        self.agent.join(self.now)
        self._collect()
        self.send(SessionUpdate(config=update or SessionUpdateData()))

    def types(self) -> list[str]:
        return [e[1]["event_type"] for e in self.events]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e[1] for e in self.events if e[1]["event_type"] == kind]

    def time_of(self, kind: str, n: int = 0) -> float:
        return [e[0] for e in self.events if e[1]["event_type"] == kind][n]


def in_order(types: list[str], expected: list[str]) -> bool:
    """``expected`` occurs in ``types`` as a subsequence."""
    it = iter(types)
    return all(any(t == want for t in it) for want in expected)


TURN = [
    "conversation.message.completed",
    "conversation.chat.created",
    "conversation.chat.in_progress",
    "conversation.message.delta",
    "audio.agent.speech_started",
    "conversation.message.completed",
    "conversation.chat.completed",
    "audio.agent.speech_stopped",
]


# ---------------------------------------------------------------- join


def test_join_sequence() -> None:
    room = Room(prologue="Welcome.")
    assert room.agent.next_deadline() is None  # nothing before the user joins
    room.agent.join(0.0)
    room.advance(0.0)
    created = room.of("session.created")[0]
    assert created["data"] == {"voice_id": "柔美女友", "log_id": room.agent.logid}
    room.send(SessionUpdate(id="u1", config=SessionUpdateData(speech_rate=20)))
    assert room.types() == ["session.created", "session.updated", "conversation.created"]
    updated = room.of("session.updated")[0]
    assert updated["id"] == "u1"
    assert updated["data"]["speech_rate"] == 20
    assert updated["data"]["turn_detection"]["type"] == "server_vad"
    assert updated["data"]["longest_silence_ms"] == 180000
    conv = room.of("conversation.created")[0]["data"]
    assert conv == {"conversation_id": "7400000000000000001", "prologue": "Welcome."}
    # the prologue plays prologue_delay_duration_ms later
    room.wait(5.0)
    assert room.time_of("audio.agent.speech_started") == pytest.approx(0.5)
    stopped = room.time_of("audio.agent.speech_stopped")
    played = sum(n for _, n in room.audio)
    assert stopped == pytest.approx(0.5 + played / RATE)
    assert all(e[1]["id"] for e in room.events)


def test_conversation_created_without_session_update() -> None:
    room = Room()
    room.agent.join(0.0)
    room.advance(CONFIG_GRACE_S - 0.01)
    assert room.types() == ["session.created"]
    room.advance(5.0)
    assert room.types() == ["session.created", "conversation.created"]
    assert room.time_of("conversation.created") == pytest.approx(CONFIG_GRACE_S)
    room.send(SessionUpdate(config=SessionUpdateData(loudness_rate=5)))
    assert room.types()[-1] == "session.updated"
    assert room.types().count("conversation.created") == 1


def test_invalid_session_update_keeps_the_config() -> None:
    room = Room()
    room.start()
    room.send_raw('{"event_type":"session.update","data":{"speech_rate":500}}')
    error = room.of("error")[-1]["data"]
    assert error["code"] == 4000 and "speech_rate" in error["msg"]
    assert error["detail"]["logid"] == room.agent.logid
    assert room.agent.config.speech_rate == 0


def test_malformed_and_unknown_events_are_4000() -> None:
    room = Room()
    room.start()
    room.send_raw("{not json")
    room.send_raw('{"event_type":"conversation.clear"}')  # /v1/chat only
    room.send_raw('{"event_type":"no.such.event","data":{}}')
    errors = [e["data"] for e in room.of("error")]
    assert [e["code"] for e in errors] == [4000, 4000, 4000]
    assert "conversation.clear" in errors[1]["msg"]
    assert "no.such.event" in errors[2]["msg"]
    assert not room.agent.closed


def test_pre_answer_and_mode_are_echoed() -> None:
    room = Room()
    room.start()
    room.send(SessionPreAnswerUpdate(config=PreAnswerData(pre_answer=PreAnswer(type="none"))))
    room.send(ModeUpdate(config=ModeData(chat=ModeChat(user_language="en"))))
    assert room.of("session.pre_answer.updated")[0]["data"]["pre_answer"]["type"] == "none"
    assert room.of("mode.updated")[0]["data"]["chat"]["user_language"] == "en"


# ---------------------------------------------------------------- turns


def test_server_vad_turn_order() -> None:
    room = Room()
    room.start()
    room.feed(tone(1.0))
    room.feed(silence(0.8))
    room.wait(5.0)
    types = room.types()
    assert in_order(
        types,
        [
            "audio.user.speech_started",
            "conversation.audio_transcript.delta",
            "audio.user.speech_stopped",
            *TURN,
        ],
    ), types
    user = room.of("conversation.message.completed")[0]["data"]
    assert user["role"] == "user" and user["content"] == "(1.00 s of speech)"
    deltas = room.of("conversation.audio_transcript.delta")
    assert deltas[-1]["data"]["content"] == user["content"]
    # echo: the user's second of audio comes back, plus the prefix padding of silence
    assert sum(n for _, n in room.audio) >= RATE
    stopped = room.time_of("audio.user.speech_stopped")
    assert stopped == pytest.approx(1.5, abs=0.05)  # 500 ms silence_duration_ms


def test_semantic_vad_waits_longer_for_an_unfinished_utterance() -> None:
    def end_delay(script: str) -> float:
        room = Room(bot=ScriptBot([ScriptTurn(script, "Fine.")]))
        sv = SemanticVADConfig(silence_threshold_ms=300, semantic_unfinished_wait_time_ms=500)
        td = RealtimeTurnDetection(type="semantic_vad", semantic_vad_config=sv)
        room.start(SessionUpdateData(turn_detection=td))
        room.feed(tone(1.0))
        room.feed(silence(1.5))
        return room.time_of("audio.user.speech_stopped") - 1.0

    assert end_delay("Turn on the light.") == pytest.approx(0.3, abs=0.05)
    assert end_delay("turn on the") == pytest.approx(0.8, abs=0.05)


def test_client_vad_turns_follow_the_client() -> None:
    room = Room()
    room.start(SessionUpdateData(turn_detection=RealtimeTurnDetection(type="client_vad")))
    room.feed(tone(0.5))  # no client.vad yet: ignored
    assert "audio.user.speech_started" not in room.types()
    room.send(ClientVad(vad=True))
    room.send(ClientVad(vad=True))  # not a change: ignored
    room.feed(tone(0.6))
    assert room.types().count("audio.user.speech_started") == 1
    assert "audio.user.speech_stopped" not in room.types()  # the server VAD is off
    room.send(ClientVad(vad=False))
    room.wait(5.0)
    assert in_order(room.types(), ["audio.user.speech_started", "audio.user.speech_stopped", *TURN])
    assert room.of("conversation.message.completed")[0]["data"]["content"].startswith("(0.")


def test_client_vad_outside_client_vad_mode_is_an_error() -> None:
    room = Room()
    room.start()
    room.send(ClientVad(vad=True))
    assert room.of("error")[0]["data"]["code"] == 4000


def test_ptt_room_start_complete_and_duplicates() -> None:
    room = Room(turn_type="client_interrupt")
    room.start(SessionUpdateData(turn_detection=RealtimeTurnDetection(type="server_vad")))
    assert room.of("session.updated")[0]["data"]["turn_detection"]["type"] == "client_interrupt"
    room.feed(tone(0.5))  # not pressed: ignored
    room.send(InputAudioBufferStart())
    room.send(InputAudioBufferStart())
    room.feed(tone(0.8))
    room.send(InputAudioBufferComplete())
    room.send(InputAudioBufferComplete())
    room.wait(5.0)
    types = room.types()
    assert types.count("input_audio_buffer.started") == 1
    assert types.count("input_audio_buffer.completed") == 1
    assert "audio.user.speech_started" not in types and "error" not in types
    assert in_order(types, ["input_audio_buffer.started", "input_audio_buffer.completed", *TURN])
    assert room.of("conversation.message.completed")[0]["data"]["content"] == "(0.80 s of speech)"


def test_ptt_without_speech_starts_no_chat() -> None:
    room = Room(turn_type="client_interrupt")
    room.start()
    room.send(InputAudioBufferStart())
    room.feed(silence(0.5))
    room.send(InputAudioBufferComplete())
    room.wait(3.0)
    assert "conversation.chat.created" not in room.types()


def test_ptt_events_need_a_ptt_room() -> None:
    room = Room()
    room.start()
    room.send(InputAudioBufferStart())
    error = room.of("error")[0]["data"]
    assert error["code"] == 4000 and "client_interrupt" in error["msg"]
    assert "input_audio_buffer.started" not in room.types()


# ---------------------------------------------------------------- interruptions


def talking_room() -> Room:
    """A room whose agent is in the middle of a long typed-turn reply."""
    room = Room(bot=ToneBot())
    room.start()
    room.send(ConversationMessageCreate(role="user", content_type="text", content="a " * 12))
    room.wait(1.0)
    assert "audio.agent.speech_started" in room.types()
    assert "audio.agent.speech_stopped" not in room.types()
    return room


def test_barge_in_stops_the_agent() -> None:
    room = talking_room()
    played = len(room.audio)
    room.feed(tone(0.3))
    types = room.types()
    i = types.index("audio.user.speech_started")
    assert types[i + 1] == "audio.agent.speech_stopped"
    stop_at = room.time_of("audio.agent.speech_stopped")
    assert room.stops == [stop_at]
    room.wait(10.0)
    assert all(t <= stop_at for t, _ in room.audio[played:])
    assert room.types().count("audio.agent.speech_stopped") == 1


def test_no_voice_interrupt_when_disabled() -> None:
    room = Room(bot=ToneBot())
    room.start(SessionUpdateData(chat_config=RealtimeChatConfig(allow_voice_interrupt=False)))
    room.send(ConversationMessageCreate(role="user", content_type="text", content="a " * 12))
    room.wait(1.0)
    room.feed(tone(0.3))
    room.feed(silence(0.6))
    assert room.stops == []
    room.wait(10.0)
    assert room.types().count("conversation.chat.created") == 1  # the speech started no chat
    assert room.types().count("audio.agent.speech_stopped") == 1


def test_cancel_stops_the_reply() -> None:
    room = talking_room()
    played = len(room.audio)
    room.send(ConversationChatCancel())
    cancelled_at = room.now
    assert room.types()[-1] == "audio.agent.speech_stopped"
    assert room.stops == [cancelled_at]
    room.wait(10.0)
    assert all(t <= cancelled_at for t, _ in room.audio[played:])  # no audio after the stop
    assert room.types().count("audio.agent.speech_stopped") == 1
    assert "error" not in room.types()
    before = len(room.events)
    room.send(ConversationChatCancel())  # nothing in flight: ignored
    assert len(room.events) == before


# ---------------------------------------------------------------- typed input


def test_text_turn() -> None:
    room = Room()
    room.start()
    room.send(ConversationMessageCreate(role="user", content_type="text", content="hello"))
    room.wait(5.0)
    types = room.types()
    assert in_order(types, TURN[1:])
    assert types.count("conversation.message.completed") == 1  # typed: no user message echo
    deltas = "".join(e["data"]["content"] for e in room.of("conversation.message.delta"))
    answer = room.of("conversation.message.completed")[0]["data"]
    assert answer["content"] == deltas == "You said: hello"
    assert room.of("conversation.chat.completed")[0]["data"]["usage"]["token_count"] > 0
    room.send(ConversationMessageCreate(role="assistant", content_type="text", content="ok"))
    assert room.types() == types  # context only


def test_generate_audio() -> None:
    room = Room()
    room.start()
    room.send(InputTextGenerateAudio(text="Say this."))
    room.wait(5.0)
    assert in_order(room.types(), ["audio.agent.speech_started", "audio.agent.speech_stopped"])
    assert "conversation.chat.created" not in room.types()
    assert sum(n for _, n in room.audio) > 0
    room.send_raw(json.dumps({"event_type": "input_text.generate_audio", "data": {"text": ""}}))
    room.send_raw(
        json.dumps({"event_type": "input_text.generate_audio", "data": {"text": "x" * 1024}})
    )
    assert [e["data"]["code"] for e in room.of("error")] == [4000, 4000]


def test_tool_call_round_trip() -> None:
    room = Room()
    room.start()
    command = '/tool get_weather {"city": "Paris"}'
    room.send(ConversationMessageCreate(role="user", content_type="text", content=command))
    room.wait(2.0)
    action = room.of("conversation.chat.requires_action")[0]["data"]
    assert action["status"] == "requires_action"
    call = action["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    wrong = ToolOutput(tool_call_id="call_wrong", output="x")
    room.send(ConversationChatSubmitToolOutputs(chat_id=action["id"], tool_outputs=(wrong,)))
    assert room.of("error")[0]["data"]["msg"] == "invalid message"
    ok = ToolOutput(tool_call_id=call["id"], output="20C")
    room.send(ConversationChatSubmitToolOutputs(chat_id=action["id"], tool_outputs=(ok,)))
    room.wait(5.0)
    answer = room.of("conversation.message.completed")[-1]["data"]
    assert answer["content"] == "The get_weather tool returned 20C."
    assert answer["chat_id"] == action["id"]
    assert room.of("conversation.chat.completed")[0]["data"]["id"] == action["id"]


# ---------------------------------------------------------------- silence


def test_silence_closes_the_room_with_4029() -> None:
    room = Room()
    room.start(SessionUpdateData(longest_silence_ms=2000))
    room.feed(silence(1.0))  # silence on the track is not speech
    room.advance(1.99)
    assert not room.closed
    room.advance(3.0)
    error = room.of("error")[0]
    assert error["data"] == {
        "code": 4029,
        "msg": SILENCE_MSG,
        "detail": {"logid": room.agent.logid},
    }
    assert room.time_of("error") == pytest.approx(2.0)
    assert room.closed == [(pytest.approx(2.0), CloseRoom(4029, SILENCE_MSG))]
    assert room.agent.closed and room.agent.next_deadline() is None
    room.send(ConversationMessageCreate(role="user", content_type="text", content="hi"))
    room.feed(tone(0.5))
    assert room.types()[-1] == "error"  # a closed room answers nothing


def test_silence_counts_from_the_end_of_the_agent_speech_and_user_speech() -> None:
    room = Room(prologue="Hello there, how are you today?")
    room.start(SessionUpdateData(longest_silence_ms=1000))
    room.advance(0.4)
    room.feed(tone(0.5))  # user speech at 0.4..0.9: cancels the prologue before it plays
    while not room.closed and room.now < 30:
        room.feed(silence(0.2))  # a WebRTC track never stops: silence follows
    assert room.of("audio.user.speech_stopped")
    closed_at = room.closed[0][0]
    last_speech = max(
        room.time_of("audio.agent.speech_stopped", -1), room.time_of("audio.user.speech_stopped")
    )
    assert closed_at == pytest.approx(last_speech + 1.0, abs=0.03)


def test_keyword_interrupt_needs_a_matching_transcript() -> None:
    from voicegw.realtime.objects import RealtimeInterruptConfig

    def barged(script: str) -> bool:
        room = Room(
            bot=ScriptBot(
                [ScriptTurn("Tell me a long story.", "a " * 30), ScriptTurn(script, "Okay.")]
            )
        )
        ic = RealtimeInterruptConfig(mode="keyword_prefix", keywords=("stop",))
        room.start(SessionUpdateData(chat_config=RealtimeChatConfig(interrupt_config=ic)))
        room.send(ConversationMessageCreate(role="user", content_type="text", content="go"))
        room.wait(2.0)
        assert "audio.agent.speech_started" in room.types()
        room.feed(tone(1.2))
        assert "audio.user.speech_started" in room.types()
        return bool(room.stops)

    assert barged("stop the story now") is True
    assert barged("that is nice") is False
