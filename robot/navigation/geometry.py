"""Plane geometry in local metres: polygons, segments, polylines and shortest paths inside a polygon."""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import math
from collections.abc import Sequence

Point = tuple[float, float]

EARTH_RADIUS_M = 6_371_008.8


class Projection:
    """Flat-earth east/north projection around an origin; millimetre-exact over a few hundred metres."""

    __slots__ = ("_kx", "_ky", "lat0", "lon0")

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0 = lat0
        self.lon0 = lon0
        self._ky = EARTH_RADIUS_M * math.pi / 180.0
        self._kx = self._ky * math.cos(math.radians(lat0))

    def to_local(self, lat: float, lon: float) -> Point:
        """(east, north) metres of a WGS84 position."""
        return ((lon - self.lon0) * self._kx, (lat - self.lat0) * self._ky)

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        """(lat, lon) of a local point."""
        return (self.lat0 + y / self._ky, self.lon0 + x / self._kx)


def dist(a: Point, b: Point) -> float:
    """Euclidean distance."""
    return math.hypot(b[0] - a[0], b[1] - a[1])


def wrap(angle: float) -> float:
    """An angle folded into [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def signed_area(poly: Sequence[Point]) -> float:
    """Shoelace area; positive when the ring runs counter-clockwise."""
    n = len(poly)
    s = 0.0
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        s += x1 * y2 - x2 * y1
    return s / 2.0


def point_in_polygon(p: Point, poly: Sequence[Point]) -> bool:
    """Even-odd ray test; points exactly on an edge may go either way (callers use clearances)."""
    x, y = p
    if len(poly) > _GRID_MIN:
        # A big ring: only the edges of the point's row of the grid can cross the ray (the same test on them).
        g = _grid(poly)
        row = g.rows.get(math.floor((y - g.y0) / g.cell))
        inside = False
        if row:
            for xi, yi, xj, yj in row:
                if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                    inside = not inside
        return inside
    inside = False
    n = len(poly)
    j = n - 1
    for i in range(n):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def point_segment_distance(p: Point, a: Point, b: Point) -> float:
    """Distance from p to the segment ab."""
    return dist(p, closest_on_segment(p, a, b))


def closest_on_segment(p: Point, a: Point, b: Point) -> Point:
    """The point of segment ab nearest to p."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    L2 = dx * dx + dy * dy
    if L2 == 0.0:
        return a
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / L2))
    return (a[0] + t * dx, a[1] + t * dy)


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """True when segments ab and cd share at least one point (touching counts)."""
    eps = 1e-12
    d1 = _orient(c, d, a)
    d2 = _orient(c, d, b)
    d3 = _orient(a, b, c)
    d4 = _orient(a, b, d)
    if ((d1 > eps and d2 < -eps) or (d1 < -eps and d2 > eps)) and (
        (d3 > eps and d4 < -eps) or (d3 < -eps and d4 > eps)
    ):
        return True
    return (
        (abs(d1) <= eps and _on_segment(c, d, a))
        or (abs(d2) <= eps and _on_segment(c, d, b))
        or (abs(d3) <= eps and _on_segment(a, b, c))
        or (abs(d4) <= eps and _on_segment(a, b, d))
    )


def segment_distance(a: Point, b: Point, c: Point, d: Point) -> float:
    """Shortest distance between segments ab and cd (0 when they touch or cross)."""
    if segments_intersect(a, b, c, d):
        return 0.0
    return min(
        point_segment_distance(a, c, d),
        point_segment_distance(b, c, d),
        point_segment_distance(c, a, b),
        point_segment_distance(d, a, b),
    )


