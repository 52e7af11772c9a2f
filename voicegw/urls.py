"""URL rules shared by every client: the token never travels in clear text off this machine.

The config loader already refuses ``ws://`` and ``http://`` to anything but a loopback
emulator; the clients check again where the token is actually sent, so code that builds a
:class:`~voicegw.config.CloudConfig` by hand gets the same protection.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import CloudError

__all__ = ["is_loopback_url", "require_secure"]

_PLAIN = {"ws": "wss", "http": "https"}


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is a loopback address or ``localhost``."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure(url: str, what: str) -> None:
    """Refuse to send a token over plain ``ws://``/``http://`` to a non-loopback host.

    Raises:
        CloudError: not retryable; names the URL's scheme and what was being done.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in _PLAIN and not is_loopback_url(url):
        raise CloudError(
            f"{what}: refusing to send the token over plain {scheme}:// to a remote host; "
            f"use {_PLAIN[scheme]}://",
            retryable=False,
        )
