#!/usr/bin/env python3
"""Time Hugging Face `tokenizers` (the Rust library, PyPI) with the Qwen3 tokenizer on
tests/tokenizer/corpus.jsonl: the same work as pvm-bench-tokenizer (experiments/bench/bench_tokenizer.cpp).

    RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false $PVM_PYTHON experiments/tokenizer/bench_hf.py [--seconds S]

Single thread: the two variables above must be set before `tokenizers` is imported (the script
refuses to run otherwise). Modes:
  single      encode(text, add_special_tokens=False) per string;
  batch       encode_batch(texts, add_special_tokens=False) on the whole subset;
  batch_fast  encode_batch_fast (no offsets), for information.
"cold" is the first single pass on the freshly loaded tokenizer. Warm measurements repeat passes for
at least S seconds (default 2) and report the median pass. Strings are decoded from the corpus bytes
(invalid UTF-8 replaced) before timing; MB/s counts the corpus bytes, as the C++ bench does.
Prints one "RESULT" line per measurement.
"""
import argparse
import base64
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "assets/tokenizers/qwen3/tokenizer.json"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "tests/tokenizer/corpus.jsonl"))
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    if os.environ.get("RAYON_NUM_THREADS") != "1" or os.environ.get("TOKENIZERS_PARALLELISM") != "false":
        sys.exit("bench_hf: set RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false (single thread)")

    import tokenizers
    from tokenizers import Tokenizer

    subsets = {"all": ([], 0), "prose+code": ([], 0)}
    with open(args.corpus, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            raw = base64.b64decode(rec["b64"])
            text = raw.decode("utf-8", errors="replace")
            names = ["all"] + (["prose+code"] if rec["cat"].startswith(("prose", "code")) else [])
            for n in names:
                texts, nbytes = subsets[n]
                texts.append(text)
                subsets[n] = (texts, nbytes + len(raw))

    t0 = time.perf_counter()
    tok = Tokenizer.from_file(args.tokenizer)
    print(f"load {args.tokenizer}: {time.perf_counter() - t0:.3f} s (tokenizers {tokenizers.__version__})")

    def report(mode, subset, passes, sec, tokens):
        texts, nbytes = subsets[subset]
        print(f"RESULT impl=hf mode={mode} subset={subset} strings={len(texts)} bytes={nbytes} tokens={tokens} "
              f"passes={passes} ms={sec * 1e3:.3f} mbps={nbytes / 1e6 / sec:.2f} tokps={tokens / sec:.0f}", flush=True)

    def single(texts):
        enc = tok.encode
        for t in texts:
            enc(t, add_special_tokens=False)

    def batch(texts):
        tok.encode_batch(texts, add_special_tokens=False)

    def batch_fast(texts):
        tok.encode_batch_fast(texts, add_special_tokens=False)

    def count(texts):
        return sum(len(e) for e in tok.encode_batch(texts, add_special_tokens=False))

    texts = subsets["all"][0]
    t0 = time.perf_counter()
    single(texts)
    report("cold", "all", 1, time.perf_counter() - t0, count(texts))

    for subset in ("all", "prose+code"):
        texts = subsets[subset][0]
        tokens = count(texts)
        for mode, fn in (("single", single), ("batch", batch), ("batch_fast", batch_fast)):
            times = []
            start = time.perf_counter()
            while len(times) < 5 or time.perf_counter() - start < args.seconds:
                t0 = time.perf_counter()
                fn(texts)
                times.append(time.perf_counter() - t0)
            report(mode, subset, len(times), statistics.median(times), tokens)


if __name__ == "__main__":
    main()
