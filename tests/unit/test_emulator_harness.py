"""A fake-clock driver for the emulator core, and the envelope tests (spec 1.6, 1.7).

Other ``test_emulator_*`` modules import :class:`Harness` from here (``tests/unit`` is on
``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicegw.clock import FakeClock
from voicegw.emulator.bots import Bot, bot_factory
from voicegw.emulator.chat import ChatConnection
from voicegw.emulator.turns import Timing

__all__ = ["WALL0", "Harness", "audio_of", "tone", "types"]

#: Wall-clock time (Unix seconds) at the harness's start.
WALL0 = 1_752_474_748.0
_T0 = 100.0

Frame = dict[str, Any]


def types(frames: list[Frame]) -> list[str]:
    return [f["event_type"] for f in frames]


def audio_of(frames: list[Frame]) -> bytes:
    """Concatenated payloads of every ``conversation.audio.delta``."""
    return b"".join(
        base64.b64decode(f["data"]["content"])
        for f in frames
        if f["event_type"] == "conversation.audio.delta"
    )


def tone(
    seconds: float, rate: int = 16000, freq: float = 440.0, level: float = 0.3
) -> NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return np.round(np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


class Harness:
    """Drives one :class:`ChatConnection` with JSON frames on a :class:`FakeClock`."""

    def __init__(
        self, bot: str | Bot = "echo", *, seed: int = 1, timing: Timing | None = None
    ) -> None:
        self.clock = FakeClock(_T0)
        made = bot_factory(bot)() if isinstance(bot, str) else bot
        kwargs: dict[str, Any] = {"timing": timing} if timing is not None else {}
        self.conn = ChatConnection(
            made,
            now=self.clock.now(),
            rng=random.Random(seed),
            wall_clock=lambda: WALL0 + self.clock.now() - _T0,
            **kwargs,
        )
        #: Every frame released so far, decoded, with ``"t"`` = fake time of release.
        self.frames: list[Frame] = []

    def raw(self, text: str | bytes) -> None:
        self.conn.receive(text, self.clock.now())

    def send(self, event_type: str, data: Any = None, *, id: str | None = None) -> str:
        ev: dict[str, Any] = {"event_type": event_type}
        if id is not None:
            ev["id"] = id
        if data is not None:
            ev["data"] = data
        text = json.dumps(ev)
        self.raw(text)
        return text

    def update(self, data: dict[str, Any], *, id: str | None = None) -> list[Frame]:
        self.send("chat.update", data, id=id)
        return self.pump()

    def say(self, text: str) -> None:
        self.send(
            "conversation.message.create", {"role": "user", "content_type": "text", "content": text}
        )

    def append(self, pcm: bytes) -> None:
        self.send("input_audio_buffer.append", {"delta": base64.b64encode(pcm).decode()})

    def stream(
        self, samples: NDArray[np.int16], rate: int, chunk_ms: int = 20, *, realtime: bool = False
    ) -> list[tuple[float, list[Frame]]]:
        """Append ``samples`` in chunks; returns (audio position after chunk, frames) pairs.

        With ``realtime`` the fake clock advances by each chunk's duration (and due frames
        are collected along the way); otherwise everything arrives at the current time.
        """
        n = rate * chunk_ms // 1000
        out = []
        for i in range(0, samples.shape[0], n):
            chunk = samples[i : i + n]
            self.append(chunk.astype("<i2").tobytes())
            out.append(((i + chunk.shape[0]) / rate, self.pump()))
            if realtime:
                self.advance(chunk.shape[0] / rate)
        return out

    def pump(self) -> list[Frame]:
        """Frames due now."""
        new = [json.loads(f) | {"t": self.clock.now()} for f in self.conn.due(self.clock.now())]
        self.frames.extend(new)
        return new

    def advance(self, seconds: float) -> list[Frame]:
        """Move the clock forward, releasing frames at their due times."""
        end = self.clock.now() + seconds
        out: list[Frame] = []
        while (d := self.conn.next_deadline()) is not None and d <= end:
            self.clock.set(max(d, self.clock.now()))
            out += self.pump()
        self.clock.set(end)
        return out + self.pump()

    def run(self, limit_s: float = 600.0) -> list[Frame]:
        """Release everything queued, advancing the clock to each deadline."""
        out = self.pump()
        start = self.clock.now()
        while (d := self.conn.next_deadline()) is not None:
            assert d - start < limit_s, "the connection never went idle"
            self.clock.set(max(d, self.clock.now()))
            out += self.pump()
        return out

    def until(self, event_type: str, limit_s: float = 60.0) -> list[Frame]:
        """Release frames up to and including the first ``event_type``."""
        out = self.pump()
        start = self.clock.now()
        while event_type not in types(out):
            d = self.conn.next_deadline()
            assert d is not None and d - start < limit_s, f"no {event_type} came"
            self.clock.set(max(d, self.clock.now()))
            out += self.pump()
        return out


# ---------------------------------------------------------------- envelope (spec 1.6, 1.7)

LOGID = re.compile(r"^02\d{13}[0-9a-f]{38}$")


def test_chat_created_is_first_with_no_data_and_real_detail_format() -> None:
    h = Harness()
    (first,) = h.pump()
    assert list(first) == ["event_type", "id", "detail", "t"]
    assert first["event_type"] == "chat.created"
    assert uuid.UUID(first["id"]).version == 4
    assert LOGID.match(first["detail"]["logid"]) and len(first["detail"]["logid"]) == 53
    assert first["detail"]["logid"][2:15] == str(int(WALL0 * 1000))
    assert first["detail"]["respond_at"] == str(int(WALL0 * 1000))


def test_one_logid_per_connection_and_respond_at_is_release_time() -> None:
    h = Harness()
    h.pump()
    h.say("hello")
    frames = h.run()
    assert len(frames) > 10
    assert {f["detail"]["logid"] for f in h.frames} == {h.conn.logid}
    for f in frames:
        assert f["detail"]["respond_at"] == str(int((WALL0 + f["t"] - 100.0) * 1000))
        assert list(f)[:2] == ["event_type", "id"]
    assert Harness(seed=2).conn.logid != h.conn.logid


def test_acks_echo_client_ids_and_other_events_get_uuids() -> None:
    h = Harness()
    h.pump()
    assert h.update({}, id="evt-1")[0]["id"] == "evt-1"
    h.send("input_audio_buffer.clear", id="evt-2")
    h.send("conversation.clear", id="evt-3")
    assert [(f["event_type"], f["id"]) for f in h.pump()] == [
        ("input_audio_buffer.cleared", "evt-2"),
        ("conversation.cleared", "evt-3"),
    ]
    h.send("conversation.clear")
    (ack,) = h.pump()
    assert uuid.UUID(ack["id"]).version == 4
    h.send(
        "conversation.message.create",
        {"role": "user", "content_type": "text", "content": "hi"},
        id="m-1",
    )
    ids = [f["id"] for f in h.run()]
    assert "m-1" not in ids and len(set(ids)) == len(ids)


def test_the_core_imports_no_io_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, voicegw.emulator.chat, voicegw.emulator.vad, voicegw.emulator.pacing\n"
        "print([m for m in ('asyncio', 'websockets', 'pyaudio') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
