"""Shared fixtures: healthy snapshots at time t, a core driver in virtual time, fake parts and a fake link."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from robot.core import CoreConfig, CoreState, step
from robot.core.types import (
    ALL_BRAKED,
    Alert,
    Command,
    CommandKind,
    Decision,
    Guidance,
    MotorOutputs,
    PowerSource,
    Snapshot,
    State,
)
from robot.hardware.interfaces import GpsFix, PowerReading

# The `ramudroid` commands the tests start run the pure modules, whatever the user's cache holds (a compiled
# build, fresh or stale: ramudroid.accel); tests/test_accel.py sets its own. RAMUDROID_ACCEL=1 runs them compiled.
os.environ.setdefault("RAMUDROID_ACCEL", "0")

# ---- the decision core ------------------------------------------------------------------------------------

GUIDANCE_FIELDS = frozenset(f for f in Guidance.__slots__)  # type: ignore[attr-defined]


def healthy_snap(t: float, **over: Any) -> Snapshot:
    """A snapshot at time t of a robot with every reading fresh and fine, following its route forward."""
    base: dict[str, Any] = {
        "distance_m": 3.0,
        "distance_t": t,
        "camera_obstacle": False,
        "tray_kg": 0.5,
        "tray_t": t,
        "raining": False,
        "rain_t": t,
        "panel_w": 40.0,
        "battery_v": 12.2,
        "battery_soc": 0.8,
        "power_t": t,
        "link_ok": True,
        "guidance": Guidance(left=0.6, right=0.6, gps_ok=True, reason="on route"),
        "guidance_t": t,
        "commands": (),
    }
    base.update(over)
    return Snapshot(**base)


@dataclass
class CoreDriver:
    """Walks the core through virtual time: lasting readings (`env`), one-off overrides, commands per step."""

    cfg: CoreConfig
    t: float = 0.0
    st: CoreState = field(default_factory=CoreState)
    env: dict[str, Any] = field(default_factory=dict)
    guide: dict[str, Any] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    last: Decision | None = None

    def set(self, **env: Any) -> None:
        """Change the world from now on; Guidance field names (gps_ok, arrived, ...) change the guidance."""
        for k, v in env.items():
            (self.guide if k in GUIDANCE_FIELDS else self.env)[k] = v

    def snapshot(self, **once: Any) -> Snapshot:
        env = {**self.env, **{k: v for k, v in once.items() if k not in GUIDANCE_FIELDS}}
        g = {**self.guide, **{k: v for k, v in once.items() if k in GUIDANCE_FIELDS}}
        snap = healthy_snap(self.t, **env)
        if g and snap.guidance is not None:
            snap = replace(snap, guidance=replace(snap.guidance, **g))
        return snap

    def step(self, dt: float = 0.05, commands: Iterable[Command] = (), **once: Any) -> Decision:
        """Advance time by dt and take one step."""
        self.t += dt
        snap = replace(self.snapshot(**once), commands=tuple(commands))
        self.st, d = step(self.st, snap, self.t, self.cfg)
        self.alerts.extend(d.alerts)
        self.last = d
        return d

    def command(self, kind: CommandKind, dt: float = 0.05, **kw: Any) -> Decision:
        """One step carrying one operator command stamped now."""
        return self.step(dt, commands=[Command(kind, at=self.t + dt, **kw)])

    def hold(self, seconds: float, dt: float = 0.1, **once: Any) -> list[Decision]:
        """Step every dt for `seconds` (the last step lands exactly at +seconds); returns every decision."""
        n = max(1, round(seconds / dt))
        out = []
        start = self.t
        for i in range(1, n + 1):
            out.append(self.step(start + seconds * i / n - self.t, **once))
        return out

    def until(self, pred: Callable[[Decision], bool], limit_s: float, dt: float = 0.1) -> Decision:
        """Step until pred holds; fails the test after limit_s of virtual time."""
        end = self.t + limit_s
        while self.t < end:
            d = self.step(dt)
            if pred(d):
                return d
        raise AssertionError(f"condition not reached within {limit_s} s; last: {self.last}")

    def kinds(self) -> list[str]:
        """Kinds of every alert raised so far, in order."""
        return [a.kind for a in self.alerts]

    def clear_alerts(self) -> None:
        self.alerts.clear()

    @property
    def state(self) -> State:
        assert self.last is not None
        return self.last.state


@pytest.fixture
def cfg() -> CoreConfig:
    """The core figures from the default settings (the robot's real figures)."""
    from robot.config import Settings

    return CoreConfig.from_settings(Settings())


@pytest.fixture
def snap() -> Callable[..., Snapshot]:
    """Builder of healthy snapshots: snap(t, **overrides)."""
    return healthy_snap


@pytest.fixture
def core(cfg: CoreConfig) -> CoreDriver:
    """A core past its boot fault, cleaning in auto on a sunny day, alerts cleared."""
    d = CoreDriver(cfg)
    d.until(lambda dec: dec.state is State.CLEANING, cfg.fault_clear_s + 1.0)
    d.hold(cfg.switch_dwell_s + 1.0, dt=0.5)  # settle on the panel
    assert d.last is not None and d.last.power is PowerSource.PANEL
    d.clear_alerts()
    return d


def signed_duty(p: Any) -> int:
    """EN duty with the sign of the direction: + forward (10), - backward (01), 0 brake (00/11)."""
    if p.in1 == 1 and p.in2 == 0:
        return p.en
    if p.in1 == 0 and p.in2 == 1:
        return -p.en
    return 0


def net_forward(m: MotorOutputs) -> int:
    """Sum of the two wheels' signed duties."""
    return signed_duty(m.drive_left) + signed_duty(m.drive_right)


# ---- fake parts and link for the supervisor and runner ---------------------------------------------------


class FakeLink:
    """A MotorLink that records every send with the clock's time; health can be flipped (calls on_change)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sent: list[tuple[float, MotorOutputs]] = []
        self._healthy = True
        self.on_change: Callable[[bool], None] | None = None
        self.closed = 0
        self._lock = threading.Lock()

    def send(self, outputs: MotorOutputs) -> None:
        with self._lock:
            self.sent.append((self.clock(), outputs))

    @property
    def healthy(self) -> bool:
        return self._healthy

    def set_healthy(self, ok: bool) -> None:
        self._healthy = ok
        if self.on_change is not None:
            self.on_change(ok)

    def brakes_after(self, t: float) -> list[float]:
        """Times of all-brake frames sent at or after t."""
        with self._lock:
            return [at for at, m in self.sent if at >= t and m == ALL_BRAKED]

    def close(self) -> None:
        self.closed += 1


class FakePart:
    """A polled part: returns `value`, or raises `fail` when set; counts reads."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.fail: BaseException | None = None
        self.reads = 0
        self.closed = 0

    def _read(self) -> Any:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return self.value

    def close(self) -> None:
        self.closed += 1


class FakeDistance(FakePart):
    def distance_m(self) -> float | None:
        return self._read()


class FakeScale(FakePart):
    def read_kg(self) -> float:
        return self._read()


class FakeRain(FakePart):
    def is_raining(self) -> bool:
        return self._read()


class FakePower(FakePart):
    def read(self) -> PowerReading:
        return self._read()


class FakeGps(FakePart):
    def latest(self) -> GpsFix | None:
        return self._read()


class FakeRelay:
    """Records every source selected."""

    def __init__(self) -> None:
        self.selected: list[PowerSource] = []

    def select(self, source: PowerSource) -> None:
        self.selected.append(source)

    @property
    def source(self) -> PowerSource:
        return self.selected[-1] if self.selected else PowerSource.BATTERY

    def close(self) -> None:
        pass


class FreshGps(FakePart):
    """A receiver with a good fix at one place and a new epoch on every read, as a real receiver gives."""

    def __init__(self, lat: float, lon: float) -> None:
        super().__init__((lat, lon))
        self._t0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)

    def latest(self) -> GpsFix | None:
        lat, lon = self._read()
        return GpsFix(self._t0 + timedelta(seconds=self.reads), lat, lon, 3, 0.0, None, 0.9, 10)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


