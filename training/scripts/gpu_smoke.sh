#!/usr/bin/env bash
# A short real-GPU check of `gpiot train`'s Python trainer, for a machine with one CUDA GPU
# (about 5 minutes on an H200; gpu_smoke.py stops itself after --budget-s, default 420 s).
# Needs the CUDA build of torch and the packages of training/requirements.txt in the interpreter
# named by $GPIOT_TRAIN_PYTHON, else training/.venv/bin/python, else python3.
# Prints one JSON line per figure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
training="$(dirname "$here")"
python="${GPIOT_TRAIN_PYTHON:-}"
[ -z "$python" ] && [ -x "$training/.venv/bin/python" ] && python="$training/.venv/bin/python"
python="${python:-python3}"
if ! "$python" -c "import torch, transformers, peft, safetensors" 2>/dev/null; then
  echo "gpu_smoke: $python lacks the training packages; install them with: $python -m pip install -r $training/requirements.txt" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader 2>/dev/null || true
cd "$training"
exec "$python" "$here/gpu_smoke.py" "$@"
