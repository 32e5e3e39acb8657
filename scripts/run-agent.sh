#!/usr/bin/env bash
# Builds and runs h264-agent from this checkout: `scripts/run-agent.sh [AGENT ARGS...]`.
#
# Without arguments the agent runs with its built-in default configuration, relative to the
# current directory: it watches ./var/incoming, writes MP4 files to ./var/h264 and keeps its
# state in ./var/state. Arguments are passed to the agent as they are (see README.md), e.g.
# `scripts/run-agent.sh --config agent.toml`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$root/scripts/ensure-deps.sh"
cargo build --release --manifest-path "$root/Cargo.toml" -p h264-agent

if (($# == 0)); then
    mkdir -p ./var/incoming
    echo "Drop recordings (.ts, .wtv, .mp4) into ./var/incoming; MP4 files appear in ./var/h264. Ctrl-C stops."
fi

exec cargo run --release --quiet --manifest-path "$root/Cargo.toml" -p h264-agent -- "$@"
