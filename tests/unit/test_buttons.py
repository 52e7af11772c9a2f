"""Edge sources: gpiozero's mock pins, fake evdev devices, a pty and a pipe.

Edge times come from a :class:`FakeClock` wherever they are checked; the only real waits are
timeouts (multiples of ``MS``) that fail a test which would otherwise hang.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pty
import termios
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from evdev import InputEvent, ecodes
from gpiozero.pins.mock import MockFactory
from helpers import MS

from voicegw.clock import FakeClock
from voicegw.errors import ConcurrencyError, ConfigError, DeviceError
from voicegw.io.buttons import (
    EV_KEY,
    Edge,
    EvdevButton,
    GpioButton,
    TerminalButton,
    TerminalKeys,
)
from voicegw.ptt import Interrupt, PttGate, StartTalking, StopTalking

TIMEOUT = 2000 * MS
EV_SYN = 0
KEY_SPACE = 57


async def next_edge(it: AsyncIterator[Edge]) -> Edge:
    return await asyncio.wait_for(anext(it), TIMEOUT)


async def ends(it: AsyncIterator[Edge]) -> bool:
    try:
        await asyncio.wait_for(anext(it), TIMEOUT)
    except StopAsyncIteration:
        return True
    return False


# ---------------------------------------------------------------- GPIO


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


async def test_gpio_press_and_release_arrive_in_order_with_their_times(
    factory: MockFactory,
) -> None:
    clock = FakeClock()
    button = GpioButton(17, pin_factory=factory, clock=clock)
    pin = factory.pin(17)
    it = aiter(button)
    clock.set(1.0)
    pin.drive_low()
    clock.set(1.5)
    pin.drive_high()
    assert await next_edge(it) == Edge(True, 1.0)
    assert await next_edge(it) == Edge(False, 1.5)
    button.close()
    assert await ends(it)


async def test_gpio_bounce_reaches_the_gate_which_makes_it_one_press(
    factory: MockFactory,
) -> None:
    # The mock pin factory does not debounce, so every contact bounce arrives as an edge.
    clock = FakeClock()
    gate = PttGate("hold", bounce_ms=50, min_hold_ms=150)
    async with GpioButton(17, pin_factory=factory, clock=clock) as button:
        pin = factory.pin(17)
        it = aiter(button)
        for i, level in enumerate([0, 1, 0, 1, 0]):
            clock.set(i * 0.002)
            pin.drive_low() if level == 0 else pin.drive_high()
        clock.set(1.0)
        pin.drive_high()
        clock.set(1.004)
        pin.drive_low()
        clock.set(1.008)
        pin.drive_high()
        actions = []
        edges = [await next_edge(it) for _ in range(8)]
        assert [e.pressed for e in edges] == [True, False, True, False, True, False, True, False]
        for pressed, t in edges[:5]:
            actions += gate.edge(pressed, t)
        actions += gate.tick(0.5)
        for pressed, t in edges[5:]:
            actions += gate.edge(pressed, t)
        actions += gate.tick(2.0)
    assert actions == [Interrupt(0.0), StartTalking(0.0), StopTalking(1.0, "released")]


async def test_gpio_edges_from_another_thread_reach_the_loop(factory: MockFactory) -> None:
    button = GpioButton(17, pin_factory=factory)
    pin = factory.pin(17)
    it = aiter(button)
    await asyncio.to_thread(pin.drive_low)
    await asyncio.to_thread(pin.drive_high)
    first, second = await next_edge(it), await next_edge(it)
    assert (first.pressed, second.pressed) == (True, False)
    assert first.t <= second.t
    button.close()


async def test_gpio_active_high_wiring(factory: MockFactory) -> None:
    clock = FakeClock()
    button = GpioButton("GPIO22", active_low=False, pin_factory=factory, clock=clock)
    pin = factory.pin(22)
    it = aiter(button)
    pin.drive_high()
    pin.drive_low()
    assert [await next_edge(it), await next_edge(it)] == [Edge(True, 0.0), Edge(False, 0.0)]
    button.close()


async def test_gpio_edges_before_iteration_are_missed_and_counted(
    factory: MockFactory,
) -> None:
    button = GpioButton(17, pin_factory=factory, clock=FakeClock())
    pin = factory.pin(17)
    pin.drive_low()
    pin.drive_high()
    assert button.missed == 2
    it = aiter(button)
    pin.drive_low()
    assert (await next_edge(it)).pressed is True
    button.close()


async def test_gpio_queue_is_bounded_and_drops_the_oldest(factory: MockFactory) -> None:
    clock = FakeClock()
    button = GpioButton(17, pin_factory=factory, clock=clock, max_queue=2)
    pin = factory.pin(17)
    it = aiter(button)
    for i in range(3):
        clock.set(float(i))
        pin.drive_low()
        pin.drive_high()
    assert await next_edge(it) == Edge(True, 2.0)
    assert await next_edge(it) == Edge(False, 2.0)
    assert button.dropped == 4
    button.close()


async def test_gpio_close_frees_the_pin(factory: MockFactory) -> None:
    button = GpioButton(17, pin_factory=factory)
    with pytest.raises(DeviceError, match="already in use"):
        GpioButton(17, pin_factory=factory)
    button.close()
    button.close()
    GpioButton(17, pin_factory=factory).close()


def test_gpio_unknown_pin_lists_the_board_pins(factory: MockFactory) -> None:
    with pytest.raises(DeviceError) as info:
        GpioButton(99, pin_factory=factory)
    message = str(info.value)
    assert "99" in message and "GPIO2, GPIO3" in message and "GPIO27" in message


async def test_gpio_a_second_waiting_consumer_is_refused(factory: MockFactory) -> None:
    button = GpioButton(17, pin_factory=factory)
    waiting = asyncio.ensure_future(anext(aiter(button)))
    await asyncio.sleep(0)  # let it start waiting
    with pytest.raises(ConcurrencyError):
        aiter(button)
    button.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, TIMEOUT)


async def test_gpio_an_abandoned_iteration_is_taken_over(factory: MockFactory) -> None:
    button = GpioButton(17, pin_factory=factory, clock=FakeClock())
    pin = factory.pin(17)
    first = aiter(button)
    pin.drive_low()
    assert (await next_edge(first)).pressed is True
    second = aiter(button)  # the first stopped at a yield: its consumer left it
    pin.drive_high()
    assert (await next_edge(second)).pressed is False
    assert await ends(first)
    button.close()


# ---------------------------------------------------------------- evdev


class FakeInputDevice:
    """An evdev device stand-in: yields the given events, moving the clock to each's time."""

    def __init__(
        self,
        events: Sequence[tuple[float, InputEvent]],
        clock: FakeClock,
        *,
        then: BaseException | None = None,
        block: bool = False,
        grab_error: OSError | None = None,
    ) -> None:
        self.events = events
        self.clock = clock
        self.then = then
        self.block = block
        self.grab_error = grab_error
        self.grabbed = False
        self.closed = False
        self.name = "Fake Foot Switch"
        self.path = "/dev/input/event9"

    async def async_read_loop(self) -> AsyncIterator[InputEvent]:
        for t, event in self.events:
            self.clock.set(t)
            yield event
        if self.then is not None:
            raise self.then
        if self.block:
            await asyncio.Event().wait()

    def grab(self) -> None:
        if self.grab_error is not None:
            raise self.grab_error
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        self.closed = True


