"""The decision step: `step(state, snapshot, now, cfg) -> (state, decision)`. Pure: no I/O, no clock, no sleep."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from robot.core import side as side_rule
from robot.core.rules import TABLE, Rule, Wheels
from robot.core.types import (
    ALL_BRAKED,
    BRAKE,
    Alert,
    CommandKind,
    Decision,
    Goal,
    Mode,
    MotorOutputs,
    PinState,
    PowerSource,
    Severity,
    Snapshot,
    State,
)

INF = math.inf
TRIES_RESET_S = 20.0  # clear driving this long forgives earlier escape tries
GUIDANCE_STALE_S = 1.0
DEADBAND = 0.05
SUN_DOWN_DEG = 0.0  # night needs the sun below the horizon when its position is known


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The figures the core needs, flattened from the settings."""

    deadman_s: float = 0.5
    cruise_duty: int = 180
    turn_duty: int = 140
    manual_max_duty: int = 200
    brush_duty: int = 255
    sensor_stale_s: float = 2.0
    fault_clear_s: float = 2.0
    gps_alert_s: float = 60.0
    stop_distance_m: float = 0.5
    clear_distance_m: float = 0.8
    distance_stale_s: float = 0.3
    clear_wait_s: float = 3.0
    backoff_s: float = 1.5
    turn_s: float = 1.2
    max_tries: int = 3
    stuck_retry_s: float = 600.0
    stuck_retries: int = 3
    # A thing that leaves the way while the robot waits may be a passer-by who turns back: the forward sensor
    # cannot see one coming from the side. The robot drives on only into a gap it can predict (the one before
    # last between passes: someone walking to and fro leaves long and short gaps by turns) at least cross_s
    # long, the time to drive its body through the walker's path from the stop; or once the way has been
    # clear for quiet_s (longer than the longest gap a shipped passer-by leaves: they were gone). Either way only
    # pass_tail_s after the sensor lost them: this near, its cone is narrower than the body, and someone who
    # has just stepped out of it is still in front of a corner.
    cross_s: float = 3.5
    quiet_s: float = 20.0
    pass_tail_s: float = 1.0
    tray_full_kg: float = 1.9
    tray_empty_kg: float = 0.2
    tray_filter_s: float = 2.0
    rain_confirm_s: float = 1.0
    rain_dry_s: float = 600.0
    rain_min_shelter_s: float = 900.0
    shade_w: float = 15.0
    night_w: float = 2.0
    switch_dwell_s: float = 60.0
    panel_return_s: float = 1800.0
    panel_margin: float = 1.25
    base_w: float = 2.8
    drive_motor_w: float = 12.0
    brush_motor_w: float = 2.0
    night_dwell_s: float = 300.0
    reserve_soc: float = 0.50
    reserve_dwell_s: float = 120.0
    low_soc: float = 0.25
    resume_soc: float = 0.70
    critical_soc: float = 0.10
    critical_v: float = 9.6
    critical_drive_s: float = 120.0
    # Side sensors (hardware.side; robot/core/side.py): off unless fitted.
    side_sensors: bool = False
    side_stop_m: float = 1.0
    side_near_m: float = 0.25
    side_bearing_deg: float = 50.0
    wheel_speed_mps: float = 1.571  # wheel rim speed at full duty (the sensors' own motion comes from it)
    wheel_base_m: float = 0.40
    body_radius_m: float = 0.35  # the side sensors sit on the body's edge
    cleaning_w: float = field(init=False, repr=False, compare=False)  # the load of cleaning (derived)

    @classmethod
    def from_settings(cls, s: Any) -> CoreConfig:
        """Flatten a robot.config.Settings (duck-typed, so the core imports nothing of ours)."""
        c, o, t, r, p = s.control, s.obstacle, s.tray, s.rain, s.power
        body = s.geometry.body()
        return cls(
            deadman_s=c.deadman_s, cruise_duty=c.cruise_duty, turn_duty=c.turn_duty,
            manual_max_duty=c.manual_max_duty, brush_duty=c.brush_duty, sensor_stale_s=c.sensor_stale_s,
            fault_clear_s=c.fault_clear_s, gps_alert_s=c.gps_alert_s,
            stop_distance_m=o.stop_distance_m, clear_distance_m=o.clear_distance_m, distance_stale_s=o.stale_s,
            clear_wait_s=o.clear_wait_s, backoff_s=o.backoff_s, turn_s=o.turn_s, max_tries=o.max_tries,
            stuck_retry_s=o.stuck_retry_s, stuck_retries=o.stuck_retries,
            tray_full_kg=t.capacity_kg * t.full_fraction, tray_empty_kg=t.empty_kg, tray_filter_s=t.filter_s,
            rain_confirm_s=r.confirm_s, rain_dry_s=r.dry_s, rain_min_shelter_s=r.min_shelter_s,
            shade_w=p.shade_w, night_w=p.night_w, switch_dwell_s=p.switch_dwell_s,
            panel_return_s=p.panel_return_s, panel_margin=p.panel_margin, base_w=p.base_w,
            drive_motor_w=p.drive_motor_w, brush_motor_w=p.brush_motor_w, night_dwell_s=p.night_dwell_s,
            reserve_soc=p.reserve_soc, reserve_dwell_s=p.reserve_dwell_s, low_soc=p.low_soc,
            resume_soc=p.resume_soc, critical_soc=p.critical_soc, critical_v=p.critical_v,
            critical_drive_s=p.critical_drive_s,
            side_sensors=s.hardware.side != "none", side_stop_m=o.side_stop_m, side_near_m=o.side_near_m,
            side_bearing_deg=s.hardware.side_bearing_deg, wheel_speed_mps=body.max_wheel_speed_mps,
            wheel_base_m=body.wheel_base_m, body_radius_m=body.radius_m,
        )  # fmt: skip

    def load_w(self, m: MotorOutputs) -> float:
        """The electrical load these outputs draw: controller, Arduino and sensors, plus each powered motor.

        A motor draws by its EN duty when IN1 != IN2; braked (IN1 = IN2, whatever EN) it draws nothing.
        """
        dl, dr, bl, br, bc = m
        drive = (dl.en if dl.in1 != dl.in2 else 0) + (dr.en if dr.in1 != dr.in2 else 0)
        brush = (bl.en if bl.in1 != bl.in2 else 0) + (br.en if br.in1 != br.in2 else 0)
        brush += bc.en if bc.in1 != bc.in2 else 0
        return self.base_w + (self.drive_motor_w * drive + self.brush_motor_w * brush) / 255.0

    def __post_init__(self) -> None:
        clean = 2 * self.drive_motor_w * self.cruise_duty + 3 * self.brush_motor_w * self.brush_duty
        object.__setattr__(self, "cleaning_w", self.base_w + clean / 255.0)


