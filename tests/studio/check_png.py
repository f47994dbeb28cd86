#!/usr/bin/env python3
"""Check a studio screenshot without PIL: size, colour variety, and line pixels in the plot.

usage: check_png.py FILE.png WIDTH HEIGHT     (0 0: any size)
Decodes 8-bit RGB/RGBA non-interlaced PNGs (what stb_image_write produces) with zlib only.
"""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        elif ctype == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("unsupported PNG (depth %d, colour type %d, interlace %d)" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # undo the per-row filter
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def main():
    path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    w, h, bpp, rows = read_png(path)
    fails = []
    if want_w and (w, h) != (want_w, want_h):
        fails.append("size %dx%d, expected %dx%d" % (w, h, want_w, want_h))
    colours = set()
    for y in range(0, h, 2):
        r = rows[y]
        for x in range(0, w, 2):
            colours.add(r[x * bpp:x * bpp + 3])
    if len(colours) < 500:
        fails.append("only %d distinct colours: blank or broken render" % len(colours))
    # A plot (the dilution plot in the studio's lower centre, or a whole exported plot) has
    # saturated line colours; the dark UI theme itself has none (grey text and frames have
    # r ~= g ~= b).
    if want_w:
        x0, x1, y0, y1 = int(w * 0.35), int(w * 0.98), int(h * 0.50), int(h * 0.95)
    else:
        x0, x1, y0, y1 = int(w * 0.10), int(w * 0.90), int(h * 0.10), int(h * 0.90)
    saturated = 0
    for y in range(y0, y1, 2):
        r = rows[y]
        for x in range(x0, x1, 2):
            px = r[x * bpp:x * bpp + 3]
            if max(px) - min(px) > 80 and max(px) > 120:
                saturated += 1
    total = ((y1 - y0 + 1) // 2) * ((x1 - x0 + 1) // 2)
    if saturated < total * 0.002:
        fails.append("plot area has %d saturated pixels of %d: no plot lines" % (saturated, total))
    print("%s: %dx%d, %d colours, %d line pixels of %d sampled" % (path, w, h, len(colours), saturated, total))
    for f in fails:
        print("FAIL: " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
