"""Sources of push-to-talk edges: a GPIO button, an evdev key, a terminal key.

Each source is an async iterator of :class:`Edge` ``(pressed, t)``, where ``t`` is the
monotonic time (:class:`~voicegw.clock.Clock`) at which the source saw the edge. Feed them to a
:class:`~voicegw.ptt.PttGate`, which debounces, times holds and decides what a press means::

    async with GpioButton(17) as button:
        async for pressed, t in button:
            for action in gate.edge(pressed, t):
                ...

Every source:

* has one consumer at a time: iterating while another iteration is waiting for an edge raises
  :class:`~voicegw.errors.ConcurrencyError`, and a new iteration takes over from one that was
  abandoned;
* is closed with ``close()`` (or by leaving ``async with``), which ends its iteration;
* reports a missing or unusable device as :class:`~voicegw.errors.DeviceError`, naming what
  was asked for and what exists.

Queues are bounded (house style 7): the GPIO and terminal sources keep at most ``max_queue``
edges their consumer has not taken yet and drop the oldest beyond that (counted in
``dropped``); the evdev source reads the kernel's own bounded event buffer directly. Edges
carry levels, not toggles, so after a drop the gate is back in step with the next edge.

**Threads.** gpiozero calls its callbacks on its own thread. :class:`GpioButton` reads the
time there and hands the edge to the event loop with ``loop.call_soon_threadsafe``; nothing
else in this module runs off the loop thread.

The drivers are optional (``pip install 'voicegw[gpio]'``) and imported only by the source
that needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import math
import os
import sys
import termios
import tty
import warnings
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Protocol, Self

from ..clock import Clock, SystemClock
from ..errors import ConcurrencyError, ConfigError, DeviceError

if TYPE_CHECKING:
    from evdev import InputDevice

__all__ = [
    "EV_KEY",
    "Edge",
    "EdgeSource",
    "EvdevButton",
    "GpioButton",
    "InputDeviceLike",
    "KeyEventLike",
    "TerminalButton",
    "TerminalKeys",
    "find_input_device",
]

log = logging.getLogger(__name__)

#: ``type`` of key events in the Linux input subsystem (``linux/input-event-codes.h``).
EV_KEY: Final = 1
#: Key event ``value``s: up, down, and the kernel's autorepeat while held.
_KEY_UP, _KEY_DOWN, _KEY_REPEAT = 0, 1, 2
_INSTALL_HINT: Final = "install the GPIO extra: pip install 'voicegw[gpio]'"


class Edge(NamedTuple):
    """A button edge: the new level and the monotonic time it was seen, s."""

    pressed: bool
    t: float


class EdgeSource(Protocol):
    """Anything that yields :class:`Edge` values and can be closed."""

    def __aiter__(self) -> AsyncIterator[Edge]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- the shared parts


class _OneConsumer:
    """``async with`` support and the one-consumer rule shared by every source."""

    def __init__(self) -> None:
        self._consumer: AsyncGenerator[Edge, None] | None = None
        self._generation = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    def _take_over(self) -> int:
        """Make way for a new iteration; returns its generation number.

        Raises:
            ConcurrencyError: another iteration is waiting for an edge right now.
        """
        old = self._consumer
        # An async generator suspended inside an await is being waited on by some task; one
        # suspended at a yield (or never started) was left by its consumer.
        if old is not None and getattr(old, "ag_await", None) is not None:
            raise ConcurrencyError(f"{type(self).__name__} already has a consumer")
        self._generation += 1
        return self._generation

    def _current(self, generation: int) -> bool:
        """Whether the iteration numbered ``generation`` has not been taken over."""
        return generation == self._generation


class _QueuedSource(_OneConsumer):
    """A bounded queue of edges and the consumer loop that drains it.

    Subclasses put edges with :meth:`_put` (on the loop thread) and may define
    :meth:`_deadline` and :meth:`_poll` for edges that come from the passing of time.
    """

    #: Whether an iteration that ends (its task cancelled, say) releases what ``_start`` took;
    #: otherwise only :meth:`close` does.
    _stop_on_exit = False

    def __init__(self, *, clock: Clock | None, max_queue: int) -> None:
        super().__init__()
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ConfigError(f"must be a positive integer, got {max_queue!r}", key="max_queue")
        self.clock = clock or SystemClock()
        #: Edges dropped because the consumer fell ``max_queue`` edges behind.
        self.dropped = 0
        self._queue: deque[Edge] = deque()
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False  # the device has no more edges (EOF); drain, then stop
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Edge]:
        """Start consuming edges.

        Raises:
            ConcurrencyError: another iteration is waiting for an edge.
        """
        generation = self._take_over()
        self._loop = asyncio.get_running_loop()
        self._start()
        self._consumer = self._consume(generation)
        return self._consumer

    def close(self) -> None:
        """Release the device; an iteration in progress ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._wake.set()
        self._stop()

    # ------------------------------------------------------------ hooks
    def _start(self) -> None:
        """Begin delivering edges (called on the loop thread by ``__aiter__``)."""

    def _stop(self) -> None:
        """Stop delivering edges and release what ``_start`` took. Idempotent."""

    def _deadline(self) -> float | None:
        return None

    def _poll(self, now: float) -> list[Edge]:
        return []

    # ------------------------------------------------------------ internals
    def _put(self, edge: Edge) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(edge)
        self._wake.set()

    async def _consume(self, generation: int) -> AsyncGenerator[Edge, None]:
        try:
            while self._current(generation):
                while self._queue and not self._closed and self._current(generation):
                    yield self._queue.popleft()
                if self._closed or self._ended or not self._current(generation):
                    return
                self._wake.clear()
                deadline = self._deadline()
                if deadline is None:
                    await self._wake.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.0, deadline - self.clock.now())):
                            await self._wake.wait()
                for edge in self._poll(self.clock.now()):
                    self._put(edge)
        finally:
            if self._ended or (self._stop_on_exit and self._current(generation)):
                self._stop()


