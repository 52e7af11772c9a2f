"""Vad: hysteresis state machine over webrtcvad, on real espeak-ng speech and scripted decisions.

The speech fixtures come from ``tests/conftest.py`` (espeak-ng + ``sox -D``, 1 s of digital
silence on both ends, generated once if missing). True onset and end are read from the
fixture itself: the first and last non-zero sample. Every time is on an injected clock that
starts at ``T0``; nothing reads a real clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import webrtcvad
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from voicegw.dsp import to_mono
from voicegw.errors import ConfigError
from voicegw.vad import VAD_RATE, SpeechEnd, SpeechStart, Vad, VadEvent, VadState

T0 = 1000.0  # the injected clock's reading at the first sample
SNR_DB = 20.0

Audio = tuple[NDArray[np.int16], int]


# ---------------------------------------------------------------- helpers


def feed(
    vad: Vad, audio: NDArray[np.int16], rate: int, frame_ms: float = 20.0
) -> list[tuple[VadEvent, int]]:
    """Feed ``audio`` in device frames; each event with the samples fed by its call."""
    step = round(rate * frame_ms / 1000)
    return feed_sizes(vad, audio, rate, [step])


def feed_sizes(
    vad: Vad, audio: NDArray[np.int16], rate: int, sizes: Sequence[int]
) -> list[tuple[VadEvent, int]]:
    out: list[tuple[VadEvent, int]] = []
    pos = 0
    i = 0
    while pos < len(audio):
        end = min(len(audio), pos + sizes[i % len(sizes)])
        i += 1
        for event in vad.process(audio[pos:end], T0 + end / rate):
            out.append((event, end))
        pos = end
    return out


def events_only(pairs: list[tuple[VadEvent, int]]) -> list[VadEvent]:
    return [e for e, _ in pairs]


def bounds(audio: NDArray[np.int16], rate: int) -> tuple[float, float]:
    """First and last non-zero sample (of the left channel), s on the injected clock."""
    ch = audio if audio.ndim == 1 else audio[:, 0]
    nz = np.flatnonzero(ch)
    return T0 + nz[0] / rate, T0 + (nz[-1] + 1) / rate


def active_rms(audio: NDArray[np.int16]) -> float:
    ch = (audio if audio.ndim == 1 else audio[:, 0]).astype(np.float64)
    nz = np.flatnonzero(ch)
    return float(np.sqrt(np.mean(ch[nz[0] : nz[-1]] ** 2)))


def white_noise(shape: tuple[int, ...], rms: float, seed: int) -> NDArray[np.float64]:
    return np.random.default_rng(seed).normal(0.0, rms, shape)


def add_noise(audio: NDArray[np.int16], snr_db: float, seed: int) -> NDArray[np.int16]:
    """White noise ``snr_db`` below the speech's RMS, on every channel, through the pads too."""
    noise = white_noise(audio.shape, active_rms(audio) / 10 ** (snr_db / 20), seed)
    return np.clip(np.rint(audio + noise), -32768, 32767).astype(np.int16)


def only_noise(audio: NDArray[np.int16], snr_db: float, seed: int) -> NDArray[np.int16]:
    noise = white_noise(audio.shape, active_rms(audio) / 10 ** (snr_db / 20), seed)
    return np.clip(np.rint(noise), -32768, 32767).astype(np.int16)


class Script:
    """A classifier that replays scripted decisions and checks every frame's size."""

    def __init__(self, flags: Sequence[int], frame_ms: int = 20) -> None:
        self.flags: Iterator[int] = iter(flags)
        self.size = VAD_RATE * frame_ms // 1000

    def __call__(self, frame: NDArray[np.int16]) -> bool:
        assert frame.shape == (self.size,) and frame.dtype == np.int16
        return bool(next(self.flags))


def scripted(
    flags: str, **kwargs: object
) -> tuple[Vad, list[tuple[VadEvent, int]], list[VadState]]:
    """Run a 16 kHz Vad whose classifier says ``flags`` ("1" voiced, "0" not), 20 ms frames.

    Returns the Vad, its events (with samples fed) and the state after each frame.
    """
    vad = Vad(classifier=Script([int(c) for c in flags]), warmup_ms=0, **kwargs)  # type: ignore[arg-type]
    events: list[tuple[VadEvent, int]] = []
    states: list[VadState] = []
    silence = np.zeros(320, dtype=np.int16)
    for k in range(len(flags)):
        for event in vad.process(silence, T0 + (k + 1) * 0.02):
            events.append((event, (k + 1) * 320))
        states.append(vad.state)
    return vad, events, states


