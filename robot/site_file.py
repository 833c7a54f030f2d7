"""The site file: a GeoJSON FeatureCollection read and checked (by pydantic) into navigation's pure Site.

The file's shape (keys, types, ranges, roles, positions) is checked here; the geometry (the fence is a simple
polygon, every lane and point inside it, a way from each lane to the next) by robot.navigation.site.build_site,
which does no I/O. Every error is one line naming the file, the feature, the key, the value and the fix.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from robot.errors import SiteError
from robot.navigation.site import (
    DEMO_FILE,
    GEOMETRY,
    PARK_RADIUS_M,
    ROLES,
    SHELTER_RADIUS_M,
    WALL_MAX_M,
    WALL_MIN_M,
    Feature,
    Site,
    Wall,
    build_site,
    wall_from,
)
from robot.schema import anything, dotted, first_mistake, number, string, table

# Styling keys that map editors write into a feature's properties (the simplestyle spec of geojson.io);
# allowed, and ignored, so that a site drawn there loads as saved.
STYLE_KEYS = (
    "title",
    "description",
    "stroke",
    "stroke-width",
    "stroke-opacity",
    "fill",
    "fill-opacity",
    "marker-color",
    "marker-size",
    "marker-symbol",
)

_PROPERTIES = table(
    "SiteFeatureProperties",
    role=string(ROLES, required=True),
    name=string(),
    radius_m=number(0.2, 100.0),  # the shelter's covered area, the parking spot's size
    # A wall next to the shelter or park (both or neither): compass bearing and distance from the point to its face.
    wall_bearing_deg=number(0.0, 360.0),
    wall_m=number(WALL_MIN_M, WALL_MAX_M),
    wall_width_m=number(0.5, 50.0),
    **{key: anything() for key in STYLE_KEYS},
)
_FEATURE = table(
    "SiteFeature",
    type=string(("Feature",), required=True),
    properties=(_PROPERTIES, ...),
    geometry=(
        table(
            "SiteGeometry",
            type=string(tuple(sorted(set(GEOMETRY.values()))), required=True),
            coordinates=anything(required=True),  # their shape depends on the type: _coordinates reads them
            bbox=anything(),
        ),
        ...,
    ),
    id=anything(),
    bbox=anything(),
)
# The collection's own members; `name` and `crs` are what QGIS writes.
_COLLECTION = table(
    "SiteFile",
    type=string(("FeatureCollection",), required=True),
    features=anything(required=True),  # a list; each feature is checked with its own label
    properties=(table("SiteProperties", name=string(), description=string()), None),
    name=anything(),
    crs=anything(),
    bbox=anything(),
)


def load_site(path: str | Path) -> Site:
    """Read and check a GeoJSON site file; raises SiteError naming the file, feature and problem."""
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
    except RecursionError as err:
        raise SiteError(f"site file {p}: nested too deeply; export the site as GeoJSON") from err
    try:
        return parse_site(data, name=p.stem)
    except SiteError as err:
        raise SiteError(f"site file {p}: {err}") from None


def demo_site() -> Site:
    """The bundled demo site: three lanes of an alley block in Bangalore."""
    ref = resources.files("robot.navigation.sites").joinpath(DEMO_FILE)
    return parse_site(json.loads(ref.read_text(encoding="utf-8")), name="demo_alley")


def parse_site(data: Any, name: str = "site") -> Site:
    """Check a parsed GeoJSON FeatureCollection and build the Site."""
    if not isinstance(data, dict):
        raise SiteError('expected a GeoJSON object with "type": "FeatureCollection"')
    top = _checked(data, _COLLECTION, "")
    if not isinstance(top["features"], list):
        raise SiteError(f"features = {_short(top['features'])}: must be a list of GeoJSON features")
    name = top.get("properties", {}).get("name", name)

    found: dict[str, list[Feature]] = {r: [] for r in ROLES}
    walls: dict[str, Wall] = {}
    for i, raw in enumerate(top["features"]):
        label = _label(i, raw)
        if not isinstance(raw, dict):
            raise SiteError(f'{label}: expected an object with "type": "Feature"')
        feat = _checked(raw, _FEATURE, label + ": ")
        role, geometry = feat["properties"]["role"], feat["geometry"]
        want = GEOMETRY[role]
        if geometry["type"] != want:
            raise SiteError(f"{label}: geometry is {geometry['type']!r}; a {role} must be a {want}")
        radius = feat["properties"].get("radius_m")
        if radius is not None and role not in ("shelter", "park"):
            raise SiteError(f"{label}: properties.radius_m = {radius}: only a shelter or a park has a radius")
        found[role].append(Feature(label, _coordinates(label, want, geometry["coordinates"]), radius))
        props = feat["properties"]
        wall = wall_from(label, props.get("wall_bearing_deg"), props.get("wall_m"), props.get("wall_width_m"))
        if wall is not None and role not in ("shelter", "park"):
            raise SiteError(f"{label}: properties.wall_m: only a shelter or a park has a wall")
        if wall is not None:
            walls[role] = wall

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
            labels = ", ".join(f.label for f in found[role])
            raise SiteError(f"{len(found[role])} features with role {role!r} ({labels}); keep exactly one")
    shelter, park = found["shelter"][0], found["park"][0]
    return build_site(
        name,
        fence_feature=found["fence"][0],
        routes=found["route"],
        shelter=shelter,
        park=park,
        shelter_radius_m=SHELTER_RADIUS_M if shelter.radius_m is None else shelter.radius_m,
        park_radius_m=PARK_RADIUS_M if park.radius_m is None else park.radius_m,
        shelter_wall=walls.get("shelter"),
        park_wall=walls.get("park"),
    )


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _checked(data: Any, model: Any, prefix: str) -> dict[str, Any]:
    """The keys `model` allows, checked; one line naming the first mistake in the file's order."""
    try:
        out: dict[str, Any] = model.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as err:
        where, what = first_mistake(err, data, model, json=True)
        raise SiteError(f"{prefix}{dotted(where)}{what}") from None
    return out


def _label(i: int, feat: Any) -> str:
    """How errors name feature i: its index, then its name and role when it gives them."""
    label = f"feature {i}"
    props = feat.get("properties") if isinstance(feat, dict) else None
    if isinstance(props, dict):
        if isinstance(props.get("name"), str):
            label += f" ({props['name']!r})"
        if props.get("role") in ROLES:
            label += f", role {props['role']!r}"
    return label


def _coordinates(label: str, kind: str, coords: Any) -> list[list[float]]:
    """The checked [lon, lat] positions of a Point (one), a LineString or a Polygon's single ring."""
    if kind == "Point":
        return [_position(label, coords)]
    if kind == "LineString":
        if not isinstance(coords, list) or len(coords) < 2:
            raise SiteError(f"{label}: a LineString needs at least 2 positions")
        return [_position(f"{label} vertex {k}", c) for k, c in enumerate(coords)]
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
    return [_position(f"{label} vertex {k}", c) for k, c in enumerate(ring)]


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
