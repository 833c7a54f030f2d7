"""The one immutable snapshot the supervisor publishes each step, for the dashboard, SMS status and logs."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from robot.core.frozen import quick_init
from robot.core.types import Alert, MotorOutputs
from robot.hardware.interfaces import GpsFix


@quick_init
@dataclass(frozen=True, slots=True)
class Telemetry:
    """What the robot is doing and sensing, as of `at` (supervisor monotonic seconds) / `wall` (UNIX time)."""

    at: float
    wall: float
    state: str
    mode: str
    reason: str
    goal: str
    power_source: str
    motors: MotorOutputs
    distance_m: float | None = None
    tray_kg: float | None = None
    raining: bool | None = None
    panel_w: float | None = None
    battery_v: float | None = None
    battery_soc: float | None = None
    fix: GpsFix | None = None
    link_ok: bool = False
    link_stats: dict[str, float] = field(default_factory=dict)
    route_progress: float = 0.0
    recent_alerts: tuple[Alert, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (motors as lists, fix time as ISO 8601)."""
        d = asdict(self)
        d["motors"] = {name: list(p) for name, p in zip(MotorOutputs._fields, self.motors, strict=True)}
        if self.fix is not None and self.fix.time is not None:
            d["fix"]["time"] = self.fix.time.isoformat()
        return d


class TelemetryBus:
    """Holds the newest Telemetry; readers get the same immutable object until the next publish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Telemetry | None = None
        self._version = 0

    def publish(self, t: Telemetry) -> None:
        with self._lock:
            self._latest = t
            self._version += 1

    def latest(self) -> Telemetry | None:
        with self._lock:
            return self._latest

    @property
    def version(self) -> int:
        with self._lock:
            return self._version
