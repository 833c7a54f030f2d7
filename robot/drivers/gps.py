"""GPS receiver: NMEA 0183 lines turned into fix epochs (pure), and the serial reader thread (pyserial).

The decoder takes whatever a serial line carries - binary frames, partial lines, bad checksums, proprietary
sentences - and never raises on input: every line it cannot use is counted under a reason.

Epochs follow gpsd's documented rules for NMEA: a sentence whose UTC time of day differs from the last one's
starts a new reporting cycle, and gpsd reports the cycle's merged fix at its end, each sentence overwriting the
fields it carries (so of several position sentences with the same time stamp - GGA, GNS, RMC, GLL - the last
valid one gives the position, as in gpsd's cycle-end report). GSA and VTG carry no time and join the open
cycle; ZDA sets the date; GST (the receiver's own error estimate) joins the cycle of its time stamp.
Two deliberate differences from gpsd, both refusing a position rather than inventing one: an epoch in which
any sentence says "no fix" (RMC/GLL status V, GGA quality 0, 7 or 8, GSA mode 1) gives no fix, and an epoch
whose RMC date is invalid gives no fix at all (never a fix with a null time for a date the receiver got wrong).

Field parsing is our own, not pynmea2's: measured on the 6,694 position and status sentences of the shared
captures, pynmea2 1.19 took 13.9 us a sentence against 4.0 us for our framing, and it accepted impossible
values (89 degrees 60.000 minutes, read as 90.0) in 12 of 4,167 position sentences; tests/test_gps_replay.py
still checks every coordinate we parse against pynmea2's.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from robot.errors import GpsError, HardwareUnavailable
from robot.hardware.interfaces import GpsFix

KNOT_MS = 1852.0 / 3600.0
KMH_MS = 1000.0 / 3600.0
MS_PER_DAY = 86_400_000
# NMEA says 82 characters; u-blox and Septentrio send longer proprietary lines, so allow some slack
# but stop a binary stream without newlines from growing the buffer for ever.
MAX_LINE_BYTES = 512

POSITION_TYPES = frozenset({"GGA", "RMC", "GLL", "GNS"})
USED_TYPES = POSITION_TYPES | {"GSA", "VTG", "ZDA", "GST"}
# Fields a sentence must have when it comes without a checksum: a shorter one is a truncated line.
MIN_FIELDS = {"GGA": 14, "RMC": 11, "GLL": 4, "GNS": 12, "GSA": 17, "VTG": 4, "ZDA": 6, "GST": 8}
# GGA quality 7 (manual input) and 8 (simulator) are not positions of this robot: never drive on them.
GGA_FIX_QUALITIES = frozenset({1, 2, 3, 4, 5, 6})
# NMEA 2.3+ mode indicators (RMC, GLL, GNS, VTG) as GGA fix qualities: autonomous, differential (SBAS, DGPS),
# precise, RTK fixed, RTK float, estimated (dead reckoning).
FAA_QUALITY = {"A": 1, "D": 2, "P": 3, "R": 4, "F": 5, "E": 6}


class BadSentence(ValueError):
    """A checksummed sentence whose fields do not parse; the decoder counts it as malformed."""


@dataclass(slots=True)
class _Epoch:
    """What the sentences of one epoch said so far."""

    tod_ms: int | None = None
    day: date | None = None
    lat: float | None = None
    lon: float | None = None
    pos_kind: str = ""
    quality: int | None = None
    std_m: float | None = None
    bad_date: bool = False  # the RMC of this epoch carried a date that cannot be
    gga_altitude: bool = False
    gsa_mode: int | None = None
    gsa_sats: int = 0
    gsa_seen: bool = False
    gsa_hdop: float | None = None
    speed: float | None = None
    track: float | None = None
    hdop: float | None = None
    sats: int | None = None
    no_fix: bool = False  # a sentence of this epoch said plainly that there is no fix
    timed: bool = False  # a sentence that names the epoch (by its time, even an empty one) was seen


def checksum(body: str) -> int:
    """XOR of the characters between '$' and '*'."""
    c = 0
    for ch in body:
        c ^= ord(ch)
    return c


def extract_sentence(raw: bytes) -> tuple[str | None, bool]:
    """The NMEA sentence at the end of one raw line (or None), and whether junk came before it on the line.

    A '$' never appears inside a sentence, so the sentence starts at the last '$' of the printable tail:
    binary frames and cut-off sentences without their newline end up before it.
    """
    line = raw.rstrip(b"\r\n")
    i = len(line)
    while i > 0 and 0x20 <= line[i - 1] < 0x7F:
        i -= 1
    tail = line[i:]
    start = tail.rfind(b"$")
    if start < 0:
        return None, False
    return tail[start:].decode("ascii"), start > 0 or i > 0


def parse_tod_ms(s: str) -> int | None:
    """'hhmmss[.sss]' to milliseconds since midnight; None when empty; BadSentence when impossible."""
    if not s:
        return None
    if len(s) < 6 or not s[:6].isdigit():
        raise BadSentence(f"time {s!r}")
    hh, mm = int(s[0:2]), int(s[2:4])
    try:
        ss = float(s[4:])
    except ValueError as err:
        raise BadSentence(f"time {s!r}") from err
    if hh > 23 or mm > 59 or not 0 <= ss < 61:
        raise BadSentence(f"time {s!r}")
    return (hh * 3600 + mm * 60) * 1000 + round(ss * 1000)


def parse_coord(value: str, hemi: str, deg_digits: int) -> float | None:
    """'ddmm.mmmm' + 'N' (or 'dddmm.mmmm' + 'E') to signed decimal degrees; None when empty."""
    if not value and not hemi:
        return None
    whole, _, frac = value.partition(".")
    if (
        len(whole) < 3
        or not whole.isdigit()
        or (frac and not frac.isdigit())
        or hemi not in "NSEW"
        or not hemi
    ):
        raise BadSentence(f"coordinate {value!r} {hemi!r}")
    deg = int(whole[:-2])
    minutes = float(f"{whole[-2:]}.{frac or '0'}")
    limit = 90 if deg_digits == 2 else 180
    if minutes >= 60 or deg + minutes / 60 > limit:
        raise BadSentence(f"coordinate {value!r} {hemi!r}")
    if (deg_digits == 2) != (hemi in "NS"):
        raise BadSentence(f"coordinate {value!r} {hemi!r}")
    degrees = deg + minutes / 60.0
    return -degrees if hemi in "SW" else degrees


def _float(s: str) -> float | None:
    if not s:
        return None
    try:
        v = float(s)
    except ValueError as err:
        raise BadSentence(f"number {s!r}") from err
    if v != v or v in (float("inf"), float("-inf")):
        raise BadSentence(f"number {s!r}")
    return v


def _int(s: str) -> int | None:
    if not s:
        return None
    if not s.isdigit():
        raise BadSentence(f"whole number {s!r}")
    return int(s)


def _field(f: list[str], i: int) -> str:
    return f[i].strip() if i < len(f) else ""


def _rmc_date(s: str) -> date | None:
    if not s:
        return None
    if len(s) != 6 or not s.isdigit():
        raise BadSentence(f"date {s!r}")
    dd, mo, yy = int(s[0:2]), int(s[2:4]), int(s[4:6])
    # Two-digit years: receivers of the 1990s still show up in captures.
    year = 1900 + yy if yy >= 80 else 2000 + yy
    try:
        return date(year, mo, dd)
    except ValueError as err:
        raise BadSentence(f"date {s!r}") from err


@dataclass(frozen=True, slots=True)
class Sentence:
    """One checksum-valid sentence: talker ('GP', 'GN', ...), type ('GGA', ...) and its fields."""

    talker: str
    kind: str
    fields: list[str] = field(hash=False)


def split_sentence(text: str) -> tuple[Sentence | None, str | None]:
    """Check framing and checksum of '$...*hh'; returns (sentence, None) or (None, reason)."""
    body, star, cs = text[1:].rpartition("*")
    if not star:
        body, cs = text[1:], ""
    elif len(cs.strip()) != 2:
        return None, "bad_checksum"
    else:
        try:
            if int(cs.strip(), 16) != checksum(body):
                return None, "bad_checksum"
        except ValueError:
            return None, "bad_checksum"
    parts = body.split(",")
    addr = parts[0]
    if addr.startswith("P"):
        return None, "proprietary"
    if len(addr) != 5 or not addr.isalnum() or not addr.isupper():
        return None, "bad_address"
    talker, kind = addr[:2], addr[2:]
    if kind not in USED_TYPES:
        return None, "unused_type"
    fields = parts[1:]
    if not star and len(fields) < MIN_FIELDS[kind]:
        # Receivers without checksums exist (HP 58534A); a short line from them is a cut-off one.
        return None, "truncated"
    return Sentence(talker, kind, fields), None


# Reasons that are not errors: good sentences this robot has no use for, and capture comments.
IGNORED_REASONS = frozenset({"proprietary", "unused_type", "comment", "empty"})


class NmeaDecoder:
    """Pure NMEA-to-fix decoder: feed lines, get the fixes of the epochs they complete; never raises."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._epoch = _Epoch()
        self._day: date | None = None
        self._day_tod: int | None = None
        self.sentences = 0

    @property
    def rejected(self) -> dict[str, int]:
        """Lines rejected as bad input, by reason (bad_checksum, not_nmea, malformed, ...)."""
        return {k: v for k, v in sorted(self.counts.items()) if k not in IGNORED_REASONS}

    @property
    def ignored(self) -> dict[str, int]:
        """Good lines of no use here (proprietary, unused sentence types, comments), by reason."""
        return {k: v for k, v in sorted(self.counts.items()) if k in IGNORED_REASONS}

    def feed_line(self, raw: bytes | str) -> list[GpsFix]:
        """Decode one line (with or without its newline); returns the fixes of any epoch it closed."""
        if isinstance(raw, str):
            raw = raw.encode("ascii", "replace")
        if len(raw) > MAX_LINE_BYTES:
            # Still look for a sentence at its end: binary frames often run straight into one.
            raw = raw[-MAX_LINE_BYTES:]
        stripped = raw.strip()
        if not stripped:
            self.counts["empty"] += 1
            return []
        if stripped.startswith(b"#"):
            self.counts["comment"] += 1
            return []
        text, junk = extract_sentence(raw)
        if junk:
            self.counts["junk_before_sentence"] += 1
        if text is None:
            self.counts["not_nmea"] += 1
            return []
        sentence, reason = split_sentence(text)
        if sentence is None:
            self.counts[reason or "malformed"] += 1
            return []
        try:
            fixes = self._apply(sentence)
        except BadSentence:
            self.counts["malformed"] += 1
            return []
        self.sentences += 1
        return fixes

    def flush(self) -> list[GpsFix]:
        """Close the open epoch (end of a capture, or the receiver went quiet after its burst)."""
        fix = self._close()
        return [fix] if fix else []

    def _date_for(self, tod_ms: int) -> date | None:
        if self._day is None or self._day_tod is None:
            return None
        # A time of day far behind the one that came with the date means midnight passed since.
        if tod_ms < self._day_tod - MS_PER_DAY // 2:
            return self._day + timedelta(days=1)
        return self._day

    def _set_day(self, day: date, tod_ms: int | None) -> None:
        self._day = day
        self._day_tod = tod_ms if tod_ms is not None else 0

    def _close(self) -> GpsFix | None:
        e, self._epoch = self._epoch, _Epoch()
        # Receivers contradict themselves (RMC 'V' next to GGA quality 1, GGA with 0 satellites used):
        # one sentence saying "no fix" is enough not to trust the epoch's position.
        if e.lat is None or e.lon is None or e.no_fix or e.gsa_mode == 1 or e.bad_date:
            return None
        mode = e.gsa_mode if e.gsa_mode in (2, 3) else 3 if e.gga_altitude else 2
        when: datetime | None = None
        if e.tod_ms is not None:
            day = e.day or self._date_for(e.tod_ms)
            if day is not None:
                when = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(milliseconds=e.tod_ms)
        sats = e.sats if e.sats is not None else (e.gsa_sats if e.gsa_seen else None)
        hdop = e.hdop if e.hdop is not None else e.gsa_hdop
        return GpsFix(when, e.lat, e.lon, mode, e.speed, e.track, hdop, sats, e.quality, e.std_m)

    def _start(self, tod_ms: int | None) -> list[GpsFix]:
        """A sentence with a time field: another time of day (or none after one) closes the open epoch.

        GSA and VTG carry no time: they join whichever epoch is open, and an epoch that so far holds only
        them takes the time of the first timed sentence.
        """
        out: list[GpsFix] = []
        e = self._epoch
        if e.timed and e.tod_ms != tod_ms:
            fix = self._close()
            if fix:
                out.append(fix)
        self._epoch.tod_ms = tod_ms
        self._epoch.timed = True
        return out

    def _position(
        self, kind: str, valid: bool, lat: float | None, lon: float | None, quality: int | None = None
    ) -> None:
        e = self._epoch
        if not valid:
            e.no_fix = True
        # gpsd merges each sentence over the cycle's fix: the last valid position of the epoch is reported.
        if valid and lat is not None and lon is not None:
            e.lat, e.lon, e.pos_kind = lat, lon, kind
        # GGA's quality is the receiver's own word; a mode letter fills in only where no GGA came.
        if valid and quality is not None and (kind == "GGA" or e.quality is None):
            e.quality = quality

    def _apply(self, s: Sentence) -> list[GpsFix]:
        f = s.fields
        g = lambda i: _field(f, i)  # noqa: E731
        out: list[GpsFix] = []
        if s.kind == "GGA":
            tod = parse_tod_ms(g(0))
            lat, lon = parse_coord(g(1), g(2), 2), parse_coord(g(3), g(4), 3)
            quality = _int(g(5)) or 0
            sats, hdop, alt = _int(g(6)), _float(g(7)), _float(g(8))
            out = self._start(tod)
            valid = quality in GGA_FIX_QUALITIES
            self._position("GGA", valid, lat, lon, quality)
            if valid:
                e = self._epoch
                e.gga_altitude = alt is not None
                e.sats, e.hdop = sats, hdop
        elif s.kind == "RMC":
            tod = parse_tod_ms(g(0))
            status = g(1)
            lat, lon = parse_coord(g(2), g(3), 2), parse_coord(g(4), g(5), 3)
            speed_kn, track = _float(g(6)), _float(g(7))
            bad_date = False
            try:
                day = _rmc_date(g(8))
            except BadSentence:
                # After a GPS week rollover some send dates like '2208-1': the epoch's time cannot be known,
                # so it gives no fix rather than a position with a null time.
                self.counts["bad_date"] += 1
                day, bad_date = None, True
            mode_ind = g(11)[:1]
            out = self._start(tod)
            valid = status == "A" and mode_ind != "N"
            if day is not None and valid:
                self._set_day(day, tod)
                self._epoch.day = day
            if bad_date and valid:
                self._epoch.bad_date = True
            self._position("RMC", valid, lat, lon, FAA_QUALITY.get(mode_ind))
            if valid:
                self._motion(None if speed_kn is None else speed_kn * KNOT_MS, track)
        elif s.kind == "GLL":
            lat, lon = parse_coord(g(0), g(1), 2), parse_coord(g(2), g(3), 3)
            tod = parse_tod_ms(g(4))
            status, mode_ind = g(5)[:1], g(6)[:1]
            # NMEA 1.5 GLL has neither time nor status: it belongs to whichever epoch is open.
            out = self._start(tod) if len(f) > 4 else []
            self._position(
                "GLL", status in ("A", "") and mode_ind != "N", lat, lon, FAA_QUALITY.get(mode_ind)
            )
        elif s.kind == "GNS":
            tod = parse_tod_ms(g(0))
            lat, lon = parse_coord(g(1), g(2), 2), parse_coord(g(3), g(4), 3)
            modes, sats, hdop, alt = g(5), _int(g(6)), _float(g(7)), _float(g(8))
            out = self._start(tod)
            valid = bool(modes) and any(m not in "NS" for m in modes)
            # One mode letter per constellation: the best of them is the fix's quality.
            qualities = [FAA_QUALITY[m] for m in modes if m in FAA_QUALITY]
            best = max(qualities, key=lambda q: (q in (4, 5), q == 4, q)) if qualities else None
            self._position("GNS", valid, lat, lon, best)
            e = self._epoch
            if valid and e.sats is None:
                e.gga_altitude = e.gga_altitude or alt is not None
                e.sats, e.hdop = sats, hdop
        elif s.kind == "GSA":
            fix_type = _int(g(1))
            prns = [p for p in f[2:14] if p.strip()]
            hdop = _float(g(15))
            e = self._epoch
            # Multi-constellation receivers send one GSA per system in each epoch: add their satellites up.
            e.gsa_seen = True
            e.gsa_sats += len(prns)
            if fix_type in (1, 2, 3) and (e.gsa_mode is None or fix_type > e.gsa_mode):
                e.gsa_mode = fix_type
            if hdop is not None:
                e.gsa_hdop = hdop
        elif s.kind == "VTG":
            if g(1) == "T" or (g(1) == "" and len(f) >= 8):
                track, speed_kn, speed_kmh, mode_ind = _float(g(0)), _float(g(4)), _float(g(6)), g(8)[:1]
            else:
                # NMEA 1.x VTG: true track, magnetic track, knots, km/h, without the unit letters.
                track, speed_kn, speed_kmh, mode_ind = _float(g(0)), _float(g(2)), _float(g(3)), ""
            if mode_ind != "N":
                speed = speed_kn * KNOT_MS if speed_kn is not None else None
                if speed is None and speed_kmh is not None:
                    speed = speed_kmh * KMH_MS
                self._motion(speed, track)
        elif s.kind == "GST":
            tod = parse_tod_ms(g(0))
            lat_sd, lon_sd = _float(g(5)), _float(g(6))
            e = self._epoch
            # The error estimate belongs to the epoch of its own time stamp; one from another epoch is stale.
            if (
                e.timed
                and tod == e.tod_ms
                and lat_sd is not None
                and lon_sd is not None
                and min(lat_sd, lon_sd) >= 0
            ):
                e.std_m = math.sqrt((lat_sd * lat_sd + lon_sd * lon_sd) / 2.0)
        elif s.kind == "ZDA":
            tod = parse_tod_ms(g(0))
            dd, mo, yyyy = _int(g(1)), _int(g(2)), _int(g(3))
            if dd and mo and yyyy:
                try:
                    day = date(yyyy, mo, dd)
                except ValueError as err:
                    raise BadSentence(f"ZDA date {dd}/{mo}/{yyyy}") from err
                # ZDA's time may differ from the position epoch's (AC12): it sets the date, not the epoch.
                self._set_day(day, tod)
        return out

    def _motion(self, speed: float | None, track: float | None) -> None:
        e = self._epoch
        if speed is not None and e.speed is None:
            e.speed = speed
        if track is not None and e.track is None:
            e.track = track


