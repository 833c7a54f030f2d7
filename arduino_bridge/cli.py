"""`ramudroid firmware build|flash|sim`: compile the motor firmware, upload it to the Arduino (skipped when the
board already runs it), or run it in simavr behind a pseudo-terminal."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from arduino_bridge.firmware_build import build_firmware, build_harness
from robot.errors import RamudroidError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `firmware` command group."""
    fw = subparsers.add_parser("firmware", help="build or emulate the Arduino motor firmware")
    sub = fw.add_subparsers(dest="firmware_command", required=True)
    build = sub.add_parser("build", help="compile for the ATmega328P (Uno/Nano) and print flash/RAM use")
    build.add_argument("--out", type=Path, default=Path("build/firmware"), help="output directory")
    build.set_defaults(func=_build)
    flash = sub.add_parser(
        "flash", help="build and upload with avrdude; skipped when the board already runs this build"
    )
    flash.add_argument("--port", help="the Arduino's serial port (default: hardware.arduino_port)")
    flash.add_argument("--force", action="store_true", help="upload even when the board runs this build")
    flash.add_argument(
        "--baud",
        type=int,
        default=115200,
        help="bootloader baud rate: 115200 for an Uno or a new Nano, 57600 for an old Nano bootloader",
    )
    flash.add_argument("--out", type=Path, default=None, help="build directory (default: a temporary one)")
    flash.set_defaults(func=_flash)
    sim = sub.add_parser("sim", help="run the firmware in simavr; prints the pseudo-terminal to connect to")
    sim.add_argument("--out", type=Path, default=None, help="build directory (default: a temporary one)")
    sim.add_argument(
        "--max-ms", type=float, default=0.0, help="stop after this much simulated time (0: never)"
    )
    sim.set_defaults(func=_sim)


def _build(args: argparse.Namespace) -> int:
    try:
        result = build_firmware(args.out)
    except RamudroidError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"built {result.hex}")
    print(result.summary())
    return 0


def _flash(args: argparse.Namespace) -> int:
    from arduino_bridge.flash import flash
    from robot.config import load

    settings = load(args.config)  # a config error is one clear line from the CLI
    port = args.port or settings.hardware.arduino_port
    with tempfile.TemporaryDirectory(prefix="ramudroid-fw-") as tmp:
        try:
            flash(
                port,
                args.out or Path(tmp),
                force=args.force,
                bootloader_baud=args.baud,
                link_baud=settings.hardware.arduino_baud,
            )
        except RamudroidError as err:
            print(f"ramudroid: {err}", file=sys.stderr)
            return 1
    return 0


def _sim(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ramudroid-fw-") as tmp:
        out = args.out or Path(tmp)
        try:
            result = build_firmware(out)
            harness = build_harness(out)
        except RamudroidError as err:
            print(err, file=sys.stderr)
            return 1
        cmd = [str(harness), str(result.elf), "--realtime"]
        if args.max_ms > 0:
            cmd += ["--max-ms", str(args.max_ms)]
        try:
            return subprocess.run(cmd, check=False).returncode
        except KeyboardInterrupt:
            return 130
