"""The one priority table of the decision core: which state wins, what it may move, and how it clears.

Read top to bottom: the first row whose condition holds names the state. docs/behaviour.md is this table in prose;
tests/test_core_table.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from robot.core.types import Goal, State

if TYPE_CHECKING:
    from robot.core.decide import Situation


class Wheels(StrEnum):
    """Who commands the wheels in a state."""

    OFF = "off"  # braked
    MANUAL = "manual"  # the operator's drive command, under the deadman
    ESCAPE = "escape"  # the timed back-off and turn of the escape manoeuvre
    GUIDED = "guided"  # navigation's guidance toward the goal


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table."""

    state: State
    when: Callable[[Situation], bool]
    wheels: Wheels
    brushes: bool
    clears: str


def _guided_wanted(s: Situation) -> bool:
    return s.goal is not Goal.HOLD and not s.arrived


# Highest priority first. `clears` is the promise each row makes; the tests hold the code to it.
TABLE: tuple[Rule, ...] = (
    Rule(
        State.ESTOP, lambda s: s.estop, Wheels.OFF, False, "latched: only an explicit RESET command clears it"
    ),
    Rule(
        State.FAULT,
        lambda s: s.fault,
        Wheels.OFF,
        False,
        "self-clearing: once the link is healthy and every required sensor fresh for control.fault_clear_s",
    ),
    Rule(
        State.CRITICAL_BATTERY,
        lambda s: s.critical and not s.critical_drive,
        Wheels.OFF,
        False,
        "latched until state of charge is back above power.low_soc; braked, and on the battery alone the "
        "controller powers down (the planned end); stays up only while the panel carries the loads",
    ),
    Rule(
        State.STUCK,
        lambda s: s.stuck,
        Wheels.OFF,
        False,
        "latched: RESET, or the operator switching to manual or paused; in auto, retried by itself after "
        "obstacle.stuck_retry_s, at most obstacle.stuck_retries times per obstacle (an alert each time)",
    ),
    Rule(
        State.OBSTACLE_STOP,
        lambda s: s.escape_phase == "stopped",
        Wheels.OFF,
        False,
        "self-clearing: distance known and beyond obstacle.clear_distance_m (hysteresis), and what left the way "
        "not likely back before the robot is through (a predicted gap, or clear for a while), else escape after "
        "obstacle.clear_wait_s blocked",
    ),
    Rule(
        State.ESCAPING,
        lambda s: s.escape_phase in ("backoff", "turn"),
        Wheels.ESCAPE,
        False,
        "timed: obstacle.backoff_s reversing, obstacle.turn_s turning, then retry; obstacle.max_tries then STUCK",
    ),
    Rule(
        State.MANUAL,
        lambda s: s.mode == "manual",
        Wheels.MANUAL,
        False,
        "operator mode; wheels stop when no drive command for control.deadman_s; forward blocked by obstacles",
    ),
    Rule(
        State.PAUSED,
        lambda s: s.mode == "paused",
        Wheels.OFF,
        False,
        "operator mode: until the operator chooses auto or manual",
    ),
    Rule(
        State.OUTSIDE_FENCE,
        lambda s: _guided_wanted(s) and not s.inside_fence,
        Wheels.GUIDED,
        False,
        "self-clearing: navigation steers back only on a good fix; clears when the fix is inside the fence",
    ),
    Rule(
        State.GPS_WAIT,
        lambda s: _guided_wanted(s) and not s.gps_ok,
        Wheels.OFF,
        False,
        "self-clearing: a fresh fix with good quality; alert after control.gps_alert_s",
    ),
    Rule(
        State.CRITICAL_PARKING,
        lambda s: s.critical,
        Wheels.GUIDED,
        False,
        "critical in auto: to the shelter in rain, else the park, for at most power.critical_drive_s (the "
        "energy left), then CRITICAL_BATTERY",
    ),
    Rule(
        State.SHELTERED,
        lambda s: s.rain and s.arrived,
        Wheels.OFF,
        False,
        "self-clearing: dry for rain.dry_s and at least rain.min_shelter_s since sheltering began",
    ),
    Rule(
        State.SHELTERING,
        lambda s: s.rain,
        Wheels.GUIDED,
        False,
        "as SHELTERED: rain confirmed for rain.confirm_s starts it; the dry period and minimum dwell end it",
    ),
    Rule(
        State.LOW_BATTERY,
        lambda s: s.low_battery,
        Wheels.GUIDED,
        False,
        "hysteresis: starts at power.low_soc, parks and charges, clears at power.resume_soc",
    ),
    Rule(
        State.NIGHT,
        lambda s: s.night,
        Wheels.GUIDED,
        False,
        "dwell: panel below power.night_w for power.night_dwell_s with the sun down (a storm is not night) "
        "starts it; above power.shade_w as long ends it",
    ),
    Rule(
        State.WAITING_FOR_SUN,
        lambda s: s.saving,
        Wheels.GUIDED,
        False,
        "at or below power.reserve_soc with the panel short of the cleaning load for power.reserve_dwell_s; "
        "the panel carrying cleaning with power.panel_margin as long, or power.resume_soc, ends it",
    ),
    Rule(
        State.TRAY_FULL,
        lambda s: s.tray_full,
        Wheels.OFF,
        False,
        "filtered: full at tray.capacity_kg x tray.full_fraction held tray.filter_s; clears below tray.empty_kg "
        "held as long (or a TRAY_EMPTIED command while the scale reads below full)",
    ),
    Rule(
        State.ROUTE_DONE,
        lambda s: s.route_done,
        Wheels.GUIDED,
        False,
        "parks at the end of the route; a new auto command or RESET starts the route again",
    ),
    Rule(
        State.CLEANING,
        lambda s: True,
        Wheels.GUIDED,
        True,
        "the default in auto: follow the route with the brushes running",
    ),
)


def markdown_table() -> str:
    """TABLE as the markdown table docs/behaviour.md carries (a test keeps the two identical)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| Priority | State | Wheels | Brushes | How it clears |",
        "|---:|---|---|---|---|",
    ]
    for i, r in enumerate(TABLE, 1):
        brushes = "on" if r.brushes else "off"
        lines.append(f"| {i} | `{r.state.value}` | {r.wheels.value} | {brushes} | {cell(r.clears)} |")
    return "\n".join(lines) + "\n"
