"""Streaming ASR (spec 5): event round trips, the client session and the emulator core, fed
strings (the emulator core on a fake clock)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from voicegw.announce import TranscriptPrinter
from voicegw.emulator.asr import describe_speech
from voicegw.emulator.bots import EchoBot, ScriptBot, ScriptTurn
from voicegw.emulator.chat import ChatConnection
from voicegw.emulator.inbound import WAV_FORMAT_ERROR
from voicegw.emulator.transcriptions import TranscriptionConnection
from voicegw.emulator.vad import find_speech
from voicegw.errors import LocalProtocolError, RemoteProtocolError
from voicegw.protocol.asr import (
    ASR_CLIENT_EVENTS,
    ASR_SERVER_EVENTS,
    AsrReady,
    AsrSession,
    AsrState,
    Transcript,
    TranscriptionsMessageCompleted,
    TranscriptionsMessageUpdate,
    TranscriptionsUpdate,
)
from voicegw.protocol.events import InputAudioBufferAppend
from voicegw.protocol.objects import ASRConfig, InputAudio
from voicegw.protocol.outputs import ServerError
from voicegw.protocol.wire import decode_with, encode

Frame = dict[str, Any]
Audio = tuple[NDArray[np.int16], int]
PCM16K = InputAudio(format="pcm", codec="pcm", sample_rate=16000, channel=1, bit_depth=16)
PCM16K_JSON = {"format": "pcm", "codec": "pcm", "sample_rate": 16000, "channel": 1, "bit_depth": 16}


# ---------------------------------------------------------------- events (spec 5.1, 5.2, App. B)


def test_transcriptions_update_round_trips_the_spec_example() -> None:
    raw = (
        '{"id":"event_id","event_type":"transcriptions.update","data":{"input_audio":'
        '{"format":"pcm","codec":"pcm","sample_rate":24000,"channel":1,"bit_depth":16}}}'
    )
    ev = decode_with(raw, ASR_CLIENT_EVENTS)
    assert isinstance(ev, TranscriptionsUpdate)
    assert ev.config.input_audio == InputAudio(
        format="pcm", codec="pcm", sample_rate=24000, channel=1, bit_depth=16
    )
    assert orjson.loads(encode(ev)) == orjson.loads(raw)
    with_asr = (
        '{"event_type":"transcriptions.update","data":{"asr_config":{"user_language":"en",'
        '"hot_words":["voicegw"],"enable_punc":false}}}'
    )
    ev = decode_with(with_asr, ASR_CLIENT_EVENTS)
    assert isinstance(ev, TranscriptionsUpdate) and ev.config.asr_config is not None
    assert ev.config.asr_config.hot_words == ("voicegw",)
    with pytest.raises(RemoteProtocolError) as info:
        decode_with(
            '{"event_type":"transcriptions.update","data":{"input_audio":{"sample_rate":1}}}',
            ASR_CLIENT_EVENTS,
        )
    assert info.value.path == "data.input_audio.sample_rate"


def test_server_frames_of_real_traffic_decode() -> None:
    raw = (
        '{"event_type":"transcriptions.message.update","id":"fe71243f","data":'
        '{"content":"今天天气不错。"},"detail":{"logid":"0217","respond_at":"1752474748918"}}'
    )
    ev = decode_with(raw, ASR_SERVER_EVENTS)
    assert isinstance(ev, TranscriptionsMessageUpdate) and ev.content == "今天天气不错。"
    done = decode_with(
        '{"event_type":"transcriptions.message.completed","id":"x"}', ASR_SERVER_EVENTS
    )
    assert isinstance(done, TranscriptionsMessageCompleted) and done.content is None
    assert "data" not in orjson.loads(encode(done))
    append = decode_with(
        '{"event_type":"input_audio_buffer.append","data":{"delta":"UklGRjhEAQBXQVZF"}}',
        ASR_CLIENT_EVENTS,
    )
    assert isinstance(append, InputAudioBufferAppend) and append.delta.startswith(b"RIFF")


# ---------------------------------------------------------------- the client session


def frame(event_type: str, **data: Any) -> str:
    out: Frame = {"event_type": event_type, "id": "s", "detail": {"logid": "L2"}}
    if data:
        out["data"] = data
    return json.dumps(out)


def sent(session: AsrSession) -> list[Frame]:
    return [json.loads(f) for f in session.data_to_send()]


def test_audio_waits_for_transcriptions_updated_then_flows_in_order() -> None:
    s = AsrSession(PCM16K, ASRConfig(user_language="en"))
    (update,) = sent(s)  # the first frame, without waiting for transcriptions.created
    s.send_audio(b"\x01\x00" * 160)  # the microphone starts before the handshake ends
    s.send_audio(b"\x02\x00" * 160)
    s.receive_text(frame("transcriptions.created"))
    assert sent(s) == []  # held until the format is confirmed
    assert update["event_type"] == "transcriptions.update"
    assert update["data"] == {"input_audio": PCM16K_JSON, "asr_config": {"user_language": "en"}}
    s.send_audio(b"\x03\x00" * 160)
    s.complete()  # before the format is confirmed: held too
    assert sent(s) == [] and s.state is AsrState.CONFIGURING
    s.receive_text(frame("transcriptions.updated", input_audio=PCM16K_JSON))
    out = sent(s)
    assert [f["event_type"] for f in out] == ["input_audio_buffer.append"] * 3 + [
        "input_audio_buffer.complete"
    ]
    assert [base64.b64decode(f["data"]["delta"])[0] for f in out[:3]] == [1, 2, 3]
    assert len({f["id"] for f in out}) == 4
    assert s.state is AsrState.COMMITTED
    assert isinstance(s.events_received()[0], AsrReady)


def test_interim_and_final_transcripts() -> None:
    s = AsrSession(PCM16K)
    s.receive_text(frame("transcriptions.created"))
    s.receive_text(frame("transcriptions.updated", input_audio=PCM16K_JSON))
    s.send_audio(b"\x00\x00" * 320)
    s.receive_text(frame("transcriptions.message.update", content="today"))
    s.receive_text(frame("transcriptions.message.update", content="today the weather"))
    s.complete()
    s.receive_text(frame("input_audio_buffer.completed"))
    s.receive_text(frame("transcriptions.message.update", content="Today the weather is fine."))
    s.receive_text(frame("transcriptions.message.completed"))
    got = [e for e in s.events_received() if isinstance(e, Transcript)]
    assert got == [
        Transcript("today", False),
        Transcript("today the weather", False),
        Transcript("Today the weather is fine.", False),
        Transcript("Today the weather is fine.", True),
    ]
    assert s.state is AsrState.DONE and s.close_expected() and s.logid == "L2"
    with pytest.raises(LocalProtocolError):
        s.send_audio(b"\x00\x00")


def test_errors_and_a_dishonoured_format_fail_the_session() -> None:
    s = AsrSession(PCM16K)
    s.receive_text(frame("transcriptions.created"))
    s.receive_text(frame("error", code=4000, msg="bad input_audio"))
    (err,) = [e for e in s.events_received() if isinstance(e, ServerError)]
    assert err.code == 4000 and s.state is AsrState.FAILED
    s = AsrSession(PCM16K)
    s.receive_text(frame("transcriptions.created"))
    s.receive_text(frame("transcriptions.updated", input_audio={**PCM16K_JSON, "format": "wav"}))
    (err,) = [e for e in s.events_received() if isinstance(e, ServerError)]
    assert "input_audio.format" in err.msg and s.state is AsrState.FAILED


def test_held_audio_is_bounded_and_invalid_settings_refused() -> None:
    s = AsrSession(PCM16K, max_pending_bytes=1000)
    for _ in range(10):
        s.send_audio(b"\x00" * 400)
    assert s.dropped == 8
    with pytest.raises(LocalProtocolError) as info:
        AsrSession(InputAudio(codec="g711a", sample_rate=16000))
    assert info.value.path is not None and "sample_rate" in info.value.path


# ---------------------------------------------------------------- the emulator core


class Emu:
    def __init__(self, bot: Any = None) -> None:
        self.now = 10.0
        self.core = TranscriptionConnection(bot or EchoBot(), now=self.now)

    def send(self, event_type: str, id: str | None = None, **data: Any) -> None:
        f: Frame = {"event_type": event_type}
        if id:
            f["id"] = id
        if data:
            f["data"] = data
        self.core.receive(json.dumps(f), self.now)

    def append(self, pcm: bytes) -> None:
        self.send("input_audio_buffer.append", delta=base64.b64encode(pcm).decode())

    def take(self) -> list[Frame]:
        return [json.loads(x) for x in self.core.due(self.now)]


def stream(emu: Emu, samples: NDArray[np.int16], chunk: int = 320) -> list[list[Frame]]:
    """Append ``samples`` in chunks; the frames each append released."""
    out = []
    for i in range(0, len(samples), chunk):
        emu.append(samples[i : i + chunk].tobytes())
        out.append(emu.take())
    return out


def test_the_real_sequence_with_interims_while_streaming(speech16k: Audio) -> None:
    samples, rate = speech16k
    e = Emu()
    (created,) = e.take()
    assert created["event_type"] == "transcriptions.created" and "data" not in created
    e.send("transcriptions.update", id="u1", input_audio={"format": "pcm", "sample_rate": 16000})
    (updated,) = e.take()
    assert updated["id"] == "u1" and updated["data"] == {"input_audio": PCM16K_JSON}
    during = [f for batch in stream(e, samples) for f in batch]
    interims = [f["data"]["content"] for f in during]
    assert interims[:3] == ["(0.50 s of speech)", "(1.00 s of speech)", "(1.50 s of speech)"]
    e.send("input_audio_buffer.complete", id="c1")
    done = e.take()
    assert [f["event_type"] for f in done] == [
        "input_audio_buffer.completed",
        "transcriptions.message.update",
        "transcriptions.message.completed",
    ]
    assert done[0]["id"] == "c1" and "data" not in done[2]
    onset, end = find_speech(samples, rate)  # type: ignore[misc]
    assert done[1]["data"]["content"] == describe_speech((end - onset) / rate)
    assert len(interims) == int((end - onset) / rate / 0.5)


def chat_transcript(samples: NDArray[np.int16], bot: Any) -> str:
    """What the /v1/chat emulator transcribes for the same push-to-talk audio."""
    core = ChatConnection(bot, now=0.0)
    core.receive(json.dumps({"event_type": "chat.update", "data": {"input_audio": PCM16K_JSON}}), 0)
    for i in range(0, len(samples), 320):
        delta = base64.b64encode(samples[i : i + 320].tobytes()).decode()
        core.receive(
            json.dumps({"event_type": "input_audio_buffer.append", "data": {"delta": delta}}), 0
        )
    core.receive('{"event_type":"input_audio_buffer.complete"}', 0)
    frames = [json.loads(f) for f in core.due(0.0)]
    (final,) = [f for f in frames if f["event_type"] == "conversation.audio_transcript.completed"]
    return str(final["data"]["content"])


def test_transcripts_match_the_chat_emulator(speech16k: Audio, short16k: Audio) -> None:
    for samples, _ in (speech16k, short16k):
        e = Emu()
        e.send("transcriptions.update", input_audio=PCM16K_JSON)
        stream(e, samples, chunk=1000)
        e.send("input_audio_buffer.complete")
        assert e.core.results[-1] == chat_transcript(samples, EchoBot())


def test_a_script_supplies_the_words(speech16k: Audio) -> None:
    turns = (ScriptTurn("Turn on the kitchen lights please.", "ok"), ScriptTurn("Thanks.", "ok"))
    e = Emu(ScriptBot(turns))
    e.send("transcriptions.update", input_audio=PCM16K_JSON)
    e.take()
    interims = [f["data"]["content"] for batch in stream(e, speech16k[0]) for f in batch]
    assert interims[0] == "Turn on" and interims[1] == "Turn on the"
    assert all("Turn on the kitchen lights please.".startswith(t) for t in interims)
    e.send("input_audio_buffer.complete")
    e.append(bytes(3200))  # silence: consumes no script turn
    e.send("input_audio_buffer.complete")
    e.append(speech16k[0][16000:48000].tobytes())
    e.send("input_audio_buffer.complete")
    assert e.core.results == ["Turn on the kitchen lights please.", "", "Thanks."]
    assert e.core.results[0] == chat_transcript(speech16k[0], ScriptBot(turns))


def test_no_speech_gives_an_empty_result_and_clear_discards() -> None:
    e = Emu()
    e.send("transcriptions.update", input_audio=PCM16K_JSON)
    e.take()
    e.append(bytes(32000))
    e.send("input_audio_buffer.complete")
    assert [f["event_type"] for f in e.take()] == [
        "input_audio_buffer.completed",
        "transcriptions.message.completed",
    ]
    tone = (np.sin(np.arange(16000) / 5.0) * 8000).astype(np.int16)
    e.append(tone.tobytes())
    assert e.take()  # interims for the tone
    e.send("input_audio_buffer.clear", id="k1")
    (cleared,) = e.take()
    assert cleared["event_type"] == "input_audio_buffer.cleared" and cleared["id"] == "k1"
    e.send("input_audio_buffer.complete")
    assert e.core.results == ["", ""]


def test_raw_pcm_under_the_default_wav_format_is_an_error_at_complete() -> None:
    e = Emu()
    e.take()
    tone = (np.sin(np.arange(24000) / 5.0) * 8000).astype(np.int16)
    e.append(tone.tobytes())
    assert e.take() == []  # no interims for an invalid stream
    e.send("input_audio_buffer.complete")
    (err,) = e.take()
    assert err["data"] == {"code": 4000, "msg": WAV_FORMAT_ERROR}


def test_a_wav_stream_is_decoded_from_its_header(fixtures_dir: Path, speech16k: Audio) -> None:
    e = Emu()
    e.take()
    wav = (fixtures_dir / "speech16k.wav").read_bytes()
    e.append(wav)  # the whole file in one append, as in the recorded traffic
    e.send("input_audio_buffer.complete")
    assert e.core.results == [chat_transcript(speech16k[0], EchoBot())]


@pytest.mark.parametrize(
    ("input_audio", "path"),
    [
        ({"sample_rate": 12345}, "data.input_audio.sample_rate"),
        ({"codec": "g711a", "sample_rate": 16000, "format": "pcm"}, "data.input_audio.sample_rate"),
        ({"format": "ogg"}, "data.input_audio.format"),
        ({"channel": 3}, "data.input_audio.channel"),
    ],
)
def test_bad_config_gets_4000_naming_the_field(input_audio: dict[str, Any], path: str) -> None:
    e = Emu()
    e.take()
    e.send("transcriptions.update", input_audio=input_audio)
    (err,) = e.take()
    assert err["data"]["code"] == 4000 and path in err["data"]["msg"]
    assert "transcriptions.update" in err["data"]["msg"]
    assert e.core.input_audio.format == "wav"  # unchanged


# ---------------------------------------------------------------- printing (voicegw transcribe)


class _Out(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "want"),
    [
        (True, "\r\033[Kone\r\033[Kone two\r\033[Kone two.\n"),
        (False, "[partial] one\n[partial] one two\none two.\n"),
    ],
)
def test_interims_overwrite_a_terminal_line_or_get_one_line_each(tty: bool, want: str) -> None:
    out = _Out(tty)
    printer = TranscriptPrinter(out)
    for t in (Transcript("one", False), Transcript("one two", False), Transcript("one two.", True)):
        printer(t)
    assert out.getvalue() == want
