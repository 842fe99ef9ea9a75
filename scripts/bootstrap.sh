#!/usr/bin/env bash
# Installs the tools the console's build needs (with --tests also the MLflow client and Chromium the
# tests need), from package registries only; idempotent and fast when warm.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132.0.0
MLFLOW_VERSION=3.17.2
source scripts/env.sh

step() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION (no_downloads)"
  cargo install --quiet cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

if [ -f Cargo.lock ]; then
  bindgen=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
  if [ -n "$bindgen" ] && [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen" ]; then
    step "installing wasm-bindgen-cli $bindgen (matches Cargo.lock)"
    cargo install --quiet wasm-bindgen-cli --version "$bindgen"
  fi
fi

if [ ! -x .tools/node_modules/.bin/wasm-opt ]; then
  step "installing wasm-opt (binaryen from npm)"
  npm install --silent --prefix .tools "binaryen@$BINARYEN_VERSION"
fi

if [ "${1:-}" != "--tests" ]; then
  step "ready"
  exit 0
fi

mlflow_python=.tools/mlflow/bin/python
if [ "$("$mlflow_python" -c 'import importlib.metadata as m; print(m.version("mlflow-skinny"))' 2>/dev/null)" != "$MLFLOW_VERSION" ]; then
  step "installing the MLflow client (mlflow-skinny $MLFLOW_VERSION) in .tools/mlflow for the compatibility tests"
  python3 -m venv .tools/mlflow
  "$mlflow_python" -m pip install --quiet --disable-pip-version-check "mlflow-skinny==$MLFLOW_VERSION"
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  step "installing Debian's chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

step "ready"
