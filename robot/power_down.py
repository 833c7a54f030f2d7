"""The planned power-down: the wake alarm, the alerts out, every store flushed, why recorded, then power off.

The decision core says when (critical battery on the battery alone, or parked for the night); the supervisor
turns that into a PowerDownPlan with the time to wake; this part carries it out. It owns no state of its own:
recording why the process stopped is injected (the store), and so is the command runner, so the simulator and
the tests run everything but the real `systemctl poweroff`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from robot.errors import PowerDownError

log = logging.getLogger(__name__)

RTC_WAKEALARM = Path("/sys/class/rtc/rtc0/wakealarm")
COMMAND_TIMEOUT_S = 30.0

CommandRunner = Callable[[Sequence[str]], None]


@dataclass(frozen=True, slots=True)
class PowerDownPlan:
    """What the supervisor decided: why (the core's reason), a sentence for the record, and when to wake (UTC)."""

    reason: str  # "critical_battery" or "night"
    detail: str
    wake_at: datetime | None = None  # None: no alarm (the time is unknown); a person or the charge controller

    @property
    def needs_wake(self) -> bool:
        """A night's sleep without a wake alarm would last until a person comes: it must not happen."""
        return self.reason == "night"


def run_command(argv: Sequence[str]) -> None:
    """Run one command to completion; PowerDownError with its output when it fails."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise PowerDownError(f"{' '.join(argv)}: could not run ({err})") from err
    if done.returncode != 0:
        out = (done.stderr or done.stdout).strip().splitlines()
        raise PowerDownError(f"{' '.join(argv)}: exit {done.returncode}" + (f" ({out[-1]})" if out else ""))


def fill(argv: Sequence[str], when: datetime) -> list[str]:
    """The command with {epoch} (UNIX seconds) and {iso} (UTC, ISO 8601) filled in."""
    utc = when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
    values = {"epoch": str(int(utc.timestamp())), "iso": utc.replace(microsecond=0).isoformat()}
    return [a.format(**values) for a in argv]


class PowerDown:
    """Carries out a PowerDownPlan: arm() sets the wake alarm, finish() flushes, records and powers off."""

    def __init__(
        self,
        *,
        poweroff_command: Sequence[str],
        wake_command: Sequence[str] = (),
        run: CommandRunner = run_command,
        record_reason: Callable[[str, str], None] | None = None,
        flush: Sequence[tuple[str, Callable[[], None]]] = (),
        close: Sequence[tuple[str, Callable[[], None]]] = (),
        rtc_wakealarm: Path = RTC_WAKEALARM,
    ) -> None:
        self.poweroff_command = tuple(poweroff_command)
        self.wake_command = tuple(wake_command)
        self._run = run
        self._record_reason = record_reason
        self._flush = list(flush)
        self._close = list(close)
        self._rtc_wakealarm = rtc_wakealarm
        self.done: list[str] = []  # the steps carried out, in order (for the log and the tests)

    def add_flush(self, name: str, fn: Callable[[], None]) -> None:
        """One more thing to do before why is recorded (sending alerts, say), in the order added."""
        self._flush.append((name, fn))

    def add_close(self, name: str, fn: Callable[[], None]) -> None:
        """One more thing to close after why is recorded (the parts, the store itself), in the order added."""
        self._close.append((name, fn))

    def can_wake(self) -> bool:
        """True when a wake alarm is configured and looks usable here (rtcwake needs an RTC with wake)."""
        if not self.wake_command:
            return False
        if shutil.which(self.wake_command[0]) is None:
            return False
        return self.wake_command[0] != "rtcwake" or self._rtc_wakealarm.exists()

    def arm(self, plan: PowerDownPlan) -> bool:
        """Set the wake alarm. False when a night's sleep cannot be woken from: the robot stays up instead."""
        if plan.wake_at is None or not self.wake_command:
            if plan.needs_wake:
                log.warning("power-down for the night refused: no wake alarm (power.wake_command, GPS time)")
                return False
            return True
        argv = fill(self.wake_command, plan.wake_at)
        try:
            self._run(argv)
        except PowerDownError as err:
            log.error("wake alarm: %s", err)
            return not plan.needs_wake  # a critical battery powers down anyway: protecting it comes first
        self.done.append("wake alarm " + plan.wake_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))
        return True

    def finish(self, plan: PowerDownPlan) -> None:
        """Flush, record why, close everything, then power off. Never raises: the power goes anyway."""
        self._steps(self._flush)
        if self._record_reason is not None:
            try:
                self._record_reason("power_down", plan.detail)
                self.done.append("reason recorded")
            except Exception as err:
                log.error("power-down: could not record why (%s); the next boot will see a crash", err)
        self._steps(self._close)
        log.warning("powering down: %s", plan.detail)
        try:
            self._run(self.poweroff_command)
            self.done.append("poweroff")
        except PowerDownError as err:
            log.error("power-down: %s; the charge controller's low-voltage cut will end it instead", err)

    def _steps(self, steps: list[tuple[str, Callable[[], None]]]) -> None:
        for name, fn in steps:
            try:
                fn()
                self.done.append(name)
            except Exception as err:  # one stuck channel must not keep the battery draining
                log.error("power-down: %s failed: %s; carrying on", name, err)
