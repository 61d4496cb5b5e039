#!/usr/bin/env bash
# Installs what the real-VS-Code extension tests need, offline-friendly:
#   - Debian packages: libkrb5-dev (kerberos headers for code-server's postinstall),
#     ripgrep (its `rg` stands in for the @vscode/ripgrep download) and chromium
#     (driven headless by playwright-core).
#   - code-server@4.100.3 (bundles VS Code 1.100.3; the newest one accepting Node 20)
#     into <repo>/.tools/code-server/ (git-ignored).
# Idempotent: apt is skipped when the packages are present, npm when code-server
# is already installed at that version. Meant to run as root on a fresh Debian
# machine that can reach only the npm registry and Debian's apt mirrors.
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
# What code-server 4.100.3's @vscode/ripgrep (1.15.11) would otherwise fetch from GitHub.
RG_CACHE_DIR_NAME="vscode-ripgrep-cache-1.15.11"
RG_TARBALL_NAME="ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$REPO_ROOT/.tools/code-server"
ENTRY="$PREFIX/node_modules/code-server/out/node/entry.js"
PKG_JSON="$PREFIX/node_modules/code-server/package.json"
APT_PACKAGES=(libkrb5-dev ripgrep chromium)

T0=$SECONDS
log() { printf '[install-code-server +%ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { log "error: $*"; exit 1; }

# A private TMPDIR (and HOME for the version probe): @vscode/ripgrep looks for its
# download cache under os.tmpdir(), native builds leave scratch files there, and
# code-server writes ~/.config/code-server and ~/.local/share/code-server on start.
PRIVATE_TMP="$(mktemp -d "${TMPDIR:-/tmp}/gpiot-code-server-install.XXXXXX")"
trap 'rm -rf "$PRIVATE_TMP"' EXIT

# ---------------------------------------------------------------- apt packages
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "apt: ${APT_PACKAGES[*]} already installed, skipping"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  log "apt: missing ${missing[*]}; running apt-get update"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  log "apt: installing ${APT_PACKAGES[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${APT_PACKAGES[@]}"
  log "apt: done"
fi
RG_BIN="$(command -v rg || true)"
[ -n "$RG_BIN" ] || die "rg not found after apt install"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium not found after apt install"

# ------------------------------------------------------------------ code-server
installed_version=""
if [ -f "$ENTRY" ] && [ -f "$PKG_JSON" ]; then
  installed_version="$(node -p "require(process.argv[1]).version" "$PKG_JSON" 2>/dev/null || true)"
fi
if [ "$installed_version" = "$CODE_SERVER_VERSION" ]; then
  log "code-server $CODE_SERVER_VERSION already installed at $PREFIX, skipping npm"
else
  if [ -n "$installed_version" ]; then
    log "code-server $installed_version found, replacing it with $CODE_SERVER_VERSION"
  fi
  mkdir -p "$PREFIX"
  log "pre-seeding the ripgrep download cache with $RG_BIN"
  mkdir -p "$PRIVATE_TMP/$RG_CACHE_DIR_NAME" "$PRIVATE_TMP/rg-pack"
  cp "$RG_BIN" "$PRIVATE_TMP/rg-pack/rg"
  tar -czf "$PRIVATE_TMP/$RG_CACHE_DIR_NAME/$RG_TARBALL_NAME" -C "$PRIVATE_TMP/rg-pack" rg
  # A package.json of its own keeps npm's files inside the prefix (the repo's
  # package.json and lockfile stay untouched) and approves the two install scripts
  # that code-server needs for npm versions that gate scripts behind allowScripts.
  cat > "$PREFIX/package.json" <<'JSON'
{
  "name": "gpiot-tools-code-server",
  "private": true,
  "allowScripts": { "code-server": true, "argon2": true }
}
JSON
  rm -f "$PREFIX/package-lock.json"
  log "npm: installing code-server@$CODE_SERVER_VERSION into $PREFIX (takes ~1 min)"
  (
    cd "$PREFIX"
    TMPDIR="$PRIVATE_TMP" \
    npm_config_unsafe_perm=true \
    npm_config_yes=true \
    npm i --prefix "$PREFIX" -E --no-audit --no-fund --loglevel=warn "code-server@$CODE_SERVER_VERSION"
  )
  [ -f "$ENTRY" ] || die "$ENTRY missing after npm install"
  log "npm: done"
fi

# ---------------------------------------------------------------- sanity check
# The native modules that the postinstall builds; missing ones mean a broken install.
# (code-server's postinstall runs a nested `npm install` in lib/vscode that builds them.)
VSC="$PREFIX/node_modules/code-server/lib/vscode"
for f in \
  "$VSC/node_modules/@vscode/ripgrep/bin/rg" \
  "$VSC/node_modules/node-pty/build/Release/pty.node" \
  "$VSC/node_modules/kerberos/build/Release/kerberos.node" \
  "$VSC/node_modules.asar"; do
  [ -e "$f" ] || die "$f is missing: code-server's postinstall did not run or failed (delete $PREFIX and rerun)"
done
version="$(HOME="$PRIVATE_TMP/home" XDG_CONFIG_HOME="$PRIVATE_TMP/home/.config" \
  XDG_DATA_HOME="$PRIVATE_TMP/home/.local/share" node "$ENTRY" --version 2>/dev/null | tail -1)"
log "code-server: $version"
log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
log "done in $((SECONDS - T0)) s"