def ring_self_intersection(poly: Sequence[Point]) -> tuple[int, int] | None:
    """Indices (i, j) of two non-adjacent edges of a closed ring that touch or cross, or None.

    A sweep along x: only edges whose x ranges overlap are tested, so a 600-vertex fence costs milliseconds.
    """
    n = len(poly)
    edges = []
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        edges.append((min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1]), i))
    edges.sort()
    found: tuple[int, int] | None = None
    for k, (_x0, x1, y0, y1, i) in enumerate(edges):
        a, b = poly[i], poly[(i + 1) % n]
        for x0j, _x1j, y0j, y1j, j in edges[k + 1 :]:
            if x0j > x1:
                break
            if y0j > y1 or y1j < y0:
                continue
            if j == i or (j + 1) % n == i or j == (i + 1) % n:
                continue  # neighbouring edges share a vertex by construction
            if segments_intersect(a, b, poly[j], poly[(j + 1) % n]):
                hit = (min(i, j), max(i, j))
                found = hit if found is None or hit < found else found
    return found


_EDGES: dict[int, tuple[Sequence[Point], list[tuple[float, float, float, float, float]]]] = {}


def _edges(poly: Sequence[Point]) -> list[tuple[float, float, float, float, float]]:
    """(ax, ay, dx, dy, 1/|d|^2) per edge, cached per ring: the fence is asked about many times a step."""
    hit = _EDGES.get(id(poly))
    if hit is not None and hit[0] is poly:
        return hit[1]
    n = len(poly)
    out = []
    for i in range(n):
        (ax, ay), (bx, by) = poly[i], poly[(i + 1) % n]
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy
        out.append((ax, ay, dx, dy, 1.0 / L2 if L2 > 0.0 else 0.0))
    if len(_EDGES) > 64:
        _EDGES.clear()
    _EDGES[id(poly)] = (poly, out)
    return out


def boundary_distance(p: Point, poly: Sequence[Point]) -> float:
    """Distance from p to the nearest edge of the ring."""
    px, py = p
    if len(poly) > _GRID_MIN:
        return _grid_distance(px, py, _grid(poly))
    best = math.inf
    for ax, ay, dx, dy, inv in _edges(poly):
        t = ((px - ax) * dx + (py - ay) * dy) * inv
        t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
        ex, ey = ax + t * dx - px, ay + t * dy - py
        d2 = ex * ex + ey * ey
        if d2 < best:
            best = d2
    return math.sqrt(best)


# Rings with more vertices than this (a fence walked with a survey receiver: hundreds) are asked through a grid of
# their edges: a step asks the distance to the fence several times, and every edge each time costs milliseconds.
_GRID_MIN = 48


class _Grid:
    """The edges of one ring bucketed in square cells (for distances) and in rows (for the ray test)."""

    __slots__ = ("cell", "cells", "edges", "nx", "ny", "poly", "rows", "x0", "y0")

    def __init__(self, poly: Sequence[Point]) -> None:
        self.poly = poly
        self.edges = _edges(poly)
        xs = [q[0] for q in poly]
        ys = [q[1] for q in poly]
        self.x0, self.y0 = min(xs), min(ys)
        w, h = max(xs) - self.x0, max(ys) - self.y0
        # About as many cells as edges along the perimeter, never smaller than half a metre.
        self.cell = max(0.5, math.sqrt(max(w * h, 1.0) / max(len(poly), 1)) * 2.0)
        self.nx = math.floor(w / self.cell) + 1
        self.ny = math.floor(h / self.cell) + 1
        self.cells: dict[tuple[int, int], list[tuple[float, float, float, float, float]]] = {}
        self.rows: dict[int, list[tuple[float, float, float, float]]] = {}
        n = len(poly)
        for i, e in enumerate(self.edges):
            (ax, ay), (bx, by) = poly[i], poly[(i + 1) % n]
            i0, i1 = self._ix(min(ax, bx)), self._ix(max(ax, bx))
            j0, j1 = self._iy(min(ay, by)), self._iy(max(ay, by))
            for i_ in range(i0, i1 + 1):
                for j_ in range(j0, j1 + 1):
                    self.cells.setdefault((i_, j_), []).append(e)
            # The ray test's own order of the end points (j then i in point_in_polygon): (xi, yi) is the later one.
            for j_ in range(j0, j1 + 1):
                self.rows.setdefault(j_, []).append((bx, by, ax, ay))

    def _ix(self, x: float) -> int:
        return math.floor((x - self.x0) / self.cell)

    def _iy(self, y: float) -> int:
        return math.floor((y - self.y0) / self.cell)


