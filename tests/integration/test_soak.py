"""A long conversation, compressed: the daemon through many turns, barge-ins and dropped sockets.

The daemon talks to the emulator's ``echo`` bot over real loopback sockets with file devices
that run faster than real time. Sessions alternate push-to-talk and server VAD; within each,
a scripted user speaks turn after turn, sometimes over the reply still arriving (a barge-in),
and the emulator drops some connections abruptly in the middle of a reply. Every turn must end
as completed or canceled (or be cut by an injected drop), every connection must end by design,
and after a warm-up the process must not grow: memory, tasks, threads and file descriptors.

The scripted user waits for what a person would wait for (the reply to start, the reply to
end), never for a fixed time, so the order of events does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
from helpers import MS

import voicegw.daemon as daemon_module
from voicegw.audio import Samples
from voicegw.config import parse_config
from voicegw.daemon import Daemon
from voicegw.emulator import Emulator
from voicegw.emulator.faults import FaultPlan
from voicegw.emulator.turns import Timing
from voicegw.errors import CloudError
from voicegw.gateway import Gateway, RunReport, TurnReport
from voicegw.io.files import WavSink, WavSource
from voicegw.ptt import StartTalking, StopTalking

SESSION_TIMEOUT = 30_000 * MS
STEP_TIMEOUT = 10_000 * MS
SETTLE_TIMEOUT = 5_000 * MS
POLL_S = 5 * MS
RATE = 16000
BOT_ID = "7000000000000000001"
MAX_RSS_GROWTH = 5 * 1024 * 1024


@dataclass(frozen=True)
class SessionPlan:
    """One daemon run: its turn mode, which turns barge in, and how many connections drop."""

    mode: str
    barge: tuple[bool, ...]
    drops: int


_TURNS = (False, False, True, False, True)
WARMUP = (
    SessionPlan("ptt", _TURNS, 1),
    SessionPlan("server_vad", _TURNS, 1),
)
SOAK = (
    SessionPlan("ptt", _TURNS, 0),
    SessionPlan("server_vad", _TURNS, 1),
    SessionPlan("ptt", _TURNS, 2),
    SessionPlan("server_vad", _TURNS, 0),
    SessionPlan("ptt", _TURNS, 1),
    SessionPlan("server_vad", _TURNS, 1),
)
#: The agent answers sooner and streams faster than the service: the conversation is
#: compressed, while a reply still takes long enough to be barged in on.
TIMING = Timing(think_s=0.05, word_s=0.005, tts_s=0.05, burst_speed=12.0)
#: Worker threads of the loop's default executor (the emulator's core and getaddrinfo use it).
WORKERS = 4


@dataclass
class Tally:
    """What the whole conversation did."""

    sessions: int = 0
    connections: int = 0
    turns: int = 0
    completed: int = 0
    canceled: int = 0
    cut: int = 0
    barge_attempts: int = 0
    barge_ins: int = 0
    drops: int = 0
    mic_samples: int = 0
    speaker_s: float = 0.0
    statuses: list[str] = field(default_factory=list)
    #: Completed turns whose reply never reached the speaker.
    silent_replies: int = 0


class FaultSchedule:
    """The emulator's fault callable: cut the next ``pending`` connections mid-reply."""

    def __init__(self) -> None:
        self.pending = 0
        self.cut: list[int] = []

    def __call__(self, index: int) -> FaultPlan:
        if self.pending <= 0:
            return FaultPlan()
        self.pending -= 1
        self.cut.append(index)
        return FaultPlan(close_mid_reply=True, abrupt=True)


class RecordingGateway(Gateway):
    """A Gateway that records how each connection's run ended."""

    outcomes: ClassVar[list[BaseException | RunReport]] = []

    async def run(self) -> RunReport:
        try:
            report = await super().run()
        except BaseException as exc:
            RecordingGateway.outcomes.append(exc)
            raise
        RecordingGateway.outcomes.append(report)
        return report