def key(code: int, value: int) -> InputEvent:
    return InputEvent(0, 0, EV_KEY, code, value)


def syn() -> InputEvent:
    return InputEvent(0, 0, EV_SYN, 0, 0)


async def test_evdev_down_and_up_are_edges_and_autorepeat_is_ignored() -> None:
    clock = FakeClock()
    device = FakeInputDevice(
        [
            (1.0, key(KEY_SPACE, 1)),
            (1.0, syn()),
            (1.5, key(KEY_SPACE, 2)),
            (1.53, key(KEY_SPACE, 2)),
            (1.6, key(ecodes.KEY_A, 1)),
            (1.7, key(ecodes.KEY_A, 0)),
            (2.0, key(KEY_SPACE, 0)),
            (2.0, syn()),
        ],
        clock,
    )
    button = EvdevButton("foot", device_factory=lambda: device, clock=clock)
    assert button.key_code == KEY_SPACE
    edges = [edge async for edge in button]
    assert edges == [Edge(True, 1.0), Edge(False, 2.0)]
    assert button.repeats_ignored == 2
    button.close()
    assert device.closed


@pytest.mark.parametrize(
    ("given", "code"),
    [("KEY_SPACE", 57), ("key_f12", ecodes.KEY_F12), ("BTN_0", 256), (30, 30), ("30", 30)],
)
def test_evdev_key_names_and_codes(given: int | str, code: int) -> None:
    device = FakeInputDevice([], FakeClock())
    assert EvdevButton("x", given, device_factory=lambda: device).key_code == code


