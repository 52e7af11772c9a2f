"""Reply audio in every output codec, decoded by independent decoders (spec 2.2.2, 2.5.2).

The reference is the tone bot's own PCM for a typed message, resampled with soxr directly.
Decoders: numpy (pcm), stdlib ``audioop`` (G.711, Python <= 3.12), FFmpeg's native ``opus``
decoder through PyAV (not libopus, which the emulator encodes with), libsndfile (mp3).
"""

from __future__ import annotations

import base64
import io

import av
import numpy as np
import pytest
import soundfile as sf
import soxr
from numpy.typing import NDArray
from test_emulator_harness import Harness

from voicegw.emulator.bots import ToneBot, UserTurn

TEXT = "one two three four"


def reference(rate: int) -> NDArray[np.float64]:
    (sentence,) = ToneBot().reply(UserTurn(TEXT, typed=True)).sentences
    ref = sentence.audio.astype(np.float64)
    return ref if rate == sentence.rate else soxr.resample(ref, sentence.rate, rate, "VHQ")


def deltas(output_audio: dict) -> list[bytes]:
    h = Harness("tone")
    h.pump()
    (ack,) = h.update({"output_audio": output_audio})
    assert ack["event_type"] == "chat.updated"
    h.say(TEXT)
    return [
        base64.b64decode(f["data"]["content"])
        for f in h.run()
        if f["event_type"] == "conversation.audio.delta"
    ]


def best_correlation(
    got: NDArray[np.float64], ref: NDArray[np.float64], max_lag: int
) -> tuple[float, int]:
    """Highest normalised correlation of ``got`` against ``ref`` delayed by 0..max_lag."""
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        a = got[lag : lag + ref.shape[0]]
        b = ref[: a.shape[0]]
        c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        best = max(best, (c, lag))
    return best


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 32000, 44100, 48000])
def test_pcm_at_every_rate(rate: int) -> None:
    data = deltas({"codec": "pcm", "pcm_config": {"sample_rate": rate}})
    got = np.frombuffer(b"".join(data), dtype="<i2").astype(np.float64)
    ref = reference(rate)
    assert got.shape[0] == ref.shape[0]
    corr, lag = best_correlation(got, ref, 0)
    assert corr > 0.999 and lag == 0


@pytest.mark.parametrize("law", ["g711a", "g711u"])
def test_g711(law: str) -> None:
    audioop = pytest.importorskip("audioop")
    data = b"".join(deltas({"codec": law}))
    pcm = audioop.alaw2lin(data, 2) if law == "g711a" else audioop.ulaw2lin(data, 2)
    got = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    ref = reference(8000)
    assert got.shape[0] == ref.shape[0]  # one byte per sample at 8 kHz
    corr, _ = best_correlation(got, ref, 0)
    assert corr > 0.99


def decode_opus_natively(packets: list[bytes]) -> tuple[NDArray[np.float64], list[int]]:
    dec = av.CodecContext.create("opus", "r")  # FFmpeg's own decoder, not libopus
    dec.sample_rate = 48000
    dec.layout = "mono"
    parts, lengths = [], []
    for p in packets:
        frames = dec.decode(av.Packet(p))
        pcm = (
            np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames else np.zeros(0)
        )
        parts.append(pcm)
        lengths.append(pcm.shape[0])
    return np.concatenate(parts).astype(np.float64) * 32768.0, lengths


@pytest.mark.parametrize(
    ("frame_ms", "opus_rate"), [(10, None), (2.5, None), (20, 16000), (60, None)]
)
def test_opus_one_packet_per_delta(frame_ms: float, opus_rate: int | None) -> None:
    config: dict = {"frame_size_ms": frame_ms, "bitrate": 32000}
    if opus_rate:
        config["sample_rate"] = opus_rate
    packets = deltas({"codec": "opus", "opus_config": config})
    got, lengths = decode_opus_natively(packets)
    assert set(lengths) == {round(48 * frame_ms)}  # every delta is exactly one frame
    ref = soxr.resample(reference(opus_rate or 24000), opus_rate or 24000, 48000, "VHQ")
    assert len(packets) >= ref.shape[0] / (48 * frame_ms)
    corr, lag = best_correlation(got, ref, 2000)
    assert corr > 0.9, (corr, lag)


@pytest.mark.parametrize("rate", [32000, 44100, 48000])
def test_mp3_deltas_concatenate_to_a_valid_stream(rate: int) -> None:
    data = deltas({"codec": "mp3", "mp3_config": {"sample_rate": rate, "bit_rate": 64000}})
    assert max(len(d) for d in data) == round(64000 / 8 * 0.25)  # about 250 ms per delta
    got, got_rate = sf.read(io.BytesIO(b"".join(data)), dtype="int16")
    assert got_rate == rate
    ref = reference(rate)
    assert got.shape[0] >= ref.shape[0]
    corr, lag = best_correlation(got.astype(np.float64), ref, 3000)
    assert corr > 0.9, (corr, lag)


def test_mp3_bit_rate_snaps_to_a_layer_iii_rate() -> None:
    data = b"".join(deltas({"codec": "mp3", "mp3_config": {"bit_rate": 50000}}))
    header = int.from_bytes(data[:4], "big")
    assert (
        header >> 21 == 0x7FF and (header >> 12) & 0xF == 3
    )  # MPEG-1 Layer III index 3: 48 kbit/s


def test_loudness_and_speech_rate() -> None:
    base = np.frombuffer(b"".join(deltas({"codec": "pcm"})), dtype="<i2").astype(np.float64)
    loud = np.frombuffer(b"".join(deltas({"codec": "pcm", "loudness_rate": -50})), dtype="<i2")
    assert np.abs(loud).max() == pytest.approx(np.abs(base).max() / 2, rel=0.01)
    fast = b"".join(deltas({"codec": "pcm", "speech_rate": 100}))
    assert len(fast) == pytest.approx(base.shape[0], rel=0.01)  # twice as fast: half the bytes
