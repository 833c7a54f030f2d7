"""Every row of the priority table entered and cleared, and the conflicts between rows decided by it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import CoreDriver, net_forward

from robot.core.rules import TABLE, Wheels
from robot.core.types import ALL_BRAKED, Command, CommandKind, Goal, Mode, PowerSource, State


@dataclass(frozen=True)
class Walk:
    """How to bring a cleaning robot into a state, and how that state clears (its row's `clears` promise)."""

    enter: Callable[[CoreDriver], object]
    clear: Callable[[CoreDriver], object]


def _rain(c: CoreDriver) -> None:
    c.set(raining=True)
    c.hold(c.cfg.rain_confirm_s + 0.1)


def _dry_out(c: CoreDriver) -> None:
    c.set(raining=False)
    c.hold(max(c.cfg.rain_dry_s, c.cfg.rain_min_shelter_s) + 1.0, dt=1.0)
    c.set(arrived=False)
    c.step()


def _stuck(c: CoreDriver) -> None:
    c.set(distance_m=0.3)
    c.until(lambda d: d.state is State.STUCK, 60.0)


def _escaping(c: CoreDriver) -> None:
    c.set(distance_m=0.3)
    c.until(lambda d: d.state is State.ESCAPING, 10.0)


def _clear_way_and_finish_escape(c: CoreDriver) -> None:
    c.set(distance_m=4.0)
    c.hold(c.cfg.backoff_s + c.cfg.turn_s + 0.2)


WALKS: dict[State, Walk] = {
    State.ESTOP: Walk(lambda c: c.command(CommandKind.ESTOP), lambda c: c.command(CommandKind.RESET)),
    State.FAULT: Walk(
        lambda c: (c.set(link_ok=False), c.step()),
        lambda c: (c.set(link_ok=True), c.hold(c.cfg.fault_clear_s + 0.1)),
    ),
    State.CRITICAL_BATTERY: Walk(
        lambda c: (c.set(battery_soc=c.cfg.critical_soc - 0.05, arrived=True), c.step()),
        lambda c: (c.set(battery_soc=c.cfg.resume_soc + 0.05, arrived=False), c.step()),
    ),
    State.CRITICAL_PARKING: Walk(
        lambda c: (c.set(battery_soc=c.cfg.critical_soc - 0.05), c.step()),
        lambda c: (c.set(battery_soc=c.cfg.resume_soc + 0.05), c.step()),
    ),
    State.STUCK: Walk(_stuck, lambda c: (c.set(distance_m=4.0), c.command(CommandKind.RESET))),
    State.OBSTACLE_STOP: Walk(
        lambda c: (c.set(distance_m=0.3), c.step()),
        lambda c: (c.set(distance_m=c.cfg.clear_distance_m + 0.1), c.hold(c.cfg.quiet_s + 0.5)),
    ),
    State.ESCAPING: Walk(_escaping, _clear_way_and_finish_escape),
    State.MANUAL: Walk(
        lambda c: c.command(CommandKind.SET_MODE, mode=Mode.MANUAL),
        lambda c: c.command(CommandKind.SET_MODE, mode=Mode.AUTO),
    ),
    State.PAUSED: Walk(
        lambda c: c.command(CommandKind.SET_MODE, mode=Mode.PAUSED),
        lambda c: c.command(CommandKind.SET_MODE, mode=Mode.AUTO),
    ),
    State.OUTSIDE_FENCE: Walk(
        lambda c: (c.set(inside_fence=False), c.step()), lambda c: (c.set(inside_fence=True), c.step())
    ),
    State.GPS_WAIT: Walk(lambda c: (c.set(gps_ok=False), c.step()), lambda c: (c.set(gps_ok=True), c.step())),
    State.SHELTERED: Walk(lambda c: (_rain(c), c.set(arrived=True), c.step()), _dry_out),
    State.SHELTERING: Walk(_rain, _dry_out),
    State.LOW_BATTERY: Walk(
        lambda c: (c.set(battery_soc=c.cfg.low_soc - 0.05), c.step()),
        lambda c: (c.set(battery_soc=c.cfg.resume_soc + 0.05), c.step()),
    ),
    State.NIGHT: Walk(
        lambda c: (c.set(panel_w=0.0), c.hold(c.cfg.night_dwell_s + 1.0, dt=1.0)),
        lambda c: (c.set(panel_w=40.0), c.hold(c.cfg.night_dwell_s + 1.0, dt=1.0)),
    ),
    State.WAITING_FOR_SUN: Walk(
        lambda c: (
            c.set(battery_soc=c.cfg.reserve_soc - 0.05, panel_w=10.0),
            c.hold(c.cfg.reserve_dwell_s + 1.0, dt=1.0),
        ),
        lambda c: (c.set(panel_w=40.0), c.hold(c.cfg.reserve_dwell_s + 1.0, dt=1.0)),
    ),
    State.TRAY_FULL: Walk(
        lambda c: (c.set(tray_kg=c.cfg.tray_full_kg + 0.05), c.hold(c.cfg.tray_filter_s + 0.2)),
        lambda c: (c.set(tray_kg=c.cfg.tray_empty_kg / 2), c.hold(c.cfg.tray_filter_s + 0.2)),
    ),
    State.ROUTE_DONE: Walk(lambda c: c.step(route_done=True), lambda c: c.command(CommandKind.RESET)),
    State.CLEANING: Walk(lambda c: c.step(), lambda c: c.step()),
}

ROWS = {r.state: r for r in TABLE}
STATES = [r.state for r in TABLE]


def test_every_row_of_the_table_has_a_walk() -> None:
    assert set(WALKS) == set(ROWS) == set(State)
    assert len(TABLE) == len(set(STATES))  # one row per state


@pytest.mark.parametrize("state", STATES)
def test_each_state_is_entered_obeys_its_row_and_clears_as_promised(core: CoreDriver, state: State) -> None:
    WALKS[state].enter(core)
    d = core.last
    assert d is not None and d.state is state
    row = ROWS[state]
    if row.wheels is Wheels.OFF:
        assert not d.motors.moving
    assert d.motors.brushing == row.brushes  # brushes run only while cleaning
    if state in (
        State.SHELTERING,
        State.LOW_BATTERY,
        State.NIGHT,
        State.ROUTE_DONE,
        State.OUTSIDE_FENCE,
        State.CRITICAL_PARKING,
        State.WAITING_FOR_SUN,
    ):
        assert d.motors.moving  # guided to its goal
    WALKS[state].clear(core)
    assert core.state is State.CLEANING


@pytest.mark.parametrize("state", STATES)
def test_estop_during_every_state_brakes_everything_until_reset(core: CoreDriver, state: State) -> None:
    WALKS[state].enter(core)
    d = core.command(CommandKind.ESTOP)
    assert d.state is State.ESTOP and d.motors == ALL_BRAKED
    decisions = core.hold(30.0, dt=0.5)
    assert {x.state for x in decisions} == {State.ESTOP}
    assert all(x.motors == ALL_BRAKED for x in decisions)
    assert core.command(CommandKind.RESET).state is not State.ESTOP


# After the link comes back, the state the robot was in (latched conditions survive a fault).
AFTER_FAULT = {State.ESTOP: State.ESTOP, State.FAULT: State.CLEANING, State.ESCAPING: State.OBSTACLE_STOP}


@pytest.mark.parametrize("state", STATES)
def test_link_loss_during_every_state_faults_and_the_state_survives(core: CoreDriver, state: State) -> None:
    WALKS[state].enter(core)
    core.set(link_ok=False)
    decisions = core.hold(5.0)
    expected = State.ESTOP if state is State.ESTOP else State.FAULT
    assert {x.state for x in decisions} == {expected}
    assert all(x.motors == ALL_BRAKED for x in decisions)
    core.set(link_ok=True)
    core.hold(core.cfg.fault_clear_s + 0.1)
    assert core.state is AFTER_FAULT.get(state, state)


@pytest.mark.parametrize("state", STATES)
def test_critical_battery_during_every_state_stops_cleaning_then_brakes_and_powers_down(
    core: CoreDriver, state: State
) -> None:
    # Changed with issue 11: a critical battery is a planned end. In auto the robot first drives to the
    # shelter or park on the energy left; in every state it ends braked and, on the battery, powers down.
    WALKS[state].enter(core)
    core.set(battery_soc=core.cfg.critical_soc / 2, panel_w=1.0)
    d = core.step()
    assert not d.motors.brushing
    if state in (State.ESTOP, State.FAULT):
        assert d.state is state and d.motors == ALL_BRAKED
    else:  # obstacles, the fence and the GPS still rule the drive to the park
        assert d.state in STATES[: STATES.index(State.CRITICAL_PARKING) + 1]
        assert d.state is not State.CRITICAL_BATTERY or d.motors == ALL_BRAKED
    d = core.hold(core.cfg.critical_drive_s + 1.0)[-1]
    assert d.state in (State.ESTOP, State.FAULT, State.CRITICAL_BATTERY)
    assert d.motors == ALL_BRAKED and d.power is PowerSource.BATTERY
    assert d.power_down == "critical_battery"


# ---- named conflicts -------------------------------------------------------------------------------------


def test_rain_while_tray_full_goes_to_shelter_and_then_still_waits_to_be_emptied(core: CoreDriver) -> None:
    WALKS[State.TRAY_FULL].enter(core)
    _rain(core)
    d = core.last
    assert d is not None and d.state is State.SHELTERING and d.goal is Goal.SHELTER
    assert d.motors.moving and not d.motors.brushing
    core.set(arrived=True)
    assert core.step().state is State.SHELTERED
    _dry_out(core)
    assert core.state is State.TRAY_FULL  # the tray did not empty itself in the rain
    assert core.kinds().count("tray_full") == 1


def test_obstacle_in_manual_mode_blocks_forward_but_allows_reverse(core: CoreDriver) -> None:
    core.command(CommandKind.SET_MODE, mode=Mode.MANUAL)
    core.set(distance_m=0.3)

    def drive(left: float, right: float) -> object:
        return core.step(
            0.05, commands=[Command(CommandKind.DRIVE, at=core.t + 0.05, left=left, right=right)]
        )

    d = drive(1.0, 1.0)
    assert d.state is State.MANUAL and d.motors == ALL_BRAKED and "forward blocked" in d.reason
    d = drive(0.8, -0.8)  # a turn with one wheel forward also moves toward the obstacle
    assert not d.motors.moving
    d = drive(-0.5, -0.5)
    assert d.state is State.MANUAL and d.motors.moving and net_forward(d.motors) < 0
    assert "obstacle" not in core.kinds()  # no escape manoeuvre in manual: the operator drives


def test_link_loss_while_sheltering_faults_and_keeps_the_shelter(core: CoreDriver) -> None:
    cfg = core.cfg
    _rain(core)
    core.set(arrived=True)
    core.step()
    core.set(link_ok=False)
    assert {x.state for x in core.hold(60.0)} == {State.FAULT}
    core.set(link_ok=True)
    assert core.hold(cfg.fault_clear_s + 0.1)[-1].state is State.SHELTERED
    core.set(raining=False)
    core.hold(cfg.rain_min_shelter_s - 60.0 - cfg.fault_clear_s - 5.0, dt=1.0)
    assert core.state is State.SHELTERED  # the minimum dwell still counts from when sheltering began


def test_night_during_shelter_stays_sheltered_then_parks_for_the_night(core: CoreDriver) -> None:
    _rain(core)
    core.set(arrived=True)
    core.step()
    core.set(panel_w=0.0)
    core.hold(core.cfg.night_dwell_s + 1.0, dt=1.0)
    assert core.state is State.SHELTERED
    core.set(raining=False)
    core.hold(max(core.cfg.rain_dry_s, core.cfg.rain_min_shelter_s) + 1.0, dt=1.0)
    core.set(arrived=False)
    d = core.step()
    assert d.state is State.NIGHT and d.goal is Goal.PARK and not d.motors.brushing


def test_low_battery_during_rain_shelters_first_then_parks_to_charge(core: CoreDriver) -> None:
    _rain(core)
    d = core.step(battery_soc=core.cfg.low_soc - 0.05)
    assert d.state is State.SHELTERING and d.goal is Goal.SHELTER
    core.set(battery_soc=core.cfg.low_soc - 0.05)
    _dry_out(core)
    assert core.state is State.LOW_BATTERY and core.last is not None and core.last.goal is Goal.PARK


def test_gps_lost_on_the_way_to_shelter_waits_braked_with_the_shelter_goal(core: CoreDriver) -> None:
    _rain(core)
    core.set(gps_ok=False)
    d = core.step()
    assert d.state is State.GPS_WAIT and d.goal is Goal.SHELTER and d.motors == ALL_BRAKED
    core.hold(core.cfg.gps_alert_s + 1.0, dt=0.5)
    assert "gps_lost" in core.kinds()


def test_outside_fence_wins_over_rain_and_steers_back_first(core: CoreDriver) -> None:
    _rain(core)
    d = core.step(inside_fence=False)
    assert d.state is State.OUTSIDE_FENCE and not d.motors.brushing


def test_obstacle_on_the_way_to_shelter_stops_at_once(core: CoreDriver) -> None:
    _rain(core)
    d = core.step(distance_m=0.3)
    assert d.state is State.OBSTACLE_STOP and d.motors == ALL_BRAKED


def test_fault_during_escape_abandons_it_and_starts_over_after(core: CoreDriver) -> None:
    _escaping(core)
    core.set(link_ok=False)
    assert core.step().motors == ALL_BRAKED
    core.set(link_ok=True, distance_m=4.0)
    d = core.hold(core.cfg.fault_clear_s + 0.1)[-1]
    assert d.state is State.CLEANING and core.st.escape_phase == "none"


def test_tray_full_in_manual_mode_stays_latched_for_auto(core: CoreDriver) -> None:
    core.command(CommandKind.SET_MODE, mode=Mode.MANUAL)
    core.set(tray_kg=core.cfg.tray_full_kg + 0.05)
    assert {x.state for x in core.hold(10.0)} == {State.MANUAL}
    assert core.command(CommandKind.SET_MODE, mode=Mode.AUTO).state is State.TRAY_FULL


def test_critical_battery_in_sun_stays_up_on_the_panel_and_powers_down_when_it_fails(
    core: CoreDriver,
) -> None:
    # Changed with issue 11: the loads stay on the battery unless the panel can carry them, and a controller
    # running on the panel has no reason to power down while the battery charges.
    d = core.step(battery_soc=0.05, arrived=True)
    assert d.state is State.CRITICAL_BATTERY and d.power is PowerSource.PANEL and d.power_down == ""
    core.set(battery_soc=0.05, arrived=True)
    assert {x.power_down for x in core.hold(60.0)} == {""}
    d = core.step(panel_w=1.0)
    assert d.power is PowerSource.BATTERY and d.power_down == "critical_battery"