# ---------------------------------------------------------------- GPIO (gpiozero)


class GpioButton(_QueuedSource):
    """A push button on a GPIO pin, read with gpiozero.

    Args:
        pin: the pin, as gpiozero names it (``17``, ``"GPIO17"``, ``"BOARD11"``).
        active_low: the button connects the pin to ground (the common wiring, with the
            internal pull-up on); ``False`` for a button to 3V3 with the pull-down on.
        bounce_ms: debounce time handed to gpiozero, ms (0 turns it off). The
            :class:`~voicegw.ptt.PttGate` debounces as well, which also covers pin factories
            that ignore it (the mock factory does).
        pin_factory: a gpiozero pin factory; ``None`` uses gpiozero's default (lgpio on a
            current Raspberry Pi OS). Tests pass ``gpiozero.pins.mock.MockFactory()``.
        clock: where edge times come from; read on gpiozero's thread, so it must be
            thread-safe (:class:`~voicegw.clock.SystemClock` is).
        max_queue: edges held for a slow consumer before the oldest is dropped.

    Edges are delivered from the first ``async for`` (or ``aiter()``) on; a button that is
    already down then reports its release first, which a gate in the idle state ignores.

    Raises:
        DeviceError: gpiozero is not installed, no GPIO driver loads, the pin does not exist
            (the message lists the board's GPIO pins) or is in use.
    """

    def __init__(
        self,
        pin: int | str,
        *,
        active_low: bool = True,
        bounce_ms: float = 50.0,
        pin_factory: Any = None,
        clock: Clock | None = None,
        max_queue: int = 64,
    ) -> None:
        super().__init__(clock=clock, max_queue=max_queue)
        if not (math.isfinite(bounce_ms) and bounce_ms >= 0):
            raise ConfigError(f"must be >= 0 ms, got {bounce_ms!r}", key="bounce_ms")
        try:
            import gpiozero
        except ImportError:
            raise DeviceError(
                f"GPIO pin {pin!r}: gpiozero is not installed; {_INSTALL_HINT}"
            ) from None
        self.pin = pin
        #: Edges gpiozero reported while nobody was iterating, or after close.
        self.missed = 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._button = gpiozero.Button(
                    pin,
                    pull_up=active_low,
                    bounce_time=bounce_ms / 1000.0 if bounce_ms > 0 else None,
                    pin_factory=pin_factory,
                )
            except gpiozero.BadPinFactory as exc:
                tried = "; ".join(str(w.message) for w in caught) or str(exc)
                raise DeviceError(
                    f"GPIO pin {pin!r}: no GPIO driver could be loaded (tried: {tried}). "
                    "On a Raspberry Pi install lgpio (apt install python3-lgpio, or "
                    "pip install lgpio)"
                ) from None
            except gpiozero.GPIOPinInUse as exc:
                raise DeviceError(f"GPIO pin {pin!r} is already in use: {exc}") from None
            except (gpiozero.GPIOZeroError, OSError) as exc:
                have = _gpio_pins(pin_factory or gpiozero.Device.pin_factory)
                raise DeviceError(
                    f"cannot use GPIO pin {pin!r} for the talk button: {exc}"
                    + (f"; this board has {have}" if have else "")
                ) from None
        for w in caught:
            log.info("gpiozero: %s", w.message)
        self._button.when_pressed = self._pressed
        self._button.when_released = self._released

    def _pressed(self) -> None:
        self._from_thread(True)

    def _released(self) -> None:
        self._from_thread(False)

    def _from_thread(self, pressed: bool) -> None:
        """Runs on gpiozero's thread: stamp the edge, hand it to the loop."""
        t = self.clock.now()
        loop = self._loop
        if loop is None or self._closed:
            self.missed += 1
            return
        try:
            loop.call_soon_threadsafe(self._put, Edge(pressed, t))
        except RuntimeError:  # the loop was closed while the button was still wired
            self.missed += 1

    def _stop(self) -> None:
        self._button.when_pressed = None
        self._button.when_released = None
        self._button.close()


