"""Streaming TTS and ASR clients against the real emulator on 127.0.0.1:0 (spec 4, 5)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray
from websockets.asyncio.client import connect

from voicegw.announce import say
from voicegw.config import AudioConfig, CloudConfig, Config
from voicegw.emulator import Emulator
from voicegw.emulator.asr import describe_speech
from voicegw.emulator.bots import split_sentences, tone_voice
from voicegw.emulator.faults import FaultPlan
from voicegw.emulator.turns import Timing
from voicegw.emulator.vad import find_speech
from voicegw.errors import CloudError
from voicegw.io.speech_api import synthesize, transcribe
from voicegw.protocol.asr import Transcript
from voicegw.protocol.objects import InputAudio, OutputAudio, PCMConfig
from voicegw.protocol.tts import MAX_TEXT_BYTES, split_text, utf8_len

Audio = tuple[NDArray[np.int16], int]
TOKEN = "pat_speech-token"
TIMEOUT = 30_000 * MS
PCM24K = OutputAudio(codec="pcm", pcm_config=PCMConfig(sample_rate=24000))
PCM16K_IN = InputAudio(format="pcm", codec="pcm", sample_rate=16000, channel=1, bit_depth=16)
LONG_TEXT = " ".join(f"Sentence {i} of the notice says little." for i in range(70))


def tone_bytes(piece: str) -> bytes:
    """What the tone voice says for one request, as 24 kHz s16le (the emulator's default)."""
    return b"".join(tone_voice(s).audio.tobytes() for s in split_sentences(piece))


def cloud(emu: Emulator) -> CloudConfig:
    return CloudConfig(url=emu.url)


#: Audio pushed at 100x real time: the long texts take ~100 s to say.
FAST = Timing(burst_speed=100.0)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, bot="tone", timing=FAST) as e:
        yield e


# ---------------------------------------------------------------- TTS


async def test_a_text_over_1024_bytes_is_synthesised_fully_on_one_connection(
    emu: Emulator,
) -> None:
    assert utf8_len(LONG_TEXT) > 2 * MAX_TEXT_BYTES
    chunks: list[bytes] = []
    subtitles: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        report = await synthesize(
            cloud(emu),
            TOKEN,
            LONG_TEXT,
            output_audio=PCM24K,
            on_audio=chunks.append,
            on_sentence=subtitles.append,
        )
    pieces = split_text(LONG_TEXT)
    assert report.pieces == pieces and len(pieces) == 3 and report.connections == 1
    assert b"".join(chunks) == b"".join(tone_bytes(p) for p in pieces)
    assert subtitles == split_sentences(LONG_TEXT)
    record = emu.connections[-1]
    assert list(record.received_types).count("input_text_buffer.complete") == 3
    assert list(record.sent_types).count("speech.audio.completed") == 3
    assert record.sent_types[0] == "speech.created"
    assert report.output_audio is not None and report.output_audio.voice_id


async def test_the_emulator_rejects_a_direct_append_over_1024_bytes_with_3010(
    emu: Emulator,
) -> None:
    url = f"{emu.url}/v1/audio/speech"
    async with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        created = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert created["event_type"] == "speech.created"
        append = {"event_type": "input_text_buffer.append", "data": {"delta": "x" * 1100}}
        await ws.send(json.dumps(append))
        err = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert err["event_type"] == "error" and err["data"]["code"] == 3010
    assert json.loads(err["detail"]["origin_message"]) == append


async def test_a_close_between_requests_continues_on_a_new_connection() -> None:
    pieces = split_text(LONG_TEXT)
    first = split_sentences(pieces[0])
    # speech.created, speech.updated, input_text_buffer.completed, then per sentence one
    # sentence_start and its 250 ms deltas, then speech.audio.completed: close right after it.
    frames = 3 + sum(1 + math.ceil(len(tone_voice(s).audio) / 6000) for s in first) + 1
    plans = {1: FaultPlan(close_at=frames, close_code=1000)}
    faults = lambda i: plans.get(i, FaultPlan())  # noqa: E731
    async with Emulator(token=TOKEN, bot="tone", timing=FAST, faults=faults) as emu:
        chunks: list[bytes] = []
        async with asyncio.timeout(TIMEOUT):
            report = await synthesize(
                cloud(emu), TOKEN, LONG_TEXT, output_audio=PCM24K, on_audio=chunks.append
            )
        assert report.connections == 2 and len(report.logids) == 2
        assert b"".join(chunks) == b"".join(tone_bytes(p) for p in pieces)  # nothing repeated
        assert emu.connections[0].faults_injected == [f"close_at={frames}:1000"]


async def test_a_close_in_the_middle_of_a_request_is_an_error() -> None:
    async with Emulator(token=TOKEN, bot="tone", faults=FaultPlan(close_at=5)) as emu:
        with pytest.raises(CloudError, match="closed the connection"):
            async with asyncio.timeout(TIMEOUT):
                await synthesize(
                    cloud(emu), TOKEN, LONG_TEXT, output_audio=PCM24K, on_audio=lambda b: None
                )


async def test_service_errors_and_refusals_become_cloud_errors(emu: Emulator) -> None:
    with pytest.raises(CloudError) as info:
        await synthesize(cloud(emu), "wrong", "Hi.", output_audio=None, on_audio=lambda b: None)
    assert info.value.code == 4100
    bad = OutputAudio(codec="mp3")  # valid on /v1/chat, refused by the TTS API (4000)
    with pytest.raises(CloudError) as info:
        await synthesize(cloud(emu), TOKEN, "Hi.", output_audio=bad, on_audio=lambda b: None)
    assert info.value.code == 4000 and "output_audio.codec" in str(info.value)


