"""No token and no audio payload ever reaches a log, even at DEBUG; TLS stays verified."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import secrets
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import MS, emulator_subprocess, write_file_config
from websockets.asyncio.server import serve

from voicegw.config import (
    AudioConfig,
    CloudConfig,
    Config,
    InputConfig,
    OutputConfig,
    TurnConfig,
    read_token,
)
from voicegw.emulator import Emulator
from voicegw.errors import CloudError
from voicegw.gateway import Gateway
from voicegw.io.cloud import open_chat
from voicegw.io.files import WavSink, WavSource
from voicegw.logsetup import configure_logging

REPO = Path(__file__).resolve().parents[2]
VOICEGW = [sys.executable, "-m", "voicegw"]
TIMEOUT = 30_000 * MS
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{100,}")


def distinctive_token() -> str:
    return "tok-SECRET-" + secrets.token_hex(12)


def assert_clean(text: str, token: str) -> None:
    assert token not in text
    assert token[len("tok-SECRET-") :] not in text
    run = BASE64_RUN.search(text)
    assert run is None, f"base64 run in the log: {run.group()[:40]}..."


@pytest.fixture
def debug_logging() -> Iterator[tuple[io.StringIO, RawRecords]]:
    """Root logging at DEBUG through configure_logging, plus a handler keeping raw records."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    raw = RawRecords()
    root.handlers.insert(0, raw)
    for name in ("websockets", "websockets.client", "websockets.server", "asyncio", "voicegw"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield buffer, raw
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name in ("websockets", "websockets.client", "websockets.server", "asyncio", "voicegw"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def capture_raw(caplog: pytest.LogCaptureFixture) -> None:
    """Put this test phase's caplog handler first on the root logger, at DEBUG, so it sees
    each record before the redacting filter of configure_logging's handler rewrites it."""
    root = logging.getLogger()
    if caplog.handler in root.handlers:
        root.handlers.remove(caplog.handler)
    root.handlers.insert(0, caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)


class RawRecords(logging.Handler):
    """Keeps (logger name, rendered message) of every record as it arrives, unredacted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.getMessage()))

    def text(self, *, ours: bool) -> str:
        """Messages of voicegw's own loggers (``ours``) or of every other logger."""
        return "\n".join(m for name, m in self.lines if name.startswith("voicegw") == ours)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(host="127.0.0.1", port=0, token=distinctive_token(), bot="echo") as emu:
        yield emu


def make_config(url: str, mode: str = "ptt") -> Config:
    return Config(
        cloud=CloudConfig(url=url, bot_id="7000000000000000001", connect_timeout_s=5.0),
        turn=TurnConfig(mode=mode, silence_threshold_ms=800),  # type: ignore[arg-type]
        input=InputConfig(codec="pcm", sample_rate=16000, frame_ms=20),
        output=OutputConfig(),
        audio=AudioConfig(realtime=False, playback_prefill_ms=0),
    )


async def run_gateway(cfg: Config, token: str, mic: Path, out: Path) -> None:
    source = WavSource(mic, frame_ms=20, realtime=False)
    sink = WavSink(out, rate=cfg.output.sample_rate)
    try:
        async with asyncio.timeout(TIMEOUT):
            await Gateway(cfg, token, source=source, sink=sink).run()
    finally:
        sink.close()


@pytest.mark.parametrize("mode", ["ptt", "server_vad"])
async def test_gateway_debug_logs_carry_no_token_or_audio(
    emulator: Emulator,
    debug_logging: tuple[io.StringIO, RawRecords],
    caplog: pytest.LogCaptureFixture,
    fixtures_dir: Path,
    tmp_path: Path,
    mode: str,
) -> None:
    buffer, raw = debug_logging
    capture_raw(caplog)
    cfg = make_config(emulator.url, mode)
    await run_gateway(cfg, emulator.token, fixtures_dir / "short16k.wav", tmp_path / "out.wav")
    stream_text = buffer.getvalue()
    assert "conversation.audio.delta" in stream_text  # DEBUG really was on
    assert "> Authorization: Bearer <redacted>" in stream_text
    assert_clean(stream_text, emulator.token)
    ours = raw.text(ours=True)
    assert "conversation.audio.delta" in ours
    assert_clean(ours, emulator.token)


async def test_raw_websockets_debug_records_carry_no_token(
    emulator: Emulator,
    debug_logging: tuple[io.StringIO, RawRecords],
    caplog: pytest.LogCaptureFixture,
    fixtures_dir: Path,
    tmp_path: Path,
) -> None:
    _, raw = debug_logging
    capture_raw(caplog)
    cfg = make_config(emulator.url)
    await run_gateway(cfg, emulator.token, fixtures_dir / "short16k.wav", tmp_path / "out.wav")
    assert any(name.startswith("websockets") for name, _ in raw.lines)
    assert_clean(raw.text(ours=False), emulator.token)
    assert_clean(caplog.text, emulator.token)


async def test_wrong_token_error_does_not_echo_the_token(
    emulator: Emulator,
    debug_logging: tuple[io.StringIO, RawRecords],
    caplog: pytest.LogCaptureFixture,
    fixtures_dir: Path,
    tmp_path: Path,
) -> None:
    buffer, raw = debug_logging
    capture_raw(caplog)
    wrong = distinctive_token()
    cfg = make_config(emulator.url)
    with pytest.raises(CloudError) as info:
        await run_gateway(cfg, wrong, fixtures_dir / "short16k.wav", tmp_path / "out.wav")
    assert info.value.code == 4100 and not info.value.retryable
    assert wrong not in str(info.value) and wrong not in repr(info.value.args)
    for text in (buffer.getvalue(), raw.text(ours=True)):
        assert_clean(text, wrong)
        assert_clean(text, emulator.token)


# ---------------------------------------------------------------- the CLI as a process


def _cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COZE_API_TOKEN"}
    env.update(extra)
    return env


@pytest.fixture
def emulator_process() -> Iterator[tuple[str, str]]:
    token = distinctive_token()
    with emulator_subprocess(token) as url:
        yield url, token


def _run_cli(cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VOICEGW, "--log-level", "DEBUG", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=_cli_env(env),
        cwd=REPO,
        timeout=60_000 * MS,
        check=False,
    )


def test_cli_run_at_debug_prints_no_token(
    emulator_process: tuple[str, str], tmp_path: Path, fixtures_dir: Path
) -> None:
    url, token = emulator_process
    cfg = write_file_config(tmp_path, url, fixtures_dir / "short16k.wav")
    proc = _run_cli(cfg, {"COZE_API_TOKEN": token})
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "DEBUG" in output and "> Authorization: Bearer <redacted>" in output
    assert "chat.updated" in output
    assert_clean(output, token)


def test_cli_run_with_a_token_file_and_a_wrong_token(
    emulator_process: tuple[str, str], tmp_path: Path, fixtures_dir: Path
) -> None:
    url, token = emulator_process
    wrong = distinctive_token()
    token_file = tmp_path / "token"
    token_file.write_text(wrong + "\n")
    token_file.chmod(0o600)
    cfg = write_file_config(tmp_path, url, fixtures_dir / "short16k.wav")
    cfg.write_text(cfg.read_text().replace("[cloud]\n", f'[cloud]\ntoken_file = "{token_file}"\n'))
    proc = _run_cli(cfg, {})
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "401" in output or "4100" in output or "authentication" in output.lower()
    assert_clean(output, wrong)
    assert_clean(output, token)


# ---------------------------------------------------------------- token file permissions


@pytest.mark.parametrize("mode,warns", [(0o644, True), (0o640, True), (0o600, False)])
def test_token_file_readable_by_others_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warns: bool
) -> None:
    token = distinctive_token()
    path = tmp_path / f"token-{mode:o}"
    path.write_text(token + "\n")
    path.chmod(mode)
    cfg = CloudConfig(token_file=str(path))
    with caplog.at_level(logging.DEBUG, logger="voicegw.config"):
        assert read_token(cfg, env={}) == token
        assert read_token(cfg, env={}) == token
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    if warns:
        assert len(warnings) == 1  # once per file, not on every read
        assert warnings[0].name == "voicegw.config"
        assert str(path) in warnings[0].getMessage()
    else:
        assert warnings == []
    assert token not in caplog.text


def test_token_from_the_environment_ignores_the_file_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("unused\n")
    path.chmod(0o644)
    with caplog.at_level(logging.DEBUG, logger="voicegw.config"):
        assert read_token(CloudConfig(token_file=str(path)), env={"COZE_API_TOKEN": "t"}) == "t"
    assert caplog.records == []


# ---------------------------------------------------------------- TLS verification


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30_000 * MS,
    )  # fmt: skip
    return cert, key


