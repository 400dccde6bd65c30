#!/usr/bin/env bash
# A throwaway PostgreSQL server for the Dagster instance in dagster_home/postgres/ (tests, a
# steward's trial). Not for production: there, use the city's managed PostgreSQL server.
#
#   bash scripts/postgres.sh [start] DIR PORT   # install if needed, create and start in DIR
#   bash scripts/postgres.sh stop DIR           # stop the server started in DIR
#
# `start` is idempotent: an existing cluster in DIR is reused, a running one left running.
# It prints only the DAGSTER_PG_* assignments on stdout (KEY=value, one a line), so
#
#   bash scripts/postgres.sh start /tmp/kodomo-pg 5433 > pg.env && set -a && . ./pg.env && set +a
#
# Progress and errors go to stderr. DIR holds data/ (the cluster), postgres.log and the
# generated passwords (mode 0600). The server listens on 127.0.0.1 only, over TCP (no Unix
# socket), with password (scram-sha-256) authentication.
#
# If the PostgreSQL binaries are missing, Debian's `postgresql` package is installed with
# apt-get (sudo when not root). PostgreSQL refuses to run as root, so as root the cluster
# is created and run by the system user `postgres` (created if missing) through runuser.
set -euo pipefail

DB_NAME=dagster
DB_USER=dagster

# shellcheck source=scripts/debian.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

pg_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
    echo "$dir"
  elif command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  fi
}

install_postgresql() {
  log "PostgreSQL binaries not found"
  debian_install postgresql || die "apt-get could not install postgresql"
}

# Run a command as the cluster's owner: ourselves, or `postgres` when we are root.
as_owner() {
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

ensure_postgres_user() {
  is_root || return 0
  if ! id postgres >/dev/null 2>&1; then
    log "creating the system user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres \
      || die "could not create the system user postgres"
  fi
}

# The port of the server running on DIR/data, from postmaster.pid (line 4), if any.
running_port() {
  local data="$1/data"
  [ -f "$data/postmaster.pid" ] || return 1
  as_owner "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1 || return 1
  sed -n 4p "$data/postmaster.pid"
}

start() {
  local dir="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
    || die "PORT must be a TCP port number, got '$port'"

  BIN="$(pg_bindir)"
  if [ -z "$BIN" ]; then
    install_postgresql
    BIN="$(pg_bindir)"
    [ -n "$BIN" ] || die "postgresql was installed but no pg_ctl/initdb/postgres under /usr/lib/postgresql/*/bin"
  fi
  ensure_postgres_user

  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if is_root; then
    chown postgres: "$dir"
    chmod 0700 "$dir"
    as_owner test -w "$dir" \
      || die "user postgres cannot write $dir (a parent directory is closed to it): choose a directory under /tmp"
  fi
  cd /  # the owner may not be able to read the caller's working directory

  local data="$dir/data" su_pw_file="$dir/superuser.password" pw_file="$dir/dagster.password"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb in $data ($("$BIN/postgres" --version))"
    as_owner sh -c "umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > '$su_pw_file'"
    as_owner "$BIN/initdb" -D "$data" -U postgres --pwfile="$su_pw_file" \
      --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 --no-sync >&2 \
      || as_owner "$BIN/initdb" -D "$data" -U postgres --pwfile="$su_pw_file" \
        --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --no-locale --no-sync >&2 \
      || die "initdb failed"
    as_owner sh -c "cat >> '$data/postgresql.conf'" <<'EOF'

# scripts/postgres.sh: a throwaway cluster. TCP on 127.0.0.1 only, no Unix socket; the
# port is given when starting. Durability is traded for speed (fine for tests, never for
# production).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi

  local current
  if current="$(running_port "$dir")"; then
    [ "$current" = "$port" ] || log "already running in $dir on port $current (not $port): keeping it"
    port="$current"
  else
    log "starting on 127.0.0.1:$port (log: $dir/postgres.log)"
    if ! as_owner "$BIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -o "-p $port" -w -t 60 start >&2; then
      tail -n 20 "$dir/postgres.log" >&2 || true
      die "the server did not start (is port $port free?)"
    fi
  fi

  [ -f "$pw_file" ] || as_owner sh -c "umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > '$pw_file'"
  local su_pw pw
  su_pw="$(cat "$su_pw_file")"
  pw="$(cat "$pw_file")"
  psql_() {
    PGPASSWORD="$su_pw" "$BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      -v ON_ERROR_STOP=1 -tA "$@"
  }
  # Hex passwords and fixed names: nothing here needs quoting beyond the literals.
  if [ "$(psql_ -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" = "1" ]; then
    psql_ -c "ALTER ROLE $DB_USER WITH LOGIN PASSWORD '$pw'" >/dev/null
  else
    psql_ -c "CREATE ROLE $DB_USER WITH LOGIN PASSWORD '$pw'" >/dev/null
  fi
  if [ "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    psql_ -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
  fi
  log "ready: database $DB_NAME, user $DB_USER on 127.0.0.1:$port"

  printf 'DAGSTER_PG_HOST=%s\n' 127.0.0.1
  printf 'DAGSTER_PG_PORT=%s\n' "$port"
  printf 'DAGSTER_PG_USER=%s\n' "$DB_USER"
  printf 'DAGSTER_PG_PASSWORD=%s\n' "$pw"
  printf 'DAGSTER_PG_DB=%s\n' "$DB_NAME"
}

stop() {
  local dir="$1"
  [ -d "$dir/data" ] || { log "no cluster in $dir: nothing to stop"; return 0; }
  dir="$(cd "$dir" && pwd)"
  cd /
  BIN="$(pg_bindir)"
  [ -n "$BIN" ] || die "no pg_ctl found to stop the server in $dir"
  if as_owner "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "stopping the server in $dir"
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2
  else
    log "the server in $dir is not running"
  fi
}

case "${1:-}" in
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
  ""|-h|--help) usage ;;
  *) [ $# -eq 2 ] || usage; start "$1" "$2" ;;
esac
