"""The websockets adapter for ``/v1/chat`` (and, through :func:`open_ws`, TTS and ASR).

It opens the connection (token in the ``Authorization`` header, never in logs), converts
websockets' exceptions into :class:`CloudError` at this boundary, and moves text frames between
the socket and a sans-I/O :class:`~voicegw.protocol.session.Session`. One task owns ``recv``.
Audio sockets use ``compression=None``: deflate saves ~25 % on base64 PCM but halves throughput
(environment.md 4f).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from ..config import CloudConfig
from ..errors import CloudError
from ..logsetup import redact_library_loggers
from ..urls import require_secure

__all__ = [
    "MAX_FRAME_BYTES",
    "FrameObserver",
    "chat_url",
    "open_chat",
    "open_ws",
    "speech_url",
    "transcriptions_url",
]

log = logging.getLogger(__name__)
redact_library_loggers()

#: Largest inbound frame accepted. Real deltas are ~20 KB (spec 2.5.5); 1 MiB leaves room.
MAX_FRAME_BYTES = 1 << 20

#: Called with (direction ">" or "<", frame text) for every frame; used by the demo timeline.
FrameObserver = Callable[[str, str], None]

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_STATUS_CODES = {400: 4000, 401: 4100, 403: 4101, 404: 4200, 429: 4013}


def chat_url(cfg: CloudConfig) -> str:
    """The full ``/v1/chat`` URL with its query parameters (spec 1.2). No token in it."""
    query = {"bot_id": cfg.bot_id}
    if cfg.workflow_id:
        query["workflow_id"] = cfg.workflow_id
    if cfg.device_id:
        query["device_id"] = str(cfg.device_id)
    return f"{cfg.chat_url}?{urlencode(query)}"


def speech_url(cfg: CloudConfig) -> str:
    """The streaming TTS URL, ``/v1/audio/speech`` (spec 4; no query parameters)."""
    return cfg.url.rstrip("/") + "/v1/audio/speech"


def transcriptions_url(cfg: CloudConfig) -> str:
    """The streaming ASR URL, ``/v1/audio/transcriptions`` (spec 5; no query parameters)."""
    return cfg.url.rstrip("/") + "/v1/audio/transcriptions"


@contextlib.asynccontextmanager
async def open_chat(
    cfg: CloudConfig, token: str, *, user_agent: str = "voicegw"
) -> AsyncIterator[ClientConnection]:
    """Connect to ``/v1/chat``; the connection closes when the block exits.

    Raises:
        CloudError: the upgrade was refused (``code`` is the Coze code mapped from the HTTP
            status, ``retryable`` says whether reconnecting may help) or the network failed.
    """
    async with open_ws(cfg, token, chat_url(cfg), user_agent=user_agent) as ws:
        yield ws


@contextlib.asynccontextmanager
async def open_ws(
    cfg: CloudConfig, token: str, url: str, *, user_agent: str = "voicegw"
) -> AsyncIterator[ClientConnection]:
    """Connect to any of the service's WebSocket APIs at ``url`` (token in the header).

    Raises:
        CloudError: as for :func:`open_chat`; also for plain ``ws://`` to a remote host.
    """
    require_secure(url, "connect")
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            user_agent_header=user_agent,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_interval_s,
            open_timeout=cfg.connect_timeout_s,
            close_timeout=2.0,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        logid = exc.response.headers.get("X-Tt-Logid", "")
        raise CloudError(
            f"the service refused the connection: HTTP {status}"
            + (f" (logid {logid})" if logid else ""),
            code=_STATUS_CODES.get(status, status),
            retryable=status in _RETRYABLE_STATUS,
            logid=logid,
        ) from None
    except InvalidURI as exc:
        raise CloudError(f"bad service URL: {exc}", retryable=False) from None
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        where = url.split("?", 1)[0]
        raise CloudError(f"cannot connect to {where}: {exc}", retryable=True) from None
    try:
        yield ws
    finally:
        await ws.close()


def is_connection_closed(exc: BaseException) -> bool:
    """Whether ``exc`` means the socket went away (as opposed to a bug)."""
    return isinstance(exc, websockets.ConnectionClosed)
