"""CameraCache: the one path camera frames take. A thread takes a JPEG from the camera (the Pi camera or its
simulated twin) a couple of times a second and keeps the newest; the dashboard reads the cache, never the
camera, so a slow or hung camera never stalls the control loop or a web request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from robot.hardware.interfaces import Camera

log = logging.getLogger(__name__)

JPEG_SOI = b"\xff\xd8"  # every JPEG starts with its start-of-image marker


@dataclass(frozen=True, slots=True)
class CameraFrame:
    """One cached JPEG, its number (1, 2, ... in the order taken) and when it was taken (the cache's clock)."""

    jpeg: bytes
    seq: int
    taken_at: float


class CameraCache:
    """Keeps the newest frame of `camera`, taken every `period_s` by its own thread (start=False: only grab())."""

    def __init__(
        self,
        camera: Camera,
        *,
        period_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> None:
        self._camera = camera
        self._period_s = period_s
        self._clock = clock
        self._frame: CameraFrame | None = None
        self._seq = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="camera-cache", daemon=True)
            self._thread.start()

    def grab(self) -> CameraFrame | None:
        """Take one frame now and keep it; a failure is counted (errors, last_error) and the old frame kept."""
        try:
            jpeg = self._camera.snapshot_jpeg()
        except Exception as err:  # any camera fault: no new picture on the dashboard, the robot carries on
            self._failed(str(err))
            return None
        if not isinstance(jpeg, bytes) or not jpeg.startswith(JPEG_SOI):
            self._failed(f"camera gave {jpeg[:8]!r}..., not a JPEG" if isinstance(jpeg, bytes) else
                         f"camera gave a {type(jpeg).__name__}, not JPEG bytes")  # fmt: skip
            return None
        self._seq += 1
        frame = CameraFrame(jpeg, self._seq, self._clock())
        self._frame = frame  # one reference swap: readers on other threads see the old frame or this one
        return frame

    def _failed(self, why: str) -> None:
        self.errors += 1
        self.last_error = why
        log.debug("camera: %s", why)
        return None

    @property
    def frame(self) -> CameraFrame | None:
        """The newest frame with its number and time, or None before the first."""
        return self._frame

    def latest(self) -> bytes | None:
        """The newest JPEG, or None before the first frame."""
        frame = self._frame
        return frame.jpeg if frame is not None else None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.grab()
            self._stop.wait(max(0.0, self._period_s - (self._clock() - started)))

    def close(self) -> None:
        """Stop taking frames (the camera itself stays open: its owner closes it); safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> CameraCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
