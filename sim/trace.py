"""The decision trace of a run (`sim run --log FILE`): one JSON line whenever the decision changes, with the
readings behind it and the world's truth beside them, plus a line for every fault, operator action and power
change, so a surprising report can be explained line by line."""

from __future__ import annotations

import json
import re
from typing import Any, TextIO

from robot.core.types import Decision
from sim.world import World

# Reasons carry live figures ("stopped: obstacle at 0.43 m"); a new figure alone is not a new decision.
_FIGURES = re.compile(r"\d+(\.\d+)?")


def _r(v: Any, nd: int = 3) -> Any:
    return round(v, nd) if isinstance(v, float) else v


class DecisionLog:
    """Writes JSON lines to a text stream: {"t_s", "clock", "event", ...}; decisions only when they change."""

    def __init__(self, stream: TextIO, world: World) -> None:
        self.stream = stream
        self.world = world
        self.lines = 0
        self._key: tuple[Any, ...] | None = None
        self._reason = ""
        self._norm = ""

    def _write(self, t: float, event: str, fields: dict[str, Any]) -> None:
        clock = self.world.scenario.local_time(t).isoformat(timespec="milliseconds")
        self.stream.write(json.dumps({"t_s": round(t, 3), "clock": clock, "event": event, **fields}) + "\n")
        self.lines += 1

    def decision(self, t: float, d: Decision, supervisor: Any) -> None:
        """Note the step's decision if it differs from the last one noted (state, mode, goal, relay, reason
        without its figures, whether wheels and brushes run) or it raised alerts."""
        reason = d.reason
        if reason is not self._reason and reason != self._reason:
            self._reason = reason
            self._norm = _FIGURES.sub("#", reason)
        norm = self._norm
        m = d.motors
        key = (d.state, d.mode, d.goal, d.power, norm, m.moving, m.brushing)
        if key == self._key and not d.alerts:
            return
        self._key = key
        self._write(
            t,
            "decision",
            {
                "state": d.state.value,
                "mode": d.mode.value,
                "goal": d.goal.value,
                "reason": reason,
                "power": d.power.value,
                "moving": m.moving,
                "brushing": m.brushing,
                "alerts": [a.kind for a in d.alerts],
                "inputs": self._inputs(supervisor, t),
                "truth": self._truth(),
            },
        )

    def _inputs(self, sup: Any, t: float) -> dict[str, Any]:
        rd = sup.readings
        p = rd.power.value
        g = sup.guidance
        fix = rd.gps.value
        return {
            "distance_m": _r(rd.distance.value),
            "tray_kg": _r(rd.scale.value),
            "raining": rd.rain.value,
            "battery_soc": _r(p.soc, 4) if p is not None else None,
            "battery_v": _r(p.battery_v) if p is not None else None,
            "panel_w": _r(p.panel_w, 2) if p is not None else None,
            "gps_age_s": _r(t - rd.gps.at) if rd.gps.at is not None else None,
            "gps_quality": fix.quality if fix is not None else None,
            "link_ok": sup.link.healthy,
            "guidance": g.reason if g is not None else None,
        }

    def _truth(self) -> dict[str, Any]:
        w = self.world
        return {
            "x": _r(w.x, 2),
            "y": _r(w.y, 2),
            "raining": w.is_raining,
            "soc": _r(w.soc, 4),
            "tray_kg": _r(w.tray),
            "obstacle_m": _r(w.true_distance_m()),
            "pi": w.pi_state,
        }

    def event(self, t: float, event: str, **fields: Any) -> None:
        """Note a fault, an operator action or a power change; the next decision is written whatever it is."""
        self._write(t, event, {k: _r(v) for k, v in fields.items()})
        self._key = None

    def close(self) -> None:
        """Flush the stream (the caller owns it)."""
        self.stream.flush()