def _running(p: PinState) -> bool:
    return p.en > 0 and p.in1 != p.in2


class CoreState(NamedTuple):
    """Everything the core remembers between steps. `*_since` fields are the start of a held condition.

    A named tuple rather than a frozen dataclass: as immutable, and built in a fraction of the time, which
    matters at 20 steps a second on a Pi and 12,000 a second in the simulator.
    """

    state: State = State.FAULT
    mode: Mode = Mode.AUTO
    estop: bool = False
    fault: bool = True
    fault_ok_since: float | None = None
    critical: bool = False
    critical_since: float = -INF
    low_battery: bool = False
    stuck: bool = False
    route_done: bool = False
    power: PowerSource = PowerSource.BATTERY
    power_since: float = -INF
    panel_ok_since: float | None = None
    load_w: float = 0.0
    motors: MotorOutputs = ALL_BRAKED
    saving: bool = False
    short_since: float | None = None
    carry_since: float | None = None
    night: bool = False
    dark_since: float | None = None
    light_since: float | None = None
    tray_full: bool = False
    heavy_since: float | None = None
    light_tray_since: float | None = None
    rain: bool = False
    wet_since: float | None = None
    dry_since: float | None = None
    shelter_start: float = -INF
    escape_phase: str = "none"  # none, stopped, backoff, turn
    escape_since: float = -INF
    tries: int = 0
    clear_since: float | None = None
    drive_left: float = 0.0
    drive_right: float = 0.0
    drive_at: float = -INF
    gps_bad_since: float | None = None
    gps_alerted: bool = False
    stuck_since: float = -INF
    stuck_retries: int = 0  # automatic retries used on this obstacle
    blocked_at: float | None = None  # while stopped: since when the way has been blocked, None while clear
    passes: tuple[tuple[float, float], ...] = ()  # while stopped: (blocked from, to) of the last few passes
    side: side_rule.SideTrack = side_rule.SideTrack()  # the side sensors' recent readings (when fitted)


class Situation(NamedTuple):
    """What the rules of the table look at (derived each step)."""

    estop: bool
    fault: bool
    critical: bool
    stuck: bool
    escape_phase: str
    mode: str
    rain: bool
    low_battery: bool
    night: bool
    tray_full: bool
    route_done: bool
    goal: Goal
    arrived: bool
    gps_ok: bool
    inside_fence: bool
    critical_drive: bool = False  # critical, and still driving to the shelter or park on the energy left
    saving: bool = False  # battery at the night reserve and the panel cannot carry cleaning


# A named tuple from all its fields in order, as its own __new__ makes it (tuple.__new__(cls, values)), without
# the keyword matching.
_make: Any = tuple.__new__


