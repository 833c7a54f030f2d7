"""The boot rule, pure: from what the last run left behind, the mode and e-stop the robot starts with.

A stop made by a person survives any restart: an e-stop stays latched until an explicit RESET, and a robot that
a person paused or drove by hand starts paused. Only a robot that was working on its own when the process
stopped (crash, signal, planned power-down) resumes, and only when the configuration says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from robot.core.types import Mode, State


class StopReason(StrEnum):
    """Why the process last stopped, as recorded in the store (CRASH until something better is recorded)."""

    CRASH = "crash"  # unexpected exception, kill -9, power cut, OOM: nothing else was recorded
    SIGNAL = "signal"  # SIGTERM/SIGINT: service stop, shutdown or reboot of the Pi, Ctrl-C
    CLEAN = "clean"  # the run ended by itself (`ramudroid run --duration`)
    POWER_DOWN = "power_down"  # a planned power-down (critical battery), recorded by the power module


# Automatic working states: the robot was doing its job (or waiting on the world) without a person's stop.
RESUMABLE = frozenset(State) - {State.ESTOP, State.STUCK, State.MANUAL, State.PAUSED}


@dataclass(frozen=True, slots=True)
class SavedState:
    """What the store remembers from the last run; None fields were never recorded (a first boot)."""

    estop: bool = False
    estop_source: str = ""
    mode: Mode | None = None
    mode_source: str = ""
    state: State | None = None
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    unreadable: bool = False  # the store existed but could not be read: assume the worst


@dataclass(frozen=True, slots=True)
class BootPlan:
    """How the core starts: its mode, whether the e-stop is latched, and a sentence saying why."""

    mode: Mode
    estop: bool
    reason: str


def boot_mode(saved: SavedState | None, settings: Any) -> BootPlan:
    """The boot rule. `settings` is duck-typed (robot.config.Settings): control.start_mode and
    control.resume_after_restart are read."""
    start = Mode(settings.control.start_mode)
    resume = bool(settings.control.resume_after_restart)
    if saved is None:
        return BootPlan(start, False, f"no saved state: starting in {start.value} (control.start_mode)")
    if saved.unreadable:
        return BootPlan(
            Mode.PAUSED, True, "saved state unreadable: booting e-stopped; check the robot, then RESET"
        )
    if saved.estop:
        who = f" by {saved.estop_source}" if saved.estop_source else ""
        return BootPlan(Mode.PAUSED, True, f"e-stop{who} still latched: stopped until RESET")
    if saved.mode is None:
        return BootPlan(start, False, f"first boot: starting in {start.value} (control.start_mode)")
    after = f" after {saved.stop_reason.value.replace('_', ' ')}" if saved.stop_reason else ""
    if saved.mode is not Mode.AUTO:
        who = f" by {saved.mode_source}" if saved.mode_source else ""
        return BootPlan(Mode.PAUSED, False, f"set to {saved.mode.value}{who} before the restart: paused")
    if saved.state is None or saved.state not in RESUMABLE:
        last = saved.state.value if saved.state is not None else "unknown"
        return BootPlan(Mode.PAUSED, False, f"last state {last}{after}: paused until a person resumes")
    if not resume:
        return BootPlan(
            Mode.PAUSED,
            False,
            f"was {saved.state.value}{after}; control.resume_after_restart = false: paused",
        )
    return BootPlan(Mode.AUTO, False, f"was {saved.state.value}{after}: resuming in auto")
