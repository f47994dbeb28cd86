#!/usr/bin/env python3
"""Reference outputs of Hugging Face transformers' Qwen3-VL for the C++ parity tests.

    python3 scripts/gpu/make_parity_fixtures.py --out tests/data/parity \
        [--device cuda|cpu] [--attn eager|sdpa] [--tokenizer PATH/tokenizer.json]
    python3 scripts/gpu/make_parity_fixtures.py --out /tmp/p --dry-run   # standard library only

Builds a tiny random Qwen3-VL in transformers (float32, deterministic weights), runs it, and writes
what tests/test_parity.cpp compares our engine against (see scripts/gpu/README.md):

  <out>/tiny_model/config.json, model.safetensors   save_pretrained of the tiny model (f32, ~1.2 MB)
  <out>/tiny_model/preprocessor_config.json         the image processor settings used below
  <out>/images/img{0,1,2}.png                        3 deterministic test images (RGB, 8 bit)
  <out>/fixtures.safetensors                         reference tensors (names below)
  <out>/meta.json                                    versions, device, prompts, tensor list, ...
  <out>/tokenizer_ids.jsonl                          only with --tokenizer: HF `tokenizers` ids of
                                                     tests/tokenizer/corpus.jsonl ({"i":n,"ids":[...]})

Tensors in fixtures.safetensors (k = image index, p = prompt name, j = deepstack tap):
  image{k}.pixel_values  f32 [L_k, 1536]   processor output for images/img{k}.png alone
  image{k}.grid_thw      i64 [1, 3]
  {v}.merged             f32 [N, 64]        model.model.visual(...) merged output, for v in
  {v}.deepstack.{j}      f32 [N, 64]        meta["vision"] (vision_img0: image 0; vision_all: 0,1,2)
  {p}.prompt_ids         i64 [S]            hand-built prompt (text ids < 300 + vision blocks)
  {p}.generated_ids      i64 [32]           greedy continuation of model.generate
  {p}.logits             f32 [S+32, 320]    logits of one forward over prompt_ids + generated_ids
  {p}.position_ids       i64 [3, S]         model.model.get_rope_index(prompt)
  {p}.rope_deltas        i64 [1]

A prompt's images are meta["prompts"][i]["images"]; its pixel_values are the concatenation of
image{k}.pixel_values over them, its grids the image{k}.grid_thw rows.

The script checks itself as it goes and stops with an error rather than write doubtful fixtures:
TF32 off (device matmul/conv agree with float64), the config really has theta 10000 and mrope
[4,2,2], get_rope_index equals an independent reference, forward with HF's own position ids equals
forward with explicit ones, greedy tokens equal the argmax of the full-sequence logits, grids equal
an independent smart_resize, the reloaded checkpoint gives the same logits, and the saved tensors
read back equal.

Weights: transformers' own init (std 0.02) makes attention nearly uniform, which would hide RoPE
mistakes, and logits nearly tied, which would make greedy ids fragile. So every parameter is
re-drawn from one CPU generator in sorted-name order: matrices N(0, 1/fan_in), embeddings N(0, 1),
norm weights 1 + N(0, 0.1), biases N(0, 0.1); lm_head rows >= 300 (vision/special ids) are scaled by
0.05 so that greedy decoding never emits them. The seed is the first one from --seed on whose two
greedy continuations have a top-1/top-2 logit margin >= 2e-4 at every step and >= 4 distinct ids.
"""

import argparse
import base64
import hashlib
import inspect
import json
import math
import os
import platform
import shutil
import struct
import sys
import tempfile
import zlib

FORMAT = "pvm-parity-v1"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

# ---------------------------------------------------------------------------------------------
# The tiny model (every Qwen3-VL feature: GQA, interleaved MRoPE, 2 DeepStack taps, untied head)
# ---------------------------------------------------------------------------------------------
TEXT = dict(
    vocab_size=320,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    hidden_act="silu",
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    attention_bias=False,
    attention_dropout=0.0,
)
ROPE_THETA = 10000.0
MROPE_SECTION = [4, 2, 2]
VISION = dict(
    depth=2,
    hidden_size=32,
    intermediate_size=64,
    num_heads=4,
    in_channels=3,
    patch_size=16,
    temporal_patch_size=2,
    spatial_merge_size=2,
    out_hidden_size=64,
    num_position_embeddings=64,
    deepstack_visual_indexes=[0, 1],
    hidden_act="gelu_pytorch_tanh",
)
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 300, 301, 302, 303
BOS, EOS, PAD = 304, 305, 304
SPECIAL_FROM = 300  # lm_head rows >= this are shrunk so greedy never picks them
NEW_TOKENS = 32
MIN_MARGIN = 2e-4  # top-1 minus top-2 logit at every greedy step (2 x the C++ logit tolerance)
MIN_DISTINCT = 4
# Self-checks of HF against itself (other sequence lengths or batch shapes change only the float
# summation order; a wrong position or a leak across images shows up as 1e-2 or more).
CONSISTENCY_TOL = 5e-5

