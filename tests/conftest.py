"""Shared fixtures: the speech fixture WAVs in ``var/fixtures`` (see :mod:`voicegw.speech`).

The files are made by ``scripts/setup``. When some are missing, the ``fixtures_dir`` fixture
writes them with espeak-ng and sox; when those programs are not installed, the tests that need
the files fail (they do not skip) with a message that says to run ``scripts/setup``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray

from voicegw import speech
from voicegw.errors import VoiceGatewayError

__all__ = [
    "FIXTURES_DIR",
    "REPO_ROOT",
    "fixtures_dir",
    "load_fixture",
    "short16k",
    "speech8k",
    "speech16k",
    "speech24k",
    "speech48k_stereo",
]

# PortAudio is built with JACK on Debian; do not let a test start a JACK server.
os.environ.setdefault("JACK_NO_START_SERVER", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "var" / "fixtures"

Audio = tuple[NDArray[np.int16], int]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder holding every file in :data:`voicegw.speech.FIXTURES`, generated if needed."""
    missing = speech.missing_fixtures(FIXTURES_DIR)
    if not missing:
        return FIXTURES_DIR
    absent = [
        program
        for program, present in (
            ("espeak-ng", speech.espeak_available()),
            ("sox", speech.sox_available()),
        )
        if not present
    ]
    if absent:
        pytest.fail(
            f"speech fixtures {', '.join(missing)} are missing from {FIXTURES_DIR} and cannot "
            f"be generated: not installed: {', '.join(absent)}. Run scripts/setup "
            "(it installs espeak-ng and sox with apt and writes var/fixtures).",
            pytrace=False,
        )
    try:
        speech.write_fixtures(FIXTURES_DIR)
    except VoiceGatewayError as exc:
        pytest.fail(f"could not generate the speech fixtures: {exc}", pytrace=False)
    return FIXTURES_DIR


def load_fixture(directory: Path, name: str) -> Audio:
    """Read fixture ``name`` as int16 ``(samples, rate)``; stereo files give ``(n, 2)`` arrays.

    The array is read-only: fixtures are shared by the whole session, so a test that wants to
    change samples must copy them first.
    """
    samples, rate = sf.read(str(directory / name), dtype="int16", always_2d=False)
    samples.flags.writeable = False
    return samples, int(rate)


@pytest.fixture(scope="session")
def speech16k(fixtures_dir: Path) -> Audio:
    """The long sentence at 16 kHz mono, with 1 s of digital silence on both ends."""
    return load_fixture(fixtures_dir, "speech16k.wav")


@pytest.fixture(scope="session")
def speech24k(fixtures_dir: Path) -> Audio:
    """The long sentence at 24 kHz mono, with 1 s of digital silence on both ends."""
    return load_fixture(fixtures_dir, "speech24k.wav")


@pytest.fixture(scope="session")
def speech8k(fixtures_dir: Path) -> Audio:
    """The long sentence at 8 kHz mono, with 1 s of digital silence on both ends."""
    return load_fixture(fixtures_dir, "speech8k.wav")


@pytest.fixture(scope="session")
def speech48k_stereo(fixtures_dir: Path) -> Audio:
    """The long sentence at 48 kHz, shape ``(n, 2)``: left full level, right at half amplitude."""
    return load_fixture(fixtures_dir, "speech48k_stereo.wav")


@pytest.fixture(scope="session")
def short16k(fixtures_dir: Path) -> Audio:
    """The short question ("What time is it?") at 16 kHz mono, 1 s of silence on both ends."""
    return load_fixture(fixtures_dir, "short16k.wav")
