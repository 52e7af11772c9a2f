"""Device-side tools the agent may call (``conversation.chat.requires_action``, spec 2.6.7).

A small built-in set acts on the device itself (``set_volume``, ``mute``, ``device_status``);
anything else must be named in an explicit allow-list of ``name = "module:function"`` entries.
A call to a tool that is not allowed, with arguments that are not a JSON object, or whose
handler fails, gets a clear JSON error as its output and is never executed: the service always
receives an answer, so the chat can go on.

Handlers are plain functions ``(arguments: dict) -> str | dict``; a dict is sent as JSON.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .protocol.objects import ToolCall, ToolOutput

__all__ = ["BUILTIN_TOOLS", "DeviceState", "Handler", "ToolBox", "load_handler"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], "str | dict[str, Any]"]


@dataclass
class DeviceState:
    """What the built-in tools read and change; the daemon applies it to the speaker."""

    volume: float = 1.0
    muted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _set_volume(state: DeviceState, args: dict[str, Any]) -> dict[str, Any]:
    level = args.get("level", args.get("volume"))
    if isinstance(level, bool) or not isinstance(level, (int, float)):
        raise ValueError("level must be a number from 0 to 1 (or 0 to 100)")
    value = float(level)
    if value > 1.0:
        value /= 100.0  # agents often say "50" for half volume
    if not 0.0 <= value <= 1.0:
        raise ValueError("level must be from 0 to 1 (or 0 to 100)")
    state.volume = value
    return {"ok": True, "volume": round(value, 3)}


def _mute(state: DeviceState, args: dict[str, Any]) -> dict[str, Any]:
    on = args.get("on", args.get("mute", True))
    if not isinstance(on, bool):
        raise ValueError("on must be true or false")
    state.muted = on
    return {"ok": True, "muted": on}


def _device_status(state: DeviceState, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "volume": round(state.volume, 3), "muted": state.muted, **state.extra}


#: The tools every device has, unless ``tools.builtin`` is off.
BUILTIN_TOOLS: dict[str, Callable[[DeviceState, dict[str, Any]], dict[str, Any]]] = {
    "set_volume": _set_volume,
    "mute": _mute,
    "device_status": _device_status,
}


def load_handler(name: str, target: str) -> Handler:
    """Import ``module:function`` for the allow-listed tool ``name``.

    Raises:
        ConfigError: the target is malformed, cannot be imported, or is not callable.
    """
    module_name, sep, attr = target.partition(":")
    key = f"tools.allow.{name}"
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected 'module:function', got {target!r}", key=key)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}", key=key) from None
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise ConfigError(f"{target!r} is not a function", key=key)
    return handler  # type: ignore[no-any-return]


class ToolBox:
    """Runs tool calls: built-ins and allow-listed handlers, nothing else."""

    def __init__(
        self,
        *,
        builtin: bool = True,
        allow: Mapping[str, str] | None = None,
        state: DeviceState | None = None,
    ) -> None:
        self.state = state or DeviceState()
        self._builtin = dict(BUILTIN_TOOLS) if builtin else {}
        self._custom = {name: load_handler(name, target) for name, target in (allow or {}).items()}
        self.calls = 0
        self.refused = 0

    @property
    def names(self) -> list[str]:
        return sorted({*self._builtin, *self._custom})

    def run(self, tool_calls: Sequence[ToolCall]) -> list[ToolOutput]:
        """One output per call, in order; never raises."""
        return [ToolOutput(tool_call_id=tc.id, output=self._run_one(tc)) for tc in tool_calls]

    def _run_one(self, tc: ToolCall) -> str:
        self.calls += 1
        fn = tc.function
        name = (fn.name if fn else None) or ""
        if tc.type == "reply_message":
            return json.dumps({"ok": True})
        if name not in self._builtin and name not in self._custom:
            self.refused += 1
            log.warning("refused tool call %r: not allowed on this device", name)
            return _error(f"tool {name!r} is not allowed on this device", allowed=self.names)
        raw = (fn.arguments if fn else None) or "{}"
        try:
            args = json.loads(raw)
        except json.JSONDecodeError:
            return _error(f"arguments of {name!r} are not valid JSON")
        if not isinstance(args, dict):
            return _error(f"arguments of {name!r} must be a JSON object")
        try:
            if name in self._builtin:
                result: str | dict[str, Any] = self._builtin[name](self.state, args)
            else:
                result = self._custom[name](args)
        except Exception as exc:  # a handler's failure is reported, never raised
            log.warning("tool %r failed: %s", name, exc)
            return _error(f"{name} failed: {exc}")
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return _error(f"{name} returned something that is not JSON")


def _error(message: str, **extra: Any) -> str:
    return json.dumps({"ok": False, "error": message, **extra})