@pytest.fixture(params=["16k_mono", "48k_stereo"])
def source(request: pytest.FixtureRequest) -> tuple[Audio, int]:
    """The long sentence as the device would deliver it: (audio, rate), channels."""
    if request.param == "16k_mono":
        return request.getfixturevalue("speech16k"), 1
    return request.getfixturevalue("speech48k_stereo"), 2


# ---------------------------------------------------------------- real speech


@pytest.mark.parametrize("noisy", [False, True], ids=["clean", f"snr{SNR_DB:g}dB"])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_one_utterance_on_real_speech(source: tuple[Audio, int], noisy: bool, mode: int) -> None:
    (audio, rate), channels = source
    onset, end = bounds(audio, rate)
    if noisy:
        audio = add_noise(audio, SNR_DB, seed=mode)
    vad = Vad(rate, channels, aggressiveness=mode, stop_ms=500)
    events = events_only(feed(vad, audio, rate))
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    start, stop = events
    assert isinstance(start, SpeechStart) and isinstance(stop, SpeechEnd)

    # Onset within tens of ms; noise masks the weak first phoneme, so allow a later start.
    assert -0.03 <= start.at - onset <= (0.08 if noisy else 0.03)
    # The decision needs 3 voiced frames in a 5-frame window: 60-100 ms after the onset.
    assert 0.06 - 1e-9 <= start.detected_at - start.at <= 0.1 + 1e-9

    # The end is detected exactly stop_ms (25 frames) after the last voiced frame ...
    assert stop.detected_at - stop.at == pytest.approx(0.5)
    if noisy:
        # ... noise masks the final fricative, so the last voiced frame may come early.
        assert end - 0.15 <= stop.at <= end + 0.35
    else:
        # ... and webrtcvad's own hangover keeps flagging frames for up to ~300 ms.
        assert end <= stop.at <= end + 0.35
        assert stop.detected_at >= end + 0.5
    assert vad.state is VadState.QUIET
    assert vad.stats.starts == vad.stats.ends == 1


def test_preroll_is_the_audio_before_the_trigger(source: tuple[Audio, int]) -> None:
    (audio, rate), channels = source
    onset, _ = bounds(audio, rate)
    vad = Vad(rate, channels, preroll_ms=300)
    (start, fed), *_ = feed(vad, audio, rate)
    assert isinstance(start, SpeechStart)
    pre = start.preroll
    assert pre.shape[1:] == audio.shape[1:]  # the device's own format
    # Exactly the newest samples fed so far: sending it and then the next frame is seamless.
    assert np.array_equal(pre, audio[fed - len(pre) : fed])
    # It reaches preroll_ms before the detected onset, and so covers the true onset.
    now = T0 + fed / rate
    assert len(pre) == round((0.3 + now - start.at) * rate)
    first = T0 + (fed - len(pre)) / rate
    assert first <= onset - 0.25
    head = pre if pre.ndim == 1 else pre[:, 0]
    assert not head[: round(0.2 * rate)].any()  # digital silence before the speech ...
    assert head.any()  # ... and the first syllable


def test_preroll_is_capped_by_what_was_heard() -> None:
    """A start soon after the stream began returns only the audio there is."""
    _, events, _ = scripted("11100", preroll_ms=300)
    (start, fed), *_ = events
    assert isinstance(start, SpeechStart)
    assert len(start.preroll) == fed == 3 * 320
    assert start.at == pytest.approx(T0)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_no_start_on_digital_silence(mode: int) -> None:
    for rate, channels in ((16000, 1), (48000, 2)):
        vad = Vad(rate, channels, aggressiveness=mode)
        shape = (rate * 5,) if channels == 1 else (rate * 5, channels)
        assert feed(vad, np.zeros(shape, dtype=np.int16), rate) == []
        assert vad.stats.voiced == 0


