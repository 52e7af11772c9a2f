"""The real PyAudio path on ALSA's ``file`` and ``null`` plugins: no sound card, no daemon.

``tests/integration/alsa/asound-file.conf`` (templated with this module's temporary paths)
defines ``vcap``/``vcap48`` (capture from raw fixtures), ``vplay`` (playback into
``out.raw``), ``vnull``, ``vdac48`` (playback at 48 kHz only) and ``default``. None of them is
paced: capture and playback run as fast as the CPU allows, so these tests check content and
bookkeeping, never timing (``test_device_pulse.py`` covers a realtime-paced device).

How ``ALSA_CONFIG_PATH`` is isolated
    PortAudio builds its device list when it is initialised, and alsa-lib re-reads its
    configuration whenever the ``ALSA_CONFIG_PATH`` it sees changes. So what matters is that
    PortAudio is not initialised while the variable changes. In voicegw, only
    :mod:`voicegw.io.device` initialises PortAudio, through one reference-counted owner that
    terminates it whenever no listing or stream holds it. The ``rig`` fixture therefore runs
    in-process: it fails if PortAudio is initialised when it starts, sets the variable for
    this module only (``MonkeyPatch``, undone at the end), checks that PortAudio then lists
    the test PCMs (so a stale device list fails loudly instead of reaching real devices), and
    checks at the end that every test released PortAudio. One test also runs
    ``python -m voicegw.io.device`` in a fresh interpreter with the same environment.
"""

from __future__ import annotations

import asyncio
import os
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray

from voicegw.audio import API_RATES
from voicegw.errors import DeviceError
from voicegw.io import device
from voicegw.io.device import (
    DeviceInfo,
    Direction,
    PyAudioSink,
    PyAudioSource,
    choose_format,
    find_device,
    list_devices,
    map_device_errors,
    name_matches,
)

TEMPLATE = Path(__file__).parent / "alsa" / "asound-file.conf"
A52_PLUGIN = [
    *Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_a52.so"),
    *Path("/usr/lib/alsa-lib").glob("libasound_module_pcm_a52.so"),
]
needs_a52 = pytest.mark.skipif(
    not A52_PLUGIN,
    reason="ALSA's a52 plugin (libasound2-plugins) is not installed; scripts/setup installs it",
)


