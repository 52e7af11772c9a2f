"""``voicegw run``: the device daemon, all day, as a systemd service.

It owns what outlives one connection: the sound devices (opened once, by name), the
push-to-talk button and its gate, the control socket, the health endpoint, the systemd
notifier and the metrics. Each connection to the service is one :class:`Gateway`; when it
drops, the daemon reconnects with capped, jittered backoff (a fresh ``chat.update`` with the
same ``conversation_id`` is sent on every connect) unless the error cannot be fixed by
retrying (authentication, a bad request), which ends the run with a distinct exit status.

Everything long-lived runs in one TaskGroup; one task owns each resource.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from .audio import Samples
from .clock import Clock, SystemClock
from .config import Config
from .earcons import load_earcons
from .errors import CloudError, DeviceError, LocalProtocolError, first_error
from .gateway import AudioSink, AudioSource, Gateway, TurnReport
from .io.files import WavSink, WavSource
from .io.systemd import Notifier
from .metrics import Metrics
from .ptt import Interrupt, PttGate, StartTalking, StopTalking
from .realtime_gateway import RealtimeGateway
from .retry import RetryPolicy
from .tools import ToolBox

__all__ = ["Daemon", "open_sink", "open_source"]

log = logging.getLogger(__name__)


def open_source(cfg: Config, *, clock: Clock | None = None) -> AudioSource:
    """The microphone named by ``audio.source``: a WAV file or a sound card by name.

    Raises:
        DeviceError: no such device, or no format it supports (the message lists them).
    """
    a = cfg.audio
    if a.source.startswith("file:"):
        return WavSource(a.source[5:], frame_ms=a.period_ms, realtime=a.realtime, clock=clock)
    from .io.device import PyAudioSource, choose_format, find_device

    info = find_device(a.source or "default", "input")
    want = a.input_channels or 1
    if a.input_rate:
        rate, channels = a.input_rate, want
    else:
        rate, channels = choose_format(info, [cfg.input.sample_rate], want, direction="input")
    return PyAudioSource(
        info, rate, channels, frame_ms=a.period_ms, stall_s=cfg.service.capture_timeout_s
    )


def open_sink(cfg: Config) -> AudioSink:
    """The speaker named by ``audio.sink``: a WAV file or a sound card by name.

    Raises:
        DeviceError: no such device, or no format it supports.
    """
    a = cfg.audio
    if a.sink.startswith("file:"):
        return WavSink(a.sink[5:], rate=a.sink_rate or cfg.output.sample_rate)
    from .io.device import PyAudioSink, choose_format, find_device

    info = find_device(a.sink or "default", "output")
    want = a.output_channels or 1
    preferred = [r for r in (a.sink_rate, cfg.output.sample_rate) if r]
    rate, channels = choose_format(info, preferred, want, direction="output")
    return PyAudioSink(info, rate, channels, period_ms=a.period_ms)


_END = object()
_RELEASE = object()
#: The longest wait between attempts to reopen a lost microphone, s.
_CAPTURE_RETRY_CAP_S = 10.0
#: Frames a feed holds before dropping the oldest (2 s at 20 ms).
_FEED_FRAMES = 100


class _Feed:
    """One connection's microphone: frames the daemon's pump hands over, in order.

    The daemon owns the real capture stream (it outlives connections); each gateway reads its
    frames from a feed. A ``_RELEASE`` marker in the queue ends a replayed push-to-talk
    utterance after its audio.
    """

    def __init__(self, rate: int, channels: int, maxsize: int = _FEED_FRAMES) -> None:
        self.rate = rate
        self.channels = channels
        self.queue: asyncio.Queue[Samples | object] = asyncio.Queue(maxsize=maxsize)
        self.gateway: Gateway | RealtimeGateway | None = None
        self.dropped = 0

    def put(self, item: Samples | object) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest: a stalled consumer loses old audio
            self.dropped += 1
        self.queue.put_nowait(item)

    async def frames(self) -> AsyncIterator[Samples]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            if item is _RELEASE:
                if self.gateway is not None:
                    self.gateway.release()
                # An empty frame lets the gateway send the release now, not with the next frame.
                shape = (0,) if self.channels == 1 else (0, self.channels)
                yield np.zeros(shape, dtype=np.int16)
                continue
            yield item  # type: ignore[misc]


class Daemon:
    """The long-running gateway: devices, button, control, health, reconnects.

    Args:
        config: the loaded configuration.
        token: the API token (memory only).
        source, sink: devices to use instead of opening the configured ones (tests).
        clock: monotonic clock.
        notifier: systemd notifier (a no-op outside systemd).
        sleep: how the daemon waits before reconnecting or reopening a device (default
            ``asyncio.sleep``); tests pass one that records the delay instead of waiting.
        retry: the reconnect delays (default: :class:`RetryPolicy` capped at
            ``service.reconnect_max_s``, with the slow waits after billing stops and rate
            limits).
    """

    def __init__(
        self,
        config: Config,
        token: str,
        *,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self._token = token
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.metrics = metrics or Metrics()
        self.source = source or open_source(config, clock=self.clock)
        self.sink = sink or open_sink(config)
        self.tools = ToolBox(builtin=config.tools.builtin, allow=config.tools.allow)
        b = config.button
        self.gate = PttGate(b.mode, bounce_ms=b.bounce_ms, max_hold_s=b.max_hold_s)
        self.earcons: dict[str, Samples] = {}
        if b.earcons and b.kind != "none":
            sounds = load_earcons(self.sink.rate, level_dbfs=b.earcon_level_dbfs)
            self.earcons = {str(name): pcm for name, pcm in sounds.items()}
        self.gateway: Gateway | RealtimeGateway | None = None
        self._own_source = source is None
        self._sleep = sleep or asyncio.sleep
        self.retry = retry or RetryPolicy(cap_s=config.service.reconnect_max_s)
        self._source_ended = False
        self._feed: _Feed | None = None
        # Push-to-talk audio spoken while disconnected (device frames), replayed on reconnect.
        self._offline: deque[Samples] = deque()
        self._offline_talking = False
        self._offline_released = False
        #: VAD-mode frames dropped while disconnected (never replayed late).
        self.dropped_offline = 0
        #: Finished turns, most recent last (bounded).
        self.turns: list[TurnReport] = []
        self.capture_alive: float | None = None
        self.connected = asyncio.Event()
        self._stopping = False

    # ------------------------------------------------------------ run
    async def run(self) -> None:
        """Run until cancelled, the source ends (a file), or a fatal error.

        Raises:
            CloudError: a non-retryable service error (bad token, bad request).
            DeviceError: a device failed and could not be reopened.
        """
        self.notifier.status("starting")
        try:
            async with asyncio.TaskGroup() as tg:
                conn = tg.create_task(self._connection_loop())
                tg.create_task(self._mic_pump())
                tg.create_task(self._button_loop())
                tg.create_task(self._tick_loop())
                if self.config.service.control_socket:
                    tg.create_task(self._control())
                if self.config.service.health_listen:
                    tg.create_task(self._health())
                interval = self.notifier.watchdog_interval()
                if interval:
                    tg.create_task(self._watchdog(interval))
                self.notifier.ready("waiting for the service")
                await conn
                raise _Done
        except BaseExceptionGroup as group:
            error = first_error(group, ignore=(_Done,))
            if error is not None:
                raise error from None
        finally:
            self.notifier.stopping()
            close = getattr(self.sink, "close", None)
            if callable(close):
                close()
            close = getattr(self.source, "close", None)
            if callable(close):
                close()

    async def _connection_loop(self) -> None:
        self.retry.reset()
        conversation_id = self.config.cloud.conversation_id
        while True:
            # Every connect sends the full chat.update, continuing the same conversation.
            cfg = self.config
            if conversation_id != cfg.cloud.conversation_id:
                cfg = dataclasses.replace(
                    cfg, cloud=dataclasses.replace(cfg.cloud, conversation_id=conversation_id)
                )
            # Room for a whole offline utterance replayed at once, plus live frames.
            period_s = self.config.audio.period_ms / 1000
            room = round(self.config.service.offline_ptt_s / period_s) + _FEED_FRAMES
            feed = _Feed(self.source.rate, self.source.channels, room)
            # Realtime: each connection is a new room (after 4029 the old one is gone).
            gw_class = RealtimeGateway if cfg.cloud.api == "realtime" else Gateway
            gw = gw_class(
                cfg,
                self._token,
                source=feed,
                sink=self.sink,
                clock=self.clock,
                hold_to_talk=self.config.button.kind == "none"
                and isinstance(self.source, WavSource),
                tools=self.tools,
                on_turn=self._on_turn,
                on_ready=self._on_ready,
            )
            self.gateway = gw
            feed.gateway = gw
            self._feed = feed
            try:
                report = await gw.run()
            except CloudError as exc:
                self._detach(feed)  # before the backoff wait: we are offline from now on
                self.connected.clear()
                self.metrics.cloud_connected.set(0)
                if not exc.retryable:
                    raise
                delay = self.retry.next_delay(exc.code)
                log.warning("connection lost (%s); reconnecting in %.1f s", exc, delay)
                self.notifier.status(f"reconnecting: {exc}")
                self.metrics.reconnects.inc()
                await self._sleep(delay)
                continue
            finally:
                self._detach(feed)
                conversation_id = gw.session.conversation_id or conversation_id
            # A normal return means the microphone ended (a file, a timed capture).
            self._report_turns(report.turns)
            return

    def _detach(self, feed: _Feed) -> None:
        """The connection ended: route audio offline; count frames it never sent."""
        if self._feed is not feed:
            return
        self.gateway = None
        self._feed = None
        self.dropped_offline += feed.queue.qsize() + feed.dropped

    async def _mic_pump(self) -> None:
        """Own the capture stream: hand frames to the connection, or keep them while offline.

        A capture that stops delivering frames (a stall, a USB unplug) is closed and opened
        again by name with backoff; the watchdog is not fed meanwhile (``capture_alive`` goes
        stale).
        """
        # Capture starts once the service first confirmed the session (a file then plays from
        # its start; a sound card has nobody to talk to before). Later gaps are bridged: see
        # _route.
        await self.connected.wait()
        retry = RetryPolicy(initial_s=0.5, cap_s=_CAPTURE_RETRY_CAP_S, slow={})
        while True:
            try:
                async for frame in self.source.frames():
                    self.capture_alive = self.clock.now()
                    self._route(frame)
                    if retry.failures:
                        retry.reset()
            except DeviceError as exc:
                self.metrics.capture_restarts.inc()
                log.warning("capture failed: %s", exc)
                self.notifier.status(f"microphone lost: {exc}")
                close = getattr(self.source, "close", None)
                if callable(close):
                    close()
                await self._reopen_capture(retry)
                continue
            break  # the source ended (a file, a timed capture)
        self._source_ended = True
        feed = self._feed
        if feed is not None:
            feed.put(_END)

    async def _reopen_capture(self, retry: RetryPolicy) -> None:
        """Wait with backoff, then open the configured microphone again by name.

        A device that is still absent (unplugged: its name is not listed, or it cannot be
        opened) is retried with backoff until it returns; the daemon never gives up on its
        microphone. A source the daemon was given is not reopened here: its ``frames()`` is
        simply called again after the wait.
        """
        while True:
            delay = retry.next_delay()
            log.log(
                logging.WARNING if retry.failures == 1 else logging.INFO,
                "reopening the microphone in %.1f s (attempt %d)",
                delay,
                retry.failures,
            )
            await self._sleep(delay)
            if not self._own_source:
                return
            try:
                self.source = open_source(self.config, clock=self.clock)
            except DeviceError as again:
                log.warning("capture device not back yet: %s", again)
                continue
            log.info("capture device found again: %s", getattr(self.source, "name", "?"))
            return

    def _route(self, frame: Samples) -> None:
        feed = self._feed
        gw = self.gateway
        if feed is not None and gw is not None and gw.ready:
            feed.put(frame)
        elif self._offline_talking:
            self._offline.append(frame)
            limit = round(self.config.service.offline_ptt_s * self.source.rate / len(frame))
            while len(self._offline) > max(1, limit):
                self._offline.popleft()
                self.dropped_offline += 1
        else:
            # Continuous (VAD) audio during a gap is dropped and counted, never replayed late.
            self.dropped_offline += 1
            self.metrics.dropped_mic_frames.inc()

    def _replay_offline(self) -> None:
        """Send the push-to-talk utterance spoken while disconnected, now that we are ready."""
        gw, feed = self.gateway, self._feed
        if gw is None or feed is None or not (self._offline or self._offline_talking):
            return
        frames = list(self._offline)
        self._offline.clear()
        released = self._offline_released
        self._offline_talking = False
        self._offline_released = False
        log.info("sending %d frames of push-to-talk audio kept while offline", len(frames))
        try:
            gw.press()
        except LocalProtocolError as exc:
            log.warning("could not replay the offline utterance: %s", exc)
            return
        for frame in frames:
            feed.put(frame)
        if released:
            feed.put(_RELEASE)

    def _report_turns(self, turns: list[TurnReport]) -> None:
        for turn in turns:
            print(f"turn {turn.status}: heard {turn.transcript!r}, replied {turn.reply_text!r}")

    def _on_ready(self) -> None:
        self.connected.set()
        # A good connection: the next drop starts the backoff from the beginning again.
        self.retry.reset()
        self._replay_offline()
        if self._source_ended and self._feed is not None:
            self._feed.put(_END)  # after any replayed utterance
        self.metrics.cloud_connected.set(1)
        self.gate.reset()
        self.notifier.status("connected")

    def _on_turn(self, turn: TurnReport) -> None:
        self.turns = [*self.turns[-99:], turn]
        self.metrics.observe_turn(turn)
        self.notifier.status(f"turn {turn.status}")

    # ------------------------------------------------------------ button
    async def _button_loop(self) -> None:
        b = self.config.button
        if b.kind == "none":
            return
        from .io import buttons

        source: Any
        if b.kind == "gpio":
            source = buttons.GpioButton(
                b.gpio_pin, active_low=b.active_low, bounce_ms=b.bounce_ms, clock=self.clock
            )
        elif b.kind == "evdev":
            key: int | str = int(b.evdev_key) if b.evdev_key.isdigit() else b.evdev_key
            source = buttons.EvdevButton(b.evdev_device, key, clock=self.clock)
        else:
            source = buttons.TerminalButton(b.terminal_key, clock=self.clock)
        async with source:
            async for edge in source:
                self.apply(self.gate.edge(edge.pressed, edge.t))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self.apply(self.gate.tick(self.clock.now()))

    def apply(self, actions: list[Any]) -> None:
        """Carry out push-to-talk actions on the current connection."""
        gw = self.gateway
        for action in actions:
            if gw is None or not gw.ready:
                self._offline_action(action)
                continue
            try:
                if isinstance(action, StartTalking):
                    gw.press()
                    self._earcon("press")
                elif isinstance(action, StopTalking):
                    # Released after the frames already captured: in order, through the feed.
                    feed = self._feed
                    if feed is not None:
                        feed.put(_RELEASE)
                    else:
                        gw.release()
                    self._earcon("release")
                elif isinstance(action, Interrupt):
                    gw.cancel()
            except (LocalProtocolError, CloudError) as exc:
                # Not ready after all (a connection going down in the same instant): the
                # press is refused with an earcon; the connection loop deals with the loss.
                log.warning("button: %s", exc)
                self._earcon("error")

    def _offline_action(self, action: Any) -> None:
        """A button while disconnected: keep the utterance (bounded) for the next connection."""
        if isinstance(action, StartTalking):
            self._offline.clear()
            self._offline_talking = True
            self._offline_released = False
            log.warning("talking while offline: the utterance is kept and sent on reconnect")
        elif isinstance(action, StopTalking) and self._offline_talking:
            self._offline_talking = False
            self._offline_released = True
        self._earcon("error")

    def _earcon(self, name: str) -> None:
        sound = self.earcons.get(name)
        if sound is not None and self.gateway is not None:
            self.gateway.play_local(sound)

    # ------------------------------------------------------------ control, health, watchdog
    async def _control(self) -> None:
        from .io.control import ControlServer

        async with ControlServer(_ControlAdapter(self), self.config.service.control_socket):
            await asyncio.Event().wait()

    def health(self) -> Any:
        from .io.health import Health

        now = self.clock.now()
        alive = self.capture_alive is not None and (
            now - self.capture_alive < self.config.service.capture_timeout_s
        )
        gw = self.gateway
        state = gw.state() if gw is not None else {"connection": "closed"}
        return Health(
            capture_alive=alive, cloud_connected=state.get("connection") == "ready", detail=state
        )

    async def _health(self) -> None:
        from .io.health import HealthServer

        host, _, port = self.config.service.health_listen.rpartition(":")
        server = HealthServer(
            self.health, metrics=self.metrics, host=host.strip("[]"), port=int(port)
        )
        await server.serve()

    async def _watchdog(self, interval: float) -> None:
        from .io.systemd import feed_watchdog
        from .watchdog import WatchdogPolicy

        policy = WatchdogPolicy(interval, capture_timeout_s=self.config.service.capture_timeout_s)

        async def ticks() -> None:
            while True:
                now = self.clock.now()
                policy.loop_tick(now)
                if self.capture_alive is not None:
                    policy.capture_alive(self.capture_alive)
                await asyncio.sleep(policy.check_period_s)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(ticks())
            tg.create_task(feed_watchdog(self.notifier, policy, clock=self.clock))


class _ControlAdapter:
    """The control socket's view of the daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def press(self) -> None:
        self.d.apply([StartTalking(at=self.d.clock.now())])

    def release(self) -> None:
        self.d.apply([StopTalking(at=self.d.clock.now(), reason="released")])

    def cancel(self) -> None:
        self.d.apply([Interrupt(at=self.d.clock.now())])

    def set_mute(self, on: bool) -> None:
        self.d.tools.state.muted = on

    def set_volume(self, level: float) -> None:
        self.d.tools.state.volume = level

    def state(self) -> dict[str, Any]:
        gw = self.d.gateway
        if gw is None:
            return {
                "connection": "closed",
                "volume": self.d.tools.state.volume,
                "muted": self.d.tools.state.muted,
            }
        return gw.state()


class _Done(Exception):
    """The connection loop finished (a file source ended)."""
