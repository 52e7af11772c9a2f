"""Input audio decoding (spec 2.2.1, 2.5.1) and the bots."""

from __future__ import annotations

import io
import json
import logging
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray
from test_emulator_harness import Harness, tone

from voicegw.codecs import get_codec
from voicegw.emulator import bots
from voicegw.emulator.bots import (
    TONE_RATE,
    EspeakBot,
    ScriptBot,
    ToneBot,
    ToolRequest,
    UserTurn,
    bot_factory,
    load_script,
    parse_tool_command,
)
from voicegw.emulator.inbound import WAV_FORMAT_ERROR, InputDecoder, parse_wav_header
from voicegw.errors import CodecError, ConfigError
from voicegw.protocol.objects import InputAudio

Audio = tuple[NDArray[np.int16], int]


def decoder(**cfg: object) -> InputDecoder:
    base: dict[str, object] = {
        "format": "pcm",
        "codec": "pcm",
        "sample_rate": 16000,
        "channel": 1,
        "bit_depth": 16,
    }
    return InputDecoder(InputAudio(**(base | cfg)))  # type: ignore[arg-type]


def feed_split(dec: InputDecoder, data: bytes, step: int) -> NDArray[np.int16]:
    return np.concatenate([dec.feed(data[i : i + step]) for i in range(0, len(data), step)])


SIGNAL = tone(0.1, 16000, level=0.5)


def test_pcm16_mono_survives_any_split() -> None:
    raw = SIGNAL.astype("<i2").tobytes()
    assert np.array_equal(feed_split(decoder(), raw, 333), SIGNAL)


