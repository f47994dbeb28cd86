#!/usr/bin/env python3
"""Reference outputs of Hugging Face transformers' Qwen3-VL for tests/test_parity.cpp (issue 20).

    $PVM_PYTHON tests/make_parity_fixtures.py [--tokenizer-dir assets/tokenizers/qwen3] [--out tests/data/parity]

Runs on the CPU with the set-up's virtual environment (torch, transformers, tokenizers, PIL) in
about a minute, and writes (under 5 MB in all, committed):

  tiny_model/         a tiny random Qwen3-VL made by transformers (Qwen3VLConfig,
                      Qwen3VLForConditionalGeneration, save_pretrained; weights bf16 on disk like the
                      real checkpoints, every computation below in float32)
  images/             8 test images: odd sizes, 1:8 and 8:1, one under min_pixels, one over
                      max_pixels, grayscale, RGBA, a JPEG and PNGs
  fixtures.safetensors  reference tensors (names in meta.json["tensors"]; see below)
  meta.json           versions, model/prompts/conversations/images, greedy ids, notes
  tokenizer_ids.jsonl HF `tokenizers` ids of tests/tokenizer/corpus.jsonl

The tiny model keeps what the real ones have where mistakes hide: the real vocabulary size and
special-token ids (151643..151656), head_dim 128 with the real mrope_section [24, 20, 20]
(interleaved), grouped-query attention (4 query heads on 2 kv heads), 4 text layers, 5 vision
blocks with DeepStack taps at blocks [1, 3, 4] (injected after text layers 0, 1, 2), a non-square
pos-embed table resample (12 x 12 table), tied embeddings like 2B/4B. The text hidden size is 8 so
that the 151936-row embedding stays small (2.4 MB in bf16).

Tensors (p = prompt name: p1 one image, p2 two images; k = image index):
  image{k}.pixel_u8      u8  [L, 1536]  HF pixel_values as uint8 levels: pv = (u8 - 127.5) / 127.5
                                         in float32 reproduces HF's float32 values bit for bit
                                         (checked here)
  image{k}.grid_thw      i64 [1, 3]
  {p}.prompt_ids         i64 [S]        the processor's ids of the chat-template prompt
  {p}.position_ids       i64 [3, S]     get_rope_index; {p}.rope_deltas i64 [1]
  {p}.rope_cos/.rope_sin f32 [S, 128]   the text rotary embedding at those positions
  {p}.vision_merged      f32 [N, 8]     visual(...) merger output for the prompt's images
  {p}.deepstack.{j}      f32 [N, 8]     DeepStack features
  {p}.vision_block.{i}   f32 [L, 32]    output of vision block i (p1 only)
  {p}.pos_embed          f32 [L, 32]    fast_pos_embed_interpolate (p2: non-square grids)
  {p}.hidden.{l}         f32 [S+32, 8]  residual stream after decoder layer l (DeepStack added for
                                         l < 3), l = 0..3: the last one is before the final norm
  {p}.hf_hidden_last     f32 [S+32, 8]  HF's output_hidden_states[-1] (after the final norm)
  {p}.generated_ids      i64 [32]       greedy continuation of model.generate
  {p}.logit_cols         i64 [C]        vocabulary columns kept (top-8 of every position, the
                                         special ids, 256 seeded random ids)
  {p}.logits             f32 [S+32, C]  logits of one forward over prompt + continuation
  {p}.decode_logits      f32 [32, C]    logits of each generate() step (KV cache, rope deltas)
  chat.{c}.ids           i64 [n]        chat-template ids of conversation c (real template and
                                         tokenizer, images expanded by the processor)
"""

import argparse
import base64
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile

FORMAT = "pvm-parity-v2"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))

VOCAB = 151936
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 151655, 151656, 151652, 151653
ENDOFTEXT, IM_START, IM_END = 151643, 151644, 151645
SPECIAL_FROM = 151643  # lm_head rows >= this are shrunk so that greedy never emits them
TEXT = dict(vocab_size=VOCAB, hidden_size=8, intermediate_size=24, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=128, hidden_act="silu", max_position_embeddings=4096,
            rms_norm_eps=1e-6, attention_bias=False, attention_dropout=0.0)
