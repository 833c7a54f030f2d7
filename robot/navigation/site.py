"""The site file: a GeoJSON FeatureCollection of the cleaning route, geofence, shelter and parking point."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from robot.errors import SiteError
from robot.navigation.geometry import (
    Point,
    Polyline,
    Projection,
    boundary_distance,
    clearance,
    dist,
    point_in_polygon,
    reflex_waypoints,
    ring_self_intersection,
    segment_clearance,
    shortest_path,
    signed_area,
)

ROLES = ("route", "fence", "shelter", "park")
GEOMETRY = {"route": "LineString", "fence": "Polygon", "shelter": "Point", "park": "Point"}
# The flat-earth projection stays within a centimetre over a few hundred metres; refuse sites far larger.
MAX_EXTENT_M = 5000.0
# Clearance kept from the fence when the loader joins one route lane to the next.
CONNECTOR_CLEAR_M = 1.0
DEMO_FILE = "demo_alley.geojson"
# Radii of the shelter's covered area and of the parking spot when the site does not give them
# (properties.radius_m on the Point): the robot counts as there only within them.
SHELTER_RADIUS_M = 5.0
PARK_RADIUS_M = 3.0
# A wall at the shelter or parking spot (properties.wall_bearing_deg and wall_m on the Point): its face may be this
# near and this far from the point (the ultrasonic sensor reads up to 4 m; a wall further off is no help).
WALL_MIN_M = 0.5
WALL_MAX_M = 20.0
WALL_WIDTH_M = (
    4.0  # the face's width across the normal, centred on it, when the site does not give wall_width_m
)


@dataclass(frozen=True, slots=True)
class Wall:
    """A straight wall face near a shelter or parking point: `normal` is the unit (east, north) vector from the
    point towards the wall, `distance_m` how far the face is from the point along it, `width_m` its width across
    the normal (centred on it)."""

    normal: Point
    distance_m: float
    width_m: float = WALL_WIDTH_M

    def face(self, p: Point) -> Point:
        """The wall face's point straight ahead of p along the normal."""
        return (p[0] + self.normal[0] * self.distance_m, p[1] + self.normal[1] * self.distance_m)


@dataclass(frozen=True, slots=True)
class Site:
    """A validated site in local east/north metres around `origin` (lat, lon); the fence ring runs CCW.

    `route` is the whole path the robot drives: the lanes in order, joined by connectors planned inside the
    fence.
    """

    name: str
    origin: tuple[float, float]
    fence: tuple[Point, ...]
    lanes: tuple[tuple[Point, ...], ...]
    shelter: Point
    park: Point
    route: Polyline = field(compare=False, repr=False)
    waypoints: tuple[Point, ...] = field(compare=False, repr=False)
    shelter_radius_m: float = SHELTER_RADIUS_M
    park_radius_m: float = PARK_RADIUS_M
    shelter_wall: Wall | None = None
    park_wall: Wall | None = None

    def wall(self, role: str) -> Wall | None:
        """The wall the site declares at the "shelter" or "park" point, if any."""
        return self.shelter_wall if role == "shelter" else self.park_wall if role == "park" else None

    @property
    def projection(self) -> Projection:
        """The projection between WGS84 and this site's local metres."""
        return Projection(*self.origin)

    def to_local(self, lat: float, lon: float) -> Point:
        """(east, north) metres of a WGS84 position."""
        return self.projection.to_local(lat, lon)

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        """(lat, lon) of a local point."""
        return self.projection.to_latlon(x, y)

    def contains(self, lat: float, lon: float) -> bool:
        """True when the WGS84 position is inside the fence."""
        return point_in_polygon(self.to_local(lat, lon), self.fence)

    def clearance(self, p: Point) -> float:
        """Signed distance of a local point to the fence: positive inside."""
        return clearance(p, self.fence)

    @property
    def route_length(self) -> float:
        """Length of the whole route path in metres, connectors included."""
        return self.route.length

    @property
    def lanes_length(self) -> float:
        """Length of the lanes alone (the cleaned part) in metres."""
        return sum(Polyline(lane).length for lane in self.lanes)

    @property
    def fence_area(self) -> float:
        """Area inside the fence in square metres."""
        return abs(signed_area(self.fence))

    @property
    def route_min_clearance(self) -> float:
        """Closest approach of the route path to the fence, in metres."""
        pts = self.route.points
        return min(segment_clearance(a, b, self.fence) for a, b in itertools.pairwise(pts))

    def summary(self) -> str:
        """A few human-readable lines about the site."""
        sl, so = self.to_latlon(*self.shelter)
        pl, po = self.to_latlon(*self.park)

        def wall(w: Wall | None) -> str:
            if w is None:
                return ""
            bearing = math.degrees(math.atan2(w.normal[0], w.normal[1])) % 360.0
            return f", wall {w.distance_m:.1f} m away at {bearing:.0f} degrees, {w.width_m:.1f} m wide"

        return "\n".join(
            [
                f"site {self.name!r} at {self.origin[0]:.6f} N, {self.origin[1]:.6f} E",
                f"route: {len(self.lanes)} lane(s), {self.lanes_length:.1f} m of lanes, "
                f"{self.route_length:.1f} m to drive, closest to the fence {self.route_min_clearance:.1f} m",
                f"fence: {len(self.fence)} corners, {self.fence_area:.0f} m2",
                f"shelter: {sl:.6f}, {so:.6f} ({clearance(self.shelter, self.fence):.1f} m inside the fence"
                f"{wall(self.shelter_wall)})",
                f"park: {pl:.6f}, {po:.6f} ({clearance(self.park, self.fence):.1f} m inside the fence"
                f"{wall(self.park_wall)})",
            ]
        )


