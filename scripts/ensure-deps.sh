#!/usr/bin/env bash
# Makes sure what building and testing h264create needs is present: cargo with the rustfmt and
# clippy components, FFmpeg's `ffmpeg` and `ffprobe` on PATH, Python 3 with `aiosmtpd` (the
# real SMTP server the alert tests run on loopback), and what the packaging and deployment tests
# use: cargo-deb (`cargo install`), cargo-deny (the dependency policy, `cargo install`), dpkg-deb,
# `systemd-analyze` (Debian's systemd package) and the Python package `kubernetes-validate` (with
# the Kubernetes schemas it ships); and for the web console's browser test, Debian's `chromium`
# and `chromium-driver` (apt-get).
#
# FFmpeg is installed with apt-get when it is missing on Debian/Ubuntu (as root, or through
# `sudo -n` when that works without a password); rustfmt and clippy with `rustup component add`;
# aiosmtpd with apt-get (python3-aiosmtpd) when `python3` is the system's, else with
# `python3 -m pip install --user` (inside a virtualenv: without --user); kubernetes-validate with
# pip the same way; systemd and dpkg-dev with apt-get; cargo-deb and cargo-deny with
# `cargo install --locked` (from crates.io).
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
    fail "cargo not found on PATH. Install Rust (1.91 or later) with rustup, then run this again."
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

# --- Python's aiosmtpd (the alert tests' SMTP server) --------------------------------------
have_aiosmtpd() { python3 -c 'import aiosmtpd' >/dev/null 2>&1; }
# The system's own interpreter (Debian's python3-* packages install into it), not a virtualenv,
# pyenv or a hand-built one.
system_python() {
    python3 -c 'import sys; sys.exit(0 if sys.prefix == sys.base_prefix == "/usr" else 1)' \
        >/dev/null 2>&1
}
in_virtualenv() { python3 -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)'; }

install_aiosmtpd_apt() {
    have apt-get && system_python || return 1
    local install_cmd=(apt-get install -y --no-install-recommends python3-aiosmtpd)
    if [[ "$(id -u)" -eq 0 ]]; then
        say "aiosmtpd not found; installing python3-aiosmtpd with apt-get"
        apt-get update && DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
    elif have sudo && sudo -n true 2>/dev/null; then
        say "aiosmtpd not found; installing python3-aiosmtpd with sudo apt-get"
        sudo -n apt-get update && sudo -n env DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
    else
        return 1
    fi
}

# `pip install` of the Python package $1 for the python3 on PATH.
install_pip() {
    python3 -m pip --version >/dev/null 2>&1 || return 1
    local pip_cmd=(python3 -m pip install --disable-pip-version-check)
    in_virtualenv || pip_cmd+=(--user)
    say "$1 not found; installing it with ${pip_cmd[*]} $1"
    local log status=0
    log="$("${pip_cmd[@]}" "$1" 2>&1)" || status=$?
    if ((status != 0)) && grep -q externally-managed-environment <<<"$log"; then
        # PEP 668: the interpreter is managed by the system, which has no package for it here.
        say "pip refused (externally managed environment); retrying with --break-system-packages"
        "${pip_cmd[@]}" --break-system-packages "$1"
    elif ((status != 0)); then
        echo "$log" >&2
        return 1
    fi
}

install_aiosmtpd_pip() { install_pip aiosmtpd; }

if ! have python3; then
    fail "python3 not found on PATH (the alert tests run Python's aiosmtpd as their SMTP" \
        "server). Install it with: sudo apt-get install -y python3 python3-aiosmtpd"
fi
if ! have_aiosmtpd; then
    install_aiosmtpd_apt || install_aiosmtpd_pip || true
    if ! have_aiosmtpd; then
        if system_python && have apt-get; then
            how="sudo apt-get update && sudo apt-get install -y python3-aiosmtpd"
        else
            how="python3 -m pip install --user aiosmtpd"
        fi
        fail "Python module aiosmtpd not found for $(command -v python3) (the alert tests'" \
            "SMTP server). Install it with: $how"
    fi
