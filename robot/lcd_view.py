"""What the robot's LCD shows, and the thread that keeps it current once a second, off the control loop.

CLEANING   B 82%     state (why it is or is not moving) and battery charge
tray 1.24kg  62%     tray weight and fill; every few seconds the last alert instead, 16 characters a page:
!stopped: obstac
le at 0.32 m
"""

from __future__ import annotations

import logging
import threading

from robot.alerts import AlertOutbox
from robot.core.types import Alert, State
from robot.hardware.interfaces import StatusLcd
from robot.telemetry import Telemetry, TelemetryBus

log = logging.getLogger(__name__)

STATE_LABELS: dict[str, str] = {
    State.ESTOP: "E-STOP",
    State.FAULT: "FAULT",
    State.CRITICAL_BATTERY: "BATT CRIT",
    State.OBSTACLE_STOP: "OBSTACLE",
    State.ESCAPING: "ESCAPING",
    State.STUCK: "STUCK",
    State.MANUAL: "MANUAL",
    State.PAUSED: "PAUSED",
    State.SHELTERING: "TO SHELTER",
    State.SHELTERED: "SHELTERED",
    State.LOW_BATTERY: "LOW BATT",
    State.NIGHT: "NIGHT",
    State.TRAY_FULL: "TRAY FULL",
    State.OUTSIDE_FENCE: "OFF FENCE",
    State.GPS_WAIT: "GPS WAIT",
    State.ROUTE_DONE: "ROUTE DONE",
    State.CLEANING: "CLEANING",
}
ALERT_SHOWN_S = 600.0  # an alert older than this is old news: the tray line stays
ALERT_PAGES = 3  # at most 3 x 16 characters of an alert's message
TRAY_PAGES = 2  # seconds of the tray line between two showings of the alert


def lcd_lines(
    t: Telemetry | None, alert: Alert | None, *, tray_capacity_kg: float, tick: int, cols: int = 16
) -> tuple[str, str]:
    """The two lines for telemetry `t` and the newest alert, at refresh number `tick` (pages the alert)."""
    if t is None:
        return "RAMUDROID", "starting..."
    label = STATE_LABELS.get(t.state, t.state.upper())[: cols - 6]
    battery = "B --%" if t.battery_soc is None else f"B{round(100 * t.battery_soc):3d}%"
    top = f"{label:<{cols - 5}}{battery}"
    if t.tray_kg is None:
        tray = "tray --"
    else:
        fill = round(100 * t.tray_kg / tray_capacity_kg)
        tray = f"tray {t.tray_kg:.2f}kg{fill:4d}%"
    if alert is None or t.at - alert.at > ALERT_SHOWN_S:
        return top, tray
    text = "!" + alert.message
    pages = [text[i : i + cols] for i in range(0, min(len(text), cols * ALERT_PAGES), cols)]
    cycle = [tray] * TRAY_PAGES + pages
    return top, cycle[tick % len(cycle)]


class LcdView:
    """Refreshes the LCD from the newest telemetry and alert every `period_s` in its own thread; the display
    only gets the rows that changed. A failing display is logged once per outage and never stops the robot."""

    def __init__(
        self,
        lcd: StatusLcd,
        telemetry: TelemetryBus,
        outbox: AlertOutbox,
        *,
        tray_capacity_kg: float,
        period_s: float = 1.0,
        start: bool = True,
    ) -> None:
        self.lcd = lcd
        self._telemetry = telemetry
        self._outbox = outbox
        self._capacity = tray_capacity_kg
        self._period = period_s
        self._tick = 0
        self.errors = 0
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lcd", daemon=True)
        if start:
            self._thread.start()

    def refresh(self) -> tuple[str, str]:
        """Compute and show the lines once (the thread calls this every period); returns them."""
        recent = self._outbox.recent(1)
        lines = lcd_lines(
            self._telemetry.latest(),
            recent[0] if recent else None,
            tray_capacity_kg=self._capacity,
            tick=self._tick,
            cols=self.lcd.size[0],
        )
        self._tick += 1
        self._show(lines)
        return lines

    def _show(self, lines: tuple[str, ...]) -> None:
        try:
            self.lcd.show(lines)
        except Exception as err:  # the display is a nicety: count it, say it once, keep the robot running
            self.errors += 1
            if not self._failing:
                log.warning("%s (the robot carries on without its display)", err)
            self._failing = True
        else:
            if self._failing:
                log.info("LCD answers again")
            self._failing = False

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()  # at once too: "starting..." while the robot boots
            self._stop.wait(self._period)

    def close(self) -> None:
        """Stop refreshing and leave a last word on the display (called once the robot is braked); idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._show(("STOPPED", "motors braked"))
