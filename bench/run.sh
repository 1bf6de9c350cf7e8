#!/usr/bin/env bash
# Runs one Hearth benchmark: bench/run.sh NAME [harness options...]
#
# Builds what the bench needs (release), runs it, prints a human summary, and ends with one
# JSON line per metric. The full output is also kept in bench/out/NAME-TIMESTAMP.log.
# Every process the bench starts is stopped when it ends or is interrupted.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

usage() {
    cat >&2 <<'EOF'
usage: bench/run.sh NAME [options]

  fanout       channel fan-out to N clients vs a Socket.IO 4 room broadcast
  conn-memory  server memory per idle authenticated connection vs Socket.IO 4
  persist      send -> durable -> ack through the gateway vs a raw SQLite writer
  login-storm  login rate vs raw argon2id; gateway heartbeat p99 during the storm
  turn-relay   packets the embedded TURN server relays under 1% loss vs coturn
  voice-cpu    CPU of one client in a 10-person call vs a plain Opus encode/decode loop
  desktop-footprint
               the desktop app's cold start and idle memory vs a Tauri 2 hello world, and
               the time to render a 10,000-message channel scrolled to the top (Xvfb)
  voice-latency
               mouth-to-ear latency of a call over loopback (real server, webrtc) vs raw UDP
               with the same voice pipeline
  server-footprint
               hearth-server's binary size and resident memory, idle and with 100 clients
  footprint    the Windows installer and the .deb (scripts/package.sh, built unless present
               or BENCH_NO_BUILD=1) and everything server-footprint measures
  search       search latency through the HTTP API on 1,000,000 messages vs the same queries
               straight against the database's full-text index, on SQLite and PostgreSQL
               (a private PostgreSQL is started unless SEARCH_PG_URL names one)
  scale-out    deliveries per second with one and with two hearth-server processes on one
               PostgreSQL (a private one is started unless SCALE_PG_URL names one), and the
               p99 latency of a delivery across processes
  transfer     a 1 GiB direct transfer between two engines over loopback vs node-datachannel
               and raw TCP; again at 20 ms RTT (network namespace, root); memory of both ends
  attachments  upload and download of a 100 MB file through the attachment API vs a plain
               axum file copy; the thumbnail time of a 24-megapixel JPEG vs the image crate
  all          every bench above, one after the other

Options go to the harness: bench/run.sh NAME --help lists them (each also has an env var).
Set BENCH_NO_SERVER_BUILD=1 to use target/release/hearth-server as it is, BENCH_NO_BUILD=1
to build nothing (both binaries as they are in target/release).
EOF
}

if [[ $# -lt 1 ]]; then
    usage
    exit 2
fi
name="$1"
shift

case "$name" in
    fanout | conn-memory | persist | login-storm | turn-relay | desktop-footprint | voice-latency | server-footprint | footprint | search | scale-out | transfer | attachments) ;;
    voice-cpu)
        # In-process measurement of crates/voice (a cargo bench target): no server, no harness.
        mkdir -p "$root/bench/out"
        log="$root/bench/out/$name-$(date +%Y%m%d-%H%M%S).log"
        echo "== building (release) and running" >&2
        status=0
        cargo bench --quiet -p hearth-voice --bench voice_cpu -- "$@" | tee "$log" || status=$?
        echo "(full output in ${log#"$root"/})" >&2
        exit "$status"
        ;;
    all)
        status=0
        for bench in fanout conn-memory persist login-storm turn-relay voice-cpu desktop-footprint voice-latency footprint search scale-out transfer attachments; do
            "$here/run.sh" "$bench" "$@" || status=$?
        done
        exit "$status"
        ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *)
        echo "unknown bench: $name" >&2
        usage
        exit 2
        ;;
esac

# Thousands of sockets on each side of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# desktop-footprint: the system packages, tauri-driver, and both apps (the UI built first so
# that Hearth embeds it; the hello world with the same profile and tauri features).
if [[ $name == desktop-footprint ]]; then
    # shellcheck source=../scripts/deps.sh
    source "$root/scripts/deps.sh"
    hearth_install_packages "${HEARTH_DESKTOP_PACKAGES[@]}" "${HEARTH_E2E_PACKAGES[@]}"
    if [[ -z "${HEARTH_TAURI_DRIVER:-}" && ! -x "$root/target/tools/bin/tauri-driver" ]] &&
        ! command -v tauri-driver >/dev/null; then
        echo "== installing tauri-driver (cargo install)" >&2
        cargo install tauri-driver --version "^2.1" --locked --root "$root/target/tools" >&2
    fi
    if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
        if [[ ! -d "$root/node_modules/vite" ]]; then
            echo "== installing the UI's packages (npm ci)" >&2
            npm ci --no-audit --no-fund >&2
        fi
        echo "== building the UI and both desktop apps (release)" >&2
        npm run build --workspace ui >&2
        cargo build --release --quiet -p hearth-desktop -p tauri-hello \
            --features hearth-desktop/custom-protocol,tauri-hello/custom-protocol >&2
    fi
