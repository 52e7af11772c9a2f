"""``voicegw doctor``: the newcomer's first command.

Each check prints PASS or FAIL with what to do about a failure: the config loads, the token is
present and well-formed (never printed), the microphone opens at the configured format and
delivers sound (a live level meter for a few seconds), the speaker plays a test tone, and the
service endpoint answers the WebSocket upgrade with ``chat.created``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import Config, load_config, read_token
from .errors import CloudError, ConfigError, DeviceError, VoiceGatewayError

__all__ = ["Check", "check_token", "run_doctor"]

_TOKEN = re.compile(
    r"^(pat_|sat_|czs_)[A-Za-z0-9_\-]{16,}$|^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$"
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_token(token: str) -> Check:
    """Whether ``token`` looks like a Coze token (PAT/SAT/OAuth JWT); the token is not shown."""
    if not token:
        return Check("token", False, "no token", "set COZE_API_TOKEN or cloud.token_file")
    if any(c.isspace() for c in token) or not _TOKEN.match(token):
        return Check(
            "token",
            False,
            f"present ({len(token)} characters) but not a Coze token",
            "a personal access token starts with pat_; an OAuth token is a JWT (a.b.c)",
        )
    kind = token[:4] if token[:4] in ("pat_", "sat_", "czs_") else "JWT"
    return Check("token", True, f"present, {kind}, {len(token)} characters")


def _dbfs(x: np.ndarray) -> float:
    if not len(x):
        return -120.0
    rms = math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -120.0


async def _check_mic(cfg: Config, seconds: float, emit: Callable[[str], None]) -> Check:
    from .daemon import open_source

    try:
        source = open_source(cfg)
    except (DeviceError, VoiceGatewayError) as exc:
        return Check(
            "microphone",
            False,
            str(exc),
            "pick a device from `voicegw devices` for audio.source, or a profile",
        )
    levels: list[float] = []
    window: list[np.ndarray] = []
    need = int(seconds * source.rate)
    got = 0
    try:
        async with asyncio.timeout(seconds + 3.0):
            async for frame in source.frames():
                window.append(frame)
                got += len(frame)
                if sum(len(w) for w in window) >= source.rate // 4:
                    level = _dbfs(np.concatenate(window))
                    levels.append(level)
                    bar = "#" * max(0, int((level + 80) / 2))
                    emit(f"    mic {level:6.1f} dBFS |{bar:<40}|")
                    window = []
                if got >= need:
                    break
    except TimeoutError:
        pass
    except DeviceError as exc:
        return Check("microphone", False, str(exc), "check the cable and `voicegw devices`")
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
    if got == 0:
        return Check(
            "microphone",
            False,
            "no audio arrived",
            "is the user in the 'audio' group? is another program using the device?",
        )
    peak = max(levels) if levels else -120.0
    if peak <= -100:
        return Check(
            "microphone",
            False,
            "only digital silence",
            "the input is muted or not connected: check alsamixer's capture switch",
        )
    return Check(
        "microphone", True, f"{source.rate} Hz x {source.channels} ch, loudest {peak:.1f} dBFS"
    )


def _check_speaker(cfg: Config) -> Check:
    from .daemon import open_sink

    try:
        sink = open_sink(cfg)
    except (DeviceError, VoiceGatewayError) as exc:
        return Check(
            "speaker",
            False,
            str(exc),
            "pick a device from `voicegw devices` for audio.sink, or a profile",
        )
    t = np.arange(int(0.5 * sink.rate)) / sink.rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    tone = (np.sin(2 * np.pi * 440 * t) * ramp * 0.25 * 32767).astype(np.int16)
    try:
        sink.write(tone)
    except DeviceError as exc:
        return Check("speaker", False, str(exc), "check the device and `voicegw devices`")
    finally:
        close = getattr(sink, "close", None)
        if callable(close):
            close()
    return Check("speaker", True, f"played a 0.5 s 440 Hz tone at {sink.rate} Hz")


async def _check_service(cfg: Config, token: str) -> Check:
    from .io.cloud import open_chat

    try:
        async with open_chat(cfg.cloud, token) as ws:
            async with asyncio.timeout(cfg.cloud.connect_timeout_s):
                first = await ws.recv()
    except CloudError as exc:
        fix = "check the network and cloud.url"
        if exc.code in (4100, 4101):
            fix = "the token was refused: create a new one with the chat permission"
        elif exc.code == 4200:
            fix = "check cloud.bot_id: the agent must be published to the API channel"
        return Check("service", False, str(exc), fix)
    except TimeoutError:
        return Check(
            "service",
            False,
            "connected, but no chat.created arrived",
            "the endpoint is not a Coze /v1/chat service",
        )
    ok = '"chat.created"' in (first if isinstance(first, str) else first.decode())
    return Check(
        "service",
        ok,
        f"{cfg.cloud.chat_url} answered" if ok else "unexpected reply",
        "" if ok else "the endpoint is not a Coze /v1/chat service",
    )


async def run_doctor(
    config_path: str, *, seconds: float = 3.0, emit: Callable[[str], None] = print
) -> int:
    """Run every check; returns 0 when all pass, 1 otherwise."""
    checks: list[Check] = []
    try:
        cfg = load_config(config_path)
        checks.append(Check("config", True, config_path))
    except ConfigError as exc:
        checks.append(Check("config", False, str(exc), "fix the key named above"))
        return _print(checks, emit)
    try:
        token = read_token(cfg.cloud)
    except ConfigError as exc:
        checks.append(Check("token", False, str(exc), "set COZE_API_TOKEN or cloud.token_file"))
        token = ""
    else:
        checks.append(check_token(token))
    emit(f"listening to the microphone for {seconds:g} s...")
    checks.append(await _check_mic(cfg, seconds, emit))
    checks.append(_check_speaker(cfg))
    if token:
        checks.append(await _check_service(cfg, token))
    return _print(checks, emit)


def _print(checks: list[Check], emit: Callable[[str], None]) -> int:
    for c in checks:
        emit(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<11} {c.detail}")
        if not c.ok and c.fix:
            emit(f"      {'':<11} -> {c.fix}")
    return 0 if all(c.ok for c in checks) else 1
