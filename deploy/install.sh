#!/usr/bin/env bash
# Installs the Ramudroid controller on a Raspberry Pi with Raspberry Pi OS Bookworm or Trixie (32- or 64-bit) so
# the robot starts by itself at boot. Run it from a clone of the repository:
#
#   sudo deploy/install.sh            install or upgrade (safe to run again: it keeps your configuration)
#   deploy/install.sh --dry-run       print every step without doing anything
#
# What it does: Debian packages (picamera2, lgpio, avrdude and the AVR toolchain); a venv in /opt/ramudroid/venv
# that also sees those packages; a `ramudroid` system user in the gpio, dialout, video and i2c groups; UART, I2C
# and camera on in the boot configuration (plus the second UART for the GSM modem on a Pi 4 or 5); the config in
# /etc/ramudroid (kept if present); state in /var/lib/ramudroid; udev rules for stable device names; the systemd
# service, enabled. docs/deploy.md explains each step.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo deploy/install.sh [--dry-run] [--no-start] [--flash]
  --dry-run          print every step, change nothing (no root needed)
  --no-start         install and enable the service, but do not (re)start it now
  --flash            also build and upload the Arduino firmware (ramudroid firmware flash)
For tests and for preparing an SD card image on another machine:
  --os-release FILE  read the system's identity from FILE (default /etc/os-release)
  --model-file FILE  read the board's model from FILE (default /proc/device-tree/model)
  --arch ARCH        Debian architecture instead of asking dpkg (armhf or arm64)
  --root DIR         install into DIR instead of / (the commands still run on this machine)
EOF
}

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
START=1
FLASH=0
OS_RELEASE=/etc/os-release
MODEL_FILE=/proc/device-tree/model
ARCH=""
ROOT=""
PYTHON=${PYTHON:-python3}

PREFIX=/opt/ramudroid
VENV=$PREFIX/venv
ETC=/etc/ramudroid
STATE=/var/lib/ramudroid
SERVICE_USER=ramudroid
GROUPS_WANTED=(gpio dialout video i2c)
APT_PACKAGES=(
    python3-venv python3-pip           # the venv
    python3-picamera2 python3-lgpio    # camera and GPIO: Raspberry Pi OS's own builds (seen through the venv)
    i2c-tools                          # i2cdetect, for the INA219s and the LCD
    avrdude gcc-avr avr-libc binutils-avr arduino-core-avr   # build and flash the Arduino firmware
)

die() {
    echo "install.sh: $*" >&2
    exit 1
}
step() { echo "==> $*"; }
# Print a command so that it can be pasted into a shell, then run it (unless --dry-run).
run() {
    printf '+'
    local arg
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then
            printf ' %s' "$arg"
        else
            printf ' %q' "$arg"
        fi
    done
    printf '\n'
    if [ "$DRY_RUN" = 0 ]; then
        "$@"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --no-start) START=0 ;;
        --flash) FLASH=1 ;;
        --os-release) OS_RELEASE=${2:?--os-release needs a file}; shift ;;
        --model-file) MODEL_FILE=${2:?--model-file needs a file}; shift ;;
        --arch) ARCH=${2:?--arch needs armhf or arm64}; shift ;;
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done
ROOT=${ROOT%/}

# --- is this a system we support? -----------------------------------------------------------------------

os_field() {
    sed -n "s/^$1=//p" "$OS_RELEASE" | head -n 1 | tr -d '"'
}

[ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE: is this Linux? This installer is for Raspberry Pi OS"
OS_ID=$(os_field ID)
OS_CODENAME=$(os_field VERSION_CODENAME)
OS_NAME=$(os_field PRETTY_NAME)
case "$OS_ID/$OS_CODENAME" in
    raspbian/bookworm | raspbian/trixie | debian/bookworm | debian/trixie) ;;
    *) die "unsupported system: ${OS_NAME:-$OS_ID $OS_CODENAME}. This installer supports Raspberry Pi OS" \
        "Bookworm and Trixie (32- and 64-bit) on a Raspberry Pi; on any other machine use the README's first" \
        "command (it runs the simulator)" ;;