class WatchedSink:
    """A WAV speaker that tells the scripted user when reply audio plays."""

    def __init__(self, path: Path, rate: int, on_play: Callable[[Samples], None]) -> None:
        self.inner = WavSink(path, rate=rate)
        self.rate = rate
        self._on_play = on_play

    def write(self, samples: Samples) -> None:
        self.inner.write(samples)
        self._on_play(samples)

    def close(self) -> None:
        self.inner.close()


class ScriptedUser:
    """A microphone whose user talks turn after turn, pressing the button as a person would.

    The daemon reads it once for the whole run, across connections. A barge-in starts the next
    turn as soon as the reply of the previous one is playing; otherwise the user waits until
    the connection is up, the reply has ended and the speaker is quiet. A turn whose
    connection drops before its reply ends is cut: the user goes on with the next turn on the
    next connection. Drops land on a connection's first reply, so the user barges in only on
    later ones.
    """

    rate = RATE
    channels = 1

    def __init__(self, clips: list[WavSource], plan: SessionPlan, tally: Tally) -> None:
        self.clips = clips
        self.ptt = plan.mode == "ptt"
        self.plan = plan
        self.tally = tally
        self.daemon: Daemon | None = None
        # Turns started and finished on the connection ``conn``.
        self.conn: Gateway | None = None
        self.issued = 0
        self.reported = 0
        self.cut = 0
        self.barge_ready = asyncio.Event()
        self.want_barge = False
        self._silence = np.zeros(round(RATE * 0.02), dtype=np.int16)

    def _sync(self) -> Gateway | None:
        """The current connection; a new one cuts whatever the old one left unfinished."""
        gw = self.daemon.gateway if self.daemon is not None else None
        if gw is not None and gw is not self.conn:
            self.cut += self.issued - self.reported
            self.conn, self.issued, self.reported = gw, 0, 0
        return gw

    def turn_done(self, turn: TurnReport) -> None:
        self._sync()
        self.reported += 1
        self.tally.statuses.append(turn.status)
        if turn.status == "completed" and turn.reply_samples == 0:
            self.tally.silent_replies += 1

    def on_play(self, chunk: Samples) -> None:
        gw = self._sync()
        if (
            self.want_barge
            and gw is not None
            and gw.player.buffer.playing
            and self.reported == self.issued - 1
            and np.any(chunk)
        ):
            self.barge_ready.set()

    async def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while not ready():
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            raise AssertionError(
                f"scripted user: timed out waiting for {what} "
                f"(issued {self.issued}, reported {self.reported})"
            ) from None

    def _quiet(self) -> bool:
        gw = self._sync()
        return gw is not None and gw.ready and self.reported == self.issued and gw.player.idle

    async def _wait_for_reply_playing(self) -> bool:
        """Whether the previous reply started playing (``False``: it ended unseen first)."""
        self.barge_ready.clear()
        self.want_barge = True
        try:
            await self._wait(
                "the reply to start", lambda: self.barge_ready.is_set() or self._quiet()
            )
        finally:
            self.want_barge = False
        return self.barge_ready.is_set()

    def _button(self, down: bool) -> None:
        assert self.daemon is not None
        now = self.daemon.clock.now()
        self.daemon.apply([StartTalking(at=now) if down else StopTalking(at=now, reason="up")])

    async def frames(self) -> AsyncIterator[Samples]:
        for wants_barge in self.plan.barge:
            self._sync()
            barge = wants_barge and self.issued >= 2
            if barge:
                self.tally.barge_attempts += 1
                barge = await self._wait_for_reply_playing()
            if not barge:
                await self._wait("the connection to be quiet", self._quiet)
            self.tally.barge_ins += barge
            clip = self.clips[self.tally.turns % len(self.clips)]
            self.tally.turns += 1
            self.issued += 1
            if self.ptt:
                self._button(down=True)
            async for frame in clip.frames():
                self.tally.mic_samples += len(frame)
                yield frame
            if self.ptt:
                if barge:
                    # The canceled reply is reported before this turn is committed.
                    await self._wait("the canceled reply", lambda: self.reported >= self.issued - 1)
                self._button(down=False)
                self.tally.mic_samples += len(self._silence)
                yield self._silence  # the mic keeps running: the commit goes out with it
        await self._wait("the last reply to end", self._quiet)
        self.tally.cut += self.cut


