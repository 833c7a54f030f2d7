"""Assembles the robot for `ramudroid run`: parts, Arduino link, supervisor, dashboard, SMS, and the simulator
when no hardware is configured."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from robot.alerts import AlertOutbox
from robot.camera_cache import CameraCache
from robot.commands import CommandQueue, EmergencyStop
from robot.config import Settings, is_loopback, load
from robot.core.boot import StopReason
from robot.core.types import ALL_BRAKED, MotorOutputs
from robot.errors import DashboardError, RamudroidError
from robot.hardware.interfaces import MotorLink
from robot.lcd_view import LcdView
from robot.navigation import Site
from robot.navigation.site import DEMO_FILE
from robot.power_down import PowerDown, PowerDownPlan, run_command
from robot.sdnotify import LoopWatchdog, Notifier, watchdog_period_s
from robot.site_file import demo_site, load_site
from robot.store import Store
from robot.telemetry import TelemetryBus, part_list

log = logging.getLogger(__name__)

WORLD_PERIOD_S = 0.05
# The newest readings reach the telemetry this often; a change of state, mode, reason, goal, relay, motion, link
# health or alerts at once. Its readers are slower (the dashboard streams at 2 Hz, the LCD refreshes once a
# second), and a snapshot every 50 ms tick was built for nobody: about 5 % of the process's CPU.
TELEMETRY_EVERY_S = 0.2


class ScaledClock:
    """Monotonic time, optionally running `speed` times faster (the simulator's fast-forward)."""

    def __init__(self, speed: float = 1.0, base: Callable[[], float] = time.monotonic) -> None:
        self.speed = speed
        self._base = base
        self._t0 = base()

    def __call__(self) -> float:
        return (self._base() - self._t0) * self.speed


def load_robot_site(settings: Settings) -> Site:
    """The configured site file, or the bundled demo alley."""
    return load_site(settings.robot.site) if settings.robot.site else demo_site()


def site_geojson(settings: Settings) -> dict[str, Any] | None:
    """The site file as GeoJSON for the dashboard's map (already validated by load_robot_site)."""
    try:
        if settings.robot.site:
            return json.loads(Path(settings.robot.site).read_text(encoding="utf-8"))
        from robot.navigation import site as site_module

        return json.loads(
            resources.files(site_module.__package__ + ".sites").joinpath(DEMO_FILE).read_text("utf-8")
        )
    except (OSError, ValueError) as err:  # the map is a nicety; the robot runs without it
        log.warning("site map for the dashboard unavailable: %s", err)
        return None


def state_dir(settings: Settings) -> Path:
    return Path(settings.robot.state_dir).expanduser()


class Robot:
    """Everything `ramudroid run` holds open; close() brakes first and releases every part (idempotent)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float]) -> None:
        from robot.hardware.factory import build_parts
        from robot.supervisor import Supervisor

        self.settings = settings
        self.clock = clock
        self.site = load_robot_site(settings)
        self._closers: list[Callable[[], None]] = []
        self.store = Store.in_dir(state_dir(settings))
        self._closers.append(self.store.close)  # closed last: everything below may still write to it
        self.outbox = AlertOutbox(store=self.store, now=clock())
        self.commands = CommandQueue()
        self.telemetry = TelemetryBus()
        self.world: Any = None
        self.world_cpu_s = 0.0  # CPU seconds spent advancing the simulated world (advance_world)
        self._world_at: float | None = None
        self.sim_arduino: Any = None
        self.sms: Any = None
        self.mqtt: Any = None
        self._fake_modem: Any = None
        self.wake_hook: Callable[[], None] | None = (
            None  # set by the runner: drivers wake it on safety events
        )
        self.power_down = self._build_power_down()
        try:
            if settings.sensors_sim:
                from sim.scenario import load as load_scenario
                from sim.world import World

                self.world = World(
                    load_scenario(settings.sim.scenario),
                    seed=settings.sim.seed,
                    site=self.site,
                    receiver=settings.gps.receiver,
                    geometry=settings.geometry.body(),
                    side_bearing_deg=settings.hardware.side_bearing_deg,
                )
            self.bench: Any = None
            if self.world is not None:
                from sim.devices.bench import PinBench, wants_bench

                if wants_bench(settings):
                    # The real Pi drivers, on mock GPIO pins and a fake I2C bus that the world drives.
                    self.bench = PinBench(self.world, settings)
                    self._closers.append(self.bench.close)  # closed after the parts that use its pins
                    self.bench.start()
            self.parts = build_parts(settings, world=self.world, wake=self._wake, bench=self.bench)
            self._closers.append(self.parts.close)
            self.rtcm = self._build_rtcm()
            self.link = self._build_link()
            self._closers.append(self.link.close)
            self.supervisor = Supervisor(
                settings,
                self.parts,
                self.link,
                site=self.site,
                outbox=self.outbox,
                commands=self.commands,
                telemetry=self.telemetry,
                state_dir=state_dir(settings),
                store=self.store,
                can_sleep=self.world is None and self.power_down.can_wake(),
                telemetry_every_s=TELEMETRY_EVERY_S,
            )
            self._build_sms()
            self.lcd_view: LcdView | None = None
            self._build_lcd()
            if settings.mqtt.enabled:  # the MQTT bridge: its own thread, off the control loop
                from robot.mqtt.bridge import MqttBridge

                self.mqtt = MqttBridge.from_settings(
                    settings,
                    telemetry=self.telemetry,
                    outbox=self.outbox,
                    commands=self.commands,
                    clock=clock,
                    state_dir=state_dir(settings),
                )
                self._closers.append(self.mqtt.close)
            self._camera: CameraCache | None = None
            if self.parts.camera is not None:
                self._camera = CameraCache(self.parts.camera)
                self._closers.append(self._camera.close)
        except BaseException:
            self.close()
            raise

    def _build_rtcm(self) -> Any:
        """RTCM corrections to the real receiver's port (rtcm.source), or None."""
        write = getattr(self.parts.gps, "write", None)
        if self.settings.rtcm.source == "none" or write is None:
            return None
        from robot.drivers.rtcm import build_forwarder

        fwd = build_forwarder(self.settings, write, self.parts.gps.latest)
        if fwd is not None:
            fwd.on_error = lambda msg: log.warning("rtcm: %s", msg)
            self._closers.append(fwd.close)
            fwd.start()
        return fwd

    def _build_link(self) -> MotorLink:
        hw = self.settings.hardware
        if hw.arduino == "sim":
            from arduino_bridge.direct import DirectLink
            from arduino_bridge.sim_arduino import SimArduino

            self.sim_arduino = SimArduino()
            return DirectLink(self.sim_arduino, self.clock, watchdog_ms=hw.arduino_watchdog_ms)
        from arduino_bridge.link import ArduinoLink

        return ArduinoLink(hw.arduino_port, baud=hw.arduino_baud, watchdog_ms=hw.arduino_watchdog_ms)

    def _build_sms(self) -> None:
        hw, sms = self.settings.hardware, self.settings.sms
        if hw.modem == "none":
            return
        from robot.gsm.modem import Sim800Modem
        from robot.gsm.service import SmsService

        port = hw.modem_port
        if hw.modem == "sim":
            from sim.devices.modem import FakeSim800

            self._fake_modem = FakeSim800()
            self._closers.append(self._fake_modem.close)
            port = self._fake_modem.port
        modem = Sim800Modem(port, baud=hw.modem_baud)
        self._closers.append(modem.close)
        self.sms = SmsService(
            modem,
            self.outbox,
            self.commands,
            self.telemetry,
            alert_numbers=sms.alert_numbers,
            trusted_numbers=sms.trusted_numbers,
            pin=sms.pin,
            clock=self.clock,
            enabled=sms.commands,
            name=self.settings.robot.name,
            country_code=sms.country_code,
            coalesce_s=sms.coalesce_s,
            poll_s=sms.poll_s,
        )
        self._closers.append(self.sms.close)

    def _build_lcd(self) -> None:
        """The status LCD, refreshed by its own thread; the robot runs without it when it is missing."""
        from robot.hardware.factory import build_part

        try:
            lcd = build_part("lcd", self.settings)
        except RamudroidError as err:
            log.warning("%s; running without the LCD", err)
            return
        if lcd is None:
            return
        self._closers.append(lcd.close)
        self.lcd_view = LcdView(
            lcd, self.telemetry, self.outbox, tray_capacity_kg=self.settings.tray.capacity_kg
        )
        self._closers.append(self.lcd_view.close)  # closed first: its last word, then the display

    def _build_power_down(self) -> PowerDown:
        p = self.settings.power
        return PowerDown(
            poweroff_command=p.poweroff_command,
            wake_command=p.wake_command,
            # With a simulated world the Pi is this machine: the power-down is only told, never done.
            run=_simulated_command if self.settings.sensors_sim else run_command,
            record_reason=self._record_stop,
        )

    def _record_stop(self, reason: str, detail: str) -> None:
        # Kept by the store over the SIGTERM that follows, so the next boot resumes by the boot rule.
        self.store.record_stop(StopReason(reason), detail)

    def flush_alerts(self, timeout_s: float) -> None:
        """Send the SMS alerts still waiting (the critical one above all) before the power goes."""
        if self.sms is None:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            self.sms.poll_once()
            pending = self.sms.stats["pending"]
            if pending == 0:
                return
            if time.monotonic() >= deadline:
                raise RamudroidError(f"{pending} SMS still unsent after {timeout_s:.0f} s")
            time.sleep(1.0)

    def finish_power_down(self, plan: PowerDownPlan) -> None:
        """The end of a planned power-down: alerts out, why recorded, everything braked and closed, power off."""
        pd = self.power_down
        pd.add_flush("SMS alerts sent", lambda: self.flush_alerts(self.settings.power.flush_timeout_s))
        pd.add_close("braked, progress saved, parts closed", self.close)
        pd.finish(plan)

    def _wake(self) -> None:
        hook = self.wake_hook
        if hook is not None:
            hook()

    def camera_jpeg(self) -> bytes | None:
        """The newest cached frame: the dashboard never reads the camera itself."""
        return self._camera.latest() if self._camera is not None else None

    def advance_world(self, now: float) -> None:
        """Bring the simulated world up to `now`, from the pins the simulated Arduino applied. The runner calls
        it before each step: in the same wake-up of the loop as the step, not one of its own.

        Its CPU time adds up in `world_cpu_s`: the robot on a Pi does not run it, so a figure for the robot
        leaves it out."""
        cpu = time.thread_time()
        last, self._world_at = self._world_at, now
        if last is not None and now > last:
            relay = getattr(self.parts, "relay", None)
            if (
                relay is not None and self.bench is None
            ):  # with the bench, the relay pin itself tells the world
                self.world.set_power_source(relay.source)
            # Fast-forward in steps of about WORLD_PERIOD_S, so motion and physics stay as fine as at real time
            # (rounded: a tick always comes a little late, and ceil() made each 50 ms two steps of 25 ms).
            n = max(1, round((now - last) / WORLD_PERIOD_S))
            dt = (now - last) / n
            for i in range(n):
                if self.sim_arduino is not None:
                    self.sim_arduino.tick(last + (i + 1) * dt)
                self.world.advance(dt, self._applied_pins())
        self.world_cpu_s += time.thread_time() - cpu

    def _applied_pins(self) -> MotorOutputs:
        """What the Arduino applied: the simulated one's pins; for a real or fake one on a serial port, what the
        supervisor last sent while the link is healthy (acknowledged within milliseconds), else braked."""
        if self.sim_arduino is not None:
            return self.sim_arduino.pins
        last = self.supervisor.last
        return last.motors if last is not None and self.link.healthy else ALL_BRAKED

    def add_closer(self, closer: Callable[[], None]) -> None:
        """Close `closer` first when the robot closes (after the supervisor has braked)."""
        self._closers.append(closer)

    def close(self) -> None:
        sup = getattr(self, "supervisor", None)
        if sup is not None:
            sup.close()
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception as err:
                log.error("while closing: %s", err)

    def __enter__(self) -> Robot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def run_async(
    settings: Settings,
    *,
    web: bool = True,
    port: int | None = None,
    duration_s: float | None = None,
    attach: Callable[[Robot, Any], None] | None = None,
) -> int:
    """Run the robot until SIGTERM/SIGINT (or `duration_s`); returns the exit code. `attach(robot, runner)` is
    called once both exist, before the first step (bench/ measures the running robot from the inside)."""
    from robot.runner import Runner

    clock = ScaledClock(settings.sim.speed if settings.all_sim else 1.0)
    with Robot(settings, clock=clock) as robot:
        dashboard: Any = None
        if web and settings.web.enabled:
            from web.app import create_app
            from web.server import Dashboard

            w = settings.web
            if not w.password_hash and not is_loopback(w.host):
                raise DashboardError(
                    f"dashboard on {w.host}: reachable from the network without a login; "
                    "set web.password_hash (`ramudroid passwd`) or web.host = 127.0.0.1"
                )
            stop = EmergencyStop(robot.commands, robot.store, clock)
            app = create_app(
                robot.telemetry,
                robot.commands,
                outbox=robot.outbox,
                camera=robot.camera_jpeg if robot.parts.camera is not None else None,
                token=w.token,
                password_hash=w.password_hash,
                session_s=w.session_s,
                estop=stop,
                estop_port=w.estop_port,
                allowed_hosts=w.allowed_hosts,
                tray_capacity_kg=settings.tray.capacity_kg,
                parts=part_list(settings),
                clock=clock,
                site_geojson=site_geojson(settings),
            )
            the_port = port if port is not None else w.port
            # Its own thread and event loop: no request, however slow or many, can delay a control tick.
            dashboard = Dashboard(
                app, w.host, the_port, estop_port=w.estop_port, stop=stop, allowed_hosts=w.allowed_hosts
            )
            dashboard.start()
            robot.add_closer(dashboard.close)
        if robot.sms is not None:
            robot.sms.start()
        if robot.mqtt is not None:
            robot.mqtt.start()
        # Under systemd (Type=notify): READY=1 once the loop runs, WATCHDOG=1 from the loop while it steps on
        # time, STOPPING=1 on the way out. Outside systemd these do nothing.
        notifier = Notifier()
        watchdog_s = watchdog_period_s()
        watchdog = (
            LoopWatchdog(notifier, watchdog_s, status=lambda: _status_line(robot))
            if notifier.enabled and watchdog_s is not None
            else None
        )
        runner = Runner(
            robot.supervisor,
            rate_hz=settings.control.rate_hz,
            clock=clock,
            before_step=robot.advance_world if robot.world is not None else None,
            on_step=watchdog.on_step if watchdog is not None else None,
            arm_power_down=robot.power_down.arm,
        )
        robot.wake_hook = runner.wake_threadsafe
        if attach is not None:
            attach(robot, runner)

        async def announce() -> None:
            await runner.ready.wait()
            where = (
                f" dashboard on http://{settings.web.host}:{port or settings.web.port}/" if dashboard else ""
            )
            mode = "simulator" if settings.all_sim else "hardware"
            log.info("ready (%s, %s).%s", mode, settings.robot.name, where)
            print(f"ramudroid ready ({mode}){where}", flush=True)
            notifier.notify("READY=1", f"STATUS=ready ({mode}){where}")
            if duration_s is not None:
                await asyncio.sleep(duration_s)
                runner.stop()

        # Everything built so far (modules, settings, the site's fence grid) lives for the whole run. Frozen out of
        # the garbage collector, a full collection scans only what the run allocates since: measured on this
        # machine, 66 ms for the 54,000 objects after import, 5-20x that on a Pi, long enough for the Arduino's
        # 300 ms watchdog to brake a robot whose loop it paused.
        gc.collect()
        gc.freeze()
        announcer = asyncio.create_task(announce())
        try:
            code = await runner.run()
        finally:
            notifier.notify("STOPPING=1", "STATUS=stopped: motors braked")
            notifier.close()
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer
        if runner.power_down is not None:
            robot.finish_power_down(runner.power_down)
        return code


def _simulated_command(argv: Any) -> None:
    log.warning("simulator: the real robot would run %s here", " ".join(argv))


def _status_line(robot: Robot) -> str:
    """What `systemctl status ramudroid` shows: the state and why."""
    t = robot.telemetry.latest()
    return "starting" if t is None else f"{t.state}: {t.reason}"


def run_robot(
    config: str | None, *, web: bool = True, port: int | None = None, duration_s: float | None = None
) -> int:
    """`ramudroid run`: load the configuration and run; configuration and hardware errors are one clear line."""
    settings = load(config)
    try:
        return asyncio.run(run_async(settings, web=web, port=port, duration_s=duration_s))
    except RamudroidError:
        raise
    except OSError as err:
        raise RamudroidError(f"could not start: {err}") from err
