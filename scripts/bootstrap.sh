#!/usr/bin/env bash
# Installs the tools the console's build needs (with --tests also the MLflow client, an S3 server
# and Chromium the tests need), from package registries only; idempotent and fast when warm.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARYEN_VERSION=132.0.0
ESBUILD_VERSION=0.28.2
MLFLOW_VERSION=3.17.2
SKLEARN_VERSION=1.9.1
MATPLOTLIB_VERSION=3.11.2
# The newest s3s-fs that builds with this machine's Rust (1.95).
S3S_FS_VERSION=0.14.1
KUBERNETES_VALIDATE_VERSION=1.37.0
AXE_CORE_VERSION=4.14.1
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
installed() { "$mlflow_python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }
if [ "$(installed mlflow)" != "$MLFLOW_VERSION" ] || [ "$(installed scikit-learn)" != "$SKLEARN_VERSION" ] \
  || [ "$(installed matplotlib)" != "$MATPLOTLIB_VERSION" ]; then
  step "installing MLflow $MLFLOW_VERSION, scikit-learn and matplotlib in .tools/mlflow for the compatibility tests"
  python3 -m venv .tools/mlflow
  "$mlflow_python" -m pip install --quiet --disable-pip-version-check "mlflow==$MLFLOW_VERSION" \
    "scikit-learn==$SKLEARN_VERSION" "matplotlib==$MATPLOTLIB_VERSION"
fi

if [ "$(s3s-fs --version 2>/dev/null)" != "s3s-fs $S3S_FS_VERSION" ]; then
  step "installing s3s-fs $S3S_FS_VERSION (an S3-protocol server) from crates.io for the S3 artifact-store tests"
  cargo install --quiet --locked --features binary --version "$S3S_FS_VERSION" s3s-fs
fi

if [ ! -f .tools/node_modules/axe-core/axe.min.js ] \
  || [ "$(node -p 'require("./.tools/node_modules/axe-core/package.json").version')" != "$AXE_CORE_VERSION" ]; then
  step "installing axe-core $AXE_CORE_VERSION from npm for the accessibility checks of the browser tests"
  npm install --silent --prefix .tools "axe-core@$AXE_CORE_VERSION"
fi

validator=.tools/kubernetes-validate/bin/kubernetes-validate
if [ "$("$validator" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  step "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (offline Kubernetes schemas) for the recipe's tests"
  python3 -m venv .tools/kubernetes-validate
  .tools/kubernetes-validate/bin/pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# Debian's packages: the browser and its driver, the OCI runtime and image tool, the database
# clients the backup tests use.
packages=(chromium chromium-driver runc umoci sqlite3 postgresql-client)
commands=(chromium chromedriver runc umoci sqlite3 pg_dump)
for i in "${!commands[@]}"; do
  if ! command -v "${commands[$i]}" >/dev/null; then
    step "installing Debian's ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${packages[@]}" >/dev/null
    break
  fi
done

step "ready"
