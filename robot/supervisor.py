"""The supervisor: gathers the newest readings, runs navigation and the decision core, applies the decision.

It has no clock and no loop of its own: the asyncio runner (real time) or the simulator (virtual time) calls
`step(now)`; both therefore run exactly the same decisions. Every path out of it ends with the motors braked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core import CoreConfig, CoreState, step, sun
from robot.core.boot import BootPlan, StopReason, boot_mode
from robot.core.types import (
    ALL_BRAKED,
    Alert,
    Command,
    CommandKind,
    Decision,
    Goal,
    Guidance,
    Mode,
    PowerSource,
    Severity,
    Snapshot,
    State,
)
from robot.errors import StoreError
from robot.hardware.interfaces import GpsFix, MotorLink, PowerReading
from robot.navigation import NavConfig, NavState, Site, guide, wheel_fractions
from robot.parts import POLLED
from robot.power_down import PowerDownPlan
from robot.store import Store
from robot.telemetry import Telemetry, TelemetryBus

log = logging.getLogger(__name__)

PROGRESS_FILE = "route_progress.json"
PERSIST_EVERY_S = 5.0
SUN_EVERY_S = 10.0  # the sun moves 0.04 degree in 10 s
# Idle stepping (docs/behaviour.md, "Idle stepping"): the states in which the robot stands braked waiting for
# something slow. Braked by the table itself (its wheels "off")...
IDLE_STATES = frozenset({State.ESTOP, State.PAUSED, State.CRITICAL_BATTERY, State.SHELTERED, State.TRAY_FULL})
# ... or guided to the park, idle once navigation says it has arrived there (or stands there averaging fixes).
PARKED_STATES = frozenset({State.LOW_BATTERY, State.NIGHT, State.WAITING_FOR_SUN, State.ROUTE_DONE})
TRAY_WAKE_KG = 0.1  # an idle robot steps at once when the tray's weight moves this much (litter in or out)
POWER_DOWN_DETAIL = {
    "critical_battery": "planned power-down at critical battery",
    "night": "planned power-down for the night",
}


@dataclass(slots=True)
class Reading:
    """The newest value of one part and when it was taken; `errors` counts failed reads."""

    value: Any = None
    at: float | None = None
    errors: int = 0
    last_error: str = ""


@dataclass(slots=True)
class Readings:
    """Newest readings of every polled part (robot.parts.POLLED, by the part's name), read by step()."""

    gps: Reading = field(default_factory=Reading)
    scale: Reading = field(default_factory=Reading)
    rain: Reading = field(default_factory=Reading)
    distance: Reading = field(default_factory=Reading)
    side: Reading = field(default_factory=Reading)  # (left m, right m) of the side sensors, when fitted
    power: Reading = field(default_factory=Reading)
    camera_obstacle: bool = False


def reading_age(part: Any) -> Callable[[], float] | None:
    """The part's own clock on its newest value (`reading_age_s()`: how long ago the value it last returned
    was taken), or None when the part reads on demand and its value is as old as the poll."""
    age = getattr(part, "reading_age_s", None)
    return age if callable(age) else None


class Supervisor:
    """Feeds the core and applies its decisions to the link, the relay, the outbox and the telemetry."""

    def __init__(
        self,
        settings: Any,
        parts: Any,
        link: MotorLink,
        *,
        site: Site,
        outbox: AlertOutbox,
        commands: CommandQueue,
        telemetry: TelemetryBus,
        state_dir: Path | None = None,
        nav_config: NavConfig | None = None,
        wall: Callable[[], float] = time.time,
        store: Store | None = None,
        can_sleep: bool = False,
        telemetry_every_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.parts = parts
        self.link = link
        self.site = site
        self.outbox = outbox
        self.commands = commands
        self.telemetry = telemetry
        self.state_dir = state_dir
        self.wall = wall
        self.cfg = CoreConfig.from_settings(settings)
        gps = getattr(settings, "gps", None)
        if nav_config is None:
            nav_config = (
                NavConfig.for_receiver(gps.receiver, gps.uere_m, gps.rtk_required)
                if gps is not None
                else NavConfig()
            )
            body = settings.geometry.body()
            nav_config = dataclasses.replace(
                nav_config,
                max_speed_mps=body.max_wheel_speed_mps,
                wheel_base_m=body.wheel_base_m,
                max_fix_age_s=settings.control.gps_stale_s,
                wall_stop_m=settings.obstacle.wall_stop_m,
            )
            nav_config = dataclasses.replace(
                nav_config,
                body=dataclasses.replace(
                    nav_config.body, side_bearing_deg=settings.hardware.side_bearing_deg
                ),
            )
        self.nav_config = nav_config
        self.gps_stale_s = settings.control.gps_stale_s
        self.route_passes = settings.control.route_passes
        self.passes = 0
        self.store = store
        self.boot_plan: BootPlan | None = None
        self._estop_seen = 0
        if store is None:
            self.core = CoreState(mode=Mode(settings.control.start_mode))
        else:
            self.core = self._boot(store)
        self.nav = self._load_progress()
        self.readings = Readings()
        self._polled = tuple(getattr(self.readings, spec.name) for spec in POLLED)
        self.last: Decision | None = None
        self.guidance: Guidance | None = None
        self.steps = 0
        self._persisted_at = -math.inf
        self._relay_source: PowerSource | None = None
        self._last_fix: GpsFix | None = None
        self._recent: tuple[Alert, ...] | None = None
        self._recent_count = -1
        self._counters_key: tuple[int, ...] = ()
        self._counters_dict: dict[str, int] = {}
        self._readers: list[tuple[str, Callable[[], Any], Callable[[], float] | None, Reading]] | None = None
        # 0: publish every step (a dashboard shows the newest readings). The simulator, whose telemetry nobody
        # watches while it runs, publishes once per simulated second and whenever the decision changes.
        self.telemetry_every_s = telemetry_every_s
        self._published_at = -math.inf
        self._published_key: tuple[Any, ...] = ()
        self._closed = False
        # Power: the Pi may power down for the night only when a wake alarm can bring it back.
        self.can_sleep = can_sleep and settings.power.night_sleep
        self.power_down_plan: PowerDownPlan | None = None
        self._utc_anchor: tuple[datetime, float] | None = None  # a GPS time and the monotonic time it came
        self._sun: tuple[float, float | None] = (-math.inf, None)
        # Idle stepping: 0 = off. While idle, the next full step is due at _idle_until (None: not idle), and
        # _idle_seen is what the last full step saw of every event that wakes one at once (_woken).
        self.idle_step_s = float(getattr(settings.control, "idle_step_s", 0.0))
        self._idle_until: float | None = None
        self._idle_seen: tuple[Any, ...] = ()
        self._idle_decision: Decision | None = None
        self.idle_ticks = 0

    # ---- readings -------------------------------------------------------------------------------------------
    def ingest(self, name: str, value: Any, now: float) -> None:
        """Store a reading taken at `now`: the driver's own time of it when it keeps one (see reading_age),
        else the time it was polled."""
        r: Reading = getattr(self.readings, name)
        if name == "gps":
            # A fix is fresh only when the receiver gave a new one; the same object again is not news.
            if value is not None and value is not self._last_fix:
                r.value, r.at = value, now
                if value.time is not None:
                    self._utc_anchor = (value.time, now)
            self._last_fix = value
            return
        r.value, r.at = value, now

    def ingest_error(self, name: str, err: BaseException) -> None:
        """Count a failed read; the old reading stays and goes stale, which the core treats as unsafe."""
        r: Reading = getattr(self.readings, name)
        r.errors += 1
        r.last_error = str(err) or type(err).__name__

    def poll_parts(self, now: float) -> None:
        """Read every part synchronously (the simulator's way; the runner polls each part in its own thread)."""
        if self._readers is None:
            self._readers = [
                (spec.name, getattr(part, spec.read), reading_age(part), getattr(self.readings, spec.name))
                for spec in POLLED
                if spec.read is not None and (part := getattr(self.parts, spec.name, None)) is not None
            ]
        for name, read, age, r in self._readers:
            try:
                value = read()
                at = now - age() if age is not None else now
                if name == "gps":
                    self.ingest(name, value, at)
                else:  # what ingest() does for every other part, without looking the reading up by name
                    r.value, r.at = value, at
            except Exception as err:  # a failing part must go stale, not stop the robot's brain
                self.ingest_error(name, err)

    # ---- boot and persistence (the store) -------------------------------------------------------------------
    def _boot(self, store: Store) -> CoreState:
        """The boot rule applied to what the store remembers; this run is marked as running (a crash until
        told otherwise)."""
        saved = store.saved()
        plan = boot_mode(saved, self.settings)
        self.boot_plan = plan
        self._estop_seen = store.estop_generation
        try:
            if plan.estop and not store.estop_latched:
                self._estop_seen = store.latch_estop("boot (saved state unreadable)")
            store.save_mode(plan.mode, "boot")
            store.mark_running(plan.reason)
        except StoreError as err:
            log.error("boot: %s", err)
        # Woken after a planned power-down at critical battery: its alert went out before the halt, so the core
        # starts knowing the battery is critical rather than raising (and texting) the same event again.
        critical = (
            saved is not None
            and saved.stop_reason is StopReason.POWER_DOWN
            and saved.state in (State.CRITICAL_BATTERY, State.CRITICAL_PARKING)
        )
        return CoreState(mode=plan.mode, estop=plan.estop, critical=critical, low_battery=critical)

    def _boot_alert(self, now: float) -> Alert:
        plan = self.boot_plan
        assert plan is not None
        resumed = plan.mode is Mode(self.settings.control.start_mode) and not plan.estop
        severity = Severity.WARNING if plan.estop or not resumed else Severity.INFO
        if self.store is not None and self.store.recovered:
            severity = Severity.CRITICAL
        return Alert("boot", severity, f"started: {plan.reason}", now)

    def _latched_commands(self, commands: tuple[Command, ...], now: float) -> tuple[Command, ...]:
        """An e-stop latched in the store that this loop has not applied yet joins this step's commands, so a
        latch stops the robot even when its queued command was lost (a full queue)."""
        store = self.store
        if store is None:
            return commands
        gen = store.estop_generation
        if gen == self._estop_seen:
            return commands
        self._estop_seen = gen
        if not store.estop_latched:
            return commands
        return (*commands, Command(CommandKind.ESTOP, at=now, source=store.estop_source or "store"))

    def _persist(self, before: CoreState, commands: tuple[Command, ...], decision: Decision) -> None:
        """Record e-stop, mode and state changes; a failing store is logged, never stops the loop."""
        store = self.store
        if store is None:
            return
        core = self.core
        try:
            if core.estop and not before.estop and not store.estop_latched:
                src = next((c.source for c in commands if c.kind is CommandKind.ESTOP), "supervisor")
                self._estop_seen = store.latch_estop(src)
            elif before.estop and not core.estop:
                src = next((c.source for c in reversed(commands) if c.kind is CommandKind.RESET), "reset")
                if not store.clear_estop(self._estop_seen, src):
                    log.warning("reset: a newer e-stop was latched meanwhile; it applies next step")
            if core.mode is not before.mode:
                src = next(
                    (c.source for c in reversed(commands) if c.kind is CommandKind.SET_MODE), "supervisor"
                )
                store.save_mode(core.mode, src)
            if self.last is None or decision.state is not self.last.state:
                store.save_state(decision.state)
        except StoreError as err:
            log.error("%s", err)

    # ---- the step -------------------------------------------------------------------------------------------
    def step(self, now: float) -> Decision:
        """One decision: commands, navigation, core, then apply. Raises only on a bug (the runner brakes)."""
        commands = self._latched_commands(self.commands.drain(), now)
        rd = self.readings
        fix = rd.gps.value if rd.gps.at is not None and now - rd.gps.at <= self.gps_stale_s else None
        goal = self.last.goal if self.last is not None else Goal.HOLD
        restart = bool(commands) and any(
            c.kind is CommandKind.RESET or (c.kind is CommandKind.SET_MODE and c.mode is Mode.AUTO)
            for c in commands
        )
        if restart and self.core.state is State.ROUTE_DONE:
            self.nav = self.nav.restart_route()
            self.passes = 0
        # Odometry must know what the wheels really did (the core overrides navigation for obstacles).
        applied = wheel_fractions(self.last.motors) if self.last is not None else None
        # A fresh forward reading feeds the obstacles navigation remembers (they outlast the sensor's cone).
        ahead = rd.distance.value
        if rd.distance.at is None or now - rd.distance.at > self.settings.obstacle.stale_s:
            ahead = None
        sides = rd.side.value
        if rd.side.at is None or now - rd.side.at > self.settings.obstacle.stale_s:
            sides = None
        self.nav, guidance = guide(
            self.nav, fix, goal, now, self.site, self.nav_config, applied, ahead, sides
        )
        if (
            guidance.route_done
            and goal is Goal.ROUTE
            and (self.route_passes == 0 or self.passes + 1 < self.route_passes)
        ):
            # Another pass: each one sweeps litter the last one's GPS error left behind.
            self.passes += 1
            self.nav = self.nav.restart_route()
            guidance = replace(guidance, route_done=False)
            log.info("route pass %d done; starting the next", self.passes)
        self.guidance = guidance
        power: PowerReading | None = rd.power.value
        link_ok = self.link.healthy
        distance = rd.distance.value
        if distance is not None and guidance.path_clear_m is not None:
            # Something seen before and out of the cone now is still on the path the wheels are about to drive.
            distance = min(distance, guidance.path_clear_m)
        sides = rd.side.value
        snap = Snapshot(
            distance_m=distance,
            distance_t=rd.distance.at,
            side_left_m=sides[0] if sides is not None else None,
            side_right_m=sides[1] if sides is not None else None,
            side_t=rd.side.at,
            camera_obstacle=rd.camera_obstacle,
            tray_kg=rd.scale.value,
            tray_t=rd.scale.at,
            raining=rd.rain.value,
            rain_t=rd.rain.at,
            panel_w=power.panel_w if power is not None else None,
            battery_v=power.battery_v if power is not None else None,
            battery_soc=power.soc if power is not None else None,
            battery_a=power.battery_a if power is not None else None,
            power_t=rd.power.at,
            sun_elevation_deg=self._sun_elevation(now),
            can_sleep=self.can_sleep,
            link_ok=link_ok,
            guidance=guidance,
            guidance_t=now,
            commands=commands,
        )
        before = self.core
        self.core, decision = step(self.core, snap, now, self.cfg)
        if decision.power_down and self.power_down_plan is None:
            self.power_down_plan = self._plan_power_down(decision.power_down, now)
        # If the decided goal changed, navigation answers for it from the next step on (one step, 50 ms, later).
        self.link.send(decision.motors)
        self._persist(before, commands, decision)  # after the brake went out: a slow disk never delays it
        self._apply_relay(decision.power)
        alerts = decision.alerts
        if self.boot_plan is not None and self.steps == 0:
            alerts = (self._boot_alert(now), *alerts)
        for a in alerts:
            self.outbox.add(a)
            log.log(logging.WARNING if a.severity != "info" else logging.INFO, "%s: %s", a.kind, a.message)
        self.last = decision
        self.steps += 1
        self._publish(decision, now, fix, link_ok, bool(alerts))
        if now - self._persisted_at >= PERSIST_EVERY_S:
            self._persist_progress(now)
        # A microsecond early: ticks at float times k * dt must find the next full step due on the tick it is.
        idle = self._may_idle(decision, link_ok)
        self._idle_until = now + self.idle_step_s - 1e-6 if idle else None
        if self._idle_until is not None:
            self._idle_seen = self._wake_key(now, link_ok)
            # What the idle ticks return: this decision, its alerts already raised (once, by this step).
            self._idle_decision = replace(decision, alerts=()) if decision.alerts else decision
        return decision

    # ---- idle stepping ----------------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """True while the last full step left the robot idle: braked, waiting for something slow."""
        return self._idle_until is not None

    def tick(self, now: float) -> Decision:
        """One control tick: a full step(), or, while idle, the last braked frame again and the telemetry.

        Idle (docs/behaviour.md, "Idle stepping"): the last decision holds every motor actively braked in a
        state that waits for something slow (IDLE_STATES, or PARKED_STATES once arrived), with no short timer
        of the core running. A full step then comes every control.idle_step_s, and at once on any event that
        may change the decision (_woken); a decision that is not idle steps every tick again from the next one.
        """
        until = self._idle_until
        if until is None or now >= until or self._woken(now):
            return self.step(now)
        # Exactly what the last decision sent (ALL_BRAKED, _may_idle): the Arduino's watchdog and the link's
        # dead-link check see a frame every tick, as before.
        self.link.send(ALL_BRAKED)
        self.idle_ticks += 1
        decision = self._idle_decision
        assert decision is not None  # idle only after a full step
        # The newest readings reach the dashboard as often as before (telemetry_every_s; _publish's own test of
        # it first, without the snapshot's key: the decision and the link's health are the full step's).
        every = self.telemetry_every_s
        if every > 0.0 and now - self._published_at < every and self.outbox.count == self._recent_count:
            return decision
        rd = self.readings
        fix = rd.gps.value if rd.gps.at is not None and now - rd.gps.at <= self.gps_stale_s else None
        self._publish(decision, now, fix, self._idle_seen[0], False)
        return decision

    def _may_idle(self, d: Decision, link_ok: bool) -> bool:
        """Whether this decision lets the ticks until the next full step be idle ones."""
        if self.idle_step_s <= 0.0 or not link_ok or d.power_down or d.motors != ALL_BRAKED:
            return False
        state = d.state
        if state not in IDLE_STATES:
            if state not in PARKED_STATES:
                return False
            g = self.guidance
            if g is None or self.nav.goal != d.goal.value:
                return False
            # At the goal and standing while navigation averages fixes before it says "arrived" (minutes at
            # every parking) is idle too: every new fix steps at once (_woken), so navigation sees each one.
            if not g.arrived and (not g.gps_ok or g.left != 0.0 or g.right != 0.0):
                return False
        core = self.core
        # The core's short timers (rain confirmed after rain.confirm_s, the tray's tray.filter_s): their end
        # moves the robot (to the shelter, back to the route), so they run at the control rate. Every other
        # timer an idle state waits on is minutes long (rain.dry_s, power dwells, stuck retries are not idle).
        if core.wet_since is not None and not core.rain:
            return False
        if core.tray_full:
            return core.light_tray_since is None
        return core.heavy_since is None

    def _wake_key(self, now: float, link_ok: bool) -> tuple[Any, ...]:
        rd = self.readings
        return (
            link_ok,
            rd.rain.value,
            rd.scale.value,
            self._tray_class(rd.scale.value),
            rd.gps.value,
            self._read_errors(),
        )

    def _read_errors(self) -> int:
        """Failed reads of every polled part so far (each count only grows: a new failure changes the sum)."""
        total = 0
        for r in self._polled:
            total += r.errors
        return total

    def _tray_class(self, kg: Any) -> int:
        """Which side of the core's tray thresholds a weight is on (-1 unknown, 0 empty, 1 between, 2 full)."""
        if kg is None or kg != kg:
            return -1
        cfg = self.cfg
        return 2 if kg >= cfg.tray_full_kg else 0 if kg < cfg.tray_empty_kg else 1

    def _woken(self, now: float) -> bool:
        """Whether something happened since the last full step that an idle robot must decide on at once."""
        if self.commands.pending:  # e-stop, reset, a mode, tray emptied: from any path
            return True
        store = self.store
        if store is not None and store.estop_generation != self._estop_seen:  # a latch its command missed
            return True
        link_ok, rain, kg, tray_class, fix, errors = self._idle_seen
        rd = self.readings
        if rd.gps.value is not fix:
            # A new epoch (ingest keeps the old object until one comes): navigation folds each fix in on the
            # tick it arrives, as it did before idle stepping, so its position estimate is the same. 1 Hz for
            # the usual receiver, which the full step a second costs anyway.
            return True
        if rd.rain.value != rain or self._read_errors() != errors or self.link.healthy != link_ok:
            return True
        scale = rd.scale.value
        if scale is not kg and (
            self._tray_class(scale) != tray_class
            or scale is None
            or kg is None
            or abs(scale - kg) >= TRAY_WAKE_KG
        ):
            return True
        # A part that went quiet up to the core's stale limit is a fault to report at once (a failing one is
        # in the error count above).
        stale = self.cfg.sensor_stale_s
        for r in (rd.power, rd.scale, rd.rain):
            if r.at is None or now - r.at > stale:  # the core's own test of age (decide._age)
                return True
        power: PowerReading | None = rd.power.value
        if power is not None:
            core, cfg = self.core, self.cfg
            # The two power events that cannot wait for the next full step: the panel falling short of the load
            # while the relay is on it (the Pi's supply sags), and the battery turning critical.
            if core.power is PowerSource.PANEL and power.panel_w < core.load_w:
                return True
            if not core.critical and (power.soc <= cfg.critical_soc or power.battery_v <= cfg.critical_v):
                return True
        return False

    # ---- time and the sun, from GPS ---------------------------------------------------------------------------
    def utc_now(self, now: float) -> datetime | None:
        """UTC from the last GPS time carried forward on the monotonic clock; None before the first timed fix."""
        if self._utc_anchor is None:
            return None
        t, at = self._utc_anchor
        return t + timedelta(seconds=now - at)

    def _where(self) -> tuple[float, float]:
        fix = self._last_fix
        return (fix.lat, fix.lon) if fix is not None else self.site.origin

    def _sun_elevation(self, now: float) -> float | None:
        at, elev = self._sun
        if now - at >= SUN_EVERY_S or now < at:
            utc = self.utc_now(now)
            elev = None if utc is None else sun.elevation_deg(utc, *self._where())
            self._sun = (now, elev)
        return elev

    def _plan_power_down(self, reason: str, now: float) -> PowerDownPlan:
        """Why, and when the wake alarm should bring the Pi back: at dawn (the sun at power.wake_sun_deg), or,
        after a critical power-down by day, power.wake_retry_s later if the sun is still up then."""
        p = self.settings.power
        utc = self.utc_now(now)
        wake: datetime | None = None
        if utc is not None:
            lat, lon = self._where()
            retry = utc + timedelta(seconds=p.wake_retry_s)
            if reason == "critical_battery" and sun.elevation_deg(retry, lat, lon) >= p.wake_sun_deg:
                wake = retry
            else:
                wake = sun.next_crossing(utc, lat, lon, p.wake_sun_deg, rising=True)
        detail = POWER_DOWN_DETAIL.get(reason, f"planned power-down ({reason})")
        when = (
            f"; wake alarm {wake.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            if wake is not None
            else "; no wake alarm"
        )
        log.warning("%s%s", detail, when)
        return PowerDownPlan(reason, detail + when, wake)

    def refuse_power_down(self) -> None:
        """The wake alarm could not be set: stay up (no sleep for the rest of this run)."""
        if self.power_down_plan is not None and self.power_down_plan.needs_wake:
            self.can_sleep = False
        self.power_down_plan = None

    def _apply_relay(self, source: PowerSource) -> None:
        relay = getattr(self.parts, "relay", None)
        if relay is None or source is self._relay_source:
            return
        try:
            relay.select(source)
            self._relay_source = source
        except Exception as err:  # retried next step; the core's dwell is unaffected
            log.error("power relay: could not select %s: %s", source.value, err)

    def _publish(self, d: Decision, now: float, fix: GpsFix | None, link_ok: bool, alerted: bool) -> None:
        if self.telemetry_every_s > 0.0:
            m = d.motors
            key = (d.state, d.mode, d.reason, d.goal, d.power, m.moving, m.brushing, link_ok)
            if (
                not alerted
                and self.outbox.count == self._recent_count  # another thread's alert shows at once too
                and key == self._published_key
                and now - self._published_at < self.telemetry_every_s
            ):
                return
            self._published_key, self._published_at = key, now
        rd = self.readings
        power: PowerReading | None = rd.power.value
        stats_fn = getattr(self.link, "stats", None)
        self.telemetry.publish(
            Telemetry(
                at=now,
                wall=self.wall(),
                state=d.state.value,
                mode=d.mode.value,
                reason=d.reason,
                goal=d.goal.value,
                power_source=d.power.value,
                motors=d.motors,
                distance_m=rd.distance.value,
                side_left_m=rd.side.value[0] if rd.side.value is not None else None,
                side_right_m=rd.side.value[1] if rd.side.value is not None else None,
                tray_kg=rd.scale.value,
                raining=rd.rain.value,
                panel_w=power.panel_w if power is not None else None,
                battery_v=power.battery_v if power is not None else None,
                battery_soc=power.soc if power is not None else None,
                fix=fix,
                link_ok=link_ok,
                link_stats=stats_fn() if stats_fn is not None else {},
                route_progress=min(1.0, self.nav.progress_m / self.site.route_length)
                if self.site.route_length
                else 0.0,
                recent_alerts=self._recent_alerts(alerted),
                counters=self._counters(),
                reading_age_s=self._reading_ages(now),
            )
        )

    def _reading_ages(self, now: float) -> dict[str, float | None]:
        """How old each polled part's newest reading is, for the dashboard to show which part went stale."""
        ages: dict[str, float | None] = {}
        for spec in POLLED:
            at = getattr(self.readings, spec.name).at
            ages[spec.name] = None if at is None else round(max(0.0, now - at), 3)
        return ages

    def _counters(self) -> dict[str, int]:
        """Read-failure and dropped-command counts; the same dict object until one of them changes."""
        rd = self.readings
        key = (*(getattr(rd, spec.name).errors for spec in POLLED), self.commands.dropped)
        if key != self._counters_key:
            self._counters_key = key
            self._counters_dict = {f"{spec.name}_errors": v for spec, v in zip(POLLED, key, strict=False)}
            self._counters_dict["commands_dropped"] = key[-1]
        return self._counters_dict

    def _recent_alerts(self, changed: bool) -> tuple[Alert, ...]:
        # Other threads add alerts too (an SMS PIN lockout, a dashboard login lockout): follow the count.
        count = self.outbox.count
        if changed or self._recent is None or count != self._recent_count:
            self._recent = self.outbox.recent(10)
            self._recent_count = count
        return self._recent

    # ---- route progress, persisted so a restart resumes where it left off -------------------------------------
    def _progress_path(self) -> Path | None:
        return self.state_dir / PROGRESS_FILE if self.state_dir is not None else None

    def _load_progress(self) -> NavState:
        path = self._progress_path()
        if path is None or not path.exists():
            return NavState()
        try:
            return NavState.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
            log.warning(
                "route progress in %s unreadable (%s); starting the route from the beginning",
                path,
                type(err).__name__ if isinstance(err, RecursionError) else err,
            )
            return NavState()

    def _persist_progress(self, now: float) -> None:
        self._persisted_at = now
        path = self._progress_path()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.nav.to_dict()), encoding="utf-8")
            os.replace(tmp, path)  # atomic: a power cut never leaves half a file
        except OSError as err:
            log.warning("could not save route progress to %s: %s", path, err)

    # ---- shutdown -------------------------------------------------------------------------------------------
    def brake(self) -> None:
        """Send all-brake now (best effort; the Arduino's own watchdog brakes anyway if this cannot go out)."""
        try:
            self.link.send(ALL_BRAKED)
        except Exception as err:
            log.error("could not send the brake frame: %s", err)

    def close(self) -> None:
        """Brake and save progress; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.brake()
        self._persist_progress(math.inf)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
