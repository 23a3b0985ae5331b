//! Reports over a year of heavy synthetic use, and what that year costs on disk.
//!
//! The store is filled through `Store::ingest` (the same writer path as the receivers) with
//! `testkit::year`'s heavy user: 30 sessions a day for 365 days, evenly spread up to an hour
//! before now, each one hour long with four 15-minute exports (cost + 4 token types), a
//! `session.count` point, an `active_time.total` point and 20 `api_request` events. That is
//! 10 950 sessions, 240 900 metric points, 76 650 series and 219 000 events. The totals are
//! checked exactly after a restart, in the report and in `/metrics`.
//!
//! Printed before the timings (stderr): ingest time, file sizes before and after a WAL checkpoint
//! and bytes per stored point; then criterion times `Reader::report` for today / week / month /
//! all, and all by day / by model, plus month by day and all by session; then the dashboard's
//! JSON now and at the end of last month (`dashboard::build`).
//!
//! `cargo bench -p tokentray-core --bench report_year`. Set `TOKENTRAY_BENCH_YEAR_DIR=/some/dir`
//! to keep the populated data dir (a later run reuses it instead of filling it again, and
//! `tokentray --data-dir /some/dir report all` can be timed on it). Under `cargo test --benches`
//! (criterion's test mode) a week instead of a year is generated.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{Local, TimeZone, Weekday};
use criterion::{BenchmarkId, Criterion};
use tokentray_core::config::{BudgetsConfig, Listen};
use tokentray_core::dashboard::{self, Endpoints};
use tokentray_core::ingest;
use tokentray_core::query::{GroupBy, Period, TimeRange};
use tokentray_core::store::{disk, Reader, Store, DB_FILE};
use tokentray_core::testkit::year::{self, HistoryPlan, HistoryTotals};

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn db_files(dir: &Path) -> (u64, u64, u64) {
    let db = dir.join(DB_FILE);
    let wal = dir.join(format!("{DB_FILE}-wal"));
    let shm = dir.join(format!("{DB_FILE}-shm"));
    (file_len(&db), file_len(&wal), file_len(&shm))
}

