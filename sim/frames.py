"""The simulated camera's view ahead, drawn with Pillow and encoded as JPEG: the alley as a person would know it.

A pinhole camera 0.3 m above the ground looks down the alley: sky at the top, house walls on both sides running
to the vanishing point, the paved ground between them, the nearest obstacle as a box standing on the ground at
its distance, rain as streaks, and at the bottom of the picture the rim of the litter tray, filled as full as it
is (with its weight written beside it). Everything is lit by the simulated sun.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw

CAMERA_HEIGHT_M = 0.3  # the camera above the ground, on the robot's front
FOCAL = 0.8  # focal length in frame widths (a ~64 degree horizontal field of view)
OBSTACLE_W_M, OBSTACLE_H_M = 0.4, 0.5  # the box drawn for an obstacle: a crate, a dog, a pile of bricks
ALLEY_HALF_W_M = 1.5  # the ground from the centre line to each wall
HORIZON = 0.42  # the horizon's height in the frame, from the top (the camera tilts a little down)
JPEG_QUALITY = 75

Rgb = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class View:
    """What the camera sees: sunlight (W/m^2), the nearest obstacle ahead (m, None: none), rain, tray fill."""

    irradiance: float
    obstacle_m: float | None = None
    raining: bool = False
    tray_kg: float = 0.0
    tray_capacity_kg: float = 2.0


def _lit(c: Rgb, light: float) -> Rgb:
    return (int(c[0] * light), int(c[1] * light), int(c[2] * light))


def draw(width: int, height: int, view: View) -> Image.Image:
    """The view as an RGB image of width x height."""
    light = max(0.15, min(1.0, 0.25 + view.irradiance / 900.0))
    img = Image.new(
        "RGB", (width, height), _lit((110, 160, 225) if not view.raining else (120, 125, 135), light)
    )
    d = ImageDraw.Draw(img)
    f = FOCAL * width
    cx, hy = width / 2.0, HORIZON * height

    def ground_y(z: float) -> float:  # where the ground z metres ahead appears
        return hy + f * CAMERA_HEIGHT_M / z

    def side_x(x: float, z: float) -> float:  # where a point x metres right of the centre line appears
        return cx + f * x / z

    # The ground between the walls, from 0.5 m ahead to the vanishing point.
    near, far = 0.5, 60.0
    wall_top_m = 3.0  # the house fronts' height drawn (the frame cuts them)
    ground = _lit((120, 116, 108) if not view.raining else (80, 80, 86), light)
    d.polygon(
        [
            (side_x(-ALLEY_HALF_W_M, near), ground_y(near)),
            (side_x(-ALLEY_HALF_W_M, far), ground_y(far)),
            (side_x(ALLEY_HALF_W_M, far), ground_y(far)),
            (side_x(ALLEY_HALF_W_M, near), ground_y(near)),
        ],
        fill=ground,
    )
    if ground_y(near) < height:
        d.rectangle((0, ground_y(near), width, height), fill=ground)

    # The walls: house fronts in alternating colours, with a door or a window in each.
    walls = ((230, 180, 110), (205, 140, 105), (225, 205, 160))
    for side in (-1, 1):
        x = side * ALLEY_HALF_W_M
        z = near
        i = 0
        while z < far:
            z2 = min(far, z * 1.6 + 1.0)
            top_near = hy - f * (wall_top_m - CAMERA_HEIGHT_M) / z
            top_far = hy - f * (wall_top_m - CAMERA_HEIGHT_M) / z2
            d.polygon(
                [
                    (side_x(x, z), top_near),
                    (side_x(x, z2), top_far),
                    (side_x(x, z2), ground_y(z2)),
                    (side_x(x, z), ground_y(z)),
                ],
                fill=_lit(walls[i % len(walls)], light),
                outline=_lit((90, 70, 60), light),
            )
            zm = (z + z2) / 2.0  # a dark door in the middle of each house front
            door_top = hy - f * (2.0 - CAMERA_HEIGHT_M) / zm
            d.polygon(
                [
                    (side_x(x, zm - 0.3), door_top),
                    (side_x(x, zm + 0.3), hy - f * (2.0 - CAMERA_HEIGHT_M) / (zm + 0.3)),
                    (side_x(x, zm + 0.3), ground_y(zm + 0.3)),
                    (side_x(x, zm - 0.3), ground_y(zm - 0.3)),
                ],
                fill=_lit((70, 50, 40), light),
            )
            z, i = z2, i + 1

    # The nearest obstacle: a box on the ground, as big as it looks from here.
    if view.obstacle_m is not None:
        z = max(0.2, view.obstacle_m)
        half_w, h_px, bottom = f * OBSTACLE_W_M / 2.0 / z, f * OBSTACLE_H_M / z, ground_y(z)
        d.rectangle((cx - half_w, bottom - h_px, cx + half_w, bottom), fill=_lit((150, 40, 30), light),
                    outline=(20, 10, 10))  # fmt: skip

    if view.raining:
        streak = _lit((200, 200, 215), light)
        for k in range(0, width * 3, max(6, width // 40)):
            x0, y0 = (k * 37) % width, (k * 53) % height
            d.line((x0, y0, x0 - height // 40, y0 + height // 12), fill=streak)

    # The tray's rim across the bottom of the frame, litter up to its fill level, and the weight.
    fill = max(0.0, min(1.0, view.tray_kg / view.tray_capacity_kg)) if view.tray_capacity_kg > 0 else 0.0
    tray_h = height // 6
    left, right, top = width // 5, width * 4 // 5, height - tray_h
    d.rectangle((left, top, right, height - 1), fill=(45, 45, 50), outline=(200, 200, 205), width=2)
    if fill > 0:
        d.rectangle(
            (left + 3, height - 3 - int((tray_h - 6) * fill), right - 3, height - 4), fill=(110, 80, 40)
        )
    label = f"tray {view.tray_kg:.1f} kg"
    d.text((right + 6, top + 2), label, fill=(255, 255, 255))
    return img


def encode(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """Baseline JPEG bytes of an image."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render_jpeg(width: int, height: int, view: View) -> bytes:
    """The camera's JPEG of the view."""
    return encode(draw(width, height, view))
