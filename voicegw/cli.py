"""The ``voicegw`` command line: run, demo, emulator, say, transcribe, check-config, devices,
doctor, bench.

The CLI only chooses files and a few overrides; the config loader is the only place defaults
live. Exit statuses are distinct so systemd and scripts can tell failures apart.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from . import __version__
from .errors import CloudError, ConfigError, DeviceError, VoiceGatewayError

__all__ = ["EXIT_CLOUD", "EXIT_CONFIG", "EXIT_FATAL_AUTH", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_CLOUD = 3
#: Authentication or permission refused: restarting will not help.
EXIT_FATAL_AUTH = 4
#: An audio device is missing or unusable (systemd restarts: a USB card may come back).
EXIT_DEVICE = 5


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

    dev = sub.add_parser("devices", help="list sound devices, their API rates and profile matches")
    dev.add_argument("--profile", default="", help="mark the devices this profile would pick")

    doc = sub.add_parser("doctor", help="check devices, token and service, with what to fix")
    doc.add_argument("--config", required=True, help="TOML config file")
    doc.add_argument("--seconds", type=float, default=3.0, help="microphone meter duration")

    d = sub.add_parser("demo", help="a full voice exchange against the embedded emulator")
    demo.add_arguments(d)

    from . import announce

    say = sub.add_parser("say", help="speak a text on the configured speaker (streaming TTS)")
    announce.add_say_arguments(say)
    tr = sub.add_parser("transcribe", help="print what the microphone or a WAV file says (ASR)")
    announce.add_transcribe_arguments(tr)

    e = sub.add_parser("emulator", help="run the local Coze protocol emulator")
    emulator_server.add_arguments(e)

    b = sub.add_parser("bench", help="measure per-frame costs and latencies on this machine")
    bench.add_arguments(b)

    from . import bind

    bd = sub.add_parser("bind", help="register this device id with a custom channel (connector)")
    bind.add_arguments(bd)
    return p


async def _run(config_path: str) -> int:
    import signal

    from .config import load_config, read_token
    from .daemon import Daemon

    cfg = load_config(config_path)
    token = read_token(cfg.cloud)
    if not cfg.cloud.bot_id:
        raise ConfigError("is required", key="cloud.bot_id")
    if not cfg.audio.source or not cfg.audio.sink:
        raise ConfigError(
            "audio.source and audio.sink are required (a device name pattern or file:PATH), "
            "or set audio.profile",
            key="audio",
        )
    daemon = Daemon(cfg, token)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
    try:
        await daemon.run()
    except asyncio.CancelledError:
        return EXIT_OK  # SIGTERM/SIGINT: a clean stop (STOPPING was sent)
    return EXIT_OK


def _devices(args: argparse.Namespace) -> int:
    from .device_report import print_devices

    return print_devices(profile=args.profile)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voicegw`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from .logsetup import configure_logging

    configure_logging(args.log_level)
    try:
        if args.command == "check-config":
            from .config import load_config

            load_config(args.file)
            print(f"{args.file}: OK")
            return EXIT_OK
        if args.command == "run":
            return asyncio.run(_run(args.config))
        if args.command == "devices":
            return _devices(args)
        if args.command == "doctor":
            from .doctor import run_doctor

            return asyncio.run(run_doctor(args.config, seconds=args.seconds))
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(args))
        if args.command in ("say", "transcribe"):
            from . import announce

            runner = announce.run_say if args.command == "say" else announce.run_transcribe
            return asyncio.run(runner(args))
        if args.command == "bind":
            from .bind import run_bind

            return asyncio.run(run_bind(args))
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
    except DeviceError as exc:
        print(f"voicegw: audio device: {exc}", file=sys.stderr)
        return EXIT_DEVICE
    except VoiceGatewayError as exc:
        print(f"voicegw: {exc}", file=sys.stderr)
        return EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_FAILED  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
