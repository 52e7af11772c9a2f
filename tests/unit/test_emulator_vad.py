"""Energy VAD and the server/semantic VAD turns, timed on the audio timeline (spec 2.6.4-2.6.6)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from test_emulator_harness import Frame, Harness, audio_of, tone, types

from voicegw.emulator.vad import EnergyVad, SpeechEnd, SpeechStart, find_speech, level_dbfs

Audio = tuple[NDArray[np.int16], int]
RATE = 16000


def silence(seconds: float) -> NDArray[np.int16]:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def burst(lead: float, speech: float, tail: float) -> NDArray[np.int16]:
    return np.concatenate((silence(lead), tone(speech, RATE), silence(tail)))


# ---------------------------------------------------------------- the pure VAD


def test_level_dbfs() -> None:
    assert level_dbfs(silence(0.01)) == -np.inf
    full = np.full(160, 32767, dtype=np.int16)
    assert level_dbfs(full) == pytest.approx(0.0, abs=0.01)
    assert level_dbfs(tone(0.1, level=0.1)) == pytest.approx(-23.0, abs=0.1)  # -20 dB, sine -3 dB


def test_onset_and_end_positions_on_the_sample_timeline() -> None:
    vad = EnergyVad(RATE, end_silence_ms=500)
    events = []
    audio = burst(1.0, 1.5, 1.0)
    for i in range(0, audio.shape[0], 123):  # chunking must not matter
        events += vad.feed(audio[i : i + 123])
    assert events == [
        SpeechStart(onset=16000, at=16000 + 480),  # confirmed after 30 ms of speech
        SpeechEnd(onset=16000, end=40000, at=40000 + 8000),
    ]


def test_short_clicks_do_not_start_speech() -> None:
    vad = EnergyVad(RATE)
    clicks = np.concatenate([np.concatenate((tone(0.02), silence(0.2))) for _ in range(5)])
    assert vad.feed(clicks) == []


def test_pauses_shorter_than_the_silence_do_not_end_the_utterance() -> None:
    vad = EnergyVad(RATE, end_silence_ms=500)
    audio = np.concatenate((tone(0.5), silence(0.4), tone(0.5), silence(0.6)))
    ends = [e for e in vad.feed(audio) if isinstance(e, SpeechEnd)]
    assert ends == [SpeechEnd(0, 22400, 30400)]


def test_find_speech_on_real_speech(speech16k: Audio) -> None:
    samples, rate = speech16k
    onset, end = find_speech(samples, rate)  # type: ignore[misc]
    assert onset / rate == pytest.approx(1.012, abs=0.02)
    assert end / rate == pytest.approx(6.52, abs=0.03)
    assert find_speech(silence(2.0), RATE) is None


# ---------------------------------------------------------------- server_vad turns


def vad_session(bot: str = "echo", **td: object) -> Harness:
    h = Harness(bot)
    h.pump()
    h.update(
        {
            "input_audio": {"format": "pcm", "codec": "pcm", "sample_rate": RATE},
            "output_audio": {"codec": "pcm", "pcm_config": {"sample_rate": RATE}},
            "turn_detection": {"type": "server_vad", **td},
        }
    )
    return h


def first_position(steps: list[tuple[float, list[Frame]]], event_type: str) -> float:
    return next(pos for pos, frames in steps if event_type in types(frames))


def test_speech_started_and_stopped_follow_the_audio_not_the_clock() -> None:
    h = vad_session(silence_duration_ms=500)
    steps = h.stream(burst(1.0, 1.5, 1.0), RATE, chunk_ms=20)  # all at one instant
    assert first_position(steps, "input_audio_buffer.speech_started") == pytest.approx(1.04)
    assert first_position(steps, "input_audio_buffer.speech_stopped") == pytest.approx(3.0)
    h2 = vad_session(silence_duration_ms=800)
    steps = h2.stream(burst(1.0, 1.5, 1.0), RATE, chunk_ms=20, realtime=True)
    assert first_position(steps, "input_audio_buffer.speech_stopped") == pytest.approx(3.3)


@pytest.mark.parametrize(
    ("prefix_ms", "expected_s"), [(600, 2.1), (300, 1.8), (0, 1.5), (2000, 2.5)]
)
def test_committed_audio_is_prefix_plus_speech(prefix_ms: int, expected_s: float) -> None:
    h = vad_session(prefix_padding_ms=prefix_ms)
    h.stream(burst(1.0, 1.5, 1.0), RATE)
    frames = h.run()
    # the echo bot speaks back exactly what was committed (16 kHz in and out)
    assert len(audio_of(frames)) == round(expected_s * RATE) * 2


def test_server_vad_turn_order_with_real_speech(speech16k: Audio) -> None:
    h = vad_session()
    start = len(h.frames)
    h.stream(*speech16k, realtime=True)
    h.run()
    frames = h.frames[start:]
    kinds = types(frames)
    assert kinds[0] == "input_audio_buffer.speech_started"
    stop = kinds.index("input_audio_buffer.speech_stopped")
    assert set(kinds[1:stop]) == {"conversation.audio_transcript.update"}
    assert kinds[stop + 1 : stop + 4] == [
        "conversation.audio_transcript.completed",
        "conversation.message.completed",
        "conversation.chat.created",
    ]
    final = frames[stop + 1]["data"]["content"]
    speech_s = float(re.fullmatch(r"\((\d+\.\d\d) s of speech\)", final)[1])  # type: ignore[index]
    assert speech_s == pytest.approx(5.51, abs=0.05)
    assert len(audio_of(frames)) == pytest.approx((0.6 + speech_s) * RATE * 2, abs=2 * RATE * 0.011)
    assert kinds[-1] == "conversation.chat.completed"


def test_speech_during_a_reply_interrupts_it_with_code_1(short16k: Audio) -> None:
    h = vad_session()
    h.say("tell me a long story please")
    h.until("conversation.audio.delta")
    old_chat = h.frames[-1]["data"]["chat_id"]
    steps = h.stream(*short16k)
    started = next(
        frames for _, frames in steps if "input_audio_buffer.speech_started" in types(frames)
    )
    assert types(started) == ["input_audio_buffer.speech_started", "conversation.chat.canceled"]
    assert started[1]["data"]["code"] == 1
    later = [f for _, frames in steps for f in frames] + h.run()
    assert all(
        f["data"]["chat_id"] != old_chat
        for f in later
        if f["event_type"] == "conversation.audio.delta"
    )
    assert types(later)[-1] == "conversation.chat.completed"


def test_speech_started_does_not_cancel_when_nothing_is_playing(short16k: Audio) -> None:
    h = vad_session()
    h.stream(*short16k)
    assert "conversation.chat.canceled" not in types(h.run())


def test_wav_default_in_server_vad_fails_at_onset(short16k: Audio) -> None:
    h = Harness()
    h.pump()
    h.update({"turn_detection": {"type": "server_vad"}})  # input format stays "wav"
    samples, _ = short16k
    frames = [f for _, fs in h.stream(samples, 24000) for f in fs] + h.run()  # raw, 24 kHz default
    assert types(frames) == ["error"]
    assert frames[0]["data"]["msg"].startswith("The parameter audio is invalid.")


# ---------------------------------------------------------------- keyword barge-in ([DOC:KW])


def script(tmp_path: Path, *transcripts: str) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"transcript": t, "reply": "Okay."} for t in transcripts]))
    return f"script:{path}"


def test_keyword_mode_ignores_plain_speech_during_a_reply(short16k: Audio) -> None:
    h = vad_session(interrupt_config={"mode": "keyword_contains", "keywords": ["hey lamp"]})
    h.say("tell me a long story please")
    h.until("conversation.audio.delta")
    frames = [f for _, fs in h.stream(*short16k) for f in fs]
    assert "input_audio_buffer.speech_started" in types(frames)
    assert "conversation.chat.canceled" not in types(frames)
    assert types(frames)[-2:] == [
        "input_audio_buffer.speech_stopped",
        "conversation.audio_transcript.completed",
    ]
    rest = h.run()
    assert types(rest).count("conversation.chat.completed") == 1  # the old reply only
    assert "conversation.chat.created" not in types(rest)


@pytest.mark.parametrize(
    ("mode", "transcript", "interrupts"),
    [
        ("keyword_contains", "well hey lamp stop", True),
        ("keyword_prefix", "hey lamp stop", True),
        ("keyword_prefix", "well hey lamp stop", False),
        ("keyword_contains", "please stop talking", False),
    ],
)
def test_keyword_mode_interrupts_on_a_matching_transcript(
    tmp_path: Path, short16k: Audio, mode: str, transcript: str, interrupts: bool
) -> None:
    h = Harness(script(tmp_path, "tell me a story", transcript))
    h.pump()
    h.update(
        {
            "input_audio": {"format": "pcm", "codec": "pcm", "sample_rate": RATE},
            "turn_detection": {
                "type": "server_vad",
                "interrupt_config": {"mode": mode, "keywords": ["hey lamp"]},
            },
        }
    )
    h.say("tell me a story")  # consumes the first scripted turn
    h.until("conversation.audio.delta")
    frames = [f for _, fs in h.stream(*short16k) for f in fs]
    canceled = [f for f in frames if f["event_type"] == "conversation.chat.canceled"]
    assert bool(canceled) is interrupts
    if interrupts:
        assert canceled[0]["data"]["code"] == 1
        before = types(frames)[: frames.index(canceled[0])]
        assert "conversation.audio_transcript.update" in before  # matched on an interim text
        after = frames[frames.index(canceled[0]) :] + h.run()
        assert types(after).count("conversation.chat.created") == 1


# ---------------------------------------------------------------- semantic_vad (2.6.5)


@pytest.mark.parametrize(
    ("transcript", "stop_after_ms"), [("Turn on the lights.", 300), ("turn on the", 800)]
)
def test_semantic_vad_waits_longer_for_unfinished_sentences(
    tmp_path: Path, transcript: str, stop_after_ms: int
) -> None:
    h = Harness(script(tmp_path, transcript))
    h.pump()
    h.update(
        {
            "input_audio": {"format": "pcm", "codec": "pcm", "sample_rate": RATE},
            "turn_detection": {"type": "semantic_vad"},
        }
    )
    steps = h.stream(burst(0.5, 1.0, 1.5), RATE, chunk_ms=10)
    stopped = first_position(steps, "input_audio_buffer.speech_stopped")
    assert stopped == pytest.approx(1.5 + stop_after_ms / 1000)
    done = [f for _, fs in steps for f in fs if f["event_type"].endswith("transcript.completed")]
    assert done[0]["data"]["content"] == transcript


def test_semantic_vad_custom_timings_and_unscripted_speech_is_finished() -> None:
    h = Harness()
    h.pump()
    h.update(
        {
            "input_audio": {"format": "pcm", "codec": "pcm", "sample_rate": RATE},
            "turn_detection": {
                "type": "semantic_vad",
                "semantic_vad_config": {
                    "silence_threshold_ms": 200,
                    "semantic_unfinished_wait_time_ms": 1000,
                },
            },
        }
    )
    steps = h.stream(burst(0.5, 1.0, 1.5), RATE, chunk_ms=10)
    assert first_position(steps, "input_audio_buffer.speech_stopped") == pytest.approx(1.7)


def test_interim_transcripts_reveal_scripted_words(tmp_path: Path) -> None:
    h = Harness(script(tmp_path, "please turn on all of the kitchen lights now"))
    h.pump()
    h.update(
        {
            "input_audio": {"format": "pcm", "codec": "pcm", "sample_rate": RATE},
            "turn_detection": {"type": "server_vad"},
        }
    )
    frames = [f for _, fs in h.stream(burst(0.2, 2.2, 0.8), RATE) for f in fs]
    updates = [
        f["data"]["content"]
        for f in frames
        if f["event_type"] == "conversation.audio_transcript.update"
    ]
    # 2.5 words per second of speech, the whole hypothesis each time
    assert updates == [
        "please turn",
        "please turn on",
        "please turn on all",
        "please turn on all of",
    ]
    done = [f for f in frames if f["event_type"] == "conversation.audio_transcript.completed"]
    assert done[0]["data"]["content"] == "please turn on all of the kitchen lights now"
