#!/usr/bin/env bash
# Parallel vs sequential CG tokens/s on a GPU, in about 5 minutes, on a machine with CUDA's nvcc,
# cmake and Python/NumPy but no Node and no network. Prepare here first (bash bench/gpu/prepare.sh),
# then run this there with .cache/gpu-bench carried along. It
#   1. builds llama.cpp's llama-server for this GPU only (CUDA, the llama-server target),
#   2. writes a random-weight model of a real shape (SHAPE=1.5b by default: Qwen2.5-1.5B-like,
#      F16; 0.5b and 7b also) with a rank-64 LoRA adapter (weights' values do not change speed),
#   3. serves it with --parallel N (PARALLEL=4, as GPIoT's default) and sends GPIoT's CG requests
#      (JSON-schema output, the adapter selected per request) one after another, then N at once,
#   4. prints tokens/s of both and their ratio.
# This is the remote path's parallel CG (concurrent requests batched by llama.cpp); the local path
# batches the sequences of one node-llama-cpp context with the same llama.cpp kernels.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IN="$ROOT/.cache/gpu-bench"
WORK="${WORK:-/tmp/gpiot-gpu-bench}"
SHAPE="${SHAPE:-1.5b}"
PARALLEL="${PARALLEL:-4}"
COUNT="${COUNT:-16}"
MAX_TOKENS="${MAX_TOKENS:-256}"
PORT="${PORT:-8093}"
T0=$SECONDS
say() { printf '[gpu-parallel +%ss] %s\n' "$((SECONDS - T0))" "$*"; }
[ -f "$IN/llama.cpp.tar.xz" ] || { echo "missing $IN: run bash bench/gpu/prepare.sh where node_modules is, and carry .cache/gpu-bench" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
mkdir -p "$WORK"

if [ ! -x "$WORK/build/bin/llama-server" ]; then
  say "building llama-server with CUDA for this GPU"
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  tar -xJf "$IN/llama.cpp.tar.xz" -C "$WORK/src"
  cmake -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF $(command -v ninja >/dev/null && echo -G Ninja) >"$WORK/configure.log" 2>&1 || { tail -30 "$WORK/configure.log"; exit 1; }
  cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
fi
say "llama-server built"

if [ ! -f "$WORK/model-$SHAPE.gguf" ]; then
  say "writing a random $SHAPE model and a rank-64 LoRA adapter"
  python3 "$ROOT/bench/gpu/make_random_gguf.py" --gguf-py "$WORK/src/gguf-py" --tiny "$IN/tiny-base.gguf" --shape "$SHAPE" \
    --out "$WORK/model-$SHAPE.gguf" --lora-out "$WORK/cg-$SHAPE.lora.gguf"
fi

say "serving it with --parallel $PARALLEL"
"$WORK/build/bin/llama-server" -m "$WORK/model-$SHAPE.gguf" --lora "$WORK/cg-$SHAPE.lora.gguf" --lora-init-without-apply \
  --alias bench --host 127.0.0.1 --port "$PORT" -ngl 999 --parallel "$PARALLEL" -c $((4096 * PARALLEL)) --no-webui \
  ${LLAMA_SERVER_ARGS:-} >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { tail -30 "$WORK/server.log"; exit 1; }
  sleep 0.5
done
grep -m3 -iE "offloaded|CUDA0" "$WORK/server.log" || true
say "measuring"
python3 "$ROOT/bench/gpu/gpu_parallel_client.py" --url "http://127.0.0.1:$PORT" --requests "$IN/cg-requests.json" \
  --parallel "$PARALLEL" --count "$COUNT" --max-tokens "$MAX_TOKENS"
say "done"
