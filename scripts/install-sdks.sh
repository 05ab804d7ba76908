#!/usr/bin/env bash
# Installs the pinned official WorkOS SDKs used by the SDK conformance tests
# (tests/sdk/). Idempotent: a stamp file per SDK records what was installed, and
# a second run with unchanged pins does nothing.
#
#   Python  workos==5.46.0           -> .sdk/python-v5/        (pip --target)
#   Python  pyflakes==4.1.0          -> .sdk/pyflakes/         (lints the README's Python)
#   Node    @workos-inc/node@8.13.0  -> tests/sdk/node/node_modules (npm ci)
# and, when missing and apt-get may run, the README test's tools jq and oathtool.
#
# Usage: scripts/install-sdks.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDK_DIR="$ROOT/.sdk"
NODE_DIR="$ROOT/tests/sdk/node"

PY_SDK_VERSION="5.46.0"
PY_TARGET="$SDK_DIR/python-v5"
PY_STAMP="$PY_TARGET/.tessera-installed"

NODE_STAMP="$NODE_DIR/node_modules/.tessera-installed"

FORCE=0
if [[ "${1:-}" == "--force" ]]; then
  FORCE=1
fi

log() { printf 'install-sdks: %s\n' "$*" >&2; }

# Hash of a file, or "none" when it does not exist.
file_hash() {
  if [[ -f "$1" ]]; then
    sha256sum "$1" | cut -d' ' -f1
  else
    echo none
  fi
}

# ---------------------------------------------------------------- python v5
install_python() {
  local python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null 2>&1; then
    log "ERROR: $python not found"
    return 1
  fi
  local py_version
  py_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  local want="workos==$PY_SDK_VERSION python=$py_version"

  if [[ $FORCE -eq 0 && -f "$PY_STAMP" && "$(cat "$PY_STAMP")" == "$want" ]]; then
    log "python: workos $PY_SDK_VERSION already installed in ${PY_TARGET#"$ROOT"/}"
    return 0
  fi

  log "python: installing workos==$PY_SDK_VERSION into ${PY_TARGET#"$ROOT"/}"
  rm -rf "$PY_TARGET"
  mkdir -p "$PY_TARGET"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location --no-warn-conflicts \
    --target "$PY_TARGET" "workos==$PY_SDK_VERSION"
  # Sanity check: the installed package imports and reports the pinned version.
  PYTHONPATH="$PY_TARGET" "$python" - "$PY_TARGET" "$PY_SDK_VERSION" <<'PY'
import importlib.metadata as md
import os
import sys

target, want = sys.argv[1], sys.argv[2]
import workos
from workos import WorkOSClient  # noqa: F401

if os.path.dirname(os.path.dirname(os.path.abspath(workos.__file__))) != os.path.abspath(target):
    sys.exit(f"workos imported from {workos.__file__}, not from {target}")
got = [d.version for d in md.distributions(path=[target]) if d.metadata["Name"] == "workos"]
if got != [want]:
    sys.exit(f"installed workos {got}, expected {want}")
PY
  printf '%s' "$want" >"$PY_STAMP"
  log "python: done"
}

# ---------------------------------------------------------------- pyflakes
# The README test (crates/server/tests/api/readme.rs) checks the README's Python blocks for
# undefined names with it.
PYFLAKES_VERSION="4.1.0"
PYFLAKES_TARGET="$SDK_DIR/pyflakes"
PYFLAKES_STAMP="$PYFLAKES_TARGET/.tessera-installed"
install_pyflakes() {
  local python="${PYTHON:-python3}"
  local want="pyflakes==$PYFLAKES_VERSION"
  if [[ $FORCE -eq 0 && -f "$PYFLAKES_STAMP" && "$(cat "$PYFLAKES_STAMP")" == "$want" ]]; then
    log "python: pyflakes $PYFLAKES_VERSION already installed in ${PYFLAKES_TARGET#"$ROOT"/}"
    return 0
  fi
  log "python: installing pyflakes==$PYFLAKES_VERSION into ${PYFLAKES_TARGET#"$ROOT"/}"
  rm -rf "$PYFLAKES_TARGET"
  mkdir -p "$PYFLAKES_TARGET"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location --target "$PYFLAKES_TARGET" "pyflakes==$PYFLAKES_VERSION"
  PYTHONPATH="$PYFLAKES_TARGET" "$python" -m pyflakes --version >/dev/null
  printf '%s' "$want" >"$PYFLAKES_STAMP"
}

# ---------------------------------------------------------------- README tools
# jq and oathtool (Debian packages) are called by the README's quick start, which the README
# test runs. Installed only when missing, and only where apt-get can run (root or sudo).
install_readme_tools() {
  local missing=()
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  command -v oathtool >/dev/null 2>&1 || missing+=(oathtool)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "tools: jq, oathtool and curl present"
    return 0
  fi
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      log "ERROR: ${missing[*]} missing; install them (apt-get install ${missing[*]})"
      return 1
    fi
  fi
  log "tools: installing ${missing[*]} with apt-get"
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# ---------------------------------------------------------------- node
install_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "ERROR: node/npm not found"
    return 1
  fi
  local want
  want="lock=$(file_hash "$NODE_DIR/package-lock.json") pkg=$(file_hash "$NODE_DIR/package.json") node=$(node --version)"

  if [[ $FORCE -eq 0 && -f "$NODE_STAMP" && "$(cat "$NODE_STAMP")" == "$want" ]]; then
    log "node: @workos-inc/node already installed in ${NODE_DIR#"$ROOT"/}/node_modules"
    return 0
  fi

  log "node: installing @workos-inc/node (pinned in tests/sdk/node/package.json)"
  (
    cd "$NODE_DIR"
    if [[ -f package-lock.json ]]; then
      npm ci --no-audit --no-fund --loglevel=error >&2
    else
      npm install --no-audit --no-fund --loglevel=error >&2
    fi
  )
  local installed
  installed="$(node -p "require('$NODE_DIR/node_modules/@workos-inc/node/package.json').version")"
  local pinned
  pinned="$(node -p "require('$NODE_DIR/package.json').dependencies['@workos-inc/node']")"
  if [[ "$installed" != "$pinned" ]]; then
    log "ERROR: installed @workos-inc/node $installed, expected $pinned"
    return 1
  fi
  printf '%s' "$want" >"$NODE_STAMP"
  log "node: done (@workos-inc/node $installed)"
}

install_python
install_pyflakes
install_readme_tools
install_node
