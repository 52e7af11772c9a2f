"""The daemon on the real PyAudio path (ALSA file devices) against the emulator, every turn mode.

The microphone is a 48 kHz stereo capture device (as USB cards often offer only 44.1/48 kHz
stereo) reading real espeak-ng speech; the speaker is an ALSA file device. ALSA_CONFIG_PATH is
set before PortAudio initialises and restored afterwards, as in test_device_alsa.py.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray

from voicegw.config import parse_config
from voicegw.daemon import Daemon
from voicegw.emulator import Emulator
from voicegw.io import device
from voicegw.io.device import PyAudioSource, find_device
from voicegw.ptt import StartTalking, StopTalking

TEMPLATE = Path(__file__).parent / "alsa" / "asound-file.conf"
TIMEOUT = 40_000 * MS


@pytest.fixture(scope="module")
def alsa(
    tmp_path_factory: pytest.TempPathFactory,
    speech16k: tuple[NDArray[np.int16], int],
    speech48k_stereo: tuple[NDArray[np.int16], int],
) -> Iterator[Path]:
    if device.portaudio_active():
        pytest.fail("PortAudio is already initialised: ALSA_CONFIG_PATH would not take effect")
    tmp = tmp_path_factory.mktemp("alsa-daemon")
    (tmp / "c16.raw").write_bytes(speech16k[0].astype("<i2").tobytes())
    (tmp / "c48.raw").write_bytes(np.ascontiguousarray(speech48k_stereo[0], "<i2").tobytes())
    playback = tmp / "out.raw"
    conf = tmp / "asound.conf"
    conf.write_text(
        string.Template(TEMPLATE.read_text()).substitute(
            capture16k=tmp / "c16.raw", capture48k=tmp / "c48.raw", playback=playback
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALSA_CONFIG_PATH", str(conf))
        mp.setenv("JACK_NO_START_SERVER", "1")
        yield playback
    assert not device.portaudio_active(), "a test left a PortAudio stream open"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, token="tok-" + secrets.token_hex(8), bot="echo") as emu:
        yield emu


class Holding:
    """The user holds the talk button over the whole capture (push-to-talk mode)."""

    def __init__(self, inner: PyAudioSource) -> None:
        self.inner = inner
        self.rate = inner.rate
        self.channels = inner.channels
        self.daemon: Daemon | None = None

    async def frames(self) -> AsyncIterator[NDArray[np.int16]]:
        first = True
        async for frame in self.inner.frames():
            if first and self.daemon is not None:
                self.daemon.apply([StartTalking(at=0.0)])
                first = False
            yield frame
        if self.daemon is not None:
            self.daemon.apply([StopTalking(at=0.0, reason="released")])

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("mode", ["ptt", "server_vad", "semantic_vad", "local_vad"])
async def test_daemon_turn_through_pyaudio_48k_stereo_mic(
    alsa: Path, emulator: Emulator, mode: str
) -> None:
    cfg = parse_config(
        {
            "cloud": {"url": emulator.url, "bot_id": "7000000000000000001"},
            "turn": {"mode": mode, "silence_threshold_ms": 800},
            "output": {"sample_rate": 16000},
            "audio": {
                "source": "vcap48",
                "sink": "vplay",
                "input_rate": 48000,
                "input_channels": 2,
                "realtime": False,
            },
        }
    )
    info = find_device("vcap48", "input", rate=48000, channels=2)
    # The first 2.6 s of the fixture: 1 s of silence, then speech (the device plays the echo
    # in real time, so a short utterance keeps the test short).
    # The file device is not paced; a queue longer than the capture keeps every frame.
    mic = PyAudioSource(info, 48000, 2, frame_ms=20, max_frames=130, queue_ms=3000)
    source = Holding(mic) if mode == "ptt" else mic
    daemon = Daemon(cfg, emulator.token, source=source)
    if isinstance(source, Holding):
        source.daemon = daemon
    async with asyncio.timeout(TIMEOUT):
        await daemon.run()
    record = emulator.connections[-1]
    assert "conversation.chat.completed" in record.sent_types, record.sent_types
    sent = record.received_types
    if mode in ("ptt", "local_vad"):
        assert sent.count("input_audio_buffer.complete") == 1
    else:
        assert "input_audio_buffer.complete" not in sent
        assert "input_audio_buffer.speech_started" in record.sent_types
    # The echo of the speech reached the ALSA playback device (16 kHz mono int16 bytes),
    # paced by the gateway so the device's ring never overflowed.
    played = np.frombuffer(alsa.read_bytes(), dtype="<i2")
    stats = daemon.sink.stats  # type: ignore[attr-defined]
    assert mic.stats.dropped == 0
    written = sum(t.reply_samples for t in daemon.turns)
    assert written >= 16000  # the echo of 1.6 s of speech
    assert stats.played >= written and stats.dropped == 0  # all of it reached the device
    assert np.count_nonzero(played) > written // 4  # and it is speech, not padding


def test_a_missing_device_and_an_unsupported_rate_are_clear(alsa: Path) -> None:
    from voicegw.daemon import open_sink, open_source
    from voicegw.errors import DeviceError

    cfg = parse_config({"audio": {"source": "no-such-card", "sink": "vplay"}})
    with pytest.raises(DeviceError) as info:
        open_source(cfg)
    assert "no-such-card" in str(info.value) and "vcap" in str(info.value)
    # A card that only plays 48 kHz: the daemon opens it at 48 kHz and resamples itself.
    cfg = parse_config({"audio": {"sink": "vdac48", "output_channels": 2}})
    sink = open_sink(cfg)
    assert sink.rate == 48000
    sink.close()  # type: ignore[attr-defined]
    # Forcing a rate it cannot do is an error naming the device and what it supports.
    from voicegw.io.device import PyAudioSink

    with pytest.raises(DeviceError) as err:
        PyAudioSink("vdac48", 16000, 2)
    assert "vdac48" in str(err.value) and "48000" in str(err.value)
