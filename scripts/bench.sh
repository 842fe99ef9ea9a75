#!/usr/bin/env bash
# Benchmarks the release server on SQLite over loopback (100 models x 100 versions by default),
# then the audit log (append cost, offline verification, search over a million entries).
# Extra arguments go to the load generator (--models N --versions N --seconds S --clients C);
# AUDIT_BENCH_ARGS to the audit benchmark (--writes N --verify-entries N --entries N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
cargo leptos build --release
cargo build --release -p modelgate-tests --bin loadgen --bin auditbench

dir=$(mktemp -d)
port=${BENCH_PORT:-3999}
export DATABASE_URL="sqlite://$dir/bench.db"
password="bench password $(date +%s)"
echo "$password" | target/release/modelgate user add bench --role operator >/dev/null
token=$(target/release/modelgate token create --user bench --name bench --role operator 2>/dev/null)
MODELGATE_ADDR="127.0.0.1:$port" MODELGATE_LOG=warn \
  LEPTOS_SITE_ROOT=target/site target/release/modelgate serve &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
target/release/loadgen "http://127.0.0.1:$port" target/site/pkg/modelgate.wasm \
  --token "$token" --user bench --password "$password" "$@"
echo
# shellcheck disable=SC2086
target/release/auditbench ${AUDIT_BENCH_ARGS:-}
