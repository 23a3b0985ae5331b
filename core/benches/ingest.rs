//! The store's writer alone: how fast `Store::ingest` commits normalised batches, without
//! network, protobuf decoding or normalisation in the timing (those are done in the untimed
//! setup). This is the ceiling of end-to-end ingest, and the benchmark to iterate on when
//! changing `store::writer`.
//!
//! Each iteration hands 8 batches of 1000 `testkit::load_request` points to the store at once (the
//! writer groups them into shared transactions, as with 8 concurrent clients) and waits for all
//! acknowledgements, i.e. for the commits (WAL, synchronous=FULL) to be on disk.
//!
//! * `fixed_10k_series`: the same 10 000 series again and again (steady state).
//! * `new_series`: every point a new series (a store filling up).
//!
//! `cargo bench -p tokentray-core --bench ingest`. Reports points per second.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, Throughput};
use tokentray_core::ingest::{self, Batch};
use tokentray_core::store::Store;
use tokentray_core::testkit;

const POINTS: usize = 1000;
const IN_FLIGHT: usize = 8;
const FIXED_SESSIONS: usize = 10_000 / 5;

fn batches(first_request: usize, fixed: bool) -> Vec<Batch> {
    let now = ingest::now_ns() as u64;
    let per = POINTS / 5;
    (0..IN_FLIGHT)
        .map(|i| {
            let r = first_request + i;
            let first_session = if fixed { (r * per) % FIXED_SESSIONS } else { r * per };
            ingest::metrics::normalize(
                testkit::load_request(POINTS, first_session, now),
                now as i64,
            )
        })
        .collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("store_ingest");
    group.throughput(Throughput::Elements((POINTS * IN_FLIGHT) as u64));
    group.sample_size(20);
    for (name, fixed) in [("fixed_10k_series", true), ("new_series", false)] {
        let dir =
            tempfile::Builder::new().prefix("tokentray-bench-ingest-").tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let mut next = 0usize;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let bs = batches(next, fixed);
                    next += IN_FLIGHT;
                    bs
                },
                |bs| {
                    rt.block_on(async {
                        let mut tasks = tokio::task::JoinSet::new();
                        for batch in bs {
                            let store = store.clone();
                            tasks.spawn(async move {
                                store.ingest(batch).await.expect("ingest").accepted
                            });
                        }
                        let mut accepted = 0;
                        while let Some(r) = tasks.join_next().await {
                            accepted += r.expect("join");
                        }
                        assert_eq!(accepted, POINTS * IN_FLIGHT);
                    })
                },
                BatchSize::PerIteration,
            )
        });
        eprintln!("[{name}] {} series in the store after the run", store.series_count());
        store.close();
    }
    group.finish();
    c.final_summary();
}
