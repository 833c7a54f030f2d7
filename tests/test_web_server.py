"""web.server.serve() on a real socket: readiness, streams (SSE, MJPEG), graceful cancel, signals, memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import ALL_BRAKED
from robot.errors import DashboardError
from robot.telemetry import Telemetry, TelemetryBus
from web.app import create_app
from web.server import serve

pytestmark = pytest.mark.timeout(60)

JPEG_A = b"\xff\xd8frame-a\xff\xd9"
JPEG_B = b"\xff\xd8frame-b\xff\xd9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def telemetry(at: float, state: str = "cleaning") -> Telemetry:
    return Telemetry(
        at=at,
        wall=1.7e9,
        state=state,
        mode="auto",
        reason="test",
        goal="route",
        power_source="panel",
        motors=ALL_BRAKED,
    )


def make_app(bus: TelemetryBus, camera: Callable[[], bytes] | None = None) -> FastAPI:
    return create_app(
        bus,
        CommandQueue(),
        outbox=AlertOutbox(),
        camera=camera,
        stream_interval_s=0.05,
        camera_interval_s=0.05,
    )


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def sse_messages(client: httpx.AsyncClient, url: str, count: int) -> list[tuple[str, dict]]:
    """The first `count` SSE messages as (event name, data)."""
    out: list[tuple[str, dict]] = []
    async with client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event, data = "message", ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                out.append((event, json.loads(data)))
                event, data = "message", ""
                if len(out) == count:
                    break
    return out


def test_serve_sets_ready_answers_and_stops_gracefully_on_cancel_without_touching_signals() -> None:
    async def main() -> None:
        bus = TelemetryBus()
        bus.publish(telemetry(time.monotonic()))
        before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        port = free_port()
        ready = asyncio.Event()
        task = asyncio.create_task(serve(make_app(bus), "127.0.0.1", port, ready=ready))
        await asyncio.wait_for(ready.wait(), 5)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/api/status")
        assert r.status_code == 200 and r.json()["state"] == "cleaning"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The port is free again: the listening socket was closed.
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    asyncio.run(main())


def test_serve_on_a_busy_port_raises_a_clear_error() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            with pytest.raises(
                DashboardError, match=rf"dashboard on 127.0.0.1:{port}: cannot listen .*web.port"
            ):
                await serve(make_app(TelemetryBus()), "127.0.0.1", port)

    asyncio.run(main())


def test_events_stream_waits_then_sends_each_new_status() -> None:
    async def main() -> None:
        bus = TelemetryBus()
        app = make_app(bus)
        async with running(app) as base, httpx.AsyncClient(timeout=5) as client:
            first = await sse_messages(client, f"{base}/api/events", 1)
            assert first[0][0] == "waiting" and "no telemetry yet" in first[0][1]["error"]
            bus.publish(telemetry(time.monotonic(), state="cleaning"))
            got = await sse_messages(client, f"{base}/api/events", 2)
            assert [e for e, _ in got] == ["message", "message"]
            assert got[0][1]["state"] == "cleaning" and "age_s" in got[0][1]
            bus.publish(telemetry(time.monotonic(), state="sheltering"))
            got = await sse_messages(client, f"{base}/api/events", 1)
            assert got[0][1]["state"] == "sheltering"
            await asyncio.sleep(0.2)  # the server notices the closed streams at their next tick
            assert app.state.counters.streams_open == 0

    asyncio.run(main())


def test_cancel_with_an_open_stream_shuts_down_quickly() -> None:
    async def main() -> None:
        bus = TelemetryBus()
        bus.publish(telemetry(time.monotonic()))
        port = free_port()
        ready = asyncio.Event()
        task = asyncio.create_task(serve(make_app(bus), "127.0.0.1", port, ready=ready))
        await asyncio.wait_for(ready.wait(), 5)
        async with (
            httpx.AsyncClient(timeout=5) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/api/events"),
        ):
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - t0 < 1.5  # not uvicorn's graceful-shutdown timeout

    asyncio.run(main())


def test_mjpeg_sends_only_new_frames_as_multipart_parts() -> None:
    frames = [JPEG_A]

    async def main() -> None:
        app = make_app(TelemetryBus(), camera=lambda: frames[-1])
        async with running(app) as base, httpx.AsyncClient(timeout=5) as client:
            async with client.stream("GET", f"{base}/api/camera.mjpeg") as r:
                assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
                buf = b""
                chunks = r.aiter_bytes()
                while buf.count(b"--frame") < 2:
                    if buf.count(b"--frame") == 1 and frames[-1] is JPEG_A:
                        await asyncio.sleep(0.2)  # several camera ticks with the same frame: nothing sent
                        frames.append(JPEG_B)
                    buf += await anext(chunks)
            parts = [p for p in buf.split(b"--frame\r\n") if p]
            assert len(parts) == 2
            head = f"Content-Type: image/jpeg\r\nContent-Length: {len(JPEG_A)}\r\n\r\n".encode()
            assert parts[0] == head + JPEG_A + b"\r\n"
            assert parts[1].startswith(head + JPEG_B)

    asyncio.run(main())


MEMORY_SCRIPT = """
import asyncio, json, os, threading, time, urllib.request
from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import ALL_BRAKED
from robot.telemetry import Telemetry, TelemetryBus
from web.app import create_app
from web.server import serve

bus, queue = TelemetryBus(), CommandQueue()
jpeg = b"\\xff\\xd8" + bytes(30000)
# No rate limit here: this measures memory under heavy use, not how a flood is turned away.
app = create_app(bus, queue, outbox=AlertOutbox(), camera=lambda: jpeg, stream_interval_s=0.01, rate_per_s=1e9)
port = int(os.environ["PORT"])

async def main():
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", port, ready=ready))
    await ready.wait()
    async def feed():
        while True:
            bus.publish(Telemetry(at=time.monotonic(), wall=time.time(), state="cleaning", mode="auto",
                                  reason="x" * 200, goal="route", power_source="panel", motors=ALL_BRAKED))
            await asyncio.sleep(0.01)
    feeder = asyncio.create_task(feed())
    def load():
        base = f"http://127.0.0.1:{port}"
        for i in range(300):
            urllib.request.urlopen(base + "/api/status").read()
            urllib.request.urlopen(base + "/api/camera.jpg").read()
            body = json.dumps({"kind": "drive", "left": 0.1, "right": 0.1}).encode()
            req = urllib.request.Request(base + "/api/command", body, method="POST",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req).read()
            queue.drain()
        urllib.request.urlopen(base + "/").read()
        with urllib.request.urlopen(base + "/api/events") as r:
            for _ in range(200):
                r.readline()
    await asyncio.to_thread(load)
    feeder.cancel()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

asyncio.run(main())
for line in open("/proc/self/status"):
    if line.startswith(("VmRSS", "VmHWM")):
        print(line.split()[0], int(line.split()[1]) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_dashboard_under_load_stays_within_its_share_of_the_80_mb_budget() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PORT": str(free_port()), "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], env=env, capture_output=True, text=True, timeout=50, check=True
    ).stdout
    peak = dict(line.split() for line in out.splitlines())["VmHWM:"]
    assert int(peak) < 60, out  # leaves >= 20 MB of `ramudroid run`'s 80 MB for the supervisor and simulator
