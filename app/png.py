"""A real, deterministic PNG avatar drawn in pure Python (zlib + struct, no imaging library).

The same (seed, width, height) always gives the same bytes: the placeholder provider can
hand out a URL instead of storing images, and the app redraws them on request.
"""

from __future__ import annotations

import random
import struct
import zlib
from functools import lru_cache

SIZES = (64, 128, 256, 512, 768, 1024)
MAX_SIDE = 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _palette(rng: random.Random) -> dict[str, tuple[int, int, int]]:
    def hsv(h, s, v):
        import colorsys

        r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
        return int(r * 255), int(g * 255), int(b * 255)

    base = rng.random()
    skins = [
        (255, 219, 172),
        (241, 194, 125),
        (224, 172, 105),
        (198, 134, 66),
        (141, 85, 36),
        (94, 58, 30),
    ]
    hairs = [
        (35, 25, 20),
        (90, 56, 37),
        (170, 120, 60),
        (220, 190, 120),
        (120, 30, 20),
        (200, 200, 205),
        (60, 60, 70),
    ]
    return {
        "top": hsv(base, 0.35, 0.95),
        "bottom": hsv(base + 0.08, 0.55, 0.70),
        "skin": rng.choice(skins),
        "hair": rng.choice(hairs),
        "shirt": hsv(base + 0.5 + rng.uniform(-0.1, 0.1), 0.6, 0.75),
        "stripe": hsv(base + 0.5, 0.3, 0.95),
        "eye": rng.choice([(40, 60, 120), (60, 40, 20), (30, 90, 50), (20, 20, 20)]),
        "mouth": (170, 70, 70),
    }


def _span(cx: float, cy: float, rx: float, ry: float, y: float) -> tuple[float, float] | None:
    dy = (y - cy) / ry
    if dy * dy >= 1.0:
        return None
    half = rx * (1.0 - dy * dy) ** 0.5
    return cx - half, cx + half


@lru_cache(maxsize=64)
def render(seed: int, width: int = 512, height: int = 512) -> bytes:
    """PNG bytes of a head-and-shoulders figure whose colours and shapes follow the seed."""
    if not (8 <= width <= MAX_SIDE and 8 <= height <= MAX_SIDE):
        raise ValueError(f"size {width}x{height} outside 8..{MAX_SIDE}")
    rng = random.Random(seed)
    colors = _palette(rng)
    w, h = width, height
    cx = w * rng.uniform(0.46, 0.54)
    head = (
        cx,
        h * rng.uniform(0.40, 0.45),
        w * rng.uniform(0.17, 0.21),
        h * rng.uniform(0.21, 0.25),
    )
    hair = (head[0], head[1] - head[3] * 0.25, head[2] * 1.12, head[3] * 0.95)
    body = (cx, h * 1.02, w * rng.uniform(0.36, 0.44), h * 0.33)
    neck_half = head[2] * 0.38
    eye_dx, eye_y, eye_r = head[2] * 0.42, head[1] - head[3] * 0.05, max(1.0, w * 0.018)
    mouth_y = head[1] + head[3] * 0.45
    stripes = rng.random() < 0.5
    stripe_every = max(2, int(h * 0.04))

    def paint(row: bytearray, span, color) -> None:
        if span is None:
            return
        x0, x1 = max(0, int(span[0])), min(w, int(span[1]) + 1)
        if x1 > x0:
            row[3 * x0 : 3 * x1] = bytes(color) * (x1 - x0)

    top, bottom = colors["top"], colors["bottom"]
    raw = bytearray()
    for y in range(h):
        t = y / (h - 1)
        bg = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom))
        row = bytearray(bytes(bg) * w)
        yc = y + 0.5
        paint(row, _span(*hair, yc) if yc < head[1] else None, colors["hair"])
        if head[1] < yc < body[1]:
            paint(row, (cx - neck_half, cx + neck_half), colors["skin"])
        shirt = colors["stripe"] if stripes and (y // stripe_every) % 2 else colors["shirt"]
        paint(row, _span(*body, yc), shirt)
        paint(row, _span(*head, yc), colors["skin"])
        if abs(yc - eye_y) < eye_r:
            half = (eye_r * eye_r - (yc - eye_y) ** 2) ** 0.5
            paint(row, (cx - eye_dx - half, cx - eye_dx + half), colors["eye"])
            paint(row, (cx + eye_dx - half, cx + eye_dx + half), colors["eye"])
        if abs(yc - mouth_y) < max(1.0, h * 0.008):
            paint(row, (cx - head[2] * 0.3, cx + head[2] * 0.3), colors["mouth"])
        raw += b"\x00" + row
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB
    text = b"Software\x00avatar-creator placeholder seed=" + str(seed).encode()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"tEXt", text)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 6))
        + _chunk(b"IEND", b"")
    )
