"""`ramudroid fleet`: serve the fleet page from the broker in [mqtt]; `ramudroid fleet passwd`: its password hash."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
from typing import Any

from robot.config import load
from robot.errors import RamudroidError

log = logging.getLogger(__name__)


def _cmd_passwd(args: argparse.Namespace) -> int:
    from web.fleet import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Fleet page password: ")
        if getpass.getpass("Again: ") != password:
            raise RamudroidError("the two passwords differ; nothing changed")
    if len(password) < 10:
        raise RamudroidError("a fleet password needs at least 10 characters: it guards every robot")
    print(f'password_hash = "{hash_password(password)}"   # paste under [fleet]')
    return 0


async def _serve(settings: Any, host: str, port: int) -> None:
    from web.fleet import FleetLink, FleetView, create_fleet_app
    from web.server import serve

    m, f = settings.mqtt, settings.fleet
    view = FleetView(m.topic_prefix, stale_s=f.stale_s)
    link = FleetLink(
        view,
        host=m.host,
        port=m.port,
        username=m.username,
        password=m.password,
        tls=m.tls,
        ca_file=m.ca_file,
        cert_file=m.cert_file,
        key_file=m.key_file,
        keepalive_s=m.keepalive_s,
    )
    app = create_fleet_app(
        view,
        link.publish,
        password_hash=f.password_hash,
        master_key=f.master_key,
        session_s=f.session_s,
    )
    link.start()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, host, port, ready=ready))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        ready_or_done = asyncio.create_task(ready.wait())
        await asyncio.wait({ready_or_done, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await task  # raises the startup error
        control = "on" if f.password_hash and f.master_key else "off (e-stop only)"
        print(
            f"ramudroid fleet ready on http://{host}:{port}/ (broker {m.host}:{m.port}, control {control})",
            flush=True,
        )
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({stopper, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        link.close()


def _cmd_fleet(args: argparse.Namespace) -> int:
    settings = load(args.config)
    host = args.host or settings.fleet.host
    port = args.port or settings.fleet.port
    try:
        asyncio.run(_serve(settings, host, port))
    except OSError as err:
        raise RamudroidError(f"fleet page: could not start: {err}") from err
    return 0


def register(sub: Any) -> None:
    """Add `fleet` (serve) and `fleet passwd` to the ramudroid CLI."""
    fleet = sub.add_parser("fleet", help="serve the fleet page: every robot on the MQTT broker on one map")
    fleet.add_argument("--host", default=None, help="address to listen on (overrides fleet.host)")
    fleet.add_argument("--port", type=int, default=None, help="port (overrides fleet.port)")
    fleet.set_defaults(func=_cmd_fleet)
    actions = fleet.add_subparsers(dest="fleet_command", metavar="ACTION")
    passwd = actions.add_parser("passwd", help="print the fleet.password_hash line for a new password")
    passwd.add_argument("--stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(func=_cmd_passwd)
