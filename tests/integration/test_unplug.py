"""Sound devices that disappear and come back (a USB unplug), on real PortAudio device paths.

**PulseAudio** (realtime-paced). Each device lives on a PulseAudio server of its own: the
microphone is the monitor of null sink ``micsink`` on one server, the speaker is null sink
``spksink`` on another, reached through ALSA as ``vmic`` and ``vspk`` (``type pulse`` with a
``server``). Unplugging is ``pactl unload-module`` of the device's null sink, plugging it back
is ``pactl load-module`` with the same name. One server per device matters: PulseAudio 16
"rescues" the streams of a vanished device by moving them to another one, which is what a
desktop does but not what an unplugged card does to a program holding it. With no other device
on its server, the stream really dies: PortAudio stops calling back, and opening ``vmic`` again
fails ("No such entity") until the sink is loaded again. ``pacat`` playing into ``micsink``
is the sound reaching the microphone; it dies with the device, as a real mic's signal would.

**ALSA file devices** (``test_a_pcm_removed_from_the_alsa_config_...``). A PCM removed from
the file named by ``ALSA_CONFIG_PATH`` is no longer listed once PortAudio is initialised again,
and listed again when it comes back: alsa-lib re-reads a changed configuration file. What the
file backend cannot simulate is a *running* stream losing its device: the ``file`` plugin over
a ``null`` slave never stops delivering (it repeats the last periods after EOF), and an infile
that is a FIFO whose writer goes quiet blocks PortAudio's callback thread inside ``read()``,
after which closing the stream blocks forever. The running-stream half is covered on
PulseAudio above.

Delays: the daemon is given a ``sleep`` that records each backoff delay it asks for and waits
only a few milliseconds, so the retries happen at test speed while the delays asked for are
checked against the policy.

Skipped only when ``pulseaudio`` is not installed (``scripts/setup`` installs it).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import MS

from voicegw.config import Config, parse_config
from voicegw.daemon import Daemon
from voicegw.emulator import Emulator
from voicegw.errors import DeviceError
from voicegw.io import device
from voicegw.io.device import PyAudioSink, PyAudioSource, find_device, list_devices

RATE = 16000
TIMEOUT = 20_000 * MS
needs_pulse = pytest.mark.skipif(
    shutil.which("pulseaudio") is None,
    reason="pulseaudio is not installed (scripts/setup installs pulseaudio, pulseaudio-utils "
    "and libasound2-plugins)",
)


async def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT) -> None:
    """Wait for ``condition`` (polled every 5 ms) or fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(5 * MS)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# ---------------------------------------------------------------- one PulseAudio per device