def _held(cond: bool, since: float | None, now: float) -> float | None:
    """Start time of a condition that holds now, None when it does not."""
    if not cond:
        return None
    return now if since is None else since


def _age(t: float | None, now: float) -> float:
    if t is None:
        return INF
    age = now - t
    return INF if age != age else age  # a NaN time is unknown: as old as can be, so it counts as stale


def pins_for(speed: float, max_duty: int) -> PinState:
    """One wheel: signed speed in [-1, 1] to IN1/IN2/EN (10 forward, 01 backward, BRAKE = 00 with EN high)."""
    if math.isnan(speed) or abs(speed) < DEADBAND:
        return BRAKE
    duty = round(min(abs(speed), 1.0) * max_duty)
    if duty == 0:
        return BRAKE
    if 0 < duty < 256:  # one object per duty: equal outputs of two steps are then mostly the same object
        return _FORWARD[duty] if speed > 0 else _BACKWARD[duty]
    return PinState(1, 0, duty) if speed > 0 else PinState(0, 1, duty)


_FORWARD = tuple(PinState(1, 0, d) for d in range(256))
_BACKWARD = tuple(PinState(0, 1, d) for d in range(256))
# The outputs made for each (left wheel, right wheel, brush duty or None: brushes braked): the same command twenty times a second
# is then one object, which everything downstream (the link's check and payload, the world's pins) compares
# by identity first. A cache only, bounded; the values are what MotorOutputs(...) would make.
_OUTPUTS: dict[tuple[PinState, PinState, int | None], MotorOutputs] = {}
_OUTPUTS_MAX = 4096


def _outputs(wl: PinState, wr: PinState, brush_duty: int | None) -> MotorOutputs:
    key = (wl, wr, brush_duty)
    out = _OUTPUTS.get(key)
    if out is None:
        if len(_OUTPUTS) >= _OUTPUTS_MAX:
            _OUTPUTS.clear()
        if brush_duty is None:
            out = MotorOutputs(wl, wr, BRAKE, BRAKE, BRAKE)
        else:
            # The bottom brushes counter-rotate outward; the comb sweeps litter into the tray.
            d = brush_duty
            out = MotorOutputs(wl, wr, PinState(1, 0, d), PinState(0, 1, d), PinState(1, 0, d))
        _OUTPUTS[key] = out
    return out


def _obstacle_blocks(
    snap: Snapshot, now: float, cfg: CoreConfig, was_blocked: bool, side_why: str = ""
) -> tuple[bool, str]:
    if snap.camera_obstacle:
        return True, "camera sees an obstacle ahead"
    d = snap.distance_m
    if d is None or _age(snap.distance_t, now) > cfg.distance_stale_s or math.isnan(d):
        return True, "obstacle distance unknown (no echo or stale reading)"
    limit = cfg.clear_distance_m if was_blocked else cfg.stop_distance_m
    if d < limit:
        return True, f"obstacle at {d:.2f} m"
    if side_why:
        return True, side_why
    return False, ""


def _side(st: CoreState, snap: Snapshot, now: float, cfg: CoreConfig) -> tuple[side_rule.SideTrack, str]:
    """The side sensors' track after this step, and why they forbid driving forward ("": they do not)."""
    if not cfg.side_sensors:
        return st.side, ""
    global _own_last
    motors = st.motors
    last = _own_last
    if last[0] is motors and last[1] is cfg:
        own = last[2]  # the wheels' command held: the same closing speeds as last step
    else:
        own = _own_closing(motors, cfg)
        _own_last = (motors, cfg, own)
    tr = side_rule.track(st.side, snap.side_left_m, snap.side_right_m, snap.side_t, now, own, cfg.side_stop_m)
    why = side_rule.blocks(
        tr, snap.side_left_m, snap.side_right_m, snap.side_t, now, cfg.distance_stale_s,
        cfg.side_stop_m, cfg.side_near_m,
    )  # fmt: skip
    return tr, why


def _own_closing(motors: MotorOutputs, cfg: CoreConfig) -> tuple[float, float]:
    """side_rule.own_closing for the wheels' last command: their speed, as far as the core knows it."""
    speeds = []
    for p in motors[:2]:
        f = p.en / 255.0 if p.in1 != p.in2 else 0.0
        speeds.append((f if p.in1 > p.in2 else -f) * cfg.wheel_speed_mps)
    return side_rule.own_closing(
        speeds[0], speeds[1], cfg.wheel_base_m, cfg.body_radius_m, math.radians(cfg.side_bearing_deg)
    )


# The last (outputs, config, closing speeds) _side worked out: a held command is the same MotorOutputs object
# step after step (_outputs), so the answer is looked up by identity. A cache only (no I/O, no clock).
_own_last: tuple[Any, Any, tuple[float, float]] = (None, None, (0.0, 0.0))