# Image processor: Qwen3-VL values, with a small pixel budget so that token counts stay small.
MIN_PIXELS = 32 * 32 * 4
MAX_PIXELS = 32 * 32 * 64
PREPROCESSOR = {
    "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_resize": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_convert_rgb": True,
    "resample": 3,
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "processor_class": "Qwen3VLProcessor",
}
# (name, height, width): no resize / downscale to 128x192 / min_pixels upscale to 64x128
IMAGES = [("img0", 64, 96), ("img1", 130, 200), ("img2", 24, 90)]
# prompts: text ids before, then per image: <vision_start> pads <vision_end> + one text id, then text
PROMPTS = [
    {"name": "p1", "images": [0], "before": [10, 11, 12, 13], "between": [], "after": [20, 21, 22, 23]},
    {"name": "p2", "images": [1, 2], "before": [15, 16], "between": [42, 43], "after": [30, 31, 32, 33, 34]},
]
VISION_SETS = [{"name": "vision_img0", "images": [0]}, {"name": "vision_all", "images": [0, 1, 2]}]
# smart_resize cases checked against HF's own function: (height, width, min_pixels, max_pixels)
SMART_RESIZE_CASES = [
    (h, w, lo, hi)
    for (lo, hi) in [(MIN_PIXELS, MAX_PIXELS), (65536, 16777216)]
    for (h, w) in [(64, 96), (130, 200), (33, 300), (40, 50), (300, 400), (480, 640), (1080, 1920),
                   (496, 528), (4000, 6000), (100, 100), (32, 6000), (37, 7000), (5000, 33), (777, 1234),
                   (32, 6500), (7000, 33)]
]


class ParityError(RuntimeError):
    pass


def check(cond, msg):
    if not cond:
        raise ParityError(msg)


