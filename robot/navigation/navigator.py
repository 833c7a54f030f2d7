"""Guidance: a pure function of (state, GPS fix, goal, time, site) giving wheel speeds, called every step.

Position is the GPS fix smoothed with wheel odometry (a scalar Kalman filter per step); heading comes from the
course over ground while moving (or the bearing between fixes a few metres apart), carried through turns by
odometry. The route is followed by pure pursuit; SHELTER and PARK follow the shortest path inside the fence.
Every forward command is checked against the fence over a short look-ahead before it is returned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from robot.core.frozen import quick_init
from robot.core.types import Geometry, Goal, Guidance, MotorOutputs, PinState
from robot.hardware.interfaces import GpsFix
from robot.navigation.geometry import (
    Point,
    Polyline,
    boundary_distance,
    clearance,
    closest_on_segment,
    dist,
    point_in_polygon,
    reflex_waypoints,
    segment_inside,
    shortest_path,
    wrap,
)
from robot.navigation.obstacles import Body, Echo, carry, path_reading, sense, sense_sides, steer
from robot.navigation.site import Site

# A forward reading this far or further sees no wall (the HC-SR04 reads to 4 m; its far end is unreliable).
WALL_SEEN_M = 3.0
# Every receiver profile keeps its route this many of its reported sigmas from the fence (NavConfig.lane_sigmas).
LANE_SIGMAS = 4.0


@dataclass(frozen=True, slots=True)
class NavConfig:
    """Guidance tuning; defaults suit the Ramudroid (300 RPM, 10 cm wheels) and a cheap GPS (2.5 m CEP)."""

    max_hdop: float = 5.0
    max_fix_age_s: float = 2.0  # the same fix epoch seen for longer than this is stale (control.gps_stale_s)
    lookahead_m: float = 3.0
    cruise: float = 0.8  # wheel speed fraction on the route
    approach: float = 0.5  # near a goal, rejoining, returning inside
    turn: float = 0.3  # wheel speed fraction when turning on the spot
    # Turn on the spot when the target is further off the nose than this: the forward sensor sees 15 degrees either
    # side, so the robot looks where it is going before it drives there, rather than arcing into what it never saw.
    spin_deg: float = 15.0
    arrive_radius_m: float = 1.5
    stay_radius_m: float = 10.0  # once arrived, stay put unless the estimate moves this far (the GPS wanders)
    fence_margin_m: float = 2.0  # the look-ahead keeps the estimate this far from the fence
    path_clear_m: float = (
        3.0  # planned paths (shelter, park, rejoin) keep this far from the fence where they can
    )
    check_s: float = 2.0  # fence look-ahead horizon at the commanded speed
    # The robot's kinematics: the supervisor sets them from the config's [geometry].
    max_speed_mps: float = Geometry().max_wheel_speed_mps  # wheel speed at 1.0 (300 RPM x 10 cm wheel)
    wheel_base_m: float = Geometry().wheel_base_m
    gps_sigma_m: float = 2.1  # one-axis standard deviation at HDOP 1 (2.5 m CEP)
    odo_var_moving: float = 0.3  # m^2/s the odometry adds while driving
    odo_var_still: float = 0.02  # m^2/s while stopped (someone may push the robot)
    jump_m: float = 10.0  # a fix this much further than expected is a jump, not noise
    jump_confirm: int = 3  # consecutive agreeing jumped fixes before they are believed
    settle_fixes: int = 3  # good fixes in a row before driving, at start and after a gps outage
    # ... after a confirmed jump (the position moved suddenly, no wheel moved it: was it real?). Longer than a
    # multipath episode near a wall lasts (tens of seconds): a jump that ends sooner is never taken for a move.
    return_fixes: int = 30
    creep: float = 0.5  # wheel speed fraction of the heading-learning creep
    creep_m: float = 4.0
    min_cog_speed_mps: float = 0.5  # below this the course over ground is noise
    cog_gain: float = 0.5
    baseline_m: float = 8.0  # fix-to-fix heading when the receiver gives no course
    on_route_m: float = 2.5  # progress along the route counts only this close to it
    rejoin_m: float = 5.0  # further than this from the route: plan a path back to it
    reset_gap_s: float = 5.0  # a longer gap between calls (restart) drops the position estimate
    # --- sized by the receiver's reported accuracy (GST, or HDOP x gps_sigma_m): see for_receiver() ---
    # Route targets keep this many sigmas (at least fence_margin_m) from the fence. The error of a cheap receiver
    # wanders for tens of seconds, so over a day's driving along a lane its extreme, not its sigma, meets the
    # fence: about 3.5 sigma in the simulator's 72 hours (three_nights: 7.4 m off at a lane 6.5 m in, 0.89 m
    # outside). 4 sigma leaves 0.5 m for an error past 4.2 sigma, which a week of driving seldom reaches.
    lane_sigmas: float = 0.0
    margin_sigmas: float = (
        2.0  # the look-ahead keeps the estimate this many sigmas (at least fence_margin_m) off
    )
    confidence_sigmas: float = 2.5  # "outside the fence" is reported only beyond this many sigmas
    # --- arrival at the shelter or park: averaging while slowly approaching (see _go_to) ---
    settle_s: float = 0.0  # at most this long averaging fixes before arriving (0: arrive on the estimate)
    settle_start_m: float = 6.0  # averaging begins this far from the goal, and the robot slows down
    settle_tol_m: float = 0.3  # arrived when the averaged position is this near the goal
    arrive_sigmas: float = 3.5  # the averaged error's sigmas that must fit in the goal's radius (99.8 %)
    wander_tau_s: float = 30.0  # how long the receiver's error stays alike (its correlation time)
    settle_rounds: int = 3  # kept for old configuration files; averaging is one continuous round now
    require_rtk: bool = False  # drive only on RTK fixed/float fixes (GGA quality 4 or 5)
    # --- a wall the site declares at the shelter or park: arrival ends against it by the ultrasonic sensor ---
    # The forward reading to stop at (obstacle.wall_stop_m): beyond the core's clear distance, so the wall the
    # robot faces at rest is never an obstacle.
    wall_stop_m: float = 1.0
    wall_tol_m: float = 0.05  # stopped when the reading is this near wall_stop_m
    wall_slack_m: float = 1.5  # drive this much further than the wall should be before giving up on seeing it
    wall_align_deg: float = 4.0  # face the wall this squarely before driving at it
    # The drive motors' time constants (10 kg on two 12 V gear motors; both leads shorted when braking): odometry
    # follows what the wheels do, not what they were told a moment ago. 0 takes the command as done at once.
    drive_tau_s: float = 0.3
    brake_tau_s: float = 0.08
    body: Body = field(
        default_factory=Body
    )  # footprint and forward sensor, for the obstacles remembered after they leave its cone

    @classmethod
    def for_receiver(cls, receiver: str, uere_m: float = 0.0, require_rtk: bool = True) -> NavConfig:
        """Tuning for a receiver profile (config gps.receiver): "cheap", "sbas" or "rtk"."""
        if receiver == "rtk":
            cfg = cls(
                max_hdop=4.0,
                lookahead_m=1.5,
                arrive_radius_m=0.2,
                stay_radius_m=1.0,
                fence_margin_m=0.3,
                path_clear_m=1.0,
                jump_m=2.0,
                rejoin_m=2.0,
                on_route_m=0.5,
                settle_fixes=3,
                settle_s=3.0,
                settle_start_m=1.0,
                settle_tol_m=0.05,
                wander_tau_s=60.0,
                lane_sigmas=LANE_SIGMAS,
                require_rtk=require_rtk,
            )
        elif receiver == "sbas":
            cfg = cls(
                gps_sigma_m=0.7,
                arrive_radius_m=0.8,
                stay_radius_m=4.0,
                settle_s=300.0,
                wander_tau_s=60.0,
                jump_m=6.0,
                lane_sigmas=LANE_SIGMAS,
            )
        else:
            cfg = cls(settle_s=600.0, lane_sigmas=LANE_SIGMAS)
        return replace(cfg, gps_sigma_m=uere_m) if uere_m > 0.0 else cfg


@quick_init
@dataclass(frozen=True, slots=True)
class NavState:
    """Everything guidance remembers between steps. `progress_m` (distance done along the route) is what a
    restart or a shelter break resumes from; the rest is the position estimate, rebuilt after a restart.
    """

    progress_m: float = 0.0
    goal: str = "hold"
    arrived: bool = False
    t: float | None = None
    x: float | None = None
    y: float | None = None
    var: float = 0.0
    heading: float | None = None  # radians, 0 = east, counter-clockwise
    speed_scale: float = 1.0  # measured ground speed / odometry speed
    cmd_left: float = 0.0
    cmd_right: float = 0.0
    fix_key: str | None = None
    fix_seen_t: float | None = None
    gps_bad_since: float | None = None
    jump_fixes: tuple[tuple[float, float], ...] = ()
    good_fixes: int = 0
    need_fixes: int = 0
    cog_misses: int = 0
    creep_done_m: float = 0.0
    anchor: tuple[float, float] | None = None
    anchor_turn: float = 0.0
    sigma: float = 0.0  # one-axis accuracy of the newest fix, metres (GST, or HDOP x UERE)
    settle_since: float | None = None
    settle_n: int = 0
    settle_sx: float = 0.0
    settle_sy: float = 0.0
    settles: int = 0
    settle_dx: float = 0.0  # odometry's displacement since averaging began (east, north metres)
    settle_dy: float = 0.0
    jump_from: tuple[float, float] | None = None  # the estimate before the last believed jump
    echoes: tuple[Echo, ...] = ()  # obstacles the forward sensor saw, in the robot's frame (never persisted)
    wheels: tuple[float, float] = (0.0, 0.0)  # the drive wheels' speed fractions by the motor model
    dodge: int = 0  # the side (+1 left, -1 right) the robot is turning away to, round remembered echoes
    wall_stage: int = (
        0  # 1: driving at the goal's wall by the forward sensor; 2: stopped against it (or gave up)
    )
    wall_driven_m: float = 0.0  # odometry's forward distance since the wall approach began

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        d = asdict(self)
        d["jump_fixes"] = [list(p) for p in self.jump_fixes]
        d["anchor"] = None if self.anchor is None else list(self.anchor)
        d["jump_from"] = None if self.jump_from is None else list(self.jump_from)
        d["echoes"] = []  # where things stood around the robot means nothing after a restart
        d["wheels"] = [0.0, 0.0]
        d["dodge"] = 0
        return d

    @classmethod
    def from_dict(cls, data: Any) -> NavState:
        """Rebuild from to_dict() output; a damaged or foreign value takes its default (never raises)."""
        if not isinstance(data, dict):
            return cls()
        defaults = cls()
        kw: dict[str, Any] = {}
        for f in fields(cls):
            v = data.get(f.name, getattr(defaults, f.name))
            kw[f.name] = _clean(f.name, v, getattr(defaults, f.name))
        return cls(**kw)

    def restart_route(self) -> NavState:
        """The same state with the route progress back at the start (a new cleaning round)."""
        return replace(self, progress_m=0.0)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _pair(v: Any) -> tuple[float, float] | None:
    if isinstance(v, list | tuple) and len(v) == 2 and all(_num(c) for c in v):
        return (float(v[0]), float(v[1]))
    return None


def _clean(name: str, v: Any, default: Any) -> Any:
    if name in ("echoes", "wheels", "dodge"):
        return default
    if name in ("goal", "fix_key"):
        return v if isinstance(v, str) else default
    if name == "arrived":
        return v if isinstance(v, bool) else default
    if name == "wall_stage":
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2 else default
    if name in ("good_fixes", "need_fixes", "cog_misses", "settle_n", "settles"):
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default
    if name == "jump_fixes":
        if not isinstance(v, list | tuple):
            return default
        pts = [_pair(p) for p in v]
        return tuple(p for p in pts if p is not None)
    if name in ("anchor", "jump_from"):
        return _pair(v)
    if v is None and default is None:
        return None
    if not _num(v):
        return default
    if name in ("progress_m", "var", "creep_done_m", "sigma", "wall_driven_m") and v < 0:
        return default
    return float(v)


# The receiver hands out the same fix object for a whole epoch (20 steps): its key is computed once. The fix is
# held here so its id cannot be reused by another object while remembered.
_last_key: tuple[GpsFix | None, str] = (None, "")


def _fix_key(fix: GpsFix) -> str:
    global _last_key
    if _last_key[0] is fix:
        return _last_key[1]
    stamp = fix.time.isoformat() if fix.time is not None else "-"
    key = f"{stamp}|{fix.lat:.8f}|{fix.lon:.8f}|{fix.speed}|{fix.track}"
    _last_key = (fix, key)
    return key


# The last distance to the fence measured inside it: (fence, x, y, distance). A cache only: _fence_check()
# trusts it through the 1-Lipschitz bound alone, with this slack for float rounding.
_clear_memo: tuple[tuple[Point, ...] | None, float, float, float] = (None, 0.0, 0.0, 0.0)
_MEMO_SLACK_M = 1e-6
# The last route target _lane_margin measured: (fence, x, y, signed clearance).
_lane_memo: tuple[tuple[Point, ...] | None, float, float, float] = (None, 0.0, 0.0, 0.0)


def _inside(pos: Point, fence: tuple[Point, ...]) -> bool:
    """point_in_polygon(pos, fence), answered without the ray test when pos is nearer the last measured inside
    point than that point was to the fence (no way out in between)."""
    m_fence, mx, my, md = _clear_memo
    if m_fence is fence and math.hypot(pos[0] - mx, pos[1] - my) < md - _MEMO_SLACK_M:
        return True
    return point_in_polygon(pos, fence)


_ROUTE_CLEAR: dict[int, tuple[Polyline, float]] = {}
# The last planned path to a goal: (fence, goal, path). A cache only: a path is reused only near it.
_plan_memo: tuple[tuple[Point, ...] | None, Point | None, Polyline | None] = (None, None, None)


def _nearest_on_ring(p: Point, ring: tuple[Point, ...], n: int) -> tuple[Point, float]:
    """The point of the ring's edges nearest to p (the first edge's on a tie) and its distance: the same
    floats as min((closest_on_segment(p, ring[i], ring[i + 1]) ...), key=dist), in one loop without a call
    per edge."""
    px, py = p
    best: Point = ring[0]
    best_d = math.inf
    for i in range(n):
        ax, ay = a = ring[i]
        bx, by = ring[(i + 1) % n]
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy
        if L2 == 0.0:
            q = a
        else:
            t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / L2))
            q = (ax + t * dx, ay + t * dy)
        d = math.hypot(px - q[0], py - q[1])
        if i == 0 or d < best_d:  # as min() does: the first, then only a strictly nearer one
            best, best_d = q, d
    return best, best_d


def _route_clearance(site: Site) -> float:
    """The route's closest approach to the fence, measured once per site."""
    hit = _ROUTE_CLEAR.get(id(site.route))
    if hit is None or hit[0] is not site.route:
        if len(_ROUTE_CLEAR) > 16:
            _ROUTE_CLEAR.clear()
        hit = (site.route, site.route_min_clearance)
        _ROUTE_CLEAR[id(site.route)] = hit
    return hit[1]


