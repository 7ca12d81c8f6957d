#!/usr/bin/env bash
# Engine benchmark: pg_segment's k-means fit (crates/engine/src/kmeans.rs, built from
# bench/engine in release) against scikit-learn's KMeans(algorithm="lloyd") on the SAME
# matrix, the SAME initial centroids and the SAME number of iterations, measured in the
# same run. Never a test: it prints numbers (copy them into docs/benchmarks.md).
#
#   bash bench/engine_bench.sh            # ~2-4 minutes on a 2-core machine
#
# Needs python3 with numpy, scikit-learn, threadpoolctl. Data goes to
# target/bench-engine/data (generated once, seeded).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=target/bench-engine
python3 -c "import sklearn, numpy, threadpoolctl" 2>/dev/null \
  || python3 -m pip install -q scikit-learn numpy threadpoolctl
REPEAT=${REPEAT:-5}
N=1000000
cargo build --quiet --release --manifest-path bench/engine/Cargo.toml --bin kmeans_bench
BIN=$CARGO_TARGET_DIR/release/kmeans_bench
PY="python3 bench/sklearn_kmeans.py"
DATA=$CARGO_TARGET_DIR/data
OUT=$DATA/results
mkdir -p "$DATA" "$OUT"
rm -f "$OUT"/*.jsonl

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "rustc: $(rustc --version); python: $(python3 -c 'import sklearn, numpy; print("scikit-learn", sklearn.__version__, "numpy", numpy.__version__)')"

gen() { # d k seed [shape]
  local shape=${4:-blobs} p
  if [ "$shape" = blobs ]; then p=$DATA/d$1k$2; else p=$DATA/u$1k$2; fi
  [ -f "$p.x.f64" ] && [ -f "$p.init.f64" ] || $PY gen --n $N --d "$1" --k "$2" --seed "$3" --shape "$shape" --out "$p"
}
gen 8 8 1
gen 16 64 2
gen 64 64 3
gen 16 8 7 uniform   # issue 18's shape: uniform noise, 1M x 16, k = 8
gen 16 8 4           # the same size as latent blobs

# Headline: d = 8, k = 8. sklearn's own convergence (tol = 1e-4) fixes the iteration
# count; both sides then run exactly that many iterations (tol = 0).
M=$DATA/d8k8
args="--data $M.x.f64 --init $M.init.f64 --n $N --d 8 --k 8"
$PY fit $args --tol 1e-4 >> "$OUT/sk_converge.jsonl"
ITERS=$(python3 -c "import json; print(json.load(open('$OUT/sk_converge.jsonl'))['n_iter'])")
$BIN $args --tol 1e-4 >> "$OUT/ours_converge.jsonl"
for _ in $(seq "$REPEAT"); do   # interleaved, so background load hits both alike
  $BIN $args --max-iter "$ITERS" --tol 0 --threads 2 >> "$OUT/ours_main.jsonl"
  $BIN $args --max-iter "$ITERS" --tol 0 --threads 1 >> "$OUT/ours_main_t1.jsonl"
  $PY fit $args --max-iter "$ITERS" --tol 0 >> "$OUT/sk_main.jsonl"
done

# Per-iteration cost at 1M rows, 10 iterations each, blobs and uniform noise.
for cfg in "d 8 8 blobs" "d 16 64 blobs" "d 64 64 blobs" "u 16 8 uniform"; do
  set -- $cfg
  M=$DATA/$1$2k$3
  args="--data $M.x.f64 --init $M.init.f64 --n $N --d $2 --k $3 --max-iter 10 --tol 0"
  o=$($BIN $args --threads 2)
  s=$($PY fit $args)
  echo "{\"shape\": \"$4\", \"ours\": $o, \"sklearn\": $s}" >> "$OUT/periter.jsonl"
done

# Per-iteration cost against the memory-bandwidth floor (kmeans_bench measures both in
# the same process), to convergence, on uniform noise and on blobs of the same size.
for cfg in "u 16 8 uniform" "d 16 8 blobs"; do
  set -- $cfg
  M=$DATA/$1$2k$3
  for _ in $(seq 3); do
    $BIN --data $M.x.f64 --init $M.init.f64 --n $N --d $2 --k $3 --tol 1e-4 --threads 2 \
      | python3 -c "import json, sys; r = json.load(sys.stdin); r['shape'] = '$4'; print(json.dumps(r))" \
      >> "$OUT/floor.jsonl"
  done
done

$PY report --dir "$OUT"

# Exact silhouette vs sklearn.metrics.silhouette_score (owned by the metrics engine;
# see bench/silhouette_bench.sh).
echo
echo "silhouette (exact, 20k rows, k = 8):"
bash bench/silhouette_bench.sh
