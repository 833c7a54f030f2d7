"""Flashing the motor firmware: ask the board which build it runs (HELLO, then GET_INFO, through the same
LinkSession the robot drives with), skip it when that is this controller's build, else build the HEX and upload
it with avrdude through the Uno's bootloader, then ask again to prove the new firmware runs.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial

from arduino_bridge.codec import PROTOCOL_VERSION, ErrorCode, ErrorReport
from arduino_bridge.firmware_build import build_firmware, source_build_id
from arduino_bridge.session import LinkSession
from robot.errors import FirmwareBuildError, FlashError, HardwareError

# An Uno resets when its port opens and its bootloader waits about 1.5 s before the sketch runs.
PROBE_S = 3.0
HELLO_EVERY_S = 0.25
INFO_WAIT_S = 0.5
# Uno / Nano with Optiboot: 115200 baud. An older Nano bootloader (ATmegaBOOT) needs 57600.
BOOTLOADER_BAUD = 115200


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """What the board on `port` said: its protocol, firmware version and build id (None: it predates INFO)."""

    port: str
    protocol: int
    firmware: tuple[int, int, int] | None
    build_id: int | None

    def describe(self) -> str:
        """One line: protocol, firmware and build."""
        if self.protocol != PROTOCOL_VERSION:
            return f"firmware speaking protocol {self.protocol} (this controller speaks {PROTOCOL_VERSION})"
        version = ".".join(map(str, self.firmware)) if self.firmware else "?"
        build = "without a build id" if self.build_id is None else f"build {self.build_id:08x}"
        return f"protocol {self.protocol}, firmware {version}, {build}"

    def runs(self, build_id: int) -> bool:
        """True when the board runs the firmware of exactly this build and speaks our protocol."""
        return self.protocol == PROTOCOL_VERSION and self.build_id == build_id


def probe(
    url: str,
    *,
    baud: int = 115200,
    timeout_s: float | None = None,
) -> BoardInfo | None:
    """Handshake with the board and ask for its build id; None when nothing answers in our protocol (a blank
    board, another sketch). HELLO brakes every motor; the session then lapses after 300 ms, braked.

    Raises HardwareError when the port cannot be opened."""
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=0.5)
    except (serial.SerialException, OSError, ValueError) as err:
        raise HardwareError(
            f"arduino on {url}: cannot open the port ({err}); check --port and the cable"
        ) from err
    try:
        return _probe(port, url, PROBE_S if timeout_s is None else timeout_s)
    except (serial.SerialException, OSError) as err:
        raise HardwareError(f"arduino on {url}: {err}; check the cable") from err
    finally:
        port.close()


def _probe(port: Any, url: str, timeout_s: float) -> BoardInfo | None:
    clock = time.monotonic
    session = LinkSession(where=f"arduino on {url}")  # the robot's own session, for one HELLO and GET_INFO

    def listen() -> list[Any]:
        return session.receive(port.read(max(1, port.in_waiting)), clock())

    port.reset_input_buffer()
    port.write(b"\x00")  # end any partial frame the board holds
    deadline = clock() + timeout_s
    while session.last_hello is None:
        if clock() >= deadline:
            return None
        port.write(session.hello(clock()))
        sent = clock()
        while session.last_hello is None and clock() - sent < HELLO_EVERY_S:
            for msg in listen():  # line noise, or a foreign sketch's output, is dropped: keep listening
                if isinstance(msg, ErrorReport) and msg.code == ErrorCode.VERSION:
                    return BoardInfo(url, msg.detail, None, None)
    hello = session.last_hello
    if session.refused:
        return BoardInfo(url, hello.protocol, hello.firmware, None)
    port.write(session.get_info(clock()))
    asked = session.seq
    sent = clock()
    while clock() - sent < INFO_WAIT_S:
        for msg in listen():
            if isinstance(msg, ErrorReport) and msg.ref_seq == asked:
                return BoardInfo(url, hello.protocol, hello.firmware, None)  # TYPE: older than INFO
        if session.last_info is not None:
            return BoardInfo(url, hello.protocol, hello.firmware, session.last_info.build_id)
    return BoardInfo(url, hello.protocol, hello.firmware, None)


def avrdude_command(
    hex_file: Path | str, port: str, *, baud: int = BOOTLOADER_BAUD, avrdude: str = "avrdude"
) -> list[str]:
    """The avrdude command line that writes `hex_file` through an Uno/Nano bootloader (STK500v1, "arduino").

    -D: no chip erase (the bootloader cannot erase itself and erases each page as it writes it); avrdude
    verifies what it wrote by reading it back."""
    return [
        avrdude,
        "-c",
        "arduino",
        "-p",
        "m328p",
        "-P",
        port,
        "-b",
        str(baud),
        "-D",
        "-U",
        f"flash:w:{hex_file}:i",
    ]


def resolve_port(url: str) -> str:
    """The one device behind `url` (a path, a glob like /dev/ttyACM*, or a pyserial URL); raises FlashError."""
    if "://" in url:
        return url
    if any(c in url for c in "*?["):
        matches = sorted(glob.glob(url))
        if len(matches) != 1:
            found = ", ".join(matches) or "nothing"
            raise FlashError(f"arduino port {url!r} matches {found}; name one board with --port")
        return matches[0]
    if not os.path.exists(url):
        raise FlashError(
            f"arduino port {url}: no such device; is the board plugged in? Without the udev rules of "
            "deploy/install.sh it is /dev/ttyACM0 (Uno) or /dev/ttyUSB0 (Nano clone): set "
            "hardware.arduino_port or pass --port"
        )
    return url


def port_users(path: str, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command name) of other processes holding `path` open, as far as /proc lets us see."""
    try:
        target = os.path.realpath(path)
    except OSError:
        return []
    users = []
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    name = (entry / "comm").read_text().strip()
                    users.append((int(entry.name), name))
                    break
            except OSError:
                continue
    return users


