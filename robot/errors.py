"""The one error tree of the Ramudroid controller, and its warnings.

Every message names the part, the value and the fix, e.g.
"tray scale on GPIO 5/6: no data for 2.0 s; check the HX711 wiring or set hardware.scale = 'sim'".
"""

from __future__ import annotations


class RamudroidError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(RamudroidError, ValueError):
    """A configuration file or value is wrong; the message names the key, the value and what is allowed."""


class SiteError(RamudroidError, ValueError):
    """A site file (GeoJSON route, fence, shelter, parking) is invalid."""


class ScenarioError(RamudroidError, ValueError):
    """A simulator scenario file is invalid; the message names the line."""


class HardwareError(RamudroidError):
    """A hardware part failed or is missing."""


class HardwareUnavailable(HardwareError, ImportError):
    """A real driver was asked for on a machine without that hardware or its library."""


class SensorError(HardwareError):
    """A sensor gave no reading, an impossible reading, or stopped answering."""


class ScaleError(SensorError):
    """The tray scale (HX711 load cell) is disconnected or uncalibrated."""


class GpsError(SensorError):
    """The GPS receiver is missing or its port cannot be opened."""


class RtcmError(HardwareError):
    """RTCM corrections cannot be had: the NTRIP caster or the base station's port failed or refused."""


class CameraError(HardwareError):
    """The camera cannot be opened or gave no frame."""


class LinkError(HardwareError):
    """The serial link to the Arduino failed."""


class ProtocolError(LinkError, ValueError):
    """A frame on the Arduino link is malformed (bad COBS, CRC, length or value)."""


class VersionMismatch(LinkError):
    """The Arduino firmware speaks another protocol version: refuse to drive."""


class ModemError(HardwareError):
    """The GSM modem did not answer, answered an error, or lost its network."""


class FirmwareBuildError(RamudroidError):
    """Compiling the Arduino firmware failed."""


class StoreError(RamudroidError):
    """The state store (SQLite, robot.state_dir/ramudroid.db) could not be opened, read or written."""


class FlashError(HardwareError):
    """Uploading the firmware to the Arduino failed, or the board did not come back running it."""


class PowerDownError(RamudroidError):
    """The wake alarm or the power-off command could not be run."""


class DashboardError(RamudroidError):
    """The web dashboard cannot start (address in use, unknown host)."""


class MqttError(RamudroidError):
    """The MQTT bridge or the fleet page is misconfigured (TLS files, robot name, keys)."""
