"""``voicegw demo``: a full voice exchange against the embedded emulator, no cloud needed.

It starts the emulator on a free loopback port, makes two spoken sentences with espeak-ng and
sox (unless given a WAV), and runs the gateway twice with a file-backed microphone and speaker:
one push-to-talk turn and one server-VAD turn. It prints the timeline of every event, the
transcript and reply text, the latencies (end of user speech -> first reply audio received ->
first reply audio written to the speaker) and the reply WAV paths.

With ``--realtime`` the same turns go through the Realtime API instead: each turn creates a
room (``POST /v1/audio/rooms``), joins it over WebRTC on loopback, and talks to the emulator's
simulated agent, push-to-talk with ``input_audio_buffer.start``/``complete``, then server VAD.
The timeline then shows the room's signalling events; the audio travels as RTC media.
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from .clock import SystemClock
from .config import AudioConfig, CloudConfig, Config, InputConfig, OutputConfig, TurnConfig
from .emulator import Emulator
from .errors import VoiceGatewayError
from .gateway import Gateway, RunReport
from .io.files import WavSink, WavSource
from .realtime_gateway import RealtimeGateway
from .speech import make_fixture
from .timeline import Timeline

__all__ = ["add_arguments", "run_demo"]

_PTT_TEXT = "What is the weather like in Paris today?"
_VAD_TEXT = "Please turn on the kitchen lights."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="var/demo", help="folder for reply WAVs (default var/demo)")
    p.add_argument(
        "--codec",
        default="pcm",
        choices=("pcm", "g711a", "g711u", "opus", "mp3"),
        help="output codec the gateway asks for (default pcm)",
    )
    p.add_argument(
        "--output-rate",
        type=int,
        default=0,
        help="output sample rate (default: 24000; 8000 for G.711, 44100 for MP3)",
    )
    p.add_argument(
        "--frame-size-ms",
        type=float,
        default=0.0,
        help="ask for fixed-size deltas of this many ms (with --limit)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="limit_config.max_frame_num per 1 s period (needs --frame-size-ms)",
    )
    p.add_argument("--bot", default="espeak", help="emulator bot: espeak, echo, tone, script:PATH")
    p.add_argument("--mic", default="", help="WAV to use as the microphone for both turns")
    p.add_argument(
        "--modes",
        default="ptt,server_vad",
        help="comma-separated turn modes to run (ptt, server_vad, semantic_vad)",
    )
    p.add_argument("--fast", action="store_true", help="feed the microphone faster than real time")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="use the Realtime API: create a room and talk over WebRTC (loopback)",
    )


def _default_rate(codec: str) -> int:
    return {"g711a": 8000, "g711u": 8000, "mp3": 44100}.get(codec, 24000)


def _fixtures(args: argparse.Namespace, workdir: Path) -> dict[str, Path]:
    if args.mic:
        mic = Path(args.mic)
        if not mic.is_file():
            raise VoiceGatewayError(f"microphone file not found: {mic}")
        return {"ptt": mic, "server_vad": mic, "semantic_vad": mic}
    ptt = workdir / "ptt16k.wav"
    vad = workdir / "vad16k.wav"
    # PTT: the user lets go of the button 0.3 s after speaking. VAD: 1 s of room tone
    # around the sentence, so the server's silence detector can end the turn.
    make_fixture(ptt, _PTT_TEXT, rate=16000, pad_s=0.3)
    make_fixture(vad, _VAD_TEXT, rate=16000, pad_s=1.0)
    return {"ptt": ptt, "server_vad": vad, "semantic_vad": vad}


def _config(args: argparse.Namespace, url: str, mode: str, api_url: str = "") -> Config:
    rate = args.output_rate or _default_rate(args.codec)
    out = OutputConfig(codec=args.codec, sample_rate=rate, frame_size_ms=args.frame_size_ms)
    if args.limit:
        out = dataclasses.replace(out, limit_period_s=1, limit_max_frames=args.limit)
    return Config(
        cloud=CloudConfig(
            url=url,
            api_url=api_url,
            api="realtime" if args.realtime else "chat",
            bot_id="7000000000000000001",
            connect_timeout_s=10.0,
        ),
        turn=TurnConfig(mode=mode),  # type: ignore[arg-type]
        input=InputConfig(codec="pcm", sample_rate=16000),
        output=out,
        audio=AudioConfig(realtime=not args.fast),
    )


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


async def run_demo(args: argparse.Namespace, emit: Callable[[str], None] = print) -> int:
    """Run the demo; returns the process exit status (0 when every turn got a spoken reply)."""
    clock = SystemClock()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    token = secrets.token_urlsafe(24)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="voicegw-demo-") as tmp:
        mics = _fixtures(args, Path(tmp))
        async with Emulator(host="127.0.0.1", port=0, token=token, bot=args.bot) as emu:
            emit(f"emulator listening on {emu.url} and {emu.api_url} (bot: {args.bot})")
            for mode in modes:
                cfg = _config(args, emu.url, mode, emu.api_url)
                wav = out_dir / f"reply-{mode}.wav"
                # A room is a live RTC call: the microphone is always paced in real time.
                paced = args.realtime or not args.fast
                source = WavSource(mics[mode], frame_ms=20, realtime=paced, clock=clock)
                sink = WavSink(wav, rate=cfg.output.sample_rate)
                timeline = Timeline(clock, emit)
                gw: Gateway | RealtimeGateway
                if args.realtime:
                    emit("")
                    emit(
                        f"== realtime {mode} turn: microphone {mics[mode].name} "
                        f"({source.duration_s:.2f} s), room over WebRTC (Opus 48 kHz)"
                    )
                    gw = RealtimeGateway(
                        cfg, token, source=source, sink=sink, clock=clock, observer=timeline
                    )
                else:
                    emit("")
                    emit(
                        f"== {mode} turn: microphone {mics[mode].name} "
                        f"({source.duration_s:.2f} s), output {cfg.output.codec}/"
                        f"{cfg.output.sample_rate}"
                    )
                    gw = Gateway(
                        cfg, token, source=source, sink=sink, clock=clock, observer=timeline
                    )
                try:
                    report = await gw.run()
                finally:
                    timeline.close()
                    sink.close()
                failures.extend(_summarize(mode, report, wav, sink.samples_written, emit))
    emit("")
    if failures:
        for f in failures:
            emit(f"FAILED: {f}")
        return 1
    emit("demo OK")
    return 0


def _summarize(
    mode: str, report: RunReport, wav: Path, samples: int, emit: Callable[[str], None]
) -> list[str]:
    problems: list[str] = []
    if not report.turns:
        return [f"{mode}: no turn completed"]
    for turn in report.turns:
        emit(f"-- {mode} result: {turn.status}, chat {turn.chat_id or '-'}")
        emit(f"   transcript : {turn.transcript!r}")
        emit(f"   reply text : {turn.reply_text!r}")
        emit(
            f"   latency    : end of speech -> first reply audio received "
            f"{_fmt_ms(turn.reply_latency_ms)} -> first audio written to speaker "
            f"{_fmt_ms(turn.play_latency_ms)}"
        )
        if turn.status != "completed":
            problems.append(f"{mode}: turn ended as {turn.status}")
        elif not turn.reply_samples:
            problems.append(f"{mode}: the reply had no audio")
    emit(
        f"   reply WAV  : {wav} ({samples} samples, underruns {report.underruns}, "
        f"logid {report.logid or '-'})"
    )
    return problems