def _may_cross(passes: tuple[tuple[float, float], ...], now: float, cfg: CoreConfig) -> bool:
    """Whether a robot stopped for things that then left its way may drive on now (see CoreConfig.cross_s)."""
    if not passes or now - passes[-1][1] >= cfg.quiet_s:
        return True
    if now - passes[-1][1] < cfg.pass_tail_s:
        return False
    if len(passes) < 3:
        return False
    # Passes a, b, c: the gap to come is taken to be the one between a and b.
    (_, a_end), (b_start, _), _ = passes[-3:]
    return b_start - a_end >= cfg.cross_s


def step(st: CoreState, snap: Snapshot, now: float, cfg: CoreConfig) -> tuple[CoreState, Decision]:
    """Decide one step. Never raises on odd input: missing readings are unknown, and unknown is unsafe."""
    alerts: list[Alert] = []

    def alert(kind: str, severity: Severity, message: str) -> None:
        alerts.append(Alert(kind, severity, message, now))

    mode, estop, stuck, route_done, tray_full = st.mode, st.estop, st.stuck, st.route_done, st.tray_full
    drive_left, drive_right, drive_at = st.drive_left, st.drive_right, st.drive_at
    escape_phase, escape_since, tries = st.escape_phase, st.escape_since, st.tries
    stuck_since, stuck_retries = st.stuck_since, st.stuck_retries
    blocked_at, passes = st.blocked_at, st.passes

    # Operator commands, oldest first.
    for cmd in snap.commands:
        kind = cmd.kind
        if kind is CommandKind.ESTOP:
            if not estop:
                alert("estop", Severity.CRITICAL, f"emergency stop from {cmd.source}")
            estop = True
        elif kind is CommandKind.RESET:
            if estop or stuck:
                alert("reset", Severity.INFO, f"reset from {cmd.source}")
            estop = stuck = route_done = False
            escape_phase, tries, stuck_retries = "none", 0, 0
        elif kind is CommandKind.SET_MODE and cmd.mode is not None:
            if cmd.mode is not mode:
                alert("mode", Severity.INFO, f"mode {cmd.mode.value} from {cmd.source}")
            if cmd.mode is Mode.AUTO:
                route_done = False  # a new auto command starts the route again, even when already in auto
            if cmd.mode is not Mode.AUTO:
                stuck, stuck_retries = False, 0
            mode = cmd.mode
            drive_left = drive_right = 0.0
            escape_phase, tries = "none", 0
        elif kind is CommandKind.DRIVE and mode is Mode.MANUAL:
            left, right = cmd.left, cmd.right
            ok = left == left and right == right  # NaN never drives
            drive_left = max(-1.0, min(1.0, left)) if ok else 0.0
            drive_right = max(-1.0, min(1.0, right)) if ok else 0.0
            drive_at = min(cmd.at, now)  # a stamp from another clock must not stretch the deadman
        elif (
            kind is CommandKind.TRAY_EMPTIED
            and tray_full
            and snap.tray_kg is not None
            and snap.tray_kg < cfg.tray_full_kg
        ):
            tray_full = False
            alert("tray_emptied", Severity.INFO, f"tray emptied ({snap.tray_kg:.2f} kg), resuming")

    # Fault: the Arduino link and the sensors that protect the robot must be live.
    stale = cfg.sensor_stale_s
    fault_why = ""
    if not snap.link_ok:
        fault_why = "link to the Arduino lost"
    elif _age(snap.power_t, now) > stale or snap.battery_soc is None:
        fault_why = "power monitor reading stale"
    elif _age(snap.tray_t, now) > stale or snap.tray_kg is None:
        fault_why = "tray scale reading stale"
    elif _age(snap.rain_t, now) > stale or snap.raining is None:
        fault_why = "rain sensor reading stale"
    fault, fault_ok_since = st.fault, st.fault_ok_since
    if fault_why:
        if not fault:
            alert("fault", Severity.CRITICAL, f"fault: {fault_why}; motors off")
        fault, fault_ok_since = True, None
    else:
        fault_ok_since = now if fault_ok_since is None else fault_ok_since  # healthy since then
        if fault and now - fault_ok_since >= cfg.fault_clear_s:
            fault = False
            alert("fault_cleared", Severity.INFO, "fault cleared: link and sensors healthy")

    # Battery protection (hysteresis): critical < low < resume; the reserve is kept for the night.
    soc, volts = snap.battery_soc, snap.battery_v
    critical, critical_since, low_battery = st.critical, st.critical_since, st.low_battery
    if soc is not None:
        if not critical and (soc <= cfg.critical_soc or (volts is not None and volts <= cfg.critical_v)):
            critical, critical_since = True, now
            alert(
                "critical_battery",
                Severity.CRITICAL,
                f"battery critical ({soc:.0%}); braking, sheltering or parking if it can, then powering down",
            )
        elif critical and soc >= cfg.low_soc and (volts is None or volts > cfg.critical_v):
            critical = False
            alert("critical_cleared", Severity.INFO, f"battery out of critical ({soc:.0%}); parked, charging")
        if not low_battery and soc <= cfg.low_soc:
            low_battery = True
            alert("low_battery", Severity.WARNING, f"battery low ({soc:.0%}); parking to charge")
        elif low_battery and soc >= cfg.resume_soc:
            low_battery = False
            alert("battery_ok", Severity.INFO, f"battery recovered ({soc:.0%}); resuming")
    panel = snap.panel_w if snap.panel_w is not None else 0.0
    cleaning_w = cfg.cleaning_w
    short_since = _held(panel < cleaning_w, st.short_since, now)
    carry_since = _held(panel >= cleaning_w * cfg.panel_margin, st.carry_since, now)
    saving = st.saving
    if (
        not saving
        and soc is not None
        and soc <= cfg.reserve_soc
        and short_since is not None
        and now - short_since >= cfg.reserve_dwell_s
    ):
        saving = True
        alert(
            "waiting_for_sun",
            Severity.INFO,
            f"battery at the night reserve ({soc:.0%}): parked until the sun",
        )
    elif saving and soc is not None and soc >= cfg.resume_soc:
        saving = False
        alert("sun", Severity.INFO, f"battery back to {soc:.0%}: resuming")
    elif saving and carry_since is not None and now - carry_since >= cfg.reserve_dwell_s:
        saving = False
        alert("sun", Severity.INFO, f"the panel carries cleaning again ({panel:.0f} W): resuming")

    # Night: dark for the dwell, and the sun truly down. A storm's dark sky is not night: with the sun's
    # position unknown (no GPS time yet), darkness while it rains does not count.
    elev = snap.sun_elevation_deg
    sun_down = elev < SUN_DOWN_DEG if elev is not None else snap.raining is False
    dark_since = _held(panel < cfg.night_w, st.dark_since, now)
    light_since = _held(panel >= cfg.shade_w, st.light_since, now)
    night = st.night
    if not night and sun_down and dark_since is not None and now - dark_since >= cfg.night_dwell_s:
        night = True
        alert("night", Severity.INFO, "night: parking on battery")
    elif night and light_since is not None and now - light_since >= cfg.night_dwell_s:
        night = False
        alert("day", Severity.INFO, "daylight: resuming")

    # Tray: filtered in time so a bump does not trip it.
    kg = snap.tray_kg
    heavy_since = _held(kg is not None and kg >= cfg.tray_full_kg, st.heavy_since, now)
    light_tray_since = _held(kg is not None and kg < cfg.tray_empty_kg, st.light_tray_since, now)
    if not tray_full and heavy_since is not None and now - heavy_since >= cfg.tray_filter_s:
        tray_full = True
        alert("tray_full", Severity.WARNING, f"tray full ({kg:.2f} kg); brushes stopped, please empty it")
    elif tray_full and light_tray_since is not None and now - light_tray_since >= cfg.tray_filter_s:
        tray_full = False
        alert("tray_emptied", Severity.INFO, "tray emptied, resuming")

    # Rain: confirm, shelter, then stay for the dry period and the minimum dwell.
    wet = snap.raining is True
    dry = snap.raining is False and _age(snap.rain_t, now) <= stale  # a silent sensor is not dry weather
    wet_since = _held(wet, st.wet_since, now)
    dry_since = _held(dry, st.dry_since, now)
    rain, shelter_start = st.rain, st.shelter_start
    if not rain and wet_since is not None and now - wet_since >= cfg.rain_confirm_s:
        rain, shelter_start = True, now
        alert("rain", Severity.INFO, "rain: brushes off, going to shelter")
    elif (
        rain
        and dry_since is not None
        and now - dry_since >= cfg.rain_dry_s
        and now - shelter_start >= cfg.rain_min_shelter_s
    ):
        rain = False
        alert("dry", Severity.INFO, "dry again: returning to the route")

    g = snap.guidance if _age(snap.guidance_t, now) <= GUIDANCE_STALE_S else None
    gps_ok = g is not None and g.gps_ok
    inside = True if g is None else g.inside_fence
    arrived = g is not None and g.arrived
    if g is not None and g.route_done and not route_done and mode is Mode.AUTO:
        route_done = True
        alert("route_done", Severity.INFO, "route finished: parking")

    if rain:
        goal = Goal.SHELTER
    elif low_battery or night or route_done or saving or critical:
        goal = Goal.PARK
    elif tray_full:
        goal = Goal.HOLD
    else:
        goal = Goal.ROUTE
    if mode is not Mode.AUTO:
        goal = Goal.HOLD

    # Stuck is not forever: after obstacle.stuck_retry_s, try again (the obstacle may have gone), a bounded
    # number of times per obstacle, telling a person each time; RESET still clears it at once.
    if (
        stuck
        and mode is Mode.AUTO
        and stuck_retries < cfg.stuck_retries
        and now - stuck_since >= cfg.stuck_retry_s
    ):
        stuck, tries, stuck_retries = False, 0, stuck_retries + 1
        escape_phase = "none"
        alert(
            "stuck_retry",
            Severity.WARNING,
            f"stuck for {now - stuck_since:.0f} s: trying again "
            f"(automatic retry {stuck_retries} of {cfg.stuck_retries})",
        )
    # Critical battery: on the energy left, to the shelter in rain (else the park), then the planned end.
    critical_drive = (
        critical
        and mode is Mode.AUTO
        and not (estop or fault or stuck)
        and not arrived
        and now - critical_since < cfg.critical_drive_s
    )
    halted = critical and not critical_drive

    # Obstacle escape manoeuvre: only while navigation drives forward in auto.
    side, side_why = _side(st, snap, now, cfg)
    blocked, why_blocked = _obstacle_blocks(snap, now, cfg, escape_phase != "none", side_why)
    guided_auto = (
        mode is Mode.AUTO
        and not (estop or fault or halted or stuck)
        and goal is not Goal.HOLD
        and not arrived
        and gps_ok
    )
    wants_forward = g is not None and (g.left > DEADBAND or g.right > DEADBAND)
    clear_since = st.clear_since
    if escape_phase == "turn" and now - escape_since >= cfg.turn_s:
        escape_phase = "none"  # the retry: look again in this same step, never a step of cleaning in between
    if not guided_auto:
        escape_phase = "none"
    elif escape_phase == "none":
        if blocked and wants_forward:
            escape_phase, escape_since = "stopped", now
            blocked_at, passes = now, ()
            alert("obstacle", Severity.INFO, f"stopped: {why_blocked}")
    elif escape_phase == "stopped":
        if not blocked:
            if blocked_at is not None:
                passes = (*passes, (blocked_at, now))[-4:]
                blocked_at = None
            if _may_cross(passes, now, cfg):
                escape_phase = "none"
            else:
                why_blocked = "waiting for a gap between passers-by"
        elif blocked_at is None:
            if cfg.side_sensors and passes and now - passes[-1][1] < cfg.pass_tail_s:
                # With side sensors one passer-by is seen by each sensor in turn (a side, the front, the other
                # side), with a step or two clear between them: the same pass goes on.
                blocked_at, passes = passes[-1][0], passes[:-1]
            else:
                blocked_at = now  # back in the way: the escape's wait starts again
        elif now - blocked_at >= cfg.clear_wait_s:
            if tries >= cfg.max_tries:
                stuck, escape_phase, stuck_since = True, "none", now
                left_retries = cfg.stuck_retries - stuck_retries
                then = (
                    f"retrying by itself in {cfg.stuck_retry_s:.0f} s ({left_retries} automatic retries left)"
                    if left_retries > 0
                    else "no automatic retries left: clear the way and reset"
                )
                alert(
                    "stuck",
                    Severity.CRITICAL,
                    f"stuck after {tries} escape tries: {why_blocked}; halted, {then}",
                )
            else:
                tries += 1
                escape_phase, escape_since = "backoff", now
    elif escape_phase == "backoff" and now - escape_since >= cfg.backoff_s:
        escape_phase, escape_since = "turn", now
    if escape_phase != "stopped":
        blocked_at, passes = None, ()
    driving_clear = escape_phase == "none" and guided_auto and not blocked
    clear_since = _held(driving_clear, clear_since, now)
    if clear_since is not None and now - clear_since >= TRIES_RESET_S:
        tries = stuck_retries = 0  # driving clear: the next obstacle gets its own tries and retries

    # GPS quality: alert once when position stays unusable.
    wants_position = mode is Mode.AUTO and goal is not Goal.HOLD and not (estop or fault or halted or stuck)
    gps_bad_since = _held(wants_position and not gps_ok, st.gps_bad_since, now)
    gps_alerted = st.gps_alerted and gps_bad_since is not None
    if gps_bad_since is not None and not gps_alerted and now - gps_bad_since >= cfg.gps_alert_s:
        gps_alerted = True
        alert("gps_lost", Severity.WARNING, f"no usable GPS fix for {now - gps_bad_since:.0f} s; waiting")

    # Positional, in Situation's field order (tests/test_core_fields.py holds it to the names): matching 17
    # keywords to fields costs more than making the tuple.
    sit = _make(Situation, (
        estop, fault, critical, stuck, escape_phase, mode.value,
        rain, low_battery, night, tray_full, route_done, goal,
        arrived, gps_ok, inside, critical_drive, saving,
    ))  # fmt: skip
    rule = _first(sit)
    motors, reason = _motors(
        rule, sit, snap, now, cfg, drive_left, drive_right, drive_at, escape_since, tries, side_why
    )

    # Power source. To the battery at once when the panel cannot carry the load running now or the one about
    # to start (a motor start waits one step, so the relay moves first); back to the panel only after it has
    # carried the load with margin for switch_dwell_s and the loads have had panel_return_s on the battery,
    # which caps the relay at four switches an hour under broken cloud.
    load_now = st.load_w
    load_next = load_now if load_now > 0.0 and motors == st.motors else cfg.load_w(motors)
    if st.power is PowerSource.BATTERY and snap.battery_a is not None and snap.battery_v is not None:
        load_now = max(load_now, -snap.battery_a * snap.battery_v)  # net discharge: never more than the load
    need = load_now if load_now > load_next else load_next
    power, power_since = st.power, st.power_since
    panel_ok_since = _held(panel >= need * cfg.panel_margin, st.panel_ok_since, now)
    if power is PowerSource.PANEL and panel < need:
        power, power_since = PowerSource.BATTERY, now
        alert(
            "power_source", Severity.INFO, f"power from the battery (panel {panel:.1f} W < load {need:.1f} W)"
        )
        if load_next > load_now:
            motors = _hold_starts(motors, st.motors)
            load_next = cfg.load_w(motors)
    elif (
        power is PowerSource.BATTERY
        and panel_ok_since is not None
        and now - panel_ok_since >= cfg.switch_dwell_s
        and now - power_since >= cfg.panel_return_s
    ):
        power, power_since = PowerSource.PANEL, now
        alert("power_source", Severity.INFO, f"power from the panel ({panel:.1f} W, load {need:.1f} W)")

    # The planned end: critical and braked with nothing but the battery left (a panel that can carry the loads
    # keeps the controller up while the battery charges), or parked for the night with a wake alarm to bring
    # the Pi back at dawn.
    power_down = ""
    if (
        halted
        and power is PowerSource.BATTERY
        and panel < need * cfg.panel_margin
        and soc is not None
        and _age(snap.power_t, now) <= stale  # never on a reading the battery no longer confirms
    ):
        power_down = "critical_battery"
    elif (
        night
        and arrived
        and snap.can_sleep
        and elev is not None
        and rule.state in (State.NIGHT, State.SHELTERED)
    ):
        power_down = "night"
    reason = _reason(rule, sit, fault_why, why_blocked, g, reason, tries, cfg, power)

    if rule.state is State.OUTSIDE_FENCE and st.state is not State.OUTSIDE_FENCE:
        alert("geofence", Severity.CRITICAL, "GPS puts the robot outside the fence: stopped")

    # Positional, in CoreState's field order (tests/test_core_fields.py holds it to the names): matching 41
    # keywords to fields cost about ten times what making the tuple does, twenty times a second.
    new = _make(CoreState, (
        rule.state, mode, estop, fault, fault_ok_since, critical,
        critical_since, low_battery, stuck, route_done, power,
        power_since, panel_ok_since, load_next, motors,
        saving, short_since, carry_since, night, dark_since,
        light_since, tray_full, heavy_since,
        light_tray_since, rain, wet_since, dry_since,
        shelter_start, escape_phase, escape_since, tries,
        clear_since, drive_left, drive_right, drive_at,
        gps_bad_since, gps_alerted,
        stuck_since, stuck_retries, blocked_at, passes, side,
    ))  # fmt: skip
    return new, Decision(rule.state, mode, motors, power, goal, reason, tuple(alerts), power_down)


