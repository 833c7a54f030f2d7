"""The dashboard's HTTP API and page: reads the one telemetry snapshot, sends commands through the one queue.

The web layer never touches hardware. Stopping is never gated: an e-stop is accepted without a token and even
with stray fields, while every other command needs the bearer token (when one is set) and strict, valid JSON.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import Command, CommandKind, Mode
from robot.errors import SiteError
from robot.telemetry import Telemetry, TelemetryBus

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 4096  # a command is ~60 bytes; anything bigger is abuse or a bug
MJPEG_BOUNDARY = "frame"

Speed = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EstopBody(BaseModel):
    """Emergency stop; extra fields are ignored on purpose, so a sloppy client can still stop the robot."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: Literal["estop"]


class ResetBody(_StrictBody):
    """Clear an e-stop or fault (the supervisor decides whether it is safe)."""

    kind: Literal["reset"]


class TrayEmptiedBody(_StrictBody):
    """The operator has emptied the litter tray."""

    kind: Literal["tray_emptied"]


class SetModeBody(_StrictBody):
    """Switch between auto, manual and paused."""

    kind: Literal["set_mode"]
    mode: Mode


class DriveBody(_StrictBody):
    """One manual drive tick: wheel speeds in [-1, 1]; the supervisor's deadman stops when ticks stop."""

    kind: Literal["drive"]
    left: Speed
    right: Speed


CommandBody = Annotated[
    EstopBody | ResetBody | TrayEmptiedBody | SetModeBody | DriveBody, Field(discriminator="kind")
]
_COMMAND_ADAPTER: TypeAdapter[Any] = TypeAdapter(CommandBody)


@dataclass(slots=True)
class WebCounters:
    """What the dashboard accepted and refused since start; the supervisor may copy these into telemetry."""

    commands_accepted: int = 0
    commands_invalid: int = 0  # 422: bad JSON, unknown kind, out-of-range value, bad query
    commands_unauthorized: int = 0  # 401: missing or wrong token
    commands_too_large: int = 0  # 413
    commands_dropped: int = 0  # 503: the command queue was full
    estops: int = 0
    camera_errors: int = 0
    streams_open: int = 0  # SSE + MJPEG clients connected now
    streams_refused: int = 0

    def as_dict(self) -> dict[str, int]:
        """A JSON-ready copy."""
        return asdict(self)


