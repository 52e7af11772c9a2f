"""PyAudio on a realtime-paced device: a private PulseAudio with null sinks, reached via ALSA.

The ``pulse`` fixture starts its own PulseAudio (runtime dir, HOME and config in a temporary
folder; a unix socket with anonymous auth; null sinks ``micsink`` and ``spksink`` at 16 kHz
mono) and stops it by its pid at the end. ALSA reaches it through
``tests/integration/alsa/asound-pulse.conf``: ``vspk`` plays into ``spksink`` and ``vmic``
records ``micsink.monitor``. ``parec`` records what reached the speaker sink; ``pacat`` plays
into the microphone sink. ``ALSA_CONFIG_PATH`` is isolated the same way as in
``test_device_alsa.py``: set for this module only, while PortAudio is not initialised.

Unlike ALSA's null plugin, these devices run on a clock, so a producer can stall and a flush
can catch audio that has not played yet. The tests assert behaviour (content after alignment,
counters), never durations. Two quirks of the null sink: its monitor delivers nothing while no
stream plays into the sink, and the first few hundred milliseconds of a stream may be missing
from the monitor, so payloads start after a silence pre-roll and are found by alignment.

Skipped only when ``pulseaudio`` is not installed (``scripts/setup`` installs it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import string
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray

from voicegw.errors import DeviceError
from voicegw.io import device
from voicegw.io.device import PyAudioSink, PyAudioSource, list_devices

pytestmark = pytest.mark.skipif(
    shutil.which("pulseaudio") is None,
    reason="pulseaudio is not installed (scripts/setup installs pulseaudio, pulseaudio-utils "
    "and libasound2-plugins)",
)

TEMPLATE = Path(__file__).parent / "alsa" / "asound-pulse.conf"
RATE = 16000
RAW = ["--raw", "--format=s16le", f"--rate={RATE}", "--channels=1", "--latency-msec=20"]


@dataclass(frozen=True)
class Pulse:
    env: dict[str, str]
    """Environment for pacat/parec/pactl: the private server and runtime folders."""
    tmp: Path
    speech: NDArray[np.int16]


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody has reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _stop_daemon(pid: int) -> None:
    """SIGTERM the daemon this module started (by its pid file), then wait for it to exit."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5000 * MS
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(10 * MS)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def pulse(
    tmp_path_factory: pytest.TempPathFactory, speech16k: tuple[NDArray[np.int16], int]
) -> Iterator[Pulse]:
    for tool in ("pacat", "parec", "pactl"):
        if shutil.which(tool) is None:
            pytest.fail(f"pulseaudio is installed but {tool} is not (apt: pulseaudio-utils)")
    if device.portaudio_active():
        pytest.fail("PortAudio is already initialised: ALSA_CONFIG_PATH would not take effect")
    speech, rate = speech16k
    assert rate == RATE
    run = tmp_path_factory.mktemp("pulse")
    home = run / "home"
    config = home / ".config"
    (config / "pulse").mkdir(parents=True)
    # An idle null sink may switch to the "alternate" rate (48 kHz) when a 48 kHz stream
    # connects, as format probing does; pinning both rates keeps everything bit-exact.
    (config / "pulse" / "daemon.conf").write_text(
        f"default-sample-rate = {RATE}\nalternate-sample-rate = {RATE}\n"
    )
    folders = {"XDG_RUNTIME_DIR": str(run), "HOME": str(home), "XDG_CONFIG_HOME": str(config)}
    env = {k: v for k, v in os.environ.items() if k != "PULSE_SERVER"} | folders
    socket = run / "native"
    sink = f"rate={RATE} channels=1 format=s16le"
    started = subprocess.run(
        [
            "pulseaudio",
            "-n",
            "--daemonize=yes",
            "--exit-idle-time=-1",
            "-L",
            f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
            "-L",
            f"module-null-sink sink_name=micsink {sink}",
            "-L",
            f"module-null-sink sink_name=spksink {sink}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=20_000 * MS,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"pulseaudio did not start: {started.stderr.strip()}")
    pid = int((run / "pulse" / "pid").read_text())
    env["PULSE_SERVER"] = f"unix:{socket}"
    conf = run / "asound.conf"
    conf.write_text(
        string.Template(TEMPLATE.read_text()).substitute(
            mic_source="micsink.monitor", speaker_sink="spksink"
        )
    )
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key in (*folders, "PULSE_SERVER"):
                mp.setenv(key, env[key])
            mp.setenv("ALSA_CONFIG_PATH", str(conf))
            mp.setenv("JACK_NO_START_SERVER", "1")
            names = [d.name for d in list_devices(probe=False)]
            if not {"vmic", "vspk"} <= set(names):
                pytest.fail(f"PortAudio does not list the PCMs of {conf}: {names}")
            yield Pulse(env, run, speech)
    finally:
        _stop_daemon(pid)
    assert not device.portaudio_active(), "a test left a PortAudio stream open"


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait for ``condition`` (polled each millisecond) or fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(MS)


def located(haystack: bytes, payload: bytes) -> int:
    """Byte offset of ``payload`` in ``haystack`` at a sample boundary, or -1."""
    at = haystack.find(payload)
    while at >= 0 and at % 2:
        at = haystack.find(payload, at + 1)
    return at


def _pactl_lists(pulse: Pulse, what: str) -> bool:
    done = subprocess.run(
        ["pactl", "list", "short", what],
        env=pulse.env,
        capture_output=True,
        text=True,
        timeout=5000 * MS,
        check=True,
    )
    return bool(done.stdout.strip())


@contextmanager
def speaker_recording(pulse: Pulse, path: Path) -> Iterator[None]:
    """Record ``spksink.monitor`` into ``path`` with parec for the duration of the block."""
    with path.open("wb") as out:
        proc = subprocess.Popen(
            ["parec", "-d", "spksink.monitor", *RAW],
            env=pulse.env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=5000 * MS)


def silence(ms: int) -> NDArray[np.int16]:
    return np.zeros(RATE * ms // 1000, dtype=np.int16)


async def test_paced_playback_is_recorded_bit_exact(pulse: Pulse) -> None:
    payload = pulse.speech[RATE : 2 * RATE]  # 1 s with speech in it
    recording = pulse.tmp / "playback.raw"
    with speaker_recording(pulse, recording):
        await wait_until(lambda: _pactl_lists(pulse, "source-outputs"), 5000 * MS)
        sink = PyAudioSink("vspk", RATE, 1, buffer_ms=3000)
        try:
            sink.write(silence(1000))
            sink.write(payload)
            sink.write(silence(300))
            async with asyncio.timeout(10_000 * MS):
                await sink.drain()
            await wait_until(
                lambda: located(recording.read_bytes(), payload.tobytes()) >= 0, 5000 * MS
            )
        finally:
            sink.close()
    assert sink.stats.played == RATE * 23 // 10
    assert sink.stats.dropped == 0
    assert sink.stats.underruns <= 1  # only the end of the audio, if it was reached yet


async def test_a_stalled_producer_counts_one_underrun_per_stall(pulse: Pulse) -> None:
    burst = pulse.speech[RATE : RATE + RATE // 5]  # 200 ms
    sink = PyAudioSink("vspk", RATE, 1, buffer_ms=1000)
    try:
        for stall in (1, 2):
            sink.write(burst)
            async with asyncio.timeout(5000 * MS):
                await sink.drain()
            await wait_until(lambda: sink.stats.underruns >= stall, 5000 * MS)  # noqa: B023
            # While the producer stays stalled the device keeps asking: silence, not new counts.
            padded = sink.stats.padded + 5 * sink.period
            await wait_until(lambda: sink.stats.padded >= padded, 5000 * MS)  # noqa: B023
            assert sink.stats.underruns == stall
    finally:
        sink.close()
    assert sink.stats.played == 2 * len(burst)
    assert sink.stats.padded > 0


async def test_flush_discards_what_has_not_played_yet(pulse: Pulse) -> None:
    audio = pulse.speech[RATE : 3 * RATE]  # 2 s
    sink = PyAudioSink("vspk", RATE, 1, buffer_ms=3000)
    try:
        sink.write(audio)
        # Paced: half a second in, most of the audio is still waiting in the ring.
        await wait_until(lambda: sink.stats.played >= RATE // 2, 5000 * MS)
        flushed = sink.flush()
        assert flushed > RATE // 2
        assert sink.queued_ms == 0
        await wait_until(lambda: sink.stats.played + flushed == len(audio), 1000 * MS)
        async with asyncio.timeout(1000 * MS):
            await sink.drain()  # nothing left: returns at once
        callbacks = sink.stats.callbacks
        await wait_until(lambda: sink.stats.callbacks >= callbacks + 5, 5000 * MS)
        assert sink.stats.underruns == 0  # a flush is not a stall
        assert sink.stats.flushed == flushed
    finally:
        sink.close()


async def test_paced_capture_matches_after_alignment(pulse: Pulse) -> None:
    payload = pulse.speech[RATE : 2 * RATE]
    clip = pulse.tmp / "mic.raw"
    np.concatenate([silence(500), payload, silence(300)]).astype("<i2").tofile(clip)
    source = PyAudioSource("vmic", RATE, 1, queue_ms=10_000, stall_s=None)
    source.start()
    player = subprocess.Popen(
        ["pacat", "--playback", "-d", "micsink", *RAW, str(clip)],
        env=pulse.env,
        stderr=subprocess.PIPE,
    )
    captured = bytearray()
    try:
        async with asyncio.timeout(10_000 * MS):
            async for frame in source.frames():
                assert frame.shape == (320,)
                captured += frame.tobytes()
                if located(bytes(captured), payload.tobytes()) >= 0:
                    break
    finally:
        source.close()
        player.wait(timeout=10_000 * MS)
    assert located(bytes(captured), payload.tobytes()) >= 0
    assert source.stats.dropped == 0


async def test_a_silent_device_trips_the_capture_watchdog(pulse: Pulse) -> None:
    # Nothing plays into micsink: after at most a few buffers as the stream starts, its
    # monitor goes quiet, as a capture device does when its USB cable is pulled.
    source = PyAudioSource("vmic", RATE, 1, stall_s=300 * MS)
    try:
        with pytest.raises(DeviceError, match="no audio from 'vmic'"):
            async with asyncio.timeout(5000 * MS):
                async for _ in source.frames():
                    pass
    finally:
        source.close()


async def test_a_full_capture_queue_drops_the_oldest_on_a_paced_device(pulse: Pulse) -> None:
    clip = pulse.tmp / "mic-long.raw"
    pulse.speech[:RATE].astype("<i2").tofile(clip)
    source = PyAudioSource("vmic", RATE, 1, queue_ms=100, stall_s=None)
    source.start()
    player = subprocess.Popen(
        ["pacat", "--playback", "-d", "micsink", *RAW, str(clip)],
        env=pulse.env,
        stderr=subprocess.PIPE,
    )
    try:
        # The consumer does not read; the device keeps delivering on its own clock.
        await wait_until(lambda: source.stats.dropped >= 15, 10_000 * MS)
    finally:
        source.close()
        player.wait(timeout=10_000 * MS)
    assert source.queued == 5
    assert source.stats.frames >= 20