def _hold_starts(m: MotorOutputs, before: MotorOutputs) -> MotorOutputs:
    """These outputs with every motor that was not running before kept braked for this one step."""
    held = [p if not _running(p) or _running(b) else BRAKE for p, b in zip(m, before, strict=True)]
    return MotorOutputs(*held)


# The row each situation picked, for the table it was picked from: a situation is a handful of flags, so the
# few that occur are answered by one lookup instead of up to twenty conditions. A cache only (no I/O, no clock).
_rows: tuple[tuple[Rule, ...], dict[Situation, Rule]] = (TABLE, {})
_ROWS_MAX = 4096


def _first(sit: Situation) -> Rule:
    global _rows
    table, memo = _rows
    if table is not TABLE:
        table, memo = TABLE, {}
        _rows = (table, memo)
    rule = memo.get(sit)
    if rule is not None:
        return rule
    for rule in table:
        if rule.when(sit):
            if len(memo) >= _ROWS_MAX:
                memo.clear()
            memo[sit] = rule
            return rule
    raise AssertionError("the table's last row always matches")  # pragma: no cover


def _motors(
    rule: Rule,
    sit: Situation,
    snap: Snapshot,
    now: float,
    cfg: CoreConfig,
    drive_left: float,
    drive_right: float,
    drive_at: float,
    escape_since: float,
    tries: int,
    side_why: str = "",
) -> tuple[MotorOutputs, str]:
    """Wheels by the rule's policy, brushes by the rule, then the safety filter that nothing overrides."""
    note = ""
    left = right = 0.0
    max_duty = cfg.cruise_duty
    if rule.wheels is Wheels.MANUAL:
        if now - drive_at <= cfg.deadman_s:
            left, right = drive_left, drive_right
        elif drive_left or drive_right:
            note = "no drive command within the deadman time"
        max_duty = cfg.manual_max_duty
    elif rule.wheels is Wheels.ESCAPE:
        max_duty = cfg.turn_duty
        if sit.escape_phase == "backoff":
            left = right = -1.0
        else:  # turn in place, alternating sides between tries
            left, right = (-1.0, 1.0) if tries % 2 else (1.0, -1.0)
    elif rule.wheels is Wheels.GUIDED and snap.guidance is not None and not sit.arrived:
        left, right = snap.guidance.left, snap.guidance.right

    wl, wr = pins_for(left, max_duty), pins_for(right, max_duty)
    # Safety filter on the pins themselves: never forward into an obstacle, whatever the row says
    # (backing off is allowed, and so is the escape manoeuvre's turn in place).
    if (wl.in1 > wl.in2 or wr.in1 > wr.in2) and rule.wheels is not Wheels.ESCAPE:
        blocked, why = _obstacle_blocks(snap, now, cfg, False, side_why)
        if blocked:
            wl = wr = BRAKE
            note = f"forward blocked: {why}"
    if rule.brushes and not sit.tray_full:
        return _outputs(wl, wr, cfg.brush_duty), note
    if wl is BRAKE and wr is BRAKE:
        return ALL_BRAKED, note
    return _outputs(wl, wr, None), note


