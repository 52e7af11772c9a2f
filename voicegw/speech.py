"""Spoken test audio made with espeak-ng and sox: the speech fixtures and ad-hoc sentences.

Everything here is synchronous and runs two external programs from Debian packages:
``espeak-ng`` (package ``espeak-ng``) speaks text as a 22050 Hz mono WAV, and ``sox``
(package ``sox``) converts it to the wanted rate and channel count and pads it with silence.
``scripts/setup`` installs both.

The fixtures follow one recipe::

    espeak-ng -v en-us -s 150 -w raw.wav "TEXT"
    sox -D raw.wav -r RATE -c 1 -b 16 out.wav rate RATE pad PAD PAD

``-D`` turns dithering off, so the padding is digital silence (every sample exactly 0): with
dither, about a quarter of the "silent" samples would be +-1 LSB. Naming the ``rate`` effect
before ``pad`` keeps the resampler's ringing out of the padding too. Files are written to a
temporary name in the target folder and renamed into place, so an interrupted run never
leaves a truncated fixture behind.

Run ``python -m voicegw.speech [OUTDIR] [--force]`` (``scripts/make-fixtures``) to write the
files listed in :data:`FIXTURES` into ``OUTDIR`` (default ``var/fixtures``).
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from .errors import VoiceGatewayError

__all__ = [
    "ESPEAK_RATE",
    "FIXTURES",
    "FIXTURE_SENTENCES",
    "FixtureSpec",
    "espeak_available",
    "main",
    "make_fixture",
    "missing_fixtures",
    "sox_available",
    "synthesize",
    "write_fixtures",
]

#: Sample rate of espeak-ng's WAV output, in Hz.
ESPEAK_RATE: Final = 22050

#: The sentences the fixtures speak: a long one (about 5.9 s) and a short question (about 1 s).
FIXTURE_SENTENCES: Final = (
    "Hello, this is a test of the realtime voice gateway. Please turn on the kitchen lights.",
    "What time is it?",
)

#: Debian package that provides each external program, for error messages.
_PACKAGES: Final = {"espeak-ng": "espeak-ng", "sox": "sox"}

#: Upper bound on one espeak-ng or sox run, in seconds; both take well under a second.
_RUN_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class FixtureSpec:
    """How one fixture file is made.

    Attributes:
        text: the sentence espeak-ng speaks.
        rate: sample rate of the file, in Hz.
        channels: 1, or 2 for a stereo file whose left channel is the speech and whose right
            channel is the same speech at half amplitude (-6 dB), so a test can tell which
            channel was selected.
        pad_s: seconds of digital silence before and after the speech.
    """

    text: str
    rate: int
    channels: int = 1
    pad_s: float = 1.0


#: The fixture files ``scripts/setup`` generates, by file name (16-bit PCM WAV each).
#: ``scripts/setup`` lists the same names in ``FIXTURE_FILES``; a unit test keeps them in step.
FIXTURES: Final[Mapping[str, FixtureSpec]] = {
    "speech16k.wav": FixtureSpec(FIXTURE_SENTENCES[0], 16000),
    "speech24k.wav": FixtureSpec(FIXTURE_SENTENCES[0], 24000),
    "speech8k.wav": FixtureSpec(FIXTURE_SENTENCES[0], 8000),
    "speech48k_stereo.wav": FixtureSpec(FIXTURE_SENTENCES[0], 48000, channels=2),
    "short16k.wav": FixtureSpec(FIXTURE_SENTENCES[1], 16000),
}


def espeak_available() -> bool:
    """Return whether ``espeak-ng`` is on ``PATH``."""
    return shutil.which("espeak-ng") is not None


def sox_available() -> bool:
    """Return whether ``sox`` is on ``PATH``."""
    return shutil.which("sox") is not None


def synthesize(text: str, *, voice: str = "en-us", wpm: int = 150) -> tuple[NDArray[np.int16], int]:
    """Speak ``text`` with espeak-ng and return the audio.

    Args:
        text: what to say.
        voice: an espeak-ng voice name (``espeak-ng --voices`` lists them).
        wpm: speaking rate in words per minute (espeak-ng accepts 80-450).

    Returns:
        ``(samples, rate)``: mono int16 samples and their rate, :data:`ESPEAK_RATE` Hz.

    Raises:
        VoiceGatewayError: espeak-ng is not installed (the message names the package), it
            failed, or its output was not a readable WAV.
    """
    wav = _run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", "--", text])
    try:
        samples, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=False)
    except RuntimeError as exc:  # soundfile.LibsndfileError derives from RuntimeError
        raise VoiceGatewayError(f"espeak-ng wrote audio soundfile cannot read: {exc}") from exc
    if samples.ndim != 1:
        samples = samples[:, 0]
    return np.ascontiguousarray(samples, dtype=np.int16), int(rate)


def make_fixture(
    path: str | os.PathLike[str],
    text: str,
    *,
    rate: int = 16000,
    pad_s: float = 1.0,
    channels: int = 1,
    voice: str = "en-us",
    wpm: int = 150,
) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` as a 16-bit PCM WAV.

    The speech is resampled to ``rate`` by sox without dither and padded with ``pad_s``
    seconds of digital silence on both ends. The file appears atomically: it is written under
    a temporary name in the same folder and renamed over ``path``. Missing parent folders are
    created.

    Args:
        path: the WAV file to write; an existing file is replaced.
        text: what to say.
        rate: sample rate of the file, in Hz.
        pad_s: seconds of silence before and after the speech (0 for none).
        channels: 1 for mono; 2 for left = speech, right = speech at half amplitude.
        voice: espeak-ng voice name.
        wpm: speaking rate in words per minute.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``rate``, ``pad_s`` or ``channels`` is out of range.
        VoiceGatewayError: espeak-ng or sox is missing (the message names the package) or
            failed.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if pad_s < 0:
        raise ValueError(f"pad_s must be >= 0, got {pad_s}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    _require("espeak-ng")
    _require("sox")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Resample before padding: left to itself sox pads first and resamples last, and the
    # resampling filter's ringing then leaks +-1 LSB values into the silence.
    effects = ["rate", str(rate)]
    if channels == 2:
        effects += ["remix", "1", "1v0.5"]
    if pad_s > 0:
        effects += ["pad", f"{pad_s:g}", f"{pad_s:g}"]
    # A unique name in the target folder, so the final rename is atomic; sox creates it with
    # the usual umask-derived permissions (mkstemp would make it owner-only).
    tmp = out.parent / f".{out.stem}.{os.getpid()}.{secrets.token_hex(4)}.wav"
    try:
        with tempfile.TemporaryDirectory(prefix="voicegw-speech-") as work:
            raw = Path(work) / "espeak.wav"
            _run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), "--", text])
            sox_args = ["-r", str(rate), "-c", str(channels), "-b", "16", str(tmp), *effects]
            _run(["sox", "-D", str(raw), *sox_args])
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def missing_fixtures(directory: str | os.PathLike[str]) -> list[str]:
    """Return the names in :data:`FIXTURES` that have no file in ``directory``."""
    folder = Path(directory)
    return [name for name in FIXTURES if not (folder / name).is_file()]


def write_fixtures(directory: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Write the :data:`FIXTURES` files into ``directory``.

    Args:
        directory: target folder; created when missing.
        force: rewrite files that already exist (by default only missing ones are written).

    Returns:
        The paths written, in :data:`FIXTURES` order (empty when nothing was missing).

    Raises:
        VoiceGatewayError: espeak-ng or sox is missing or failed.
    """
    folder = Path(directory)
    names = list(FIXTURES) if force else missing_fixtures(folder)
    written = []
    for name in names:
        spec = FIXTURES[name]
        written.append(
            make_fixture(
                folder / name, spec.text, rate=spec.rate, pad_s=spec.pad_s, channels=spec.channels
            )
        )
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: write the fixtures, one line per file written.

    Returns:
        The exit status: 0 on success, 1 when espeak-ng or sox is missing or failed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m voicegw.speech",
        description="Write the speech fixture WAVs (only the missing ones unless --force).",
    )
    parser.add_argument("outdir", nargs="?", default="var/fixtures", help="default var/fixtures")
    parser.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = parser.parse_args(argv)
    try:
        written = write_fixtures(args.outdir, force=args.force)
    except VoiceGatewayError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        info = sf.info(str(path))
        print(f"wrote {path} ({info.duration:.2f} s, {info.samplerate} Hz, {info.channels} ch)")
    return 0


def _require(program: str) -> None:
    """Raise a :class:`VoiceGatewayError` naming the package when ``program`` is missing."""
    if shutil.which(program) is None:
        raise VoiceGatewayError(_missing_message(program))


def _missing_message(program: str) -> str:
    package = _PACKAGES.get(program, program)
    return (
        f"{program} is not installed (not found on PATH); install the Debian package "
        f"'{package}' with 'sudo apt-get install {package}', or run scripts/setup"
    )


def _run(cmd: list[str]) -> bytes:
    """Run ``cmd`` and return its stdout.

    Raises:
        VoiceGatewayError: the program is missing, failed, or ran past the timeout.
    """
    program = cmd[0]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_RUN_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise VoiceGatewayError(_missing_message(program)) from exc
    except subprocess.TimeoutExpired as exc:
        raise VoiceGatewayError(f"{program} did not finish within {_RUN_TIMEOUT_S:g} s") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()[-500:] or "no message"
        raise VoiceGatewayError(f"{program} failed with exit status {proc.returncode}: {detail}")
    return proc.stdout


if __name__ == "__main__":
    sys.exit(main())