@dataclass
class Server:
    """A private PulseAudio holding one null sink that can be unplugged and plugged back."""

    sink: str
    socket: Path
    env: dict[str, str]
    pid: int = 0
    module: str | None = None
    players: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            ["pactl", "-s", f"unix:{self.socket}", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=5000 * MS,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def plug(self) -> None:
        assert self.module is None
        spec = f"rate={RATE} channels=1 format=s16le"
        self.module = self._run(
            "load-module", "module-null-sink", f"sink_name={self.sink}", *spec.split()
        )

    def unplug(self) -> None:
        assert self.module is not None
        self._run("unload-module", self.module)
        self.module = None

    def feed(self) -> subprocess.Popen[bytes]:
        """Play endless silence into the sink (the sound reaching a microphone)."""
        proc = subprocess.Popen(
            [
                "pacat",
                "-s",
                f"unix:{self.socket}",
                "--playback",
                "-d",
                self.sink,
                "--raw",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "/dev/zero",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.players.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.players:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=5000 * MS)
        if self.pid and _alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5000 * MS
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(10 * MS)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)


def _start_server(run: Path, sink: str) -> Server:
    home = run / "home"
    config = home / ".config"
    (config / "pulse").mkdir(parents=True)
    (config / "pulse" / "daemon.conf").write_text(
        f"default-sample-rate = {RATE}\nalternate-sample-rate = {RATE}\n"
    )
    folders = {"XDG_RUNTIME_DIR": str(run), "HOME": str(home), "XDG_CONFIG_HOME": str(config)}
    env = {k: v for k, v in os.environ.items() if k != "PULSE_SERVER"} | folders
    socket = run / "native"
    started = subprocess.run(
        [
            "pulseaudio",
            "-n",
            "--daemonize=yes",
            "--exit-idle-time=-1",
            "-L",
            f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=20_000 * MS,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"pulseaudio did not start: {started.stderr.strip()}")
    server = Server(sink, socket, env, pid=int((run / "pulse" / "pid").read_text()))
    server.plug()
    return server


@dataclass(frozen=True)
class Rig:
    mic: Server
    spk: Server
    tmp: Path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    for tool in ("pacat", "pactl"):
        if shutil.which(tool) is None:
            pytest.fail(f"pulseaudio is installed but {tool} is not (apt: pulseaudio-utils)")
    if device.portaudio_active():
        pytest.fail("PortAudio is already initialised: ALSA_CONFIG_PATH would not take effect")
    servers: list[Server] = []
    try:
        mic = _start_server(tmp_path / "mic", "micsink")
        servers.append(mic)
        spk = _start_server(tmp_path / "spk", "spksink")
        servers.append(spk)
        conf = tmp_path / "asound.conf"
        conf.write_text(
            f'pcm.vmic {{ type pulse device "micsink.monitor" server "unix:{mic.socket}" }}\n'
            f'pcm.vspk {{ type pulse device "spksink" server "unix:{spk.socket}" }}\n'
            'pcm.!default { type asym playback.pcm "vspk" capture.pcm "vmic" }\n'
        )
        with pytest.MonkeyPatch.context() as mp:
            for key in ("XDG_RUNTIME_DIR", "HOME", "XDG_CONFIG_HOME"):
                mp.setenv(key, mic.env[key])
            mp.delenv("PULSE_SERVER", raising=False)
            mp.setenv("ALSA_CONFIG_PATH", str(conf))
            mp.setenv("JACK_NO_START_SERVER", "1")
            names = [d.name for d in list_devices(probe=False)]
            if not {"vmic", "vspk"} <= set(names):
                pytest.fail(f"PortAudio does not list the PCMs of {conf}: {names}")
            yield Rig(mic, spk, tmp_path)
    finally:
        for server in servers:
            server.stop()
    assert not device.portaudio_active(), "a test left a PortAudio stream open"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, token="tok-" + secrets.token_hex(8), bot="echo") as emu:
        yield emu


class Waits:
    """A sleep for the daemon: records each delay it asks for, waits a few milliseconds."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        await asyncio.sleep(20 * MS)


def daemon_config(emu: Emulator, source: str, sink: str) -> Config:
    return parse_config(
        {
            "cloud": {"url": emu.url, "bot_id": "7000000000000000001"},
            "turn": {"mode": "ptt"},
            "output": {"sample_rate": RATE},
            "audio": {"source": source, "sink": sink},
            # The capture watchdog: no frame for 3 s means the microphone is gone (a pulse
            # capture stream here takes 0.1-2 s to deliver its first frame).
            "service": {"capture_timeout_s": 3.0},
        }
    )


def backoff_bounds(n: int, initial: float, cap: float) -> tuple[float, float]:
    """The range the n-th (0-based) jittered backoff delay falls in (jitter 0.25)."""
    top = min(cap, initial * 2**n)
    return top * 0.75, top


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(TIMEOUT):
            await task


def _frames(daemon: Daemon) -> int:
    source = daemon.source
    assert isinstance(source, PyAudioSource)
    return source.stats.frames


# ---------------------------------------------------------------- the microphone


@needs_pulse
async def test_an_unplugged_microphone_is_retried_and_found_again_by_name(
    rig: Rig, emulator: Emulator, tmp_path: Path
) -> None:
    rig.mic.feed()
    waits = Waits()
    cfg = daemon_config(emulator, "vmic", f"file:{tmp_path / 'out.wav'}")
    daemon = Daemon(cfg, emulator.token, sleep=waits)
    first = daemon.source
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: daemon.source is first and _frames(daemon) >= 25)
        assert daemon.health().capture_alive
        before = len(waits.asked)
        restarts = daemon.metrics.snapshot()["voicegw_capture_restarts"]
        rig.mic.unplug()  # the USB cable is pulled: the stream dies, pacat with it
        await wait_until(lambda: daemon.metrics.snapshot()["voicegw_capture_restarts"] > restarts)
        # Declared dead: the health check (and so the systemd watchdog) is no longer fed.
        assert not daemon.health().capture_alive
        # While the device is absent the daemon keeps trying, with a growing delay; it never
        # gives up (nor ends the run, as if the microphone had ended).
        await wait_until(lambda: len(waits.asked) >= before + 5)
        assert not task.done()
        assert not daemon.health().capture_alive
        absent = waits.asked[before:]
        for n, delay in enumerate(absent[:5]):
            low, high = backoff_bounds(n, 0.5, 10.0)
            assert low <= delay <= high, (n, absent)
        # Plugged back in, under the same name: found by name, and frames flow again.
        rig.mic.plug()
        rig.mic.feed()
        await wait_until(lambda: daemon.source is not first and _frames(daemon) >= 25)
        assert daemon.health().capture_alive
        again = daemon.source
        assert isinstance(again, PyAudioSource) and again.name == "vmic"
        assert daemon.connected.is_set() and daemon.gateway is not None
        assert daemon.metrics.snapshot()["voicegw_reconnects"] == 0.0  # the cloud never noticed
    finally:
        await stop(task)


# ---------------------------------------------------------------- the speaker


@needs_pulse
async def test_an_unplugged_speaker_does_not_stop_capture_and_plays_again_when_back(
    rig: Rig, emulator: Emulator
) -> None:
    rig.mic.feed()
    waits = Waits()
    daemon = Daemon(daemon_config(emulator, "vmic", "vspk"), emulator.token, sleep=waits)
    sink = daemon.sink
    assert isinstance(sink, PyAudioSink)
    beep = (np.sin(np.arange(RATE // 10) * 2 * np.pi * 440 / RATE) * 8000).astype(np.int16)

    async def play_until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                gw = daemon.gateway
                if gw is not None:
                    gw.play_local(beep)
                await asyncio.sleep(50 * MS)

    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: daemon.gateway is not None and _frames(daemon) >= 10)
        await play_until(lambda: sink.stats.played >= RATE // 5)
        rig.spk.unplug()
        # The next writes find the stream dead: counted as playback errors, nothing raised.
        await play_until(lambda: sink.stats.failures >= 1)
        gw = daemon.gateway
        assert gw is not None and gw.player.errors >= 1  # periods lost, counted live
        # Capture goes on: a second of frames after the speaker vanished, no restart.
        frames = _frames(daemon)
        await play_until(lambda: _frames(daemon) >= frames + 50)
        assert daemon.health().capture_alive
        assert daemon.metrics.snapshot()["voicegw_capture_restarts"] == 0.0
        assert not task.done()
        # The speaker comes back under the same name: the sink opens it again and plays.
        rig.spk.plug()
        played = sink.stats.played
        await play_until(lambda: sink.stats.played >= played + RATE // 5)
        assert sink.stats.failures >= 1
        assert daemon.metrics.snapshot()["voicegw_capture_restarts"] == 0.0
    finally:
        await stop(task)


@needs_pulse
async def test_a_speaker_absent_at_the_first_write_is_retried_with_backoff(rig: Rig) -> None:
    sink = PyAudioSink(find_device("vspk", "output", rate=RATE, channels=1), RATE, 1)
    rig.spk.unplug()  # after it was chosen, before its stream starts
    silence = np.zeros(RATE // 50, dtype=np.int16)
    try:
        with pytest.raises(DeviceError, match="vspk"):
            sink.write(silence)
        # Within the backoff delay nothing is tried: the error says so at once.
        with pytest.raises(DeviceError, match="retrying shortly"):
            sink.write(silence)
        rig.spk.plug()

        def writes() -> bool:
            try:
                sink.write(silence)
            except DeviceError:
                return False
            return True

        await wait_until(writes)
        await wait_until(lambda: sink.stats.callbacks >= 3)
    finally:
        sink.close()


# ---------------------------------------------------------------- ALSA file devices


def test_a_pcm_removed_from_the_alsa_config_is_not_found_until_it_returns(
    tmp_path: Path,
) -> None:
    if device.portaudio_active():
        pytest.fail("PortAudio is already initialised: ALSA_CONFIG_PATH would not take effect")
    infile = tmp_path / "in.raw"
    infile.write_bytes(np.zeros(RATE, dtype="<i2").tobytes())
    common = (
        "pcm.vnull { type null }\n"
        'pcm.!default { type asym playback.pcm "vnull" capture.pcm "vnull" }\n'
    )
    plugged = (
        f'pcm.vusbmic {{ type file slave {{ pcm {{ type null }} }} file "/dev/null" '
        f'infile "{infile}" format "raw" }}\n' + common
    )
    conf = tmp_path / "asound.conf"
    conf.write_text(plugged)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALSA_CONFIG_PATH", str(conf))
        assert find_device("vusbmic", "input").name == "vusbmic"
        conf.write_text(common)  # unplugged: the PCM is gone from the configuration
        with pytest.raises(DeviceError, match="no audio device matches 'vusbmic'"):
            find_device("vusbmic", "input")
        conf.write_text(plugged)  # and back, under the same name
        info = find_device("vusbmic", "input", rate=RATE, channels=1)
        source = PyAudioSource(info, RATE, 1, max_frames=5)

        async def read() -> int:
            return len([f async for f in source.frames()])

        try:
            assert asyncio.run(read()) == 5
        finally:
            source.close()
    assert not device.portaudio_active()
