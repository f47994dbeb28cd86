#!/usr/bin/env python3
"""Real shapes (issue 20 item 3): random-weight models with the exact Qwen3-VL-2B / 4B / 8B
configurations, built and saved by transformers, loaded by our engine, compared on one prompt
with a 1024x1024 image (1024 visual tokens).

    $PVM_PYTHON experiments/parity/real_shapes.py --pvm build/pvm --sizes 2b --dtypes f32,bf16 \
        [--device cpu|cuda] [--work /tmp/pvm-real-shapes] [--tokenizer-dir DIR] [--json OUT.json]

For each size: transformers makes the model (its own init, seed 0) in bf16 and save_pretrained's it
(bf16 safetensors, like the official checkpoints); the prompt is the chat template's one-image
prompt with the real processor settings (Qwen2VLImageProcessorFast, min 256x256, max 4096x4096,
factor 32). Then for each dtype transformers (sdpa attention) and `pvm parity-run` each compute the
logits at every prompt position and 64 greedy tokens, and the script reports max / mean |diff| of
the logits, top-1 agreement at every position and how many greedy tokens agree. Needs no network;
on the GPU machine pass --device cuda (same command). Memory: the f32 run holds the model in f32
(2B: 8.5 GB, 4B: 17 GB, 8B: 35 GB) plus the logits (0.6 GB); the two sides run one after the other.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

COMMON_TEXT = dict(vocab_size=151936, head_dim=128, num_key_value_heads=8, hidden_act="silu", rms_norm_eps=1e-6,
                   max_position_embeddings=262144, attention_bias=False, attention_dropout=0.0,
                   bos_token_id=151643, eos_token_id=151645,
                   rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                                    "mrope_interleaved": True})
COMMON_VISION = dict(patch_size=16, temporal_patch_size=2, spatial_merge_size=2, in_channels=3, num_heads=16,
                     num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh")
# docs/MODEL.md#sizes (the published config.json files)
SIZES = {
    "2b": dict(text=dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, intermediate_size=6144),
               vision=dict(depth=24, hidden_size=1024, intermediate_size=4096, out_hidden_size=2048,
                           deepstack_visual_indexes=[5, 11, 17]), tie=True),
    "4b": dict(text=dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, intermediate_size=9728),
               vision=dict(depth=24, hidden_size=1024, intermediate_size=4096, out_hidden_size=2560,
                           deepstack_visual_indexes=[5, 11, 17]), tie=True),
    "8b": dict(text=dict(hidden_size=4096, num_hidden_layers=36, num_attention_heads=32, intermediate_size=12288),
               vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, out_hidden_size=4096,
                           deepstack_visual_indexes=[8, 16, 24]), tie=False),
}
PREPROCESSOR = {"size": {"shortest_edge": 65536, "longest_edge": 16777216}, "patch_size": 16, "temporal_patch_size": 2,
                "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
NEW_TOKENS = 64


def log(*a):
    print("[real_shapes %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def make_config(size):
    from transformers import Qwen3VLConfig

    s = SIZES[size]
    return Qwen3VLConfig(text_config=dict(COMMON_TEXT, **s["text"], tie_word_embeddings=s["tie"]),
                         vision_config=dict(COMMON_VISION, **s["vision"]), tie_word_embeddings=s["tie"],
                         image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                         vision_end_token_id=151653)


def build_and_save(torch, size, path, device="cpu"):
    from transformers import Qwen3VLForConditionalGeneration

    if os.path.exists(os.path.join(path, "config.json")):
        log("reusing", path)
        return
    torch.manual_seed(0)
    log("building %s in transformers (bf16, its own init, on %s)" % (size, device))
    with torch.device(device):  # the init on the GPU takes seconds where 16 CPU cores take minutes at 8B
        model = Qwen3VLForConditionalGeneration._from_config(make_config(size), dtype=torch.bfloat16)
    model.save_pretrained(path)
    n = sum(p.numel() for p in model.parameters())
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
        json.dump(dict(PREPROCESSOR, image_processor_type="Qwen2VLImageProcessorFast",
                       processor_class="Qwen3VLProcessor"), f, indent=1)
    log("saved %s (%d parameters)" % (path, n))


def image_1024(np):
    y, x = np.mgrid[0:1024, 0:1024]
    img = np.stack([(x * 255) // 1023, (y * 255) // 1023, ((x ^ y) & 255)], -1)
    disc = (y - 512) ** 2 + (x - 400) ** 2 < 200 ** 2
    img[disc] = (220, 40, 40)
    img[(x // 64 + y // 64) % 7 == 0] = (30, 60, 220)
    return img.astype(np.uint8)


def make_inputs(torch, work, tok_dir):
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import Qwen2VLImageProcessorFast

    path = os.path.join(work, "inputs.safetensors")
    ip = Qwen2VLImageProcessorFast(**PREPROCESSOR)
    img = Image.fromarray(image_1024(np), "RGB")
    img.save(os.path.join(work, "image_1024.png"))
    enc = ip(images=[img], return_tensors="pt")
    grid = enc["image_grid_thw"]
    n = int(grid.prod()) // 4
    text = "Describe this image in detail."
    if tok_dir:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tok_dir)
        rendered = tok.apply_chat_template([{"role": "user", "content": "<|vision_start|><|image_pad|><|vision_end|>" + text}],
                                           tokenize=False, add_generation_prompt=True)
        ids = tok(rendered.replace("<|image_pad|>", "<|image_pad|>" * n))["input_ids"]
    else:  # the same layout with ids written out (<|im_start|>user\n ... <|im_start|>assistant\n)
        ids = [151644, 872, 198, 151652] + [151655] * n + [151653, 74785, 419, 2168, 13, 151645, 198, 151644, 77091, 198]
    check = ids.count(151655) == n
    assert check, "image pads %d != %d" % (ids.count(151655), n)
    save_file({"input_ids": torch.tensor(ids, dtype=torch.long), "pixel_values": enc["pixel_values"].float().contiguous(),
               "image_grid_thw": grid.long().contiguous()}, path)
    log("prompt: %d tokens, grid %s (%d visual tokens)" % (len(ids), grid.tolist(), n))
    return path, ids, enc["pixel_values"].float(), grid


def hf_run(torch, model_dir, dtype, device, ids, pv, grid, out_path):
    from safetensors.torch import save_file
    from transformers import Qwen3VLForConditionalGeneration

    t0 = time.time()
    tdt = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
    model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, dtype=tdt, attn_implementation="sdpa")
    model = model.to(device).eval()
    t1 = time.time()
    x = torch.tensor([ids], device=device)
    mm = (x == 151655).int()
    pv = pv.to(device)
    grid = grid.to(device)
    with torch.no_grad():
        logits = model(input_ids=x, pixel_values=pv, image_grid_thw=grid, mm_token_type_ids=mm,
                       logits_to_keep=0).logits[0].float().cpu()
        t2 = time.time()
        gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x), pixel_values=pv, image_grid_thw=grid,
                             mm_token_type_ids=mm, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             do_sample=False, eos_token_id=None, pad_token_id=151643)
    t3 = time.time()
    new = gen[0, len(ids):].cpu()
    save_file({"logits": logits.contiguous(), "generated_ids": new.long().contiguous()}, out_path)
    del model, logits
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    log("transformers %s: load %.0f s, forward %.0f s, generate %.0f s" % (dtype, t1 - t0, t2 - t1, t3 - t2))
    return {"load_s": t1 - t0, "forward_s": t2 - t1, "generate_s": t3 - t2}


def ours_run(pvm, model_dir, inputs, dtype, device, out_path):
    t0 = time.time()
    cmd = [pvm, "parity-run", "--model", model_dir, "--inputs", inputs, "--out", out_path, "--dtype", dtype,
           "--device", device, "--new-tokens", str(NEW_TOKENS)]
    subprocess.run(cmd, check=True)
    log("ours %s: %.0f s" % (dtype, time.time() - t0))
    return {"total_s": time.time() - t0}


def drift(torch, ref_path, paths):
    """How far each run's logits are from a reference run (HF f32): bf16 rounding on either side."""
    from safetensors.torch import load_file

    ref = load_file(ref_path)["logits"]
    top = ref.topk(2, -1)
    out = {}
    for name, p in paths.items():
        x = load_file(p)["logits"]
        d = (x - ref).abs()
        dis = x.argmax(-1) != top.indices[:, 0]
        out[name] = {"max_abs": d.max().item(), "mean_abs": d.mean().item(),
                     "top1_agree": 1.0 - dis.float().mean().item(),
                     "ref_margin_median_where_disagree": (top.values[:, 0] - top.values[:, 1])[dis].median().item()
                     if dis.any() else None}
    return out


