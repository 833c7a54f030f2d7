"""Run the dashboard with uvicorn inside the caller's asyncio loop, leaving signal handling to the runner."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from robot.errors import DashboardError


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: the runner owns SIGTERM and cancels us instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # the hook's name in uvicorn < 0.29
        return None


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


async def serve(app: Any, host: str, port: int, *, ready: asyncio.Event | None = None) -> None:
    """Serve `app` on host:port until cancelled; `ready` is set once listening.

    On cancellation the server shuts down gracefully (open streams are closed, at most ~2 s) and the
    CancelledError propagates. Raises DashboardError when the address cannot be bound.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
        # Bounded so a flood of connections cannot grow memory on the Pi.
        limit_concurrency=64,
        ws="none",
        http="h11",
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
        server.should_exit = True
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
