"""The fleet page: every robot on one MQTT broker on one map, with its state, alerts and an e-stop each and for all.

It reads only what the robots publish to the broker (robot/mqtt, docs/mqtt.md) and writes only commands to it: no
hardware, no robot process. Stopping is never gated: the e-stop buttons need no login and only ever send a stop.
Every other command needs a login (scrypt password hash from `ramudroid fleet passwd`, an HttpOnly SameSite
session cookie) and is signed with the robot's own key, derived from fleet.master_key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from robot.errors import MqttError
from robot.mqtt.auth import derive_key, sign
from robot.mqtt.topics import ALL, Topics, robot_of, valid_name

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "fleet_static"
MAX_PAYLOAD = 8192
MAX_BODY = 1024
MAX_STREAMS = 32  # live pages at once
ALERTS_PER_ROBOT = 20
SESSION_COOKIE = "fleet_session"

# What the page shows of a robot's state, with the type each must have (anything else is dropped as bad data).
STATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "wall": (int, float),
    "state": str,
    "mode": str,
    "reason": str,
    "goal": str,
    "power_source": str,
    "moving": bool,
    "brushing": bool,
    "battery_v": (int, float),
    "battery_pct": (int, float),
    "tray_kg": (int, float),
    "tray_pct": (int, float),
    "raining": bool,
    "panel_w": (int, float),
    "latitude": (int, float),
    "longitude": (int, float),
    "link_ok": bool,
    "route_progress": (int, float),
}
ALERT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "kind": str,
    "severity": str,
    "message": str,
    "wall": (int, float),
}
RESULT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "nonce": str,
    "ok": bool,
    "outcome": str,
    "detail": str,
    "wall": (int, float),
}


# ----- passwords and sessions ---------------------------------------------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A `fleet.password_hash` value: scrypt$n$r$p$salt$hash (base64)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def check_password_hash(stored: str) -> None:
    """Raise MqttError when `stored` is not a hash_password() value (a mistake in the config file)."""
    parts = stored.split("$")
    try:
        ok = len(parts) == 6 and parts[0] == "scrypt" and all(int(p) > 0 for p in parts[1:4])
        ok = ok and len(base64.b64decode(parts[4], validate=True)) >= 8
        ok = ok and len(base64.b64decode(parts[5], validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise MqttError(
            "fleet.password_hash: not a hash from `ramudroid fleet passwd`; run it and paste its line"
        )


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (constant-time compare)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode()[:1024],
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, want)


class Sessions:
    """Logged-in browsers: random tokens with an expiry, at most `limit` at once (the oldest goes first)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic, limit: int = 100) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._limit = limit
        self._tokens: dict[str, float] = {}

    def new(self) -> str:
        now = self._clock()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        while len(self._tokens) >= self._limit:
            self._tokens.pop(next(iter(self._tokens)))
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self.ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        exp = self._tokens.get(token or "")
        return exp is not None and exp > self._clock()

    def end(self, token: str | None) -> None:
        self._tokens.pop(token or "", None)


# ----- what the broker says -----------------------------------------------------------------------------------


def _clean(data: Any, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any] | None:
    """Only the known fields with the right types (strings cut to 200 characters, numbers finite)."""
    if not isinstance(data, dict):
        return None
    out: dict[str, Any] = {}
    for key, typ in fields.items():
        v = data.get(key)
        if v is None or not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            continue
        out[key] = v[:200] if isinstance(v, str) else v
    return out


@dataclass
class RobotView:
    """What the fleet knows of one robot."""

    name: str
    status: str = "unknown"
    state: dict[str, Any] | None = None
    seen: float = 0.0  # fleet's wall time of the last message from it
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALERTS_PER_ROBOT))
    alert_ids: set[str] = field(default_factory=set)
    result: dict[str, Any] | None = None