ROPE = {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True}
VISION = dict(depth=5, hidden_size=32, intermediate_size=48, num_heads=2, in_channels=3, patch_size=16,
              temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=8, num_position_embeddings=144,
              deepstack_visual_indexes=[1, 3, 4], hidden_act="gelu_pytorch_tanh")
NEW_TOKENS = 32
MIN_MARGIN = 2e-3  # top-1 minus top-2 at every greedy step (20 x the C++ logit tolerance)
MIN_DISTINCT = 5
RANDOM_COLS = 256
TOPK_COLS = 8

MIN_PIXELS = 32 * 32 * 4
MAX_PIXELS = 32 * 32 * 48
PREPROCESSOR = {
    "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
    "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "do_convert_rgb": True, "resample": 3,
    "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
}
# (file, PIL mode, height, width, what it checks)
IMAGES = [
    ("images/odd_61x93.png", "RGB", 61, 93, "odd size, rounds to 64x96 (non-square 4x6 patch grid)"),
    ("images/photo_77x101.jpg", "RGB", 77, 101, "JPEG"),
    ("images/wide_40x320.png", "RGB", 40, 320, "aspect 1:8"),
    ("images/tall_330x41.png", "RGB", 330, 41, "aspect 8:1"),
    ("images/small_20x28.png", "RGB", 20, 28, "under min_pixels: upscaled"),
    ("images/big_300x250.png", "RGB", 300, 250, "over max_pixels: downscaled"),
    ("images/gray_50x70.png", "L", 50, 70, "grayscale"),
    ("images/rgba_45x83.png", "RGBA", 45, 83, "RGBA (alpha dropped, not composited)"),
]
# Conversations for the chat-template check; "<image k>" is an image part.
CONVERSATIONS = {
    "text_only": [{"role": "user", "content": ["What is the capital of France? Answer in one word."]}],
    "one_image": [{"role": "user", "content": [("image", 0), "Describe this image."]}],
    "two_image": [{"role": "user", "content": [("image", 2), ("image", 7), "What differs between these two pictures?"]}],
    "system_prompt": [{"role": "system", "content": ["You are a careful visual assistant."]},
                      {"role": "user", "content": [("image", 6), "How many shapes are there?"]}],
    "multi_turn": [{"role": "user", "content": ["Hi! Can you look at pictures?"]},
                   {"role": "assistant", "content": ["Yes, send me one and ask your question."]},
                   {"role": "user", "content": [("image", 4), "What colour dominates?"]},
                   {"role": "assistant", "content": ["Mostly red, with a blue corner."]},
                   {"role": "user", "content": ["And the bottom right?"]}],
}
# The model prompts: p1 = one image; p2 = two images with text between them.
PROMPTS = [
    {"name": "p1", "images": [0], "conversation": [{"role": "user", "content": [("image", 0), "Describe this image."]}]},
    {"name": "p2", "images": [2, 7], "conversation": [{"role": "user", "content": [
        ("image", 2), "and", ("image", 7), "Compare them."]}]},
]
# p1 with a stray <|video_pad|> typed in the text and no video: HF refuses it (a video token with
# no video grid), it must never be taken for an image pad.
STRAY_VIDEO_TEXT = "Describe this image. <|video_pad|>"
SMART_RESIZE_CASES = [
    (h, w, lo, hi)
    for (lo, hi) in [(MIN_PIXELS, MAX_PIXELS), (65536, 16777216)]
    for (h, w) in [(61, 93), (77, 101), (40, 320), (330, 41), (20, 28), (300, 250), (50, 70), (45, 83),
                   (480, 640), (1080, 1920), (496, 528), (4000, 6000), (100, 100), (32, 6000), (37, 7000),
                   (5000, 33), (777, 1234), (32, 6500), (7000, 33), (1024, 1024), (16, 16)]
]


class ParityError(RuntimeError):
    pass


