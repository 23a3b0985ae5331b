#!/usr/bin/env python3
"""Draws tokentray's icons: the tray's state family and the app icon. Python stdlib only.

    python3 icons/generate.py        # rewrites the PNGs next to this script

The glyph is a rounded tile holding three rising bars (spend going up over a day), in the
state's colour, with a contrasting edge so it reads on light and dark panels alike:

    tray-<state>-<panel>.png   64x64, state: normal warning over problem paused,
                               panel: dark (light edge, for dark panels) or
                                      light (dark edge, for light panels)
    icon.png 512, 256x256.png, 128x128.png, 32x32.png   the app icon (the normal tile)

The states differ in shape as well as colour, so they are told apart without colour vision:
normal has three bars; warning puts an amber tile behind the bars and a notch cut out of its
top corner; over has a red tile with the tallest bar breaking through the top edge; problem is a
grey tile with an exclamation mark; paused is a slate tile with two pause bars. None is a
round disc with a horizontal bar (the "no entry" sign the first icon looked like).

The output is deterministic (same bytes on every run), so a diff of the PNGs means the drawing
changed.
"""

import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# Fill colours per state (sRGB), chosen to read on white and on near-black panels.
FILL = {
    "normal": (0x1F, 0x9D, 0x74),   # green-teal
    "warning": (0xE8, 0x9A, 0x0C),  # amber
    "over": (0xD6, 0x2F, 0x2F),     # red
    "problem": (0x7A, 0x7F, 0x87),  # grey
    "paused": (0x4A, 0x62, 0x8C),   # slate blue
}
WHITE = (0xFF, 0xFF, 0xFF)
# The edge that separates the tile from the panel behind it.
EDGE = {"dark": (0xF2, 0xF2, 0xF2), "light": (0x1C, 0x1C, 0x1C)}
# Supersampling per axis (antialiasing).
SS = 4


def png(path, width, height, rgba):
    """Writes 8-bit RGBA pixels (a bytes of width*height*4) as a PNG."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + rgba[y * width * 4:(y + 1) * width * 4] for y in range(height)
    )
    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(rows, 9))
    data += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def rounded_rect(x, y, x0, y0, x1, y1, r):
    """Whether (x, y) is inside the rectangle with corners of radius r (unit coordinates)."""
    if x < x0 or x > x1 or y < y0 or y > y1:
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def rect(x, y, x0, y0, x1, y1):
    return x0 <= x <= x1 and y0 <= y <= y1


# Everything in unit coordinates: (0, 0) top left, (1, 1) bottom right.
TILE = (0.10, 0.10, 0.90, 0.90, 0.18)
EDGE_WIDTH = 0.055
BARS = [(0.24, 0.48), (0.43, 0.60), (0.62, 0.28)]  # (left x, top y) of each bar: a small bar chart
BAR_W = 0.14
BAR_BOTTOM = 0.76


def tile(x, y, grow=0.0):
    x0, y0, x1, y1, r = TILE
    return rounded_rect(x, y, x0 - grow, y0 - grow, x1 + grow, y1 + grow, r + grow)


def bars(x, y, tops=None):
    tops = tops or [t for _, t in BARS]
    return any(
        rect(x, y, left, top, left + BAR_W, BAR_BOTTOM) for (left, _), top in zip(BARS, tops)
    )


def shape(state, x, y):
    """`None` (transparent), "edge", "fill" or "mark" at (x, y)."""
    if state == "over":
        # The tallest bar breaks through the tile's top edge.
        left = BARS[2][0]
        if rect(x, y, left - EDGE_WIDTH, 0.03, left + BAR_W + EDGE_WIDTH, BAR_BOTTOM):
            if rect(x, y, left, 0.03 + EDGE_WIDTH, left + BAR_W, BAR_BOTTOM):
                return "mark"
            if not tile(x, y):
                return "edge"
    if state == "warning":
        # A notch out of the top right corner: a triangle of panel, edged.
        corner = x + (1 - y)
        if corner > 1.62:
            return None
        if corner > 1.62 - EDGE_WIDTH * 1.4:
            return "edge" if tile(x, y, EDGE_WIDTH) else None
    if tile(x, y):
        if state in ("normal", "warning", "app"):
            return "mark" if bars(x, y) else "fill"
        if state == "over":
            return "mark" if bars(x, y, [0.48, 0.60, 0.03]) else "fill"
        if state == "paused":
            pause = rect(x, y, 0.33, 0.30, 0.44, 0.70) or rect(x, y, 0.56, 0.30, 0.67, 0.70)
            return "mark" if pause else "fill"
        if state == "problem":
            bang = rounded_rect(x, y, 0.445, 0.24, 0.555, 0.60, 0.05) or (
                (x - 0.50) ** 2 + (y - 0.72) ** 2 <= 0.065**2
            )
            return "mark" if bang else "fill"
        return "fill"
    if tile(x, y, EDGE_WIDTH):
        return "edge"
    return None


def render(state, size, edge, fill):
    out = bytearray(size * size * 4)
    colours = {"edge": edge, "fill": fill, "mark": WHITE}
    for py in range(size):
        for px in range(size):
            r = g = b = a = 0.0
            for sy in range(SS):
                for sx in range(SS):
                    x = (px + (sx + 0.5) / SS) / size
                    y = (py + (sy + 0.5) / SS) / size
                    part = shape(state, x, y)
                    if part is None:
                        continue
                    c = colours[part]
                    r += c[0]
                    g += c[1]
                    b += c[2]
                    a += 1
            i = (py * size + px) * 4
            if a:
                out[i] = round(r / a)
                out[i + 1] = round(g / a)
                out[i + 2] = round(b / a)
                out[i + 3] = round(255 * a / (SS * SS))
    return bytes(out)


def main():
    for state, fill in FILL.items():
        for panel, edge in EDGE.items():
            path = os.path.join(HERE, f"tray-{state}-{panel}.png")
            png(path, 64, 64, render(state, 64, edge, fill))
    # The app icon: the normal tile with a dark edge (launchers and docs are mostly light).
    for name, size in [("icon.png", 512), ("256x256.png", 256), ("128x128.png", 128), ("32x32.png", 32)]:
        png(os.path.join(HERE, name), size, size, render("app", size, EDGE["light"], FILL["normal"]))


if __name__ == "__main__":
    main()
