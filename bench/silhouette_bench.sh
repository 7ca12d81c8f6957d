#!/usr/bin/env bash
# Exact silhouette: pg_segment's engine (crates/engine/src/metrics.rs, bench/engine in release) vs
# sklearn.metrics.silhouette_score on the SAME 20k x d standardized blobs (k = 8), d = 8
# and 16. Runs are interleaved (ours, sklearn, ours, ...) so background load hits both
# alike. Prints one line per d: median ms of each, the ratio of medians, the ratio of the
# fastest runs ("best"), and |score difference|. Never a test: it prints numbers.
#
#   bash bench/silhouette_bench.sh            # N=20000 REPEAT=5 by default, ~1-2 minutes
#   N=5000 REPEAT=3 bash bench/silhouette_bench.sh
#
# Needs python3 with numpy, scikit-learn, threadpoolctl. CARGO_TARGET_DIR is honoured.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
N="${N:-20000}"
K="${K:-8}"
REPEAT="${REPEAT:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$here/engine/Cargo.toml" --bin silhouette_bench
bin="${CARGO_TARGET_DIR:-$here/engine/target}/release/silhouette_bench"

printf '%-6s %-4s %-3s %10s %12s %8s %8s %10s  %s\n' n d k ours_ms sklearn_ms ratio best score_diff details
for D in 8 16; do
  p="$work/s$D"
  python3 "$here/sklearn_silhouette.py" gen --n "$N" --d "$D" --k "$K" --seed 42 --out "$p"
  for _ in $(seq "$REPEAT"); do
    "$bin" --data "$p.x.f64" --labels "$p.labels.i64" --n "$N" --d "$D" --repeat 1 >> "$p.ours.jsonl"
    python3 "$here/sklearn_silhouette.py" score --data "$p.x.f64" --labels "$p.labels.i64" \
      --n "$N" --d "$D" --repeat 1 >> "$p.sk.jsonl"
  done
  python3 - "$p" "$N" "$D" "$K" <<'PY'
import json, statistics, sys
p, n, d, k = sys.argv[1:5]
o = [json.loads(l) for l in open(p + ".ours.jsonl")]
s = [json.loads(l) for l in open(p + ".sk.jsonl")]
om, sm = [r["ms"] for r in o], [r["ms"] for r in s]
print(f"{n:<6} {d:<4} {k:<3} {statistics.median(om):10.1f} {statistics.median(sm):12.1f} "
      f"{statistics.median(sm) / statistics.median(om):7.1f}x {min(sm) / min(om):7.1f}x "
      f"{abs(o[-1]['score'] - s[-1]['score']):10.1e}  ours: {o[-1]['threads']} threads, "
      f"{o[-1]['kernel']}, runs {[round(t) for t in om]}; sklearn {s[-1]['sklearn']} "
      f"{','.join(sorted(s[-1]['threadpools']))}, runs {[round(t) for t in sm]}")
PY
done
