"""Constants shared by the tests; import them with ``from helpers import MS``.

``tests/`` is on ``sys.path`` because ``tests/conftest.py`` lives there (pytest's default
``prepend`` import mode), so this module imports as ``helpers``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["MS", "REPO", "emulator_process", "emulator_subprocess", "write_file_config"]

#: The repository root.
REPO: Final = Path(__file__).resolve().parents[1]

#: One millisecond of real time, in seconds, scaled by ``VOICEGW_TEST_MS`` (default 1).
#: Every real timeout in a test is a multiple of it, so a slow machine (a Raspberry Pi, a busy
#: CI runner) can stretch them all at once: ``VOICEGW_TEST_MS=5 scripts/test``.
MS: Final = float(os.environ.get("VOICEGW_TEST_MS", "1")) * 0.001


@contextlib.contextmanager
def emulator_subprocess(
    token: str, *, env: dict[str, str] | None = None, bot: str = "echo"
) -> Iterator[str]:
    """Run ``voicegw emulator`` as a process on a free loopback port; yields its ws:// URL."""
    with emulator_process(token, env=env, bot=bot) as (url, _):
        yield url


@contextlib.contextmanager
def emulator_process(
    token: str, *, env: dict[str, str] | None = None, bot: str = "echo"
) -> Iterator[tuple[str, str]]:
    """Like :func:`emulator_subprocess`; yields ``(ws_url, http_api_url)``."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicegw",
            "emulator",
            "--port",
            "0",
            "--token",
            token,
            "--bot",
            bot,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on ws://127.0.0.1:"), first
        second = proc.stdout.readline().strip()
        assert second.startswith("http api on http://127.0.0.1:"), second
        yield first.removeprefix("listening on "), second.removeprefix("http api on ")
    finally:
        proc.terminate()
        proc.wait(timeout=10_000 * MS)


def write_file_config(tmp_path: Path, url: str, mic: Path) -> Path:
    """A config for ``voicegw run`` with a WAV microphone and speaker (unpaced)."""
    cfg = tmp_path / "voicegw.toml"
    cfg.write_text(
        f'[cloud]\nurl = "{url}"\nbot_id = "7000000000000000001"\n'
        f'[audio]\nsource = "file:{mic}"\nsink = "file:{tmp_path / "reply.wav"}"\n'
        "realtime = false\n"
    )
    return cfg
