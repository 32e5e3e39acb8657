#!/usr/bin/env bash
# Checks the workspace's declared `rust-version` (Cargo.toml) against what the build needs:
# every dependency in Cargo.lock that declares a rust-version must declare one no newer than
# ours. Our own code's use of the standard library is checked by clippy's `incompatible_msrv`
# lint, which reads the same rust-version (scripts/test.sh runs clippy with -D warnings).
# Only the Linux build graph counts (the programs run on Linux only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo metadata --locked --format-version 1 --filter-platform x86_64-unknown-linux-gnu |
    python3 -c '
import json, sys

def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
in_graph = {node["id"] for node in meta["resolve"]["nodes"]}
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"check-msrv: the workspace members declare rust-version {sorted(map(str, ours))}; "
             "give them all `rust-version.workspace = true`")
declared = ours.pop()
newer = sorted(
    (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in in_graph and p["id"] not in members and p.get("rust_version")
    and version(p["rust_version"]) > version(declared)
)
for name, ver, rv in newer:
    print(f"check-msrv: {name} {ver} needs Rust {rv}, newer than our rust-version {declared}",
          file=sys.stderr)
if newer:
    sys.exit("check-msrv: raise rust-version in Cargo.toml, or pin older versions of those crates")
print(f"check-msrv: every dependency builds with Rust {declared} (the declared rust-version)")
'