_GRIDS: dict[int, _Grid] = {}


def _grid(poly: Sequence[Point]) -> _Grid:
    hit = _GRIDS.get(id(poly))
    if hit is not None and hit.poly is poly:
        return hit
    g = _Grid(poly)
    if len(_GRIDS) > 16:
        _GRIDS.clear()
    _GRIDS[id(poly)] = g
    return g


def _grid_distance(px: float, py: float, g: _Grid) -> float:
    """The exact nearest-edge distance, looking at rings of cells outward until no further ring can be nearer."""
    ci, cj = g._ix(px), g._iy(py)
    # Outside the grid the search starts at the ring that first touches it.
    start = max(0, -ci, ci - (g.nx - 1), -cj, cj - (g.ny - 1))
    last = max(ci, g.nx - 1 - ci, cj, g.ny - 1 - cj, 0) + start
    best = math.inf
    cells = g.cells
    r = start
    while r <= last:
        for i, j in _ring(ci, cj, r):
            bucket = cells.get((i, j))
            if not bucket:
                continue
            for ax, ay, dx, dy, inv in bucket:
                t = ((px - ax) * dx + (py - ay) * dy) * inv
                t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
                ex, ey = ax + t * dx - px, ay + t * dy - py
                d2 = ex * ex + ey * ey
                if d2 < best:
                    best = d2
        # Every cell of ring r + 1 is at least r cells away from any point of the centre cell.
        if best < math.inf and math.sqrt(best) <= r * g.cell:
            break
        r += 1
    return math.sqrt(best)


def _ring(ci: int, cj: int, r: int) -> list[tuple[int, int]]:
    if r == 0:
        return [(ci, cj)]
    out = [(ci + d, cj - r) for d in range(-r, r + 1)]
    out += [(ci + d, cj + r) for d in range(-r, r + 1)]
    out += [(ci - r, cj + d) for d in range(-r + 1, r)]
    out += [(ci + r, cj + d) for d in range(-r + 1, r)]
    return out


def clearance(p: Point, poly: Sequence[Point]) -> float:
    """Signed distance to the ring: positive inside, negative outside."""
    d = boundary_distance(p, poly)
    return d if point_in_polygon(p, poly) else -d


def segment_clearance(a: Point, b: Point, poly: Sequence[Point]) -> float:
    """Smallest distance from the segment ab to the ring's edges (0 when it crosses or touches one)."""
    n = len(poly)
    return min(segment_distance(a, b, poly[i], poly[(i + 1) % n]) for i in range(n))


_BOXES: dict[int, tuple[Sequence[Point], list[tuple[float, float, float, float, Point, Point]]]] = {}
# A bounding-box gap must beat the needed clearance by this much before an edge is skipped untested, so float
# rounding in the exact distance can never turn a skipped edge into a deciding one.
_BOX_SLACK = 1e-9


def _boxes(poly: Sequence[Point]) -> list[tuple[float, float, float, float, Point, Point]]:
    """(min x, max x, min y, max y, a, b) per edge, cached per ring like _edges()."""
    hit = _BOXES.get(id(poly))
    if hit is not None and hit[0] is poly:
        return hit[1]
    n = len(poly)
    out = []
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        out.append((min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1]), a, b))
    if len(_BOXES) > 64:
        _BOXES.clear()
    _BOXES[id(poly)] = (poly, out)
    return out