class SoakDaemon(Daemon):
    """The daemon, with every finished turn also told to the scripted user."""

    user: ScriptedUser

    def _on_turn(self, turn: TurnReport) -> None:
        super()._on_turn(turn)
        self.user.turn_done(turn)


def write_clips(fixtures_dir: Path, tmp_path: Path) -> list[WavSource]:
    """Utterances from the short fixture's speech: the question, and the question twice.

    The pause inside the second is shorter than the server VAD's end-of-turn silence, so
    both are one turn in either mode.
    """
    samples, rate = sf.read(str(fixtures_dir / "short16k.wav"), dtype="int16")
    assert rate == RATE
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    speech = samples[loud[0] : loud[-1] + 1]

    def silence(seconds: float) -> np.ndarray:
        return np.zeros(round(seconds * rate), dtype=np.int16)

    shapes = [
        [silence(0.3), speech, silence(0.8)],
        [silence(0.2), speech, silence(0.3), speech, silence(0.8)],
    ]
    clips = []
    for k, parts in enumerate(shapes):
        path = tmp_path / f"utterance{k}.wav"
        sf.write(str(path), np.concatenate(parts), rate, subtype="PCM_16")
        clips.append(WavSource(path, frame_ms=20, realtime=False))
    return clips


async def run_session(
    emu: Emulator,
    faults: FaultSchedule,
    plan: SessionPlan,
    clips: list[WavSource],
    out: Path,
    tally: Tally,
) -> None:
    cfg = parse_config(
        {
            "cloud": {"url": emu.url, "bot_id": BOT_ID, "connect_timeout_s": 5.0},
            "turn": {"mode": plan.mode},
            "audio": {"realtime": False, "playback_prefill_ms": 0, "echo_policy": "full_duplex"},
        }
    )
    user = ScriptedUser(clips, plan, tally)
    sink = WatchedSink(out, cfg.output.sample_rate, user.on_play)
    daemon = SoakDaemon(cfg, emu.token, source=user, sink=sink)
    daemon.user = user
    user.daemon = daemon
    seen = len(RecordingGateway.outcomes)
    issued_before, statuses_before = tally.turns, len(tally.statuses)
    faults.pending = plan.drops
    async with asyncio.timeout(SESSION_TIMEOUT):
        await daemon.run()
        # The emulator's side of every connection has finished too.
        for record in list(emu.connections):
            await record.closed.wait()
    faults.pending = 0
    tally.sessions += 1
    tally.drops += plan.drops
    tally.connections += len(RecordingGateway.outcomes) - seen
    outcomes = RecordingGateway.outcomes[seen:]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    where = f"session {tally.sessions} ({plan.mode}): outcomes {outcomes!r}"
    # Each injected drop ends one connection with a CloudError the daemon retries; nothing
    # else ends a connection but the microphone running out.
    assert len(outcomes) == plan.drops + 1, where
    assert all(isinstance(e, CloudError) and e.retryable for e in errors), where
    assert len(errors) == plan.drops, where
    assert isinstance(outcomes[-1], RunReport), where
    statuses = tally.statuses[statuses_before:]
    assert set(statuses) <= {"completed", "canceled"}, where + f", statuses {statuses}"
    assert daemon.metrics.snapshot()["voicegw_reconnects"] == plan.drops, where
    tally.completed += statuses.count("completed")
    tally.canceled += statuses.count("canceled")
    # A turn is reported once, except one a drop cut, which is never reported.
    issued = tally.turns - issued_before
    assert issued == len(plan.barge) == len(statuses) + user.cut, where + f", cut {user.cut}"
    tally.speaker_s += sink.inner.samples_written / sink.rate


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settled(check: Callable[[], bool]) -> bool:
    """Whether ``check`` holds within SETTLE_TIMEOUT (closing sockets finish on later ticks)."""
    try:
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while not check():
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        return check()
    return True


