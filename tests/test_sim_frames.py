"""The simulated camera's picture: something a person recognises as the alley, the tray and the obstacle ahead."""

from __future__ import annotations

import io

from PIL import Image

from sim.frames import View, draw, render_jpeg

W, H = 320, 240


def px(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    rgb = img.getpixel((x, y))
    assert isinstance(rgb, tuple) and len(rgb) == 3
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def kind(img: Image.Image, x: int, y: int) -> str:
    """A coarse name for the colour at (x, y), as a person would call it at a glance."""
    r, g, b = px(img, x, y)
    if b > r + 40 and b > g:
        return "sky"
    if r > 2 * g and r > 2 * b:
        return "red box"
    if abs(r - g) < 20 and abs(g - b) < 25 and r > 70:
        return "grey ground"
    if r > 150 and r > b + 40:
        return "wall"
    if r > b + 40 and r < 150:
        return "litter"
    return "dark"


def test_the_alley_has_sky_walls_on_both_sides_and_ground_between() -> None:
    img = draw(W, H, View(irradiance=700.0))
    assert kind(img, W // 2, 5) == "sky"
    row = [kind(img, x, H // 3) for x in range(W)]
    left, middle, right = row[: W // 4], row[W // 2 - 5 : W // 2 + 5], row[-W // 4 :]
    assert left.count("wall") > W // 8 and right.count("wall") > W // 8  # doors are the rest
    assert set(middle) == {"sky"}  # the alley runs away from the camera
    assert kind(img, W // 2, int(H * 0.7)) == "grey ground"


def test_an_obstacle_ahead_is_a_box_on_the_ground_that_grows_as_it_comes_closer() -> None:
    def box_width(d: float) -> int:
        img = draw(W, H, View(irradiance=700.0, obstacle_m=d))
        row = int(H * 0.46)  # just below the horizon: the foot of a far box, the middle of a near one
        return sum(kind(img, x, row) == "red box" for x in range(W))

    assert kind(draw(W, H, View(700.0)), W // 2, int(H * 0.46)) == "grey ground"
    near, far = box_width(1.0), box_width(3.0)
    assert far > 0 and near > 2 * far


def test_the_tray_shows_how_full_it_is() -> None:
    def litter_rows(kg: float) -> int:
        img = draw(W, H, View(irradiance=700.0, tray_kg=kg, tray_capacity_kg=2.0))
        return sum(kind(img, W // 2, y) == "litter" for y in range(H * 5 // 6, H))

    empty, half, full = litter_rows(0.0), litter_rows(1.0), litter_rows(2.0)
    assert empty == 0 and 0 < half < full


def test_rain_and_dusk_darken_the_picture_and_the_jpeg_is_the_requested_size() -> None:
    sunny = px(draw(W, H, View(irradiance=800.0)), W // 2, 5)
    dusk = px(draw(W, H, View(irradiance=20.0, raining=True)), W // 2, 5)
    assert sum(dusk) < sum(sunny) / 2
    jpeg = render_jpeg(640, 480, View(irradiance=500.0, obstacle_m=2.0, tray_kg=0.4))
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG" and img.size == (640, 480)
