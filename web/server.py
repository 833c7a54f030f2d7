"""Run the dashboard with uvicorn: on its own thread and event loop (DashboardThread), never the control loop's,
with a request deadline and per-client connection limits so slow or flooding clients cannot tie it up.

uvicorn has no deadline for a request's headers: a client that sends one byte a second keeps its connection (and
one of the server's slots) forever. GuardedH11 closes any connection whose request is not complete within
`request_timeout_s` of its first byte (or of connecting), and refuses connections beyond `max_per_client` from one
address and `max_connections` in all. Signal handling stays with the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from robot.errors import DashboardError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may hold: open connections, and the time to send a whole request."""

    request_timeout_s: float = 5.0  # headers and body, from the request's first byte (or from connecting)
    max_connections: int = 128
    max_per_client: int = 16


class ConnectionGuard:
    """Connection counts per client address (used on the server's own loop only) and what was refused."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open: dict[str, int] = {}
        self.total = 0
        self.refused = 0
        self.timed_out = 0

    def admit(self, ip: str) -> bool:
        if self.total >= self.limits.max_connections or self.open.get(ip, 0) >= self.limits.max_per_client:
            self.refused += 1
            return False
        self.open[ip] = self.open.get(ip, 0) + 1
        self.total += 1
        return True

    def release(self, ip: str) -> None:
        n = self.open.get(ip, 0) - 1
        if n > 0:
            self.open[ip] = n
        else:
            self.open.pop(ip, None)
        self.total -= 1


def guarded_protocol(guard: ConnectionGuard) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the guard's admission and the request deadline."""

    class GuardedH11(H11Protocol):
        _admitted = False
        _deadline: asyncio.TimerHandle | None = None
        _armed_for: Any = None
        _ip = ""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._ip = self.client[0] if self.client else "?"
            self._admitted = guard.admit(self._ip)
            if not self._admitted:
                transport.abort()
                return
            self._arm()

        def _arm(self) -> None:
            self._armed_for = self.cycle
            self._deadline = self.loop.call_later(guard.limits.request_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def data_received(self, data: bytes) -> None:
            if not self._admitted:
                return
            if self._deadline is None:
                self._arm()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and cycle is not self._armed_for and not cycle.more_body:
                self._disarm()  # the whole request is in: the app may take its time, a stream may run on

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                guard.timed_out += 1
                self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._admitted:
                self._admitted = False
                guard.release(self._ip)
            super().connection_lost(exc)

    return GuardedH11


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: the runner owns SIGTERM and cancels us instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # the hook's name in uvicorn < 0.29
        return None

    # uvicorn's own loop wakes ten times a second to refresh its Date header (once a second) and to look for
    # should_exit. On the robot each wake-up of this thread costs more than the work: once a second here, and
    # stop() wakes it at once. The ticks count in tenths as uvicorn's do, so on_tick keeps its meaning.
    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def stop(self) -> None:
        """Shut down now (from the server's own event loop)."""
        self.should_exit = True
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()


def _bind(host: str, port: int) -> socket.socket:
    """Bind the socket ourselves: a busy port becomes a clear error instead of uvicorn's sys.exit()."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise DashboardError(f"dashboard on {host}:{port}: unknown host ({err}); set web.host") from err
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as err:
        sock.close()
        raise DashboardError(
            f"dashboard on {host}:{port}: cannot listen ({err.strerror}); "
            "stop the other program on that port or set web.port"
        ) from err
    sock.setblocking(False)
    return sock


async def serve(
    app: Any,
    host: str,
    port: int,
    *,
    ready: asyncio.Event | None = None,
    limits: Limits | None = None,
    guard: ConnectionGuard | None = None,
) -> None:
    """Serve `app` on host:port until cancelled; `ready` is set once listening.

    On cancellation the server shuts down gracefully (open streams are closed, at most ~2 s) and the
    CancelledError propagates. Raises DashboardError when the address cannot be bound.
    """
    sock = _bind(host, port)
    guard = guard if guard is not None else ConnectionGuard(limits or Limits())
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=5,
        # Bounded by the guard (per client and in all) so a flood of connections cannot grow memory on the Pi,
        # nor take every slot: uvicorn's own limit_concurrency would answer 503 to everyone, STOP included.
        ws="none",
        http=guarded_protocol(guard),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"dashboard {host}:{port}")
    try:
        while not server.started:
            if task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            await task  # re-raises the startup failure, if any
            raise DashboardError(f"dashboard on {host}:{port}: uvicorn stopped during startup")
        if ready is not None:
            ready.set()
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.stop()
        # Tell the app's endless streams (SSE, MJPEG) to finish, so shutdown does not wait for the timeout.
        state = getattr(app, "state", None)
        if state is not None:
            state.closing = True
        # Streams of another app never end on their own: uvicorn cuts them after the graceful timeout.
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise
    except SystemExit as err:  # uvicorn exits the process on a startup failure; turn that into our error
        raise DashboardError(f"dashboard on {host}:{port}: uvicorn failed to start ({err})") from err
    finally:
        sock.close()


class DashboardThread:
    """The dashboard on its own thread and event loop: a burst of requests, a slow camera or a bug in a handler
    cannot delay the control loop's ticks (they share only the GIL, which Python hands over every 5 ms)."""

    def __init__(self, app: Any, host: str, port: int, *, limits: Limits | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.guard = ConnectionGuard(limits or Limits())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Listen (in the thread) and return once ready; DashboardError when the address cannot be bound."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise DashboardError(f"dashboard on {self.host}:{self.port}: not ready within {timeout:.0f} s")
        if self.error is not None:
            if isinstance(self.error, DashboardError):
                raise self.error
            raise DashboardError(f"dashboard on {self.host}:{self.port}: {self.error}") from self.error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as err:  # reported to start() or logged: the robot goes on without a dashboard
            if not self._ready.is_set():
                self.error = err
            elif not isinstance(err, asyncio.CancelledError):
                log.error("dashboard stopped: %s", err)
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(serve(self.app, self.host, self.port, ready=ready, guard=self.guard))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if ready.is_set():
            self._ready.set()
        await self._task

    def close(self) -> None:
        """Stop serving (open streams end within ~2 s) and join the thread; safe to call twice."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


class Dashboard:
    """The dashboard thread and, on its own port, the e-stop listener: what `ramudroid run` starts."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        estop_port: int = 0,
        stop: Any = None,
        allowed_hosts: tuple[str, ...] = (),
        limits: Limits | None = None,
    ) -> None:
        from web.auth import HostCheck
        from web.estop import EstopListener

        self.server = DashboardThread(app, host, port, limits=limits)
        self.estop: EstopListener | None = None
        if estop_port and stop is not None:
            self.estop = EstopListener(
                host, estop_port, stop, hosts=HostCheck(allowed_hosts), dashboard_port=port
            )

    def start(self) -> None:
        """Start both; the dashboard's bind failure is an error, the e-stop listener's only a loud warning (the
        dashboard's own STOP still works)."""
        self.server.start()
        if self.estop is not None:
            try:
                self.estop.start()
            except DashboardError as err:
                log.error("%s; STOP stays on the dashboard's own port", err)
                self.estop = None

    def close(self) -> None:
        """Stop both; safe to call twice."""
        if self.estop is not None:
            self.estop.close()
        self.server.close()
