"""The `ramudroid` command line: run the robot, check the configuration, and the parts' own subcommands."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from robot import __version__
from robot.config import as_dict, load, to_toml
from robot.errors import RamudroidError

# Modules that add their own subcommands with register(subparsers); each is imported only when present, so a
# partial install still runs.
SUBCOMMAND_MODULES = (
    "arduino_bridge.cli",
    "robot.drivers.cli",
    "robot.site_cli",
    "robot.gsm.cli",
    "robot.mqtt.cli",
    "sim.cli",
    "web.fleet_cli",
)


def _cmd_config_check(args: argparse.Namespace) -> int:
    load(args.file)
    print(f"{args.file}: ok")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    settings = load(args.config)
    data = as_dict(settings, hide_secrets=True)
    print(json.dumps(data, indent=2) if args.json else to_toml(data), end="" if not args.json else "\n")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ramudroid.app import run_robot

    return run_robot(args.config, web=not args.no_web, port=args.port, duration_s=args.duration)


def _cmd_passwd(args: argparse.Namespace) -> int:
    import getpass

    from robot.passwords import MIN_LENGTH, hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Dashboard password: ")
        if getpass.getpass("Again: ") != password:
            raise RamudroidError("the two passwords differ; nothing printed")
    if len(password) < MIN_LENGTH:
        raise RamudroidError(f"password too short: use at least {MIN_LENGTH} characters")
    print(f'password_hash = "{hash_password(password)}"')
    print("# paste the line above under [web] in your configuration, then restart ramudroid", file=sys.stderr)
    return 0


def _cmd_accel_build(args: argparse.Namespace) -> int:
    from ramudroid import accel

    try:
        result = accel.build(force=args.force, announce=lambda line: print(line, flush=True))
    except accel.AccelError as err:
        raise RamudroidError(f"accel build: {err}") from err
    if result.reused:
        print(f"up to date: {result.build_dir}")
    else:
        print(f"built in {result.seconds:.0f} s: {result.build_dir}")
    return 0


def _cmd_accel_status(args: argparse.Namespace) -> int:
    from ramudroid import accel

    st = accel.status()
    print(accel.status_text(st))
    return 0 if st.state == "fresh" else 1


def build_parser() -> argparse.ArgumentParser:
    """The whole CLI, for main() and for the tests."""
    parser = argparse.ArgumentParser(
        prog="ramudroid",
        description="Ramudroid solar street-cleaning robot controller.",
    )
    parser.add_argument("--version", action="version", version=f"ramudroid {__version__}")
    parser.add_argument("-c", "--config", help="TOML configuration file (default: all simulated parts)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the robot (against the simulator when no hardware is configured)")
    run.add_argument("--no-web", action="store_true", help="do not start the dashboard")
    run.add_argument("--port", type=int, default=None, help="dashboard port (overrides web.port)")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds (for tests)")
    run.set_defaults(func=_cmd_run)

    passwd = sub.add_parser("passwd", help="print a dashboard password hash line for [web] password_hash")
    passwd.add_argument("--stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(func=_cmd_passwd)

    config = sub.add_parser("config", help="check or show the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=_cmd_config_check)
    show = config_sub.add_parser("show", help="print the effective configuration (secrets hidden)")
    show.add_argument("--json", action="store_true", help="as JSON instead of TOML")
    show.set_defaults(func=_cmd_config_show)

    accel = sub.add_parser(
        "accel", help="compiled step modules (mypyc), optional: the same decisions, a faster simulator"
    )
    accel_sub = accel.add_subparsers(dest="accel_command", metavar="ACTION", required=True)
    accel_build = accel_sub.add_parser(
        "build", help="compile the step's pure modules into the cache (needs mypy, gcc, python3-dev)"
    )
    accel_build.add_argument("--force", action="store_true", help="build again even when up to date")
    accel_build.set_defaults(func=_cmd_accel_build)
    accel_status = accel_sub.add_parser(
        "status", help="whether a build exists, is fresh (used) or stale, and what it holds"
    )
    accel_status.set_defaults(func=_cmd_accel_status)

    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue  # that part of the project is not installed
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ramudroid` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except RamudroidError as err:
        print(f"ramudroid: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
