"""Forward camera: picamera2 snapshots (Raspberry Pi OS's python3-picamera2), and a low-rate MJPEG streamer.

The streamer grabs frames on its own thread at a few per second and hands the newest to any number of
dashboard viewers, so neither a slow client nor a slow capture ever waits on the control loop.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

from robot.errors import CameraError, HardwareUnavailable
from robot.hardware.interfaces import Camera

MJPEG_BOUNDARY = "frame"


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


class MjpegStreamer:
    """Grabs frames from a Camera at `rate_hz` on its own thread; serves the newest as JPEG or MJPEG parts."""

    def __init__(self, camera: Camera, rate_hz: float = 2.0) -> None:
        self._camera = camera
        self._period = 1.0 / max(rate_hz, 0.1)
        self._cond = threading.Condition()
        self._frame: bytes | None = None
        self._seq = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                frame = self._camera.snapshot_jpeg()
            except CameraError as err:
                self.errors += 1
                self.last_error = str(err)
            else:
                with self._cond:
                    self._frame = frame
                    self._seq += 1
                    self._cond.notify_all()
            self._stop.wait(max(0.0, self._period - (time.monotonic() - started)))

    def latest(self, timeout: float = 0.0) -> bytes | None:
        """The newest frame, waiting up to `timeout` s for the first one."""
        with self._cond:
            if self._frame is None and timeout > 0:
                self._cond.wait_for(lambda: self._frame is not None or self._stop.is_set(), timeout)
            return self._frame

    def mjpeg(self, max_frames: int | None = None, timeout: float = 5.0) -> Iterator[bytes]:
        """multipart/x-mixed-replace parts (boundary MJPEG_BOUNDARY), one per new frame, until close()."""
        seen = 0
        sent = 0
        while not self._stop.is_set() and (max_frames is None or sent < max_frames):
            with self._cond:
                last = seen
                if not self._cond.wait_for(
                    lambda last=last: self._seq != last or self._stop.is_set(), timeout
                ):
                    return
                if self._stop.is_set() or self._frame is None:
                    return
                frame, seen = self._frame, self._seq
            head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
            yield head.encode("ascii") + frame + b"\r\n"
            sent += 1

    def close(self) -> None:
        """Stop grabbing (the camera itself stays open); safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> MjpegStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