esac
MODEL=""
if [ -r "$MODEL_FILE" ]; then
    MODEL=$(tr -d '\0' <"$MODEL_FILE")
fi
case "$MODEL" in
    *"Raspberry Pi"*) ;;
    *) die "this is not a Raspberry Pi (${MODEL_FILE}: ${MODEL:-missing}); on $OS_NAME use the README's" \
        "first command instead" ;;
esac
if [ -z "$ARCH" ]; then
    ARCH=$(dpkg --print-architecture 2>/dev/null || echo unknown)
fi
case "$ARCH" in
    armhf | arm64) ;;
    *) die "unsupported architecture $ARCH: Raspberry Pi OS is armhf (32-bit) or arm64 (64-bit)" ;;
esac
case "$MODEL" in
    *"Raspberry Pi 5"* | *"Compute Module 5"*) BOARD=pi5 ;; # the Pi 500 too
    *"Raspberry Pi 4"* | *"Compute Module 4"*) BOARD=pi4 ;; # the Pi 400 too
    *) BOARD=other ;;
esac
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is older than 3.11; Raspberry Pi OS Bookworm has 3.11"
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run it as root: sudo $0 (or look first: $0 --dry-run)"
fi
echo "Installing the Ramudroid controller from $SRC on $MODEL, $OS_NAME ($ARCH)"
[ "$DRY_RUN" = 0 ] || echo "Dry run: every step is printed, nothing is changed."

# --- 1. Debian packages -------------------------------------------------------------------------------------

step "Debian packages"
run env DEBIAN_FRONTEND=noninteractive apt-get update -q
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"

# --- 2. UART, I2C and camera in the boot configuration -----------------------------------------------------

if [ "$BOARD" = other ]; then
    step "interfaces: UART for the GPS, I2C, camera"
else
    step "interfaces: UART for the GPS, second UART for the modem, I2C, camera"
fi
CONFIG_TXT=$ROOT/boot/firmware/config.txt # since Bookworm; /boot/config.txt before
if [ ! -e "$CONFIG_TXT" ] && [ -e "$ROOT/boot/config.txt" ]; then
    CONFIG_TXT=$ROOT/boot/config.txt
fi
REBOOT=0
# Append a line to config.txt unless it is there already; under an [all] section so no [pi4]-style filter
# above it applies.
config_line() {
    if [ -f "$CONFIG_TXT" ] && grep -qxF "$1" "$CONFIG_TXT"; then
        echo "$CONFIG_TXT has $1"
        return
    fi
    REBOOT=1
    local last=""
    if [ -f "$CONFIG_TXT" ]; then
        last=$(grep '^\[' "$CONFIG_TXT" | tail -n 1 || true)
    fi
    if [ -n "$last" ] && [ "$last" != "[all]" ]; then
        echo "+ append [all] and $1 to $CONFIG_TXT"
        [ "$DRY_RUN" = 1 ] || printf '\n[all]\n%s\n' "$1" >>"$CONFIG_TXT"
    else
        echo "+ append $1 to $CONFIG_TXT"
        [ "$DRY_RUN" = 1 ] || printf '%s\n' "$1" >>"$CONFIG_TXT"
    fi
}
# raspi-config's own non-interactive switches (0 = on, 1 = off): I2C on, the UART on, the login console off it.
run raspi-config nonint do_i2c 0
run raspi-config nonint do_serial_hw 0
run raspi-config nonint do_serial_cons 1
config_line "camera_auto_detect=1"
case "$BOARD" in
    pi5)
        config_line "dtparam=uart0=on"       # GPS: UART0 on GPIO 14/15
        config_line "dtoverlay=uart4-pi5" ;; # SIM800: UART4 on GPIO 12 (TX) / 13 (RX)
    pi4)
        config_line "dtoverlay=uart5" ;;     # SIM800: UART5 on GPIO 12 (TX) / 13 (RX)
    *)
        echo "$MODEL has one UART on GPIO 14/15 (the GPS): connect the SIM800 through a USB-TTL adapter" \
            "(CP2102 or PL2303; see docs/deploy.md)" ;;
