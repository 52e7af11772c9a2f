"""The emulator's stand-in for speech recognition and the semantic end-of-turn judge.

The emulator does not recognise words. Its transcript names what it heard, for example
``"(2.35 s of speech)"``, unless a script supplies the words the user is meant to have said
(spec 2.4 D17/D18 shapes, content INFERRED):

* interim hypotheses (``conversation.audio_transcript.update``) come every
  :data:`INTERIM_EVERY_S` of speech and carry the *whole* hypothesis so far, as the service's
  do. For scripted text the hypothesis reveals the script's words at :data:`WORDS_PER_S`
  words per second of speech (text without spaces: :data:`CHARS_PER_S` characters), never
  more than the whole text;
* the final transcript is the full script text, or the duration description.

The semantic judge (spec 2.6.5, INFERRED): scripted text that ends in terminal punctuation
(``. ! ? 。 ！ ？``) is a finished utterance; any other scripted text is unfinished;
unscripted audio counts as finished.
"""

from __future__ import annotations

import math

__all__ = [
    "CHARS_PER_S",
    "INTERIM_EVERY_S",
    "TERMINAL_PUNCTUATION",
    "WORDS_PER_S",
    "describe_speech",
    "hypothesis",
    "is_finished",
]

#: Seconds of speech between two interim transcript updates.
INTERIM_EVERY_S = 0.5
#: How fast a scripted hypothesis grows: about 150 words per minute.
WORDS_PER_S = 2.5
#: How fast an unspaced (CJK) scripted hypothesis grows, in characters per second.
CHARS_PER_S = 4.0
#: Characters that end a finished sentence for the semantic judge.
TERMINAL_PUNCTUATION = ".!?。！？"


def describe_speech(speech_s: float) -> str:
    """The unscripted transcript of ``speech_s`` seconds of speech: ``"(2.35 s of speech)"``."""
    return f"({speech_s:.2f} s of speech)"


def hypothesis(script: str | None, speech_s: float) -> str:
    """The whole interim hypothesis after ``speech_s`` seconds of speech."""
    if script is None:
        return describe_speech(speech_s)
    words = script.split()
    if len(words) <= 1:  # unspaced text (Chinese): reveal characters instead
        n = max(1, math.ceil(speech_s * CHARS_PER_S))
        return script[:n]
    n = max(1, math.ceil(speech_s * WORDS_PER_S))
    return script if n >= len(words) else " ".join(words[:n])


def is_finished(script: str | None) -> bool:
    """The semantic judge: is this utterance complete?"""
    if script is None:
        return True
    text = script.rstrip()
    return bool(text) and text[-1] in TERMINAL_PUNCTUATION
