#!/usr/bin/env python3
"""CPU speed, ours vs transformers, on a random-weight model of the real Qwen3-VL-2B shape (issue 22).

    $PVM_PYTHON experiments/bench/vs_transformers.py [--size 2b|4b] [--dtypes f32,bf16] [--threads N]
        [--build build] [--work /tmp/pvm-vs-transformers] [--results experiments/bench/RESULTS_cpu.md]

One run, same machine, same thread count, same dtype, one process per side and dtype (run one
after the other, so neither shares memory or cores with the other):
  * prefill: the one-image prompt of experiments/parity/real_shapes.py (a 1024x1024 image = 1024
    visual tokens, plus the chat template and text: 1,039 tokens; the preprocessed pixels are the
    same bytes on both sides), timed from the ids and pixels to the first token's logits;
  * decode tokens/s after a text prompt of 512 and of 4096 tokens (the same ids on both sides), greedy;
  * peak resident memory of each process (VmHWM).
transformers runs with attn_implementation="sdpa" under torch.inference_mode(), timed per step by a
logits processor inside `generate` (the first call marks the end of the prefill). Ours is
`pvm-bench-generate --model DIR --warmup short`. Both warm up on a 16-token prompt first.
The memory-bandwidth limit comes from `pvm-bench-bandwidth` with the same thread count: decode
reads every decoder weight once per token (plus the KV cache), so
    bandwidth_fraction = ours bf16 decode tokens/s x bytes read per token / read bandwidth.
Writes the table to --results and prints as its last line
    decode_bf16_ratio=X prefill_bf16_ratio=Y decode_f32_ratio=Z bandwidth_fraction=W
(ratios are ours / transformers in tokens per second, > 1 = we are faster; decode ratios are the
geometric mean of the 512 and 4096 contexts).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "experiments", "parity"))

CONTEXTS = (512, 4096)


def log(*a):
    print("[vs_transformers %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def text_ids(n):
    # the same ids pvm-bench-generate uses (experiments/bench/bench_generate.cpp)
    return [1000 + (i * 7919) % 5000 for i in range(n)]  # (mod the vocabulary in ours: the same for real models)


def hf_side(args):
    """Runs in its own process: transformers on one dtype; prints one JSON line."""
    import torch
    from safetensors.torch import load_file
    from transformers import LogitsProcessor, Qwen3VLForConditionalGeneration

    torch.set_num_threads(args.threads)
    tdt = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    t0 = time.time()
    model = Qwen3VLForConditionalGeneration.from_pretrained(args.model, dtype=tdt, attn_implementation="sdpa").eval()
    load_s = time.time() - t0

    class Stamp(LogitsProcessor):
        def __init__(self):
            self.t = []

        def __call__(self, input_ids, scores):
            self.t.append(time.perf_counter())
            return scores

    def run_text(n_ctx, n_new):
        x = torch.tensor([text_ids(n_ctx)])
        st = Stamp()
        t = time.perf_counter()
        model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, min_new_tokens=n_new,
                       do_sample=False, eos_token_id=None, pad_token_id=151643, logits_processor=[st])
        # st.t[0]: after the prefill; st.t[k]: after decode step k
        return {"kind": "text", "context": n_ctx, "prefill_ms": (st.t[0] - t) * 1e3,
                "decode_tokens_per_s": (len(st.t) - 1) / (st.t[-1] - st.t[0]), "peak_rss_mib": peak_rss_mib()}

    out = []
    with torch.inference_mode():
        run_text(16, 2)  # warm-up, as ours (--warmup short)
        inp = load_file(args.inputs)
        x = inp["input_ids"].long().view(1, -1)
        mm = (x == 151655).int()
        t = time.perf_counter()
        model(input_ids=x, pixel_values=inp["pixel_values"].float(), image_grid_thw=inp["image_grid_thw"].long(),
              mm_token_type_ids=mm, logits_to_keep=1)
        ms = (time.perf_counter() - t) * 1e3
        out.append({"kind": "image_prefill", "context": x.shape[1], "prefill_ms": ms,
                    "prefill_tokens_per_s": x.shape[1] * 1e3 / ms, "peak_rss_mib": peak_rss_mib()})
        log("transformers %s: image prompt prefill %.0f ms" % (args.dtype, ms))
        for c in args.contexts:
            r = run_text(c, args.decode)
            out.append(r)
            log("transformers %s: context %d decode %.2f tok/s" % (args.dtype, c, r["decode_tokens_per_s"]))
    print(json.dumps({"load_s": load_s, "runs": out}))
    return 0


def ours_side(args, model_dir, inputs, dtype, threads, decode, contexts):
    js = os.path.join(args.work, "ours_%s.json" % dtype)
    cmd = [os.path.join(args.build, "pvm-bench-generate"), "--model", model_dir, "--dtype", dtype, "--threads", str(threads),
           "--contexts", ",".join(map(str, contexts)), "--decode", str(decode), "--inputs", inputs, "--warmup", "short",
           "--json", js]
    log("ours:", " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    with open(js) as f:
        return json.load(f)


def hf_run(args, model_dir, inputs, dtype):
    cmd = [sys.executable, os.path.abspath(__file__), "--hf-side", "--model", model_dir, "--inputs", inputs, "--dtype", dtype,
           "--threads", str(args.threads), "--decode", str(args.decode), "--contexts", ",".join(map(str, CONTEXTS))]
    log("transformers:", " ".join(cmd[2:]))
    p = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["runs"]


def bandwidth(args):
    js = os.path.join(args.work, "bandwidth.json")
    subprocess.run([os.path.join(args.build, "pvm-bench-bandwidth"), "--threads", str(args.threads), "--json", js],
                   check=True, stdout=sys.stderr)
    with open(js) as f:
        return json.load(f)


def decoder_bytes_per_token(size, dtype, context):
    """Bytes one decode step must read: every decoder weight once (the tied embedding table once, as
    the lm_head; the input embedding is a single row), plus the K and V cache of `context` tokens."""
    from real_shapes import COMMON_TEXT, SIZES

    t = dict(COMMON_TEXT, **SIZES[size]["text"])
    H, L, I, V, D = t["hidden_size"], t["num_hidden_layers"], t["intermediate_size"], t["vocab_size"], t["head_dim"]
    nq, nkv = t["num_attention_heads"], t["num_key_value_heads"]
    per_layer = H * nq * D + 2 * H * nkv * D + nq * D * H + 3 * H * I + 2 * H + 2 * D
    weights = L * per_layer + H + V * H  # + final norm + lm_head (tied or not: read once per token)
    kv = 2 * L * nkv * D * context
    width = 2 if dtype == "bf16" else 4
    return (weights + kv) * width


BEGIN, END = "<!-- vs_transformers.py: begin -->", "<!-- vs_transformers.py: end -->"


def write_results(path, table):
    """Replaces the measured part of `path` (between the markers), keeping the notes around it."""
    text = BEGIN + "\n" + table + "\n" + END + "\n"
    if os.path.exists(path):
        old = open(path).read()
        if BEGIN in old and END in old:
            text = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END) + 1:]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def pick(runs, kind, context=None):
    for r in runs:
        if r.get("kind", "text") == kind and (context is None or r["context"] == context):
            return r
    raise KeyError((kind, context))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="2b", choices=["2b", "4b"])
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--decode", type=int, default=16, help="decode steps timed per context")
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--work", default="/tmp/pvm-vs-transformers")
    ap.add_argument("--results", default=os.path.join(HERE, "RESULTS_cpu.md"))
    ap.add_argument("--keep", action="store_true", help="keep the random checkpoint in --work for a later run")
    ap.add_argument("--smoke", action="store_true",
                    help="a check of the script itself: 4 decoder layers, contexts 64 and 256 (numbers mean nothing)")
    # internal: the transformers side in its own process
    ap.add_argument("--hf-side", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", help=argparse.SUPPRESS)
    ap.add_argument("--contexts", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    if args.hf_side:
        args.contexts = [int(c) for c in args.contexts.split(",")]
        return hf_side(args)
    dtypes = args.dtypes.split(",")
    for d in dtypes:
        if d not in ("f32", "bf16"):
            ap.error("--dtypes: '%s' is not f32 or bf16" % d)
    for exe in ("pvm-bench-generate", "pvm-bench-bandwidth"):
        if not os.access(os.path.join(args.build, exe), os.X_OK):
            ap.error("%s not found in %s (cmake --build %s --target %s)" % (exe, args.build, args.build, exe))

    import torch
    import transformers
    from real_shapes import build_and_save, make_inputs

    global CONTEXTS
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    if args.smoke:
        import real_shapes

        real_shapes.SIZES[args.size]["text"]["num_hidden_layers"] = 4  # >= the 3 DeepStack taps
        CONTEXTS = (64, 256)
        args.work = os.path.join(args.work, "smoke")
        os.makedirs(args.work, exist_ok=True)
        if args.results == os.path.join(HERE, "RESULTS_cpu.md"):  # never overwrite the real table
            args.results = os.path.join(args.work, "RESULTS_cpu.md")
    t_start = time.time()
    inputs, ids, _, _ = make_inputs(torch, args.work, os.path.join(REPO, "assets", "tokenizers", "qwen3"))
    model_dir = os.path.join(args.work, "qwen3-vl-%s-random" % args.size)
    build_and_save(torch, args.size, model_dir)
    bw = bandwidth(args)
    log("read bandwidth %.2f GB/s (%d threads)" % (bw["read_gb_per_s"], args.threads))

    rows = {}
    for d in dtypes:
        rows[d] = {"ours": ours_side(args, model_dir, inputs, d, args.threads, args.decode, CONTEXTS),
                   "hf": hf_run(args, model_dir, inputs, d)}

    def ratio(d, kind, c=None, key="decode_tokens_per_s"):
        return pick(rows[d]["ours"], kind, c)[key] / pick(rows[d]["hf"], kind, c)[key]

    def decode_ratio(d):
        return math.exp(sum(math.log(ratio(d, "text", c)) for c in CONTEXTS) / len(CONTEXTS))

    lines = []
    lines.append("# CPU speed: ours vs transformers (issue 22)\n")
    lines.append("Command: `bash experiments/bench/vs_transformers.sh%s` (%.0f minutes). Measured %s on %s, %d threads"
                 " on both sides, torch %s, transformers %s. Model: random weights of the real Qwen3-VL-%s shape"
                 " (written by transformers, bf16 safetensors; each side loads it in the dtype of the row)."
                 " Ratios are ours / transformers in tokens per second: above 1 we are faster.\n" % (
                     " --4b" if args.size == "4b" else "", (time.time() - t_start) / 60, time.strftime("%Y-%m-%d"), cpu_name(),
                     args.threads, torch.__version__, transformers.__version__, args.size.upper()))
    lines.append("| dtype | measure | ours | transformers | ratio |")
    lines.append("|---|---|---|---|---|")
    for d in dtypes:
        o, h = rows[d]["ours"], rows[d]["hf"]
        po, ph = pick(o, "image_prefill"), pick(h, "image_prefill")
        lines.append("| %s | prefill, one 1024x1024 image + text (%d tokens) | %.1f s (%.0f tok/s) | %.1f s (%.0f tok/s) | %.2f |" % (
            d, po["context"], po["prefill_ms"] / 1e3, po["prefill_tokens_per_s"], ph["prefill_ms"] / 1e3,
            ph["prefill_tokens_per_s"], ph["prefill_ms"] / po["prefill_ms"]))
        for c in CONTEXTS:
            lines.append("| %s | decode at %d context, tokens/s | %.2f | %.2f | %.2f |" % (
                d, c, pick(o, "text", c)["decode_tokens_per_s"], pick(h, "text", c)["decode_tokens_per_s"], ratio(d, "text", c)))
        ro, rh = max(r["peak_rss_mib"] for r in o), max(r["peak_rss_mib"] for r in h)
        lines.append("| %s | peak resident memory | %.2f GiB | %.2f GiB | %.2f (memory: below 1 = we use less) |" % (
            d, ro / 1024, rh / 1024, ro / rh))
    out = {}
    if "bf16" in dtypes:
        out["decode_bf16_ratio"] = decode_ratio("bf16")
        out["prefill_bf16_ratio"] = ratio("bf16", "image_prefill", key="prefill_tokens_per_s")
    if "f32" in dtypes:
        out["decode_f32_ratio"] = decode_ratio("f32")
    bw_d = "bf16" if "bf16" in dtypes else dtypes[0]
    c = CONTEXTS[0]
    bytes_tok = decoder_bytes_per_token(args.size, bw_d, c)
    limit = bw["read_gb_per_s"] * 1e9 / bytes_tok
    ours_tok = pick(rows[bw_d]["ours"], "text", c)["decode_tokens_per_s"]
    hf_tok = pick(rows[bw_d]["hf"], "text", c)["decode_tokens_per_s"]
    out["bandwidth_fraction"] = ours_tok / limit
    lines.append("")
    lines.append("**The bandwidth limit.** `pvm-bench-bandwidth --threads %d`: %.2f GB/s read (%s loads, best of 7 passes"
                 " over %d MiB). A %s decode step at %d context reads %.2f GB (every decoder weight once, the"
                 " lm_head included, plus the KV cache), so this machine cannot decode faster than %.2f tokens/s:"
                 " ours reaches %.2f (%.0f%% of the limit), transformers %.2f (%.0f%%).\n" % (
                     args.threads, bw["read_gb_per_s"], bw["loads"], bw["buffer_mib"], bw_d, c, bytes_tok / 1e9, limit,
                     ours_tok, 100 * ours_tok / limit, hf_tok, 100 * hf_tok / limit))
    lines.append("Targets (issue 22): decode at least 2x transformers, at least 60% of the bandwidth limit, prefill no"
                 " slower than transformers (ratio >= 1).\n")
    summary = " ".join("%s=%.3f" % (k, out[k]) for k in ("decode_bf16_ratio", "prefill_bf16_ratio", "decode_f32_ratio",
                                                         "bandwidth_fraction") if k in out)
    lines.append("Last line of the run: `%s`\n" % summary)
    with open(os.path.join(args.work, "raw.json"), "w") as f:
        json.dump({"bandwidth": bw, "rows": rows, "summary": out}, f, indent=1)
    write_results(args.results, "\n".join(lines))
    log("wrote", args.results)
    if not args.keep:
        import shutil

        shutil.rmtree(model_dir, ignore_errors=True)
    print("\n".join(lines))
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