def _gps_problem(fix: GpsFix | None, fresh: bool, age: float, cfg: NavConfig) -> str | None:
    if fix is None:
        return "no gps fix"
    if fix.mode < 2:
        return f"gps mode {fix.mode}: no 2D/3D fix"
    if fix.hdop is None or not math.isfinite(fix.hdop):
        return "gps hdop unknown"
    if fix.hdop > cfg.max_hdop:
        return f"gps hdop {fix.hdop:.1f} above {cfg.max_hdop:.1f}"
    if not (math.isfinite(fix.lat) and math.isfinite(fix.lon)) or abs(fix.lat) > 90 or abs(fix.lon) > 180:
        return f"gps position {fix.lat}, {fix.lon} is impossible"
    if not fresh and age > cfg.max_fix_age_s:
        return f"gps fix {age:.1f} s old"
    if cfg.require_rtk and fix.quality not in (4, 5):
        return f"gps quality {fix.quality}: waiting for an RTK fix (rtcm corrections?)"
    return None


# One-axis error at HDOP 1 by GGA quality, when the receiver sends no GST: RTK fixed and float solutions.
_QUALITY_SIGMA = {4: 0.02, 5: 0.3}


def fix_sigma(fix: GpsFix, cfg: NavConfig) -> float:
    """The fix's one-axis standard deviation in metres: the receiver's GST figure, else HDOP x UERE."""
    if fix.std_m is not None and math.isfinite(fix.std_m) and fix.std_m > 0.0:
        return fix.std_m
    uere = _QUALITY_SIGMA.get(fix.quality, cfg.gps_sigma_m) if fix.quality is not None else cfg.gps_sigma_m
    return uere * max(1.0, fix.hdop or 1.0)


