"""Site files: the bundled demo, and every way a hand-drawn GeoJSON site can be wrong."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from robot.errors import SiteError
from robot.navigation.geometry import Projection, point_in_polygon, segment_inside
from robot.site_file import demo_site, load_site, parse_site

LAT0, LON0 = 12.9716, 77.5946
PROJ = Projection(LAT0, LON0)


def ll(x: float, y: float) -> list[float]:
    """[lon, lat] of a local point near Bangalore."""
    lat, lon = PROJ.to_latlon(x, y)
    return [lon, lat]


def feature(role: str, kind: str, coords: Any, name: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"role": role}
    if name:
        props["name"] = name
    return {"type": "Feature", "properties": props, "geometry": {"type": kind, "coordinates": coords}}


def site_dict(
    fence: list[tuple[float, float]] | None = None,
    lanes: list[list[tuple[float, float]]] | None = None,
    shelter: tuple[float, float] = (5.0, 20.0),
    park: tuple[float, float] = (3.0, 3.0),
) -> dict[str, Any]:
    """A valid small site (40 m x 25 m, two lanes) in local metres, with parts replaceable."""
    fence = fence or [(0, 0), (40, 0), (40, 25), (0, 25)]
    lanes = lanes or [[(5, 5), (35, 5)], [(35, 12), (5, 12)]]
    ring = [ll(*p) for p in fence] + [ll(*fence[0])]
    feats = [feature("fence", "Polygon", [ring], "yard")]
    feats += [
        feature("route", "LineString", [ll(*p) for p in lane], f"lane {i}") for i, lane in enumerate(lanes)
    ]
    feats.append(feature("shelter", "Point", ll(*shelter), "awning"))
    feats.append(feature("park", "Point", ll(*park), "gate"))
    return {"type": "FeatureCollection", "features": feats}


def error_of(data: Any) -> str:
    with pytest.raises(SiteError) as err:
        parse_site(data)
    return str(err.value)


def test_demo_site_is_a_small_alley_route_near_bangalore() -> None:
    site = demo_site()
    assert 12.9 < site.origin[0] < 13.0 and 77.5 < site.origin[1] < 77.7
    assert 150.0 <= site.route_length <= 250.0
    assert len(site.lanes) == 3
    assert 1000.0 < site.fence_area < 1800.0  # about 63 m x 28 m, less the building corner
    # A cheap GPS is good to ~2.5 m CEP but drifts 5-6 m at times: the lanes keep 2.5 x CEP from the fence.
    assert site.route_min_clearance >= 6.4
    assert site.clearance(site.shelter) > 2.0 and site.clearance(site.park) > 2.0
    pts = site.route.points
    assert all(segment_inside(a, b, site.fence, 1.0) for a, b in itertools.pairwise(pts))


def test_demo_fence_is_not_convex_so_paths_must_go_round_corners() -> None:
    site = demo_site()
    fence = site.fence
    n = len(fence)
    turns = [
        (fence[i][0] - fence[i - 1][0]) * (fence[(i + 1) % n][1] - fence[i][1])
        - (fence[i][1] - fence[i - 1][1]) * (fence[(i + 1) % n][0] - fence[i][0])
        for i in range(n)
    ]
    assert any(t < 0 for t in turns)


def test_projection_round_trips_and_measures_metres() -> None:
    site = demo_site()
    lat, lon = site.to_latlon(30.0, -12.5)
    x, y = site.to_local(lat, lon)
    assert math.isclose(x, 30.0, abs_tol=1e-6) and math.isclose(y, -12.5, abs_tol=1e-6)
    # One thousandth of a degree of latitude is 111 m everywhere.
    _, y2 = site.to_local(lat + 0.001, lon)
    assert math.isclose(y2 - y, 111.2, abs_tol=0.1)
    assert site.contains(*site.to_latlon(*site.shelter))
    assert not site.contains(*site.to_latlon(0.0, 100.0))


def test_load_site_reads_a_file_and_names_it(tmp_path: Path) -> None:
    p = tmp_path / "my_lane.geojson"
    p.write_text(json.dumps(site_dict()), encoding="utf-8")
    site = load_site(p)
    assert site.name == "my_lane"
    assert math.isclose(site.lanes_length, 60.0, abs_tol=0.01)
    assert math.isclose(site.route_length, 67.0, abs_tol=0.01)  # the 7 m connector between the lanes
    assert math.isclose(site.fence_area, 1000.0, rel_tol=1e-3)
    assert "2 lane(s)" in site.summary()


def test_clockwise_fence_and_unclosed_ring_are_accepted() -> None:
    d = site_dict()
    ring = d["features"][0]["geometry"]["coordinates"][0]
    d["features"][0]["geometry"]["coordinates"][0] = ring[:-1][::-1]
    site = parse_site(d)
    assert math.isclose(site.fence_area, 1000.0, rel_tol=1e-3)
    assert point_in_polygon(site.shelter, site.fence)


def test_self_intersecting_fence_is_rejected() -> None:
    msg = error_of(site_dict(fence=[(0, 0), (40, 25), (40, 0), (0, 25)]))
    assert "'yard'" in msg and "crosses itself" in msg and "edge" in msg


def test_route_vertex_outside_the_fence_is_rejected() -> None:
    msg = error_of(site_dict(lanes=[[(5, 5), (45, 5)]]))
    assert "'lane 0'" in msg and "vertex 1" in msg and "outside the fence" in msg and "5.0 m" in msg


def test_route_segment_crossing_a_fence_notch_is_rejected() -> None:
    notched = [(0, 0), (40, 0), (40, 25), (22, 25), (20, 3), (18, 25), (0, 25)]
    msg = error_of(site_dict(fence=notched, lanes=[[(5, 12), (35, 12)]]))
    assert "'lane 0'" in msg and "segment 0-1 crosses the fence" in msg


@pytest.mark.parametrize("role", ["shelter", "park"])
def test_shelter_or_park_outside_the_fence_is_rejected(role: str) -> None:
    msg = error_of(site_dict(**{role: (20.0, 30.0)}))
    assert f"role {role!r}" in msg and "outside the fence" in msg and "5.0 m" in msg


def test_missing_roles_are_named() -> None:
    d = site_dict()
    d["features"] = [f for f in d["features"] if f["properties"]["role"] not in ("shelter", "route")]
    msg = error_of(d)
    assert "'route'" in msg and "'shelter'" in msg and "'park'" not in msg.split(";")[0]


def test_two_fences_are_rejected() -> None:
    d = site_dict()
    d["features"].append(copy.deepcopy(d["features"][0]))
    assert "2 features with role 'fence'" in error_of(d)


@pytest.mark.parametrize(
    ("coords", "expect"),
    [
        (["77.59", "12.97"], "expected numbers"),
        ([77.59], "must be [longitude, latitude]"),
        ([True, 12.97], "expected numbers"),
        ([float("nan"), 12.97], "expected numbers"),
        ([12.97, 177.59], "not [longitude, latitude]"),
        (None, "must be [longitude, latitude]"),
    ],
)
def test_bad_coordinates_are_rejected(coords: Any, expect: str) -> None:
    d = site_dict()
    d["features"][-2]["geometry"]["coordinates"] = coords
    msg = error_of(d)
    assert "'awning'" in msg and expect in msg


def test_swapped_lat_lon_far_away_is_rejected() -> None:
    d = site_dict()
    d["features"][-1]["geometry"]["coordinates"] = [LAT0 + 60.0, LON0 - 60.0]
    assert "km from the fence" in error_of(d)


def test_wrong_geometry_unknown_role_holes_and_tiny_fence_are_rejected() -> None:
    d = site_dict()
    d["features"][-1]["geometry"]["type"] = "LineString"
    assert "a park must be a Point" in error_of(d)
    d = site_dict()
    d["features"][-1]["properties"]["role"] = "parking"
    assert "properties.role = 'parking'" in error_of(d)
    d = site_dict()
    ring = d["features"][0]["geometry"]["coordinates"][0]
    d["features"][0]["geometry"]["coordinates"].append(ring)
    assert "hole" in error_of(d)
    assert "at least 3 distinct corners" in error_of(site_dict(fence=[(0, 0), (40, 0), (40, 0.001)]))
    assert "needs at least 2 positions" in error_of(site_dict(lanes=[[(5, 5)]]))
    assert "FeatureCollection" in error_of([1, 2])
    assert "must be a list" in error_of({"type": "FeatureCollection", "features": {}})


def test_load_site_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match=r"missing\.geojson: cannot read it"):
        load_site(tmp_path / "missing.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection",\n "features": [,]}', encoding="utf-8")
    with pytest.raises(SiteError, match=r"bad\.geojson: not valid JSON at line 2"):
        load_site(bad)
    crossed = tmp_path / "crossed.geojson"
    crossed.write_text(json.dumps(site_dict(fence=[(0, 0), (40, 25), (40, 0), (0, 25)])), encoding="utf-8")
    with pytest.raises(SiteError, match=r"crossed\.geojson: feature 0"):
        load_site(crossed)


@pytest.mark.parametrize(
    ("where", "key", "value", "expect"),
    [
        # An unknown key: a misspelt radius would otherwise be silently ignored.
        (-1, "raduis_m", 3, "properties.raduis_m: unknown key; known keys here: "),
        # Wrong types.
        (-1, "radius_m", "3", "properties.radius_m = '3': expected a number"),
        (1, "name", 5, "properties.name = 5: expected a quoted string"),
        # Out of range, NaN included.
        (-1, "radius_m", 500, "properties.radius_m = 500.0: must be between 0.2 and 100.0"),
        (-1, "radius_m", float("nan"), "properties.radius_m = nan: must be between 0.2 and 100.0"),
        # A radius where it means nothing.
        (1, "radius_m", 3, "properties.radius_m = 3.0: only a shelter or a park has a radius"),
    ],
)
def test_feature_properties_are_checked_key_type_and_range(
    where: int, key: str, value: Any, expect: str
) -> None:
    d = site_dict()
    d["features"][where]["properties"][key] = value
    msg = error_of(d)
    assert msg.startswith("feature ") and expect in msg and "\n" not in msg
    assert ("'gate'" if where == -1 else "feature 1") in msg


def test_map_editor_styling_is_accepted_and_the_radius_is_read() -> None:
    d = site_dict()
    d["features"][-1]["properties"].update({"stroke": "#f00", "marker-symbol": "parking", "radius_m": 4})
    d["features"][-2]["properties"]["radius_m"] = 6.5
    site = parse_site(d)
    assert (site.park_radius_m, site.shelter_radius_m) == (4.0, 6.5)


def test_collection_and_feature_shape_errors_are_one_line() -> None:
    d = site_dict()
    d["featurs"] = []
    assert error_of(d).startswith("featurs: unknown key; known keys here: bbox, crs, features")
    d = site_dict()
    d["features"][1]["geometry"] = None
    assert "feature 1 ('lane 0'), role 'route': geometry = None: expected an object" in error_of(d)
    d = site_dict()
    d["features"][1]["geometry"]["type"] = "MultiLineString"
    assert "geometry.type = 'MultiLineString': must be one of 'LineString', 'Point', 'Polygon'" in error_of(d)
    d = site_dict()
    d["features"][1] = 7
    assert 'feature 1: expected an object with "type": "Feature"' in error_of(d)


def test_a_bad_radius_in_a_file_names_the_file(tmp_path: Path) -> None:
    d = site_dict()
    d["features"][-2]["properties"]["radius_m"] = 0.0
    p = tmp_path / "yard.geojson"
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(SiteError) as err:
        load_site(p)
    assert str(err.value) == (
        f"site file {p}: feature 3 ('awning'), role 'shelter': properties.radius_m = 0.0: "
        "must be between 0.2 and 100.0"
    )


def with_wall(role: str, **props: Any) -> dict[str, Any]:
    data = site_dict()
    for feat in data["features"]:
        if feat["properties"]["role"] == role:
            feat["properties"].update(props)
    return data


@pytest.mark.parametrize("role", ["shelter", "park"])
def test_a_wall_at_the_shelter_or_park_is_read_as_a_direction_and_distance(role: str) -> None:
    # The shelter (5, 20) and park (3, 3): a wall 2.5 m due west of each (bearing 270), 3 m wide.
    site = parse_site(with_wall(role, wall_bearing_deg=270, wall_m=2.5, wall_width_m=3))
    wall = site.wall(role)
    assert wall is not None and wall.distance_m == 2.5 and wall.width_m == 3.0
    assert wall.normal == pytest.approx((-1.0, 0.0), abs=1e-9)
    point = site.shelter if role == "shelter" else site.park
    assert wall.face(point) == pytest.approx((point[0] - 2.5, point[1]), abs=1e-9)
    other = "park" if role == "shelter" else "shelter"
    assert site.wall(other) is None and parse_site(site_dict()).wall(role) is None


@pytest.mark.parametrize(
    ("props", "expect"),
    [
        ({"wall_bearing_deg": 90}, "wall_m = None"),
        ({"wall_m": 2.0}, "wall_bearing_deg = None"),
        ({"wall_bearing_deg": "west", "wall_m": 2.0}, "wall_bearing_deg = 'west'"),
        ({"wall_bearing_deg": 90, "wall_m": 0.1}, "wall_m = 0.1"),
        ({"wall_bearing_deg": 90, "wall_m": 2.0, "wall_width_m": 0}, "wall_width_m = 0"),
        # Due north of the shelter (5, 20) the fence is 5 m away: a wall 6 m off is beyond it.
        ({"wall_bearing_deg": 0, "wall_m": 6.0}, "beyond the fence"),
    ],
)
def test_a_bad_wall_is_rejected_with_its_key(props: dict[str, Any], expect: str) -> None:
    msg = error_of(with_wall("shelter", **props))
    assert "role 'shelter'" in msg and expect in msg
