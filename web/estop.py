"""The e-stop listener: a tiny HTTP server on its own port and thread that does one thing, stop the robot.

It stays reachable when the dashboard is flooded or held by slow clients: it shares nothing with the dashboard's
server but the process, reads at most 2 KB per request, gives each connection 2 s, and when all its slots are
taken it drops the oldest connection to admit the newest (a slow client can never hold STOP out). It accepts
`POST /api/estop` and nothing else; whatever the body says, the answer is a stop. No login (stopping is never
gated), but the Host must name this robot and a browser's Origin must be the dashboard's own page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from robot.commands import EstopResult
from robot.errors import DashboardError
from web.auth import HostCheck, origin_ok, split_host

log = logging.getLogger(__name__)

MAX_REQUEST = 2048
_WAKE = "wake"  # the selector's mark on the socket close() writes to


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    ip: str
    opened: float
    buf: bytearray = field(default_factory=bytearray)


class EstopListener:
    """`POST /api/estop` on host:port, served by one thread; `stop(source)` latches and queues the e-stop."""

    def __init__(
        self,
        host: str,
        port: int,
        stop: Callable[[str], EstopResult],
        *,
        hosts: HostCheck,
        dashboard_port: int,
        max_connections: int = 64,
        deadline_s: float = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self._stop_robot = stop
        self._hosts = hosts
        self._dashboard_port = dashboard_port
        self.max_connections = max_connections
        self.deadline_s = deadline_s
        self.counters = dict.fromkeys(("estops", "refused", "evicted", "timed_out", "not_found"), 0)
        self._conns: dict[int, _Conn] = {}
        self._closing = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        # With no connection open the thread sleeps in select() until one comes (it used to wake five times a
        # second to look for close(), which on the robot costs more than the listener's work); close() writes
        # a byte here to wake it.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="estop-listener", daemon=True)

    def start(self) -> None:
        """Bind and serve; DashboardError when the port cannot be had."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, address = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as err:
            raise DashboardError(
                f"e-stop listener on {self.host}:{self.port}: {err}; set web.estop_port"
            ) from err
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError as err:
            sock.close()
            raise DashboardError(
                f"e-stop listener on {self.host}:{self.port}: cannot listen ({err.strerror}); "
                "set web.estop_port to a free port, or 0 for none"
            ) from err
        sock.setblocking(False)
        self._listener = sock
        self._sel.register(sock, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close every socket; safe to call twice."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for conn in list(self._conns.values()):
            self._drop(conn)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
        with contextlib.suppress(Exception):
            self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # ----- the loop -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                # Open connections have a deadline, checked every 0.2 s; none open: wait for a client or close().
                for key, _ in self._sel.select(timeout=0.2 if self._conns else None):
                    if key.data is _WAKE:
                        continue
                    if key.data is None:
                        self._accept()
                    else:
                        self._read(key.data)
                self._expire()
            except Exception:  # one bad client must not end the listener
                log.exception("e-stop listener: unexpected error; continuing")

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # out of file descriptors, say: the backlog keeps the rest waiting
                log.warning("e-stop listener: accept failed: %s", err)
                return
            if len(self._conns) >= self.max_connections:
                # Full: the oldest connection goes, so a crowd of slow clients can never hold a new STOP out.
                oldest = min(self._conns.values(), key=lambda c: c.opened)
                self.counters["evicted"] += 1
                self._drop(oldest)
            sock.setblocking(False)
            conn = _Conn(sock, str(addr[0]), time.monotonic())
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(MAX_REQUEST + 1 - len(conn.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)
            return
        conn.buf += data
        end = conn.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.buf) > MAX_REQUEST:
                self._answer(conn, 431, {"error": "request too large"})
            return
        # The body, if any, is never read: this endpoint does one thing whatever it is sent.
        self._handle(conn, bytes(conn.buf[:end]))

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if now - c.opened > self.deadline_s]:
            self.counters["timed_out"] += 1
            self._drop(conn)

    # ----- one request --------------------------------------------------------------------------------------

    def _handle(self, conn: _Conn, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) == 3 else ("", "")
        host = headers.get("host", "")
        if not self._hosts.ok(host):
            self.counters["refused"] += 1
            self._answer(conn, 421, {"error": "this is not the e-stop of that host name"})
            return
        origin = headers.get("origin")
        dashboard = f"{split_host(host)[0]}:{self._dashboard_port}"
        if not origin_ok(origin, host, (dashboard,)):
            self.counters["refused"] += 1
            self._answer(conn, 403, {"error": "cross-site request refused"})
            return
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
        if path != "/api/estop":
            self.counters["not_found"] += 1
            self._answer(conn, 404, {"error": "this port only takes POST /api/estop"})
            return
        if method == "OPTIONS":
            self._answer(
                conn,
                204,
                None,
                {
                    **cors,
                    "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": "content-type",
                },
            )
            return
        if method != "POST":
            self._answer(conn, 405, {"error": "POST /api/estop to stop the robot"}, {"Allow": "POST"})
            return
        result = self._stop_robot(f"e-stop port {conn.ip}")
        if not result.applied:
            self._answer(conn, 503, {"error": f"STOP NOT APPLIED ({result.error})"}, cors)
            return
        self.counters["estops"] += 1
        self._answer(conn, 202, {"ok": True, "kind": "estop", "persisted": result.persisted}, cors)

    def _answer(
        self, conn: _Conn, status: int, body: dict[str, object] | None, headers: dict[str, str] | None = None
    ) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        reason = {202: "Accepted", 204: "No Content", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                  421: "Misdirected Request", 431: "Request Header Fields Too Large",
                  503: "Service Unavailable"}.get(status, "OK")  # fmt: skip
        head = [f"HTTP/1.1 {status} {reason}", "Connection: close", "Cache-Control: no-store"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        # A few hundred bytes always fit the socket's send buffer: never wait for a slow reader.
        with contextlib.suppress(OSError):
            conn.sock.send(data)
        self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(Exception):
            self._sel.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
