"""Hardware commands: `ramudroid gps replay|compare`, `ramudroid scale tare|calibrate`, `ramudroid doctor`
(every part, the LCD, the Arduino link and the GSM modem in one table)."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from robot import config
from robot.errors import HardwareError, RamudroidError
from robot.parts import PARTS

# A robot can clean safely without its camera, its status LCD and its GSM modem; not without the others.
OPTIONAL_PARTS = frozenset(p.name for p in PARTS if p.optional)
TABLE_WIDTH = 100  # the doctor's table fits a 100-column terminal (and a phone's SSH app, wrapped)


def register(subparsers: Any) -> None:
    """Add the hardware subcommands to the `ramudroid` CLI."""
    gps = subparsers.add_parser("gps", help="GPS receiver tools")
    gps_sub = gps.add_subparsers(dest="gps_command", required=True)
    replay = gps_sub.add_parser("replay", help="decode a raw NMEA capture: one JSON fix per epoch on stdout")
    replay.add_argument("file", type=Path, help="raw capture (NMEA, possibly with binary junk)")
    replay.set_defaults(func=cmd_gps_replay)
    cmp = gps_sub.add_parser(
        "compare", help="measure the decoder against gpsd's .chk decodings in a directory"
    )
    cmp.add_argument("directory", type=Path, help="directory of NAME.log with NAME.log.chk (or .tpv)")
    cmp.add_argument("--min-rate", type=float, default=0.99, help="fail below this match rate (default 0.99)")
    cmp.set_defaults(func=cmd_gps_compare)

    scale = subparsers.add_parser("scale", help="tray scale (HX711) tare and calibration")
    scale_sub = scale.add_subparsers(dest="scale_command", required=True)
    tare = scale_sub.add_parser("tare", help="with the tray empty: take the current reading as 0 kg")
    tare.set_defaults(func=cmd_scale_tare)
    cal = scale_sub.add_parser("calibrate", help="with a known weight on the tray, after a tare")
    cal.add_argument("--known-kg", type=float, required=True, help="the weight on the tray, in kg")
    cal.set_defaults(func=cmd_scale_calibrate)

    doctor = subparsers.add_parser("doctor", help="check every configured part and print a table")
    doctor.set_defaults(func=cmd_doctor)


def _fail(msg: str) -> int:
    print(f"ramudroid: {msg}", file=sys.stderr)
    return 2


def cmd_gps_replay(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print one JSON object per fix epoch of the capture; the rejected-line counts go to stderr."""
    from robot.drivers.gps import NmeaDecoder, fix_to_json

    out = out or sys.stdout
    err = err or sys.stderr
    path: Path = args.file
    dec = NmeaDecoder()
    fixes = 0
    try:
        f = path.open("rb")
    except OSError as e:
        return _fail(f"gps replay: cannot read {path} ({e.strerror or e}); check the path")
    try:
        with f:
            for line in f:
                for fix in dec.feed_line(line):
                    print(fix_to_json(fix), file=out)
                    fixes += 1
        for fix in dec.flush():
            print(fix_to_json(fix), file=out)
            fixes += 1
    except BrokenPipeError:
        # `ramudroid gps replay FILE | head`: the reader left, which is not an error.
        return 0
    rejected = dec.rejected
    ignored = dec.ignored
    print(
        f"gps replay: {fixes} fixes from {dec.sentences} sentences; rejected {sum(rejected.values())} lines"
        + (": " + ", ".join(f"{k} {v}" for k, v in rejected.items()) if rejected else "")
        + f"; ignored {sum(ignored.values())} lines"
        + (": " + ", ".join(f"{k} {v}" for k, v in ignored.items()) if ignored else ""),
        file=err,
    )
    return 0


def cmd_gps_compare(args: argparse.Namespace) -> int:
    """Match rate of our fixes against gpsd's TPV fixes, per capture and overall."""
    from robot.drivers.gpsd_compare import compare_dir, summary

    if not args.directory.is_dir():
        return _fail(f"gps compare: {args.directory} is not a directory")
    results = compare_dir(args.directory)
    if not results:
        return _fail(f"gps compare: no NAME.log with NAME.log.chk in {args.directory}")
    for r in results:
        flag = "" if r.matched == r.gpsd_fixes else "  <-"
        print(f"{r.name:40} {r.matched:5}/{r.gpsd_fixes:<5} ours {r.our_fixes:5}{flag}")
    matched, total = summary(results)
    rate = matched / total if total else 1.0
    print(f"overall: {matched}/{total} of gpsd's fixes reproduced ({rate:.2%})")
    return 0 if rate >= args.min_rate else 1


def _real_scale(args: argparse.Namespace) -> Any:
    settings = config.load(args.config)
    if settings.hardware.scale != "pi":
        raise HardwareError(
            "tray scale: hardware.scale = 'sim' in this config, there is nothing to calibrate; "
            "set hardware.scale = 'pi' on the robot"
        )
    from robot.hardware.factory import build_part

    return build_part("scale", settings)


