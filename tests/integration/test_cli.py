"""The voicegw command line, run as a real process: demo, check-config, emulator + run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import MS, emulator_subprocess, write_file_config
from helpers import emulator_process as emulator_urls

REPO = Path(__file__).resolve().parents[2]
VOICEGW = [sys.executable, "-m", "voicegw"]
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}")


def run(
    args: list[str], *, env: dict[str, str] | None = None, timeout_ms: float = 60_000
) -> subprocess.CompletedProcess[str]:
    """Run ``voicegw ARGS``; the caller's COZE_API_TOKEN never leaks in, only ``env``'s."""
    full_env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    full_env.update(env or {})
    return subprocess.run(
        [*VOICEGW, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=timeout_ms * MS,
        check=False,
    )


def test_demo_runs_both_turns_and_prints_a_readable_timeline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = run(["demo", "--fast", "--out", str(out)], timeout_ms=120_000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert text.startswith("emulator listening on ws://127.0.0.1:")
    for needle in (
        "== ptt turn",
        "== server_vad turn",
        "> chat.update",
        "< chat.updated",
        "> input_audio_buffer.complete",
        "< input_audio_buffer.speech_started",
        "< conversation.audio.delta",
        "transcript :",
        "reply text :",
        "first reply audio received",
        "demo OK",
    ):
        assert needle in text, needle
    assert not BASE64_RUN.search(text), "the timeline must never print base64 audio"
    for mode in ("ptt", "server_vad"):
        wav = out / f"reply-{mode}.wav"
        assert f"reply WAV  : {wav}" in text
        assert wav.stat().st_size > 10_000


def test_demo_realtime_runs_a_room_over_webrtc(tmp_path: Path) -> None:
    proc = run(["demo", "--realtime", "--out", str(tmp_path)], timeout_ms=120_000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert text.startswith("emulator listening on ws://127.0.0.1:")
    for needle in (
        "== realtime ptt turn",
        "== realtime server_vad turn",
        "< session.created",
        "> session.update",
        "< conversation.created",
        "> input_audio_buffer.start",
        "> input_audio_buffer.complete",
        "< input_audio_buffer.completed",
        "< audio.user.speech_started",
        "< audio.agent.speech_started",
        "first reply audio received",
        "demo OK",
    ):
        assert needle in text, needle
    assert not BASE64_RUN.search(text)
    for mode in ("ptt", "server_vad"):
        assert (tmp_path / f"reply-{mode}.wav").stat().st_size > 10_000


@pytest.mark.parametrize("codec", ["opus", "mp3", "g711u"])
def test_demo_with_other_output_codecs(tmp_path: Path, codec: str) -> None:
    proc = run(
        ["demo", "--fast", "--modes", "ptt", "--codec", codec, "--out", str(tmp_path)],
        timeout_ms=120_000,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"output {codec}/" in proc.stdout


def test_check_config_accepts_the_example_and_names_a_bad_key(tmp_path: Path) -> None:
    ok = run(["check-config", str(REPO / "configs" / "voicegw.example.toml")])
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK")
    bad = tmp_path / "bad.toml"
    bad.write_text('[output]\ncodec = "g711a"\nsample_rate = 16000\n')
    proc = run(["check-config", str(bad)])
    assert proc.returncode == 2
    assert "output.sample_rate" in proc.stderr and "8000" in proc.stderr


@pytest.fixture
def emulator_process() -> Iterator[tuple[str, str]]:
    token = "tok-cli-test"
    with emulator_subprocess(token) as url:
        yield url, token


def test_run_against_the_emulator_process(
    emulator_process: tuple[str, str], tmp_path: Path, fixtures_dir: Path
) -> None:
    url, token = emulator_process
    cfg = write_file_config(tmp_path, url, fixtures_dir / "short16k.wav")
    proc = run(["run", "--config", str(cfg)], env={"COZE_API_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    assert "turn completed" in proc.stdout
    assert (tmp_path / "reply.wav").stat().st_size > 1000
    assert token not in proc.stdout + proc.stderr


def test_run_with_the_realtime_api(tmp_path: Path, fixtures_dir: Path) -> None:
    # cloud.api = "realtime": voicegw run creates a room on the emulator's HTTP API, joins it
    # over WebRTC and has the push-to-talk turn there.
    token = "tok-cli-realtime"
    with emulator_urls(token) as (url, api):
        cfg = write_file_config(tmp_path, url, fixtures_dir / "short16k.wav")
        text = cfg.read_text().replace(
            "[cloud]\n", f'[cloud]\napi = "realtime"\napi_url = "{api}"\n'
        )
        cfg.write_text(text.replace("realtime = false\n", ""))
        proc = run(["run", "--config", str(cfg)], env={"COZE_API_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    assert "turn completed" in proc.stdout
    assert (tmp_path / "reply.wav").stat().st_size > 1000
    assert token not in proc.stdout + proc.stderr


def test_run_exit_statuses(
    emulator_process: tuple[str, str], tmp_path: Path, fixtures_dir: Path
) -> None:
    url, _ = emulator_process
    cfg = write_file_config(tmp_path, url, fixtures_dir / "short16k.wav")
    no_token = run(["run", "--config", str(cfg)])
    assert no_token.returncode == 2 and "COZE_API_TOKEN" in no_token.stderr
    wrong = run(["run", "--config", str(cfg)], env={"COZE_API_TOKEN": "pat_wrong_token"})
    assert wrong.returncode == 4, wrong.stderr
    assert "401" in wrong.stderr and "pat_wrong_token" not in wrong.stderr