def _finite(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(_finite(data), status_code=status_code, headers=headers)


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return _json({"error": message}, status_code=status_code, headers=headers)


def _describe(err: ValidationError | RequestValidationError) -> str:
    """One readable line from pydantic's errors, e.g. "drive.left: Input should be a valid number"."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
    return "; ".join(parts) or "invalid input"


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it exceeds `limit` (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _is_estop(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("kind") == "estop"


def _check_site(site: dict[str, Any] | None) -> None:
    if site is None:
        return
    if not isinstance(site, dict) or site.get("type") not in ("FeatureCollection", "Feature"):
        got = site.get("type") if isinstance(site, dict) else type(site).__name__
        raise SiteError(
            f"dashboard site map: GeoJSON type {got!r}; expected a FeatureCollection (fence, route, shelter)"
        )


def _load_static() -> dict[str, tuple[bytes, str]]:
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    out = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in types:
            out[path.name] = (path.read_bytes(), types[path.suffix])
    return out


def create_app(
    telemetry: TelemetryBus,
    commands: CommandQueue,
    *,
    outbox: AlertOutbox,
    camera: Callable[[], bytes | None] | None = None,
    token: str = "",
    clock: Callable[[], float] = time.monotonic,
    site_geojson: dict[str, Any] | None = None,
    tray_capacity_kg: float = 2.0,
    stale_after_s: float = 3.0,
    stream_interval_s: float = 0.5,
    camera_interval_s: float = 0.5,
    camera_timeout_s: float = 2.0,
    max_streams: int = 8,
) -> FastAPI:
    """Build the dashboard app. `clock` must be the supervisor's clock: it stamps commands and ages telemetry.

    `stale_after_s`: telemetry older than this is flagged stale (the page shows a banner).
    `stream_interval_s` / `camera_interval_s`: pace of the status stream (2 Hz) and the MJPEG stream (2 fps).
    `camera_timeout_s`: a camera call taking longer than this gives a 503 (it runs in a worker thread).
    `max_streams`: open SSE + MJPEG connections allowed at once, so clients cannot exhaust the Pi.
    """
    _check_site(site_geojson)
    counters = WebCounters()
    token_bytes = token.encode()
    static = _load_static()
    version = hashlib.sha256(b"".join(body for body, _ in static.values())).hexdigest()[:10]
    page_config = {
        "camera": camera is not None,
        "site": site_geojson is not None,
        "token_required": bool(token),
        "tray_capacity_kg": tray_capacity_kg,
        "stale_after_s": stale_after_s,
    }
    # The page's config is fixed for the app's lifetime, so the page is rendered once, not per request.
    # "</" is escaped so no config value can close the <script> element.
    page = (
        (STATIC_DIR / "index.html")
        .read_text(encoding="utf-8")
        .replace("__CONFIG__", json.dumps(page_config).replace("</", "<\\/"))
        .replace("__VERSION__", version)
        .encode()
    )

    app = FastAPI(title="Ramudroid dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.counters = counters
    app.state.closing = False  # set by web.server.serve() on shutdown: endless streams end at their next tick
    # JSON and the page compress ~4x, which matters on a slow mobile link; streams are left alone to flush.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=500,
        compresslevel=6,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "multipart/x-mixed-replace"),
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        counters.commands_invalid += 1
        return _error(422, f"invalid request: {_describe(err)}")

    def status_payload(t: Telemetry) -> dict[str, Any]:
        age = max(0.0, clock() - t.at)
        data = t.to_json()
        data.update(server_time=time.time(), age_s=round(age, 3), stale=age > stale_after_s)
        return data

    def no_telemetry() -> dict[str, Any]:
        return {
            "error": "no telemetry yet: the supervisor has not published a snapshot; "
            "wait a few seconds, or check that `ramudroid run` is running",
            "server_time": time.time(),
        }

    def authorized(request: Request) -> bool:
        if not token_bytes:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the check takes the same time whatever prefix of the token was guessed right.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token_bytes)

    def enqueue(cmd: Command) -> JSONResponse:
        if not commands.put(cmd):
            counters.commands_dropped += 1
            return _error(
                503,
                f"command queue full ({commands.dropped} dropped): the supervisor is not reading commands; "
                "check that `ramudroid run` is running, then press again",
            )
        counters.commands_accepted += 1
        if cmd.kind is CommandKind.ESTOP:
            counters.estops += 1
        return _json({"ok": True, "kind": str(cmd.kind), "at": cmd.at}, status_code=202)

    def open_stream() -> bool:
        if counters.streams_open >= max_streams:
            counters.streams_refused += 1
            return False
        counters.streams_open += 1
        return True

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                "frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in static:
            return _error(404, f"no static file {name!r}")
        body, media_type = static[name]
        # Asset URLs carry ?v=<content hash>, so browsers may keep them for a day without asking again.
        return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/status")
    async def status() -> JSONResponse:
        t = telemetry.latest()
        if t is None:
            return _json(no_telemetry(), status_code=503)
        return _json(status_payload(t), headers={"Cache-Control": "no-store"})

    @app.get("/api/events")
    async def events() -> Response:
        if not open_stream():
            return _error(503, f"too many live connections ({max_streams}); close another dashboard tab")

        async def stream() -> AsyncIterator[str]:
            try:
                # retry: how soon the browser's EventSource reconnects after a dropped mobile link.
                yield "retry: 2000\n\n"
                while not app.state.closing:
                    t = telemetry.latest()
                    if t is None:
                        yield f"event: waiting\ndata: {json.dumps(no_telemetry())}\n\n"
                    else:
                        data = json.dumps(_finite(status_payload(t)), separators=(",", ":"))
                        yield f"data: {data}\n\n"
                    await asyncio.sleep(stream_interval_s)
            finally:
                counters.streams_open -= 1

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.post("/api/command")
    async def command(request: Request) -> JSONResponse:
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            counters.commands_too_large += 1
            return _error(413, f"command body larger than {MAX_BODY_BYTES} bytes")
        if _is_estop(body):
            return enqueue(Command(CommandKind.ESTOP, at=clock(), source="web"))
        if not authorized(request):
            counters.commands_unauthorized += 1
            return _error(
                401,
                "missing or wrong token: send 'Authorization: Bearer <web.token>' (the e-stop needs none)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            parsed = _COMMAND_ADAPTER.validate_json(body)
        except ValidationError as err:
            counters.commands_invalid += 1
            return _error(422, f"bad command: {_describe(err)}")
        kind = CommandKind(parsed.kind)
        if isinstance(parsed, SetModeBody):
            return enqueue(Command(kind, at=clock(), mode=parsed.mode, source="web"))
        if isinstance(parsed, DriveBody):
            return enqueue(Command(kind, at=clock(), left=parsed.left, right=parsed.right, source="web"))
        return enqueue(Command(kind, at=clock(), source="web"))

    @app.post("/api/estop")
    async def estop() -> JSONResponse:
        # A body-less e-stop for scripts and for the last-resort path: nothing to parse, nothing to refuse.
        return enqueue(Command(CommandKind.ESTOP, at=clock(), source="web"))

    @app.get("/api/alerts")
    async def alerts(n: Annotated[int, Query(ge=1, le=100)] = 20) -> JSONResponse:
        now = clock()
        items = [
            {
                "kind": a.kind,
                "severity": str(a.severity),
                "message": a.message,
                "at": a.at,
                "age_s": now - a.at,
            }
            for a in outbox.recent(n)
        ]
        return _json({"alerts": items, "dropped": outbox.dropped})

    pending: concurrent.futures.Future[bytes | None] | None = None

    def read_in_thread() -> concurrent.futures.Future[bytes | None]:
        assert camera is not None
        result: concurrent.futures.Future[bytes | None] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(camera())
            except BaseException as err:  # handed to the awaiting request, which counts and logs it
                result.set_exception(err)

        # A daemon thread, not an executor: a camera hung for good must not hold up the process's exit.
        threading.Thread(target=run, name="dashboard-camera", daemon=True).start()
        return result

    async def frame() -> bytes | None:
        nonlocal pending
        # The camera should hand over a cached frame at once, but if it ever reads hardware it must not
        # stall the event loop (the supervisor's control loop runs on it). So: in a worker thread, one read
        # at a time shared by all viewers, and a hung read is given up on without starting another.
        if pending is None or pending.done():
            pending = read_in_thread()
        try:
            # shield: a timeout must not cancel the shared read, or the next request would start another.
            data = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)), camera_timeout_s)
        except TimeoutError:
            counters.camera_errors += 1
            log.warning("dashboard camera: no frame within %.1f s", camera_timeout_s)
            return None
        except Exception as err:  # the camera is another team's code: a failure there must not break the page
            counters.camera_errors += 1
            log.warning("dashboard camera: %s", err)
            return None
        if not isinstance(data, bytes | bytearray) or not data.startswith(b"\xff\xd8"):
            counters.camera_errors += 1
            return None
        return bytes(data)

    @app.get("/api/camera.jpg")
    async def camera_jpg() -> Response:
        if camera is None:
            return _error(404, "no camera on this robot (hardware.camera = 'none')")
        data = await frame()
        if data is None:
            return _error(503, "camera: no frame available yet; try again in a second")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/camera.mjpeg")
    async def camera_mjpeg() -> Response:
        if camera is None:
            return _error(404, "no camera on this robot (hardware.camera = 'none')")
        if not open_stream():
            return _error(503, f"too many live connections ({max_streams}); close another dashboard tab")

        async def stream() -> AsyncIterator[bytes]:
            try:
                last: bytes | None = None
                while not app.state.closing:
                    data = await frame()
                    # Same frame as last time: send nothing, a slow link should carry only new pictures.
                    if data is not None and data != last:
                        size = len(data)
                        head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {size}\r\n"
                        yield head.encode() + b"\r\n" + data + b"\r\n"
                        last = data
                    await asyncio.sleep(camera_interval_s)
            finally:
                counters.streams_open -= 1

        return StreamingResponse(
            stream(),
            media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/api/site")
    async def site() -> JSONResponse:
        if site_geojson is None:
            return _error(404, "no site map configured (robot.site)")
        return _json(site_geojson, headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        t = telemetry.latest()
        age = None if t is None else max(0.0, clock() - t.at)
        return _json(
            {
                "ok": True,
                "telemetry": t is not None,
                "telemetry_age_s": age,
                "stale": age is None or age > stale_after_s,
                "counters": counters.as_dict(),
                "queue_dropped": commands.dropped,
            }
        )

    return app
