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
from collections.abc import AsyncIterator
from typing import Any

from .audio import Samples
from .clock import Clock, SystemClock
from .config import Config
from .earcons import load_earcons
from .errors import CloudError, LocalProtocolError, backoff, first_error
from .gateway import SLOW_RETRY_S, AudioSink, AudioSource, Gateway, TurnReport
from .io.files import WavSink, WavSource
from .io.systemd import Notifier
from .metrics import Metrics
from .ptt import Interrupt, PttGate, StartTalking, StopTalking
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


class _WatchedSource:
    """Passes frames through and tells the daemon the capture stream is alive."""

    def __init__(self, inner: AudioSource, daemon: Daemon) -> None:
        self.inner = inner
        self.rate = inner.rate
        self.channels = inner.channels
        self._daemon = daemon

    async def frames(self) -> AsyncIterator[Samples]:
        async for frame in self.inner.frames():
            self._daemon.capture_alive = self._daemon.clock.now()
            yield frame


class Daemon:
    """The long-running gateway: devices, button, control, health, reconnects.

    Args:
        config: the loaded configuration.
        token: the API token (memory only).
        source, sink: devices to use instead of opening the configured ones (tests).
        clock: monotonic clock.
        notifier: systemd notifier (a no-op outside systemd).
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
        self.gateway: Gateway | None = None
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
        delays = backoff(0.5, cap=self.config.service.reconnect_max_s)
        file_source = self.config.audio.source.startswith("file:")
        conversation_id = self.config.cloud.conversation_id
        while True:
            # Every connect sends the full chat.update, continuing the same conversation.
            cfg = self.config
            if conversation_id != cfg.cloud.conversation_id:
                cfg = dataclasses.replace(
                    cfg, cloud=dataclasses.replace(cfg.cloud, conversation_id=conversation_id)
                )
            gw = Gateway(
                cfg,
                self._token,
                source=_WatchedSource(self.source, self),
                sink=self.sink,
                clock=self.clock,
                hold_to_talk=self.config.button.kind == "none" and file_source,
                tools=self.tools,
                on_turn=self._on_turn,
                on_ready=self._on_ready,
            )
            self.gateway = gw
            try:
                report = await gw.run()
            except CloudError as exc:
                self.connected.clear()
                self.metrics.cloud_connected.set(0)
                if not exc.retryable:
                    raise
                delay = max(next(delays), SLOW_RETRY_S.get(exc.code or 0, 0.0))
                log.warning("connection lost (%s); reconnecting in %.1f s", exc, delay)
                self.notifier.status(f"reconnecting: {exc}")
                self.metrics.reconnects.inc()
                await asyncio.sleep(delay)
                continue
            finally:
                self.gateway = None
                conversation_id = gw.session.conversation_id or conversation_id
            # A normal return means the microphone ended (a file, a timed capture).
            self._report_turns(report.turns)
            return

    def _report_turns(self, turns: list[TurnReport]) -> None:
        for turn in turns:
            print(f"turn {turn.status}: heard {turn.transcript!r}, replied {turn.reply_text!r}")

    def _on_ready(self) -> None:
        self.connected.set()
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
            if gw is None:
                self._earcon("error")
                log.warning("button pressed while not connected")
                continue
            try:
                if isinstance(action, StartTalking):
                    gw.press()
                    self._earcon("press")
                elif isinstance(action, StopTalking):
                    gw.release()
                    self._earcon("release")
                elif isinstance(action, Interrupt):
                    gw.cancel()
            except LocalProtocolError as exc:
                log.warning("button: %s", exc)
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
