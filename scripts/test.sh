#!/usr/bin/env bash
# Everything CI checks, in order, stopping at the first failure: dependencies, formatting,
# clippy (warnings are errors) and every test of the workspace.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() {
    local name="$1"
    shift
    echo "==> $name"
    local status=0
    "$@" || status=$?
    if ((status != 0)); then
        echo "test.sh: FAILED at step: $name (exit $status)" >&2
        exit "$status"
    fi
}

step "ensure dependencies" bash scripts/ensure-deps.sh
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test" cargo test --workspace

echo "test.sh: all steps passed"
