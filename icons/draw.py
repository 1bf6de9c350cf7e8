#!/usr/bin/env python3
"""Draws the Hearth icon (an ember-orange rounded square with a cream flame) as PNG and ICO
files with only the standard library, so no image tool is needed.

Usage: python3 icons/draw.py   -> icons/hearth.png (the 1024 px source), src-tauri/icons/tray.png
                                  and tray-unread.png (with the unread badge), and fallback app
                                  icons (32, 128, 256, 512 px PNG and icon.ico).
Then, for the full platform set: npm run tauri icon icons/hearth.png -- -o src-tauri/icons
"""
import math
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "..", "src-tauri", "icons")


def inside_rounded_square(x, y, r):
    # x, y in [0, 1]; corner radius r.
    cx = min(max(x, r), 1 - r)
    cy = min(max(y, r), 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def inside_flame(x, y):
    # A teardrop: a circle at the bottom narrowing to a point at the top.
    cx, cy, rad = 0.5, 0.62, 0.22
    if (x - cx) ** 2 + (y - cy) ** 2 <= rad * rad:
        return True
    top = 0.16
    if top <= y <= cy:
        t = (y - top) / (cy - top)  # 0 at the tip, 1 at the circle's centre
        half = rad * math.sin(t * math.pi / 2) ** 1.3
        return abs(x - cx) <= half
    return False


def inside_core(x, y):
    cx, cy, rad = 0.5, 0.70, 0.10
    if (x - cx) ** 2 + (y - cy) ** 2 <= rad * rad:
        return True
    top = 0.46
    if top <= y <= cy:
        t = (y - top) / (cy - top)
        return abs(x - cx) <= rad * math.sin(t * math.pi / 2) ** 1.3
    return False


def pixel(x, y, badge):
    if badge and (x - 0.8) ** 2 + (y - 0.2) ** 2 <= 0.2 ** 2:
        return (220, 38, 38, 255)
    if not inside_rounded_square(x, y, 0.22):
        return (0, 0, 0, 0)
    if inside_core(x, y):
        return (234, 88, 12, 255)
    if inside_flame(x, y):
        return (255, 237, 213, 255)
    return (234, 88, 12, 255)


def render(size, badge=False, ss=3):
    rows = []
    for j in range(size):
        row = bytearray()
        for i in range(size):
            acc = [0, 0, 0, 0]
            for sj in range(ss):
                for si in range(ss):
                    p = pixel((i + (si + 0.5) / ss) / size, (j + (sj + 0.5) / ss) / size, badge)
                    a = p[3]
                    acc[0] += p[0] * a
                    acc[1] += p[1] * a
                    acc[2] += p[2] * a
                    acc[3] += a
            a = acc[3]
            if a:
                row += bytes((acc[0] // a, acc[1] // a, acc[2] // a, a // (ss * ss)))
            else:
                row += bytes((0, 0, 0, 0))
        rows.append(bytes(row))
    return rows


def png(size, rows):
    raw = b"".join(b"\x00" + r for r in rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def ico(images):
    # ICO with PNG-compressed entries (supported since Windows Vista).
    head = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries, data = b"", b""
    for size, blob in images:
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset + len(data))
        data += blob
    return head + entries + data


def write(path, blob):
    with open(path, "wb") as f:
        f.write(blob)


def main():
    os.makedirs(OUT, exist_ok=True)
    cache = {}

    def get(size, badge=False):
        key = (size, badge)
        if key not in cache:
            cache[key] = png(size, render(size, badge, ss=2 if size > 256 else 3))
        return cache[key]

    write(os.path.join(ROOT, "hearth.png"), get(1024))
    write(os.path.join(OUT, "32x32.png"), get(32))
    write(os.path.join(OUT, "128x128.png"), get(128))
    write(os.path.join(OUT, "128x128@2x.png"), get(256))
    write(os.path.join(OUT, "icon.png"), get(512))
    write(os.path.join(OUT, "tray.png"), get(64))
    write(os.path.join(OUT, "tray-unread.png"), get(64, badge=True))
    write(os.path.join(OUT, "icon.ico"), ico([(16, get(16)), (32, get(32)), (48, get(48)), (256, get(256))]))


if __name__ == "__main__":
    main()
