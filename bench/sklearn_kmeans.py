#!/usr/bin/env python3
"""scikit-learn side of bench/engine_bench.sh.

  gen  --n N --d D --k K --seed S --out PREFIX [--shape blobs|uniform]
       writes PREFIX.x.f64 (n x d, standardized blobs or uniform noise, little-endian
       f64, row-major) and
       PREFIX.init.f64 (k x d initial centroids: k-means++ on a seeded 50k-row sample).
  fit  --data X.f64 --n N --d D --init C.f64 --k K [--max-iter M] [--tol T] [--repeat R]
       times KMeans(algorithm="lloyd", init=C, n_init=1).fit(X) and prints one JSON line.
  report --dir DIR
       reads the JSON lines engine_bench.sh collected in DIR and prints the comparison.
"""
import argparse
import json
import time

import numpy as np


def gen(a):
    from sklearn.cluster import kmeans_plusplus
    from sklearn.datasets import make_blobs

    rng = np.random.RandomState(a.seed)
    if a.shape == "uniform":
        x = np.random.RandomState(a.seed + 1000).uniform(size=(a.n, a.d))
    else:
        x, _ = make_blobs(n_samples=a.n, n_features=a.d, centers=a.k, cluster_std=2.0,
                          center_box=(-6.0, 6.0), random_state=a.seed)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x = np.ascontiguousarray(x, dtype="<f8")
    sample = x[rng.choice(a.n, size=min(a.n, 50_000), replace=False)]
    init, _ = kmeans_plusplus(sample, a.k, random_state=a.seed)
    x.tofile(a.out + ".x.f64")
    np.ascontiguousarray(init, dtype="<f8").tofile(a.out + ".init.f64")


