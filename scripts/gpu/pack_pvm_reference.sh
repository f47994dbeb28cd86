#!/usr/bin/env bash
# On a development machine: pack what the official PVM code needs on the GPU machine into
# pvm_reference.tar.xz (ignored by git, about 1.3 MB; carry it): the official modeling files
# (github huaixuheqing/PVM, modeling_file/, read from a clone outside this repository, never
# committed here) and the transformers it was written for (4.57.1) with huggingface_hub 0.36, both
# pure Python. The GPU machine's own transformers is 5.x, which the official file does not run on.
# To fit the device tool's 64 MiB tree limit, transformers keeps only models/auto and
# models/qwen3_vl (its model registry is lazy) and drops pipelines/commands/data; its import-time
# version check is turned off (the GPU machine has newer tokenizers), nothing else is changed.
#   PVM_OFFICIAL_GIT=<git dir of a clone of huaixuheqing/PVM> bash scripts/gpu/pack_pvm_reference.sh
# check_cuda.sh unpacks it to /tmp/pvm_reference/ (outside the tree) and runs experiments/parity/official_pvm.py --real.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source scripts/env.sh
GIT=${PVM_OFFICIAL_GIT:?set PVM_OFFICIAL_GIT to the git directory of a clone of github huaixuheqing/PVM}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/pvm_reference/site" "$T/whl"
git --git-dir="$GIT" archive HEAD modeling_file | tar -x -C "$T/pvm_reference"
[ -f "$T/pvm_reference/modeling_file/modeling_qwen3_vl.py" ] || { echo "pack_pvm_reference: no modeling_file/modeling_qwen3_vl.py in $GIT" >&2; exit 1; }
git --git-dir="$GIT" rev-parse HEAD > "$T/pvm_reference/OFFICIAL_COMMIT"
"$PVM_PYTHON" -m pip download -q --no-deps -d "$T/whl" transformers==4.57.1 huggingface_hub==0.36.2
for w in "$T"/whl/*.whl; do "$PVM_PYTHON" -m zipfile -e "$w" "$T/pvm_reference/site"; done
S=$T/pvm_reference/site
rm -rf "$S"/*.dist-info "$S/huggingface_hub/inference" "$S/transformers/pipelines" "$S/transformers/data" \
       "$S/transformers/commands"
find "$S/transformers/models" -mindepth 1 -maxdepth 1 -type d ! -name auto ! -name qwen3_vl -exec rm -rf {} +
printf '# pvm-studio: import-time version checks off (runs beside newer tokenizers/hub)\ndef dep_version_check(pkg, hint=None):\n    pass\n' \
  > "$S/transformers/dependency_versions_check.py"
tar -cJf "$ROOT/pvm_reference.tar.xz" -C "$T" pvm_reference
du -sh "$ROOT/pvm_reference.tar.xz"
