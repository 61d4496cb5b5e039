#!/usr/bin/env bash
# `npm run lint:py`: ruff over the Python GPIoT ships and the repository's own Python, with the ruff
# of .venv (scripts/install-python-dev.sh) or, failing that, the one of python3.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
if ! "$python" -m ruff --version >/dev/null 2>&1; then
  echo "lint:py: ruff is not installed; run: bash scripts/install-python-dev.sh" >&2
  exit 1
fi
exec "$python" -m ruff check sidecar/python iotbench test/fixtures test/helpers scripts training