fi

# --- Packaging and deployment tests ---------------------------------------------------------
# apt-get install of Debian packages, as root or through sudo -n; 1 when neither works.
apt_install() {
    have apt-get || return 1
    local install_cmd=(apt-get install -y --no-install-recommends "$@")
    if [[ "$(id -u)" -eq 0 ]]; then
        say "installing $* with apt-get"
        apt-get update && DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
    elif have sudo && sudo -n true 2>/dev/null; then
        say "installing $* with sudo apt-get"
        sudo -n apt-get update && sudo -n env DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
    else
        return 1
    fi
}

# systemd-analyze verifies the packaged units; dpkg-deb and dpkg-shlibdeps build the package.
missing_debs=()
have systemd-analyze || missing_debs+=(systemd)
have dpkg-deb || missing_debs+=(dpkg)
have dpkg-shlibdeps || missing_debs+=(dpkg-dev)
if ((${#missing_debs[@]})); then
    apt_install "${missing_debs[@]}" ||
        fail "missing: ${missing_debs[*]} (systemd-analyze, dpkg-deb, dpkg-shlibdeps). Install" \
            "them with: sudo apt-get install -y ${missing_debs[*]}"
fi

# Headless Chromium and its WebDriver run the web console's browser test (cli/tests/console_e2e.rs).
missing_browser=()
have chromium || have chromium-browser || missing_browser+=(chromium)
have chromedriver || missing_browser+=(chromium-driver)
if ((${#missing_browser[@]})); then
    apt_install "${missing_browser[@]}" ||
        fail "missing: ${missing_browser[*]} (the web console's browser test). Install them" \
            "with: sudo apt-get install -y chromium chromium-driver"
fi

# cargo-deb builds the package (scripts/package.sh installs it too, the same way).
CARGO_DEB_VERSION="${CARGO_DEB_VERSION:-^3.6}"
if ! cargo deb --version >/dev/null 2>&1; then
    say "cargo-deb not found; installing it with cargo install --locked cargo-deb"
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION" ||
        fail "cannot install cargo-deb: cargo install --locked cargo-deb --version '$CARGO_DEB_VERSION'"
fi

# cargo-deny checks the dependency policy in deny.toml (scripts/test.sh).
CARGO_DENY_VERSION="${CARGO_DENY_VERSION:-^0.20}"
# scripts/test.sh sets H264_CARGO_DENY_IN_BACKGROUND=1: it builds cargo-deny beside its own build
# and tests (cargo-deny takes minutes to compile) and checks with it at the end.
if [[ "${H264_CARGO_DENY_IN_BACKGROUND:-}" == 1 ]]; then
    :
elif ! cargo deny --version >/dev/null 2>&1; then
    say "cargo-deny not found; installing it with cargo install --locked cargo-deny"
    cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION" ||
        fail "cannot install cargo-deny: cargo install --locked cargo-deny --version '$CARGO_DENY_VERSION'"
fi

# kubernetes-validate checks the Kubernetes manifests offline (scripts/check-manifests.sh).
have_kubernetes_validate() { python3 -c 'import kubernetes_validate' >/dev/null 2>&1; }
if ! have_kubernetes_validate; then
    install_pip kubernetes-validate || true
    have_kubernetes_validate ||
        fail "Python package kubernetes-validate not found for $(command -v python3). Install" \
            "it with: python3 -m pip install --user kubernetes-validate"
fi

say "found cargo, rustfmt, clippy, $(ffmpeg -hide_banner -version | head -n 1 | cut -d' ' -f1-3)," \
    "ffprobe, Python's aiosmtpd $(python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)')," \
    "$(cargo deb --version 2>/dev/null | head -n 1), $(cargo deny --version 2>/dev/null)," \
    "$(systemd-analyze --version | head -n 1)," \
    "$(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)," \
    "kubernetes-validate $(python3 -c 'import kubernetes_validate.version as v; print(v.__version__)' 2>/dev/null)"
