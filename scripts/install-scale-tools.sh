#!/usr/bin/env bash
# Installs what the scale-out tests need:
#   - Debian packages: cmake and g++ (to build llama-server), docker-compose (to validate
#     deploy/vllm/compose.yaml with `docker-compose config`; no Docker daemon is needed for that);
#   - llama.cpp's llama-server, built from the llama.cpp source node-llama-cpp ships, into
#     .cache/llama-server/ (scripts/build-llama-server.sh; skipped when already built from the same source).
# Idempotent; run it after `npm ci`. apt needs root (or sudo).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
T0=$SECONDS
log() { printf '[install-scale-tools +%ss] %s\n' "$((SECONDS - T0))" "$*"; }

APT_PACKAGES=(cmake g++ docker-compose)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "apt: ${APT_PACKAGES[*]} already installed"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  log "apt: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

bash "$REPO_ROOT/scripts/build-llama-server.sh"
log "done in $((SECONDS - T0)) s"
