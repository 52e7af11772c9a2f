"""The emulator's bots: deterministic stand-ins for a Coze agent, chosen by name.

A bot turns a user turn into a :class:`Reply`: sentences of text, each with the audio that
speaks it, and optionally a client-side tool call (spec 2.6.7). Bots never see the protocol.

* ``echo``: replies with the user's own audio (text ``"You said: <transcript>"``). For typed
  messages there is no user audio, so it speaks the text with the tone voice.
* ``tone``: a short rising tone sequence whose length scales with the utterance (one tone per
  0.4 s of speech or per typed word, 1 to 12), with text saying so.
* ``espeak``: speaks a reply with espeak-ng: ``"I heard 2.4 seconds of speech."`` for voice,
  ``"You wrote: ..."`` for typed messages. Without espeak-ng it falls back to the tone voice
  and logs a warning once per process.
* ``script:PATH``: a JSON file holding a list of turns
  ``{"transcript": "...", "reply": "...", "tool_call": {"name": ..., "arguments": {...}}}``
  (``tool_call`` optional). Each user turn, spoken or typed, consumes the next turn, cycling
  at the end. For spoken turns the ``transcript`` is what the emulated ASR "hears". A turn with
  a ``tool_call`` first requests the tool; its ``reply`` is spoken once the client submits the
  output, with ``{output}`` replaced by the tool output (or the output appended when the reply
  has no ``{output}``). Replies are spoken with espeak-ng when installed, else tones.

Every bot also honours the typed command ``/tool NAME {json arguments}``: it requests a call of
tool NAME (spec 2.6.7) so tool round trips can be tested without a script. After the client
submits the output, the bot says ``"The NAME tool returned OUTPUT."``.

Each connection gets its own bot instance (a script restarts at its first turn).
Synthesis is synchronous: espeak-ng takes tens of milliseconds per sentence; the I/O adapter
runs the protocol core (and so the bot) in a worker thread.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import Samples
from ..errors import ConfigError, VoiceGatewayError

__all__ = [
    "BOT_NAMES",
    "TONE_RATE",
    "Bot",
    "EchoBot",
    "EspeakBot",
    "Reply",
    "ScriptBot",
    "ScriptTurn",
    "Sentence",
    "ToneBot",
    "ToolRequest",
    "UserTurn",
    "bot_factory",
    "load_script",
    "parse_tool_command",
    "split_sentences",
    "tone_voice",
]

log = logging.getLogger(__name__)

#: Bot names accepted by :func:`bot_factory` (plus ``script:PATH``).
BOT_NAMES = ("echo", "tone", "espeak")
#: Sample rate of synthesised tones.
TONE_RATE = 24000

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_TOOL_COMMAND = re.compile(r"^/tool\s+(\S+)\s*(.*)$", re.DOTALL)
_espeak_warned = False


@dataclass(frozen=True, slots=True)
class Sentence:
    """One spoken sentence: its subtitle text and mono int16 audio at ``rate``."""

    text: str
    audio: Samples
    rate: int


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A client-side tool call the bot wants made."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the bot answers: sentences, or a tool call to make first."""

    sentences: tuple[Sentence, ...] = ()
    tool_call: ToolRequest | None = None

    @property
    def text(self) -> str:
        """The whole answer text."""
        return " ".join(s.text for s in self.sentences)


@dataclass(frozen=True, slots=True)
class UserTurn:
    """A finished user turn: the transcript and, for spoken turns, the committed audio."""

    transcript: str
    audio: Samples | None = None
    rate: int = 16000
    speech_s: float = 0.0
    typed: bool = False


@dataclass(frozen=True, slots=True)
class ScriptTurn:
    """One turn of a script file."""

    transcript: str
    reply: str
    tool_call: ToolRequest | None = None


def split_sentences(text: str) -> list[str]:
    """Split text after terminal punctuation (``. ! ? 。 ！ ？``); never returns empty parts."""
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if p] or [text.strip() or "..."]