def load_site(path: str | Path) -> Site:
    """Read and validate a GeoJSON site file; raises SiteError naming the file, feature and problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise SiteError(f"site file {p}: cannot read it ({err.strerror}); check the path") from err
    except UnicodeDecodeError as err:
        raise SiteError(f"site file {p}: not UTF-8 text; export the site as GeoJSON") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SiteError(
            f"site file {p}: not valid JSON at line {err.lineno} column {err.colno} ({err.msg})"
        ) from err
    try:
        return parse_site(data, name=p.stem)
    except SiteError as err:
        raise SiteError(f"site file {p}: {err}") from None


def demo_site() -> Site:
    """The bundled demo site: three lanes of an alley block in Bangalore."""
    ref = resources.files("robot.navigation.sites").joinpath(DEMO_FILE)
    return parse_site(json.loads(ref.read_text(encoding="utf-8")), name="demo_alley")


def parse_site(data: Any, name: str = "site") -> Site:
    """Validate a parsed GeoJSON FeatureCollection and build the Site."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise SiteError('expected a GeoJSON object with "type": "FeatureCollection"')
    features = data.get("features")
    if not isinstance(features, list):
        raise SiteError('"features" must be a list of GeoJSON features')
    props = data.get("properties")
    if isinstance(props, dict) and isinstance(props.get("name"), str):
        name = props["name"]

    found: dict[str, list[tuple[str, Any]]] = {r: [] for r in ROLES}
    radii = {"shelter": SHELTER_RADIUS_M, "park": PARK_RADIUS_M}
    walls: dict[str, Wall | None] = {"shelter": None, "park": None}
    for i, feat in enumerate(features):
        label, role, coords = _feature(i, feat)
        found[role].append((label, coords))
        if role in radii:
            r = (feat.get("properties") or {}).get("radius_m", radii[role])
            if isinstance(r, bool) or not isinstance(r, int | float) or not 0.2 <= r <= 100.0:
                raise SiteError(f"{label}: radius_m = {r!r}; give the {role}'s radius in metres (0.2 to 100)")
            radii[role] = float(r)
            walls[role] = _wall(label, feat.get("properties") or {})

    missing = [r for r in ROLES if not found[r]]
    if missing:
        raise SiteError(
            "missing feature(s) with role "
            + ", ".join(repr(m) for m in missing)
            + "; a site needs one or more "
            "'route' LineStrings, one 'fence' Polygon, one 'shelter' Point and one 'park' Point"
        )
    for role in ("fence", "shelter", "park"):
        if len(found[role]) > 1:
            labels = ", ".join(lbl for lbl, _ in found[role])
            raise SiteError(f"{len(found[role])} features with role {role!r} ({labels}); keep exactly one")

    fence_label, fence_ll = found["fence"][0]
    # Origin: the mean of the fence corners, so every local coordinate stays small.
    lat0 = sum(c[1] for c in fence_ll) / len(fence_ll)
    lon0 = sum(c[0] for c in fence_ll) / len(fence_ll)
    proj = Projection(lat0, lon0)

    def local(label: str, c: list[float]) -> Point:
        p = proj.to_local(c[1], c[0])
        if math.hypot(*p) > MAX_EXTENT_M:
            raise SiteError(
                f"{label}: position {c[1]:.6f}, {c[0]:.6f} is {math.hypot(*p) / 1000:.1f} km from the fence; "
                f"a site must fit within {MAX_EXTENT_M / 1000:.0f} km (check for swapped lon/lat)"
            )
        return p

    fence = _fence_ring(fence_label, [local(fence_label, c) for c in fence_ll])

    lanes: list[tuple[Point, ...]] = []
    for label, coords in found["route"]:
        lane = tuple(local(label, c) for c in coords)
        if Polyline(lane).length < 0.5:
            raise SiteError(f"{label}: the LineString is shorter than 0.5 m; draw the lane or delete it")
        for k, v in enumerate(lane):
            if not point_in_polygon(v, fence):
                raise SiteError(
                    f"{label}: vertex {k} ({coords[k][1]:.6f}, {coords[k][0]:.6f}) is outside the fence "
                    f"{fence_label} by {boundary_distance(v, fence):.1f} m; move it inside"
                )
        for k in range(len(lane) - 1):
            if segment_clearance(lane[k], lane[k + 1], fence) == 0.0:
                raise SiteError(
                    f"{label}: segment {k}-{k + 1} crosses the fence {fence_label}; add a vertex so the lane "
                    "stays inside"
                )
        lanes.append(lane)

    points: dict[str, Point] = {}
    for role in ("shelter", "park"):
        label, coords = found[role][0]
        p = local(label, coords)
        if not point_in_polygon(p, fence):
            raise SiteError(
                f"{label}: the {role} point ({coords[1]:.6f}, {coords[0]:.6f}) is outside the fence "
                f"{fence_label} by {boundary_distance(p, fence):.1f} m; move it inside"
            )
        points[role] = p
        wall = walls[role]
        if wall is not None:
            # The robot drives at the wall guided by its sensor: the way there must be inside the fence.
            near = wall.face(p)
            near = (near[0] - wall.normal[0] * 0.3, near[1] - wall.normal[1] * 0.3)
            if not point_in_polygon(near, fence):
                raise SiteError(
                    f"{label}: the wall {wall.distance_m:.1f} m from the {role} is beyond the fence "
                    f"{fence_label}; check wall_bearing_deg and wall_m"
                )

    waypoints = tuple(reflex_waypoints(fence, CONNECTOR_CLEAR_M * 1.2))
    path: list[Point] = list(lanes[0])
    for k in range(1, len(lanes)):
        a, b = path[-1], lanes[k][0]
        link = shortest_path(a, b, fence, waypoints, CONNECTOR_CLEAR_M)
        if link is None:
            raise SiteError(
                f"{found['route'][k][0]}: no way inside the fence from the end of the previous lane; "
                "check the lane order or the fence"
            )
        path.extend(link[1:])
        path.extend(lanes[k][1:])

    return Site(
        name=name,
        origin=(lat0, lon0),
        fence=fence,
        lanes=tuple(lanes),
        shelter=points["shelter"],
        park=points["park"],
        route=Polyline(path),
        waypoints=waypoints,
        shelter_radius_m=radii["shelter"],
        park_radius_m=radii["park"],
        shelter_wall=walls["shelter"],
        park_wall=walls["park"],
    )


