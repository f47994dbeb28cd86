#!/usr/bin/env python3
"""Encode texts with Hugging Face `tokenizers` (the Rust library, an implementation independent of
ours) on a tokenizer.json made by `pvm tokenizer-train`, so that the ids can be compared with
pvm::Tokenizer's (tests/base/test_tokenizer_train.cpp does).

    $PVM_PYTHON tests/tokenizer/crosscheck_hf.py TOKENIZER_DIR TEXTS.jsonl OUT.jsonl

TEXTS.jsonl: one {"b64": base64 of the UTF-8 text} per line. OUT.jsonl: one {"ids": [...],
"dec_b64": base64 of decode(ids)} per line (encode without added BOS/EOS; invalid UTF-8 in a text
is replaced first, one U+FFFD per maximal invalid subsequence).
"""
import base64
import json
import os
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: crosscheck_hf.py TOKENIZER_DIR TEXTS.jsonl OUT.jsonl")
    tok_dir, texts_path, out_path = sys.argv[1:]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    out = []
    with open(texts_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            text = base64.b64decode(json.loads(line)["b64"]).decode("utf-8", errors="replace")
            ids = tok.encode(text, add_special_tokens=False).ids
            dec = tok.decode(ids, skip_special_tokens=False) if ids else ""
            out.append(json.dumps({"ids": ids, "dec_b64": base64.b64encode(dec.encode("utf-8")).decode("ascii")}))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"crosscheck_hf: encoded {len(out)} texts")


if __name__ == "__main__":
    main()
