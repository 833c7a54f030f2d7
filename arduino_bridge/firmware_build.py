"""Build the motor firmware for the ATmega328P with Debian's gcc-avr and arduino-core-avr (no IDE, no
downloads),
and the host-side tools around it: the simavr harness and host builds of the protocol core.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from robot.errors import FirmwareBuildError

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
SKETCH_DIR = FIRMWARE_DIR / "ramudroid_motor"
HARNESS_SOURCE = FIRMWARE_DIR / "simavr" / "harness.c"
ARDUINO_AVR = Path("/usr/share/arduino/hardware/arduino/avr")
MCU = "atmega328p"
F_CPU = 16_000_000
FLASH_BYTES = 32_256  # Uno: 32 KiB minus the 512-byte Optiboot bootloader
RAM_BYTES = 2048

_COMMON = [
    f"-mmcu={MCU}",
    f"-DF_CPU={F_CPU}L",
    "-DARDUINO=10819",
    "-DARDUINO_AVR_UNO",
    "-DARDUINO_ARCH_AVR",
    "-DDECIMAL_DIG=__DECIMAL_DIG__",  # Debian's avr-gcc 5.4 lacks it; the core's WString.cpp needs it
    "-Os",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
]
_CXX = ["-std=gnu++11", "-fpermissive", "-fno-exceptions", "-fno-threadsafe-statics", "-Wno-error=narrowing"]


SOURCE_SUFFIXES = (".ino", ".cpp", ".c", ".h")


def source_build_id(sketch_dir: Path = SKETCH_DIR) -> int:
    """The firmware's build id: the first 32 bits of SHA-256 over the sketch's sources and the compiler flags.

    The firmware reports it in its INFO reply (compiled in as RD_BUILD_ID), so "the board runs this
    controller's firmware" is an exact check, not a version number someone forgot to bump. Never 0 (0 is a
    build without an id, like the host-side test builds)."""
    files = sorted(f for f in Path(sketch_dir).iterdir() if f.suffix in SOURCE_SUFFIXES and f.is_file())
    if not files:
        raise FirmwareBuildError(f"firmware: no sources in {sketch_dir}; the installation is incomplete")
    h = hashlib.sha256(" ".join([*_COMMON, *_CXX]).encode())
    for f in files:
        h.update(b"\0" + f.name.encode() + b"\0" + f.read_bytes())
    return int.from_bytes(h.digest()[:4], "big") or 1


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A built firmware: the ELF and HEX files, their memory use and the build id compiled in."""

    elf: Path
    hex: Path
    flash_bytes: int
    ram_bytes: int
    build_id: int = 0

    def summary(self) -> str:
        """One line per memory, as avr-size would say it."""
        return (
            f"flash: {self.flash_bytes} bytes "
            f"({100 * self.flash_bytes / FLASH_BYTES:.1f}% of {FLASH_BYTES})\n"
            f"RAM:   {self.ram_bytes} bytes ({100 * self.ram_bytes / RAM_BYTES:.1f}% of {RAM_BYTES}) static\n"
            f"build id: {self.build_id:08x}"
        )


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FirmwareBuildError(f"firmware build: {name} not found; install it with `apt install {package}`")
    return path


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = "\n".join(detail[-15:])
        raise FirmwareBuildError(f"firmware build: {what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _core_archive(gcc: str, gxx: str, ar: str, core_root: Path, out: Path) -> Path:
    core = core_root / "cores" / "arduino"
    variant = core_root / "variants" / "standard"
    if not (core / "Arduino.h").is_file():
        raise FirmwareBuildError(
            f"firmware build: Arduino core not found in {core}; "
            "install it with `apt install arduino-core-avr`"
        )
    obj_dir = out / "core"
    obj_dir.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{core}", f"-I{variant}"]
    jobs = []
    for src in sorted(core.iterdir()):
        obj = obj_dir / (src.name + ".o")
        if src.suffix == ".c":
            jobs.append(([gcc, "-c", *_COMMON, "-std=gnu11", "-w", *inc, str(src), "-o", str(obj)], obj))
        elif src.suffix == ".cpp":
            jobs.append(([gxx, "-c", *_COMMON, *_CXX, "-w", *inc, str(src), "-o", str(obj)], obj))
        elif src.suffix == ".S":
            jobs.append(
                ([gcc, "-c", *_COMMON, "-x", "assembler-with-cpp", *inc, str(src), "-o", str(obj)], obj)
            )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(
            pool.map(lambda job: _run(job[0], f"compiling the Arduino core ({Path(job[0][-3]).name})"), jobs)
        )
    archive = out / "core.a"
    archive.unlink(missing_ok=True)
    _run([ar, "rcs", str(archive), *(str(o) for _, o in jobs)], "archiving the Arduino core")
    return archive


def parse_size(avr_size_output: str) -> tuple[int, int]:
    """(flash, static RAM) bytes from `avr-size -A` output: flash = .text + .data, RAM = .data + .bss +
    .noinit."""
    sections = {}
    for line in avr_size_output.splitlines():
        m = re.match(r"^(\.\w+)\s+(\d+)\s+\d+", line)
        if m:
            sections[m.group(1)] = int(m.group(2))
    if ".text" not in sections:
        raise FirmwareBuildError(f"firmware build: cannot read avr-size output: {avr_size_output[:200]!r}")
    data = sections.get(".data", 0)
    return sections[".text"] + data, data + sections.get(".bss", 0) + sections.get(".noinit", 0)


def build_firmware(out: Path, *, sketch_dir: Path = SKETCH_DIR, core_root: Path = ARDUINO_AVR) -> BuildResult:
    """Compile the sketch and the Arduino core into out/ramudroid_motor.{elf,hex}; raises
    FirmwareBuildError."""
    gcc = _tool("avr-gcc", "gcc-avr")
    gxx = _tool("avr-g++", "gcc-avr")
    ar = _tool("avr-ar", "binutils-avr")
    objcopy = _tool("avr-objcopy", "binutils-avr")
    size = _tool("avr-size", "binutils-avr")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    archive = _core_archive(gcc, gxx, ar, core_root, out)
    inc = [
        f"-I{core_root / 'cores' / 'arduino'}",
        f"-I{core_root / 'variants' / 'standard'}",
        f"-I{sketch_dir}",
    ]
    warn = ["-Wall", "-Wextra", "-Werror"]
    build_id = source_build_id(sketch_dir)
    ident = [f"-DRD_BUILD_ID=0x{build_id:08x}UL"]
    name = sketch_dir.name
    ino = sketch_dir / f"{name}.ino"
    objs = []
    sources = [(ino, ["-x", "c++", "-include", "Arduino.h"])] + [
        (s, []) for s in sorted(sketch_dir.glob("*.cpp"))
    ]
    for src, extra in sources:
        obj = out / (src.name + ".o")
        _run(
            [gxx, "-c", *_COMMON, *_CXX, *warn, *ident, *inc, *extra, str(src), "-o", str(obj)],
            f"compiling {src.name}",
        )
        objs.append(str(obj))
    elf = out / f"{name}.elf"
    hex_file = out / f"{name}.hex"
    _run(
        [gcc, f"-mmcu={MCU}", "-Os", "-Wl,--gc-sections", "-o", str(elf), *objs, str(archive), "-lm"],
        "linking the firmware",
    )
    _run([objcopy, "-O", "ihex", "-R", ".eeprom", str(elf), str(hex_file)], "writing the HEX file")
    flash, ram = parse_size(_run([size, "-A", str(elf)], "avr-size"))
    if flash > FLASH_BYTES:
        raise FirmwareBuildError(f"firmware build: {flash} bytes of flash exceed the Uno's {FLASH_BYTES}")
    return BuildResult(elf, hex_file, flash, ram, build_id)


def build_harness(out: Path, *, source: Path = HARNESS_SOURCE) -> Path:
    """Compile the simavr harness (links libsimavr and its uart_pty part) into out/simavr_harness."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise FirmwareBuildError("simavr harness: no C compiler; install it with `apt install gcc`")
    if not Path("/usr/include/simavr/sim_avr.h").is_file():
        raise FirmwareBuildError(
            "simavr harness: simavr headers missing; install them with `apt install libsimavr-dev`"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exe = out / "simavr_harness"
    # simavr's pkg-config file is broken on Debian 12, so the flags are spelled out here.
    _run(
        [
            cc,
            "-O2",
            "-Wall",
            "-I/usr/include/simavr",
            "-I/usr/include/simavr/parts",
            f"-I{SKETCH_DIR}",
            str(source),
            "-o",
            str(exe),
            "-lsimavrparts",
            "-lsimavr",
            "-lpthread",
            "-lutil",
        ],
        "compiling the simavr harness",
    )
    return exe


def build_host_tool(
    sources: list[Path], exe: Path, *, compiler: str = "g++", flags: tuple[str, ...] = ("-O1",)
) -> Path:
    """Compile the protocol core plus `sources` for the host (vector runner, fuzzer) into `exe`."""
    cxx = _tool(compiler, compiler)
    exe.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [cxx, "-std=c++11", "-Wall", "-Wextra", *flags, f"-I{SKETCH_DIR}", *map(str, sources),
         str(SKETCH_DIR / "protocol.cpp"), "-o", str(exe)],
        f"compiling {exe.name} with {compiler}",
    )  # fmt: skip
    return exe