def segment_inside(a: Point, b: Point, poly: Sequence[Point], min_clear: float = 0.0) -> bool:
    """True when the whole segment ab lies inside the ring, at least min_clear from its edges."""
    if not point_in_polygon(((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0), poly):
        return False
    if min_clear != min_clear:  # NaN: the plain test decides (it says False)
        clear = segment_clearance(a, b, poly)
        return clear > 0.0 and clear >= min_clear
    # The same answer as min(segment_distance) > 0 and >= min_clear, without measuring the edges whose
    # bounding box is already further away than that (the distance is never below the boxes' gap).
    need = (min_clear if min_clear > 0.0 else 0.0) + _BOX_SLACK
    ax, ay = a
    bx, by = b
    sx0, sx1 = (ax, bx) if ax <= bx else (bx, ax)
    sy0, sy1 = (ay, by) if ay <= by else (by, ay)
    for ex0, ex1, ey0, ey1, c, d in _boxes(poly):
        gx = ex0 - sx1 if ex0 > sx1 else sx0 - ex1 if sx0 > ex1 else 0.0
        gy = ey0 - sy1 if ey0 > sy1 else sy0 - ey1 if sy0 > ey1 else 0.0
        if gx > need or gy > need or gx * gx + gy * gy > need * need:
            continue
        dd = _segment_distance_inline(ax, ay, bx, by, c[0], c[1], d[0], d[1])
        if not (dd > 0.0 and dd >= min_clear):
            return False
    return True


def _point_seg(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    """point_segment_distance((px, py), (ax, ay), (bx, by)) with the very same arithmetic, unpacked."""
    dx, dy = bx - ax, by - ay
    L2 = dx * dx + dy * dy
    if L2 == 0.0:
        return math.hypot(ax - px, ay - py)
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / L2))
    return math.hypot(ax + t * dx - px, ay + t * dy - py)


def _segment_distance_inline(
    ax: float, ay: float, bx: float, by: float, cx: float, cy: float, dx: float, dy: float
) -> float:
    """segment_distance(a, b, c, d) with the very same arithmetic (and so the same result), unpacked: this
    is the inner loop of every visibility test."""
    eps = 1e-12
    # _orient(c, d, a), _orient(c, d, b), _orient(a, b, c), _orient(a, b, d)
    d1 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx)
    d2 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx)
    d3 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    d4 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
    if ((d1 > eps and d2 < -eps) or (d1 < -eps and d2 > eps)) and (
        (d3 > eps and d4 < -eps) or (d3 < -eps and d4 > eps)
    ):
        return 0.0
    if (
        (abs(d1) <= eps and min(cx, dx) <= ax <= max(cx, dx) and min(cy, dy) <= ay <= max(cy, dy))
        or (abs(d2) <= eps and min(cx, dx) <= bx <= max(cx, dx) and min(cy, dy) <= by <= max(cy, dy))
        or (abs(d3) <= eps and min(ax, bx) <= cx <= max(ax, bx) and min(ay, by) <= cy <= max(ay, by))
        or (abs(d4) <= eps and min(ax, bx) <= dx <= max(ax, bx) and min(ay, by) <= dy <= max(ay, by))
    ):
        return 0.0
    return min(
        _point_seg(ax, ay, cx, cy, dx, dy),
        _point_seg(bx, by, cx, cy, dx, dy),
        _point_seg(cx, cy, ax, ay, bx, by),
        _point_seg(dx, dy, ax, ay, bx, by),
    )


# A fence vertex this close to the line through its neighbours is not a corner: surveyed fences come with
# many points along straight walls, a few centimetres off the line.
COLLINEAR_TOL_M = 0.05


def simplify_ring(poly: Sequence[Point], tol: float) -> tuple[Point, ...]:
    """The ring without the vertices that lie within tol of the segment joining the kept neighbours."""
    pts = list(poly)
    changed = True
    while changed and len(pts) > 3:
        changed = False
        out: list[Point] = []
        n = len(pts)
        i = 0
        while i < n:
            prev = out[-1] if out else pts[i - 1]
            cur, nxt = pts[i], pts[(i + 1) % n]
            if len(out) + (n - i) > 3 and point_segment_distance(cur, prev, nxt) < tol:
                changed = True
                i += 1
                continue
            out.append(cur)
            i += 1
        pts = out
    return tuple(pts)


