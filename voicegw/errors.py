"""The voicegw exception tree.

Every error the package raises on purpose derives from :class:`VoiceGatewayError`::

    VoiceGatewayError
     +-- ConfigError            a config file, key or value is wrong (names the key)
     +-- DeviceError            an audio device is missing, busy or vanished
     +-- CodecError             audio could not be encoded/decoded
     |    +-- UnsupportedCodec  unknown codec name or unsupported rate/depth/channels
     +-- ProtocolError          a protocol rule was broken
     |    +-- LocalProtocolError   we tried to do something the protocol forbids now
     |    +-- RemoteProtocolError  the peer sent something we cannot accept
     +-- CloudError             the service refused or failed (carries code, retryable)
     +-- ConcurrencyError       two tasks used a resource that has a single owner

Errors carry data (event type, field path, code), never tokens or audio payloads.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = [
    "CloudError",
    "CodecError",
    "ConcurrencyError",
    "ConfigError",
    "DeviceError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "UnsupportedCodec",
    "VoiceGatewayError",
    "backoff",
    "first_error",
    "is_retryable",
]


class VoiceGatewayError(Exception):
    """Root of every error voicegw raises on purpose."""


class ConfigError(VoiceGatewayError):
    """A configuration file, key or value is invalid.

    Attributes:
        key: dotted path of the offending key, when known.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class DeviceError(VoiceGatewayError):
    """An audio device could not be opened, used or found."""


class CodecError(VoiceGatewayError):
    """Audio could not be encoded or decoded."""


class UnsupportedCodec(CodecError):
    """Unknown codec name, or a rate / depth / channel count the codec cannot do."""


class ProtocolError(VoiceGatewayError):
    """A protocol rule was broken.

    Attributes:
        event_type: the event involved, when known.
        path: dotted field path inside ``data`` (``output_audio.pcm_config.sample_rate``).
        code: the Coze error code that corresponds, when there is one (4000 for bad input).
    """

    def __init__(
        self,
        message: str,
        *,
        event_type: str | None = None,
        path: str | None = None,
        code: int = 4000,
    ) -> None:
        where = ""
        if event_type:
            where = event_type + (f" {path}" if path else "")
        elif path:
            where = path
        super().__init__(f"{where}: {message}" if where else message)
        self.event_type = event_type
        self.path = path
        self.code = code
        self.reason = message


class LocalProtocolError(ProtocolError):
    """The local side tried something the protocol does not allow in this state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that cannot be accepted (malformed, wrong type, out of range)."""


class CloudError(VoiceGatewayError):
    """The service refused the connection or reported an error.

    Attributes:
        code: the Coze error code (4100, 4027, ...) or the HTTP status for a refused upgrade.
        retryable: whether reconnecting may help.
        logid: the service's log id, for support requests.
    """

    def __init__(
        self, message: str, *, code: int | None = None, retryable: bool = True, logid: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.logid = logid


class ConcurrencyError(VoiceGatewayError):
    """A single-owner resource was used from two places."""


# Codes for which retrying cannot help (authentication, permission, bad request, not found).
_FATAL_CODES = frozenset({400, 401, 403, 404, 4000, 4100, 4101, 4200})


def is_retryable(exc: BaseException) -> bool:
    """Decide whether reconnecting after ``exc`` may help."""
    if isinstance(exc, CloudError):
        if exc.code is not None and exc.code in _FATAL_CODES:
            return False
        return exc.retryable
    if isinstance(exc, (ConfigError, ProtocolError, CodecError)):
        return False
    return isinstance(exc, (OSError, TimeoutError, DeviceError))


def backoff(
    initial: float = 0.5,
    *,
    factor: float = 2.0,
    cap: float = 30.0,
    jitter: float = 0.25,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Delays before successive reconnection attempts: exponential, capped, with jitter.

    Each delay is ``min(cap, initial * factor**n)`` scaled by a random factor in
    ``[1 - jitter, 1]`` so that many devices behind one outage do not reconnect in step.
    """
    delay = initial
    while True:
        yield min(cap, delay) * (1.0 - jitter * rng())
        delay = min(cap, delay * factor)


def first_error(
    group: BaseExceptionGroup[BaseException], ignore: tuple[type[BaseException], ...] = ()
) -> BaseException | None:
    """The first exception in a TaskGroup's ``group`` (depth first) not of an ``ignore`` type.

    Callers re-raise it so that a CloudError or DeviceError from one task reaches the CLI
    as itself, not wrapped in an ExceptionGroup.
    """
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = first_error(exc, ignore)
        else:
            found = None if isinstance(exc, ignore) else exc
        if found is not None:
            return found
    return None
