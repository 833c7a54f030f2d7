"""Configuration: one TOML file loaded into frozen, typed, range-checked settings (checked by pydantic).

Defaults come from the robot's real figures (design notes): tray 2.0 kg, panel 60 Wp, battery 11.1 V 2200 mAh.
Every key is documented in deploy/ramudroid.example.toml; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from robot import schema
from robot.core.types import Geometry
from robot.errors import ConfigError
from robot.parts import SENSED, part

SECRET_KEYS = frozenset(
    {"token", "pin", "password", "password_hash", "ntrip_password", "command_key", "master_key"}
)


SPEED_OF_SOUND_M_S = 343.26  # gpiozero's figure, which the distance driver times echoes with
HCSR04_TIMEOUT_S = 0.038  # a real HC-SR04 holds its echo line this long when nothing answers


def _f(default: Any, lo: float | None = None, hi: float | None = None, choices: tuple[Any, ...] = ()) -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices})


@dataclass(frozen=True)
class RobotSettings:
    """Who the robot is and where it keeps its state."""

    name: str = _f("ramudroid-1")
    state_dir: str = _f("~/.local/state/ramudroid")
    site: str = _f("")  # GeoJSON site file; empty = the bundled demo site


@dataclass(frozen=True)
class ControlSettings:
    """The supervisor loop and manual driving."""

    rate_hz: float = _f(20.0, 5.0, 100.0)
    deadman_s: float = _f(0.5, 0.1, 2.0)
    cruise_duty: int = _f(180, 60, 255)
    turn_duty: int = _f(140, 60, 255)
    manual_max_duty: int = _f(200, 60, 255)
    brush_duty: int = _f(255, 60, 255)
    sensor_stale_s: float = _f(2.0, 0.2, 30.0)
    fault_clear_s: float = _f(2.0, 0.0, 60.0)
    gps_stale_s: float = _f(2.0, 0.2, 30.0)
    gps_alert_s: float = _f(60.0, 1.0, 3600.0)
    start_mode: str = _f("auto", choices=("auto", "manual", "paused"))
    resume_after_restart: bool = _f(True)
    route_passes: int = _f(0, 0, 1000)
    # Seconds between full steps while the robot stands braked with nothing to do (parked, sheltered, paused,
    # e-stopped: docs/behaviour.md, "Idle stepping"); the ticks between keep the link's frames and wake on any
    # event. 0 = a full step every tick.
    idle_step_s: float = _f(1.0, 0.0, 2.0)


@dataclass(frozen=True)
class ObstacleSettings:
    """Obstruction stop and the escape manoeuvre."""

    stop_distance_m: float = _f(0.5, 0.1, 3.0)
    clear_distance_m: float = _f(0.8, 0.15, 4.0)
    # Seconds. The one age limit of the forward distance, read by both its users: the core brakes when the
    # newest reading is older, and the distance driver counts only pings younger than this. A ping cycle is
    # hardware.distance_ping_gap_s plus the echo (at most 2 x distance_max_m at the speed of sound; a real
    # HC-SR04 with nothing in range times out after about 38 ms): 32-68 ms at the defaults, so 0.3 s (the least
    # allowed) holds 4-9 pings; a check below keeps at least 3 cycles for the two-ping stop.
    stale_s: float = _f(0.3, 0.3, 2.0)
    clear_wait_s: float = _f(3.0, 0.0, 60.0)
    backoff_s: float = _f(1.5, 0.2, 10.0)
    turn_s: float = _f(1.2, 0.2, 10.0)
    max_tries: int = _f(3, 1, 10)
    stuck_retry_s: float = _f(600.0, 10.0, 86400.0)
    stuck_retries: int = _f(3, 0, 100)
    # Where the site declares a wall at the shelter or park, arrival ends with the forward sensor reading this.
    wall_stop_m: float = _f(1.0, 0.2, 3.5)
    # With side sensors (hardware.side): something closing in on a side sensor faster than the robot's own motion
    # explains, within this range, brakes the robot (a person walking into its path) ...
    side_stop_m: float = _f(1.0, 0.2, 3.0)
    # ... and anything at all nearer than this (the body is about to touch it).
    side_near_m: float = _f(0.25, 0.05, 1.0)


@dataclass(frozen=True)
class TraySettings:
    """The litter tray on its load cell."""

    capacity_kg: float = _f(2.0, 0.2, 10.0)
    full_fraction: float = _f(0.95, 0.5, 1.0)
    empty_kg: float = _f(0.2, 0.0, 5.0)
    filter_s: float = _f(2.0, 0.0, 30.0)


@dataclass(frozen=True)
class RainSettings:
    """Shelter in rain."""

    dry_s: float = _f(600.0, 10.0, 7200.0)
    min_shelter_s: float = _f(900.0, 0.0, 7200.0)
    confirm_s: float = _f(1.0, 0.0, 120.0)


@dataclass(frozen=True)
class PowerSettings:
    """Panel, battery, switchover, battery protection, night and the planned power-down."""

    panel_wp: float = _f(60.0, 1.0, 1000.0)
    battery_nominal_v: float = _f(11.1, 3.0, 60.0)
    battery_mah: float = _f(2200.0, 100.0, 100000.0)
    base_w: float = _f(2.8, 0.1, 50.0)
    drive_motor_w: float = _f(12.0, 0.0, 500.0)
    brush_motor_w: float = _f(2.0, 0.0, 200.0)
    panel_margin: float = _f(1.25, 1.0, 3.0)
    switch_dwell_s: float = _f(60.0, 0.0, 3600.0)
    panel_return_s: float = _f(1800.0, 0.0, 86400.0)
    shade_w: float = _f(15.0, 0.0, 1000.0)
    night_w: float = _f(2.0, 0.0, 100.0)
    night_dwell_s: float = _f(300.0, 0.0, 7200.0)
    reserve_soc: float = _f(0.50, 0.0, 1.0)
    reserve_dwell_s: float = _f(120.0, 0.0, 7200.0)
    low_soc: float = _f(0.25, 0.05, 0.9)
    resume_soc: float = _f(0.70, 0.1, 1.0)
    critical_soc: float = _f(0.10, 0.0, 0.5)
    critical_v: float = _f(9.6, 6.0, 14.0)
    critical_drive_s: float = _f(120.0, 0.0, 1800.0)
    night_sleep: bool = _f(True)
    wake_sun_deg: float = _f(8.0, -6.0, 45.0)
    wake_retry_s: float = _f(3600.0, 300.0, 86400.0)
    poweroff_command: tuple[str, ...] = ("systemctl", "poweroff")
    wake_command: tuple[str, ...] = ("rtcwake", "-m", "no", "-u", "-t", "{epoch}")
    flush_timeout_s: float = _f(60.0, 0.0, 600.0)


@dataclass(frozen=True)
class HardwareSettings:
    """Which driver each part uses ("pi" = real, "sim" = simulated twin; choices from robot.parts), and the
    wiring."""

    arduino: str = _f("sim", choices=part("arduino").choices)
    arduino_port: str = _f("/dev/ramudroid-arduino")  # stable names from deploy/99-ramudroid.rules
    arduino_baud: int = _f(115200, 9600, 2000000)
    arduino_watchdog_ms: int = _f(300, 50, 1000)
    gps: str = _f("sim", choices=part("gps").choices)
    gps_port: str = _f("/dev/ramudroid-gps")  # GPIO 14/15 (UART0), or a u-blox on USB
    gps_baud: int = _f(9600, 4800, 921600)
    scale: str = _f("sim", choices=part("scale").choices)
    scale_dout_pin: int = _f(5, 0, 27)
    scale_sck_pin: int = _f(6, 0, 27)
    rain: str = _f("sim", choices=part("rain").choices)
    rain_pin: int = _f(17, 0, 27)
    rain_active_low: bool = _f(True)
    rain_debounce_s: float = _f(2.0, 0.0, 60.0)
    distance: str = _f("sim", choices=part("distance").choices)
    distance_trigger_pin: int = _f(23, 0, 27)
    distance_echo_pin: int = _f(24, 0, 27)
    distance_max_m: float = _f(4.0, 0.5, 6.0)
    # Seconds from one ping's end (its echo, or the sensor's timeout) to the next ping. The HC-SR04 data sheet
    # suggests a 60 ms cycle; NewPing's floor is 29 ms (docs/performance.md says why 30 ms is safe here).
    distance_ping_gap_s: float = _f(0.03, 0.03, 0.2)
    # Two more HC-SR04s at the front corners, looking out this many degrees either side of the nose: they see
    # a passer-by walking into the robot's side, which the forward sensor's 15 degrees cannot. Optional.
    side: str = _f("none", choices=part("side").choices)
    side_left_trigger_pin: int = _f(16, 0, 27)
    side_left_echo_pin: int = _f(20, 0, 27)
    side_right_trigger_pin: int = _f(19, 0, 27)
    side_right_echo_pin: int = _f(26, 0, 27)
    side_bearing_deg: float = _f(50.0, 20.0, 90.0)
    power: str = _f("sim", choices=part("power").choices)
    power_i2c_bus: int = _f(1, 0, 10)
    power_panel_addr: int = _f(0x40, 0x03, 0x77)
    power_battery_addr: int = _f(0x41, 0x03, 0x77)
    power_panel_shunt_ohms: float = _f(0.1, 0.001, 1.0)
    power_battery_shunt_ohms: float = _f(0.1, 0.001, 1.0)
    power_battery_charge_positive: bool = _f(True)
    camera: str = _f("sim", choices=part("camera").choices)
    camera_width: int = _f(640, 160, 2592)
    camera_height: int = _f(480, 120, 1944)
    relay: str = _f("sim", choices=part("relay").choices)
    relay_pin: int = _f(27, 0, 27)
    relay_active_high: bool = _f(True)
    modem: str = _f("none", choices=part("modem").choices)
    modem_port: str = _f("/dev/ramudroid-gsm")  # GPIO 12/13 (second UART), or a USB-TTL adapter
    modem_baud: int = _f(115200, 1200, 921600)
    lcd: str = _f("sim", choices=part("lcd").choices)
    lcd_i2c_bus: int = _f(1, 0, 10)
    lcd_addr: int = _f(0x27, 0x03, 0x77)


_GEOMETRY = Geometry()  # the core's default body


@dataclass(frozen=True)
class GeometrySettings:
    """The robot's body and drive wheels, for navigation and the simulator (defaults: robot.core.types.Geometry)."""

    # From an instance, not the class: compiled (`ramudroid accel`), a field on the class is a slot descriptor.
    wheel_base_m: float = _f(_GEOMETRY.wheel_base_m, 0.1, 2.0)
    wheel_diameter_m: float = _f(_GEOMETRY.wheel_diameter_m, 0.02, 1.0)
    wheel_rpm: float = _f(_GEOMETRY.wheel_rpm, 10.0, 3000.0)
    radius_m: float = _f(_GEOMETRY.radius_m, 0.1, 3.0)

    def body(self) -> Geometry:
        """As the core's Geometry."""
        return Geometry(self.wheel_base_m, self.wheel_diameter_m, self.wheel_rpm, self.radius_m)


