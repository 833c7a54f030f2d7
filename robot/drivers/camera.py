"""Forward camera: picamera2 snapshots (Raspberry Pi OS's python3-picamera2), JPEG-encoded by the camera stack.

Frames reach the dashboard through robot.camera_cache.CameraCache, never straight from here.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from robot.errors import CameraError, HardwareUnavailable


class PiCamera:
    """Camera on the Pi's CSI connector through picamera2, at a fixed resolution."""

    def __init__(self, width: int = 640, height: int = 480, *, picamera2_module: Any = None) -> None:
        if picamera2_module is None:
            try:
                import picamera2 as picamera2_module  # type: ignore[no-redef]
            except ImportError as err:
                raise HardwareUnavailable(
                    'no picamera2 on this machine: set hardware.camera = "sim" (or "none"), or on '
                    "Raspberry Pi OS: sudo apt install python3-picamera2"
                ) from err
        self.size = (width, height)
        self._lock = threading.Lock()
        try:
            self._cam = picamera2_module.Picamera2()
            config = self._cam.create_still_configuration(main={"size": self.size})
            self._cam.configure(config)
            self._cam.start()
        except Exception as err:
            raise CameraError(
                f"camera {width}x{height}: cannot start ({err}); check the ribbon cable and "
                "`rpicam-hello --list-cameras`, or set hardware.camera = 'sim'"
            ) from err
        self._closed = False

    def snapshot_jpeg(self) -> bytes:
        """One JPEG frame at the configured resolution."""
        buf = io.BytesIO()
        with self._lock:
            if self._closed:
                raise CameraError("camera: snapshot after close")
            try:
                self._cam.capture_file(buf, format="jpeg")
            except Exception as err:
                raise CameraError(f"camera: capture failed ({err})") from err
        return buf.getvalue()

    def close(self) -> None:
        """Stop and release the camera; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._cam.stop()
            finally:
                self._cam.close()

    def __enter__(self) -> PiCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
