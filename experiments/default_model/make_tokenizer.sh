#!/usr/bin/env bash
# Regenerate the default model's tokenizer (tokenizer.json + tokenizer_config.json) from a freshly
# generated scenes corpus, then check that config.json's token ids match it.
#
#   bash experiments/default_model/make_tokenizer.sh [OUT_DIR]     # default: assets/default-model
# (deterministic: on an unchanged grammar it rewrites the committed files byte for byte)
#
# Environment: PVM (the pvm binary, default build/pvm), COUNT (scenes, default 2000), SEED (default 1),
# VOCAB (all ids, incl. the 10 added tokens at VOCAB-10 .. VOCAB-1; default: config.json's
# text_config.vocab_size, 512). The scenes grammar has a closed vocabulary (about 150 distinct
# pre-tokenized pieces, ~335 merges until every word is one token), so 512 (246 merges) turns every
# frequent word into one token; a VOCAB the corpus cannot reach is an error from tokenizer-train.
# Deterministic: the same COUNT/SEED/VOCAB and grammar give the same bytes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
out=${1:-$root/assets/default-model}
count=${COUNT:-2000}
seed=${SEED:-1}
config=$here/config.json
cfg_int() {  # first integer after "KEY": in config.json
  grep -o "\"$1\": *\[\?[0-9]*" "$config" | head -1 | grep -o '[0-9]*$'
}
vocab=${VOCAB:-$(cfg_int vocab_size)}

[ -x "$PVM" ] || { echo "make_tokenizer: $PVM not found or not executable (build first, or set PVM=...)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "make_tokenizer: generating $count scenes (seed $seed) ..." >&2
"$PVM" scenes --out "$tmp/scenes" --count "$count" --seed "$seed" >&2
inputs=()
for f in sft.jsonl grpo.jsonl qa_sft.jsonl; do
  if [ -f "$tmp/scenes/$f" ]; then inputs+=(--input "$tmp/scenes/$f"); fi
done
[ ${#inputs[@]} -gt 0 ] || { echo "make_tokenizer: pvm scenes wrote none of sft.jsonl, grpo.jsonl, qa_sft.jsonl" >&2; exit 1; }

"$PVM" tokenizer-train "${inputs[@]}" --vocab-size "$vocab" --out "$out"

# The model's config must use the ids the tokenizer gave its added tokens.
id_of() { "$PVM" tokenize --tokenizer "$out/tokenizer.json" --text "$1"; }
fail=0
check() {  # check KEY TOKEN
  local want got
  want=$(cfg_int "$1")
  got=$(id_of "$2")
  if [ "$want" != "$got" ]; then
    echo "make_tokenizer: config.json $1 = $want but the tokenizer has $2 = $got" >&2
    fail=1
  fi
}
check image_token_id "<|image_pad|>"
check video_token_id "<|video_pad|>"
check vision_start_token_id "<|vision_start|>"
check vision_end_token_id "<|vision_end|>"
check eos_token_id "<|im_end|>"
check pad_token_id "<|endoftext|>"
check bos_token_id "<|endoftext|>"
size=$(( $(id_of "</think>") + 1 ))  # </think> is the last id
if [ "$(cfg_int vocab_size)" != "$size" ]; then
  echo "make_tokenizer: config.json vocab_size = $(cfg_int vocab_size) but the tokenizer has $size ids" >&2
  fail=1
fi
[ $fail = 0 ] || { echo "make_tokenizer: update $config to match $out/tokenizer.json" >&2; exit 1; }
echo "make_tokenizer: $out/tokenizer.json matches $config" >&2