@dataclass(frozen=True, slots=True)
class FlashResult:
    """What `flash` did: "skipped" (the board already ran this build) or "flashed" (and verified)."""

    action: str
    before: BoardInfo | None
    after: BoardInfo | None
    build_id: int


def flash(
    url: str,
    out_dir: Path,
    *,
    force: bool = False,
    bootloader_baud: int = BOOTLOADER_BAUD,
    link_baud: int = 115200,
    say: Callable[[str], None] = print,
    run: Callable[[Sequence[str]], int] | None = None,
    probe_board: Callable[[str], BoardInfo | None] | None = None,
    in_use: Callable[[str], list[tuple[int, str]]] = port_users,
) -> FlashResult:
    """Skip when the board runs this build (unless `force`), else build, upload with avrdude and verify.

    `run` (the avrdude runner, returning its exit code), `probe_board` and `in_use` are for tests. Raises FlashError,
    FirmwareBuildError or HardwareError with the fix in the message."""
    ask = probe_board or (lambda port: probe(port, baud=link_baud))
    port = resolve_port(url)
    users = in_use(port)
    if users:
        who = ", ".join(f"{name} (pid {pid})" for pid, name in users)
        raise FlashError(
            f"arduino port {port} is open in {who}; stop it first (sudo systemctl stop ramudroid), "
            "flash, then start it again"
        )
    want = source_build_id()
    before = ask(port)
    if before is None:
        say(f"arduino on {port}: no answer in the Ramudroid protocol (a new board, or another sketch)")
    else:
        say(f"arduino on {port}: {before.describe()}")
        if before.runs(want) and not force:
            say(
                f"that is this controller's firmware (build {want:08x}): nothing to do (--force flashes anyway)"
            )
            return FlashResult("skipped", before, before, want)
    say("building the firmware ...")
    built = build_firmware(out_dir)
    say(built.summary())
    if built.build_id != want:  # the sources changed under us
        raise FirmwareBuildError(
            f"firmware build: built {built.build_id:08x}, expected {want:08x}; try again"
        )
    avrdude = shutil.which("avrdude")
    if run is None and avrdude is None:
        raise FlashError("avrdude not found; install it with `sudo apt install avrdude`")
    cmd = avrdude_command(built.hex, port, baud=bootloader_baud, avrdude=avrdude or "avrdude")
    say("uploading: " + " ".join(cmd))
    code = (run or _run_avrdude)(cmd)
    if code != 0:
        raise FlashError(
            f"avrdude failed (exit {code}) on {port}: check the cable and --port; a Nano with the old "
            "bootloader needs --baud 57600; a board that never answers may have no bootloader (burn one with "
            "an ISP programmer)"
        )
    after = ask(port)
    if after is None or not after.runs(want):
        seen = "no answer" if after is None else after.describe()
        raise FlashError(f"arduino on {port}: flashed, but the board now says {seen}, not build {want:08x}")
    say(f"flashed and verified: the board runs build {want:08x}")
    return FlashResult("flashed", before, after, want)


def _run_avrdude(cmd: Sequence[str]) -> int:
    try:
        return subprocess.run(list(cmd), check=False).returncode
    except OSError as err:
        raise FlashError(f"cannot run avrdude: {err}") from err