def check(cond, msg):
    if not cond:
        raise ParityError(msg)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# torch set-up
# ---------------------------------------------------------------------------------------------
def setup_torch():
    import torch

    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    for name in ("backends.cuda.matmul", "backends.cudnn", "backends.mkldnn"):
        obj = torch
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
            if hasattr(obj, "fp32_precision"):
                obj.fp32_precision = "ieee"
        except Exception:
            pass
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return torch


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
def make_image_array(np, k, h, w):
    """Gradients, a disc, a bar, a checkerboard corner and hashed noise: edges and high
    frequencies for the resize to get right."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255) // max(1, w - 1)
    g = (y * 255) // max(1, h - 1)
    b = ((x + y) * 255) // max(1, w + h - 2)
    img = np.stack([r, g, b], -1).astype(np.int64)
    cy, cx, rad = h // 2, w // 3, max(2, min(h, w) // 3)
    disc = (y - cy) ** 2 + (x - cx) ** 2 <= rad * rad
    img[disc] = [(230, 40, 40), (40, 200, 60), (30, 60, 220)][k % 3]
    bar = (y >= h // 5) & (y < h // 5 + max(1, h // 8)) & (x >= w // 2) & (x < w - w // 10)
    img[bar] = (250, 250, 40)
    chk = (x >= (3 * w) // 4) & (y >= (2 * h) // 3)
    v = np.where(((x // 2 + y // 2) % 2) == 1, 255, 0)
    for c in range(3):
        img[..., c] = np.where(chk, v, img[..., c])
    n = ((x * 73856093) ^ (y * 19349663) ^ ((k + 1) * 83492791)) & 0x3F
    img[..., 0] += n & 7
    img[..., 1] += (n >> 3) & 7
    img[..., 2] += n
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(out):
    import numpy as np
    from PIL import Image

    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    meta = []
    for k, (rel, mode, h, w, why) in enumerate(IMAGES):
        arr = make_image_array(np, k, h, w)
        im = Image.fromarray(arr, "RGB")
        if mode == "L":
            im = im.convert("L")
        elif mode == "RGBA":
            alpha = ((np.arange(w)[None, :] * 255) // max(1, w - 1) + np.zeros((h, 1), np.int64)).astype(np.uint8)
            im = Image.fromarray(np.concatenate([arr, alpha[..., None]], -1), "RGBA")
        path = os.path.join(out, rel)
        if rel.endswith(".jpg"):
            im.save(path, "JPEG", quality=92)
        else:
            im.save(path, "PNG")
        meta.append({"file": rel, "mode": mode, "height": h, "width": w, "checks": why})
    return meta


# ---------------------------------------------------------------------------------------------
# Processor, chat template, prompts
# ---------------------------------------------------------------------------------------------
def make_processor(tok_dir):
    from transformers import AutoTokenizer, Qwen2VLImageProcessorFast, Qwen3VLProcessor

    kw = {k: PREPROCESSOR[k] for k in ("size", "patch_size", "temporal_patch_size", "merge_size",
                                       "image_mean", "image_std", "do_resize", "do_rescale",
                                       "rescale_factor", "do_normalize", "do_convert_rgb")}
    ip = Qwen2VLImageProcessorFast(**kw)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    check(tok.chat_template, "%s/tokenizer_config.json has no chat_template" % tok_dir)
    try:
        from transformers import Qwen3VLVideoProcessor

        vp = Qwen3VLVideoProcessor()
    except Exception:
        vp = None
    proc = Qwen3VLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp)
    return proc, tok, ip


def render_conversation(tok, conv):
    """The real tokenizer_config.json template takes string content; an image part is written as
    the Qwen3-VL template writes it (<|vision_start|><|image_pad|><|vision_end|>), and the
    processor expands the pad to the image's token count."""
    msgs, images = [], []
    for m in conv:
        text = ""
        for part in m["content"]:
            if isinstance(part, tuple):
                text += "<|vision_start|><|image_pad|><|vision_end|>"
                images.append(part[1])
            else:
                text += part
        msgs.append({"role": m["role"], "content": text})
    rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return rendered, images


