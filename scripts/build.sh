#!/usr/bin/env bash
# Builds the console: the `modelgate` server binary and the site it serves from target/site (the
# WASM chunks, their JavaScript glue, the stylesheet, sealed in pkg/<digest>/ with brotli and gzip
# forms). `--release` builds what the run command serves; `--release-site` the same site beside a
# debug server, as the tests use it (the browser tests measure the bytes users download).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

case "${1:-}" in
  --release) server_profile=release wasm_profile=wasm-release wasm_dir=wasm-release ;;
  --release-site) server_profile=dev wasm_profile=wasm-release wasm_dir=wasm-release ;;
  *) server_profile=dev wasm_profile=dev wasm_dir=debug ;;
esac
staging=target/site-staging

# The WASM builds in a target directory of its own so both cargo runs share the two cores at once
# instead of waiting on each other's lock.
cargo build --quiet -p frontend --lib --target wasm32-unknown-unknown --profile "$wasm_profile" \
  --target-dir target/front &
wasm_build=$!
trap 'kill "$wasm_build" 2>/dev/null || true' EXIT
# The site builder runs for seconds even unoptimised, so it is always the quick-to-compile dev build.
cargo build --quiet -p site-builder
cargo build --quiet -p server --bin modelgate --profile "$server_profile"
wait "$wasm_build"

target/debug/site-builder split "target/front/wasm32-unknown-unknown/$wasm_dir/frontend.wasm" "$staging"
if [ "$wasm_profile" = wasm-release ]; then
  # wasm-opt drops the names the split chunks carry, after a warning per chunk that it does not
  # know their label names: only that warning is filtered out.
  printf '%s\n' "$staging"/*.wasm | xargs -P "$(nproc)" -I{} \
    wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int {} -o {} 2>&1 \
    | { grep -v '^warning: unknown name subsection' || true; }
  # wasm-bindgen's glue names the split loader once per import; the repeated keys are harmless.
  esbuild --log-level=warning --log-override:duplicate-object-key=silent --minify \
    --allow-overwrite "$staging/modelgate.js" --outfile="$staging/modelgate.js"
  minify=--minify
fi
esbuild --log-level=warning --bundle ${minify:-} --target=chrome109,firefox115,safari15.6 \
  style/main.css --outfile="$staging/modelgate.css"
target/debug/site-builder seal "$staging" target/site