@pytest.mark.slow
async def test_a_long_conversation_survives_drops_and_barge_ins_without_leaking(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingGateway.outcomes = []
    monkeypatch.setattr(daemon_module, "Gateway", RecordingGateway)
    clips = write_clips(fixtures_dir, tmp_path)
    faults = FaultSchedule()
    tally = Tally()
    started = time.monotonic()
    # A bounded pool, all of whose threads are started now: any thread beyond is a leak.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="soak-pool")
    )
    barrier = threading.Barrier(WORKERS)
    await asyncio.gather(*(asyncio.to_thread(barrier.wait, STEP_TIMEOUT) for _ in range(WORKERS)))
    async with Emulator(port=0, token="tok-soak", bot="echo", faults=faults, timing=TIMING) as emu:
        for k, plan in enumerate(WARMUP):
            await run_session(emu, faults, plan, clips, tmp_path / f"warm{k}.wav", tally)
        gc.collect()
        rss_before = rss_bytes()
        fds_before = fd_count()
        threads_before = {t.ident for t in threading.enumerate()}
        tasks_before = set(asyncio.all_tasks())
        warm_turns = tally.turns

        for k, plan in enumerate(SOAK):
            await run_session(emu, faults, plan, clips, tmp_path / f"soak{k}.wav", tally)

        def no_new_tasks() -> bool:
            return set(asyncio.all_tasks()) <= tasks_before

        tasks_ok = await settled(no_new_tasks)
        fds_ok = await settled(lambda: fd_count() <= fds_before)
        threads_ok = await settled(
            lambda: {t.ident for t in threading.enumerate()} <= threads_before
        )
        gc.collect()
        rss_after = rss_bytes()
        fds_after = fd_count()
        threads_after = threading.enumerate()
        new_tasks = set(asyncio.all_tasks()) - tasks_before
        records = list(emu.connections)
    wall = time.monotonic() - started

    summary = (
        f"soak: {tally.turns} turns ({tally.turns - warm_turns} after warm-up) in "
        f"{tally.sessions} sessions over {tally.connections} connections; "
        f"{tally.completed} completed, {tally.canceled} canceled, {tally.cut} cut; "
        f"simulated audio {tally.mic_samples / RATE:.1f} s mic + {tally.speaker_s:.1f} s speaker; "
        f"disconnects injected {tally.drops}; barge-ins {tally.barge_ins}/{tally.barge_attempts}; "
        f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB; "
        f"fds {fds_before} -> {fds_after}; threads {len(threads_before)} -> "
        f"{len(threads_after)}; tasks {len(tasks_before)} -> "
        f"{len(tasks_before) + len(new_tasks)}; wall {wall:.1f} s"
    )
    print(summary)

    assert tally.turns >= 30, summary
    assert tally.completed + tally.canceled + tally.cut == tally.turns, summary
    assert tally.silent_replies == 0, summary
    assert tally.cut == tally.drops == len(faults.cut), summary
    # Every barge-in lands on a reply still arriving and cancels it; nothing else cancels.
    assert tally.barge_ins == tally.barge_attempts >= 8, summary
    assert tally.canceled == tally.barge_ins, summary
    cut = [r for r in records if r.faults_injected]
    assert sorted(r.index for r in cut) == faults.cut, summary
    assert all(r.faults_injected == ["close_mid_reply:abort"] for r in cut), summary
    assert all(not r.open for r in records), summary
    assert all(r.close_code == 1000 for r in records if not r.faults_injected), summary
    assert rss_after - rss_before < MAX_RSS_GROWTH, summary
    assert tasks_ok, f"{summary}; tasks left running: {new_tasks}"
    assert threads_ok, f"{summary}; threads: {threads_after}"
    assert fds_ok, f"{summary}; fds: {sorted(os.listdir('/proc/self/fd'))}"
