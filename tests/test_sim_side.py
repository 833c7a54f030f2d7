"""The side sensors in the simulator: the world ray-casts them like the forward one, and a robot that has them
stops for passers-by walking into its side (issue 11's last collisions), on the simulator's virtual clock."""

from __future__ import annotations

import dataclasses
import math

import pytest

import sim.run as sim_run
from robot.config import HardwareSettings, Settings
from sim import scenario as scen
from sim.world import World


def make(extra: str = "") -> World:
    return World(scen.parse(f"start = 2024-03-15T12:00:00\nduration_h = 1\nseed = 1\n{extra}", "t.toml"))


def test_the_side_sensors_see_out_at_their_bearing_where_the_forward_one_cannot() -> None:
    w = make('[[obstacle]]\nkind = "static"\nx = 1.0\ny = 1.2\nradius_m = 0.3\n')
    w.x, w.y, w.heading = 0.0, 0.0, 0.0
    w.advance(0.05, w.pins)
    # The bin stands 50 degrees off the nose, to the left: the forward cone (15 degrees) misses it.
    assert w.distance_m() == 4.0
    left, right = w.side_distances_m()
    r = w.geometry.radius_m
    sx, sy = r * math.cos(math.radians(50.0)), r * math.sin(math.radians(50.0))
    assert left == pytest.approx(math.hypot(1.0 - sx, 1.2 - sy) - 0.3, abs=0.05)
    assert right == 4.0
    w.heading = math.radians(100.0)  # turned left by 100 degrees: now the right sensor looks at it
    left, right = w.side_distances_m()
    assert left == 4.0 and right == pytest.approx(math.hypot(1.0 - sx, 1.2 - sy) - 0.3, abs=0.05)


# Passers-by crossing the first lane at several places and paces, from the first minutes of cleaning.
WALKERS = "".join(
    f'[[obstacle]]\nkind = "moving"\nalong_m = {a}\nradius_m = 0.3\nspan_m = {s}\nspeed_m_s = {v}\n'
    for a, s, v in ((12.0, 3.0, 1.2), (22.0, 2.5, 0.9), (32.0, 3.0, 1.1), (42.0, 2.0, 1.2))
)
# Walkers stop short of a robot in their way (sim.world WALKER_GAP_M), so the blind robot's contacts are the ones
# it drives into: the first come after 8 minutes of this hour (measured: 4 in 900 s, from 489 s; 0 in 240 s).
DURATION_S = 600.0
TEXT = f"start = 2024-03-16T09:00:00\nduration_h = 1\nseed = 5\n[robot]\nbattery_soc = 0.9\n{WALKERS}"


def _run(side: bool) -> dict:
    scenario = scen.parse(TEXT, "walkers.toml")
    if side:
        return sim_run.run_scenario(scenario, duration_s=DURATION_S).report
    base = sim_run.sim_settings

    def without(settings: Settings | None = None) -> Settings:
        return dataclasses.replace(base(settings), hardware=HardwareSettings())

    mp = pytest.MonkeyPatch()
    mp.setattr(sim_run, "sim_settings", without)
    try:
        return sim_run.run_scenario(scenario, duration_s=DURATION_S).report
    finally:
        mp.undo()


def test_passers_by_walking_into_the_robots_side_are_not_driven_into() -> None:
    blind = _run(side=False)
    seeing = _run(side=True)
    assert blind["collisions"] > 0  # the forward sensor alone: they reach its side unseen
    assert seeing["collisions"] == 0
    assert seeing["time_in_state_s"].get("obstacle_stop", 0.0) > 0.0  # it met them, and stood
    assert seeing["route_completion"] > 0.0
