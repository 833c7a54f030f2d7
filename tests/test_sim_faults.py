"""The scenario fault table's part faults: each one reaches the world (and through it the robot) on the
virtual clock, and ends when its duration does."""

from __future__ import annotations

import math
import statistics

import pytest

from robot.core.types import ALL_BRAKED, PowerSource
from robot.errors import ScenarioError
from sim import scenario as scen
from sim.devices.modem import FakeSim800
from sim.run import FaultInjector, build, run_scenario
from sim.world import GPS_TTFF_S, SENSOR_RANGE_M, World

DT = 0.05
HEAD = "start = 2024-03-15T10:00:00\nduration_h = 1\nseed = 3\n[robot]\nbattery_soc = 0.9\n"
HEAD += "[litter]\nkg_per_m2 = 0.05\n"


def world(extra: str = "") -> World:
    return World(scen.parse(HEAD + extra, "test.toml"))


def advance(w: World, seconds: float) -> None:
    for _ in range(round(seconds / DT)):
        w.advance(DT, ALL_BRAKED)


def fault(kind: str, **keys: object) -> str:
    body = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in keys.items())
    return f'[[fault]]\nat = 60\nkind = "{kind}"\n{body}'


def test_degraded_gps_wanders_further_with_fewer_satellites() -> None:
    w = world()
    advance(w, GPS_TTFF_S + 1.0)

    def errors(seconds: int) -> tuple[list[float], list[int]]:
        errs, sats = [], []
        for _ in range(seconds):
            advance(w, 1.0)
            fix = w.gps_fix()
            assert fix is not None
            gx, gy = w.site.to_local(fix.lat, fix.lon)
            errs.append(math.hypot(gx - w.x, gy - w.y))
            sats.append(fix.sats)
        return errs, sats

    good, good_sats = errors(300)
    w.degrade_gps(300.0, cep_m=15.0)
    poor, poor_sats = errors(300)
    # 15 m CEP against the cheap receiver's 2.5 m: the median error grows several times over.
    assert statistics.median(poor) > 3.0 * statistics.median(good)
    assert statistics.mean(poor_sats) < statistics.mean(good_sats) - 2.0
    again, _ = errors(300)  # ended: back to the receiver's own error
    assert statistics.median(again) < statistics.median(poor) / 2.0


def test_false_echo_reads_a_phantom_and_a_missing_echo_reads_full_range() -> None:
    w = world('[[obstacle]]\nkind = "static"\nx = -20.0\ny = -4.0\nradius_m = 0.3\n')
    w.x, w.y, w.heading = -22.0, -4.0, 0.0  # the obstacle 2 m ahead of the centre
    assert w.distance_m() == pytest.approx(2.0 - 0.3 - 0.3, abs=0.05)
    w.echo_fault(10.0, SENSOR_RANGE_M, 1.0)
    assert w.distance_m() == SENSOR_RANGE_M  # missing: nothing heard though the post is there
    w.echo_fault(10.0, 0.3, 1.0)
    assert w.distance_m() == 0.3  # a phantom at 0.3 m
    advance(w, 10.0)
    assert w.distance_m() == pytest.approx(1.4, abs=0.05)  # ended
    w.echo_fault(100.0, 0.3, 0.25)
    phantoms = sum(w.distance_m() == 0.3 for _ in range(2000))
    assert 400 < phantoms < 600  # a quarter of the readings


def test_welded_relay_stays_where_it_was() -> None:
    w = world()
    w.weld_relay(30.0)
    w.set_power_source(PowerSource.PANEL)
    assert w.source is PowerSource.BATTERY and w.relay_toggles == 0
    advance(w, 30.0)
    w.set_power_source(PowerSource.PANEL)
    assert w.source is PowerSource.PANEL and w.relay_toggles == 1


def test_scale_drift_creeps_and_is_re_tared_at_the_end() -> None:
    w = world()
    w.tray = 0.5
    w.drift_scale(1800.0, kg_per_h=0.4)
    advance(w, 900.0)
    assert w.tray_kg() == pytest.approx(0.5 + 0.1, abs=0.015)  # a quarter of an hour at 0.4 kg/h
    advance(w, 901.0)  # past the end (the virtual clock's sum of 50 ms steps lands just short of 1800 s)
    assert w.tray_kg() == pytest.approx(0.5, abs=0.015)


