#!/usr/bin/env python3
"""The official PVM code against our engine (issue 20 item 4).

    pip install --target /tmp/tf457 transformers==4.57.1        # the official code's transformers
    git -C <bare clone of github huaixuheqing/PVM> archive HEAD modeling_file | tar -x -C /tmp/pvm_official
    $PVM_PYTHON experiments/parity/official_pvm.py --official /tmp/pvm_official/modeling_file \
        --transformers-site /tmp/tf457 --pvm build/pvm [--json experiments/parity/official_pvm.json]

Loads the official modeling file (modeling_qwen3_vl.py + configuration_qwen3_vl.py, read from
--official, outside this repository; nothing of it is copied here) with transformers on the CPU,
gives its PVMQwen3VLForConditionalGeneration the tiny parity model's weights
(tests/data/parity/tiny_model) plus seeded PVM blocks at layers 1 and 3 with gate_alpha non-zero,
runs the fixture's one- and two-image prompts (logits at every prompt position, 32 greedy tokens),
saves the model with the official code's save_pretrained and runs `pvm parity-run` on that folder:
our loader must take the checkpoint by its names (strict: no missing or unexpected key), and our
logits and greedy ids (PVM on) must equal the official ones.

Real shapes (issue 26): `--real 4b --device cuda --dtypes f32,bf16` builds the official model at the
exact Qwen3-VL-2B/4B/8B configuration (experiments/parity/real_shapes.py SIZES) with PVM blocks at
the official layers (8B: 8,16,24; 4B: 5,11,17; 2B: 5,11,17 of its 28) and pvm_hidden_size 512, its
own init on the device, seeded PVM weights and a non-zero gate; every weight is rounded to bf16 so
the bf16 checkpoint it saves holds exactly the weights the f32 run used. The prompt is real_shapes'
one 1024x1024 image (1,040 tokens). Per dtype it reports |diff| of the logits at every position,
top-1 agreement and the greedy prefix (64 tokens) against `pvm parity-run --device ...`; the f32
run also measures how far PVM moves the logits (gates zeroed), and the bf16 run reports the
official code's own bf16-vs-f32 drift (the noise floor).

The official file was written for a transformers between 4.57 and 5.0: it calls
`@check_model_inputs()` (4.57.1 has `@check_model_inputs` without the call). The only shim here
accepts both spellings; the model code runs unchanged.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURE = os.path.join(REPO, "tests", "data", "parity")
PVM_LAYERS = [1, 3]
PVM_HIDDEN = 256  # 2 heads of 128 -> 1 kv head (GQA ratio 2 of the backbone)
GATE = [0.75, -0.5]
NEW_TOKENS = 32


def import_official(path):
    import transformers.utils.generic as generic

    orig = generic.check_model_inputs

    def check_model_inputs(func=None, **kw):  # both decorator spellings
        return (lambda f: orig(f)) if func is None else orig(func)

    generic.check_model_inputs = check_model_inputs
    pkg = types.ModuleType("pvm_official")
    pkg.__path__ = [os.path.abspath(path)]
    sys.modules["pvm_official"] = pkg
    cfg = importlib.import_module("pvm_official.configuration_qwen3_vl")
    mod = importlib.import_module("pvm_official.modeling_qwen3_vl")
    return cfg, mod


def build(torch, cfgm, mod, seed):
    from safetensors.torch import load_file

    tiny = json.load(open(os.path.join(FIXTURE, "tiny_model", "config.json")))
    tc, vc = tiny["text_config"], tiny["vision_config"]
    rope = tc.get("rope_parameters") or {}
    text = {k: tc[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                               "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
                               "max_position_embeddings", "rms_norm_eps", "attention_bias", "attention_dropout")}
    text.update(rope_theta=rope["rope_theta"], rope_scaling={"rope_type": "default", "mrope_section": rope["mrope_section"],
                                                              "mrope_interleaved": True},
                pvm_layers=PVM_LAYERS, pvm_hidden_size=PVM_HIDDEN, tie_word_embeddings=True)
    vision = {k: vc[k] for k in ("depth", "hidden_size", "intermediate_size", "num_heads", "in_channels", "patch_size",
                                 "temporal_patch_size", "spatial_merge_size", "out_hidden_size",
                                 "num_position_embeddings", "deepstack_visual_indexes", "hidden_act")}
    cfg = cfgm.PVMQwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                                image_token_id=tiny["image_token_id"], video_token_id=tiny["video_token_id"],
                                vision_start_token_id=tiny["vision_start_token_id"],
                                vision_end_token_id=tiny["vision_end_token_id"])
    cfg._attn_implementation = "eager"
    model = mod.PVMQwen3VLForConditionalGeneration(cfg).float().eval()
    sd = {k: v.float() for k, v in load_file(os.path.join(FIXTURE, "tiny_model", "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(".pvm_block." in k or k == "lm_head.weight" for k in missing), [k for k in missing if ".pvm_block." not in k]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if ".pvm_block." not in name:
                continue
            if name.endswith("gate_alpha"):
                layer = int(name.split(".layers.")[1].split(".")[0])
                p.fill_(GATE[PVM_LAYERS.index(layer)])
            elif p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    return model


def fixture_prompt(torch, name):
    from safetensors.torch import load_file

    fx = load_file(os.path.join(FIXTURE, "fixtures.safetensors"))
    meta = json.load(open(os.path.join(FIXTURE, "meta.json")))
    p = [q for q in meta["prompts"] if q["name"] == name][0]
    pv = torch.cat([(fx["image%d.pixel_u8" % k].float() - 127.5) / 127.5 for k in p["images"]])
    grid = torch.cat([fx["image%d.grid_thw" % k] for k in p["images"]])
    return fx[name + ".prompt_ids"].tolist(), pv, grid, fx[name + ".logits"], fx[name + ".logit_cols"]


OFFICIAL_LAYERS = {"2b": [5, 11, 17], "4b": [5, 11, 17], "8b": [8, 16, 24]}
REAL_GATE = [0.05, -0.08, 0.12]  # hidden states of a std-0.02 random backbone have RMS ~0.05-1
REAL_NEW_TOKENS = 64


def real_config(cfgm, size, pvm_layers, shrink=False):
    sys.path.insert(0, HERE)
    import real_shapes

    s = real_shapes.SIZES[size]
    if shrink:  # every width of the real shape, fewer layers: a CPU-sized check of the same code paths
        s = dict(text=dict(s["text"], num_hidden_layers=6), vision=dict(s["vision"], depth=3, deepstack_visual_indexes=[0, 1, 2]),
                 tie=s["tie"])
    ct = dict(real_shapes.COMMON_TEXT)
    rope = ct.pop("rope_parameters")
    text = dict(ct, **s["text"], tie_word_embeddings=s["tie"], rope_theta=rope["rope_theta"],
                rope_scaling={"rope_type": "default", "mrope_section": rope["mrope_section"], "mrope_interleaved": True},
                pvm_layers=pvm_layers, pvm_hidden_size=512)
    vision = dict(real_shapes.COMMON_VISION, **s["vision"])
    return cfgm.PVMQwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=s["tie"],
                                 image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                                 vision_end_token_id=151653)


def set_gates(model, layers, gates):
    for L, g in zip(layers, gates):
        model.model.language_model.layers[L].pvm_block.gate_alpha.data.fill_(g)


def compare_logits(torch, ref, ref_gen, ours, ours_gen):
    d = (ours - ref).abs()
    same = 0
    while same < min(len(ref_gen), len(ours_gen)) and ref_gen[same] == ours_gen[same]:
        same += 1
    top2 = ref.topk(2, -1).values
    return {"positions": int(d.shape[0]), "max_abs": d.max().item(), "mean_abs": d.mean().item(),
            "logit_abs_max": ref.abs().max().item(),
            "top1_agree": (ours.argmax(-1) == ref.argmax(-1)).float().mean().item(),
            "top1_disagree_positions": int((ours.argmax(-1) != ref.argmax(-1)).sum()),
            "official_min_top1_margin": (top2[:, 0] - top2[:, 1]).min().item(),
            "greedy_equal_prefix": same, "greedy_equal": ref_gen == ours_gen}


def run_real(args, torch, transformers, cfgm, mod):
    """The official code at a real Qwen3-VL shape against `pvm parity-run` (issue 26)."""
    import time
    from safetensors.torch import load_file

    def log(*a):
        print("[official_pvm %s]" % time.strftime("%H:%M:%S"), *a, flush=True)

    size, dev = args.real, args.device
    layers = [1, 3, 5] if args.shrink else OFFICIAL_LAYERS[size]
    gates = REAL_GATE[:len(layers)]
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32 on both sides (the engine does the same)
    torch.backends.cudnn.allow_tf32 = False
    work = args.work or tempfile.mkdtemp(prefix="pvm-official-real-")
    os.makedirs(work, exist_ok=True)
    inputs = os.path.join(work, "inputs.safetensors")
    if not os.path.exists(inputs):  # the prompt, made by real_shapes.py with the installed transformers
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [sys.executable, os.path.join(HERE, "real_shapes.py"), "--inputs-only", "--work", work]
        if args.tokenizer_dir:
            cmd += ["--tokenizer-dir", args.tokenizer_dir]
        subprocess.run(cmd, check=True, env=env)
    inp = load_file(inputs)
    ids = inp["input_ids"].tolist()
    t0 = time.time()
    torch.manual_seed(0)
    cfg = real_config(cfgm, size, layers, args.shrink)
    cfg._attn_implementation = "sdpa"
    with torch.device(dev):
        model = mod.PVMQwen3VLForConditionalGeneration(cfg).float().eval()
    g = torch.Generator(device=dev).manual_seed(args.seed)
    with torch.no_grad():
        set_gates(model, layers, gates)
        for name, p in sorted(model.named_parameters()):
            if ".pvm_block." in name and not name.endswith("gate_alpha"):
                if p.dim() == 1:
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g, device=dev))
                else:
                    p.copy_(torch.randn(p.shape, generator=g, device=dev) / (p.shape[1] ** 0.5))
            p.copy_(p.bfloat16().float())  # the saved bf16 checkpoint holds exactly these weights (gates too)
    gates = [model.model.language_model.layers[L].pvm_block.gate_alpha.item() for L in layers]
    n = sum(p.numel() for p in model.parameters())
    ckpt = os.path.join(work, "official_pvm_%s" % size)
    model.to(torch.bfloat16).save_pretrained(ckpt, safe_serialization=True)
    del model  # .to(bf16) also rounded the RoPE inv_freq buffers: each run below loads the checkpoint afresh
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
    log("built and saved the official %s (%d parameters, PVM at %s, gates %s) in %.0f s" % (
        size, n, layers, gates, time.time() - t0))
    x = torch.tensor([ids], device=dev)
    pv, grid = inp["pixel_values"].to(dev), inp["image_grid_thw"].to(dev)
    results = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "size": size + (" (shrunk: 6 text layers, 3 vision blocks)" if args.shrink else ""),
               "device": dev, "pvm_layers": layers, "pvm_hidden_size": 512, "gate_alpha": gates,
               "parameters": n, "prompt_tokens": len(ids), "runs": []}
    official = {}
    for dtype in args.dtypes.split(","):
        tdt = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
        tl = time.time()
        # the way a user runs the official code: from its checkpoint, in the dtype asked for
        model = mod.PVMQwen3VLForConditionalGeneration.from_pretrained(ckpt, dtype=tdt,
                                                                      attn_implementation="sdpa").to(dev).eval()
        t1 = time.time()
        with torch.no_grad():
            model.model.rope_deltas = None
            logits = model(input_ids=x, pixel_values=pv.to(tdt), image_grid_thw=grid).logits[0].float().cpu()
            model.model.rope_deltas = None
            gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x), pixel_values=pv.to(tdt),
                                 image_grid_thw=grid, max_new_tokens=REAL_NEW_TOKENS, min_new_tokens=REAL_NEW_TOKENS,
                                 do_sample=False, eos_token_id=None, pad_token_id=151643)[0, len(ids):].tolist()
            effect = None
            if dtype == "f32":  # how much the PVM branch moves the logits: the comparison must see it
                set_gates(model, layers, [0.0] * len(layers))
                model.model.rope_deltas = None
                off = model(input_ids=x, pixel_values=pv, image_grid_thw=grid).logits[0].float().cpu()
                set_gates(model, layers, gates)
                effect = {"max_abs": (logits - off).abs().max().item(), "mean_abs": (logits - off).abs().mean().item(),
                          "top1_changed": (logits.argmax(-1) != off.argmax(-1)).float().mean().item()}
                del off
        t2 = time.time()
        del model
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
        official[dtype] = logits
        from safetensors.torch import save_file

        save_file({"logits": logits.contiguous(), "generated_ids": torch.tensor(gen)},
                  os.path.join(work, "official_%s_%s.safetensors" % (size, dtype)))
        out = os.path.join(work, "ours_%s_%s.safetensors" % (size, dtype))
        subprocess.run([args.pvm, "parity-run", "--model", ckpt, "--inputs", inputs, "--out", out, "--dtype", dtype,
                        "--device", dev, "--new-tokens", str(REAL_NEW_TOKENS)], check=True)
        t3 = time.time()
        ours = load_file(out)
        r = dict(dtype=dtype, official_load_s=t1 - tl, official_s=t2 - t1, ours_s=t3 - t2,
                 **compare_logits(torch, logits, gen, ours["logits"], ours["generated_ids"].tolist()))
        vis = inp["input_ids"] == 151655  # PVM is silenced at visual positions: where do the sides differ?
        d = (ours["logits"] - logits).abs().amax(-1)
        r["max_abs_visual_positions"] = d[vis].max().item()
        r["max_abs_text_positions"] = d[~vis].max().item()
        if effect:
            r["pvm_effect_official"] = effect
        if dtype != "f32" and "f32" in official:  # the noise floor: the official code's own bf16 rounding
            r["official_bf16_vs_f32"] = {"max_abs": (logits - official["f32"]).abs().max().item(),
                                         "mean_abs": (logits - official["f32"]).abs().mean().item(),
                                         "top1_agree": (logits.argmax(-1) == official["f32"].argmax(-1)).float().mean().item()}
            r["ours_bf16_vs_official_f32"] = {"max_abs": (ours["logits"] - official["f32"]).abs().max().item(),
                                              "mean_abs": (ours["logits"] - official["f32"]).abs().mean().item(),
                                              "top1_agree": (ours["logits"].argmax(-1) == official["f32"].argmax(-1)).float().mean().item()}
        log("%s %s: max |diff| %.3g, mean %.3g, top-1 agree %.4f, greedy equal %d/%d%s" % (
            size, dtype, r["max_abs"], r["mean_abs"], r["top1_agree"], r["greedy_equal_prefix"], REAL_NEW_TOKENS,
            (", PVM moves logits by up to %.3g" % effect["max_abs"]) if effect else ""))
        results["runs"].append(r)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    ok = all(r["dtype"] != "f32" or (r["max_abs"] <= 1e-3 and r["greedy_equal"]) for r in results["runs"])
    results["pass_f32"] = ok
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="the official modeling_file/ folder (outside this repo)")
    ap.add_argument("--transformers-site", default=None, help="folder with transformers 4.57.x (pip --target)")
    ap.add_argument("--pvm", default=os.path.join(REPO, "build", "pvm"))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--work", default=None)
    ap.add_argument("--real", choices=sorted(OFFICIAL_LAYERS), default=None,
                    help="a real Qwen3-VL shape instead of the tiny parity model (see above)")
    ap.add_argument("--shrink", action="store_true", help="with --real: 6 text layers and 3 vision blocks")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--tokenizer-dir", default=None)
    ap.add_argument("--layout-out", default=None,
                    help="write the official checkpoint's config.json and tensor names/shapes here "
                         "(tests/data/official_pvm_layout: Parity.OfficialPvmCheckpointLayoutLoadsByName)")
    args = ap.parse_args()
    if os.path.abspath(args.official).startswith(REPO + os.sep):
        ap.error("--official must be outside the repository (the official code is not committed here)")
    if args.transformers_site:
        sys.path.insert(0, os.path.abspath(args.transformers_site))
    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    cfgm, mod = import_official(args.official)
    if args.real:
        return run_real(args, torch, transformers, cfgm, mod)
    model = build(torch, cfgm, mod, args.seed)
    work = args.work or tempfile.mkdtemp(prefix="pvm-official-")
    ckpt = os.path.join(work, "pvm_official_ckpt")
    model.save_pretrained(ckpt, safe_serialization=True)
    with open(os.path.join(ckpt, "config.json")) as f:
        saved_cfg = json.load(f)
    saved_keys = sorted(load_file(os.path.join(ckpt, "model.safetensors")).keys())
    pvm_keys = [k for k in saved_keys if ".pvm_block." in k]
    if args.layout_out:
        from safetensors import safe_open

        os.makedirs(args.layout_out, exist_ok=True)
        with safe_open(os.path.join(ckpt, "model.safetensors"), framework="pt") as f:
            layout = {k: {"dtype": str(f.get_slice(k).get_dtype()), "shape": list(f.get_slice(k).get_shape())}
                      for k in sorted(f.keys())}
        with open(os.path.join(args.layout_out, "tensors.json"), "w") as f:
            json.dump({"written_by": "the official PVM modeling file (github huaixuheqing/PVM), save_pretrained, "
                                     "transformers " + transformers.__version__, "tensors": layout}, f, indent=1)
        with open(os.path.join(args.layout_out, "config.json"), "w") as f:
            json.dump(saved_cfg, f, indent=1)
    results = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "official": os.path.abspath(args.official), "pvm_layers": PVM_LAYERS, "pvm_hidden_size": PVM_HIDDEN,
               "gate_alpha": GATE, "checkpoint_pvm_keys": pvm_keys,
               "checkpoint_text_config_pvm": {k: saved_cfg["text_config"].get(k) for k in ("pvm_layers", "pvm_hidden_size")},
               "prompts": []}
    for name in ("p1", "p2"):
        ids, pv, grid, base_logits, cols = fixture_prompt(torch, name)
        x = torch.tensor([ids])
        model.model.rope_deltas = None
        with torch.no_grad():
            logits = model(input_ids=x, pixel_values=pv, image_grid_thw=grid).logits[0].float()
            model.model.rope_deltas = None
            gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x), pixel_values=pv, image_grid_thw=grid,
                                 max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                 eos_token_id=None, pad_token_id=151643)[0, len(ids):].tolist()
        inp = os.path.join(work, name + "_inputs.safetensors")
        save_file({"input_ids": torch.tensor(ids), "pixel_values": pv.contiguous(), "image_grid_thw": grid.contiguous()}, inp)
        out = os.path.join(work, name + "_ours.safetensors")
        subprocess.run([args.pvm, "parity-run", "--model", ckpt, "--inputs", inp, "--out", out, "--dtype", "f32",
                        "--new-tokens", str(NEW_TOKENS)], check=True)
        ours = load_file(out)
        d = (ours["logits"] - logits).abs()
        top2 = logits.topk(2, -1).values
        S = len(ids)
        r = {"name": name, "prompt_tokens": S, "logits_max_abs_diff": d.max().item(), "logits_mean_abs_diff": d.mean().item(),
             "logits_abs_max": logits.abs().max().item(),
             "top1_agree": (ours["logits"].argmax(-1) == logits.argmax(-1)).float().mean().item(),
             "greedy_official": gen, "greedy_ours": ours["generated_ids"].tolist(),
             "greedy_equal": gen == ours["generated_ids"].tolist(),
             "min_top1_margin_official": (top2[:, 0] - top2[:, 1]).min().item(),
             # the PVM branch is live: the official logits move away from the PVM-free fixture's
             "pvm_effect_max_abs": (logits[:, cols] - base_logits[:S]).abs().max().item()}
        print("%s: %d tokens, max |diff| %.3g, greedy equal %s, PVM moves logits by up to %.3g" % (
            name, S, r["logits_max_abs_diff"], r["greedy_equal"], r["pvm_effect_max_abs"]), flush=True)
        results["prompts"].append(r)
    ok = all(r["logits_max_abs_diff"] <= 1e-4 and r["greedy_equal"] for r in results["prompts"])
    results["pass"] = ok
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
