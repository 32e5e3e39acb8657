#!/usr/bin/env bash
# Builds the Debian package of h264create: target/debian/h264create_VERSION_amd64.deb.
#
#   scripts/package.sh                 release build of the three programs, then the package
#   scripts/package.sh --dev --no-build
#                                      package the debug binaries already in target/debug (what
#                                      `cargo test --workspace` leaves): fast, for the tests only
#
# The package holds h264-agent, h264-controller and fleetctl in /usr/bin; their systemd units
# (deploy/systemd/) in /usr/lib/systemd/system, not enabled; the configuration in
# /etc/h264create/ (agent.toml, controller.toml: conffiles); man pages and bash, zsh and fish
# completions made by the programs themselves (--generate-man, --generate-completion); the
# README and docs in /usr/share/doc/h264create. It depends on ffmpeg; its postinst makes the
# h264create system user and the folders (deploy/debian/). The metadata is in
# agent/Cargo.toml, [package.metadata.deb].
#
# cargo-deb is installed with `cargo install` when missing (CARGO_DEB_VERSION, a semver range).
# Options: --dev (the dev profile, target/debug), --no-build (package what is built),
# --fast (quicker, larger compression), --output FILE.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "package.sh: $*" >&2; }
fail() {
    echo "package.sh: $*" >&2
    exit 1
}

profile=release
build=1
deb_args=()
while (($#)); do
    case "$1" in
    --dev) profile=dev ;;
    --no-build) build=0 ;;
    --fast) deb_args+=(--fast) ;;
    --output)
        (($# >= 2)) || fail "--output needs a file"
        deb_args+=(--output "$2")
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) fail "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

programs=(h264-agent h264-controller fleetctl)
CARGO_DEB_VERSION="${CARGO_DEB_VERSION:-^3.6}"

if ! cargo deb --version >/dev/null 2>&1; then
    say "cargo-deb not found; installing it: cargo install --locked cargo-deb --version '$CARGO_DEB_VERSION'"
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
command -v dpkg-deb >/dev/null 2>&1 ||
    fail "dpkg-deb not found: build the package on Debian or Ubuntu (apt-get install dpkg-dev)"

metadata="$(cargo metadata --format-version 1 --no-deps)"
target_dir="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$metadata")"
version="$(python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "h264-agent"))
' <<<"$metadata")"
profile_dir="$target_dir/$([[ "$profile" == dev ]] && echo debug || echo release)"

if ((build)); then
    say "building ${programs[*]} ($profile profile)"
    bin_args=()
    for program in "${programs[@]}"; do bin_args+=(--bin "$program"); done
    cargo build --locked --profile "$profile" "${bin_args[@]}"
fi
for program in "${programs[@]}"; do
    [[ -x "$profile_dir/$program" ]] ||
        fail "$profile_dir/$program is missing: build it first (cargo build --profile $profile), or leave out --no-build"
done

# Man pages and completions, made by the binaries that are packaged. cargo-deb reads them from
# the profile's folder (the `target/release/` asset prefix stands for it); it takes them for
# built files and leaves them as they are, so the man pages are gzipped here (Debian policy).
assets="$profile_dir/package-assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/bash" "$assets/zsh" "$assets/fish"
for program in "${programs[@]}"; do
    "$profile_dir/$program" --generate-man "$assets/man" >/dev/null
    "$profile_dir/$program" --generate-completion bash >"$assets/bash/$program"
    "$profile_dir/$program" --generate-completion zsh >"$assets/zsh/_$program"
    "$profile_dir/$program" --generate-completion fish >"$assets/fish/$program.fish"
done
gzip -9n "$assets/man/"*.1

output="$target_dir/debian/h264create_${version}_amd64.deb"
has_output=0
for arg in "${deb_args[@]}"; do [[ "$arg" == --output ]] && has_output=1; done
((has_output)) || deb_args+=(--output "$output")
say "packaging ($profile profile): $(ls "$assets/man" | wc -l) man pages, completions for bash, zsh and fish"
cargo deb -p h264-agent --no-build --profile "$profile" "${deb_args[@]}"