@pytest.mark.parametrize("given", ["KEY_NOPE", "EV_KEY", -1, True])
def test_evdev_unknown_keys_are_config_errors(given: int | str) -> None:
    device = FakeInputDevice([], FakeClock())
    with pytest.raises(ConfigError):
        EvdevButton("x", given, device_factory=lambda: device)


async def test_evdev_grab_is_released_on_close() -> None:
    device = FakeInputDevice([], FakeClock())
    button = EvdevButton("x", grab=True, device_factory=lambda: device)
    assert device.grabbed
    button.close()
    assert not device.grabbed and device.closed


def test_evdev_a_failed_grab_is_a_device_error_and_closes_the_device() -> None:
    device = FakeInputDevice([], FakeClock(), grab_error=OSError(errno.EBUSY, "busy"))
    with pytest.raises(DeviceError, match="cannot grab input device /dev/input/event9"):
        EvdevButton("x", grab=True, device_factory=lambda: device)
    assert device.closed


async def test_evdev_unplugged_device_is_a_device_error() -> None:
    clock = FakeClock()
    device = FakeInputDevice(
        [(1.0, key(KEY_SPACE, 1))], clock, then=OSError(errno.ENODEV, "No such device")
    )
    button = EvdevButton("x", device_factory=lambda: device, clock=clock)
    it = aiter(button)
    assert await next_edge(it) == Edge(True, 1.0)
    with pytest.raises(DeviceError, match="No such device"):
        await next_edge(it)


async def test_evdev_close_ends_a_waiting_iteration() -> None:
    clock = FakeClock()
    device = FakeInputDevice([(1.0, key(KEY_SPACE, 1))], clock, block=True)
    button = EvdevButton("x", device_factory=lambda: device, clock=clock)
    it = aiter(button)
    assert await next_edge(it) == Edge(True, 1.0)
    waiting = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)
    assert not waiting.done()
    with pytest.raises(ConcurrencyError):
        aiter(button)
    button.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, TIMEOUT)
    assert device.closed


def test_evdev_no_matching_device_names_the_pattern_and_what_exists() -> None:
    with pytest.raises(DeviceError) as info:
        EvdevButton("no-such-voicegw-test-device")
    message = str(info.value)
    assert "'no-such-voicegw-test-device'" in message and "devices:" in message


# ---------------------------------------------------------------- terminal: the pure part


def test_keys_hold_covers_the_autorepeat_delay_then_releases_on_silence() -> None:
    keys = TerminalKeys("hold", initial_gap_ms=700, repeat_gap_ms=200)
    assert keys.key(0.0) == [Edge(True, 0.0)]
    assert keys.deadline() == pytest.approx(0.7)
    assert keys.poll(0.69) == []
    assert keys.key(0.5) == []  # the first autorepeat
    for t in (0.533, 0.566, 0.6):
        assert keys.key(t) == []
    assert keys.deadline() == pytest.approx(0.8)
    assert keys.poll(0.79) == []
    assert keys.poll(0.85) == [Edge(False, pytest.approx(0.8))]  # dated at the deadline
    assert keys.deadline() is None and keys.level is False


def test_keys_hold_tap_releases_after_the_initial_gap() -> None:
    keys = TerminalKeys("hold", initial_gap_ms=700, repeat_gap_ms=200)
    keys.key(0.0)
    assert keys.poll(0.7) == [Edge(False, pytest.approx(0.7))]


def test_keys_a_keystroke_after_a_quiet_gap_ends_the_run_and_starts_another() -> None:
    keys = TerminalKeys("hold", initial_gap_ms=700, repeat_gap_ms=200)
    keys.key(0.0)
    assert keys.key(1.0) == [Edge(False, pytest.approx(0.7)), Edge(True, 1.0)]


