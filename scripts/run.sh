#!/usr/bin/env bash
# Builds the console (release) and serves it on http://127.0.0.1:3000 with embedded SQLite and demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
bash scripts/build.sh --release
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-target/site}"
exec target/release/modelgate serve --demo "$@"
