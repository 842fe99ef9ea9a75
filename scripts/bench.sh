#!/usr/bin/env bash
# Benchmarks the release server on SQLite over loopback (100 models x 100 versions by default),
# then metrics (ingest, downsampling, charted pages) and guarded rollback (approve → SSE latency,
# request + approve throughput) on SQLite and on PostgreSQL, then the audit log (append cost,
# offline verification, search over a million entries).
# Extra arguments go to the load generator (--models N --versions N --seconds S --clients C);
# METRICS_BENCH_ARGS to the metrics benchmark (--seconds S --clients C --series-points N);
# ROLLBACK_BENCH_ARGS to the rollback benchmark (--rollbacks N --seconds S --clients C);
# AUDIT_BENCH_ARGS to the audit benchmark (--writes N --verify-entries N --entries N).
# PostgreSQL is the server at BENCH_POSTGRES (default postgres://root@127.0.0.1:5432/postgres),
# on which a scratch database is created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
source scripts/bench-lib.sh
bash scripts/build.sh --release
cargo build --release -p modelgate-tests --bin loadgen --bin metricsbench --bin rollbackbench --bin auditbench

dir=$(mktemp -d)
port=${BENCH_PORT:-3999}
admin=${BENCH_POSTGRES:-postgres://root@127.0.0.1:5432/postgres}
scratch="modelgate_bench_$$"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Starts the release server on DATABASE_URL with a bench operator and a reviewer, and their
# tokens (in $token, $password, $review_token).
start_server() {
  # Each fresh database gets its own kept checkpoint (one from an earlier database would refuse it).
  export MODELGATE_AUDIT_WITNESS_FILE="$dir/audit-checkpoint-$(date +%s%N).json"
  password="bench password $(date +%s)"
  echo "$password" | target/release/modelgate user add bench --role operator >/dev/null
  token=$(target/release/modelgate token create --user bench --name bench --role operator 2>/dev/null)
  echo "$password" | target/release/modelgate user add bench-reviewer --role reviewer >/dev/null
  review_token=$(target/release/modelgate token create --user bench-reviewer --name bench --role reviewer 2>/dev/null)
  MODELGATE_ADDR="127.0.0.1:$port" MODELGATE_LOG=warn LEPTOS_SITE_ROOT=target/site target/release/modelgate serve &
  server=$!
  wait_ready "http://127.0.0.1:$port/readyz"
}

stop_server() {
  kill "$server" && wait "$server" 2>/dev/null || true
  server=""
}

export DATABASE_URL="sqlite://$dir/bench.db"
start_server
target/release/loadgen "http://127.0.0.1:$port" \
  --token "$token" --user bench --password "$password" "$@"
echo
echo "== metrics on SQLite"
# shellcheck disable=SC2086
target/release/metricsbench "http://127.0.0.1:$port" --token "$token" ${METRICS_BENCH_ARGS:-}
echo
echo "== guarded rollback on SQLite"
# shellcheck disable=SC2086
target/release/rollbackbench "http://127.0.0.1:$port" --token "$token" --review-token "$review_token" ${ROLLBACK_BENCH_ARGS:-}
stop_server

echo
echo "== metrics and guarded rollback on PostgreSQL ($scratch)"
psql -q "$admin" -c "CREATE DATABASE $scratch"
export DATABASE_URL="${admin%/*}/$scratch"
start_server
# shellcheck disable=SC2086
target/release/metricsbench "http://127.0.0.1:$port" --token "$token" ${METRICS_BENCH_ARGS:-}
# shellcheck disable=SC2086
target/release/rollbackbench "http://127.0.0.1:$port" --token "$token" --review-token "$review_token" ${ROLLBACK_BENCH_ARGS:-}
stop_server
echo
# shellcheck disable=SC2086
target/release/auditbench ${AUDIT_BENCH_ARGS:-}
