"""deploy/: the systemd unit (systemd-analyze verify and security), shellcheck on every script, the installer
(--dry-run on fake Raspberry Pi OS identities, refusals, and a real run into a scratch root with the system
commands stubbed, twice), the udev rules (their syntax and what they name, with a small matcher of our own), and
the Pi configuration they all point at."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from robot.config import Settings, load

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "ramudroid.service"
RULES = DEPLOY / "99-ramudroid.rules"
INSTALL = DEPLOY / "install.sh"
PI_TOML = DEPLOY / "ramudroid.pi.toml"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
pytestmark = pytest.mark.timeout(120)


def installer_setting(name: str) -> str:
    """A variable's value as install.sh sets it (PREFIX, VENV, ETC, STATE, SERVICE_USER)."""
    text = INSTALL.read_text()
    values: dict[str, str] = {}
    for key, value in re.findall(r"^([A-Z_]+)=([^\s(]+)$", text, re.M):
        values[key] = re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), m.group(0)), value)
    return values[name]


def unit_values(key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]


# ---- the systemd unit --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A filesystem root for systemd-analyze: this machine's system units (sysinit.target and friends), our
    unit where install.sh puts it, and an executable where its ExecStart points."""
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        pytest.skip("needs systemd-analyze (apt install systemd)")
    root = tmp_path_factory.mktemp("unit-root")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/ramudroid.service")
    exe = root / installer_setting("VENV").lstrip("/") / "bin/ramudroid"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return root


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False)


def test_unit_passes_systemd_analyze_verify_without_a_warning(unit_root: Path) -> None:
    proc = analyze("verify", f"--root={unit_root}", "ramudroid.service")
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")
    # The check has teeth: a typo is reported (as a warning on stderr, with exit code 0).
    broken = (
        UNIT.read_text().replace("Restart=always", "Restart=alwayz").replace("WatchdogSec=", "WatchdogSek=")
    )
    (unit_root / "etc/systemd/system/broken.service").write_text(broken)
    proc = analyze("verify", f"--root={unit_root}", "broken.service")
    assert (
        "Failed to parse service restart specifier" in proc.stderr
        and "Unknown key 'WatchdogSek'" in proc.stderr
    )


def test_unit_hardening_exposure_is_ok(unit_root: Path) -> None:
    proc = analyze("security", "--offline=yes", f"--root={unit_root}", "--threshold=25", "ramudroid.service")
    level = re.search(r"Overall exposure level for ramudroid\.service: (\d+\.\d+)", proc.stdout)
    assert level is not None, proc.stdout[-500:] + proc.stderr
    print(f"systemd-analyze security: exposure {level.group(1)}")
    assert proc.returncode == 0 and float(level.group(1)) <= 2.5


def test_unit_is_a_watched_notify_service_that_keeps_gpio_i2c_serial_and_camera() -> None:
    assert unit_values("Type") == ["notify"] and unit_values("Restart") == ["always"]
    assert unit_values("WatchdogSec") == ["10s"] and unit_values("StartLimitIntervalSec") == ["0"]
    assert unit_values("StandardOutput") == ["journal"] and unit_values("StandardError") == ["journal"]
    venv, etc = installer_setting("VENV"), installer_setting("ETC")
    assert unit_values("ExecStart") == [f"{venv}/bin/ramudroid -c {etc}/ramudroid.toml run"]
    assert unit_values("User") == [installer_setting("SERVICE_USER")]
    assert f"/var/lib/{unit_values('StateDirectory')[0]}" == installer_setting("STATE")
    assert unit_values("DevicePolicy") == ["closed"] and unit_values("PrivateDevices") == ["no"]
    allowed = {v.split()[0] for v in unit_values("DeviceAllow")}
    # /proc/devices names: GPIO chips, I2C, the four kinds of serial port, V4L2, media controller, DMA heaps.
    assert allowed == {f"char-{n}" for n in ("gpiochip", "i2c", "ttyACM", "ttyUSB", "ttyAMA", "ttyS",
                                               "video4linux", "media", "dma_heap")}  # fmt: skip


# ---- shell scripts -------------------------------------------------------------------------------------------


def shell_scripts() -> list[Path]:
    found = []
    for path in sorted(
        p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts
    ):
        try:
            first = path.open("rb").readline(100)
        except OSError:
            continue
        if path.suffix == ".sh" or (first.startswith(b"#!") and re.search(rb"\b(ba)?sh\b", first)):
            found.append(path)
    return found


def test_every_shell_script_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("needs shellcheck (apt install shellcheck)")
    scripts = shell_scripts()
    assert {INSTALL, ROOT / ".ci" / "run"} <= set(scripts)
    proc = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


# ---- the installer ---------------------------------------------------------------------------------------------

OS_RELEASES = {
    "raspios-bookworm-32": 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\nID_LIKE=debian\n'
    "VERSION_CODENAME=bookworm\n",
    "raspios-bookworm-64": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n',
    "raspios-trixie-64": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_CODENAME=trixie\n',
    "raspios-bullseye": 'PRETTY_NAME="Raspbian GNU/Linux 11 (bullseye)"\nID=raspbian\nVERSION_CODENAME=bullseye\n',
    "ubuntu": 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n',
}
MODELS = {
    "pi5": "Raspberry Pi 5 Model B Rev 1.0",
    "pi4": "Raspberry Pi 4 Model B Rev 1.5",
    "pi3": "Raspberry Pi 3 Model B Plus Rev 1.3",
    "pc": "",
}


def identity(tmp_path: Path, os_name: str, model: str) -> list[str]:
    (tmp_path / "os-release").write_text(OS_RELEASES[os_name])
    args = ["--os-release", str(tmp_path / "os-release")]
    if MODELS[model]:
        (tmp_path / "model").write_bytes(MODELS[model].encode() + b"\0")  # as the device tree has it
        args += ["--model-file", str(tmp_path / "model")]
    else:
        args += ["--model-file", str(tmp_path / "no-model")]
    return args


def install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.mark.parametrize(
    ("os_name", "model", "arch", "board_lines"),
    [
        ("raspios-bookworm-64", "pi4", "arm64", ["+ append dtoverlay=uart5 to"]),
        (
            "raspios-trixie-64",
            "pi5",
            "arm64",
            ["+ append dtparam=uart0=on to", "+ append dtoverlay=uart4-pi5 to"],
        ),
        ("raspios-bookworm-32", "pi3", "armhf", ["connect the SIM800 through a USB-TTL adapter"]),
    ],
)
def test_dry_run_prints_every_step_and_changes_nothing(
    tmp_path: Path, os_name: str, model: str, arch: str, board_lines: list[str]
) -> None:
    scratch = tmp_path / "root"
    scratch.mkdir()
    proc = install("--dry-run", *identity(tmp_path, os_name, model), "--arch", arch, "--root", str(scratch))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert list(scratch.iterdir()) == []  # nothing written
    steps = [line[4:] for line in out.splitlines() if line.startswith("==> ")]
    assert [s.split()[0] for s in steps] == [
        "Debian",
        "interfaces:",
        "user",
        "venv",
        "configuration",
        "udev",
        "systemd",
        "done",
    ]
    for expected in (
        "apt-get install -y -q --no-install-recommends python3-venv python3-pip python3-picamera2 python3-lgpio",
        "avrdude gcc-avr avr-libc binutils-avr arduino-core-avr",
        "+ raspi-config nonint do_i2c 0",
        "+ raspi-config nonint do_serial_hw 0",
        "+ raspi-config nonint do_serial_cons 1",
        "+ append camera_auto_detect=1 to",
        f"-m venv --system-site-packages {scratch}/opt/ramudroid/venv",
        f"{scratch}/opt/ramudroid/venv/bin/pip install -q --upgrade {ROOT}\\[pi\\]",
        f"+ install -m 0640 {DEPLOY}/ramudroid.pi.toml {scratch}/etc/ramudroid/ramudroid.toml",
        f"+ install -D -m 0644 {RULES} {scratch}/etc/udev/rules.d/99-ramudroid.rules",
        f"+ install -D -m 0644 {UNIT} {scratch}/etc/systemd/system/ramudroid.service",
        "+ systemctl enable ramudroid.service",
        "reboot to turn on the UARTs",
        *board_lines,
    ):
        assert expected in out, expected
    if (
        shutil.which("getent")
        and subprocess.run(["getent", "passwd", "ramudroid"], capture_output=True).returncode
    ):
        assert "+ useradd --system --user-group --home-dir /var/lib/ramudroid" in out


@pytest.mark.parametrize(
    ("os_name", "model", "arch", "message"),
    [
        (
            "ubuntu",
            "pi4",
            "arm64",
            "unsupported system: Ubuntu 24.04 LTS. This installer supports Raspberry Pi OS",
        ),
        ("raspios-bullseye", "pi4", "armhf", "unsupported system: Raspbian GNU/Linux 11 (bullseye)"),
        ("raspios-bookworm-64", "pc", "arm64", "this is not a Raspberry Pi"),
        ("raspios-bookworm-64", "pi4", "amd64", "unsupported architecture amd64"),
    ],
)
def test_unsupported_systems_get_one_clear_error(
    tmp_path: Path, os_name: str, model: str, arch: str, message: str
) -> None:
    proc = install("--dry-run", *identity(tmp_path, os_name, model), "--arch", arch)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("install.sh: " + message)
    assert len(proc.stderr.splitlines()) == 1


def test_unknown_option_and_help() -> None:
    proc = install("--frobnicate")
    assert proc.returncode == 1 and "unknown option: --frobnicate" in proc.stderr and "Usage:" in proc.stderr
    assert install("--help").stdout.startswith("Usage: sudo deploy/install.sh")


STUBS = {
    # Every system command the installer runs, replaced by one that logs its arguments.
    "apt-get": "",
    "raspi-config": "",
    "udevadm": "",
    "systemctl": "",
    "usermod": "",
    "chown": "",
    "runuser": "",
    "useradd": 'touch "$STUBS/user-exists"',
    "getent": 'if [ "$1" = passwd ]; then [ -e "$STUBS/user-exists" ]; else true; fi',
}
VENV_STUB = """#!/bin/sh
# python3 stand-in: `-m venv ... DIR` makes a venv whose pip logs and whose ramudroid is the real CLI.
echo "python3 $*" >>"$STUBS/log"
case "$1" in
  -m) eval "dir=\\${$#}"; mkdir -p "$dir/bin"
      printf '#!/bin/sh\\necho "pip $*" >>"%s/log"\\n' "$STUBS" >"$dir/bin/pip"
      printf '#!/bin/sh\\nexec "%s" -m ramudroid.cli "$@"\\n' "$REAL_PYTHON" >"$dir/bin/ramudroid"
      cp "$dir/bin/pip" "$dir/bin/python"; chmod +x "$dir/bin/"* ;;
  *) exec "$REAL_PYTHON" "$@" ;;
