"""CLI: `ramudroid site check FILE` validates a site file and prints its summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robot.errors import SiteError
from robot.site_file import demo_site, load_site


def register(subparsers: Any) -> None:
    """Add the `site` command group to the ramudroid CLI."""
    site = subparsers.add_parser("site", help="site files: route, geofence, shelter and parking point")
    sub = site.add_subparsers(dest="site_command", required=True)
    check = sub.add_parser("check", help="validate a GeoJSON site file and print a summary")
    check.add_argument("file", nargs="?", default=None, help="the site file (default: the bundled demo site)")
    check.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    """Validate the site file; 0 and a summary when valid, 1 and one error line when not."""
    try:
        site = demo_site() if args.file is None else load_site(args.file)
    except SiteError as err:
        print(f"site check: {err}", file=sys.stderr)
        return 1
    print(site.summary())
    print("site OK")
    return 0
