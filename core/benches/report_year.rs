//! Reports over a year of heavy synthetic use, and what that year costs on disk.
//!
//! The store is filled through `Store::ingest` (the same writer path as the receivers) with
//! `testkit::synthetic_session`s: 30 sessions a day for 365 days, evenly spread up to an hour
//! before now, each one hour long with four 15-minute exports (cost + 4 token types), a
//! `session.count` point, an `active_time.total` point and 20 `api_request` events. That is
//! 10 950 sessions, ~241k metric points, ~77k series and 219k events.
//!
//! Printed before the timings (stderr): ingest time, file sizes before and after a WAL checkpoint
//! and bytes per stored point; then criterion times `Reader::report` for today / week / month /
//! all, and all by day / by model, plus month by day and all by session.
//!
//! `cargo bench -p tokentray-core --bench report_year`. Set `TOKENTRAY_BENCH_YEAR_DIR=/some/dir`
//! to keep the populated data dir (a later run reuses it instead of filling it again, and
//! `tokentray --data-dir /some/dir report all` can be timed on it). Under `cargo test --benches`
//! (criterion's test mode) a week instead of a year is generated.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Weekday;
use criterion::{BenchmarkId, Criterion};
use tokentray_core::ingest::{self, Privacy};
use tokentray_core::query::{GroupBy, Period, TimeRange};
use tokentray_core::store::{Reader, Store, DB_FILE};
use tokentray_core::testkit::{self, SessionPlan};

const SESSIONS_PER_DAY: u64 = 30;
const EXPORTS_PER_SESSION: u32 = 4;
const API_REQUESTS_PER_SESSION: u32 = 20;

struct Expected {
    sessions: u64,
    points: u64,
    records: u64,
    cost_usd: f64,
    input: f64,
    output: f64,
    cache_read: f64,
    cache_creation: f64,
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn db_files(dir: &Path) -> (u64, u64, u64) {
    let db = dir.join(DB_FILE);
    let wal = dir.join(format!("{DB_FILE}-wal"));
    let shm = dir.join(format!("{DB_FILE}-shm"));
    (file_len(&db), file_len(&wal), file_len(&shm))
}

fn populate(dir: &Path, days: u64) -> Expected {
    let now = ingest::now_ns() as u64;
    let day_ns = 86_400 * 1_000_000_000u64;
    let total = days * SESSIONS_PER_DAY;
    let first = now - days * day_ns;
    // Sessions evenly spread over [now - days, now - 1 h), so the last one has ended by now.
    let spacing = (days * day_ns - 3_600 * 1_000_000_000) / total;
    let plans: Vec<SessionPlan> = (0..total)
        .map(|i| SessionPlan {
            index: i,
            start_ns: first + i * spacing,
            exports: EXPORTS_PER_SESSION,
            api_requests: API_REQUESTS_PER_SESSION,
        })
        .collect();
    let mut expected = Expected {
        sessions: total,
        points: 0,
        records: 0,
        cost_usd: 0.0,
        input: 0.0,
        output: 0.0,
        cache_read: 0.0,
        cache_creation: 0.0,
    };

    let store = Store::open(dir).expect("open store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            let s = testkit::synthetic_session(plan);
            expected.points += s.points as u64;
            expected.records += s.records as u64;
            expected.cost_usd += s.cost_usd;
            expected.input += s.tokens.input;
            expected.output += s.tokens.output;
            expected.cache_read += s.tokens.cache_read;
            expected.cache_creation += s.tokens.cache_creation;
            let store = store.clone();
            tasks.spawn(async move {
                let mut accepted = 0;
                for req in s.metrics {
                    let batch = ingest::metrics::normalize(req, ingest::now_ns());
                    accepted += store.ingest(batch).await.expect("ingest metrics").accepted;
                }
                let batch = ingest::logs::normalize(s.logs, ingest::now_ns(), Privacy::default());
                accepted += store.ingest(batch).await.expect("ingest logs").accepted;
                assert_eq!(accepted, s.points + s.records, "every point and record accepted");
            });
            // Many sessions in flight, as many Claude Code processes would be: the writer
            // groups their requests into shared transactions.
            while tasks.len() >= 64 {
                tasks.join_next().await.expect("task").expect("join");
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("join");
        }
    });
    let took = t0.elapsed();
    let series = store.series_count();
    store.close();
    drop(store);
    let stored = expected.points + expected.records;
    eprintln!(
        "[populate] {} days x {SESSIONS_PER_DAY} sessions = {} sessions: {} metric points + {} events = {stored} records, {series} series, ingested in {took:.2?} ({:.0} records/s)",
        days,
        expected.sessions,
        expected.points,
        expected.records,
        stored as f64 / took.as_secs_f64()
    );
    expected
}

fn report_sizes(dir: &Path, expected: &Expected) {
    let (db, wal, shm) = db_files(dir);
    eprintln!("[disk] before checkpoint: db {db} B, wal {wal} B, shm {shm} B");
    {
        let conn = rusqlite::Connection::open(dir.join(DB_FILE)).expect("open db");
        let _: (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("checkpoint");
        let count = |t: &str| {
            conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get::<_, i64>(0))
                .unwrap_or(-1)
        };
        eprintln!(
            "[disk] rows: series {}, usage {}, events {}, resources {}",
            count("series"),
            count("usage"),
            count("events"),
            count("resources")
        );
        // Per-table sizes where the SQLite build has the dbstat table.
        let tables: Vec<(String, i64)> = match conn
            .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        {
            Ok(mut stmt) => stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map(|it| it.filter_map(Result::ok).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for (name, bytes) in tables {
            eprintln!("[disk]   {name:<20} {bytes:>12} B");
        }
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

fn check_all(reader: &Reader, e: &Expected) {
    let r = reader.report("all", TimeRange::ALL, None).expect("report");
    let f = &r.figures;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    assert!(close(f.cost_usd, e.cost_usd), "cost {} != {}", f.cost_usd, e.cost_usd);
    assert_eq!(f.tokens.input, e.input);
    assert_eq!(f.tokens.output, e.output);
    assert_eq!(f.tokens.cache_read, e.cache_read);
    assert_eq!(f.tokens.cache_creation, e.cache_creation);
    assert_eq!(f.sessions, e.sessions as f64);
    assert_eq!(f.api_requests.count, e.sessions * API_REQUESTS_PER_SESSION as u64);
    assert!(
        close(f.api_requests.cost_usd, e.cost_usd),
        "event cost {} != {}",
        f.api_requests.cost_usd,
        e.cost_usd
    );
    eprintln!(
        "[check] report all: ${:.2}, {} tokens, {} sessions, {} api requests: matches what was sent",
        f.cost_usd, f.tokens.total, f.sessions, f.api_requests.count
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let days = if full { 365 } else { 7 };
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
        Some(populate(&dir, days))
    };
    if let Some(e) = &expected {
        report_sizes(&dir, e);
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
                    let r = reader.report(period.name(), range, by).expect("report");
                    r.groups.map(|g| g.len()).unwrap_or(0)
                })
            });
        }
        group.finish();
    }
    c.final_summary();
}
