# Sourced by the scripts: puts the project's tools on PATH (cargo's bin, wasm-opt from .tools).
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"
