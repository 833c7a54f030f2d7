"""Obstacles remembered around the robot: what the forward ultrasonic saw, carried by odometry once it has left
the sensor's narrow cone.

The HC-SR04 sees 15 degrees either side of the nose. A bin passed a little off the line leaves that cone while
the robot's 0.7 m wide body is still closing on it, and a robot turning back to its lane turns into things it
saw a second ago: the sensor alone cannot stop those side-swipes. Each echo is kept here as a point in the
robot's own frame (metres forward, metres to the left), moved by the wheels' motion every step, forgotten when
the sensor later sees through it, when it falls behind or far away, or after a few seconds. Pure: no I/O, no
clock; time is an argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (forward m, left m, seen at s, metres driven since) in the robot's frame, origin at the centre between the wheels.
Echo = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Body:
    """The robot's footprint and its forward sensor, as the memory needs them."""

    radius_m: float = 0.35  # the body as a circle about the centre between the wheels
    # The gap kept to anything remembered: an echo is one point of a thing whose side bulges further towards a robot
    # passing it (a 0.3 m bin seen at the edge of the cone: up to about 0.2 m; a 0.6 m parked scooter more: the
    # robot swept its side with 0.25 m), and odometry drifts a little.
    clear_m: float = 0.35
    # Odometry carries an echo less well the further the wheels have gone since (the supply voltage changes their
    # speed, turns slip): in crowded_alley one drifted 0.45 m from its bin over 5 m of circling it. The gap grows
    # by this much per metre driven (turns counted at the body's edge) since the echo was taken.
    drift_per_m: float = 0.08
    sensor_ahead_m: float = 0.30  # the sensor on the front bumper
    half_cone_deg: float = 15.0
    max_echo_m: float = 1.6  # further echoes are too vague sideways (0.4 m at the cone's edge) to keep
    # Odometry stays good to centimetres over a few metres driven (turning on the spot counts as its arc at the
    # wheels); standing still, an echo out of the cone is kept until a person could have moved the thing away.
    keep_driven_m: float = 6.0
    keep_s: float = 120.0
    keep_m: float = 3.0
    max_echoes: int = 80
    spacing_m: float = 0.08  # a new echo this near a kept one adds nothing
    # Driven (or turned, at the body's edge) less than this since an echo was taken: the sensor still looks from
    # where it saw it (half a degree of turn).
    same_pose_m: float = 0.003
    horizon_s: float = 1.5  # the steering check looks this far ahead at the commanded speed ...
    horizon_min_m: float = 1.0  # ... and at least this far
    # The side sensors (hardware.side), when fitted: on the body's edge, looking out this far off the nose.
    side_bearing_deg: float = 50.0


def carry(
    echoes: tuple[Echo, ...], v: float, w: float, dt: float, now: float, body: Body
) -> tuple[Echo, ...]:
    """The echoes after the robot drove v m/s and turned w rad/s for dt seconds; stale and far ones dropped."""
    if not echoes:
        return echoes
    ds, dh = v * dt, w * dt
    tx, ty = ds * math.cos(dh / 2.0), ds * math.sin(dh / 2.0)
    c, s = math.cos(dh), math.sin(dh)
    keep2 = body.keep_m * body.keep_m
    driven = abs(ds) + abs(dh) * body.radius_m
    out = []
    for f, left, seen, before in echoes:
        if now - seen > body.keep_s or before + driven > body.keep_driven_m:
            continue
        x, y = f - tx, left - ty
        f2, l2 = x * c + y * s, -x * s + y * c
        # Kept behind the body too: a turn on the spot brings it back in front (a robot that had passed a bin,
        # forgotten it and turned round drove back past it into its side).
        if f2 * f2 + l2 * l2 > keep2:
            continue
        out.append((f2, l2, seen, before + driven))
    return tuple(out)


def sense(echoes: tuple[Echo, ...], reading_m: float | None, now: float, body: Body) -> tuple[Echo, ...]:
    """Fold one sensor reading in: what it sees through is forgotten; a near echo is remembered across the whole
    cone at its range (the sensor cannot tell where in the cone the thing stands, and the parts of that arc
    it later sees through are forgotten then)."""
    if reading_m is None or not math.isfinite(reading_m):
        return echoes  # no echo is "unknown": it neither clears nor adds
    cone = math.radians(body.half_cone_deg)
    inner = cone * 0.95  # inside the cone (but for rounding at its edge): seen through
    kept = []
    for e in echoes:
        fx, ly = e[0] - body.sensor_ahead_m, e[1]
        if math.hypot(fx, ly) < reading_m - 0.1 and (
            e[3] <= body.same_pose_m or (fx > 0.0 and abs(math.atan2(ly, fx)) < inner)
        ):
            # The sensor now sees past it: it moved away, or was never at that spot of its arc. An echo taken
            # from this very pose lay in the cone that looks now, edges included: a passer-by who stepped out
            # of the cone leaves no phantom at its edge for the robot to dodge for minutes.
            continue
        kept.append(e)
    if reading_m <= body.max_echo_m:
        gap2 = body.spacing_m**2
        arc = []
        for b in _ARC:
            a = b * cone
            arc.append((body.sensor_ahead_m + reading_m * math.cos(a), reading_m * math.sin(a), now, 0.0))
        # Seen again where one is kept: that one is renewed (a robot waiting at a bin keeps knowing it). The new
        # arc is kept whole, however near: at a short range its points are close, yet each edge matters.
        kept = [e for e in kept if all((f - e[0]) ** 2 + (left - e[1]) ** 2 > gap2 for f, left, _, _ in arc)]
        kept.extend(arc)
        if len(kept) > body.max_echoes:
            kept.sort(key=lambda e: e[2])
            kept = kept[-body.max_echoes :]
    return tuple(kept)