def cmd_scale_tare(args: argparse.Namespace) -> int:
    """Zero the empty tray and save it in the state directory."""
    try:
        with _real_scale(args) as scale:
            cal = scale.tare()
    except RamudroidError as e:
        return _fail(str(e))
    print(
        f"tray scale: tared at raw {cal.offset:.0f}; now put a known weight on it and run "
        "ramudroid scale calibrate --known-kg 1.0"
    )
    return 0


def cmd_scale_calibrate(args: argparse.Namespace) -> int:
    """Compute counts per kg from a known weight and save it."""
    try:
        with _real_scale(args) as scale:
            cal = scale.calibrate(args.known_kg)
            now_kg = scale.read_kg()
    except RamudroidError as e:
        return _fail(str(e))
    print(f"tray scale: {cal.counts_per_kg:.1f} counts per kg saved; it now reads {now_kg:.3f} kg")
    return 0


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    part: str
    driver: str
    ok: bool
    reading: str
    hint: str = ""
    warn: bool = False  # works, but something is off (e.g. the Arduino runs another firmware build)

    @property
    def status(self) -> str:
        """OK, FAIL, or WARN (an optional part failing, or a part that works with a caveat)."""
        if self.ok:
            return "WARN" if self.warn else "OK"
        return "WARN" if self.part in OPTIONAL_PARTS else "FAIL"


def _wait_for(probe: Callable[[], Any], timeout_s: float) -> Any:
    """Poll a real part until it has something to say (GPS sentences, distance pings)."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while value is None and time.monotonic() < deadline:
        time.sleep(0.1)
        value = probe()
    return value


def _read_part(name: str, part: Any, driver: str, settings: config.Settings) -> tuple[str, str]:
    """A reading to show, and a hint when it looks wrong; raises HardwareError subclasses."""
    if name == "gps":
        fix = part.latest() if driver == "sim" else _wait_for(part.latest, settings.control.gps_stale_s)
        if fix is None:
            if driver == "pi" and not part.stats()["sentences"]:
                raise HardwareError(
                    f"no NMEA on {settings.hardware.gps_port} at {settings.hardware.gps_baud} baud; "
                    "check TX->RX wiring and hardware.gps_baud"
                )
            return (
                "no fix yet",
                "" if driver == "sim" else "outdoors with open sky, a cold start takes minutes",
            )
        return f"{fix.lat:.6f}, {fix.lon:.6f} mode {fix.mode}D sats {fix.sats}", ""
    if name == "scale":
        return f"{part.read_kg():.3f} kg", ""
    if name == "rain":
        return ("wet" if part.is_raining() else "dry"), ""
    if name == "distance":
        d = part.distance_m() if driver == "sim" else _wait_for(part.distance_m, 1.5)
        if d is None:
            raise HardwareError(
                "no echo from the distance sensor (unknown = unsafe: the robot will not drive)"
            )
        return f"{d:.2f} m", ""
    if name == "side":
        probe = part.distances_m
        pair = probe() if driver == "sim" else _wait_for(lambda: None if None in probe() else probe(), 1.5)
        if pair is None or None in pair:
            raise HardwareError(
                f"no echo from a side sensor (left, right = {probe()}; unknown = unsafe: the robot will not drive)"
            )
        return f"left {pair[0]:.2f} m, right {pair[1]:.2f} m", ""
    if name == "power":
        r = part.read()
        return (
            f"panel {r.panel_v:.1f} V {r.panel_a:.2f} A ({r.panel_w:.0f} W), battery {r.battery_v:.2f} V "
            f"{r.battery_a:+.2f} A, SoC {r.soc:.0%}",
            "",
        )
    if name == "camera":
        jpeg = part.snapshot_jpeg()
        if not jpeg.startswith(b"\xff\xd8"):
            raise HardwareError("camera frame is not a JPEG")
        return f"JPEG {len(jpeg) / 1024:.0f} kB", ""
    if name == "relay":
        return f"loads on {part.source.value}", ""
    if name == "lcd":
        cols, rows = part.size
        part.show(("ramudroid doctor", "LCD check"))
        where = "simulated" if driver == "sim" else f"at 0x{settings.hardware.lcd_addr:02x}"
        return f"{cols}x{rows} {where}: shows 'ramudroid doctor'", ""
    return "", ""


_HINTS = {p.name: p.hint for p in PARTS}


def check_arduino(settings: config.Settings) -> Check:
    """The Arduino link: handshake, protocol, firmware version and whether it runs this controller's build."""
    from arduino_bridge.codec import FIRMWARE_VERSION, PROTOCOL_VERSION
    from arduino_bridge.firmware_build import source_build_id
    from arduino_bridge.flash import port_users, probe, resolve_port

    hw = settings.hardware
    want = source_build_id()
    if hw.arduino == "sim":
        version = ".".join(map(str, FIRMWARE_VERSION))
        return Check("arduino", "sim", True, f"simulated: firmware {version}, build {want:08x}")
    try:
        port = resolve_port(hw.arduino_port)
        users = port_users(port)
        if users:
            who = ", ".join(f"{name} (pid {pid})" for pid, name in users)
            return Check(
                "arduino", hw.arduino, True, f"{port} is in use by {who}", "stop it to check the board", True
            )
        info = probe(port, baud=hw.arduino_baud)
    except RamudroidError as e:
        return Check("arduino", hw.arduino, False, str(e), _HINTS["arduino"])
    if info is None:
        return Check(
            "arduino",
            hw.arduino,
            False,
            f"no answer to HELLO on {port} at {hw.arduino_baud} baud",
            _HINTS["arduino"],
        )
    if info.runs(want):
        return Check("arduino", hw.arduino, True, f"{port}: {info.describe()} (this controller's)")
    if info.protocol != PROTOCOL_VERSION or info.firmware is None:
        return Check("arduino", hw.arduino, False, f"{port}: {info.describe()}", "ramudroid firmware flash")
    return Check(
        "arduino",
        hw.arduino,
        True,
        f"{port}: {info.describe()}, not this controller's {want:08x}",
        "ramudroid firmware flash",
        warn=True,
    )


