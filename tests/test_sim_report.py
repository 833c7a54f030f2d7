"""The run report: exactly the keys the issue lists, safety reaction times measured, plots written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from robot.core.types import (
    ALL_BRAKED,
    BRAKE,
    Alert,
    Decision,
    Goal,
    Mode,
    MotorOutputs,
    PinState,
    PowerSource,
    Severity,
    State,
)
from sim import scenario as scen
from sim.report import PLOT_FILES, REPORT_KEYS, Recorder
from sim.world import World

DT = 0.05
FWD = PinState(1, 0, 180)
BR = PinState(1, 0, 255)
CLEANING = MotorOutputs(FWD, FWD, BR, BR, BR)


def decision(
    state: State, motors: MotorOutputs, goal: Goal = Goal.ROUTE, alerts: tuple[Alert, ...] = ()
) -> Decision:
    return Decision(state, Mode.AUTO, motors, PowerSource.BATTERY, goal, "test", alerts)


def world(extra: str = "") -> World:
    return World(scen.parse(f"start = 2024-03-15T10:00:00\nduration_h = 1\n{extra}", "t.toml"))


def step(w: World, rec: Recorder, t: float, d: Decision) -> None:
    w.advance(DT, d.motors)
    rec.step(t, DT, d, d.motors)


def test_report_has_exactly_the_issue_keys_and_sane_values(tmp_path: Path) -> None:
    w = world("[litter]\nkg_per_m2 = 0.1\n[weather]\nrain = [{ from = 20, to = 30 }]\n")
    a, b = w.site.route.points[0], w.site.route.points[1]
    w.x, w.y, w.heading = a[0], a[1], math.atan2(b[1] - a[1], b[0] - a[0])
    rec = Recorder(w)
    alert = Alert("rain", Severity.WARNING, "rain: heading for shelter", 20.0)
    for i in range(1, 801):
        t = i * DT
        if t < 20.0:
            d = decision(State.CLEANING, CLEANING)
        elif t < 20.0 + DT / 2:
            d = decision(State.SHELTERING, ALL_BRAKED, Goal.SHELTER, (alert,))
        else:
            d = decision(State.SHELTERING, ALL_BRAKED, Goal.SHELTER)
        step(w, rec, t, d)
    rec.finish(40.0)
    files = rec.write(tmp_path, wall_s=0.5)
    report = json.loads((tmp_path / "report.json").read_text())
    assert tuple(report) == REPORT_KEYS
    assert report["simulated_s"] == pytest.approx(40.0)
    assert report["wall_s"] == 0.5
    assert report["time_in_state_s"] == pytest.approx({"cleaning": 19.95, "sheltering": 20.05}, abs=DT)
    assert set(report["energy_wh"]) == {"panel", "battery"}
    assert report["energy_wh"]["battery"] > 0 and report["energy_wh"]["panel"] > 0
    assert report["litter_collected_kg"] > 0 and report["area_cleaned_m2"] > 0
    assert 0 < report["route_completion"] < 1
    assert (report["storms"], report["shelter_reached"], report["geofence_exits"]) == (1, 0, 0)
    assert report["alerts"] == [
        {"kind": "rain", "severity": "warning", "message": alert.message, "at_s": 20.0}
    ]
    rain = [e for e in report["safety_events"] if e["kind"] == "rain"]
    assert len(rain) == 1 and rain[0]["reaction_ms"] == pytest.approx(0.0, abs=DT * 1000)
    assert [f.name for f in files] == ["report.json", *PLOT_FILES]
    for name in PLOT_FILES:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_obstacle_reaction_is_the_time_until_the_wheels_stop_driving_forward() -> None:
    w = world("[[obstacle]]\nx = 1.6\ny = 0.0\nradius_m = 0.3\n")
    w.x, w.y, w.heading = 0.0, 0.0, 0.0
    rec = Recorder(w, stop_distance_m=0.5)
    t = 0.0
    seen = None
    # Drive on for 0.25 s after the obstacle comes inside the stop distance, then brake.
    while t < 5.0:
        t += DT
        d = w.true_distance_m()
        if seen is None and d is not None and d < 0.5:
            seen = t
        late = seen is not None and t >= seen + 0.25
        step(
            w,
            rec,
            t,
            decision(State.CLEANING if not late else State.OBSTACLE_STOP, ALL_BRAKED if late else CLEANING),
        )
    events = [e.to_json() for e in rec.events]
    assert [e["kind"] for e in events] == ["obstacle"]
    assert events[0]["reaction_ms"] == pytest.approx(250.0, abs=DT * 1000 + 1)


def test_link_cut_reaction_and_tray_full_never_handled() -> None:
    w = world("[robot]\ntray_kg = 1.95\n")
    rec = Recorder(w, tray_full_kg=1.9)
    rec.link_cut(0.0)
    brushing = MotorOutputs(BRAKE, BRAKE, BR, BR, BR)
    step(w, rec, DT, decision(State.CLEANING, brushing))
    step(w, rec, 2 * DT, decision(State.CLEANING, ALL_BRAKED))
    w.tray = 0.0
    step(w, rec, 3 * DT, decision(State.CLEANING, ALL_BRAKED))
    w.tray = 2.0  # full again, and the robot keeps brushing past the give-up time
    t = 3 * DT
    for _ in range(int(61.0 / DT)):
        t += DT
        step(w, rec, t, decision(State.CLEANING, brushing))
    got = [(e.kind, e.reaction_ms) for e in rec.events]
    assert got[0] == ("link_cut", pytest.approx(2 * DT * 1000))
    assert got[1] == ("tray_full", None)
    assert len(got) == 2


def test_rain_on_a_robot_in_the_shelter_asks_no_reaction_but_parked_elsewhere_it_does() -> None:
    w = world("[weather]\nrain = [{ from = 1, to = 30 }]\n")
    w.x, w.y = w.site.shelter
    rec = Recorder(w)
    parked = decision(State.NIGHT, ALL_BRAKED, Goal.PARK)
    for i in range(1, 41):
        step(w, rec, i * DT, parked)
    events = [e.to_json() for e in rec.events]
    assert events == [{"kind": "rain", "at_s": pytest.approx(1.0), "required": False}]
    # At the park (rain outranks night: the shelter is where it must go), the reaction is asked for and timed.
    w = world("[weather]\nrain = [{ from = 1, to = 30 }]\n")
    rec = Recorder(w)
    for i in range(1, 41):
        t = i * DT
        step(w, rec, t, parked if t < 1.5 else decision(State.SHELTERING, ALL_BRAKED, Goal.SHELTER))
    ev = rec.events[0].to_json()
    assert ev["required"] is True and ev["reaction_ms"] == pytest.approx(500.0, abs=DT * 1000 + 1)
    assert ev["done_ms"] is None  # never got there


def test_a_full_tray_on_a_robot_already_stopped_asks_no_reaction() -> None:
    w = world("[robot]\ntray_kg = 1.0\n")
    rec = Recorder(w, tray_full_kg=1.9)
    stopped = decision(State.PAUSED, ALL_BRAKED)
    step(w, rec, DT, stopped)
    w.tray = 2.0  # emptied into by hand while paused: nothing runs, nothing to stop
    step(w, rec, 2 * DT, stopped)
    assert [e.to_json() for e in rec.events] == [
        {"kind": "tray_full", "at_s": pytest.approx(2 * DT), "required": False}
    ]


def test_time_to_react_and_time_to_finish_are_apart() -> None:
    w = world("[[obstacle]]\nx = 2.2\ny = 0.0\nradius_m = 0.3\n")
    w.x, w.y, w.heading = 0.0, 0.0, 0.0
    rec = Recorder(w, stop_distance_m=0.5)
    t = 0.0
    braked = False
    for _ in range(200):  # 10 s
        t += DT
        d = w.true_distance_m()
        braked = braked or (d is not None and d < 0.5)
        step(
            w,
            rec,
            t,
            decision(State.OBSTACLE_STOP, ALL_BRAKED) if braked else decision(State.CLEANING, CLEANING),
        )
    ev = rec.events[0].to_json()
    assert ev["kind"] == "obstacle" and ev["required"] is True
    # Braked at once (the step it came inside the stop distance), but the wheels take a few of the brake's
    # 0.08 s time constants to stand still.
    assert ev["reaction_ms"] == pytest.approx(0.0, abs=DT * 1000)
    assert 100.0 <= ev["done_ms"] <= 600.0
    assert rec.world.collisions == 0


def test_a_storm_is_rain_long_enough_to_be_confirmed() -> None:
    text = "start = 2024-03-15T10:00:00\nduration_h = 1\n[weather]\n"
    text += "rain = [{ from = 10, to = 10.5 }, { from = 20, to = 40 }]\n"
    w = World(scen.parse(text, "t.toml"), rain_confirm_s=1.0)
    for _ in range(int(15 / DT)):
        w.advance(DT, ALL_BRAKED)
    assert w.storms == 0  # half a second of drizzle: the sensor rule never confirms it
    for _ in range(int(10 / DT)):
        w.advance(DT, ALL_BRAKED)
    assert w.storms == 1 and w.is_raining


def test_a_long_day_plots_the_last_finished_pass_over_a_heat_map(tmp_path: Path) -> None:
    from sim.report import Trace, _last_pass, plot

    w = world()
    rec = Recorder(w)
    for i in range(1, 21):
        step(w, rec, i * DT, decision(State.CLEANING, ALL_BRAKED))
    # Three passes round a 20 m x 4 m loop, one sample a second at 1 m/s, then parked (pass 3, unfinished).
    loop = [(float(k), 0.0) for k in range(20)] + [(20.0 - k, 4.0) for k in range(20)]
    pts = loop * 3 + [(0.0, 0.0)] * 30
    tr = Trace()
    for i, (x, y) in enumerate(pts):
        tr.t.append(float(i))
        tr.x.append(x)
        tr.y.append(y)
        tr.gps_x.append(x + 0.5)
        tr.gps_y.append(y)
        tr.soc.append(0.8)
        tr.panel_w.append(30.0)
        tr.load_w.append(10.0)
        tr.tray_kg.append(0.0)
        tr.passes.append(min(i // 40, 3))
    assert _last_pass(tr) == (80, 120)  # the third loop: the fourth "pass" is the parking after it
    rec.trace = tr
    rec.finish(1.0)
    files = plot(rec, tmp_path)
    assert (tmp_path / "track.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(files) == 3
    tr.passes = [0] * len(pts)
    assert _last_pass(tr) is None  # one pass: the whole track is drawn as it is
