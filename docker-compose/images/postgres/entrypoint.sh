#!/usr/bin/env bash
# faultline/postgres entrypoint, the subset of the official postgres image's contract that the
# topologies use. First start (no $PGDATA/PG_VERSION): initdb with superuser $POSTGRES_USER
# (default postgres) and password $POSTGRES_PASSWORD (required, unless
# POSTGRES_HOST_AUTH_METHOD=trust), a temporary server on the Unix socket only, database
# $POSTGRES_DB (default $POSTGRES_USER), then every /docker-entrypoint-initdb.d/*.sql, *.sql.gz
# (psql -v ON_ERROR_STOP=1 as $POSTGRES_USER against $POSTGRES_DB) and *.sh (bash) in name order.
# Then, and on every later start, exec the server (PID 1): listen_addresses='*', port 5432,
# `host all all all scram-sha-256` in pg_hba.conf. A failed init stops the container and leaves
# $PGDATA marked incomplete: a later `docker start` refuses to serve it (the official image would
# serve it without its schema); a new container starts afresh.
set -Eeuo pipefail

say() { printf 'faultline-postgres: %s\n' "$*"; }
die() { printf 'faultline-postgres: error: %s\n' "$*" >&2; exit 1; }

# `docker run -u 0`: become postgres for everything (a preloaded libfaketime must be created by
# the user that runs the server). setpriv is util-linux's, exec keeps the PID.
if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

# `docker run IMAGE -c name=value`: options for the server, like the official image
if [[ $# -eq 0 || "${1:0:1}" == - ]]; then
    set -- postgres "$@"
fi
if [[ "$1" != postgres ]]; then
    exec "$@"
fi
for arg in "$@"; do   # `postgres --version` and the like need no database
    case "$arg" in
        -V|--version|-'?'|--help|--describe-config|-C) exec "$@" ;;
    esac
done

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
SOCKET_DIR=/var/run/postgresql
mkdir -p "$SOCKET_DIR" 2>/dev/null || true

INCOMPLETE="$PGDATA/.faultline-init-incomplete"
if [[ -e "$INCOMPLETE" ]]; then
    die "$PGDATA was left by a failed first start (see that start's log); remove the container (or the directory) to retry"
fi
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
        die "database is uninitialized and POSTGRES_PASSWORD is not set (set it, or POSTGRES_HOST_AUTH_METHOD=trust)"
    fi
    started=$(date +%s%N)
    say "initdb $PGDATA (superuser $POSTGRES_USER) ..."
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    pwfile=()
    if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
        pwtmp="$(umask 077; mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwtmp"
        pwfile=(--pwfile="$pwtmp")
    fi
    # --no-sync saves about a second: the files reach the disk with the page cache anyway, and only
    # a host crash during the first start could lose them. The server runs with fsync=on.
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as in the official image
    initdb --username="$POSTGRES_USER" "${pwfile[@]}" \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=trust --no-sync \
        ${POSTGRES_INITDB_ARGS:-} >/dev/null
    [[ -z "${pwtmp:-}" ]] || rm -f "$pwtmp"
    : > "$INCOMPLETE"
    {
        printf '\n# faultline/postgres (like the official image): password authentication from anywhere\n'
        printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
    } >> "$PGDATA/pg_hba.conf"
    {
        printf '\n# faultline/postgres\n'
        printf "listen_addresses = '*'\n"
        printf "unix_socket_directories = '%s'\n" "$SOCKET_DIR"
    } >> "$PGDATA/postgresql.conf"

    # temporary server: Unix socket only, so nothing can connect over TCP before init is done;
    # fsync=off like initdb --no-sync (its shutdown checkpoint would otherwise fsync ~300 files)
    pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -c fsync=off" start \
        || die "temporary server did not start"
    psql_init=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" --username "$POSTGRES_USER" --no-password)
    if [[ "$POSTGRES_DB" != postgres ]]; then
        printf 'CREATE DATABASE :"db";\n' | "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" \
            || die "CREATE DATABASE $POSTGRES_DB failed"
    fi
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql)    say "running $f"; "${psql_init[@]}" --dbname "$POSTGRES_DB" -f "$f" || die "$f failed" ;;
            *.sql.gz) say "running $f"; gunzip -c "$f" | "${psql_init[@]}" --dbname "$POSTGRES_DB" || die "$f failed" ;;
            *.sh)     say "running $f"; PGHOST="$SOCKET_DIR" PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" bash "$f" || die "$f failed" ;;
            *)        say "ignoring $f" ;;
        esac
    done
    shopt -u nullglob
    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop || die "temporary server did not stop"
    rm -f "$INCOMPLETE"
    say "init done in $(( ($(date +%s%N) - started) / 1000000 )) ms"
fi

exec "$@"
