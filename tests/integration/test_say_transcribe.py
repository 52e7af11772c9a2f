"""``voicegw say`` and ``voicegw transcribe`` run as processes against the emulator process,
with a WAV-file speaker and microphone (the ``[audio]`` config of ``voicegw run``)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import MS, REPO, emulator_subprocess, write_file_config
from numpy.typing import NDArray

from voicegw.emulator.asr import describe_speech
from voicegw.emulator.bots import split_sentences, tone_voice
from voicegw.emulator.vad import find_speech
from voicegw.protocol.tts import MAX_TEXT_BYTES, split_text, utf8_len

Audio = tuple[NDArray[np.int16], int]
TOKEN = "pat_say-token"


def run(
    args: list[str], *, token: str = TOKEN, stdin: str | None = None, timeout_ms: float = 60_000
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    env["COZE_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "voicegw", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout_ms * MS,
        check=False,
    )


def spoken(text: str) -> NDArray[np.int16]:
    """What the emulator's tone voice says for ``text`` (24 kHz, the default output)."""
    parts = [tone_voice(s).audio for piece in split_text(text) for s in split_sentences(piece)]
    return np.concatenate(parts)


def reply(tmp_path: Path) -> NDArray[np.int16]:
    samples, rate = sf.read(str(tmp_path / "reply.wav"), dtype="int16")
    assert rate == 24000
    return samples  # type: ignore[no-any-return]


@pytest.fixture
def emulator_url() -> Iterator[str]:
    with emulator_subprocess(TOKEN, bot="tone") as url:
        yield url


def config(tmp_path: Path, url: str, fixtures_dir: Path) -> Path:
    return write_file_config(tmp_path, url, fixtures_dir / "speech16k.wav")


# ---------------------------------------------------------------- say


def test_say_speaks_the_text_on_the_configured_speaker(
    tmp_path: Path, emulator_url: str, fixtures_dir: Path
) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)
    text = "Good morning. The kitchen lights are on."
    proc = run(["say", "--config", str(cfg), text, "--subtitles"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Good morning.", "The kitchen lights are on."]
    assert np.array_equal(reply(tmp_path), spoken(text))
    assert TOKEN not in proc.stdout + proc.stderr


def test_say_a_file_over_1024_bytes_in_several_requests(
    tmp_path: Path, emulator_url: str, fixtures_dir: Path
) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)
    text = "".join(f"第{i}号通知：今天下午三点在会议室开会，请大家准时参加。" for i in range(40))
    assert utf8_len(text) > 2 * MAX_TEXT_BYTES
    notice = tmp_path / "notice.txt"
    notice.write_text(text, encoding="utf-8")
    proc = run(["say", "--config", str(cfg), "--file", str(notice)])
    assert proc.returncode == 0, proc.stderr
    assert len(split_text(text)) >= 3
    assert np.array_equal(reply(tmp_path), spoken(text))


@pytest.mark.parametrize("args", [["-"], []])
def test_say_reads_standard_input(
    tmp_path: Path, emulator_url: str, fixtures_dir: Path, args: list[str]
) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)
    proc = run(["say", "--config", str(cfg), *args], stdin="Piped text works.\n")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(reply(tmp_path), spoken("Piped text works."))


def test_say_exit_statuses(tmp_path: Path, emulator_url: str, fixtures_dir: Path) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)
    proc = run(["say", "--config", str(cfg), "Hi."], token="wrong")
    assert proc.returncode == 4 and "HTTP 401" in proc.stderr and "wrong" not in proc.stderr
    proc = run(["say", "--config", str(cfg), "   "])
    assert proc.returncode == 2 and "nothing to say" in proc.stderr
    proc = run(["say", "--config", str(tmp_path / "missing.toml"), "Hi."])
    assert proc.returncode == 2
    proc = run(["say", "--config", str(cfg), "Hi.", "--speech-rate", "500"])
    assert proc.returncode == 2 and "output_audio.speech_rate" in proc.stderr
    bad_sink = cfg.read_text().replace(str(tmp_path / "reply.wav"), "/proc/voicegw/x.wav")
    (tmp_path / "bad_sink.toml").write_text(bad_sink)
    proc = run(["say", "--config", str(tmp_path / "bad_sink.toml"), "Hi."])
    assert proc.returncode == 5 and "speaker" in proc.stderr
    closed = cfg.read_text().replace(emulator_url, "ws://127.0.0.1:9")
    (tmp_path / "closed.toml").write_text(closed)
    proc = run(["say", "--config", str(tmp_path / "closed.toml"), "Hi."])
    assert proc.returncode == 3 and "cannot connect" in proc.stderr


# ---------------------------------------------------------------- transcribe


def test_transcribe_a_wav_file_prints_interims_then_the_final_text(
    tmp_path: Path, emulator_url: str, fixtures_dir: Path, speech16k: Audio
) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)
    proc = run(["transcribe", "--config", str(cfg), "--wav", str(fixtures_dir / "speech16k.wav")])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    samples, rate = speech16k
    onset, end = find_speech(samples, rate)  # type: ignore[misc]
    final = describe_speech((end - onset) / rate)
    assert lines[0] == "[partial] (0.50 s of speech)"
    assert all(line.startswith("[partial] ") for line in lines[:-1]) and len(lines) > 10
    assert lines[-1] == final


def test_transcribe_the_configured_microphone_for_some_seconds(
    tmp_path: Path, emulator_url: str, fixtures_dir: Path, speech16k: Audio
) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)  # audio.source is the speech fixture
    proc = run(["transcribe", "--config", str(cfg), "--seconds", "2"])
    assert proc.returncode == 0, proc.stderr
    samples, rate = speech16k
    onset, end = find_speech(samples[: 2 * rate], rate)  # type: ignore[misc]
    assert proc.stdout.splitlines()[-1] == describe_speech((end - onset) / rate)


def test_ctrl_c_stops_the_microphone_and_prints_the_final_text(
    tmp_path: Path, emulator_url: str, fixtures_dir: Path
) -> None:
    cfg = config(tmp_path, emulator_url, fixtures_dir)
    cfg.write_text(cfg.read_text().replace("realtime = false", "realtime = true"))
    env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    env["COZE_API_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegw", "transcribe", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30_000 * MS)
        assert ready, "no interim transcript within 30 s"
        first = proc.stdout.readline()  # the first interim: the mic is streaming in real time
        assert first.startswith("[partial] "), first
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30_000 * MS)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    final = rest.splitlines()[-1]
    assert final.startswith("(") and final.endswith(" s of speech)")
    assert float(final[1:].split()[0]) < 5.0  # stopped before the 5.5 s sentence ended


def test_transcribe_hears_a_script(tmp_path: Path, fixtures_dir: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"transcript": "What time is it?", "reply": "Noon."}]))
    with emulator_subprocess(TOKEN, bot=f"script:{script}") as url:
        cfg = config(tmp_path, url, fixtures_dir)
        wav = fixtures_dir / "short16k.wav"
        proc = run(["transcribe", "--config", str(cfg), "--wav", str(wav)])
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[-1] == "What time is it?"
        proc = run(["transcribe", "--config", str(cfg), "--wav", str(wav)], token="bad")
        assert proc.returncode == 4
