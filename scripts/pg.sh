#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pg.sh start DIR PORT   initdb DIR/data if missing, start it on 127.0.0.1:PORT,
#                                  wait until it answers, print the admin URL on stdout
#   scripts/pg.sh stop DIR         stop it (fast shutdown); DIR itself is left for the caller
#   scripts/pg.sh url PORT         print the admin URL for PORT
#
# Or source it and call hearth_pg_start / hearth_pg_stop / hearth_pg_url.
#
# Layout: DIR/data is the cluster, DIR/postgres.log its log, DIR holds the Unix socket.
# The cluster trusts every local and 127.0.0.1 connection and listens on nothing else, so it
# must only ever hold test data. fsync stays on so that durability behaves as in production.
#
# PostgreSQL refuses to run as root, so as root the cluster is owned by and run as the
# `postgres` system user; DIR must then be reachable by that user (/tmp is; /root is not).
# As any other user it runs as that user. Binaries come from Debian's /usr/lib/postgresql
# (newest version first); set HEARTH_PG_BIN to use another directory.

hearth_pg_url() {
    printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$1"
}

# Prints the directory holding initdb, pg_ctl and pg_isready.
hearth_pg_bindir() {
    if [[ -n ${HEARTH_PG_BIN:-} ]]; then
        printf '%s\n' "$HEARTH_PG_BIN"
        return 0
    fi
    # Debian's packaged server; other copies (e.g. in /usr/local/bin) may be unrelated builds.
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' \
        2>/dev/null | sort -V | tail -n 1)
    if [[ -n $dir ]]; then
        dirname "$dir"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
        pg_config --bindir
        return 0
    fi
    printf '[pg] error: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin ' >&2
    printf '(apt-get install postgresql)\n' >&2
    return 1
}

# Runs "$@" as the cluster's owner, from a directory that owner can enter.
hearth_pg_as_owner() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

hearth_pg_start() {
    local dir=${1:?usage: pg.sh start DIR PORT} port=${2:?usage: pg.sh start DIR PORT}
    [[ $port =~ ^[0-9]+$ ]] || { printf '[pg] error: bad port %q\n' "$port" >&2; return 1; }
    local bin
    bin=$(hearth_pg_bindir) || return 1

    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 ||
            { printf '[pg] error: no postgres system user (apt-get install postgresql)\n' >&2; return 1; }
        chown postgres:postgres "$dir"
    fi
    chmod 700 "$dir"
    if ! hearth_pg_as_owner test -w "$dir"; then
        printf '[pg] error: %s is not writable by the postgres user; ' "$dir" >&2
        printf 'use a directory under /tmp (every parent must be searchable)\n' >&2
        return 1
    fi

    local data=$dir/data
    if [[ ! -f $data/PG_VERSION ]]; then
        # -U postgres names the superuser the same whoever runs this, so the URL is stable.
        hearth_pg_as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C \
            >"$dir/initdb.log" 2>&1 || {
            printf '[pg] error: initdb failed:\n' >&2
            cat "$dir/initdb.log" >&2
            return 1
        }
        hearth_pg_as_owner tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# Throwaway test cluster: trust local and loopback connections, nothing else.
local all         all               trust
host  all         all 127.0.0.1/32  trust
local replication all               trust
host  replication all 127.0.0.1/32  trust
EOF
        printf "\ninclude_if_exists = 'hearth.conf'\n" |
            hearth_pg_as_owner tee -a "$data/postgresql.conf" >/dev/null
    fi

    # The Unix socket lives in DIR (private to this cluster) unless its path would exceed the
    # kernel's 107-byte limit; then only TCP is offered, which is all the URL needs.
    local sockdir=$dir
    if ((${#dir} + 20 > 107)); then
        sockdir=
    fi
    # Rewritten on every start so that the same DIR can be restarted on another port.
    hearth_pg_as_owner tee "$data/hearth.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
shared_buffers = 32MB
max_connections = 200
fsync = on
EOF

    if hearth_pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            # Running with other settings (another port): restart to apply hearth.conf.
            hearth_pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
        else
            printf '[pg] already running in %s\n' "$data" >&2
        fi
    fi
    if ! hearth_pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        if ! hearth_pg_as_owner "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
            start >/dev/null; then
            printf '[pg] error: PostgreSQL did not start (port %s in use?); log tail:\n' "$port" >&2
            tail -n 20 "$dir/postgres.log" >&2 || true
            return 1
        fi
    fi

    local i
    for ((i = 0; i < 120; i++)); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            hearth_pg_url "$port"
            return 0
        fi
        sleep 0.25
    done
    printf '[pg] error: no answer on 127.0.0.1:%s after 30 s; log tail:\n' "$port" >&2
    tail -n 20 "$dir/postgres.log" >&2 || true
    return 1
}

hearth_pg_stop() {
    local dir=${1:?usage: pg.sh stop DIR}
    local data=$dir/data
    [[ -f $data/PG_VERSION ]] || return 0
    local bin
    bin=$(hearth_pg_bindir) || return 1
    if hearth_pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        hearth_pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
        start) hearth_pg_start "${2:-}" "${3:-}" ;;
        stop) hearth_pg_stop "${2:-}" ;;
        url) hearth_pg_url "${2:?usage: pg.sh url PORT}" ;;
        *)
            printf 'usage: %s start DIR PORT | stop DIR | url PORT\n' "$0" >&2
            exit 2
            ;;
    esac
fi
