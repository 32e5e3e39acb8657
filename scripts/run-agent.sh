#!/usr/bin/env bash
# Builds and runs h264create from this checkout: `scripts/run-agent.sh [AGENT ARGS...]`.
#
# Without arguments it starts a controller (listening on 127.0.0.1:7443, state in
# ./var/controller) and one agent joined to it, with the agent's built-in default configuration,
# relative to the current directory: it watches ./var/incoming, writes MP4 files to ./var/h264
# and keeps its state in ./var/state. The controller writes its first admin token to
# ./var/controller/admin.token (0600); `fleetctl --token-file ./var/controller/admin.token
# status --watch` shows the fleet, and the script prints the line to export
# (FLEETCTL_TOKEN_FILE) so every later fleetctl command finds it. Ctrl-C stops both.
#
# With arguments only the agent runs, with those arguments (see README.md), e.g.
# `scripts/run-agent.sh --config agent.toml`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/target/release"

bash "$root/scripts/ensure-deps.sh"
cargo build --release --manifest-path "$root/Cargo.toml" \
    -p h264-agent -p h264-controller -p fleetctl

if (($# > 0)); then
    exec "$bin/h264-agent" "$@"
fi

mkdir -p ./var/incoming ./var/controller
"$bin/h264-controller" --listen 127.0.0.1:7443 --state-dir ./var/controller \
    >./var/controller.out 2>./var/controller.log &
controller=$!
trap 'kill "$controller" 2>/dev/null; wait "$controller" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    grep -q "listening on" ./var/controller.out 2>/dev/null && break
    kill -0 "$controller" 2>/dev/null || { cat ./var/controller.log >&2; exit 3; }
    sleep 0.1
done
for _ in $(seq 50); do
    [[ -s ./var/controller/admin.token ]] && break
    sleep 0.1
done
token_file="$(pwd)/var/controller/admin.token"
echo "Controller on http://127.0.0.1:7443 (log: ./var/controller.log); admin token in $token_file."
echo "  For fleetctl: export FLEETCTL_TOKEN_FILE=$token_file"
echo "  Watch the fleet: $bin/fleetctl --token-file $token_file status --watch"
echo "Drop recordings (.ts, .wtv, .mp4) into ./var/incoming; MP4 files appear in ./var/h264. Ctrl-C stops."
"$bin/h264-agent" --controller http://127.0.0.1:7443