async def test_wss_to_a_self_signed_server_is_refused(
    self_signed: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handled: list[str] = []

    async def handler(ws: object) -> None:
        handled.append("connected")

    async with serve(handler, "127.0.0.1", 0, ssl=context) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = make_config(f"wss://127.0.0.1:{port}").cloud
        token = distinctive_token()
        with caplog.at_level(logging.DEBUG), pytest.raises(CloudError) as info:
            async with asyncio.timeout(10_000 * MS), open_chat(cfg, token):
                pytest.fail("connected to a server with an untrusted certificate")
    assert "certificate" in str(info.value).lower()
    assert info.value.retryable
    assert handled == []
    assert token not in caplog.text + str(info.value)


async def test_wss_with_the_cert_trusted_would_connect(self_signed: tuple[Path, Path]) -> None:
    """Control: the same server is reachable when its cert is trusted, so the refusal above
    comes from verification and not from a broken server."""
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))

    async def handler(ws: object) -> None:
        return None

    from websockets.asyncio.client import connect

    async with serve(handler, "127.0.0.1", 0, ssl=context) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(10_000 * MS):
            async with connect(f"wss://127.0.0.1:{port}", ssl=client) as ws:
                assert ws.protocol.state.name in ("OPEN", "CLOSING", "CLOSED")
