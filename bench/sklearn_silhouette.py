#!/usr/bin/env python3
"""scikit-learn side of bench/silhouette_bench.sh.

  gen    --n N --d D --k K --seed S --out PREFIX
         writes PREFIX.x.f64 (n x d standardized blobs, little-endian f64, row-major) and
         PREFIX.labels.i64 (the blob labels, little-endian i64).
  score  --data X.f64 --labels L.i64 --n N --d D [--repeat R]
         times sklearn.metrics.silhouette_score(X, labels) (exact: no sample_size) and
         prints one JSON line with the median time and sklearn's thread pools.
"""
import argparse
import json
import time

import numpy as np


def gen(a):
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=a.n, n_features=a.d, centers=a.k, cluster_std=2.0,
                      center_box=(-6.0, 6.0), random_state=a.seed)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    np.ascontiguousarray(x, dtype="<f8").tofile(a.out + ".x.f64")
    np.ascontiguousarray(y, dtype="<i8").tofile(a.out + ".labels.i64")


def score(a):
    import sklearn
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_info

    x = np.fromfile(a.data, dtype="<f8").reshape(a.n, a.d)
    y = np.fromfile(a.labels, dtype="<i8")
    times = []
    s = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        s = silhouette_score(x, y)
        times.append((time.perf_counter() - t0) * 1e3)
    pools = [f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info()]
    print(json.dumps({
        "ms": sorted(times)[len(times) // 2],
        "ms_all": times,
        "score": float(s),
        "threadpools": pools,
        "sklearn": sklearn.__version__,
    }))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    for name in ("--n", "--d", "--k", "--seed"):
        g.add_argument(name, type=int, required=True)
    g.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("--data", required=True)
    s.add_argument("--labels", required=True)
    for name in ("--n", "--d"):
        s.add_argument(name, type=int, required=True)
    s.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    gen(a) if a.cmd == "gen" else score(a)


if __name__ == "__main__":
    main()
