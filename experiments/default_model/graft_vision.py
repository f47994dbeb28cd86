#!/usr/bin/env python3
"""Copy the vision tower (every model.visual.* tensor: patch embedding, position table, blocks,
merger, deepstack mergers) of a trained checkpoint into a freshly initialised f32 checkpoint, in
place and atomically. The decoder of the destination stays as initialised.

Why: the short-context default model (v6) is a fresh decoder trained on a capped SFT context on top
of the eyes of the full-context model (v5), whose shape features took three extra SFT phases to form
(see train.sh). Same vision, different decoder training length: the comparison isolates the decoder.

usage: graft_vision.py SRC_MODEL_DIR DST_MODEL_DIR   (standard library only; SRC in F32 or BF16)
"""
import array, json, os, struct, sys


def read(path):
    try:
        raw = open(path, "rb").read()
        hlen = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + hlen])
    except (OSError, struct.error, ValueError) as e:
        sys.exit(f"graft_vision.py: {path}: not a readable safetensors file ({e})")
    return raw, 8 + hlen, header


def as_f32(raw, base, t, path, key):
    s, e = t["data_offsets"]
    b = raw[base + s:base + e]
    if t["dtype"] == "F32":
        return b
    if t["dtype"] == "BF16":  # bf16 is the top half of an f32
        h = array.array("H", b)
        out = array.array("I", (x << 16 for x in h))
        return out.tobytes()
    sys.exit(f"graft_vision.py: {path}: {key} is {t['dtype']}, expected F32 or BF16")


if len(sys.argv) != 3:
    sys.exit(__doc__.strip().splitlines()[-1])
src_path = os.path.join(sys.argv[1], "model.safetensors")
dst_path = os.path.join(sys.argv[2], "model.safetensors")
src, sbase, sh = read(src_path)
dst, dbase, dh = read(dst_path)
keys = sorted(k for k in dh if k.startswith("model.visual."))
if not keys:
    sys.exit(f"graft_vision.py: {dst_path}: no model.visual.* tensors")
out = bytearray(dst)
for k in keys:
    t = dh[k]
    if k not in sh:
        sys.exit(f"graft_vision.py: {src_path}: missing {k}")
    if t["dtype"] != "F32" or sh[k]["shape"] != t["shape"]:
        sys.exit(f"graft_vision.py: {k}: {src_path} has {sh[k]['dtype']} {sh[k]['shape']}, "
                 f"{dst_path} has {t['dtype']} {t['shape']} (need the same shape, destination F32)")
    s, e = t["data_offsets"]
    out[dbase + s:dbase + e] = as_f32(src, sbase, sh[k], src_path, k)
tmp = dst_path + ".tmp"
with open(tmp, "wb") as f:
    f.write(out)
os.replace(tmp, dst_path)
n = sum((e - s) // 4 for s, e in (dh[k]["data_offsets"] for k in keys))
print(f"graft_vision.py: {dst_path}: {len(keys)} vision tensors ({n} values) from {src_path}")