def _wall(label: str, props: dict[str, Any]) -> Wall | None:
    """The wall a shelter or park Point declares (wall_bearing_deg and wall_m, both or neither), or None."""
    bearing, dist_m = props.get("wall_bearing_deg"), props.get("wall_m")
    if bearing is None and dist_m is None:
        return None
    for key, v in (("wall_bearing_deg", bearing), ("wall_m", dist_m)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SiteError(
                f"{label}: {key} = {v!r}; a wall needs both wall_bearing_deg (compass degrees from the point "
                f"to the wall) and wall_m (metres from the point to its face)"
            )
    assert isinstance(bearing, int | float) and isinstance(dist_m, int | float)
    if not WALL_MIN_M <= dist_m <= WALL_MAX_M:
        raise SiteError(
            f"{label}: wall_m = {dist_m!r}; give the distance to the wall's face in metres "
            f"({WALL_MIN_M} to {WALL_MAX_M:.0f})"
        )
    width = props.get("wall_width_m", WALL_WIDTH_M)
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0.5 <= width <= 50.0:
        raise SiteError(
            f"{label}: wall_width_m = {width!r}; give the wall face's width in metres (0.5 to 50)"
        )
    a = math.radians(float(bearing))
    # Compass bearing (clockwise from north) to an east/north unit vector.
    return Wall((math.sin(a), math.cos(a)), float(dist_m), float(width))


def _feature(i: int, feat: Any) -> tuple[str, str, Any]:
    """(label, role, checked coordinates) of feature i."""
    label = f"feature {i}"
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        raise SiteError(f'{label}: expected an object with "type": "Feature"')
    props = feat.get("properties")
    props = props if isinstance(props, dict) else {}
    if isinstance(props.get("name"), str):
        label = f"{label} ({props['name']!r})"
    role = props.get("role")
    if role not in ROLES:
        allowed = ", ".join(repr(r) for r in ROLES)
        raise SiteError(f"{label}: properties.role = {role!r}; must be one of {allowed}")
    label = f"{label}, role {role!r}"
    geom = feat.get("geometry")
    want = GEOMETRY[role]
    if not isinstance(geom, dict) or geom.get("type") != want:
        got = geom.get("type") if isinstance(geom, dict) else geom
        raise SiteError(f"{label}: geometry is {got!r}; a {role} must be a {want}")
    coords = geom.get("coordinates")
    if want == "Point":
        return label, role, _position(label, coords)
    if want == "LineString":
        if not isinstance(coords, list) or len(coords) < 2:
            raise SiteError(f"{label}: a LineString needs at least 2 positions")
        return label, role, [_position(f"{label} vertex {k}", c) for k, c in enumerate(coords)]
    if not isinstance(coords, list) or not coords:
        raise SiteError(f"{label}: a Polygon needs one ring of positions")
    if len(coords) > 1:
        raise SiteError(
            f"{label}: the fence has {len(coords) - 1} hole(s); holes are not supported, draw the "
            "fence around obstacles instead"
        )
    ring = coords[0]
    if not isinstance(ring, list):
        raise SiteError(f"{label}: the ring must be a list of positions")
    return label, role, [_position(f"{label} vertex {k}", c) for k, c in enumerate(ring)]


def _position(label: str, c: Any) -> list[float]:
    """A checked [lon, lat] pair (a third value, the altitude, is dropped)."""
    if not isinstance(c, list) or len(c) not in (2, 3):
        raise SiteError(f"{label}: position {c!r} must be [longitude, latitude]")
    for v in c:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise SiteError(f"{label}: position {c!r} holds {v!r}; expected numbers")
    lon, lat = float(c[0]), float(c[1])
    if not -180.0 <= lon <= 180.0 or not -90.0 <= lat <= 90.0:
        raise SiteError(
            f"{label}: position {c!r} is not [longitude, latitude] in degrees (lon -180..180, lat -90..90)"
        )
    return [lon, lat]


def _fence_ring(label: str, pts: list[Point]) -> tuple[Point, ...]:
    """The fence ring without its closing vertex or repeated vertices, counter-clockwise, checked simple."""
    ring: list[Point] = []
    for p in pts:
        if not ring or dist(ring[-1], p) > 0.01:
            ring.append(p)
    if len(ring) > 1 and dist(ring[0], ring[-1]) <= 0.01:
        ring.pop()
    if len(ring) < 3:
        raise SiteError(f"{label}: the fence needs at least 3 distinct corners, got {len(ring)}")
    hit = ring_self_intersection(ring)
    if hit is not None:
        i, j = hit
        raise SiteError(
            f"{label}: the fence crosses itself (edge {i}-{(i + 1) % len(ring)} meets edge "
            f"{j}-{(j + 1) % len(ring)}); redraw it as a simple polygon"
        )
    area = signed_area(ring)
    if abs(area) < 1.0:
        raise SiteError(f"{label}: the fence encloses {abs(area):.2f} m2; draw the area the robot may use")
    if area < 0:
        ring.reverse()
    return tuple(ring)