# ---------------------------------------------------------------------------------------------
# Pure Python parts (no torch): images, PNG, smart_resize and rope-index references, prompts
# ---------------------------------------------------------------------------------------------
def image_rgb(k, h, w):
    """Deterministic RGB bytes (rows top to bottom): gradients, a disc, a bar, a 2-px checkerboard
    strip and hashed noise, so that resizing has edges and high frequencies to get right."""
    out = bytearray(h * w * 3)
    cy, cx, rad = h // 2, w // 3, max(2, min(h, w) // 3)
    disc = [(230, 40, 40), (40, 200, 60), (30, 60, 220)][k % 3]
    for y in range(h):
        for x in range(w):
            r = (x * 255) // max(1, w - 1)
            g = (y * 255) // max(1, h - 1)
            b = ((x + y) * 255) // max(1, w + h - 2)
            if (y - cy) ** 2 + (x - cx) ** 2 <= rad * rad:
                r, g, b = disc
            if h // 5 <= y < h // 5 + max(1, h // 8) and w // 2 <= x < w - w // 10:
                r, g, b = 250, 250, 40
            if x >= (3 * w) // 4 and y >= (2 * h) // 3:
                v = 255 if ((x // 2 + y // 2) % 2) else 0
                r, g, b = v, v, v
            n = ((x * 73856093) ^ (y * 19349663) ^ ((k + 1) * 83492791)) & 0x3F
            i = (y * w + x) * 3
            out[i] = min(255, r + (n & 7))
            out[i + 1] = min(255, g + ((n >> 3) & 7))
            out[i + 2] = (b + n) & 0xFF
    return bytes(out)


def png_bytes(w, h, rgb):
    """8-bit RGB PNG, filter 0 on every row."""
    check(len(rgb) == w * h * 3, "png_bytes: wrong buffer size")
    raw = b"".join(b"\x00" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png_decode_rgb8(data):
    """Decoder for exactly what png_bytes writes (used to check the files we wrote)."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        check(zlib.crc32(tag + body) & 0xFFFFFFFF == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], "bad CRC")
        if tag == b"IHDR":
            w, h, depth, ctype, _, _, _ = struct.unpack(">IIBBBBB", body)
            check(depth == 8 and ctype == 2, "not RGB8")
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * 3 + 1
    check(len(raw) == h * stride and all(raw[y * stride] == 0 for y in range(h)), "unexpected PNG rows")
    return w, h, b"".join(raw[y * stride + 1:(y + 1) * stride] for y in range(h))


def py_round(x):
    return round(x)  # Python 3 round(): ties to even, like HF's smart_resize


def smart_resize_ref(height, width, factor, min_pixels, max_pixels):
    """Spec 5.2 (transformers 4.57 qwen2_vl smart_resize), written out independently."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio over 200")
    h_bar = py_round(height / factor) * factor
    w_bar = py_round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def expected_grid(h, w):
    factor = PREPROCESSOR["patch_size"] * PREPROCESSOR["merge_size"]
    rh, rw = smart_resize_ref(h, w, factor, MIN_PIXELS, MAX_PIXELS)
    p = PREPROCESSOR["patch_size"]
    return [1, rh // p, rw // p]


def num_image_tokens(grid):
    m = VISION["spatial_merge_size"]
    return grid[0] * grid[1] * grid[2] // (m * m)


def build_prompt(spec, grids):
    """Token ids by hand: text ids < 300 and <vision_start> N x <image_pad> <vision_end> blocks."""
    ids = list(spec["before"])
    for n, k in enumerate(spec["images"]):
        ids += [VISION_START] + [IMAGE_TOKEN] * num_image_tokens(grids[k]) + [VISION_END]
        if n + 1 < len(spec["images"]):
            ids += list(spec["between"])
    ids += list(spec["after"])
    return ids


def rope_index_ref(ids, grids):
    """Spec 3.4 position ids (3 lists) and rope delta for one unpadded row, written independently."""
    m = VISION["spatial_merge_size"]
    pos = [[], [], []]
    nxt, i, g = 0, 0, 0
    while i < len(ids):
        if ids[i] == IMAGE_TOKEN:
            t, h, w = grids[g]
            g += 1
            gt, gh, gw = t, h // m, w // m
            s0 = nxt
            for ti in range(gt):
                for hi in range(gh):
                    for wi in range(gw):
                        pos[0].append(s0 + ti)
                        pos[1].append(s0 + hi)
                        pos[2].append(s0 + wi)
            i += gt * gh * gw
            nxt = s0 + max(gt, gh, gw)
        else:
            for a in range(3):
                pos[a].append(nxt)
            nxt += 1
            i += 1
    check(g == len(grids), "rope_index_ref: grids left over")
    return pos, max(max(p) for p in pos) + 1 - len(ids)


def read_corpus(path):
    """tests/tokenizer/corpus.jsonl: {"i": n, "cat": ..., "b64": base64 of the raw bytes}."""
    recs = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                recs.append((r["i"], base64.b64decode(r["b64"])))
    return recs


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


def write_images(out):
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    entries = []
    for k, (name, h, w) in enumerate(IMAGES):
        rgb = image_rgb(k, h, w)
        data = png_bytes(w, h, rgb)
        rel = "images/%s.png" % name
        with open(os.path.join(out, rel), "wb") as f:
            f.write(data)
        dw, dh, back = png_decode_rgb8(data)
        check((dw, dh, back) == (w, h, rgb), "PNG round trip failed for " + rel)
        grid = expected_grid(h, w)
        entries.append({"file": rel, "height": h, "width": w, "grid_thw": grid,
                        "resized": [grid[1] * PREPROCESSOR["patch_size"], grid[2] * PREPROCESSOR["patch_size"]],
                        "num_tokens": num_image_tokens(grid)})
    return entries


def dry_run(args):
    """Everything that needs no torch: images, processor config, prompts, references, corpus."""
    out = args.out
    os.makedirs(os.path.join(out, "tiny_model"), exist_ok=True)
    images = write_images(out)
    write_json(os.path.join(out, "tiny_model", "preprocessor_config.json"), PREPROCESSOR)
    grids = [im["grid_thw"] for im in images]
    prompts = []
    for spec in PROMPTS:
        ids = build_prompt(spec, grids)
        pos, delta = rope_index_ref(ids, [grids[k] for k in spec["images"]])
        check(len(pos[0]) == len(ids), "rope_index_ref length")
        prompts.append({"name": spec["name"], "images": spec["images"], "prompt_ids": ids,
                        "position_ids": pos, "rope_delta": delta})
    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        try:
            cases.append({"height": h, "width": w, "factor": 32, "min_pixels": lo, "max_pixels": hi,
                          "resized": list(smart_resize_ref(h, w, 32, lo, hi))})
        except ValueError:
            cases.append({"height": h, "width": w, "factor": 32, "min_pixels": lo, "max_pixels": hi, "error": True})
    corpus = read_corpus(args.corpus) if os.path.exists(args.corpus) else []
    texts = [b.decode("utf-8", errors="replace") for _, b in corpus]
    meta = {"format": FORMAT, "dry_run": True, "python": platform.python_version(), "images": images,
            "prompts": prompts, "smart_resize_cases": cases,
            "corpus": {"path": os.path.relpath(args.corpus, REPO), "count": len(corpus),
                       "replacement_chars": sum(t.count("\ufffd") for t in texts)}}
    # meta.dry_run.json, not meta.json: the C++ tests must not mistake this for real fixtures
    write_json(os.path.join(out, "meta.dry_run.json"), meta)
    for p in prompts:
        print("%s: %d prompt tokens, images %s, rope delta %d" % (p["name"], len(p["prompt_ids"]), p["images"],
                                                                  p["rope_delta"]))
    for im in images:
        print("%s: %dx%d -> resized %dx%d, grid %s, %d tokens" % (im["file"], im["height"], im["width"],
                                                                   im["resized"][0], im["resized"][1],
                                                                   im["grid_thw"], im["num_tokens"]))
    print("corpus: %d strings; dry run written to %s" % (len(corpus), out))


# ---------------------------------------------------------------------------------------------
# torch / transformers parts
# ---------------------------------------------------------------------------------------------
def _fp32_everywhere(torch, legacy):
    """No TF32 anywhere: the reference must be plain fp32. PyTorch >= 2.9 has the fp32_precision
    settings and dislikes mixing them with the legacy allow_tf32 flags, so use one or the other."""
    if not legacy:
        done = False
        for obj in ("backends", "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv",
                    "backends.cudnn.rnn", "backends.mkldnn", "backends.mkldnn.matmul", "backends.mkldnn.conv"):
            target = torch
            try:
                for part in obj.split("."):
                    target = getattr(target, part)
                if hasattr(target, "fp32_precision"):
                    target.fp32_precision = "ieee"
                    done = True
            except Exception:
                pass
        return done
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return True


def _device_fp32_error(torch, device):
    """Max abs error of a device fp32 matmul and conv3d against float64 (TF32 gives ~1e-2)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(256, 512, generator=g)
    b = torch.randn(512, 256, generator=g)
    ref = a.double() @ b.double()
    err = ((a.to(device) @ b.to(device)).double().cpu() - ref).abs().max().item()
    x = torch.randn(8, 3, 2, 16, 16, generator=g)
    wt = torch.randn(32, 3, 2, 16, 16, generator=g)
    refc = torch.nn.functional.conv3d(x.double(), wt.double(), stride=(2, 16, 16))
    errc = (torch.nn.functional.conv3d(x.to(device), wt.to(device), stride=(2, 16, 16)).double().cpu()
            - refc).abs().max().item()
    return err, errc


def setup_torch(device):
    import torch

    torch.set_default_dtype(torch.float32)
    if not _fp32_everywhere(torch, legacy=False):
        _fp32_everywhere(torch, legacy=True)
    if device.startswith("cuda"):
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    err, errc = _device_fp32_error(torch, device)
    if err > 2e-3 or errc > 5e-3:
        try:
            _fp32_everywhere(torch, legacy=True)
        except Exception as e:
            print("note: legacy TF32 switches failed: %r" % e)
        err, errc = _device_fp32_error(torch, device)
    check(err <= 2e-3 and errc <= 5e-3,
          "fp32 on %s differs from float64 by %g (matmul) / %g (conv3d): TF32 still on?" % (device, err, errc))
    return torch


def config_candidates():
    """Qwen3VLConfig candidates for the tiny model, most likely first: transformers 4.57 takes
    rope_theta + rope_scaling, later versions rope_parameters (and may be strict about unknown
    fields, or keep token ids elsewhere). Which one the model really uses is decided by building it
    and looking at its rotary embedding (see pick_model)."""
    from transformers import Qwen3VLConfig, Qwen3VLTextConfig

    fields = set(inspect.signature(Qwen3VLTextConfig.__init__).parameters)
    fields |= set(getattr(Qwen3VLTextConfig, "__dataclass_fields__", {}) or {})
    for klass in Qwen3VLTextConfig.__mro__:
        fields |= set(getattr(klass, "__annotations__", {}) or {})
    rope_new = {"rope_type": "default", "rope_theta": ROPE_THETA, "mrope_section": MROPE_SECTION,
                "mrope_interleaved": True}
    rope_old = {"rope_type": "default", "mrope_section": MROPE_SECTION, "mrope_interleaved": True}
    ids = dict(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    new = [("rope_parameters+ids", dict(TEXT, rope_parameters=rope_new, tie_word_embeddings=False, **ids)),
           ("rope_parameters", dict(TEXT, rope_parameters=rope_new, tie_word_embeddings=False))]
    old = [("rope_scaling+ids", dict(TEXT, rope_theta=ROPE_THETA, rope_scaling=rope_old, tie_word_embeddings=False, **ids)),
           ("rope_scaling", dict(TEXT, rope_theta=ROPE_THETA, rope_scaling=rope_old, tie_word_embeddings=False))]
    variants = new + old if "rope_parameters" in fields else old + new
    out = []  # (name, config or None, error)
    for name, text in variants:
        try:
            cfg = Qwen3VLConfig(text_config=dict(text), vision_config=dict(VISION), image_token_id=IMAGE_TOKEN,
                                video_token_id=VIDEO_TOKEN, vision_start_token_id=VISION_START,
                                vision_end_token_id=VISION_END, tie_word_embeddings=False)
        except Exception as e:  # strict configs reject unknown fields
            out.append((name, None, "%s: %s" % (type(e).__name__, e)))
            continue
        tc = cfg.text_config
        bad = [k for k, v in TEXT.items() if getattr(tc, k, v) != v]
        bad += [k for k, v in VISION.items() if (list(getattr(cfg.vision_config, k)) if isinstance(v, list)
                                                  else getattr(cfg.vision_config, k)) != v]
        out.append((name, None if bad else cfg, "fields %s differ after construction" % bad if bad else ""))
    return out


def pick_model(torch, attn, device):
    """The first config candidate whose model really has theta 10000 and mrope_section [4, 2, 2]."""
    errors = []
    want_inv = 1.0 / (ROPE_THETA ** (torch.arange(0, TEXT["head_dim"], 2, dtype=torch.float32) / TEXT["head_dim"]))
    for name, cfg, err in config_candidates():
        if cfg is None:
            errors.append("%s: %s" % (name, err))
            continue
        try:
            model, attn_used = build_model(torch, cfg, attn, device)
        except Exception as e:
            errors.append("%s: building the model: %s: %s" % (name, type(e).__name__, e))
            continue
        rot = model.model.language_model.rotary_emb
        inv = getattr(rot, "inv_freq", None)
        section = getattr(rot, "mrope_section", None)
        if inv is None or inv.numel() != want_inv.numel() or not torch.allclose(inv.float().cpu(), want_inv):
            errors.append("%s: text rotary inv_freq is not theta %g" % (name, ROPE_THETA))
            continue
        if section is not None and list(section) != MROPE_SECTION:
            errors.append("%s: text rotary mrope_section %r" % (name, section))
            continue
        if errors:
            print("note: config candidates passed over:\n  " + "\n  ".join(errors))
        return model, attn_used, name
    raise ParityError("no config candidate gives the intended tiny model:\n  " + "\n  ".join(errors))


def build_model(torch, cfg, attn, device):
    from transformers import Qwen3VLForConditionalGeneration as M

    model = None
    try:
        model = M._from_config(cfg, attn_implementation=attn)
    except Exception:
        model = None
    if model is None:
        try:
            cfg._attn_implementation = attn
        except Exception:
            pass
        model = M(cfg)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation(attn)
        except Exception:
            pass
    model = model.float().to(device).eval()
    got = getattr(model.config, "_attn_implementation", None)
    got_t = getattr(model.model.language_model.config, "_attn_implementation", None)
    got_v = getattr(model.model.visual.config, "_attn_implementation", None)
    if (got, got_t, got_v) != (attn, attn, attn):
        print("note: attention implementation is %r (top) / %r (text) / %r (vision), asked for %r" % (
            got, got_t, got_v, attn))
    return model, {"top": got, "text": got_t, "vision": got_v}


def expected_shapes():
    T, V = TEXT, VISION
    H, Dv = T["hidden_size"], V["hidden_size"]
    Dm = Dv * V["spatial_merge_size"] ** 2
    return {
        "lm_head.weight": [T["vocab_size"], H],
        "model.language_model.embed_tokens.weight": [T["vocab_size"], H],
        "model.language_model.layers.0.self_attn.q_proj.weight": [T["num_attention_heads"] * T["head_dim"], H],
        "model.language_model.layers.0.self_attn.k_proj.weight": [T["num_key_value_heads"] * T["head_dim"], H],
        "model.language_model.layers.0.self_attn.q_norm.weight": [T["head_dim"]],
        "model.language_model.layers.3.mlp.down_proj.weight": [H, T["intermediate_size"]],
        "model.visual.patch_embed.proj.weight": [Dv, 3, V["temporal_patch_size"], V["patch_size"], V["patch_size"]],
        "model.visual.pos_embed.weight": [V["num_position_embeddings"], Dv],
        "model.visual.blocks.1.attn.qkv.weight": [3 * Dv, Dv],
        "model.visual.merger.norm.weight": [Dv],
        "model.visual.merger.linear_fc2.weight": [H, Dm],
        "model.visual.deepstack_merger_list.1.norm.weight": [Dm],
    }


def init_weights(torch, model, seed):
    """Deterministic re-draw of every parameter (see the module docstring), independent of device."""
    params = dict(model.named_parameters())
    shapes = expected_shapes()
    for k, s in shapes.items():
        check(k in params, "the HF model has no parameter " + k)
        check(list(params[k].shape) == s, "%s has shape %s, wanted %s" % (k, list(params[k].shape), s))
    check(not any(n.startswith("model.visual.blocks.2.") for n in params), "vision depth is not 2")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            short = name.rsplit(".", 1)
            leaf = short[-1]
            if leaf == "bias":
                v = torch.randn(p.shape, generator=g) * 0.1
            elif p.dim() == 1:  # LayerNorm / RMSNorm weights
                v = 1.0 + torch.randn(p.shape, generator=g) * 0.1
            elif name.endswith("embed_tokens.weight") or name.endswith("pos_embed.weight"):
                v = torch.randn(p.shape, generator=g)
            else:
                fan_in = p.numel() // p.shape[0]
                v = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
                if name == "lm_head.weight":
                    v[SPECIAL_FROM:] *= 0.05
            p.copy_(v.to(p.dtype))


def make_image_processor():
    import transformers

    kwargs = {k: PREPROCESSOR[k] for k in ("size", "patch_size", "temporal_patch_size", "merge_size",
                                            "image_mean", "image_std")}
    kwargs["size"] = dict(kwargs["size"])
    errors = []
    for cls_name in ("Qwen2VLImageProcessorFast", "Qwen2VLImageProcessor"):
        cls = getattr(transformers, cls_name, None)
        if cls is None:
            errors.append(cls_name + ": not in this transformers")
            continue
        try:
            return cls(**kwargs), cls_name
        except Exception as e:
            errors.append("%s: %s: %s" % (cls_name, type(e).__name__, e))
    raise ParityError("no Qwen2-VL image processor:\n  " + "\n  ".join(errors))


def jsonable(x):
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): jsonable(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [jsonable(v) for v in x]
        return repr(x)


def run_processor(torch, out, images):
    from PIL import Image
    import numpy as np

    proc, cls_name = make_image_processor()
    tensors = {}
    pil = []
    for k, im in enumerate(images):
        img = Image.open(os.path.join(out, im["file"]))
        img.load()
        arr = np.asarray(img.convert("RGB"))
        check(arr.shape == (im["height"], im["width"], 3), "PIL reads %s as %s" % (im["file"], arr.shape))
        check(arr.tobytes() == image_rgb(k, im["height"], im["width"]), "PIL pixels of %s differ" % im["file"])
        pil.append(img)
        res = proc(images=[img], return_tensors="pt")
        pv = res["pixel_values"].float().cpu().contiguous()
        grid = res["image_grid_thw"].long().cpu().contiguous()
        check(grid.tolist() == [im["grid_thw"]], "%s: HF grid %s, smart_resize reference %s" % (
            im["file"], grid.tolist(), im["grid_thw"]))
        check(list(pv.shape) == [grid.prod().item(), 3 * 2 * 16 * 16], "%s: pixel_values shape %s" % (
            im["file"], list(pv.shape)))
        check(pv.abs().max().item() <= 1.0 + 1e-6, "%s: pixel values outside [-1, 1]" % im["file"])
        tensors["image%d.pixel_values" % k] = pv
        tensors["image%d.grid_thw" % k] = grid
    # the batched call must equal the per-image ones concatenated
    res = proc(images=pil, return_tensors="pt")
    cat = torch.cat([tensors["image%d.pixel_values" % k] for k in range(len(images))])
    check(torch.equal(res["pixel_values"].float().cpu(), cat), "batched processor output differs from per-image")
    try:
        hf_dict = jsonable(proc.to_dict())
    except Exception as e:
        hf_dict = {"error": repr(e)}
    return tensors, {"class": cls_name, "module": type(proc).__module__, "to_dict": hf_dict}


def hf_smart_resize_cases():
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize
    except Exception as e:
        print("note: HF smart_resize not importable (%s); smart_resize_cases left out" % e)
        return None
    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        c = {"height": h, "width": w, "factor": 32, "min_pixels": lo, "max_pixels": hi}
        try:
            rh, rw = smart_resize(h, w, factor=32, min_pixels=lo, max_pixels=hi)
            c["resized"] = [int(rh), int(rw)]
        except ValueError:
            c["error"] = True
        try:
            ref = list(smart_resize_ref(h, w, 32, lo, hi))
        except ValueError:
            ref = None
        if ref != c.get("resized"):
            print("note: HF smart_resize(%d, %d, %d, %d) = %s, spec reference %s" % (h, w, lo, hi,
                                                                                   c.get("resized", "error"), ref))
        cases.append(c)
    return cases


def fwd_params(model):
    return set(inspect.signature(model.forward).parameters)


def mm_types(torch, ids):
    return (ids == IMAGE_TOKEN).to(torch.int32)  # 1 = image token, 0 = text (transformers >= 5)


def rope_index(torch, model, ids, grid):
    fn = model.model.get_rope_index
    kw = dict(input_ids=ids, image_grid_thw=grid, attention_mask=torch.ones_like(ids))
    if "mm_token_type_ids" in inspect.signature(fn).parameters:
        kw["mm_token_type_ids"] = mm_types(torch, ids)
    pos, delta = fn(**kw)
    return pos, delta


def forward_logits(torch, model, ids, pv, grid, position_ids=None):
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv, image_grid_thw=grid, use_cache=False)
    if "mm_token_type_ids" in fwd_params(model):
        kw["mm_token_type_ids"] = mm_types(torch, ids)
    if position_ids is not None:
        kw["position_ids"] = position_ids
    with torch.no_grad():
        out = model(**kw)
    return out.logits[0].float().cpu()


def greedy(torch, model, ids, pv, grid):
    from transformers import GenerationConfig

    gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                          eos_token_id=EOS, pad_token_id=PAD, bos_token_id=BOS, use_cache=True)
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv, image_grid_thw=grid,
              generation_config=gc)
    if "mm_token_type_ids" in fwd_params(model):
        kw["mm_token_type_ids"] = mm_types(torch, ids)
    with torch.no_grad():
        out = model.generate(**kw)
    seq = out.sequences if hasattr(out, "sequences") else out
    seq = seq[0].cpu()
    S = ids.shape[1]
    check(torch.equal(seq[:S], ids[0].cpu()), "generate changed the prompt")
    gen = seq[S:].tolist()
    check(len(gen) == NEW_TOKENS, "generate returned %d new tokens, wanted %d" % (len(gen), NEW_TOKENS))
    return gen


def vision_outputs(torch, model, pv, grid):
    with torch.no_grad():
        out = model.model.visual(pv, grid_thw=grid)
    if hasattr(out, "pooler_output"):  # transformers >= 5: BaseModelOutputWithDeepstackFeatures
        merged, ds = out.pooler_output, out.deepstack_features
    elif isinstance(out, (tuple, list)) and len(out) == 2:  # 4.57: (merged, [deepstack...])
        merged, ds = out
    elif isinstance(out, (tuple, list)) and len(out) == 3:  # tuple form of the output class
        _, merged, ds = out
    else:
        raise ParityError("unknown return type of model.model.visual: %r" % type(out))
    n = int((grid.prod(-1) // VISION["spatial_merge_size"] ** 2).sum().item())
    check(list(merged.shape) == [n, TEXT["hidden_size"]], "merged shape %s" % list(merged.shape))
    check(len(ds) == len(VISION["deepstack_visual_indexes"]), "%d deepstack features" % len(ds))
    return merged.float().cpu().contiguous(), [d.float().cpu().contiguous() for d in ds]


def run_prompts(torch, model, device, image_tensors, grids):
    """Greedy continuation, full-sequence logits, position ids for each prompt; with self-checks."""
    results = []
    for spec in PROMPTS:
        name = spec["name"]
        prompt = build_prompt(spec, grids)
        ks = spec["images"]
        pv = torch.cat([image_tensors["image%d.pixel_values" % k] for k in ks]).to(device)
        grid = torch.cat([image_tensors["image%d.grid_thw" % k] for k in ks]).to(device)
        ids = torch.tensor([prompt], dtype=torch.long, device=device)
        S = len(prompt)

        pos, delta = rope_index(torch, model, ids, grid)
        pos = pos.cpu()
        delta = delta.cpu().reshape(-1)
        ref_pos, ref_delta = rope_index_ref(prompt, [grids[k] for k in ks])
        check(pos.shape == (3, 1, S) and pos[:, 0].tolist() == ref_pos,
              "%s: get_rope_index differs from the spec reference" % name)
        check(delta.tolist() == [ref_delta], "%s: rope delta %s, reference %d" % (name, delta.tolist(), ref_delta))

        gen = greedy(torch, model, ids, pv, grid)
        seq = torch.tensor([prompt + gen], dtype=torch.long, device=device)
        logits = forward_logits(torch, model, seq, pv, grid)
        full_pos, full_delta = rope_index(torch, model, seq, grid)
        check(torch.equal(full_pos[:, :, :S].cpu(), pos), "%s: positions of the prompt change with the suffix" % name)
        check(full_delta.cpu().reshape(-1).tolist() == delta.tolist(), "%s: delta changes with the suffix" % name)
        explicit = forward_logits(torch, model, seq, pv, grid, position_ids=full_pos.to(device))
        d = (logits - explicit).abs().max().item()
        check(d <= CONSISTENCY_TOL, "%s: forward with HF's own position ids differs from explicit ones by %g "
                         "(did the model ignore the image positions?)" % (name, d))
        prompt_only = forward_logits(torch, model, ids, pv, grid)
        d = (logits[:S] - prompt_only).abs().max().item()
        check(d <= CONSISTENCY_TOL, "%s: prompt logits depend on later tokens (%g)" % (name, d))

        steps = logits[S - 1:S - 1 + NEW_TOKENS]
        top2 = steps.topk(2, dim=-1)
        margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()
        argmax = top2.indices[:, 0].tolist()
        margin = min(margins)
        for i, (a, b) in enumerate(zip(argmax, gen)):
            # a near-tie may go either way (the seed is then rejected for its margin); a clear
            # winner that generate() did not pick means generate used other inputs than forward
            check(a == b or margins[i] < 1e-4, "%s: generate() disagrees with the argmax of the full forward at "
                  "step %d (margin %.2e):\n  generate %s\n  argmax   %s" % (name, i, margins[i], gen, argmax))
            if a != b:
                margin = 0.0
        results.append({
            "spec": spec, "prompt": prompt, "gen": gen, "logits": logits, "pos": pos[:, 0].contiguous(),
            "delta": delta.contiguous(), "margin": margin, "distinct": len(set(gen)),
        })
    return results


def map_legacy_key(key):
    """engine/loader.h map_legacy_key: `visual.*` and `model.layers.*` / `model.embed_tokens.*` /
    `model.norm.*` -> the official `model.visual.*` / `model.language_model.*` names."""
    if key.startswith("visual."):
        return "model." + key
    for part in ("layers.", "embed_tokens.", "norm."):
        if key.startswith("model." + part):
            return "model.language_model." + key[len("model."):]
    return key


def save_model_dir(torch, model, path):
    try:
        model.save_pretrained(path, safe_serialization=True)
    except TypeError:  # transformers versions where safetensors is the only format
        model.save_pretrained(path)
    st = os.path.join(path, "model.safetensors")
    check(os.path.exists(st), "save_pretrained wrote no model.safetensors (sharded? %s)" % os.listdir(path))
    from safetensors import safe_open

    params = dict(model.named_parameters())
    with safe_open(st, framework="pt") as f:
        file_keys = list(f.keys())
        keys = {map_legacy_key(k): k for k in file_keys}
        check(len(keys) == len(file_keys), "checkpoint keys collide after mapping legacy names")
        check(set(keys) == set(params), "checkpoint keys differ from parameter names: only in file %s, only in "
              "model %s" % (sorted(set(keys) - set(params))[:5], sorted(set(params) - set(keys))[:5]))
        for k, fk in keys.items():
            t = f.get_tensor(fk)
            check(t.dtype == torch.float32, "%s saved as %s" % (fk, t.dtype))
            check(torch.equal(t, params[k].detach().cpu()), "%s saved with other values" % fk)
    legacy = sorted(fk for k, fk in keys.items() if k != fk)
    if legacy:
        print("note: save_pretrained wrote %d legacy key names (e.g. %s); our loader maps them" % (
            len(legacy), legacy[0]))
    return os.path.getsize(st), len(legacy)


def patch_config(path):
    """Our loader needs an eos id inside the vocabulary (its default is the real Qwen3 one); newer
    transformers may keep token ids out of config.json. Done after reload_check, so that HF never
    has to read these extra keys."""
    cpath = os.path.join(path, "config.json")
    with open(cpath, "r", encoding="utf-8") as f:
        cj = json.load(f)
    tc = cj.get("text_config", {})
    patched = []
    if not isinstance(cj.get("eos_token_id"), (int, list)) and not isinstance(tc.get("eos_token_id"), (int, list)):
        cj["eos_token_id"] = EOS
        patched.append("eos_token_id")
    for key, val in (("bos_token_id", BOS), ("pad_token_id", PAD)):
        if not isinstance(cj.get(key), int) and not isinstance(tc.get(key), int):
            cj[key] = val
            patched.append(key)
    if patched:
        write_json(cpath, cj)
    return patched


def reload_check(torch, path, attn, device, seq_logits, spec_inputs):
    from transformers import Qwen3VLForConditionalGeneration as M

    model = None
    errors = []
    for kw in (dict(dtype=torch.float32), dict(torch_dtype=torch.float32)):
        try:
            model = M.from_pretrained(path, attn_implementation=attn, **kw)
            break
        except TypeError as e:
            errors.append(repr(e))
    check(model is not None, "from_pretrained failed: %s" % errors)
    model = model.float().to(device).eval()
    for (seq, pv, grid), ref in zip(spec_inputs, seq_logits):
        d = (forward_logits(torch, model, seq, pv, grid) - ref).abs().max().item()
        check(d <= CONSISTENCY_TOL, "the reloaded checkpoint gives other logits (%g)" % d)


def tokenizer_ids(tok_path, corpus_path, out):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tok_path)
    recs = read_corpus(corpus_path)
    # Invalid UTF-8: one U+FFFD per maximal invalid subsequence (Python's "replace" = WHATWG), the
    # same repair our Tokenizer::encode applies to raw bytes.
    texts = [b.decode("utf-8", errors="replace") for _, b in recs]
    encs = tok.encode_batch(texts, add_special_tokens=False)
    with open(os.path.join(out, "tokenizer_ids.jsonl"), "w", encoding="utf-8") as f:
        for (i, _), e in zip(recs, encs):
            f.write(json.dumps({"i": i, "ids": list(e.ids)}, separators=(",", ":")) + "\n")
    return {"file": "tokenizer_ids.jsonl", "corpus": os.path.relpath(corpus_path, REPO), "count": len(recs),
            "tokenizer_json_bytes": os.path.getsize(tok_path), "tokenizer_json_sha256": sha256_file(tok_path),
            "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True)}


def versions(torch):
    v = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "tokenizers", "safetensors", "numpy", "PIL", "torchvision"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", "?")
        except Exception:
            v[mod] = None
    v["cuda"] = torch.version.cuda
    return v


def generate_fixtures(args, out):
    torch = setup_torch(args.device)
    from safetensors.torch import save_file, load_file

    device = args.device
    images = write_images(out)
    os.makedirs(os.path.join(out, "tiny_model"), exist_ok=True)
    write_json(os.path.join(out, "tiny_model", "preprocessor_config.json"), PREPROCESSOR)
    image_tensors, proc_info = run_processor(torch, out, images)
    grids = [im["grid_thw"] for im in images]

    model, attn_used, cfg_variant = pick_model(torch, args.attn, device)

    chosen = None
    tried = []
    for seed in range(args.seed, args.seed + args.max_seed_tries):
        init_weights(torch, model, seed)
        res = run_prompts(torch, model, device, image_tensors, grids)
        ok = all(r["margin"] >= MIN_MARGIN and r["distinct"] >= MIN_DISTINCT and max(r["gen"]) < SPECIAL_FROM
                 for r in res)
        tried.append({"seed": seed, "margins": [r["margin"] for r in res], "distinct": [r["distinct"] for r in res]})
        print("seed %d: margins %s, distinct %s%s" % (seed, ["%.2e" % r["margin"] for r in res],
                                                       [r["distinct"] for r in res], "  <- use" if ok else ""))
        if ok:
            chosen = (seed, res)
            break
    check(chosen is not None, "no seed in [%d, %d) gives safe greedy margins" % (args.seed,
                                                                              args.seed + args.max_seed_tries))
    seed, res = chosen

    tensors = dict(image_tensors)
    vision_meta = []
    for vs in VISION_SETS:
        pv = torch.cat([image_tensors["image%d.pixel_values" % k] for k in vs["images"]]).to(device)
        grid = torch.cat([image_tensors["image%d.grid_thw" % k] for k in vs["images"]]).to(device)
        merged, ds = vision_outputs(torch, model, pv, grid)
        tensors[vs["name"] + ".merged"] = merged
        for j, d in enumerate(ds):
            tensors["%s.deepstack.%d" % (vs["name"], j)] = d
        vision_meta.append({"name": vs["name"], "images": vs["images"], "deepstack": len(ds),
                            "merged_abs_max": merged.abs().max().item()})
    # the merged rows of image 0 alone equal the first rows of the three-image call (per-image attention)
    n0 = tensors["vision_img0.merged"].shape[0]
    d = (tensors["vision_all.merged"][:n0] - tensors["vision_img0.merged"]).abs().max().item()
    check(d <= CONSISTENCY_TOL, "image 0's vision features depend on the other images (%g)" % d)

    prompt_meta = []
    spec_inputs = []
    for r in res:
        name = r["spec"]["name"]
        tensors[name + ".prompt_ids"] = torch.tensor(r["prompt"], dtype=torch.long)
        tensors[name + ".generated_ids"] = torch.tensor(r["gen"], dtype=torch.long)
        tensors[name + ".logits"] = r["logits"].contiguous()
        tensors[name + ".position_ids"] = r["pos"].long()
        tensors[name + ".rope_deltas"] = r["delta"].long()
        prompt_meta.append({"name": name, "images": r["spec"]["images"], "prompt_ids": r["prompt"],
                            "generated_ids": r["gen"], "prompt_length": len(r["prompt"]),
                            "sequence_length": len(r["prompt"]) + NEW_TOKENS, "rope_delta": int(r["delta"][0]),
                            "min_greedy_margin": r["margin"], "logits_abs_max": r["logits"].abs().max().item()})
        ks = r["spec"]["images"]
        spec_inputs.append((torch.tensor([r["prompt"] + r["gen"]], dtype=torch.long, device=device),
                            torch.cat([image_tensors["image%d.pixel_values" % k] for k in ks]).to(device),
                            torch.cat([image_tensors["image%d.grid_thw" % k] for k in ks]).to(device)))

    model_dir = os.path.join(out, "tiny_model")
    model_bytes, n_legacy = save_model_dir(torch, model, model_dir)
    check(model_bytes < 2 * 1024 * 1024, "tiny model is %d bytes" % model_bytes)
    reload_check(torch, model_dir, args.attn, device, [r["logits"] for r in res], spec_inputs)
    patched = patch_config(model_dir)

    fx_path = os.path.join(out, "fixtures.safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, fx_path, metadata={"format": FORMAT, "generator": "scripts/gpu/make_parity_fixtures.py"})
    back = load_file(fx_path)
    check(set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors),
          "fixtures.safetensors does not read back equal")

    tok_meta = None
    if args.tokenizer:
        tok_meta = tokenizer_ids(args.tokenizer, args.corpus, out)

    dev_name = device
    if device.startswith("cuda"):
        dev_name += " (%s)" % torch.cuda.get_device_name(torch.device(device))
    meta = {
        "format": FORMAT,
        "generator": "scripts/gpu/make_parity_fixtures.py",
        "versions": versions(torch),
        "device": dev_name,
        "attn_implementation": args.attn,
        "attn_implementation_used": attn_used,
        "dtype": "float32",
        "config_variant": cfg_variant,
        "config_patched_keys": patched,
        "checkpoint_legacy_keys": n_legacy,
        "seed": seed,
        "seeds_tried": tried,
        "model_dir": "tiny_model",
        "model_bytes": model_bytes,
        "preprocessor_config": "tiny_model/preprocessor_config.json",
        "image_processor": proc_info,
        "images": images,
        "vision": vision_meta,
        "prompts": prompt_meta,
        "new_tokens": NEW_TOKENS,
        "smart_resize_cases": hf_smart_resize_cases(),
        "tokenizer": tok_meta,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
    }
    write_json(os.path.join(out, "meta.json"), meta)
    total = 0
    for root, _, files in os.walk(out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("seed %d; %d tensors; %.2f MB in total" % (seed, len(tensors), total / 1e6))
    for p in prompt_meta:
        print("%s: %d prompt tokens, greedy %s, min margin %.2e" % (p["name"], p["prompt_length"],
                                                                    p["generated_ids"], p["min_greedy_margin"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (tests/data/parity); replaced when done")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--tokenizer", default=None, help="Qwen3 tokenizer.json: also write tokenizer_ids.jsonl")
    ap.add_argument("--corpus", default=os.path.join(REPO, "tests", "tokenizer", "corpus.jsonl"))
    ap.add_argument("--seed", type=int, default=0, help="first weight seed to try")
    ap.add_argument("--max-seed-tries", type=int, default=64)
    ap.add_argument("--dry-run", action="store_true",
                    help="standard library only: images, processor config, prompts and references into --out")
    args = ap.parse_args()
    if args.tokenizer and not os.path.exists(args.tokenizer):
        ap.error("--tokenizer %s: no such file" % args.tokenizer)
    if args.tokenizer and not os.path.exists(args.corpus):
        ap.error("--corpus %s: no such file" % args.corpus)
    if args.dry_run:
        dry_run(args)
        return 0
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    # write into a fresh folder next to --out and swap it in at the end, so that a failed run
    # never leaves half-written fixtures behind
    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".parity-", dir=parent)
    try:
        generate_fixtures(args, tmp)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
        os.chmod(out, 0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print("wrote", out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ParityError as e:
        print("make_parity_fixtures: " + str(e), file=sys.stderr)
        sys.exit(1)
