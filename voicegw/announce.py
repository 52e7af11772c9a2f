"""``voicegw say`` and ``voicegw transcribe``: one-shot speech through the streaming TTS and ASR.

* ``say`` speaks a text (an argument, ``--file``, or standard input) on the configured speaker
  (:func:`voicegw.daemon.open_sink`, the ``audio.sink`` of ``voicegw run``). Audio is decoded
  and played while it streams in: a sound card (or a file sink with ``audio.realtime``) plays
  from a playout buffer on a 20 ms timeline, starting after ``audio.playback_prefill_ms``; a
  file sink without ``realtime`` is written as each chunk arrives. The voice and format come
  from ``[output]`` (``voice_id``, ``speech_rate``, ``loudness_rate``, ``codec``,
  ``sample_rate``, ``frame_size_ms``/``limit_*``); MP3, which the TTS API does not offer,
  becomes PCM at 24 kHz. Options override the voice and add ``emotion_config`` and
  ``context_texts``.
* ``transcribe`` streams the configured microphone (:func:`voicegw.daemon.open_source`) or a
  WAV file through the uplink chain (mono, resampled and encoded as ``[input]`` says: PCM at
  16 kHz by default) until Ctrl-C, ``--seconds`` or the end of the file, and prints each
  interim hypothesis (overwriting one line on a terminal, one ``[partial]`` line each
  otherwise) and then the final text on its own line.

Exit statuses are the CLI's: 0 ok, 2 configuration or usage, 3 service, 4 authentication,
5 audio device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from .audio import Samples
from .chains import Downlink, Uplink
from .clock import Clock, SystemClock
from .config import Config, load_config, read_token
from .errors import ConfigError, LocalProtocolError, first_error
from .gateway import AudioSink, AudioSource
from .io.speech_api import SynthesisReport, TranscriptionReport, synthesize, transcribe
from .player import Player
from .protocol.asr import Transcript
from .protocol.objects import (
    ASR_LANGUAGES,
    EMOTIONS,
    ASRConfig,
    EmotionConfig,
    InputAudio,
    OutputAudio,
    PCMConfig,
)
from .protocol.tts import TtsSession
from .tools import DeviceState

__all__ = [
    "SayReport",
    "TranscriptPrinter",
    "add_say_arguments",
    "add_transcribe_arguments",
    "asr_input_audio",
    "listen",
    "run_say",
    "run_transcribe",
    "say",
    "tts_output_audio",
]

_DRAIN_TIMEOUT_S = 5.0
#: Speech queued ahead of the speaker at most, s (synthesis waits beyond it).
_AHEAD_S = 30.0


# ---------------------------------------------------------------- formats from the config


def tts_output_audio(
    cfg: Config,
    *,
    voice_id: str | None = None,
    speech_rate: int | None = None,
    loudness_rate: int | None = None,
    emotion: str | None = None,
    emotion_scale: float | None = None,
    context_texts: Sequence[str] = (),
) -> OutputAudio:
    """``speech.update``'s ``output_audio`` for this config, with optional voice overrides."""
    out = cfg.chat_update().output_audio
    assert out is not None
    if out.codec == "mp3":  # not offered by the TTS API (spec 4.1)
        out = dataclasses.replace(
            out, codec="pcm", mp3_config=None, pcm_config=PCMConfig(sample_rate=24000)
        )
    changes: dict[str, object] = {}
    if voice_id is not None:
        changes["voice_id"] = voice_id or None
    if speech_rate is not None:
        changes["speech_rate"] = speech_rate
    if loudness_rate is not None:
        changes["loudness_rate"] = loudness_rate
    if emotion is not None or emotion_scale is not None:
        changes["emotion_config"] = EmotionConfig(emotion=emotion, emotion_scale=emotion_scale)
    if context_texts:
        changes["context_texts"] = tuple(context_texts)
    return dataclasses.replace(out, **changes)  # type: ignore[arg-type]


def asr_input_audio(cfg: Config) -> InputAudio:
    """``transcriptions.update``'s ``input_audio``: the same uplink format as ``run``."""
    inp = cfg.chat_update().input_audio
    assert inp is not None
    return inp


