"""The health endpoint over a real TCP socket on 127.0.0.1:0: /healthz, /metrics, errors."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from helpers import MS

from voicegw.errors import ConfigError
from voicegw.gateway import TurnReport
from voicegw.io.health import Health, HealthServer
from voicegw.metrics import Metrics, prometheus_available

TIMEOUT = 5000 * MS


@dataclass
class State:
    capture_alive: bool = True
    cloud_connected: bool = True

    def probe(self) -> Health:
        return Health(
            capture_alive=self.capture_alive,
            cloud_connected=self.cloud_connected,
            detail={"watchdog": None if self.capture_alive else "capture stalled"},
        )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


async def request(port: int, raw: bytes) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert status_line.startswith("HTTP/1.1 ")
    return Response(int(status_line.split()[1]), headers, body)


async def get(port: int, path: str, method: str = "GET") -> Response:
    return await request(port, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics()
    m.observe_turn(TurnReport(status="completed", speech_end=1.0, first_delta=2.2, first_play=2.3))
    m.cloud_connected.set(1)
    return m


@pytest.fixture
async def server(state: State, metrics: Metrics) -> AsyncIterator[HealthServer]:
    """Serves /metrics too when prometheus-client is installed (the tests of it skip if not)."""
    prometheus = prometheus_available()
    async with HealthServer(state.probe, metrics=metrics, port=0, prometheus=prometheus) as hs:
        yield hs


def needs_prometheus() -> None:
    pytest.importorskip("prometheus_client")


@pytest.fixture
def no_prometheus(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    yield


# ------------------------------------------------------------------ /healthz


async def test_healthz_is_200_with_json_state_when_healthy(server: HealthServer) -> None:
    r = await get(server.port, "/healthz")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-length"] == str(len(r.body))
    assert r.headers["connection"] == "close"
    state = r.json()
    assert state["status"] == "ok"
    assert state["capture_alive"] is True and state["cloud_connected"] is True
    assert state["watchdog"] is None
    summary = state["metrics"]
    assert isinstance(summary, dict)
    assert summary["voicegw_turns"] == {"completed": 1.0}
    assert summary["voicegw_play_latency_ms"] == {"count": 1, "p50": 1300.0, "p90": 1300.0}


async def test_healthz_is_503_when_capture_is_dead(server: HealthServer, state: State) -> None:
    state.capture_alive = False
    r = await get(server.port, "/healthz")
    assert r.status == 503
    assert r.json()["status"] == "unhealthy"
    assert r.json()["watchdog"] == "capture stalled"


async def test_healthz_is_503_when_disconnected(server: HealthServer, state: State) -> None:
    state.cloud_connected = False
    r = await get(server.port, "/healthz?verbose=1")
    assert r.status == 503
    assert r.json()["cloud_connected"] is False
    state.cloud_connected = True
    assert (await get(server.port, "/healthz")).status == 200


async def test_a_failing_probe_answers_500(metrics: Metrics) -> None:
    def probe() -> Health:
        raise RuntimeError("probe broke")

    async with HealthServer(probe, metrics=metrics, port=0, prometheus=False) as hs:
        r = await get(hs.port, "/healthz")
    assert r.status == 500
    assert r.json() == {"status": "error"}


# ------------------------------------------------------------------ /metrics


async def test_metrics_is_prometheus_text_with_our_names(server: HealthServer) -> None:
    needs_prometheus()
    r = await get(server.port, "/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    text = r.body.decode()
    for name in (
        "voicegw_turns_total",
        "voicegw_reply_latency_seconds_bucket",
        "voicegw_play_latency_seconds_sum",
        "voicegw_playback_underruns_total",
        "voicegw_capture_overflows_total",
        "voicegw_dropped_mic_frames_total",
        "voicegw_playback_flushes_total",
        "voicegw_reconnects_total",
        "voicegw_capture_restarts_total",
        "voicegw_cloud_connected 1.0",
    ):
        assert name in text, name
    assert "python_gc_objects_collected_total" not in text  # not the global registry


async def test_head_sends_headers_only(server: HealthServer) -> None:
    needs_prometheus()
    r = await get(server.port, "/metrics", method="HEAD")
    assert r.status == 200
    assert r.body == b""
    assert int(r.headers["content-length"]) > 0


async def test_metrics_can_be_turned_off(state: State, metrics: Metrics) -> None:
    async with HealthServer(state.probe, metrics=metrics, port=0, prometheus=False) as hs:
        assert (await get(hs.port, "/metrics")).status == 404
        assert (await get(hs.port, "/healthz")).status == 200


async def test_without_prometheus_client_metrics_are_refused_at_start(
    state: State, no_prometheus: None
) -> None:
    with pytest.raises(ConfigError, match=r"voicegw\[metrics\]"):
        HealthServer(state.probe, metrics=Metrics(), port=0)
    # /healthz alone needs nothing extra, and still reports the counters.
    async with HealthServer(state.probe, metrics=Metrics(), port=0, prometheus=False) as hs:
        r = await get(hs.port, "/healthz")
    assert r.status == 200
    assert "voicegw_reconnects" in r.json()["metrics"]  # type: ignore[operator]


# ------------------------------------------------------------------ errors


async def test_unknown_path_is_404(server: HealthServer) -> None:
    r = await get(server.port, "/nope")
    assert r.status == 404


async def test_other_methods_are_405(server: HealthServer) -> None:
    r = await request(server.port, b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 405
    assert r.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "raw",
    [b"GARBAGE\r\n\r\n", b"GET /healthz\r\n\r\n", b"GET /healthz SPDY/3\r\n\r\n"],
)
async def test_malformed_requests_are_400(server: HealthServer, raw: bytes) -> None:
    assert (await request(server.port, raw)).status == 400


async def test_oversized_requests_are_431(server: HealthServer) -> None:
    raw = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert (await request(server.port, raw)).status == 431


async def test_a_silent_client_does_not_hold_up_close(state: State) -> None:
    hs = HealthServer(state.probe, port=0)
    await hs.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", hs.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # never finishes its request
    await writer.drain()
    await asyncio.sleep(0)
    await asyncio.wait_for(hs.aclose(), TIMEOUT)
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    await writer.wait_closed()


async def test_serve_runs_in_a_task_group_until_cancelled(state: State) -> None:
    hs = HealthServer(state.probe, port=0)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(hs.serve())
        port = 0
        for _ in range(1000):  # yield until the server is listening
            await asyncio.sleep(0)
            try:
                port = hs.port
                break
            except RuntimeError:
                continue
        assert (await get(port, "/healthz")).status == 200
        task.cancel()
    assert task.cancelled()
    with pytest.raises(RuntimeError, match="not started"):
        _ = hs.port


# ------------------------------------------------------------------ binding


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com", ""])
def test_non_loopback_bind_is_refused(state: State, host: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        HealthServer(state.probe, host=host, port=0)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_hosts_are_accepted(state: State, host: str) -> None:
    HealthServer(state.probe, host=host, port=0)


def test_remote_bind_needs_explicit_permission(state: State) -> None:
    HealthServer(state.probe, host="0.0.0.0", port=0, allow_remote=True)


@pytest.mark.parametrize("port", [-1, 65536])
def test_bad_ports_are_refused(state: State, port: int) -> None:
    with pytest.raises(ConfigError, match="not a TCP port"):
        HealthServer(state.probe, port=port)


async def test_starting_twice_is_an_error(state: State) -> None:
    async with HealthServer(state.probe, port=0) as hs:
        with pytest.raises(RuntimeError, match="already started"):
            await hs.start()
