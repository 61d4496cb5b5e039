#!/usr/bin/env bash
# Installs the Python packages `gpiot train` needs into training/.venv (which gpiot train uses when
# it exists), from training/requirements.txt, the normal pip way.
#
#   bash scripts/install-training.sh          # as pip resolves it (on Linux: the CUDA build of torch)
#   bash scripts/install-training.sh --cpu    # the much smaller CPU-only torch build (PyTorch's CPU index)
#
# Where pip is configured with a local file:// package index (an offline mirror), it is used as the
# index, so pip does not first retry an unreachable public index.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv="training/.venv"
extra=()
[ "${1:-}" = "--cpu" ] && extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
PYTHON="$python" source scripts/lib/pip-index.sh
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${extra[@]}" -r training/requirements.txt
"$venv/bin/python" -c "import torch, transformers, peft; print(f'training/.venv: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}')"