def _gpio_pins(factory: Any) -> str:
    """The board's GPIO pin names for an error message, or "" when they cannot be listed."""
    try:
        headers = factory.board_info.headers.values()
        names = {p.name for h in headers for p in h.pins.values() if "gpio" in p.interfaces}
    except AttributeError:
        return ""

    def number(name: str) -> tuple[int, str]:
        digits = name.removeprefix("GPIO")
        return (int(digits), name) if digits.isdigit() else (1 << 30, name)

    return ", ".join(sorted(names, key=number))


# ---------------------------------------------------------------- evdev (Linux input)


class KeyEventLike(Protocol):
    """The part of ``evdev.InputEvent`` a button reads."""

    @property
    def type(self) -> int: ...

    @property
    def code(self) -> int: ...

    @property
    def value(self) -> int: ...


class InputDeviceLike(Protocol):
    """The part of ``evdev.InputDevice`` a button uses; tests pass a fake."""

    def async_read_loop(self) -> AsyncIterator[KeyEventLike]: ...

    def grab(self) -> None: ...

    def ungrab(self) -> None: ...

    def close(self) -> None: ...


def _key_code(key: int | str) -> int:
    """A key code from ``30``, ``"30"``, ``"KEY_SPACE"`` or ``"BTN_0"``."""
    if isinstance(key, bool):
        raise ConfigError(f"must be a key code or name, got {key!r}", key="key")
    if isinstance(key, int):
        if key < 0:
            raise ConfigError(f"must be a key code >= 0, got {key}", key="key")
        return key
    name = key.strip().upper()
    if name.isdigit():
        return int(name)
    try:
        from evdev import ecodes
    except ImportError:
        raise DeviceError(
            f"key names such as {key!r} need evdev; {_INSTALL_HINT} (or give the key code)"
        ) from None
    code = ecodes.ecodes.get(name)
    if code is None or not name.startswith(("KEY_", "BTN_")):
        raise ConfigError(
            f"unknown key {key!r}; key names look like KEY_SPACE, KEY_F12 or BTN_0", key="key"
        )
    return int(code)


