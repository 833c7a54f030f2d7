"""The run's record: a trace collected step by step, report.json, and the plots a person would rather look at.

matplotlib is imported only inside plot(), so recording costs nothing beyond a few comparisons per step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot.core.types import Decision, Goal, Guidance, Mode, MotorOutputs, PinState, State
from robot.navigation.geometry import clearance
from sim.scenario import Expectation
from sim.world import World

REPORT_KEYS: tuple[str, ...] = (
    "simulated_s",
    "wall_s",
    "area_cleaned_m2",
    "litter_collected_kg",
    "energy_wh",
    "time_in_state_s",
    "alerts",
    "safety_events",
    "route_completion",
    "geofence_exits",
    "shelter_reached",
    "storms",
    "brownout_s",
    "relay_toggles",
    "collisions",
    "state_changes",
    "min_battery_soc",
    "false_alerts",
)
OFF = "off"  # the time_in_state_s key while the Pi is powered down (or booting): no decisions are taken
# Alerts the simulator can check against what really happened (see Recorder._false).
SUN_UP_W_M2 = 50.0  # clear-sky irradiance above this: the sun is well above the horizon, it is not night
SOC_SLACK = 0.02  # the robot's state of charge may differ from the truth by this much without lying
# Positioning figures (issue 13), measured on true position: kept apart so other report fields merge cleanly.
NAV_REPORT_KEYS = ("geofence_exit_s", "geofence_max_depth_m", "geofence_alerts", "arrivals")
# Times the Pi lost its supply without a planned power-down (a reset on a dip, the controller's cut).
POWER_REPORT_KEYS = ("pi_resets",)
REPORT_KEYS = (*REPORT_KEYS, *NAV_REPORT_KEYS, *POWER_REPORT_KEYS)
# Figures a scenario's [expect] table may name (the lists of alerts and events are not single figures).
EXPECTABLE = tuple(k for k in REPORT_KEYS if k not in ("alerts", "safety_events"))
PLOT_FILES = ("track.png", "power.png", "states.png")
# A safety reaction not seen within this long is reported with reaction_ms = None (it never came).
REACTION_GIVE_UP_S = 60.0
# Finishing (standing still; in the shelter) not seen within this long after the reaction: done_ms = None.
DONE_GIVE_UP_S = 3600.0
STILL_M_S = 0.02  # true speed below this: the wheels have stopped


def _forward(p: PinState) -> bool:
    return p.en > 0 and p.in1 == 1 and p.in2 == 0


def _drives_forward(m: MotorOutputs) -> bool:
    return _forward(m.drive_left) or _forward(m.drive_right)


@dataclass(slots=True)
class SafetyEvent:
    """A situation that may call for a reaction: whether it did (the robot was doing what it forbids), how long
    the applied pins took to show the reaction, and how long until the reaction was carried out in the world
    (wheels still; in rain, in the shelter)."""

    kind: str
    at: float
    reaction_ms: float | None = None
    closed: bool = False
    required: bool = True
    done_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        """{kind, reaction_ms, at_s, required, done_ms}; reaction_ms and done_ms only when a reaction was
        required (null: it never came)."""
        if not self.required:
            return {"kind": self.kind, "at_s": round(self.at, 3), "required": False}
        ms = None if self.reaction_ms is None else round(self.reaction_ms, 1)
        done = None if self.done_ms is None else round(self.done_ms, 1)
        return {
            "kind": self.kind,
            "reaction_ms": ms,
            "at_s": round(self.at, 3),
            "required": True,
            "done_ms": done,
        }


@dataclass
class Trace:
    """Samples taken once per sample period, and the state segments."""

    t: list[float] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    gps_x: list[float] = field(default_factory=list)
    gps_y: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)
    panel_w: list[float] = field(default_factory=list)
    load_w: list[float] = field(default_factory=list)
    tray_kg: list[float] = field(default_factory=list)
    passes: list[int] = field(default_factory=list)  # route pass the sample belongs to (0 = the first)
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, state)


class Recorder:
    """Collects one run's trace from the world's truth, the decisions and the pins the Arduino applied."""

    def __init__(
        self,
        world: World,
        *,
        stop_distance_m: float = 0.5,
        tray_full_kg: float = 1.9,
        sample_every_s: float = 1.0,
        critical_soc: float = 0.10,
        critical_v: float = 9.6,
        low_soc: float = 0.25,
    ) -> None:
        self.world = world
        self.stop_distance_m = stop_distance_m
        self.tray_full_kg = tray_full_kg
        self.critical_soc = critical_soc
        self.critical_v = critical_v
        self.low_soc = low_soc
        self.state_changes = 0
        self.false_alerts: list[dict[str, Any]] = []
        self.sample_every_s = sample_every_s
        self.trace = Trace()
        self.time_in_state: dict[str, float] = {}
        self.alerts: list[dict[str, Any]] = []
        self.events: list[SafetyEvent] = []
        self.faults: list[dict[str, Any]] = []
        self._open: dict[str, SafetyEvent] = {}
        self._finishing: dict[str, SafetyEvent] = {}  # reacted, not yet carried out
        self._prev_applied: MotorOutputs | None = None  # the pins before this step's decision
        self._state: str | None = None
        self._state_since = 0.0
        self._next_sample = 0.0
        self._was_raining = world.is_raining
        self._tray_was_full = world.tray >= tray_full_kg
        self._has_obstacles = bool(world.scenario.obstacles)
        self._was_forward = False
        self.nav = NavRecorder(world)
        # Set by the run: the supervisor's count of finished route passes (None while the Pi is off).
        self.pass_count: Callable[[], int | None] | None = None
        self._pass = 0
        self._pass_seen = 0

    # ---- per step
    def step(self, t: float, dt: float, decision: Decision, applied: MotorOutputs) -> None:
        """Record one step: `applied` is what the Arduino's pins show after it."""
        self._enter(
            decision.state._value_, t, dt
        )  # .value without the enum property's cost, 20 times a second
        for a in decision.alerts:
            entry = {"kind": a.kind, "severity": a.severity.value, "message": a.message, "at_s": a.at}
            self.alerts.append(entry)
            if self._false(a.kind):
                self.false_alerts.append(entry)
        self._safety(t, decision, applied)
        self.nav.step(t, decision, applied)
        if t >= self._next_sample:
            self._next_sample = t + self.sample_every_s
            self._sample(t)

    def off_step(self, t: float, dt: float) -> None:
        """Record a stretch of dt seconds with the Pi powered down or booting: no decision, nothing moves."""
        self._enter(OFF, t, dt)
        self._open.clear()  # nothing can react while the Pi is off; the Arduino keeps everything braked
        self._finishing.clear()
        self._was_forward = False
        self._prev_applied = None
        if t >= self._next_sample:
            self._next_sample = t + self.sample_every_s
            self._sample(t)

    def _enter(self, state: str, t: float, dt: float) -> None:
        self.time_in_state[state] = self.time_in_state.get(state, 0.0) + dt
        if state != self._state:
            if self._state is not None:
                self.trace.segments.append((self._state_since, t, self._state))
                self.state_changes += 1
            self._state, self._state_since = state, t

    def _false(self, kind: str) -> bool:
        """True when the simulator knows this alert's claim is not what really happened."""
        w = self.world
        if kind == "night":
            return w.clear_sky_irradiance() > SUN_UP_W_M2
        if kind == "critical_battery":  # by charge or by voltage under load
            return w.soc > self.critical_soc + SOC_SLACK and w.truth().battery_v > self.critical_v
        if kind == "low_battery":
            return w.soc > self.low_soc + SOC_SLACK
        if kind == "rain":
            return not w.is_raining
        if kind == "tray_full":
            return w.tray < self.tray_full_kg - 0.05
        if kind == "geofence":
            return w.inside_fence
        return False

    def _safety(self, t: float, decision: Decision, applied: MotorOutputs) -> None:
        w = self.world
        forward = _drives_forward(applied)
        # Obstacle inside the stop distance while the wheels were driving forward (the pins before this step's
        # decision): time until the applied pins stop driving forward; 0 when this very step braked.
        if self._has_obstacles and "obstacle" not in self._open and self._was_forward:
            d = w.true_distance_m()
            if d is not None and d < self.stop_distance_m:
                self._start("obstacle", t)
        self._was_forward = forward
        # Rain: brushes off and heading for (or at) the shelter.
        if w.is_raining and not self._was_raining:
            # Rain sends the robot to the shelter from anywhere (it outranks night and parking), so it asks for a
            # reaction unless the robot already stands in the shelter or a person drives or paused it.
            sx, sy = w.site.shelter
            in_shelter = (w.x - sx) ** 2 + (w.y - sy) ** 2 <= w.site.shelter_radius_m**2
            self._start("rain", t, required=decision.mode is Mode.AUTO and not in_shelter)
        self._was_raining = w.is_raining
        full = w.tray >= self.tray_full_kg
        if full and not self._tray_was_full:
            self._start("tray_full", t, required=self._busy(applied))
        self._tray_was_full = full
        self._prev_applied = applied
        if self._finishing:
            self._finish(t, decision, applied)
        if not self._open:
            return
        for kind, ev in list(self._open.items()):
            if kind == "obstacle":
                done = not forward
            elif kind == "rain":
                done = not applied.brushing and (
                    decision.goal is Goal.SHELTER or decision.state in (State.SHELTERING, State.SHELTERED)
                )
            else:  # tray_full, link_cut: everything stopped
                done = not applied.moving and not applied.brushing
            if done:
                ev.reaction_ms = (t - ev.at) * 1000.0
                ev.closed = True
                del self._open[kind]
                self._finishing[kind] = ev
                self._finish(t, decision, applied)
            elif t - ev.at > REACTION_GIVE_UP_S:
                ev.closed = True
                del self._open[kind]

    def _finish(self, t: float, decision: Decision, applied: MotorOutputs) -> None:
        """Reactions being carried out: for an obstacle, done when the robot truly no longer rolls forward (backing
        off or turning in place is the escape, not a failure to stop); for a full tray or a cut link, when the
        wheels truly stand still and the brushes are off; in rain, when the robot is truly in the shelter."""
        w = self.world
        still = abs(w.vl) < STILL_M_S and abs(w.vr) < STILL_M_S
        for kind, ev in list(self._finishing.items()):
            if kind == "obstacle":
                done = w.speed_m_s < STILL_M_S
            elif kind == "rain":
                sx, sy = w.site.shelter
                done = (w.x - sx) ** 2 + (w.y - sy) ** 2 <= w.site.shelter_radius_m**2
            else:
                done = still and not applied.brushing
            if done:
                ev.done_ms = (t - ev.at) * 1000.0
                del self._finishing[kind]
            elif t - ev.at > DONE_GIVE_UP_S:
                del self._finishing[kind]

    def _busy(self, applied: MotorOutputs | None) -> bool:
        """A full tray and a cut link call for a reaction only when the robot was moving or brushing the step
        before or the step it began (unknown before the first step: assumed busy)."""
        prev = self._prev_applied
        return (
            prev is None
            or prev.moving
            or prev.brushing
            or (applied is not None and (applied.moving or applied.brushing))
        )

    def _start(self, kind: str, t: float, *, required: bool = True) -> None:
        ev = SafetyEvent(kind, t, required=required)
        self.events.append(ev)
        if ev.required:
            self._open[kind] = ev

    def link_cut(self, t: float) -> None:
        """The run loop cut the Arduino link: the Arduino's watchdog must brake (if anything runs)."""
        if "link_cut" not in self._open:
            self._start("link_cut", t, required=self._busy(None))

    def fault(self, t: float, kind: str, note: str = "") -> None:
        """Note an injected fault."""
        self.faults.append({"at_s": round(t, 3), "kind": kind, "note": note})

    def _sample(self, t: float) -> None:
        w = self.world
        tr = self.trace
        tr.t.append(t)
        tr.x.append(w.x)
        tr.y.append(w.y)
        fix = w.last_fix
        if fix is not None:
            gx, gy = w.site.to_local(fix.lat, fix.lon)
        else:
            gx = gy = math.nan
        tr.gps_x.append(gx)
        tr.gps_y.append(gy)
        tr.soc.append(w.soc)
        tr.panel_w.append(w.panel_available_w)
        tr.load_w.append(w.load_w * w.supply_ratio)
        tr.tray_kg.append(w.tray)
        n = self.pass_count() if self.pass_count is not None else None
        if n is not None and n != self._pass_seen:
            # A new supervisor after a boot counts from 0 again while its route goes on: only a rise is a pass.
            if n > self._pass_seen:
                self._pass += 1
            self._pass_seen = n
        tr.passes.append(self._pass)

    def finish(self, t: float) -> None:
        """Close the last state segment (and any open arrival) at the end of the run."""
        self.nav.finish()
        if self._state is not None:
            self.trace.segments.append((self._state_since, t, self._state))
            self._state = None

    # ---- outputs
    def report(self, wall_s: float) -> dict[str, Any]:
        """The report.json content: exactly REPORT_KEYS."""
        truth = self.world.truth()
        return {
            "simulated_s": round(truth.t, 3),
            "wall_s": round(wall_s, 3),
            "area_cleaned_m2": round(truth.area_cleaned_m2, 2),
            "litter_collected_kg": round(truth.litter_collected_kg, 4),
            "energy_wh": {"panel": round(truth.panel_wh, 3), "battery": round(truth.battery_out_wh, 3)},
            "time_in_state_s": {k: round(v, 3) for k, v in sorted(self.time_in_state.items())},
            "alerts": self.alerts,
            "safety_events": [e.to_json() for e in self.events],
            "route_completion": round(truth.route_completion, 4),
            "geofence_exits": truth.geofence_exits,
            "shelter_reached": truth.storms_sheltered,
            "storms": truth.storms,
            "brownout_s": round(truth.brownout_s, 3),
            "relay_toggles": truth.relay_toggles,
            "collisions": truth.collisions,
            "state_changes": self.state_changes,
            "min_battery_soc": round(truth.min_soc, 4),
            "false_alerts": len(self.false_alerts),
            **self.nav.report(),
            "pi_resets": truth.pi_power_losses,
        }

    def write(self, out_dir: Path, wall_s: float, *, plots: bool = True) -> list[Path]:
        """Write report.json (and the PNG plots) into out_dir; returns the files written."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "report.json"
        path.write_text(json.dumps(self.report(wall_s), indent=2) + "\n", encoding="utf-8")
        written = [path]
        if plots:
            written += plot(self, out_dir)
        return written


class NavRecorder:
    """Fence and arrivals on true position: time outside and depth, geofence alerts that were false (the robot
    was truly inside), and how far from the shelter or parking point the robot really stood once arrived."""

    def __init__(self, world: World) -> None:
        self.world = world
        # Set by the run: navigation's newest answer (its `arrived` flag says the robot thinks it is there).
        self.guidance: Callable[[], Guidance | None] | None = None
        self.alerts_total = 0
        self.alerts_false = 0
        self.arrivals: dict[str, list[float]] = {"shelter": [], "park": []}
        self._open: tuple[str, float] | None = None  # (target, worst true distance so far)

    def step(self, t: float, decision: Decision, applied: MotorOutputs) -> None:
        """Note geofence alerts and the arrival the robot is in, if any."""
        w = self.world
        for a in decision.alerts:
            if a.kind == "geofence":
                self.alerts_total += 1
                if clearance((w.x, w.y), w.site.fence) > 0.0:
                    self.alerts_false += 1
        goal = decision.goal
        at = "shelter" if goal is Goal.SHELTER else "park" if goal is Goal.PARK else None
        # Navigation's answer is asked only on the way to the shelter or park (it only reads it).
        g = self.guidance() if at is not None and self.guidance is not None else None
        if at is None or g is None or not g.arrived or applied.moving:
            self._close()
            return
        target = w.site.shelter if at == "shelter" else w.site.park
        d = math.hypot(w.x - target[0], w.y - target[1])
        if self._open is not None and self._open[0] != at:
            self._close()
        if self._open is None or d > self._open[1]:
            self._open = (at, d)

    def _close(self) -> None:
        if self._open is not None:
            self.arrivals[self._open[0]].append(self._open[1])
            self._open = None

    def finish(self) -> None:
        """Close the arrival open at the end of the run."""
        self._close()

    def report(self) -> dict[str, Any]:
        """The NAV_REPORT_KEYS entries."""
        truth = self.world.truth()
        site = self.world.site
        out: dict[str, Any] = {}
        for name, radius in (("shelter", site.shelter_radius_m), ("park", site.park_radius_m)):
            ds = self.arrivals[name]
            inside = sum(1 for d in ds if d <= radius)
            out[name] = {
                "count": len(ds),
                "inside": inside,
                "radius_m": radius,
                "worst_m": round(max(ds), 3) if ds else None,
            }
        return {
            "geofence_exit_s": round(truth.geofence_exit_s, 3),
            "geofence_max_depth_m": round(truth.geofence_max_depth_m, 3),
            "geofence_alerts": {"total": self.alerts_total, "false": self.alerts_false},
            "arrivals": out,
        }


def figure(report: dict[str, Any], key: str) -> Any:
    """The report's figure at a dotted key ("time_in_state_s.sheltered"); KeyError when there is none."""
    value: Any = report
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
}