def test_pcm24_and_pcm8_little_endian() -> None:
    s24 = np.zeros((SIGNAL.shape[0], 3), dtype=np.uint8)
    s24[:, 1:] = SIGNAL.astype("<i2").view(np.uint8).reshape(-1, 2)
    assert np.array_equal(feed_split(decoder(bit_depth=24), s24.tobytes(), 7), SIGNAL)
    u8 = ((SIGNAL.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()  # WAVE-style unsigned
    got = feed_split(decoder(bit_depth=8), u8, 5)
    assert np.abs(got.astype(np.int32) - SIGNAL).max() < 256


def test_stereo_is_mixed_to_mono() -> None:
    stereo = np.stack((SIGNAL, SIGNAL // 2), axis=1)
    got = decoder(channel=2).feed(stereo.astype("<i2").tobytes())
    expected = (SIGNAL.astype(np.int32) + SIGNAL // 2) // 2
    assert np.abs(got - expected).max() <= 1


def test_g711_input_matches_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    pcm = tone(0.1, 8000, level=0.5).astype("<i2").tobytes()
    for law, enc, dec in (
        ("g711a", audioop.lin2alaw, audioop.alaw2lin),
        ("g711u", audioop.lin2ulaw, audioop.ulaw2lin),
    ):
        d = decoder(codec=law, sample_rate=8000)
        got = d.feed(enc(pcm, 2))
        assert d.rate == 8000
        assert np.array_equal(got, np.frombuffer(dec(enc(pcm, 2), 2), dtype="<i2"))


def test_opus_input_is_one_packet_per_append() -> None:
    enc = get_codec("opus", sample_rate=16000, frame_size_ms=20)
    d = decoder(codec="opus")
    out = [d.feed(enc.encode(tone(0.02, 16000, level=0.5))) for _ in range(10)]
    assert [o.shape[0] for o in out] == [320] * 10
    with pytest.raises(CodecError):
        d.feed(b"\xff" * 3)


def wav_bytes(samples: NDArray[np.int16], rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    # soundfile stores int16 data in a float file unscaled; give it [-1, 1) floats instead
    data = samples.astype(np.float32) / 32768 if subtype == "FLOAT" else samples
    sf.write(buf, data, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_16", 0), ("PCM_24", 0), ("FLOAT", 1), ("ALAW", 1200), ("ULAW", 1200)],
)
def test_wav_streams_decode_by_their_header(subtype: str, tolerance: int) -> None:
    wav = wav_bytes(SIGNAL, 22050, subtype)
    d = decoder(format="wav", sample_rate=24000)
    got = feed_split(d, wav, 5)
    assert d.rate == 22050 and d.invalid is None
    assert np.abs(got.astype(np.int32) - SIGNAL).max() <= tolerance


def test_wav_header_with_extra_chunks_and_streaming_sizes() -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    header = (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"LIST"
        + struct.pack("<I", 3)
        + b"abc\x00"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )
    for cut in range(len(header)):
        assert parse_wav_header(header[:cut]) is None
    parsed = parse_wav_header(header + b"\x01\x00")
    assert parsed is not None and parsed[1] == len(header) and parsed[0].rate == 16000
    with pytest.raises(CodecError):
        parse_wav_header(b"RIFF\x00\x00\x00\x00AVI LIST")


def test_raw_bytes_under_wav_are_flagged_but_still_audible() -> None:
    d = decoder(format="wav")
    got = d.feed(SIGNAL.astype("<i2").tobytes())
    assert d.invalid == WAV_FORMAT_ERROR and np.array_equal(got, SIGNAL)
    d.feed(wav_bytes(SIGNAL, 16000))  # a RIFF header starts a valid stream
    assert d.invalid is None


def transcript_seconds(frames: list[dict]) -> float:
    content = next(
        f["data"]["content"]
        for f in frames
        if f["event_type"] == "conversation.audio_transcript.completed"
    )
    return float(re.fullmatch(r"\((\d+\.\d\d) s of speech\)", content)[1])  # type: ignore[index]


def test_ptt_turn_with_g711u_input(speech8k: Audio) -> None:
    audioop = pytest.importorskip("audioop")
    samples, _rate = speech8k
    h = Harness()
    h.pump()
    h.update(
        {"input_audio": {"format": "pcm", "codec": "g711u", "sample_rate": 8000, "bit_depth": 8}}
    )
    data = audioop.lin2ulaw(samples.astype("<i2").tobytes(), 2)
    for i in range(0, len(data), 160):
        h.append(data[i : i + 160])
    h.send("input_audio_buffer.complete")
    assert transcript_seconds(h.run()) == pytest.approx(5.5, abs=0.15)


def test_ptt_turn_with_opus_input(speech16k: Audio) -> None:
    samples, rate = speech16k
    enc = get_codec("opus", sample_rate=rate, frame_size_ms=20)
    h = Harness()
    h.pump()
    h.update({"input_audio": {"format": "pcm", "codec": "opus", "sample_rate": rate}})
    frame = rate // 50
    for i in range(0, samples.shape[0] - frame + 1, frame):
        h.append(enc.encode(samples[i : i + frame]))
    h.send("input_audio_buffer.complete")
    assert transcript_seconds(h.run()) == pytest.approx(5.5, abs=0.15)


# ---------------------------------------------------------------- bots


def test_bot_factory_rejects_unknown_names_and_bad_scripts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown bot"):
        bot_factory("parrot")
    bad = {
        "missing.json": None,
        "notjson.json": "{",
        "empty.json": "[]",
        "noreply.json": json.dumps([{"transcript": "x"}]),
        "badtool.json": json.dumps([{"transcript": "x", "reply": "y", "tool_call": {"args": 1}}]),
    }
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError):
            bot_factory(f"script:{tmp_path / name}")


def test_script_bot_cycles_and_peeks(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            [{"transcript": "one", "reply": "First."}, {"transcript": "two", "reply": "Second."}]
        )
    )
    bot = ScriptBot(load_script(path))
    said = []
    for _ in range(3):
        said.append(bot.scripted_transcript())
        said.append(bot.reply(UserTurn("x", typed=True)).text)
    assert said == ["one", "First.", "two", "Second.", "one", "First."]


def test_tone_reply_scales_with_the_utterance() -> None:
    short = ToneBot().reply(UserTurn("(0.40 s of speech)", speech_s=0.4))
    long = ToneBot().reply(UserTurn("(4.00 s of speech)", speech_s=4.0))
    assert short.text == "Here is 1 tone for 0.4 seconds of speech."
    assert long.text == "Here are 10 tones for 4.0 seconds of speech."
    assert long.sentences[0].audio.shape[0] == 10 * short.sentences[0].audio.shape[0]


def test_espeak_bot_speaks_and_falls_back_to_tones(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from voicegw import speech

    if speech.espeak_available():
        (s,) = EspeakBot().speak("I heard 2.4 seconds of speech.")
        assert s.rate == 22050 and s.audio.shape[0] > 0.8 * 22050
    monkeypatch.setattr(speech, "espeak_available", lambda: False)
    monkeypatch.setattr(bots, "_espeak_warned", False)
    with caplog.at_level(logging.WARNING, logger="voicegw.emulator.bots"):
        first = EspeakBot().reply(UserTurn("hello", typed=True))
        EspeakBot().reply(UserTurn("again", typed=True))
    assert first.text == "You wrote: hello" and first.sentences[0].rate == TONE_RATE
    assert caplog.text.count("speaking with tones instead") == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('/tool lights {"on": true}', ToolRequest("lights", {"on": True})),
        ("/tool ping", ToolRequest("ping", {})),
        ("/tool echo hello world", ToolRequest("echo", {"input": "hello world"})),
        ("please /tool x", None),
        ("/toolbox", None),
    ],
)
def test_parse_tool_command(text: str, expected: ToolRequest | None) -> None:
    assert parse_tool_command(text) == expected
