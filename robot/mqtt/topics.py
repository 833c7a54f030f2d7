"""The MQTT topic layout and the compact JSON payloads the robot publishes (docs/mqtt.md); pure, stdlib only."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from robot.core.types import Alert
from robot.telemetry import Telemetry

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ALL = "_all"  # the fleet-wide level: `<prefix>/_all/cmd` takes e-stops for every robot

ONLINE = b"online"
OFFLINE = b"offline"


def valid_name(name: str) -> bool:
    """True when `name` can be one topic level (and is not the fleet-wide one)."""
    return bool(NAME_RE.fullmatch(name)) and name != ALL


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one robot under `prefix` (default "ramudroid")."""

    prefix: str
    name: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.name}"

    @property
    def status(self) -> str:
        """ "online" / "offline" (retained; "offline" is also the broker's last will)."""
        return f"{self.base}/status"

    @property
    def state(self) -> str:
        """The compact state (retained), at telemetry_s and on change."""
        return f"{self.base}/state"

    @property
    def position(self) -> str:
        """{"latitude", "longitude", "gps_accuracy"} for Home Assistant's device_tracker (retained)."""
        return f"{self.base}/position"

    @property
    def alerts(self) -> str:
        """Every alert, QoS 1, not retained."""
        return f"{self.base}/alerts"

    @property
    def last_alert(self) -> str:
        """The newest alert, retained, so a page that starts late sees it."""
        return f"{self.base}/alert"

    @property
    def cmd(self) -> str:
        """Commands in: a bare e-stop, or a signed envelope (robot/mqtt/auth.py)."""
        return f"{self.base}/cmd"

    @property
    def cmd_ha(self) -> str:
        """Home Assistant's button presses: STOP, PAUSE, AUTO."""
        return f"{self.base}/cmd/ha"

    @property
    def cmd_result(self) -> str:
        """What became of each command, QoS 1."""
        return f"{self.base}/cmd/result"

    @property
    def cmd_all(self) -> str:
        """The fleet-wide e-stop topic."""
        return f"{self.prefix}/{ALL}/cmd"


def robot_of(prefix: str, topic: str) -> tuple[str, str] | None:
    """(robot name, rest) for a topic under `prefix`, e.g. ("r1", "state"); None when it is not ours."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    name, _, rest = topic[len(head) :].partition("/")
    if not rest or not NAME_RE.fullmatch(name):
        return None
    return name, rest


def _num(v: float | None, digits: int) -> float | None:
    return round(v, digits) if v is not None and math.isfinite(v) else None


# A change in any of these publishes the state at once instead of at the next telemetry_s tick.
SIGNIFICANT = ("state", "mode", "reason", "goal", "power_source", "link_ok", "raining")


def state_payload(t: Telemetry, name: str, *, tray_capacity_kg: float) -> dict[str, Any]:
    """The compact state: what a fleet page and Home Assistant show, ~400 bytes instead of the full snapshot."""
    fix = t.fix
    soc = t.battery_soc
    return {
        "robot": name,
        "wall": round(t.wall, 3),
        "state": t.state,
        "mode": t.mode,
        "reason": t.reason,
        "goal": t.goal,
        "power_source": t.power_source,
        "moving": t.motors.moving,
        "brushing": t.motors.brushing,
        "battery_v": _num(t.battery_v, 2),
        "battery_pct": _num(soc * 100.0, 0) if soc is not None else None,
        "tray_kg": _num(t.tray_kg, 2),
        "tray_pct": _num(t.tray_kg / tray_capacity_kg * 100.0, 0) if t.tray_kg is not None else None,
        "raining": t.raining,
        "panel_w": _num(t.panel_w, 1),
        "latitude": _num(fix.lat, 7) if fix is not None else None,
        "longitude": _num(fix.lon, 7) if fix is not None else None,
        "hdop": _num(fix.hdop, 1) if fix is not None else None,
        "link_ok": t.link_ok,
        "route_progress": _num(t.route_progress, 3),
    }


def position_payload(state: dict[str, Any]) -> dict[str, Any] | None:
    """Home Assistant's device_tracker attributes, or None without a fix."""
    lat, lon = state.get("latitude"), state.get("longitude")
    if lat is None or lon is None:
        return None
    out: dict[str, Any] = {"latitude": lat, "longitude": lon}
    if state.get("hdop") is not None:
        # HA wants metres; HDOP x 5 m (a typical receiver's range error) is the usual rough conversion.
        out["gps_accuracy"] = round(state["hdop"] * 5.0, 1)
    return out


def alert_payload(alert: Alert, name: str, alert_id: str, wall: float) -> dict[str, Any]:
    """One alert; `id` is unique per robot across restarts (boot id + outbox sequence), so readers dedupe."""
    return {
        "robot": name,
        "id": alert_id,
        "kind": alert.kind,
        "severity": str(alert.severity),
        "message": alert.message,
        "wall": round(wall, 3),
    }
