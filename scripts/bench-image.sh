#!/usr/bin/env bash
# Benchmarks the OCI image under runc as a platform runs it: its size, start → ready and SIGTERM →
# exit, one replica's memory and throughput on a scratch PostgreSQL database with the Kubernetes
# recipe's settings. Extra arguments go to the benchmark (--starts N --versions N --seconds S
# --clients C); PostgreSQL is MODELGATE_TEST_POSTGRES (default postgres://root@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --tests
source scripts/env.sh
bash scripts/image.sh
cargo build --release -p modelgate-tests --bin imagebench
target/release/imagebench "$@"
