"""Identifiers the emulator hands out, in the formats real ``/v1/chat`` traffic uses.

* ``detail.logid`` (spec 1.6): ``"02"`` + 13-digit Unix milliseconds + 38 hex digits, 53
  characters, one per connection, for example
  ``021752474748819fdbddc030017070c0000000000000029f6daa2``.
* event ``id`` (spec 1.7): a fresh UUID v4 string per server event.
* chat, message, conversation and section ids (spec 2.2.8): 19-digit numeric strings such as
  ``7526821559890198568``. The emulator derives them from a random 19-digit base and a counter,
  so they are unique within a process and increase like the service's snowflake-style ids.

Everything random comes from an injected :class:`random.Random`, so tests can seed it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

__all__ = ["LOGID_LENGTH", "IdFactory"]

#: Length of a ``detail.logid`` string.
LOGID_LENGTH = 53


class IdFactory:
    """Makes logids, event ids and numeric object ids for one connection.

    Args:
        rng: source of randomness (seed it for reproducible ids).
        wall_ms: wall-clock Unix milliseconds, used only inside the logid.
    """

    def __init__(self, rng: random.Random, wall_ms: Callable[[], int]) -> None:
        self._rng = rng
        self._wall_ms = wall_ms
        # 7.5e18 .. 7.6e18 looks like the service's ids and leaves room for the counter.
        self._next = 7_500_000_000_000_000_000 + rng.randrange(10**17)

    def logid(self) -> str:
        """A new logid: ``"02"`` + 13-digit ms + 38 hex digits (53 characters)."""
        ms = f"{self._wall_ms() % 10**13:013d}"
        tail = f"{self._rng.getrandbits(152):038x}"
        return "02" + ms + tail

    def event_id(self) -> str:
        """A fresh UUID v4 string for a server event."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def numeric(self) -> str:
        """A new 19-digit numeric id (chat, message, conversation, section)."""
        self._next += 1 + self._rng.randrange(1000)
        return str(self._next)

    def opaque(self) -> str:
        """An opaque base64-looking id, used for tool calls (spec 2.6.7)."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "call_" + "".join(self._rng.choice(alphabet) for _ in range(24))
