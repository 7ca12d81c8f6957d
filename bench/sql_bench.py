"""End-to-end benchmark of pg_segment against the export-to-Python path.

Run by bench/sql_bench.sh against a throwaway cluster (PGHOST/PGPORT set). Prints
ratios measured in this run:

1. segment_train end to end (scan, encode, k-means, store, write assignments) vs
   COPY out -> pandas -> StandardScaler + OneHotEncoder + KMeans(k=8, n_init=1) ->
   COPY labels back into a table.
2. SELECT count(segment_assign('m', c)) FROM customers c vs the whole-row scan
   SELECT count(num_nonnulls(c)) FROM customers c.
3. segment_refresh of the trained model after 5% of the rows changed vs segment_train
   of a new model on the same data, and the k-means iterations each took (each run is
   rolled back, so every refresh starts from the same version).
4. segment_drift over every row vs the whole-row scan of section 2.
"""
import io
import os
import sys
import time

import numpy as np
import pandas as pd
import psycopg2
import threadpoolctl
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
K = 8
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
DATA = os.environ.get("BENCH_DATA", "segments")  # or "uniform" or "persona"
NUMERIC = ["age", "income", "tenure_days", "orders_90d", "spend_90d", "visits_30d",
           "returns_1y", "support_tickets"]
TEXT = ["region", "channel"]


def connect():
    return psycopg2.connect(dbname="bench", user="postgres")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def noise(p):
    """Uniform noise in [-1, 1], deterministic per row."""
    return f"((hashint4(i * {p}) & 65535) / 32767.5 - 1)"


