#!/usr/bin/env bash
# Benchmarks the serving fleet: two release replicas on one scratch PostgreSQL database and one
# load generator simulating the agents (1,000 by default) over loopback — convergence after an
# approved rollback, idle long polls' CPU and memory, the space heartbeats take.
# Extra arguments go to the benchmark (--agents N --idle-seconds S --heartbeat-rounds R).
# PostgreSQL is the server at BENCH_POSTGRES (default postgres://root@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_args=("$@")
bash scripts/bootstrap.sh
source scripts/env.sh
source scripts/bench-lib.sh
bash scripts/build.sh --release
cargo build --release -p modelgate-tests --bin fleetbench

dir=$(mktemp -d)
admin=${BENCH_POSTGRES:-postgres://root@127.0.0.1:5432/postgres}
scratch="modelgate_fleet_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

psql -q "$admin" -c "CREATE DATABASE $scratch"
export DATABASE_URL="${admin%/*}/$scratch"
export MODELGATE_AUDIT_KEY_FILE="$dir/audit.key" MODELGATE_ASSIGNMENT_KEY_FILE="$dir/assignment.key"
export MODELGATE_ARTIFACT_STORE="$dir/artifacts" MODELGATE_LOG=warn LEPTOS_SITE_ROOT=target/site
# One load generator stands for every agent, all from one address.
export MODELGATE_MAX_CONNECTIONS_PER_ADDRESS=4096
password="bench password $(date +%s)"
target/release/modelgate migrate >/dev/null
for who in bench:operator bench-reviewer:reviewer bench-fleet:agent; do
  echo "$password" | target/release/modelgate user add "${who%%:*}" --role "${who##*:}" >/dev/null
done
token=$(target/release/modelgate token create --user bench --name bench --role operator 2>/dev/null)
review_token=$(target/release/modelgate token create --user bench-reviewer --name bench --role reviewer 2>/dev/null)
agent_token=$(target/release/modelgate token create --user bench-fleet --name bench --role agent --environment production 2>/dev/null)
servers=()
for port in 3997 3998; do
  MODELGATE_AUDIT_WITNESS_FILE="$dir/witness-$port.json" MODELGATE_ADDR="127.0.0.1:$port" \
    target/release/modelgate serve &
  pids+=($!)
  servers+=("http://127.0.0.1:$port")
  wait_ready "http://127.0.0.1:$port/readyz"
done
target/release/fleetbench --servers "${servers[0]},${servers[1]}" --pids "${pids[0]},${pids[1]}" \
  --database-url "$DATABASE_URL" --token "$token" --review-token "$review_token" --agent-token "$agent_token" "${bench_args[@]}"
