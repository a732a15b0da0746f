#!/usr/bin/env bash
# The gateway beside LiteLLM's proxy on the same loopback upstream, in one run: installs
# LiteLLM (pinned) into a venv of its own, points it at the upstream bench-gateway starts,
# and runs bench-gateway with --other, reporting LiteLLM's added latency, CPU per request
# and RSS beside AEGIS's. LiteLLM cannot keep up with 1,000 requests/s on two cores, so it
# is driven at LITELLM_RPS (default 50), with the upstream measured again at that rate.
#   bash benches/litellm.sh [--rps 1000] [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# The newest release whose `proxy` extra resolves from the package index here.
LITELLM=${LITELLM_VERSION:-1.79.3}
VENV=${AEGIS_LITELLM_VENV:-$HOME/.cache/aegis-bench/litellm-$LITELLM}
if ! "$VENV/bin/litellm" --version >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM"
fi
cargo build --release -q -p aegis-benches -p aegis-cli
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UPSTREAM=$(free_port)
PROXY=$(free_port)
WORK=$(mktemp -d)
cat > "$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: loop-1
    litellm_params:
      model: openai/loop-1
      api_base: http://127.0.0.1:$UPSTREAM/v1
      api_key: upstream-key
general_settings:
  master_key: sk-bench
YAML
LITELLM_LOG=ERROR "$VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$PROXY" \
  > "$WORK/litellm.log" 2>&1 &
LITELLM_PID=$!
trap 'kill $LITELLM_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PROXY/health/liveliness" >/dev/null && break
  kill -0 $LITELLM_PID 2>/dev/null || { cat "$WORK/litellm.log"; exit 1; }
  sleep 1
done
echo "LiteLLM $LITELLM on port $PROXY (pid $LITELLM_PID)"
"$CARGO_TARGET_DIR/release/bench-gateway" --aegis-bin "$CARGO_TARGET_DIR/release/aegis" \
  --upstream-port "$UPSTREAM" --other "http://127.0.0.1:$PROXY/v1" --other-pid "$LITELLM_PID" \
  --other-rps "${LITELLM_RPS:-50}" "$@"
