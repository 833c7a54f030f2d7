"""The supervisor: gathers the newest readings, runs navigation and the decision core, applies the decision.

It has no clock and no loop of its own: the asyncio runner (real time) or the simulator (virtual time) calls
`step(now)`; both therefore run exactly the same decisions. Every path out of it ends with the motors braked.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core import CoreConfig, CoreState, step
from robot.core.types import (
    ALL_BRAKED,
    Alert,
    CommandKind,
    Decision,
    Goal,
    Guidance,
    Mode,
    PowerSource,
    Snapshot,
    State,
)
from robot.hardware.interfaces import GpsFix, MotorLink, PowerReading
from robot.navigation import NavConfig, NavState, Site, guide, wheel_fractions
from robot.telemetry import Telemetry, TelemetryBus

log = logging.getLogger(__name__)

PROGRESS_FILE = "route_progress.json"
PERSIST_EVERY_S = 5.0


@dataclass(slots=True)
class Reading:
    """The newest value of one part and when it was taken; `errors` counts failed reads."""

    value: Any = None
    at: float | None = None
    errors: int = 0
    last_error: str = ""


@dataclass(slots=True)
class Readings:
    """Newest readings of every part, written by pollers, read by step()."""

    distance: Reading = field(default_factory=Reading)
    tray: Reading = field(default_factory=Reading)
    rain: Reading = field(default_factory=Reading)
    power: Reading = field(default_factory=Reading)
    gps: Reading = field(default_factory=Reading)
    camera_obstacle: bool = False


# part name -> (attribute on Parts, method to call)
POLLED: dict[str, tuple[str, str]] = {
    "distance": ("distance", "distance_m"),
    "tray": ("scale", "read_kg"),
    "rain": ("rain", "is_raining"),
    "power": ("power", "read"),
    "gps": ("gps", "latest"),
}


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
        self.nav_config = nav_config or (
            NavConfig.for_receiver(gps.receiver, gps.uere_m, gps.rtk_required)
            if gps is not None
            else NavConfig()
        )
        self.gps_stale_s = settings.control.gps_stale_s
        self.route_passes = settings.control.route_passes
        self.passes = 0
        self.core = CoreState(mode=Mode(settings.control.start_mode))
        self.nav = self._load_progress()
        self.readings = Readings()
        self.last: Decision | None = None
        self.guidance: Guidance | None = None
        self.steps = 0
        self._persisted_at = -math.inf
        self._relay_source: PowerSource | None = None
        self._last_fix: GpsFix | None = None
        self._recent: tuple[Alert, ...] | None = None
        self._counters_key: tuple[int, ...] = ()
        self._counters_dict: dict[str, int] = {}
        self._readers: list[tuple[str, Callable[[], Any]]] | None = None
        self._closed = False

    # ---- readings -------------------------------------------------------------------------------------------
    def ingest(self, name: str, value: Any, now: float) -> None:
        """Store a reading taken at `now` (from a poller, or poll_parts)."""
        r: Reading = getattr(self.readings, name)
        if name == "gps":
            # A fix is fresh only when the receiver gave a new one; the same object again is not news.
            if value is not None and value is not self._last_fix:
                r.value, r.at = value, now
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
                (name, getattr(part, method))
                for name, (attr, method) in POLLED.items()
                if (part := getattr(self.parts, attr, None)) is not None
            ]
        for name, read in self._readers:
            try:
                self.ingest(name, read(), now)
            except Exception as err:  # a failing part must go stale, not stop the robot's brain
                self.ingest_error(name, err)

    # ---- the step -------------------------------------------------------------------------------------------
    def step(self, now: float) -> Decision:
        """One decision: commands, navigation, core, then apply. Raises only on a bug (the runner brakes)."""
        commands = self.commands.drain()
        rd = self.readings
        fix = rd.gps.value if rd.gps.at is not None and now - rd.gps.at <= self.gps_stale_s else None
        goal = self.last.goal if self.last is not None else Goal.HOLD
        restart = any(
            c.kind is CommandKind.RESET or (c.kind is CommandKind.SET_MODE and c.mode is Mode.AUTO)
            for c in commands
        )
        if restart and self.core.state is State.ROUTE_DONE:
            self.nav = self.nav.restart_route()
            self.passes = 0
        # Odometry must know what the wheels really did (the core overrides navigation for obstacles).
        applied = wheel_fractions(self.last.motors) if self.last is not None else None
        self.nav, guidance = guide(self.nav, fix, goal, now, self.site, self.nav_config, applied)
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
        snap = Snapshot(
            distance_m=rd.distance.value,
            distance_t=rd.distance.at,
            camera_obstacle=rd.camera_obstacle,
            tray_kg=rd.tray.value,
            tray_t=rd.tray.at,
            raining=rd.rain.value,
            rain_t=rd.rain.at,
            panel_w=power.panel_w if power is not None else None,
            battery_v=power.battery_v if power is not None else None,
            battery_soc=power.soc if power is not None else None,
            power_t=rd.power.at,
            link_ok=link_ok,
            guidance=guidance,
            guidance_t=now,
            commands=commands,
        )
        self.core, decision = step(self.core, snap, now, self.cfg)
        # If the decided goal changed, navigation answers for it from the next step on (one step, 50 ms, later).
        self.link.send(decision.motors)
        self._apply_relay(decision.power)
        for a in decision.alerts:
            self.outbox.add(a)
            log.log(logging.WARNING if a.severity != "info" else logging.INFO, "%s: %s", a.kind, a.message)
        self.last = decision
        self.steps += 1
        self._publish(decision, now, fix, link_ok)
        if now - self._persisted_at >= PERSIST_EVERY_S:
            self._persist_progress(now)
        return decision

    def _apply_relay(self, source: PowerSource) -> None:
        relay = getattr(self.parts, "relay", None)
        if relay is None or source is self._relay_source:
            return
        try:
            relay.select(source)
            self._relay_source = source
        except Exception as err:  # retried next step; the core's dwell is unaffected
            log.error("power relay: could not select %s: %s", source.value, err)

    def _publish(self, d: Decision, now: float, fix: GpsFix | None, link_ok: bool) -> None:
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
                tray_kg=rd.tray.value,
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
                recent_alerts=self._recent_alerts(bool(d.alerts)),
                counters=self._counters(),
            )
        )

    def _counters(self) -> dict[str, int]:
        """Read-failure and dropped-command counts; the same dict object until one of them changes."""
        rd = self.readings
        key = (
            rd.distance.errors,
            rd.tray.errors,
            rd.rain.errors,
            rd.power.errors,
            rd.gps.errors,
            self.commands.dropped,
        )
        if key != self._counters_key:
            self._counters_key = key
            self._counters_dict = {f"{n}_errors": v for n, v in zip(POLLED, key, strict=False)}
            self._counters_dict["commands_dropped"] = key[-1]
        return self._counters_dict

    def _recent_alerts(self, changed: bool) -> tuple[Alert, ...]:
        if changed or self._recent is None:
            self._recent = self.outbox.recent(10)
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
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning(
                "route progress in %s unreadable (%s); starting the route from the beginning", path, err
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
