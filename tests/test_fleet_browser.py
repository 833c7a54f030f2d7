"""The fleet page in headless Chromium, against a real Mosquitto and three real MQTT bridges: robots on the
map, STOP ALL reaching every robot's command queue, and a logged-in Pause reaching one robot, signed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import Alert, Command, CommandKind, Mode, Severity
from robot.mqtt.auth import derive_key
from robot.mqtt.bridge import MqttBridge
from robot.telemetry import TelemetryBus
from tests.mqtt_broker import MOSQUITTO, Broker, free_port
from tests.mqtt_helpers import telemetry
from web.fleet import FleetLink, FleetView, create_fleet_app, hash_password
from web.server import serve

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MASTER = "fleet-master-key-" + "x" * 32
PASSWORD = "street sweeper 42"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs Debian's mosquitto"),
]
sync_api = pytest.importorskip("playwright.sync_api")


class Fleet:
    """Broker, three robots' bridges (threads) and the fleet server (uvicorn in a thread)."""

    def __init__(self, tmp: Path) -> None:
        self.broker = Broker(tmp / "broker")
        self.broker.start()
        self.queues: dict[str, CommandQueue] = {}
        self.bridges: list[MqttBridge] = []
        for i, name in enumerate(("north-1", "south-2", "east-3")):
            bus, outbox, q = TelemetryBus(), AlertOutbox(), CommandQueue()
            bus.publish(
                telemetry(
                    wall=time.time(),
                    state=("cleaning", "obstacle_stop", "tray_full")[i],
                    fix=telemetry(0).fix.__class__(
                        None, 12.970 + 0.001 * i, 77.590 + 0.0015 * i, 3, 0, 0, 0.9, 9
                    ),
                )
            )
            outbox.add(
                Alert("tray_full" if i == 2 else "obstacle", Severity.WARNING, f"{name}: check me", 0.0)
            )
            bridge = MqttBridge(
                name=name,
                telemetry=bus,
                outbox=outbox,
                commands=q,
                host="127.0.0.1",
                port=self.broker.port,
                command_key=derive_key(MASTER, name),
                spool_path=tmp / f"{name}.db",
            )
            bridge.start()
            self.queues[name] = q
            self.bridges.append(bridge)
        self.view = FleetView("ramudroid")
        self.link = FleetLink(self.view, host="127.0.0.1", port=self.broker.port)
        self.link.start()
        self.app = create_fleet_app(
            self.view, self.link.publish, password_hash=hash_password(PASSWORD), master_key=MASTER
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self._thread.start()
        assert self._ready.wait(10), "fleet server did not start"

    async def _main(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(serve(self.app, "127.0.0.1", self.port, ready=ready))
        await ready.wait()
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def commands(self, name: str, pred: Any, timeout: float = 10.0) -> list[Command]:
        got: list[Command] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got += self.queues[name].drain()
            if pred(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"{name} never got the command; got {got}")

    def close(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)
        self._loop.close()
        self.link.close()
        for b in self.bridges:
            b.close()
        self.broker.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    yield f
    f.close()


def test_robots_on_the_map_stop_all_reaches_every_robot_and_pause_one_is_signed(
    fleet: Fleet, tmp_path: Path
) -> None:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(fleet.url)
        page.wait_for_function("document.querySelectorAll('#map g.robot').length === 3", timeout=15000)
        assert sorted(page.eval_on_selector_all("#map g.robot", "gs => gs.map(g => g.dataset.robot)")) == [
            "east-3",
            "north-1",
            "south-2",
        ]
        # Positions are projected, not piled up: three distinct places on the map.
        places = page.eval_on_selector_all("#map g.robot", "gs => gs.map(g => g.getAttribute('transform'))")
        assert len(set(places)) == 3
        page.wait_for_selector("#alerts li:has-text('east-3: check me')")
        assert page.text_content("#summary").startswith("3 robots · 3 online")
        page.screenshot(path=str(tmp_path / "fleet.png"))

        page.click("#stop-all")
        page.wait_for_selector("#msg:has-text('STOP sent to every robot')")
        # Each robot hears the stop twice, on the fleet-wide topic and on its own; wait for both so none
        # arrives after the queues are checked for strays below.
        for name in fleet.queues:
            got = fleet.commands(name, lambda g: sum(c.kind is CommandKind.ESTOP for c in g) >= 2)
            assert [c.kind for c in got] == [CommandKind.ESTOP, CommandKind.ESTOP]  # stops, and only stops

        # Without a login there is no Pause button; with it, Pause reaches that robot only, signed with its key.
        assert page.locator("tr[data-robot='south-2'] button:has-text('Pause')").count() == 0
        page.fill("#password", PASSWORD)
        page.click("#login-form button")
        page.wait_for_selector("tr[data-robot='south-2'] button:has-text('Pause')")
        page.click("tr[data-robot='south-2'] button:has-text('Pause')")
        got = fleet.commands("south-2", lambda g: any(c.kind is CommandKind.SET_MODE for c in g))
        assert [c.mode for c in got if c.kind is CommandKind.SET_MODE] == [Mode.PAUSED]
        page.wait_for_selector("tr[data-robot='south-2'] :text('✓ accepted')")
        time.sleep(0.3)
        assert fleet.queues["north-1"].drain() == () and fleet.queues["east-3"].drain() == ()
        assert errors == []
        browser.close()
