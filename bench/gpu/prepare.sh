#!/usr/bin/env bash
# Run HERE (where node_modules is), before bench/gpu-parallel.sh runs on a GPU machine that has
# no Node and no network: writes .cache/gpu-bench/ (about 8 MB, git-ignored; carry it there) with
#   llama.cpp.tar.xz   the llama.cpp source node-llama-cpp ships (without models/docs/UI sources)
#   tiny-base.gguf     GPIoT's tiny model (its tokenizer and chat template seed the random model)
#   cg-requests.json   GPIoT's CG prompts for five sub-tasks and the answer's JSON Schema
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/.cache/gpu-bench"
BUNDLE="$ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$BUNDLE" ] || { echo "missing $BUNDLE: run npm ci first" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
git clone --quiet -c advice.detachedHead=false "$BUNDLE" "$SRC/llama.cpp"
git -C "$SRC/llama.cpp" archive --format=tar HEAD -- . ':!models' ':!docs' ':!media' ':!.github' ':!tools/ui/src' ':!tools/ui/tests' | xz -T0 -6 >"$OUT/llama.cpp.tar.xz"
[ -f "$ROOT/models/tiny/tiny-base.gguf" ] || (cd "$ROOT" && npm run -s models:tiny)
cp "$ROOT/models/tiny/tiny-base.gguf" "$OUT/"
(cd "$ROOT" && npx tsx bench/gpu/exportCgRequests.ts "$OUT/cg-requests.json")
du -sh "$OUT"
echo "Now run on the GPU machine, carrying .cache/gpu-bench:  bash bench/gpu-parallel.sh"