def _reason(
    rule: Rule,
    sit: Situation,
    fault_why: str,
    why_blocked: str,
    g: Any,
    note: str,
    tries: int,
    cfg: CoreConfig,
    power: PowerSource,
) -> str:
    s = rule.state
    if s is State.CLEANING:  # the common case first: the chain below ends with it
        text = "cleaning the route"
    elif s is State.ESTOP:
        text = "emergency stop: press reset when it is safe"
    elif s is State.FAULT:
        text = f"fault: {fault_why}" if fault_why else "fault clearing: waiting for steady link and sensors"
    elif s is State.CRITICAL_BATTERY:
        if power is PowerSource.PANEL:
            text = "battery critical: braked, running on the panel while the battery charges"
        else:
            text = "battery critical: braked, powering the controller down"
    elif s is State.CRITICAL_PARKING:
        where = "shelter" if sit.goal is Goal.SHELTER else "park"
        text = f"battery critical: heading for the {where} on the energy left, then powering down"
    elif s is State.STUCK:
        text = f"stuck after {tries} escape tries: clear the way and reset (or wait for the automatic retry)"
    elif s is State.OBSTACLE_STOP:
        text = f"stopped: {why_blocked}"
    elif s is State.ESCAPING:
        text = f"escaping the obstacle (try {tries} of {cfg.max_tries})"
    elif s is State.MANUAL:
        text = "manual driving"
    elif s is State.PAUSED:
        text = "paused by the operator"
    elif s is State.OUTSIDE_FENCE:
        text = "outside the fence: waiting for a good fix to drive back in"
    elif s is State.GPS_WAIT:
        text = f"waiting for GPS ({g.reason if g is not None else 'no guidance'})"
    elif s is State.SHELTERED:
        text = "sheltering from rain until it has been dry long enough"
    elif s is State.SHELTERING:
        text = "rain: brushes off, heading to shelter"
    elif s is State.LOW_BATTERY:
        text = "battery low: parked, charging" if sit.arrived else "battery low: heading to park"
    elif s is State.NIGHT:
        text = "night: parked on battery" if sit.arrived else "night: heading to park"
    elif s is State.WAITING_FOR_SUN:
        text = "battery at the night reserve: parked until the panel can carry cleaning"
        if not sit.arrived:
            text = "battery at the night reserve: heading to park"
    elif s is State.TRAY_FULL:
        text = "tray full: brushes stopped, waiting to be emptied"
    elif s is State.ROUTE_DONE:
        text = "route finished: parked" if sit.arrived else "route finished: heading to park"
    else:
        text = "cleaning the route"
    return f"{text}; {note}" if note else text
