"""``voicegw devices`` and ``voicegw doctor`` as processes, on ALSA file devices."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).parent / "alsa" / "asound-file.conf"
TOKEN = "pat_" + "a1B2" * 8


@pytest.fixture(scope="module")
def alsa_env(
    tmp_path_factory: pytest.TempPathFactory,
    speech16k: tuple[NDArray[np.int16], int],
    speech48k_stereo: tuple[NDArray[np.int16], int],
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("alsa-cli")
    (tmp / "c16.raw").write_bytes(speech16k[0].astype("<i2").tobytes())
    (tmp / "c48.raw").write_bytes(np.ascontiguousarray(speech48k_stereo[0], "<i2").tobytes())
    conf = tmp / "asound.conf"
    conf.write_text(
        string.Template(TEMPLATE.read_text()).substitute(
            capture16k=tmp / "c16.raw", capture48k=tmp / "c48.raw", playback=tmp / "out.raw"
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    env.update(ALSA_CONFIG_PATH=str(conf), JACK_NO_START_SERVER="1")
    return env


def voicegw(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicegw", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60_000 * MS,
        check=False,
    )


@pytest.fixture
def emulator_url(alsa_env: dict[str, str]) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicegw", "emulator", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=alsa_env,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip().removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(timeout=10_000 * MS)


def test_devices_lists_cards_with_their_api_rates(alsa_env: dict[str, str]) -> None:
    proc = voicegw(["devices"], alsa_env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "input devices:" in out and "output devices:" in out
    assert "'vcap48'" in out and "'vplay'" in out
    assert "16000" in out and "48000" in out


def config(tmp_path: Path, url: str, source: str = "vcap", sink: str = "vplay") -> Path:
    path = tmp_path / "doctor.toml"
    path.write_text(
        f'[cloud]\nurl = "{url}"\nbot_id = "7000000000000000001"\n'
        f'[audio]\nsource = "{source}"\nsink = "{sink}"\n'
    )
    return path


def test_doctor_passes_every_check(
    alsa_env: dict[str, str], emulator_url: str, tmp_path: Path
) -> None:
    env = {**alsa_env, "COZE_API_TOKEN": TOKEN}
    # The fixture opens with 1 s of digital silence: listen past it.
    proc = voicegw(
        ["doctor", "--config", str(config(tmp_path, emulator_url)), "--seconds", "2"], env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for check in ("config", "token", "microphone", "speaker", "service"):
        assert f"PASS  {check}" in proc.stdout, proc.stdout
    assert "dBFS |" in proc.stdout  # the live level meter
    assert TOKEN not in proc.stdout + proc.stderr


def test_doctor_explains_failures(
    alsa_env: dict[str, str], emulator_url: str, tmp_path: Path
) -> None:
    cfg = config(tmp_path, emulator_url, source="no-such-mic")
    proc = voicegw(["doctor", "--config", str(cfg), "--seconds", "1"], alsa_env)
    assert proc.returncode == 1
    assert "FAIL  token" in proc.stdout and "COZE_API_TOKEN" in proc.stdout
    assert "FAIL  microphone" in proc.stdout and "no-such-mic" in proc.stdout
    assert "voicegw devices" in proc.stdout  # what to do about it
    bad = {**alsa_env, "COZE_API_TOKEN": "pat_" + "z" * 30}
    proc = voicegw(
        ["doctor", "--config", str(config(tmp_path, emulator_url)), "--seconds", "1"], bad
    )
    assert "FAIL  service" in proc.stdout and "token was refused" in proc.stdout
