"""The site: the cleaning route, geofence, shelter and parking point, built and checked from its features.

Pure: robot/site_file.py reads the GeoJSON file; this module only does the geometry."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

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


def wall_from(
    label: str, bearing_deg: float | None, wall_m: float | None, width_m: float | None
) -> Wall | None:
    """The wall a shelter or park Point declares (wall_bearing_deg and wall_m, both or neither), or None."""
    if bearing_deg is None and wall_m is None:
        return None
    if bearing_deg is None or wall_m is None:
        missing = "wall_m" if wall_m is None else "wall_bearing_deg"
        raise SiteError(
            f"{label}: {missing} = None; a wall needs both wall_bearing_deg (compass degrees from the point to "
            "the wall) and wall_m (metres from the point to its face)"
        )
    a = math.radians(bearing_deg)
    # Compass bearing (clockwise from north) to an east/north unit vector.
    return Wall((math.sin(a), math.cos(a)), wall_m, WALL_WIDTH_M if width_m is None else width_m)


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


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature of a site file, already checked for shape: how errors name it, its [lon, lat] positions (one
    for a point, the ring for the fence) and its radius in metres when it gave one."""

    label: str
    coords: list[list[float]]
    radius_m: float | None = None


def build_site(
    name: str,
    fence_feature: Feature,
    routes: list[Feature],
    shelter: Feature,
    park: Feature,
    shelter_radius_m: float = SHELTER_RADIUS_M,
    park_radius_m: float = PARK_RADIUS_M,
    shelter_wall: Wall | None = None,
    park_wall: Wall | None = None,
) -> Site:
    """The Site from its features (robot/site_file.py reads and checks the file): the fence a simple polygon,
    every lane and point inside it, and a way inside the fence from each lane to the next; raises SiteError."""
    if not routes:
        raise SiteError("no route feature; a site needs one or more 'route' LineStrings")
    fence_label, fence_ll = fence_feature.label, fence_feature.coords
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
    for route in routes:
        label, coords = route.label, route.coords
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
    for role, feature in (("shelter", shelter), ("park", park)):
        label, position = feature.label, feature.coords[0]
        p = local(label, position)
        if not point_in_polygon(p, fence):
            raise SiteError(
                f"{label}: the {role} point ({position[1]:.6f}, {position[0]:.6f}) is outside the fence "
                f"{fence_label} by {boundary_distance(p, fence):.1f} m; move it inside"
            )
        points[role] = p
        wall = shelter_wall if role == "shelter" else park_wall
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
                f"{routes[k].label}: no way inside the fence from the end of the previous lane; "
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
        shelter_radius_m=shelter_radius_m,
        park_radius_m=park_radius_m,
        shelter_wall=shelter_wall,
        park_wall=park_wall,
    )


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
