"""A readable, payload-free timeline of the frames a session exchanged.

Each line is ``+MS  DIR  event_type  summary``. Runs of the same audio event
(``input_audio_buffer.append``, ``conversation.audio.delta``) are folded into one line with a
count and a byte total, so a 20 ms uplink does not print 50 lines a second. Base64 audio is
never printed: only its decoded size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .clock import Clock

__all__ = ["Timeline", "summarize"]

_FOLDED = {"input_audio_buffer.append", "conversation.audio.delta"}


def _b64_size(text: Any) -> int:
    if not isinstance(text, str):
        return 0
    pad = text.count("=", max(0, len(text) - 2))
    return len(text) * 3 // 4 - pad


def _short(text: str, limit: int = 70) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(event_type: str, data: Any) -> str:
    """A one-line summary of an event's ``data``, without audio or secrets."""
    if not isinstance(data, dict):
        return ""
    if event_type in ("chat.update", "chat.updated"):
        parts = []
        ia, oa, td = data.get("input_audio"), data.get("output_audio"), data.get("turn_detection")
        if isinstance(ia, dict):
            parts.append(f"in={ia.get('format')}/{ia.get('codec')}/{ia.get('sample_rate')}")
        if isinstance(oa, dict):
            cfg = oa.get("pcm_config") or oa.get("opus_config") or oa.get("mp3_config") or {}
            rate = cfg.get("sample_rate") if isinstance(cfg, dict) else None
            parts.append(f"out={oa.get('codec')}/{rate}")
        if isinstance(td, dict):
            parts.append(f"turn={td.get('type')}")
        return " ".join(parts)
    if event_type in (
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.chat.completed",
        "conversation.chat.failed",
        "conversation.chat.requires_action",
    ):
        out = f"chat={data.get('id')} status={data.get('status')}"
        usage = data.get("usage")
        if event_type.endswith("completed") and isinstance(usage, dict):
            out += f" tokens={usage.get('token_count')}"
        err = data.get("last_error")
        if isinstance(err, dict) and err.get("code"):
            out += f" error={err.get('code')} {_short(str(err.get('msg')), 40)}"
        return out
    if event_type in ("conversation.message.delta", "conversation.message.completed"):
        kind = f"{data.get('role')}/{data.get('type')}"
        if data.get("content_type") == "audio":
            return kind
        return f"{kind} {_short(str(data.get('content', '')))!r}"
    if event_type in ("conversation.audio.completed",):
        return f"message={data.get('id')}"
    if event_type in (
        "conversation.audio_transcript.update",
        "conversation.audio_transcript.completed",
    ):
        return repr(_short(str(data.get("content", ""))))
    if event_type == "conversation.audio.sentence_start":
        return repr(_short(str(data.get("text", ""))))
    if event_type in ("error", "conversation.chat.canceled"):
        return f"code={data.get('code')} {_short(str(data.get('msg', '')), 80)}"
    if event_type == "conversation.message.create":
        return f"{data.get('role')} {_short(str(data.get('content', '')))!r}"
    if event_type == "input_text.generate_audio":
        return repr(_short(str(data.get("text", ""))))
    return ""


class Timeline:
    """Collects frames (as a :data:`~voicegw.io.cloud.FrameObserver`) and prints lines."""

    def __init__(self, clock: Clock, emit: Callable[[str], None], *, t0: float | None = None):
        self.clock = clock
        self.emit = emit
        self.t0 = clock.now() if t0 is None else t0
        self._run: tuple[str, str, float, float, int, int] | None = None  # dir,type,t1,tN,n,bytes

    def __call__(self, direction: str, frame: str) -> None:
        now = self.clock.now()
        try:
            obj = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self._flush_run()
            self._line(now, direction, "<malformed frame>", f"{len(frame)} chars")
            return
        if not isinstance(obj, dict):
            return
        etype = str(obj.get("event_type", "?"))
        data = obj.get("data")
        if etype in _FOLDED:
            size = 0
            if isinstance(data, dict):
                key = "delta" if etype.startswith("input") else "content"
                size = _b64_size(data.get(key))
            run = self._run
            if run is not None and run[0] == direction and run[1] == etype:
                self._run = (direction, etype, run[2], now, run[4] + 1, run[5] + size)
                return
            self._flush_run()
            self._run = (direction, etype, now, now, 1, size)
            return
        self._flush_run()
        self._line(now, direction, etype, summarize(etype, data))

    def close(self) -> None:
        """Print a pending folded run."""
        self._flush_run()

    def _flush_run(self) -> None:
        if self._run is None:
            return
        direction, etype, t1, tn, n, size = self._run
        self._run = None
        span = (tn - t1) * 1000
        self._line(t1, direction, etype, f"x{n}  {size} B of audio over {span:.0f} ms")

    def _line(self, t: float, direction: str, etype: str, summary: str) -> None:
        ms = (t - self.t0) * 1000
        self.emit(f"{ms:8.0f} ms  {direction} {etype:<40} {summary}".rstrip())
