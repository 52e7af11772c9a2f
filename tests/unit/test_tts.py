"""Streaming TTS (spec 4): text splitting, event round trips, the client session and the
emulator core, all fed strings (the emulator core on a fake clock)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.emulator.bots import ToneBot, split_sentences, tone_voice
from voicegw.emulator.tts import SpeechConnection
from voicegw.emulator.turns import Timing
from voicegw.errors import LocalProtocolError, RemoteProtocolError
from voicegw.protocol.events import ConversationAudioSentenceStart
from voicegw.protocol.objects import OutputAudio, PCMConfig
from voicegw.protocol.outputs import Notice, ServerError
from voicegw.protocol.tts import (
    MAX_TEXT_BYTES,
    TTS_CLIENT_EVENTS,
    TTS_SERVER_EVENTS,
    AudioChunk,
    PieceCompleted,
    SentenceStart,
    SpeechAudioUpdate,
    SpeechFinished,
    SpeechUpdate,
    TtsReady,
    TtsSession,
    TtsState,
    split_text,
    utf8_len,
)
from voicegw.protocol.wire import decode_with, encode

Frame = dict[str, Any]


def squash(text: str) -> str:
    return "".join(text.split())


# ---------------------------------------------------------------- splitting (spec 4: 1024 bytes)


def test_short_text_is_one_piece() -> None:
    assert split_text("  Hello there.  ") == ["Hello there."]
    assert split_text("   ") == []


def test_long_english_text_splits_at_sentence_ends() -> None:
    text = " ".join(f"This is sentence number {i}, which says nothing much." for i in range(60))
    assert utf8_len(text) > 3 * MAX_TEXT_BYTES
    pieces = split_text(text)
    assert len(pieces) >= 4
    assert all(utf8_len(p) <= MAX_TEXT_BYTES for p in pieces)
    assert all(p.endswith("much.") for p in pieces)  # whole sentences only
    assert " ".join(pieces) == text


def test_chinese_text_splits_after_full_stops_on_character_boundaries() -> None:
    text = "今天天气不错，我们去公园散步吧。" * 40  # 45 bytes per sentence, 1800 in all
    pieces = split_text(text)
    assert len(pieces) == 2
    for p in pieces:
        assert utf8_len(p) <= MAX_TEXT_BYTES
        assert p.endswith("。")
        p.encode("utf-8").decode("utf-8")  # whole characters
    assert "".join(pieces) == text


def test_an_over_long_sentence_splits_at_clauses_then_words() -> None:
    clause = "and then the little robot walked a bit further down the road"
    text = ", ".join([clause] * 30) + "."
    pieces = split_text(text)
    assert all(utf8_len(p) <= MAX_TEXT_BYTES for p in pieces)
    assert all(p.endswith(("road,", "road.")) for p in pieces)
    words = "word " * 400
    pieces = split_text(words)
    assert all(utf8_len(p) <= MAX_TEXT_BYTES and p.endswith("word") for p in pieces)


@pytest.mark.parametrize("char", ["a", "é", "天", "😀"])
def test_text_without_any_boundary_splits_between_characters(char: str) -> None:
    text = char * (3000 // utf8_len(char))
    pieces = split_text(text)
    assert all(0 < utf8_len(p) <= MAX_TEXT_BYTES for p in pieces)
    assert all(utf8_len(p) > MAX_TEXT_BYTES - utf8_len(char) for p in pieces[:-1])  # packed
    assert "".join(pieces) == text


def test_character_cuts_keep_combining_marks_with_their_base() -> None:
    text = "e\u0301" * 700  # é as e + COMBINING ACUTE, 3 bytes a pair
    pieces = split_text(text)
    assert len(pieces) >= 3
    assert all(not p.startswith("\u0301") for p in pieces)
    assert "".join(pieces) == text


def test_limit_must_fit_a_character() -> None:
    with pytest.raises(ValueError):
        split_text("abc", limit=3)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=600), st.integers(min_value=4, max_value=64))
def test_split_never_exceeds_the_limit_and_loses_nothing(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < utf8_len(p) <= limit for p in pieces)
    assert all(p == p.strip() for p in pieces)
    assert squash("".join(pieces)) == squash(text)


# ---------------------------------------------------------------- events (spec 4.1, 4.2, App. B)


def test_speech_update_round_trips_the_spec_example() -> None:
    raw = (
        '{"id":"event_id","event_type":"speech.update","data":{"output_audio":{"codec":"pcm",'
        '"pcm_config":{"sample_rate":24000},"speech_rate":50,"voice_id":"7426720361733046281"}}}'
    )
    ev = decode_with(raw, TTS_CLIENT_EVENTS)
    assert isinstance(ev, SpeechUpdate)
    out = ev.config.output_audio
    assert out is not None and out.codec == "pcm" and out.speech_rate == 50
    assert out.pcm_config is not None and out.pcm_config.sample_rate == 24000
    assert orjson.loads(encode(ev)) == orjson.loads(raw)


def test_context_texts_is_a_list_of_strings() -> None:
    ok = '{"event_type":"speech.update","data":{"output_audio":{"context_texts":["calm","slow"]}}}'
    ev = decode_with(ok, TTS_CLIENT_EVENTS)
    assert isinstance(ev, SpeechUpdate) and ev.config.output_audio is not None
    assert ev.config.output_audio.context_texts == ("calm", "slow")
    bad = '{"event_type":"speech.update","data":{"output_audio":{"context_texts":"calm"}}}'
    with pytest.raises(RemoteProtocolError) as info:
        decode_with(bad, TTS_CLIENT_EVENTS)
    assert info.value.path == "data.output_audio.context_texts"


def test_server_frames_of_real_traffic_decode() -> None:
    pcm = b"\x14\x00\x1c\x00\x1c\x00"
    audio = (
        '{"event_type":"speech.audio.update","id":"6388d0aa","data":{"delta":"'
        + base64.b64encode(pcm).decode()
        + '"},"detail":{"logid":"0217","respond_at":"1752474748918"}}'
    )
    ev = decode_with(audio, TTS_SERVER_EVENTS)
    assert isinstance(ev, SpeechAudioUpdate) and ev.delta == pcm
    assert "bytes" in repr(ev) and "FAAc" not in repr(ev)
    sub = decode_with(
        '{"event_type":"conversation.audio.sentence_start","id":"x","data":{"text":"今天天气不错。"}}',
        TTS_SERVER_EVENTS,
    )
    assert isinstance(sub, ConversationAudioSentenceStart) and sub.text == "今天天气不错。"
    for name in ("speech.created", "input_text_buffer.completed", "speech.audio.completed"):
        ev = decode_with(f'{{"event_type":"{name}","id":"i"}}', TTS_SERVER_EVENTS)
        assert ev.event_type == name
        assert "data" not in orjson.loads(encode(ev))  # payload-free, as the service sends


# ---------------------------------------------------------------- the client session


def frame(event_type: str, **data: Any) -> str:
    out: Frame = {"event_type": event_type, "id": "s", "detail": {"logid": "L1"}}
    if data:
        out["data"] = data
    return json.dumps(out)


def sent(session: TtsSession) -> list[Frame]:
    return [json.loads(f) for f in session.data_to_send()]


def audio_frame(data: bytes) -> str:
    return frame("speech.audio.update", delta=base64.b64encode(data).decode())


def test_the_real_traffic_sequence_without_speech_update() -> None:
    # As the recorded client did: the text goes out at once, before speech.created.
    s = TtsSession(None, texts=["今天天气不错"])
    out = sent(s)
    assert [f["event_type"] for f in out] == [
        "input_text_buffer.append",
        "input_text_buffer.complete",
    ]
    assert out[0]["data"] == {"delta": "今天天气不错"} and "data" not in out[1]
    assert s.state is TtsState.SPEAKING
    s.receive_text(frame("speech.created"))
    s.receive_text(frame("input_text_buffer.completed"))
    s.receive_text(frame("conversation.audio.sentence_start", text="今天天气不错。"))
    for i in range(10):
        s.receive_text(audio_frame(bytes([i]) * 4))
    s.receive_text(frame("speech.audio.completed"))
    events = s.events_received()
    assert events[0] == TtsReady(None)
    assert events[1] == SentenceStart("今天天气不错。", 0)
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.data for c in chunks] == [bytes([i]) * 4 for i in range(10)]
    assert events[-2:] == [PieceCompleted(0), SpeechFinished()]
    assert s.finished and s.close_expected() and s.logid == "L1"
    assert sent(s) == []


def test_speech_update_first_then_text_after_speech_updated() -> None:
    out_audio = OutputAudio(codec="pcm", pcm_config=PCMConfig(sample_rate=16000), voice_id="v1")
    s = TtsSession(out_audio, texts=["Hi."])
    s.receive_text(frame("speech.created"))
    (update,) = sent(s)
    assert update["event_type"] == "speech.update"
    assert update["data"]["output_audio"] == {
        "codec": "pcm",
        "pcm_config": {"sample_rate": 16000},
        "voice_id": "v1",
    }
    assert s.state is TtsState.CONFIGURING
    echo = {"codec": "pcm", "pcm_config": {"sample_rate": 16000}, "speech_rate": 0}
    s.receive_text(frame("speech.updated", output_audio=echo))
    assert [f["event_type"] for f in sent(s)] == [
        "input_text_buffer.append",
        "input_text_buffer.complete",
    ]
    (ready,) = s.events_received()
    assert isinstance(ready, TtsReady) and ready.output_audio is not None
    assert s.effective_output is not None and s.effective_output.speech_rate == 0


def test_each_piece_waits_for_the_previous_audio_completed() -> None:
    text = "Short sentence number one is here. " * 60
    s = TtsSession(None, texts=[text])
    assert len(s.pieces) == 3
    s.receive_text(frame("speech.created"))
    deltas = [f["data"]["delta"] for f in sent(s) if f["event_type"].endswith("append")]
    for k in range(1, 3):
        s.receive_text(audio_frame(b"\x00\x00"))
        assert sent(s) == []  # the next piece waits
        s.receive_text(frame("speech.audio.completed"))
        out = sent(s)
        deltas += [f["data"]["delta"] for f in out if f["event_type"].endswith("append")]
        assert len(deltas) == k + 1
    assert deltas == s.pieces
    s.receive_text(frame("speech.audio.completed"))
    assert isinstance(s.events_received()[-1], SpeechFinished)


def test_error_3010_fails_the_session_and_stops_sending() -> None:
    s = TtsSession(None, texts=["one. " * 300])
    s.receive_text(frame("speech.created"))
    s.data_to_send()
    s.receive_text(frame("error", code=3010, msg="text too long"))
    (err,) = [e for e in s.events_received() if isinstance(e, ServerError)]
    assert err.code == 3010 and err.fatal
    assert s.state is TtsState.FAILED and s.close_expected()
    with pytest.raises(LocalProtocolError):
        s.speak("more")


def test_a_close_between_pieces_leaves_the_rest_pending() -> None:
    s = TtsSession(None, texts=["Sentence one is here. " * 80])
    _first, second, *rest = s.pieces
    s.receive_text(frame("speech.created"))
    s.receive_text(audio_frame(b"\x01\x00"))
    assert s.in_flight_started
    s.receive_text(frame("speech.audio.completed"))
    s.connection_lost()
    assert s.state is TtsState.CLOSED and s.completed == 1
    assert s.pending == [second, *rest] and not s.in_flight_started
    resumed = TtsSession(None, pieces=s.pending)
    resumed.receive_text(frame("speech.created"))
    assert sent(resumed)[0]["data"]["delta"] == second


def test_oddities_are_tolerated_and_malformed_frames_rejected() -> None:
    s = TtsSession(OutputAudio(voice_id="v"), texts=["Hi."])
    s.receive_text(frame("x.future_event"))
    s.receive_text(audio_frame(b"\x00\x00"))  # before any request
    s.receive_text(frame("speech.created"))
    s.receive_text(frame("speech.created"))
    notices = [e for e in s.events_received() if isinstance(e, Notice)]
    assert len(notices) == 3
    with pytest.raises(RemoteProtocolError) as info:
        s.receive_text('{"event_type":"speech.audio.update","data":{"delta":"!!"}}')
    assert info.value.path == "data.delta"
    assert s.state is TtsState.CONFIGURING


def test_invalid_settings_are_refused_locally_naming_the_field() -> None:
    with pytest.raises(LocalProtocolError) as info:
        TtsSession(OutputAudio(speech_rate=500))
    assert info.value.path == "output_audio.speech_rate"
    with pytest.raises(LocalProtocolError):
        TtsSession(None, pieces=["x" * 1025])
    with pytest.raises(LocalProtocolError):
        TtsSession(None, texts=["   "])


# ---------------------------------------------------------------- the emulator core


class Emu:
    def __init__(self, timing: Timing | None = None) -> None:
        self.now = 100.0
        self.core = SpeechConnection(ToneBot(), now=self.now, timing=timing or Timing())

    def send(self, event_type: str, id: str | None = None, **data: Any) -> None:
        f: Frame = {"event_type": event_type}
        if id:
            f["id"] = id
        if data:
            f["data"] = data
        self.core.receive(json.dumps(f), self.now)

    def run(self) -> list[tuple[float, Frame]]:
        out = []
        while (t := self.core.next_deadline()) is not None:
            self.now = max(self.now, t)
            out += [(self.now, json.loads(x)) for x in self.core.due(self.now)]
        return out


def kinds(frames: list[tuple[float, Frame]]) -> list[str]:
    return [f["event_type"] for _, f in frames]


def test_emulator_sends_speech_created_first_then_the_request_sequence() -> None:
    e = Emu()
    (first,) = e.run()
    assert first[1]["event_type"] == "speech.created" and "data" not in first[1]
    assert len(first[1]["detail"]["logid"]) == 53
    e.send("input_text_buffer.append", delta="Hello there. How are you?")
    e.send("input_text_buffer.complete", id="c1")
    frames = e.run()
    assert frames[0][1] == {
        "event_type": "input_text_buffer.completed",
        "id": "c1",
        "detail": frames[0][1]["detail"],
    }
    assert kinds(frames)[1] == "conversation.audio.sentence_start"
    assert kinds(frames)[-1] == "speech.audio.completed"
    subs = [f["data"]["text"] for _, f in frames if "sentence_start" in f["event_type"]]
    assert subs == ["Hello there.", "How are you?"]
    pcm = b"".join(
        base64.b64decode(f["data"]["delta"])
        for _, f in frames
        if f["event_type"].endswith("update")
    )
    want = b"".join(tone_voice(t).audio.tobytes() for t in subs)  # 24 kHz pcm by default
    assert pcm == want
    # 6x real time after the TTS latency, like the chat emulator's replies.
    duration = len(want) / 2 / 24000
    end = frames[-1][0]
    assert end - 100.0 == pytest.approx(0.15 + (duration - 0.25) / 6, abs=0.02)


def test_emulator_speech_updated_echoes_the_effective_output() -> None:
    e = Emu()
    e.run()
    e.send("speech.update", id="u1", output_audio={"codec": "opus", "speech_rate": 20})
    ((_, ack),) = e.run()
    assert ack["event_type"] == "speech.updated" and ack["id"] == "u1"
    out = ack["data"]["output_audio"]
    assert out["codec"] == "opus" and out["speech_rate"] == 20 and out["voice_id"]
    assert out["opus_config"] == {"bitrate": 48000, "use_cbr": False, "frame_size_ms": 10.0}


@pytest.mark.parametrize(
    ("output_audio", "path"),
    [
        ({"speech_rate": 101}, "data.output_audio.speech_rate"),
        ({"pcm_config": {"sample_rate": 12345}}, "data.output_audio.pcm_config.sample_rate"),
        ({"codec": "mp3"}, "data.output_audio.codec"),
        ({"context_texts": "be calm"}, "data.output_audio.context_texts"),
        ({"emotion_config": {"emotion": "bored"}}, "data.output_audio.emotion_config.emotion"),
    ],
)
def test_emulator_rejects_bad_config_with_4000_naming_the_field(
    output_audio: dict[str, Any], path: str
) -> None:
    e = Emu()
    e.run()
    e.send("speech.update", output_audio=output_audio)
    ((_, err),) = e.run()
    assert err["event_type"] == "error" and err["data"]["code"] == 4000
    assert path in err["data"]["msg"] and "speech.update" in err["data"]["msg"]
    assert err["detail"]["origin_message"]
    assert e.core.output_audio.codec == "pcm"  # unchanged


def test_emulator_refuses_more_than_1024_bytes_per_request_with_3010() -> None:
    e = Emu()
    e.run()
    e.send("input_text_buffer.append", delta="天" * 300)  # 900 bytes: fine
    e.send("input_text_buffer.append", delta="天" * 50)  # 1050 in the request
    ((_, err),) = e.run()
    assert err["data"]["code"] == 3010 and "1050 bytes" in err["data"]["msg"]
    e.send("input_text_buffer.complete")  # the text was discarded
    ((_, err),) = e.run()
    assert err["data"]["code"] == 4000
    e.send("input_text_buffer.append", delta="天" * 341)  # 1023 bytes: accepted
    e.send("input_text_buffer.complete")
    assert kinds(e.run())[-1] == "speech.audio.completed"


def test_emulator_serves_requests_one_after_another_on_one_connection() -> None:
    e = Emu()
    e.run()
    for text in ("First text.", "Second text."):
        e.send("input_text_buffer.append", delta=text)
        e.send("input_text_buffer.complete")
    frames = e.run()
    assert kinds(frames).count("input_text_buffer.completed") == 2
    completed = [i for i, k in enumerate(kinds(frames)) if k == "speech.audio.completed"]
    second_sub = [
        i for i, (_, f) in enumerate(frames) if f.get("data", {}).get("text") == "Second text."
    ]
    assert len(completed) == 2 and completed[0] < second_sub[0]
    assert e.core.requests == ["First text.", "Second text."]


def test_emulator_paces_frames_and_limit_config() -> None:
    e = Emu()
    e.run()
    pcm = {
        "sample_rate": 16000,
        "frame_size_ms": 50,
        "limit_config": {"period": 1, "max_frame_num": 22},
    }
    e.send("speech.update", output_audio={"pcm_config": pcm})
    e.run()
    text = "A long sentence with many many words to speak slowly. " * 4
    e.send("input_text_buffer.append", delta=text)
    e.send("input_text_buffer.complete")
    frames = [(t, f) for t, f in e.run() if f["event_type"] == "speech.audio.update"]
    sizes = {len(base64.b64decode(f["data"]["delta"])) for _, f in frames}
    assert sizes == {1600}  # 50 ms at 16 kHz
    first = frames[0][0]
    windows: dict[int, int] = {}
    for t, _ in frames:
        k = math.floor(t - first + 1e-9)
        windows[k] = windows.get(k, 0) + 1
    assert max(windows.values()) <= 22 and len(windows) >= 2


def test_emulator_counts_sentences_as_the_bot_splits_them() -> None:
    text = "One. Two! Three?"
    e = Emu(Timing(burst_speed=math.inf))
    e.run()
    e.send("input_text_buffer.append", delta=text)
    e.send("input_text_buffer.complete")
    subs = [f["data"]["text"] for _, f in e.run() if "sentence_start" in f["event_type"]]
    assert subs == split_sentences(text)


def test_emulator_reports_unknown_and_malformed_frames() -> None:
    e = Emu()
    e.run()
    e.core.receive("not json", e.now)
    e.send("chat.update")
    e.core.receive(b"\x00", e.now)
    errs = [f for _, f in e.run()]
    assert all(f["event_type"] == "error" and f["data"]["code"] == 4000 for f in errs)
    assert "unknown event type: chat.update" in errs[1]["data"]["msg"]