def _downlink(out: OutputAudio, sink_rate: int) -> Downlink:
    codec = out.codec or "pcm"
    if codec == "opus":
        oc = out.opus_config
        rate = (oc.sample_rate if oc else None) or 24000
        frame = (oc.frame_size_ms if oc else None) or 10.0
        return Downlink(codec="opus", rate=rate, sink_rate=sink_rate, frame_size_ms=frame)
    if codec in ("g711a", "g711u"):
        return Downlink(codec=codec, rate=8000, sink_rate=sink_rate)
    pc = out.pcm_config
    rate = (pc.sample_rate if pc else None) or 24000
    return Downlink(codec="pcm", rate=rate, sink_rate=sink_rate)


# ---------------------------------------------------------------- say


@dataclass
class SayReport:
    """What :func:`say` did: the synthesis, and the audio written to the speaker."""

    synthesis: SynthesisReport
    samples_played: int = 0
    #: Monotonic times of the first sample written to the speaker and of the synthesis end.
    first_play: float | None = None
    synthesis_done: float | None = None


async def say(
    cfg: Config,
    token: str,
    text: str,
    *,
    sink: AudioSink,
    output_audio: OutputAudio | None = None,
    on_sentence: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> SayReport:
    """Speak ``text`` on ``sink`` through the streaming TTS API; returns once it has played.

    Raises:
        CloudError: refused, or the service reported an error (3010, 4000, ...).
        DeviceError: the speaker failed.
        LocalProtocolError: nothing to say, or an invalid voice setting.
    """
    clock = clock or SystemClock()
    out = output_audio or tts_output_audio(cfg)
    report = SayReport(SynthesisReport())

    def played(chunk: Samples) -> None:
        if report.first_play is None:
            report.first_play = clock.now()
        report.samples_played += len(chunk)

    player = Player(
        sink,
        clock,
        DeviceState(),
        realtime=cfg.audio.realtime,
        max_s=_AHEAD_S * 2,
        prefill_ms=cfg.audio.playback_prefill_ms,
        on_played=played,
    )
    downlink = _downlink(out, sink.rate)

    def on_audio(data: bytes) -> None:
        player.write(downlink.decode(data))

    async def throttle() -> None:
        # Synthesis runs several times faster than speech: keep at most _AHEAD_S queued, so
        # a long text never overflows the buffer (which would drop the oldest audio).
        await player.wait_below(_AHEAD_S)

    try:
        async with asyncio.TaskGroup() as tg:
            playing = tg.create_task(player.run())
            report.synthesis = await synthesize(
                cfg.cloud,
                token,
                text,
                output_audio=out,
                on_audio=on_audio,
                on_sentence=on_sentence,
                throttle=throttle,
            )
            report.synthesis_done = clock.now()
            player.write(downlink.drain())
            player.end_of_reply()
            await player.wait_idle()
            playing.cancel()
    except BaseExceptionGroup as group:
        error = first_error(group)
        if error is not None:
            raise error from None
        raise
    if player.last_error is not None and not report.samples_played:
        raise player.last_error  # the speaker never worked: say so (exit status 5)
    drain = getattr(sink, "drain", None)
    if callable(drain):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                await drain()
    return report


# ---------------------------------------------------------------- transcribe


async def _payloads(
    source: AudioSource, uplink: Uplink, stop: asyncio.Event, seconds: float | None
) -> AsyncIterator[bytes]:
    sent = 0.0
    frame_s = uplink.frame / float(uplink.resampler.out_rate)
    async for frame in source.frames():
        if stop.is_set():
            return
        for payload in uplink.process(frame):
            yield payload
            sent += frame_s
            if seconds is not None and sent >= seconds - 1e-9:
                return


async def listen(
    cfg: Config,
    token: str,
    *,
    source: AudioSource,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
    on_text: Callable[[Transcript], None] | None = None,
    language: str | None = None,
) -> TranscriptionReport:
    """Stream ``source`` to the streaming ASR API until it ends, ``seconds`` or ``stop``.

    Raises:
        CloudError: refused, or the service reported an error.
        DeviceError: the microphone failed.
    """
    inp = asr_input_audio(cfg)
    uplink = Uplink(
        device_rate=source.rate,
        device_channels=source.channels,
        codec=cfg.input.codec,
        rate=cfg.input.sample_rate,
        frame_ms=cfg.input.frame_ms,
        channel=cfg.audio.input_channel if cfg.audio.input_channel >= 0 else None,
    )
    asr = ASRConfig(user_language=language) if language else None
    return await transcribe(
        cfg.cloud,
        token,
        _payloads(source, uplink, stop or asyncio.Event(), seconds),
        input_audio=inp,
        asr_config=asr,
        on_text=on_text,
    )


class TranscriptPrinter:
    """Interim text overwrites one terminal line; otherwise one line per update."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def __call__(self, t: Transcript) -> None:
        if self.tty:
            self.out.write("\r\033[K" + t.text + ("\n" if t.final else ""))
        elif t.final:
            self.out.write(t.text + "\n")
        else:
            self.out.write(f"[partial] {t.text}\n")
        self.out.flush()


# ---------------------------------------------------------------- the commands


def add_say_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``voicegw say``."""
    p.add_argument("text", nargs="?", help="what to say; '-' (or none, when piped) reads stdin")
    p.add_argument("--config", required=True, help="TOML config file (audio.sink, [output])")
    p.add_argument("--file", help="read the text from this UTF-8 file")
    p.add_argument("--voice", dest="voice_id", help="voice_id (default: [output] voice_id)")
    p.add_argument("--speech-rate", type=int, help="-50..100 (default: [output])")
    p.add_argument("--loudness-rate", type=int, help="-50..100 (default: [output])")
    p.add_argument("--emotion", choices=EMOTIONS, help="emotion_config.emotion")
    p.add_argument("--emotion-scale", type=float, help="emotion_config.emotion_scale, 1-5")
    p.add_argument(
        "--context",
        dest="context_texts",
        action="append",
        default=[],
        metavar="TEXT",
        help="context_texts item (Doubao TTS 2.0 voices; repeatable)",
    )
    p.add_argument("--subtitles", action="store_true", help="print each sentence as it starts")


def add_transcribe_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``voicegw transcribe``."""
    p.add_argument("--config", required=True, help="TOML config file (audio.source, [input])")
    p.add_argument("--wav", help="transcribe this WAV file instead of the microphone")
    p.add_argument(
        "--seconds", type=float, help="stop after this much audio (default: Ctrl-C / file end)"
    )
    p.add_argument(
        "--language",
        choices=ASR_LANGUAGES,
        metavar="LANG",
        help="asr_config.user_language: common, zh, en, ja, en-US, ... (default: the service's)",
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="with --wav: stream the file in real time (default: as fast as it is read)",
    )


def _read_text(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {args.file}: {exc}", key="--file") from None
    if args.text == "-" or (args.text is None and not stdin.isatty()):
        return stdin.read()
    return args.text or ""


def _close(device: object) -> None:
    close = getattr(device, "close", None)
    if callable(close):
        close()


async def run_say(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    """``voicegw say``; returns the exit status (raises the errors the CLI maps)."""
    from .daemon import open_sink

    text = _read_text(args, stdin or sys.stdin)
    if not text.strip():
        print("voicegw say: nothing to say (give TEXT, --file or standard input)", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    token = read_token(cfg.cloud)
    if not cfg.audio.sink:
        raise ConfigError("is required (a device name pattern or file:PATH)", key="audio.sink")
    out = tts_output_audio(
        cfg,
        voice_id=args.voice_id,
        speech_rate=args.speech_rate,
        loudness_rate=args.loudness_rate,
        emotion=args.emotion,
        emotion_scale=args.emotion_scale,
        context_texts=args.context_texts,
    )
    try:
        TtsSession(out)  # validates every field before any device or socket is opened
    except LocalProtocolError as exc:
        raise ConfigError(exc.reason, key=exc.path) from None
    sink = open_sink(cfg)
    subtitles = (lambda s: print(s, flush=True)) if args.subtitles else None
    try:
        await say(cfg, token, text, sink=sink, output_audio=out, on_sentence=subtitles)
    finally:
        _close(sink)
    return 0


async def run_transcribe(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``voicegw transcribe``; returns the exit status (raises the errors the CLI maps)."""
    from .daemon import open_source
    from .io.files import WavSource

    cfg = load_config(args.config)
    token = read_token(cfg.cloud)
    if args.wav:
        source: AudioSource = WavSource(
            args.wav, frame_ms=cfg.audio.period_ms, realtime=bool(args.realtime)
        )
    else:
        if not cfg.audio.source:
            raise ConfigError(
                "is required (a device name pattern or file:PATH)", key="audio.source"
            )
        source = open_source(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_sigint() -> None:
        if stop.is_set() and task is not None:
            task.cancel()  # a second Ctrl-C gives up on the result
        stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        await listen(
            cfg,
            token,
            source=source,
            seconds=args.seconds,
            stop=stop,
            on_text=TranscriptPrinter(out or sys.stdout),
            language=args.language,
        )
    except asyncio.CancelledError:
        return 130
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        _close(source)
    return 0
