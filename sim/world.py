"""The robot's world on a virtual clock: motion, sun and panel, battery and loads, litter, rain, obstacles.

Pure Python and cheap per step (the simulator runs >= 600x real time with the supervisor at 20 Hz), so nothing
here imports numpy or pvlib: the sun and panel come from the compact tables of sim.solar. The read-outs
(gps_fix, tray_kg, raining, distance_m, power_reading, camera_jpeg) are what the drivers' sim twins return;
`truth()` is what really happened, for the report. Local coordinates are the site's east/north metres;
`heading` is in radians counter-clockwise from east (the GPS track, degrees clockwise from north, derives
from it).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from robot.core.types import ALL_BRAKED, Geometry, MotorOutputs, PinState, PowerSource
from robot.errors import ScenarioError
from robot.hardware.interfaces import GpsFix, PowerReading
from robot.navigation.geometry import Point, clearance, point_in_polygon
from robot.navigation.site import Site
from robot.site_file import demo_site, load_site
from sim import solar
from sim.scenario import Place, Scenario, place_xy

if TYPE_CHECKING:
    from sim.frames import View

# --- the robot's figures (design notes) ---
# The default body (robot.core.types.Geometry, config [geometry]); a World takes its own.
MAX_WHEEL_SPEED = Geometry().max_wheel_speed_mps  # 1.571 m/s at full duty
WHEEL_BASE_M = Geometry().wheel_base_m
DRIVE_TAU_S = 0.30  # 10 kg on two 12 V gear motors: about a third of a second to reach speed
BRAKE_TAU_S = 0.08  # both motor leads shorted: stops in a few centimetres
COAST_TAU_S = 0.60
STANDING_M_S = 0.01  # slower than this the robot stands: a contact then is something moving into it
# A walker sees a robot standing, turning on the spot or creeping (centre under WALKER_SLOW_M_S) in front of
# her: she takes no step that brings her body nearer than WALKER_GAP_M to its body (she stops short of it, as
# people do of a handcart), and after WALKER_PATIENCE_S, if it stands (under STANDING_M_S), she steps round it
# to the side she is already on, keeping that gap from where it stood. A robot driving she does not allow for
# (the robot must stop for her), but she never walks through its body. She never dodges a robot coming at her:
# one that drives into her, standing, waiting or walking, is a collision.
WALKER_GAP_M = 0.15
WALKER_SLOW_M_S = 0.25
WALKER_PATIENCE_S = 0.3
SENSOR_AHEAD_M = 0.30  # the ultrasonic sensor sits on the front bumper
SENSOR_RANGE_M = 4.0
SENSOR_MIN_M = 0.02
SENSOR_HALF_CONE = math.radians(15.0)
BRUSH_AHEAD_M = 0.20
BRUSH_OFFSETS = (-0.13, 0.0, 0.13)  # three sample points across the 0.4 m brush swath
CELL_M = 0.25  # litter and cleaned-area grid
PICKUP_RATE = 3.0  # litter fraction per cell length swept: one pass picks up about 95 %
TRAY_CAPACITY_KG = 2.0
TRAY_OVERFLOW_KG = 2.4  # beyond this the tray spills: litter stays on the ground
ROUTE_COVER_M = 2.5  # within the GPS CEP of a route point counts as driven: the robot steers on GPS
SLOW_TICK_S = 0.25  # sky, panel, fence and route coverage update at 4 Hz: they change slowly

# --- electrical ---
DRIVE_W = 12.0  # each drive motor: 12 V 1 A at full duty
BRUSH_W = 5.0 * 0.4  # each brush motor: 5 V, 0.4 A
PI_W = 2.5  # a Pi 3 B with its camera streaming (Xtronix's measurements: 500 mA at 5 V with HDMI and camera)
PI_OFF_W = 0.05  # powered down behind the wake latch: the RTC and the latch only (an estimate, not measured)
ARDUINO_W = 0.3
PI_HALT_S = 10.0  # `systemctl poweroff` until the latch cuts the Pi's supply
PI_BOOT_S = 40.0  # power to the supervisor's first step (Raspberry Pi OS Lite, started by systemd)
CELLS = 3
CAPACITY_AH = 2.2
R_INTERNAL = 0.15  # pack resistance, ohm
CONTROLLER_EFF = 0.92  # charge controller, panel -> battery
MAX_CHARGE_A = 2.2  # 1 C
LVD_V = 9.5  # the charge controller's low-voltage disconnect of its load output (battery under load) ...
LVR_V = 10.8  # ... and its reconnect (open-circuit, as it charges)
BROWNOUT_RATIO = 0.6  # below this fraction of the needed power the Pi's converter drops out ...
HOLDUP_S = 0.08  # ... once its hold-up capacitor is spent: 4700 uF from 12 V to 7 V at 2.8 W (docs/power.md)
# Open-circuit voltage of one Li-ion cell at SoC 0, 0.1, ... 1.0.
OCV_CELL = (3.00, 3.45, 3.60, 3.66, 3.71, 3.76, 3.82, 3.89, 3.97, 4.07, 4.20)

# --- GPS (cheap receiver: about 2.5 m CEP, slowly wandering) ---
GPS_CEP_M = 2.5
GPS_SIGMA_M = GPS_CEP_M / 1.1774  # CEP = 1.1774 sigma for a circular Gaussian
GPS_WANDER_TAU_S = 30.0
GPS_WHITE_M = 0.3
GPS_TTFF_S = 8.0


@dataclass(frozen=True, slots=True)
class ReceiverModel:
    """How one class of receiver errs: a slowly wandering error (Gauss-Markov, one-axis sigma and time constant)
    plus white noise, the GGA quality it reports, and whether it sends GST (its own error estimate)."""

    sigma_m: float
    tau_s: float
    white_m: float
    quality: int
    gst: bool
    # RTK: after the first fix and after every outage the solution is float for a while before it fixes.
    float_sigma_m: float = 0.0
    float_s: float = 0.0


# The config's receiver profiles (gps.receiver), as the simulator models them.
RECEIVERS = {
    "cheap": ReceiverModel(GPS_SIGMA_M, GPS_WANDER_TAU_S, GPS_WHITE_M, 1, False),
    "sbas": ReceiverModel(0.8 / 1.1774, 60.0, 0.15, 2, False),
    "rtk": ReceiverModel(0.012, 60.0, 0.004, 4, True, float_sigma_m=0.25, float_s=45.0),
}


class Pose(NamedTuple):
    """Where the robot is: local east/north metres and heading (radians counter-clockwise from east)."""

    x: float
    y: float
    heading: float


@dataclass(frozen=True, slots=True)
class WorldTruth:
    """What really happened so far, for the report and the tests."""

    t: float
    pose: Pose
    lat: float
    lon: float
    speed_m_s: float
    litter_collected_kg: float
    litter_total_kg: float
    area_cleaned_m2: float
    tray_kg: float
    tray_emptied_at: tuple[float, ...]
    raining: bool
    storms: int
    storms_sheltered: int
    soc: float
    battery_v: float
    panel_available_w: float
    load_w: float
    panel_wh: float
    battery_out_wh: float
    battery_in_wh: float
    load_wh: float
    collisions: int
    brownout_s: float
    min_soc: float
    relay_toggles: int
    pi_state: str
    pi_power_losses: int
    inside_fence: bool
    geofence_exits: int
    route_completion: float
    geofence_exit_s: float = 0.0  # time the true position spent outside the fence
    geofence_max_depth_m: float = 0.0  # deepest the true position went outside it


ALL_COAST = MotorOutputs(*([PinState(0, 0, 0)] * 5))


def ocv(soc: float) -> float:
    """Open-circuit voltage of the 3S pack at this state of charge."""
    s = 0.0 if soc < 0.0 else (1.0 if soc > 1.0 else soc) * 10.0
    i = int(s)
    if i >= 10:
        return OCV_CELL[10] * CELLS
    return (OCV_CELL[i] + (OCV_CELL[i + 1] - OCV_CELL[i]) * (s - i)) * CELLS


def _wheel(p: PinState, max_speed: float) -> tuple[float, float]:
    """(target speed m/s, time constant) for one drive channel's pins; `max_speed` at full duty."""
    if p.en <= 0:
        return 0.0, COAST_TAU_S  # bridge off: the motor turns freely, whatever IN1/IN2 say
    if p.in1 == p.in2:
        return 0.0, BRAKE_TAU_S  # 00 or 11 with EN high: both leads shorted, an active brake
    s = min(p.en, 255) / 255.0 * max_speed
    return (s if p.in1 else -s), DRIVE_TAU_S