@dataclass(frozen=True)
class Rig:
    conf: Path
    playback: Path
    mono16k: NDArray[np.int16]
    stereo48k: NDArray[np.int16]


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory,
    speech16k: tuple[NDArray[np.int16], int],
    speech48k_stereo: tuple[NDArray[np.int16], int],
) -> Iterator[Rig]:
    if device.portaudio_active():
        pytest.fail("PortAudio is already initialised: ALSA_CONFIG_PATH would not take effect")
    tmp = tmp_path_factory.mktemp("alsa")
    mono, rate = speech16k
    stereo, rate48 = speech48k_stereo
    assert rate == 16000 and rate48 == 48000 and stereo.shape[1] == 2
    # The file plugin reads raw bytes in the stream's format: little-endian int16, interleaved.
    (tmp / "speech16k.raw").write_bytes(mono.astype("<i2").tobytes())
    (tmp / "speech48k_stereo.raw").write_bytes(np.ascontiguousarray(stereo, "<i2").tobytes())
    playback = tmp / "out.raw"
    conf = tmp / "asound.conf"
    conf.write_text(
        string.Template(TEMPLATE.read_text()).substitute(
            capture16k=tmp / "speech16k.raw",
            capture48k=tmp / "speech48k_stereo.raw",
            playback=playback,
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALSA_CONFIG_PATH", str(conf))
        mp.setenv("JACK_NO_START_SERVER", "1")
        names = [d.name for d in list_devices(probe=False)]
        if "vcap" not in names:
            pytest.fail(f"PortAudio does not list the PCMs of {conf}: {names}")
        yield Rig(conf, playback, mono, stereo)
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


# ---------------------------------------------------------------- listing and selection


def test_list_devices_shows_the_virtual_pcms_and_their_rates(rig: Rig) -> None:
    devices = {d.name: d for d in list_devices()}
    assert {"vcap", "vcap48", "vplay", "vnull", "default"} <= devices.keys()
    for name in ("vcap", "vplay", "default"):
        info = devices[name]
        assert info.host_api == "ALSA"
        assert info.probed == {"input", "output"}
        for direction in ("input", "output"):
            assert info.rates(direction, 1) == API_RATES
            assert info.rates(direction, 2) == API_RATES
        assert f"'{name}'" in info.describe()
    assert devices["default"].is_default_input and devices["default"].is_default_output
    assert not devices["vcap"].busy


def test_find_device_by_stable_name_pattern(rig: Rig) -> None:
    # An exact name wins over a longer name that also contains it.
    assert find_device("VCAP", "input").name == "vcap"
    assert find_device("vcap4*", "input").name == "vcap48"
    assert find_device("seeed-2mic|vplay", "output").name == "vplay"
    assert find_device("default", "output").name == "default"
    info = find_device("vcap", "input", rate=16000, channels=1)
    assert info.probed == {"input"}
    assert info.supports("input", 16000, 1)
    assert choose_format(info, [24000], 1) == (24000, 1)


def test_an_index_is_accepted_with_a_warning(rig: Rig) -> None:
    first = list_devices(probe=False)[0]
    with pytest.warns(UserWarning, match="by index"):
        assert find_device(str(first.index), "input").name == first.name


def test_a_missing_device_names_the_pattern_and_lists_what_exists(rig: Rig) -> None:
    with pytest.raises(DeviceError) as caught:
        find_device("seeed-2mic|seeed2micvoicec", "input")
    message = str(caught.value)
    assert "seeed-2mic|seeed2micvoicec" in message
    for name in ("vcap", "vplay", "default"):
        assert repr(name) in message


def test_a_missing_device_fails_when_a_stream_is_made(rig: Rig) -> None:
    with pytest.raises(DeviceError, match="no audio device matches 'USB Audio'"):
        PyAudioSink("USB Audio", 48000, 2)
    assert not device.portaudio_active()


def test_list_devices_in_a_fresh_interpreter(rig: Rig) -> None:
    env = {**os.environ, "ALSA_CONFIG_PATH": str(rig.conf), "JACK_NO_START_SERVER": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "voicegw.io.device"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30_000 * MS,
    )
    assert done.returncode == 0, done.stderr
    assert "'vcap' (ALSA)" in done.stdout
    assert "'vplay' (ALSA)" in done.stdout
    assert "16000" in done.stdout


# ---------------------------------------------------------------- capture


async def capture_all(source: PyAudioSource) -> list[NDArray[np.int16]]:
    try:
        async with asyncio.timeout(10_000 * MS):
            return [frame async for frame in source.frames()]
    finally:
        source.close()


async def test_capture_16k_mono_is_bit_exact_and_in_order(rig: Rig) -> None:
    n = len(rig.mono16k) // 320
    source = PyAudioSource("vcap", 16000, 1, max_frames=n, queue_ms=(n + 1) * 20)
    frames = await capture_all(source)
    assert len(frames) == n
    assert all(f.shape == (320,) and f.dtype == np.int16 for f in frames)
    np.testing.assert_array_equal(np.concatenate(frames), rig.mono16k[: n * 320])
    assert source.stats.frames == n
    assert source.stats.dropped == 0
    assert source.last_frame_at is not None
    assert source.ended
    assert not device.portaudio_active()


async def test_capture_48k_stereo_is_bit_exact_and_in_order(rig: Rig) -> None:
    n = 200  # 4 s of the 7.9 s fixture
    info = find_device("vcap48", "input", rate=48000, channels=2)
    source = PyAudioSource(info, 48000, 2, max_frames=n, queue_ms=(n + 1) * 20)
    frames = await capture_all(source)
    assert [f.shape for f in frames] == [(960, 2)] * n
    np.testing.assert_array_equal(np.concatenate(frames), rig.stereo48k[: n * 960])
    assert source.stats.dropped == 0


async def test_a_full_capture_queue_drops_the_oldest_frames(rig: Rig) -> None:
    source = PyAudioSource("vcap", 16000, 1, max_frames=50, queue_ms=100)
    source.start()
    try:
        await wait_until(lambda: source.ended, 5000 * MS)
        assert source.queued == 5
    finally:
        source.close()
    frames = await capture_all(source)  # queued frames survive close()
    np.testing.assert_array_equal(np.concatenate(frames), rig.mono16k[45 * 320 : 50 * 320])
    assert source.stats.dropped == 45


async def test_start_and_close_are_idempotent(rig: Rig) -> None:
    source = PyAudioSource("vcap", 16000, 1, max_frames=10)
    source.start()
    source.start()
    assert device.portaudio_active()
    source.close()
    source.close()
    assert not device.portaudio_active()
    with pytest.raises(DeviceError, match="closed"):
        source.start()
    assert len(await capture_all(source)) <= 10


# ---------------------------------------------------------------- playback


async def play(sink: PyAudioSink, samples: NDArray[np.int16]) -> None:
    try:
        sink.write(samples)
        async with asyncio.timeout(5000 * MS):
            await sink.drain()
    finally:
        sink.close()


async def test_playback_lands_bit_exact_in_the_file(rig: Rig) -> None:
    payload = rig.mono16k[16000:48000]
    sink = PyAudioSink("vplay", 16000, 1, buffer_ms=3000)
    await play(sink, payload)
    out = rig.playback.read_bytes()
    at = located(out, payload.tobytes())
    assert at >= 0, "payload not found in the playback file"
    # Before the payload there is only PortAudio's priming silence.
    assert not out[:at].strip(b"\0")
    assert sink.stats.played == len(payload)
    assert sink.stats.dropped == 0
    assert not device.portaudio_active()


async def test_stereo_playback_duplicates_mono_to_both_channels(rig: Rig) -> None:
    left = np.ascontiguousarray(rig.stereo48k[48000:96000, 0])
    sink = PyAudioSink("vplay", 48000, 2, buffer_ms=1500)
    await play(sink, left)
    expected = np.column_stack([left, left]).tobytes()
    assert located(rig.playback.read_bytes(), expected) >= 0


async def test_a_full_playback_ring_drops_the_oldest_audio(rig: Rig) -> None:
    audio = rig.mono16k[16000:48000]  # 2 s into a 400 ms ring
    sink = PyAudioSink("vplay", 16000, 1, buffer_ms=400)
    await play(sink, audio)
    assert sink.stats.dropped == 32000 - 6400
    out = rig.playback.read_bytes()
    assert located(out, audio[-6400:].tobytes()) >= 0
    assert located(out, audio[-6401:].tobytes()) < 0


def test_write_takes_mono_int16_only(rig: Rig) -> None:
    sink = PyAudioSink("vnull", 16000, 2)
    try:
        with pytest.raises(ValueError, match="int16"):
            sink.write(np.zeros(10, dtype=np.float32))
        with pytest.raises(ValueError, match="mono"):
            sink.write(np.zeros((10, 2), dtype=np.int16))
    finally:
        sink.close()
    with pytest.raises(DeviceError, match="closed"):
        sink.write(np.zeros(10, dtype=np.int16))


# ---------------------------------------------------------------- unsupported formats


@needs_a52
def test_an_unsupported_rate_names_the_device_rate_and_supported_rates(rig: Rig) -> None:
    with pytest.raises(DeviceError) as caught:
        find_device("vdac48", "output", rate=16000)
    message = str(caught.value)
    assert "'vdac48'" in message and "16000 Hz" in message and "48000 Hz" in message


@needs_a52
def test_portaudio_invalid_sample_rate_becomes_a_readable_error(rig: Rig) -> None:
    # An unprobed DeviceInfo goes straight to Pa_OpenStream, which fails with -9997.
    info = next(d for d in list_devices(probe=False) if d.name == "vdac48")
    sink = PyAudioSink(info, 16000, 2)
    with pytest.raises(DeviceError) as caught:
        sink.start()
    message = str(caught.value)
    assert "'vdac48'" in message and "-9997" in message
    assert "at 16000 Hz" in message and "48000 Hz" in message
    assert isinstance(caught.value.__cause__, OSError)
    sink.close()
    assert not device.portaudio_active()


@needs_a52
def test_choose_format_falls_back_to_what_the_device_does(rig: Rig) -> None:
    info = find_device("vdac48", "output")
    assert info.rates("output", 2) == (48000,)
    assert choose_format(info, [24000, 16000], 1, direction="output") == (48000, 1)
    with pytest.raises(DeviceError, match="cannot capture"):
        find_device("vdac48", "input")


# ---------------------------------------------------------------- pure helpers (no PortAudio)


def _info(**formats: tuple[int, ...]) -> DeviceInfo:
    """A USB card whose formats are given as ``in1=(rates...)``, ``out2=(rates...)``."""
    triples: set[tuple[Direction, int, int]] = set()
    for key, rates in formats.items():
        direction: Direction = "output" if key.startswith("out") else "input"
        triples.update((direction, int(key[-1]), rate) for rate in rates)
    return DeviceInfo(
        index=3,
        name="USB Audio Device: - (hw:1,0)",
        host_api="ALSA",
        max_input_channels=1,
        max_output_channels=2,
        default_rate=48000.0,
        formats=frozenset(triples),
        probed=frozenset({"input", "output"}),
    )


def test_name_patterns() -> None:
    name = "seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:1,0)"
    assert name_matches("SEEED-2MIC", name)
    assert name_matches("nothing|seeed2micvoicec|seeed-2mic", name)
    assert name_matches("seeed-*(hw:1,0)", name)
    assert not name_matches("seeed-*(hw:2,0)", name)
    assert not name_matches("USB Audio", name)
    assert not name_matches("|", name)


def test_choose_format_prefers_the_api_rate_then_a_channel_pick_then_resampling() -> None:
    usb = _info(in1=(44100, 48000), out2=(16000, 44100, 48000))
    assert choose_format(usb, [16000], 1) == (48000, 1)
    assert choose_format(usb, [16000], 1, direction="output") == (16000, 2)
    assert choose_format(usb, [24000], 2, direction="output") == (48000, 2)
    with pytest.raises(DeviceError, match="no usable format"):
        choose_format(_info(in1=()), [16000], 1)
    unprobed = DeviceInfo(0, "x", "ALSA", 1, 1, 44100.0)
    with pytest.raises(DeviceError, match="unknown"):
        choose_format(unprobed, [16000], 1)


def test_map_device_errors_explains_portaudio_codes() -> None:
    usb = _info(out2=(44100, 48000))
    with (
        pytest.raises(DeviceError) as caught,
        map_device_errors(usb, direction="output", rate=16000),
    ):
        raise OSError(-9997, "Invalid sample rate")
    assert "cannot play at 16000 Hz" in str(caught.value)
    assert "2 ch at 44100, 48000 Hz" in str(caught.value)
    with pytest.raises(DeviceError, match="busy"), map_device_errors("hw:1,0"):
        raise ValueError("Device unavailable", -9985)
    with pytest.raises(DeviceError, match="-9998"), map_device_errors("x", channels=6):
        raise OSError(-9998, "Invalid number of channels")
    with pytest.raises(ValueError, match="not PortAudio"), map_device_errors("x"):
        raise ValueError("not PortAudio")