def unmet(expectations: tuple[Expectation, ...], report: dict[str, Any], source: str = "") -> list[str]:
    """One line per expectation the report does not meet: where it is written, what it says, what happened."""
    out = []
    for e in expectations:
        where = f"{source} line {e.line}: " if source and e.line else ""
        try:
            got = figure(report, e.key)
            want = figure(report, e.operand) if isinstance(e.operand, str) else e.operand
        except KeyError as err:
            out.append(f"{where}expect {e.describe()}: the report has no figure {err.args[0]!r}")
            continue
        if isinstance(got, dict) or isinstance(want, dict) or got is None or want is None:
            out.append(f"{where}expect {e.describe()}: {e.key} = {got!r} is not a single number")
            continue
        if not _OPS[e.op](float(got), float(want)):
            also = f" ({e.operand} = {want:g})" if isinstance(e.operand, str) else ""
            out.append(f"{where}expect {e.describe()}: got {e.key} = {got:g}{also}")
    return out


def _hours(rec: Recorder, ts: list[float]) -> list[float]:
    st = rec.world.scenario.start
    h0 = st.hour + st.minute / 60.0 + st.second / 3600.0
    return [h0 + t / 3600.0 for t in ts]


def _hm(hours: float) -> str:
    m = round(hours * 60.0)
    return f"{m // 60 % 24:02d}:{m % 60:02d}"