RECEIVERS = ("cheap", "sbas", "rtk")


@dataclass(frozen=True)
class GpsSettings:
    """The GPS receiver's class: navigation sizes its fence margin, look-ahead and arrival tolerances by it."""

    # "cheap": a 2.5 m CEP module (NEO-6M class); "sbas": one using SBAS/DGPS corrections (about 1 m);
    # "rtk": a u-blox F9P-class rover fed RTCM corrections (GGA quality 4/5, centimetres).
    receiver: str = _f("cheap", choices=RECEIVERS)
    # One-axis error in metres at HDOP 1 when the receiver sends no GST; 0 = the profile's own figure.
    uere_m: float = _f(0.0, 0.0, 20.0)
    # With the rtk profile: refuse to drive on anything worse than an RTK float fix for this long (then wait).
    rtk_required: bool = _f(True)


@dataclass(frozen=True)
class RtcmSettings:
    """RTCM corrections for an RTK receiver, passed through to its serial port unchanged."""

    source: str = _f("none", choices=("none", "ntrip", "serial"))
    ntrip_host: str = _f("")
    ntrip_port: int = _f(2101, 1, 65535)
    ntrip_mountpoint: str = _f("")
    ntrip_user: str = _f("")
    ntrip_password: str = _f("")
    ntrip_version: int = _f(2, 1, 2)
    gga_interval_s: float = _f(10.0, 0.0, 600.0)  # VRS casters need our position; 0 = never send it
    serial_port: str = _f("/dev/ttyUSB1")
    serial_baud: int = _f(57600, 1200, 921600)


