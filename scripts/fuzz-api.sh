#!/usr/bin/env bash
# Schema fuzzing: schemathesis (pinned, installed here into .sdk/schemathesis) drives a freshly
# started server from its own /openapi.json, checking for server errors, response schema
# conformance, status code conformance and content types. Zero failures is the bar; each
# finding becomes a regression test in the Rust suite.
#
# Usage: scripts/fuzz-api.sh [max examples per operation, default 25]
# Needs the server binary (target/debug/tessera, built by `cargo test`; override: TESSERA_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=.sdk/schemathesis
if [[ "$(cat "$VENV/.tessera-version" 2>/dev/null)" != "$VERSION" ]]; then
  echo "fuzz-api: installing schemathesis==$VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
  echo "$VERSION" > "$VENV/.tessera-version"
fi

BIN="${TESSERA_BIN:-target/debug/tessera}"
work="$(mktemp -d)"
"$BIN" --database-url "$work/fuzz.db" serve --listen 127.0.0.1:0 2> "$work/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  grep -q 'tessera is listening' "$work/server.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
addr="$(grep -o 'address=[0-9.:]*' "$work/server.log" | head -1 | cut -d= -f2)"
key="$(grep -o 'sk_[A-Za-z0-9_]*' "$work/server.log" | head -1)"

set +e
"$VENV/bin/schemathesis" run "http://$addr/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --header "Authorization: Bearer $key" \
  --max-examples "${1:-25}" \
  --seed 1 \
  --no-color
rc=$?
set -e
if grep -q 'panicked' "$work/server.log"; then
  echo "fuzz-api: the server logged a panic:" >&2
  grep -A3 'panicked' "$work/server.log" >&2
  exit 1
fi
exit $rc