def wheel_fractions(motors: MotorOutputs) -> tuple[float, float]:
    """The drive wheels' signed duty (-1..1) in the pin states the Arduino was sent: guide()'s `applied`."""
    global _wheels_memo
    last, fractions = _wheels_memo
    if motors is last:
        return fractions
    fractions = (_wheel_fraction(motors.drive_left), _wheel_fraction(motors.drive_right))
    if type(motors) is MotorOutputs:  # immutable: the same object always has the same fractions
        _wheels_memo = (motors, fractions)
    return fractions


def _wheel_fraction(p: PinState) -> float:
    if p.in1 == p.in2 or p.en <= 0:
        return 0.0  # 00 and 11 both brake
    return min(p.en, 255) / 255.0 * (1.0 if p.in1 else -1.0)


# The last outputs wheel_fractions() was asked about and its answer (the core hands out one object per
# distinct command, so a held command is asked about twenty times a second). A cache only.
_wheels_memo: tuple[MotorOutputs | None, tuple[float, float]] = (None, (0.0, 0.0))


def _speeds(left: float, right: float, scale: float, cfg: NavConfig) -> tuple[float, float]:
    """(forward m/s, turn rad/s) of wheel speed fractions."""
    k = scale * cfg.max_speed_mps
    return k * (left + right) / 2.0, k * (right - left) / cfg.wheel_base_m


# exp(-dt / tau) for the (step, wheel time constant) pairs seen: a fixed-rate loop asks the same two, twice a
# step. A cache only, bounded; math.exp gives the same float for the same argument.
_DECAYS: dict[tuple[float, float], float] = {}


def _decay(dt: float, tau: float) -> float:
    key = (dt, tau)
    d = _DECAYS.get(key)
    if d is None:
        if len(_DECAYS) >= 1024:
            _DECAYS.clear()
        d = _DECAYS[key] = math.exp(-dt / tau)
    return d


def guide(
    state: NavState,
    fix: GpsFix | None,
    goal: Goal,
    now: float,
    site: Site,
    cfg: NavConfig,
    applied: tuple[float, float] | None = None,
    ahead_m: float | None = None,
    sides_m: tuple[float | None, float | None] | None = None,
) -> tuple[NavState, Guidance]:
    """One guidance step. `fix` is the receiver's newest fix; `applied` is the wheel speeds the robot actually
    ran since the last call (None: assume the last guidance was applied); `ahead_m` is this step's fresh
    forward distance reading (None: none, or no echo); `sides_m` the side sensors' fresh readings, left and
    right (None: not fitted, or not fresh). Returns the new state and answer.
    """
    st = _Step(state, cfg, site)
    st.ahead = ahead_m
    st.advance(now, applied)
    if ahead_m is not None:
        st.echoes = sense(st.echoes, ahead_m, now, cfg.body)
    if sides_m is not None and st.echoes:
        st.echoes = sense_sides(st.echoes, sides_m[0], sides_m[1], cfg.body)
    problem = st.take_fix(fix, now)
    guidance = st.decide(goal, problem)
    if st.echoes:
        clear = path_reading(st.echoes, guidance.left, guidance.right, cfg.wheel_base_m, cfg.body)
        if clear is not None:
            guidance = replace(guidance, path_clear_m=clear)
    return st.finish(now, goal, guidance), guidance


