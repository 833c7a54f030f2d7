"""The side sensors' rule in the decision core (robot/core/side.py), on the simulated clock: a thing closing in on
the robot's side faster than its own motion explains brakes it; a bin it drives past does not; unknown or stale
side readings are unsafe when the sensors are fitted, and a robot without them is unchanged."""

from __future__ import annotations

import dataclasses
import math

import pytest
from conftest import CoreDriver

from robot.core import CoreConfig
from robot.core import side as side_rule
from robot.core.types import State

DT = 0.05


@pytest.fixture
def fitted(cfg: CoreConfig) -> CoreDriver:
    """A core with side sensors, cleaning its route at 0.6 of full speed (0.67 m/s with the default wheels)."""
    core = CoreDriver(dataclasses.replace(cfg, side_sensors=True))
    core.set(side_left_m=4.0, side_right_m=4.0)
    drive(core, 3.0, left=4.0)
    assert core.state is State.CLEANING
    return core


def drive(core: CoreDriver, seconds: float, *, left: float, speed: float = 0.0, right: float = 4.0) -> float:
    """Step for `seconds` with the left reading starting at `left` and falling at `speed` m/s (fresh every step);
    returns the last left reading."""
    d = left
    for _ in range(round(seconds / DT)):
        core.step(DT, side_left_m=d, side_right_m=right, side_t=core.t + DT)
        d = max(0.02, d - speed * DT)
    return d


def test_a_person_walking_into_the_side_brakes_the_robot_and_holds_it_while_she_comes(
    fitted: CoreDriver,
) -> None:
    # She closes at 1.4 m/s: the robot's own 0.67 m/s explains at most 0.55 m/s of it at 50 degrees off the nose.
    last = drive(fitted, 1.0, left=2.0, speed=1.4)
    assert last < fitted.cfg.side_stop_m
    assert fitted.state is State.OBSTACLE_STOP
    assert not fitted.last.motors.moving  # type: ignore[union-attr]
    assert "closing in on the left" in fitted.last.reason  # type: ignore[union-attr]
    # Standing, she still walks in (0.9 m/s): the stop holds, and brakes at the pins.
    drive(fitted, 0.4, left=last, speed=0.9)
    assert fitted.state is State.OBSTACLE_STOP and not fitted.last.motors.moving  # type: ignore[union-attr]


def test_a_bin_beside_the_lane_closes_only_as_fast_as_the_robot_drives_and_does_not_stop_it(
    fitted: CoreDriver,
) -> None:
    # The robot's own motion closes a side sensor on a standing thing at up to 0.67 * cos(35 deg) = 0.55 m/s.
    drive(fitted, 2.0, left=1.4, speed=0.5)
    assert fitted.state is State.CLEANING
    assert fitted.last.motors.moving  # type: ignore[union-attr]


def test_a_thing_coming_into_the_cone_at_its_edge_is_no_closing_speed(fitted: CoreDriver) -> None:
    # Nothing in range (4 m), then a bin at 0.8 m as it enters the cone: a jump, not someone walking in.
    drive(fitted, 1.0, left=4.0)
    drive(fitted, 1.0, left=0.8, speed=0.3)
    assert fitted.state is State.CLEANING


def test_anything_nearer_than_side_near_m_blocks_driving_forward(fitted: CoreDriver) -> None:
    drive(fitted, 0.5, left=0.2)
    assert fitted.state is State.OBSTACLE_STOP
    assert "0.20 m from the left side sensor" in fitted.last.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "reading",
    [
        {"side_left_m": None},  # no echo
        {"side_right_m": math.nan},
        {"side_t": None},  # never read
    ],
)
def test_an_unknown_side_reading_is_unsafe(fitted: CoreDriver, reading: dict[str, object]) -> None:
    d = fitted.step(DT, **{"side_t": fitted.t + DT, **reading})
    assert not d.motors.moving
    assert "side distance unknown" in d.reason


def test_a_stale_side_reading_brakes(fitted: CoreDriver) -> None:
    taken = fitted.t
    fitted.step(DT, side_t=taken)
    assert fitted.last.motors.moving  # type: ignore[union-attr]
    d = fitted.step(fitted.cfg.distance_stale_s, side_t=taken)  # older than obstacle.stale_s now
    assert not d.motors.moving and "side distance unknown" in d.reason


def test_without_side_sensors_side_readings_change_nothing(core: CoreDriver) -> None:
    assert not core.cfg.side_sensors  # the default robot has none (hardware.side = "none")
    for _ in range(40):
        d = core.step(DT, side_left_m=None, side_right_m=0.1, side_t=None)
    assert d.state is State.CLEANING and d.motors.moving


def test_manual_driving_forward_is_blocked_by_a_near_side_too(fitted: CoreDriver) -> None:
    from robot.core.types import Command, CommandKind, Mode

    fitted.command(CommandKind.SET_MODE, mode=Mode.MANUAL)
    fitted.set(side_left_m=0.1)
    d = fitted.step(
        DT, [Command(CommandKind.DRIVE, at=fitted.t + DT, left=0.5, right=0.5)], side_t=fitted.t + DT
    )
    assert d.state is State.MANUAL
    assert not d.motors.moving and "side sensor" in d.reason


def test_own_closing_speed_of_the_side_sensors() -> None:
    b = math.radians(50.0)
    # Straight ahead at 1 m/s: a standing thing at the cone's inner edge (35 degrees) closes at cos 35 deg.
    left, right = side_rule.own_closing(1.0, 1.0, 0.4, 0.35, b)
    assert left == pytest.approx(math.cos(math.radians(35.0))) and right == pytest.approx(left)
    assert side_rule.own_closing(0.0, 0.0, 0.4, 0.35, b) == (0.0, 0.0)
    # Turning on the spot moves each sensor across its own line of sight: some of that closes on what it sees.
    left, right = side_rule.own_closing(-0.3, 0.3, 0.4, 0.35, b)
    assert right > 0.0 and left > 0.0
