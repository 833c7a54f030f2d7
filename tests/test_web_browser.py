"""The dashboard page in headless Chromium (Playwright): state, e-stop (both doors), hold-to-drive, stale banner,
login, and one driver at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue, EmergencyStop
from robot.config import Settings
from robot.core.types import ALL_BRAKED, Alert, Command, CommandKind, Severity
from robot.hardware.interfaces import GpsFix
from robot.passwords import hash_password
from robot.telemetry import Telemetry, TelemetryBus, part_list
from tests.ports import free_ports
from web.app import create_app
from web.server import Dashboard

PASSWORD = "street-sweeper-42"
HASH = hash_password(PASSWORD, n=2**10)

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
SITE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"role": "fence", "name": "fence"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [77.5940, 12.9710],
                        [77.5952, 12.9710],
                        [77.5952, 12.9722],
                        [77.5940, 12.9722],
                        [77.5940, 12.9710],
                    ]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {"role": "route"},
            "geometry": {
                "type": "LineString",
                "coordinates": [
                    [77.5942, 12.9712],
                    [77.5950, 12.9712],
                    [77.5950, 12.9720],
                    [77.5942, 12.9720],
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {"role": "shelter", "name": "Shelter"},
            "geometry": {"type": "Point", "coordinates": [77.5943, 12.9721]},
        },
    ],
}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")


class FakeClock:
    """The supervisor's clock, moved by the test (the page sees it only through age_s / stale)."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def telemetry(at: float, **overrides: Any) -> Telemetry:
    base = Telemetry(
        at=at,
        wall=1_718_000_000.0,
        state="manual",
        mode="manual",
        reason="operator is driving",
        goal="hold",
        power_source="battery",
        motors=ALL_BRAKED,
        distance_m=2.4,
        tray_kg=1.2,
        raining=False,
        panel_w=8.4,
        battery_v=11.6,
        battery_soc=0.64,
        fix=GpsFix(None, 12.9716, 77.5946, 3, 0.0, 45.0, 1.1, 8),
        link_ok=True,
        link_stats={"rtt_ms": 18.0},
        route_progress=0.3,
        recent_alerts=(Alert("obstacle", Severity.WARNING, "obstacle 0.4 m ahead: stopped", at - 75.0),),
    )
    return replace(base, **overrides)


