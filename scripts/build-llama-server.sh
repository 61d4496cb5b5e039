#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the llama.cpp source that node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle), offline, into
#   <repo>/.cache/llama-server/bin/llama-server        (git-ignored; override with GPIOT_LLAMA_SERVER_DIR)
# The remote-backend tests serve the tiny test models with it on 127.0.0.1.
#
# Cached: the build is skipped when the binary exists and was built from the same bundle
# (its sha256 is recorded next to the binary). Only the llama-server target is built
# (no tests, examples, web UI download, curl or OpenSSL) and it is linked statically, so
# the one file is all that is needed. Jobs: $JOBS, else every core.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${GPIOT_LLAMA_SERVER_DIR:-$REPO_ROOT/.cache/llama-server}"
BUNDLE="$REPO_ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle"
INFO="$REPO_ROOT/node_modules/node-llama-cpp/llama/llama.cpp.info.json"
JOBS="${JOBS:-$(nproc)}"

T0=$SECONDS
log() { printf '[build-llama-server +%ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { log "error: $*"; exit 1; }

[ -f "$BUNDLE" ] || die "$BUNDLE not found: run npm ci first"
command -v cmake >/dev/null || die "cmake not found (Debian: apt-get install cmake g++)"
command -v g++ >/dev/null || command -v c++ >/dev/null || die "no C++ compiler (Debian: apt-get install g++)"

tag="$(node -p 'require(process.argv[1]).tag' "$INFO" 2>/dev/null || echo unknown)"
key="$(sha256sum "$BUNDLE" | cut -d' ' -f1)"
if [ -x "$OUT/bin/llama-server" ] && [ "$(cat "$OUT/bin/BUILD_KEY" 2>/dev/null)" = "$key" ]; then
  log "llama-server (llama.cpp $tag) already built at $OUT/bin, skipping"
  exit 0
fi

log "building llama-server from llama.cpp $tag with $JOBS jobs into $OUT"
rm -rf "$OUT/src" "$OUT/build"
mkdir -p "$OUT"
git clone --quiet -c advice.detachedHead=false "$BUNDLE" "$OUT/src"
cmake -S "$OUT/src" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  >"$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; die "cmake configure failed"; }
log "configured; compiling (several minutes)"
cmake --build "$OUT/build" --target llama-server -j "$JOBS" >"$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; die "build failed (log: $OUT/build.log)"; }
mkdir -p "$OUT/bin"
cp "$OUT/build/bin/llama-server" "$OUT/bin/llama-server.tmp"
mv "$OUT/bin/llama-server.tmp" "$OUT/bin/llama-server"
echo "$key" >"$OUT/bin/BUILD_KEY"
"$OUT/bin/llama-server" --version 2>&1 | tail -2 || true
rm -rf "$OUT/src" "$OUT/build"
log "done in $((SECONDS - T0)) s: $OUT/bin/llama-server"
