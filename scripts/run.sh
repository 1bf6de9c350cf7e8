#!/usr/bin/env bash
# Installs what is missing, builds hearth-server and the desktop app in release, runs the server
# with embedded SQLite and opens the app (when there is a display). Closing the app stops the
# server; with no display (or HEARTH_NO_DESKTOP=1) only the server runs, in the foreground.
#
#   scripts/run.sh [extra hearth-server args...]
#
# HEARTH_DATA_DIR (default ./data) and HEARTH_LISTEN (default 127.0.0.1:8080) choose where the
# server keeps its data and where it listens. In the app, add the server as http://LISTEN and
# register with the setup token the server printed (also in DATA_DIR/setup-token).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# shellcheck source=scripts/deps.sh
source "$root/scripts/deps.sh"

hearth_install_packages "${HEARTH_BUILD_PACKAGES[@]}" "${HEARTH_DESKTOP_PACKAGES[@]}"
hearth_ensure_cargo

cargo build --release -p hearth-server

data_dir=${HEARTH_DATA_DIR:-$PWD/data}
listen=${HEARTH_LISTEN:-127.0.0.1:8080}
mkdir -p "$data_dir"

# --- Desktop app ---------------------------------------------------------------------------
if [[ ${HEARTH_NO_DESKTOP:-0} == 1 || -z ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]]; then
    exec target/release/hearth-server --data-dir "$data_dir" --listen "$listen" "$@"
fi

if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build -w ui
cargo build --release -p hearth-desktop --features custom-protocol

target/release/hearth-server --data-dir "$data_dir" --listen "$listen" "$@" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null' EXIT
hearth_log "server on http://$listen (setup token, while there are no accounts: $data_dir/setup-token)"
target/release/hearth
