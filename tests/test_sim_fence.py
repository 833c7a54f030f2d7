"""The fence on true position in every shipped scenario, with the rtk and the cheap receiver (issue 13): rtk never
leaves it, cheap never deeper than 0.5 m with the time outside reported, and no geofence alert while the robot
is truly inside. Each scenario runs its first HORIZON_S simulated seconds (the whole sweep stays within minutes);
the full runs are `ramudroid sim run NAME`."""

from __future__ import annotations

import dataclasses

import pytest

from robot.config import Settings
from sim import scenario as scen
from sim.run import run_scenario

HORIZON_S = 1800.0
NAMES = scen.shipped_names()


def _settings(receiver: str) -> Settings:
    base = Settings()
    return dataclasses.replace(base, gps=dataclasses.replace(base.gps, receiver=receiver))


@pytest.mark.parametrize("receiver", ["rtk", "cheap"])
@pytest.mark.parametrize("name", NAMES)
def test_fence_holds_on_true_position(name: str, receiver: str) -> None:
    report = run_scenario(scen.load(name), settings=_settings(receiver), duration_s=HORIZON_S).report
    assert report["geofence_alerts"]["false"] == 0, report["geofence_alerts"]
    assert "geofence_exit_s" in report and "geofence_max_depth_m" in report
    if receiver == "rtk":
        assert report["geofence_exit_s"] == 0.0 and report["geofence_exits"] == 0
    else:
        assert report["geofence_max_depth_m"] <= 0.5, (
            report["geofence_max_depth_m"],
            report["geofence_exit_s"],
        )
