#!/usr/bin/env bash
# Training memory: the estimate segment_train decides to sample by, against the peak of
# the Rust heap the fit really used (pg_segment's allocator counts it; both are logged at
# DEBUG1). Three data shapes, 8 numeric + 2 text columns, at BENCH_ROWS (default
# "1000000 3000000") rows, k = 8, maintenance_work_mem = 8GB so that nothing is sampled:
#   latent   8 latent segments with overlapping uniform noise (bench/sql_bench.py's)
#   uniform  uniform noise, no structure
#   persona  six overlapping personas: normal ages, log-normal spend, Poisson-like counts,
#            skewed categories, rows physically out of id order
#   persona_text  the same with text ids ('cust-' || i)
# Prints rows, shape, estimate, peak and peak / estimate (target: within 20%), the time
# of each phase (DEBUG1; best of BENCH_REPEAT runs, default 1) with k-means' iterations
# and time per iteration, and then the scale curve: each phase's time and the peak as
# ratios to the smallest row count (linear growth: the ratio of the row counts; k-means
# also grows with the iterations the data needs, hence its time per iteration).
# BENCH_SHAPES picks shapes (default all four).
# Assumes the extension is installed (make install).
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
ROWS="${BENCH_ROWS:-1000000 3000000}"
SHAPES="${BENCH_SHAPES:-latent uniform persona persona_text}"
REPEAT="${BENCH_REPEAT:-1}"   # runs per size and shape; each phase's best counts
CLUSTER_MWM=8GB cluster_start memory 54397
trap 'cluster_stop memory' EXIT
# The same server settings as bench/sql_bench.sh (and issue 18's measurements).
cat <<CONF | as_postgres tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
shared_buffers = '2GB'
jit = off
CONF
as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w restart >/dev/null
psql -d postgres -X -q -c "CREATE DATABASE memory"
psql -d memory -X -q -c "CREATE EXTENSION pg_segment"

noise() { echo "((hashint4(i * $1) & 65535) / 32767.5 - 1)"; }
columns() { # columns SHAPE
  case "$1" in
    latent) cat <<SQL
round(25 + 6 * s + 8 * $(noise 3))::int AS age,
round((30000 + 9000 * ((s * 3) % 8) + 12000 * $(noise 7))::numeric, 2) AS income,
greatest(0, round(100 + 300 * ((s * 5) % 8) + 200 * $(noise 11)))::int AS tenure_days,
greatest(0, round((s % 4) * 4 + 3 * $(noise 13)))::int AS orders_90d,
greatest(0, 50 + 120 * ((s * 7) % 8) + 80 * $(noise 17))::float8 AS spend_90d,
greatest(0, round(2 + 3 * ((s + 3) % 8) + 3 * $(noise 19)))::int AS visits_30d,
greatest(0, round((s % 3) + 2 * $(noise 23)))::int AS returns_1y,
greatest(0, round(((s + 1) % 5) + 2 * $(noise 29)))::float8 AS support_tickets,
(ARRAY['north','south','east','west','central'])[1 + (s + (hashint4(i * 31) & 1)) % 5] AS region,
(ARRAY['web','app','store','phone','partner','email','social','other'])[1 + (s * 3 + (hashint4(i * 37) & 3)) % 8] AS channel
SQL
    ;;
    uniform) cat <<SQL
(18 + (hashint4(i) & 63))::int AS age,
((hashint4(i * 7) & 1048575) / 10.0)::numeric(12, 2) AS income,
(hashint4(i * 11) & 4095)::int AS tenure_days,
(hashint4(i * 13) & 31)::int AS orders_90d,
((hashint4(i * 17) & 65535) / 100.0)::float8 AS spend_90d,
(hashint4(i * 19) & 63)::int AS visits_30d,
(hashint4(i * 23) & 7)::int AS returns_1y,
(hashint4(i * 29) & 15)::float8 AS support_tickets,
(ARRAY['north','south','east','west','central'])[1 + (hashint4(i * 31) & 4) % 5] AS region,
(ARRAY['web','app','store','phone','partner','email','social','other'])[1 + (hashint4(i * 37) & 7)] AS channel
SQL
    ;;
    persona|persona_text) cat <<SQL
round(22 + 9 * s + 7 * ($(noise 3) + $(noise 5) + $(noise 7)))::int AS age,
round(exp(10 + 0.3 * s + 0.5 * ($(noise 11) + $(noise 13)))::numeric, 2) AS income,
round(-ln(0.0001 + (hashint4(i * 17) & 65535) / 65536.0) * (200 + 150 * s))::int AS tenure_days,
floor(-ln(0.0001 + (hashint4(i * 19) & 65535) / 65536.0) * (1 + s))::int AS orders_90d,
round(exp(3 + 0.4 * s + 0.9 * ($(noise 23) + $(noise 29)))::numeric, 2)::float8 AS spend_90d,
floor(-ln(0.0001 + (hashint4(i * 31) & 65535) / 65536.0) * (2 + 2 * s))::int AS visits_30d,
floor(-ln(0.0001 + (hashint4(i * 37) & 65535) / 65536.0) * 0.4)::int AS returns_1y,
floor(-ln(0.0001 + (hashint4(i * 43) & 65535) / 65536.0))::float8 AS support_tickets,
(ARRAY['north','north','north','south','south','east','west','central','abroad'])[1 + (hashint4(i * 47) & 65535) % 9] AS region,
(ARRAY['web','web','web','app','app','store','phone','partner','email','social','other','kiosk'])[1 + (s + (hashint4(i * 53) & 65535)) % 12] AS channel
SQL
    ;;
  esac
}

