"""Generated camera frames for the simulated camera: a street lit by the simulated sun, stdlib only.

Frames are made of flat 8x8 blocks and go through the drivers' small baseline JPEG encoder, so `ramudroid run`
needs no imaging library.
"""

from __future__ import annotations

from robot.drivers.jpeg import encode_flat_blocks


def _lit(c: tuple[int, int, int], light: float) -> tuple[int, int, int]:
    return (int(c[0] * light), int(c[1] * light), int(c[2] * light))


def render_jpeg(width: int, height: int, irradiance: float, obstacle_m: float | None, raining: bool) -> bytes:
    """A JPEG of the view ahead: sky and road lit by the irradiance, the nearest obstacle as a block."""
    light = max(0.1, min(1.0, 0.2 + irradiance / 900.0))
    sky = _lit((110, 160, 225) if not raining else (120, 125, 135), light)
    road = _lit((95, 95, 100) if not raining else (70, 72, 80), light)
    kerb = _lit((70, 120, 60), light)
    dark = _lit((60, 40, 35), light)
    bw, bh = (width + 7) // 8, (height + 7) // 8
    horizon = bh * 2 // 5
    half = -1
    bottom = -1
    if obstacle_m is not None:
        # Apparent size falls off with distance; the block stands on the road ahead.
        half = max(1, int(bw * 0.12 / max(0.15, obstacle_m)))
        bottom = min(bh, horizon + 1 + int(bh * 0.5 / max(0.5, obstacle_m)))
    colours: list[tuple[int, int, int]] = []
    for j in range(bh):
        for i in range(bw):
            if j < horizon:
                c = sky
            elif j == horizon:
                c = kerb
            else:
                c = road
            if half > 0 and abs(i - bw // 2) <= half and bottom - 2 * half <= j < bottom:
                c = dark
            if raining and (i + 2 * j) % 9 == 0:
                c = _lit((170, 170, 190), light)
            colours.append(c)
    return encode_flat_blocks(width, height, colours)
