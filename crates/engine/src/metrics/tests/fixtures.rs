//! Agreement with the scikit-learn fixtures.

use super::*;

// ---------------------------------------------------------------- fixtures

#[test]
fn fixtures_inertia_db_ch() {
    for c in cases() {
        let e = &c.exp;
        let got = inertia(c.x.view(), &c.inertia_labels, c.centroids.view()).unwrap();
        close(
            got,
            e["inertia"].as_f64().unwrap(),
            TOL,
            &format!("{} inertia", c.name),
        );
        let got = davies_bouldin(c.x.view(), &c.labels).unwrap();
        close(
            got,
            e["davies_bouldin"].as_f64().unwrap(),
            TOL,
            &format!("{} DB", c.name),
        );
        let got = calinski_harabasz(c.x.view(), &c.labels).unwrap();
        let want = e["calinski_harabasz"].as_f64().unwrap();
        close(got, want, TOL, &format!("{} CH", c.name));
        let mut st = ClusterStats::new(c.x.ncols());
        for (r, &l) in c.x.outer_iter().zip(&c.labels) {
            st.push(l, r.as_slice().unwrap()).unwrap();
        }
        close(
            st.calinski_harabasz().unwrap(),
            want,
            TOL,
            &format!("{} stats CH", c.name),
        );
    }
}

#[test]
fn fixtures_silhouette_all_kernels_schedules_threads() {
    for c in cases() {
        let want = floats(&c.exp["silhouette_samples"]);
        for simd in kernels() {
            for sched in [Schedule::Symmetric, Schedule::RowWise] {
                for threads in [1, 2] {
                    let got = silhouette_impl(
                        c.x.view(),
                        &c.labels,
                        threads,
                        Some(sched),
                        Some(simd),
                        &mut no_interrupt(),
                    )
                    .unwrap();
                    assert_eq!(got.len(), want.len());
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let what = format!("{} {simd:?} {sched:?} t{threads} s[{i}]", c.name);
                        close(*g, *w, TOL, &what);
                    }
                }
            }
        }
        let score = silhouette_score(c.x.view(), &c.labels).unwrap();
        let want_score = c.exp["silhouette_score"].as_f64().unwrap();
        close(score, want_score, TOL, &format!("{} score", c.name));
        let s = silhouette_sampled(c.x.view(), &c.labels, c.x.nrows(), 1).unwrap();
        assert!(s.exact && s.sample_size == c.x.nrows());
        close(
            s.score,
            want_score,
            TOL,
            &format!("{} sampled(exact)", c.name),
        );
    }
}

#[test]
fn fixtures_ari_nmi_and_contingency() {
    for c in cases() {
        let (ari, nmi) = (
            c.exp["ari"].as_f64().unwrap(),
            c.exp["nmi"].as_f64().unwrap(),
        );
        close(
            adjusted_rand_index(&c.labels, &c.labels_b).unwrap(),
            ari,
            TOL,
            &c.name,
        );
        close(
            normalized_mutual_info(&c.labels, &c.labels_b).unwrap(),
            nmi,
            TOL,
            &c.name,
        );
    }
    let v: Value = serde_json::from_str(LABELINGS).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (a, b) = (ints(&case["a"]), ints(&case["b"]));
        let (ari, nmi) = (case["ari"].as_f64().unwrap(), case["nmi"].as_f64().unwrap());
        close(
            adjusted_rand_index(&a, &b).unwrap(),
            ari,
            TOL,
            &format!("{name} ARI"),
        );
        close(
            normalized_mutual_info(&a, &b).unwrap(),
            nmi,
            TOL,
            &format!("{name} NMI"),
        );
    }
}

#[test]
fn ari_nmi_special_cases_are_exact() {
    let a = [0, 0, 1, 1, 2, 2];
    let p = [5, 5, -3, -3, 9, 9];
    assert_eq!(adjusted_rand_index(&a, &a).unwrap(), 1.0);
    assert_eq!(adjusted_rand_index(&a, &p).unwrap(), 1.0);
    assert_eq!(normalized_mutual_info(&[7; 5], &[1; 5]).unwrap(), 1.0);
    assert_eq!(adjusted_rand_index(&[7; 5], &[1; 5]).unwrap(), 1.0);
    assert_eq!(normalized_mutual_info(&[0; 4], &[0, 1, 2, 3]).unwrap(), 0.0);
    assert_eq!(adjusted_rand_index(&[0; 4], &[0, 1, 2, 3]).unwrap(), 0.0);
    assert_eq!(
        adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap(),
        -0.5
    );
    close(
        normalized_mutual_info(&a, &p).unwrap(),
        1.0,
        1e-15,
        "nmi permuted",
    );
}

#[test]
fn fixtures_cluster_summaries() {
    for c in cases() {
        let got = cluster_summaries(c.x.view(), &c.labels).unwrap();
        let want = c.exp["clusters"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        let mut st = ClusterStats::new(c.x.ncols());
        for (r, &l) in c.x.outer_iter().zip(&c.labels) {
            st.push(l, r.as_slice().unwrap()).unwrap();
        }
        let mut wss = 0.0;
        for ((g, w), (sl, sm)) in got.iter().zip(want).zip(st.centroids()) {
            let what = format!("{} cluster {}", c.name, g.label);
            assert_eq!(g.label, w["label"].as_i64().unwrap(), "{what}");
            assert_eq!(g.size, w["size"].as_u64().unwrap(), "{what}");
            for ((gm, wm), smv) in g.mean.iter().zip(floats(&w["mean"])).zip(&sm) {
                close(*gm, wm, TOL, &format!("{what} mean"));
                close(*smv, wm, TOL, &format!("{what} stats mean"));
            }
            assert_eq!(sl, g.label);
            let md = w["mean_distance"].as_f64().unwrap();
            close(g.mean_distance, md, TOL, &format!("{what} mean_distance"));
            let disp = w["dispersion"].as_f64().unwrap();
            close(g.dispersion, disp, TOL, &format!("{what} dispersion"));
            wss += disp * disp * g.size as f64;
        }
        close(st.within_ss(), wss, TOL, &format!("{} within_ss", c.name));
        assert_eq!(st.sizes().len(), got.len());
    }
}
