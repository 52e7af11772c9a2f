"""The speech fixtures and espeak-ng helpers in voicegw.speech, and scripts/setup's idempotence."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import MS
from numpy.typing import NDArray

from voicegw import speech
from voicegw.errors import VoiceGatewayError

REPO_ROOT = Path(__file__).resolve().parents[2]

Audio = tuple[NDArray[np.int16], int]


def rms(x: NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# -- the fixture files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(speech.FIXTURES))
def test_fixture_file_format(fixtures_dir: Path, name: str) -> None:
    spec = speech.FIXTURES[name]
    info = sf.info(str(fixtures_dir / name))
    assert (info.format, info.subtype) == ("WAV", "PCM_16")
    assert info.samplerate == spec.rate
    assert info.channels == spec.channels


def test_speech16k_is_16khz_mono_int16(speech16k: Audio) -> None:
    samples, rate = speech16k
    assert rate == 16000
    assert samples.dtype == np.int16
    assert samples.ndim == 1


def test_padding_is_digital_silence(speech16k: Audio) -> None:
    samples, rate = speech16k
    # sox -D: no dither, so the 1 s pads are exactly zero rather than +-1 LSB noise.
    assert np.count_nonzero(samples[:rate]) == 0
    assert np.count_nonzero(samples[-rate:]) == 0
    assert samples[rate : rate + rate // 10].any(), "speech should start right after the pad"


def test_speech_has_energy_in_the_middle(speech16k: Audio) -> None:
    samples, rate = speech16k
    middle = samples[int(1.5 * rate) : int(6.0 * rate)]
    assert rms(middle) > 1000  # about -30 dBFS; espeak-ng speaks at about -21 dBFS
    for second in range(1, 6):
        assert rms(samples[second * rate : (second + 1) * rate]) > 300, f"quiet at {second} s"


@pytest.mark.parametrize("name", ["speech8k.wav", "speech16k.wav", "speech24k.wav"])
def test_duration_is_espeak_output_plus_two_seconds(fixtures_dir: Path, name: str) -> None:
    raw, raw_rate = speech.synthesize(speech.FIXTURE_SENTENCES[0])
    info = sf.info(str(fixtures_dir / name))
    expected = round(len(raw) * info.samplerate / raw_rate) + 2 * info.samplerate
    assert abs(info.frames - expected) <= 1


def test_stereo_fixture_right_channel_is_half_the_left(speech48k_stereo: Audio) -> None:
    samples, rate = speech48k_stereo
    assert rate == 48000
    assert samples.shape[1] == 2
    left = samples[:, 0].astype(np.int32)
    right = samples[:, 1].astype(np.int32)
    assert np.abs(left - 2 * right).max() <= 1
    assert np.count_nonzero(samples[:rate]) == 0


def test_short_fixture_is_short(short16k: Audio, speech16k: Audio) -> None:
    samples, rate = short16k
    assert rate == 16000
    assert 2.5 * rate < len(samples) < len(speech16k[0])
    assert np.count_nonzero(samples[:rate]) == 0


def test_fixture_arrays_are_read_only(speech16k: Audio) -> None:
    with pytest.raises(ValueError):
        speech16k[0][0] = 1


# -- synthesize / make_fixture -------------------------------------------------------------


def test_synthesize_returns_22050_hz_speech() -> None:
    samples, rate = speech.synthesize("What time is it?")
    assert rate == speech.ESPEAK_RATE == 22050
    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert 0.5 * rate < len(samples) < 3 * rate
    assert rms(samples) > 500


def test_synthesize_unknown_voice_raises() -> None:
    with pytest.raises(VoiceGatewayError, match="espeak-ng failed"):
        speech.synthesize("hello", voice="xx-nonexistent")


def test_missing_program_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not speech.espeak_available()
    with pytest.raises(VoiceGatewayError, match=r"apt-get install espeak-ng"):
        speech.synthesize("hello")
    with pytest.raises(VoiceGatewayError, match=r"espeak-ng is not installed"):
        speech.make_fixture(Path("unused.wav"), "hello")


def test_make_fixture_pad_and_rate(tmp_path: Path) -> None:
    out = speech.make_fixture(tmp_path / "sub" / "x.wav", "Stop.", rate=8000, pad_s=0.25)
    samples, rate = sf.read(str(out), dtype="int16")
    assert rate == 8000
    assert np.count_nonzero(samples[:2000]) == 0
    assert np.count_nonzero(samples[-2000:]) == 0
    assert samples.any()
    assert [p.name for p in out.parent.iterdir()] == ["x.wav"], "no temporary file left behind"


# -- scripts/setup -------------------------------------------------------------------------


def test_setup_lists_the_same_fixture_files() -> None:
    text = (REPO_ROOT / "scripts" / "setup").read_text()
    match = re.search(r"^FIXTURE_FILES=\((.*)\)$", text, re.MULTILINE)
    assert match, "FIXTURE_FILES=(...) not found in scripts/setup"
    assert match.group(1).split() == list(speech.FIXTURES)


def test_setup_is_silent_when_everything_is_installed(fixtures_dir: Path) -> None:
    if not (REPO_ROOT / ".venv" / ".voicegw-setup-stamp").is_file():
        pytest.skip("scripts/setup has not completed in this checkout (scripts/test runs it)")
    env = {**os.environ, "CI": "true"}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "setup")],
        cwd="/",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60_000 * MS,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