_CREG = {0: "not registered", 1: "home network", 2: "searching", 3: "registration denied", 5: "roaming"}


def check_modem(settings: config.Settings) -> Check:
    """The GSM modem: answers AT, SIM ready, registered on a network, signal strength."""
    hw = settings.hardware
    if hw.modem == "none":
        return Check("modem", "none", True, "not fitted")
    if hw.modem == "sim":
        return Check("modem", "sim", True, "simulated SIM800 (ramudroid run starts it)")
    from robot.gsm.modem import Sim800Modem

    try:
        with Sim800Modem(hw.modem_port, baud=hw.modem_baud) as modem:
            sim = modem.sim_status()
            registered = modem.registered()
            csq = modem.signal()
    except RamudroidError as e:
        return Check("modem", hw.modem, False, str(e), _HINTS["modem"])
    signal = "unknown" if csq is None else f"{csq}/31 ({-113 + 2 * csq} dBm)"
    network = _CREG.get(modem.registration if modem.registration is not None else 0, "unknown")
    reading = f"AT ok, SIM {sim}, {network}, signal {signal}"
    if sim != "READY":
        return Check("modem", hw.modem, False, reading, "the SIM wants a PIN: remove it in a phone")
    if not registered:
        return Check("modem", hw.modem, False, reading, "check the antenna, the SIM's plan and coverage")
    weak = csq is None or csq < 10
    return Check("modem", hw.modem, True, reading, "weak signal: move the antenna" if weak else "", weak)


def run_doctor(settings: config.Settings) -> list[Check]:
    """Build, read and close every part, then the LCD, the Arduino and the modem; one Check each."""
    from robot.hardware.factory import PART_NAMES, build_part

    checks = []
    for name in (*PART_NAMES, "lcd"):  # the arduino and the modem have checks of their own below
        driver = getattr(settings.hardware, name)
        if driver == "none":
            checks.append(Check(name, driver, True, "not fitted"))
            continue
        try:
            part = build_part(name, settings)
        except (RamudroidError, ImportError) as e:
            checks.append(Check(name, driver, False, str(e), _HINTS[name]))
            continue
        try:
            reading, hint = _read_part(name, part, driver, settings)
            checks.append(Check(name, driver, True, reading, hint))
        except RamudroidError as e:
            checks.append(Check(name, driver, False, str(e), _HINTS[name]))
        finally:
            part.close()
    checks.append(check_arduino(settings))
    checks.append(check_modem(settings))
    return checks


def format_table(checks: list[Check], width: int = TABLE_WIDTH) -> str:
    """The doctor's table in `width` columns: part, driver, status, then the reading wrapped beside them and
    the hint on its own lines below it ("-> ...")."""
    head = ("PART", "DRIVER", "STATUS")
    rows = [(c.part, c.driver, c.status) for c in checks]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    indent = sum(widths) + 2 * len(widths)
    text_width = max(20, width - indent)
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  READING / ERROR, -> HINT"]
    for c, row in zip(checks, rows, strict=True):
        left = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + "  "
        wrapped = textwrap.wrap(c.reading, text_width, break_on_hyphens=False) or [""]
        if c.hint:
            wrapped += textwrap.wrap(
                "-> " + c.hint, text_width, subsequent_indent="   ", break_on_hyphens=False
            )
        lines.append((left + wrapped[0]).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the table; exit 1 when a required part fails."""
    try:
        settings = config.load(args.config)
    except RamudroidError as e:
        return _fail(str(e))
    checks = run_doctor(settings)
    print(format_table(checks))
    failed = [c.part for c in checks if c.status == "FAIL"]
    if failed:
        print(f"doctor: {len(failed)} required part(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
