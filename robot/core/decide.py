"""The decision step: `step(state, snapshot, now, cfg) -> (state, decision)`. Pure: no I/O, no clock, no sleep."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

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
    tray_full_kg: float = 1.9
    tray_empty_kg: float = 0.2
    tray_filter_s: float = 2.0
    rain_confirm_s: float = 1.0
    rain_dry_s: float = 600.0
    rain_min_shelter_s: float = 900.0
    sun_w: float = 25.0
    shade_w: float = 15.0
    night_w: float = 2.0
    switch_dwell_s: float = 30.0
    night_dwell_s: float = 300.0
    low_soc: float = 0.25
    resume_soc: float = 0.45
    critical_soc: float = 0.10
    critical_v: float = 9.6

    @classmethod
    def from_settings(cls, s: Any) -> CoreConfig:
        """Flatten a robot.config.Settings (duck-typed, so the core imports nothing of ours)."""
        c, o, t, r, p = s.control, s.obstacle, s.tray, s.rain, s.power
        return cls(
            deadman_s=c.deadman_s, cruise_duty=c.cruise_duty, turn_duty=c.turn_duty,
            manual_max_duty=c.manual_max_duty, brush_duty=c.brush_duty, sensor_stale_s=c.sensor_stale_s,
            fault_clear_s=c.fault_clear_s, gps_alert_s=c.gps_alert_s,
            stop_distance_m=o.stop_distance_m, clear_distance_m=o.clear_distance_m, distance_stale_s=o.stale_s,
            clear_wait_s=o.clear_wait_s, backoff_s=o.backoff_s, turn_s=o.turn_s, max_tries=o.max_tries,
            stuck_retry_s=o.stuck_retry_s, stuck_retries=o.stuck_retries,
            tray_full_kg=t.capacity_kg * t.full_fraction, tray_empty_kg=t.empty_kg, tray_filter_s=t.filter_s,
            rain_confirm_s=r.confirm_s, rain_dry_s=r.dry_s, rain_min_shelter_s=r.min_shelter_s,
            sun_w=p.sun_w, shade_w=p.shade_w, night_w=p.night_w, switch_dwell_s=p.switch_dwell_s,
            night_dwell_s=p.night_dwell_s, low_soc=p.low_soc, resume_soc=p.resume_soc,
            critical_soc=p.critical_soc, critical_v=p.critical_v,
        )  # fmt: skip


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
    low_battery: bool = False
    stuck: bool = False
    route_done: bool = False
    power: PowerSource = PowerSource.BATTERY
    power_since: float = -INF
    sun_since: float | None = None
    shade_since: float | None = None
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
    """One wheel: signed speed in [-1, 1] to IN1/IN2/EN (10 forward, 01 backward, 00 brake)."""
    if math.isnan(speed) or abs(speed) < DEADBAND:
        return BRAKE
    duty = round(min(abs(speed), 1.0) * max_duty)
    if duty == 0:
        return BRAKE
    return PinState(1, 0, duty) if speed > 0 else PinState(0, 1, duty)


def _obstacle_blocks(snap: Snapshot, now: float, cfg: CoreConfig, was_blocked: bool) -> tuple[bool, str]:
    if snap.camera_obstacle:
        return True, "camera sees an obstacle ahead"
    d = snap.distance_m
    if d is None or _age(snap.distance_t, now) > cfg.distance_stale_s or math.isnan(d):
        return True, "obstacle distance unknown (no echo or stale reading)"
    limit = cfg.clear_distance_m if was_blocked else cfg.stop_distance_m
    if d < limit:
        return True, f"obstacle at {d:.2f} m"
    return False, ""


def step(st: CoreState, snap: Snapshot, now: float, cfg: CoreConfig) -> tuple[CoreState, Decision]:
    """Decide one step. Never raises on odd input: missing readings are unknown, and unknown is unsafe."""
    alerts: list[Alert] = []

    def alert(kind: str, severity: Severity, message: str) -> None:
        alerts.append(Alert(kind, severity, message, now))

    mode, estop, stuck, route_done, tray_full = st.mode, st.estop, st.stuck, st.route_done, st.tray_full
    drive_left, drive_right, drive_at = st.drive_left, st.drive_right, st.drive_at
    escape_phase, escape_since, tries = st.escape_phase, st.escape_since, st.tries
    stuck_since, stuck_retries = st.stuck_since, st.stuck_retries

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
        fault_ok_since = _held(True, fault_ok_since, now)
        if fault and now - fault_ok_since >= cfg.fault_clear_s:
            fault = False
            alert("fault_cleared", Severity.INFO, "fault cleared: link and sensors healthy")

    # Battery protection (hysteresis): critical < low < resume.
    soc, volts = snap.battery_soc, snap.battery_v
    critical, low_battery = st.critical, st.low_battery
    if soc is not None:
        if not critical and (soc <= cfg.critical_soc or (volts is not None and volts <= cfg.critical_v)):
            critical = True
            alert("critical_battery", Severity.CRITICAL, f"battery critical ({soc:.0%}); everything off")
        elif critical and soc >= cfg.low_soc and (volts is None or volts > cfg.critical_v):
            critical = False
            alert("critical_cleared", Severity.INFO, f"battery out of critical ({soc:.0%}); parked, charging")
        if not low_battery and soc <= cfg.low_soc:
            low_battery = True
            alert("low_battery", Severity.WARNING, f"battery low ({soc:.0%}); parking to charge")
        elif low_battery and soc >= cfg.resume_soc:
            low_battery = False
            alert("battery_ok", Severity.INFO, f"battery recovered ({soc:.0%}); resuming")

    # Power source, night: dwell on every switch.
    panel = snap.panel_w if snap.panel_w is not None else 0.0
    sun_since = _held(panel >= cfg.sun_w, st.sun_since, now)
    shade_since = _held(panel < cfg.shade_w, st.shade_since, now)
    power, power_since = st.power, st.power_since
    dwell = cfg.switch_dwell_s
    if critical:
        want = PowerSource.PANEL  # never drain a critical battery into the loads
    elif power is PowerSource.BATTERY and sun_since is not None and now - sun_since >= dwell:
        want = PowerSource.PANEL
    elif power is PowerSource.PANEL and shade_since is not None and now - shade_since >= dwell:
        want = PowerSource.BATTERY
    else:
        want = power
    if want is not power and (critical or now - power_since >= dwell):
        alert("power_source", Severity.INFO, f"power from the {want.value} (panel {panel:.1f} W)")
        power, power_since = want, now
    dark_since = _held(panel < cfg.night_w, st.dark_since, now)
    light_since = _held(panel >= cfg.shade_w, st.light_since, now)
    night = st.night
    if not night and dark_since is not None and now - dark_since >= cfg.night_dwell_s:
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
    elif low_battery or night or route_done:
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
    # Obstacle escape manoeuvre: only while navigation drives forward in auto.
    blocked, why_blocked = _obstacle_blocks(snap, now, cfg, escape_phase != "none")
    guided_auto = (
        mode is Mode.AUTO
        and not (estop or fault or critical or stuck)
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
            alert("obstacle", Severity.INFO, f"stopped: {why_blocked}")
    elif escape_phase == "stopped":
        if not blocked:
            escape_phase = "none"
        elif now - escape_since >= cfg.clear_wait_s:
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
    driving_clear = escape_phase == "none" and guided_auto and not blocked
    clear_since = _held(driving_clear, clear_since, now)
    if clear_since is not None and now - clear_since >= TRIES_RESET_S:
        tries = stuck_retries = 0  # driving clear: the next obstacle gets its own tries and retries

    # GPS quality: alert once when position stays unusable.
    wants_position = mode is Mode.AUTO and goal is not Goal.HOLD and not (estop or fault or critical or stuck)
    gps_bad_since = _held(wants_position and not gps_ok, st.gps_bad_since, now)
    gps_alerted = st.gps_alerted and gps_bad_since is not None
    if gps_bad_since is not None and not gps_alerted and now - gps_bad_since >= cfg.gps_alert_s:
        gps_alerted = True
        alert("gps_lost", Severity.WARNING, f"no usable GPS fix for {now - gps_bad_since:.0f} s; waiting")

    sit = Situation(
        estop=estop, fault=fault, critical=critical, stuck=stuck, escape_phase=escape_phase, mode=mode.value,
        rain=rain, low_battery=low_battery, night=night, tray_full=tray_full, route_done=route_done, goal=goal,
        arrived=arrived, gps_ok=gps_ok, inside_fence=inside,
    )  # fmt: skip
    rule = _first(sit)
    motors, reason = _motors(
        rule, sit, snap, now, cfg, drive_left, drive_right, drive_at, escape_since, tries
    )
    reason = _reason(rule, sit, fault_why, why_blocked, g, reason, tries, cfg)

    if rule.state is State.OUTSIDE_FENCE and st.state is not State.OUTSIDE_FENCE:
        alert("geofence", Severity.CRITICAL, "GPS puts the robot outside the fence: stopped")

    new = CoreState(
        state=rule.state, mode=mode, estop=estop, fault=fault, fault_ok_since=fault_ok_since, critical=critical,
        low_battery=low_battery, stuck=stuck, route_done=route_done, power=power, power_since=power_since,
        sun_since=sun_since, shade_since=shade_since, night=night, dark_since=dark_since,
        light_since=light_since, tray_full=tray_full, heavy_since=heavy_since,
        light_tray_since=light_tray_since, rain=rain, wet_since=wet_since, dry_since=dry_since,
        shelter_start=shelter_start, escape_phase=escape_phase, escape_since=escape_since, tries=tries,
        clear_since=clear_since, drive_left=drive_left, drive_right=drive_right, drive_at=drive_at,
        gps_bad_since=gps_bad_since, gps_alerted=gps_alerted,
        stuck_since=stuck_since, stuck_retries=stuck_retries,
    )  # fmt: skip
    return new, Decision(rule.state, mode, motors, power, goal, reason, tuple(alerts))


def _first(sit: Situation) -> Rule:
    for rule in TABLE:
        if rule.when(sit):
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
        blocked, why = _obstacle_blocks(snap, now, cfg, False)
        if blocked:
            wl = wr = BRAKE
            note = f"forward blocked: {why}"
    if rule.brushes and not sit.tray_full:
        d = cfg.brush_duty
        # The bottom brushes counter-rotate outward; the comb sweeps litter into the tray.
        return MotorOutputs(wl, wr, PinState(1, 0, d), PinState(0, 1, d), PinState(1, 0, d)), note
    if wl is BRAKE and wr is BRAKE:
        return ALL_BRAKED, note
    return MotorOutputs(wl, wr, BRAKE, BRAKE, BRAKE), note


def _reason(
    rule: Rule,
    sit: Situation,
    fault_why: str,
    why_blocked: str,
    g: Any,
    note: str,
    tries: int,
    cfg: CoreConfig,
) -> str:
    s = rule.state
    if s is State.ESTOP:
        text = "emergency stop: press reset when it is safe"
    elif s is State.FAULT:
        text = f"fault: {fault_why}" if fault_why else "fault clearing: waiting for steady link and sensors"
    elif s is State.CRITICAL_BATTERY:
        text = "battery critical: everything off, charging from the panel"
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
    elif s is State.TRAY_FULL:
        text = "tray full: brushes stopped, waiting to be emptied"
    elif s is State.ROUTE_DONE:
        text = "route finished: parked" if sit.arrived else "route finished: heading to park"
    else:
        text = "cleaning the route"
    return f"{text}; {note}" if note else text
