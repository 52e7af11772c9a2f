"""``voicegw bind``: register this device's id with a custom hardware channel (spec 7.1).

``POST /v1/connectors/{connector_id}/user_configs`` tells Coze which device ids a channel (a
connector) may use; the same numeric id is then sent as ``device_id`` on ``/v1/chat``
(``cloud.device_id``). The device id comes from ``--device-id`` or, by default, from the
config, so what is bound is what the daemon sends.
"""

from __future__ import annotations

import argparse
import re
import socket
from collections.abc import Callable

from .errors import ConfigError

__all__ = ["add_arguments", "run_bind"]

_CONNECTOR = re.compile(r"^[0-9]{1,32}$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="TOML config file (cloud, token)")
    p.add_argument("--connector-id", required=True, help="the custom channel's connector id")
    p.add_argument(
        "--device-id",
        default="",
        help="device id to register (default: cloud.device_id from the config)",
    )
    p.add_argument("--label", default="", help="display label (default: this host's name)")
    p.add_argument("--user-id", default="", help="Coze user id of the developer (optional)")


async def run_bind(args: argparse.Namespace, emit: Callable[[str], None] = print) -> int:
    """Bind the device; returns the exit status (errors raise and are mapped by the CLI)."""
    from .config import load_config, read_token
    from .io.rest import bind_device

    cfg = load_config(args.config)
    token = read_token(cfg.cloud)
    connector = str(args.connector_id).strip()
    if not _CONNECTOR.match(connector):
        raise ConfigError(f"must be a numeric id, got {connector!r}", key="--connector-id")
    device = str(args.device_id).strip()
    if not device and cfg.cloud.device_id:
        device = str(cfg.cloud.device_id)
    if not device:
        raise ConfigError("no device id: pass --device-id or set cloud.device_id", key="device_id")
    if not device.isdigit():
        raise ConfigError(
            f"must be numeric (it is sent as device_id on /v1/chat), got {device!r}",
            key="--device-id",
        )
    label = args.label or socket.gethostname()
    logid = await bind_device(
        cfg.cloud,
        token,
        connector,
        device,
        label=label,
        user_id=args.user_id,
    )
    emit(f"bound device {device} ({label}) to connector {connector} (logid {logid or '-'})")
    if str(cfg.cloud.device_id) != device:
        emit(f"note: set cloud.device_id = {device} so /v1/chat sends it")
    return 0
