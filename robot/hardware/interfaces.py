"""The small interfaces every part implements: a real Pi driver and a simulated twin each.

Reads are blocking and may take milliseconds (HX711 bit-banging, I2C, ultrasonic echo); the supervisor calls
them off its event loop. Every part has an idempotent close() and is a context manager.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from robot.core.frozen import quick_init
from robot.core.types import MotorOutputs, PowerSource


@dataclass(frozen=True, slots=True)
class GpsFix:
    """One fix epoch: position, quality and motion; `time` is None until the receiver knows the date."""

    time: datetime | None
    lat: float
    lon: float
    mode: int  # 2 = 2D, 3 = 3D
    speed: float | None  # m/s over ground
    track: float | None  # degrees true
    hdop: float | None
    sats: int | None
    # GGA fix quality: 1 GPS, 2 DGPS/SBAS, 4 RTK fixed, 5 RTK float (None: the receiver sent no GGA/GNS).
    quality: int | None = None
    # The receiver's own one-axis horizontal standard deviation in metres, from GST (None: not sent).
    std_m: float | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class PowerReading:
    """Panel and battery electrical state from the power monitor(s)."""

    panel_v: float
    panel_a: float
    battery_v: float
    battery_a: float  # positive = charging
    soc: float  # state of charge, 0..1

    @property
    def panel_w(self) -> float:
        """Panel output power in watts."""
        return self.panel_v * self.panel_a


@runtime_checkable
class Part(Protocol):
    """Anything that holds a device open."""

    def close(self) -> None:
        """Release the device; safe to call twice."""


class GpsReceiver(Part, Protocol):
    """NMEA receiver: the newest fix, or None when there is no fix."""

    def latest(self) -> GpsFix | None: ...


class TrayScale(Part, Protocol):
    """Load cell under the litter tray (HX711)."""

    def read_kg(self) -> float:
        """Filtered tray weight in kg; raises ScaleError when the amplifier is disconnected."""
        ...


class RainSensor(Part, Protocol):
    """Digital rain sensor, debounced."""

    def is_raining(self) -> bool: ...


class ObstacleSensor(Part, Protocol):
    """Forward distance sensor (HC-SR04); None means no echo: unknown, treated as unsafe."""

    def distance_m(self) -> float | None: ...


class SideSensors(Part, Protocol):
    """Two distance sensors (HC-SR04) looking out to the left and right of the nose; None means no echo."""

    def distances_m(self) -> tuple[float | None, float | None]: ...


class PowerMonitor(Part, Protocol):
    """Panel and battery voltage/current (INA219 over I2C)."""

    def read(self) -> PowerReading: ...


class Camera(Part, Protocol):
    """Forward camera: JPEG snapshots for the dashboard and the obstacle cue."""

    def snapshot_jpeg(self) -> bytes: ...


class PowerRelay(Part, Protocol):
    """Relay that connects the loads to the panel or the battery."""

    def select(self, source: PowerSource) -> None: ...

    @property
    def source(self) -> PowerSource: ...


class StatusLcd(Part, Protocol):
    """Character LCD on the robot (16x2 HD44780): what a person standing beside it reads."""

    @property
    def size(self) -> tuple[int, int]:
        """(columns, rows)."""
        ...

    def show(self, lines: Sequence[str]) -> None:
        """Show these lines, each cut or padded to the width; raises HardwareError when the display is gone."""
        ...


class MotorLink(Part, Protocol):
    """The Arduino behind the serial link. send() never blocks; the link keeps its own heartbeat."""

    def send(self, outputs: MotorOutputs) -> None:
        """Queue these pin states for the Arduino (the newest replaces any not yet written)."""
        ...

    @property
    def healthy(self) -> bool:
        """True while the handshake holds and an acknowledgement came within the dead-link limit
        (arduino_bridge.session.DEAD_AFTER_S, 250 ms)."""
        ...


class SmsModem(Part, Protocol):
    """GSM modem: send a text, fetch received texts (robot.gsm.modem.IncomingSms), delete them by index."""

    def send_sms(self, number: str, text: str) -> None: ...

    def receive_sms(self) -> list[Any]:
        """Every message on the SIM (index, decoded message), oldest first; nothing is deleted."""
        ...

    def delete_sms(self, index: int) -> None:
        """Delete one handled message from the SIM."""
        ...
