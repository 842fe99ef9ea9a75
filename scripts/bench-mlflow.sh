#!/usr/bin/env bash
# Benchmarks the MLflow-compatible API against a real MLflow server: both started side by side on
# loopback, each on SQLite (MLflow: `mlflow server`, one worker, serving artifacts), the same
# requests sent to each, the ratio printed per request; then a file of ARTIFACT_MB MiB (default
# 1024) up and down through the MLflow client to each, beside a plain cp. MLflow (the full server,
# pinned) is installed once into .tools/mlflow-server. Extra arguments go to the request benchmark
# (--count N, default 200; --runs N, default 10,000, for runs/search).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --tests
source scripts/env.sh
source scripts/bench-lib.sh
MLFLOW_SERVER_VERSION=3.17.2
venv=.tools/mlflow-server
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null)" != "$MLFLOW_SERVER_VERSION" ]; then
  echo "installing the MLflow server $MLFLOW_SERVER_VERSION in $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mlflow==$MLFLOW_SERVER_VERSION"
fi
# The API alone is measured: the server binary without the console's WASM bundle is enough.
cargo build --release -p server --bin modelgate -p modelgate-tests --bin mlflowbench

dir=$(mktemp -d)
# A fresh database gets its own kept checkpoint (one from an earlier database would refuse it).
export MODELGATE_AUDIT_WITNESS_FILE="$dir/audit-checkpoint.json"
port=${BENCH_PORT:-3999}
mlflow_port=${BENCH_MLFLOW_PORT:-5999}
pids=()
# Each server runs in its own process group (MLflow starts workers of its own), stopped as a whole.
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$dir/bench.db"
password="bench password $(date +%s)"
echo "$password" | target/release/modelgate user add bench --role operator >/dev/null
token=$(target/release/modelgate token create --user bench --name bench --role operator 2>/dev/null)
MODELGATE_ADDR="127.0.0.1:$port" MODELGATE_LOG=warn LEPTOS_SITE_ROOT=target/site \
  MODELGATE_ARTIFACT_STORE="$dir/artifacts" setsid target/release/modelgate serve &
pids+=($!)
# MLflow's background job runner (huey consumers, busy even when idle) is switched off: it serves
# none of the measured requests and would take CPU from both servers.
mlflow_bin="$PWD/$venv/bin/mlflow"
(cd "$dir" && MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec setsid "$mlflow_bin" server \
  --backend-store-uri "sqlite:///$dir/mlflow.db" --serve-artifacts --artifacts-destination "$dir/mlartifacts" \
  --host 127.0.0.1 --port "$mlflow_port" --workers 1 \
  >"$dir/mlflow.log" 2>&1) &
pids+=($!)
wait_ready "http://127.0.0.1:$port/readyz"
wait_ready "http://127.0.0.1:$mlflow_port/health"
target/release/mlflowbench --modelgate "http://127.0.0.1:$port" --token "$token" \
  --mlflow "http://127.0.0.1:$mlflow_port" "$@"
echo
.tools/mlflow/bin/python tests/bench/artifacts.py --modelgate "http://127.0.0.1:$port" --token "$token" \
  --pid "$(pgrep -n -x modelgate)" --mlflow "http://127.0.0.1:$mlflow_port" --dir "$dir" \
  --size-mb "${ARTIFACT_MB:-1024}"
