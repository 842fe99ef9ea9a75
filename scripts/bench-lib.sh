# Sourced by the benchmark scripts: what they share.

# Waits up to 30 s for URL to answer with success; exits the script otherwise.
wait_ready() {
  for _ in $(seq 1 300); do
    curl -fs "$1" >/dev/null && return
    sleep 0.1
  done
  echo "$1 did not become ready" >&2
  exit 1
}