fn populate(dir: &Path, plan: &HistoryPlan) -> HistoryTotals {
    let store = Store::open(dir).expect("open store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    let sent = rt.block_on(year::ingest_history(&store, plan, 64)).expect("ingest the history");
    let took = t0.elapsed();
    let series = store.series_count();
    store.close();
    drop(store);
    let stored = sent.points + sent.records;
    eprintln!(
        "[populate] {} days x {} sessions = {} sessions: {} metric points + {} events = {stored} records, {series} series, ingested in {took:.2?} ({:.0} records/s)",
        plan.days,
        plan.sessions_per_day,
        sent.sessions,
        sent.points,
        sent.records,
        stored as f64 / took.as_secs_f64()
    );
    sent
}

fn report_sizes(dir: &Path, expected: &HistoryTotals) {
    let (db, wal, shm) = db_files(dir);
    eprintln!("[disk] before checkpoint: db {db} B, wal {wal} B, shm {shm} B");
    let usage = disk::checkpoint_and_measure(dir).expect("checkpoint");
    let rows: Vec<String> = usage.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("[disk] rows: {}", rows.join(", "));
    for (name, bytes) in usage.objects {
        eprintln!("[disk]   {name:<20} {bytes:>12} B");
    }
    let (db, wal, shm) = db_files(dir);
    let total = db + wal;
    let stored = expected.points + expected.records;
    eprintln!(
        "[disk] after checkpoint: db {db} B, wal {wal} B, shm {shm} B; {:.1} MiB for {stored} records = {:.1} bytes per stored point/event ({:.1} per metric point if the events are counted as overhead)",
        total as f64 / 1048576.0,
        total as f64 / stored as f64,
        total as f64 / expected.points as f64
    );
}

fn check_all(reader: &Reader, e: &HistoryTotals) {
    let r = reader.report("all", TimeRange::ALL, None).expect("report");
    let f = &r.figures;
    assert!(year::same_cost(f.cost_usd, e.cost_usd), "cost {} != {}", f.cost_usd, e.cost_usd);
    assert_eq!(f.tokens.input, e.input);
    assert_eq!(f.tokens.output, e.output);
    assert_eq!(f.tokens.cache_read, e.cache_read);
    assert_eq!(f.tokens.cache_creation, e.cache_creation);
    assert_eq!(f.sessions, e.sessions as f64);
    assert_eq!(f.api_requests.count, e.records);
    assert!(
        year::same_cost(f.api_requests.cost_usd, e.cost_usd),
        "event cost {} != {}",
        f.api_requests.cost_usd,
        e.cost_usd
    );
    eprintln!(
        "[check] report all: ${:.2}, {} tokens, {} sessions, {} api requests: matches what was sent",
        f.cost_usd, f.tokens.total, f.sessions, f.api_requests.count
    );
}

/// After a restart of the engine on the history, `/metrics` adds up to what was sent.
fn check_metrics_after_restart(dir: &Path, e: &HistoryTotals) {
    let t0 = Instant::now();
    let store = Store::open(dir).expect("reopen store");
    let opened = t0.elapsed();
    let snapshot = store.snapshot();
    let cost = year::family_sum(&snapshot, "claude_code_cost_usage_USD_total");
    let tokens = year::family_sum(&snapshot, "claude_code_token_usage_tokens_total");
    assert!(year::same_cost(cost, e.cost_usd), "/metrics cost {cost} != {}", e.cost_usd);
    assert_eq!(tokens, e.tokens());
    eprintln!(
        "[check] restart: Store::open {opened:.2?}, {} series in memory; /metrics ${cost:.2}, {tokens} tokens: matches what was sent",
        store.series_count()
    );
    store.close();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let days = if full { 365 } else { 7 };
    let plan = HistoryPlan::heavy_user(days, ingest::now_ns() as u64);
    let keep: Option<PathBuf> = std::env::var_os("TOKENTRAY_BENCH_YEAR_DIR").map(PathBuf::from);
    let _tmp;
    let dir: PathBuf = match &keep {
        Some(d) => d.clone(),
        None => {
            _tmp = tempfile::Builder::new()
                .prefix("tokentray-bench-year-")
                .tempdir()
                .expect("tempdir");
            _tmp.path().to_path_buf()
        }
    };
    let expected = if keep.is_some() && dir.join(DB_FILE).exists() {
        eprintln!("[populate] reusing {} (delete it to regenerate)", dir.display());
        None
    } else {
        Some(populate(&dir, &plan))
    };
    if let Some(e) = &expected {
        report_sizes(&dir, e);
    }

    if let Some(e) = &expected {
        check_metrics_after_restart(&dir, e);
    }
    let reader = Reader::open(&dir).expect("reader");
    if let Some(e) = &expected {
        check_all(&reader, e);
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    {
        let mut group = c.benchmark_group("report_year");
        let cases: &[(Period, Option<GroupBy>)] = &[
            (Period::Today, None),
            (Period::Week, None),
            (Period::Month, None),
            (Period::All, None),
            (Period::Month, Some(GroupBy::Day)),
            (Period::All, Some(GroupBy::Day)),
            (Period::All, Some(GroupBy::Model)),
            (Period::All, Some(GroupBy::Session)),
        ];
        for &(period, by) in cases {
            let id = match by {
                None => period.name().to_string(),
                Some(b) => format!("{}_by_{}", period.name(), b.name()),
            };
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| {
                    let range = period.range_now(Weekday::Mon);
                    let r = reader.report(&period.name(), range, by).expect("report");
                    r.groups.map(|g| g.len()).unwrap_or(0)
                })
            });
        }
        // The window's JSON (`/api/dashboard`) now, and as it was on the last evening of the
        // previous month, when "this month" and the daily chart are whole months of the year.
        let endpoints = Endpoints::from_listen(&Listen::default());
        let budgets = BudgetsConfig::default();
        let now = Local::now();
        let first_of_month = Period::Month.range_at(&now, Weekday::Mon).start_ns.expect("start");
        let month_end = Local.timestamp_nanos(first_of_month - 3_600_000_000_000);
        for (id, at) in [("dashboard_now", now), ("dashboard_month_end", month_end)] {
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| dashboard::build(&reader, at, &endpoints, &budgets).expect("dashboard"))
            });
        }
        group.finish();
    }
    c.final_summary();
}
