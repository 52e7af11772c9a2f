"""A local emulator of Coze's ``/v1/chat`` bidirectional streaming WebSocket.

Vendors can develop and test a device gateway without the cloud: the emulator follows
coze-protocol.md (field names, defaults, event order, error codes) and plays the agent with a
deterministic bot. See ``voicegw/emulator/README.md`` for how to run it and for every behaviour
chosen where the spec is silent.

* :class:`ChatConnection` (:mod:`.chat`): the sans-I/O protocol core of one connection.
* :class:`Emulator`, :func:`serve_forever` (:mod:`.server`): the websockets server.
* :mod:`.bots`, :mod:`.vad`, :mod:`.pacing`: bots, the energy VAD and delta pacing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bots import Bot, bot_factory
from .chat import ChatConnection
from .pacing import Limit, schedule
from .turns import Timing

if TYPE_CHECKING:
    from .server import ConnectionRecord, Emulator, add_arguments, run_from_args, serve_forever

_SERVER_NAMES = ("ConnectionRecord", "Emulator", "add_arguments", "run_from_args", "serve_forever")

__all__ = [
    "Bot",
    "ChatConnection",
    "ConnectionRecord",
    "Emulator",
    "Limit",
    "Timing",
    "add_arguments",
    "bot_factory",
    "run_from_args",
    "schedule",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    # The server pulls in asyncio and websockets; load it only when asked for, so importing
    # the sans-I/O core (voicegw.emulator.chat) stays free of I/O libraries.
    if name in _SERVER_NAMES:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
