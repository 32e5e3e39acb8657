#!/usr/bin/env bash
# Makes sure what building and testing h264create needs is present: cargo with the rustfmt and
# clippy components, and FFmpeg's `ffmpeg` and `ffprobe` on PATH.
#
# FFmpeg is installed with apt-get when it is missing on Debian/Ubuntu (as root, or through
# `sudo -n` when that works without a password); rustfmt and clippy with `rustup component add`.
# Anything that cannot be installed is named, with the command to install it, and the script
# exits 1.
set -euo pipefail

say() { echo "ensure-deps: $*"; }
fail() {
    echo "ensure-deps: $*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- Rust -------------------------------------------------------------------------------------
if ! have cargo; then
    fail "cargo not found on PATH. Install Rust (1.85 or later) with rustup, then run this again."
fi

missing_components=()
cargo fmt --version >/dev/null 2>&1 || missing_components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_components+=(clippy)
if ((${#missing_components[@]})); then
    if have rustup; then
        say "adding Rust components: ${missing_components[*]}"
        rustup component add "${missing_components[@]}"
    else
        fail "missing Rust components: ${missing_components[*]} (cargo fmt / cargo clippy)." \
            "Install them with: rustup component add ${missing_components[*]}"
    fi
fi

# --- FFmpeg -----------------------------------------------------------------------------------
missing_ffmpeg() {
    local tool missing=()
    for tool in ffmpeg ffprobe; do
        have "$tool" || missing+=("$tool")
    done
    echo "${missing[*]}"
}

missing="$(missing_ffmpeg)"
if [[ -n "$missing" ]]; then
    if have apt-get; then
        install_cmd=(apt-get install -y ffmpeg)
        if [[ "$(id -u)" -eq 0 ]]; then
            say "$missing not found; installing the ffmpeg package with apt-get"
            apt-get update
            DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
        elif have sudo && sudo -n true 2>/dev/null; then
            say "$missing not found; installing the ffmpeg package with sudo apt-get"
            sudo -n apt-get update
            sudo -n env DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
        else
            fail "missing: $missing (from the ffmpeg package). Install it with:" \
                "sudo apt-get update && sudo apt-get install -y ffmpeg"
        fi
    else
        fail "missing: $missing. Install FFmpeg with your system's package manager so that" \
            "both ffmpeg and ffprobe are on PATH."
    fi
    missing="$(missing_ffmpeg)"
    if [[ -n "$missing" ]]; then
        fail "still missing after installing ffmpeg: $missing (check PATH)."
    fi
fi

say "found cargo, rustfmt, clippy, $(ffmpeg -hide_banner -version | head -n 1 | cut -d' ' -f1-3)" \
    "and ffprobe"
