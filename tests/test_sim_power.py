"""Power in the simulator (issue 11): the shipped power scenarios against the issue's bounds, on the virtual clock.

Each scenario runs in full where the simulator is fast enough (the Pi asleep costs almost nothing) and for its
telling first hour otherwise; docs/power.md lists the figures of the full runs of every shipped scenario.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from robot.core import sun
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState, PowerSource
from sim import scenario as scen
from sim.cli import summary
from sim.report import OFF, REPORT_KEYS
from sim.run import RunResult, run_scenario
from sim.world import (
    CAPACITY_AH,
    HOLDUP_S,
    LVR_V,
    PI_BOOT_S,
    PI_HALT_S,
    PI_OFF_W,
    PI_W,
    World,
    ocv,
)

CRITICAL_SOC = 0.10
DT = 0.05


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("robot").setLevel(logging.ERROR)


def run(name: str, hours: float | None = None) -> RunResult:
    return run_scenario(scen.load(name), duration_s=None if hours is None else hours * 3600.0)


def max_toggles_in_any_hour(result: RunResult) -> int:
    at = [a["at_s"] for a in result.report["alerts"] if a["kind"] == "power_source"]
    return max((sum(1 for b in at if a <= b < a + 3600.0) for a in at), default=0)


def soc_at(result: RunResult, t: float) -> float:
    tr = result.run.recorder.trace
    i = min(range(len(tr.t)), key=lambda k: abs(tr.t[k] - t))
    return tr.soc[i]


def sunrises(world: World) -> list[float]:
    """Scenario times of every sunrise (the sun's centre crossing the horizon) within the run."""
    site = world.scenario.solar_site
    end = world.t
    start = world.utc_time(0.0)
    out = []
    t = start
    while (nxt := sun.next_crossing(t, site.lat, site.lon, 0.0, rising=True)) is not None:
        s = (nxt - start).total_seconds()
        if s > end:
            break
        out.append(s)
        t = nxt + timedelta(hours=1)
    return out


def assert_bounds(result: RunResult) -> None:
    """The issue's bounds for every shipped scenario, and the report's new keys."""
    r = result.report
    assert tuple(r) == REPORT_KEYS
    assert r["brownout_s"] == 0.0
    assert max_toggles_in_any_hour(result) <= 4
    assert r["relay_toggles"] / (r["simulated_s"] / 3600.0) <= 4.0
    assert r["collisions"] == 0
    assert r["false_alerts"] == 0
    assert result.run.world.pi_power_losses == 0  # the charge controller never cut a running controller
    line = summary("x", r, 1.0)
    for figure in ("brown-out 0 s", f"relay {r['relay_toggles']} switches", "collisions 0", "false alerts 0"):
        assert figure in line


def test_the_night_lasts_on_the_battery_with_the_controller_asleep() -> None:
    result = run("night")
    assert_bounds(result)
    r, w = result.report, result.run.world
    assert r["min_battery_soc"] > CRITICAL_SOC  # never critical
    assert "critical_battery" not in [a["kind"] for a in r["alerts"]]
    (dawn,) = sunrises(w)
    assert soc_at(result, dawn) > CRITICAL_SOC + 0.1
    # Parked, then asleep until the wake alarm: one planned power-down for the night, recorded as such.
    (stop,) = result.run.stops
    assert stop[1] == "power_down" and stop[2].startswith("planned power-down for the night; wake alarm")
    assert r["time_in_state_s"][OFF] > 10 * 3600.0
    assert w.wake_alarm is not None and dawn < w.wake_alarm < dawn + 3600.0  # wakes after sunrise
    assert [a["kind"] for a in r["alerts"] if a["kind"] in ("night", "day")] == ["night"]


def test_woken_at_dawn_it_stays_up_without_a_warning_and_goes_back_to_work() -> None:
    """The first night and morning of `three_nights` (the full 72 h run is in docs/power.md: too long here)."""
    result = run("three_nights", hours=14.0)
    assert_bounds(result)
    r, w = result.report, result.run.world
    (dawn,) = sunrises(w)
    assert soc_at(result, dawn) > 0.25  # above power.low_soc: an ordinary night raises no warning
    assert len(result.run.stops) == 1 and result.run.boots == 1  # asleep once, woken once, not asleep again
    woke = result.run.stops[0][0] + r["time_in_state_s"][OFF]
    assert dawn < woke < dawn + 3600.0
    assert [a["kind"] for a in r["alerts"] if a["severity"] != "info"] == []
    assert [a["kind"] for a in r["alerts"] if a["at_s"] > woke and a["kind"] in ("night", "day")] == []
    assert result.run.supervisor is not None and result.run.supervisor.last.state.value in (
        "waiting_for_sun",
        "cleaning",
    )


def test_critical_battery_in_a_storm_shelters_powers_down_and_wakes_without_a_second_sms() -> None:
    result = run("critical_storm", hours=1.2)
    assert_bounds(result)
    r = result.report
    critical = [a for a in r["alerts"] if a["severity"] == "critical"]
    assert [a["kind"] for a in critical] == ["critical_battery"]  # one event, one SMS, across the reboot
    assert r["storms"] == 1 and r["shelter_reached"] == 1  # out of the open rain on the energy left
    assert r["time_in_state_s"]["critical_parking"] > 0.0
    stop_t, reason, detail = result.run.stops[0]
    assert reason == "power_down" and detail.startswith("planned power-down at critical battery")
    # Down within the driving time a critical battery allows (power.critical_drive_s): with the cheap receiver
    # the robot stands at the shelter averaging fixes (issue 13) rather than driving, so it may use all of it.
    (critical_at,) = [a["at_s"] for a in critical]
    assert stop_t <= critical_at + result.run.settings.power.critical_drive_s + 1.0
    assert r["min_battery_soc"] > 0.05  # far above the charge controller's cut: nothing crashed
    # Still storm-dark by day: not night. Woken by the alarm an hour on, the controller came back up.
    assert "night" not in [a["kind"] for a in r["alerts"]]
    assert result.run.boots == 1
    assert any(s > stop_t + 3600.0 for s, _, state in result.run.recorder.trace.segments if state != OFF)


def test_a_shaded_lane_moves_the_loads_at_once_and_the_relay_stays_calm() -> None:
    result = run("shaded_lane", hours=1.0)
    assert_bounds(result)
    r = result.report
    assert r["relay_toggles"] >= 2  # it did go under the tree on the panel, and back to the panel later
    assert result.run.world.truth().route_completion > 0.9


def test_a_midday_cloud_bank_never_browns_the_controller_out() -> None:
    result = run("midday_cloud", hours=1.0)
    assert_bounds(result)
    assert result.report["relay_toggles"] >= 1
    assert result.report["time_in_state_s"].get("cleaning", 0.0) > 3000.0  # the clouds do not stop cleaning


# ---- the world's power model ----------------------------------------------------------------------------------


def world(start: str, soc: float = 0.8, extra: str = "") -> World:
    text = f"start = {start}\nduration_h = 24\nseed = 1\n[robot]\nbattery_soc = {soc}\n{extra}"
    return World(scen.parse(text, "t.toml"))


def advance(w: World, seconds: float, pins: MotorOutputs = ALL_BRAKED, dt: float = DT) -> None:
    for _ in range(round(seconds / dt)):
        w.advance(dt, pins)


CLEANING = MotorOutputs(*([PinState(1, 0, 180)] * 2), *([PinState(1, 0, 255)] * 3))


def test_a_sag_shorter_than_the_holdup_is_ridden_through_a_longer_one_resets_the_pi() -> None:
    w = world("2024-03-15T21:00:00")  # dark: the panel carries nothing
    w.set_power_source(PowerSource.PANEL)
    w.advance(DT, CLEANING)  # one control step on a dark panel: what the one-step reaction costs
    w.set_power_source(PowerSource.BATTERY)
    advance(w, 1.0, CLEANING)
    assert DT < HOLDUP_S and w.brownout_s == 0.0
    w.set_power_source(PowerSource.PANEL)
    advance(w, 3 * DT, CLEANING)  # three steps: past the hold-up, all of it counts
    assert w.brownout_s == pytest.approx(3 * DT)


def test_the_relay_counts_switches_not_selections() -> None:
    w = world("2024-03-15T12:00:00")
    for source in (PowerSource.BATTERY, PowerSource.PANEL, PowerSource.PANEL, PowerSource.BATTERY):
        w.set_power_source(source)
    assert w.truth().relay_toggles == 2


def test_a_planned_power_down_draws_almost_nothing_until_the_wake_alarm_boots_the_pi() -> None:
    w = world("2024-03-15T20:00:00", soc=0.5)
    advance(w, 1.0)
    awake_w = w.load_w
    w.set_wake_alarm(w.t + 3600.0)
    w.pi_halt()
    advance(w, PI_HALT_S - 1.0)
    assert w.pi_state == "halting" and w.load_w == pytest.approx(awake_w)
    advance(w, 2.0)
    assert w.pi_state == "off" and w.load_w == pytest.approx(awake_w - PI_W + PI_OFF_W)
    soc = w.soc
    advance(w, 3500.0, dt=1.0)
    assert w.pi_state == "off"
    # An hour asleep costs the Arduino's and the latch's draw only: about 0.35 Wh of the pack's 24 Wh.
    assert (soc - w.soc) * CAPACITY_AH * ocv(w.soc) == pytest.approx(w.load_w * (3500.0 / 3600.0), rel=0.05)
    advance(w, 100.0, dt=1.0)
    assert w.pi_state == "booting"
    advance(w, PI_BOOT_S, dt=1.0)
    assert w.pi_state == "on" and w.brownout_s == 0.0 and w.pi_power_losses == 0


def test_the_charge_controller_cuts_a_running_pi_at_its_low_voltage_disconnect() -> None:
    """What the planned power-down avoids: at LVD the running controller just loses its supply."""
    w = world("2024-03-15T20:00:00", soc=0.045)
    w.set_power_source(PowerSource.BATTERY)
    advance(w, 3600.0, CLEANING, dt=0.5)
    assert w.lvd_open and w.pi_state == "dead" and w.pi_power_losses == 1
    assert w.brownout_s > 0.0
    assert w.truth().battery_v > 8.5  # the controller protected the pack


def test_after_the_cut_the_pi_boots_when_the_charge_controller_reconnects_at_dawn() -> None:
    w = world("2024-03-16T05:00:00", soc=0.03)
    w.lvd_open, w.pi_state = True, "cut"  # powered down as planned, then cut
    advance(w, 6 * 3600.0, dt=5.0)  # the morning sun charges the pack up past the reconnect voltage
    assert not w.lvd_open and w.pi_state == "on" and w.pi_power_losses == 0
    assert ocv(w.soc) >= LVR_V


# ---- the report's truth checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "soc", "kind", "false"),
    [
        ("2024-03-15T12:00:00", 0.8, "night", True),  # a storm's dark at noon called night
        ("2024-03-15T21:00:00", 0.8, "night", False),
        ("2024-03-15T21:00:00", 0.8, "critical_battery", True),
        ("2024-03-15T21:00:00", 0.09, "critical_battery", False),
        ("2024-03-15T21:00:00", 0.24, "low_battery", False),
        ("2024-03-15T21:00:00", 0.5, "low_battery", True),
        ("2024-03-15T21:00:00", 0.5, "rain", True),  # no rain in this world
        ("2024-03-15T21:00:00", 0.5, "power_source", False),  # not a claim the simulator checks
    ],
)
def test_alerts_the_simulator_knows_to_be_untrue_are_counted(
    start: str, soc: float, kind: str, false: bool
) -> None:
    from robot.core.types import Alert, Decision, Goal, Mode, Severity, State
    from sim.report import Recorder

    w = world(start, soc=soc)
    rec = Recorder(w)
    alert = Alert(kind, Severity.INFO, "x", 0.05)
    d = Decision(State.PAUSED, Mode.PAUSED, ALL_BRAKED, PowerSource.BATTERY, Goal.HOLD, "x", (alert,))
    w.advance(DT, ALL_BRAKED)
    rec.step(DT, DT, d, ALL_BRAKED)
    assert rec.report(1.0)["false_alerts"] == int(false)
