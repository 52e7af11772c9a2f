"""The emulator core, fed strings on a fake clock: config, errors, turns, cancels (spec 2.3-2.7)."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray
from test_emulator_harness import Frame, Harness, audio_of, types

from voicegw.emulator.chat import DEFAULT_PROLOGUE
from voicegw.emulator.inbound import WAV_FORMAT_ERROR
from voicegw.emulator.turns import FINISH_CONTENT

Audio = tuple[NDArray[np.int16], int]
PCM16K = {"input_audio": {"format": "pcm", "codec": "pcm", "sample_rate": 16000}}


def fresh(bot: str = "echo") -> Harness:
    h = Harness(bot)
    h.pump()
    return h


def errors(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f["event_type"] == "error"]


# ---------------------------------------------------------------- chat.update (2.2, 2.4 D2)


def test_chat_updated_echoes_the_full_default_config() -> None:
    (ack,) = fresh().update({}, id="u1")
    assert ack["event_type"] == "chat.updated" and ack["id"] == "u1"
    cfg = ack["data"]
    assert cfg["input_audio"] == {
        "format": "wav",
        "codec": "pcm",
        "sample_rate": 24000,
        "channel": 1,
        "bit_depth": 16,
    }
    out = cfg["output_audio"]
    assert out["codec"] == "pcm" and out["pcm_config"] == {"sample_rate": 24000}
    assert out["speech_rate"] == 0 and out["voice_id"]
    assert cfg["turn_detection"] == {
        "type": "client_interrupt",
        "prefix_padding_ms": 600,
        "silence_duration_ms": 500,
    }
    asr = cfg["asr_config"]
    assert asr["enable_ddc"] and asr["enable_itn"] and asr["enable_punc"]
    assert cfg["chat_config"]["auto_save_history"] is True
    assert cfg["need_play_prologue"] is False and cfg["event_subscriptions"] == []


@pytest.mark.parametrize(
    ("update", "path", "expected"),
    [
        (
            {"output_audio": {"codec": "opus"}},
            ("output_audio", "opus_config"),
            {"bitrate": 48000, "use_cbr": False, "frame_size_ms": 10.0},
        ),
        (
            {"output_audio": {"codec": "mp3"}},
            ("output_audio", "mp3_config"),
            {"sample_rate": 44100, "bit_rate": 48000},
        ),
        (
            {"output_audio": {"codec": "g711a"}},
            ("output_audio", "pcm_config"),
            {"sample_rate": 8000},
        ),
        (
            {"turn_detection": {"type": "semantic_vad"}},
            ("turn_detection", "semantic_vad_config"),
            {"silence_threshold_ms": 300, "semantic_unfinished_wait_time_ms": 500},
        ),
        (
            {"output_audio": {"emotion_config": {"emotion": "happy"}}},
            ("output_audio", "emotion_config"),
            {"emotion": "happy", "emotion_scale": 4.0},
        ),
    ],
)
def test_sub_object_defaults_are_filled(
    update: dict, path: tuple[str, str], expected: dict
) -> None:
    (ack,) = fresh().update(update)
    assert ack["data"][path[0]][path[1]] == expected


def test_opus_output_drops_the_default_pcm_config() -> None:
    (ack,) = fresh().update({"output_audio": {"codec": "opus"}})
    assert "pcm_config" not in ack["data"]["output_audio"]


def test_prologue_fields_and_subscriptions_are_echoed() -> None:
    data = {
        "need_play_prologue": False,
        "prologue_content": "Hi!",
        "event_subscriptions": ["chat.updated", "error"],
    }
    (ack,) = fresh().update(data)
    assert {k: ack["data"][k] for k in data} == data


def test_updates_deep_merge() -> None:
    h = fresh()
    h.update({"output_audio": {"pcm_config": {"sample_rate": 16000, "frame_size_ms": 40}}})
    (ack,) = h.update(
        {
            "output_audio": {"pcm_config": {"frame_size_ms": 20}},
            "turn_detection": {"type": "server_vad"},
        }
    )
    assert ack["data"]["output_audio"]["pcm_config"] == {"sample_rate": 16000, "frame_size_ms": 20}
    assert ack["data"]["turn_detection"]["silence_duration_ms"] == 500


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (
            {"output_audio": {"pcm_config": {"sample_rate": 12345}}},
            "output_audio.pcm_config.sample_rate",
        ),
        ({"input_audio": {"channel": 3}}, "input_audio.channel"),
        ({"turn_detection": {"type": "push_to_talk"}}, "turn_detection.type"),
        ({"turn_detection": {"silence_duration_ms": 50}}, "turn_detection.silence_duration_ms"),
        (
            {"turn_detection": {"interrupt_config": {"keywords": ["ab"]}}},
            "turn_detection.interrupt_config.keywords[0]",
        ),
        (
            {"output_audio": {"opus_config": {"frame_size_ms": 7}}},
            "output_audio.opus_config.frame_size_ms",
        ),
        ({"input_audio": {"format": "ogg", "codec": "opus"}}, "input_audio.format"),
        ({"output_audio": {"speech_rate": "fast"}}, "output_audio.speech_rate"),
    ],
)
def test_invalid_update_is_error_4000_naming_the_field_with_origin(data: dict, path: str) -> None:
    h = fresh()
    h.update({"output_audio": {"pcm_config": {"sample_rate": 16000}}})
    text = h.send("chat.update", data, id="bad")
    (err,) = h.pump()
    assert err["event_type"] == "error" and err["data"]["code"] == 4000
    assert path in err["data"]["msg"]
    assert err["detail"]["origin_message"] == text
    (ack,) = h.update({})
    assert ack["data"]["output_audio"]["pcm_config"]["sample_rate"] == 16000  # unchanged


def test_ogg_input_is_refused_honestly() -> None:
    h = fresh()
    h.send("chat.update", {"input_audio": {"format": "ogg", "codec": "opus"}})
    (err,) = h.pump()
    assert "ogg input is not supported by the voicegw emulator" in err["data"]["msg"]


def test_g711_rules_across_updates() -> None:
    h = fresh()
    h.update({"output_audio": {"pcm_config": {"sample_rate": 16000}}})
    h.send("chat.update", {"output_audio": {"codec": "g711u"}})
    (err,) = h.pump()
    assert "output_audio.pcm_config.sample_rate" in err["data"]["msg"]
    h.send("chat.update", {"input_audio": {"codec": "g711a"}})  # format still the default wav
    (err,) = h.pump()
    assert "input_audio.format" in err["data"]["msg"]
    (ack,) = h.update({"input_audio": {"format": "pcm", "codec": "g711a", "bit_depth": 8}})
    assert ack["data"]["input_audio"]["sample_rate"] == 8000


def test_unknown_fields_are_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    h = fresh()
    with caplog.at_level(logging.INFO, logger="voicegw.emulator.chat"):
        (ack,) = h.update({"input_audio": {"format": "pcm", "colour": "blue"}, "tts_config": {}})
    assert "colour" not in ack["data"]["input_audio"] and "tts_config" not in ack["data"]
    assert ack["data"]["input_audio"]["format"] == "pcm"
    assert "data.input_audio.colour" in caplog.text and "data.tts_config" in caplog.text


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ('{"event_type": "chat.update", ', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"data": {}}', "event_type"),
        ('{"event_type": "input_audio_buffer.append", "data": {"delta": "%%%"}}', "base64"),
        ('{"event_type": "frobnicate.now", "data": {}}', "unknown event type: frobnicate.now"),
    ],
)
def test_malformed_frames_get_error_4000_and_the_session_survives(frame: str, needle: str) -> None:
    h = fresh()
    h.raw(frame)
    (err,) = h.pump()
    assert err["data"]["code"] == 4000 and needle in err["data"]["msg"]
    assert err["detail"]["origin_message"] == frame
    assert types(h.update({})) == ["chat.updated"]


def test_binary_frames_are_refused() -> None:
    h = fresh()
    h.raw(b'{"event_type": "chat.update"}')
    (err,) = h.pump()
    assert err["data"]["code"] == 4000 and "binary" in err["data"]["msg"]


# ---------------------------------------------------------------- event_subscriptions (2.3 U1)


def test_event_subscriptions_filter_but_errors_always_arrive() -> None:
    h = fresh()
    subs = ["conversation.chat.completed", "conversation.audio.completed", "no.such.event"]
    assert h.update({"event_subscriptions": subs}) == []  # chat.updated itself is filtered
    h.say("hello")
    assert types(h.run()) == ["conversation.audio.completed", "conversation.chat.completed"]
    h.raw("not json")
    assert types(h.pump()) == ["error"]
    h.update({"event_subscriptions": []})
    h.say("again")
    assert "conversation.audio.delta" in types(h.run())


# ---------------------------------------------------------------- turns (2.6.2, 2.6.3)


def check_reply(frames: list[Frame], *, tool_resumed: bool = False) -> dict[str, str]:
    """Assert the exact order of a reply turn; returns its ids."""
    kinds = types(frames)
    i = 0
    if not tool_resumed:
        assert kinds[:2] == ["conversation.chat.created", "conversation.chat.in_progress"]
        created = frames[0]["data"]
        assert created["status"] == "created" and re.fullmatch(r"\d{19}", created["id"])
        assert created["usage"] == {"token_count": 0, "output_count": 0, "input_count": 0}
        assert isinstance(created["created_at"], int) and created["section_id"]
        i = 2
    else:
        assert kinds[0] == "conversation.chat.in_progress"
        i = 1
    chat_id = frames[i - 1]["data"]["id"]
    answer = next(
        f
        for f in frames
        if f["event_type"] == "conversation.message.completed" and f["data"]["type"] == "answer"
    )
    a = frames.index(answer)
    middle = frames[i:a]
    assert set(types(middle)) <= {
        "conversation.message.delta",
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
    }
    text = "".join(
        f["data"]["content"] for f in middle if f["event_type"] == "conversation.message.delta"
    )
    assert text == answer["data"]["content"] and text
    verbose = frames[a + 1]
    assert verbose["data"]["type"] == "verbose" and verbose["data"]["content"] == FINISH_CONTENT
    assert verbose["data"]["id"] != answer["data"]["id"]
    rest = frames[a + 2 :]
    assert types(rest)[-2:] == ["conversation.audio.completed", "conversation.chat.completed"]
    assert set(types(rest[:-2])) <= {
        "conversation.audio.delta",
        "conversation.audio.sentence_start",
    }
    assert "conversation.audio.delta" in types(rest[:-2])  # TTS lags the text
    audio = [f for f in frames if f["event_type"] == "conversation.audio.delta"]
    first_audio = frames.index(audio[0])
    assert frames[first_audio - 1]["event_type"] == "conversation.audio.sentence_start"
    for f in [*audio, rest[-2]]:
        d = f["data"]
        assert d["id"] == answer["data"]["id"] and d["chat_id"] == chat_id
        assert d["content_type"] == "audio" and d["type"] == "answer" and d["role"] == "assistant"
    assert rest[-2]["data"]["content"] == ""
    done = rest[-1]["data"]
    assert done["id"] == chat_id and done["status"] == "completed"
    assert isinstance(done["completed_at"], int)
    usage = done["usage"]
    assert usage["input_count"] > 0 and usage["output_count"] > 0
    assert usage["token_count"] == usage["input_count"] + usage["output_count"]
    return {"chat": chat_id, "answer": answer["data"]["id"], "section": done["section_id"]}


def test_text_turn_follows_the_real_order() -> None:
    h = fresh()
    h.say("今天天气真不错")
    frames = h.run()
    q = frames[0]
    assert q["event_type"] == "conversation.message.completed"
    assert {k: q["data"][k] for k in ("role", "type", "content", "content_type")} == {
        "role": "user",
        "type": "question",
        "content": "今天天气真不错",
        "content_type": "text",
    }
    ids = check_reply(frames[1:])
    assert q["data"]["chat_id"] == ids["chat"]


def test_assistant_message_only_joins_the_context() -> None:
    h = fresh()
    h.send(
        "conversation.message.create",
        {"role": "assistant", "content_type": "text", "content": "I am a helpful lamp."},
    )
    assert h.run() == []


def test_ptt_turn_with_real_speech(speech16k: Audio) -> None:
    samples, rate = speech16k
    h = fresh()
    h.update(PCM16K)
    h.stream(samples, rate)
    h.send("input_audio_buffer.complete", id="c1")
    frames = h.run()
    assert frames[0]["event_type"] == "input_audio_buffer.completed" and frames[0]["id"] == "c1"
    assert "data" not in frames[0]
    k = types(frames).index("conversation.audio_transcript.completed")
    updates = frames[1:k]
    assert updates and set(types(updates)) == {"conversation.audio_transcript.update"}
    assert updates[0]["data"]["content"] == "(0.50 s of speech)"
    final = frames[k]["data"]["content"]
    speech_s = float(re.fullmatch(r"\((\d+\.\d\d) s of speech\)", final)[1])  # type: ignore[index]
    assert 5.2 < speech_s < 5.8  # the fixture speaks from 1.01 s to about 6.5 s
    assert len(updates) == int(speech_s / 0.5)
    q = frames[k + 1]["data"]
    assert (q["role"], q["type"], q["content"]) == ("user", "question", final)
    check_reply(frames[k + 2 :])
    # the echo bot replies with the whole push-to-talk buffer, resampled to 24 kHz
    assert len(audio_of(frames)) == pytest.approx(samples.shape[0] * 3 // 2 * 2, abs=8)


def test_ptt_silence_gives_an_empty_transcript_and_no_chat() -> None:
    h = fresh()
    h.update(PCM16K)
    h.append(np.zeros(16000, dtype=np.int16).tobytes())
    h.send("input_audio_buffer.complete")
    frames = h.run()
    assert types(frames) == [
        "input_audio_buffer.completed",
        "conversation.audio_transcript.completed",
    ]
    assert frames[1]["data"] == {"content": ""}


def test_clear_discards_the_buffer(short16k: Audio) -> None:
    h = fresh()
    h.update(PCM16K)
    h.stream(*short16k)
    h.send("input_audio_buffer.clear", id="x")
    assert [(f["event_type"], f["id"]) for f in h.pump()] == [("input_audio_buffer.cleared", "x")]
    h.send("input_audio_buffer.complete")
    assert h.run()[1]["data"] == {"content": ""}


def test_default_wav_format_rejects_raw_pcm_with_the_services_message(short16k: Audio) -> None:
    h = fresh()
    h.stream(*short16k)  # no chat.update: input_audio.format is still "wav"
    text = h.send("input_audio_buffer.complete")
    (err,) = h.run()
    assert err["data"] == {"code": 4000, "msg": WAV_FORMAT_ERROR}
    assert err["data"]["msg"] == (
        "The parameter audio is invalid. It should follow the format: wav. or set input_audio "
        "via chat.update event. Please review your input."
    )
    assert err["detail"]["origin_message"] == text


def test_default_wav_format_accepts_a_riff_stream(short16k: Audio) -> None:
    samples, rate = short16k
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    h = fresh()
    for i in range(0, len(wav), 7):  # the header arrives split over several appends
        h.append(wav[i : i + 7])
    h.send("input_audio_buffer.complete")
    frames = h.run()
    assert not errors(frames)
    assert "conversation.chat.completed" in types(frames)


def test_complete_and_clear_are_refused_in_vad_modes() -> None:
    h = fresh()
    h.update({"turn_detection": {"type": "server_vad"}})
    for kind in ("input_audio_buffer.complete", "input_audio_buffer.clear"):
        h.send(kind)
        (err,) = h.pump()
        assert err["data"]["code"] == 4000 and "server_vad" in err["data"]["msg"]


# ---------------------------------------------------------------- cancel (2.6.6, D16)


def start_reply(h: Harness, text: str = "hello there") -> None:
    h.say(text)
    h.until("conversation.audio.delta")


def test_client_cancel_is_code_2_echoes_the_id_and_stops_audio() -> None:
    h = fresh("tone")
    start_reply(h, "one two three four five six")
    h.send("conversation.chat.cancel", id="cancel-1")
    (ack,) = h.pump()
    assert ack["event_type"] == "conversation.chat.canceled" and ack["id"] == "cancel-1"
    assert ack["data"]["code"] == 2 and ack["data"]["msg"]
    assert h.run() == []


def test_cancel_while_idle_is_an_error_and_the_session_keeps_working() -> None:
    h = fresh()
    h.send("conversation.chat.cancel")
    (err,) = h.pump()
    assert err["data"] == {"code": 4000, "msg": "no chat in progress"}
    h.say("still there?")
    assert "conversation.chat.completed" in types(h.run())


def test_message_create_during_a_reply_cancels_with_code_3_then_starts_a_turn() -> None:
    h = fresh()
    start_reply(h)
    first_chat = h.frames[-1]["data"]["chat_id"]
    h.say("new question")
    frames = h.run()
    assert frames[0]["event_type"] == "conversation.chat.canceled"
    assert frames[0]["data"]["code"] == 3
    ids = check_reply(frames[2:])
    assert ids["chat"] != first_chat
    assert all(
        f["data"]["chat_id"] == ids["chat"]
        for f in frames[2:]
        if f["event_type"] == "conversation.audio.delta"
    )


def test_conversation_clear_starts_a_new_section() -> None:
    h = fresh()
    h.say("first")
    one = check_reply(h.run()[1:])
    h.send("conversation.clear", id="cc")
    assert [(f["event_type"], f["id"]) for f in h.pump()] == [("conversation.cleared", "cc")]
    h.say("second")
    frames = h.run()
    two = check_reply(frames[1:])
    assert two["section"] != one["section"]
    assert frames[0]["data"]["section_id"] == two["section"]
    assert frames[-1]["data"]["conversation_id"] == h.conn.conversation_id


# ---------------------------------------------------------------- TTS-only output (2.6.8, 2.6.9)


def check_tts(frames: list[Frame], text: str) -> None:
    assert frames[0]["event_type"] == "conversation.audio.sentence_start"
    assert (
        " ".join(
            f["data"]["text"]
            for f in frames
            if f["event_type"] == "conversation.audio.sentence_start"
        )
        == text
    )
    assert types(frames)[-1] == "conversation.audio.completed"
    assert set(types(frames)) == {
        "conversation.audio.sentence_start",
        "conversation.audio.delta",
        "conversation.audio.completed",
    }
    for f in frames:
        if f["event_type"] != "conversation.audio.sentence_start":
            d = f["data"]
            assert {d[k] for k in ("id", "conversation_id", "bot_id", "chat_id", "section_id")} == {
                "0"
            }
            assert (d["role"], d["type"], d["content_type"]) == ("assistant", "answer", "audio")
    assert frames[-1]["data"]["content"] == ""
    assert audio_of(frames)


def test_generate_audio_has_the_real_shape() -> None:
    h = fresh()
    h.send("input_text.generate_audio", {"mode": "text", "text": "亲，你怎么不说话了。"})
    check_tts(h.run(), "亲，你怎么不说话了。")


@pytest.mark.parametrize(("size", "ok"), [(1023, True), (1024, False)])
def test_generate_audio_text_must_be_under_1024_bytes(size: int, ok: bool) -> None:
    h = fresh("tone")
    h.send("input_text.generate_audio", {"mode": "text", "text": "a" * size})
    frames = h.run()
    if ok:
        assert not errors(frames)
    else:
        assert types(frames) == ["error"] and "data.text" in frames[0]["data"]["msg"]


def test_generate_audio_interrupts_a_reply() -> None:
    h = fresh()
    start_reply(h)
    h.send("input_text.generate_audio", {"mode": "text", "text": "Are you still there?"})
    frames = h.run()
    assert frames[0]["event_type"] == "conversation.chat.canceled" and "data" not in frames[0]
    check_tts(frames[1:], "Are you still there?")


@pytest.mark.parametrize(
    ("content", "expected"), [("Welcome back.", "Welcome back."), (None, DEFAULT_PROLOGUE)]
)
def test_prologue_plays_once_after_chat_updated(content: str | None, expected: str) -> None:
    h = fresh()
    data = {"need_play_prologue": True} | ({"prologue_content": content} if content else {})
    h.send("chat.update", data)
    frames = h.run()
    assert frames[0]["event_type"] == "chat.updated"
    check_tts(frames[1:], expected)
    assert types(h.update(data)) == ["chat.updated"]
    assert h.run() == []


# ---------------------------------------------------------------- tool calls (2.6.7)


def request_tool(h: Harness) -> tuple[str, str, list[Frame]]:
    h.say('/tool get_weather {"city": "Paris"}')
    frames = h.run()
    assert types(frames) == [
        "conversation.message.completed",
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.message.completed",
        "conversation.chat.requires_action",
    ]
    call_msg = frames[3]["data"]
    assert call_msg["type"] == "function_call"
    assert json.loads(call_msg["content"]) == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    chat = frames[4]["data"]
    assert chat["status"] == "requires_action"
    action = chat["required_action"]
    assert action["type"] == "submit_tool_outputs"
    (call,) = action["submit_tool_outputs"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert isinstance(call["function"]["arguments"], str) and call["id"]
    return chat["id"], call["id"], frames


def test_tool_call_round_trip() -> None:
    h = fresh("espeak")
    chat_id, call_id, _ = request_tool(h)
    h.send(
        "conversation.chat.submit_tool_outputs",
        {"chat_id": chat_id, "tool_outputs": [{"tool_call_id": call_id, "output": '{"temp": 21}'}]},
    )
    frames = h.run()
    ids = check_reply(frames, tool_resumed=True)
    assert ids["chat"] == chat_id
    answer = next(
        f["data"]["content"]
        for f in frames
        if f["data"].get("type") == "answer" and f["event_type"] == "conversation.message.completed"
    )
    assert "get_weather" in answer and '{"temp": 21}' in answer


@pytest.mark.parametrize(
    "data",
    [
        {"chat_id": "123", "tool_outputs": [{"tool_call_id": "CALL", "output": "x"}]},
        {"chat_id": "CHAT", "tool_outputs": [{"tool_call_id": "nope", "output": "x"}]},
        {"chat_id": "CHAT"},
        {"chat_id": "CHAT", "tool_outputs": [{"tool_call_id": "CALL", "output": {"a": 1}}]},
    ],
)
def test_bad_tool_outputs_are_invalid_message(data: dict) -> None:
    h = fresh()
    chat_id, call_id, _ = request_tool(h)
    text = h.send(
        "conversation.chat.submit_tool_outputs",
        json.loads(json.dumps(data).replace("CHAT", chat_id).replace("CALL", call_id)),
    )
    (err,) = h.pump()
    assert err["data"] == {"code": 4000, "msg": "invalid message"}
    assert err["detail"]["origin_message"] == text


def test_cancel_while_waiting_for_tool_outputs() -> None:
    h = fresh()
    request_tool(h)
    h.send("conversation.chat.cancel")
    assert [f["data"]["code"] for f in h.pump()] == [2]


def test_scripted_tool_call_uses_the_scripts_reply(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps(
            [
                {
                    "transcript": "weather?",
                    "reply": "It is {output} in Paris.",
                    "tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ]
        )
    )
    h = fresh(f"script:{script}")
    h.say("what is the weather")
    frames = h.run()
    chat = frames[-1]["data"]
    (call,) = chat["required_action"]["submit_tool_outputs"]["tool_calls"]
    h.send(
        "conversation.chat.submit_tool_outputs",
        {"chat_id": chat["id"], "tool_outputs": [{"tool_call_id": call["id"], "output": "sunny"}]},
    )
    texts = [
        f["data"]["content"] for f in h.run() if f["event_type"] == "conversation.message.completed"
    ]
    assert texts[0] == "It is sunny in Paris."
