#!/usr/bin/env bash
# Installs the tools the console's build needs (with --tests also the MLflow client and Chromium the
# tests need), from package registries only; idempotent and fast when warm.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARYEN_VERSION=132.0.0
ESBUILD_VERSION=0.28.2
MLFLOW_VERSION=3.17.2
source scripts/env.sh

step() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ ! -x .tools/node_modules/.bin/wasm-opt ] || [ ! -x .tools/node_modules/.bin/esbuild ] \
  || [ "$(.tools/node_modules/.bin/esbuild --version)" != "$ESBUILD_VERSION" ]; then
  step "installing wasm-opt (binaryen) and esbuild from npm"
  npm install --silent --prefix .tools "binaryen@$BINARYEN_VERSION" "esbuild@$ESBUILD_VERSION"
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