def test_keys_toggle_flips_once_per_run() -> None:
    keys = TerminalKeys("toggle", initial_gap_ms=700, repeat_gap_ms=200)
    assert keys.key(0.0) == [Edge(True, 0.0)]
    assert keys.key(0.5) == []  # autorepeat of the same press
    assert keys.poll(1.0) == []  # a run ending says nothing in toggle mode
    assert keys.level is True
    assert keys.key(2.0) == [Edge(False, 2.0)]
    assert keys.key(2.3) == []  # a second tap inside the first's gap is the same run
    assert keys.key(4.0) == [Edge(True, 4.0)]


@pytest.mark.parametrize("mode", ["hold", "toggle"])
def test_keys_end_of_input_releases_what_is_held(mode: str) -> None:
    keys = TerminalKeys(mode)  # type: ignore[arg-type]
    keys.key(0.0)
    assert keys.end(0.1) == [Edge(False, 0.1)]
    assert keys.end(0.2) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "latch"}, {"initial_gap_ms": 0}, {"repeat_gap_ms": float("nan")}],
)
def test_keys_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        TerminalKeys(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- terminal: pty and pipe


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


async def test_terminal_goes_cbreak_while_read_and_is_restored(
    terminal: tuple[int, int],
) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    button = TerminalButton(stream=slave)
    assert termios.tcgetattr(slave) == before  # nothing changes until it is read
    it = aiter(button)
    during = termios.tcgetattr(slave)
    assert not during[3] & termios.ICANON and not during[3] & termios.ECHO
    assert during[3] & termios.ISIG  # Ctrl-C still interrupts
    button.close()
    assert termios.tcgetattr(slave) == before
    assert await ends(it)


async def test_terminal_is_restored_when_its_reader_is_cancelled(
    terminal: tuple[int, int],
) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    button = TerminalButton(stream=slave)
    waiting = asyncio.ensure_future(anext(aiter(button)))
    await asyncio.sleep(0)  # let it start waiting
    assert termios.tcgetattr(slave) != before
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert termios.tcgetattr(slave) == before
    button.close()


async def test_terminal_toggle_on_a_pty(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    clock = FakeClock()
    button = TerminalButton("t", "toggle", stream=slave, clock=clock)
    it = aiter(button)
    os.write(master, b"xyt")
    assert await next_edge(it) == Edge(True, 0.0)
    clock.set(5.0)
    os.write(master, b"t")
    assert await next_edge(it) == Edge(False, 5.0)
    button.close()


async def test_terminal_hold_on_a_pty_with_an_injected_clock(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    clock = FakeClock()
    button = TerminalButton(stream=slave, clock=clock, initial_gap_ms=700, repeat_gap_ms=200)
    it = aiter(button)
    os.write(master, b" ")
    assert await next_edge(it) == Edge(True, 0.0)
    clock.set(0.5)
    os.write(master, b"  ")  # autorepeat
    clock.set(2.0)
    os.write(master, b"q")  # any input makes the source look at the clock
    assert await next_edge(it) == Edge(False, pytest.approx(0.7))
    button.close()


async def test_terminal_hold_releases_on_real_silence(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    gap_ms = 50 * MS * 1000
    button = TerminalButton(stream=slave, initial_gap_ms=gap_ms, repeat_gap_ms=gap_ms)
    it = aiter(button)
    os.write(master, b" ")
    pressed = await next_edge(it)
    released = await next_edge(it)
    assert pressed.pressed and not released.pressed
    assert released.t - pressed.t == pytest.approx(gap_ms / 1000)
    button.close()


async def test_terminal_end_of_a_pipe_releases_and_ends() -> None:
    r, w = os.pipe()
    try:
        clock = FakeClock()
        button = TerminalButton(stream=r, clock=clock)
        it = aiter(button)
        clock.set(1.0)
        os.write(w, b" ")
        assert await next_edge(it) == Edge(True, 1.0)
        clock.set(1.2)
        os.close(w)
        w = -1
        assert await next_edge(it) == Edge(False, 1.2)
        assert await ends(it)
        button.close()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_terminal_key_must_be_one_character() -> None:
    with pytest.raises(ConfigError):
        TerminalButton("ab", stream=0)
