"""The simulator's world: motion, power, litter, weather, obstacles and GPS behave like the robot's."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time

import pytest

from robot.core.types import ALL_BRAKED, BRAKE, COAST, MotorOutputs, PinState, PowerSource
from sim import scenario as scen
from sim.world import (
    BRUSH_W,
    CAPACITY_AH,
    CONTROLLER_EFF,
    DRIVE_W,
    GPS_TTFF_S,
    MAX_WHEEL_SPEED,
    PI_W,
    WALKER_GAP_M,
    WALKER_PATIENCE_S,
    WHEEL_BASE_M,
    World,
    ocv,
)

DT = 0.05
BRUSHES_ON = PinState(1, 0, 255)


def make(extra: str = "", start: str = "2024-03-15T12:00:00", hours: float = 4.0, seed: int = 1) -> World:
    text = f"start = {start}\nduration_h = {hours}\nseed = {seed}\n{extra}"
    return World(scen.parse(text, "test.toml"))


def drive(left: int, right: int, brushes: bool = False) -> MotorOutputs:
    def ch(duty: int) -> PinState:
        if duty == 0:
            return BRAKE
        return PinState(1, 0, duty) if duty > 0 else PinState(0, 1, -duty)

    b = BRUSHES_ON if brushes else BRAKE
    return MotorOutputs(ch(left), ch(right), b, b, b)


def run(w: World, seconds: float, pins: MotorOutputs, dt: float = DT) -> None:
    for _ in range(round(seconds / dt)):
        w.advance(dt, pins)


def place(w: World, x: float, y: float, heading: float) -> None:
    w.x, w.y, w.heading = x, y, heading


# ---- motion ------------------------------------------------------------------------------------------------


def test_full_duty_drives_straight_at_300_rpm_wheel_speed() -> None:
    w = make()
    place(w, 0.0, 0.0, 0.0)
    run(w, 10.0, drive(255, 255))
    assert pytest.approx(1.5708, abs=1e-3) == MAX_WHEEL_SPEED
    assert w.speed_m_s == pytest.approx(MAX_WHEEL_SPEED, rel=1e-3)
    # First-order start: about tau x v lost to the ramp.
    assert 14.8 < w.x < 15.7
    assert w.y == pytest.approx(0.0, abs=1e-9)
    assert w.heading == pytest.approx(0.0, abs=1e-9)


def test_speed_follows_en_duty() -> None:
    w = make()
    run(w, 5.0, drive(128, 128))
    assert w.speed_m_s == pytest.approx(MAX_WHEEL_SPEED * 128 / 255, rel=1e-3)


def test_opposite_wheels_turn_on_the_spot_counter_clockwise() -> None:
    w = make()
    place(w, 1.0, 2.0, 0.0)
    run(w, 3.0, drive(-255, 255))
    assert (w.x, w.y) == pytest.approx((1.0, 2.0), abs=1e-9)
    before = w.heading
    w.advance(DT, drive(-255, 255))
    turned = (w.heading - before) % (2 * math.pi)
    assert turned == pytest.approx(2 * MAX_WHEEL_SPEED / WHEEL_BASE_M * DT, rel=1e-3)


def test_unequal_wheels_drive_an_arc_of_the_kinematic_radius() -> None:
    w = make()
    place(w, 0.0, 0.0, 0.0)
    run(w, 3.0, drive(128, 255))  # settle to steady speeds
    vl, vr = w.vl, w.vr
    radius = WHEEL_BASE_M / 2 * (vr + vl) / (vr - vl)
    # Over a further quarter of a circle, the distance from the turn centre stays the radius.
    cx = w.x - radius * math.sin(w.heading)
    cy = w.y + radius * math.cos(w.heading)
    run(w, 2.0, drive(128, 255))
    assert math.hypot(w.x - cx, w.y - cy) == pytest.approx(radius, rel=1e-2)


def test_brake_stops_within_a_few_centimetres_and_coasting_rolls_on() -> None:
    braked, coasting, all_low = make(), make(), make()
    for w in (braked, coasting, all_low):
        place(w, 0.0, 0.0, 0.0)
        run(w, 3.0, drive(180, 180))
    run(braked, 1.0, ALL_BRAKED)
    coast = PinState(1, 0, 0)  # direction set, EN 0: free-wheeling
    run(coasting, 1.0, MotorOutputs(coast, coast, BRAKE, BRAKE, BRAKE))
    # 00 with EN low is not a brake on an L298N: the bridge is off and the wheels roll on.
    run(all_low, 1.0, MotorOutputs(COAST, COAST, BRAKE, BRAKE, BRAKE))
    x_before = 3.0
    assert abs(braked.speed_m_s) < 0.01
    assert braked.x < coasting.x
    assert all_low.x == pytest.approx(coasting.x) and braked.x < all_low.x
    assert braked.x > x_before - 1.0  # sanity: it did move before braking


# ---- power -------------------------------------------------------------------------------------------------


def test_battery_discharge_at_night_matches_the_load_energy() -> None:
    w = make("[robot]\nbattery_soc = 0.9\n", start="2024-03-15T22:00:00")
    w.set_power_source(PowerSource.BATTERY)
    soc0 = w.soc
    pins = drive(200, 200, brushes=True)
    run(w, 1800.0, pins, dt=0.5)
    t = w.truth()
    expected_load = PI_W + 0.3 + 2 * DRIVE_W * 200 / 255 + 3 * BRUSH_W
    assert t.panel_wh == 0.0
    assert t.battery_out_wh == pytest.approx(expected_load * 0.5, rel=1e-6)
    # Coulomb count against energy at the mean open-circuit voltage.
    mean_v = (ocv(soc0) + ocv(w.soc)) / 2
    assert (soc0 - w.soc) * CAPACITY_AH * mean_v == pytest.approx(t.battery_out_wh, rel=0.02)
    assert w.power_reading().battery_a < 0


def test_panel_charges_the_battery_through_the_controller_when_idle_in_sun() -> None:
    w = make("[robot]\nbattery_soc = 0.3\n", start="2024-03-15T11:00:00")
    w.set_power_source(PowerSource.BATTERY)
    soc0 = w.soc
    run(w, 1800.0, ALL_BRAKED, dt=0.5)
    t = w.truth()
    # Standby draw comes from the battery; the panel's energy arrives through the controller's losses.
    assert t.battery_out_wh == pytest.approx((PI_W + 0.3) * 0.5, rel=1e-6)
    assert t.battery_in_wh == pytest.approx(t.panel_wh * CONTROLLER_EFF, rel=1e-6)
    net_wh = t.battery_in_wh - t.battery_out_wh
    mean_v = (ocv(soc0) + ocv(w.soc)) / 2
    assert (w.soc - soc0) * CAPACITY_AH * mean_v == pytest.approx(net_wh, rel=0.02)
    # Charging is limited to 1 C (2.2 A) even though the panel could give more at noon.
    assert 0.0 < w.battery_a <= 2.2 + 1e-9


def test_on_panel_in_sun_the_loads_run_and_the_surplus_charges() -> None:
    w = make("[robot]\nbattery_soc = 0.5\n", start="2024-03-15T12:00:00")
    w.set_power_source(PowerSource.PANEL)
    run(w, 60.0, drive(180, 180, brushes=True))
    t = w.truth()
    assert w.supply_ratio == 1.0
    assert t.battery_out_wh == 0.0
    assert t.battery_in_wh > 0.0
    assert w.soc > 0.5


def test_on_panel_at_night_the_robot_browns_out_and_cannot_move() -> None:
    w = make(start="2024-03-15T21:00:00")
    w.set_power_source(PowerSource.PANEL)
    place(w, 0.0, 0.0, 0.0)
    run(w, 5.0, drive(255, 255))
    assert w.x == pytest.approx(0.0, abs=1e-9)
    assert w.truth().brownout_s == pytest.approx(5.0, abs=DT)


def test_power_reading_is_consistent() -> None:
    w = make(start="2024-03-15T12:30:00")
    r = w.power_reading()
    assert r.panel_w == pytest.approx(w.panel_available_w, rel=1e-3)
    assert 30.0 < r.panel_w < 60.0
    assert 14.0 < r.panel_v < 19.0  # hot cells at noon: Vmp well below the 18.1 V of STC
    assert 10.5 < r.battery_v < 12.6
    assert r.soc == pytest.approx(0.8)


def test_clouds_and_shade_cut_the_panel() -> None:
    clear = make(start="2024-03-15T12:00:00")
    cloudy = make(
        '[weather]\nclouds = [{ from = "12:00", to = "13:00", cover = 1.0, transmittance = 0.2 }]\n',
        start="2024-03-15T12:00:00",
    )
    assert cloudy.irradiance() == pytest.approx(clear.irradiance() * 0.2)
    shaded = make("[[shade]]\nx = 0.0\ny = 0.0\nradius_m = 5.0\ntransmittance = 0.3\n")
    place(shaded, 0.0, 0.0, 0.0)
    inside = shaded.irradiance()
    place(shaded, 10.0, 0.0, 0.0)
    assert inside == pytest.approx(shaded.irradiance() * 0.3)


def test_broken_clouds_shade_about_the_cover_fraction() -> None:
    w = make(
        '[weather]\nclouds = [{ from = "08:00", to = "16:00", cover = 0.6, transmittance = 0.25,'
        " mean_pass_s = 120 }]\n",
        start="2024-03-15T08:00:00",
        hours=8.0,
    )
    shaded = sum(b - a for a, b, _ in w._clouds)
    assert 0.45 < shaded / (8 * 3600) < 0.75
    assert len(w._clouds) > 40  # many switchovers, not one long shadow


# ---- litter, tray, rain


def _along_route(w: World, seconds: float, brushes: bool) -> None:
    a, b = w.site.route.points[0], w.site.route.points[1]
    place(w, a[0], a[1], math.atan2(b[1] - a[1], b[0] - a[0]))
    run(w, seconds, drive(150, 150, brushes=brushes))


def test_brushes_pick_up_litter_along_the_path_into_the_tray() -> None:
    w = make("[litter]\nkg_per_m2 = 0.1\n")
    _along_route(w, 15.0, brushes=True)
    t = w.truth()
    travelled = 15.0 * MAX_WHEEL_SPEED * 150 / 255
    # About 0.4-0.5 m swath x distance x density, most of it picked up in one pass.
    assert 0.5 * travelled * 0.4 * 0.1 < t.litter_collected_kg < 1.5 * travelled * 0.5 * 0.1
    assert t.tray_kg == pytest.approx(t.litter_collected_kg)
    assert 0.35 * travelled < t.area_cleaned_m2 < 0.65 * travelled


def test_no_pickup_without_all_three_brushes() -> None:
    off = make("[litter]\nkg_per_m2 = 0.1\n")
    _along_route(off, 15.0, brushes=False)
    assert off.truth().litter_collected_kg == 0.0
    two = make("[litter]\nkg_per_m2 = 0.1\n")
    a, b = two.site.route.points[0], two.site.route.points[1]
    place(two, a[0], a[1], math.atan2(b[1] - a[1], b[0] - a[0]))
    on = PinState(1, 0, 255)
    run(two, 15.0, MotorOutputs(PinState(1, 0, 150), PinState(1, 0, 150), on, on, BRAKE))
    assert two.truth().litter_collected_kg == 0.0


def test_tray_is_emptied_at_the_scenario_times() -> None:
    w = make("[robot]\ntray_kg = 1.5\n[[tray_empty]]\nat = 60\n")
    run(w, 59.0, ALL_BRAKED)
    assert w.tray_kg() == pytest.approx(1.5, abs=0.02)
    run(w, 2.0, ALL_BRAKED)
    assert w.tray_kg() == pytest.approx(0.0, abs=0.02)
    assert w.truth().tray_emptied_at == pytest.approx((60.0,), abs=DT)


def test_rain_periods_count_storms_and_shelter() -> None:
    w = make("[weather]\nrain = [{ from = 10, to = 20 }, { from = 30, to = 40 }]\n")
    run(w, 5.0, ALL_BRAKED)
    assert not w.raining()
    run(w, 10.0, ALL_BRAKED)
    assert w.raining()
    run(w, 10.0, ALL_BRAKED)
    assert not w.raining()
    place(w, *w.site.shelter, 0.0)  # in the shelter for the second storm only
    run(w, 20.0, ALL_BRAKED)
    t = w.truth()
    assert (t.storms, t.storms_sheltered) == (2, 1)


# ---- obstacles ---------------------------------------------------------------------------------------------


def test_ultrasonic_sees_an_obstacle_ahead_within_its_cone_and_range() -> None:
    w = make("[[obstacle]]\nx = 3.0\ny = 0.0\nradius_m = 0.3\n")
    place(w, 0.0, 0.0, 0.0)
    d = w.distance_m()
    # Sensor 0.3 m ahead of the centre, the obstacle's near edge at 2.7 m.
    assert d == pytest.approx(2.4, abs=0.05)
    place(w, 0.0, 0.0, math.radians(60))
    assert w.distance_m() == 4.0  # outside the cone: full range, as the real driver reads it
    place(w, -5.0, 0.0, 0.0)
    assert w.distance_m() == 4.0  # beyond range
    assert w.true_distance_m() is None


def test_driving_into_an_obstacle_stops_and_counts_a_collision() -> None:
    w = make("[[obstacle]]\nx = 3.0\ny = 0.0\nradius_m = 0.3\n")
    place(w, 0.0, 0.0, 0.0)
    run(w, 5.0, drive(200, 200))
    assert w.x < 3.0 - 0.3 - 0.3
    assert w.truth().collisions == 1
    run(w, 2.0, drive(-200, -200))  # backing off is allowed
    assert w.x < 2.0


def test_moving_obstacle_walks_across_the_route_and_back() -> None:
    w = make(
        '[[obstacle]]\nkind = "moving"\nx = 0.0\ny = 5.0\nspan_m = 2.0\nspeed_m_s = 1.0\nradius_m = 0.3\n'
    )
    xs = []
    for _ in range(16):
        run(w, 0.5, ALL_BRAKED)
        xs.append(w._obs_pos[0][0])
    assert min(xs) == pytest.approx(-2.0, abs=0.3)
    assert max(xs) == pytest.approx(2.0, abs=0.3)


WALKER = '[[obstacle]]\nkind = "moving"\nx = 0.0\ny = 0.0\nspan_m = 4.0\nspeed_m_s = 1.0\nradius_m = 0.3\n'


def test_a_walker_stops_short_of_a_robot_in_her_way_then_steps_round_it() -> None:
    """She walks from x = -4 towards x = +4; the robot stands at x = 3, 0.2 m to the side of her line. She stops
    with WALKER_GAP_M between the bodies, waits WALKER_PATIENCE_S, then steps round it on her side and walks on:
    never nearer than that gap, and back on her line once past it."""
    w = make(WALKER)
    place(w, 3.0, 0.2, math.pi / 2)  # side on to her: its flank, where none of its sensors looks
    near = w.geometry.radius_m + 0.3 + WALKER_GAP_M
    track = []
    for _ in range(round(8.2 / DT)):  # at 8.3 s she turns at x = 4, and meets it again coming back
        w.advance(DT, ALL_BRAKED)
        track.append(w._obs_pos[0][:2])
    gaps = [math.hypot(x - 3.0, y - 0.2) for x, y in track]
    assert min(gaps) > near - 0.01
    stood = [k for k in range(1, len(track)) if track[k] == track[k - 1]]
    assert len(stood) * DT == pytest.approx(WALKER_PATIENCE_S, abs=0.11)
    assert min(y for _, y in track) < 0.2 - near + 0.01  # round it on her side (below the robot's centre)
    assert track[-1][0] > 3.0 + near and track[-1][1] == pytest.approx(0.0, abs=1e-9)
    assert w.truth().collisions == 0


def test_a_robot_driving_into_a_walker_who_stopped_for_it_is_a_collision() -> None:
    """Her stopping changes nothing about what counts: the robot driving into her is a collision."""
    w = make(WALKER)
    place(w, 3.0, 0.0, math.pi)  # facing her
    run(w, 6.35, ALL_BRAKED)  # she has stopped short of it (at x = 2.2, from 6.2 s)
    assert w._obs_pos[0][0] == pytest.approx(3.0 - w.geometry.radius_m - 0.3 - WALKER_GAP_M, abs=0.06)
    run(w, 1.5, drive(150, 150))
    assert w.truth().collisions == 1


def test_a_walker_with_the_robot_behind_her_walks_on() -> None:
    """She stops only for a robot her next step would bring her nearer to: one just behind her does not stop her."""
    w = make(WALKER)
    run(w, 1.0, ALL_BRAKED)  # she is at x = -3, walking towards +x
    place(w, w._obs_pos[0][0] - 0.75, 0.0, 0.0)
    x0 = w._obs_pos[0][0]
    run(w, 1.0, ALL_BRAKED)
    assert w._obs_pos[0][0] == pytest.approx(x0 + 1.0, abs=0.06)


def test_obstacle_window_limits_when_it_is_there() -> None:
    w = make("[[obstacle]]\nx = 2.0\ny = 0.0\nfrom = 10\nto = 20\n")
    place(w, 0.0, 0.0, 0.0)
    w.advance(DT, ALL_BRAKED)
    assert w.distance_m() == 4.0
    run(w, 12.0, ALL_BRAKED)
    assert w.distance_m() == pytest.approx(1.4, abs=0.05)
    run(w, 10.0, ALL_BRAKED)
    assert w.distance_m() == 4.0


# ---- GPS ---------------------------------------------------------------------------------------------------


def test_gps_has_no_fix_until_first_fix_then_updates_at_1_hz() -> None:
    w = make()
    run(w, GPS_TTFF_S - 1.0, ALL_BRAKED)
    assert w.gps_fix() is None
    run(w, 1.5, ALL_BRAKED)
    first = w.gps_fix()
    assert first is not None and first.mode == 3
    run(w, 0.5, ALL_BRAKED)
    assert w.gps_fix() is first
    run(w, 0.5, ALL_BRAKED)
    assert w.gps_fix() is not first
    assert first.time is not None and first.time.utcoffset().total_seconds() == 0
    # 12:00 IST is 06:30 UTC.
    assert (first.time.hour, first.time.minute) == (6, 30)


def test_gps_error_is_about_2_5_m_cep() -> None:
    w = make(hours=4.0, seed=3)
    place(w, 0.0, 0.0, 0.0)
    errors = []
    for _ in range(3 * 3600):
        w.advance(1.0, ALL_BRAKED)
        fix = w.gps_fix()
        if fix is not None:
            x, y = w.site.to_local(fix.lat, fix.lon)
            errors.append(math.hypot(x, y))
    assert 1.8 < statistics.median(errors) < 3.3


def test_gps_loss_and_jump_faults() -> None:
    w = make(seed=2)
    place(w, 0.0, 0.0, 0.0)
    run(w, 20.0, ALL_BRAKED)
    w.lose_gps(5.0)
    run(w, 4.0, ALL_BRAKED)
    assert w.gps_fix() is None
    run(w, 3.0, ALL_BRAKED)
    assert w.gps_fix() is not None
    w.jump_gps(10.0, 40.0)
    run(w, 2.0, ALL_BRAKED)
    fix = w.gps_fix()
    assert fix is not None
    assert math.hypot(*w.site.to_local(fix.lat, fix.lon)) > 30.0
    run(w, 10.0, ALL_BRAKED)
    fix = w.gps_fix()
    assert fix is not None and math.hypot(*w.site.to_local(fix.lat, fix.lon)) < 15.0


def test_stuck_sensor_repeats_its_last_reading() -> None:
    w = make("[[obstacle]]\nx = 3.0\ny = 0.0\n")
    place(w, 0.0, 0.0, 0.0)
    first = w.distance_m()
    w.stick("distance", 5.0)
    place(w, 1.0, 0.0, 0.0)
    run(w, 1.0, ALL_BRAKED)
    assert w.distance_m() == first
    run(w, 5.0, ALL_BRAKED)
    assert w.distance_m() != first


# ---- the rest ----------------------------------------------------------------------------------------------


def test_same_seed_same_world_other_seed_other_litter() -> None:
    a, b, c = make(seed=5), make(seed=5), make(seed=6)
    for w in (a, b, c):
        run(w, 30.0, drive(150, 120, brushes=True))
    assert a.truth() == b.truth()
    assert a.litter_total_kg != c.litter_total_kg


def test_camera_frame_is_a_jpeg_of_the_obstacle_ahead_and_the_tray() -> None:
    w = make("[[obstacle]]\nx = 1.5\ny = 0.0\n")
    place(w, 0.0, 0.0, 0.0)
    w.tray = 1.5
    view = w.camera_view()
    assert view.obstacle_m == w.true_distance_m() and view.obstacle_m is not None
    assert view.tray_kg == 1.5 and view.raining == w.is_raining
    jpeg = w.camera_jpeg()
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"


def test_advance_is_cheap_enough_for_600x_at_20_hz() -> None:
    w = World(scen.load("crowded_alley"))
    pins = drive(180, 180, brushes=True)
    n = 20_000
    # This thread's CPU time, not the wall clock: other processes on a loaded machine take the cores, not the step.
    t0 = time.thread_time()
    for _ in range(n):
        w.advance(DT, pins)
    per_step_us = (time.thread_time() - t0) / n * 1e6
    assert per_step_us < 40.0  # design budget ~20 us (about 10 us measured); 2x for slower CI cores


def test_world_imports_no_numeric_libraries() -> None:
    code = (
        "import sys, sim.world, sim.scenario, sim.run\n"
        "bad = [m for m in ('numpy', 'pvlib', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