def _matches(pattern: str, name: str, path: str) -> bool:
    if pattern.startswith("/"):
        return os.path.realpath(pattern) == os.path.realpath(path)
    wanted, have = pattern.casefold(), name.casefold()
    if any(c in wanted for c in "*?["):
        return fnmatch.fnmatchcase(have, wanted)
    return wanted in have


def find_input_device(pattern: str, key: int | str = "KEY_SPACE") -> InputDevice[str]:
    """Open the first input device whose name matches ``pattern`` and that has ``key``.

    ``pattern`` is a path (``/dev/input/by-id/usb-...-event-kbd``, compared after resolving
    links, so stable ``by-id`` names work), a glob on the device name (``"*Keyboard*"``), or
    a substring of the name; names compare case-insensitively. Devices are tried in path
    order.

    Raises:
        DeviceError: evdev is not installed, or no device matches; the message lists every
            device seen (path and name) and why it did not fit.
        ConfigError: ``key`` is not a known key name.
    """
    try:
        import evdev
    except ImportError:
        raise DeviceError(
            f"input device {pattern!r}: evdev is not installed; {_INSTALL_HINT}"
        ) from None
    code = _key_code(key)
    seen: list[str] = []
    for path in sorted(evdev.list_devices()):
        try:
            device: InputDevice[str] = evdev.InputDevice(path)
        except OSError as exc:
            seen.append(f"{path} (cannot open: {exc.strerror})")
            continue
        if _matches(pattern, device.name, path):
            if code in device.capabilities().get(EV_KEY, []):
                return device
            seen.append(f"{path} {device.name!r} (matches, but has no key {key})")
        else:
            seen.append(f"{path} {device.name!r}")
        device.close()
    have = (
        "; ".join(seen)
        if seen
        else "none is readable (check /dev/input/event*, and that the user is in group 'input')"
    )
    raise DeviceError(f"no input device matches {pattern!r} with key {key}; devices: {have}")


