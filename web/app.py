"""The dashboard's HTTP API and page: reads the one telemetry snapshot, sends commands through the one queue.

The web layer never touches hardware. Who may do what:
- STOP needs no login, ever (`POST /api/estop`, or `{"kind": "estop"}` on /api/command): it latches the e-stop
  in the store before it answers 202, and that path can do nothing but stop.
- Everything else needs a login (`web.password_hash`, session cookie: HttpOnly, SameSite=Strict, expiring) or the
  bearer token for scripts (`web.token`); without either configured the dashboard only listens on loopback.
- Every request must name this robot in its Host header (no DNS rebinding); every POST from a browser must come
  from the dashboard's own Origin, and commands must be `application/json` (no cross-site forms).
- Manual driving is one client at a time (a lease renewed by its drive ticks); the others see who drives and
  may only e-stop or take over explicitly.
- Each client address is rate-limited; a bad request is refused with a clear JSON error, never a 500.
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
from starlette.types import ASGIApp, Receive, Scope, Send

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue, EmergencyStop
from robot.core.types import Alert, Command, CommandKind, Mode, Severity
from robot.errors import SiteError
from robot.passwords import verify_password
from robot.telemetry import Telemetry, TelemetryBus
from web.auth import COOKIE, DriveLease, HostCheck, LoginLimiter, Sessions, origin_ok, split_host

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


class TakeOverBody(_StrictBody):
    """Take the driving lease from whoever holds it (the wheels are braked first)."""

    kind: Literal["take_over"]


class LoginBody(_StrictBody):
    """The dashboard password."""

    password: Annotated[str, Field(max_length=256)]


CommandBody = Annotated[
    EstopBody | ResetBody | TrayEmptiedBody | SetModeBody | DriveBody | TakeOverBody,
    Field(discriminator="kind"),
]
_LOGIN_ADAPTER: TypeAdapter[Any] = TypeAdapter(LoginBody)
_COMMAND_ADAPTER: TypeAdapter[Any] = TypeAdapter(CommandBody)


@dataclass(slots=True)
class WebCounters:
    """What the dashboard accepted and refused since start; the supervisor may copy these into telemetry."""

    commands_accepted: int = 0
    commands_invalid: int = 0  # 422: bad JSON, unknown kind, out-of-range value, bad query
    commands_unauthorized: int = 0  # 401: no login (or token)
    commands_too_large: int = 0  # 413
    commands_dropped: int = 0  # 503: the command queue was full
    commands_wrong_type: int = 0  # 415: not application/json
    commands_cross_site: int = 0  # 403: another site's Origin
    lease_conflicts: int = 0  # 409: someone else drives
    estops: int = 0
    estops_not_saved: int = 0  # applied, but the store could not save the latch
    logins: int = 0
    logins_failed: int = 0
    logins_refused: int = 0  # 429: too many failures
    bad_host: int = 0  # 421: a Host header that is not this robot
    rate_limited: int = 0  # 429: too many requests from one address
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
    except (ValueError, RecursionError):  # deeply nested JSON is just not an e-stop
        return False
    return isinstance(data, dict) and data.get("kind") == "estop"


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Gate:
    """Outermost ASGI layer: refuse a Host that is not this robot (421) and rate-limit each client address
    (429; a token bucket of `rate_per_s`, `burst` deep). The e-stop is never rate-limited."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: HostCheck,
        counters: WebCounters,
        rate_per_s: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.counters = counters
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
                break
        if not self.hosts.ok(host):
            self.counters.bad_host += 1
            resp = _error(421, f"this is not the dashboard of {host[:60]!r}: open it by the robot's address")
            await resp(scope, receive, send)
            return
        if scope.get("path") != "/api/estop" and not self._take(_client_ip(scope)):
            self.counters.rate_limited += 1
            resp = _error(429, "too many requests from this address; slow down", {"Retry-After": "1"})
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _take(self, ip: str) -> bool:
        now = self.clock()
        tokens, at = self._buckets.get(ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if len(self._buckets) > 4096:  # an address sweep must not grow memory
            self._buckets.clear()
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            return False
        self._buckets[ip] = (tokens - 1.0, now)
        return True


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent a request: a stable id for the driving lease and a label other operators can read."""

    id: str
    label: str


def _client_tag(request: Request) -> str:
    """The page's own random id (X-Ramudroid-Client, or ?client= for the event stream), to tell two browsers
    apart without a login."""
    tag = request.headers.get("x-ramudroid-client", "") or request.query_params.get("client", "")
    return tag if 1 <= len(tag) <= 32 and tag.replace("-", "").isalnum() else ""


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
    password_hash: str = "",
    session_s: float = 43200.0,
    estop: EmergencyStop | None = None,
    estop_port: int = 0,
    allowed_hosts: tuple[str, ...] = (),
    clock: Callable[[], float] = time.monotonic,
    real_clock: Callable[[], float] = time.monotonic,
    site_geojson: dict[str, Any] | None = None,
    tray_capacity_kg: float = 2.0,
    stale_after_s: float = 3.0,
    stream_interval_s: float = 0.5,
    camera_interval_s: float = 0.5,
    camera_timeout_s: float = 2.0,
    max_streams: int = 8,
    lease_s: float = 15.0,
    rate_per_s: float = 50.0,
    burst: float = 100.0,
) -> FastAPI:
    """Build the dashboard app. `clock` must be the supervisor's clock: it stamps commands and ages telemetry.

    `password_hash` (from `ramudroid passwd`): the login; `token`: a bearer token for scripts; with neither,
    anyone who reaches the (loopback-only) dashboard may command. `estop` latches and queues an e-stop (built
    on `commands` without a store when not given); `estop_port`: the separate e-stop listener the page also
    tries. `stale_after_s`: telemetry older than this is flagged stale (the page shows a banner).
    `stream_interval_s` / `camera_interval_s`: pace of the status stream (2 Hz) and the MJPEG stream (2 fps).
    `camera_timeout_s`: a camera call taking longer than this gives a 503 (it runs in a worker thread).
    `max_streams`: open SSE + MJPEG connections allowed at once. `lease_s`: the driving lease lapses this long
    after its holder's last drive tick. `rate_per_s`/`burst`: requests allowed per client address.
    `real_clock`: times logins and the login lockout (real seconds, not the simulator's).
    """
    _check_site(site_geojson)
    counters = WebCounters()
    token_bytes = token.encode()
    stop = estop if estop is not None else EmergencyStop(commands, None, clock)
    # Logins last real time, whatever speed the simulated clock runs at.
    sessions = Sessions(session_s, real_clock)
    limiter = LoginLimiter(clock=real_clock)
    lease = DriveLease(lease_s, clock)
    login_slots = asyncio.Semaphore(1)  # scrypt takes 16 MiB and tens of ms: one check at a time
    static = _load_static()
    version = hashlib.sha256(b"".join(body for body, _ in static.values())).hexdigest()[:10]
    page_config = {
        "camera": camera is not None,
        "site": site_geojson is not None,
        "login_required": bool(password_hash),
        "estop_port": estop_port,
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
    app.state.lease = lease
    app.state.closing = False  # set by web.server.serve() on shutdown: endless streams end at their next tick
    # JSON and the page compress ~4x, which matters on a slow mobile link; streams are left alone to flush.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=500,
        compresslevel=6,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "multipart/x-mixed-replace"),
    )
    app.add_middleware(
        Gate,
        hosts=HostCheck(allowed_hosts),
        counters=counters,
        rate_per_s=rate_per_s,
        burst=burst,
        clock=real_clock,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        counters.commands_invalid += 1
        return _error(422, f"invalid request: {_describe(err)}")

    # ---- who is asking ------------------------------------------------------------------------------------

    def identify(request: Request) -> Client | None:
        """The authenticated client, or None."""
        ip = _client_ip(request.scope)
        if token_bytes:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            # compare_digest: the check takes the same time whatever prefix of the token was guessed right.
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token_bytes):
                return Client(f"token:{ip}", f"a script at {ip}")
        if password_hash:
            session = sessions.get(request.cookies.get(COOKIE))
            return (
                None if session is None else Client(f"session:{session.id}", f"operator {session.id} at {ip}")
            )
        if token_bytes:
            return None
        tag = _client_tag(request) or ip
        return Client(f"client:{tag}", f"browser {tag[:6]} at {ip}")

    def may_read(request: Request) -> bool:
        return not password_hash or identify(request) is not None

    def unauthorized() -> JSONResponse:
        counters.commands_unauthorized += 1
        if password_hash:
            return _error(401, "log in first: this needs the dashboard password (STOP never does)")
        return _error(
            401,
            "missing or wrong token: send 'Authorization: Bearer <web.token>' (the e-stop needs none)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def cross_site(request: Request) -> JSONResponse | None:
        """403 when a browser on another site sent this POST."""
        also = ()
        if estop_port:
            host = split_host(request.headers.get("host", ""))[0]
            also = (f"{host}:{estop_port}",)
        if origin_ok(request.headers.get("origin"), request.headers.get("host", ""), also):
            return None
        counters.commands_cross_site += 1
        return _error(403, "cross-site request refused: commands come only from the dashboard's own page")

    def lease_json(client: Client | None) -> dict[str, Any] | None:
        held = lease.current()
        if held is None:
            return None
        return {
            "label": held.label,
            "since_s": round(max(0.0, clock() - held.since), 1),
            "you": client is not None and client.id == held.holder,
        }

    def status_payload(t: Telemetry, client: Client | None) -> dict[str, Any]:
        age = max(0.0, clock() - t.at)
        data = t.to_json()
        data.update(server_time=time.time(), age_s=round(age, 3), stale=age > stale_after_s)
        data["driver"] = lease_json(client)
        return data

    def no_telemetry() -> dict[str, Any]:
        return {
            "error": "no telemetry yet: the supervisor has not published a snapshot; "
            "wait a few seconds, or check that `ramudroid run` is running",
            "server_time": time.time(),
        }

    def enqueue(cmd: Command) -> JSONResponse:
        if not commands.put(cmd):
            counters.commands_dropped += 1
            return _error(
                503,
                f"command queue full ({commands.dropped} dropped): the supervisor is not reading commands; "
                "check that `ramudroid run` is running, then press again",
            )
        counters.commands_accepted += 1
        return _json({"ok": True, "kind": str(cmd.kind), "at": cmd.at}, status_code=202)

    def do_estop(request: Request) -> JSONResponse:
        result = stop(f"web {_client_ip(request.scope)}")
        if not result.applied:
            counters.commands_dropped += 1
            return _error(503, f"STOP NOT APPLIED: queue full and the latch not saved ({result.error})")
        counters.estops += 1
        counters.commands_accepted += 1
        body: dict[str, Any] = {"ok": True, "kind": "estop", "at": clock(), "persisted": result.persisted}
        if not result.persisted and stop.store is not None:
            counters.estops_not_saved += 1
            body["warning"] = f"stopped, but not saved: it will not survive a restart ({result.error})"
        return _json(body, status_code=202)

    def open_stream() -> bool:
        if counters.streams_open >= max_streams:
            counters.streams_refused += 1
            return False
        counters.streams_open += 1
        return True

    # ---- the page -----------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        connect = "'self'"
        if estop_port:
            host = split_host(request.headers.get("host", ""))[0]
            connect += f" {request.url.scheme}://{host}:{estop_port}"
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": f"default-src 'self'; connect-src {connect}; img-src 'self' data:; "
                "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
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

    # ---- login --------------------------------------------------------------------------------------------

    @app.get("/api/session")
    async def session_info(request: Request) -> JSONResponse:
        client = identify(request)
        return _json(
            {
                "login_required": bool(password_hash),
                "logged_in": client is not None and client.id.startswith("session:"),
                "may_command": client is not None,
                "you": client.label if client is not None else None,
            },
            headers={"Cache-Control": "no-store"},
        )

    @app.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        refused = cross_site(request)
        if refused is not None:
            return refused
        if not password_hash:
            return _error(404, "no login on this robot: web.password_hash is not set")
        ip = _client_ip(request.scope)
        wait = limiter.retry_after(ip)
        if wait > 0:
            counters.logins_refused += 1
            return _error(
                429, f"too many wrong passwords: try again in {wait:.0f} s", {"Retry-After": f"{wait:.0f}"}
            )
        if not _is_json(request):
            counters.commands_wrong_type += 1
            return _error(415, "send the password as application/json")
        body = await _read_body(request, 1024)
        if body is None:
            return _error(413, "login body larger than 1024 bytes")
        try:
            creds = _LOGIN_ADAPTER.validate_json(body)
        except ValidationError as err:
            return _error(422, f"bad login: {_describe(err)}")
        async with login_slots:
            ok = await asyncio.to_thread(verify_password, creds.password, password_hash)
        if not ok:
            counters.logins_failed += 1
            if limiter.failed(ip):
                message = f"dashboard: too many wrong passwords (last from {ip}); logins paused for a while"
                outbox.add(Alert("login_lockout", Severity.WARNING, message, clock()))
            return _error(401, "wrong password")
        counters.logins += 1
        cookie = sessions.create(ip)
        resp = _json({"ok": True})
        resp.set_cookie(
            COOKIE,
            cookie,
            max_age=int(sessions.lifetime_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return resp

    @app.post("/api/logout")
    async def logout(request: Request) -> JSONResponse:
        refused = cross_site(request)
        if refused is not None:
            return refused
        client = identify(request)
        if client is not None:
            lease.release(client.id)
        sessions.end(request.cookies.get(COOKIE))
        resp = _json({"ok": True})
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    # ---- status -------------------------------------------------------------------------------------------

    @app.get("/api/status")
    async def status(request: Request) -> JSONResponse:
        if not may_read(request):
            return unauthorized()
        t = telemetry.latest()
        if t is None:
            return _json(no_telemetry(), status_code=503)
        return _json(status_payload(t, identify(request)), headers={"Cache-Control": "no-store"})

    @app.get("/api/events")
    async def events(request: Request) -> Response:
        if not may_read(request):
            return unauthorized()
        client = identify(request)
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
                        data = json.dumps(_finite(status_payload(t, client)), separators=(",", ":"))
                        yield f"data: {data}\n\n"
                    await asyncio.sleep(stream_interval_s)
            finally:
                counters.streams_open -= 1

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # ---- commands -----------------------------------------------------------------------------------------

    @app.post("/api/command")
    async def command(request: Request) -> JSONResponse:
        refused = cross_site(request)
        if refused is not None:
            return refused
        if not _is_json(request):
            counters.commands_wrong_type += 1
            return _error(415, "commands must be sent as application/json")
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            counters.commands_too_large += 1
            return _error(413, f"command body larger than {MAX_BODY_BYTES} bytes")
        if _is_estop(body):
            return do_estop(request)
        client = identify(request)
        if client is None:
            return unauthorized()
        try:
            parsed = _COMMAND_ADAPTER.validate_json(body)
        except ValidationError as err:
            counters.commands_invalid += 1
            return _error(422, f"bad command: {_describe(err)}")
        kind = parsed.kind
        if kind == "take_over":
            lease.take(client.id, client.label)
            return enqueue(Command(CommandKind.DRIVE, at=clock(), left=0.0, right=0.0, source="web"))
        held = lease.blocks(client.id)
        if held is not None:
            counters.lease_conflicts += 1
            return _json(
                {
                    "error": f"{held.label} is driving; you may press STOP, or take over explicitly",
                    "driver": lease_json(client),
                },
                status_code=409,
            )
        if isinstance(parsed, SetModeBody):
            if parsed.mode is Mode.MANUAL:
                lease.take(client.id, client.label)
            else:
                lease.release(client.id)
            return enqueue(Command(CommandKind.SET_MODE, at=clock(), mode=parsed.mode, source="web"))
        if isinstance(parsed, DriveBody):
            lease.take(client.id, client.label)
            return enqueue(
                Command(CommandKind.DRIVE, at=clock(), left=parsed.left, right=parsed.right, source="web")
            )
        return enqueue(Command(CommandKind(kind), at=clock(), source="web"))

    @app.post("/api/estop")
    async def estop_now(request: Request) -> JSONResponse:
        # Nothing to parse, nothing to refuse but another site: whatever the body says, this only stops.
        refused = cross_site(request)
        if refused is not None:
            return refused
        return do_estop(request)

    @app.get("/api/alerts")
    async def alerts(request: Request, n: Annotated[int, Query(ge=1, le=100)] = 20) -> JSONResponse:
        if not may_read(request):
            return unauthorized()
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
    async def camera_jpg(request: Request) -> Response:
        if not may_read(request):
            return unauthorized()
        if camera is None:
            return _error(404, "no camera on this robot (hardware.camera = 'none')")
        data = await frame()
        if data is None:
            return _error(503, "camera: no frame available yet; try again in a second")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/camera.mjpeg")
    async def camera_mjpeg(request: Request) -> Response:
        if not may_read(request):
            return unauthorized()
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
    async def site(request: Request) -> JSONResponse:
        if not may_read(request):
            return unauthorized()
        if site_geojson is None:
            return _error(404, "no site map configured (robot.site)")
        return _json(site_geojson, headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        if not may_read(request):
            return _json({"ok": True})  # alive; the details are for logged-in operators
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
