#!/usr/bin/env bash
# Everything the tests need besides the npm packages, on a Debian-like machine (root for apt):
# code-server and Chromium for the VS Code tests; llama.cpp's llama-server (built from the source
# node-llama-cpp ships) and docker-compose for the remote-backend and deploy/ tests; the Python dev
# tools (.venv: ruff); and the training packages (training/.venv: torch, transformers, peft) for
# `gpiot train` and its tests.
# Idempotent: each step skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-code-server.sh
started=$SECONDS
bash scripts/install-scale-tools.sh
echo "llama-server and docker-compose ready in $((SECONDS - started)) s"
bash scripts/install-python-dev.sh
bash scripts/install-training.sh
