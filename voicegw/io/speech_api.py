"""Async clients of streaming TTS (``/v1/audio/speech``) and ASR (``/v1/audio/transcriptions``).

Both open their socket with :func:`~voicegw.io.cloud.open_ws` (token in the header, refusals
mapped to :class:`~voicegw.errors.CloudError`) and drive a sans-I/O session
(:class:`~voicegw.protocol.tts.TtsSession`, :class:`~voicegw.protocol.asr.AsrSession`); this
module only moves frames and calls back.

* :func:`synthesize` speaks a text of any length: the session cuts it into requests of at most
  1024 bytes, sent one after another on one connection, and every audio chunk is handed to
  ``on_audio`` the moment it arrives, so playback can start long before synthesis ends. If the
  service closes the connection *between* requests, a new connection carries on with the
  pieces left (spec 4.2 leaves several requests per connection undocumented); a close in the
  middle of a request is an error, since resending it would repeat audio already played.
* :func:`transcribe` streams audio payloads as they come from an async iterable, calls
  ``on_text`` with each interim hypothesis and the final one, and returns the final text.
  One task reads the socket and one sends the audio; a lock keeps the session's frames in
  order on the wire.

Service ``error`` events become :class:`CloudError` with the service's code (3010: a request
over 1024 bytes; 4000: a bad parameter, naming it); the token and audio are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..config import CloudConfig
from ..errors import CloudError, LocalProtocolError, RemoteProtocolError, first_error
from ..protocol.asr import AsrReady, AsrSession, Transcript
from ..protocol.objects import ASRConfig, InputAudio, OutputAudio
from ..protocol.outputs import Notice, ServerError
from ..protocol.tts import (
    AudioChunk,
    PieceCompleted,
    SentenceStart,
    SpeechFinished,
    TtsReady,
    TtsSession,
    split_text,
)
from .cloud import open_ws, speech_url, transcriptions_url

__all__ = ["SynthesisReport", "TranscriptionReport", "synthesize", "transcribe"]

log = logging.getLogger(__name__)

#: Hints added to the service's message for codes whose meaning is documented (spec 6).
_HINTS = {
    3010: "the text of one request is longer than 1024 bytes",
    4000: "a parameter was rejected",
    4100: "authentication failed: check the token",
    4101: "permission denied: the token lacks createSpeech/createTranscription",
}
#: Reconnections allowed while speaking one text (each needs progress on the previous one).
_MAX_CONNECTIONS = 32


@dataclass
class SynthesisReport:
    """What :func:`synthesize` did."""

    pieces: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    connections: int = 0
    logids: list[str] = field(default_factory=list)
    output_audio: OutputAudio | None = None


@dataclass
class TranscriptionReport:
    """What :func:`transcribe` did; ``text`` is the final transcript."""

    text: str = ""
    interims: int = 0
    logid: str = ""
    audio_bytes: int = 0


def _service_error(what: str, ev: ServerError, logid: str | None) -> CloudError:
    hint = _HINTS.get(ev.code)
    msg = f"{what}: service error {ev.code}: {ev.msg}" + (f" ({hint})" if hint else "")
    if logid:
        msg += f" (logid {logid})"
    return CloudError(msg, code=ev.code, retryable=False, logid=logid or "")


async def _recv(ws: ClientConnection, timeout_s: float, what: str) -> str | bytes:
    try:
        async with asyncio.timeout(timeout_s):
            return await ws.recv()
    except TimeoutError:
        raise CloudError(f"{what}: no answer from the service in {timeout_s:g} s") from None


async def synthesize(
    cfg: CloudConfig,
    token: str,
    text: str,
    *,
    output_audio: OutputAudio | None,
    on_audio: Callable[[bytes], None],
    on_sentence: Callable[[str], None] | None = None,
    idle_timeout_s: float = 20.0,
    throttle: Callable[[], Awaitable[None]] | None = None,
) -> SynthesisReport:
    """Speak ``text`` with the streaming TTS API, handing audio to ``on_audio`` as it arrives.

    Args:
        cfg: where to connect (``cloud.url``; ``/v1/audio/speech`` is added).
        token: the API token.
        text: any length; it is split into requests of at most 1024 UTF-8 bytes.
        output_audio: ``speech.update``'s output format and voice (``None``: the defaults,
            pcm at 24 kHz).
        on_audio: called with each chunk's bytes (in the configured codec), in order.
        on_sentence: called with each subtitle (``conversation.audio.sentence_start``).
        idle_timeout_s: longest wait for any frame from the service.
        throttle: awaited before each read from the socket; a player that has enough audio
            queued waits here, so synthesis far faster than real time never piles up more
            than the player allows (the socket's flow control holds the service back).

    Raises:
        CloudError: refused, closed mid-request, silent too long, or an ``error`` event
            (``code`` is the service's: 3010, 4000, ...).
        LocalProtocolError: ``output_audio`` is invalid or ``text`` has nothing to say.
    """
    pieces = split_text(text)
    if not pieces:
        raise LocalProtocolError("nothing to say: the text is empty")
    report = SynthesisReport(pieces=pieces)
    pending = pieces
    while True:
        report.connections += 1
        session = TtsSession(output_audio, pieces=pending)
        closed = await _synthesize_once(
            cfg, token, session, report, on_audio, on_sentence, idle_timeout_s, throttle
        )
        if session.logid:
            report.logids.append(session.logid)
        if session.finished:
            return report
        assert closed is not None
        if session.in_flight_started or session.completed == 0:
            raise CloudError(
                f"speech synthesis: the service closed the connection ({closed}) with "
                f"{len(session.pending)} of {len(report.pieces)} pieces unspoken",
                logid=session.logid or "",
            )
        if report.connections >= _MAX_CONNECTIONS:
            raise CloudError("speech synthesis: too many reconnections")
        log.info(
            "the service closed the speech connection between requests; reconnecting for "
            "the %d pieces left",
            len(session.pending),
        )
        pending = session.pending


async def _synthesize_once(
    cfg: CloudConfig,
    token: str,
    session: TtsSession,
    report: SynthesisReport,
    on_audio: Callable[[bytes], None],
    on_sentence: Callable[[str], None] | None,
    idle_timeout_s: float,
    throttle: Callable[[], Awaitable[None]] | None,
) -> str | None:
    """Run one connection; returns why it closed early, or ``None`` when all was spoken."""
    async with open_ws(cfg, token, speech_url(cfg)) as ws:
        while True:
            if throttle is not None:
                await throttle()
            try:
                frame = await _recv(ws, idle_timeout_s, "speech synthesis")
            except ConnectionClosed as exc:
                session.connection_lost()
                return str(exc)
            try:
                session.receive_text(frame)
            except RemoteProtocolError as exc:
                log.warning("ignored a malformed frame from the speech service: %s", exc)
                continue
            try:
                for out in session.data_to_send():
                    await ws.send(out)
            except ConnectionClosed as exc:
                session.connection_lost()
                return str(exc)
            for ev in session.events_received():
                if isinstance(ev, AudioChunk):
                    report.audio_bytes += len(ev.data)
                    on_audio(ev.data)
                elif isinstance(ev, SentenceStart):
                    report.sentences.append(ev.text)
                    if on_sentence is not None:
                        on_sentence(ev.text)
                elif isinstance(ev, TtsReady):
                    report.output_audio = ev.output_audio
                elif isinstance(ev, ServerError):
                    raise _service_error("speech synthesis", ev, session.logid)
                elif isinstance(ev, Notice):
                    log.info("%s", ev.message)
                elif isinstance(ev, PieceCompleted | SpeechFinished):
                    pass
            if session.finished:
                return None


async def transcribe(
    cfg: CloudConfig,
    token: str,
    payloads: AsyncIterable[bytes],
    *,
    input_audio: InputAudio,
    asr_config: ASRConfig | None = None,
    on_text: Callable[[Transcript], None] | None = None,
    result_timeout_s: float = 20.0,
) -> TranscriptionReport:
    """Stream ``payloads`` to the streaming ASR API; returns the final transcript.

    Args:
        cfg: where to connect (``cloud.url``; ``/v1/audio/transcriptions`` is added).
        token: the API token.
        payloads: audio in the ``input_audio`` format, one append each, as it is captured;
            when the iterable ends, ``input_audio_buffer.complete`` is sent.
        input_audio: the payloads' format (every field should be set; the default is wav).
        asr_config: recognition options.
        on_text: called with every interim hypothesis and, last, the final one.
        result_timeout_s: longest wait for the result after the audio ended (and for the
            handshake).

    Raises:
        CloudError: refused, closed early, no result in time, or an ``error`` event.
        LocalProtocolError: the configuration is invalid.
    """
    session = AsrSession(input_audio, asr_config)
    report = TranscriptionReport()
    done = asyncio.Event()
    lock = asyncio.Lock()

    async with open_ws(cfg, token, transcriptions_url(cfg)) as ws:

        async def pump() -> None:
            async with lock:
                for out in session.data_to_send():
                    try:
                        await ws.send(out)
                    except ConnectionClosed as exc:
                        session.connection_lost()
                        raise CloudError(
                            f"speech recognition: the service closed the connection ({exc})",
                            logid=session.logid or "",
                        ) from None

        async def read() -> None:
            while not done.is_set():
                try:
                    frame = await ws.recv()
                except ConnectionClosed as exc:
                    session.connection_lost()
                    raise CloudError(
                        f"speech recognition: the service closed the connection ({exc}) "
                        "before the result",
                        logid=session.logid or "",
                    ) from None
                try:
                    session.receive_text(frame)
                except RemoteProtocolError as exc:
                    log.warning("ignored a malformed frame from the speech service: %s", exc)
                    continue
                await pump()
                for ev in session.events_received():
                    if isinstance(ev, Transcript):
                        report.text = ev.text
                        if not ev.final:
                            report.interims += 1
                        if on_text is not None:
                            on_text(ev)
                        if ev.final:
                            done.set()
                    elif isinstance(ev, ServerError):
                        raise _service_error("speech recognition", ev, session.logid)
                    elif isinstance(ev, Notice):
                        log.info("%s", ev.message)
                    elif isinstance(ev, AsrReady):
                        pass

        async def send() -> None:
            async for payload in payloads:
                if done.is_set():
                    return
                report.audio_bytes += len(payload)
                session.send_audio(payload)
                await pump()
            session.complete()
            await pump()
            try:
                async with asyncio.timeout(result_timeout_s):
                    await done.wait()
            except TimeoutError:
                raise CloudError(
                    f"speech recognition: no result {result_timeout_s:g} s after the audio ended",
                    logid=session.logid or "",
                ) from None

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(read())
                tg.create_task(send())
        except BaseExceptionGroup as group:
            error = first_error(group)
            if error is not None:
                raise error from None
            raise
    report.logid = session.logid or ""
    return report
