#!/usr/bin/env bash
# Everything CI checks, in order, stopping at the first failure: dependencies, formatting,
# the declared rust-version, the dependency policy (cargo-deny, deny.toml), clippy (warnings are
# errors) and every test of the workspace. Cargo runs with --locked: Cargo.lock is the truth,
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

step "ensure dependencies" bash scripts/ensure-deps.sh
# cargo-deny's advisories check needs the RustSec database, which it clones from GitHub. Where
# GitHub cannot be reached (an offline or filtered CI machine) the other three checks still run,
# and the log says that advisories were not checked.
deny() {
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
step "cargo deny" deny
step "cargo clippy" cargo clippy --locked --workspace --all-targets -- -D warnings
step "cargo test" cargo test --locked --workspace

echo "test.sh: all steps passed"
