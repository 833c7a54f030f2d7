"""The obstacles navigation remembers (robot/navigation/obstacles.py): what is forgotten, what is kept, and which
way the robot turns around them (issue 11: side hits the forward sensor cannot see)."""

from __future__ import annotations

import math

from robot.navigation.obstacles import Body, arc_travel, carry, sense, steer

BODY = Body()
WHEEL_BASE = 0.4
SPEED = 1.57


def test_a_passer_by_who_steps_out_of_the_cone_leaves_no_phantom_at_its_edge() -> None:
    echoes = sense((), 0.3, 0.0, BODY)
    assert echoes
    # The robot has not moved; the sensor now sees nothing in the whole cone it saw the person in.
    assert sense(echoes, 4.0, 0.05, BODY) == ()


def test_a_bin_at_the_edge_of_the_cone_is_kept_once_the_robot_has_turned_away() -> None:
    echoes = sense((), 0.6, 0.0, BODY)
    left_edge = max(e[1] for e in echoes)
    # Turned right by 20 degrees on the spot: the left edge of the old arc is out of the cone now.
    turned = carry(echoes, 0.0, -math.radians(20.0), 1.0, 1.0, BODY)
    kept = sense(turned, 4.0, 1.0, BODY)
    assert kept and max(math.hypot(e[0], e[1]) for e in kept) > 0.0
    assert any(
        abs(math.hypot(e[0], e[1]) - math.hypot(BODY.sensor_ahead_m + 0.6, left_edge)) < 0.2 for e in kept
    )


def test_a_near_echo_keeps_its_whole_arc_across_the_cone() -> None:
    echoes = sense((), 0.2, 0.0, BODY)
    lefts = sorted(e[1] for e in echoes)
    assert len(echoes) == 5
    assert lefts[0] < -0.04 and lefts[-1] > 0.04  # both edges, not only the last point placed


def test_an_echo_behind_the_body_is_kept_for_a_turn_that_brings_it_back() -> None:
    echoes = ((0.0, 0.8, 0.0, 0.0),)  # a bin beside the robot, on its left
    turned = carry(echoes, 0.0, -math.radians(90.0), 1.0, 1.0, BODY)  # a quarter turn right: now behind it
    assert turned and turned[0][0] < -BODY.radius_m
    back = carry(turned, 0.0, math.radians(180.0), 1.0, 2.0, BODY)
    assert back and back[0][0] > 0.5  # half a turn back: ahead again, still known


def test_round_a_wall_of_echoes_the_robot_turns_away_from_the_nearest_and_keeps_to_that_side() -> None:
    # A wall of echoes across the way, nearest on the left.
    echoes = (*((1.2, y, 0.0, 0.0) for y in (-0.6, -0.3, 0.0, 0.3)), (1.0, 0.5, 0.0, 0.0))
    left, right, side = steer(echoes, 0.8, 0.8, SPEED, WHEEL_BASE, BODY)
    assert side == -1 and left > right  # to the right: away from the nearest
    for _ in range(40):  # step by step it never turns back towards the nearest (no dithering)
        v = (left + right) / 2.0 * SPEED
        echoes = carry(echoes, v, (right - left) * SPEED / WHEEL_BASE, 0.05, 0.0, BODY)
        left, right, side = steer(echoes, 0.8, 0.8, SPEED, WHEEL_BASE, BODY, side)
        assert side != 1
        if side == 0:
            break  # clear of it: straight on
    else:
        raise AssertionError("still swerving after 2 s")


def test_the_gap_kept_to_an_echo_grows_with_the_way_driven_since_it_was_taken() -> None:
    fresh = ((1.0, 0.7, 0.0, 0.0),)  # just beside the straight path: the body and its gap pass it
    carried = ((1.0, 0.7, 0.0, 4.0),)  # the same place, after 4 m of odometry
    assert arc_travel(fresh, 0.0, 2.0, BODY) == 2.0
    assert arc_travel(carried, 0.0, 2.0, BODY) < 1.0


def test_with_the_body_already_at_an_echo_on_the_wanted_arc_the_core_is_left_to_stop() -> None:
    """A thing filling the way (a parked car): turning to and fro in front of it for ever is no answer; the wanted
    arc goes out unchanged, so the core's stop, escape and stuck report take over."""
    echoes = tuple((0.45, y, 0.0, 0.0) for y in (-0.6, -0.3, 0.0, 0.3, 0.6))
    assert steer(echoes, 0.8, 0.8, SPEED, WHEEL_BASE, BODY) == (0.8, 0.8, 0)


def test_the_side_sensors_forget_what_they_see_past_and_remember_nothing_new() -> None:
    from robot.navigation.obstacles import sense_sides

    body = Body()
    # A passer-by the forward sensor saw, remembered ahead-left: 50 degrees off the nose from the left sensor.
    b = math.radians(body.side_bearing_deg)
    mx, my = body.radius_m * math.cos(b), body.radius_m * math.sin(b)
    phantom = (mx + 0.6 * math.cos(b), my + 0.6 * math.sin(b), 0.0, 0.0)
    ahead = (1.2, 0.0, 0.0, 0.0)  # dead ahead: in neither side cone
    echoes = (phantom, ahead)
    assert sense_sides(echoes, 4.0, 4.0, body) == (ahead,)  # the left one sees 4 m: she has walked on
    assert sense_sides(echoes, 0.55, 4.0, body) == echoes  # it reads her there still: kept
    assert sense_sides(echoes, None, 4.0, body) == echoes  # no echo is unknown: it clears nothing
    assert sense_sides(echoes, 4.0, None, body) == (ahead,)
    assert sense_sides((), 0.3, 0.3, body) == ()  # and it adds nothing
