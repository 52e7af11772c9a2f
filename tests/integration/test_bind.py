"""``voicegw bind`` as a process against the emulator, and the bound id on ``/v1/chat``.

The emulator runs in this process so the test can look at what it recorded; the CLI runs as a
real subprocess (started with asyncio, so the emulator keeps serving meanwhile).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import MS, REPO

from voicegw.config import CloudConfig, Config, TurnConfig
from voicegw.emulator import Emulator
from voicegw.gateway import Gateway
from voicegw.io.files import WavSink, WavSource

CONNECTOR = "7470849514748000001"
TIMEOUT = 30_000 * MS


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(host="127.0.0.1", port=0, token="tok-" + secrets.token_hex(8)) as e:
        yield e


def write_config(tmp_path: Path, emu: Emulator, device_id: int = 0) -> Path:
    path = tmp_path / "voicegw.toml"
    path.write_text(
        f'[cloud]\nurl = "{emu.url}"\napi_url = "{emu.api_url}"\n'
        f'bot_id = "7000000000000000001"\ndevice_id = {device_id}\n'
    )
    return path


async def voicegw(*args: str, token: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    env["COZE_API_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicegw",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_bind_registers_the_configured_device_id(emu: Emulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu, device_id=51237825)
    code, out, err = await voicegw(
        "bind", "--config", str(cfg), "--connector-id", CONNECTOR, "--label", "kiosk 3",
        token=emu.token,
    )  # fmt: skip
    assert code == 0, err
    assert f"bound device 51237825 (kiosk 3) to connector {CONNECTOR}" in out
    assert emu.http.api.bound_devices(CONNECTOR) == {"51237825"}
    assert emu.http.api.bound[CONNECTOR]["device_id"]["51237825"] == "kiosk 3"
    assert emu.token not in out + err


async def test_bind_takes_a_device_id_and_says_to_configure_it(
    emu: Emulator, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, emu)
    code, out, err = await voicegw(
        "bind", "--config", str(cfg), "--connector-id", CONNECTOR, "--device-id", "77",
        token=emu.token,
    )  # fmt: skip
    assert code == 0, err
    assert emu.http.api.bound_devices(CONNECTOR) == {"77"}
    assert "set cloud.device_id = 77" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--connector-id", "abc"], "--connector-id"),
        (["--connector-id", CONNECTOR, "--device-id", "dev-7"], "numeric"),
        (["--connector-id", CONNECTOR], "no device id"),
    ],
)
async def test_bind_refuses_bad_ids_with_a_config_error(
    emu: Emulator, tmp_path: Path, args: list[str], needle: str
) -> None:
    cfg = write_config(tmp_path, emu)
    code, _, err = await voicegw("bind", "--config", str(cfg), *args, token=emu.token)
    assert code == 2
    assert needle in err
    assert emu.http.api.bound == {}


async def test_bind_with_a_bad_token_exits_4(emu: Emulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu, device_id=5)
    code, _, err = await voicegw(
        "bind", "--config", str(cfg), "--connector-id", CONNECTOR, token="wrong-token"
    )
    assert code == 4
    assert "4100" in err
    assert emu.http.api.bound == {}


async def test_chat_sends_the_configured_device_id(
    emu: Emulator, tmp_path: Path, short16k: tuple[object, int]
) -> None:
    mic = tmp_path / "mic.wav"
    import soundfile as sf

    samples, rate = short16k
    sf.write(str(mic), samples, rate, subtype="PCM_16")
    cfg = Config(
        cloud=CloudConfig(url=emu.url, bot_id="7000000000000000001", device_id=51237825),
        turn=TurnConfig(mode="ptt"),
    )
    sink = WavSink(tmp_path / "out.wav", rate=24000)
    try:
        async with asyncio.timeout(TIMEOUT):
            await Gateway(
                cfg, emu.token, source=WavSource(mic, frame_ms=20, realtime=False), sink=sink
            ).run()
    finally:
        sink.close()
    assert [c.device_id for c in emu.connections] == ["51237825"]
