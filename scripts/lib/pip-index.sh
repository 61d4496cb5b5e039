# Sourced by the install scripts. Where pip is configured with a local file:// package index (an
# offline mirror), use it as the index, so pip does not first retry an unreachable public index.
# On a machine without one, pip behaves as usual.
if [ -z "${PIP_INDEX_URL:-}" ]; then
  local_index=$("${PYTHON:-python3}" -m pip config list 2>/dev/null | grep -oE "file://[^ ']+" | head -n 1 || true)
  if [ -n "$local_index" ]; then export PIP_INDEX_URL="$local_index"; fi
fi