fi

# footprint: the installers, built by scripts/package.sh when they are not there yet.
if [[ $name == footprint && "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    missing=()
    compgen -G "$target_dir/release-ship/bundle/deb/*_amd64.deb" >/dev/null || missing+=(deb)
    compgen -G "$target_dir/x86_64-pc-windows-gnu/release-ship/installer/*_x64-setup.exe" >/dev/null || missing+=(windows)
    if ((${#missing[@]})); then
        echo "== building the installers (${missing[*]}; scripts/package.sh)" >&2
        "$root/scripts/package.sh" "${missing[@]}" >&2
    fi
fi

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    echo "== building (release)" >&2
    packages=(-p hearth-bench)
    if [[ "${BENCH_NO_SERVER_BUILD:-0}" != 1 ]]; then
        packages+=(-p hearth-server)
    fi
    cargo build --release --quiet "${packages[@]}" >&2
fi

# server-footprint and footprint measure the server as it ships (the Docker image's
# release-ship profile: opt-level "s", stripped); the other benches run the release build.
if [[ $name == server-footprint || $name == footprint ]]; then
    if [[ "${BENCH_NO_BUILD:-0}" != 1 && "${BENCH_NO_SERVER_BUILD:-0}" != 1 ]]; then
        echo "== building the server as it ships (release-ship)" >&2
        cargo build --profile release-ship --quiet -p hearth-server >&2
    fi
    export HEARTH_SERVER_BIN=${HEARTH_SERVER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release-ship/hearth-server}
fi

case "$name" in
    transfer)
        if [[ ! -d "$root/node_modules/node-datachannel" ]]; then
            echo "== installing the node-datachannel peer (npm)" >&2
            npm ci --no-audit --no-fund >&2
        fi
        ;;
esac

case "$name" in
    fanout | conn-memory)
        if ! command -v "${HEARTH_BENCH_NODE:-node}" >/dev/null; then
            echo "node is required for the Socket.IO peer" >&2
            exit 1
        fi
        if [[ ! -d "$root/node_modules/socket.io" ]]; then
            echo "== installing the Socket.IO peer (npm)" >&2
            if [[ -f "$root/package-lock.json" ]]; then
                npm ci --no-audit --no-fund >&2
            else
                npm install --no-audit --no-fund >&2
            fi
        fi
        ;;
esac

# System packages a bench's peer needs, installed (Debian) when missing.
case "$name" in
    turn-relay)
        # coturn: the TURN server the embedded one is compared with.
        # shellcheck source=../scripts/deps.sh
        source "$root/scripts/deps.sh"
        hearth_install_packages coturn
        ;;
esac

mkdir -p "$root/bench/out"
log="$root/bench/out/$name-$(date +%Y%m%d-%H%M%S).log"

harness_pid=""
pg_dir=""
cleanup() {
    if [[ -n "$harness_pid" ]] && kill -0 "$harness_pid" 2>/dev/null; then
        # The harness stops its servers on SIGTERM (and they die with it in any case).
        kill -TERM "$harness_pid" 2>/dev/null || true
        wait "$harness_pid" 2>/dev/null || true
    fi
    if [[ -n "$pg_dir" ]]; then
        hearth_pg_stop "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# search: a private PostgreSQL cluster for the PostgreSQL half, unless one is named.
if [[ $name == search && -z "${SEARCH_PG_URL:-}" && "${SEARCH_BACKENDS:-both}" != sqlite ]]; then
    # shellcheck source=../scripts/pg.sh
    source "$root/scripts/pg.sh"
    pg_dir=$(mktemp -d /tmp/hearth-bench-pg-XXXXXX)
    SEARCH_PG_URL=$(hearth_pg_start "$pg_dir" "${SEARCH_PG_PORT:-55520}")
    export SEARCH_PG_URL
fi

# scale-out: likewise, a private PostgreSQL cluster that both server processes share.
if [[ $name == scale-out && -z "${SCALE_PG_URL:-}" ]]; then
    # shellcheck source=../scripts/pg.sh
    source "$root/scripts/pg.sh"
    pg_dir=$(mktemp -d /tmp/hearth-bench-pg-XXXXXX)
    SCALE_PG_URL=$(hearth_pg_start "$pg_dir" "${SCALE_PG_PORT:-55521}")
    export SCALE_PG_URL
fi

"$root/target/release/hearth-bench" "$name" "$@" > >(tee "$log") &
harness_pid=$!
status=0
wait "$harness_pid" || status=$?
harness_pid=""
# Let tee finish writing before we return.
wait 2>/dev/null || true
echo "(full output in ${log#"$root"/})" >&2
exit "$status"