def parse_tool_command(text: str) -> ToolRequest | None:
    """Parse ``/tool NAME {json}``; ``None`` if ``text`` is not such a command.

    Arguments that are not a JSON object are passed as ``{"input": "<text>"}``.
    """
    m = _TOOL_COMMAND.match(text.strip())
    if m is None:
        return None
    raw = m.group(2).strip()
    args: dict[str, Any] = {}
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        args = parsed if isinstance(parsed, dict) else {"input": raw}
    return ToolRequest(m.group(1), args)


def _tone(freq: float, seconds: float, rate: int = TONE_RATE, level: float = 0.3) -> Samples:
    n = max(1, round(seconds * rate))
    t = np.arange(n) / rate
    x = np.sin(2 * math.pi * freq * t) * level
    ramp = min(n // 2, rate // 200)  # 5 ms fades: no clicks
    if ramp:
        fade = np.linspace(0.0, 1.0, ramp)
        x[:ramp] *= fade
        x[-ramp:] *= fade[::-1]
    out: Samples = np.round(x * 32767).astype(np.int16)
    return out


def _sequence(freqs: Sequence[float], tone_s: float, gap_s: float = 0.05) -> Samples:
    gap = np.zeros(round(gap_s * TONE_RATE), dtype=np.int16)
    parts: list[Samples] = []
    for f in freqs:
        parts += [_tone(f, tone_s), gap]
    return np.concatenate(parts) if parts else gap


def tone_voice(text: str) -> Sentence:
    """Speak ``text`` as tones: one per word, pitch and length derived from the word."""
    words = text.split() or [text]
    freqs = [300.0 + (sum(map(ord, w)) % 20) * 30.0 for w in words]
    lengths = [min(0.3, 0.06 + 0.02 * len(w)) for w in words]
    gap = np.zeros(round(0.04 * TONE_RATE), dtype=np.int16)
    parts: list[Samples] = []
    for f, s in zip(freqs, lengths, strict=True):
        parts += [_tone(f, s), gap]
    return Sentence(text, np.concatenate(parts), TONE_RATE)


def _espeak(text: str) -> Sentence | None:
    """Speak with espeak-ng, or ``None`` (after one warning per process) when unavailable."""
    global _espeak_warned
    try:
        from ..speech import espeak_available, synthesize

        if espeak_available():
            samples, rate = synthesize(text)
            return Sentence(text, samples, rate)
    except (ImportError, VoiceGatewayError) as exc:
        reason = str(exc)
    else:
        reason = "espeak-ng is not installed"
    if not _espeak_warned:
        _espeak_warned = True
        log.warning("espeak bot: %s; speaking with tones instead", reason)
    return None


class Bot(ABC):
    """Base of the emulator's bots.

    Args:
        voice: ``"espeak"`` (espeak-ng, falling back to tones) or ``"tone"``.
    """

    name = "bot"

    def __init__(self, voice: str = "tone") -> None:
        self.voice = voice

    def speak(self, text: str) -> tuple[Sentence, ...]:
        """Synthesise ``text`` in this bot's voice, one :class:`Sentence` per sentence."""
        out: list[Sentence] = []
        for part in split_sentences(text):
            spoken = _espeak(part) if self.voice == "espeak" else None
            out.append(spoken or tone_voice(part))
        return tuple(out)

    def scripted_transcript(self) -> str | None:
        """What the emulated ASR hears in the next spoken turn (``None``: unscripted)."""
        return None

    def reply(self, turn: UserTurn) -> Reply:
        """Answer a user turn (typed ``/tool`` commands request a tool call)."""
        if turn.typed:
            request = parse_tool_command(turn.transcript)
            if request is not None:
                return Reply(tool_call=request)
        return self._reply(turn)

    @abstractmethod
    def _reply(self, turn: UserTurn) -> Reply: ...

    def tool_reply(self, request: ToolRequest, output: str) -> Reply:
        """Answer after the client submitted the tool's ``output``."""
        return Reply(self.speak(f"The {request.name} tool returned {output}."))


class EchoBot(Bot):
    """Replies with the user's own audio."""

    name = "echo"

    def _reply(self, turn: UserTurn) -> Reply:
        text = f"You said: {turn.transcript}"
        if turn.audio is None or turn.audio.size == 0:
            return Reply(self.speak(text))
        return Reply((Sentence(text, turn.audio, turn.rate),))


class ToneBot(Bot):
    """Replies with a rising tone sequence as long as the utterance deserves."""

    name = "tone"

    def _reply(self, turn: UserTurn) -> Reply:
        if turn.typed:
            n = len(turn.transcript.split())
            what = f"your {n} word{'s' if n != 1 else ''}"
        else:
            n = round(turn.speech_s / 0.4)
            what = f"{turn.speech_s:.1f} seconds of speech"
        n = max(1, min(12, n))
        freqs = [440.0 * 2 ** (i / 12) for i in range(0, 2 * n, 2)]
        text = f"Here {'is' if n == 1 else 'are'} {n} tone{'s' if n != 1 else ''} for {what}."
        return Reply((Sentence(text, _sequence(freqs, 0.15), TONE_RATE),))


class EspeakBot(Bot):
    """Speaks a short reply with espeak-ng (tones when espeak-ng is missing)."""

    name = "espeak"

    def __init__(self) -> None:
        super().__init__("espeak")

    def _reply(self, turn: UserTurn) -> Reply:
        if turn.typed:
            return Reply(self.speak(f"You wrote: {turn.transcript}"))
        return Reply(self.speak(f"I heard {turn.speech_s:.1f} seconds of speech."))


class ScriptBot(Bot):
    """Plays a script of turns in order, cycling."""

    name = "script"

    def __init__(self, turns: Sequence[ScriptTurn]) -> None:
        super().__init__("espeak")
        if not turns:
            raise ConfigError("a script needs at least one turn")
        self.turns = tuple(turns)
        self._index = 0
        self._after_tool: str | None = None

    def scripted_transcript(self) -> str | None:
        return self.turns[self._index % len(self.turns)].transcript

    def _reply(self, turn: UserTurn) -> Reply:
        step = self.turns[self._index % len(self.turns)]
        self._index += 1
        if step.tool_call is not None:
            self._after_tool = step.reply
            return Reply(tool_call=step.tool_call)
        return Reply(self.speak(step.reply))

    def tool_reply(self, request: ToolRequest, output: str) -> Reply:
        text, self._after_tool = self._after_tool, None
        if text is None:
            return super().tool_reply(request, output)
        if "{output}" in text:
            return Reply(self.speak(text.replace("{output}", output)))
        return Reply(self.speak(f"{text} The {request.name} tool returned {output}."))


def load_script(path: str | Path) -> tuple[ScriptTurn, ...]:
    """Read and validate a script file (see the module docstring for the format).

    Raises:
        ConfigError: the file is missing, not JSON, or a turn is malformed (names the turn).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read bot script {p}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"bot script {p} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ConfigError(f"bot script {p} must be a non-empty JSON list of turns")
    turns = []
    for i, item in enumerate(data):
        where = f"{p} turn {i}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected an object")
        transcript, reply = item.get("transcript"), item.get("reply")
        if not isinstance(transcript, str) or not isinstance(reply, str):
            raise ConfigError(f"{where}: 'transcript' and 'reply' must be strings")
        tool = item.get("tool_call")
        request = None
        if tool is not None:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise ConfigError(f"{where}: 'tool_call' needs a string 'name'")
            args = tool.get("arguments", {})
            if not isinstance(args, dict):
                raise ConfigError(f"{where}: 'tool_call.arguments' must be an object")
            request = ToolRequest(tool["name"], args)
        turns.append(ScriptTurn(transcript, reply, request))
    return tuple(turns)


def bot_factory(spec: str) -> Callable[[], Bot]:
    """Validate a bot name once and return a factory of fresh bots (one per connection).

    Args:
        spec: ``echo``, ``tone``, ``espeak`` or ``script:PATH``.

    Raises:
        ConfigError: unknown name, or a bad script file.
    """
    if spec.startswith("script:"):
        turns = load_script(spec.removeprefix("script:"))
        return lambda: ScriptBot(turns)
    makers: dict[str, Callable[[], Bot]] = {
        "echo": EchoBot,
        "tone": lambda: ToneBot(),
        "espeak": EspeakBot,
    }
    if spec not in makers:
        raise ConfigError(f"unknown bot {spec!r}; use one of {', '.join(BOT_NAMES)} or script:PATH")
    return makers[spec]
