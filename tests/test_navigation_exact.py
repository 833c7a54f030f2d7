"""Navigation's shortcuts give the very floats of the plain computations they replace."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from robot.navigation.geometry import closest_on_segment, dist
from robot.navigation.navigator import _nearest_on_ring
from robot.navigation.obstacles import Body, arc_travel

coord = st.floats(min_value=-200.0, max_value=200.0, allow_nan=False)
point = st.tuples(coord, coord)


@given(point, st.lists(point, min_size=3, max_size=9))
def test_nearest_on_ring_is_min_over_closest_on_segment(p: tuple[float, float], ring: list) -> None:
    fence = tuple(ring)
    n = len(fence)
    q = min((closest_on_segment(p, fence[i], fence[(i + 1) % n]) for i in range(n)), key=lambda c: dist(c, p))
    assert _nearest_on_ring(p, fence, n) == (q, dist(q, p))


def test_nearest_on_ring_takes_the_first_of_equal_edges() -> None:
    square = ((0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0))
    assert _nearest_on_ring((1.0, 1.0), square, 4) == ((1.0, 0.0), 1.0)  # all four at 1 m: edge 0's point


def _arc_travel_walk(echoes: tuple, k: float, limit: float, body: Body) -> float:
    """arc_travel as it was before it skipped the arc's first points and cached the echoes' reach: the
    reference its answers must equal, float for float."""
    base = body.radius_m + body.clear_m
    drift = body.drift_per_m
    best = limit
    if abs(k) < 1e-6:
        for f, left, _, driven in echoes:
            reach = base + drift * driven
            if f > 0.0 and abs(left) < reach:
                d = f - math.sqrt(reach * reach - left * left)
                best = min(best, max(0.0, d))
        return best
    step = 0.05
    n = int(limit / step) + 1
    for f, left, _, driven in echoes:
        reach = base + drift * driven
        reach2 = reach * reach
        if f < -reach or f * f + left * left > (limit + reach) ** 2:
            continue
        prev = f * f + left * left
        for i in range(n):
            j = i + 1
            s, x, y = min(j * step, limit), math.sin(k * j * step) / k, (1.0 - math.cos(k * j * step)) / k
            if s >= best:
                break
            d2 = (f - x) ** 2 + (left - y) ** 2
            if d2 < reach2 and d2 < prev:
                best = max(0.0, s - step)
                break
            prev = d2
    return best


echo = st.tuples(
    st.floats(min_value=-1.0, max_value=6.0),
    st.floats(min_value=-3.0, max_value=3.0),
    st.floats(min_value=0.0, max_value=100.0),
    st.floats(min_value=0.0, max_value=5.0),
)


@given(
    st.lists(echo, max_size=30),
    st.one_of(st.just(0.0), st.floats(min_value=-4.0, max_value=4.0)),
    st.floats(min_value=0.1, max_value=4.0),
)
def test_arc_travel_equals_the_walk_from_the_start(echoes: list, k: float, limit: float) -> None:
    body = Body()
    memo = tuple(echoes)
    assert arc_travel(memo, k, limit, body) == _arc_travel_walk(memo, k, limit, body)
    assert arc_travel(memo, -k, limit, body) == _arc_travel_walk(memo, -k, limit, body)  # the cached reach
