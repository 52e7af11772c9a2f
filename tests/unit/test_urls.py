"""The token never travels in clear text to a remote host, whoever built the URL."""

from __future__ import annotations

import pytest

from voicegw.errors import CloudError
from voicegw.urls import is_loopback_url, require_secure


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("ws://127.0.0.1:8765/v1/chat", True),
        ("http://127.0.0.2:9/x", True),
        ("http://[::1]:8766", True),
        ("ws://localhost:1", True),
        ("wss://ws.coze.cn/v1/chat", False),
        ("http://192.168.1.20:8766", False),
        ("http://[::1", False),  # malformed: never treated as safe
    ],
)
def test_loopback_hosts(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


@pytest.mark.parametrize(
    "url", ["ws://ws.coze.cn/v1/chat", "http://api.coze.cn/v1/audio/rooms", "http://10.0.0.5:80"]
)
def test_plain_schemes_to_remote_hosts_are_refused(url: str) -> None:
    with pytest.raises(CloudError) as info:
        require_secure(url, "create room")
    assert not info.value.retryable
    assert "create room" in str(info.value) and "plain" in str(info.value)


@pytest.mark.parametrize(
    "url", ["wss://ws.coze.cn/v1/chat", "https://api.coze.cn/x", "http://127.0.0.1:8766/x"]
)
def test_secure_or_loopback_urls_pass(url: str) -> None:
    require_secure(url, "connect")
