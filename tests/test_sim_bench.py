"""The real Pi drivers on the pin bench: mock GPIO pins and a fake INA219 bus driven by the simulated world."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from robot.config import Settings
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState, PowerSource
from robot.drivers.distance import GpioDistance
from robot.drivers.power import Ina219Power
from robot.drivers.rain import GpioRain
from robot.drivers.relay import GpioRelay
from robot.drivers.scale import Hx711Scale
from robot.drivers.sim import SimCamera, SimGps
from robot.errors import HardwareUnavailable, ScaleError
from robot.hardware.factory import build_part, build_parts
from sim import scenario as scen
from sim.devices.bench import BENCH_COUNTS_PER_KG, TRIM_STATES, FakeIna219Bus, PinBench, wants_bench
from sim.world import World

ON = PinState(1, 0, 255)
ALL_ON = MotorOutputs(ON, ON, ON, ON, ON)


def make(extra: str = "", start: str = "2024-03-15T12:00:00") -> World:
    return World(scen.parse(f"start = {start}\nduration_h = 1\nseed = 1\n{extra}", "bench.toml"))


def settings(**hw: Any) -> Settings:
    s = Settings()
    return dataclasses.replace(s, hardware=dataclasses.replace(s.hardware, **hw))


def run(w: World, seconds: float, pins: MotorOutputs = ALL_BRAKED, dt: float = 0.05) -> None:
    for _ in range(round(seconds / dt)):
        w.advance(dt, pins)


def wait_for(cond: Callable[[], bool], limit_s: float = 3.0) -> bool:
    """Poll a driver whose own thread works in real time (gpiozero's ping queue)."""
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def world() -> World:
    return make()


@pytest.fixture
def bench(world: World) -> Iterator[PinBench]:
    with PinBench(world, Settings()) as b:
        yield b


@pytest.mark.parametrize("active_low", [True, False])
def test_rain_in_the_world_wets_the_real_rain_driver_and_dries_after_its_debounce(active_low: bool) -> None:
    w = make("[weather]\nrain = [{ from = 1, to = 3 }]\n")
    s = settings(rain_active_low=active_low, rain_debounce_s=0.1)
    wakes: list[int] = []
    with PinBench(w, s) as b, build_part("rain", s, wake=lambda: wakes.append(1), bench=b) as rain:
        assert isinstance(rain, GpioRain)
        assert rain.is_raining() is False
        run(w, 1.5)
        b.update()
        assert rain.is_raining() is True and wakes == [1]  # wet at the first edge, and the supervisor woken
        run(w, 2.0)
        b.update()
        assert w.raining() is False and rain.is_raining() is True  # dry plate, still inside the debounce
        assert wait_for(lambda: not rain.is_raining(), 1.0)
        assert rain.stats()["edges"] == 2


def test_obstacle_distance_reaches_the_real_hcsr04_driver_through_echo_timing() -> None:
    w = make("[[obstacle]]\nx = 3.0\ny = 0.0\nradius_m = 0.3\n")
    w.x, w.y, w.heading = 0.0, 0.0, 0.0
    s = Settings()
    wakes: list[int] = []
    with PinBench(w, s) as b, build_part("distance", s, wake=lambda: wakes.append(1), bench=b) as sensor:
        assert isinstance(sensor, GpioDistance)
        assert wait_for(lambda: sensor.stats()["pings"] >= 3)
        d = sensor.distance_m()
        assert d is not None and d == pytest.approx(2.4, abs=0.05)
        assert d == pytest.approx(w.distance_m(), abs=0.05)
        assert wakes == []
        w.x = 2.35  # the sensor, 0.3 m ahead of the centre, now 0.05 m from the obstacle's edge
        b.update()
        assert wait_for(lambda: (sensor.distance_m() or 9.0) < s.obstacle.stop_distance_m)
        assert sensor.distance_m() == pytest.approx(w.distance_m(), abs=0.05)
        assert wakes  # coming inside the stop distance wakes the supervisor
        w.x = -5.0  # nothing within range: full scale, as on the robot
        b.update()
        assert wait_for(lambda: sensor.distance_m() == pytest.approx(s.hardware.distance_max_m, abs=0.01))
        assert sensor.stats()["no_echo"] == 0


def test_the_distance_driver_takes_the_one_obstacle_staleness_setting() -> None:
    # obstacle.stale_s bounds both the core's reading age and the driver's ping window: no second value.
    s = dataclasses.replace(Settings(), obstacle=dataclasses.replace(Settings().obstacle, stale_s=0.7))
    with PinBench(make(), s) as b, build_part("distance", s, bench=b) as sensor:
        assert isinstance(sensor, GpioDistance) and sensor.stale_s == 0.7
        assert sensor.ping_gap_s == s.hardware.distance_ping_gap_s  # the gap between pings: hardware's, once


def test_a_world_without_a_distance_gives_no_echo_and_the_driver_reads_unknown() -> None:
    w = make()
    w.stick("distance", 60.0)  # stuck before any reading: the world has no distance to give
    s = Settings()
    with PinBench(w, s) as b, build_part("distance", s, bench=b) as sensor:
        assert wait_for(lambda: sensor.stats()["no_echo"] >= 3)
        assert sensor.distance_m() is None


def test_tray_weight_reaches_the_real_hx711_driver_within_20_grams() -> None:
    w = make("[robot]\ntray_kg = 1.234\n")
    s = Settings()
    with PinBench(w, s) as b, build_part("scale", s, bench=b) as scale:
        assert isinstance(scale, Hx711Scale)
        assert scale.calibration == b.calibration
        assert scale.read_kg() == pytest.approx(1.234, abs=0.02)
        w.tray = 0.0  # emptied
        b.update()
        assert scale.read_kg() == pytest.approx(0.0, abs=0.02)
        w.tray = 1.95
        b.update()
        raw = scale.read_raw_filtered()
        assert scale.read_kg() == pytest.approx(1.95, abs=0.02)
        assert raw - b.calibration.offset == pytest.approx(1.95 * BENCH_COUNTS_PER_KG, rel=0.01)


def test_power_reading_reaches_the_real_ina219_driver_through_its_registers() -> None:
    w = make()
    run(w, 2.0, ALL_ON)  # loads on the battery: it discharges
    s = settings(power_panel_shunt_ohms=0.05)  # +-6.4 A range: the panel's 3.45 A fits
    with PinBench(w, s) as b, build_part("power", s, bench=b) as power:
        assert isinstance(power, Ina219Power)
        truth = w.power_reading()
        r = power.read()
        assert truth.battery_a < -0.3 and truth.panel_a > 3.2
        assert r.panel_v == pytest.approx(truth.panel_v, abs=0.005)
        assert r.panel_a == pytest.approx(truth.panel_a, abs=0.001)
        assert r.battery_v == pytest.approx(truth.battery_v, abs=0.005)
        assert r.battery_a == pytest.approx(truth.battery_a, abs=0.001)
        assert 0.0 < r.soc < 1.0
        assert power.panel.overflows == 0


def test_reversed_battery_monitor_and_the_ina219_range_limit_show_up_as_on_the_robot() -> None:
    w = make()
    w.set_power_source(PowerSource.PANEL)
    run(w, 2.0, ALL_ON)  # the panel runs the loads and charges the battery
    s = settings(power_battery_charge_positive=False)  # default 0.1 ohm panel shunt: clips at 3.2 A
    with PinBench(w, s) as b, build_part("power", s, bench=b) as power:
        truth = w.power_reading()
        r = power.read()
        assert truth.battery_a > 0.3
        assert r.battery_a == pytest.approx(truth.battery_a, abs=0.001)
        assert truth.panel_a > 3.2 and r.panel_a == pytest.approx(3.2)
        assert power.panel.overflows == 1


def test_fake_bus_answers_only_its_addresses_like_smbus2() -> None:
    bus = FakeIna219Bus((0x40,))
    with pytest.raises(OSError):
        bus.read_word_data(0x41, 0)
    bus.write_word_data(0x40, 0, 0x9F39)
    assert bus.regs[0x40][0] == 0x399F
    bus.close()
    with pytest.raises(OSError):
        bus.read_word_data(0x40, 0)


def test_relay_pin_moves_the_worlds_power_source(world: World, bench: PinBench) -> None:
    s = Settings()
    relay = build_part("relay", s, bench=bench)
    assert isinstance(relay, GpioRelay)
    relay.select(PowerSource.PANEL)
    bench.update()
    assert world.power_source is PowerSource.PANEL
    relay.select(PowerSource.BATTERY)
    bench.update()
    assert world.power_source is PowerSource.BATTERY
    relay.select(PowerSource.PANEL)
    bench.update()
    relay.close()  # released: the loads fall back to the battery
    bench.update()
    assert world.power_source is PowerSource.BATTERY


def test_an_undriven_relay_pin_leaves_the_world_to_the_real_relay(world: World, bench: PinBench) -> None:
    world.set_power_source(PowerSource.PANEL)
    bench.update()
    assert bench.relay_source() is None and world.power_source is PowerSource.PANEL


def test_build_parts_with_a_bench_builds_the_real_drivers_and_keeps_gps_and_camera_twins(
    world: World, bench: PinBench
) -> None:
    s = Settings()
    with build_parts(s, world=world, bench=bench) as parts:
        assert isinstance(parts.rain, GpioRain)
        assert isinstance(parts.distance, GpioDistance)
        assert isinstance(parts.scale, Hx711Scale)
        assert isinstance(parts.power, Ina219Power)
        assert isinstance(parts.relay, GpioRelay)
        assert isinstance(parts.gps, SimGps) and isinstance(parts.camera, SimCamera)
        assert parts.scale.read_kg() == pytest.approx(world.tray, abs=0.02)
    with build_parts(s, world=world) as twins:
        assert not isinstance(twins.rain, GpioRain)


def test_a_part_set_to_pi_is_not_taken_over_by_the_bench(world: World, bench: PinBench) -> None:
    try:
        part = build_part("rain", settings(rain="pi"), bench=bench)
    except HardwareUnavailable:
        return  # no GPIO here: it really went for the machine's pins
    # On a Raspberry Pi it opens the real pin, not the bench's.
    with part:
        assert part._dev.pin_factory is not bench.pin_factory


def test_bench_thread_follows_the_world_in_real_time() -> None:
    w = make("[weather]\nrain = [{ from = 1, to = 30 }]\n")
    s = settings(rain_debounce_s=0.0)
    with PinBench(w, s, rate_hz=100.0) as b, build_parts(s, world=w, bench=b) as parts:
        b.start()
        b.start()  # once is enough
        assert parts.rain.is_raining() is False
        run(w, 1.5)
        assert wait_for(parts.rain.is_raining, 1.0)
        parts.relay.select(PowerSource.PANEL)
        assert wait_for(lambda: w.power_source is PowerSource.PANEL, 1.0)
        assert b.errors == 0 and b.updates > 1


def test_pin_histories_stay_bounded_over_a_long_run(world: World, bench: PinBench) -> None:
    with build_part("scale", Settings(), bench=bench) as scale:
        for _ in range(10):
            scale.read_kg()
        for _ in range(64):
            bench.update()
        assert max(len(p.states) for p in bench.pin_factory.pins.values()) <= TRIM_STATES


def test_close_is_idempotent_and_removes_the_temporary_calibration(world: World) -> None:
    b = PinBench(world, Settings())
    assert (b.state_dir / "scale_calibration.json").exists()
    b.start()
    b.close()
    b.close()
    assert not b.state_dir.exists()
    with pytest.raises(RuntimeError):
        b.start()


def test_given_state_dir_is_kept(world: World, tmp_path: Any) -> None:
    with PinBench(world, Settings(), state_dir=tmp_path) as b:
        assert b.state_dir == tmp_path
    assert (tmp_path / "scale_calibration.json").exists()


def test_wants_bench_only_for_real_drivers_with_a_simulated_wired_part() -> None:
    s = Settings()
    assert wants_bench(s) is False
    real = dataclasses.replace(s, sim=dataclasses.replace(s.sim, drivers="real"))
    assert wants_bench(real) is True
    all_pi = dataclasses.replace(
        real,
        hardware=dataclasses.replace(
            real.hardware, rain="pi", distance="pi", scale="pi", power="pi", relay="pi"
        ),
    )
    assert wants_bench(all_pi) is False


def test_bad_rate_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        PinBench(world, Settings(), rate_hz=0.0)


def test_drivers_on_a_bench_with_a_virtual_clock_debounce_and_count_charge_on_it() -> None:
    w = make("[weather]\nrain = [{ from = 1, to = 3 }]\n")
    clock = [0.0]
    s = settings(rain_debounce_s=5.0)
    with (
        PinBench(w, s, clock=lambda: clock[0]) as b,
        build_parts(s, world=w, bench=b) as parts,
    ):
        run(w, 1.5)
        b.update()
        assert parts.rain.is_raining() is True
        run(w, 2.0)
        b.update()
        clock[0] = 4.9
        assert parts.rain.is_raining() is True  # five virtual seconds of dry plate needed, not real ones
        clock[0] = 5.1
        assert parts.rain.is_raining() is False
        run(w, 2.0, ALL_ON)
        b.update()
        first = parts.power.read().soc
        clock[0] += 60.0  # one virtual minute at the same discharge current
        amps = w.power_reading().battery_a
        soc = parts.power.read().soc
        assert soc - first == pytest.approx(amps * 60.0 / (s.power.battery_mah * 3.6), rel=0.01)


def test_unwritable_state_dir_is_one_clear_error(world: World, tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ScaleError, match="pin bench: cannot write the bench scale calibration"):
        PinBench(world, Settings(), state_dir=blocker / "state")
