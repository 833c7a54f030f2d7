"""Value types of the decision core: what goes in (snapshot, commands) and what comes out (decision)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from robot.core.frozen import quick_init


class PinState(NamedTuple):
    """One L298N channel: IN1, IN2 (0/1) and EN duty (0-255). 10 forward, 01 backward; 00 or 11 with EN high
    brake; EN low (0) switches the bridge off and the motor coasts."""

    in1: int
    in2: int
    en: int


# Active brake: IN1 = IN2 = 0 with EN high turns on both low-side switches of the L298N, shorting the motor, so
# a wheel resists turning (a 10 kg robot on a sloping street must not roll). Every stop uses it.
BRAKE = PinState(0, 0, 255)
# Every pin low: the bridge is off and the motor turns freely. Never used as a stop; named so tests can say it.
COAST = PinState(0, 0, 0)


@dataclass(frozen=True)
class Geometry:
    """The robot's body and drive wheels: what its motion and its collisions depend on (config [geometry])."""

    wheel_base_m: float = 0.40  # between the two rear drive wheels
    wheel_diameter_m: float = 0.10
    wheel_rpm: float = 300.0  # the drive motors' speed at full duty on 12 V
    radius_m: float = 0.35  # the body's footprint, as a circle round the middle of the drive axle

    @property
    def max_wheel_speed_mps(self) -> float:
        """Wheel rim speed at full duty: 300 RPM on a 10 cm wheel is 1.571 m/s."""
        return self.wheel_rpm / 60.0 * math.pi * self.wheel_diameter_m


class MotorOutputs(NamedTuple):
    """Pin states for all five channels, in wire order (the fields' order: the Arduino numbers them 0-4)."""

    drive_left: PinState
    drive_right: PinState
    brush_left: PinState
    brush_right: PinState
    brush_comb: PinState

    @property
    def moving(self) -> bool:
        """True when either wheel motor is powered in a direction."""
        return _powered(self.drive_left) or _powered(self.drive_right)

    @property
    def brushing(self) -> bool:
        """True when any brush motor is powered."""
        return _powered(self.brush_left) or _powered(self.brush_right) or _powered(self.brush_comb)


def _powered(p: PinState) -> bool:
    # Only 10 and 01 with EN above 0 drive a motor; 00/11 with EN high is the brake, EN 0 is coasting.
    return p.en > 0 and p.in1 != p.in2


# The one safe state: every channel actively braked (the firmware's boot and watchdog state too).
ALL_BRAKED = MotorOutputs(BRAKE, BRAKE, BRAKE, BRAKE, BRAKE)


class Mode(StrEnum):
    """The operator's choice of what the robot should be doing."""

    AUTO = "auto"
    MANUAL = "manual"
    PAUSED = "paused"


class State(StrEnum):
    """What the robot is doing now, as decided by the core; shown on the dashboard and in alerts."""

    ESTOP = "estop"
    FAULT = "fault"
    CRITICAL_BATTERY = "critical_battery"
    CRITICAL_PARKING = "critical_parking"
    OBSTACLE_STOP = "obstacle_stop"
    ESCAPING = "escaping"
    STUCK = "stuck"
    MANUAL = "manual"
    PAUSED = "paused"
    SHELTERING = "sheltering"
    SHELTERED = "sheltered"
    LOW_BATTERY = "low_battery"
    NIGHT = "night"
    WAITING_FOR_SUN = "waiting_for_sun"
    TRAY_FULL = "tray_full"
    OUTSIDE_FENCE = "outside_fence"
    GPS_WAIT = "gps_wait"
    ROUTE_DONE = "route_done"
    CLEANING = "cleaning"


class Goal(StrEnum):
    """Where navigation should take the robot; HOLD means stay put."""

    HOLD = "hold"
    ROUTE = "route"
    SHELTER = "shelter"
    PARK = "park"


class PowerSource(StrEnum):
    """Which source the power relay connects to the loads."""

    PANEL = "panel"
    BATTERY = "battery"


class Severity(StrEnum):
    """How urgent an alert is; CRITICAL alerts also go out by SMS."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person should hear about: raised once per event, delivered through the one outbox."""

    kind: str
    severity: Severity
    message: str
    at: float


class CommandKind(StrEnum):
    """Operator commands, from the dashboard, SMS or CLI, all through the one command queue."""

    SET_MODE = "set_mode"
    DRIVE = "drive"
    ESTOP = "estop"
    RESET = "reset"
    TRAY_EMPTIED = "tray_emptied"


@dataclass(frozen=True, slots=True)
class Command:
    """One operator command; `left`/`right` are wheel speeds in [-1, 1] for DRIVE."""

    kind: CommandKind
    at: float
    mode: Mode | None = None
    left: float = 0.0
    right: float = 0.0
    source: str = "local"


@quick_init
@dataclass(frozen=True, slots=True)
class Guidance:
    """Navigation's answer for the current goal: wheel speeds in [-1, 1] and what it knows about position."""

    left: float = 0.0
    right: float = 0.0
    gps_ok: bool = False
    inside_fence: bool = True
    arrived: bool = False
    route_done: bool = False
    reason: str = "no guidance"
    # Remembered obstacles on this command's path, as the forward sensor would read them (None: none known).
    path_clear_m: float | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the core may look at in one step. Times are the supervisor's monotonic seconds.

    A `*_t` field is when that reading was taken (None: never); the core judges staleness itself.
    """

    distance_m: float | None = None
    distance_t: float | None = None
    # The side sensors (hardware.side), when fitted: metres on the left and the right (None: no echo).
    side_left_m: float | None = None
    side_right_m: float | None = None
    side_t: float | None = None
    camera_obstacle: bool = False
    tray_kg: float | None = None
    tray_t: float | None = None
    raining: bool | None = None
    rain_t: float | None = None
    panel_w: float | None = None
    battery_v: float | None = None
    battery_soc: float | None = None
    battery_a: float | None = None  # positive = charging
    power_t: float | None = None
    sun_elevation_deg: float | None = None  # from GPS time and position; None while the time is unknown
    can_sleep: bool = False  # a wake alarm is set up, so the Pi may power down for the night
    link_ok: bool = False
    guidance: Guidance | None = None
    guidance_t: float | None = None
    commands: tuple[Command, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Decision:
    """The core's output for one step: apply the motors and relay, send the alerts, show the reason."""

    state: State
    mode: Mode
    motors: MotorOutputs
    power: PowerSource
    goal: Goal
    reason: str
    alerts: tuple[Alert, ...] = field(default=())
    power_down: str = ""  # why the Pi should power down now ("critical_battery", "night"); "" = stay up
