"""Rain, distance and relay drivers on gpiozero's MockFactory pins."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockTriggerPin, PinState

from robot.core.types import PowerSource
from robot.drivers.distance import EchoWindow, GpioDistance, GpioSideDistance
from robot.drivers.rain import GpioRain, RainDebouncer
from robot.drivers.relay import GpioRelay


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def test_rain_is_wet_at_once_and_dry_only_after_debounce(factory: MockFactory) -> None:
    clock = Clock()
    wakes: list[float] = []
    pin = factory.pin(17)
    with GpioRain(
        17,
        active_low=True,
        debounce_s=2.0,
        pin_factory=factory,
        clock=clock,
        on_change=lambda: wakes.append(clock.t),
    ) as rain:
        assert rain.is_raining() is False  # pulled up, board output high: dry
        pin.drive_low()  # drops on the plate
        assert rain.is_raining() is True and wakes == [100.0]
        clock.t += 0.5
        pin.drive_high()  # flicker
        clock.t += 1.0
        pin.drive_low()
        pin.drive_high()
        assert rain.is_raining() is True and len(wakes) == 1  # still the same shower
        clock.t += 1.9
        assert rain.is_raining() is True
        clock.t += 0.2
        assert rain.is_raining() is False
        assert rain.stats()["edges"] == 4


def test_rain_active_high_board(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with GpioRain(17, active_low=False, debounce_s=0.0, pin_factory=factory, clock=Clock()) as rain:
        assert rain.is_raining() is False
        pin.drive_high()
        assert rain.is_raining() is True


def test_debouncer_pure() -> None:
    d = RainDebouncer(5.0, raw=True, now=0.0)
    assert d.raining(0.0)
    assert d.edge(False, 1.0) is False
    assert d.raining(5.9) and not d.raining(6.0)
    assert d.edge(True, 7.0) is True


def test_echo_window_unknown_after_missed_pings_and_wakes_on_entering_stop_distance() -> None:
    wakes: list[str] = []
    w = EchoWindow(stale_s=0.5, miss_limit=3, stop_distance_m=0.5, on_change=lambda: wakes.append("x"))
    assert w.distance(0.0) is None  # nothing yet: unknown
    w.add(2.0, 0.0)
    w.add(2.1, 0.1)
    w.add(1.9, 0.2)
    assert w.distance(0.2) == pytest.approx(2.0) and wakes == []
    w.add(0.3, 0.3)
    w.add(0.3, 0.4)
    w.add(0.35, 0.5)
    assert w.distance(0.5) == pytest.approx(0.35) and wakes == ["x"]
    w.add(2.0, 0.6)
    w.add(2.0, 0.7)
    w.add(2.0, 0.8)
    w.add(None, 0.9)
    w.add(None, 1.0)
    assert w.distance(1.0) == pytest.approx(2.0)  # two misses: still the last good median
    w.add(None, 1.1)
    assert w.distance(1.1) is None and wakes == ["x", "x"]
    assert w.distance(5.0) is None  # and stale readings never count


def test_echo_window_stops_on_the_second_near_ping_but_ignores_one_stray_echo() -> None:
    wakes: list[str] = []
    w = EchoWindow(stale_s=0.5, stop_distance_m=0.5, on_change=lambda: wakes.append("x"))
    for i in range(5):
        w.add(2.0, i * 0.07)
    w.add(0.2, 0.35)  # one stray echo: still the median
    assert w.distance(0.35) == pytest.approx(2.0) and wakes == []
    w.add(2.0, 0.42)
    w.add(0.4, 0.49)
    w.add(0.3, 0.56)  # the second in a row inside 0.5 m: unsafe now, not a ping later
    assert w.distance(0.56) == pytest.approx(0.4) and wakes == ["x"]
    w.add(2.0, 0.63)  # going again needs the median clear: [0.2.., 2.0, 0.4, 0.3, 2.0] -> 0.4
    assert w.distance(0.63) == pytest.approx(0.4)


class ExactEchoPin(MockPin):  # type: ignore[misc]
    """HC-SR04 echo whose falling edge is stamped exactly `echo_time` after its rise.

    gpiozero's MockTriggerPin ends the pulse with sleep(echo_time): on a loaded machine the sleep overruns by
    milliseconds and the driver measures a farther object (2.06 m for 0.69 m seen under stress-ng). The sensor's
    pulse length is physics, not this machine's scheduling; what the driver does with the edges stays real."""

    echo_time = 0.0

    def _change_state(self, value: bool) -> bool:
        if self._state == value:
            return False
        t = time.monotonic() if value else self._last_change + self.echo_time
        self._state = value
        self.states.append(PinState(t - self._last_change, value))
        self._last_change = t
        return True