@dataclass(frozen=True)
class SmsSettings:
    """GSM alerts and commands."""

    alert_numbers: tuple[str, ...] = ()
    trusted_numbers: tuple[str, ...] = ()
    pin: str = _f(
        ""
    )  # every SMS command but STOP and STATUS must start with it; 6+ digits when commands are on
    commands: tuple[str, ...] = ("STATUS", "STOP", "RESET", "AUTO", "PAUSE", "EMPTIED")
    country_code: str = _f("91")  # added to national numbers (India by default)
    coalesce_s: float = _f(600.0, 0.0, 86400.0)
    poll_s: float = _f(5.0, 1.0, 300.0)


@dataclass(frozen=True)
class WebSettings:
    """The dashboard."""

    enabled: bool = _f(True)
    host: str = _f("127.0.0.1")
    port: int = _f(8080, 1, 65535)
    password_hash: str = _f("")  # from `ramudroid passwd`; required to listen beyond this machine
    session_s: float = _f(43200.0, 60.0, 30 * 86400.0)
    estop_port: int = _f(8081, 0, 65535)  # the separate e-stop listener; 0 = none
    allowed_hosts: tuple[
        str, ...
    ] = ()  # extra names the dashboard answers to (besides IPs and this host's name)
    token: str = _f("")  # for scripts: "Authorization: Bearer TOKEN" instead of a login