esac

# --- 3. the service user (after 2: the i2c and gpio groups come with the interfaces) ------------------------

step "user $SERVICE_USER"
if getent passwd "$SERVICE_USER" >/dev/null; then
    echo "user $SERVICE_USER exists"
else
    run useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin \
        "$SERVICE_USER"
fi
groups=()
for g in "${GROUPS_WANTED[@]}"; do
    if getent group "$g" >/dev/null; then
        groups+=("$g")
    else
        echo "no group $g on this system: skipped"
    fi
done
if [ ${#groups[@]} -gt 0 ]; then
    run usermod -a -G "$(IFS=,; echo "${groups[*]}")" "$SERVICE_USER"
fi

# --- 4. the program, in a venv that also sees Raspberry Pi OS's picamera2 and lgpio --------------------------

step "venv $VENV"
if [ -x "$ROOT$VENV/bin/python" ]; then
    echo "$VENV exists: upgrading the controller in it"
else
    run "$PYTHON" -m venv --system-site-packages "$ROOT$VENV"
fi
run "$ROOT$VENV/bin/pip" install -q --upgrade "${SRC}[pi]"

# --- 5. configuration and state ------------------------------------------------------------------------------

step "configuration $ETC, state $STATE"
run install -d -m 0750 "$ROOT$ETC"
run chown "root:$SERVICE_USER" "$ROOT$ETC"
if [ -e "$ROOT$ETC/ramudroid.toml" ]; then
    echo "$ETC/ramudroid.toml kept as it is"
else
    run install -m 0640 "$SRC/deploy/ramudroid.pi.toml" "$ROOT$ETC/ramudroid.toml"
    run chown "root:$SERVICE_USER" "$ROOT$ETC/ramudroid.toml"
fi
run install -m 0644 "$SRC/deploy/ramudroid.example.toml" "$ROOT$ETC/ramudroid.example.toml"
run "$ROOT$VENV/bin/ramudroid" config check "$ROOT$ETC/ramudroid.toml"
run install -d -m 0750 "$ROOT$STATE"
run chown "$SERVICE_USER:$SERVICE_USER" "$ROOT$STATE"

# --- 6. stable device names, and the service -----------------------------------------------------------------

step "udev rules: /dev/ramudroid-arduino, /dev/ramudroid-gps, /dev/ramudroid-gsm"
run install -D -m 0644 "$SRC/deploy/99-ramudroid.rules" "$ROOT/etc/udev/rules.d/99-ramudroid.rules"
run udevadm control --reload-rules
run udevadm trigger --subsystem-match=tty --action=add

step "systemd service ramudroid"
run install -D -m 0644 "$SRC/deploy/ramudroid.service" "$ROOT/etc/systemd/system/ramudroid.service"
run systemctl daemon-reload
run systemctl enable ramudroid.service

if [ "$FLASH" = 1 ]; then
    step "Arduino firmware"
    run systemctl stop ramudroid.service
    run runuser -u "$SERVICE_USER" -- "$ROOT$VENV/bin/ramudroid" -c "$ROOT$ETC/ramudroid.toml" firmware flash
fi

step "done"
if [ "$REBOOT" = 1 ]; then
    echo "The boot configuration changed: reboot to turn on the UARTs, I2C and the camera (sudo reboot);"
    echo "the robot starts by itself after that."
elif [ "$START" = 1 ]; then
    run systemctl restart ramudroid.service
fi
cat <<EOF
Next:
  set the numbers, the PIN and the dashboard address: sudo nano $ETC/ramudroid.toml
  set the dashboard password: sudo $VENV/bin/ramudroid passwd  (paste its line under [web])
  check every part:   sudo -u $SERVICE_USER $VENV/bin/ramudroid -c $ETC/ramudroid.toml doctor
  flash the Arduino:  sudo systemctl stop ramudroid && sudo -u $SERVICE_USER $VENV/bin/ramudroid -c $ETC/ramudroid.toml firmware flash
  read the logs:      journalctl -u ramudroid -f
EOF
