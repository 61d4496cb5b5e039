#!/usr/bin/env bash
# Installs the Python tools for developing GPIoT (requirements-dev.txt: ruff for `npm run lint:py`)
# into .venv (git-ignored), the normal pip way. GPIoT itself needs only a python3 to run programs.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
PYTHON="$python" source scripts/lib/pip-index.sh
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
echo ".venv: $(.venv/bin/python -m ruff --version)"
