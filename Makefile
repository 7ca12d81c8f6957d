# pg_segment: every target is a script under scripts/ so it can also be run directly.
.PHONY: setup test demo regress pgrx-test bench bench-engine bench-memory bench-agg bench-citus fixtures install fmt lint clean

setup:        ## install PostgreSQL 15, headers, pg_cron, cargo-pgrx; cargo pgrx init
	bash scripts/setup.sh
test:         ## everything: setup, fmt, clippy, engine tests, pgrx tests, SQL regression
	bash scripts/test.sh
demo:         ## setup, build, install, throwaway cluster, CDNOW walk-through
	bash scripts/demo.sh
install:      ## build (release) and install into the system PostgreSQL 15
	bash -c 'source scripts/common.sh && install_extension'
regress:      ## SQL regression suite only (extension must be installed); T=name for one
	bash scripts/regress.sh $(T)
pgrx-test:    ## #[pg_test] suite only
	bash scripts/pgrx_test.sh
bench-engine: ## engine vs scikit-learn: k-means fit and silhouette, prints ratios
	bash bench/engine_bench.sh
bench:        ## SQL vs export-to-Python on 3 data shapes, every ratio by shape, the 1M-10M scale curve, cancel latency (~30 min; see bench/sql_bench.sh)
	bash bench/sql_bench.sh
bench-memory: ## training's memory estimate vs the peak it really uses and phase times, 4 shapes, 1M and 3M rows
	bash bench/memory_bench.sh
bench-agg:    ## the exact-combining aggregates over 1M rows, serial and parallel, 2 shapes (compare builds)
	bash bench/agg_bench.sh
bench-citus:  ## a 3-node Citus cluster on this machine vs one server: training by passes, assignment, bytes per pass (skips without Citus)
	bash bench/citus_bench.sh
fixtures:     ## regenerate the fixtures (scikit-learn, scipy, statsmodels, pandas; each script's header says what it needs)
	for f in crates/engine/fixtures/make_*.py tests/fixtures/make_*.py; do python3 $$f || { echo "$$f failed: its header says what it needs"; exit 1; }; done
fmt:
	cargo fmt --all
lint:
	cargo fmt --all --check && cargo clippy --workspace --all-targets --features "pg_segment/pg_test" -- -D warnings
clean:           ## stop throwaway clusters, remove their data (owned by postgres) and target/
	bash -c 'source scripts/common.sh && for c in regress demo bench; do cluster_stop $$c; done; as_root rm -rf "$$ROOT/target/pg" "/tmp/pg_segment-$$(id -u)"'
	cargo clean
