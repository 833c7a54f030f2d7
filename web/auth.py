"""Who may use the dashboard: login sessions, the login rate limit, Host and Origin checks, the driving lease."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "ramudroid_session"


@dataclass(slots=True)
class Session:
    """One logged-in browser: a random token (only its hash is kept), who, and until when."""

    id: str  # short, shown to other clients ("session 3f2a9c")
    ip: str
    expires: float


class Sessions:
    """Login sessions in memory (a restart logs everyone out); at most `max_sessions`, oldest evicted."""

    def __init__(
        self, lifetime_s: float, clock: Callable[[], float] = time.monotonic, max_sessions: int = 64
    ) -> None:
        self.lifetime_s = lifetime_s
        self.clock = clock
        self.max_sessions = max_sessions
        self._by_hash: dict[str, Session] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create(self, ip: str) -> str:
        """A new session for a browser at `ip`; returns the cookie value."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._by_hash = {k: s for k, s in self._by_hash.items() if s.expires > now}
            while len(self._by_hash) >= self.max_sessions:
                oldest = min(self._by_hash, key=lambda k: self._by_hash[k].expires)
                del self._by_hash[oldest]
            self._by_hash[self._key(token)] = Session(secrets.token_hex(3), ip, now + self.lifetime_s)
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value, or None (absent, unknown or expired)."""
        if not token or len(token) > 100:
            return None
        key = self._key(token)
        with self._lock:
            s = self._by_hash.get(key)
            if s is not None and s.expires <= self.clock():
                del self._by_hash[key]
                return None
            return s

    def end(self, token: str | None) -> None:
        """Log out."""
        if token:
            with self._lock:
                self._by_hash.pop(self._key(token), None)


class LoginLimiter:
    """Failed logins: `per_client` per `window_s` from one address, `overall` from all together; beyond that
    every attempt is refused until the window has passed (the answer says when)."""

    def __init__(
        self,
        per_client: int = 5,
        overall: int = 20,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window_s = window_s
        self.clock = clock
        self._failures: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        while self._failures and now - self._failures[0][0] >= self.window_s:
            self._failures.popleft()

    def retry_after(self, ip: str) -> float:
        """Seconds until `ip` may try again; 0 when it may try now."""
        now = self.clock()
        with self._lock:
            self._trim(now)
            mine = [t for t, who in self._failures if who == ip]
            if len(mine) >= self.per_client:
                return mine[-self.per_client] + self.window_s - now
            if len(self._failures) >= self.overall:
                return self._failures[-self.overall][0] + self.window_s - now
            return 0.0

    def failed(self, ip: str) -> bool:
        """Count a failure; True when it just locked `ip` (or everyone) out."""
        now = self.clock()
        with self._lock:
            self._failures.append((now, ip))
        return self.retry_after(ip) > 0


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class HostCheck:
    """Which Host headers the dashboard answers: IP addresses, localhost, this machine's names and
    web.allowed_hosts. Anything else is a DNS-rebinding attempt (a stranger's domain pointed at the robot)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = {"localhost"}
        try:
            hostname = socket.gethostname()
        except OSError:
            hostname = ""
        if hostname:
            names |= {hostname, f"{hostname}.local", socket.getfqdn(hostname)}
        self.names = frozenset(n.lower().rstrip(".") for n in (*names, *extra) if n)

    def ok(self, host_header: str) -> bool:
        """True when a request's Host header names this robot."""
        host = split_host(host_header)[0]
        return bool(host) and (_is_ip(host) or host in self.names)


def split_host(host_header: str) -> tuple[str, str]:
    """(lower-case host, port) of a Host header ("[::1]:8080" -> ("[::1]", "8080"))."""
    h = host_header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return (h[: end + 1], h[end + 2 :]) if end > 0 else ("", "")
    host, _, port = h.partition(":")
    return host.rstrip("."), port


def origin_ok(origin: str | None, host_header: str, also: Iterable[str] = ()) -> bool:
    """A browser's Origin must be this dashboard itself (same host and port as the request's Host header), or
    one of `also`; no Origin at all is a script or an old client, never a cross-site browser request."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    netloc = parts.netloc.lower()
    return netloc == host_header.strip().lower() or netloc in {a.lower() for a in also}


@dataclass(slots=True)
class Lease:
    """Who drives by hand: one client at a time, renewed by its drive ticks."""

    holder: str
    label: str
    since: float
    renewed: float


class DriveLease:
    """The manual-driving lease. A client takes it by driving or choosing Manual; it lapses `lease_s` after
    that client's last drive tick. Others may only e-stop or take over explicitly."""

    def __init__(self, lease_s: float, clock: Callable[[], float]) -> None:
        self.lease_s = lease_s
        self.clock = clock
        self._lease: Lease | None = None
        self._lock = threading.Lock()

    def current(self) -> Lease | None:
        """The lease if it is live."""
        with self._lock:
            lease = self._lease
            if lease is not None and self.clock() - lease.renewed > self.lease_s:
                self._lease = lease = None
            return lease

    def blocks(self, client: str) -> Lease | None:
        """The lease of someone else that keeps `client` from driving or changing modes, or None."""
        lease = self.current()
        return lease if lease is not None and lease.holder != client else None

    def take(self, client: str, label: str) -> None:
        """Hold or renew the lease (the caller checked blocks() first, or is taking over)."""
        now = self.clock()
        with self._lock:
            if self._lease is not None and self._lease.holder == client:
                self._lease.renewed = now
            else:
                self._lease = Lease(client, label, now, now)

    def release(self, client: str) -> None:
        """Give the lease back (leaving Manual)."""
        with self._lock:
            if self._lease is not None and self._lease.holder == client:
                self._lease = None
