"""Who may command the robot over MQTT: e-stops from anyone, everything else signed (HMAC-SHA256) and fresh.

MQTT tells the robot nothing about the sender, so a command other than the e-stop carries its own proof: an
envelope {"body": "<JSON text>", "sig": "<hex HMAC-SHA256 of body under the robot's key>"}. The body names the
robot, a UNIX timestamp and a nonce; a body for another robot, outside the time window or with a nonce already
seen is refused, so a recorded command cannot be replayed. Pure: the caller passes the wall time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from robot.core.types import Command, CommandKind, Mode

MAX_PAYLOAD = 2048  # a signed command is ~250 bytes
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
KEY_CONTEXT = b"ramudroid-command-key/"


def derive_key(master_key: str, robot: str) -> str:
    """The command key of one robot, derived from the fleet's master key (so the fleet holds one secret)."""
    return hmac.new(master_key.encode(), KEY_CONTEXT + robot.encode(), hashlib.sha256).hexdigest()


def sign(key: str, robot: str, command: dict[str, Any], *, wall: float, nonce: str | None = None) -> bytes:
    """A signed envelope for `command` ({"kind": ..., plus its fields}) to `robot`."""
    body = json.dumps(
        {**command, "robot": robot, "ts": round(wall, 3), "nonce": nonce or secrets.token_hex(12)},
        separators=(",", ":"),
    )
    sig = hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"body": body, "sig": sig}, separators=(",", ":")).encode()


