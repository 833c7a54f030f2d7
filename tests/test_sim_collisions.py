"""Side hits the forward sensor cannot see (issue 11), in the simulator on its virtual clock."""

from __future__ import annotations

import pytest

import robot.navigation.navigator as navigator
from sim import scenario as scen
from sim.run import run_scenario


def test_a_walker_who_turns_back_is_not_driven_into_when_the_cone_clears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """crowded_alley's first minutes: the robot stops for a shopper crossing its lane near one end of her walk. She
    steps out of the narrow cone and turns back 1.4 s later; a robot that drove on at once met her with its
    front-left corner (55.65 s into the scenario before issue 11). Now it waits for a gap it can predict."""
    # The encounter was recorded on the first lane as drawn. Since the cheap receiver keeps its lanes 4 sigma
    # from the fence (issue 13), that lane is driven 1.9 m further in and the shopper crosses behind the robot,
    # so this test keeps the 2.5 sigma the lane had: it is about the walker, not the fence.
    monkeypatch.setattr(navigator, "LANE_SIGMAS", 2.5)
    result = run_scenario(scen.load("crowded_alley"), duration_s=150.0)
    states = result.report["time_in_state_s"]
    assert states.get("obstacle_stop", 0.0) > 5.0, states  # it did meet her, and waited
    assert result.run.world.truth().collisions == 0
    assert result.report["route_completion"] > 0.0
