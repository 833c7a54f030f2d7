"""The robot's parts, declared once: the factory, the doctor, the config, the supervisor's readings and the
telemetry counters all read this table (docs/architecture.md says how to add a part)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from robot.hardware.interfaces import (
    Camera,
    GpsReceiver,
    MotorLink,
    ObstacleSensor,
    PowerMonitor,
    PowerRelay,
    RainSensor,
    SideSensors,
    SmsModem,
    StatusLcd,
    TrayScale,
)

SIM_OR_PI = ("sim", "pi")


@dataclass(frozen=True)
class PartSpec:
    """One physical part. Its name is everywhere the same: `hardware.<name>` in the config (the driver
    choice; its wiring keys start with `<name>_`), `Readings.<name>` in the supervisor, `<name>_errors` in
    the telemetry counters, the row in `ramudroid doctor`."""

    name: str
    interface: type  # the Protocol both the Pi driver and the simulated twin implement
    pi_driver: str  # "module:Class" of the real driver (imported only when built)
    twin: str  # "module:Class" of the simulated twin
    choices: tuple[str, ...] = SIM_OR_PI  # the values of hardware.<name>
    read: str | None = None  # the method the supervisor polls; None: not polled
    poll_s: float | None = None  # how often the runner polls it (its own thread)
    fields: tuple[str, ...] = ()  # the Telemetry fields its reading fills
    fresh_s: str | None = None  # the config key bounding its reading's age (older: stale, the core brakes)
    world: str | None = None  # the simulated World's method that feeds the twin
    bench: bool = False  # its real driver talks GPIO or I2C, so a pin bench can stand in for the wires
    optional: bool = False  # the robot cleans safely without it (the doctor warns, never fails)
    built: bool = True  # built by robot.hardware.factory (the Arduino link and the modem have their own)
    hint: str = ""  # the doctor's advice when it fails
    label: str = ""  # what a person calls it (the dashboard's tile titles); empty: its name


PARTS: tuple[PartSpec, ...] = (
    PartSpec(
        "gps",
        GpsReceiver,
        "robot.drivers.gps:SerialGps",
        "robot.drivers.sim:SimGps",
        read="latest",
        poll_s=0.1,
        fields=("fix",),
        fresh_s="control.gps_stale_s",
        world="gps_fix",
        label="GPS receiver",
        hint="check the UART (enable_uart=1, serial console off), hardware.gps_port and hardware.gps_baud",
    ),
    PartSpec(
        "scale",
        TrayScale,
        "robot.drivers.scale:Hx711Scale",
        "robot.drivers.sim:SimScale",
        read="read_kg",
        poll_s=0.2,
        fields=("tray_kg",),
        fresh_s="control.sensor_stale_s",
        world="tray_kg",
        bench=True,
        label="Tray scale",
        hint="check HX711 DOUT/SCK wiring; then: ramudroid scale tare / calibrate --known-kg 1.0",
    ),
    PartSpec(
        "rain",
        RainSensor,
        "robot.drivers.rain:GpioRain",
        "robot.drivers.sim:SimRain",
        read="is_raining",
        poll_s=0.1,
        fields=("raining",),
        fresh_s="control.sensor_stale_s",
        world="raining",
        bench=True,
        label="Rain sensor",
        hint="check the rain board's DO wire and hardware.rain_pin",
    ),
    PartSpec(
        "distance",
        ObstacleSensor,
        "robot.drivers.distance:GpioDistance",
        "robot.drivers.sim:SimDistance",
        read="distance_m",
        # At the control rate: an obstacle does not wait for the poll (the driver wakes the runner, which reads
        # it at once); the poll keeps the reading fresh for each tick.
        poll_s=0.05,
        fields=("distance_m",),
        fresh_s="obstacle.stale_s",
        world="distance_m",
        bench=True,
        label="Obstacle sensor",
        hint="check TRIG/ECHO wiring and the 5 V -> 3.3 V divider on ECHO",
    ),
    PartSpec(
        "side",
        SideSensors,
        "robot.drivers.distance:GpioSideDistance",
        "robot.drivers.sim:SimSideDistance",
        choices=("none", *SIM_OR_PI),
        read="distances_m",
        poll_s=0.03,
        fields=("side_left_m", "side_right_m"),
        fresh_s="obstacle.stale_s",
        world="side_distances_m",
        optional=True,  # without them the robot cleans as before: the forward sensor and its memory only
        label="Side sensors",
        hint='check both HC-SR04s\' TRIG/ECHO wiring and ECHO dividers; or hardware.side = "none"',
    ),
    PartSpec(
        "power",
        PowerMonitor,
        "robot.drivers.power:Ina219Power",
        "robot.drivers.sim:SimPower",
        read="read",
        poll_s=0.05,
        fields=("panel_w", "battery_v", "battery_soc"),
        fresh_s="control.sensor_stale_s",
        world="power_reading",
        bench=True,
        label="Power monitor",
        hint="check I2C wiring and addresses: i2cdetect -y 1 should show 40 and 41",
    ),
    PartSpec(
        "camera",
        Camera,
        "robot.drivers.camera:PiCamera",
        "robot.drivers.sim:SimCamera",
        choices=(*SIM_OR_PI, "none"),
        world="camera_jpeg",
        optional=True,
        label="Camera",
        hint='check the ribbon cable: rpicam-hello --list-cameras; or set hardware.camera = "none"',
    ),
    PartSpec(
        "relay",
        PowerRelay,
        "robot.drivers.relay:GpioRelay",
        "robot.drivers.sim:SimRelay",
        bench=True,
        label="Power relay",
        hint="check the relay board's IN wire and hardware.relay_pin",
    ),
    PartSpec(
        "lcd",
        StatusLcd,
        "robot.drivers.lcd:I2cLcd",
        "robot.drivers.sim:SimLcd",
        choices=("none", *SIM_OR_PI),
        optional=True,
        built=False,  # built on its own by the composition root: the robot runs without it
        label="Status LCD",
        hint='check SDA/SCL (GPIO 2/3), 5 V and hardware.lcd_addr (i2cdetect -y 1); or hardware.lcd = "none"',
    ),
    PartSpec(
        "arduino",
        MotorLink,
        "arduino_bridge.link:ArduinoLink",
        "arduino_bridge.sim_arduino:SimArduino",
        choices=("sim", "serial"),
        built=False,
        label="Arduino motor link",
        hint="check the USB cable and hardware.arduino_port; then: ramudroid firmware flash",
    ),
    PartSpec(
        "modem",
        SmsModem,
        "robot.gsm.modem:Sim800Modem",
        "sim.devices.modem:FakeSim800",  # a fake SIM800 on a pseudo-terminal, driven by the real driver
        choices=("none", "sim", "serial"),
        optional=True,
        built=False,
        label="GSM modem",
        hint="check its power supply (2 A peaks), TX/RX crossed, the antenna and the SIM",
    ),
)

BY_NAME: dict[str, PartSpec] = {p.name: p for p in PARTS}
POLLED: tuple[PartSpec, ...] = tuple(p for p in PARTS if p.read is not None)
# The sensors and the relay, which a simulated world feeds; every one "sim" means the robot runs in the simulator.
SENSED: tuple[str, ...] = tuple(p.name for p in PARTS if p.built)


def part(name: str) -> PartSpec:
    """The part called `name`; a clear error for any other name."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown part {name!r}; parts are {', '.join(BY_NAME)}") from None


def load_driver(ref: str) -> Any:
    """The class named by a "module:Class" reference in the table."""
    module, _, cls = ref.partition(":")
    return getattr(importlib.import_module(module), cls)
