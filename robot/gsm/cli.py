"""`ramudroid sms check|send`: try the GSM modem from the command line while wiring it up."""

from __future__ import annotations

import argparse
import sys

from robot import config
from robot.errors import ConfigError, RamudroidError
from robot.gsm.modem import Sim800Modem
from robot.gsm.sms import normalise_number

_CREG = {0: "not registered", 1: "home network", 2: "searching", 3: "registration denied", 5: "roaming"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `sms` subcommand with `check` and `send`."""
    sms = subparsers.add_parser("sms", help="GSM modem: check it or send a test SMS")
    sub = sms.add_subparsers(dest="sms_command", required=True)
    check = sub.add_parser("check", help="answer, network registration and signal of the modem")
    check.add_argument("--port", help="serial port or pyserial URL (default: hardware.modem_port)")
    check.set_defaults(func=_check)
    send = sub.add_parser("send", help="send one SMS")
    send.add_argument("number", help="e.g. +919876543210")
    send.add_argument("text")
    send.add_argument("--port", help="serial port or pyserial URL (default: hardware.modem_port)")
    send.set_defaults(func=_send)


def _open(args: argparse.Namespace) -> Sim800Modem:
    settings = config.load(args.config)
    hw = settings.hardware
    port = args.port
    if port is None:
        if hw.modem != "serial":
            raise ConfigError(
                f"hardware.modem = {hw.modem!r}: no real modem configured; set it to 'serial' or pass --port"
            )
        port = hw.modem_port
    return Sim800Modem(port, baud=hw.modem_baud)


def _check(args: argparse.Namespace) -> int:
    try:
        with _open(args) as modem:
            registered = modem.registered()
            csq = modem.signal()
    except RamudroidError as err:
        print(err, file=sys.stderr)
        return 1
    signal = "unknown" if csq is None else f"{csq}/31 ({-113 + 2 * csq} dBm)"
    network = "registered" if registered else _CREG.get(modem.registration or 0, "unknown")
    print(f"GSM modem on {modem.url}: answers, {network}, signal {signal}")
    return 0 if registered else 2


def _send(args: argparse.Namespace) -> int:
    number = normalise_number(args.number)
    try:
        with _open(args) as modem:
            modem.send_sms(number, args.text)
    except RamudroidError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"sent to {number}")
    return 0