esac
"""

PI4_CONFIG_TXT = "# For more options see https://rptl.io/configtxt\ndtparam=audio=on\n\n[cm4]\notg_mode=1\n"


@pytest.fixture
def stubbed(tmp_path: Path) -> dict[str, str]:
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        script = stubs / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >>"$STUBS/log"\n{body}\n')
        script.chmod(0o755)
    (stubs / "python3").write_text(VENV_STUB)
    (stubs / "python3").chmod(0o755)
    return dict(
        os.environ,
        PATH=f"{stubs}:{os.environ['PATH']}",
        STUBS=str(stubs),
        PYTHON=str(stubs / "python3"),
        REAL_PYTHON=sys.executable,
        PYTHONPATH=str(ROOT),
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_installer_really_installs_into_a_scratch_root_and_a_second_run_changes_nothing(
    tmp_path: Path, stubbed: dict[str, str]
) -> None:
    """The real script, not a dry run: files land under --root, system commands go to logging stand-ins (the
    `ramudroid config check` it runs is the real one). Then the person edits the config and runs it again."""
    if os.geteuid() != 0:
        pytest.skip("the installer refuses to run for real without root")
    scratch = tmp_path / "root"
    (scratch / "boot/firmware").mkdir(parents=True)
    (scratch / "boot/firmware/config.txt").write_text(PI4_CONFIG_TXT)
    args = [*identity(tmp_path, "raspios-bookworm-64", "pi4"), "--arch", "arm64", "--root", str(scratch)]
    log = Path(stubbed["STUBS"]) / "log"

    first = install(*args, env=stubbed)
    assert first.returncode == 0, first.stdout + first.stderr
    calls = log.read_text()
    assert "useradd --system --user-group --home-dir /var/lib/ramudroid" in calls
    assert "usermod -a -G gpio,dialout,video,i2c ramudroid" in calls
    assert f"pip install -q --upgrade {ROOT}[pi]" in calls
    assert "systemctl enable ramudroid.service" in calls and "systemctl restart" not in calls
    assert f"{scratch}/etc/ramudroid/ramudroid.toml: ok" in first.stdout  # the real config check
    assert (scratch / "etc/ramudroid/ramudroid.toml").read_text() == PI_TOML.read_text()
    assert (scratch / "etc/systemd/system/ramudroid.service").read_bytes() == UNIT.read_bytes()
    assert (scratch / "etc/udev/rules.d/99-ramudroid.rules").read_bytes() == RULES.read_bytes()
    assert (scratch / "boot/firmware/config.txt").read_text() == (
        PI4_CONFIG_TXT + "\n[all]\ncamera_auto_detect=1\ndtoverlay=uart5\n"
    )
    assert "reboot to turn on the UARTs" in first.stdout

    edited = (scratch / "etc/ramudroid/ramudroid.toml").read_text().replace('"ramudroid-1"', '"alley-7"')
    (scratch / "etc/ramudroid/ramudroid.toml").write_text(edited)
    before = snapshot(scratch)
    log.write_text("")
    second = install(*args, env=stubbed)
    assert second.returncode == 0, second.stdout + second.stderr
    assert snapshot(scratch) == before  # config kept, config.txt not touched again, same files
    assert "ramudroid.toml kept as it is" in second.stdout and "user ramudroid exists" in second.stdout
    calls = log.read_text()
    assert "useradd" not in calls and "python3 -m venv" not in calls
    assert "systemctl restart ramudroid.service" in calls  # nothing to reboot for: the upgrade runs at once


def test_installer_refuses_a_real_run_without_root() -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("needs to drop root: setpriv")
    with tempfile.TemporaryDirectory() as tmp:  # readable by the unprivileged user, unlike tmp_path
        where = Path(tmp)
        where.chmod(0o755)
        args = [*identity(where, "raspios-bookworm-64", "pi4"), "--arch", "arm64", "--root", tmp]
        cmd = ["bash", str(INSTALL), *args]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        env = dict(os.environ, PYTHON=python)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("install.sh: run it as root: sudo"), proc.stderr


# ---- the Pi configuration and the udev rules ------------------------------------------------------------------


def test_pi_configuration_is_valid_and_uses_the_stable_names_and_the_state_directory() -> None:
    s = load(PI_TOML)
    hw = s.hardware
    assert (hw.arduino, hw.modem) == ("serial", "serial")
    assert all(
        getattr(hw, p) == "pi"
        for p in ("gps", "scale", "rain", "distance", "power", "camera", "relay", "lcd")
    )
    assert (hw.arduino_port, hw.gps_port, hw.modem_port) == (
        "/dev/ramudroid-arduino", "/dev/ramudroid-gps", "/dev/ramudroid-gsm",
    )  # fmt: skip
    defaults = Settings().hardware
    assert (defaults.arduino_port, defaults.gps_port, defaults.modem_port) == (
        hw.arduino_port, hw.gps_port, hw.modem_port,
    )  # fmt: skip
    assert s.robot.state_dir == installer_setting("STATE")


RULE_TOKEN = re.compile(r'\s*([A-Z_]+)(?:\{([A-Za-z_]+)\})?\s*(==|!=|\+=|=)\s*"([^"]*)"\s*(?:,|$)')
MATCH = ("==", "!=")
OPERATORS = {
    "SUBSYSTEM": MATCH,
    "KERNEL": MATCH,
    "KERNELS": MATCH,
    "ATTRS": MATCH,
    "SYMLINK": (*MATCH, "+="),
    "ENV": ("=",),
}
PARENT_KEYS = {"KERNELS", "ATTRS"}


def parse_rules(text: str) -> list[list[tuple[str, str | None, str, str]]]:
    """Our rules file, checked against the subset of udev's syntax it uses: KEY or KEY{attr}, an operator, a
    quoted value, comma-separated, one rule a line."""
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens, pos = [], 0
        while pos < len(line):
            m = RULE_TOKEN.match(line, pos)
            assert m is not None, f"line {n}: cannot read {line[pos:]!r}"
            key, attr, op, value = m.groups()
            assert op in OPERATORS.get(key, ()), f"line {n}: {key}{op} is not one of ours"
            assert (attr is not None) == (key in ("ATTRS", "ENV")), f"line {n}: {key}{{{attr}}}"
            tokens.append((key, attr, op, value))
            pos = m.end()
        rules.append(tokens)
    return rules


def udev_match(pattern: str, value: str | None) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in pattern.split("|"))


def apply_rules(rules: list, device: dict) -> dict:
    """udev's matching for our keys: KERNEL, SUBSYSTEM and SYMLINK on the device; KERNELS and ATTRS all on one
    and the same device of the chain from the device up through its parents."""
    dev = {**device, "SYMLINK": list(device.get("SYMLINK", [])), "ENV": {}}
    chain = [{"KERNELS": dev["KERNEL"], "ATTRS": {}}, *dev.get("parents", [])]
    for rule in rules:
        own = [t for t in rule if t[2] in MATCH and t[0] not in PARENT_KEYS]
        parent = [t for t in rule if t[0] in PARENT_KEYS]
        ok = all(
            (any(udev_match(v, s) for s in dev["SYMLINK"]) if k == "SYMLINK" else udev_match(v, dev.get(k)))
            == (op == "==")
            for k, _, op, v in own
        ) and any(
            all(udev_match(v, p["KERNELS"] if k == "KERNELS" else p["ATTRS"].get(a)) for k, a, _, v in parent)
            for p in chain
        )
        if ok:
            for key, attr, op, value in rule:
                if key == "SYMLINK" and op == "+=":
                    dev["SYMLINK"].append(value)
                elif key == "ENV":
                    dev["ENV"][attr] = value
    return dev


def usb(kernel: str, vid: str, pid: str) -> dict:
    return {
        "SUBSYSTEM": "tty",
        "KERNEL": kernel,
        "parents": [
            {"KERNELS": "1-1.3:1.0", "ATTRS": {}},
            {"KERNELS": "1-1.3", "ATTRS": {"idVendor": vid, "idProduct": pid}},
        ],
    }


def uart(kernel: str, controller: str, *links: str) -> dict:
    return {
        "SUBSYSTEM": "tty",
        "KERNEL": kernel,
        "SYMLINK": list(links),
        "parents": [{"KERNELS": f"{controller}:0.0", "ATTRS": {}}, {"KERNELS": controller, "ATTRS": {}}],
    }


@pytest.mark.parametrize(
    ("device", "name"),
    [
        (usb("ttyACM0", "2341", "0043"), "ramudroid-arduino"),  # Uno R3, ATmega16U2
        (usb("ttyACM0", "2341", "0001"), "ramudroid-arduino"),  # the first Uno, 8U2
        (usb("ttyACM0", "2a03", "0043"), "ramudroid-arduino"),  # arduino.org Uno R3
        (usb("ttyUSB0", "1a86", "7523"), "ramudroid-arduino"),  # CH340 clone
        (usb("ttyUSB0", "0403", "6001"), "ramudroid-arduino"),  # FTDI FT232R Nano
        (uart("ttyS0", "fe215040.serial", "serial0"), "ramudroid-gps"),  # Pi 3/4 mini UART on GPIO 14/15
        (uart("ttyAMA0", "fe201000.serial", "serial0"), "ramudroid-gps"),  # Pi 4 with disable-bt
        (uart("ttyAMA0", "fe201000.serial", "serial1"), None),  # Pi 4's PL011 on Bluetooth
        (uart("ttyAMA0", "1f00030000.serial"), "ramudroid-gps"),  # Pi 5 UART0 on GPIO 14/15
        (uart("ttyAMA10", "107d001000.serial", "serial0"), None),  # Pi 5's debug connector
        (usb("ttyACM1", "1546", "01a8"), "ramudroid-gps"),  # u-blox 8 on USB
        (uart("ttyAMA1", "fe201a00.serial"), "ramudroid-gsm"),  # Pi 4 UART5, GPIO 12/13
        (uart("ttyAMA4", "1f00040000.serial"), "ramudroid-gsm"),  # Pi 5 UART4, GPIO 12/13
        (usb("ttyUSB1", "10c4", "ea60"), "ramudroid-gsm"),  # CP2102 adapter
        (usb("ttyUSB1", "067b", "2303"), "ramudroid-gsm"),  # PL2303 adapter
        (usb("ttyUSB2", "0403", "6015"), None),  # some other FTDI chip
        ({**usb("ttyUSB0", "1a86", "7523"), "SUBSYSTEM": "usb-serial"}, None),  # not the tty itself
    ],
)
def test_udev_rules_give_each_adapter_its_stable_name(device: dict, name: str | None) -> None:
    dev = apply_rules(parse_rules(RULES.read_text()), device)
    ours = [link for link in dev["SYMLINK"] if link.startswith("ramudroid-")]
    assert ours == ([name] if name else [])
    assert dev["ENV"] == ({"ID_MM_DEVICE_IGNORE": "1"} if name else {})  # ModemManager keeps off our ports


def test_udev_rules_only_add_links_and_name_what_the_configuration_opens() -> None:
    rules = parse_rules(RULES.read_text())
    assigned = {(k, v) for rule in rules for k, _, op, v in rule if op in ("=", "+=") and k != "ENV"}
    assert {v for _, v in assigned} == {"ramudroid-arduino", "ramudroid-gps", "ramudroid-gsm"}
    assert {k for k, _ in assigned} == {"SYMLINK"}  # no NAME, MODE or GROUP changes: dialout keeps them
    hw = Settings().hardware
    assert {f"/dev/{v}" for _, v in assigned} == {hw.arduino_port, hw.gps_port, hw.modem_port}