printf '%-9s %-13s %11s %9s %6s %7s | %6s %6s %7s %5s %7s %6s %6s\n' rows shape estimate_MB peak_MB ratio sampled read encode k-means iters ms/iter write total
declare -A curve
for n in $ROWS; do
  for shape in $SHAPES; do
    order="i"; id="i::bigint"
    case "$shape" in persona*) order="hashint4(i * 59)" ;; esac
    [ "$shape" = persona_text ] && id="'cust-' || i"
    psql -d memory -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
DROP TABLE IF EXISTS c;
SELECT segment_drop('m', if_exists => true);
CREATE TABLE c AS SELECT $id AS id, $(columns "$shape")
FROM (SELECT i, hashint4(i * 41) & 7 AS s FROM generate_series(1, $n) i ORDER BY $order) g;
ALTER TABLE c ADD PRIMARY KEY (id);
VACUUM ANALYZE c;
SQL
    best=""
    for _ in $(seq "$REPEAT"); do
      out="$(psql -d memory -X -A -t -q -c "SET client_min_messages = debug1" \
        -c "SELECT segment_drop('m', if_exists => true)" \
        -c "SELECT sampled, iterations FROM segment_train('m', 'c', 'id', k => 8, n_init => 1, seed => 0)" 2>&1)"
      est="$(sed -n 's/.*a full fit of [0-9]* rows needs about \([0-9.]*\) MB.*/\1/p' <<<"$out" | tail -1)"
      peak="$(sed -n 's/.*store catalog: .*peak so far \([0-9.]*\) MB.*/\1/p' <<<"$out" | tail -1)"
      last="$(tail -1 <<<"$out")"; sampled="${last%%|*}"; iters="${last##*|}"
      t() { sed -n "s/.*): $1: \([0-9.]*\) s;.*/\1/p" <<<"$out" | tail -1; }
      run="$(t 'read source') $(t encode) $(t k-means) $(t 'write assignments (and metrics)') $iters"
      # Best of the runs, phase by phase (the runs train the same model on the same rows).
      best="$(awk -v a="$best" -v b="$run" 'BEGIN { n = split(b, y, " "); if (a == "") { print b; exit }
        split(a, x, " "); for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (y[i] + 0 < x[i] + 0 ? y[i] : x[i]); print "" }')"
    done
    read -r tr te tk tw iters <<<"$best"
    ratio="$(awk -v p="$peak" -v e="$est" 'BEGIN { if (e > 0) printf "%.2f", p / e; else print "-" }')"
    tt="$(awk -v a="$tr" -v b="$te" -v c="$tk" -v d="$tw" 'BEGIN { printf "%.3f", a + b + c + d }')"
    tki="$(awk -v k="$tk" -v i="$iters" 'BEGIN { if (i > 0) printf "%.1f", 1000 * k / i; else print 0 }')"
    printf '%-9s %-13s %11s %9s %6s %7s | %6s %6s %7s %5s %7s %6s %6s\n' "$n" "$shape" "${est:--}" "${peak:--}" "$ratio" "$sampled" "$tr" "$te" "$tk" "$iters" "$tki" "$tw" "$tt"
    curve[$shape,$n]="$tr $te $tk $tki $tw $tt $peak"
  done
done

first="${ROWS%% *}"
echo
# What the first write to fresh memory costs here: read and encode fill fresh buffers
# (the encoded matrix alone is rows x encoded columns x 8 bytes), so a machine whose
# cost per page grows with the size makes those phases grow faster than the rows.
CARGO_TARGET_DIR="$ROOT/target/bench-engine" cargo build --quiet --release \
  --manifest-path "$ROOT/bench/engine/Cargo.toml" --bin first_touch \
  && "$ROOT/target/bench-engine/release/first_touch" 300 3000
echo
echo "scale curve: time per phase and peak memory as ratios to $first rows"
printf '%-9s %-13s %7s | %6s %6s %7s %7s %6s %6s %6s\n' rows shape n_ratio read encode k-means ms/iter write total peak
for n in $ROWS; do
  for shape in $SHAPES; do
    [ -n "${curve[$shape,$n]:-}" ] && [ -n "${curve[$shape,$first]:-}" ] || continue
    awk -v n="$n" -v f="$first" -v s="$shape" -v a="${curve[$shape,$n]}" -v b="${curve[$shape,$first]}" 'BEGIN {
      split(a, x, " "); split(b, y, " ");
      printf "%-9s %-13s %6.1fx |", n, s, n / f;
      for (i = 1; i <= 7; i++) printf " %5.1fx", (y[i] > 0 ? x[i] / y[i] : 0);
      printf "\n" }'
  done
done
