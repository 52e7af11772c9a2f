"""The pure layers do no I/O: importing them pulls in no event loop, socket or audio library."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

FORBIDDEN = ("asyncio", "websockets", "pyaudio", "aiohttp", "aiortc")


def _imported_after(module: str) -> list[str]:
    """Import ``module`` in a fresh interpreter and list the forbidden modules it loaded."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "module",
    [
        "voicegw.protocol",
        "voicegw.protocol.session",
        "voicegw.protocol.states",
        "voicegw.protocol.wire",
        "voicegw.protocol.tts",
        "voicegw.protocol.asr",
        "voicegw.protocol.service",
    ],
)
def test_protocol_does_no_io(module: str) -> None:
    assert _imported_after(module) == []


@pytest.mark.parametrize("module", ["voicegw.codecs", "voicegw.dsp"])
def test_codecs_and_dsp_do_no_io(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    assert _imported_after(module) == []


@pytest.mark.parametrize(
    "module",
    [
        "voicegw.vad",
        "voicegw.ptt",
        "voicegw.echo",
        "voicegw.limits",
        "voicegw.playout",
        "voicegw.preroll",
        "voicegw.chains",
        "voicegw.watchdog",
        "voicegw.earcons",
        "voicegw.tools",
        "voicegw.config",
        "voicegw.io.device_info",
        "voicegw.retry",
        "voicegw.emulator.chat",
        "voicegw.emulator.intake",
        "voicegw.emulator.tts",
        "voicegw.emulator.transcriptions",
        "voicegw.realtime.objects",
        "voicegw.realtime.events",
        "voicegw.realtime.rooms",
        "voicegw.realtime.states",
        "voicegw.realtime.session",
        "voicegw.realtime.transport",
        "voicegw.realtime.config",
        "voicegw.realtime.outputs",
        "voicegw.urls",
        "voicegw.emulator.agent",
        "voicegw.emulator.agent_plan",
    ],
)
def test_pure_state_machines_do_no_io(module: str) -> None:
    assert _imported_after(module) == []


def test_the_check_can_fail() -> None:
    assert "asyncio" in _imported_after("asyncio")