def test_wet_rain_sensor_under_a_dry_sky_sends_the_robot_to_shelter_but_is_no_storm() -> None:
    r = run_scenario(scen.parse(HEAD + fault("rain_sensor_wet", duration_s=120), "t.toml"), duration_s=200.0)
    rep = r.report
    assert rep["storms"] == 0 and rep["shelter_reached"] == 0
    rain = [a for a in rep["alerts"] if a["kind"] == "rain"]
    assert len(rain) == 1 and rain[0]["at_s"] == pytest.approx(61.0, abs=0.2)  # after the 1 s confirmation
    assert rep["false_alerts"] == 1  # the simulator knows the sky was dry
    assert rep["time_in_state_s"].get("sheltering", 0.0) + rep["time_in_state_s"].get("sheltered", 0.0) > 100


def test_pi_reset_on_a_brown_out_reboots_and_carries_on() -> None:
    r = run_scenario(scen.parse(HEAD + fault("pi_reset"), "t.toml"), duration_s=240.0)
    assert r.run.boots == 1 and r.run.world.pi_power_losses == 1
    assert r.run.stops == []  # no planned power-down: it was gone at once
    assert r.report["pi_resets"] == 1
    # Off from the dip until the boot is done (40 s of boot, seen at the 1 s steps of a powered-down Pi).
    assert r.report["time_in_state_s"]["off"] == pytest.approx(40.0, abs=1.1)
    assert r.report["time_in_state_s"]["cleaning"] > 60.0  # and cleaning again after it
    notes = [f["note"] for f in r.run.recorder.faults if f["kind"] == "pi_reset"]
    assert notes == ["the Pi reset by a supply dip"]


def test_pushed_robot_moves_towards_the_heading_and_stops() -> None:
    w = world()
    w.vl = w.vr = 0.5
    x, y = w.x, w.y
    w.push(2.0, 0.0)  # north
    assert (w.x, w.y) == pytest.approx((x, y + 2.0))
    w.push(1.0, 90.0)  # east
    assert (w.x, w.y) == pytest.approx((x + 1.0, y + 2.0))
    assert w.vl == w.vr == 0.0


def test_pushed_in_a_run_moves_the_true_track() -> None:
    sc = scen.parse(HEAD + fault("pushed", distance_m=1.5, heading_deg=180), "t.toml")
    before = run_scenario(sc, duration_s=59.95).run.world
    after = run_scenario(sc, duration_s=60.0).run.world
    # One 50 ms step of driving (< 0.1 m) besides the push 1.5 m south.
    assert after.y - before.y == pytest.approx(-1.5, abs=0.1)


def test_false_echo_stops_the_robot_on_the_open_route() -> None:
    sc = scen.parse(HEAD + fault("echo_false", duration_s=10, distance_m=0.3), "t.toml")
    r = run_scenario(sc, duration_s=80.0).report
    assert r["time_in_state_s"]["cleaning"] > 20.0
    assert r["time_in_state_s"].get("obstacle_stop", 0.0) + r["time_in_state_s"].get("escaping", 0.0) > 1.0
    assert r["collisions"] == 0


def test_modem_without_network_loses_registration_then_gets_it_back() -> None:
    run = build(scen.parse(HEAD + fault("modem_no_network", duration_s=30), "t.toml"))
    modem = FakeSim800(use_pty=False)
    run.parts.modem = modem  # the fast run has no SMS path of its own: give it a modem to fault
    faults = FaultInjector(run)

    def creg() -> bytes:
        modem.read_output()
        modem.feed(b"AT+CREG?\r")
        return modem.read_output()

    assert b"+CREG: 0,1" in creg()
    faults.apply(60.0)
    assert b"+CREG: 0,0" in creg()
    faults.apply(90.0)
    assert b"+CREG: 0,1" in creg()
    assert [f["note"] for f in run.recorder.faults] == ["modem without network for 30 s", "ended"]
    run.supervisor.close()
    run.parts.close()


def test_new_fault_keys_are_checked() -> None:
    def error_of(text: str) -> str:
        with pytest.raises(ScenarioError) as exc:
            scen.parse(HEAD + text, "bad.toml")
        return str(exc.value)

    assert "only a echo_false or pushed fault takes distance_m" in error_of(fault("gps_loss", distance_m=3))
    assert "a pushed fault happens at once; it takes no duration_s" in error_of(fault("pushed", duration_s=3))
    assert "rate = 1.5: must be between 0.0 and 1.0" in error_of(
        fault("echo_missing", duration_s=3, rate=1.5)
    )
    sc = scen.parse(HEAD + fault("scale_drift", duration_s=60), "t.toml")
    assert sc.faults[0].kg_per_h == 0.2
