"""The one immutable snapshot the supervisor publishes each step, for the dashboard, SMS status and logs."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from robot.core.frozen import quick_init
from robot.core.types import Alert, MotorOutputs
from robot.hardware.interfaces import GpsFix
from robot.parts import POLLED

if TYPE_CHECKING:
    from robot.config import Settings


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
    side_left_m: float | None = None  # the side sensors, when fitted (hardware.side)
    side_right_m: float | None = None
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
    # Seconds since each polled part's newest reading was taken (by its name; None: no reading yet).
    reading_age_s: dict[str, float | None] = field(default_factory=dict)

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


def part_list(settings: Settings) -> list[dict[str, Any]]:
    """The fitted polled parts as the dashboard lists them, from the one parts table (robot/parts.py): name, label, the
    Telemetry fields its reading fills, and its freshness limit in seconds with the setting that holds it (a
    reading older than that is stale, and the core brakes)."""
    out = []
    for spec in POLLED:
        if getattr(settings.hardware, spec.name, None) == "none":
            continue  # not fitted (an optional part): no tile that would only ever read nothing
        limit: Any = None
        if spec.fresh_s is not None:
            section, key = spec.fresh_s.split(".")
            limit = getattr(getattr(settings, section), key)
        out.append(
            {
                "name": spec.name,
                "label": spec.label or spec.name,
                "fields": list(spec.fields),
                "fresh_s": limit,
                "fresh_key": spec.fresh_s,
            }
        )
    return out
