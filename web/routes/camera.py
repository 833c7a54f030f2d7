"""The camera on the dashboard: one still and an MJPEG stream, both from the camera's cached frame."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from web.context import WebContext, error

log = logging.getLogger(__name__)

MJPEG_BOUNDARY = "frame"


class FrameReader:
    """Reads the camera in a worker thread, one read at a time shared by all viewers; a hung read is given up on
    after `timeout_s` without starting another."""

    def __init__(self, camera: Callable[[], bytes | None], ctx: WebContext, timeout_s: float) -> None:
        self._camera = camera
        self._counters = ctx.counters
        self._timeout_s = timeout_s
        self._pending: concurrent.futures.Future[bytes | None] | None = None

    def _read_in_thread(self) -> concurrent.futures.Future[bytes | None]:
        result: concurrent.futures.Future[bytes | None] = concurrent.futures.Future()
        camera = self._camera

        def run() -> None:
            try:
                result.set_result(camera())
            except BaseException as err:  # handed to the awaiting request, which counts and logs it
                result.set_exception(err)

        # A daemon thread, not an executor: a camera hung for good must not hold up the process's exit.
        threading.Thread(target=run, name="dashboard-camera", daemon=True).start()
        return result

    async def frame(self) -> bytes | None:
        """The newest JPEG, or None (counted) when the camera fails, hangs or hands back something else."""
        # The camera should hand over a cached frame at once, but if it ever reads hardware it must not
        # stall the event loop (the supervisor's control loop runs on it).
        if self._pending is None or self._pending.done():
            self._pending = self._read_in_thread()
        try:
            # shield: a timeout must not cancel the shared read, or the next request would start another.
            data = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._pending)), self._timeout_s)
        except TimeoutError:
            self._counters.camera_errors += 1
            log.warning("dashboard camera: no frame within %.1f s", self._timeout_s)
            return None
        except Exception as err:  # the camera is another team's code: a failure there must not break the page
            self._counters.camera_errors += 1
            log.warning("dashboard camera: %s", err)
            return None
        if not isinstance(data, bytes | bytearray) or not data.startswith(b"\xff\xd8"):
            self._counters.camera_errors += 1
            return None
        return bytes(data)


def router(
    ctx: WebContext, camera: Callable[[], bytes | None] | None, *, interval_s: float, timeout_s: float
) -> APIRouter:
    """GET /api/camera.jpg and /api/camera.mjpeg (404 without a camera)."""
    r = APIRouter()
    reader = FrameReader(camera, ctx, timeout_s) if camera is not None else None

    @r.get("/api/camera.jpg")
    async def camera_jpg(request: Request) -> Response:
        if not ctx.may_read(request):
            return ctx.unauthorized()
        if reader is None:
            return error(404, "no camera on this robot (hardware.camera = 'none')")
        data = await reader.frame()
        if data is None:
            return error(503, "camera: no frame available yet; try again in a second")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @r.get("/api/camera.mjpeg")
    async def camera_mjpeg(request: Request) -> Response:
        if not ctx.may_read(request):
            return ctx.unauthorized()
        if reader is None:
            return error(404, "no camera on this robot (hardware.camera = 'none')")
        if not ctx.open_stream():
            return ctx.too_many_streams()
        state = request.app.state

        async def stream() -> AsyncIterator[bytes]:
            try:
                last: bytes | None = None
                while not state.closing:
                    data = await reader.frame()
                    # Same frame as last time: send nothing, a slow link should carry only new pictures.
                    if data is not None and data != last:
                        size = len(data)
                        head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {size}\r\n"
                        yield head.encode() + b"\r\n" + data + b"\r\n"
                        last = data
                    await asyncio.sleep(interval_s)
            finally:
                ctx.counters.streams_open -= 1

        return StreamingResponse(
            stream(),
            media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    return r