_SWERVE_SPIN_DEG = 60.0  # the target may be this far off the nose while swerving round remembered echoes
_BESIDE_M = 0.5  # an echo this much beyond the body's reach and gap is beside the robot for turning


class _Step:
    """The mutable working copy of one guide() call."""

    def __init__(self, state: NavState, cfg: NavConfig, site: Site) -> None:
        self.s = state
        self.cfg = cfg
        self.site = site
        self.x, self.y = state.x, state.y
        self.var = state.var
        self.heading = state.heading
        self.scale = state.speed_scale
        self.progress = min(max(0.0, state.progress_m), site.route.length)
        self.fix_key = state.fix_key
        self.fix_seen_t = state.fix_seen_t
        self.gps_bad_since = state.gps_bad_since
        self.jump_fixes = list(state.jump_fixes)
        self.good_fixes = state.good_fixes
        self.need_fixes = max(state.need_fixes, cfg.settle_fixes)
        self.cog_misses = state.cog_misses
        self.creep_done = state.creep_done_m
        self.anchor = state.anchor
        self.anchor_turn = state.anchor_turn
        self.arrived = state.arrived
        self.applied = (state.cmd_left, state.cmd_right)
        self.sigma = state.sigma
        self.settle_since = state.settle_since
        self.settle_n = state.settle_n
        self.settle_sx, self.settle_sy = state.settle_sx, state.settle_sy
        self.settles = state.settles
        self.settle_dx, self.settle_dy = state.settle_dx, state.settle_dy
        self.jump_from = state.jump_from
        self.echoes = state.echoes
        self.wheels = state.wheels
        self.dodge = state.dodge
        self.wall_stage = state.wall_stage
        self.wall_driven = state.wall_driven_m
        self.ahead: float | None = None
        self.now = state.t if state.t is not None else 0.0
        self._pos: Point | None = None
        self._pos_inside = False

    # --- estimation ---------------------------------------------------------------------------------------

    def _reset_estimate(self) -> None:
        self.x = self.y = self.heading = None
        self.var = 0.0
        self.fix_key = self.fix_seen_t = None
        self.jump_fixes = []
        self.good_fixes = 0
        self.need_fixes = self.cfg.settle_fixes
        self.cog_misses = 0
        self.creep_done = 0.0
        self.anchor = None
        self.anchor_turn = 0.0
        self.applied = (0.0, 0.0)
        self.echoes = ()
        self.wheels = (0.0, 0.0)
        self.dodge = 0
        self.wall_stage = 0
        self.wall_driven = 0.0

    def advance(self, now: float, applied: tuple[float, float] | None) -> None:
        """Move the estimate by odometry from the last call to now."""
        self.now = now
        last = self.s.t
        if last is None or now < last or now - last > self.cfg.reset_gap_s:
            # First call, or a restart (monotonic time starts again): position and heading are unknown.
            self._reset_estimate()
            return
        if applied is not None:
            self.applied = (max(-1.0, min(1.0, applied[0])), max(-1.0, min(1.0, applied[1])))
        dt = now - last
        v, w = _speeds(*self._wheels_over(dt), self.scale, self.cfg)
        if self.echoes:
            self.echoes = carry(self.echoes, v, w, dt, now, self.cfg.body)
        if self.x is not None and self.y is not None:
            h = self.heading
            if h is not None:
                mid = h + w * dt / 2.0
                ddx, ddy = v * math.cos(mid) * dt, v * math.sin(mid) * dt
                self.x += ddx
                self.y += ddy
                if self.settle_since is not None:
                    self.settle_dx += ddx
                    self.settle_dy += ddy
            if self.wall_stage == 1:
                self.wall_driven += v * dt
            self.var += dt * (
                self.cfg.odo_var_moving if abs(v) > 0.05 or abs(w) > 0.1 else self.cfg.odo_var_still
            )
        if self.heading is not None:
            self.heading = wrap(self.heading + w * dt)
        self.anchor_turn += w * dt
        if self.creep_done > 0.0 or self.heading is None:
            self.creep_done += abs(v) * dt

    def _wheels_over(self, dt: float) -> tuple[float, float]:
        """The wheels' mean speed fractions over the last dt seconds, each a first-order response to its applied
        command (exact for a command held that long); the speeds at the end are kept for the next step."""
        out = []
        ends = []
        for target, w0 in zip(self.applied, self.wheels, strict=True):
            tau = self.cfg.drive_tau_s if target != 0.0 else self.cfg.brake_tau_s
            if tau <= 0.0 or dt <= 0.0:
                out.append(target)
                ends.append(target)
                continue
            decay = _decay(dt, tau)
            out.append(target + (w0 - target) * tau / dt * (1.0 - decay))
            ends.append(target + (w0 - target) * decay)
        self.wheels = (ends[0], ends[1])
        return out[0], out[1]

    def take_fix(self, fix: GpsFix | None, now: float) -> str | None:
        """Gate the fix and fold a new epoch into the estimate; the reason it cannot be used, or None."""
        fresh = False
        if fix is not None:
            key = _fix_key(fix)
            if key != self.fix_key:
                self.fix_key, self.fix_seen_t, fresh = key, now, True
        age = now - self.fix_seen_t if self.fix_seen_t is not None else math.inf
        problem = _gps_problem(fix, fresh, age, self.cfg)
        if problem is not None:
            if self.gps_bad_since is None:
                self.gps_bad_since = now
            self.good_fixes = 0
            self.anchor = None
            return problem
        self.gps_bad_since = None
        if not fresh or fix is None:
            return None
        z = self.site.to_local(fix.lat, fix.lon)
        self.sigma = fix_sigma(fix, self.cfg)
        r = self.sigma**2
        if self.settle_since is not None and self.x is not None and self.y is not None:
            # Averaging: each fix less the odometry's displacement since averaging began is one more look at where
            # the robot was then; their mean plus the displacement is where it is now, moving or standing.
            self.settle_n += 1
            self.settle_sx += z[0] - self.settle_dx
            self.settle_sy += z[1] - self.settle_dy
            self.x = self.settle_sx / self.settle_n + self.settle_dx
            self.y = self.settle_sy / self.settle_n + self.settle_dy
            self.var = min(self.var, r)
            self._heading_from(fix, z)
            return None
        if self.settles > 0 and self.x is not None and self.y is not None:
            # Arrived on the averaged position: single fixes would pull it back towards their wandering bias.
            self._heading_from(fix, z)
            return None
        if self.x is None or self.y is None:
            self.x, self.y, self.var = z[0], z[1], r
            self.good_fixes = 1
        else:
            d = dist(z, (self.x, self.y))
            if d > self.cfg.jump_m + 3.0 * math.sqrt(self.var):
                return self._jump(z, d, r)
            self.jump_fixes = []
            k = self.var / (self.var + r)
            self.x += k * (z[0] - self.x)
            self.y += k * (z[1] - self.y)
            self.var *= 1.0 - k
            self.good_fixes += 1
        if self.good_fixes >= self.need_fixes:
            self.need_fixes = self.cfg.settle_fixes
        self._heading_from(fix, z)
        return None

    def _jump(self, z: Point, d: float, r: float) -> str | None:
        self.jump_fixes = [*self.jump_fixes, z][-self.cfg.jump_confirm :]
        self.anchor = None
        n = len(self.jump_fixes)
        mx = sum(p[0] for p in self.jump_fixes) / n
        my = sum(p[1] for p in self.jump_fixes) / n
        if n >= self.cfg.jump_confirm and all(
            dist(p, (mx, my)) < self.cfg.jump_m / 2 for p in self.jump_fixes
        ):
            # The fixes agree with each other: the robot really is there (or the receiver insists). Believe
            # them, but a sudden move is suspect: wait for return_fixes steady fixes before driving on.
            self.jump_from = (self.x, self.y) if self.x is not None and self.y is not None else None
            self.x, self.y, self.var = mx, my, r
            self.jump_fixes = []
            self.good_fixes = 0
            self.need_fixes = self.cfg.return_fixes
            return None
        return None

    def _heading_from(self, fix: GpsFix, z: Point) -> None:
        # The wheels' modelled speeds, not the command: a robot still spinning up is not a slow robot.
        v, w = _speeds(*self.wheels, 1.0, self.cfg)
        if fix.speed is not None and abs(v) > 0.2 * self.cfg.max_speed_mps and abs(w) < 0.5:
            # Learn how fast the wheels really drive the robot (slip, battery, the core's duty mapping).
            ratio = fix.speed / abs(v)
            self.scale = max(0.1, min(2.0, self.scale + 0.5 * (ratio - self.scale)))
        moving = fix.speed is not None and fix.speed >= self.cfg.min_cog_speed_mps
        if fix.track is not None and moving and math.isfinite(fix.track):
            cog = wrap(math.pi / 2.0 - math.radians(fix.track))
            if v < 0.0:
                cog = wrap(cog + math.pi)  # backing up: the nose points against the course
            self._blend_heading(cog, self.cfg.cog_gain)
            return
        if fix.track is None and v > 0.05:
            if self.anchor is None or abs(self.anchor_turn) > 0.3:
                self.anchor, self.anchor_turn = z, 0.0
            elif dist(self.anchor, z) >= self.cfg.baseline_m:
                chord = math.atan2(z[1] - self.anchor[1], z[0] - self.anchor[0])
                self._blend_heading(wrap(chord + self.anchor_turn / 2.0), 0.3)
                self.anchor, self.anchor_turn = z, 0.0
        elif v <= 0.05:
            self.anchor = None

    def _blend_heading(self, measured: float, gain: float) -> None:
        if self.heading is None:
            self.heading = measured
            self.creep_done = 0.0
            return
        err = wrap(measured - self.heading)
        if abs(err) > math.pi / 2.0:
            # Far off: a bad course or a heading lost in an unseen turn; believe it the second time in a row.
            self.cog_misses += 1
            if self.cog_misses >= 2:
                self.heading, self.cog_misses = measured, 0
            return
        self.cog_misses = 0
        self.heading = wrap(self.heading + gain * err)

    # --- decisions ----------------------------------------------------------------------------------------

    def decide(self, goal: Goal, problem: str | None) -> Guidance:
        """Wheel speeds for the goal, or zero with the reason."""
        self.arrived = self.arrived and str(goal) == self.s.goal
        if str(goal) != self.s.goal:
            self.settle_since, self.settles = None, 0
            self.wall_stage, self.wall_driven = 0, 0.0
        cfg = self.cfg
        self.margin = max(cfg.fence_margin_m, cfg.margin_sigmas * self.sigma)
        self.confidence = cfg.confidence_sigmas * self.sigma
        fence = self.site.fence
        pos = None if self.x is None or self.y is None else (self.x, self.y)
        inside = pos is not None and _inside(pos, fence)
        self._pos, self._pos_inside = pos, inside
        # Reported outside only when the estimate itself is outside by more than its confidence: a fix wandering
        # over the line within the receiver's error, or a jump not yet believed, is no evidence the robot left.
        # A believed jump is a move no wheel made: until its steady fixes are in, its size adds to the doubt.
        doubt = self.confidence
        if (
            self.need_fixes > cfg.settle_fixes
            and self.good_fixes < self.need_fixes
            and self.jump_from is not None
        ):
            doubt += dist(self.jump_from, pos) if pos is not None else 0.0
        confident_in = inside or pos is None or boundary_distance(pos, fence) <= doubt
        if self.jump_fixes and pos is not None:
            # A jump not yet confirmed: stop, and say so at once if it claims the robot left the fence.
            z = self.jump_fixes[-1]
            problem = problem or f"gps jumped {dist(z, pos):.0f} m; waiting for it to settle"
        self._confident_in = confident_in
        if problem is not None or pos is None:
            return Guidance(gps_ok=False, inside_fence=confident_in, reason=problem or "waiting for gps")
        if goal == Goal.HOLD:
            return Guidance(gps_ok=True, inside_fence=confident_in, reason="holding")
        if self.good_fixes < self.need_fixes:
            where = "" if inside else f"outside the fence by {boundary_distance(pos, fence):.1f} m; "
            return Guidance(
                gps_ok=True,
                inside_fence=confident_in,
                reason=f"{where}waiting for steady gps ({self.good_fixes}/{self.need_fixes} good fixes)",
            )
        if not inside:
            return self._return_inside(pos)
        if self.heading is None:
            return self._creep(pos)
        if goal == Goal.ROUTE:
            return self._route(pos)
        target = self.site.shelter if goal == Goal.SHELTER else self.site.park
        return self._go_to(pos, target, str(goal))

    def _creep(self, pos: Point) -> Guidance:
        # Unknown heading: creep straight ahead and back again along the same line, never further than the
        # fence leaves room for in any direction, until the course over ground tells where the nose points.
        room = min(self.cfg.creep_m, clearance(pos, self.site.fence) - 1.0)
        if room < 0.5:
            return Guidance(
                gps_ok=True, reason="heading unknown and too close to the fence to creep; move by hand"
            )
        leg = self.creep_done % (2.0 * room)
        u = self.cfg.creep if leg < room else -self.cfg.creep
        self.creep_done = max(self.creep_done, 1e-6)
        return Guidance(u, u, gps_ok=True, reason="creeping to learn the heading")

    def _return_inside(self, pos: Point) -> Guidance:
        fence = self.site.fence
        out_by = boundary_distance(pos, fence)
        if self.heading is None:
            return Guidance(
                gps_ok=True, inside_fence=False, reason="outside the fence, heading unknown; move by hand"
            )
        # Aim at the nearest point a margin inside the fence.
        n = len(fence)
        best = min(
            (
                (dist(pos, q), q)
                for q in (closest_on_segment(pos, fence[i], fence[(i + 1) % n]) for i in range(n))
            ),
            key=lambda t: t[0],
        )[1]
        d = max(dist(pos, best), 1e-6)
        target = (
            best[0] + (best[0] - pos[0]) / d * self.margin,
            best[1] + (best[1] - pos[1]) / d * self.margin,
        )
        left, right = self._pursue(pos, target, self.cfg.approach)
        sure = not self._confident_in
        return Guidance(
            left,
            right,
            gps_ok=True,
            inside_fence=not sure,
            reason=f"outside the fence by {out_by:.1f} m"
            + ("" if sure else f" (within the gps's {self.confidence:.1f} m confidence)")
            + "; driving back in",
        )

    def _route(self, pos: Point) -> Guidance:
        route = self.site.route
        start = route.at(self.progress)
        if dist(pos, start) > self.cfg.rejoin_m:
            return self._go_to(pos, start, f"route at {self.progress:.0f} m", rejoin=True)
        s, off = route.project(pos, self.progress - 0.5, self.progress + self.cfg.lookahead_m + 2.0)
        if off <= self.cfg.on_route_m:
            # Only count the route as done where the robot actually came close to it.
            self.progress = max(self.progress, s)
        if self.progress >= route.length - self.cfg.arrive_radius_m:
            self.progress = route.length
            return Guidance(gps_ok=True, route_done=True, reason="route done")
        # Off the line (after an escape, a push, a break): head back to where cleaning stopped, then go on.
        ahead = self.cfg.lookahead_m if off <= self.cfg.on_route_m else 0.5
        target = self._lane_margin(route.at(self.progress + ahead))
        left_m = route.length - self.progress
        u = self.cfg.cruise if left_m > 4.0 else max(self.cfg.approach, self.cfg.cruise * left_m / 4.0)
        left, right = self._pursue(pos, target, u)
        left, right, why = self._fence_check(pos, target, left, right)
        pct = 100.0 * self.progress / route.length
        return Guidance(left, right, gps_ok=True, reason=why or f"following the route: {pct:.0f}% done")

    def _lane_margin(self, target: Point) -> Point:
        """The route target moved inward where the lane runs closer to the fence than the receiver's error
        allows (lane_sigmas x sigma): a cheap receiver drives the outer lanes further in, RTK drives them."""
        lane = max(self.cfg.fence_margin_m, self.cfg.lane_sigmas * self.sigma)
        if _route_clearance(self.site) >= lane:
            return target  # the whole route keeps the margin: nothing to measure
        global _lane_memo
        fence = self.site.fence
        # The signed clearance changes by at most the distance the target moved (it is 1-Lipschitz): while the
        # last one measured proves the target keeps the lane with room to spare, it does, with no measuring.
        m_fence, mx, my, mc = _lane_memo
        if m_fence is fence and mc - math.hypot(target[0] - mx, target[1] - my) >= lane + _MEMO_SLACK_M:
            return target
        c = clearance(target, fence)
        _lane_memo = (fence, target[0], target[1], c)
        n = len(fence)
        # Pushed off the nearest edge, a target in a corner may come nearer the other one: push again from
        # there (a few rounds settle on the corner's bisector), keeping only what gained clearance.
        for _ in range(3):
            if c >= lane:
                return target
            q, d = _nearest_on_ring(target, fence, n)
            if d < 1e-9:
                return target
            k = (1.0 if c >= 0.0 else -1.0) / d
            moved = (q[0] + (target[0] - q[0]) * k * lane, q[1] + (target[1] - q[1]) * k * lane)
            moved_c = clearance(moved, fence)
            # A narrow spot (less than two margins wide) cannot keep the margin on both sides: keep the lane.
            if moved_c <= c + 1e-6:
                return target
            target, c = moved, moved_c
        return target

    def _settle_time(self, radius: float, tol: float) -> float:
        """How long to average so that the mean's error fits the goal's radius with arrive_sigmas to spare: the
        variance of a mean over T of an error that stays alike for tau is about sigma^2 2 tau / T."""
        cfg = self.cfg
        need = max(radius - tol, 0.05) / cfg.arrive_sigmas
        sigma = self.sigma if self.sigma > 0.0 else cfg.gps_sigma_m
        return min(cfg.settle_s, 2.0 * cfg.wander_tau_s * sigma * sigma / (need * need))

    def _go_to(self, pos: Point, goal_pt: Point, name: str, rejoin: bool = False) -> Guidance:
        d = dist(pos, goal_pt)
        if not rejoin:
            if self.arrived and d <= self.cfg.stay_radius_m:
                # A parked robot must not chase the GPS error around: its slow wander reaches metres.
                return Guidance(gps_ok=True, arrived=True, reason=f"at the {name}")
            self.arrived = False
            if self.wall_stage == 2:
                self.wall_stage = 0  # left the goal: the next arrival ends against the wall again
            radius = self.site.shelter_radius_m if name == "shelter" else self.site.park_radius_m
            if self.wall_stage == 1:
                return self._to_wall(name, radius)
            if self.cfg.settle_s <= 0.0:
                if d <= min(self.cfg.arrive_radius_m, 0.5 * radius):
                    return self._arrive(name, radius)
            elif self._at_wall(name, radius):
                # The slow approach met the goal's wall before the averaging said "here": the wall, not the
                # obstacle stop, ends it (the along-wall error is what the GPS had; the wall now fixes it).
                self.wall_stage, self.wall_driven = 1, 0.0
                return self._to_wall(name, radius)
            elif self.settle_since is not None or d <= self.cfg.settle_start_m:
                if self.settle_since is None:
                    # Averaging starts here and goes on while the robot slowly drives the last metres.
                    self.settle_since, self.settle_n = self.now, 0
                    self.settle_sx = self.settle_sy = self.settle_dx = self.settle_dy = 0.0
                tol = min(self.cfg.settle_tol_m, 0.5 * radius)
                waited = self.now - self.settle_since
                need = self._settle_time(radius, tol)
                # Standing and averaging, the mean moves a little with every fix: only a clear move of it is worth
                # driving (each start and spin on the spot costs odometry some accuracy).
                standing = self.applied == (0.0, 0.0)
                if d <= (2.5 * tol if standing else tol):
                    if waited >= need and self.settle_n > 0:
                        self.settles += 1
                        return self._arrive(name, radius)
                    return Guidance(
                        gps_ok=True, reason=f"at the {name}: averaging fixes ({waited:.0f} of {need:.0f} s)"
                    )
                if d <= 2.0 * self.cfg.lookahead_m:
                    # The last metres straight at the goal, slowly, on the averaged position.
                    left, right = self._pursue(pos, goal_pt, self.cfg.creep * 0.6)
                    left, right, why = self._fence_check(pos, goal_pt, left, right)
                    return Guidance(
                        left, right, gps_ok=True, reason=why or f"approaching the {name}, averaging fixes"
                    )
        fence = self.site.fence
        # The plan from a start the robot has since driven along stays good while it keeps within a metre of it:
        # planning (visibility from the moving start) is not redone every step, which big fences make costly.
        global _plan_memo
        m_fence, m_goal, m_line = _plan_memo
        if m_fence is fence and m_goal == goal_pt and m_line is not None:
            s0, off = m_line.project(pos, 0.0, m_line.length)
            if off <= 1.0 and m_line.length - s0 > 0.5:
                return self._follow(pos, m_line, s0, d, name, rejoin)
        path = None
        # Keep well clear of the fence where the site allows it (as far as the receiver's error asks, in half
        # metre steps so the plans are reused), closer only where it must.
        lane = math.ceil(self.cfg.lane_sigmas * self.sigma * 2.0) / 2.0
        for clear in (max(self.cfg.path_clear_m, lane), self.cfg.path_clear_m, self.cfg.fence_margin_m, 0.5):
            corners = reflex_waypoints(fence, clear * 1.1)
            path = shortest_path(pos, goal_pt, fence, corners, clear)
            if path is not None:
                break
        if path is None:
            return Guidance(gps_ok=True, reason=f"no way to the {name} inside the fence")
        line = Polyline(path)
        _plan_memo = (fence, goal_pt, line)
        s, _ = line.project(pos, 0.0, self.cfg.lookahead_m)
        return self._follow(pos, line, s, d, name, rejoin)

    def _arrive(self, name: str, radius: float) -> Guidance:
        """At the goal on GPS: arrived, or, where the site declares a wall there that the sensor can reach
        within the goal's radius, the start of the last metres at it by the forward sensor."""
        wall = self.site.wall(name)
        if wall is not None and self.wall_stage == 0:
            # Where the robot would stop: the wall's face less the reading to stop at and the sensor's offset.
            short = wall.distance_m - self.cfg.wall_stop_m - self.cfg.body.sensor_ahead_m
            if -radius < short < radius:
                self.wall_stage, self.wall_driven = 1, 0.0
                return self._to_wall(name, radius)
        self.arrived = True
        return Guidance(gps_ok=True, arrived=True, reason=f"at the {name}")

    def _at_wall(self, name: str, radius: float) -> bool:
        """Slowly approaching a goal with a wall, the sensor reads it near ahead, the nose roughly at it."""
        wall = self.site.wall(name)
        if wall is None or self.settle_since is None or self.ahead is None or self.heading is None:
            return False
        short = wall.distance_m - self.cfg.wall_stop_m - self.cfg.body.sensor_ahead_m
        if not -radius < short < radius or self.ahead > self.cfg.wall_stop_m + 0.3:
            return False
        return abs(wrap(math.atan2(wall.normal[1], wall.normal[0]) - self.heading)) < math.radians(45.0)

    def _to_wall(self, name: str, radius: float) -> Guidance:
        """Face the wall the site declares and drive slowly until the forward sensor reads wall_stop_m: the wall
        fixes the position along its normal to centimetres, which no GPS average does. The fence look-ahead is not
        asked (the estimate may be metres off, the wall is not); the distance driven is bounded instead."""
        cfg = self.cfg
        wall = self.site.wall(name)
        assert wall is not None and self.heading is not None
        alpha = wrap(math.atan2(wall.normal[1], wall.normal[0]) - self.heading)
        # Driving, twice the slack before stopping to turn again: each stop and turn costs a second.
        driving = self.applied[0] == self.applied[1] != 0.0
        if abs(alpha) > math.radians(cfg.wall_align_deg) * (2.0 if driving else 1.0):
            # Slower as it comes round: a step at the full turn rate would swing past the few degrees asked.
            t = min(cfg.turn, max(0.1, 0.4 * abs(alpha)))
            t = t if alpha > 0 else -t
            return Guidance(-t, t, gps_ok=True, reason=f"at the {name}: turning to face its wall")
        reading = self.ahead
        if reading is None:
            return Guidance(
                gps_ok=True, reason=f"at the {name}: waiting for the distance sensor to face its wall"
            )
        # Squinting at the wall, the sensor reads along its beam: the distance to the face is a little shorter.
        gap = reading * math.cos(alpha) - cfg.wall_stop_m
        short = wall.distance_m - cfg.wall_stop_m - cfg.body.sensor_ahead_m
        # Driven past where the wall should be (plus the slack for the GPS's error along it) and nothing near ahead:
        # the wall is not there (or the estimate was far off); something seen goes on bounding the drive to it.
        over = self.wall_driven - max(short, 0.0) - cfg.wall_slack_m
        lost = over >= cfg.wall_slack_m or (over >= 0.0 and reading >= WALL_SEEN_M)
        if abs(gap) <= cfg.wall_tol_m or (gap > 0.0 and lost):
            seen = abs(gap) <= cfg.wall_tol_m
            self.wall_stage = 2
            self.arrived = True
            why = f"{reading:.2f} m from its wall" if seen else "its wall not seen; stopped on gps"
            return Guidance(gps_ok=True, arrived=True, reason=f"at the {name}: {why}")
        # Slow, and slower still near the stop: the sensor pings every 60 ms and the wheels take 0.3 s to stop.
        u = max(0.15, min(cfg.creep * 0.6, 0.8 * abs(gap)))
        if gap < 0.0:
            return Guidance(
                -u, -u, gps_ok=True, reason=f"at the {name}: backing off its wall ({reading:.2f} m)"
            )
        return Guidance(u, u, gps_ok=True, reason=f"at the {name}: driving at its wall ({reading:.2f} m)")

    def _follow(self, pos: Point, line: Polyline, s: float, d: float, name: str, rejoin: bool) -> Guidance:
        target = line.at(s + self.cfg.lookahead_m)
        u = self.cfg.approach if rejoin or d < 4.0 else self.cfg.cruise
        left, right = self._pursue(pos, target, u)
        left, right, why = self._fence_check(pos, target, left, right)
        verb = "rejoining the" if rejoin else "going to the"
        return Guidance(left, right, gps_ok=True, reason=why or f"{verb} {name}: {line.length - s:.0f} m")

    def _pursue(self, pos: Point, target: Point, u: float) -> tuple[float, float]:
        """Pure pursuit: wheel fractions to drive the arc through the target, or a turn on the spot."""
        assert self.heading is not None
        dx, dy = target[0] - pos[0], target[1] - pos[1]
        ld = math.hypot(dx, dy)
        if ld < 1e-6:
            return 0.0, 0.0
        alpha = wrap(math.atan2(dy, dx) - self.heading)
        if self.dodge and self._nearest() is None:
            self.dodge = 0  # past it: the next one gets its own side
        # Around a remembered obstacle the swerve needs the nose off the target for a while: turning back to face
        # the target on the spot at once would point it at the obstacle again, and the two would take turns.
        spin_deg = max(self.cfg.spin_deg, _SWERVE_SPIN_DEG) if self.echoes else self.cfg.spin_deg
        if abs(alpha) > math.radians(spin_deg):
            t = self.cfg.turn if alpha > 0 else -self.cfg.turn
            if self.echoes and self._beside(alpha > 0):
                # The target lies past something remembered on that side: turning to it now would swing the nose
                # into it (and the swerve would turn it away again, by turns). Drive on past it first.
                speed = self.cfg.max_speed_mps * max(self.scale, 1.0)
                u = self.cfg.approach
                left, right, side = steer(
                    self.echoes, u, u, speed, self.cfg.wheel_base_m, self.cfg.body, self.dodge
                )
                self.dodge = side or self.dodge
                return left, right
            return -t, t
        k = 2.0 * math.sin(alpha) / ld
        u *= max(0.4, math.cos(alpha))
        half = k * self.cfg.wheel_base_m / 2.0
        left, right = u * (1.0 - half), u * (1.0 + half)
        m = max(1.0, abs(left), abs(right))
        left, right = left / m, right / m
        if self.echoes:
            # Around what the sensor saw and no longer sees (before the fence check, which has the last word).
            speed = self.cfg.max_speed_mps * max(self.scale, 1.0)
            left, right, side = steer(
                self.echoes, left, right, speed, self.cfg.wheel_base_m, self.cfg.body, self.dodge
            )
            self.dodge = side or self.dodge
        return left, right

    def _nearest(self) -> Echo | None:
        """The nearest echo ahead of the axle when it is near enough for a turn to close on it."""
        body = self.cfg.body
        near = min(
            (e for e in self.echoes if e[0] > -body.radius_m),
            key=lambda e: e[0] * e[0] + e[1] * e[1],
            default=None,
        )
        if near is None or math.hypot(near[0], near[1]) >= body.radius_m + body.clear_m + _BESIDE_M:
            return None
        return near

    def _beside(self, to_left: bool) -> bool:
        """Whether something remembered is on that side, near enough for a turn to close on it (the side the robot
        is dodging away from, else the nearest echo's)."""
        near = self._nearest()
        if near is None:
            return False
        if self.dodge:
            return (self.dodge < 0) == to_left  # dodging right, away from what is on the left: not left now
        return (near[1] > 0.0) == to_left

    def _fence_check(self, pos: Point, target: Point, left: float, right: float) -> tuple[float, float, str]:
        """The command, slowed or replaced by a turn on the spot when its path over the look-ahead would come
        closer to the fence than the margin (or than the robot and its target already are)."""
        global _clear_memo
        fence = self.site.fence
        reach = max(abs(left), abs(right)) * self.cfg.max_speed_mps * max(self.scale, 1.0) * self.cfg.check_s
        if pos is self._pos:
            # decide() already knows which side of the fence this position is on.
            if self._pos_inside:
                # The distance to the fence changes by at most the distance moved: when the last one measured
                # proves the common case below with room to spare, it holds here too, with no measuring.
                m_fence, mx, my, md = _clear_memo
                if (
                    m_fence is fence
                    and md - math.hypot(pos[0] - mx, pos[1] - my) - reach >= self.margin + _MEMO_SLACK_M
                ):
                    return left, right, ""
            d = boundary_distance(pos, fence)
            if self._pos_inside:
                _clear_memo = (fence, pos[0], pos[1], d)
            pos_clear = d if self._pos_inside else -d
        else:
            pos_clear = clearance(pos, fence)
        if pos_clear - reach >= self.margin:
            return left, right, ""  # nothing within reach of the fence this look-ahead: the common case
        floor = min(self.margin, pos_clear - 0.05, 0.9 * clearance(target, fence))
        for f in (1.0, 0.5):
            if self._arc_clear(pos, left * f, right * f, floor, pos_clear):
                return left * f, right * f, ""
        assert self.heading is not None
        alpha = wrap(math.atan2(target[1] - pos[1], target[0] - pos[0]) - self.heading)
        if abs(alpha) > 0.15:
            t = self.cfg.turn if alpha > 0 else -self.cfg.turn
            return -t, t, "turning away from the fence"
        return 0.0, 0.0, "stopped: the fence is ahead"

    def _arc_clear(self, pos: Point, left: float, right: float, floor: float, start_clear: float) -> bool:
        assert self.heading is not None
        v, w = _speeds(left, right, max(self.scale, 1.0), self.cfg)
        if abs(v) < 1e-3:
            return True  # turning on the spot does not move the centre
        fence = self.site.fence
        floor = max(floor, 0.0)
        # Clearance changes by at most the distance travelled, so a start far enough from the fence clears the
        # whole arc (and each piece of it) without testing segments: this keeps the check cheap mid-alley.
        if start_clear - abs(v) * self.cfg.check_s >= floor:
            return True
        steps = 8
        dt = self.cfg.check_s / steps
        seg = abs(v) * dt
        x, y, h = pos[0], pos[1], self.heading
        prev, prev_clear = pos, start_clear
        for _ in range(steps):
            h += w * dt
            x += v * math.cos(h) * dt
            y += v * math.sin(h) * dt
            if prev_clear - seg < floor and not segment_inside(prev, (x, y), fence, floor):
                return False
            prev = (x, y)
            prev_clear = clearance(prev, fence)
        return True

    def finish(self, now: float, goal: Goal, g: Guidance) -> NavState:
        """The new state, remembering the command just returned for the next odometry step."""
        if str(goal) != self.s.goal:
            self.arrived = g.arrived
        # Positional, in NavState's field order (cheaper than keywords, 20 times a second).
        return NavState(
            self.progress,
            str(goal),
            self.arrived and g.arrived,
            now,
            self.x,
            self.y,
            self.var,
            self.heading,
            self.scale,
            g.left,
            g.right,
            self.fix_key,
            self.fix_seen_t,
            self.gps_bad_since,
            tuple(self.jump_fixes),
            self.good_fixes,
            self.need_fixes,
            self.cog_misses,
            self.creep_done if self.heading is None else 0.0,
            self.anchor,
            self.anchor_turn,
            self.sigma,
            self.settle_since,
            self.settle_n,
            self.settle_sx,
            self.settle_sy,
            self.settles,
            self.settle_dx,
            self.settle_dy,
            self.jump_from if self.need_fixes > self.cfg.settle_fixes else None,
            self.echoes,
            self.wheels,
            self.dodge if self.echoes else 0,
            self.wall_stage,
            self.wall_driven,
        )