async def test_opus_output_is_decoded_and_played_while_it_streams() -> None:
    class Speaker:
        rate = 16000

        def __init__(self) -> None:
            self.written: list[NDArray[np.int16]] = []

        def write(self, samples: NDArray[np.int16]) -> None:
            self.written.append(samples)

    opus = OutputAudio(codec="opus")
    sink = Speaker()
    text = "Good morning. The kitchen lights are on. The door is locked. Have a nice day."
    async with Emulator(token=TOKEN, bot="tone") as emu:  # 6x real time, like the service
        cfg = Config(cloud=cloud(emu), audio=AudioConfig(realtime=True))
        async with asyncio.timeout(TIMEOUT):
            report = await say(cfg, TOKEN, text, sink=sink, output_audio=opus)
    assert report.first_play is not None and report.synthesis_done is not None
    assert report.first_play < report.synthesis_done  # played before synthesis ended
    audio = np.concatenate(sink.written)
    want_s = len(tone_bytes(text)) / 2 / 24000
    assert want_s > 2.0
    assert abs(len(audio) / 16000 - want_s) < 0.2  # opus frames pad each sentence a little
    assert int(np.abs(audio).max()) > 3000


# ---------------------------------------------------------------- ASR


async def frames_of(
    samples: NDArray[np.int16], chunk: int = 320, after: asyncio.Event | None = None
) -> AsyncIterator[bytes]:
    for i in range(0, len(samples), chunk):
        yield samples[i : i + chunk].tobytes()
        await asyncio.sleep(0)
    if after is not None:
        # Streaming: the first interim must come while the audio is still open.
        await asyncio.wait_for(after.wait(), TIMEOUT)


async def test_asr_of_the_speech_fixture_with_interims_before_completion(
    emu: Emulator, speech16k: Audio
) -> None:
    samples, rate = speech16k
    got: list[Transcript] = []
    first_interim = asyncio.Event()

    def on_text(t: Transcript) -> None:
        got.append(t)
        if not t.final:
            first_interim.set()

    async with asyncio.timeout(TIMEOUT):
        report = await transcribe(
            cloud(emu),
            TOKEN,
            frames_of(samples, after=first_interim),
            input_audio=PCM16K_IN,
            on_text=on_text,
        )
    onset, end = find_speech(samples, rate)  # type: ignore[misc]
    final = describe_speech((end - onset) / rate)
    assert report.text == final and got[-1] == Transcript(final, True)
    assert got[0] == Transcript("(0.50 s of speech)", False)
    assert report.interims >= 10 and report.audio_bytes == samples.nbytes
    assert emu.connections[-1].received_types[-1] == "input_audio_buffer.complete"


async def test_asr_with_a_script_bot_hears_the_script(tmp_path: Path, short16k: Audio) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"transcript": "What time is it?", "reply": "Noon."}]))
    async with Emulator(token=TOKEN, bot=f"script:{script}") as emu:
        texts: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            report = await transcribe(
                cloud(emu),
                TOKEN,
                frames_of(short16k[0]),
                input_audio=PCM16K_IN,
                on_text=lambda t: texts.append(t.text),
            )
    assert report.text == "What time is it?"
    assert all("What time is it?".startswith(t) for t in texts)


async def test_asr_errors_become_cloud_errors(emu: Emulator) -> None:
    wav_default = InputAudio(format="wav")  # raw PCM announced as WAV: the service refuses
    tone = (np.sin(np.arange(16000) / 5.0) * 8000).astype(np.int16)
    with pytest.raises(CloudError) as info:
        async with asyncio.timeout(TIMEOUT):
            await transcribe(cloud(emu), TOKEN, frames_of(tone), input_audio=wav_default)
    assert info.value.code == 4000 and "format: wav" in str(info.value)
    with pytest.raises(CloudError) as info:
        await transcribe(cloud(emu), "nope", frames_of(tone), input_audio=PCM16K_IN)
    assert info.value.code == 4100


async def test_a_throttle_holds_synthesis_back_until_the_player_has_room(emu: Emulator) -> None:
    # The throttle is awaited before every read: while it blocks (the player has enough
    # queued), no more audio is taken from the socket; once it opens, the rest arrives.
    chunks: list[int] = []
    gate = asyncio.Event()
    blocked = asyncio.Event()

    async def throttle() -> None:
        if chunks and not gate.is_set():
            blocked.set()
            await gate.wait()

    async def run() -> object:
        return await synthesize(
            CloudConfig(url=emu.url),
            emu.token,
            LONG_TEXT,
            output_audio=PCM24K,
            on_audio=lambda data: chunks.append(len(data)),
            throttle=throttle,
        )

    task = asyncio.create_task(run())
    async with asyncio.timeout(TIMEOUT):
        await blocked.wait()
    held = len(chunks)
    for _ in range(100):  # give the loop every chance to read more, if it could
        await asyncio.sleep(0)
    assert len(chunks) == held
    gate.set()
    async with asyncio.timeout(TIMEOUT):
        report = await task
    assert len(chunks) > held
    assert sum(chunks) == report.audio_bytes  # type: ignore[attr-defined]
