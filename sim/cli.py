"""`ramudroid sim run SCENARIO [--out DIR] [--log FILE]`, `ramudroid sim batch SCENARIO... --jobs N` and
`ramudroid sim list`: the headless simulator."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from robot.errors import RamudroidError


def register(subparsers: Any) -> None:
    """Add the `sim` command group to the ramudroid CLI."""
    sim = subparsers.add_parser("sim", help="run the simulator headless on a scenario and report")
    sub = sim.add_subparsers(dest="sim_command", required=True)
    run = sub.add_parser(
        "run",
        help="run a scenario as fast as possible; writes report.json and plots; exit 1 when an [expect] line is unmet",
    )
    run.add_argument("scenario", help="a shipped scenario name (see `ramudroid sim list`) or a .toml path")
    run.add_argument(
        "--out", type=Path, default=None, help="output directory (default: sim-report/<scenario>)"
    )
    run.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    run.add_argument(
        "--hours", type=float, default=None, help="simulate only the first HOURS of the scenario"
    )
    run.add_argument("--no-plots", action="store_true", help="write report.json only")
    run.add_argument(
        "--log",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the decision trace (state, reason, inputs; one JSON line per change) to FILE",
    )
    run.set_defaults(func=cmd_run)
    batch = sub.add_parser(
        "batch", help="run many scenarios in parallel processes; one table of figures and verdicts"
    )
    batch.add_argument(
        "scenarios", nargs="*", help="shipped scenario names or .toml paths (default: every shipped one)"
    )
    batch.add_argument("--jobs", type=int, default=2, help="parallel processes (default 2)")
    batch.add_argument(
        "--out", type=Path, default=None, help="output directory (default: sim-report/<scenario>)"
    )
    batch.add_argument("--seed", type=int, default=None, help="random seed (default: each scenario's)")
    batch.add_argument("--hours", type=float, default=None, help="simulate only the first HOURS of each")
    batch.add_argument("--no-plots", action="store_true", help="write report.json only")
    batch.set_defaults(func=cmd_batch)
    lst = sub.add_parser("list", help="list the shipped scenarios")
    lst.set_defaults(func=cmd_list)


class ProgressBar:
    """A one-line progress bar on stderr, redrawn in place."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self._last = -1

    def __call__(self, fraction: float) -> None:
        pct = int(fraction * 100)
        # Redrawn in place on a terminal; into a log file only every 10 %, one line each.
        tty = self.stream.isatty()
        if pct == self._last or (not tty and pct % 10 and fraction < 1.0):
            return
        self._last = pct
        filled = int(fraction * self.width)
        wall = time.perf_counter() - self.started
        start = "\r" if tty else ""
        self.stream.write(
            f"{start}{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {pct:3d}% {wall:6.1f} s"
        )
        if fraction >= 1.0 or not tty:
            self.stream.write("\n")
        self.stream.flush()


