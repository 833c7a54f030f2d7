"""Free TCP ports on 127.0.0.1 for the tests' listeners."""

from __future__ import annotations

import contextlib
import socket


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free just now: all held at once while picked, so no two are the same (a port
    picked, closed, then picked again would be). Another process may still take one before the test binds it."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