MIN_PASS_M = 10.0  # a pass that moved less than this (parked, sheltered) is not worth drawing


def _last_pass(tr: Trace) -> tuple[int, int] | None:
    """(first, end) sample indices of the last finished pass the robot really drove, or None for a one-pass
    day (or one with no finished pass of 10 m or more)."""
    if not tr.passes or tr.passes[-1] == 0:
        return None
    end = len(tr.passes)
    last = tr.passes[-1]
    while end > 0 and tr.passes[end - 1] == last:
        end -= 1  # the pass under way at the end is unfinished (or is the parking after the route)
    while end > 0:
        k = tr.passes[end - 1]
        lo = end - 1
        while lo > 0 and tr.passes[lo - 1] == k:
            lo -= 1
        moved = sum(math.hypot(tr.x[i + 1] - tr.x[i], tr.y[i + 1] - tr.y[i]) for i in range(lo, end - 1))
        if moved >= MIN_PASS_M:
            return lo, end
        end = lo
    return None


def plot(rec: Recorder, out_dir: Path) -> list[Path]:
    """The track over the site map, battery charge and panel power over the day, and the state timeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = rec.world
    site = w.site
    tr = rec.trace
    name = w.scenario.name
    out: list[Path] = []

    # 1. Track over the site map.
    fig, ax = plt.subplots(figsize=(9, 6))
    fx = [p[0] for p in (*site.fence, site.fence[0])]
    fy = [p[1] for p in (*site.fence, site.fence[0])]
    ax.plot(fx, fy, color="black", lw=1.5, label="fence")
    ax.plot(
        [p[0] for p in site.route.points],
        [p[1] for p in site.route.points],
        "--",
        color="tab:blue",
        lw=1,
        label="planned route",
    )
    shown = _last_pass(tr)
    title = f"{name}: track over {site.name}"
    if shown is None:
        ax.plot(tr.gps_x, tr.gps_y, ".", color="tab:orange", ms=1.5, alpha=0.4, label="GPS fixes")
        ax.plot(tr.x, tr.y, color="tab:green", lw=1.2, label="true track")
    else:
        # A long day is many passes over the same lanes: one line over another is a green smear. The whole
        # day as a heat map of where the robot was, the last full pass drawn over it.
        from matplotlib.colors import LogNorm

        lo, hi = shown
        xs, ys = tr.x, tr.y
        span_x = max(xs) - min(xs) + 1.0
        span_y = max(ys) - min(ys) + 1.0
        bins = (max(1, round(span_x)), max(1, round(span_y)))  # 1 m cells
        # vmin below one sample: a cell passed once is a visible grey, not white.
        norm = LogNorm(vmin=0.3 * rec.sample_every_s)
        weights = [rec.sample_every_s] * len(xs)
        *_, image = ax.hist2d(xs, ys, bins=bins, weights=weights, cmap="Greys", norm=norm, cmin=0.5)
        fig.colorbar(image, ax=ax, shrink=0.7, label="seconds spent in each 1 m cell (whole run)")
        t0, t1 = _hours(rec, [tr.t[lo], tr.t[hi - 1]])
        label = f"pass {tr.passes[lo] + 1} of {tr.passes[-1] + 1}, {_hm(t0)}-{_hm(t1)}: true track"
        ax.plot(
            tr.gps_x[lo:hi], tr.gps_y[lo:hi], ".", color="tab:orange", ms=2, alpha=0.5, label="its GPS fixes"
        )
        ax.plot(xs[lo:hi], ys[lo:hi], color="tab:green", lw=1.4, label=label)
        title += f" ({tr.passes[-1] + 1} passes; the last full pass over the day's heat map)"
    for ox, oy, r, moving in w.obstacle_marks():
        circle = plt.Circle((ox, oy), r, color="tab:red", alpha=0.15 if moving else 0.4)
        ax.add_patch(circle)
    ax.plot(*site.shelter, marker="*", ms=16, color="tab:purple", ls="", label="shelter")
    ax.plot(*site.park, marker="s", ms=9, color="tab:gray", ls="", label="park")
    ax.set_aspect("equal")
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out.append(out_dir / "track.png")
    fig.savefig(out[-1], dpi=110)
    plt.close(fig)

    # 2. Battery charge and panel power over the day.
    hours = _hours(rec, tr.t)
    fig, ax1 = plt.subplots(figsize=(10, 4.5))
    ax1.plot(hours, [s * 100.0 for s in tr.soc], color="tab:green", label="battery SoC (%)")
    ax1.set_ylim(0, 105)
    ax1.set_ylabel("battery state of charge (%)")
    ax1.set_xlabel("local time (h)")
    ax2 = ax1.twinx()
    ax2.plot(hours, tr.panel_w, color="tab:orange", lw=0.8, label="panel available (W)")
    ax2.plot(hours, tr.load_w, color="tab:blue", lw=0.6, alpha=0.6, label="load (W)")
    ax2.set_ylabel("power (W)")
    for p in w.scenario.weather.rain:
        ax1.axvspan(*_hours(rec, [p.start_s, p.end_s]), color="tab:cyan", alpha=0.2)
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax1.set_title(f"{name}: battery and panel over the day (rain shaded)")
    fig.tight_layout()
    out.append(out_dir / "power.png")
    fig.savefig(out[-1], dpi=110)
    plt.close(fig)

    # 3. State timeline.
    states = [s for s in (*(s.value for s in State), OFF) if s in rec.time_in_state]
    fig, ax = plt.subplots(figsize=(10, 0.45 * max(3, len(states)) + 1.2))
    colours = plt.get_cmap("tab20")
    for row, st in enumerate(states):
        spans = [(a, b - a) for a, b, s in rec.trace.segments if s == st]
        hs = [(_hours(rec, [a])[0], d / 3600.0) for a, d in spans]
        ax.broken_barh(hs, (row - 0.4, 0.8), color=colours(row % 20))
    ax.set_yticks(range(len(states)), states)
    ax.set_xlabel("local time (h)")
    ax.set_title(f"{name}: state timeline")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out.append(out_dir / "states.png")
    fig.savefig(out[-1], dpi=110)
    plt.close(fig)
    return out
