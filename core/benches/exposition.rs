//! `/metrics` rendering cost: [`exposition::encode`] of a snapshot with 1k / 10k / 100k series,
//! and `Store::snapshot()` (copying the totals out under the read lock) alone and followed by the
//! encode, which is what one scrape costs the server.
//!
//! The series are real ones: `testkit::load_request` batches (Claude Code's `cost.usage` and
//! `token.usage` points of distinct sessions, 12 labels each once rendered: user_id, session_id,
//! anthropic_provider, anthropic_custom_base_url, terminal_type, model, query_source, effort,
//! [type,] otel_scope_name, otel_scope_version, job) ingested into a `Store` on a temp dir.
//!
//! `cargo bench -p tokentray-core --bench exposition`. Under `cargo test --benches` (criterion's
//! test mode) only the 1k case is built, so the test suite stays fast.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use tokentray_core::exposition::{encode, Format};
use tokentray_core::ingest;
use tokentray_core::store::Store;
use tokentray_core::testkit;

/// A store holding `series` counter series (1000 per request; each request's points are new
/// sessions, so every point is a new series).
fn store_with(series: usize, rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new().prefix("tokentray-bench-expo-").tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let per_request = 1000.min(series);
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for r in 0..series.div_ceil(per_request) {
            let n = per_request.min(series - r * per_request);
            let store = store.clone();
            let now = ingest::now_ns() as u64;
            tasks.spawn(async move {
                let req = testkit::load_request(n, r * per_request, now);
                let batch = ingest::metrics::normalize(req, now as i64);
                store.ingest(batch).await.expect("ingest")
            });
            // Keep a few requests queued so the writer groups them, without building all at once.
            while tasks.len() >= 8 {
                tasks.join_next().await.expect("task").expect("join");
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("join");
        }
    });
    assert_eq!(store.series_count(), series, "every point should have made a series");
    eprintln!("[setup] {series} series ingested in {:.2?}", t0.elapsed());
    (dir, store)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[1_000, 10_000, 100_000] } else { &[1_000] };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();

    let stores: Vec<(usize, tempfile::TempDir, Store)> = sizes
        .iter()
        .map(|&n| {
            let (dir, store) = store_with(n, &rt);
            (n, dir, store)
        })
        .collect();

    {
        let mut group = c.benchmark_group("metrics_render");
        for (n, _, store) in &stores {
            let snapshot = store.snapshot();
            let mut out = Vec::with_capacity(1 << 20);
            encode(&mut out, &snapshot, Format::Text004).expect("encode");
            let bytes = out.len();
            eprintln!(
                "[size] {n} series: {bytes} bytes of text 0.0.4 ({:.0} B/series)",
                bytes as f64 / *n as f64
            );
            group.throughput(Throughput::Elements(*n as u64));
            group.sample_size(if *n >= 100_000 { 10 } else { 50 });
            group.bench_with_input(BenchmarkId::new("encode_text004", n), &snapshot, |b, s| {
                b.iter(|| {
                    out.clear();
                    encode(&mut out, s, Format::Text004).expect("encode");
                    out.len()
                })
            });
            group.bench_with_input(BenchmarkId::new("encode_openmetrics", n), &snapshot, |b, s| {
                b.iter(|| {
                    out.clear();
                    encode(&mut out, s, Format::OpenMetrics100).expect("encode");
                    out.len()
                })
            });
            group.bench_with_input(BenchmarkId::new("store_snapshot", n), store, |b, st| {
                b.iter(|| st.snapshot().families.len())
            });
            group.bench_with_input(BenchmarkId::new("snapshot_plus_encode", n), store, |b, st| {
                b.iter(|| {
                    // As the /metrics handler does: a fresh snapshot and a fresh 64 KiB buffer.
                    let snap = st.snapshot();
                    let mut body = Vec::with_capacity(64 * 1024);
                    encode(&mut body, &snap, Format::Text004).expect("encode");
                    body.len()
                })
            });
        }
        group.finish();
    }
    c.final_summary();
    for (_, _, store) in &stores {
        store.close();
    }
}
