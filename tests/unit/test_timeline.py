"""The demo timeline: one line per event, folded audio runs, never base64."""

from __future__ import annotations

import base64

from voicegw.clock import FakeClock
from voicegw.protocol import (
    ChatUpdate,
    ChatUpdateData,
    ConversationAudioDelta,
    ConversationAudioTranscriptCompleted,
    InputAudio,
    InputAudioBufferAppend,
    Message,
    encode,
)
from voicegw.timeline import Timeline


def test_timeline_folds_audio_and_hides_payloads() -> None:
    clock = FakeClock(100.0)
    lines: list[str] = []
    tl = Timeline(clock, lines.append)
    audio = bytes(range(256)) * 3  # 768 bytes
    b64 = base64.b64encode(audio).decode()
    tl(
        ">",
        encode(
            ChatUpdate(
                config=ChatUpdateData(
                    input_audio=InputAudio(format="pcm", codec="pcm", sample_rate=16000)
                )
            )
        ),
    )
    for _ in range(5):
        clock.advance(0.02)
        tl(">", encode(InputAudioBufferAppend(delta=audio)))
    clock.advance(0.5)
    tl("<", encode(ConversationAudioTranscriptCompleted(content="hello there")))
    for _ in range(3):
        clock.advance(0.01)
        msg = Message(id="m1", chat_id="c1", content=b64, content_type="audio")
        tl("<", encode(ConversationAudioDelta(message=msg)))
    tl.close()
    text = "\n".join(lines)
    assert b64[:40] not in text
    assert len(lines) == 4
    assert "chat.update" in lines[0] and "in=pcm/pcm/16000" in lines[0]
    assert "input_audio_buffer.append" in lines[1] and "x5" in lines[1]
    assert f"{5 * len(audio)} B" in lines[1]
    assert "'hello there'" in lines[2]
    assert "conversation.audio.delta" in lines[3] and "x3" in lines[3]
    assert f"{3 * len(audio)} B" in lines[3]
    assert lines[1].lstrip().startswith("20 ms")


def test_timeline_survives_malformed_frames() -> None:
    lines: list[str] = []
    tl = Timeline(FakeClock(), lines.append)
    tl("<", "{not json")
    assert "malformed" in lines[0]
