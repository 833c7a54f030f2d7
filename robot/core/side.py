"""The side sensors' rule: a thing closing in on the robot's side brakes it. Pure: no I/O, no clock.

The forward HC-SR04 sees 15 degrees either side of the nose. A passer-by crossing the robot's way while it drives
across hers comes at it from about 50 degrees off the nose (her speed across, its speed along), and reaches its
side unseen. Two more sensors at the front corners look out there (hardware.side_bearing_deg). A bin beside the
lane closes in on them too as the robot drives past it, but never faster than the sensor itself moves towards
it; a person walking in closes faster. So: nearer than obstacle.side_stop_m and closing faster than the robot's
own motion explains (plus a margin for the readings' noise) is someone walking in, and the robot brakes to
standing; anything nearer than obstacle.side_near_m blocks driving forward whatever it does (the body is about
to touch it). Standing, the robot's own motion explains nothing, so the stop holds while she keeps coming; she
walks into a standing robot (which she sees and steps round), and the passers-by logic of the core waits for a
gap before it drives on.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

# (reading time, left metres, right metres) of the recent fresh readings, oldest first.
Sample = tuple[float, float, float]

WINDOW_S = 0.25  # the closing speed is measured over this much of the readings (3-5 pings, 5 steps)
MIN_SPAN_S = 0.09  # ... and over at least this much (a shorter span makes 1 cm of noise a speed)
KEEP_S = 0.6  # older readings are dropped
# m/s above what the robot's own motion explains: 1 cm of noise over 0.25 s reads as 0.06 m/s, a passer-by at
# 0.9 m/s walking in from 50 degrees closes 0.7 m/s faster than a bin.
MARGIN_M_S = 0.3
JUMP_M_S = 4.0  # faster than a robot and a person closing on each other (1.6 + 1.5 m/s, and some)
WHEEL_TAU_S = 0.3  # the wheels take about this long to follow a new command (10 kg on two gear motors)
HALF_CONE = math.radians(15.0)


class SideTrack(NamedTuple):
    """What the side rule remembers between steps: recent readings, and how fast the robot's own motion may still
    close each side sensor on a thing that stands (it decays like the wheels' speed after a command drops)."""

    samples: tuple[Sample, ...] = ()
    own_left: float = 0.0
    own_right: float = 0.0
    at: float = -math.inf


@functools.lru_cache(maxsize=256)  # a few wheel commands recur step after step; pure, so a cache only
def own_closing(
    vl: float, vr: float, wheel_base_m: float, radius_m: float, bearing: float
) -> tuple[float, float]:
    """The fastest a standing thing anywhere in each side sensor's cone can close on it (m/s, left and right),
    with the wheels at vl, vr m/s: the sensor's own velocity projected on the nearest direction of its cone.
    The sensors sit on the body's edge at +-bearing (radians) off the nose."""
    u = (vl + vr) * 0.5
    w = (vr - vl) / wheel_base_m
    out = []
    for b in (bearing, -bearing):
        sx, sy = radius_m * math.cos(b), radius_m * math.sin(b)
        vx, vy = u - w * sy, w * sx  # the sensor's velocity in the robot's frame
        speed = math.hypot(vx, vy)
        if speed < 1e-9:
            out.append(0.0)
            continue
        off = abs((math.atan2(vy, vx) - b + math.pi) % (2.0 * math.pi) - math.pi)
        out.append(speed if off <= HALF_CONE else max(0.0, speed * math.cos(off - HALF_CONE)))
    return out[0], out[1]


def track(
    tr: SideTrack,
    left: float | None,
    right: float | None,
    reading_t: float | None,
    now: float,
    own: tuple[float, float],
    stop_m: float,
) -> SideTrack:
    """The track after this step: the reading added when it is new and whole, old ones dropped, and the own
    closing speeds (from the wheels' last command, `own`) held up while the wheels slow down. Readings are kept
    only while something is within a metre beyond `stop_m` on either side (nearer, a closing speed matters)."""
    own_l, own_r = own
    if tr.own_left > own_l or tr.own_right > own_r:
        dt = now - tr.at if now > tr.at else 0.0
        decay = math.exp(-dt / WHEEL_TAU_S) if dt < 10.0 else 0.0
        own_l = max(own_l, tr.own_left * decay)
        own_r = max(own_r, tr.own_right * decay)
    samples = tr.samples
    if (
        reading_t is not None
        and left is not None
        and right is not None
        and left == left
        and right == right
        and (not samples or reading_t > samples[-1][0])
    ):
        near = left < stop_m + 1.0 or right < stop_m + 1.0
        samples = (*samples, (reading_t, left, right)) if near else ()  # nothing near: no speed to measure
    if samples and samples[0][0] < now - KEEP_S:
        i = 1
        while i < len(samples) and samples[i][0] < now - KEEP_S:
            i += 1
        samples = samples[i:]
    return SideTrack(samples, own_l, own_r, now)


def closing(tr: SideTrack, side: int) -> float:
    """How fast the reading on one side (1: left, 2: right) has been falling, m/s; 0 when unknown. Measured
    back only to a jump: a reading that changed faster than anything walks is another thing coming into the
    cone (a bin entering it at its edge as the robot drives on), not one closing in."""
    s = tr.samples
    if len(s) < 2:
        return 0.0
    new = s[-1]
    old = new
    for x in reversed(s[:-1]):
        if new[0] - x[0] > WINDOW_S or abs(x[side] - old[side]) > JUMP_M_S * (old[0] - x[0]):
            break
        old = x
    span = new[0] - old[0]
    if span < MIN_SPAN_S:
        return 0.0
    return (old[side] - new[side]) / span


def blocks(
    tr: SideTrack,
    left: float | None,
    right: float | None,
    reading_t: float | None,
    now: float,
    stale_s: float,
    stop_m: float,
    near_m: float,
) -> str:
    """Why the side sensors forbid driving forward now ("" when they do not). Unknown or stale is unsafe."""
    age = math.inf if reading_t is None else now - reading_t
    if left is None or right is None or not age <= stale_s or left != left or right != right:
        return "side distance unknown (no echo or stale reading)"
    for name, d, side, own in (("left", left, 1, tr.own_left), ("right", right, 2, tr.own_right)):
        if d < near_m:
            return f"something {d:.2f} m from the {name} side sensor"
        if d < stop_m:
            speed = closing(tr, side)
            if speed > own + MARGIN_M_S:
                return f"something closing in on the {name} at {speed:.1f} m/s ({d:.2f} m)"
    return ""
