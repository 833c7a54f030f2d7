"""Builds every part from the settings: the real Pi driver ("pi") or its simulated twin ("sim"), as the parts
table (robot/parts.py) names them; this module only knows each driver's constructor arguments.

With a pin bench (sim.devices.bench.PinBench, used when sim.drivers = "real"), the wired parts set to "sim"
are built as the real drivers on the bench's mock pins and fake I2C bus instead of as twins.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from robot.config import Settings
from robot.hardware.interfaces import (
    Camera,
    GpsReceiver,
    ObstacleSensor,
    PowerMonitor,
    PowerRelay,
    RainSensor,
    SideSensors,
    TrayScale,
)
from robot.parts import PARTS, SENSED, PartSpec, load_driver, part

PART_NAMES = SENSED
# Parts whose real driver talks GPIO or I2C, so a pin bench can stand in for the wires.
BENCH_PARTS = frozenset(p.name for p in PARTS if p.bench)


@dataclass
class Parts:
    """Every sensor and the relay, opened; close() closes them all."""

    gps: GpsReceiver
    scale: TrayScale
    rain: RainSensor
    distance: ObstacleSensor
    power: PowerMonitor
    camera: Camera | None
    relay: PowerRelay
    side: SideSensors | None = None  # optional (hardware.side = "none")

    def close(self) -> None:
        """Close every part (each close is idempotent), even when one of them fails to close."""
        for f in fields(self):
            part = getattr(self, f.name)
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _source(world: Any, spec: PartSpec) -> dict[str, Any]:
    """The world's method that feeds the part's twin (the table's `world`), as the twin's `source` argument."""
    fn = getattr(world, spec.world, None) if world is not None and spec.world else None
    return {"source": fn} if callable(fn) else {}


def build_part(
    name: str,
    settings: Settings,
    *,
    world: Any = None,
    wake: Callable[[], None] | None = None,
    bench: Any = None,
) -> Any:
    """One part by name (PART_NAMES, or "lcd": the status display, built on its own because the robot runs
    without it); the camera and the LCD may be None ("none"). Raises HardwareError subclasses.

    With `bench` (a PinBench), a wired part set to "sim" is the real driver on the bench's pins or bus."""
    spec = part(name)
    if name not in (*PART_NAMES, "lcd"):
        raise ValueError(f"part {name!r} is not built here: see its `built` in robot/parts.py")
    hw = settings.hardware
    kind = getattr(hw, name)
    on_bench = bench is not None and kind == "sim" and name in BENCH_PARTS
    # None lets a "pi" part find the machine's own GPIO; the bench's MockFactory otherwise.
    pins = bench.pin_factory if on_bench else None
    # A bench on a virtual clock times the drivers' debounce, staleness and charge counting on it too.
    timed: dict[str, Any] = {"clock": bench.clock} if on_bench and bench.clock is not None else {}
    if on_bench:
        kind = "pi"
    if kind == "none":
        return None
    cls = load_driver(spec.pi_driver if kind == "pi" else spec.twin)
    src = _source(world, spec)
    if name == "gps":
        if kind == "pi":
            return cls(hw.gps_port, hw.gps_baud, stale_s=settings.control.gps_stale_s)
        return cls(**src)
    if name == "scale":
        if kind == "pi":
            state = bench.state_dir if on_bench else settings.robot.state_dir
            return cls(hw.scale_dout_pin, hw.scale_sck_pin, state, pin_factory=pins)
        return cls(**src)
    if name == "rain":
        if kind == "pi":
            return cls(
                hw.rain_pin,
                active_low=hw.rain_active_low,
                debounce_s=hw.rain_debounce_s,
                on_change=wake,
                pin_factory=pins,
                **timed,
            )
        return cls(**src, on_change=wake)
    if name == "distance":
        stop = settings.obstacle.stop_distance_m
        if kind == "pi":
            return cls(
                hw.distance_trigger_pin,
                hw.distance_echo_pin,
                max_distance_m=hw.distance_max_m,
                stop_distance_m=stop,
                stale_s=settings.obstacle.stale_s,
                ping_gap_s=hw.distance_ping_gap_s,
                on_change=wake,
                pin_factory=pins,
                **timed,
            )
        return cls(**src, stop_distance_m=stop, on_change=wake)
    if name == "side":
        near = settings.obstacle.side_near_m
        if kind == "pi":
            return cls(
                (hw.side_left_trigger_pin, hw.side_left_echo_pin),
                (hw.side_right_trigger_pin, hw.side_right_echo_pin),
                max_distance_m=hw.distance_max_m,
                stop_distance_m=near,
                stale_s=settings.obstacle.stale_s,
                ping_gap_s=hw.distance_ping_gap_s,  # the same gap as the forward one: one setting for the three
                on_change=wake,
                pin_factory=pins,
                **timed,
            )
        return cls(**src, stop_distance_m=near, on_change=wake)
    if name == "power":
        if kind == "pi":
            return cls(
                bus_number=hw.power_i2c_bus,
                panel_addr=hw.power_panel_addr,
                battery_addr=hw.power_battery_addr,
                battery_mah=settings.power.battery_mah,
                battery_nominal_v=settings.power.battery_nominal_v,
                panel_shunt_ohms=hw.power_panel_shunt_ohms,
                battery_shunt_ohms=hw.power_battery_shunt_ohms,
                battery_charge_positive=hw.power_battery_charge_positive,
                bus=bench.bus if on_bench else None,
                **timed,
            )
        return cls(**src)
    if name == "camera":
        if kind == "pi":
            return cls(hw.camera_width, hw.camera_height)
        return cls(**src, width=hw.camera_width, height=hw.camera_height)
    if name == "lcd":
        if kind == "pi":
            return cls(bus_number=hw.lcd_i2c_bus, address=hw.lcd_addr)
        return cls()
    if name == "relay":
        if kind == "pi":
            return cls(hw.relay_pin, active_high=hw.relay_active_high, pin_factory=pins)
        return cls()
    raise AssertionError(f"part {name!r}: robot/parts.py lists it as built, but no constructor here")


def build_parts(
    settings: Settings,
    *,
    world: Any = None,
    wake: Callable[[], None] | None = None,
    bench: Any = None,
) -> Parts:
    """Open every configured part. `world` (the simulator's) may offer gps_fix(), tray_kg(), raining(),
    distance_m(), power_reading(), camera_jpeg() to feed the twins; `wake` is called from a driver's thread
    when rain starts or an obstacle comes inside the stop distance. With `bench` (a PinBench), the "sim"
    scale, rain, distance, power and relay are the real drivers on the bench (gps and camera stay twins);
    the bench must outlive the parts: close the parts first. On any failure the parts opened so far are
    closed and the error (a HardwareError) is raised."""
    built: dict[str, Any] = {}
    try:
        for name in PART_NAMES:
            built[name] = build_part(name, settings, world=world, wake=wake, bench=bench)
    except BaseException:
        for part in built.values():
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        raise
    return Parts(**built)
