#!/usr/bin/env bash
# Installs what is missing, builds hearth-server in release and runs it with embedded SQLite.
#
#   scripts/run.sh [extra hearth-server args...]
#
# HEARTH_DATA_DIR (default ./data) and HEARTH_LISTEN (default 127.0.0.1:8080) choose where the
# server keeps its data and where it listens.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# shellcheck source=scripts/deps.sh
source "$root/scripts/deps.sh"

hearth_install_packages "${HEARTH_BUILD_PACKAGES[@]}"
hearth_ensure_cargo

cargo build --release -p hearth-server

data_dir=${HEARTH_DATA_DIR:-$PWD/data}
listen=${HEARTH_LISTEN:-127.0.0.1:8080}
mkdir -p "$data_dir"

# --- Desktop app (to be added) ------------------------------------------------------------
# When src-tauri lands: build it here and launch it against http://$listen, with the server
# started in the background (and stopped by a trap) instead of the exec below.

exec target/release/hearth-server --data-dir "$data_dir" --listen "$listen" "$@"