class EvdevButton(_OneConsumer):
    """A key on a Linux input device (a USB foot switch, a keyboard, a remote) as a button.

    Key down (value 1) is a press and key up (0) a release; the kernel's autorepeat (2) is
    ignored and counted in :attr:`repeats_ignored`. Edge times are read from ``clock`` when
    the event arrives (the kernel's own timestamps are on the wall clock).

    Args:
        device_pattern: which device, as for :func:`find_input_device`.
        key: the key code or name (``"KEY_SPACE"``, ``"BTN_0"``, ``57`` or ``"57"``).
        grab: take the device exclusively (``EVIOCGRAB``), so its keys stop reaching the
            console and other programs.
        device_factory: returns the device to read instead of :func:`find_input_device`
            (tests pass a fake whose ``async_read_loop()`` yields objects with ``type``,
            ``code`` and ``value``).
        clock: where edge times come from.

    Raises:
        DeviceError: no device matches (the message lists those that exist), or the grab
            failed (another program holds the device).
        ConfigError: ``key`` is not a known key name.
    """

    def __init__(
        self,
        device_pattern: str,
        key: int | str = "KEY_SPACE",
        *,
        grab: bool = False,
        device_factory: Callable[[], InputDeviceLike] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.device_pattern = device_pattern
        self.key = key
        self.key_code = _key_code(key)
        self.clock = clock or SystemClock()
        #: Autorepeat events ignored.
        self.repeats_ignored = 0
        self._device: InputDeviceLike = (
            device_factory() if device_factory is not None else _as_like(device_pattern, key)
        )
        self._grabbed = False
        if grab:
            try:
                self._device.grab()
            except OSError as exc:
                self._device.close()
                raise DeviceError(
                    f"cannot grab input device {self._name()}: {exc.strerror or exc} "
                    "(another program holds it?)"
                ) from None
            self._grabbed = True
        self._closed = False
        self._stop: asyncio.Future[None] | None = None

    def __aiter__(self) -> AsyncIterator[Edge]:
        """Start reading key edges.

        Raises:
            ConcurrencyError: another iteration is waiting for an edge.
        """
        generation = self._take_over()
        self._stop = asyncio.get_running_loop().create_future()
        if self._closed:
            self._stop.set_result(None)
        self._consumer = self._edges(generation, self._stop)
        return self._consumer

    def close(self) -> None:
        """Release (ungrab) and close the device; an iteration in progress ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)
        if self._grabbed:
            with contextlib.suppress(OSError):
                self._device.ungrab()
            self._grabbed = False
        with contextlib.suppress(OSError):
            self._device.close()

    def _name(self) -> str:
        name = getattr(self._device, "name", None)
        path = getattr(self._device, "path", None)
        if name and path:
            return f"{path} {name!r}"
        return str(name or path or repr(self.device_pattern))

    def _edge(self, event: KeyEventLike) -> Edge | None:
        if event.type != EV_KEY or event.code != self.key_code:
            return None
        if event.value == _KEY_REPEAT:
            self.repeats_ignored += 1
            return None
        if event.value == _KEY_DOWN:
            return Edge(True, self.clock.now())
        if event.value == _KEY_UP:
            return Edge(False, self.clock.now())
        return None

    async def _edges(
        self, generation: int, stop: asyncio.Future[None]
    ) -> AsyncGenerator[Edge, None]:
        events = aiter(self._device.async_read_loop())
        while not stop.done() and self._current(generation):
            # Wait for the next event or for close(): evdev's read future never completes
            # once the device is closed, so the read alone cannot end the loop.
            nxt = asyncio.ensure_future(anext(events))
            try:
                await asyncio.wait((nxt, stop), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not nxt.done():
                    nxt.cancel()
            if nxt.cancelled() or not nxt.done():
                return
            try:
                event = nxt.result()
            except StopAsyncIteration:
                return
            except OSError as exc:
                raise DeviceError(
                    f"input device {self._name()} failed: {exc.strerror or exc}"
                ) from None
            edge = self._edge(event)
            if edge is not None:
                yield edge


def _as_like(pattern: str, key: int | str) -> InputDeviceLike:
    device: InputDeviceLike = find_input_device(pattern, key)
    return device


# ---------------------------------------------------------------- terminal


class TerminalKeys:
    """Turns the keystrokes a terminal delivers for one key into edges (pure; fed ``now``).

    Terminals report key *presses* only: holding a key yields one keystroke, then after the
    keyboard's autorepeat delay (250 ms on the Linux console, 500-660 ms under X11/GNOME) a
    stream of repeats (25-33 per second). A *run* of keystrokes, each within ``repeat_gap_s``
    of the previous one (``initial_gap_s`` after the first, to cover the autorepeat delay),
    is one physical hold. The release is only known when the run goes quiet, so it is
    reported at that deadline: up to ``repeat_gap_s`` after the real release, or
    ``initial_gap_s`` after a tap.

    Modes:
        hold: a run is a press at its first keystroke and a release at its end.
        toggle: the first keystroke of each run flips a latched level (the edges are then
            the talk state itself: pair the source with a ``hold`` gate); two taps closer
            than ``initial_gap_s`` are one run and flip it once.
    """

    def __init__(
        self,
        mode: Literal["hold", "toggle"] = "hold",
        *,
        initial_gap_ms: float = 700.0,
        repeat_gap_ms: float = 200.0,
    ) -> None:
        if mode not in ("hold", "toggle"):
            raise ConfigError(f"must be 'hold' or 'toggle', got {mode!r}", key="mode")
        for key, value in (("initial_gap_ms", initial_gap_ms), ("repeat_gap_ms", repeat_gap_ms)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"must be > 0 ms, got {value!r}", key=key)
        self.mode = mode
        self.initial_gap_s = initial_gap_ms / 1000.0
        self.repeat_gap_s = repeat_gap_ms / 1000.0
        self._in_run = False
        self._repeats = 0
        self._last = -math.inf
        self._latched = False

    @property
    def level(self) -> bool:
        """The level last reported: held (hold mode) or latched on (toggle mode)."""
        return self._latched if self.mode == "toggle" else self._in_run

    def deadline(self) -> float | None:
        """When the current run ends unless another keystroke comes, s; None if no run."""
        if not self._in_run:
            return None
        return self._last + (self.initial_gap_s if self._repeats == 0 else self.repeat_gap_s)

    def key(self, now: float) -> list[Edge]:
        """One keystroke of the key at ``now``; returns the edges it causes."""
        out = self.poll(now)
        if self._in_run:
            self._repeats += 1
            self._last = now
            return out
        self._in_run, self._repeats, self._last = True, 0, now
        if self.mode == "hold":
            out.append(Edge(True, now))
        else:
            self._latched = not self._latched
            out.append(Edge(self._latched, now))
        return out

    def poll(self, now: float) -> list[Edge]:
        """Let time pass; returns the release of a run that went quiet, dated at its deadline."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        self._in_run = False
        return [Edge(False, deadline)] if self.mode == "hold" else []

    def end(self, now: float) -> list[Edge]:
        """The input ended: release whatever is held or latched."""
        out = self.poll(now)
        if self.level:
            self._in_run = False
            self._latched = False
            out.append(Edge(False, now))
        self._in_run = False
        return out


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class TerminalButton(_QueuedSource):
    """A key on the controlling terminal as a talk button, for development.

    While iterated, a terminal is put in cbreak mode (no echo, no line buffering; Ctrl-C
    still interrupts) and restored on :meth:`close`, when the input ends, or when the
    iteration ends (its task was cancelled). Keystrokes become
    edges through :class:`TerminalKeys` (see there for how a hold is recognised without
    key-up events). Other keys are ignored. At end of input a held or latched key is
    released, then the iteration ends.

    Args:
        key: the key, one character (``" "``, ``"t"``; Enter is ``"\\n"``).
        mode: ``"hold"`` or ``"toggle"``, as in :class:`TerminalKeys`.
        stream: what to read (anything with ``fileno()``, or a descriptor); default stdin.
            Need not be a terminal: a pipe works, without the mode change.
        clock: where edge times come from.
        initial_gap_ms, repeat_gap_ms: as in :class:`TerminalKeys`.
        max_queue: edges held for a slow consumer before the oldest is dropped.

    Raises:
        ConfigError: ``key`` is not one character, or a bad mode or gap.
    """

    # A cancelled reader must not leave the terminal without echo.
    _stop_on_exit = True

    def __init__(
        self,
        key: str = " ",
        mode: Literal["hold", "toggle"] = "hold",
        *,
        stream: _HasFileno | int | None = None,
        clock: Clock | None = None,
        initial_gap_ms: float = 700.0,
        repeat_gap_ms: float = 200.0,
        max_queue: int = 64,
    ) -> None:
        super().__init__(clock=clock, max_queue=max_queue)
        if not isinstance(key, str) or len(key) != 1:
            raise ConfigError(f"must be one character, got {key!r}", key="key")
        self.key = key
        self.keys = TerminalKeys(mode, initial_gap_ms=initial_gap_ms, repeat_gap_ms=repeat_gap_ms)
        if stream is None:
            stream = sys.stdin
        self._fd = stream if isinstance(stream, int) else stream.fileno()
        self._key_bytes = key.encode()
        self._saved: list[Any] | None = None
        self._reading = False

    def _start(self) -> None:
        if self._closed or self._ended:
            return
        if os.isatty(self._fd) and self._saved is None:
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd, termios.TCSANOW)
        assert self._loop is not None
        self._loop.add_reader(self._fd, self._on_readable)
        self._reading = True

    def _stop(self) -> None:
        if self._reading and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._reading = False
        if self._saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _deadline(self) -> float | None:
        return self.keys.deadline()

    def _poll(self, now: float) -> list[Edge]:
        return self.keys.poll(now)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal went away
            data = b""
        now = self.clock.now()
        if not data:
            for edge in self.keys.end(now):
                self._put(edge)
            self._ended = True
            self._stop()
            self._wake.set()
            return
        for _ in range(data.count(self._key_bytes)):
            for edge in self.keys.key(now):
                self._put(edge)
        # Any input wakes the consumer, which then checks the run's deadline against the clock.
        self._wake.set()
