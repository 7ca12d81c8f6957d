#!/usr/bin/env bash
# Prints, as one SQL text[] literal, every name the extension's own SQL may resolve
# through a search_path: each word written as pg_catalog.<name> anywhere in src/ and
# sql/ (our convention: every function, operator, type and catalog we name internally
# is qualified), and each word followed by "(" in the hand-written SQL files. The
# security regression test (tests/sql/security.sql) puts an attacker's object of every
# such name on the search_path, so names added to the code are covered automatically.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
{
  grep -rhoE 'pg_catalog\.[a-z_][a-z0-9_]*' "$root/src" "$root"/sql/*.sql | sed 's/^pg_catalog\.//'
  # the hand-written files (the upgrade scripts repeat them)
  grep -hoE '\b[a-z_][a-z0-9_]*\(' $(ls "$root"/sql/*.sql | grep -v -- '--') | tr -d '('
} | sort -u | grep -vxE 'segment|_[a-z0-9_]*' | paste -sd, - | sed 's/^/{/; s/$/}/'