def setup(cur):
    cur.execute("DROP TABLE IF EXISTS customers")
    if DATA == "uniform":
        # No structure at all: the worst case for k-means (many iterations).
        cols = f"""
               (18 + (hashint4(i) & 63))::int                          AS age,
               round((20000 + (hashint4(i * 7) & 131071))::numeric, 2) AS income,
               (hashint4(i * 11) & 4095)::int                          AS tenure_days,
               (hashint4(i * 13) & 31)::int                            AS orders_90d,
               ((hashint4(i * 17) & 65535) / 100.0)::float8            AS spend_90d,
               (hashint4(i * 19) & 63)::int                            AS visits_30d,
               (hashint4(i * 23) & 7)::int                             AS returns_1y,
               (hashint4(i * 29) & 15)::float8                         AS support_tickets,
               (ARRAY['north','south','east','west','central'])[1 + (hashint4(i * 31) & 4) % 5] AS region,
               (ARRAY['web','app','store','phone','partner','email','social','other'])[1 + (hashint4(i * 37) & 7)] AS channel"""
        src = f"generate_series(1, {ROWS}) i"
    elif DATA == "persona":
        # Real-looking marginals (bench/memory_bench.sh's persona shape): six overlapping
        # personas, normal ages, log-normal income and spend, exponential-tailed counts,
        # skewed categories, rows physically out of id order.
        def n3(a, b, c):
            return f"({noise(a)} + {noise(b)} + {noise(c)})"

        def expo(p):
            return f"-ln(0.0001 + (hashint4(i * {p}) & 65535) / 65536.0)"
        cols = f"""
               round(22 + 9 * s + 7 * {n3(3, 5, 7)})::int                                AS age,
               round(exp(10 + 0.3 * s + 0.5 * ({noise(11)} + {noise(13)}))::numeric, 2)   AS income,
               round({expo(17)} * (200 + 150 * s))::int                                   AS tenure_days,
               floor({expo(19)} * (1 + s))::int                                           AS orders_90d,
               round(exp(3 + 0.4 * s + 0.9 * ({noise(23)} + {noise(29)}))::numeric, 2)::float8 AS spend_90d,
               floor({expo(31)} * (2 + 2 * s))::int                                       AS visits_30d,
               floor({expo(37)} * 0.4)::int                                               AS returns_1y,
               floor({expo(43)})::float8                                                  AS support_tickets,
               (ARRAY['north','north','north','south','south','east','west','central','abroad'])[1 + (hashint4(i * 47) & 65535) % 9] AS region,
               (ARRAY['web','web','web','app','app','store','phone','partner','email','social','other','kiosk'])[1 + (s + (hashint4(i * 53) & 65535)) % 12] AS channel"""
        src = (f"(SELECT i, hashint4(i * 41) & 7 AS s FROM generate_series(1, {ROWS}) i "
               f"ORDER BY hashint4(i * 59)) g")
    else:
        # Customers drawn from 8 latent segments with overlapping uniform noise.
        cols = f"""
               round(25 + 6 * s + 8 * {noise(3)})::int                             AS age,
               round((30000 + 9000 * ((s * 3) % 8) + 12000 * {noise(7)})::numeric, 2) AS income,
               greatest(0, round(100 + 300 * ((s * 5) % 8) + 200 * {noise(11)}))::int AS tenure_days,
               greatest(0, round((s % 4) * 4 + 3 * {noise(13)}))::int              AS orders_90d,
               greatest(0, 50 + 120 * ((s * 7) % 8) + 80 * {noise(17)})::float8     AS spend_90d,
               greatest(0, round(2 + 3 * ((s + 3) % 8) + 3 * {noise(19)}))::int     AS visits_30d,
               greatest(0, round((s % 3) + 2 * {noise(23)}))::int                  AS returns_1y,
               greatest(0, round(((s + 1) % 5) + 2 * {noise(29)}))::float8          AS support_tickets,
               (ARRAY['north','south','east','west','central'])[1 + (s + (hashint4(i * 31) & 1)) % 5] AS region,
               (ARRAY['web','app','store','phone','partner','email','social','other'])[1 + (s * 3 + (hashint4(i * 37) & 3)) % 8] AS channel"""
        src = f"(SELECT i, hashint4(i * 41) & 7 AS s FROM generate_series(1, {ROWS}) i) g"
    cur.execute(f"CREATE TABLE customers AS SELECT i::bigint AS customer_id, {cols} FROM {src}")
    cur.execute("ALTER TABLE customers ADD PRIMARY KEY (customer_id)")
    cur.connection.commit()
    cur.connection.autocommit = True
    # A vacuumed table, as a CRM table normally is: every page all-visible (scans then
    # skip per-row visibility checks). A VACUUM that runs while autovacuum still holds
    # an older snapshot cannot mark the pages, so it is repeated until it has.
    for _ in range(10):
        cur.execute("VACUUM ANALYZE customers")
        cur.execute("SELECT relallvisible, relpages FROM pg_class WHERE oid = 'customers'::regclass")
        visible, pages = cur.fetchone()
        if visible >= pages:
            break
        time.sleep(1)
    cur.connection.autocommit = False
    return visible, pages


def python_path(conn, seed=0):
    """What a user does without pg_segment."""
    cur = conn.cursor()
    buf = io.StringIO()
    cur.copy_expert("COPY customers TO STDOUT WITH (FORMAT csv, HEADER)", buf)
    buf.seek(0)
    df = pd.read_csv(buf)
    pre = ColumnTransformer([("num", StandardScaler(), NUMERIC),
                             ("cat", OneHotEncoder(max_categories=21, handle_unknown="infrequent_if_exist"), TEXT)],
                            sparse_threshold=0)
    x = pre.fit_transform(df)
    km = KMeans(n_clusters=K, n_init=1, random_state=seed, algorithm="lloyd").fit(x)
    out = io.StringIO()
    pd.DataFrame({"customer_id": df["customer_id"], "segment": km.labels_ + 1}).to_csv(out, index=False, header=False)
    out.seek(0)
    cur.execute("DROP TABLE IF EXISTS py_assignments")
    cur.execute("CREATE TABLE py_assignments (customer_id bigint PRIMARY KEY, segment int NOT NULL)")
    cur.copy_expert("COPY py_assignments FROM STDIN WITH (FORMAT csv)", out)
    conn.commit()
    return km.n_iter_, km.inertia_


