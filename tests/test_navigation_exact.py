"""Navigation's shortcuts give the very floats of the plain computations they replace."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from robot.navigation.geometry import closest_on_segment, dist
from robot.navigation.navigator import _nearest_on_ring

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
