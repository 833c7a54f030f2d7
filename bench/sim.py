"""Benchmark of the in-process simulator: simulated seconds per wall second over a 10-hour day."""

from __future__ import annotations


def sim_speed_x(scenario: str = "sunny_day", hours: float = 10.0) -> float:
    """Simulated seconds per wall second: the real supervisor at 20 Hz against the world (target >= 600)."""
    from sim import scenario as scen
    from sim.run import run_scenario

    result = run_scenario(scen.load(scenario), duration_s=hours * 3600.0)
    return round(result.report["simulated_s"] / result.wall_s, 1)


if __name__ == "__main__":
    print(sim_speed_x())