PHASES = {}


def pg_path(conn, seed=0):
    cur = conn.cursor()
    cur.execute("SELECT segment_drop('bench', if_exists => true)")
    # The phase times come from training's DEBUG1 lines ("<phase>: <s> s; heap ...").
    cur.execute("SET client_min_messages = debug1")
    import collections
    conn.notices = collections.deque(maxlen=1000)
    cur.execute("""SELECT iterations, inertia, sampled FROM segment_train('bench', 'customers'::regclass,
                   'customer_id', k => 8, n_init => 1, seed => %s)""", (seed,))
    row = cur.fetchone()
    cur.execute("RESET client_min_messages")
    conn.commit()
    import re
    phases = {}
    for n in conn.notices:
        m = re.search(r"\): ([a-z +()-]+): ([0-9.]+) s;", n)
        if m:
            phases[m.group(1)] = float(m.group(2))
    # Keep the phases of the fastest run.
    total = sum(phases.values())
    if phases and (not PHASES or total < sum(PHASES.values())):
        PHASES.clear()
        PHASES.update(phases)
    return row


def best(fn, n=REPEAT):
    times = []
    out = None
    for _ in range(n):
        t, out = timed(fn)
        times.append(t)
    return min(times), out


def main():
    conn = connect()
    conn.autocommit = False
    cur = conn.cursor()
    t_setup, (visible, pages) = timed(lambda: setup(cur))
    conn.commit()
    print(f"data: {ROWS} customers ({DATA}) x {len(NUMERIC)} numeric + {len(TEXT)} text columns "
          f"(generated in {t_setup:.1f} s; {visible} of {pages} pages all-visible); k = {K}; "
          f"best of {REPEAT}")
    info = threadpoolctl.threadpool_info()
    threads = max((i.get("num_threads", 1) for i in info), default=1)
    print(f"machine: {os.cpu_count()} cores; scikit-learn/numpy threads: {threads}; "
          f"pg_segment: 1 backend (k-means, encoding and metrics use 2 threads)")

    # The two paths alternate (Python, pg_segment, Python, ...), so that a slow spell of
    # the machine hits both alike; each side's best run counts.
    # Run r uses seed r on both sides: on data without structure the iterations k-means
    # needs depend on the seed (more than on the implementation).
    py_times, pg_times, py_iters, pg_iters = [], [], [], []
    for r in range(REPEAT):
        t, (py_iter, py_inertia) = timed(lambda: python_path(conn, r))
        py_times.append(t)
        py_iters.append(py_iter)
        t, (pg_iter, pg_inertia, sampled) = timed(lambda: pg_path(conn, r))
        pg_times.append(t)
        pg_iters.append(pg_iter)
    t_py, t_pg = min(py_times), min(pg_times)
    print("runs (s): Python " + " ".join(f"{t:.2f}" for t in py_times)
          + " | segment_train " + " ".join(f"{t:.2f}" for t in pg_times)
          + f" (seeds 0-{REPEAT - 1}; iterations: Python {py_iters}, segment_train {pg_iters})")
    print()
    print("1. train end to end (scan/export, encode, k-means, write assignments)")
    print(f"   export-to-Python path : {t_py:8.2f} s  (last run: {py_iter} iterations, inertia {py_inertia:.6g})")
    print(f"   segment_train         : {t_pg:8.2f} s  (last run: {pg_iter} iterations, inertia {pg_inertia:.6g}"
          f"{', trained on a sample' if sampled else ''})")
    print(f"   ratio                 : {t_py / t_pg:8.2f}x faster  (target >= 6x; best runs)")
    med = lambda v: sorted(v)[len(v) // 2]
    print(f"   medians               : {med(py_times):8.2f} s vs {med(pg_times):.2f} s, "
          f"{med(py_times) / med(pg_times):.2f}x")
    if PHASES:
        print("   segment_train's phases (its fastest run, DEBUG1): "
              + ", ".join(f"{k} {v:.3f} s" for k, v in PHASES.items()))

    cur.execute("SET max_parallel_workers_per_gather = 0")
    scan_q = "SELECT count(num_nonnulls(c)) FROM customers c"
    assign_q = "SELECT count(segment_assign('bench', c)) FROM customers c"
    cur.execute(assign_q)  # warm the cache
    t_scan, _ = best(lambda: cur.execute(scan_q) or cur.fetchone())
    t_assign, _ = best(lambda: cur.execute(assign_q) or cur.fetchone())
    print()
    print("2. assign every row (serial plans)")
    print(f"   {scan_q:60s}: {t_scan:6.3f} s")
    print(f"   {assign_q:60s}: {t_assign:6.3f} s")
    print(f"   ratio: {t_assign / t_scan:.2f}x the whole-row scan  (target <= 1.3x)")

    cur.execute("RESET max_parallel_workers_per_gather")
    cur.execute("""UPDATE customers SET spend_90d = spend_90d * 1.5 + 10, orders_90d = orders_90d + 2
                   WHERE customer_id % 20 = 0""")
    conn.commit()
    refresh_q = """SELECT iterations, segments_kept, customers_moved FROM segment_refresh('bench')"""
    train_q = """SELECT iterations, 0, 0 FROM segment_train('bench_t', 'customers'::regclass,
                   'customer_id', k => 8, n_init => 1, seed => 0)"""

    def rolled_back(q):
        cur.execute(q)
        out = cur.fetchone()
        conn.rollback()
        return out

    rf_times, tr_times = [], []
    for _ in range(REPEAT):
        t, (rf_iter, kept, moved) = timed(lambda: rolled_back(refresh_q))
        rf_times.append(t)
        t, (tr_iter, _, _) = timed(lambda: rolled_back(train_q))
        tr_times.append(t)
    t_rf, t_tr = min(rf_times), min(tr_times)
    print()
    print("3. refresh after 5% of the rows changed (warm start) vs training anew (k-means++)")
    print("   runs (s): segment_refresh " + " ".join(f"{t:.2f}" for t in rf_times)
          + " | segment_train " + " ".join(f"{t:.2f}" for t in tr_times))
    print(f"   segment_refresh       : {t_rf:8.2f} s  ({rf_iter} iterations; {kept} of {K} ids kept, "
          f"{moved} customers moved)")
    print(f"   segment_train         : {t_tr:8.2f} s  ({tr_iter} iterations)")
    print(f"   ratio                 : {t_tr / t_rf:8.2f}x  (target >= 1: refresh no slower than train)")

    drift_q = "SELECT count(*) FROM segment_drift('bench')"
    t_drift, _ = best(lambda: rolled_back(drift_q))
    cur.execute("SET max_parallel_workers_per_gather = 0")
    t_scan2, _ = best(lambda: cur.execute(scan_q) or cur.fetchone())
    conn.rollback()
    print()
    print("4. segment_drift over every row (bins every feature, assigns every row, compares")
    print("   with the assignment table) vs the whole-row scan")
    print(f"   {drift_q:60s}: {t_drift:6.3f} s")
    print(f"   {scan_q:60s}: {t_scan2:6.3f} s")
    print(f"   ratio: {t_drift / t_scan2:.2f}x the whole-row scan  (target <= 2x)")
    conn.close()
    summary = os.environ.get("BENCH_SUMMARY")
    if summary:
        import json
        with open(summary, "a") as f:
            f.write(json.dumps({
                "shape": DATA, "rows": ROWS,
                "train_vs_python": t_py / t_pg, "python_s": t_py, "train_s": t_pg,
                "assign_vs_scan": t_assign / t_scan,
                "train_vs_refresh": t_tr / t_rf,
                "drift_vs_scan": t_drift / t_scan2,
            }) + "\n")


if __name__ == "__main__":
    sys.exit(main())
