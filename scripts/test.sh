#!/usr/bin/env bash
# Runs every test: unit tests, API tests on SQLite and PostgreSQL, the browser end-to-end suite, and
# the deployment tests (the OCI image under runc, the Kubernetes recipe, backup and restore).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --tests
source scripts/env.sh

# PostgreSQL is started on every machine of this kind; start it if it stopped. Tests that need it
# fail (never skip) when it is unreachable.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi

echo "== building the console (server + WASM) for the browser tests"
bash scripts/build.sh --release-site
echo "== building the OCI image (release) for the deployment tests"
bash scripts/image.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests"
cargo test -p app --features ssr --lib 2>&1 | tee -a "$log"
cargo test -p server --lib --bins --test floors 2>&1 | tee -a "$log"

echo "== API tests (SQLite and PostgreSQL), end-to-end tests (headless Chromium), deployment tests (runc)"
# Bounded, so a hung test fails the run instead of holding CI to its limit.
timeout 30m cargo test -p modelgate-tests --test api --test e2e --test deploy 2>&1 | tee -a "$log"

passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "all tests: $passed passed, $failed failed"