class Outcome(StrEnum):
    """What became of one message on the command topic; every outcome but ACCEPTED is counted as a rejection."""

    ACCEPTED = "accepted"
    ESTOP = "estop"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    BAD_ENVELOPE = "bad_envelope"
    NO_KEY = "no_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ROBOT = "wrong_robot"
    STALE = "stale"
    REPLAY = "replay"
    BAD_COMMAND = "bad_command"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome, the command to queue (for ACCEPTED and ESTOP) and the nonce to report back."""

    outcome: Outcome
    command: Command | None = None
    nonce: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.ACCEPTED, Outcome.ESTOP)


def _reject(outcome: Outcome, detail: str, nonce: str | None = None) -> Verdict:
    return Verdict(outcome, None, nonce, detail)


def _speed(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) and -1.0 <= f <= 1.0 else None


def parse_fields(data: dict[str, Any], at: float, source: str) -> Command | str:
    """A Command from a body's fields, with the dashboard's rules (strict: no unknown fields), or the reason."""
    fields = {k: v for k, v in data.items() if k not in ("robot", "ts", "nonce")}
    kind = fields.get("kind")
    try:
        k = CommandKind(kind if isinstance(kind, str) else repr(kind))
    except ValueError:
        return f"unknown kind {kind!r}"
    allowed = {"kind"} | ({"mode"} if k is CommandKind.SET_MODE else set())
    allowed |= {"left", "right"} if k is CommandKind.DRIVE else set()
    extra = sorted(set(fields) - allowed)
    if extra:
        return f"unexpected field(s) {', '.join(extra)} for {k.value}"
    if k is CommandKind.SET_MODE:
        try:
            given = fields.get("mode")
            mode = Mode(given if isinstance(given, str) else repr(given))
        except ValueError:
            return f"mode {fields.get('mode')!r}: expected auto, manual or paused"
        return Command(k, at=at, mode=mode, source=source)
    if k is CommandKind.DRIVE:
        left, right = _speed(fields.get("left")), _speed(fields.get("right"))
        if left is None or right is None:
            return "drive needs left and right, numbers in [-1, 1]"
        return Command(k, at=at, left=left, right=right, source=source)
    return Command(k, at=at, source=source)


class CommandAuth:
    """Checks messages on one robot's command topic; remembers nonces for the time window (bounded)."""

    def __init__(self, key: str, robot: str, *, window_s: float = 30.0, max_nonces: int = 10000) -> None:
        self._key = key.encode()
        self.robot = robot
        self.window_s = window_s
        self.max_nonces = max_nonces
        self._seen: dict[str, float] = {}  # nonce -> its ts, in insertion order

    def check(self, payload: bytes, *, wall: float, at: float, source: str = "mqtt") -> Verdict:
        """Judge one payload. `wall`: the robot's UNIX time; `at`: the supervisor clock for the Command."""
        if len(payload) > MAX_PAYLOAD:
            return _reject(Outcome.TOO_LARGE, f"{len(payload)} bytes, more than {MAX_PAYLOAD}")
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return _reject(Outcome.NOT_JSON, "payload is not JSON")
        if not isinstance(data, dict):
            return _reject(Outcome.BAD_ENVELOPE, "payload is not a JSON object")
        if data.get("kind") == "estop":
            # Stopping is never gated, and an e-stop message is only ever a stop, whatever else it carries.
            return Verdict(Outcome.ESTOP, Command(CommandKind.ESTOP, at=at, source=source))
        body, sig = data.get("body"), data.get("sig")
        if not isinstance(body, str) or not isinstance(sig, str) or set(data) != {"body", "sig"}:
            return _reject(Outcome.BAD_ENVELOPE, 'expected {"kind": "estop"} or {"body": ..., "sig": ...}')
        try:
            inner = json.loads(body)
        except ValueError:
            return _reject(Outcome.BAD_ENVELOPE, "body is not JSON")
        nonce = inner.get("nonce") if isinstance(inner, dict) else None
        nonce = nonce if isinstance(nonce, str) and NONCE_RE.fullmatch(nonce) else None
        if isinstance(inner, dict) and inner.get("kind") == "estop":
            return Verdict(Outcome.ESTOP, Command(CommandKind.ESTOP, at=at, source=source), nonce)
        if not self._key:
            return _reject(Outcome.NO_KEY, "mqtt.command_key is not set: only the e-stop is accepted", nonce)
        want = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            return _reject(Outcome.BAD_SIGNATURE, "signature does not match this robot's key", nonce)
        # From here on the sender holds the key: the checks are against replay and mistakes, not forgery.
        self._forget(wall)
        if not isinstance(inner, dict):
            return _reject(Outcome.BAD_COMMAND, "body is not a JSON object", nonce)
        if inner.get("robot") != self.robot:
            return _reject(
                Outcome.WRONG_ROBOT, f"signed for {inner.get('robot')!r}, not {self.robot!r}", nonce
            )
        ts = inner.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            return _reject(Outcome.BAD_COMMAND, "ts must be a UNIX time in seconds", nonce)
        if abs(wall - ts) > self.window_s:
            return _reject(
                Outcome.STALE,
                f"ts is {wall - ts:+.0f} s from the robot's clock (window ±{self.window_s:.0f} s)",
                nonce,
            )
        if nonce is None:
            return _reject(Outcome.BAD_COMMAND, "nonce must be 8-64 letters, digits, '_' or '-'", None)
        if nonce in self._seen:
            return _reject(Outcome.REPLAY, "nonce already used", nonce)
        parsed = parse_fields(inner, at, source)
        if isinstance(parsed, str):
            return _reject(Outcome.BAD_COMMAND, parsed, nonce)
        if len(self._seen) >= self.max_nonces:
            self._seen.pop(next(iter(self._seen)))  # only key holders get here: bounded, never a flood
        self._seen[nonce] = float(ts)
        return Verdict(Outcome.ACCEPTED, parsed, nonce)

    def _forget(self, wall: float) -> None:
        """Drop nonces whose ts is outside the window: their commands would be refused as stale anyway."""
        old = [n for n, ts in self._seen.items() if abs(wall - ts) > self.window_s]
        for n in old:
            del self._seen[n]


HA_PAYLOADS = {"STOP": None, "PAUSE": Mode.PAUSED, "AUTO": Mode.AUTO}


def parse_ha(payload: bytes, at: float, *, allowed: bool) -> Verdict:
    """A Home Assistant button press: STOP is always an e-stop; PAUSE/AUTO only with mqtt.ha_commands."""
    word = payload.strip().upper()[:16].decode("ascii", "replace")
    if word not in HA_PAYLOADS:
        return _reject(Outcome.BAD_COMMAND, f"unknown Home Assistant payload {word!r}")
    mode = HA_PAYLOADS[word]
    if mode is None:
        return Verdict(Outcome.ESTOP, Command(CommandKind.ESTOP, at=at, source="mqtt-ha"))
    if not allowed:
        return _reject(
            Outcome.NO_KEY, f"{word} from Home Assistant needs mqtt.ha_commands = true and the ACL"
        )
    return Verdict(Outcome.ACCEPTED, Command(CommandKind.SET_MODE, at=at, mode=mode, source="mqtt-ha"))