@dataclass(frozen=True)
class MqttSettings:
    """The robot's link to an MQTT broker (telemetry, alerts, commands, Home Assistant discovery)."""

    enabled: bool = _f(False)
    host: str = _f("localhost")
    port: int = _f(1883, 1, 65535)
    username: str = _f("")
    password: str = _f("")
    tls: bool = _f(False)
    ca_file: str = _f("")  # empty with tls = the system's CA store
    cert_file: str = _f("")  # client certificate, when the broker wants one
    key_file: str = _f("")
    keepalive_s: int = _f(30, 5, 600)
    topic_prefix: str = _f("ramudroid")
    telemetry_s: float = _f(1.0, 0.2, 60.0)
    command_key: str = _f("")  # per-robot HMAC key; empty = only the e-stop is taken from MQTT
    command_window_s: float = _f(30.0, 2.0, 600.0)
    discovery: bool = _f(True)
    discovery_prefix: str = _f("homeassistant")
    ha_commands: bool = _f(False)
    spool_max: int = _f(10000, 100, 1000000)


@dataclass(frozen=True)
class FleetSettings:
    """`ramudroid fleet`: the fleet page, reading every robot from the broker in [mqtt]."""

    host: str = _f("127.0.0.1")
    port: int = _f(8090, 1, 65535)
    password_hash: str = _f("")  # from `ramudroid fleet passwd`; empty = only e-stops from the page
    master_key: str = _f("")  # robots' command keys are derived from it (`ramudroid mqtt key NAME`)
    session_s: float = _f(43200.0, 60.0, 2592000.0)
    stale_s: float = _f(10.0, 2.0, 3600.0)


