# Sourced by the scripts (ROOT = the clone): where the Python environment lives. It is outside the
# clone, in a cache folder that later clones and CI reuse; its name carries the hash of
# requirements.txt, so a change of pin builds a new one beside the old.
PVM_CACHE_DIR=${PVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pvm-studio}
PVM_VENV=${PVM_VENV:-$PVM_CACHE_DIR/venv-$(sha256sum "$ROOT/scripts/requirements.txt" | cut -c1-12)}
PVM_PYTHON=$PVM_VENV/bin/python
# What the reference scripts and the engine's tests import; a venv missing one is rebuilt.
PVM_PY_IMPORTS="torch, torchvision, transformers, tokenizers, safetensors, PIL, numpy"
