"""Simulator scenarios: TOML files (start, site, weather, litter, obstacles, tray emptying, faults).

A scenario is a day (or night) in the robot's life. Times are local clock times at the site, "HH:MM" or
"HH:MM:SS"; a clock time earlier than the start's means the next day. A plain number is seconds after the
start. Places are either metres along the site's cleaning route (`along_m`, with `offset_m` to the left) or
local east/north metres (`x`, `y`). Every error names the file and the line of the offending key.
docs/simulator.md lists every key.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from robot.errors import ScenarioError
from robot.schema import anything, dotted, first_mistake, number, string, table, tables, whole
from sim.solar import SolarSite

SCENARIO_DIR = Path(__file__).with_name("scenarios")

FAULT_KINDS = (
    "link_cut",  # unplug the Arduino's USB cable: no bytes either way for duration_s, then plug back in
    "corrupt_bytes",  # flip bits in `count` bytes travelling to the Arduino
    "gps_loss",  # no fix for duration_s
    "gps_jump",  # fixes offset by jump_m for duration_s (multipath)
    "stuck_sensor",  # `sensor` repeats its last reading for duration_s
    "modem_gone",  # the GSM modem stops answering for duration_s
    "gps_degraded",  # fixes wander with a `cep_m` error for duration_s (urban canyon, trees)
    "echo_false",  # the ultrasonic sensor hears a phantom echo at `distance_m` (a `rate` of its readings)
    "echo_missing",  # the ultrasonic sensor hears nothing (reads its full 4 m range) for a `rate` of its readings
    "relay_welded",  # the power relay's contacts weld: it stays where it is, whatever the Pi selects
    "scale_drift",  # the load cell's zero creeps by `kg_per_h` for duration_s, then it is re-tared
    "modem_no_network",  # the GSM modem answers but has no network: every SMS fails
    "pi_reset",  # the Pi's supply dips (a brown-out): it resets without a power-down and boots again
    "pushed",  # someone pushes the robot `distance_m` towards compass `heading_deg`
    "rain_sensor_wet",  # the rain sensor is wet under a clear sky (dew, a leaf) for duration_s
)
# The keys each kind takes beyond at, kind and duration_s, and the kinds that take no duration.
FAULT_KEYS = {
    "corrupt_bytes": ("count",),
    "gps_jump": ("jump_m",),
    "stuck_sensor": ("sensor",),
    "gps_degraded": ("cep_m",),
    "echo_false": ("distance_m", "rate"),
    "echo_missing": ("rate",),
    "scale_drift": ("kg_per_h",),
    "pushed": ("distance_m", "heading_deg"),
}
INSTANT_FAULTS = ("corrupt_bytes", "pi_reset", "pushed")
STUCK_SENSORS = ("distance", "rain", "scale", "power", "gps")
OPERATOR_ACTIONS = (
    "estop",  # the dashboard's STOP: latches the e-stop
    "reset",  # clears an e-stop or a stuck robot
    "mode",  # auto, manual or paused
    "drive",  # manual driving: left/right wheel speeds in [-1, 1] for duration_s, as the dashboard's joystick
    "tray_emptied",  # a person empties the tray and presses "tray emptied"
)
MODES = ("auto", "manual", "paused")
EXPECT_OPS = ("<=", ">=", "==", "!=", "<", ">")
_EXPECT = re.compile(r"^\s*(<=|>=|==|!=|<|>)?\s*(\S+)\s*$")
OBSTACLE_KINDS = ("static", "moving")


@dataclass(frozen=True, slots=True)
class Place:
    """A point on the site: along the route (`along_m`, `offset_m` to the left) or at local (x, y) metres."""

    along_m: float | None = None
    offset_m: float = 0.0
    x: float | None = None
    y: float | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """A span of scenario time in seconds after the start."""

    start_s: float
    end_s: float

    def contains(self, t: float) -> bool:
        """True while t is inside [start, end)."""
        return self.start_s <= t < self.end_s


@dataclass(frozen=True, slots=True)
class CloudPeriod:
    """Broken cloud for a while: clouds pass over the sun; `cover` is the fraction of time shaded."""

    period: Period
    cover: float
    transmittance: float
    mean_pass_s: float


@dataclass(frozen=True, slots=True)
class Weather:
    """Air temperature range (coolest at 06:00, warmest at 15:00), cloud periods and rain periods."""

    temp_min_c: float = 21.0
    temp_max_c: float = 32.0
    clouds: tuple[CloudPeriod, ...] = ()
    rain: tuple[Period, ...] = ()


@dataclass(frozen=True, slots=True)
class Shade:
    """A patch of shade (a tree, a building's shadow) over part of the site."""

    place: Place
    radius_m: float
    transmittance: float


@dataclass(frozen=True, slots=True)
class Hotspot:
    """A heap of litter: extra density around a place."""

    place: Place
    radius_m: float
    kg_per_m2: float


@dataclass(frozen=True, slots=True)
class Litter:
    """Litter spread along the route corridor, plus hotspots."""

    kg_per_m2: float = 0.01
    corridor_m: float = 3.0
    hotspots: tuple[Hotspot, ...] = ()


@dataclass(frozen=True, slots=True)
class Obstacle:
    """Something the ultrasonic sensor sees: a static post or bin, or a person walking across the route."""

    kind: str
    place: Place
    radius_m: float
    span_m: float = 0.0  # moving: walks across the route this far each way
    speed_m_s: float = 0.0
    active: Period | None = None  # None = all the time


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault injected at a time."""

    at_s: float
    kind: str
    duration_s: float = 0.0
    sensor: str = ""
    count: int = 0
    jump_m: float = 0.0
    cep_m: float = 0.0
    distance_m: float = 0.0
    rate: float = 1.0
    kg_per_h: float = 0.0
    heading_deg: float = 0.0


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """What a person does at a time, through the dashboard's command queue: `action` is one of OPERATOR_ACTIONS;
    `mode` for "mode"; wheel speeds `left`/`right` held for `duration_s` for "drive"."""

    at_s: float
    action: str
    mode: str = ""
    left: float = 0.0
    right: float = 0.0
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Expectation:
    """One line of the scenario's [expect] table: report figure `key` (dotted into nested figures), an operator,
    and a number or another figure's key to compare with; `line` is its line in the file."""

    key: str
    op: str
    operand: float | str
    line: int = 0

    def describe(self) -> str:
        """The expectation as written: `shelter_reached == storms`."""
        value = f"{self.operand:g}" if isinstance(self.operand, float) else self.operand
        return f"{self.key} {self.op} {value}"


@dataclass(frozen=True, slots=True)
class RobotStart:
    """The robot's state at the start."""

    battery_soc: float = 0.8
    tray_kg: float = 0.0
    place: Place | None = None  # None = the site's parking spot
    heading_deg: float | None = None  # compass degrees; None = towards the route's start


@dataclass(frozen=True)
class Scenario:
    """One validated scenario."""

    name: str
    description: str
    start: datetime  # local time at the site, naive
    duration_s: float
    site: str  # "demo" or an absolute path to a site GeoJSON file
    solar_site: SolarSite
    seed: int
    robot: RobotStart = field(default_factory=RobotStart)
    weather: Weather = field(default_factory=Weather)
    litter: Litter = field(default_factory=Litter)
    shade: tuple[Shade, ...] = ()
    obstacles: tuple[Obstacle, ...] = ()
    tray_empty_s: tuple[float, ...] = ()
    faults: tuple[Fault, ...] = ()
    operator: tuple[OperatorAction, ...] = ()
    expect: tuple[Expectation, ...] = ()
    source: str = "<string>"

    def days(self) -> list[Date]:
        """Every local date the scenario touches."""
        first = self.start.date()
        last = (self.start + timedelta(seconds=self.duration_s)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def local_time(self, t: float) -> datetime:
        """Local clock time at the site, t seconds after the start."""
        return self.start + timedelta(seconds=t)


# --- finding the line of a key ------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")


def _key_line(lines: list[str], lo: int, hi: int, key: str) -> int | None:
    pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for i in range(lo, hi):
        if pat.match(lines[i]):
            return i
    return None


def _section(lines: list[str], name: str, index: int | None) -> tuple[int, int] | None:
    """(header line, end line) of table [name] or of the index-th [[name]] block."""
    seen = -1
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m or m.group(2).replace(" ", "") != name:
            continue
        if index is None or (m.group(1) == "[[" and (seen := seen + 1) == index):
            end = next((j for j in range(i + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
            return i, end
    return None


def _inline_item(lines: list[str], start: int, index: int) -> int | None:
    """Line where the index-th `{` of an inline array of tables begins, scanning from the array's key line."""
    depth = 0
    count = -1
    for i in range(start, len(lines)):
        text = lines[i].split("#", 1)[0]
        begin = text.index("=") + 1 if i == start and "=" in text else 0
        for ch in text[begin:]:
            if ch == "{":
                depth += 1
                if depth == 1:
                    count += 1
                    if count == index:
                        return i
            elif ch == "}":
                depth -= 1
            elif ch == "]" and depth == 0:
                return None
    return None


def line_of(text: str, path: tuple[str | int, ...]) -> int:
    """1-based line of a key path like ("obstacle", 2, "radius_m") or ("weather", "rain", 0, "to"), or 0."""
    lines = text.splitlines()
    best = 0
    # Longest prefix that is a table header: [a.b] or the n-th [[a]].
    for cut in range(len(path), 0, -1):
        head = path[:cut]
        names = [p for p in head if isinstance(p, str)]
        if isinstance(head[-1], int) and len(names) == cut - 1:
            sec = _section(lines, ".".join(names), head[-1])
        elif all(isinstance(p, str) for p in head):
            sec = _section(lines, ".".join(names), None)
        else:
            continue
        if sec is None:
            continue
        best = sec[0] + 1
        rest = path[cut:]
        lo, hi = sec[0] + 1, sec[1]
        break
    else:
        rest = path
        first = next((i for i, line in enumerate(lines) if _HEADER.match(line)), len(lines))
        lo, hi = 0, first
    # Then keys within the section, descending into inline arrays of tables.
    i = 0
    while i < len(rest):
        key = rest[i]
        if not isinstance(key, str):
            break
        found = _key_line(lines, lo, hi, key)
        if found is None:
            break
        best = found + 1
        index = rest[i + 1] if i + 1 < len(rest) else None
        if isinstance(index, int):
            item = _inline_item(lines, found, index)
            if item is None:
                break
            best = item + 1
            lo, hi = item, len(lines)
            inner = rest[i + 2] if i + 2 < len(rest) else None
            if isinstance(inner, str):
                sub = re.compile(rf"[{{,]\s*{re.escape(inner)}\s*=")
                for j in range(item, min(len(lines), item + 20)):
                    if sub.search(lines[j]) or _key_line(lines, j, j + 1, inner) is not None:
                        best = j + 1
                        break
            break
        lo = found
        i += 1
    return best


# --- validation ---------------------------------------------------------------------------------------

# The file's shape: every table's keys, types, ranges and choices (checked by pydantic, robot/schema.py).
# Defaults are applied where the values are read, in parse(). Times (at, from, to) take several forms: a
# number of seconds, a clock time or a local date-time; _Checker.time reads them.
_PLACE = {
    "along_m": number(0.0, 100000.0),
    "offset_m": number(-1000.0, 1000.0),
    "x": number(-100000.0, 100000.0),
    "y": number(-100000.0, 100000.0),
}
_PERIOD = {"from": anything(required=True), "to": anything(required=True)}
_SITE = table(
    "ScenarioSite",
    map=string(),
    lat=number(-66.0, 66.0),
    lon=number(-180.0, 180.0),
    timezone=string(),
    altitude_m=number(-400.0, 6000.0),
)
_ROBOT = table(
    "ScenarioRobot",
    battery_soc=number(0.0, 1.0),
    tray_kg=number(0.0, 5.0),
    heading_deg=number(0.0, 360.0),
    **_PLACE,
)
_CLOUD = table(
    "ScenarioCloud",
    **_PERIOD,
    cover=number(0.0, 1.0),
    transmittance=number(0.0, 1.0),
    mean_pass_s=number(5.0, 7200.0),
)
_WEATHER = table(
    "ScenarioWeather",
    temp_min_c=number(-30.0, 50.0),
    temp_max_c=number(-30.0, 55.0),
    clouds=tables(_CLOUD),
    rain=tables(table("ScenarioRain", **_PERIOD)),
)
_HOTSPOT = table(
    "ScenarioHotspot", radius_m=number(0.1, 50.0), kg_per_m2=number(0.0, 5.0, required=True), **_PLACE
)
_LITTER = table(
    "ScenarioLitter", kg_per_m2=number(0.0, 5.0), corridor_m=number(0.2, 50.0), hotspots=tables(_HOTSPOT)
)
_SHADE = table(
    "ScenarioShade", radius_m=number(0.1, 500.0, required=True), transmittance=number(0.0, 1.0), **_PLACE
)
_OBSTACLE = table(
    "ScenarioObstacle",
    kind=string(OBSTACLE_KINDS),
    radius_m=number(0.05, 10.0),
    span_m=number(0.5, 100.0),
    speed_m_s=number(0.05, 5.0),
    **{"from": anything(), "to": anything()},
    **_PLACE,
)
_FAULT = table(
    "ScenarioFault",
    at=anything(required=True),
    kind=string(FAULT_KINDS, required=True),
    duration_s=number(0.05, 86400.0),
    sensor=string(STUCK_SENSORS),
    count=whole(1, 10000),
    jump_m=number(1.0, 10000.0),
    cep_m=number(0.5, 1000.0),
    distance_m=number(0.02, 100.0),
    rate=number(0.0, 1.0),
    kg_per_h=number(-10.0, 10.0),
    heading_deg=number(0.0, 360.0),
)
_OPERATOR = table(
    "ScenarioOperator",
    at=anything(required=True),
    action=string(OPERATOR_ACTIONS, required=True),
    mode=string(MODES),
    left=number(-1.0, 1.0),
    right=number(-1.0, 1.0),
    duration_s=number(0.1, 3600.0),
)
_SCENARIO = table(
    "ScenarioFile",
    name=string(),
    description=string(),
    start=anything(),  # read below: its message says what a local date-time looks like
    duration_h=number(0.001, 72.0, required=True),
    seed=whole(0, 2**31),
    site=(_SITE, None),
    robot=(_ROBOT, None),
    weather=(_WEATHER, None),
    litter=(_LITTER, None),
    shade=tables(_SHADE),
    obstacle=tables(_OBSTACLE),
    tray_empty=tables(table("ScenarioTrayEmpty", at=anything(required=True))),
    fault=tables(_FAULT),
    operator=tables(_OPERATOR),
    expect=anything(),  # report figures: _expectations reads them
)
# Fault keys whose default depends on the kind of fault.
_FAULT_DEFAULTS = {
    "count": 8,
    "jump_m": 30.0,
    "cep_m": 10.0,
    "rate": 1.0,
    "kg_per_h": 0.2,
    "heading_deg": 0.0,
}


class _Checker:
    """Reads times, periods and places out of checked TOML tables; every error names the file and the line."""

    def __init__(self, text: str, source: str, start: datetime | None = None) -> None:
        self.text = text
        self.source = source
        self.start = start
        self.duration_s: float | None = None

    def error(self, path: tuple[str | int, ...], message: str) -> ScenarioError:
        line = line_of(self.text, path)
        where = f"{self.source} line {line}" if line else self.source
        return ScenarioError(f"{where}: {dotted(path)}{message}")

    def need(self, table: dict[str, Any], path: tuple[str | int, ...], key: str) -> Any:
        """A key this table needs here (for this kind of fault, this action, this form of place)."""
        if key not in table:
            raise self.error(path, f": missing required key {key!r}")
        return table[key]

    def time(
        self, table: dict[str, Any], path: tuple[str | int, ...], key: str, default: float | None
    ) -> float:
        """Seconds after the start: a number of seconds, a local clock time "HH:MM[:SS]" (the next one after the
        start), or a local date and time (TOML 2024-03-16T12:30:00), for scenarios longer than a day."""
        full = (*path, key)
        if key not in table:
            if default is None:
                raise self.error(path, f": missing required key {key!r}")
            return default
        v = table[key]
        if isinstance(v, datetime) and v.tzinfo is None:
            assert self.start is not None
            if v < self.start:
                raise self.error(full, f" = {v.isoformat()}: before the start ({self.start.isoformat()})")
            return self._within(full, v.isoformat(), (v - self.start).total_seconds())
        if isinstance(v, int | float) and not isinstance(v, bool):
            if v < 0:
                raise self.error(full, f" = {v!r}: seconds after the start cannot be negative")
            return self._within(full, repr(v), float(v))
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", v) if isinstance(v, str) else None
        if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
            raise self.error(
                full,
                f' = {v!r}: expected a clock time like "14:30", a local date-time or seconds after the start',
            )
        assert self.start is not None
        clock = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
        start_clock = self.start.hour * 3600 + self.start.minute * 60 + self.start.second
        t = float((clock - start_clock) % 86400)
        if clock < start_clock:
            return self._within(
                full, repr(v), t, "a clock time earlier than the start's is on the next day; "
            )
        return self._within(full, repr(v), t)

    def _within(self, full: tuple[str | int, ...], shown: str, t: float, why: str = "") -> float:
        """t, or an error when it falls after the end of the run."""
        end = self.duration_s
        if end is not None and t > end + 1e-6:
            raise self.error(
                full,
                f" = {shown}: {t / 3600:.2f} h after the start, past the end of the run ({end / 3600:g} h); "
                f"{why}give a time within the run",
            )
        return t

    def period(self, table: dict[str, Any], path: tuple[str | int, ...]) -> Period:
        start = self.time(table, path, "from", None)
        end = self.time(table, path, "to", None)
        if end <= start:
            raise self.error((*path, "to"), f" = {table['to']!r}: must be after from = {table['from']!r}")
        return Period(start, end)

    def place(self, table: dict[str, Any], path: tuple[str | int, ...]) -> Place:
        has_along = "along_m" in table
        has_xy = "x" in table or "y" in table
        if has_along == has_xy:
            raise self.error(path, ": give either along_m (metres along the route) or x and y (local metres)")
        if has_along:
            return Place(along_m=table["along_m"], offset_m=table.get("offset_m", 0.0))
        return Place(x=self.need(table, path, "x"), y=self.need(table, path, "y"))


def parse(text: str, source: str = "<string>", base_dir: Path | None = None) -> Scenario:
    """Validate scenario TOML text; raises ScenarioError naming the line of the first problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", str(err))
        if m is None:
            raise ScenarioError(f"{source}: not valid TOML ({err})") from err
        raise ScenarioError(
            f"{source} line {m.group(2)}: not valid TOML: {m.group(1)} at column {m.group(3)}"
        ) from err
    c = _Checker(text, source)
    try:
        data = _SCENARIO.model_validate(raw).model_dump(exclude_unset=True)
    except ValidationError as err:
        where, what = first_mistake(err, raw, _SCENARIO)
        raise c.error(where, what) from None
    except RecursionError as err:
        raise ScenarioError(f"{source}: tables nested too deeply") from err
    raw_start = data.get("start")
    if isinstance(raw_start, datetime):
        if raw_start.tzinfo is not None:
            raise c.error(("start",), f" = {raw_start}: give local time at the site without a UTC offset")
        start = raw_start
    elif "start" not in data:
        raise c.error(
            (), ": missing required key 'start' (local date and time, e.g. start = 2024-03-15T07:00:00)"
        )
    else:
        raise c.error(("start",), f" = {raw_start!r}: expected a local date-time like 2024-03-15T07:00:00")
    c.start = start
    duration_s = data["duration_h"] * 3600.0
    c.duration_s = duration_s
    seed = data.get("seed", 1)

    site_t = data.get("site", {})
    site_ref = site_t.get("map", "demo")
    if site_ref != "demo":
        p = Path(site_ref)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        if not p.is_file():
            raise c.error(
                ("site", "map"), f" = {site_ref!r}: no such site file; give a GeoJSON path or 'demo'"
            )
        site_ref = str(p)
    tz = site_t.get("timezone", "Asia/Kolkata")
    if not re.fullmatch(r"[A-Za-z_]+(/[A-Za-z_+\-0-9]+)*", tz):
        raise c.error(("site", "timezone"), f" = {tz!r}: expected an IANA time zone like 'Asia/Kolkata'")
    solar = SolarSite(
        lat=site_t.get("lat", 12.97),
        lon=site_t.get("lon", 77.59),
        tz=tz,
        altitude_m=site_t.get("altitude_m", 920.0),
    )

    rob_t = data.get("robot", {})
    robot = RobotStart(
        battery_soc=rob_t.get("battery_soc", 0.8),
        tray_kg=rob_t.get("tray_kg", 0.0),
        place=c.place(rob_t, ("robot",)) if any(k in rob_t for k in _PLACE) else None,
        heading_deg=rob_t.get("heading_deg"),
    )

    w_t = data.get("weather", {})
    tmin, tmax = w_t.get("temp_min_c", 21.0), w_t.get("temp_max_c", 32.0)
    if tmax < tmin:
        raise c.error(("weather", "temp_max_c"), f" = {tmax}: must not be below temp_min_c ({tmin})")
    clouds = []
    for i, ct in enumerate(w_t.get("clouds", [])):
        path: tuple[str | int, ...] = ("weather", "clouds", i)
        clouds.append(
            CloudPeriod(
                period=c.period(ct, path),
                cover=ct.get("cover", 0.5),
                transmittance=ct.get("transmittance", 0.3),
                mean_pass_s=ct.get("mean_pass_s", 120.0),
            )
        )
    rain = [c.period(rt, ("weather", "rain", i)) for i, rt in enumerate(w_t.get("rain", []))]
    rain.sort(key=lambda p: p.start_s)
    for a, b in itertools.pairwise(rain):
        if b.start_s < a.end_s:
            raise c.error(("weather", "rain", rain.index(b)), ": rain periods overlap; merge them into one")
    weather = Weather(tmin, tmax, tuple(clouds), tuple(rain))

    lit_t = data.get("litter", {})
    hotspots = [
        Hotspot(
            place=c.place(ht, ("litter", "hotspots", i)),
            radius_m=ht.get("radius_m", 1.0),
            kg_per_m2=ht["kg_per_m2"],
        )
        for i, ht in enumerate(lit_t.get("hotspots", []))
    ]
    litter = Litter(
        kg_per_m2=lit_t.get("kg_per_m2", 0.01),
        corridor_m=lit_t.get("corridor_m", 3.0),
        hotspots=tuple(hotspots),
    )

    shade = [
        Shade(
            place=c.place(st, ("shade", i)),
            radius_m=st["radius_m"],
            transmittance=st.get("transmittance", 0.3),
        )
        for i, st in enumerate(data.get("shade", []))
    ]

    obstacles = []
    for i, ot in enumerate(data.get("obstacle", [])):
        path = ("obstacle", i)
        kind = ot.get("kind", "static")
        moving = kind == "moving"
        if not moving and ("span_m" in ot or "speed_m_s" in ot):
            raise c.error(
                (*path, "span_m" if "span_m" in ot else "speed_m_s"), ": only a moving obstacle walks"
            )
        if ("from" in ot) != ("to" in ot):
            raise c.error(path, ": give both from and to for an obstacle that is there only for a while")
        obstacles.append(
            Obstacle(
                kind=kind,
                place=c.place(ot, path),
                radius_m=ot.get("radius_m", 0.3),
                span_m=ot.get("span_m", 3.0) if moving else 0.0,
                speed_m_s=ot.get("speed_m_s", 1.0) if moving else 0.0,
                active=c.period(ot, path) if "from" in ot else None,
            )
        )

    empties = [c.time(et, ("tray_empty", i), "at", None) for i, et in enumerate(data.get("tray_empty", []))]

    faults = []
    every_key = sorted({k for keys in FAULT_KEYS.values() for k in keys})
    for i, ft in enumerate(data.get("fault", [])):
        path = ("fault", i)
        kind = ft["kind"]
        takes = FAULT_KEYS.get(kind, ())
        for key in every_key:
            if key in ft and key not in takes:
                users = " or ".join(k for k, keys in FAULT_KEYS.items() if key in keys)
                raise c.error((*path, key), f": only a {users} fault takes {key}")
        instant = kind in INSTANT_FAULTS
        if instant and "duration_s" in ft:
            raise c.error((*path, "duration_s"), f": a {kind} fault happens at once; it takes no duration_s")
        given = {k: ft.get(k, _FAULT_DEFAULTS.get(k)) for k in takes}
        if "distance_m" in takes:
            given["distance_m"] = ft.get("distance_m", 0.3 if kind == "echo_false" else 1.0)
        if "sensor" in takes:
            given["sensor"] = c.need(ft, path, "sensor")
        faults.append(
            Fault(
                at_s=c.time(ft, path, "at", None),
                kind=kind,
                duration_s=0.0 if instant else c.need(ft, path, "duration_s"),
                **given,
            )
        )
    faults.sort(key=lambda f: f.at_s)
    for i, f in enumerate(faults):
        if f.at_s > duration_s:
            raise c.error(("fault", i), f": at {f.at_s:.0f} s after the start is after the scenario ends")

    operator = []
    for i, ot in enumerate(data.get("operator", [])):
        path = ("operator", i)
        action = ot["action"]
        for key, used in (("mode", ("mode",)), ("left", ("drive",)), ("right", ("drive",))):
            if key in ot and action not in used:
                raise c.error((*path, key), f": only a {used[0]} action takes {key}")
        if "duration_s" in ot and action != "drive":
            raise c.error((*path, "duration_s"), ": only a drive action takes duration_s")
        drive = action == "drive"
        op = OperatorAction(
            at_s=c.time(ot, path, "at", None),
            action=action,
            mode=c.need(ot, path, "mode") if action == "mode" else "",
            left=c.need(ot, path, "left") if drive else 0.0,
            right=c.need(ot, path, "right") if drive else 0.0,
            duration_s=c.need(ot, path, "duration_s") if drive else 0.0,
        )
        if drive and op.at_s + op.duration_s > duration_s:
            raise c.error(
                (*path, "duration_s"), f" = {op.duration_s:g}: the drive goes past the end of the run"
            )
        operator.append(op)
    operator.sort(key=lambda o: o.at_s)

    expect = _expectations(c, data.get("expect", {}))
    _check_places(c, site_ref, robot, litter, shade, obstacles)

    return Scenario(
        name=data.get("name", Path(source).stem),
        description=data.get("description", ""),
        start=start,
        duration_s=duration_s,
        site=site_ref,
        solar_site=solar,
        seed=seed,
        robot=robot,
        weather=weather,
        litter=litter,
        shade=tuple(shade),
        obstacles=tuple(obstacles),
        tray_empty_s=tuple(sorted(empties)),
        faults=tuple(faults),
        operator=tuple(operator),
        expect=expect,
        source=source,
    )


def _expectations(c: _Checker, table: Any) -> tuple[Expectation, ...]:
    """The [expect] table: `figure = 0` (equal), `figure = "<= 0.5"`, `figure = "storms"` (equal to another
    figure), `"time_in_state_s.sheltered" = "> 600"` (a figure inside a nested one)."""
    from sim.report import EXPECTABLE  # here: sim.report imports sim.world, which imports this module

    if not isinstance(table, dict):
        raise c.error(("expect",), f" = {table!r}: expected a table of report figures")
    # An unquoted dotted key (time_in_state_s.sheltered = ...) is a nested table in TOML: flatten it back.
    flat: list[tuple[str, Any]] = []
    todo: list[tuple[str, Any]] = list(table.items())
    while todo:
        key, raw = todo.pop(0)
        if isinstance(raw, dict):
            todo[:0] = [(f"{key}.{k}", v) for k, v in raw.items()]
        else:
            flat.append((key, raw))
    out = []
    for key, raw in flat:
        head = key.split(".", 1)[0]
        path: tuple[str | int, ...] = ("expect", key)
        line = line_of(c.text, path) or line_of(c.text, ("expect", head))
        if head not in EXPECTABLE:
            raise c.error(path, f": not a report figure; expectable: {', '.join(EXPECTABLE)}")
        if isinstance(raw, bool | list):
            raise c.error(path, f' = {raw!r}: expected a number or a string like "<= 0.5" or "storms"')
        if isinstance(raw, int | float):
            out.append(Expectation(key, "==", float(raw), line))
            continue
        m = _EXPECT.match(str(raw))
        if m is None:
            raise c.error(
                path, f" = {raw!r}: expected an operator ({' '.join(EXPECT_OPS)}) and a number or a figure"
            )
        op, value = m.group(1) or "==", m.group(2)
        try:
            operand: float | str = float(value)
        except ValueError:
            if value.split(".", 1)[0] not in EXPECTABLE:
                raise c.error(
                    path, f" = {raw!r}: {value!r} is neither a number nor a report figure"
                ) from None
            operand = value
        out.append(Expectation(key, op, operand, line))
    return tuple(out)


def place_xy(site: Any, p: Place) -> tuple[float, float]:
    """Local (x, y) metres of a place on this site; along_m beyond the route's end is its end."""
    if p.along_m is None:
        assert p.x is not None and p.y is not None
        return (p.x, p.y)
    route = site.route
    s = min(p.along_m, route.length)
    ax, ay = route.at(max(0.0, s - 0.5))
    bx, by = route.at(min(route.length, s + 0.5))
    cx, cy = route.at(s)
    d = math.hypot(bx - ax, by - ay) or 1.0
    # Offset to the left of the direction of travel.
    return (cx - (by - ay) / d * p.offset_m, cy + (bx - ax) / d * p.offset_m)


def _check_places(
    c: _Checker,
    site_ref: str,
    robot: RobotStart,
    litter: Litter,
    shade: list[Shade],
    obstacles: list[Obstacle],
) -> None:
    """Every place on the site: the robot starts inside the fence; a heap, a shade or an obstacle at least
    touches the site; along_m within the route."""
    from robot.errors import RamudroidError
    from robot.navigation.geometry import clearance
    from robot.site_file import demo_site, load_site

    try:
        site = demo_site() if site_ref == "demo" else load_site(site_ref)
    except RamudroidError as err:
        raise c.error(("site", "map"), f" = {site_ref!r}: {err}") from err
    length = site.route.length
    places: list[tuple[tuple[str | int, ...], Place, float | None]] = []
    if robot.place is not None:
        places.append((("robot",), robot.place, None))
    places += [(("litter", "hotspots", i), h.place, h.radius_m) for i, h in enumerate(litter.hotspots)]
    places += [(("shade", i), sh.place, sh.radius_m) for i, sh in enumerate(shade)]
    places += [(("obstacle", i), o.place, o.radius_m) for i, o in enumerate(obstacles)]
    for path, place, radius in places:
        if place.along_m is not None and place.along_m > length:
            raise c.error(
                (*path, "along_m"), f" = {place.along_m:g}: beyond the end of the route ({length:.1f} m)"
            )
        x, y = place_xy(site, place)
        gap = clearance((x, y), site.fence)
        if gap < -(radius or 0.0):
            what = "the robot's start" if radius is None else "it"
            key = "along_m" if place.along_m is not None else "x"
            raise c.error(
                (*path, key),
                f": ({x:.1f}, {y:.1f}) is {-gap:.1f} m outside the site's fence; {what} must be on the site",
            )


def shipped_names() -> list[str]:
    """Names of the scenarios shipped in sim/scenarios/."""
    folder = resources.files("sim.scenarios")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (e.g. "sunny_day") or a scenario file by path."""
    ref = str(name_or_path)
    if not ref.endswith(".toml") and "/" not in ref and "\\" not in ref:
        names = shipped_names()
        if ref not in names:
            raise ScenarioError(
                f"scenario {ref!r}: not a shipped scenario ({', '.join(names)}) nor a .toml path"
            )
        path = Path(str(resources.files("sim.scenarios").joinpath(f"{ref}.toml")))
    else:
        path = Path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"scenario file {path}: cannot read it ({err.strerror}); check the path") from err
    return parse(text, str(path), path.parent)