def compare(torch, hf_path, ours_path):
    from safetensors.torch import load_file

    a, b = load_file(hf_path), load_file(ours_path)
    d = (a["logits"] - b["logits"]).abs()
    top_hf, top_ours = a["logits"].argmax(-1), b["logits"].argmax(-1)
    g_hf, g_ours = a["generated_ids"].tolist(), b["generated_ids"].tolist()
    same = 0
    while same < min(len(g_hf), len(g_ours)) and g_hf[same] == g_ours[same]:
        same += 1
    top2 = a["logits"].topk(2, -1).values
    return {"positions": int(d.shape[0]), "max_abs": d.max().item(), "mean_abs": d.mean().item(),
            "logit_abs_max": a["logits"].abs().max().item(),
            "top1_agree": (top_hf == top_ours).float().mean().item(),
            "top1_disagree_positions": int((top_hf != top_ours).sum()),
            "hf_min_top1_margin": (top2[:, 0] - top2[:, 1]).min().item(),
            "greedy_equal_prefix": same, "greedy_equal": g_hf == g_ours, "greedy_hf": g_hf, "greedy_ours": g_ours}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pvm", default=os.path.join(REPO, "build", "pvm"))
    ap.add_argument("--sizes", default="2b")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default="/tmp/pvm-real-shapes")
    ap.add_argument("--tokenizer-dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--inputs-only", action="store_true",
                    help="only write the prompt (--work/inputs.safetensors) and stop (official_pvm.py --real uses it)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the checkpoints and logits in --work (a later run with --keep reuses them)")
    args = ap.parse_args()
    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.work, exist_ok=True)
    inputs, ids, pv, grid = make_inputs(torch, args.work, args.tokenizer_dir)
    if args.inputs_only:
        return 0
    results = []
    for size in args.sizes.split(","):
        model_dir = os.path.join(args.work, "qwen3-vl-%s-random" % size)
        build_and_save(torch, size, model_dir, args.device)
        for dtype in args.dtypes.split(","):
            hf_out = os.path.join(args.work, "%s_%s_hf.safetensors" % (size, dtype))
            our_out = os.path.join(args.work, "%s_%s_ours.safetensors" % (size, dtype))
            reuse = args.keep and os.path.exists(hf_out) and os.path.exists(our_out)
            th = None if reuse else hf_run(torch, model_dir, dtype, args.device, ids, pv, grid, hf_out)
            to = None if reuse else ours_run(args.pvm, model_dir, inputs, dtype, args.device, our_out)
            r = dict(size=size, dtype=dtype, device=args.device, prompt_tokens=len(ids), hf_time=th, ours_time=to,
                     reused=reuse, **compare(torch, hf_out, our_out))
            ref32 = os.path.join(args.work, "%s_f32_hf.safetensors" % size)
            if dtype != "f32" and os.path.exists(ref32):
                r["vs_hf_f32"] = drift(torch, ref32, {"hf": hf_out, "ours": our_out})
            log("%s %s: max |diff| %.3g, mean %.3g, top-1 agree %.4f, greedy equal %d/%d" % (
                size, dtype, r["max_abs"], r["mean_abs"], r["top1_agree"], r["greedy_equal_prefix"], NEW_TOKENS))
            results.append(r)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                               "results": results}, f, indent=1)
        if not args.keep:
            import shutil

            for dtype in args.dtypes.split(","):
                for side in ("hf", "ours"):
                    p = os.path.join(args.work, "%s_%s_%s.safetensors" % (size, dtype, side))
                    if os.path.exists(p):
                        os.remove(p)
            shutil.rmtree(model_dir)
    print("| size | dtype | device | positions | logits max abs | mean abs | top-1 agree | greedy equal (of 64) "
          "| HF vs HF f32 (mean / top-1) | ours vs HF f32 (mean / top-1) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        v = r.get("vs_hf_f32")
        ref = ("%.3g / %.4f | %.3g / %.4f" % (v["hf"]["mean_abs"], v["hf"]["top1_agree"], v["ours"]["mean_abs"],
                                               v["ours"]["top1_agree"])) if v else "- | -"
        print("| %s | %s | %s | %d | %.3g | %.3g | %.4f (%d differ) | %d%s | %s |" % (
            r["size"], r["dtype"], r["device"], r["positions"], r["max_abs"], r["mean_abs"], r["top1_agree"],
            r["top1_disagree_positions"], r["greedy_equal_prefix"], " (all)" if r["greedy_equal"] else "", ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
