#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine, as root or as a sudo-capable user:
# PostgreSQL 15 + server headers (clang for bindgen) + pg_cron, cargo-pgrx 0.18.0,
# and `cargo pgrx init` against the system PostgreSQL. Re-running skips what is done.
source "$(dirname "$0")/common.sh"

need_pkgs=()
for p in postgresql-15 postgresql-server-dev-15 postgresql-15-cron sudo python3; do
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

PGRX_CFG="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! grep -qs "^pg${PG_MAJOR} *= *\"${PG_CONFIG}\"" "$PGRX_CFG"; then
  log "cargo pgrx init --pg${PG_MAJOR} ${PG_CONFIG}"
  cargo pgrx init "--pg${PG_MAJOR}" "$PG_CONFIG" >/dev/null
fi
log "setup complete: $(cargo pgrx --version), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}')"
