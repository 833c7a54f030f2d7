"""The in-process simulator run: the real supervisor against the world, faults injected, and the sim CLI."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest

import robot.navigation.navigator as navigator
from sim import cli
from sim import scenario as scen
from sim.report import REPORT_KEYS
from sim.run import RunResult, run_scenario

HEAD = "start = 2024-03-15T10:00:00\nduration_h = 1\nseed = 3\n"
HEAD += "[robot]\nbattery_soc = 0.9\n[litter]\nkg_per_m2 = 0.05\n"


def run_text(text: str, seconds: float) -> RunResult:
    return run_scenario(scen.parse(HEAD + text, "test.toml"), duration_s=seconds)


def events(result: RunResult, kind: str) -> list[dict[str, object]]:
    return [e for e in result.report["safety_events"] if e["kind"] == kind]


def test_a_sunny_morning_cleans_along_the_route() -> None:
    result = run_scenario(scen.load("sunny_day"), duration_s=300.0)
    r = result.report
    assert tuple(r) == REPORT_KEYS
    assert r["simulated_s"] == pytest.approx(300.0)
    assert r["time_in_state_s"].get("cleaning", 0.0) > 60.0
    assert sum(r["time_in_state_s"].values()) == pytest.approx(300.0, abs=0.1)
    assert r["route_completion"] > 0.2
    assert r["litter_collected_kg"] > 0.0 and r["area_cleaned_m2"] > 5.0
    assert r["energy_wh"]["panel"] > 0.0
    assert result.run.world.truth().collisions == 0
    # The supervisor brakes at the end of the run.
    assert not result.run.arduino.pins.moving


def test_link_cut_is_braked_by_the_arduino_watchdog() -> None:
    result = run_text('[[fault]]\nat = 60\nkind = "link_cut"\nduration_s = 5\n', 80.0)
    cut = events(result, "link_cut")
    assert len(cut) == 1
    assert cut[0]["reaction_ms"] is not None
    assert cut[0]["reaction_ms"] <= 300.0 + 50.0  # the 300 ms watchdog, at a 50 ms step
    kinds = [f["kind"] for f in result.run.recorder.faults]
    assert kinds == ["link_cut", "link_replug"]
    # Plugged back in, the link handshakes again and the robot goes back to cleaning.
    after = [s for s in result.run.recorder.trace.segments if s[0] > 65.0]
    assert any(state == "cleaning" for _, _, state in after)


def test_rain_sends_the_robot_to_the_shelter() -> None:
    result = run_text("[weather]\nrain = [{ from = 40, to = 400 }]\n", 420.0)
    r = result.report
    assert r["storms"] == 1
    rain = events(result, "rain")
    assert len(rain) == 1 and rain[0]["reaction_ms"] is not None
    assert rain[0]["reaction_ms"] <= 5000.0
    assert r["shelter_reached"] == 1
    assert r["time_in_state_s"].get("sheltered", 0.0) + r["time_in_state_s"].get("sheltering", 0.0) > 100.0


def test_obstacle_on_the_route_stops_the_robot_before_it_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    # A car pulls in across the lane just ahead of the robot: wide enough that GPS-guided driving (2.5 m CEP)
    # cannot miss it. (Parked there from the start, the robot now sees it at 1.6 m and stops on its memory of the
    # echoes before the sensor reads it inside the stop distance: no reaction to measure. Issue 11.) The car was
    # placed on the first lane at the 2.5 sigma it kept from the fence before issue 13's 4 sigma, which moves
    # the cheap receiver's lane 1.9 m in and the car's edge away from the robot's path: this test is about the
    # reaction, so it keeps that lane.
    monkeypatch.setattr(navigator, "LANE_SIGMAS", 2.5)
    result = run_text("[[obstacle]]\nalong_m = 12.0\nradius_m = 2.0\nfrom = 37.5\nto = 80\n", 120.0)
    stops = events(result, "obstacle")
    assert stops, "the robot never drove towards the obstacle"
    assert all(e["reaction_ms"] is not None and e["reaction_ms"] <= 100.0 for e in stops)
    assert result.run.world.truth().collisions == 0
    assert result.report["time_in_state_s"].get("obstacle_stop", 0.0) > 0.0


def test_corrupted_bytes_are_rejected_and_the_robot_carries_on() -> None:
    result = run_text('[[fault]]\nat = 30\nkind = "corrupt_bytes"\ncount = 40\n', 60.0)
    ard = result.run.arduino
    assert ard.corrupted == 40
    assert ard.crc_errors + ard.bad_frames > 0
    assert result.report["time_in_state_s"].get("cleaning", 0.0) > 20.0


def test_sensor_faults_reach_the_world() -> None:
    text = (
        '[[fault]]\nat = 20\nkind = "gps_loss"\nduration_s = 15\n'
        '[[fault]]\nat = 40\nkind = "gps_jump"\nduration_s = 5\njump_m = 20\n'
        '[[fault]]\nat = 50\nkind = "stuck_sensor"\nsensor = "distance"\nduration_s = 3\n'
        '[[fault]]\nat = 55\nkind = "modem_gone"\nduration_s = 3\n'
    )
    result = run_text(text, 60.0)
    notes = {f["kind"]: f["note"] for f in result.run.recorder.faults}
    assert notes["gps_loss"] == "no fix for 15 s"
    assert notes["gps_jump"] == "fixes 20 m off for 5 s"
    assert notes["stuck_sensor"] == "distance stuck for 3 s"
    assert "modem" in notes["modem_gone"]


def _args(**kw: object) -> argparse.Namespace:
    base = {"config": None, "out": None, "seed": None, "hours": None, "no_plots": False}
    return argparse.Namespace(**(base | kw))


def test_cli_lists_the_shipped_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.cmd_list(_args()) == 0
    out = capsys.readouterr().out
    for name in scen.shipped_names():
        assert name in out


def test_cli_runs_a_scenario_with_a_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["sim", "run", "night", "--hours", "0.02", "--out", str(tmp_path), "--no-plots"])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert tuple(report) == REPORT_KEYS
    assert report["simulated_s"] == pytest.approx(72.0)
    err = capsys.readouterr().err
    assert "100%" in err and "night [" in err


def test_cli_bad_scenario_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["sim", "run", "sunyday"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sunny_day" in err[0]


def test_cli_log_writes_the_decision_trace_only_on_change(tmp_path: Path) -> None:
    scenario = tmp_path / "cut.toml"
    scenario.write_text(HEAD + '[[fault]]\nat = "10:00:40"\nkind = "link_cut"\nduration_s = 5\n')
    log = tmp_path / "logs" / "trace.jsonl"
    args = ["sim", "run", str(scenario), "--hours", str(60 / 3600), "--no-plots", "--log", str(log)]
    rc = cli.main([*args, "--out", str(tmp_path / "o")])
    assert rc == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    decisions = [x for x in lines if x["event"] == "decision"]
    # 1200 steps, a handful of lines: written only when the decision changes.
    assert 2 <= len(decisions) < 40
    assert all(d["inputs"].keys() >= {"distance_m", "raining", "battery_soc", "link_ok"} for d in decisions)
    cut = next(i for i, x in enumerate(lines) if x["event"] == "fault" and x["kind"] == "link_cut")
    assert lines[cut]["t_s"] == pytest.approx(40.0) and lines[cut]["clock"].startswith("2024-03-15T10:00:40")
    # The cut link is what the next decisions are about: the core sees it and brakes.
    after = [x for x in lines[cut + 1 :] if x["event"] == "decision"]
    assert any(x["state"] == "fault" and not x["inputs"]["link_ok"] and not x["moving"] for x in after)
    for a, b in itertools.pairwise(lines):
        if a["event"] == b["event"] == "decision" and not b["alerts"]:
            same = ("state", "mode", "goal", "power", "moving", "brushing")
            assert [a[k] for k in same] != [b[k] for k in same] or a["reason"] != b["reason"]


def test_operator_estop_and_reset_go_through_the_command_queue() -> None:
    ops = '[[operator]]\nat = "10:01:00"\naction = "estop"\n[[operator]]\nat = "10:01:30"\naction = "reset"\n'
    result = run_text(ops, 120.0)
    r = result.report
    assert [(d["at_s"], d["action"], d["note"]) for d in result.run.operator.done] == [
        (60.0, "estop", ""),
        (90.0, "reset", ""),
    ]
    stop = [a for a in r["alerts"] if a["kind"] == "estop"]
    assert len(stop) == 1 and stop[0]["at_s"] == pytest.approx(60.0) and "operator" in stop[0]["message"]
    # Stopped from the step the e-stop was taken until the reset, 30 s at 20 Hz.
    assert r["time_in_state_s"]["estop"] == pytest.approx(30.0, abs=0.06)
    assert any(a["kind"] == "reset" and a["at_s"] == pytest.approx(90.0) for a in r["alerts"])


def test_operator_drives_by_hand_and_empties_the_tray() -> None:
    text = HEAD.replace("battery_soc = 0.9\n", "battery_soc = 0.9\ntray_kg = 1.0\n") + (
        '[[operator]]\nat = "10:00:20"\naction = "mode"\nmode = "manual"\n'
        '[[operator]]\nat = "10:00:30"\naction = "drive"\nleft = 0.6\nright = 0.6\nduration_s = 4\n'
        '[[operator]]\nat = "10:00:50"\naction = "tray_emptied"\n'
    )
    sc = scen.parse(text, "test.toml")
    run = run_scenario(sc, duration_s=29.0).run
    x0, y0 = run.world.x, run.world.y
    result = run_scenario(sc, duration_s=60.0)
    w = result.run.world
    moved = ((w.x - x0) ** 2 + (w.y - y0) ** 2) ** 0.5
    # 4 s at most at the manual duty cap (200/255 of 1.571 m/s, times 0.6): between 1 and 4 m.
    assert 1.0 < moved < 4.0
    assert w.speed_m_s == pytest.approx(0.0, abs=0.01)  # released: braked
    assert w.tray_emptied_at == [pytest.approx(50.0)] and w.tray < 0.01
    actions = [(d["at_s"], d["action"]) for d in result.run.operator.done]
    assert actions == [(20.0, "mode"), (30.0, "drive"), (34.0, "drive"), (50.0, "tray_emptied")]
    assert result.report["time_in_state_s"]["manual"] == pytest.approx(40.0, abs=0.06)


def test_cli_checks_the_expectations_and_prints_the_unmet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "exp.toml"
    text = HEAD.replace("duration_h = 1", "duration_h = 0.02")
    text += '[expect]\nbrownout_s = 0\ncollisions = "> 0"\nstorms = "== shelter_reached"\n'
    scenario.write_text(text)
    rc = cli.main(["sim", "run", str(scenario), "--out", str(tmp_path / "o"), "--no-plots"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    unmet = [x for x in out if x.startswith("unmet:")]
    line = text.splitlines().index('collisions = "> 0"') + 1
    assert unmet == [f"unmet: {scenario} line {line}: expect collisions > 0: got collisions = 0"]
    assert "expectations: 2 of 3 met" in out
    scenario.write_text(text.replace('"> 0"', '"== 0"'))
    assert cli.main(["sim", "run", str(scenario), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert "expectations: 3 of 3 met" in capsys.readouterr().out


def test_cli_batch_runs_scenarios_in_parallel_and_prints_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = HEAD.replace("duration_h = 1", "duration_h = 0.01")
    (tmp_path / "a.toml").write_text(short + "[expect]\nbrownout_s = 0\n")
    (tmp_path / "b.toml").write_text(short + '[expect]\ncollisions = "> 0"\n')
    args = ["sim", "batch", str(tmp_path / "a.toml"), str(tmp_path / "b.toml"), "--jobs", "2"]
    rc = cli.main([*args, "--out", str(tmp_path / "out"), "--no-plots"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].split() == [
        "scenario",
        "sim",
        "h",
        "wall",
        "s",
        "cpu",
        "s",
        "x",
        "wall",
        "x",
        "cpu",
        "verdict",
    ]
    rows = {line.split()[0]: line for line in out[2:4]}
    assert rows["a"].endswith("1/1 met") and rows["b"].endswith("0/1 met")
    assert rows["a"].split()[1] == "0.0" and float(rows["a"].split()[3]) > 0  # 36 s simulated, CPU measured
    assert "2 scenarios, 0.0 h simulated" in out[4] and "on 2 processes" in out[4]
    assert out[5].startswith("step modules: ")  # compiled or pure Python, whichever this run loaded
    assert out[6].startswith("unmet: ") and "b.toml line" in out[6] and "collisions > 0" in out[6]
    for name in ("a", "b"):
        assert json.loads((tmp_path / "out" / name / "report.json").read_text())["simulated_s"] == 36.0
    assert cli.main(["sim", "batch", "nowhere", "--no-plots", "--out", str(tmp_path / "o")]) == 2
    assert "error: scenario 'nowhere'" in capsys.readouterr().out
