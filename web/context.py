"""What every dashboard route shares: the telemetry snapshot, the command queue, who is asking, and the replies."""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import Scope

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue, EmergencyStop
from robot.core.types import Command
from robot.telemetry import Telemetry, TelemetryBus
from web.auth import COOKIE, DriveLease, LoginLimiter, Sessions, origin_ok, split_host

MAX_BODY_BYTES = 4096  # a command is ~60 bytes; anything bigger is abuse or a bug


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


def finite(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_reply(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response with NaN/inf turned into null."""
    return JSONResponse(finite(data), status_code=status_code, headers=headers)


def error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape: {"error": message}."""
    return json_reply({"error": message}, status_code=status_code, headers=headers)


def describe(err: ValidationError | RequestValidationError) -> str:
    """One readable line from pydantic's errors, e.g. "drive.left: Input should be a valid number"."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
    return "; ".join(parts) or "invalid input"


async def read_body(request: Request, limit: int) -> bytes | None:
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


def is_json(request: Request) -> bool:
    """True when the request says its body is application/json."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def client_ip(scope: Scope) -> str:
    """The peer's address, as the server saw it."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _client_tag(request: Request) -> str:
    """The page's own random id (X-Ramudroid-Client, or ?client= for the event stream), to tell two browsers
    apart without a login."""
    tag = request.headers.get("x-ramudroid-client", "") or request.query_params.get("client", "")
    return tag if 1 <= len(tag) <= 32 and tag.replace("-", "").isalnum() else ""


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent a request: a stable id for the driving lease and a label other operators can read."""

    id: str
    label: str


@dataclass
class WebContext:
    """The dashboard's state and the checks every route makes: built once by create_app, read by the routers."""

    telemetry: TelemetryBus
    commands: CommandQueue
    outbox: AlertOutbox
    stop: EmergencyStop
    counters: WebCounters
    sessions: Sessions
    limiter: LoginLimiter
    lease: DriveLease
    clock: Callable[[], float]
    token: str = ""
    password_hash: str = ""
    estop_port: int = 0
    stale_after_s: float = 3.0
    max_streams: int = 8
    login_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    def identify(self, request: Request) -> Client | None:
        """The authenticated client, or None."""
        ip = client_ip(request.scope)
        token_bytes = self.token.encode()
        if token_bytes:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            # compare_digest: the check takes the same time whatever prefix of the token was guessed right.
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token_bytes):
                return Client(f"token:{ip}", f"a script at {ip}")
        if self.password_hash:
            session = self.sessions.get(request.cookies.get(COOKIE))
            return (
                None if session is None else Client(f"session:{session.id}", f"operator {session.id} at {ip}")
            )
        if token_bytes:
            return None
        tag = _client_tag(request) or ip
        return Client(f"client:{tag}", f"browser {tag[:6]} at {ip}")

    def may_read(self, request: Request) -> bool:
        """Reading needs a login only when a password is set."""
        return not self.password_hash or self.identify(request) is not None

    def unauthorized(self) -> JSONResponse:
        """401, counted, saying what is missing."""
        self.counters.commands_unauthorized += 1
        if self.password_hash:
            return error(401, "log in first: this needs the dashboard password (STOP never does)")
        return error(
            401,
            "missing or wrong token: send 'Authorization: Bearer <web.token>' (the e-stop needs none)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def cross_site(self, request: Request) -> JSONResponse | None:
        """403 when a browser on another site sent this POST."""
        also: tuple[str, ...] = ()
        if self.estop_port:
            host = split_host(request.headers.get("host", ""))[0]
            also = (f"{host}:{self.estop_port}",)
        if origin_ok(request.headers.get("origin"), request.headers.get("host", ""), also):
            return None
        self.counters.commands_cross_site += 1
        return error(403, "cross-site request refused: commands come only from the dashboard's own page")

    def lease_json(self, client: Client | None) -> dict[str, Any] | None:
        """Who drives, for how long, and whether it is the asker."""
        held = self.lease.current()
        if held is None:
            return None
        return {
            "label": held.label,
            "since_s": round(max(0.0, self.clock() - held.since), 1),
            "you": client is not None and client.id == held.holder,
        }

    def status_payload(self, t: Telemetry, client: Client | None) -> dict[str, Any]:
        """The snapshot as the page reads it: aged, flagged stale, and who drives."""
        age = max(0.0, self.clock() - t.at)
        data = t.to_json()
        data.update(server_time=time.time(), age_s=round(age, 3), stale=age > self.stale_after_s)
        data["driver"] = self.lease_json(client)
        return data

    @staticmethod
    def no_telemetry() -> dict[str, Any]:
        """The answer before the supervisor's first snapshot."""
        return {
            "error": "no telemetry yet: the supervisor has not published a snapshot; "
            "wait a few seconds, or check that `ramudroid run` is running",
            "server_time": time.time(),
        }

    def enqueue(self, cmd: Command) -> JSONResponse:
        """Queue a command for the supervisor: 202, or 503 when the queue is full."""
        if not self.commands.put(cmd):
            self.counters.commands_dropped += 1
            return error(
                503,
                f"command queue full ({self.commands.dropped} dropped): the supervisor is not reading commands; "
                "check that `ramudroid run` is running, then press again",
            )
        self.counters.commands_accepted += 1
        return json_reply({"ok": True, "kind": str(cmd.kind), "at": cmd.at}, status_code=202)

    def do_estop(self, request: Request) -> JSONResponse:
        """Latch and queue an e-stop; says whether it will survive a restart."""
        result = self.stop(f"web {client_ip(request.scope)}")
        if not result.applied:
            self.counters.commands_dropped += 1
            return error(503, f"STOP NOT APPLIED: queue full and the latch not saved ({result.error})")
        self.counters.estops += 1
        self.counters.commands_accepted += 1
        body: dict[str, Any] = {
            "ok": True,
            "kind": "estop",
            "at": self.clock(),
            "persisted": result.persisted,
        }
        if not result.persisted and self.stop.store is not None:
            self.counters.estops_not_saved += 1
            body["warning"] = f"stopped, but not saved: it will not survive a restart ({result.error})"
        return json_reply(body, status_code=202)

    def open_stream(self) -> bool:
        """Count a new SSE/MJPEG client, or refuse it when `max_streams` are open."""
        if self.counters.streams_open >= self.max_streams:
            self.counters.streams_refused += 1
            return False
        self.counters.streams_open += 1
        return True

    def too_many_streams(self) -> JSONResponse:
        """503 for a stream over the limit."""
        return error(503, f"too many live connections ({self.max_streams}); close another dashboard tab")