@pytest.mark.parametrize("mode", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_start_on_noise_alone(source: tuple[Audio, int], mode: int, seed: int) -> None:
    (audio, rate), channels = source
    noise = only_noise(audio, SNR_DB, seed)
    vad = Vad(rate, channels, aggressiveness=mode)
    assert feed(vad, noise, rate) == []
    assert vad.stats.starts == 0 and vad.state is VadState.QUIET


def test_warmup_hides_webrtcvads_start_of_stream_transient(speech16k: Audio) -> None:
    """Without a warm-up, webrtcvad flags the first frames of a noisy stream as speech."""
    audio, rate = speech16k
    noise = only_noise(audio, SNR_DB, seed=0)
    raw = events_only(feed(Vad(rate, aggressiveness=2, warmup_ms=0), noise, rate))
    assert raw and isinstance(raw[0], SpeechStart) and raw[0].at - T0 < 0.1
    assert feed(Vad(rate, aggressiveness=2), noise, rate) == []


def test_every_sample_of_a_frame_is_classified(speech16k: Audio) -> None:
    """Speech only in the second half of each 20 ms frame must still count as speech.

    webrtcvad derives the sample count from ``len(buf) / 2``; handing it an int16 array
    would classify the first 10 ms of each frame only, which here is always silent.
    """
    audio, rate = speech16k
    masked = audio.copy()
    masked[: len(masked) // 320 * 320].reshape(-1, 2, 160)[:, 0, :] = 0
    events = events_only(feed(Vad(rate, aggressiveness=0), masked, rate))
    assert events and isinstance(events[0], SpeechStart)


def test_any_device_framing_gives_the_same_decisions(speech16k: Audio) -> None:
    audio, rate = speech16k
    reference = events_only(feed(Vad(rate), audio, rate))
    for sizes in ([1024], [160], [7, 333, 1], [4000, 17]):
        got = events_only(feed_sizes(Vad(rate), audio, rate, sizes))
        assert [type(e) for e in got] == [type(e) for e in reference]
        for a, b in zip(got, reference, strict=True):
            assert a.at == pytest.approx(b.at, abs=1e-9)
            assert a.detected_at == pytest.approx(b.detected_at, abs=1e-9)


@pytest.mark.parametrize("frame_ms", [10, 30])
def test_other_classifier_frames(speech16k: Audio, frame_ms: int) -> None:
    audio, rate = speech16k
    onset, _ = bounds(audio, rate)
    vad = Vad(rate, frame_ms=frame_ms, start_ms=5 * frame_ms, stop_ms=500)
    events = events_only(feed(vad, audio, rate, frame_ms=64))
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    assert abs(events[0].at - onset) <= 0.04
    assert events[1].detected_at - events[1].at == pytest.approx(vad.stop_frames * frame_ms / 1000)


def test_listens_to_the_selected_channel(speech16k: Audio) -> None:
    audio, rate = speech16k
    stereo = np.stack([np.zeros_like(audio), audio], axis=1)
    assert feed(Vad(rate, 2, channel=0), stereo, rate) == []
    assert len(feed(Vad(rate, 2, channel=1), stereo, rate)) == 2
    assert len(feed(Vad(rate, 2), stereo, rate)) == 2  # the average hears it too


def test_stereo_average_matches_to_mono(speech48k_stereo: Audio) -> None:
    """The classifier sees exactly what it would for ``dsp.to_mono`` of the same frames."""
    audio, rate = speech48k_stereo
    noise = np.random.default_rng(7).integers(-32768, 32767, (rate, 2), dtype=np.int16)
    for stereo in (audio, noise):
        seen: dict[int, list[bytes]] = {1: [], 2: []}
        for channels, data in ((2, stereo), (1, to_mono(stereo))):

            def record(frame: NDArray[np.int16], into: list[bytes] = seen[channels]) -> bool:
                into.append(frame.tobytes())
                return False

            feed(Vad(rate, channels, classifier=record), data, rate)
        assert seen[1] and seen[1] == seen[2]


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000]),
    frame_ms=st.sampled_from([10, 20, 30]),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8),
)
def test_never_feeds_webrtcvad_a_wrong_size(rate: int, frame_ms: int, sizes: list[int]) -> None:
    """Any rate and device framing: the classifier only ever sees exact frames."""
    seen: list[int] = []

    def classify(frame: NDArray[np.int16]) -> bool:
        seen.append(len(frame))
        return False

    audio = np.random.default_rng(rate).integers(-3000, 3000, rate // 2, dtype=np.int16)
    vad = Vad(rate, frame_ms=frame_ms, start_ms=100 if frame_ms != 30 else 90, classifier=classify)
    feed_sizes(vad, audio, rate, sizes)
    assert set(seen) <= {VAD_RATE * frame_ms // 1000}
    # All 500 ms are classified except what the resampler still holds back (< 100 ms).
    assert 400 // frame_ms <= len(seen) <= 500 // frame_ms
    # And the real webrtcvad accepts the same stream.
    feed_sizes(Vad(rate, frame_ms=frame_ms, start_ms=90), audio, rate, sizes)


# ---------------------------------------------------------------- hysteresis


def test_a_single_voiced_frame_does_not_start() -> None:
    vad, events, states = scripted("0001000000")
    assert events == []
    assert states[2] is VadState.QUIET and states[3] is VadState.STARTING
    assert states[7] is VadState.STARTING  # still in the 5-frame window
    assert states[8] is VadState.QUIET  # the window is empty again
    assert vad.stats.false_starts == 1 and vad.stats.starts == 0


def test_two_of_five_do_not_start_three_of_five_do() -> None:
    _, events, _ = scripted("1001000000")
    assert events == []
    _, events, states = scripted("0010101000")
    ((start, fed),) = events
    assert isinstance(start, SpeechStart)
    assert fed == 7 * 320 and states[6] is VadState.SPEAKING
    assert start.at == pytest.approx(T0 + 0.04)  # the first voiced frame's start
    assert start.detected_at == pytest.approx(T0 + 0.14)
    assert states[7] is VadState.STOPPING


def test_start_frames_one_starts_on_the_first_voiced_frame() -> None:
    _, events, states = scripted("01", start_frames=1, start_ms=20)
    ((start, _),) = events
    assert isinstance(start, SpeechStart) and start.at == pytest.approx(T0 + 0.02)
    assert states == [VadState.QUIET, VadState.SPEAKING]


def test_a_short_pause_does_not_stop_a_long_one_does() -> None:
    # stop_ms=100 -> 5 frames. A pause of 4 unvoiced frames is bridged; 5 end the utterance.
    flags = "111111" + "0000" + "111" + "00000" + "000"
    vad, events, states = scripted(flags, stop_ms=100)
    kinds = [type(e) for e, _ in events]
    assert kinds == [SpeechStart, SpeechEnd]
    end = events[1][0]
    assert isinstance(end, SpeechEnd)
    assert end.at == pytest.approx(T0 + 13 * 0.02)  # end of the last voiced frame (#13)
    assert end.detected_at == pytest.approx(T0 + 18 * 0.02)
    assert states[6] is VadState.STOPPING and states[10] is VadState.SPEAKING
    assert states[17] is VadState.QUIET
    assert vad.stats.ends == 1


def test_stop_ms_rounds_up_to_whole_frames() -> None:
    assert Vad(stop_ms=50).stop_frames == 3
    assert Vad(stop_ms=60).stop_frames == 3
    assert Vad(stop_ms=500, frame_ms=30).stop_frames == 17
    assert Vad(start_ms=100, frame_ms=30, start_frames=3).start_window == 3


def test_a_new_utterance_needs_a_fresh_start_window() -> None:
    # stop after 2 frames (40 ms), shorter than the start window: the old voiced frames
    # must not count towards the next start.
    # Frame 6 would complete "3 of 5" with frames 2 and 3 if their bits were kept.
    flags = "111" + "00" + "1" + "0000000" + "111"
    _, events, states = scripted(flags, stop_ms=40)
    kinds = [type(e) for e, _ in events]
    assert kinds == [SpeechStart, SpeechEnd, SpeechStart]
    assert states[5] is VadState.STARTING
    assert events[2][1] == 16 * 320


def test_real_speech_pause_shorter_than_stop_ms_does_not_stop(speech16k: Audio) -> None:
    audio, rate = speech16k
    cut = 3 * rate  # mid-sentence
    for gap_s, utterances in ((0.3, 1), (1.0, 2)):
        gap = np.zeros(round(gap_s * rate), dtype=np.int16)
        spliced = np.concatenate([audio[:cut], gap, audio[cut:]])
        events = events_only(feed(Vad(rate, aggressiveness=3, stop_ms=500), spliced, rate))
        assert [type(e) for e in events] == [SpeechStart, SpeechEnd] * utterances


def voiced_bursts(audio: NDArray[np.int16], mode: int) -> list[NDArray[np.int16]]:
    """Every 20 ms frame of the sentence that webrtcvad calls speech on its own."""
    frames = [audio[k * 320 : (k + 1) * 320] for k in range(len(audio) // 320)]
    return [f for f in frames if webrtcvad.Vad(mode).is_speech(f.tobytes(), VAD_RATE)]


def test_webrtcvad_hangover_stretches_a_single_speech_frame(speech16k: Audio) -> None:
    """One 20 ms frame of speech in silence yields 4-5 voiced decisions (webrtcvad's own
    hangover), so the default 3-of-5 start fires on it: a 20 ms click can start a turn."""
    audio, rate = speech16k
    burst = voiced_bursts(audio, 3)[10]
    stream = np.concatenate([np.zeros(rate, np.int16), burst, np.zeros(rate, np.int16)])
    vad = Vad(rate, aggressiveness=3)
    events = events_only(feed(vad, stream, rate))
    assert 4 <= vad.stats.voiced <= 5
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]


def test_start_window_beyond_the_hangover_ignores_single_frames(speech16k: Audio) -> None:
    """6 voiced decisions within 160 ms (mode 3) reject every single-frame burst of the
    sentence, and still find the sentence itself."""
    audio, rate = speech16k
    strict = {"aggressiveness": 3, "start_frames": 6, "start_ms": 160}
    silence = np.zeros(rate // 2, np.int16)
    bursts = voiced_bursts(audio, 3)
    assert len(bursts) > 150
    for burst in bursts:
        stream = np.concatenate([silence, burst, silence])
        assert feed(Vad(rate, **strict), stream, rate) == []  # type: ignore[arg-type]
    onset, _ = bounds(audio, rate)
    events = events_only(feed(Vad(rate, **strict), audio, rate))  # type: ignore[arg-type]
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    assert abs(events[0].at - onset) <= 0.03


# ---------------------------------------------------------------- reset, errors


def test_reset_drops_the_utterance_and_restarts_the_timeline() -> None:
    vad = Vad(classifier=Script([1] * 4 + [1] * 3), warmup_ms=0)
    silence = np.zeros(320, np.int16)
    events: list[VadEvent] = []
    for k in range(4):
        events += vad.process(silence, T0 + (k + 1) * 0.02)
    assert vad.active and len(events) == 1
    vad.reset()
    assert vad.state is VadState.QUIET and not vad.active
    # After the reset, frame times restart from the ``now`` given with the next frame.
    events = []
    for k in range(3):
        events += vad.process(silence, 5000.0 + (k + 1) * 0.02)
    (start,) = events
    assert isinstance(start, SpeechStart) and start.at == pytest.approx(5000.0)
    assert len(start.preroll) == 3 * 320  # the pre-roll was emptied too
    assert vad.stats.ends == 0  # the dropped utterance produced no SpeechEnd


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frame_ms": 25}, "frame_ms: webrtcvad accepts only 10, 20 or 30 ms"),
        ({"frame_ms": 40}, "frame_ms"),
        ({"frame_ms": 5}, "frame_ms"),
        ({"frame_ms": True}, "frame_ms"),
        ({"aggressiveness": 4}, "aggressiveness: must be 0, 1, 2 or 3"),
        ({"aggressiveness": -1}, "aggressiveness"),
        ({"aggressiveness": True}, "aggressiveness"),
        ({"aggressiveness": 2.0}, "aggressiveness"),
        ({"start_frames": 0}, "start_frames"),
        ({"start_frames": 6}, "start_ms: 100"),
        ({"start_ms": 40}, "start_ms"),
        ({"stop_ms": 0}, "stop_ms"),
        ({"preroll_ms": -1}, "preroll_ms"),
        ({"warmup_ms": -1}, "warmup_ms"),
        ({"rate": 0}, "rate"),
        ({"rate": 16000.0}, "rate"),
        ({"channels": 0}, "channels"),
        ({"channels": 2, "channel": 2}, "channel"),
        ({"quality": "best"}, "quality"),
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Vad(**kwargs)  # type: ignore[arg-type]


def test_rejects_frames_of_the_wrong_shape_or_type() -> None:
    with pytest.raises(ValueError, match="mono"):
        Vad().process(np.zeros((320, 2), np.int16), 0.02)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        Vad(48000, 2).process(np.zeros(960, np.int16), 0.02)
    with pytest.raises(TypeError):
        Vad().process(np.zeros(320, np.float32), 0.02)