@functools.lru_cache(maxsize=64)
def _reflex_cached(poly: tuple[Point, ...], offset: float) -> tuple[Point, ...]:
    return tuple(_reflex(poly, offset))


def reflex_waypoints(poly: Sequence[Point], offset: float) -> list[Point]:
    """Waypoints `offset` metres out from each reflex corner (see _reflex); cached, the fence never changes."""
    return list(_reflex_cached(tuple(poly), offset))


def _reflex(poly: Sequence[Point], offset: float) -> list[Point]:
    """Waypoints `offset` metres out from each reflex (inward-pointing) corner of a counter-clockwise ring.

    Shortest paths inside a simple polygon bend only at reflex corners. Each corner gets three points (the two
    edge normals and their bisector) so that a path keeping a clearance can bend round it in short chords.
    """
    ring = simplify_ring(poly, COLLINEAR_TOL_M)
    n = len(ring)
    out: list[Point] = []
    for i in range(n):
        prev, cur, nxt = ring[i - 1], ring[i], ring[(i + 1) % n]
        if _orient(prev, cur, nxt) >= 0.0:
            continue  # convex corner (left turn on a CCW ring)
        e1 = (cur[0] - prev[0], cur[1] - prev[1])
        e2 = (nxt[0] - cur[0], nxt[1] - cur[1])
        l1, l2 = math.hypot(*e1), math.hypot(*e2)
        if l1 == 0.0 or l2 == 0.0:
            continue
        # Left normals of the edges point into the interior of a CCW ring.
        n1 = (-e1[1] / l1, e1[0] / l1)
        n2 = (-e2[1] / l2, e2[0] / l2)
        a1 = math.atan2(n1[1], n1[0])
        sweep = wrap(math.atan2(n2[1], n2[0]) - a1)
        for k in range(3):
            a = a1 + sweep * k / 2.0
            out.append((cur[0] + offset * math.cos(a), cur[1] + offset * math.sin(a)))
    return out


_VISIBLE: dict[tuple, tuple[Sequence[Point], list[float], dict[tuple[int, int], bool]]] = {}


def shortest_path(
    start: Point, goal: Point, poly: Sequence[Point], waypoints: Sequence[Point], min_clear: float
) -> list[Point] | None:
    """Shortest polyline from start to goal inside the ring through the given waypoints (visibility graph).

    An edge must keep `min_clear` from the fence, relaxed to the clearance of its own ends so that a start or
    goal close to the fence can still be left or reached. None when no path exists.
    """
    nodes: list[Point] = [start, goal, *waypoints]
    # Everything but the start is fixed while the robot drives to one goal: remember what those nodes see.
    key = (id(poly), goal, tuple(waypoints), min_clear)
    fixed = _VISIBLE.get(key)
    if fixed is None or fixed[0] is not poly:
        if len(_VISIBLE) > 32:
            _VISIBLE.clear()
        fixed = (poly, [max(0.0, clearance(p, poly)) for p in nodes[1:]], {})
        _VISIBLE[key] = fixed
    clear = [max(0.0, clearance(start, poly)), *fixed[1]]
    seen: dict[tuple[int, int], bool] = fixed[2]

    def visible(i: int, j: int) -> bool:
        if i > 0 and j > 0:
            k = (i, j) if i < j else (j, i)
            hit = seen.get(k)
            if hit is None:
                need = min(min_clear, clear[i], clear[j]) * 0.95
                hit = seen[k] = (
                    segment_inside(nodes[i], nodes[j], poly, need) or dist(nodes[i], nodes[j]) < 1e-9
                )
            return hit
        need = min(min_clear, clear[i], clear[j]) * 0.95
        return segment_inside(nodes[i], nodes[j], poly, need) or dist(nodes[i], nodes[j]) < 1e-9

    if visible(0, 1):
        return [start, goal]
    best = {0: 0.0}
    prev: dict[int, int] = {}
    heap = [(0.0, 0)]
    done: set[int] = set()
    while heap:
        d, i = heapq.heappop(heap)
        if i in done:
            continue
        done.add(i)
        if i == 1:
            path = [goal]
            while i != 0:
                i = prev[i]
                path.append(nodes[i])
            return path[::-1]
        for j in range(1, len(nodes)):
            if j in done or not visible(i, j):
                continue
            nd = d + dist(nodes[i], nodes[j])
            if nd < best.get(j, math.inf):
                best[j] = nd
                prev[j] = i
                heapq.heappush(heap, (nd, j))
    return None