def sense_sides(
    echoes: tuple[Echo, ...], left_m: float | None, right_m: float | None, body: Body
) -> tuple[Echo, ...]:
    """Forget what the side sensors see past: an echo inside a side sensor's cone, nearer than its reading, is not
    there any more (a passer-by the forward sensor saw has walked on, and would otherwise stand remembered in the
    robot's way for minutes). They add nothing: a bin beside the lane needs no memory to be driven past."""
    if not echoes:
        return echoes
    cone = math.radians(body.half_cone_deg) * 0.95
    out = echoes
    for reading, b in (
        (left_m, math.radians(body.side_bearing_deg)),
        (right_m, -math.radians(body.side_bearing_deg)),
    ):
        if reading is None or not math.isfinite(reading):
            continue  # no echo is "unknown": it clears nothing
        c, s = math.cos(b), math.sin(b)
        mx, my = body.radius_m * c, body.radius_m * s
        kept = []
        for e in out:
            dx, dy = e[0] - mx, e[1] - my
            along, across = dx * c + dy * s, -dx * s + dy * c
            if along > 0.0 and abs(math.atan2(across, along)) < cone and math.hypot(dx, dy) < reading - 0.1:
                continue
            kept.append(e)
        out = tuple(kept)
    return out


_ARC = (-1.0, -0.5, 0.0, 0.5, 1.0)  # where across the cone an echo may stand, as fractions of its half angle


def arc_travel(echoes: tuple[Echo, ...], k: float, limit: float, body: Body) -> float:
    """How far the centre can drive forward on an arc of curvature k (1/m, positive to the left) before the body
    (plus its gap) touches a remembered echo; `limit` when nothing is in the way that far. An echo the body
    already overlaps counts only while the arc closes on it (driving away from a touch is allowed)."""
    best = limit
    near = _reaches(echoes, body)
    if abs(k) < 1e-6:
        for f, left, reach, reach2, _ in near:
            if f > 0.0 and abs(left) < reach:
                d = f - math.sqrt(reach2 - left * left)
                best = min(best, max(0.0, d))
        return best
    step = 0.05
    n = int(limit / step) + 1
    # The arc's points (s, x, y), i = 1..n, made only as far as some echo needs them: most calls stop early
    # (a hit, or past the best so far) or have no echo near enough to look at the arc at all.
    arc: list[tuple[float, float, float]] = []
    for f, left, reach, reach2, r2 in near:
        if f < -reach or r2 > (limit + reach) ** 2:
            continue
        # A point s along the arc is at most s from the start (a chord is no longer than its arc): no point
        # before (r - reach) can touch an echo r away, so the walk starts one point before that (for `prev`),
        # with a margin that float rounding cannot cross. The hit found is the one the walk from 0 finds.
        first = min(int((math.sqrt(r2) - reach - _WALK_SLACK_M) / step) - 1, n)
        prev = r2
        if first > 0:
            while len(arc) < first:
                j = len(arc) + 1
                arc.append(
                    (min(j * step, limit), math.sin(k * j * step) / k, (1.0 - math.cos(k * j * step)) / k)
                )
            s, x, y = arc[first - 1]
            if s >= best:
                continue  # the walk from 0 would stop there too (s grows along the arc), touching nothing
            prev = (f - x) ** 2 + (left - y) ** 2
        else:
            first = 0
        for i in range(first, n):
            if i == len(arc):
                j = i + 1
                arc.append(
                    (min(j * step, limit), math.sin(k * j * step) / k, (1.0 - math.cos(k * j * step)) / k)
                )
            s, x, y = arc[i]
            if s >= best:
                break
            d2 = (f - x) ** 2 + (left - y) ** 2
            if d2 < reach2 and d2 < prev:
                best = max(0.0, s - step)
                break
            prev = d2
    return best


