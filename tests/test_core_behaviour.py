"""The decision core, one behaviour at a time: drive, brushes, obstruction, tray, rain, power, modes, GPS."""

from __future__ import annotations

import itertools
import math

import pytest
from conftest import CoreDriver, net_forward

from robot.core import CoreConfig, CoreState, pins_for, step
from robot.core.types import (
    ALL_BRAKED,
    BRAKE,
    Command,
    CommandKind,
    Goal,
    Guidance,
    Mode,
    MotorOutputs,
    PinState,
    PowerSource,
    Severity,
    State,
)

# ---- drive: the L298N truth table, differential turns, speed by EN duty -----------------------------------


@pytest.mark.parametrize(
    ("speed", "expected"),
    [
        (1.0, PinState(1, 0, 180)),  # 10 forward
        (-1.0, PinState(0, 1, 180)),  # 01 backward
        (0.0, PinState(0, 0, 255)),  # 00 with EN high: the active brake, not a coast (EN 0)
        (0.5, PinState(1, 0, 90)),  # speed is EN duty
        (-0.25, PinState(0, 1, 45)),
        (2.0, PinState(1, 0, 180)),  # clamped to full duty
        (-math.inf, PinState(0, 1, 180)),
        (0.04, BRAKE),  # inside the deadband: brake, not a creeping motor
        (math.nan, BRAKE),
    ],
)
def test_wheel_speed_maps_to_truth_table_and_en_duty(speed: float, expected: PinState) -> None:
    assert pins_for(speed, 180) == expected


def test_every_stop_brakes_actively_and_never_counts_as_moving() -> None:
    assert PinState(0, 0, 255) == BRAKE
    assert MotorOutputs(*(PinState(0, 0, 255),) * 5) == ALL_BRAKED
    assert not ALL_BRAKED.moving and not ALL_BRAKED.brushing
    assert not MotorOutputs(*(PinState(1, 1, 255),) * 5).moving  # 11 with EN high brakes too
    assert MotorOutputs(PinState(1, 0, 1), BRAKE, BRAKE, BRAKE, BRAKE).moving


def test_cleaning_drives_both_rear_wheels_forward_at_the_guided_speed(core: CoreDriver) -> None:
    d = core.step(left=1.0, right=1.0)
    assert d.state is State.CLEANING
    assert d.motors.drive_left == d.motors.drive_right == PinState(1, 0, core.cfg.cruise_duty)


def test_differential_drive_turns_by_slowing_one_wheel(core: CoreDriver) -> None:
    d = core.step(left=0.3, right=0.9)  # a left turn
    left, right = d.motors.drive_left, d.motors.drive_right
    assert (left.in1, left.in2, right.in1, right.in2) == (1, 0, 1, 0)
    assert left.en < right.en
    d = core.step(left=0.9, right=0.3)  # a right turn
    assert d.motors.drive_left.en > d.motors.drive_right.en


def test_turn_in_place_runs_the_wheels_in_opposite_directions(core: CoreDriver) -> None:
    d = core.step(left=-0.5, right=0.5)
    assert d.motors.drive_left == PinState(0, 1, 90)
    assert d.motors.drive_right == PinState(1, 0, 90)


def test_arrived_guidance_stops_the_wheels(core: CoreDriver) -> None:
    d = core.step(arrived=True)
    assert not d.motors.moving


# ---- brushes ---------------------------------------------------------------------------------------------


def test_cleaning_runs_bottom_brushes_counter_rotating_outward_and_the_comb(core: CoreDriver) -> None:
    m = core.step().motors
    duty = core.cfg.brush_duty
    assert m.brush_left == PinState(1, 0, duty)
    assert m.brush_right == PinState(0, 1, duty)  # the mirror image: counter-rotating
    assert m.brush_comb == PinState(1, 0, duty)


# ---- obstruction -----------------------------------------------------------------------------------------


def test_obstacle_inside_stop_distance_stops_the_robot_at_once(core: CoreDriver) -> None:
    d = core.step(distance_m=core.cfg.stop_distance_m - 0.1)
    assert d.state is State.OBSTACLE_STOP
    assert d.motors == ALL_BRAKED
    assert core.kinds() == ["obstacle"]