@dataclass(frozen=True)
class SimSettings:
    """The simulator used when no hardware is configured."""

    scenario: str = _f("sunny_day")
    speed: float = _f(1.0, 0.1, 10000.0)
    seed: int = _f(1, 0, 2**31)
    drivers: str = _f("twins", choices=("twins", "real"))


@dataclass(frozen=True)
class Settings:
    """The whole configuration."""

    robot: RobotSettings = field(default_factory=RobotSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    obstacle: ObstacleSettings = field(default_factory=ObstacleSettings)
    tray: TraySettings = field(default_factory=TraySettings)
    rain: RainSettings = field(default_factory=RainSettings)
    power: PowerSettings = field(default_factory=PowerSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    geometry: GeometrySettings = field(default_factory=GeometrySettings)
    gps: GpsSettings = field(default_factory=GpsSettings)
    rtcm: RtcmSettings = field(default_factory=RtcmSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    web: WebSettings = field(default_factory=WebSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    sim: SimSettings = field(default_factory=SimSettings)

    @property
    def sensors_sim(self) -> bool:
        """True when every sensor is simulated (the Arduino and the modem may still be real or fake devices)."""
        hw = self.hardware
        return all(getattr(hw, p) in ("sim", "none") for p in SENSED)

    @property
    def all_sim(self) -> bool:
        """True when no real hardware is configured."""
        hw = self.hardware
        return hw.arduino == "sim" and all(getattr(hw, p) in ("sim", "none") for p in (*SENSED, "modem"))


# Keys that moved to another section: one setting has one place (issue 12).
MOVED = {"hardware.gps_stale_s": "control.gps_stale_s"}


@functools.cache
def _model(cls: type) -> type[BaseModel]:
    """A pydantic model mirroring the settings dataclass `cls`: its keys, types, ranges and choices; no others.
    Defaults stay with the dataclass: the model only checks the keys a file gives."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        nested = isinstance(typ, type) and dataclasses.is_dataclass(typ)
        meta = dict(f.metadata)
        kind = (
            _model(typ)
            if nested
            else schema.checked(typ, meta.get("lo"), meta.get("hi"), meta.get("choices") or ())
        )
        fields[f.name] = (kind, None)
    return schema.table(cls.__name__ + "File", **fields)


def _first_error(err: ValidationError, data: dict[str, Any]) -> str:
    """Today's one line for the first mistake in the file's own order."""
    where, what = schema.first_mistake(err, data, _model(Settings))
    return schema.dotted(where) + what


def _build(cls: type, data: dict[str, Any]) -> Any:
    """The settings dataclass from already validated data (nested tables become their dataclasses)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        typ = hints[key]
        nested = isinstance(typ, type) and dataclasses.is_dataclass(typ)
        kwargs[key] = _build(typ, value) if nested else value
    return cls(**kwargs)


def _validate(data: dict[str, Any]) -> Settings:
    """Check the file's keys, types, ranges and choices with pydantic; one clear line for the first mistake."""
    for section, table in data.items():
        for key in table if isinstance(table, dict) else ():
            dotted = f"{section}.{key}"
            if dotted in MOVED:
                raise ConfigError(f"{dotted}: moved; set {MOVED[dotted]} instead (one value for both)")
    try:
        checked = _model(Settings).model_validate(data)
    except ValidationError as err:
        raise ConfigError(_first_error(err, data)) from None
    except RecursionError as err:
        raise ConfigError("configuration nested too deeply") from err
    return typing.cast(Settings, _build(Settings, checked.model_dump(exclude_unset=True)))


def _cross_check(s: Settings) -> None:
    c = s.control
    if 0.0 < c.idle_step_s < 1.0 / c.rate_hz:
        raise ConfigError(
            f"control.idle_step_s = {c.idle_step_s}: must be 0 (off) or at least one control period "
            f"(1 / control.rate_hz = {1.0 / c.rate_hz:.3f} s); the default is 1.0"
        )
    if s.obstacle.clear_distance_m <= s.obstacle.stop_distance_m:
        raise ConfigError(
            f"obstacle.clear_distance_m = {s.obstacle.clear_distance_m}: must be greater than "
            f"obstacle.stop_distance_m ({s.obstacle.stop_distance_m}) so the stop has hysteresis"
        )
    if s.obstacle.wall_stop_m <= s.obstacle.clear_distance_m:
        raise ConfigError(
            f"obstacle.wall_stop_m = {s.obstacle.wall_stop_m}: must be greater than obstacle.clear_distance_m "
            f"({s.obstacle.clear_distance_m}) so the wall the robot stops at is never taken for an obstacle"
        )
    hw = s.hardware
    cycle_s = hw.distance_ping_gap_s + max(2.0 * hw.distance_max_m / SPEED_OF_SOUND_M_S, HCSR04_TIMEOUT_S)
    if s.obstacle.stale_s < 3.0 * cycle_s:
        raise ConfigError(
            f"obstacle.stale_s = {s.obstacle.stale_s}: must hold at least 3 ping cycles of the distance sensor "
            f"({3.0 * cycle_s:.3f} s at hardware.distance_ping_gap_s = {hw.distance_ping_gap_s} and "
            f"distance_max_m = {hw.distance_max_m}), or its two-ping stop turns into a one-ping stop; raise "
            "obstacle.stale_s or lower the gap"
        )
    if s.obstacle.side_near_m >= s.obstacle.side_stop_m:
        raise ConfigError(
            f"obstacle.side_near_m = {s.obstacle.side_near_m}: must be below obstacle.side_stop_m "
            f"({s.obstacle.side_stop_m}): the near limit is the inner of the two side ranges"
        )
    if s.tray.empty_kg >= s.tray.capacity_kg * s.tray.full_fraction:
        raise ConfigError(
            f"tray.empty_kg = {s.tray.empty_kg}: must be below the full threshold "
            f"({s.tray.capacity_kg * s.tray.full_fraction:.2f} kg = capacity_kg x full_fraction)"
        )
    p = s.power
    if p.night_w >= p.shade_w:
        raise ConfigError(f"power.night_w = {p.night_w}: must be below power.shade_w ({p.shade_w})")
    if not p.critical_soc < p.low_soc < p.resume_soc:
        raise ConfigError(
            f"power.low_soc = {p.low_soc}: need critical_soc ({p.critical_soc}) < low_soc < resume_soc ({p.resume_soc})"
        )
    if not p.critical_soc < p.reserve_soc < p.resume_soc:
        raise ConfigError(
            f"power.reserve_soc = {p.reserve_soc}: need critical_soc ({p.critical_soc}) < reserve_soc < "
            f"resume_soc ({p.resume_soc})"
        )
    if not p.poweroff_command or not all(p.poweroff_command):
        raise ConfigError(
            f'power.poweroff_command = {list(p.poweroff_command)!r}: give the command as a list, like ["systemctl", "poweroff"]'
        )
    if s.rtcm.source == "ntrip" and not (s.rtcm.ntrip_host and s.rtcm.ntrip_mountpoint):
        raise ConfigError(
            "rtcm.source = 'ntrip' needs rtcm.ntrip_host and rtcm.ntrip_mountpoint (ask your caster for them)"
        )
    if s.rtcm.source != "none" and s.hardware.gps != "pi":
        raise ConfigError(
            f"rtcm.source = {s.rtcm.source!r}: corrections go to a real receiver; set hardware.gps = 'pi' "
            "(the simulator models the rtk profile's corrections itself)"
        )
    if not (s.sms.country_code.isdigit() and 1 <= len(s.sms.country_code) <= 3):
        raise ConfigError(f'sms.country_code = {s.sms.country_code!r}: expected 1 to 3 digits, like "91"')
    for n in (*s.sms.alert_numbers, *s.sms.trusted_numbers):
        digits = n[1:] if n.startswith("+") else n
        if not digits.isdigit() or not 6 <= len(digits) <= 15:
            raise ConfigError(f"sms number {n!r}: expected an international number like +919876543210")
    from robot.gsm.sms import policy_error

    problem = policy_error(s.sms.trusted_numbers, s.sms.pin, s.sms.commands)
    if problem:
        raise ConfigError(problem)


def is_loopback(host: str) -> bool:
    """True when `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_web(w: WebSettings) -> None:
    from robot.passwords import HashFormatError, parse_hash

    if w.password_hash:
        try:
            parse_hash(w.password_hash)
        except HashFormatError as err:
            raise ConfigError(f"web.password_hash: {err}; run `ramudroid passwd` and paste its line") from err
    if w.enabled and not w.password_hash and not is_loopback(w.host):
        raise ConfigError(
            f"web.host = {w.host!r} makes the dashboard reachable from the network, but web.password_hash is "
            'not set: run `ramudroid passwd` and paste its line under [web], or keep web.host = "127.0.0.1"'
        )
    if w.estop_port and w.estop_port == w.port:
        raise ConfigError(f"web.estop_port = {w.estop_port}: must differ from web.port (or be 0 for none)")


def _check_mqtt(s: Settings) -> None:
    m = s.mqtt
    for key, value in (("mqtt.topic_prefix", m.topic_prefix), ("mqtt.discovery_prefix", m.discovery_prefix)):
        if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", value):
            raise ConfigError(
                f"{key} = {value!r}: expected topic levels of letters, digits, '_' or '-' (no '+', '#' or spaces)"
            )
    if m.enabled and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", s.robot.name):
        raise ConfigError(
            f"robot.name = {s.robot.name!r}: with [mqtt] enabled the name is a topic level: use letters, "
            "digits, '_' and '-' (up to 64), starting with a letter or digit"
        )
    for key, value in (("mqtt.command_key", m.command_key), ("fleet.master_key", s.fleet.master_key)):
        if value and len(value) < 32:
            raise ConfigError(
                f"{key}: {len(value)} characters is too short to resist guessing; use at least 32 "
                "(`ramudroid mqtt key NAME` derives one)"
            )
    if m.cert_file and not m.key_file:
        raise ConfigError(
            "mqtt.cert_file is set but mqtt.key_file is empty: the client certificate needs its key"
        )


def from_dict(data: dict[str, Any]) -> Settings:
    """Build settings from parsed TOML; raises ConfigError with one clear line."""
    settings = _validate(data)
    _cross_check(settings)
    _check_web(settings.web)
    _check_mqtt(settings)
    return settings


def load(path: str | Path | None) -> Settings:
    """Load a TOML file (None: all defaults, i.e. the simulator)."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config file {p}: cannot read it ({err.strerror}); check the path") from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {p}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "save it as UTF-8"
        ) from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {p}: not valid TOML ({err})") from err
    except RecursionError as err:
        raise ConfigError(f"config file {p}: nested too deeply to be a configuration") from err
    return from_dict(data)


def as_dict(settings: Any, hide_secrets: bool = True) -> dict[str, Any]:
    """The effective settings as nested dicts, secrets replaced by '***' when set."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        v = getattr(settings, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = as_dict(v, hide_secrets)
        elif hide_secrets and f.name in SECRET_KEYS and v:
            out[f.name] = "***"
        else:
            out[f.name] = v
    return out


def to_toml(d: dict[str, Any]) -> str:
    """Render nested settings as TOML (tables one level deep)."""
    lines: list[str] = []
    for section, values in d.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