def fit(a):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_info

    x = np.fromfile(a.data, dtype="<f8").reshape(a.n, a.d)
    c = np.fromfile(a.init, dtype="<f8").reshape(a.k, a.d)
    times = []
    km = None
    for _ in range(a.repeat):
        km = KMeans(n_clusters=a.k, init=c, n_init=1, algorithm="lloyd",
                    max_iter=a.max_iter, tol=a.tol)
        t0 = time.perf_counter()
        km.fit(x)
        times.append((time.perf_counter() - t0) * 1e3)
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    pools = [f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info()]
    import resource
    print(json.dumps({
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "ms": sorted(times)[len(times) // 2],
        "ms_all": times,
        "inertia": float(km.inertia_),
        "n_iter": int(km.n_iter_),
        "threads": _openmp_effective_n_threads(),
        "threadpools": pools,
    }))


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def runs(rs):
    return ", ".join("%.0f" % r["ms"] for r in rs)


def report(a):
    import os
    d = a.dir
    conv = load(os.path.join(d, "sk_converge.jsonl"))[0]
    ours = load(os.path.join(d, "ours_main.jsonl"))
    ours1 = load(os.path.join(d, "ours_main_t1.jsonl"))
    sk = load(os.path.join(d, "sk_main.jsonl"))
    o_ms = median([r["ms"] for r in ours])
    o1_ms = median([r["ms"] for r in ours1])
    s_ms = median([r["ms"] for r in sk])
    o, s = ours[-1], sk[-1]
    rel = abs(o["inertia"] - s["inertia"]) / abs(s["inertia"])
    n = o["n"]
    print(f"k-means fit, {n} x {o['d']} standardized rows, k = {o['k']}, same initial centroids")
    print(f"  sklearn converges (tol=1e-4) in n_iter = {conv['n_iter']}; ours with tol=1e-4: "
          f"n_iter = {load(os.path.join(d, 'ours_converge.jsonl'))[0]['n_iter']}")
    print(f"  timed: max_iter = {conv['n_iter']}, tol = 0, median of {len(ours)} interleaved runs each")
    print(f"  ours    {o_ms:9.1f} ms  ({o['algorithm']}, {o['threads']} threads; "
          f"runs {runs(ours)})")
    print(f"  ours    {o1_ms:9.1f} ms  ({ours1[-1]['algorithm']}, 1 thread; "
          f"runs {runs(ours1)})")
    print(f"  sklearn {s_ms:9.1f} ms  (lloyd, OpenMP threads {s['threads']}, threadpools "
          f"{' '.join(s['threadpools'])}; runs {runs(sk)})")
    o_min = min(r["ms"] for r in ours)
    o1_min = min(r["ms"] for r in ours1)
    s_min = min(r["ms"] for r in sk)
    print(f"  ratio   {s_ms / o_ms:9.2f} x  (sklearn / ours, medians, 2 threads; "
          f"{s_ms / o1_ms:.2f} x with 1 thread)")
    print(f"  ratio   {s_min / o_min:9.2f} x  (sklearn / ours, fastest runs, 2 threads; "
          f"{s_min / o1_min:.2f} x with 1 thread)")
    print(f"  n_iter  ours {o['n_iter']}, sklearn {s['n_iter']}")
    print(f"  inertia ours {o['inertia']!r}, sklearn {s['inertia']!r}, relative difference {rel:.2e}")
    print(f"  memory  ours: {o['bytes_per_row']:.1f} bytes per training row "
          f"({8 * o['d']} data + {o['extra_bytes_per_row']:.1f} working set, estimate); "
          f"peak RSS / row: ours {o['peak_rss_bytes'] / n:.1f}, sklearn {s['peak_rss_bytes'] / n:.1f}")
    print("per-iteration ms at 1M rows (fit time / n_iter, tol = 0, same initial centroids):")
    print(f"  {'shape':>7} {'d':>3} {'k':>3} {'iters':>5} {'ours ms/iter':>13} {'sklearn ms/iter':>16} {'ratio':>6}"
          f"  ours algorithm, first iteration / mean of the rest (ms)")
    for line in load(os.path.join(d, "periter.jsonl")):
        o, s = line["ours"], line["sklearn"]
        oi, si = o["ms"] / o["n_iter"], s["ms"] / s["n_iter"]
        rest = o["iter_ms"][1:]
        rest_ms = sum(rest) / len(rest) if rest else float("nan")
        print(f"  {line['shape']:>7} {o['d']:>3} {o['k']:>3} {o['n_iter']:>5} {oi:>13.1f} {si:>16.1f} {si / oi:>6.2f}"
              f"  {o['algorithm']}, {o['iter_ms'][0]:.0f} / {rest_ms:.0f}"
              f"; inertia rel diff {abs(o['inertia'] - s['inertia']) / s['inertia']:.1e}")
    floor_file = os.path.join(d, "floor.jsonl")
    if os.path.exists(floor_file):
        print("per-iteration ms against the memory-bandwidth floor (ours, 2 threads, to convergence at tol = 1e-4;")
        print("  floor = fastest of 10 two-thread passes that read the f64 matrix once; goal <= 2x):")
        print(f"  {'shape':>7} {'d':>3} {'k':>3} {'iters':>5} {'median ms/iter':>15} {'floor ms':>9} {'ratio':>6}  runs (median ms/iter)")
        by = {}
        for r in load(floor_file):
            by.setdefault((r["shape"], r["d"], r["k"]), []).append(r)
        for (shape, dd, kk), rs in by.items():
            meds = [median(r["iter_ms"]) for r in rs]
            m = median(meds)
            fl = median([r["floor_ms"] for r in rs])
            print(f"  {shape:>7} {dd:>3} {kk:>3} {rs[0]['n_iter']:>5} {m:>15.2f} {fl:>9.2f} {m / fl:>6.2f}"
                  f"  {', '.join('%.2f' % v for v in meds)}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    for name in ("--n", "--d", "--k", "--seed"):
        g.add_argument(name, type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--shape", choices=["blobs", "uniform"], default="blobs")
    f = sub.add_parser("fit")
    f.add_argument("--data", required=True)
    f.add_argument("--init", required=True)
    for name in ("--n", "--d", "--k"):
        f.add_argument(name, type=int, required=True)
    f.add_argument("--max-iter", type=int, default=300)
    f.add_argument("--tol", type=float, default=1e-4)
    f.add_argument("--repeat", type=int, default=1)
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    a = p.parse_args()
    {"gen": gen, "fit": fit, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
