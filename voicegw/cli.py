"""The ``voicegw`` command line: ``run``, ``demo``, ``emulator``, ``check-config``, ``bench``.

The CLI only chooses files and a few overrides; the config loader is the only place defaults
live. Exit statuses are distinct so systemd and scripts can tell failures apart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import CloudError, ConfigError, VoiceGatewayError

__all__ = ["EXIT_CLOUD", "EXIT_CONFIG", "EXIT_FATAL_AUTH", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_CLOUD = 3
#: Authentication or permission refused: restarting will not help.
EXIT_FATAL_AUTH = 4


def _build_parser() -> argparse.ArgumentParser:
    from . import bench, demo
    from .emulator import server as emulator_server

    p = argparse.ArgumentParser(prog="voicegw", description=__doc__)
    p.add_argument("--version", action="version", version=f"voicegw {__version__}")
    p.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="default WARNING",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway with a config file")
    run.add_argument("--config", required=True, help="TOML config file")

    chk = sub.add_parser("check-config", help="validate a config file without starting anything")
    chk.add_argument("file")

    d = sub.add_parser("demo", help="a full voice exchange against the embedded emulator")
    demo.add_arguments(d)

    e = sub.add_parser("emulator", help="run the local Coze protocol emulator")
    emulator_server.add_arguments(e)

    b = sub.add_parser("bench", help="measure per-frame costs and latencies on this machine")
    bench.add_arguments(b)
    return p


async def _run(config_path: str) -> int:
    from .config import load_config, read_token
    from .gateway import Gateway
    from .io.files import WavSink, WavSource

    cfg = load_config(config_path)
    token = read_token(cfg.cloud)
    if not cfg.cloud.bot_id:
        raise ConfigError("is required", key="cloud.bot_id")
    if not cfg.audio.source or not cfg.audio.sink:
        raise ConfigError("audio.source and audio.sink are required (file:PATH)", key="audio")
    source = WavSource(
        cfg.audio.source.removeprefix("file:"),
        frame_ms=cfg.input.frame_ms,
        realtime=cfg.audio.realtime,
    )
    sink = WavSink(
        cfg.audio.sink.removeprefix("file:"), rate=cfg.audio.sink_rate or cfg.output.sample_rate
    )
    try:
        report = await Gateway(cfg, token, source=source, sink=sink).run()
    finally:
        sink.close()
    for turn in report.turns:
        print(f"turn {turn.status}: heard {turn.transcript!r}, replied {turn.reply_text!r}")
    return EXIT_OK if report.turns else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voicegw`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "check-config":
            from .config import load_config

            load_config(args.file)
            print(f"{args.file}: OK")
            return EXIT_OK
        if args.command == "run":
            return asyncio.run(_run(args.config))
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(args))
        if args.command == "bench":
            from .bench import run_bench

            return run_bench(args)
        if args.command == "emulator":
            from .emulator import server as emulator_server

            return asyncio.run(emulator_server.run_from_args(args)) or EXIT_OK
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"voicegw: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CloudError as exc:
        print(f"voicegw: {exc}", file=sys.stderr)
        if exc.code in (401, 403, 4100, 4101):
            return EXIT_FATAL_AUTH
        return EXIT_CLOUD
    except VoiceGatewayError as exc:
        print(f"voicegw: {exc}", file=sys.stderr)
        return EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_FAILED  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
