#!/usr/bin/env python3
"""Reference ids and decodes for tests/tokenizer/corpus.jsonl, computed with Hugging Face
`tokenizers` (the Rust library, PyPI package `tokenizers`) from assets/tokenizers/qwen3/tokenizer.json,
the file that tests/base/test_tokenizer.cpp loads.

    $PVM_PYTHON tests/tokenizer/make_reference.py            # rewrite reference_ids.jsonl + reference_decode.jsonl
    $PVM_PYTHON tests/tokenizer/make_reference.py --check    # recompute, compare with the committed files, exit 1 on drift

($PVM_PYTHON: the set-up's virtual environment, whose path scripts/env.sh computes.)

Each corpus string is bytes; invalid UTF-8 is replaced first, one U+FFFD per maximal invalid
subsequence (Python's errors="replace", the same rule as Rust's from_utf8_lossy and the WHATWG
decoder), then encoded with `encode(text, add_special_tokens=False)`.

Output lines:
  reference_ids.jsonl    {"i":n,"h":sha1(bytes)[0:12],"ids":[...]}
                         + "dec": base64 of decode(ids) where it is not NFC(text),
                         + "dec_skip": base64 of decode(ids, skip_special_tokens=True) where ids hold special tokens
  reference_decode.jsonl {"ids":[...],"skip":bool,"b64":...}: decode of 300 seeded random id lists
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def mulberry32(seed):
    """The seeded generator of the id lists (32-bit arithmetic, the usual mulberry32)."""
    state = seed & 0xFFFFFFFF

    def rand():
        nonlocal state
        m = 0xFFFFFFFF
        state = (state + 0x6D2B79F5) & m
        t = ((state ^ (state >> 15)) * (1 | state)) & m
        t = ((t + (((t ^ (t >> 7)) * (61 | t)) & m)) & m) ^ t
        return ((t ^ (t >> 14)) & m) / 4294967296.0

    return rand


def b64(s):
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing them")
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "assets/tokenizers/qwen3/tokenizer.json"))
    ap.add_argument("--dir", default=HERE, help="folder of corpus.jsonl and the reference files")
    args = ap.parse_args()

    from tokenizers import Tokenizer, __version__ as tokenizers_version

    tok = Tokenizer.from_file(args.tokenizer)
    special_ids = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}

    # Plain encoding adds nothing (no BOS/EOS) for this tokenizer.
    a = tok.encode("Hello", add_special_tokens=False).ids
    b = tok.encode("Hello", add_special_tokens=True).ids
    if a != b or len(a) != 1:
        sys.exit(f"make_reference: unexpected extra tokens: {a} vs {b}")

    ids_path = os.path.join(args.dir, "reference_ids.jsonl")
    dec_path = os.path.join(args.dir, "reference_decode.jsonl")
    with open(os.path.join(args.dir, "corpus.jsonl"), encoding="utf-8") as f:
        records = [json.loads(l) for l in f if l.strip()]

    out = []
    for rec in records:
        raw = base64.b64decode(rec["b64"])
        text = raw.decode("utf-8", errors="replace")
        ids = tok.encode(text, add_special_tokens=False).ids
        r = {"i": rec["i"], "h": hashlib.sha1(raw).hexdigest()[:12], "ids": ids}
        dec = tok.decode(ids, skip_special_tokens=False) if ids else ""
        if dec != unicodedata.normalize("NFC", text):
            r["dec"] = b64(dec)
        if any(x in special_ids for x in ids):
            r["dec_skip"] = b64(tok.decode(ids, skip_special_tokens=True))
        out.append(json.dumps(r, separators=(",", ":"), ensure_ascii=False))

    rand = mulberry32(12345)
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    n_added = len(tok.get_added_tokens_decoder())
    dout = []
    for _ in range(300):
        n = 1 + int(rand() * 12)
        ids = []
        for _ in range(n):
            r = rand()
            if r < 0.4:
                ids.append(int(rand() * 256))  # byte-level single characters
            elif r < 0.5:
                ids.append(n_vocab - 1 - int(rand() * n_added))  # added tokens
            else:
                ids.append(int(rand() * n_vocab))
        skip = rand() < 0.5
        d = {"ids": ids, "skip": skip, "b64": b64(tok.decode(ids, skip_special_tokens=skip))}
        dout.append(json.dumps(d, separators=(",", ":")))

    ids_text = "\n".join(out) + "\n"
    dec_text = "\n".join(dout) + "\n"
    if args.check:
        with open(ids_path, encoding="utf-8") as f:
            ok_ids = f.read() == ids_text
        with open(dec_path, encoding="utf-8") as f:
            ok_dec = f.read() == dec_text
        print(f"make_reference --check: {len(records)} strings, HF tokenizers {tokenizers_version}: "
              f"ids {'match' if ok_ids else 'DIFFER'}, decode {'match' if ok_dec else 'DIFFER'}")
        return 0 if ok_ids and ok_dec else 1
    with open(ids_path, "w", encoding="utf-8") as f:
        f.write(ids_text)
    with open(dec_path, "w", encoding="utf-8") as f:
        f.write(dec_text)
    print(f"make_reference: {len(records)} strings, HF tokenizers {tokenizers_version} -> {ids_path}, {dec_path}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
