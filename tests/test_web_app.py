"""The dashboard's HTTP API through Starlette's TestClient: every endpoint, auth, validation and counters."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.config import Settings
from robot.core.types import ALL_BRAKED, Alert, Command, CommandKind, Mode, Severity
from robot.errors import SiteError
from robot.hardware.interfaces import GpsFix
from robot.telemetry import Telemetry, TelemetryBus, part_list
from web.app import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOKEN = "s3cret-token"
JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg body" + b"\xff\xd9"
SITE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"role": "fence"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[77.0, 12.0], [77.001, 12.0], [77.001, 12.001], [77.0, 12.0]]],
            },
        }
    ],
}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_telemetry(at: float, **overrides: Any) -> Telemetry:
    base = Telemetry(
        at=at,
        wall=1_718_000_000.0,
        state="cleaning",
        mode="auto",
        reason="following the route, 42 % done",
        goal="route",
        power_source="panel",
        motors=ALL_BRAKED,
        distance_m=1.8,
        tray_kg=0.7,
        raining=False,
        panel_w=31.5,
        battery_v=12.1,
        battery_soc=0.8,
        fix=GpsFix(datetime(2024, 6, 10, 6, 0, tzinfo=UTC), 12.9716, 77.5946, 3, 0.3, 90.0, 0.9, 9),
        link_ok=True,
        link_stats={"rtt_ms": 12.5},
        route_progress=0.42,
        recent_alerts=(Alert("rain", Severity.WARNING, "rain: going to shelter", at - 30.0),),
        counters={"frames_bad": 0},
    )
    return replace(base, **overrides)


class Rig:
    """The app wired to a real bus, queue and outbox, with a fake clock."""

    def __init__(self, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.bus = TelemetryBus()
        self.queue = CommandQueue(maxsize=kwargs.pop("maxsize", 256))
        self.outbox = AlertOutbox()
        self.app = create_app(self.bus, self.queue, outbox=self.outbox, clock=self.clock, **kwargs)
        self.client = TestClient(self.app, base_url="http://127.0.0.1:8080")

    @property
    def counters(self) -> dict[str, int]:
        return self.app.state.counters.as_dict()

    def publish(self, **overrides: Any) -> Telemetry:
        t = make_telemetry(self.clock.now, **overrides)
        self.bus.publish(t)
        return t

    def command(self, body: Any, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.post("/api/command", json=body, headers=headers)


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def locked() -> Rig:
    return Rig(token=TOKEN)


# ---- status -------------------------------------------------------------------------------------------


def test_status_is_503_with_a_clear_error_before_the_first_snapshot(rig: Rig) -> None:
    r = rig.client.get("/api/status")
    assert r.status_code == 503
    body = r.json()
    assert "no telemetry yet" in body["error"]
    assert body["server_time"] > 1e9


def test_status_returns_the_snapshot_with_server_time_and_age(rig: Rig) -> None:
    t = rig.publish()
    rig.clock.now += 1.25
    r = rig.client.get("/api/status")
    assert r.status_code == 200
    body = r.json()
    expected = json.loads(json.dumps(t.to_json()))
    assert {k: body[k] for k in expected} == expected
    assert body["age_s"] == pytest.approx(1.25)
    assert body["stale"] is False
    assert body["fix"]["time"] == "2024-06-10T06:00:00+00:00"
    assert r.headers["cache-control"] == "no-store"


def test_status_is_flagged_stale_when_the_snapshot_stops_updating(rig: Rig) -> None:
    rig.publish()
    rig.clock.now += 3.5
    body = rig.client.get("/api/status").json()
    assert body["stale"] is True
    assert body["age_s"] == pytest.approx(3.5)
    rig.publish()
    assert rig.client.get("/api/status").json()["stale"] is False


def test_status_turns_nan_and_infinity_into_null_so_the_json_stays_valid(rig: Rig) -> None:
    rig.publish(panel_w=float("nan"), battery_v=float("inf"), link_stats={"rtt_ms": float("nan")})
    r = rig.client.get("/api/status")
    assert r.status_code == 200
    body = r.json()
    assert body["panel_w"] is None and body["battery_v"] is None and body["link_stats"]["rtt_ms"] is None


# ---- commands -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "reset"}, Command(CommandKind.RESET, at=1000.0, source="web")),
        ({"kind": "tray_emptied"}, Command(CommandKind.TRAY_EMPTIED, at=1000.0, source="web")),
        (
            {"kind": "set_mode", "mode": "manual"},
            Command(CommandKind.SET_MODE, 1000.0, mode=Mode.MANUAL, source="web"),
        ),
        (
            {"kind": "set_mode", "mode": "paused"},
            Command(CommandKind.SET_MODE, 1000.0, mode=Mode.PAUSED, source="web"),
        ),
        (
            {"kind": "drive", "left": 0.5, "right": -1},
            Command(CommandKind.DRIVE, 1000.0, left=0.5, right=-1.0, source="web"),
        ),
    ],
)
def test_each_valid_command_is_queued_stamped_with_the_clock_and_source_web(
    rig: Rig, body: dict[str, Any], expected: Command
) -> None:
    r = rig.command(body)
    assert r.status_code == 202
    assert r.json() == {"ok": True, "kind": body["kind"], "at": 1000.0}
    assert rig.queue.drain() == (expected,)
    assert rig.counters["commands_accepted"] == 1


def test_command_time_follows_the_injected_clock(rig: Rig) -> None:
    rig.command({"kind": "reset"})
    rig.clock.now = 1234.5
    rig.command({"kind": "drive", "left": 0, "right": 0})
    assert [c.at for c in rig.queue.drain()] == [1000.0, 1234.5]


def test_estop_is_queued_stamped_and_says_whether_it_was_saved(rig: Rig) -> None:
    r = rig.command({"kind": "estop"})
    assert r.status_code == 202
    assert r.json() == {"ok": True, "kind": "estop", "at": 1000.0, "persisted": False}  # no store here
    assert rig.queue.drain() == (Command(CommandKind.ESTOP, at=1000.0, source="web testclient"),)


def test_estop_is_accepted_without_a_token_and_counted(locked: Rig) -> None:
    assert locked.command({"kind": "estop"}).status_code == 202
    assert locked.command({"kind": "estop"}, token="wrong").status_code == 202
    assert locked.client.post("/api/estop").status_code == 202
    assert [c.kind for c in locked.queue.drain()] == [CommandKind.ESTOP] * 3
    assert locked.counters["estops"] == 3
    assert locked.counters["commands_unauthorized"] == 0


def test_estop_with_stray_fields_still_stops(locked: Rig) -> None:
    r = locked.command({"kind": "estop", "left": "garbage", "mode": 7})
    assert r.status_code == 202
    assert locked.queue.drain() == (Command(CommandKind.ESTOP, at=1000.0, source="web testclient"),)


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_other_commands_need_the_right_token(locked: Rig, token: str | None) -> None:
    r = locked.command({"kind": "set_mode", "mode": "auto"}, token=token)
    assert r.status_code == 401
    assert "Bearer" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert locked.queue.drain() == ()
    assert locked.counters["commands_unauthorized"] == 1


def test_the_right_token_is_accepted(locked: Rig) -> None:
    assert locked.command({"kind": "drive", "left": 0.2, "right": 0.2}, token=TOKEN).status_code == 202
    assert len(locked.queue.drain()) == 1


def test_unauthenticated_bad_input_is_401_not_422(locked: Rig) -> None:
    # An attacker without the token learns nothing about what a valid command looks like.
    assert locked.command({"kind": "fly"}).status_code == 401


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"kind": "fly"}', "does not match any of the expected tags"),
        ('{"kind": "set_mode"}', "set_mode.mode: Field required"),
        (
            '{"kind": "set_mode", "mode": "turbo"}',
            "set_mode.mode: Input should be 'auto', 'manual' or 'paused'",
        ),
        ('{"kind": "drive", "left": 1.5, "right": 0}', "drive.left: Input should be less than or equal to 1"),
        (
            '{"kind": "drive", "left": 0, "right": -1.01}',
            "drive.right: Input should be greater than or equal to -1",
        ),
        ('{"kind": "drive", "left": "0.5", "right": 0}', "drive.left: Input should be a valid number"),
        ('{"kind": "drive", "left": true, "right": 0}', "drive.left: Input should be a valid number"),
        ('{"kind": "drive", "left": NaN, "right": 0}', "drive.left: Input should be a finite number"),
        ('{"kind": "drive", "left": 0}', "drive.right: Field required"),
        ('{"kind": "reset", "mode": "auto"}', "reset.mode: Extra inputs are not permitted"),
        (
            '{"kind": "drive", "left": 0, "right": 0, "brush": 1}',
            "drive.brush: Extra inputs are not permitted",
        ),
        ("[1, 2]", "Input should be an object"),
        ("{not json", "Invalid JSON"),
        ("", "Invalid JSON"),
    ],
)
def test_bad_commands_are_rejected_with_a_clear_422_and_counted(rig: Rig, raw: str, fragment: str) -> None:
    r = rig.client.post("/api/command", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("bad command: ")
    assert fragment in r.json()["error"]
    assert rig.queue.drain() == ()
    assert rig.counters["commands_invalid"] == 1
    assert rig.counters["commands_accepted"] == 0


def test_an_oversized_body_is_refused_and_counted(rig: Rig) -> None:
    r = rig.client.post(
        "/api/command",
        content=b'{"kind": "reset", "pad": "' + b"x" * 5000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert rig.counters["commands_too_large"] == 1
    assert rig.queue.drain() == ()


def test_a_full_queue_answers_503_and_counts_the_drop(rig: Rig) -> None:
    small = Rig(maxsize=1)
    assert small.command({"kind": "reset"}).status_code == 202
    r = small.command({"kind": "tray_emptied"})
    assert r.status_code == 503
    assert "command queue full" in r.json()["error"]
    r = small.command({"kind": "estop"})  # no store to latch it in either: say so, loudly
    assert r.status_code == 503 and "STOP NOT APPLIED" in r.json()["error"]
    assert small.counters["commands_dropped"] == 2
    assert small.queue.dropped == 2


# ---- alerts, camera, site, health ---------------------------------------------------------------------


def test_alerts_lists_recent_alerts_oldest_first_with_their_age(rig: Rig) -> None:
    for i in range(5):
        rig.outbox.add(Alert(f"kind{i}", Severity.INFO, f"message {i}", at=990.0 + i))
    body = rig.client.get("/api/alerts", params={"n": 3}).json()
    assert [a["kind"] for a in body["alerts"]] == ["kind2", "kind3", "kind4"]
    assert body["alerts"][-1] == {
        "kind": "kind4",
        "severity": "info",
        "message": "message 4",
        "at": 994.0,
        "age_s": 6.0,
    }
    assert body["dropped"] == 0


@pytest.mark.parametrize("n", ["0", "101", "many"])
def test_alerts_rejects_a_bad_count_with_422_and_counts_it(rig: Rig, n: str) -> None:
    r = rig.client.get("/api/alerts", params={"n": n})
    assert r.status_code == 422
    assert r.json()["error"].startswith("invalid request: query.n:")
    assert rig.counters["commands_invalid"] == 1


@pytest.mark.parametrize("path", ["/api/camera.jpg", "/api/camera.mjpeg"])
def test_camera_endpoints_are_404_without_a_camera(rig: Rig, path: str) -> None:
    r = rig.client.get(path)
    assert r.status_code == 404
    assert "no camera" in r.json()["error"]


def test_camera_jpg_returns_the_newest_frame() -> None:
    frames = [JPEG, JPEG + b"2"]
    rig = Rig(camera=lambda: frames[-1])
    r = rig.client.get("/api/camera.jpg")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content == JPEG + b"2"
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("result", [b"", b"not a jpeg", None, RuntimeError("camera unplugged")])
def test_a_failing_camera_gives_503_and_is_counted(result: Any) -> None:
    def camera() -> bytes:
        if isinstance(result, Exception):
            raise result
        return result

    rig = Rig(camera=camera)
    r = rig.client.get("/api/camera.jpg")
    assert r.status_code == 503
    assert "camera" in r.json()["error"]
    assert rig.counters["camera_errors"] == 1


def test_a_hung_camera_gives_503_after_the_timeout_and_is_not_called_again_meanwhile() -> None:
    release = threading.Event()
    calls: list[int] = []

    def camera() -> bytes:
        calls.append(1)
        release.wait(5)
        return JPEG

    rig = Rig(camera=camera, camera_timeout_s=0.1)
    try:
        for _ in range(2):
            r = rig.client.get("/api/camera.jpg")
            assert r.status_code == 503
        assert len(calls) == 1  # the second request joined the hung read instead of starting another thread
        assert rig.counters["camera_errors"] == 2
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while rig.client.get("/api/camera.jpg").status_code != 200:
        assert time.monotonic() < deadline
    assert len(calls) <= 2


def test_site_is_404_without_a_map_and_serves_the_geojson_with_one(rig: Rig) -> None:
    assert rig.client.get("/api/site").status_code == 404
    mapped = Rig(site_geojson=SITE)
    r = mapped.client.get("/api/site")
    assert r.status_code == 200
    assert r.json() == SITE


@pytest.mark.parametrize(
    "site", [{"type": "Point", "coordinates": [0, 0]}, {"features": []}, ["not", "a", "dict"]]
)
def test_an_invalid_site_map_is_refused_at_start(site: Any) -> None:
    with pytest.raises(SiteError, match="dashboard site map"):
        Rig(site_geojson=site)


def test_healthz_reports_telemetry_age_and_counters(rig: Rig) -> None:
    body = rig.client.get("/healthz").json()
    assert body["ok"] is True and body["telemetry"] is False and body["stale"] is True
    rig.publish()
    rig.clock.now += 0.5
    rig.command({"kind": "fly"})
    body = rig.client.get("/healthz").json()
    assert (
        body["telemetry"] is True and body["telemetry_age_s"] == pytest.approx(0.5) and body["stale"] is False
    )
    assert body["counters"]["commands_invalid"] == 1
    assert body["queue_dropped"] == 0


def test_events_refuses_a_stream_beyond_the_limit_and_counts_it() -> None:
    rig = Rig(max_streams=0)
    r = rig.client.get("/api/events")
    assert r.status_code == 503
    assert "too many live connections" in r.json()["error"]
    assert rig.counters["streams_refused"] == 1
    assert rig.counters["streams_open"] == 0


# ---- the page -----------------------------------------------------------------------------------------


def test_page_embeds_its_config_and_versioned_assets() -> None:
    rig = Rig(token=TOKEN, camera=lambda: JPEG, site_geojson=SITE, tray_capacity_kg=2.5, stale_after_s=4.0)
    r = rig.client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    start = html.index('<script id="config" type="application/json">') + len(
        '<script id="config" type="application/json">'
    )
    config = json.loads(html[start : html.index("</script>", start)])
    assert config == {
        "camera": True,
        "site": True,
        "login_required": False,
        "estop_port": 0,
        "tray_capacity_kg": 2.5,
        "stale_after_s": 4.0,
        # The page's reading tiles come from the parts table (issue 12); by default with the default limits.
        "parts": part_list(Settings()),
    }
    assert TOKEN not in html
    assert 'id="estop"' in html and 'aria-label="Emergency stop' in html
    assert "__VERSION__" not in html and "/static/app.js?v=" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no CDN


def test_static_assets_are_served_locally_cached_and_small(rig: Rig) -> None:
    total = len(rig.client.get("/").content)
    for name, media in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = rig.client.get(f"/static/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(media)
        assert "max-age" in r.headers["cache-control"]
        total += len(r.content)
    assert total < 50_000  # the whole page, uncompressed, for a slow mobile link
    assert rig.client.get("/static/secrets.txt").status_code == 404
    assert rig.client.get("/static/..%2Fapp.py").status_code == 404


def test_page_and_json_are_gzipped_for_slow_links(rig: Rig) -> None:
    rig.publish()
    for path in ("/", "/static/app.js", "/api/status"):
        r = rig.client.get(path, headers={"Accept-Encoding": "gzip"})
        assert r.headers.get("content-encoding") == "gzip", path
    raw = rig.client.get("/static/app.js", headers={"Accept-Encoding": "identity"}).content
    assert len(gzip.compress(raw)) < len(raw) / 2