class FleetView:
    """Every robot's latest state, status, alerts and command results, from the broker's messages."""

    def __init__(
        self,
        prefix: str = "ramudroid",
        *,
        stale_s: float = 10.0,
        max_robots: int = 2000,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.stale_s = stale_s
        self.max_robots = max_robots
        self._wall = wall
        self._robots: dict[str, RobotView] = {}
        self._lock = threading.Lock()
        self.counters = {"messages": 0, "rejected": 0, "alerts": 0, "duplicates": 0}
        self.broker_connected = False

    @property
    def subscriptions(self) -> list[str]:
        p = self.prefix
        return [f"{p}/+/state", f"{p}/+/status", f"{p}/+/alerts", f"{p}/+/alert", f"{p}/+/cmd/result"]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._robots)

    def handle(self, topic: str, payload: bytes) -> bool:
        """Take one message; False (and counted) when it is not something a robot would send."""
        with self._lock:
            self.counters["messages"] += 1
            ok = self._handle(topic, payload)
            if not ok:
                self.counters["rejected"] += 1
            return ok

    def _handle(self, topic: str, payload: bytes) -> bool:
        where = robot_of(self.prefix, topic)
        if where is None or where[0] == ALL or len(payload) > MAX_PAYLOAD:
            return False
        name, kind = where
        if kind not in ("state", "status", "alerts", "alert", "cmd/result"):
            return False
        robot = self._robots.get(name)
        if robot is None:
            if len(self._robots) >= self.max_robots or not payload:
                return False
            robot = self._robots[name] = RobotView(name)
        if kind == "status":
            if payload not in (b"online", b"offline"):
                return False
            robot.status = payload.decode()
            return True
        if not payload:  # a retained message being cleared
            return True
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return False
        if kind == "state":
            state = _clean(data, STATE_FIELDS)
            if not state or "state" not in state:
                return False
            robot.state = state
            robot.seen = self._wall()
        elif kind in ("alerts", "alert"):
            alert = _clean(data, ALERT_FIELDS)
            if not alert or "id" not in alert or "kind" not in alert:
                return False
            if alert["id"] in robot.alert_ids:
                self.counters["duplicates"] += 1  # QoS 1 is at-least-once; the retained copy repeats one too
                return True
            if len(robot.alert_ids) > 10 * ALERTS_PER_ROBOT:
                robot.alert_ids = {a["id"] for a in robot.alerts}
            robot.alert_ids.add(alert["id"])
            robot.alerts.append(alert)
            self.counters["alerts"] += 1
        else:
            result = _clean(data, RESULT_FIELDS)
            if result is None:
                return False
            robot.result = result
        return True

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: every robot (name order), the newest alerts across the fleet, counters."""
        now = self._wall()
        with self._lock:
            robots = []
            alerts: list[dict[str, Any]] = []
            for name in sorted(self._robots):
                r = self._robots[name]
                wall = (r.state or {}).get("wall")
                age = now - r.seen if r.seen else None
                robots.append(
                    {
                        "name": name,
                        "status": r.status,
                        "state": r.state,
                        "age_s": round(age, 1) if age is not None else None,
                        "stale": r.status != "online" or age is None or age > self.stale_s,
                        "data_age_s": round(now - wall, 1) if isinstance(wall, int | float) else None,
                        "alerts": list(r.alerts)[-5:],
                        "result": r.result,
                    }
                )
                alerts += [{**a, "robot": name} for a in r.alerts]
            alerts.sort(key=lambda a: a.get("wall", 0), reverse=True)
            return {
                "robots": robots,
                "alerts": alerts[:50],
                "counters": dict(self.counters),
                "broker": self.broker_connected,
                "server_time": now,
            }


class FleetLink:
    """The fleet's MQTT client: feeds a FleetView, publishes stops and signed commands (paho's own thread)."""

    def __init__(
        self,
        view: FleetView,
        *,
        host: str,
        port: int = 1883,
        username: str = "",
        password: str = "",
        tls: bool = False,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        keepalive_s: int = 30,
    ) -> None:
        self.view = view
        self.host, self.port = host, port
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"ramudroid-fleet-{secrets.token_hex(4)}",
            clean_session=True,
        )
        if username:
            self.client.username_pw_set(username, password or None)
        if tls:
            self.client.tls_set(
                ca_certs=ca_file or None, certfile=cert_file or None, keyfile=key_file or None
            )
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._keepalive = keepalive_s
        self._started = False

    def start(self) -> None:
        """Connect in the background and keep reconnecting (the page shows whether the broker is there)."""
        if not self._started:
            self._started = True
            self.client.connect_async(self.host, self.port, keepalive=self._keepalive)
            self.client.loop_start()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("fleet: broker %s:%d refused us: %s", self.host, self.port, reason)
            return
        self.view.broker_connected = True
        client.subscribe([(t, 1) for t in self.view.subscriptions])
        log.info("fleet: connected to %s:%d", self.host, self.port)

    def _on_disconnect(self, *_: Any) -> None:
        self.view.broker_connected = False

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            self.view.handle(msg.topic, bytes(msg.payload))
        except Exception:  # a bad message must not stop the fleet page's feed
            log.exception("fleet: error handling %s", msg.topic)

    def publish(self, messages: list[tuple[str, bytes]], timeout_s: float = 3.0) -> list[bool]:
        """Send each (topic, payload) at QoS 1, all at once; True for each the broker acknowledged within
        `timeout_s` (so the page never claims a stop that did not go out). Blocks: call it from a thread."""
        if not self.client.is_connected():
            return [False] * len(messages)
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                continue
            with contextlib.suppress(RuntimeError, ValueError):  # the connection went: not published
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        return [i.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and i.is_published() for i in infos]

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False


# ----- the web app --------------------------------------------------------------------------------------------


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        data, status_code=status_code, headers={"Cache-Control": "no-store", **(headers or {})}
    )


def _error(status_code: int, message: str) -> JSONResponse:
    return _json({"error": message}, status_code)


async def _body_json(request: Request) -> dict[str, Any] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def create_fleet_app(
    view: FleetView,
    publish: Callable[[list[tuple[str, bytes]]], list[bool]],
    *,
    password_hash: str = "",
    master_key: str = "",
    session_s: float = 43200.0,
    wall: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
    max_login_failures: int = 5,
) -> FastAPI:
    """The fleet page and its API. `publish([(topic, payload), ...])` sends at QoS 1 and says, for each, whether
    the broker took it (FleetLink.publish); it is called in a worker thread."""
    if password_hash:
        check_password_hash(password_hash)
    sessions = Sessions(session_s, clock)
    control = bool(password_hash and master_key)
    failures: deque[float] = deque()
    files = {p.name: p.read_bytes() for p in STATIC_DIR.iterdir() if p.suffix in (".js", ".css", ".html")}
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    version = hashlib.sha256(b"".join(files.values())).hexdigest()[:10]
    page_config = {"control": control, "prefix": view.prefix, "stale_s": view.stale_s}
    page = (
        files["fleet.html"]
        .decode()
        .replace("__CONFIG__", json.dumps(page_config).replace("</", "<\\/"))
        .replace("__VERSION__", version)
        .encode()
    )
    app = FastAPI(title="Ramudroid fleet", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.closing = False

    def logged_in(request: Request) -> bool:
        return sessions.valid(request.cookies.get(SESSION_COOKIE))

    def same_origin(request: Request) -> bool:
        # Cookies ride along with cross-site requests; a browser always sends Origin on a cross-site POST.
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return origin.split("://", 1)[-1] == request.headers.get("host", "")

    async def send(messages: list[tuple[str, bytes]]) -> list[bool]:
        # In a thread: waiting for the broker's acknowledgements must not stall the page's other requests.
        return await asyncio.to_thread(publish, messages)

    async def stop(names: list[str], fleet_wide: bool) -> JSONResponse:
        targets = ([ALL] if fleet_wide else []) + names
        topics = [f"{view.prefix}/{ALL}/cmd" if t == ALL else Topics(view.prefix, t).cmd for t in targets]
        results = await send([(topic, b'{"kind":"estop"}') for topic in topics])
        sent = [t for t, ok in zip(targets, results, strict=True) if ok]
        failed = [t for t, ok in zip(targets, results, strict=True) if not ok]
        if failed:
            log.error("fleet: e-stop NOT delivered to the broker for %s", ", ".join(failed))
            return _json(
                {
                    "ok": False,
                    "sent": sent,
                    "failed": failed,
                    "error": "broker unreachable: the stop did NOT go out",
                },
                503,
            )
        log.warning("fleet: e-stop sent to %s", ", ".join(sent))
        return _json({"ok": True, "sent": sent})

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": "default-src 'self'; object-src 'none'; frame-ancestors 'none'; "
                "base-uri 'none'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files or Path(name).suffix not in types:
            return _error(404, f"no static file {name!r}")
        return Response(files[name], media_type=types[Path(name).suffix])

    @app.get("/api/fleet")
    async def fleet(request: Request) -> JSONResponse:
        return _json({**view.snapshot(), "control": control, "logged_in": logged_in(request)})

    streams = [0]

    @app.get("/api/events")
    async def events() -> Response:
        if streams[0] >= MAX_STREAMS:
            return _error(503, f"too many live pages ({MAX_STREAMS}); close another tab")
        streams[0] += 1

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while not app.state.closing:
                    yield f"data: {json.dumps(view.snapshot(), separators=(',', ':'))}\n\n"
                    await asyncio.sleep(1.0)
            finally:
                streams[0] -= 1

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.post("/api/estop")
    async def estop_all() -> JSONResponse:
        # Fleet-wide topic for robots the page has not heard from yet, and each known robot's own topic.
        return await stop(view.names(), fleet_wide=True)

    @app.post("/api/robots/{name}/estop")
    async def estop_one(name: str) -> JSONResponse:
        if not valid_name(name):
            return _error(404, f"no robot {name[:64]!r}")
        return await stop([name], fleet_wide=False)

    @app.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        if not control:
            return _error(403, "control is off: set fleet.password_hash and fleet.master_key (docs/mqtt.md)")
        if not same_origin(request):
            return _error(403, "cross-site request refused")
        now = clock()
        while failures and now - failures[0] > 60.0:
            failures.popleft()
        if len(failures) >= max_login_failures:
            return _error(429, "too many wrong passwords; wait a minute")
        data = await _body_json(request)
        password = data.get("password") if data else None
        if not isinstance(password, str) or not verify_password(password, password_hash):
            failures.append(now)
            return _error(401, "wrong password")
        resp = _json({"ok": True})
        resp.set_cookie(
            SESSION_COOKIE,
            sessions.new(),
            max_age=int(session_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return resp

    @app.post("/api/logout")
    async def logout(request: Request) -> JSONResponse:
        sessions.end(request.cookies.get(SESSION_COOKIE))
        resp = _json({"ok": True})
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @app.post("/api/robots/{name}/command")
    async def command(name: str, request: Request) -> JSONResponse:
        if not valid_name(name):
            return _error(404, f"no robot {name[:64]!r}")
        if not control:
            return _error(403, "control is off: set fleet.password_hash and fleet.master_key (docs/mqtt.md)")
        if not same_origin(request):
            return _error(403, "cross-site request refused")
        if not logged_in(request):
            return _error(401, "log in first (the e-stop needs no login)")
        data = await _body_json(request)
        if data is None:
            return _error(422, "body must be a JSON object of at most 1 KB")
        kind = data.get("kind")
        if kind == "set_mode" and data.get("mode") in ("auto", "paused") and set(data) == {"kind", "mode"}:
            fields = {"kind": kind, "mode": data["mode"]}
        elif kind in ("reset", "tray_emptied") and set(data) == {"kind"}:
            fields = {"kind": kind}
        else:
            return _error(422, "expected set_mode (auto or paused), reset or tray_emptied")
        nonce = secrets.token_hex(12)
        payload = sign(derive_key(master_key, name), name, fields, wall=wall(), nonce=nonce)
        if not (await send([(Topics(view.prefix, name).cmd, payload)]))[0]:
            return _error(503, "broker unreachable: the command did not go out")
        return _json({"ok": True, "nonce": nonce}, 202)

    return app
