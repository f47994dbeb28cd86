#!/usr/bin/env python3
"""Give the vision tower an absolute 2D position code: overwrite model.visual.pos_embed.weight of an
f32 checkpoint with a 2D sinusoidal table (rows in the first half of the channels, columns in the
second), in place and atomically.

Why: the decoder only sees relative (rotary) positions, and most patches of a scene are identical
background, so without an absolute position in the patch *content* no text token can find "the
object in the second row, third column". Real Qwen3-VL learns this table in pre-training; trained
from scratch with N(0, 0.02) it stays ~40x smaller than the patch features and the model stays
blind (held-out loss with the right image = with another scene's image).

usage: pos_embed.py MODEL_DIR [AMPLITUDE]   (standard library only)
"""
import array, json, math, os, struct, sys

d = sys.argv[1]
amp = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
path = os.path.join(d, "model.safetensors")
cfg = json.load(open(os.path.join(d, "config.json")))["vision_config"]
n, dim = cfg["num_position_embeddings"], cfg["hidden_size"]
side = int(round(math.sqrt(n)))
if side * side != n or dim % 4:
    sys.exit(f"pos_embed.py: {path}: need a square table and hidden_size % 4 == 0")
raw = open(path, "rb").read()
hlen = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + hlen])
key = "model.visual.pos_embed.weight"
if key not in header:
    sys.exit(f"pos_embed.py: {path}: no tensor {key}")
t = header[key]
if t["dtype"] != "F32" or t["shape"] != [n, dim]:
    sys.exit(f"pos_embed.py: {path}: {key} is {t['dtype']} {t['shape']}, expected F32 [{n}, {dim}]")
half, nf = dim // 2, dim // 4
# periods from 4 to 4*side grid cells, geometric: neighbouring cells and whole rows both separate
periods = [4.0 * side ** (k / max(1, nf - 1)) for k in range(nf)]
vals = array.array("f")
for i in range(n):
    r, c = divmod(i, side)
    for coord in (r, c):
        for p in periods:
            vals.append(amp * math.sin(2 * math.pi * coord / p))
        for p in periods:
            vals.append(amp * math.cos(2 * math.pi * coord / p))
assert len(vals) == n * dim
s, e = t["data_offsets"]
base = 8 + hlen
out = raw[:base + s] + vals.tobytes() + raw[base + e:]
assert len(out) == len(raw)
tmp = path + ".tmp"
with open(tmp, "wb") as f:
    f.write(out)
os.replace(tmp, path)
print(f"pos_embed.py: {path}: {key} <- 2D sinusoidal table ({side}x{side}, amplitude {amp})")
