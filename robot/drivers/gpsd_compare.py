"""Measures the NMEA decoder against gpsd's own decoding of the same capture (the regression `.chk` files).

A gpsd fix is a `"class":"TPV"` object with mode 2 or 3 and a position. It counts as reproduced when one of
our fix epochs has the same lat/lon to 1e-6 degrees and, when gpsd gives a time, the same time of day to the
millisecond (gpsd invents dates for receivers that never send one, so the date is not compared).

Two figures: per TPV (every report gpsd printed, including the ones it prints sentence by sentence while it
is still learning which sentence ends a receiver's cycle), and per epoch: the fix gpsd reports for an epoch
is its last report with that time stamp (its cycle-end report; a run of reports without a time is one
epoch), and ours must have the same position and time of day. (Modes are not compared: gpsd calls a fix
3D whenever a GGA carries an altitude, even when the receiver's GSA says 2D.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from robot.drivers.gps import decode_capture
from robot.hardware.interfaces import GpsFix

TOLERANCE_DEG = 1e-6 + 1e-12  # 1e-6 inclusive, whatever the float rounding of the 9 printed decimals


@dataclass
class CompareResult:
    """How many of gpsd's fixes in one capture we reproduced, and the ones we did not."""

    name: str
    gpsd_fixes: int = 0
    matched: int = 0
    our_fixes: int = 0
    ours_confirmed: int = 0  # our fixes that gpsd also reported (a fix gpsd never saw is a false position)
    missed: list[dict[str, object]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    gpsd_epochs: int = 0
    epochs_matched: int = 0
    epochs_missed: list[dict[str, object]] = field(default_factory=list)


def gpsd_fixes(chk_text: str) -> list[dict[str, object]]:
    """gpsd's TPV objects that carry a 2D/3D position."""
    out = []
    for line in chk_text.splitlines():
        if not line.startswith('{"class":"TPV"'):
            continue
        try:
            tpv = json.loads(line)
        except ValueError:
            continue
        if tpv.get("mode", 0) >= 2 and "lat" in tpv and "lon" in tpv:
            out.append(tpv)
    return out


def gpsd_epochs(chk_text: str) -> list[dict[str, object]]:
    """gpsd's fix for each epoch: the last TPV with a position among consecutive TPVs of one time stamp."""
    out: list[dict[str, object]] = []
    key: object = object()
    best: dict[str, object] | None = None
    for line in chk_text.splitlines():
        if not line.startswith('{"class":"TPV"'):
            continue
        try:
            tpv = json.loads(line)
        except ValueError:
            continue
        t = tpv.get("time")
        if t != key:
            if best is not None:
                out.append(best)
            key, best = t, None
        if tpv.get("mode", 0) >= 2 and "lat" in tpv and "lon" in tpv:
            best = tpv
    if best is not None:
        out.append(best)
    return out


def _tod_ms(iso: str) -> int:
    hms = iso.split("T", 1)[1].rstrip("Z")
    hh, mm, ss = hms.split(":")
    return (int(hh) * 3600 + int(mm) * 60) * 1000 + round(float(ss) * 1000)


def _matches(tpv: dict[str, object], fix: GpsFix) -> bool:
    if abs(fix.lat - float(tpv["lat"])) > TOLERANCE_DEG or abs(fix.lon - float(tpv["lon"])) > TOLERANCE_DEG:  # type: ignore[arg-type]
        return False
    t = tpv.get("time")
    if t is None:
        return True
    if fix.time is None:
        return False
    ours = (
        fix.time.hour * 3600 + fix.time.minute * 60 + fix.time.second
    ) * 1000 + fix.time.microsecond // 1000
    return ours == _tod_ms(str(t))


def compare(log: Path, chk: Path) -> CompareResult:
    """Decode `log` and check every gpsd fix in `chk` against our fixes."""
    fixes, dec = decode_capture(log.read_bytes())
    result = CompareResult(log.name, our_fixes=len(fixes), rejected=dec.rejected)
    theirs = gpsd_fixes(chk.read_text(encoding="utf-8", errors="replace"))
    result.ours_confirmed = sum(1 for f in fixes if any(_matches(tpv, f) for tpv in theirs))
    for tpv in theirs:
        result.gpsd_fixes += 1
        if any(_matches(tpv, f) for f in fixes):
            result.matched += 1
        else:
            result.missed.append(tpv)
    for tpv in gpsd_epochs(chk.read_text(encoding="utf-8", errors="replace")):
        result.gpsd_epochs += 1
        if any(_matches(tpv, f) for f in fixes):
            result.epochs_matched += 1
        else:
            result.epochs_missed.append(tpv)
    return result


def compare_dir(directory: Path) -> list[CompareResult]:
    """compare() for every NAME.log with gpsd's NAME.log.chk (or its TPV extract NAME.log.tpv) in it."""
    out = []
    for log in sorted(directory.glob("*.log")):
        for suffix in (".chk", ".tpv"):
            ref = log.with_name(log.name + suffix)
            if ref.exists():
                out.append(compare(log, ref))
                break
    return out


def summary(results: list[CompareResult]) -> tuple[int, int]:
    """(gpsd fixes reproduced, gpsd fixes) over all captures."""
    return sum(r.matched for r in results), sum(r.gpsd_fixes for r in results)


def epoch_summary(results: list[CompareResult]) -> tuple[int, int]:
    """(gpsd epochs whose fix we reproduced exactly, gpsd epochs with a fix) over all captures."""
    return sum(r.epochs_matched for r in results), sum(r.gpsd_epochs for r in results)