def cmd_run(args: argparse.Namespace) -> int:
    """Run one scenario and write its report."""
    from robot import config
    from sim import scenario as scen
    from sim.run import run_scenario, run_to_dir

    # The supervisor's log lines would tear the progress bar apart; its alerts are all in report.json.
    logging.getLogger("robot").setLevel(logging.ERROR)
    try:
        settings = config.load(getattr(args, "config", None))
        sc = scen.load(args.scenario)
        out = args.out if args.out is not None else Path("sim-report") / sc.name
        duration = args.hours * 3600.0 if args.hours is not None else None
        log_path: Path | None = getattr(args, "log", None)
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(log_path.open("w", encoding="utf-8")) if log_path is not None else None
            result = run_scenario(
                sc,
                settings=settings,
                seed=args.seed,
                duration_s=duration,
                progress=ProgressBar(sc.name),
                log=log,
            )
        files = run_to_dir(result, out, plots=not args.no_plots)
        if log_path is not None:
            files.append(log_path)
    except RamudroidError as err:
        print(f"ramudroid sim: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"ramudroid sim: cannot write the report ({err}); check --out and --log", file=sys.stderr)
        return 2
    r = result.report
    speed = r["simulated_s"] / r["wall_s"] if r["wall_s"] > 0 else float("inf")
    print(summary(sc.name, r, speed))
    print(modules_line())
    for f in files:
        print(f)
    return verdict(sc, r, cut_short=duration is not None and duration < sc.duration_s)


def verdict(sc: Any, report: dict[str, Any], *, cut_short: bool = False) -> int:
    """Check the scenario's [expect] table against the report: 0 when all are met, 1 (and one line for each
    unmet one) otherwise."""
    from sim.report import unmet

    if not sc.expect:
        return 0
    if cut_short:
        print(f"expectations: not checked ({len(sc.expect)}): --hours cut the run short")
        return 0
    failed = unmet(sc.expect, report, sc.source)
    for line in failed:
        print(f"unmet: {line}")
    print(f"expectations: {len(sc.expect) - len(failed)} of {len(sc.expect)} met")
    return 1 if failed else 0


def modules_line() -> str:
    """Which step modules ran the simulation: compiled (`ramudroid accel build`, fresh) or pure Python."""
    import importlib.machinery

    import sim.run

    if isinstance(getattr(sim.run.__spec__, "loader", None), importlib.machinery.ExtensionFileLoader):
        return "step modules: compiled (ramudroid accel)"
    return "step modules: pure Python (`ramudroid accel build` compiles them: about twice the speed)"


def summary(name: str, r: dict[str, Any], speed: float) -> str:
    """The one-line summary of a report."""
    hours = r["simulated_s"] / 3600
    per_h = r["relay_toggles"] / hours if hours > 0 else 0.0
    return (
        f"{name}: {hours:.1f} h simulated in {r['wall_s']:.1f} s ({speed:.0f}x); "
        f"route {r['route_completion'] * 100:.0f} %, {r['area_cleaned_m2']:.0f} m2 cleaned, "
        f"{r['litter_collected_kg']:.2f} kg collected, storms sheltered {r['shelter_reached']}/{r['storms']}; "
        f"brown-out {r['brownout_s']:g} s, relay {r['relay_toggles']} switches ({per_h:.1f}/h), "
        f"collisions {r['collisions']}, state changes {r['state_changes']}, "
        f"battery min {r['min_battery_soc'] * 100:.0f} %, false alerts {r['false_alerts']}"
    )


@dataclass
class BatchRow:
    """One scenario's line in the batch table."""

    name: str
    simulated_h: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    met: int = 0
    expected: int = 0
    unmet: list[str] = field(default_factory=list)
    error: str = ""
    summary: str = ""


def _batch_one(
    ref: str, config: str | None, out: Path | None, seed: int | None, hours: float | None, plots: bool
) -> BatchRow:
    """Run one scenario in a worker process; never raises (the error goes in the row)."""
    from robot import config as robot_config
    from sim import scenario as scen
    from sim.report import unmet
    from sim.run import run_scenario, run_to_dir

    logging.getLogger("robot").setLevel(logging.ERROR)
    row = BatchRow(Path(ref).stem if ref.endswith(".toml") else ref)
    cpu0 = time.process_time()
    try:
        settings = robot_config.load(config)
        sc = scen.load(ref)
        row.name = sc.name
        duration = hours * 3600.0 if hours is not None else None
        result = run_scenario(sc, settings=settings, seed=seed, duration_s=duration)
        run_to_dir(result, (out / sc.name) if out is not None else Path("sim-report") / sc.name, plots=plots)
    except RamudroidError as err:
        row.error = str(err)
        return row
    except OSError as err:
        row.error = f"cannot write the report ({err}); check --out"
        return row
    r = result.report
    row.cpu_s = time.process_time() - cpu0
    row.simulated_h = r["simulated_s"] / 3600.0
    row.wall_s = r["wall_s"]
    speed = r["simulated_s"] / r["wall_s"] if r["wall_s"] > 0 else float("inf")
    row.summary = summary(sc.name, r, speed)
    if sc.expect and (duration is None or duration >= sc.duration_s):
        row.expected = len(sc.expect)
        row.unmet = unmet(sc.expect, r, sc.source)
        row.met = row.expected - len(row.unmet)
    return row


def batch_table(rows: list[BatchRow]) -> str:
    """The batch's one table: per scenario simulated hours, wall and CPU seconds, speed, verdict."""
    head = (
        f"{'scenario':20s} {'sim h':>6s} {'wall s':>8s} {'cpu s':>8s} {'x wall':>7s} {'x cpu':>7s}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.error:
            lines.append(f"{r.name:20s} error: {r.error}")
            continue
        xw = r.simulated_h * 3600 / r.wall_s if r.wall_s > 0 else float("inf")
        xc = r.simulated_h * 3600 / r.cpu_s if r.cpu_s > 0 else float("inf")
        verdict = f"{r.met}/{r.expected} met" if r.expected else "no expectations"
        lines.append(
            f"{r.name:20s} {r.simulated_h:6.1f} {r.wall_s:8.1f} {r.cpu_s:8.1f} {xw:7.0f} {xc:7.0f}  {verdict}"
        )
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace) -> int:
    """Run many scenarios in parallel worker processes and print one table; exit 1 when an expectation is
    unmet, 2 when a scenario could not run."""
    from concurrent.futures import ProcessPoolExecutor

    from sim import scenario as scen

    refs = list(args.scenarios) or scen.shipped_names()
    if args.jobs < 1:
        print(f"ramudroid sim: --jobs {args.jobs}: give 1 or more processes", file=sys.stderr)
        return 2
    jobs = min(args.jobs, len(refs))
    config = getattr(args, "config", None)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(_batch_one, ref, config, args.out, args.seed, args.hours, not args.no_plots)
            for ref in refs
        ]
        rows = [f.result() for f in futures]
    wall = time.perf_counter() - started
    print(batch_table(rows))
    sim_h = sum(r.simulated_h for r in rows)
    print(f"{len(rows)} scenarios, {sim_h:.1f} h simulated in {wall:.1f} s wall on {jobs} processes")
    print(modules_line())
    for r in rows:
        for line in r.unmet:
            print(f"unmet: {line}")
    if any(r.error for r in rows):
        return 2
    return 1 if any(r.unmet for r in rows) else 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print the shipped scenarios with their descriptions."""
    from sim import scenario as scen

    try:
        for name in scen.shipped_names():
            sc = scen.load(name)
            print(f"{name:20s} {sc.start:%Y-%m-%d %H:%M} {sc.duration_s / 3600:4.1f} h  {sc.description}")
    except RamudroidError as err:
        print(f"ramudroid sim: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the sim commands on their own (python -m sim.cli ...)."""
    parser = argparse.ArgumentParser(prog="ramudroid")
    parser.add_argument("--config", default=None)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
