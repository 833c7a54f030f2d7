"""The dashboard's HTTP API and page: reads the one telemetry snapshot, sends commands through the one queue.

create_app builds the shared WebContext (web/context.py) and includes one router per concern (web/routes/).

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

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue, EmergencyStop
from robot.config import Settings
from robot.errors import SiteError
from robot.telemetry import TelemetryBus, part_list
from web.auth import DriveLease, HostCheck, LoginLimiter, Sessions
from web.context import WebContext, WebCounters, client_ip, describe, error
from web.routes import camera as camera_routes
from web.routes import commands as command_routes
from web.routes import login as login_routes
from web.routes import page as page_routes
from web.routes import status as status_routes


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
            resp = error(421, f"this is not the dashboard of {host[:60]!r}: open it by the robot's address")
            await resp(scope, receive, send)
            return
        if scope.get("path") != "/api/estop" and not self._take(client_ip(scope)):
            self.counters.rate_limited += 1
            resp = error(429, "too many requests from this address; slow down", {"Retry-After": "1"})
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


def _check_site(site: dict[str, Any] | None) -> None:
    if site is None:
        return
    if not isinstance(site, dict) or site.get("type") not in ("FeatureCollection", "Feature"):
        got = site.get("type") if isinstance(site, dict) else type(site).__name__
        raise SiteError(
            f"dashboard site map: GeoJSON type {got!r}; expected a FeatureCollection (fence, route, shelter)"
        )


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
    parts: list[dict[str, Any]] | None = None,
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
    `parts`: the polled parts the page shows a reading of (robot.telemetry.part_list, from the parts table);
    by default the table with the default settings' freshness limits.
    """
    _check_site(site_geojson)
    counters = WebCounters()
    ctx = WebContext(
        telemetry=telemetry,
        commands=commands,
        outbox=outbox,
        stop=estop if estop is not None else EmergencyStop(commands, None, clock),
        counters=counters,
        # Logins last real time, whatever speed the simulated clock runs at.
        sessions=Sessions(session_s, real_clock),
        limiter=LoginLimiter(clock=real_clock),
        lease=DriveLease(lease_s, clock),
        clock=clock,
        token=token,
        password_hash=password_hash,
        estop_port=estop_port,
        stale_after_s=stale_after_s,
        max_streams=max_streams,
    )
    page_config = {
        "camera": camera is not None,
        "site": site_geojson is not None,
        "login_required": bool(password_hash),
        "estop_port": estop_port,
        "tray_capacity_kg": tray_capacity_kg,
        "stale_after_s": stale_after_s,
        "parts": part_list(Settings()) if parts is None else parts,
    }

    app = FastAPI(title="Ramudroid dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.counters = counters
    app.state.lease = ctx.lease
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
        return error(422, f"invalid request: {describe(err)}")

    app.include_router(page_routes.router(page_config, estop_port=estop_port))
    app.include_router(login_routes.router(ctx))
    app.include_router(
        status_routes.router(ctx, site_geojson=site_geojson, stream_interval_s=stream_interval_s)
    )
    app.include_router(command_routes.router(ctx))
    app.include_router(
        camera_routes.router(ctx, camera, interval_s=camera_interval_s, timeout_s=camera_timeout_s)
    )
    return app