@pytest.mark.parametrize(
    ("why", "over"),
    [
        ("no echo", {"distance_m": None}),
        ("not a number", {"distance_m": math.nan}),
        ("stale reading", {"distance_t": -100.0}),
        ("never read", {"distance_t": None}),
        ("time not a number", {"distance_t": math.nan}),
        ("camera cue", {"camera_obstacle": True}),
    ],
)
def test_unknown_distance_or_camera_cue_is_unsafe_for_forward_motion(
    core: CoreDriver, why: str, over: dict[str, object]
) -> None:
    d = core.step(**over)
    assert d.state is State.OBSTACLE_STOP, why
    assert d.motors == ALL_BRAKED


def test_obstacle_stop_clears_only_beyond_the_clear_distance(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(distance_m=cfg.stop_distance_m - 0.1)
    assert core.step().state is State.OBSTACLE_STOP
    between = (cfg.stop_distance_m + cfg.clear_distance_m) / 2
    core.set(distance_m=between)  # hysteresis: beyond the stop distance is not yet clear
    assert core.step().state is State.OBSTACLE_STOP
    core.set(distance_m=cfg.clear_distance_m + 0.1)
    # Clear, but what left the way may come back (issue 11): the robot waits until it has stayed clear.
    waited = core.hold(cfg.quiet_s - 0.2)  # the pass ended at the first of these steps
    assert {d.state for d in waited} == {State.OBSTACLE_STOP}
    assert all(d.motors == ALL_BRAKED for d in waited)
    d = core.hold(0.5)[-1]
    assert d.state is State.CLEANING
    assert d.motors.moving and d.motors.brushing


def _passes(core: CoreDriver, gaps: list[float], blocked_s: float = 0.7) -> None:
    """Someone crosses in front of the stopped robot: blocked for blocked_s, then clear for each gap in turn."""
    for gap in gaps:
        core.set(distance_m=0.3)
        core.hold(blocked_s)
        core.set(distance_m=4.0)
        if gap:
            assert core.hold(gap)[-1].state is State.OBSTACLE_STOP


def test_stopped_robot_drives_on_into_the_long_gap_a_walker_to_and_fro_leaves(core: CoreDriver) -> None:
    """Issue 11: a passer-by walking to and fro across the robot's way leaves short and long gaps by turns
    (short when the robot stands near one end of the walk). After a short gap the next is long: drive on at
    once, not after the short one, when the walker turns back into the robot's side."""
    cfg = core.cfg
    core.set(distance_m=0.3)
    assert core.step().state is State.OBSTACLE_STOP
    short, long_ = cfg.cross_s - 1.5, cfg.cross_s + 4.0
    # Passes 1, 2 and 3 with a short gap, then a long one: the gap to come is taken to be the one before last.
    _passes(core, [short, long_, 0.0])
    assert core.step().state is State.OBSTACLE_STOP  # after pass 3 the gap to come is the short one: wait
    core.hold(short - 0.1)
    _passes(core, [0.0])  # pass 4: the gap to come is the long one
    tail = core.hold(cfg.pass_tail_s - 0.2)  # the walker's back is still in front of a corner
    assert {d.state for d in tail} == {State.OBSTACLE_STOP}
    d = core.hold(0.3)[-1]
    assert d.state is State.CLEANING and d.motors.moving


def test_stopped_robot_waits_out_a_passer_by_who_does_not_come_back(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(distance_m=0.3)
    core.hold(1.0)
    core.set(distance_m=4.0)
    waited = core.hold(cfg.quiet_s - 0.2)  # the pass ended at the first of these steps
    assert {d.state for d in waited} == {State.OBSTACLE_STOP}
    assert "gap between passers-by" in waited[-1].reason
    assert core.hold(0.5)[-1].state is State.CLEANING


def test_waiting_for_a_gap_never_escapes_into_a_passer_by(core: CoreDriver) -> None:
    """Passes shorter than clear_wait_s start no escape (no blind reversing while people walk past)."""
    cfg = core.cfg
    core.set(distance_m=0.3)
    core.step()
    for _ in range(6):
        core.set(distance_m=0.3)
        assert {d.state for d in core.hold(cfg.clear_wait_s - 0.5)} == {State.OBSTACLE_STOP}
        core.set(distance_m=4.0)
        assert {d.state for d in core.hold(1.0)} == {State.OBSTACLE_STOP}


def test_blocked_robot_backs_off_turns_in_place_and_retries(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(distance_m=0.3)
    assert core.step().state is State.OBSTACLE_STOP
    decisions = core.hold(cfg.clear_wait_s, dt=0.05)
    assert decisions[-1].state is State.ESCAPING
    assert {d.state for d in decisions[:-2]} == {State.OBSTACLE_STOP}
    back = decisions[-1].motors
    assert back.drive_left == back.drive_right == PinState(0, 1, cfg.turn_duty)  # backing off is allowed
    assert not back.brushing
    turn = core.hold(cfg.backoff_s, dt=0.05)[-1].motors
    assert signed_duty_pair(turn) in ((cfg.turn_duty, -cfg.turn_duty), (-cfg.turn_duty, cfg.turn_duty))
    assert net_forward(turn) == 0  # in place: no net motion toward the obstacle
    assert core.hold(cfg.turn_s, dt=0.05)[-1].state is State.OBSTACLE_STOP  # the retry finds it still there


def signed_duty_pair(m: object) -> tuple[int, int]:
    from conftest import signed_duty

    return signed_duty(m.drive_left), signed_duty(m.drive_right)  # type: ignore[attr-defined]


def test_escape_gives_up_after_max_tries_with_a_stuck_alert_and_halts(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(distance_m=0.3)
    decisions = core.hold(
        cfg.max_tries * (cfg.clear_wait_s + cfg.backoff_s + cfg.turn_s) + cfg.clear_wait_s + 1
    )
    backoffs = sum(
        1 for a, b in itertools.pairwise(decisions) if b.state is State.ESCAPING and a.state is not b.state
    )
    assert backoffs == cfg.max_tries
    assert not any(d.motors.brushing for d in decisions)  # not a single step of cleaning between retries
    assert decisions[-1].state is State.STUCK
    assert decisions[-1].motors == ALL_BRAKED
    stuck = [a for a in core.alerts if a.kind == "stuck"]
    assert len(stuck) == 1 and stuck[0].severity is Severity.CRITICAL
    core.set(distance_m=5.0)  # latched: a clear way does not restart it by itself
    assert {d.state for d in core.hold(30.0)} == {State.STUCK}


@pytest.mark.parametrize(
    ("kind", "mode", "after"),
    [
        (CommandKind.RESET, None, State.CLEANING),
        (CommandKind.SET_MODE, Mode.MANUAL, State.MANUAL),
        (CommandKind.SET_MODE, Mode.PAUSED, State.PAUSED),
        (CommandKind.SET_MODE, Mode.AUTO, State.STUCK),  # already auto: not a way out
    ],
)
def test_stuck_clears_on_reset_or_leaving_auto(
    core: CoreDriver, kind: CommandKind, mode: Mode, after: State
) -> None:
    core.set(distance_m=0.3)
    core.until(lambda d: d.state is State.STUCK, 60.0)
    core.set(distance_m=5.0)
    assert core.command(kind, mode=mode).state is after


def test_escape_succeeds_when_the_turn_finds_a_clear_way(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(distance_m=0.3)
    core.until(lambda d: d.state is State.ESCAPING, 10.0)
    core.hold(cfg.backoff_s)
    core.set(distance_m=4.0)  # the turn pointed the robot at open road
    d = core.hold(cfg.turn_s + 0.1)[-1]
    assert d.state is State.CLEANING and d.motors.moving


def test_escape_tries_are_forgiven_after_a_long_clear_drive(core: CoreDriver) -> None:
    cfg = core.cfg
    for _ in range(cfg.max_tries):  # use up every try, each escape succeeding
        core.set(distance_m=0.3)
        core.until(lambda d: d.state is State.ESCAPING, 10.0)
        core.set(distance_m=4.0)
        core.until(lambda d: d.state is State.CLEANING, 10.0)
    assert core.st.tries == cfg.max_tries
    core.hold(60.0, dt=0.5)
    assert core.st.tries == 0
    core.set(distance_m=0.3)
    assert (
        core.until(lambda d: d.state is State.ESCAPING, 10.0).state is State.ESCAPING
    )  # not straight to STUCK


# ---- tray ------------------------------------------------------------------------------------------------


def test_tray_bump_shorter_than_the_filter_does_not_trip(core: CoreDriver) -> None:
    cfg = core.cfg
    decisions = core.hold(cfg.tray_filter_s * 0.75, tray_kg=cfg.tray_full_kg + 1.0)  # a pothole jolt
    decisions += core.hold(5.0)
    assert {d.state for d in decisions} == {State.CLEANING}
    assert all(d.motors.brushing for d in decisions)
    assert core.kinds() == []


def test_tray_full_for_the_filter_time_stops_cleaning_alerts_and_holds(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(tray_kg=cfg.tray_full_kg + 0.05)
    decisions = core.hold(cfg.tray_filter_s + 0.2)
    assert decisions[-1].state is State.TRAY_FULL
    assert decisions[-1].motors == ALL_BRAKED
    assert decisions[-1].goal is Goal.HOLD
    assert [a.severity for a in core.alerts if a.kind == "tray_full"] == [Severity.WARNING]
    core.hold(60.0)
    assert core.kinds().count("tray_full") == 1  # one alert per event


def test_tray_full_waits_until_below_empty_kg_then_resumes(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(tray_kg=cfg.tray_full_kg + 0.05)
    core.hold(cfg.tray_filter_s + 0.2)
    core.clear_alerts()
    core.set(tray_kg=(cfg.tray_full_kg + cfg.tray_empty_kg) / 2)  # partly emptied: not enough
    assert {d.state for d in core.hold(60.0)} == {State.TRAY_FULL}
    core.set(tray_kg=cfg.tray_empty_kg / 2)
    decisions = core.hold(cfg.tray_filter_s + 0.2)
    assert decisions[0].state is State.TRAY_FULL  # filtered both ways
    assert decisions[-1].state is State.CLEANING and decisions[-1].motors.brushing
    assert core.kinds() == ["tray_emptied"]


def test_tray_emptied_command_resumes_only_when_the_scale_agrees(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(tray_kg=cfg.tray_full_kg + 0.05)
    core.hold(cfg.tray_filter_s + 0.2)
    assert core.command(CommandKind.TRAY_EMPTIED).state is State.TRAY_FULL  # still heavy: refused
    core.set(tray_kg=0.5)
    assert core.command(CommandKind.TRAY_EMPTIED).state is State.CLEANING


# ---- rain ------------------------------------------------------------------------------------------------


def test_rain_shorter_than_the_confirm_time_is_ignored(core: CoreDriver) -> None:
    decisions = core.hold(core.cfg.rain_confirm_s * 0.8, raining=True)
    decisions += core.hold(10.0)
    assert {d.state for d in decisions} == {State.CLEANING}
    assert "rain" not in core.kinds()


def test_rain_sends_robot_to_shelter_and_stays_until_dry(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(raining=True)
    d = core.hold(cfg.rain_confirm_s + 0.1)[-1]
    assert d.state is State.SHELTERING and d.goal is Goal.SHELTER
    assert d.motors.moving and not d.motors.brushing  # driving to the shelter, brushes off
    assert core.kinds() == ["rain"]
    core.set(arrived=True)
    d = core.step()
    assert d.state is State.SHELTERED and d.motors == ALL_BRAKED
    core.hold(cfg.rain_min_shelter_s, dt=1.0)  # still raining after the minimum dwell: stay
    assert core.state is State.SHELTERED
    core.set(raining=False)
    decisions = core.hold(cfg.rain_dry_s - 1.0, dt=1.0)
    assert {d.state for d in decisions} == {State.SHELTERED}
    core.set(arrived=False)  # navigation answers for the route once the goal changes
    d = core.hold(2.0, dt=1.0)[-1]
    assert d.state is State.CLEANING and d.goal is Goal.ROUTE
    assert core.kinds() == ["rain", "dry"]


def test_shelter_lasts_the_minimum_dwell_even_after_a_single_shower(core: CoreDriver) -> None:
    cfg = core.cfg
    core.hold(cfg.rain_confirm_s + 0.1, raining=True)
    core.set(arrived=True)
    dry = core.hold(cfg.rain_min_shelter_s - 2.0, dt=1.0)  # dry at once, and for longer than dry_s
    assert cfg.rain_min_shelter_s - 2.0 > cfg.rain_dry_s
    assert {d.state for d in dry} == {State.SHELTERED}
    assert core.hold(3.0, dt=1.0)[-1].goal is Goal.ROUTE


def test_rain_during_the_dry_period_restarts_the_dry_timer(core: CoreDriver) -> None:
    cfg = core.cfg
    core.hold(cfg.rain_confirm_s + 0.1, raining=True)
    core.set(arrived=True)
    core.hold(cfg.rain_min_shelter_s, dt=1.0, raining=True)
    core.hold(cfg.rain_dry_s - 10.0, dt=1.0)
    core.step(raining=True)  # one more drop
    assert {d.goal for d in core.hold(cfg.rain_dry_s - 1.0, dt=1.0)} == {Goal.SHELTER}
    assert core.hold(2.0, dt=1.0)[-1].goal is Goal.ROUTE


@pytest.mark.parametrize("period_s", [0.5, 2.0, 5.0, 60.0])
def test_flapping_rain_sensor_never_causes_go_return_loops(core: CoreDriver, period_s: float) -> None:
    cfg = core.cfg
    goals = []
    dt = 0.5
    for i in range(round(3 * 3600 / dt)):  # three hours of a sensor flipping every period_s, read every dt
        goals.append(core.step(dt, raining=int(i * dt / period_s) % 2 == 1).goal)
    trips = sum(1 for a, b in itertools.pairwise(goals) if a is not Goal.SHELTER and b is Goal.SHELTER)
    returns = sum(1 for a, b in itertools.pairwise(goals) if a is Goal.SHELTER and b is not Goal.SHELTER)
    assert returns == 0  # never dry for dry_s: once sheltering it stays
    assert trips == (0 if period_s - dt < cfg.rain_confirm_s else 1)


def test_stale_rain_sensor_does_not_count_as_dry_time(core: CoreDriver) -> None:
    cfg = core.cfg
    core.hold(cfg.rain_confirm_s + 0.1, raining=True)
    core.set(arrived=True)
    core.hold(cfg.rain_min_shelter_s, dt=1.0, raining=True)
    core.set(raining=False)
    core.step()  # one dry reading, then the sensor stops answering for longer than dry_s
    stale_from = core.t
    decisions = core.hold(cfg.rain_dry_s + 60.0, dt=1.0, rain_t=stale_from)
    assert {d.state for d in decisions[20:]} == {State.FAULT}
    # The sensor answers again, dry: the unobserved time must not count, so the robot waits out dry_s.
    d = core.hold(cfg.fault_clear_s + 1.0)[-1]
    assert d.goal is Goal.SHELTER, "a dead rain sensor's silence was counted as dry time"


# ---- power (the switchover, critical battery, night sleep and the reserve in depth: test_core_power.py) ------


def test_sun_runs_from_the_panel_after_the_switch_dwell(cfg: CoreConfig) -> None:
    d = CoreDriver(cfg)
    d.set(panel_w=40.0)
    first = d.step()
    assert first.power is PowerSource.BATTERY  # boots on the battery
    before = d.hold(cfg.switch_dwell_s - 0.5)
    assert {x.power for x in before} == {PowerSource.BATTERY}
    assert d.hold(1.0)[-1].power is PowerSource.PANEL
    assert d.kinds().count("power_source") == 1


def test_shade_that_cannot_carry_the_load_switches_to_battery_at_once(core: CoreDriver) -> None:
    load = core.cfg.load_w(core.st.motors)
    d = core.step(panel_w=load - 3)
    assert d.power is PowerSource.BATTERY and d.state is State.CLEANING  # shade is not night: keeps cleaning
    assert [a.kind for a in core.alerts] == ["power_source"]


def test_a_dip_that_still_carries_the_load_keeps_the_panel(core: CoreDriver) -> None:
    load = core.cfg.load_w(core.st.motors)
    for _ in range(10):
        core.hold(core.cfg.switch_dwell_s / 2, panel_w=load + 1)
        core.hold(1.0)
    assert core.last is not None and core.last.power is PowerSource.PANEL
    assert core.kinds() == []


def test_night_after_the_dark_dwell_parks_on_battery(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(panel_w=cfg.night_w / 2)
    evening = core.hold(cfg.night_dwell_s - 1.0, dt=1.0)
    assert {x.state for x in evening} == {State.CLEANING}
    d = core.hold(2.0, dt=1.0)[-1]
    assert d.state is State.NIGHT and d.goal is Goal.PARK and d.power is PowerSource.BATTERY
    assert not d.motors.brushing and d.motors.moving  # driving to the parking spot
    assert core.step(arrived=True).motors == ALL_BRAKED
    assert core.kinds() == ["power_source", "night"]


def test_headlights_at_night_do_not_end_it_but_daylight_does(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(panel_w=0.0)
    core.hold(cfg.night_dwell_s + 1.0, dt=1.0)
    core.hold(cfg.night_dwell_s / 2, dt=1.0, panel_w=40.0)  # a flash of light
    assert {x.state for x in core.hold(60.0, dt=1.0)} == {State.NIGHT}
    core.set(panel_w=40.0)
    d = core.hold(max(cfg.night_dwell_s, cfg.panel_return_s) + 1.0, dt=1.0)[-1]
    assert d.state is State.CLEANING and d.power is PowerSource.PANEL
    assert core.kinds().count("day") == 1


def test_low_battery_parks_and_resumes_only_above_resume_soc(core: CoreDriver) -> None:
    cfg = core.cfg
    d = core.step(battery_soc=cfg.low_soc - 0.01)
    assert d.state is State.LOW_BATTERY and d.goal is Goal.PARK and not d.motors.brushing
    assert [(a.kind, a.severity) for a in core.alerts] == [("low_battery", Severity.WARNING)]
    middle = (cfg.low_soc + cfg.resume_soc) / 2
    assert {x.state for x in core.hold(60.0, battery_soc=middle)} == {State.LOW_BATTERY}  # hysteresis
    d = core.step(battery_soc=cfg.resume_soc + 0.01)
    assert d.state is State.CLEANING
    assert core.kinds() == ["low_battery", "battery_ok"]


@pytest.mark.parametrize(
    "over", [{"battery_soc": 0.05}, {"battery_soc": 0.5, "battery_v": 9.4}], ids=["by charge", "by voltage"]
)
def test_critical_battery_brakes_parks_and_powers_down(core: CoreDriver, over: dict[str, float]) -> None:
    core.set(panel_w=1.0, **over)  # a dark panel: the battery alone
    d = core.step()
    assert d.state is State.CRITICAL_PARKING and d.goal is Goal.PARK and not d.motors.brushing
    assert d.power is PowerSource.BATTERY and d.power_down == ""
    d = core.step(arrived=True)
    assert d.state is State.CRITICAL_BATTERY and d.motors == ALL_BRAKED
    assert d.power is PowerSource.BATTERY  # the loads stay on the battery: the panel cannot carry them
    assert d.power_down == "critical_battery"
    assert [(a.kind, a.severity) for a in core.alerts if a.severity is Severity.CRITICAL] == [
        ("critical_battery", Severity.CRITICAL)
    ]


def test_critical_battery_stays_latched_until_low_soc_then_parks_as_low(core: CoreDriver) -> None:
    cfg = core.cfg
    core.step(battery_soc=cfg.critical_soc - 0.02)
    core.clear_alerts()
    above_critical = (cfg.critical_soc + cfg.low_soc) / 2
    states = {x.state for x in core.hold(cfg.critical_drive_s + 60.0, battery_soc=above_critical)}
    assert states == {State.CRITICAL_PARKING, State.CRITICAL_BATTERY}
    assert core.state is State.CRITICAL_BATTERY  # the driving time is spent: braked where it stands
    d = core.step(battery_soc=cfg.low_soc + 0.01)
    assert d.state is State.LOW_BATTERY
    assert core.kinds() != [], "leaving critical battery raised no alert (power: alerts at each step)"


# ---- modes -----------------------------------------------------------------------------------------------


def drive(core: CoreDriver, left: float, right: float, at: float | None = None) -> object:
    t = core.t + 0.05
    return core.step(
        0.05, commands=[Command(CommandKind.DRIVE, at=t if at is None else at, left=left, right=right)]
    )


def test_manual_mode_drives_from_commands_and_stops_after_the_deadman(core: CoreDriver) -> None:
    cfg = core.cfg
    assert core.command(CommandKind.SET_MODE, mode=Mode.MANUAL).state is State.MANUAL
    d = drive(core, 1.0, 1.0)
    assert d.motors.drive_left == PinState(1, 0, cfg.manual_max_duty) and not d.motors.brushing
    sent = core.t
    moving = core.hold(cfg.deadman_s - 0.05, dt=0.05)
    assert all(x.motors.moving for x in moving)
    core.step(sent + cfg.deadman_s + 0.01 - core.t)
    assert core.last is not None and core.last.motors == ALL_BRAKED
    assert "deadman" in core.last.reason


def test_drive_command_stamped_in_the_future_still_stops_after_the_deadman(core: CoreDriver) -> None:
    core.command(CommandKind.SET_MODE, mode=Mode.MANUAL)
    drive(core, 1.0, 1.0, at=core.t + 3600.0)  # a sender on another clock
    d = core.hold(core.cfg.deadman_s + 0.2)[-1]
    assert d.motors == ALL_BRAKED, "the deadman never fired for a command stamped in the future"


def test_drive_commands_are_ignored_outside_manual_mode(core: CoreDriver) -> None:
    d = drive(core, -1.0, -1.0)
    assert d.state is State.CLEANING and d.motors.drive_left.in1 == 1  # navigation still drives


def test_paused_mode_stops_everything_until_the_operator_chooses(core: CoreDriver) -> None:
    d = core.command(CommandKind.SET_MODE, mode=Mode.PAUSED)
    assert d.state is State.PAUSED and d.motors == ALL_BRAKED and d.goal is Goal.HOLD
    assert {x.state for x in core.hold(60.0)} == {State.PAUSED}
    assert core.command(CommandKind.SET_MODE, mode=Mode.AUTO).state is State.CLEANING


def test_estop_latches_until_an_explicit_reset(core: CoreDriver) -> None:
    d = core.command(CommandKind.ESTOP, source="web")
    assert d.state is State.ESTOP and d.motors == ALL_BRAKED
    assert [(a.kind, a.severity) for a in core.alerts] == [("estop", Severity.CRITICAL)]
    for mode in (Mode.MANUAL, Mode.AUTO, Mode.PAUSED, Mode.AUTO):
        assert core.command(CommandKind.SET_MODE, mode=mode).state is State.ESTOP
    assert {x.state for x in core.hold(60.0)} == {State.ESTOP}
    assert core.command(CommandKind.RESET).state is State.CLEANING


def test_link_loss_faults_and_self_clears_after_fault_clear_s(core: CoreDriver) -> None:
    cfg = core.cfg
    d = core.step(link_ok=False)
    assert d.state is State.FAULT and d.motors == ALL_BRAKED and "link" in d.reason
    assert [(a.kind, a.severity) for a in core.alerts] == [("fault", Severity.CRITICAL)]
    waiting = core.hold(cfg.fault_clear_s - 0.1)
    assert {x.state for x in waiting} == {State.FAULT}
    assert core.hold(0.5)[-1].state is State.CLEANING
    assert core.kinds() == ["fault", "fault_cleared"]


def test_flapping_link_keeps_the_fault_until_steady(core: CoreDriver) -> None:
    cfg = core.cfg
    for _ in range(20):
        core.step(link_ok=False)
        assert {x.state for x in core.hold(cfg.fault_clear_s * 0.8)} == {State.FAULT}
    assert core.hold(cfg.fault_clear_s + 0.1)[-1].state is State.CLEANING


@pytest.mark.parametrize(
    ("sensor", "over"),
    [
        ("tray scale", {"tray_t": -100.0}),
        ("tray scale", {"tray_kg": None}),
        ("rain sensor", {"rain_t": -100.0}),
        ("rain sensor", {"raining": None}),
        ("power monitor", {"power_t": -100.0}),
        ("power monitor", {"battery_soc": None}),
        ("power monitor", {"power_t": math.nan}),
    ],
)
def test_stale_required_sensor_faults_with_its_name(
    core: CoreDriver, sensor: str, over: dict[str, object]
) -> None:
    d = core.step(**over)
    assert d.state is State.FAULT and d.motors == ALL_BRAKED
    assert sensor in d.reason


def test_boot_stays_in_fault_until_everything_is_healthy_for_fault_clear_s(cfg: CoreConfig) -> None:
    d = CoreDriver(cfg)
    first = d.step()
    assert first.state is State.FAULT and first.motors == ALL_BRAKED
    assert d.until(lambda x: x.state is not State.FAULT, 10.0).state is State.CLEANING
    assert d.t >= cfg.fault_clear_s


# ---- position: GPS and the fence -------------------------------------------------------------------------


def test_gps_lost_waits_braked_and_alerts_once_after_gps_alert_s(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(gps_ok=False, left=0.0, right=0.0, reason="no fix")
    waiting = core.hold(cfg.gps_alert_s - 1.0, dt=0.5)
    assert {x.state for x in waiting} == {State.GPS_WAIT}
    assert all(x.motors == ALL_BRAKED for x in waiting)
    assert "no fix" in waiting[-1].reason
    assert core.kinds() == []
    core.hold(cfg.gps_alert_s, dt=0.5)
    assert [(a.kind, a.severity) for a in core.alerts] == [("gps_lost", Severity.WARNING)]
    core.set(gps_ok=True, left=0.6, right=0.6)
    assert core.step().state is State.CLEANING
    core.set(gps_ok=False)
    core.hold(cfg.gps_alert_s + 1.0, dt=0.5)
    assert core.kinds() == ["gps_lost", "gps_lost"]  # a new outage is a new event


def test_stale_guidance_never_drives(core: CoreDriver) -> None:
    d = core.step(guidance_t=core.t - 5.0)
    assert d.state is State.GPS_WAIT and d.motors == ALL_BRAKED


def test_outside_the_fence_stops_cleaning_alerts_once_and_follows_guidance_back(core: CoreDriver) -> None:
    core.set(inside_fence=False, left=-0.3, right=0.3)
    decisions = core.hold(10.0)
    assert {x.state for x in decisions} == {State.OUTSIDE_FENCE}
    assert not any(x.motors.brushing for x in decisions)
    assert decisions[-1].motors.moving  # navigation steers back in on a good fix
    assert [(a.kind, a.severity) for a in core.alerts] == [("geofence", Severity.CRITICAL)]
    core.set(inside_fence=True, left=0.6, right=0.6)
    assert core.step().state is State.CLEANING


def test_route_done_parks_and_a_new_auto_command_starts_again(core: CoreDriver) -> None:
    d = core.step(route_done=True)
    assert d.state is State.ROUTE_DONE and d.goal is Goal.PARK and not d.motors.brushing
    assert core.kinds() == ["route_done"]
    core.set(arrived=True)
    assert core.step().motors == ALL_BRAKED
    core.set(arrived=False)
    d = core.command(CommandKind.SET_MODE, mode=Mode.AUTO)  # the supervisor restarts navigation on it
    assert d.state is State.CLEANING, "an auto command while already in auto did not start the route again"


def test_reset_starts_a_finished_route_again(core: CoreDriver) -> None:
    core.step(route_done=True)
    assert core.command(CommandKind.RESET).state is State.CLEANING


def test_step_is_pure_same_inputs_same_outputs(cfg: CoreConfig) -> None:
    from conftest import healthy_snap

    st = CoreState()
    snap = healthy_snap(10.0, guidance=Guidance(0.5, 0.5, gps_ok=True))
    assert step(st, snap, 10.0, cfg) == step(st, snap, 10.0, cfg)


def test_stuck_retries_by_itself_after_the_wait_a_bounded_number_of_times(core: CoreDriver) -> None:
    cfg = core.cfg
    assert (cfg.stuck_retry_s, cfg.stuck_retries) == (600.0, 3)
    core.set(distance_m=0.3)  # the bin never moves
    core.until(lambda d: d.state is State.STUCK, 60.0)
    stuck_at = core.t
    retries_at: list[float] = []
    for n in range(1, cfg.stuck_retries + 1):
        core.clear_alerts()
        # Halted for the whole wait, then an escape again, with a warning that goes out like every alert.
        d = core.until(lambda d: d.state is not State.STUCK, cfg.stuck_retry_s + 5.0)
        retries_at.append(core.t)
        assert d.state in (State.OBSTACLE_STOP, State.ESCAPING, State.CLEANING)
        (retry,) = [a for a in core.alerts if a.kind == "stuck_retry"]
        assert retry.severity is Severity.WARNING and f"retry {n} of {cfg.stuck_retries}" in retry.message
        core.until(lambda d: d.state is State.STUCK, 60.0)
    assert retries_at[0] - stuck_at == pytest.approx(cfg.stuck_retry_s, abs=0.2)
    last = [a for a in core.alerts if a.kind == "stuck"][-1]
    assert "no automatic retries left" in last.message
    # Retries used up on this obstacle: it now waits for a person.
    assert {d.state for d in core.hold(3 * cfg.stuck_retry_s, dt=1.0)} == {State.STUCK}
    assert core.command(CommandKind.RESET).state is not State.STUCK


def test_stuck_retry_that_finds_the_way_clear_resumes_and_a_new_obstacle_gets_fresh_retries(
    core: CoreDriver,
) -> None:
    cfg = core.cfg
    core.set(distance_m=0.3)
    core.until(lambda d: d.state is State.STUCK, 60.0)
    core.set(distance_m=4.0)  # someone moved the bin during the wait
    d = core.until(lambda d: d.state is not State.STUCK, cfg.stuck_retry_s + 5.0)
    assert d.state is State.CLEANING and d.motors.moving
    core.hold(30.0)  # clear driving forgives the tries and the retries
    core.set(distance_m=0.3)
    core.until(lambda d: d.state is State.STUCK, 60.0)
    assert (
        f"{cfg.stuck_retries} automatic retries left"
        in [a for a in core.alerts if a.kind == "stuck"][-1].message
    )


def test_stuck_does_not_retry_outside_auto_and_reset_clears_at_once(core: CoreDriver) -> None:
    core.set(distance_m=0.3)
    core.until(lambda d: d.state is State.STUCK, 60.0)
    assert core.command(CommandKind.RESET).state is not State.STUCK  # at once, no waiting