def split_lines(data: bytes) -> Iterator[bytes]:
    """Lines of a raw capture, newline kept off."""
    yield from data.split(b"\n")


def decode_capture(data: bytes) -> tuple[list[GpsFix], NmeaDecoder]:
    """Every fix epoch of a raw capture, and the decoder with its counts."""
    dec = NmeaDecoder()
    fixes: list[GpsFix] = []
    for line in split_lines(data):
        fixes.extend(dec.feed_line(line))
    fixes.extend(dec.flush())
    return fixes, dec


def format_time(t: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a trailing Z."""
    if t is None:
        return None
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def fix_to_dict(fix: GpsFix) -> dict[str, Any]:
    """The replay's JSON object: exactly time, lat, lon, mode, speed, track, hdop, sats."""
    return {
        "time": format_time(fix.time),
        "lat": round(fix.lat, 9),
        "lon": round(fix.lon, 9),
        "mode": fix.mode,
        "speed": None if fix.speed is None else round(fix.speed, 3),
        "track": fix.track,
        "hdop": fix.hdop,
        "sats": fix.sats,
    }


def fix_to_json(fix: GpsFix) -> str:
    """One line of `ramudroid gps replay`."""
    return json.dumps(fix_to_dict(fix), separators=(",", ":"))


class LineBuffer:
    """Splits a byte stream into lines, keeping the partial tail and dropping runaway binary."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes; return the complete lines."""
        self._buf += data
        *lines, rest = bytes(self._buf).split(b"\n")
        if len(rest) > self._max:
            # Keep the end: a sentence may be starting right after a long binary frame.
            self.dropped += len(rest) - self._max
            rest = rest[-self._max :]
        self._buf = bytearray(rest)
        return lines


class SerialGps:
    """GPS receiver on a serial port: a reader thread decodes NMEA, latest() returns the newest fresh fix.

    `port` is anything pyserial's serial_for_url() opens (/dev/ttyAMA0, a pty, loop://, socket://...).
    A fix older than `stale_s` is not returned: no fix for that long means the GPS is lost.
    """

    def __init__(
        self,
        port: str,
        baud: int = 9600,
        *,
        stale_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        idle_flush_s: float = 0.1,
        on_fix: Callable[[GpsFix], None] | None = None,
    ) -> None:
        try:
            import serial
        except ImportError as err:  # pragma: no cover - pyserial is a dependency
            raise HardwareUnavailable("GPS: pyserial is not installed: pip install pyserial") from err
        self._serial_mod = serial
        self.port = port
        self._stale_s = stale_s
        self._clock = clock
        self._on_fix = on_fix
        self._decoder = NmeaDecoder()
        self._lines = LineBuffer()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._fix: GpsFix | None = None
        self._fix_at: float | None = None
        self._returned_at: float | None = None  # when the fix latest() last returned arrived
        self._fixes = 0
        self._error: str | None = None
        self._stop = threading.Event()
        try:
            self._ser = serial.serial_for_url(port, baudrate=baud, timeout=idle_flush_s)
        except (serial.SerialException, OSError, ValueError) as err:
            raise GpsError(
                f"GPS on {port}: cannot open the port ({err}); check hardware.gps_port and the wiring, "
                "or set hardware.gps = 'sim'"
            ) from err
        self._thread = threading.Thread(target=self._run, name=f"gps-{port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        serial = self._serial_mod
        while not self._stop.is_set():
            try:
                data = self._ser.read(256)
            except (serial.SerialException, OSError, TypeError) as err:
                # TypeError: pyserial on a closed fd during close(); either way the reader ends here.
                if not self._stop.is_set():
                    with self._lock:
                        self._error = f"GPS on {self.port}: read failed ({err})"
                return
            if data:
                fixes = [f for line in self._lines.feed(data) for f in self._decoder.feed_line(line)]
            else:
                # The receiver sends one burst per epoch: silence means the epoch is complete.
                fixes = self._decoder.flush()
            for fix in fixes:
                with self._lock:
                    self._fix, self._fix_at = fix, self._clock()
                    self._fixes += 1
                if self._on_fix:
                    self._on_fix(fix)

    def write(self, data: bytes) -> None:
        """Send bytes to the receiver (RTCM corrections, configuration); raises GpsError when the port fails."""
        with self._write_lock:
            try:
                self._ser.write(data)
            except (self._serial_mod.SerialException, OSError, TypeError) as err:
                raise GpsError(f"GPS on {self.port}: write failed ({err})") from err

    def latest(self) -> GpsFix | None:
        """The newest fix, or None when there is none or it is older than stale_s."""
        with self._lock:
            if self._fix is None or self._fix_at is None:
                return None
            if self._clock() - self._fix_at > self._stale_s:
                return None
            self._returned_at = self._fix_at
            return self._fix

    def reading_age_s(self) -> float:
        """How long ago (by this driver's clock) the fix latest() last returned came off the wire: the
        supervisor dates the fix by its arrival, not by when it polled."""
        with self._lock:
            at = self._returned_at
            return 0.0 if at is None else max(0.0, self._clock() - at)

    def stats(self) -> dict[str, Any]:
        """Fix and sentence counts, rejected and ignored lines by reason, and the last read error."""
        with self._lock:
            return {
                "fixes": self._fixes,
                "sentences": self._decoder.sentences,
                "rejected": self._decoder.rejected,
                "ignored": self._decoder.ignored,
                "dropped_bytes": self._lines.dropped,
                "error": self._error,
            }

    def close(self) -> None:
        """Stop the reader and close the port; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self._ser.close()

    def __enter__(self) -> SerialGps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
