#!/usr/bin/env bash
# Everything the tests need besides the npm packages, on a Debian-like machine (root for apt):
# code-server and Chromium for the VS Code tests, the Python dev tools (.venv: ruff), and the
# training packages (training/.venv: torch, transformers, peft) for `gpiot train` and its tests.
# Idempotent: each step skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-code-server.sh
bash scripts/install-python-dev.sh
bash scripts/install-training.sh
