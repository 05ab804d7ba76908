#!/usr/bin/env bash
# Installs what the browser suites (tests/browser/) need, idempotently:
#   Debian's chromium and chromium-driver (apt, only when /usr/bin/chromium or
#   /usr/bin/chromedriver is missing; no browser download of its own), and
#   Selenium (PyPI, pinned) into .sdk/browser/ (pip --target), with a stamp file.
# Usage: scripts/install-browser.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="$ROOT/.sdk/browser"
SELENIUM_VERSION="4.38.0"
STAMP="$TARGET/.tessera-installed"

log() { printf 'install-browser: %s\n' "$*" >&2; }

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  log "installing Debian's chromium and chromium-driver"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >&2
fi

python="${PYTHON:-python3}"
py_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
want="selenium==$SELENIUM_VERSION python=$py_version"
if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "selenium $SELENIUM_VERSION already installed in .sdk/browser"
  exit 0
fi
log "installing selenium==$SELENIUM_VERSION into .sdk/browser"
rm -rf "$TARGET"
mkdir -p "$TARGET"
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
  --no-warn-script-location --no-warn-conflicts --target "$TARGET" "selenium==$SELENIUM_VERSION"
PYTHONPATH="$TARGET" "$python" -c "import selenium, sys; sys.exit(0 if selenium.__version__ == '$SELENIUM_VERSION' else 1)"
printf '%s' "$want" >"$STAMP"
log "done"