def conversation_ids(torch, proc, tok, pil, conv):
    rendered, images = render_conversation(tok, conv)
    if images:
        enc = proc(text=[rendered], images=[pil[k] for k in images], return_tensors="pt")
    else:
        enc = proc(text=[rendered], return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    return rendered, images, ids, enc


def run_processor(torch, out, images_meta, ip):
    from PIL import Image

    tensors, pil = {}, []
    for k, im in enumerate(images_meta):
        img = Image.open(os.path.join(out, im["file"]))
        img.load()
        pil.append(img)
        res = ip(images=[img], return_tensors="pt")
        pv = res["pixel_values"].float().contiguous()
        grid = res["image_grid_thw"].long().contiguous()
        u8 = torch.round(pv * 127.5 + 127.5)
        check(u8.min() >= 0 and u8.max() <= 255, "pixel levels outside 0..255")
        u8 = u8.to(torch.uint8)
        back = (u8.float() - 127.5) / 127.5
        check(torch.equal(back, pv), "%s: pixel_values are not (u8 - 127.5) / 127.5 in f32" % im["file"])
        tensors["image%d.pixel_u8" % k] = u8
        tensors["image%d.grid_thw" % k] = grid
        im["grid_thw"] = grid[0].tolist()
        im["num_tokens"] = int(grid.prod().item()) // 4
        im["resized"] = [grid[0, 1].item() * 16, grid[0, 2].item() * 16]
    res = ip(images=pil, return_tensors="pt")
    cat = torch.cat([(tensors["image%d.pixel_u8" % k].float() - 127.5) / 127.5 for k in range(len(pil))])
    check(torch.equal(res["pixel_values"].float(), cat), "batched processor output differs from per-image")
    return tensors, pil


def hf_smart_resize_cases():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        c = {"height": h, "width": w, "factor": 32, "min_pixels": lo, "max_pixels": hi}
        try:
            rh, rw = smart_resize(h, w, factor=32, min_pixels=lo, max_pixels=hi)
            c["resized"] = [int(rh), int(rw)]
        except ValueError:
            c["error"] = True
        cases.append(c)
    return cases


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
def build_model(torch):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    cfg = Qwen3VLConfig(text_config=dict(TEXT, rope_parameters=dict(ROPE), bos_token_id=ENDOFTEXT,
                                         eos_token_id=IM_END, pad_token_id=ENDOFTEXT, tie_word_embeddings=True),
                        vision_config=dict(VISION), image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN,
                        vision_start_token_id=VISION_START, vision_end_token_id=VISION_END,
                        tie_word_embeddings=True)
    model = Qwen3VLForConditionalGeneration._from_config(cfg, attn_implementation="eager")
    model = model.float().eval()
    check(model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr(),
          "lm_head is not tied to embed_tokens")
    rot = model.model.language_model.rotary_emb
    want = 1.0 / (ROPE["rope_theta"] ** (torch.arange(0, 128, 2, dtype=torch.float32) / 128))
    check(torch.allclose(rot.inv_freq.float(), want), "text rotary inv_freq is not theta 5e6")
    check(list(rot.mrope_section) == ROPE["mrope_section"], "mrope_section %r" % (rot.mrope_section,))
    return model


def init_weights(torch, model, seed):
    """Every parameter re-drawn from one CPU generator in sorted-name order, then rounded to bf16
    (the checkpoint is bf16, the computation f32). transformers' own init (std 0.02) makes
    attention nearly uniform, which would hide RoPE mistakes: matrices N(0, 1/fan_in), embeddings
    N(0, 1), norm weights 1 + N(0, 0.1), biases N(0, 0.1), text o_proj / down_proj x3; embedding rows of the special ids are
    scaled by 0.05 so that (tied) greedy decoding never emits them."""
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "bias":
                v = torch.randn(p.shape, generator=g) * 0.1
            elif p.dim() == 1:
                v = 1.0 + torch.randn(p.shape, generator=g) * 0.1
            elif name.endswith("embed_tokens.weight") or name.endswith("pos_embed.weight"):
                v = torch.randn(p.shape, generator=g)
                if name.endswith("embed_tokens.weight"):
                    v[SPECIAL_FROM:] *= 0.05
            else:
                fan_in = p.numel() // p.shape[0]
                v = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    v *= 3.0  # layers that move the stream: with tied embeddings greedy would echo its input
            p.copy_(v.to(torch.bfloat16).float())


class Capture:
    """Forward hooks: the residual stream entering each decoder layer (= the previous layer's
    output with DeepStack added), the final norm's input and the vision blocks' outputs."""

    def __init__(self, model):
        self.model = model
        self.handles, self.layer_in, self.norm_in, self.blocks = [], {}, None, {}
        lm = model.model.language_model
        for i, layer in enumerate(lm.layers):
            self.handles.append(layer.register_forward_pre_hook(self._pre(i), with_kwargs=True))
        self.handles.append(lm.norm.register_forward_pre_hook(self._norm))
        for i, blk in enumerate(model.model.visual.blocks):
            self.handles.append(blk.register_forward_hook(self._blk(i)))

    def _pre(self, i):
        def f(mod, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self.layer_in[i] = x.detach().clone()
        return f

    def _norm(self, mod, args):
        self.norm_in = args[0].detach().clone()

    def _blk(self, i):
        def f(mod, args, out):
            self.blocks[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return f

    def hidden_after_layers(self):
        n = len(self.model.model.language_model.layers)
        return [self.layer_in[i + 1] for i in range(n - 1)] + [self.norm_in]

    def remove(self):
        for h in self.handles:
            h.remove()


def pixel_values(torch, image_tensors, ks):
    pv = torch.cat([(image_tensors["image%d.pixel_u8" % k].float() - 127.5) / 127.5 for k in ks])
    grid = torch.cat([image_tensors["image%d.grid_thw" % k] for k in ks])
    return pv, grid


def mm_types(torch, ids):
    return (ids == IMAGE_TOKEN).int() + 2 * (ids == VIDEO_TOKEN).int()


def run_prompt(torch, model, prompt_ids, pv, grid):
    S = len(prompt_ids)
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv,
                             mm_token_type_ids=mm_types(torch, ids),
                             image_grid_thw=grid, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             do_sample=False, output_logits=True, return_dict_in_generate=True,
                             eos_token_id=None, pad_token_id=ENDOFTEXT)
    new = gen.sequences[0, S:].tolist()
    check(len(new) == NEW_TOKENS, "generate gave %d tokens" % len(new))
    decode_logits = torch.stack([l[0].float() for l in gen.logits])  # [32, V]
    seq = torch.tensor([prompt_ids + new])
    cap = Capture(model)
    try:
        with torch.no_grad():
            out = model(input_ids=seq, attention_mask=torch.ones_like(seq), pixel_values=pv, image_grid_thw=grid,
                        mm_token_type_ids=mm_types(torch, seq), output_hidden_states=True, use_cache=False)
    finally:
        cap.remove()
    logits = out.logits[0].float()
    with torch.no_grad():
        pos, delta = model.model.get_rope_index(seq[:, :S], mm_types(torch, seq[:, :S]), grid, None,
                                                attention_mask=torch.ones_like(seq[:, :S]))
    steps = logits[S - 1:S - 1 + NEW_TOKENS]
    top2 = steps.topk(2, dim=-1)
    margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()
    check(top2.indices[:, 0].tolist() == new, "generate() disagrees with the argmax of the full forward")
    d = (decode_logits - steps).abs().max().item()
    check(d < 1e-4, "KV-cache decode logits differ from the full forward by %g" % d)
    return {"gen": new, "logits": logits, "decode_logits": decode_logits, "margin": min(margins),
            "hidden": [h[0].float() for h in cap.hidden_after_layers()], "hf_hidden_last": out.hidden_states[-1][0].float(),
            "blocks": cap.blocks, "pos": pos[:, 0].contiguous(), "delta": delta.reshape(-1).long(),
            "distinct": len(set(new))}


def vision_outputs(torch, model, pv, grid):
    with torch.no_grad():
        vis = model.model.visual(pv, grid_thw=grid)
    merged = getattr(vis, "pooler_output", None)
    ds = getattr(vis, "deepstack_features", None)
    if merged is None and isinstance(vis, tuple):
        merged, ds = vis
    check(merged is not None and ds is not None, "cannot read the vision outputs (%s)" % type(vis))
    return merged.float(), [d.float() for d in ds]


def hf_pos_embed(torch, model, grid):
    """The resampled position-embedding table, exactly as Qwen3VLVisionModel.forward computes it."""
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights

    vis = model.model.visual
    idx, w = get_vision_interpolation_indices_and_weights(
        grid, num_grid_per_side=vis.num_grid_per_side, mode=vis.interpolation_mode,
        align_corners=vis.interpolation_align_corners, spatial_merge_size=vis.config.spatial_merge_size)
    check(vis.interpolation_mode == "bilinear" and vis.interpolation_align_corners, "pos-embed resampling mode")
    return (vis.pos_embed(idx) * w[:, :, None]).sum(1).float().contiguous()


def tokenizer_ids(tok_path, corpus_path, out):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tok_path)
    recs = []
    with open(corpus_path, "r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                recs.append((r["i"], base64.b64decode(r["b64"])))
    # invalid UTF-8: one U+FFFD per maximal invalid subsequence, as our Tokenizer::encode repairs
    texts = [b.decode("utf-8", errors="replace") for _, b in recs]
    encs = tok.encode_batch(texts, add_special_tokens=False)
    with open(os.path.join(out, "tokenizer_ids.jsonl"), "w", encoding="utf-8") as f:
        for (i, _), e in zip(recs, encs):
            f.write(json.dumps({"i": i, "ids": list(e.ids)}, separators=(",", ":")) + "\n")
    return {"file": "tokenizer_ids.jsonl", "corpus": os.path.relpath(corpus_path, REPO), "count": len(recs),
            "tokenizer_json_bytes": os.path.getsize(tok_path), "tokenizer_json_sha256": sha256_file(tok_path)}


def versions(torch):
    v = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "tokenizers", "safetensors", "numpy", "PIL", "torchvision"):
        try:
            v[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception:
            v[mod] = None
    return v


def generate_fixtures(args, out):
    torch = setup_torch()
    from safetensors.torch import save_file, load_file
    from transformers import Qwen3VLForConditionalGeneration

    images = write_images(out)
    proc, tok, ip = make_processor(args.tokenizer_dir)
    image_tensors, pil = run_processor(torch, out, images, ip)
    tensors = dict(image_tensors)

    # chat-template ids (real template, real tokenizer, processor expansion)
    chats = []
    for name, conv in CONVERSATIONS.items():
        rendered, ims, ids, _ = conversation_ids(torch, proc, tok, pil, conv)
        n_pad = sum(images[k]["num_tokens"] for k in ims)
        check(ids.count(IMAGE_TOKEN) == n_pad, "%s: %d image pads, expected %d" % (name, ids.count(IMAGE_TOKEN), n_pad))
        tensors["chat.%s.ids" % name] = torch.tensor(ids, dtype=torch.long)
        chats.append({"name": name, "images": ims, "rendered_unexpanded": rendered, "length": len(ids),
                      "messages": [{"role": m["role"], "content": [{"image": p[1]} if isinstance(p, tuple) else {"text": p}
                                                                   for p in m["content"]]} for m in conv]})

    model = build_model(torch)
    prompts = []
    for p in PROMPTS:
        rendered, ims, ids, enc = conversation_ids(torch, proc, tok, pil, p["conversation"])
        check(ims == p["images"], "prompt images")
        pv, grid = pixel_values(torch, image_tensors, ims)
        check(torch.equal(enc["pixel_values"].float(), pv), "%s: processor pixels differ from per-image ones" % p["name"])
        prompts.append(dict(p, ids=ids, rendered=rendered, pv=pv, grid=grid))
    # stray <|video_pad|>: the tokenizer gives the video id, and HF refuses the prompt
    stray_conv = [{"role": "user", "content": [("image", 0), STRAY_VIDEO_TEXT]}]
    _, _, stray_ids, stray_enc = conversation_ids(torch, proc, tok, pil, stray_conv)
    check(stray_ids.count(VIDEO_TOKEN) == 1, "the stray <|video_pad|> is not one video token")
    try:
        with torch.no_grad():
            model(input_ids=stray_enc["input_ids"], pixel_values=stray_enc["pixel_values"],
                  image_grid_thw=stray_enc["image_grid_thw"], mm_token_type_ids=stray_enc["mm_token_type_ids"])
        stray_error = None
    except Exception as e:
        stray_error = "%s: %s" % (type(e).__name__, str(e)[:300])
    check(stray_error is not None, "HF accepted a stray <|video_pad|> with no video")
    tensors["stray_video.prompt_ids"] = torch.tensor(stray_ids, dtype=torch.long)

    chosen, tried = None, []
    for seed in range(args.seed, args.seed + args.max_seed_tries):
        init_weights(torch, model, seed)
        res = [run_prompt(torch, model, p["ids"], p["pv"], p["grid"]) for p in prompts]
        ok = all(r["margin"] >= MIN_MARGIN and r["distinct"] >= MIN_DISTINCT and max(r["gen"]) < SPECIAL_FROM
                 for r in res)
        tried.append({"seed": seed, "margins": [r["margin"] for r in res], "distinct": [r["distinct"] for r in res]})
        print("seed %d: margins %s distinct %s%s" % (seed, ["%.2e" % r["margin"] for r in res],
                                                    [r["distinct"] for r in res], "  <- use" if ok else ""), flush=True)
        if ok:
            chosen = (seed, res)
            break
    check(chosen is not None, "no seed gives safe greedy margins")
    seed, res = chosen

    gcol = torch.Generator().manual_seed(1234)
    rand_cols = torch.randperm(VOCAB, generator=gcol)[:RANDOM_COLS]
    prompt_meta = []
    for p, r in zip(prompts, res):
        n = p["name"]
        S = len(p["ids"])
        tensors[n + ".prompt_ids"] = torch.tensor(p["ids"], dtype=torch.long)
        tensors[n + ".generated_ids"] = torch.tensor(r["gen"], dtype=torch.long)
        tensors[n + ".position_ids"] = r["pos"].long()
        tensors[n + ".rope_deltas"] = r["delta"]
        cols = torch.cat([r["logits"].topk(TOPK_COLS, dim=-1).indices.reshape(-1),
                          r["decode_logits"].topk(TOPK_COLS, dim=-1).indices.reshape(-1),
                          torch.arange(SPECIAL_FROM, IMAGE_TOKEN + 2), rand_cols]).unique(sorted=True)
        tensors[n + ".logit_cols"] = cols.long()
        tensors[n + ".logits"] = r["logits"][:, cols].contiguous()
        tensors[n + ".decode_logits"] = r["decode_logits"][:, cols].contiguous()
        for l, h in enumerate(r["hidden"]):
            tensors["%s.hidden.%d" % (n, l)] = h.contiguous()
        tensors[n + ".hf_hidden_last"] = r["hf_hidden_last"].contiguous()
        merged, ds = vision_outputs(torch, model, p["pv"], p["grid"])
        tensors[n + ".vision_merged"] = merged
        for j, d in enumerate(ds):
            tensors["%s.deepstack.%d" % (n, j)] = d
        with torch.no_grad():
            tensors[n + ".pos_embed"] = hf_pos_embed(torch, model, p["grid"])
            cos, sin = model.model.language_model.rotary_emb(torch.zeros(1, dtype=torch.float32),
                                                             r["pos"][:, None, :])
        tensors[n + ".rope_cos"] = cos[0].float().contiguous()
        tensors[n + ".rope_sin"] = sin[0].float().contiguous()
        if n == "p1":
            for i, b in r["blocks"].items():
                tensors["%s.vision_block.%d" % (n, i)] = b.float().contiguous()
        # merger rows scattered into the pads = what the decoder's embedding holds there
        prompt_meta.append({"name": n, "images": p["images"], "rendered": p["rendered"], "prompt_length": S,
                            "sequence_length": S + NEW_TOKENS, "generated_ids": r["gen"],
                            "rope_delta": int(r["delta"][0]), "min_greedy_margin": r["margin"],
                            "logits_abs_max": r["logits"].abs().max().item(), "logit_cols": int(cols.numel())})

    model_dir = os.path.join(out, "tiny_model")
    model.to(torch.bfloat16).save_pretrained(model_dir)
    model.float()
    write_json(os.path.join(model_dir, "preprocessor_config.json"), PREPROCESSOR)
    # reload (bf16 on disk -> f32) gives the same logits
    re = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                         attn_implementation="eager").eval()
    for p, r in zip(prompts, res):
        seq = torch.tensor([p["ids"] + r["gen"]])
        with torch.no_grad():
            lg = re(input_ids=seq, pixel_values=p["pv"], image_grid_thw=p["grid"],
                    mm_token_type_ids=mm_types(torch, seq)).logits[0]
        d = (lg - r["logits"]).abs().max().item()
        check(d == 0.0, "the reloaded checkpoint gives other logits (%g)" % d)
    with open(os.path.join(model_dir, "config.json")) as f:
        saved_cfg = json.load(f)

    fx_path = os.path.join(out, "fixtures.safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, fx_path, metadata={"format": FORMAT, "generator": "tests/make_parity_fixtures.py"})
    back = load_file(fx_path)
    check(set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors), "read-back")

    tok_meta = tokenizer_ids(os.path.join(args.tokenizer_dir, "tokenizer.json"), args.corpus, out)
    meta = {
        "format": FORMAT, "generator": "tests/make_parity_fixtures.py", "versions": versions(torch),
        "device": "cpu", "attn_implementation": "eager", "dtype": "float32 (weights bf16 on disk)",
        "seed": seed, "seeds_tried": tried, "model_dir": "tiny_model",
        "preprocessor_config": "tiny_model/preprocessor_config.json",
        "text": TEXT, "rope": ROPE, "vision": VISION, "saved_config": saved_cfg,
        "special_from": SPECIAL_FROM,
        "tokenizer_config_sha256": sha256_file(os.path.join(args.tokenizer_dir, "tokenizer_config.json")),
        "stray_video": {"images": [0], "text": STRAY_VIDEO_TEXT, "hf_error": stray_error},
        "images": images, "prompts": prompt_meta, "conversations": chats, "new_tokens": NEW_TOKENS,
        "smart_resize_cases": hf_smart_resize_cases(), "tokenizer": tok_meta,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
    }
    write_json(os.path.join(out, "meta.json"), meta)
    total = 0
    for root, _, files in os.walk(out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    check(total <= 5 * 1000 * 1000, "fixtures are %d bytes (limit 5 MB)" % total)
    print("seed %d; %d tensors; %.2f MB in total" % (seed, len(tensors), total / 1e6))
    for p in prompt_meta:
        print("%s: %d prompt tokens, delta %d, greedy %s, min margin %.2e" % (
            p["name"], p["prompt_length"], p["rope_delta"], p["generated_ids"], p["min_greedy_margin"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "parity"))
    ap.add_argument("--tokenizer-dir", default=os.path.join(REPO, "assets", "tokenizers", "qwen3"),
                    help="folder with the real Qwen3 tokenizer.json and tokenizer_config.json (chat template)")
    ap.add_argument("--corpus", default=os.path.join(REPO, "tests", "tokenizer", "corpus.jsonl"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seed-tries", type=int, default=32)
    args = ap.parse_args()
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.exists(os.path.join(args.tokenizer_dir, f)):
            ap.error("%s/%s: no such file" % (args.tokenizer_dir, f))
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