class Polyline:
    """A path with cumulative distances: point at a distance, nearest distance to a point within a window."""

    __slots__ = ("cum", "length", "points")

    def __init__(self, points: Sequence[Point]) -> None:
        pts: list[Point] = []
        for p in points:
            if not pts or dist(pts[-1], p) > 1e-9:
                pts.append((float(p[0]), float(p[1])))
        if len(pts) == 1:
            pts.append(pts[0])
        self.points: tuple[Point, ...] = tuple(pts)
        cum = [0.0]
        for a, b in itertools.pairwise(pts):
            cum.append(cum[-1] + dist(a, b))
        self.cum: tuple[float, ...] = tuple(cum)
        self.length = cum[-1]

    def at(self, s: float) -> Point:
        """The point `s` metres along the path (clamped to its ends)."""
        s = max(0.0, min(self.length, s))
        cum = self.cum
        n = len(cum)
        if n < 2:
            return self.points[-1]
        # The first segment ending at or beyond s (the last one when s is past every end).
        i = bisect.bisect_left(cum, s, 1, n - 1)
        a, b = self.points[i - 1], self.points[i]
        seg = cum[i] - cum[i - 1]
        t = 0.0 if seg == 0.0 else (s - cum[i - 1]) / seg
        return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))

    def project(self, p: Point, s_lo: float = 0.0, s_hi: float = math.inf) -> tuple[float, float]:
        """(s, distance) of the point of the path nearest to p, searching only between s_lo and s_hi."""
        s_lo = max(0.0, s_lo)
        s_hi = min(self.length, s_hi)
        best_s, best_d = s_lo, math.inf
        px, py = p
        cum = self.cum
        n = len(cum)
        # Only the segments overlapping the window: from the first that ends at or after s_lo, while they
        # start at or before s_hi (cum never decreases).
        for i in range(bisect.bisect_left(cum, s_lo, 1) if n > 1 else n, n):
            c0, c1 = cum[i - 1], cum[i]
            if c0 > s_hi:
                break
            a, b = self.points[i - 1], self.points[i]
            seg = c1 - c0
            if seg == 0.0:
                continue
            # Restrict the segment to the window before projecting.
            t0 = max(0.0, (s_lo - c0) / seg)
            t1 = min(1.0, (s_hi - c0) / seg)
            ax, ay = a[0] + t0 * (b[0] - a[0]), a[1] + t0 * (b[1] - a[1])
            bx, by = a[0] + t1 * (b[0] - a[0]), a[1] + t1 * (b[1] - a[1])
            # closest_on_segment(p, a2, b2) and the distances, unpacked (same arithmetic, fewer calls).
            dx, dy = bx - ax, by - ay
            L2 = dx * dx + dy * dy
            if L2 == 0.0:
                qx, qy = ax, ay
            else:
                t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / L2))
                qx, qy = ax + t * dx, ay + t * dy
            d = math.hypot(qx - px, qy - py)
            if d < best_d - 1e-9:
                best_d = d
                best_s = c0 + t0 * seg + math.hypot(qx - ax, qy - ay)
        return best_s, best_d