def test_hcsr04_on_mock_pins_measures_and_reports_no_echo_as_none(factory: MockFactory) -> None:
    echo = factory.pin(24, pin_class=ExactEchoPin)
    echo.echo_time = 0.004  # 0.004 s = 0.69 m
    factory.pin(23, pin_class=MockTriggerPin, echo_pin=echo, echo_time=0.004)
    with GpioDistance(23, 24, pin_factory=factory, stale_s=1.0) as sensor:
        deadline = time.monotonic() + 3.0
        while sensor.stats()["pings"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        d = sensor.distance_m()
        assert d is not None and d == pytest.approx(0.004 * 343.26 / 2, abs=0.1)
    silent = MockFactory()
    with GpioDistance(23, 24, pin_factory=silent, stale_s=0.3) as sensor:
        deadline = time.monotonic() + 3.0
        while sensor.stats()["no_echo"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sensor.distance_m() is None
    sensor.close()


def test_hcsr04_waits_the_configured_gap_between_pings(factory: MockFactory) -> None:
    echo = factory.pin(24, pin_class=ExactEchoPin)
    echo.echo_time = 0.002
    trigger = factory.pin(23, pin_class=MockTriggerPin, echo_pin=echo, echo_time=0.002)
    # 0.12 s: longer than gpiozero's own 60 ms, so a gap that was not applied shows. A loaded machine can only
    # make the gaps longer, never shorter, so the lower bound holds under any load.
    with GpioDistance(23, 24, pin_factory=factory, stale_s=1.0, ping_gap_s=0.12) as sensor:
        deadline = time.monotonic() + 5.0
        while sensor.stats()["pings"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    t, at = 0.0, []  # each recorded state holds the time since the previous change: the trigger's rises
    for change in trigger.states:
        t += change.timestamp
        if change.state:
            at.append(t)
    assert len(at) >= 4
    # From the second ping on (the first waits gpiozero's 60 ms, before the driver sets the gap).
    assert min(b - a for a, b in itertools.pairwise(at[1:])) >= 0.12


def test_side_sensors_on_mock_pins_read_left_and_right_and_a_silent_one_is_none(factory: MockFactory) -> None:
    # The left one answers (0.004 s: 0.69 m), the right one is wired to nothing: unknown, never "clear".
    echo = factory.pin(20, pin_class=ExactEchoPin)
    echo.echo_time = 0.004
    factory.pin(16, pin_class=MockTriggerPin, echo_pin=echo, echo_time=0.004)
    with GpioSideDistance((16, 20), (19, 26), pin_factory=factory, stale_s=1.0) as sides:
        deadline = time.monotonic() + 3.0  # real time only until gpiozero's ping threads have pinged
        while (
            sides.left.stats()["pings"] < 3 or sides.right.stats()["no_echo"] < 3
        ) and time.monotonic() < deadline:
            time.sleep(0.02)
        left, right = sides.distances_m()
        assert left is not None and left == pytest.approx(0.004 * 343.26 / 2, abs=0.1)
        assert right is None
        assert sides.stats()["pings"] == sides.left.stats()["pings"] + sides.right.stats()["pings"]
    sides.close()  # a second close is harmless


def test_relay_energised_means_panel_and_close_returns_to_battery(factory: MockFactory) -> None:
    relay = GpioRelay(27, pin_factory=factory)
    pin = factory.pin(27)
    assert relay.source == PowerSource.BATTERY and pin.state is False
    relay.select(PowerSource.PANEL)
    relay.select(PowerSource.PANEL)
    assert pin.state is True and relay.switches == 1
    relay.select(PowerSource.BATTERY)
    assert pin.state is False and relay.switches == 2
    relay.select(PowerSource.PANEL)
    relay.close()
    relay.close()
    assert pin.state is False
