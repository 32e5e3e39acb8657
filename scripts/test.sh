#!/usr/bin/env bash
# Everything CI checks, in order, stopping at the first failure: dependencies, formatting,
# the declared rust-version, clippy (warnings are errors), every test of the workspace and the
# dependency policy (cargo-deny, deny.toml). Cargo runs with --locked: Cargo.lock is the truth,
# and a build that would change it fails.
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

step "ensure dependencies" env H264_CARGO_DENY_IN_BACKGROUND=1 bash scripts/ensure-deps.sh

# cargo-deny (for the dependency policy, checked last) takes minutes to compile: when it is
# missing it is installed now, in the background at the lowest CPU priority, so that it uses
# what the build and the tests leave idle; the "cargo deny" step waits for it.
DENY_INSTALL_LOG=""
DENY_INSTALL_PID=""
if ! cargo deny --version >/dev/null 2>&1; then
    DENY_INSTALL_LOG="$(mktemp -t h264-cargo-deny-install.XXXXXX.log)"
    echo "==> installing cargo-deny in the background (log: $DENY_INSTALL_LOG)"
    nice -n 19 cargo install --locked cargo-deny --version "${CARGO_DENY_VERSION:-^0.20}" \
        >"$DENY_INSTALL_LOG" 2>&1 &
    DENY_INSTALL_PID=$!
fi
# cargo-deny's advisories check needs the RustSec database, which it clones from GitHub. Where
# GitHub cannot be reached (an offline or filtered CI machine) the other three checks still run,
# and the log says that advisories were not checked.
deny() {
    if [[ -n "$DENY_INSTALL_PID" ]] && ! wait "$DENY_INSTALL_PID"; then
        cat "$DENY_INSTALL_LOG" >&2
        echo "test.sh: cannot install cargo-deny: cargo install --locked cargo-deny" >&2
        return 1
    fi
    if cargo deny --log-level error fetch db; then
        cargo deny --locked check
    else
        echo "test.sh: WARNING: the RustSec advisory database cannot be fetched (no access to" \
            "github.com?); checking licenses, bans and sources only, NOT advisories" >&2
        cargo deny --locked check licenses bans sources
    fi
}

step "cargo fmt --check" cargo fmt --all -- --check
step "rust-version" bash scripts/check-msrv.sh
step "cargo clippy" cargo clippy --locked --workspace --all-targets -- -D warnings
step "cargo test" cargo test --locked --workspace
step "cargo deny" deny

echo "test.sh: all steps passed"