class Live:
    """The app on a real server in its own thread (as `ramudroid run` starts it, e-stop listener included)."""

    def __init__(self, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.bus = TelemetryBus()
        self.queue = CommandQueue()
        self.port, self.estop_port = free_ports(2)
        stop = EmergencyStop(self.queue, None, self.clock)
        self.app = create_app(
            self.bus,
            self.queue,
            outbox=AlertOutbox(),
            clock=self.clock,
            site_geojson=SITE,
            estop=stop,
            estop_port=self.estop_port,
            **kwargs,
        )
        self.url = f"http://127.0.0.1:{self.port}/"
        self.dashboard = Dashboard(self.app, "127.0.0.1", self.port, estop_port=self.estop_port, stop=stop)

    def __enter__(self) -> Live:
        self.dashboard.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.dashboard.close()

    def publish(self, **overrides: Any) -> None:
        self.bus.publish(telemetry(self.clock.now, **overrides))

    def wait_for_commands(self, pred: Callable[[list[Command]], bool], timeout: float = 5.0) -> list[Command]:
        """Drain the queue until `pred` holds for everything received so far."""
        got: list[Command] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got.extend(self.queue.drain())
            if pred(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"commands never matched; got {got}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, has_touch=False)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # HTTP error statuses are the tests' business (asserted there); anything else logged as an error is a bug.
    pg.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    yield pg
    ctx.close()
    assert errors == [], errors


def test_page_shows_state_reason_and_readings_and_takes_a_screenshot(page: Any) -> None:
    with Live() as live:
        live.publish()
        page.goto(live.url)
        expect = sync_api.expect
        expect(page.locator("#state")).to_have_text("Manual control")
        expect(page.locator("#reason")).to_have_text("operator is driving")
        expect(page.locator("#r-battery")).to_have_text("64 % · 11.6 V")
        expect(page.locator("#r-tray")).to_have_text("1.20 / 2.0 kg")
        expect(page.locator("#r-gps")).to_have_text("3D fix · HDOP 1.1 · 8 sats")
        expect(page.locator("#r-link")).to_have_text("OK · RTT 18 ms")
        expect(page.locator("#alerts li")).to_have_text("warning obstacle 0.4 m ahead: stopped · 75 s ago")
        expect(page.locator('[data-mode="manual"]')).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#robot")).to_have_attribute("visibility", "visible")
        expect(page.locator("#banner")).to_be_hidden()
        page.screenshot(path="/tmp/ramudroid-dashboard.png", full_page=True)
        live.publish(state="estop", reason="e-stop pressed on the dashboard")
        expect(page.locator("#state")).to_have_text("Emergency stop")
        expect(page.locator("#reset")).to_be_enabled()
        expect(page.locator('[data-dir="f"]')).to_be_disabled()
        page.screenshot(path="/tmp/ramudroid-dashboard-estop.png")


def test_reading_tiles_come_from_the_parts_table_and_a_stale_part_is_marked(page: Any) -> None:
    # The table's polled parts with the default settings, plus one more: a part added to robot/parts.py (here
    # a soil-moisture probe, as the composition root would list it) gets a tile with no change to the page.
    parts = [
        *part_list(Settings()),
        {"name": "soil", "label": "Soil probe", "fields": ["soil_wet"], "fresh_s": 2.0, "fresh_key": "x.y"},
    ]
    with Live(parts=parts) as live:
        ages = {"gps": 0.1, "scale": 0.2, "rain": 0.1, "distance": 0.05, "power": 0.1}
        live.bus.publish(replace(telemetry(live.clock.now), reading_age_s=ages))
        page.goto(live.url)
        expect = sync_api.expect
        titles = page.locator("#tiles dt")
        expect(titles).to_have_text(
            [
                "GPS",
                "Tray",
                "Rain",
                "Obstacle",
                "Solar panel",
                "Battery",
                "Soil probe · soil_wet",
                "Power from",
                "Motor link",
                "Goal",
                "Route done",
            ]
        )
        expect(page.locator("#r-soil_wet")).to_have_text("–")  # not in this snapshot: shown as unknown
        expect(page.locator("#r-obstacle")).to_have_text("2.40 m")
        expect(page.locator("[data-part=distance] .part-age")).to_be_hidden()
        expect(page.locator("[data-part=distance]")).to_have_attribute(
            "title", "Obstacle sensor: fresh within 0.3 s (obstacle.stale_s)"
        )
        # The obstacle sensor's reading is 0.8 s old: past its 0.3 s limit, so its tile says so; the rest are fine.
        live.bus.publish(replace(telemetry(live.clock.now), reading_age_s={**ages, "distance": 0.8}))
        expect(page.locator("[data-part=distance] .part-age")).to_have_text(
            "Obstacle sensor: stale, 0.8 s old (limit 0.3 s)"
        )
        expect(page.locator(".part-age:visible")).to_have_count(1)


def test_estop_click_stops_without_a_login_through_both_doors(page: Any) -> None:
    with Live(password_hash=HASH) as live:
        live.publish(state="cleaning", mode="auto")
        page.goto(live.url)
        sync_api.expect(page.locator("#login-box")).to_be_visible()  # not logged in: only STOP works
        live.clock.now = 5001.5
        page.click("#estop")
        got = live.wait_for_commands(lambda cs: len(cs) >= 2)
        assert {c.kind for c in got} == {CommandKind.ESTOP}
        assert {c.source for c in got} == {"web 127.0.0.1", "e-stop port 127.0.0.1"}
        assert all(c.at == 5001.5 for c in got)
        sync_api.expect(page.locator("#msg")).to_have_text("STOP sent.")
        assert live.dashboard.estop is not None and live.dashboard.estop.counters["estops"] == 1
        page.keyboard.press("Escape")
        live.wait_for_commands(lambda cs: len(cs) >= 1 and {c.kind for c in cs} == {CommandKind.ESTOP})


LOGIN_WAIT_MS = 30_000


def test_login_then_the_controls_work_and_logout_locks_them_again(page: Any) -> None:
    with Live(password_hash=HASH) as live:
        live.publish(state="paused", mode="paused")
        page.goto(live.url)
        sync_api.expect(page.locator("#login-box")).to_be_visible()
        page.click('[data-mode="auto"]')
        sync_api.expect(page.locator("#msg")).to_contain_text("Log in first")
        assert live.queue.drain() == ()
        page.fill("#password", "wrong password")
        page.click("#login-form button")
        # A login runs scrypt (deliberately slow): with both cores busy it took over Playwright's default 5 s.
        sync_api.expect(page.locator("#login-msg")).to_have_text("wrong password", timeout=LOGIN_WAIT_MS)
        page.fill("#password", PASSWORD)
        page.click("#login-form button")
        sync_api.expect(page.locator("#login-box")).to_be_hidden(timeout=LOGIN_WAIT_MS)
        sync_api.expect(page.locator("#state")).to_have_text("Paused")
        cookie = next(c for c in page.context.cookies() if c["name"] == "ramudroid_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
        page.click('[data-mode="auto"]')
        got = live.wait_for_commands(lambda cs: len(cs) == 1)
        assert got[0].kind is CommandKind.SET_MODE and got[0].mode == "auto"
        assert live.app.state.counters.commands_unauthorized == 1
        page.click("#logout")
        sync_api.expect(page.locator("#login-box")).to_be_visible()
        page.click('[data-mode="paused"]')
        sync_api.expect(page.locator("#msg")).to_contain_text("Log in first")
        assert live.queue.drain() == ()


def test_a_second_browser_sees_who_drives_and_may_only_stop_or_take_over(browser: Any, page: Any) -> None:
    with Live() as live:
        live.publish()
        page.goto(live.url)
        forward = page.locator('[data-dir="f"]')
        sync_api.expect(forward).to_be_enabled()
        forward.hover()
        page.mouse.down()
        live.wait_for_commands(lambda cs: len(cs) >= 2)
        other_ctx = browser.new_context(viewport={"width": 390, "height": 844})
        try:
            other = other_ctx.new_page()
            other.goto(live.url)
            sync_api.expect(other.locator("#driver")).to_contain_text("is driving")
            sync_api.expect(other.locator('[data-dir="f"]')).to_be_disabled()
            sync_api.expect(other.locator("#take-over")).to_be_visible()
            page.mouse.up()
            live.wait_for_commands(lambda cs: any((c.left, c.right) == (0.0, 0.0) for c in cs))
            sync_api.expect(page.locator("#driver")).to_have_text("You are driving.")
            other.click("#take-over")
            taken = live.wait_for_commands(lambda cs: len(cs) >= 1)
            assert [(c.kind, c.left, c.right) for c in taken] == [(CommandKind.DRIVE, 0.0, 0.0)]
            sync_api.expect(other.locator("#driver")).to_have_text("You are driving.")
            sync_api.expect(page.locator("#driver")).to_contain_text("is driving")
            sync_api.expect(page.locator('[data-dir="f"]')).to_be_disabled()
            other.screenshot(path="/tmp/ramudroid-dashboard-lease.png")
        finally:
            other_ctx.close()


def test_hold_to_drive_sends_drive_ticks_and_release_sends_a_stop(page: Any) -> None:
    with Live() as live:
        live.publish()
        page.goto(live.url)
        forward = page.locator('[data-dir="f"]')
        sync_api.expect(forward).to_be_enabled()
        forward.hover()
        page.mouse.down()
        held = live.wait_for_commands(lambda cs: len(cs) >= 4)
        assert all(c.kind is CommandKind.DRIVE and (c.left, c.right) == (0.5, 0.5) for c in held)
        page.mouse.up()
        released = live.wait_for_commands(lambda cs: any((c.left, c.right) == (0.0, 0.0) for c in cs))
        ticks = held + released
        assert (ticks[-1].left, ticks[-1].right) == (0.0, 0.0)
        # After the release nothing more is sent: the deadman keeps the robot stopped.
        time.sleep(0.4)
        assert live.queue.drain() == ()
        # At ~100 ms per tick; one request in flight at a time, so never faster than that.
        drives = [c for c in ticks if (c.left, c.right) != (0.0, 0.0)]
        assert 4 <= len(drives) <= 30


def test_keyboard_hold_drives_too(page: Any) -> None:
    with Live() as live:
        live.publish()
        page.goto(live.url)
        left = page.locator('[data-dir="l"]')
        sync_api.expect(left).to_be_enabled()
        left.focus()
        page.keyboard.down(" ")
        held = live.wait_for_commands(lambda cs: len(cs) >= 2)
        assert {(c.left, c.right) for c in held} == {(-0.3, 0.3)}
        page.keyboard.up(" ")
        live.wait_for_commands(lambda cs: (cs[-1].left, cs[-1].right) == (0.0, 0.0) if cs else False)


def test_stale_banner_appears_when_telemetry_stops_updating_and_clears_when_it_resumes(page: Any) -> None:
    with Live(stale_after_s=3.0) as live:
        live.publish()
        page.goto(live.url)
        banner = page.locator("#banner")
        sync_api.expect(page.locator("#state")).to_have_text("Manual control")
        sync_api.expect(banner).to_be_hidden()
        live.clock.now += 10.0  # the supervisor stopped publishing 10 s ago
        sync_api.expect(banner).to_be_visible()
        sync_api.expect(banner).to_have_text("Robot not reporting: data is 10 s old.")
        sync_api.expect(page.locator('[data-dir="f"]')).to_be_disabled()  # no driving blind
        page.screenshot(path="/tmp/ramudroid-dashboard-stale.png")
        live.publish()
        sync_api.expect(banner).to_be_hidden()
        sync_api.expect(page.locator('[data-dir="f"]')).to_be_enabled()


def test_lost_connection_shows_the_banner(page: Any) -> None:
    live = Live(stale_after_s=1.0)
    with live:
        live.publish()
        page.goto(live.url)
        sync_api.expect(page.locator("#state")).to_have_text("Manual control")
    # The server is gone: no more messages reach the page.
    sync_api.expect(page.locator("#banner")).to_contain_text("Connection lost", timeout=5000)
    sync_api.expect(page.locator('[data-dir="f"]')).to_be_disabled()