SUNNY = PowerReading(panel_v=18.0, panel_a=2.5, battery_v=12.2, battery_a=0.5, soc=0.8)


@dataclass
class FakeParts:
    """The parts a Supervisor polls, all healthy by default; `gps` starts without a fix."""

    distance: FakeDistance = field(default_factory=lambda: FakeDistance(3.0))
    scale: FakeScale = field(default_factory=lambda: FakeScale(0.5))
    rain: FakeRain = field(default_factory=lambda: FakeRain(False))
    power: FakePower = field(default_factory=lambda: FakePower(SUNNY))
    gps: FakeGps = field(default_factory=lambda: FakeGps(None))
    relay: FakeRelay = field(default_factory=FakeRelay)


@pytest.fixture
def parts() -> FakeParts:
    """Healthy fake parts with a good, fresh GPS fix at the start of the demo site's route."""
    from robot.site_file import demo_site

    site = demo_site()
    return FakeParts(gps=FreshGps(*site.to_latlon(*site.route.at(0.0))))


@dataclass
class Rig:
    """A Supervisor on fake parts, a fake link, and the demo site; everything it touches is inspectable."""

    sup: Any
    parts: FakeParts
    link: FakeLink
    outbox: Any
    commands: Any
    telemetry: Any


@pytest.fixture
def make_rig(parts: FakeParts) -> Callable[..., Rig]:
    """Factory: make_rig(clock=, telemetry=, **control_settings) -> Rig (fault_clear_s 0 unless given)."""
    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.config import Settings
    from robot.site_file import demo_site
    from robot.supervisor import Supervisor
    from robot.telemetry import TelemetryBus

    def build(clock: Callable[[], float] = time.monotonic, telemetry: Any = None, **control: Any) -> Rig:
        s = Settings()
        s = replace(s, control=replace(s.control, **{"fault_clear_s": 0.0, **control}))
        link = FakeLink(clock)
        rig = Rig(None, parts, link, AlertOutbox(), CommandQueue(), telemetry or TelemetryBus())
        rig.sup = Supervisor(
            s,
            parts,
            link,
            site=demo_site(),
            outbox=rig.outbox,
            commands=rig.commands,
            telemetry=rig.telemetry,
        )
        return rig

    return build


@pytest.fixture
def cmd() -> Callable[..., Command]:
    """Builder of operator commands: cmd(kind, at, **fields)."""

    def build(kind: CommandKind, at: float, **kw: Any) -> Command:
        return Command(kind, at=at, **kw)

    return build
