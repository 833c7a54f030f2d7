"""A small baseline JPEG encoder (standard library only) for the simulated camera's generated frames.

Baseline sequential DCT, YCbCr 4:4:4, the standard tables of ITU-T T.81 Annex K. Blocks of one flat colour,
which the test card is made of, skip the DCT (only their DC term is non-zero), so a 640x480 frame encodes in
milliseconds; other blocks go through a plain separable DCT.
"""

from __future__ import annotations

import math
import struct

ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip
Q_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
Q_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
)  # fmt: skip
DC_LUMA_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
DC_CHROMA_BITS = (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
DC_VALS = tuple(range(12))
AC_LUMA_BITS = (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D)
AC_LUMA_VALS = bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435"
    "363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798"
    "999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4"
    "f5f6f7f8f9fa"
)
AC_CHROMA_BITS = (0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77)
AC_CHROMA_VALS = bytes.fromhex(
    "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a"
    "35363738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a9293949596"
    "9798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4"
    "f5f6f7f8f9fa"
)

_COS = [[math.cos((2 * x + 1) * u * math.pi / 16) * (math.sqrt(0.5) if u == 0 else 1.0) / 2 for x in range(8)]
        for u in range(8)]  # fmt: skip


def _scaled_quant(table: tuple[int, ...], quality: int) -> list[int]:
    q = max(1, min(100, quality))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return [max(1, min(255, (v * scale + 50) // 100)) for v in table]


def _huffman_codes(bits: tuple[int, ...], vals: bytes | tuple[int, ...]) -> dict[int, tuple[int, int]]:
    codes: dict[int, tuple[int, int]] = {}
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC = (_huffman_codes(DC_LUMA_BITS, DC_VALS), _huffman_codes(DC_CHROMA_BITS, DC_VALS))
_AC = (_huffman_codes(AC_LUMA_BITS, AC_LUMA_VALS), _huffman_codes(AC_CHROMA_BITS, AC_CHROMA_VALS))


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, code: int, length: int) -> None:
        self.acc = (self.acc << length) | code
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)  # byte stuffing
        self.acc &= (1 << self.n) - 1

    def flush(self) -> bytes:
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def _magnitude(v: int) -> tuple[int, int]:
    """JPEG's (size category, bits) for a coefficient."""
    size = abs(v).bit_length()
    return size, (v if v >= 0 else v + (1 << size) - 1)


def _fdct(block: list[float]) -> list[float]:
    rows = [[sum(_COS[u][x] * block[y * 8 + x] for x in range(8)) for u in range(8)] for y in range(8)]
    return [sum(_COS[v][y] * rows[y][u] for y in range(8)) for v in range(8) for u in range(8)]


def _encode_block(bits: _Bits, block: list[float], q: list[int], table: int, prev_dc: int) -> int:
    first = block[0]
    if all(p == first for p in block):
        coeffs = [0] * 64
        coeffs[0] = round(first * 8 / q[0])
    else:
        dct = _fdct(block)
        coeffs = [round(dct[i] / q[i]) for i in range(64)]
    dc = coeffs[0]
    size, val = _magnitude(dc - prev_dc)
    bits.put(*_DC[table][size])
    if size:
        bits.put(val, size)
    ac = _AC[table]
    run = 0
    for k in range(1, 64):
        c = coeffs[ZIGZAG[k]]
        if c == 0:
            run += 1
            continue
        while run > 15:
            bits.put(*ac[0xF0])
            run -= 16
        size, val = _magnitude(c)
        bits.put(*ac[(run << 4) | size])
        bits.put(val, size)
        run = 0
    if run:
        bits.put(*ac[0x00])
    return dc


def _ycc(r: float, g: float, b: float) -> tuple[float, float, float]:
    return (
        0.299 * r + 0.587 * g + 0.114 * b - 128,
        -0.168736 * r - 0.331264 * g + 0.5 * b,
        0.5 * r - 0.418688 * g - 0.081312 * b,
    )


def _headers(width: int, height: int, qs: tuple[list[int], list[int]]) -> bytearray:
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xe0" + struct.pack(">H5sBBBHHBB", 16, b"JFIF\0", 1, 1, 0, 1, 1, 0, 0)
    for tid, q in enumerate(qs):
        out += b"\xff\xdb" + struct.pack(">HB", 67, tid) + bytes(q[ZIGZAG[k]] for k in range(64))
    out += b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    out += bytes([1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1])
    for cls_id, bits_t, vals in (
        (0x00, DC_LUMA_BITS, bytes(DC_VALS)),
        (0x10, AC_LUMA_BITS, AC_LUMA_VALS),
        (0x01, DC_CHROMA_BITS, bytes(DC_VALS)),
        (0x11, AC_CHROMA_BITS, AC_CHROMA_VALS),
    ):
        out += b"\xff\xc4" + struct.pack(">HB", 3 + 16 + len(vals), cls_id) + bytes(bits_t) + vals
    out += b"\xff\xda" + struct.pack(">HB", 12, 3) + bytes([1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0])
    return out


def encode_rgb(width: int, height: int, rgb: bytes | bytearray, quality: int = 75) -> bytes:
    """Encode width x height RGB pixels (3 bytes each, rows top to bottom) as a baseline JFIF JPEG."""
    if width < 1 or height < 1 or len(rgb) != width * height * 3:
        raise ValueError(f"encode_rgb: {len(rgb)} bytes is not {width}x{height} RGB")
    qs = (_scaled_quant(Q_LUMA, quality), _scaled_quant(Q_CHROMA, quality))
    planes: list[list[float]] = [[], [], []]
    for i in range(0, len(rgb), 3):
        for c, v in enumerate(_ycc(rgb[i], rgb[i + 1], rgb[i + 2])):
            planes[c].append(v)
    bits = _Bits()
    prev = [0, 0, 0]
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            for c in range(3):
                p = planes[c]
                # Edge blocks repeat the last row/column: padding with grey would ring at the border.
                block = [
                    p[min(by + y, height - 1) * width + min(bx + x, width - 1)]
                    for y in range(8)
                    for x in range(8)
                ]
                prev[c] = _encode_block(bits, block, qs[min(c, 1)], min(c, 1), prev[c])
    return bytes(_headers(width, height, qs) + bits.flush() + b"\xff\xd9")


def encode_flat_blocks(
    width: int, height: int, colours: list[tuple[int, int, int]], quality: int = 75
) -> bytes:
    """Encode an image made of flat 8x8 blocks, given one RGB colour per block, row by row: DC terms only."""
    bw, bh = (width + 7) // 8, (height + 7) // 8
    if len(colours) != bw * bh:
        raise ValueError(f"encode_flat_blocks: {len(colours)} colours for {bw}x{bh} blocks")
    qs = (_scaled_quant(Q_LUMA, quality), _scaled_quant(Q_CHROMA, quality))
    bits = _Bits()
    prev = [0, 0, 0]
    cache: dict[tuple[int, int, int], tuple[float, float, float]] = {}
    for rgb in colours:
        ycc = cache.get(rgb)
        if ycc is None:
            ycc = cache[rgb] = _ycc(*rgb)
        for c in range(3):
            prev[c] = _encode_block(bits, [ycc[c]] * 64, qs[min(c, 1)], min(c, 1), prev[c])
    return bytes(_headers(width, height, qs) + bits.flush() + b"\xff\xd9")


def road_scene(width: int, height: int, frame: int = 0, obstacle: bool = False) -> bytes:
    """A generated road scene in flat 8x8 blocks: sky, road, kerb, a marker that moves with `frame`,
    and a red box ahead when `obstacle`."""
    bw, bh = (width + 7) // 8, (height + 7) // 8
    colours: list[tuple[int, int, int]] = []
    for j in range(bh):
        for i in range(bw):
            if j < bh * 2 // 5:
                c = (110, 160, 225)  # sky
            elif j < bh * 2 // 5 + 1:
                c = (70, 120, 60)  # verge
            else:
                c = (95, 95, 100)  # road
                if abs(i - bw // 2) < 1 and (j + frame) % 4 < 2:
                    c = (235, 235, 235)  # centre line, scrolling
            if obstacle and abs(i - bw // 2) <= bw // 8 and bh // 2 <= j < bh * 3 // 4:
                c = (200, 40, 30)
            if j == 0 and i < (frame % max(bw, 1)):
                c = (250, 200, 0)  # frame counter bar
            colours.append(c)
    return encode_flat_blocks(width, height, colours)