_WALK_SLACK_M = 1e-6
# The last echoes' (ahead, left, reach, reach^2, distance^2) each, for their body: steer() asks up to 14 arcs
# about the same echoes in one step. A cache only, by identity (the tuple is kept, so its id is not reused).
_reach_memo: tuple[tuple[Echo, ...] | None, Body | None, list[tuple[float, float, float, float, float]]] = (
    None,
    None,
    [],
)


def _reaches(echoes: tuple[Echo, ...], body: Body) -> list[tuple[float, float, float, float, float]]:
    global _reach_memo
    m_echoes, m_body, near = _reach_memo
    if m_echoes is echoes and m_body is body:
        return near
    base = body.radius_m + body.clear_m
    drift = body.drift_per_m
    near = []
    for f, left, _, driven in echoes:
        reach = base + drift * driven
        near.append((f, left, reach, reach * reach, f * f + left * left))
    _reach_memo = (echoes, body, near)
    return near


def path_reading(
    echoes: tuple[Echo, ...], left: float, right: float, wheel_base_m: float, body: Body
) -> float | None:
    """The remembered echoes as the forward sensor would read them on this command's path: the distance along
    the arc the wheels would drive before touching, offset so that an echo dead ahead reads what the sensor
    read. None when the command does not drive the centre forward, or nothing remembered is on its way."""
    v = (left + right) / 2.0
    if not echoes or v <= 0.02:
        return None
    limit = 4.0
    travel = arc_travel(echoes, _curvature(left, right, wheel_base_m), limit, body)
    if travel >= limit:
        return None
    return travel + body.radius_m + body.clear_m - body.sensor_ahead_m


_SWERVES = (0.3, 0.6, 1.0, 1.5, 2.2, 3.2)  # 1/m added to the wanted curvature, either side, nearest first


def steer(
    echoes: tuple[Echo, ...],
    left: float,
    right: float,
    speed_mps: float,
    wheel_base_m: float,
    body: Body,
    prefer: int = 0,
) -> tuple[float, float, int]:
    """The wheel fractions bent around remembered echoes: the wanted arc when it is clear over the horizon,
    else the nearest clear swerve at the same speed, else the wanted arc (the core's stop then holds it).
    The side it swerved to comes last: +1 left, -1 right, 0 not at all; `prefer` keeps the side of the last swerve
    (0: away from the nearest echo ahead). `speed_mps` is the wheel speed at fraction 1."""
    u = (left + right) / 2.0
    if not echoes or u <= 0.02:
        return left, right, 0
    horizon = max(body.horizon_min_m, u * speed_mps * body.horizon_s)
    k0 = _curvature(left, right, wheel_base_m)
    if arc_travel(echoes, k0, horizon, body) >= horizon:
        return left, right, 0
    # Swerve away from the nearest echo ahead first, and turn on the spot away from it when no swerve is clear.
    # Its distance does not change as the robot turns, and swerving away keeps it on the same side, so the
    # choice holds step after step: trying the side of the wanted curvature first flipped sides as that
    # curvature did, and the robot wove into a bin it saw head-on; choosing the spin by the side whose arc led
    # furthest flipped every few degrees, and the robot dithered on the spot for minutes.
    near = min(
        (e for e in echoes if e[0] > -body.radius_m), key=lambda e: e[0] * e[0] + e[1] * e[1], default=None
    )
    # Two echoes about as near on either side would swap as the nearest from step to step: the side of the last
    # swerve holds (the caller keeps it while something is near).
    right_first = prefer < 0 if prefer else near is not None and near[1] > 0.0
    for dk in _SWERVES:
        for k in (k0 - dk, k0 + dk) if right_first else (k0 + dk, k0 - dk):
            travel = arc_travel(echoes, k, horizon, body)
            if travel >= horizon:
                half = k * wheel_base_m / 2.0
                lf, rf = u * (1.0 - half), u * (1.0 + half)
                m = max(1.0, abs(lf), abs(rf))
                return lf / m, rf / m, 1 if k > k0 else -1
    # Nothing clear at this speed: turn on the spot (turning moves no part of the round body closer) rather than
    # drive into the stop and the escape's blind reversing. But with the body and its gap already at the echo on
    # the wanted arc, the wanted arc: the core's stop holds it, and its escape and stuck report end what would
    # otherwise be turning to and fro for ever in front of a thing that fills the way (a parked car).
    if arc_travel(echoes, k0, horizon, body) <= _HAND_OVER_M:
        return left, right, 0
    spin = -_SPIN if right_first else _SPIN
    return -spin, spin, -1 if right_first else 1


_HAND_OVER_M = 0.05  # travel left on the wanted arc at which a blocked robot is left to the core's stop
_SPIN = 0.3  # wheel fraction of a turn on the spot around remembered echoes (guidance's own turn speed)


def _curvature(left: float, right: float, wheel_base_m: float) -> float:
    v = (left + right) / 2.0
    return (right - left) / wheel_base_m / v if v > 1e-9 else 0.0
