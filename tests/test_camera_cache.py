"""CameraCache, the one path frames take from the camera (or its twin) to the dashboard."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from robot.camera_cache import CameraCache
from robot.drivers.sim import SimCamera
from robot.errors import CameraError

JPEG_A = b"\xff\xd8 frame A \xff\xd9"
JPEG_B = b"\xff\xd8 frame B \xff\xd9"


class Script:
    """A camera that returns (or raises) what the test lines up, one item per snapshot."""

    def __init__(self, *items: bytes | Exception) -> None:
        self.items = list(items)

    def snapshot_jpeg(self) -> bytes:
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_keeps_the_newest_frame_with_its_number_and_time() -> None:
    clock = Clock()
    cache = CameraCache(Script(JPEG_A, JPEG_B), clock=clock, start=False)
    assert cache.latest() is None and cache.frame is None
    cache.grab()
    clock.t = 100.5
    cache.grab()
    assert cache.latest() == JPEG_B
    assert cache.frame is not None and (cache.frame.seq, cache.frame.taken_at) == (2, 100.5)


@pytest.mark.parametrize(
    "bad", [CameraError("camera: capture failed (ribbon)"), RuntimeError("picamera2"), b"", b"GIF89a"]
)
def test_a_failed_or_non_jpeg_capture_is_counted_and_the_last_good_frame_kept(bad: bytes | Exception) -> None:
    cache = CameraCache(Script(JPEG_A, bad), start=False)
    cache.grab()
    assert cache.grab() is None
    assert cache.latest() == JPEG_A and cache.errors == 1 and cache.last_error


def test_the_thread_fills_the_cache_from_the_sim_camera_and_close_stops_it() -> None:
    got = threading.Event()

    class Watched(SimCamera):
        def snapshot_jpeg(self) -> bytes:
            frame = super().snapshot_jpeg()
            got.set()
            return frame

    cam = Watched(width=64, height=48)
    with CameraCache(cam, period_s=0.01) as cache:
        assert got.wait(5.0)  # margin for a loaded CI machine; the first frame is taken at once
        wait_until(lambda: cache.latest() is not None)
    latest = cache.latest()
    assert latest is not None and latest.startswith(b"\xff\xd8")
    cache.close()  # twice: harmless
    assert not cam.closed  # the camera's owner closes it, not the cache


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        done.wait(0.01)
    raise AssertionError("condition not met")