def _powered_duty(p: PinState) -> float:
    return min(p.en, 255) / 255.0 if p.en > 0 and p.in1 != p.in2 else 0.0


def _seg_dist(x: float, y: float, ax: float, ay: float, bx: float, by: float) -> float:
    """Distance from (x, y) to the segment a-b."""
    ex, ey = bx - ax, by - ay
    ll = ex * ex + ey * ey
    k = max(0.0, min(1.0, ((x - ax) * ex + (y - ay) * ey) / ll)) if ll > 0.0 else 0.0
    return math.hypot(x - ax - k * ex, y - ay - k * ey)


class World:
    """The simulated world for one scenario; advance() it with the pins the Arduino applied."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        site: Site | None = None,
        receiver: str = "cheap",
        geometry: Geometry | None = None,
        rain_confirm_s: float = 0.0,
        side_bearing_deg: float = 50.0,
    ) -> None:
        self.scenario = scenario
        self.geometry = geometry if geometry is not None else Geometry()
        # The side sensors (hardware.side) sit on the body's edge at this bearing either side of the nose.
        self.side_bearing = math.radians(side_bearing_deg)
        self._max_speed = self.geometry.max_wheel_speed_mps
        self.seed = scenario.seed if seed is None else seed
        self.site = (
            site
            if site is not None
            else (demo_site() if scenario.site == "demo" else load_site(scenario.site))
        )
        self._rng = random.Random(self.seed)
        self._gps_rng = random.Random(self.seed * 7919 + 1)
        self._sensor_rng = random.Random(self.seed * 104729 + 2)
        self.t = 0.0
        try:
            self._tz = ZoneInfo(scenario.solar_site.tz)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ScenarioError(
                f"{scenario.source}: site.timezone = {scenario.solar_site.tz!r}: unknown"
            ) from err
        # Sun: one clear-sky table per local date touched, and minute-of-day at t = 0.
        self._panel = solar.panel_table()
        self._sun = [solar.sun_day(scenario.solar_site, d) for d in scenario.days()]
        st = scenario.start
        self._start_minute = st.hour * 60 + st.minute + st.second / 60.0
        self._clouds = self._cloud_passes()
        self._shade = [(*self._place(s.place), s.radius_m**2, s.transmittance) for s in scenario.shade]
        # Robot.
        start = scenario.robot.place
        x, y = self._place(start) if start is not None else self.site.park
        if scenario.robot.heading_deg is not None:
            heading = math.radians(90.0 - scenario.robot.heading_deg)
        else:
            rx, ry = self.site.route.points[0]
            heading = math.atan2(ry - y, rx - x) if (rx, ry) != (x, y) else 0.0
        self.x, self.y, self.heading = x, y, heading
        self.vl = self.vr = 0.0
        self.pins: MotorOutputs = ALL_BRAKED
        self._pins_derived: tuple[float, float, float, float, float, bool] | None = None
        self._derived_dt = 0.0
        # Power.
        self.soc = scenario.robot.battery_soc
        self.min_soc = self.soc
        self.battery_a = 0.0
        self.source = PowerSource.BATTERY
        self.relay_toggles = 0
        self.panel_available_w = 0.0
        self.panel_v = 0.0
        self.load_w = PI_W + ARDUINO_W
        self.supply_ratio = 1.0
        self.panel_wh = self.battery_out_wh = self.battery_in_wh = self.load_wh = 0.0
        self.brownout_s = 0.0
        self._sag_s = 0.0  # how long the supply has been short without a break
        # The Pi: "on", "halting" (a planned power-down), "off", "booting", "dead" (its supply lost unplanned),
        # or "cut" (the controller's low-voltage disconnect after a planned power-down).
        self.pi_state = "on"
        self._pi_until = 0.0
        self.wake_alarm: float | None = None
        self.lvd_open = False
        self.pi_power_losses = 0
        self.ambient_c = scenario.weather.temp_min_c
        # Litter and tray.
        self._litter = self._spread_litter()
        self.litter_total_kg = sum(self._litter.values())
        self._cleaned: set[tuple[int, int]] = set()
        self.tray = scenario.robot.tray_kg
        self.litter_collected_kg = 0.0
        self._empties = list(scenario.tray_empty_s)
        self.tray_emptied_at: list[float] = []
        # Weather.
        self._rain = list(scenario.weather.rain)
        self.is_raining = False
        self.storms = 0
        self._sheltered_storms: set[int] = set()
        self._storm_index = -1
        # A storm is rain that lasts long enough for the robot's rain sensor rule to confirm it (rain.confirm_s):
        # a shower shorter than that asks nothing of the robot.
        self.rain_confirm_s = rain_confirm_s
        self._storm_confirm_at: float | None = None
        # Obstacles: (x0, y0, ux, uy, span, speed, r, active) with (ux, uy) the walking direction.
        self._obstacles = self._build_obstacles()
        self._obs_pos: list[tuple[float, float, float]] = []
        # Per obstacle: [walk clock offset (s), waiting since or None, detour (robot x, y, side) or None, her
        # last place or None]. A walker's place on her to-and-fro walk is the triangle wave at t - offset; the
        # offset grows while she stands for the robot.
        self._walk: list[list[Any]] = [[0.0, None, None, None] for _ in self._obstacles]
        self._obs_t = 0.0
        self._distance_memo: tuple[object, float, float, float, float | None] | None = None
        # Positions change only for walkers and for obstacles that come and go.
        self._obs_dynamic = any(o.kind == "moving" or o.active is not None for o in scenario.obstacles)
        self.collisions = 0
        self._last_contact = -math.inf
        # Walls the site declares at the shelter and park: straight faces the sensor sees and the body cannot pass.
        self._walls = self._build_walls()
        # (centre x, centre y, squared distance within which the sensor may see the face) per wall.
        self._wall_reach = [
            (
                (ax + bx) * 0.5,
                (ay + by) * 0.5,
                (SENSOR_RANGE_M + SENSOR_AHEAD_M + 0.5 * math.hypot(bx - ax, by - ay)) ** 2,
            )
            for ax, ay, bx, by in self._walls
        ]
        # The same walls for the side sensors: (centre x, centre y, (sqrt(reach) + body radius) ** 2).
        self._side_wall_reach = [
            (mx, my, (math.sqrt(wr) + self.geometry.radius_m) ** 2) for mx, my, wr in self._wall_reach
        ]
        # ocv() of the last state of charge asked: the power reading and the next step's battery ask the same.
        self._ocv_memo = (math.nan, 0.0)
        # power_reading's last (panel volts, panel watts, their rounded reading) and (rounded values, reading).
        self._panel_memo: tuple[float, float, tuple[float, float]] = (math.nan, math.nan, (0.0, 0.0))
        self._power_last: tuple[tuple[float, ...], PowerReading] | None = None
        # GPS: the wandering error is kept in units of the model's sigma, so RTK float and fixed share it.
        if receiver not in RECEIVERS:
            raise ScenarioError(f"gps receiver {receiver!r}: the simulator models {', '.join(RECEIVERS)}")
        self.receiver = receiver
        self._rx = RECEIVERS[receiver]
        self._gps_err = [self._gps_rng.gauss(0.0, 1.0), self._gps_rng.gauss(0.0, 1.0)]
        self._rtk_fixed_at = GPS_TTFF_S + self._rx.float_s
        self._gps_next = GPS_TTFF_S
        self._fix: GpsFix | None = None
        self._gps_lost_until = -1.0
        self._gps_jump_until = -1.0
        self._gps_jump = (0.0, 0.0)
        self._last_track: float | None = None
        # Stuck sensors: name -> (until, frozen value).
        self._stuck: dict[str, tuple[float, object]] = {}
        # Other part faults (sim.scenario FAULT_KINDS); their own generator, so a fault never shifts the noise
        # the other readings draw.
        self._fault_rng = random.Random(self.seed * 15485863 + 3)
        # The side sensors' noise, its own too: fitting them shifts nothing the other readings draw.
        self._side_rng = random.Random(self.seed * 32452843 + 4)
        self._gps_degraded: tuple[float, float] | None = None  # (until, error scale)
        self._echo: tuple[float, float, float] | None = None  # (until, reading, share of readings)
        self._scale_drift: tuple[float, float, float] | None = None  # (from, until, kg per second)
        self._wet_until = -1.0
        self._welded_until = -1.0
        self._last_reading: dict[str, object] = {}
        # Route coverage and fence.
        self._route_cells, self._route_points = self._route_samples()
        self._route_hit: set[int] = set()
        self.inside_fence = point_in_polygon((x, y), self.site.fence)
        self.geofence_exits = 0
        self.geofence_exit_s = 0.0
        self.geofence_max_depth_m = 0.0
        self._fence_ref = (x, y, clearance((x, y), self.site.fence))
        self._slow_next = 0.0
        self._slow_tick()
        self._update_obstacles()

    # ---- set-up
    def _place(self, p: Place) -> Point:
        return place_xy(self.site, p)

    def _cloud_passes(self) -> list[tuple[float, float, float]]:
        """Shaded intervals (start, end, transmittance): clouds drifting over the sun, seeded."""
        out: list[tuple[float, float, float]] = []
        for c in self.scenario.weather.clouds:
            t = c.period.start_s
            if c.cover <= 0.0:
                continue
            if c.cover >= 1.0:
                out.append((t, c.period.end_s, c.transmittance))
                continue
            clear_mean = c.mean_pass_s * (1.0 - c.cover) / c.cover
            t += self._rng.expovariate(1.0 / clear_mean)
            while t < c.period.end_s:
                end = min(c.period.end_s, t + self._rng.expovariate(1.0 / c.mean_pass_s))
                # Thicker and thinner clouds: transmittance varies around the scenario's figure.
                tr = max(0.02, min(1.0, c.transmittance * self._rng.uniform(0.7, 1.3)))
                out.append((t, end, tr))
                t = end + self._rng.expovariate(1.0 / clear_mean)
        out.sort()
        return out

    def _spread_litter(self) -> dict[tuple[int, int], float]:
        """kg of litter per 0.25 m cell along the route corridor and in the hotspots, seeded."""
        lit = self.scenario.litter
        cells: dict[tuple[int, int], float] = {}
        half = lit.corridor_m / 2.0
        reach = math.ceil(half / CELL_M)
        route = self.site.route
        n = max(1, int(route.length / CELL_M))
        base = lit.kg_per_m2 * CELL_M * CELL_M
        if base > 0.0:
            for k in range(n + 1):
                px, py = route.at(k * route.length / n)
                ci, cj = math.floor(px / CELL_M), math.floor(py / CELL_M)
                for i in range(ci - reach, ci + reach + 1):
                    for j in range(cj - reach, cj + reach + 1):
                        if (i, j) in cells:
                            continue
                        cx, cy = (i + 0.5) * CELL_M, (j + 0.5) * CELL_M
                        if (cx - px) ** 2 + (cy - py) ** 2 <= half * half:
                            # Litter is patchy: exponential spread around the mean density.
                            cells[(i, j)] = base * self._rng.expovariate(1.0)
        for h in lit.hotspots:
            hx, hy = self._place(h.place)
            reach_h = math.ceil(h.radius_m / CELL_M)
            ci, cj = math.floor(hx / CELL_M), math.floor(hy / CELL_M)
            for i in range(ci - reach_h, ci + reach_h + 1):
                for j in range(cj - reach_h, cj + reach_h + 1):
                    cx, cy = (i + 0.5) * CELL_M, (j + 0.5) * CELL_M
                    if (cx - hx) ** 2 + (cy - hy) ** 2 <= h.radius_m**2:
                        cells[(i, j)] = cells.get((i, j), 0.0) + h.kg_per_m2 * CELL_M * CELL_M
        return cells

    def _build_obstacles(self) -> list[tuple[float, float, float, float, float, float, float, Any]]:
        out = []
        for o in self.scenario.obstacles:
            x0, y0 = self._place(o.place)
            ux, uy = 0.0, 0.0
            if o.kind == "moving":
                # Walk across the route: perpendicular to it at that point, or east-west for an (x, y) place.
                if o.place.along_m is not None:
                    route = self.site.route
                    s = min(o.place.along_m, route.length)
                    ax, ay = route.at(max(0.0, s - 0.5))
                    bx, by = route.at(min(route.length, s + 0.5))
                    d = math.hypot(bx - ax, by - ay) or 1.0
                    ux, uy = -(by - ay) / d, (bx - ax) / d
                else:
                    ux, uy = 1.0, 0.0
            out.append((x0, y0, ux, uy, o.span_m, o.speed_m_s, o.radius_m, o.active))
        return out

    def _build_walls(self) -> list[tuple[float, float, float, float]]:
        """(x0, y0, x1, y1) of each declared wall face: across the wall's normal, centred on it, running so that
        its front (the goal's side) is on the left of a -> b. Only the face is modelled: seen and solid from the
        front; what stands behind it is the site's business (the fence keeps the robot away from it)."""
        out = []
        site = self.site
        for point, wall in ((site.shelter, site.shelter_wall), (site.park, site.park_wall)):
            if wall is None:
                continue
            fx, fy = wall.face(point)
            half = wall.width_m / 2.0
            tx, ty = -wall.normal[1] * half, wall.normal[0] * half
            # a -> b runs along (-ny, nx): its left side is -normal, the goal's side.
            out.append((fx - tx, fy - ty, fx + tx, fy + ty))
        return out

    def _route_samples(self) -> tuple[dict[tuple[int, int], list[int]], list[Point]]:
        route = self.site.route
        n = max(1, int(route.length))
        pts = [route.at(k * route.length / n) for k in range(n + 1)]
        cells: dict[tuple[int, int], list[int]] = {}
        for k, (px, py) in enumerate(pts):
            cells.setdefault((math.floor(px), math.floor(py)), []).append(k)
        return cells, pts

    # ---- time
    def local_time(self, t: float | None = None) -> datetime:
        """Local clock time at the site (naive)."""
        return self.scenario.start + timedelta(seconds=self.t if t is None else t)

    def utc_time(self, t: float | None = None) -> datetime:
        """UTC time (aware), as a GPS receiver reports it."""
        return self.local_time(t).replace(tzinfo=self._tz).astimezone(UTC)

    # ---- the step
    def advance(self, dt: float, pins: MotorOutputs) -> None:
        """Move the world on by dt seconds with these pin states applied by the Arduino."""
        t = self.t = self.t + dt
        if self.lvd_open and self.source is PowerSource.BATTERY:
            pins = ALL_COAST  # the Arduino has no supply: the driver's inputs float, the motors coast
        derived = self._pins_derived
        if derived is None or pins != self.pins or dt != self._derived_dt:
            derived = self._derive(pins, dt)
        self.pins = pins
        load, tl, al, tr, ar, all_brushes = derived
        if self.pi_state != "on":
            load += self._pi_step(t)
        if t >= self._slow_next:
            self._slow_tick()
        self.load_w = load
        self._power_step(dt, load)
        # Motion: first-order wheel response to the applied pins, scaled by the supply voltage.
        r = self.supply_ratio
        self.vl += (tl * r - self.vl) * al
        self.vr += (tr * r - self.vr) * ar
        v = (self.vl + self.vr) * 0.5
        turn = (self.vr - self.vl) / self.geometry.wheel_base_m * dt
        # Midpoint heading: second-order accurate on arcs at a 50 ms step.
        mid = self.heading + turn * 0.5
        c, s = math.cos(mid), math.sin(mid)
        nx, ny = self.x + v * c * dt, self.y + v * s * dt
        h = self.heading + turn
        self.heading = (h + math.pi) % (2.0 * math.pi) - math.pi
        if self._obstacles and self._obs_dynamic:
            self._update_obstacles()
        if (self._obstacles and self._blocked(nx, ny)) or (self._walls and self._wall_blocked(nx, ny)):
            nx, ny = self.x, self.y
            # A braked robot's wheels never quite reach zero in this model (an exponential decay): one that
            # stands still and is walked into by a passer-by has not hit anything.
            driving = abs(v) > STANDING_M_S
            self.vl = self.vr = 0.0
            v = 0.0
            # Pushing on against the same thing is one collision, not one per step.
            if driving and t - self._last_contact > 1.0:
                self.collisions += 1
            if driving:
                self._last_contact = t
        self.x, self.y = nx, ny
        # The fence on true position, exactly whenever the robot may be near it (the clearance measured at the
        # last slow tick, less the distance moved since, bounds it from below).
        fx, fy, fc = self._fence_ref
        if fc - math.hypot(nx - fx, ny - fy) < 0.5:
            c = clearance((nx, ny), self.site.fence)
            if c < 0.0:
                self.geofence_exit_s += dt
                if -c > self.geofence_max_depth_m:
                    self.geofence_max_depth_m = -c
        # Brushes pick litter up only when all three run and the robot rolls forward over it.
        if all_brushes and v > 0.01:
            self._sweep(v * dt, c, s)
        # Events: tray emptied by a person, rain and storms, GPS epochs, stuck sensors expiring.
        if self._empties and t >= self._empties[0]:
            self._empties.pop(0)
            self.empty_tray()
        if self.is_raining:
            if not self._rain_now(t):
                self.is_raining = False
                self._storm_confirm_at = None
            else:
                if self._storm_confirm_at is not None and t >= self._storm_confirm_at:
                    self._confirm_storm()
                if (
                    self._storm_confirm_at is None
                    and (self.x - self.site.shelter[0]) ** 2 + (self.y - self.site.shelter[1]) ** 2
                    <= self.site.shelter_radius_m**2
                ):
                    self._sheltered_storms.add(self._storm_index)
        elif self._rain and t >= self._rain[0].start_s and self._rain_now(t):
            self.is_raining = True
            self._storm_confirm_at = self._rain[0].start_s + self.rain_confirm_s
            if t >= self._storm_confirm_at:
                self._confirm_storm()
        if t >= self._gps_next:
            self._gps_epoch()

    def _confirm_storm(self) -> None:
        self._storm_confirm_at = None
        self.storms += 1
        self._storm_index += 1

    def _derive(self, pins: MotorOutputs, dt: float) -> tuple[float, float, float, float, float, bool]:
        """What a set of pins means for loads and wheels; cached: the pins rarely change step to step."""
        duties = [_powered_duty(p) for p in pins]
        load = (
            PI_W
            + ARDUINO_W
            + DRIVE_W * (duties[0] + duties[1])
            + BRUSH_W * (duties[2] + duties[3] + duties[4])
        )
        tl, taul = _wheel(pins.drive_left, self._max_speed)
        tr, taur = _wheel(pins.drive_right, self._max_speed)
        all_brushes = duties[2] > 0.0 and duties[3] > 0.0 and duties[4] > 0.0
        # With a real-time clock dt varies every step: recomputed then, which costs two exp() calls.
        derived = (load, tl, 1.0 - math.exp(-dt / taul), tr, 1.0 - math.exp(-dt / taur), all_brushes)
        self._pins_derived = derived
        self._derived_dt = dt
        return derived

    def _rain_now(self, t: float) -> bool:
        while self._rain and t >= self._rain[0].end_s:
            self._rain.pop(0)
        return bool(self._rain) and self._rain[0].start_s <= t

    def _pi_step(self, t: float) -> float:
        """The Pi's planned and unplanned life beyond "on"; returns its draw to add to the loads (which count
        it as on)."""
        state = self.pi_state
        if state in ("halting", "booting") and t >= self._pi_until:
            state = self.pi_state = "off" if state == "halting" else "on"
            if state == "on":
                return 0.0
        if (
            state in ("off", "dead", "cut")
            and not self.lvd_open
            and (state != "off" or (self.wake_alarm is not None and t >= self.wake_alarm))
        ):
            # The wake alarm sets the latch (or the supply came back: the latch powers up set): the Pi boots.
            self.wake_alarm = None
            state = self.pi_state = "booting"
            self._pi_until = t + PI_BOOT_S
        if state in ("halting", "booting"):
            return 0.0
        return (PI_OFF_W if state == "off" else 0.0) - PI_W

    def pi_halt(self) -> None:
        """`systemctl poweroff`: the Pi shuts down, then the latch cuts its supply until the wake alarm."""
        if self.pi_state == "on":
            self.pi_state = "halting"
            self._pi_until = self.t + PI_HALT_S

    def set_wake_alarm(self, t: float) -> None:
        """The RTC alarm that sets the Pi's power latch at simulated time t."""
        self.wake_alarm = t

    def _power_step(self, dt: float, load: float) -> None:
        """Panel, relay, controller and battery for one step; sets supply_ratio and the battery current."""
        avail = self.panel_available_w
        v_ocv = self._ocv()
        room = 0.0 if self.soc >= 1.0 else MAX_CHARGE_A * min(1.0, max(0.05, (1.0 - self.soc) / 0.1))
        charge_w_max = room * v_ocv
        # The charge controller's load output: open below LVD_V under load, closed again at LVR_V.
        on_battery = self.source is PowerSource.BATTERY
        if not self.lvd_open and on_battery and v_ocv - load / v_ocv * R_INTERNAL <= LVD_V:
            self.lvd_open = True
        elif self.lvd_open and v_ocv >= LVR_V:
            self.lvd_open = False
        empty = self.lvd_open
        if empty and on_battery and self.pi_state not in ("dead", "cut"):
            # A Pi that powered itself down loses nothing; one that was running has crashed.
            if self.pi_state == "off":
                self.pi_state = "cut"
            else:
                self.pi_power_losses += self.pi_state == "on"
                self.pi_state = "dead"
        if self.source is PowerSource.PANEL:
            from_panel = load if load < avail else avail
            ratio = from_panel / load
            surplus = avail - from_panel
            charge_w = surplus * CONTROLLER_EFF
            if charge_w > charge_w_max:
                charge_w = charge_w_max
            panel_used = from_panel + charge_w / CONTROLLER_EFF
            discharge_w = 0.0
        else:
            charge_w = avail * CONTROLLER_EFF
            if charge_w > charge_w_max:
                charge_w = charge_w_max
            panel_used = charge_w / CONTROLLER_EFF
            discharge_w = 0.0 if empty else load
            ratio = 0.0 if empty else 1.0
        self.supply_ratio = ratio
        # The Pi resets when its supply stays short longer than the hold-up capacitor lasts; a Pi that lost
        # its supply unplanned counts until it is back.
        if ratio < BROWNOUT_RATIO and self.pi_state == "on":
            self._sag_s += dt
            if self._sag_s > HOLDUP_S:
                self.brownout_s += self._sag_s if self._sag_s - dt <= HOLDUP_S else dt
        else:
            self._sag_s = 0.0
        if self.pi_state == "dead":
            self.brownout_s += dt
        net_w = charge_w - discharge_w
        amps = net_w / v_ocv
        self.battery_a = amps
        soc = self.soc + amps * dt / (3600.0 * CAPACITY_AH)
        self.soc = 0.0 if soc < 0.0 else (1.0 if soc > 1.0 else soc)
        if self.soc < self.min_soc:
            self.min_soc = self.soc
        h = dt / 3600.0
        self.panel_wh += panel_used * h
        self.battery_in_wh += charge_w * h
        self.battery_out_wh += discharge_w * h
        self.load_wh += load * ratio * h

    def _ocv(self) -> float:
        """ocv(self.soc), worked out once per state of charge."""
        soc = self.soc
        memo = self._ocv_memo
        if memo[0] == soc:
            return memo[1]
        v = ocv(soc)
        self._ocv_memo = (soc, v)
        return v

    def _slow_tick(self) -> None:
        """The slowly changing parts: irradiance, temperature, panel power, fence and route coverage."""
        self._slow_next = self.t + SLOW_TICK_S
        g = self.irradiance()
        self.ambient_c = self.ambient_temp_c()
        p, v = self._panel.mpp(g, solar.cell_temp_c(g, self.ambient_c))
        self.panel_available_w = p
        self.panel_v = v
        c = clearance((self.x, self.y), self.site.fence)
        self._fence_ref = (self.x, self.y, c)
        inside = c > 0.0
        if self.inside_fence and not inside:
            self.geofence_exits += 1
        self.inside_fence = inside
        cx, cy = math.floor(self.x), math.floor(self.y)
        pts = self._route_points
        for i in (cx - 1, cx, cx + 1):
            for j in (cy - 1, cy, cy + 1):
                for k in self._route_cells.get((i, j), ()):
                    px, py = pts[k]
                    if (px - self.x) ** 2 + (py - self.y) ** 2 <= ROUTE_COVER_M**2:
                        self._route_hit.add(k)

    def clear_sky_irradiance(self, t: float | None = None) -> float:
        """Sunlight a clear sky would give now (W/m2): zero at night, whatever the clouds do."""
        t = self.t if t is None else t
        minute = self._start_minute + t / 60.0
        day = min(int(minute // 1440), len(self._sun) - 1)
        return self._sun[day].at(minute - day * 1440)

    def irradiance(self, t: float | None = None) -> float:
        """Sunlight on the panel now (W/m2): clear sky x passing clouds x shade x rain."""
        t = self.t if t is None else t
        minute = self._start_minute + t / 60.0
        day = int(minute // 1440)
        day = min(day, len(self._sun) - 1)
        g = self._sun[day].at(minute - day * 1440)
        if g <= 0.0:
            return 0.0
        for a, b, tr in self._clouds:
            if a > t:
                break
            if t < b:
                g *= tr
                break
        for sx, sy, r2, tr in self._shade:
            if (self.x - sx) ** 2 + (self.y - sy) ** 2 <= r2:
                g *= tr
        if self.is_raining:
            g *= 0.15  # rain clouds
        return g

    def ambient_temp_c(self, t: float | None = None) -> float:
        """Air temperature: coolest at 06:00, warmest at 15:00, cosine in between."""
        lt = self.local_time(t)
        h = lt.hour + lt.minute / 60.0 + lt.second / 3600.0
        w = self.scenario.weather
        if 6.0 <= h < 15.0:
            f = (1.0 - math.cos(math.pi * (h - 6.0) / 9.0)) / 2.0
        else:
            f = (1.0 + math.cos(math.pi * ((h - 15.0) % 24.0) / 15.0)) / 2.0
        return w.temp_min_c + (w.temp_max_c - w.temp_min_c) * f

    def _sweep(self, ds: float, c: float, s: float) -> None:
        bx = self.x + c * BRUSH_AHEAD_M
        by = self.y + s * BRUSH_AHEAD_M
        frac = PICKUP_RATE * ds / CELL_M
        if frac > 1.0:
            frac = 1.0
        lit = self._litter
        for off in BRUSH_OFFSETS:
            cell = (math.floor((bx - s * off) / CELL_M), math.floor((by + c * off) / CELL_M))
            self._cleaned.add(cell)
            kg = lit.get(cell)
            if kg and self.tray < TRAY_OVERFLOW_KG:
                take = kg * frac
                lit[cell] = kg - take
                self.tray += take
                self.litter_collected_kg += take

    def _update_obstacles(self) -> None:
        t = self.t
        dt = t - self._obs_t
        self._obs_t = t
        pos = []
        rx, ry, rr = self.x, self.y, self.geometry.radius_m
        for i, (x0, y0, ux, uy, span, speed, r, active) in enumerate(self._obstacles):
            walk = self._walk[i]
            if active is not None and not active.contains(t):
                walk[3] = None
                continue
            if speed <= 0.0:
                pos.append((x0, y0, r))
                continue
            # Back and forth across the route: a triangle wave of amplitude span, on her own walk clock, plus
            # the detour she is taking round the robot, if any.
            period = 4.0 * span / speed
            near = rr + r + WALKER_GAP_M
            px, py = self._walker_at(walk, x0, y0, ux, uy, span, period, t, near)
            prev = walk[3]
            if prev is not None and dt > 0.0:
                d2 = (rx - px) ** 2 + (ry - py) ** 2
                # A robot driving past she does not allow for (it must stop for her), but she cannot walk
                # through its body. (A millimetre's tolerance: stepping round, she keeps exactly the gap.)
                keep = (near if abs(self.vl + self.vr) * 0.5 <= WALKER_SLOW_M_S else rr + r) - 0.001
                if d2 < keep * keep and d2 < (rx - prev[0]) ** 2 + (ry - prev[1]) ** 2:
                    # This step would bring her too near the robot: she stands, and after a moment steps round
                    # it, to the side she is already on.
                    if walk[1] is None:
                        walk[1] = t - dt
                    if t - walk[1] < WALKER_PATIENCE_S or abs(self.vl + self.vr) * 0.5 > STANDING_M_S:
                        # She waits; and she steps round only a robot that stands: one coming at her, she
                        # does not dodge (it driving on into her is a collision).
                        walk[0] += dt
                        px, py = prev
                    else:
                        bx, by = self._walker_at(walk, x0, y0, ux, uy, span, period, t, near, False)
                        e = (rx - bx) * -uy + (ry - by) * ux
                        walk[2] = (rx, ry, -1.0 if e > 0.0 else 1.0)
                        walk[1] = None
                        px, py = self._walker_at(walk, x0, y0, ux, uy, span, period, t, near)
                else:
                    walk[1] = None
            walk[3] = (px, py)
            pos.append((px, py, r))
        self._obs_pos = pos

    @staticmethod
    def _walker_at(
        walk: list[Any],
        x0: float,
        y0: float,
        ux: float,
        uy: float,
        span: float,
        period: float,
        t: float,
        near: float,
        detour: bool = True,
    ) -> tuple[float, float]:
        """Where a walker is at t: on her line by her walk clock, stepped aside round the robot's body (from
        where it stood when she began stepping round; it moving after that does not move her) while she
        passes it. Leaving its reach along her line ends the detour."""
        phase = ((t - walk[0]) % period) / period
        k = 4.0 * phase - 1.0 if phase < 0.5 else 3.0 - 4.0 * phase
        px, py = x0 + ux * span * k, y0 + uy * span * k
        if not detour or walk[2] is None:
            return px, py
        cx, cy, side = walk[2]
        a = (px - cx) * ux + (py - cy) * uy  # along her line, from the robot's centre
        if a * a >= near * near:
            walk[2] = None
            return px, py
        e = (cx - px) * -uy + (cy - py) * ux  # the robot's centre across her line (left of her line +)
        q = e + side * math.sqrt(near * near - a * a)  # where across her line she clears it
        if side * q <= 0.0:
            return px, py  # far enough to that side already
        return px - uy * q, py + ux * q

    def _blocked(self, x: float, y: float) -> bool:
        for ox, oy, r in self._obs_pos:
            lim = r + self.geometry.radius_m
            if (ox - x) ** 2 + (oy - y) ** 2 < lim * lim:
                # Moving away from something already touching is allowed, or the robot could never back off.
                return (ox - x) ** 2 + (oy - y) ** 2 < (ox - self.x) ** 2 + (oy - self.y) ** 2
        return False

    def _wall_blocked(self, x: float, y: float) -> bool:
        """The body would overlap a wall face at (x, y), and no less than where it is now (it may back off)."""
        r = self.geometry.radius_m
        for ax, ay, bx, by in self._walls:
            if (bx - ax) * (self.y - ay) - (by - ay) * (self.x - ax) < 0.0:
                continue  # behind the face
            d = _seg_dist(x, y, ax, ay, bx, by)
            if d < r:
                return d < _seg_dist(self.x, self.y, ax, ay, bx, by)
        return False

    def _gps_epoch(self) -> None:
        """A new 1 Hz fix: truth plus slowly wandering error (Gauss-Markov) plus a little white noise."""
        self._gps_next += 1.0
        rng = self._gps_rng
        rx = self._rx
        k = math.exp(-1.0 / rx.tau_s)
        q = math.sqrt(1.0 - k * k)
        ux = self._gps_err[0] = self._gps_err[0] * k + rng.gauss(0.0, q)
        uy = self._gps_err[1] = self._gps_err[1] * k + rng.gauss(0.0, q)
        if self.t < self._gps_lost_until:
            self._fix = None
            # RTK: the ambiguities are lost with the signal; float again once it is back.
            self._rtk_fixed_at = self._gps_lost_until + rx.float_s
            return
        fixed = rx.float_s <= 0.0 or self.t >= self._rtk_fixed_at
        sigma = rx.sigma_m if fixed else rx.float_sigma_m
        white = rx.white_m if fixed else rx.float_sigma_m / 5.0
        wander = math.sqrt(max(sigma * sigma - white * white, 0.0))
        poor = self._gps_degraded
        if poor is not None and self.t >= poor[0]:
            poor = self._gps_degraded = None
        if poor is not None:
            wander *= poor[1]  # the same wander, larger: reflections move the solution slowly, not at random
        ex = ux * wander + rng.gauss(0.0, white)
        ey = uy * wander + rng.gauss(0.0, white)
        if self.t < self._gps_jump_until:
            ex += self._gps_jump[0]
            ey += self._gps_jump[1]
        lat, lon = self.site.to_latlon(self.x + ex, self.y + ey)
        speed = max(0.0, abs((self.vl + self.vr) * 0.5) + rng.gauss(0.0, 0.05))
        if speed > 0.3:
            h = self.heading if self.vl + self.vr >= 0.0 else self.heading + math.pi
            self._last_track = (90.0 - math.degrees(h) + rng.gauss(0.0, 3.0)) % 360.0
        sats = max(4, min(12, round(rng.gauss(8.0, 1.2))))
        if poor is not None:
            sats = max(4, sats - 3)  # fewer satellites in view is why the fix is poor
        quality = rx.quality if fixed else 5
        # GST: the receiver's own one-axis estimate, honest to within a fifth.
        std_m = round(sigma * rng.uniform(0.8, 1.2), 4) if rx.gst else None
        self._fix = GpsFix(
            time=self.utc_time().replace(microsecond=0),
            lat=lat,
            lon=lon,
            mode=3,
            speed=round(speed, 2),
            track=None if self._last_track is None else round(self._last_track, 1),
            hdop=round(max(0.6, 0.9 + 6.0 / sats - 0.75 + rng.gauss(0.0, 0.1)), 1),
            sats=sats,
            quality=quality,
            std_m=std_m,
        )

    def empty_tray(self) -> None:
        """A person empties the tray now."""
        self.tray = 0.0
        self.tray_emptied_at.append(self.t)

    # ---- faults
    def lose_gps(self, duration_s: float) -> None:
        """No fix for this long (from the next epoch on)."""
        self._gps_lost_until = self.t + duration_s
        self._fix = None

    def jump_gps(self, duration_s: float, jump_m: float) -> None:
        """Fixes offset by jump_m in a random direction for this long (multipath near a building)."""
        a = self._rng.uniform(0.0, 2.0 * math.pi)
        self._gps_jump = (jump_m * math.cos(a), jump_m * math.sin(a))
        self._gps_jump_until = self.t + duration_s

    def stick(self, sensor: str, duration_s: float) -> None:
        """This sensor repeats its last reading for a while ("distance", "rain", "scale", "power", "gps")."""
        self._stuck[sensor] = (self.t + duration_s, self._last_reading.get(sensor))

    def degrade_gps(self, duration_s: float, cep_m: float) -> None:
        """Fixes wander with this CEP (and fewer satellites) for a while: an urban canyon, a row of trees."""
        self._gps_degraded = (self.t + duration_s, max(1.0, cep_m / (self._rx.sigma_m * 1.1774)))

    def echo_fault(self, duration_s: float, reading_m: float, rate: float) -> None:
        """For a while, this share of the ultrasonic readings is `reading_m` whatever is ahead: a phantom echo
        (a leaf, crosstalk) at a short distance, or a missing one (a soft or slanted surface) at full range."""
        self._echo = (self.t + duration_s, reading_m, rate)

    def weld_relay(self, duration_s: float) -> None:
        """The power relay's contacts weld where they are: selecting the other source does nothing for a while."""
        self._welded_until = self.t + duration_s

    def drift_scale(self, duration_s: float, kg_per_h: float) -> None:
        """The load cell's zero creeps at this rate for a while, then it is re-tared."""
        self._scale_drift = (self.t, self.t + duration_s, kg_per_h / 3600.0)

    def wet_rain_sensor(self, duration_s: float) -> None:
        """The rain sensor reads wet for a while whatever the sky does: dew, or a wet leaf lying on it."""
        self._wet_until = self.t + duration_s

    def pi_reset(self) -> bool:
        """The Pi's supply dips (a brown-out) and it resets: gone without a power-down, it boots again as the
        supply is back. False when it was not running."""
        if self.pi_state != "on":
            return False
        self.pi_power_losses += 1
        self.pi_state = "dead"
        return True

    def push(self, distance_m: float, heading_deg: float) -> None:
        """Someone pushes the robot this far towards a compass heading; the wheels stop turning."""
        a = math.radians(90.0 - heading_deg)
        self.x += distance_m * math.cos(a)
        self.y += distance_m * math.sin(a)
        self.vl = self.vr = 0.0
        self._fence_ref = (self.x, self.y, clearance((self.x, self.y), self.site.fence))

    def _stuck_value(self, sensor: str) -> tuple[bool, object]:
        st = self._stuck.get(sensor)
        if st is None:
            return False, None
        if self.t >= st[0]:
            del self._stuck[sensor]
            return False, None
        return True, st[1]

    # ---- read-outs (what the sim twins return)
    def gps_fix(self) -> GpsFix | None:
        """The newest fix (1 Hz), or None before the first fix and while the fix is lost."""
        stuck, value = self._stuck_value("gps") if self._stuck else (False, None)
        if stuck:
            return value  # type: ignore[return-value]
        self._last_reading["gps"] = self._fix
        return self._fix

    def tray_kg(self) -> float:
        """The load cell's reading of the tray: true weight plus a few grams of noise."""
        stuck, value = self._stuck_value("scale") if self._stuck else (False, None)
        if stuck and value is not None:
            return value  # type: ignore[return-value]
        w = max(0.0, self.tray + self._sensor_rng.gauss(0.0, 0.003))
        drift = self._scale_drift
        if drift is not None:
            if self.t >= drift[1]:
                self._scale_drift = None
            else:
                w = max(0.0, w + (self.t - drift[0]) * drift[2])
        self._last_reading["scale"] = w
        return w

    def raining(self) -> bool:
        """The rain sensor: wet while a rain period lasts."""
        stuck, value = self._stuck_value("rain") if self._stuck else (False, None)
        if stuck and value is not None:
            return value  # type: ignore[return-value]
        wet = self.is_raining or self.t < self._wet_until
        self._last_reading["rain"] = wet
        return wet

    def distance_m(self) -> float | None:
        """Ultrasonic range to the nearest obstacle in the forward cone; 4.0 (full range) when none."""
        stuck, value = self._stuck_value("distance") if self._stuck else (False, None)
        if stuck:
            return value  # type: ignore[return-value]
        echo = self._echo
        if echo is not None:
            if self.t >= echo[0]:
                self._echo = echo = None
            elif echo[2] >= 1.0 or self._fault_rng.random() < echo[2]:
                self._last_reading["distance"] = echo[1]
                return echo[1]
        d = self.true_distance_m()
        # Like the real driver (gpiozero's DistanceSensor): nothing within range reads as the full 4 m.
        d = SENSOR_RANGE_M if d is None else max(SENSOR_MIN_M, d + self._sensor_rng.gauss(0.0, 0.01))
        self._last_reading["distance"] = d
        return d

    def true_distance_m(self) -> float | None:
        """Distance from the sensor to the nearest obstacle edge in its cone, None when none within range."""
        obs = self._obs_pos
        # Most steps the robot is nowhere near a wall: a distance to each face's centre settles it (no trigonometry).
        if self._walls and any(
            (mx - self.x) ** 2 + (my - self.y) ** 2 < reach for mx, my, reach in self._wall_reach
        ):
            w = self._wall_distance()
            if w is not None:
                o = self._obstacle_distance() if obs else None
                return w if o is None else min(w, o)
        if not obs:
            return None
        return self._obstacle_distance()

    def side_distances_m(self) -> tuple[float | None, float | None]:
        """The side sensors' readings, left and right: like the forward one's, from the body's edge at
        +-side_bearing off the nose, looking straight out there (the same 15 degree cone)."""
        r = self.geometry.radius_m
        x, y = self.x, self.y
        reach = SENSOR_RANGE_M + r
        # Most steps nothing stands within the sensors' range of the body: no ray to cast (and no noise drawn:
        # nothing in range reads the full 4 m exactly, as the forward sensor does).
        if not any(
            (ox - x) ** 2 + (oy - y) ** 2 < (reach + orad) ** 2 for ox, oy, orad in self._obs_pos
        ) and not (
            self._walls
            and any((mx - x) ** 2 + (my - y) ** 2 < reach2 for mx, my, reach2 in self._side_wall_reach)
        ):
            return SENSOR_RANGE_M, SENSOR_RANGE_M
        out = []
        for b in (self.side_bearing, -self.side_bearing):
            h = self.heading + b
            c, s = math.cos(h), math.sin(h)
            sx, sy = self.x + c * r, self.y + s * r
            d = self._measure_distance(sx, sy, c, s)
            if self._walls:
                w = self._wall_distance(sx, sy, h)
                d = w if d is None else (d if w is None else min(d, w))
            out.append(
                SENSOR_RANGE_M if d is None else max(SENSOR_MIN_M, d + self._side_rng.gauss(0.0, 0.01))
            )
        return out[0], out[1]

    def _wall_distance(
        self, sx: float | None = None, sy: float | None = None, heading: float | None = None
    ) -> float | None:
        """Distance from a sensor (by default the forward one) to the nearest point of a declared wall inside its
        cone, None when none in range: the nearest point of the face, else the face's ends or where the cone's
        edges meet it."""
        heading = self.heading if heading is None else heading
        c, s = math.cos(heading), math.sin(heading)
        if sx is None or sy is None:
            sx, sy = self.x + c * SENSOR_AHEAD_M, self.y + s * SENSOR_AHEAD_M
        ox, oy = sx, sy  # narrowed to floats for the closure below
        best: float | None = None

        def seen(px: float, py: float) -> float | None:
            dx, dy = px - ox, py - oy
            along = dx * c + dy * s
            if along <= 0.0 or abs(math.atan2(-dx * s + dy * c, along)) > SENSOR_HALF_CONE + 1e-9:
                return None
            return math.hypot(dx, dy)

        for ax, ay, bx, by in self._walls:
            mx, my, half = (ax + bx) * 0.5, (ay + by) * 0.5, 0.5 * math.hypot(bx - ax, by - ay)
            if (mx - sx) ** 2 + (my - sy) ** 2 > (SENSOR_RANGE_M + half) ** 2:
                continue  # the whole face is out of range: most steps, anywhere but at the goal
            if (bx - ax) * (sy - ay) - (by - ay) * (sx - ax) < 0.0:
                continue  # behind the face
            ex, ey = bx - ax, by - ay
            ll = ex * ex + ey * ey
            k = max(0.0, min(1.0, ((sx - ax) * ex + (sy - ay) * ey) / ll)) if ll > 0.0 else 0.0
            cands = [(ax + k * ex, ay + k * ey), (ax, ay), (bx, by)]
            for edge in (SENSOR_HALF_CONE, -SENSOR_HALF_CONE):
                rx, ry = math.cos(heading + edge), math.sin(heading + edge)
                den = rx * ey - ry * ex
                if abs(den) < 1e-12:
                    continue
                # sensor + a r = A + b e
                qx, qy = ax - sx, ay - sy
                a_ = (qx * ey - qy * ex) / den
                b_ = (qx * ry - qy * rx) / den
                if a_ > 0.0 and 0.0 <= b_ <= 1.0:
                    cands.append((ax + b_ * ex, ay + b_ * ey))
            for px, py in cands:
                d = seen(px, py)
                if d is not None and d <= SENSOR_RANGE_M and (best is None or d < best):
                    best = d
        return best

    def _obstacle_distance(self) -> float | None:
        obs = self._obs_pos
        # Asked twice a step (the sensor, the recorder) with nothing moved in between: answer once.
        m = self._distance_memo
        if m is not None and m[0] is obs and m[1] == self.x and m[2] == self.y and m[3] == self.heading:
            return m[4]
        d = self._measure_distance()
        self._distance_memo = (obs, self.x, self.y, self.heading, d)
        return d

    def _measure_distance(
        self, sx: float | None = None, sy: float | None = None, c: float | None = None, s: float | None = None
    ) -> float | None:
        """The nearest obstacle edge in a sensor's cone (by default the forward one's), None when none in range;
        the sensor at (sx, sy) looks along (c, s)."""
        if sx is None or sy is None or c is None or s is None:
            c, s = math.cos(self.heading), math.sin(self.heading)
            sx, sy = self.x + c * SENSOR_AHEAD_M, self.y + s * SENSOR_AHEAD_M
        best: float | None = None
        for ox, oy, r in self._obs_pos:
            dx, dy = ox - sx, oy - sy
            along = dx * c + dy * s
            if along <= -r:
                continue  # behind the sensor
            dist = math.hypot(dx, dy)
            if dist <= r:
                return SENSOR_MIN_M
            bearing = abs(math.atan2(-dx * s + dy * c, along))
            if bearing - math.asin(min(1.0, r / dist)) > SENSOR_HALF_CONE:
                continue
            edge = dist - r
            if edge <= SENSOR_RANGE_M and (best is None or edge < best):
                best = edge
        return best

    def power_reading(self) -> PowerReading:
        """The power monitors: panel at its maximum power point, battery terminal voltage and current."""
        stuck, value = self._stuck_value("power") if self._stuck else (False, None)
        if stuck and value is not None:
            return value  # type: ignore[return-value]
        pv, pw = self.panel_v, self.panel_available_w
        memo = self._panel_memo
        if memo[0] == pv and memo[1] == pw and pv != 0.0 and pw != 0.0:  # (a zero's sign is not compared)
            panel = memo[2]  # the panel changes at the slow tick only
        else:
            pa = pw / pv if pv > 0.0 else 0.0
            panel = (round(pv, 3), round(pa, 4))
            self._panel_memo = (pv, pw, panel)
        bv = self._ocv() + self.battery_a * R_INTERNAL
        key = (*panel, round(bv, 3), round(self.battery_a, 4), round(self.soc, 4))
        last = self._power_last
        # The rounded values mostly repeat step after step: the same (immutable) reading again. A zero is never
        # reused: 0.0 == -0.0, and the sign shows where the reading is written out.
        if last is not None and key == last[0] and 0.0 not in key:
            reading = last[1]
        else:
            reading = PowerReading(*key)
            self._power_last = (key, reading)
        self._last_reading["power"] = reading
        return reading

    def set_power_source(self, source: PowerSource) -> None:
        """The power relay: which source feeds the loads."""
        source = source if isinstance(source, PowerSource) else PowerSource(source)
        if source is not self.source and self.t >= self._welded_until:
            self.relay_toggles += 1
            self.source = source

    @property
    def power_source(self) -> PowerSource:
        """The relay's position."""
        return self.source

    def camera_view(self) -> View:
        """What the forward camera sees now: the light, the nearest obstacle, rain, the tray's fill."""
        from sim.frames import View  # Pillow is loaded only when a frame is wanted

        return View(
            irradiance=self.irradiance(),
            obstacle_m=self.true_distance_m(),
            raining=self.is_raining,
            tray_kg=self.tray,
            tray_capacity_kg=TRAY_CAPACITY_KG,
        )

    def camera_jpeg(self, width: int = 320, height: int = 240) -> bytes:
        """The forward camera's JPEG: the alley, the obstacle ahead, the tray (sim/frames.py)."""
        from sim.frames import render_jpeg

        return render_jpeg(width, height, self.camera_view())

    # ---- truth
    @property
    def pose(self) -> Pose:
        """Where the robot really is."""
        return Pose(self.x, self.y, self.heading)

    @property
    def last_fix(self) -> GpsFix | None:
        """The receiver's newest fix, ignoring stuck-sensor faults (for the report)."""
        return self._fix

    def obstacle_marks(self) -> list[tuple[float, float, float, bool]]:
        """(x, y, radius, moving) of every obstacle at its home position, for the map plot."""
        return [(o[0], o[1], o[6], o[5] > 0.0) for o in self._obstacles]

    @property
    def speed_m_s(self) -> float:
        """True forward speed."""
        return (self.vl + self.vr) * 0.5

    def truth(self) -> WorldTruth:
        """What really happened so far."""
        lat, lon = self.site.to_latlon(self.x, self.y)
        return WorldTruth(
            t=self.t,
            pose=self.pose,
            lat=lat,
            lon=lon,
            speed_m_s=self.speed_m_s,
            litter_collected_kg=self.litter_collected_kg,
            litter_total_kg=self.litter_total_kg,
            area_cleaned_m2=len(self._cleaned) * CELL_M * CELL_M,
            tray_kg=self.tray,
            tray_emptied_at=tuple(self.tray_emptied_at),
            raining=self.is_raining,
            storms=self.storms,
            storms_sheltered=len(self._sheltered_storms),
            soc=self.soc,
            battery_v=ocv(self.soc) + self.battery_a * R_INTERNAL,
            panel_available_w=self.panel_available_w,
            load_w=self.load_w,
            panel_wh=self.panel_wh,
            battery_out_wh=self.battery_out_wh,
            battery_in_wh=self.battery_in_wh,
            load_wh=self.load_wh,
            collisions=self.collisions,
            brownout_s=self.brownout_s,
            min_soc=self.min_soc,
            relay_toggles=self.relay_toggles,
            pi_state=self.pi_state,
            pi_power_losses=self.pi_power_losses,
            inside_fence=self.inside_fence,
            geofence_exits=self.geofence_exits,
            route_completion=len(self._route_hit) / len(self._route_points),
            geofence_exit_s=self.geofence_exit_s,
            geofence_max_depth_m=self.geofence_max_depth_m,
        )
