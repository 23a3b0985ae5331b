//! The store over a real SQLite file: totals rebuilt after a restart equal those before it,
//! cumulative series keep counting across our restart, concurrent requests group-commit without
//! losing anything, and reports cut time ranges exactly.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
// These tests rebuild the older layouts the migrations start from, statement by statement: the
// one place outside core/src/store/ where a raw connection is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_types)]

use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint,
};
use tokentray_core::exposition::{encode, Format};
use tokentray_core::ingest;
use tokentray_core::query::{GroupBy, TimeRange};
use tokentray_core::store::{Reader, Store};
use tokentray_core::testkit::{self, Usage};

const S: u64 = 1_000_000_000;

fn text(store: &Store) -> String {
    let mut out = Vec::new();
    encode(&mut out, &store.snapshot(), Format::Text004).expect("encode");
    String::from_utf8(out).expect("utf8")
}

async fn ingest_metrics(store: &Store, metrics: Vec<Metric>) {
    let batch = ingest::metrics::normalize(testkit::metrics_request(metrics), 0);
    let ack = store.ingest(batch).await.expect("stored");
    assert_eq!(ack.rejected, 0, "{:?}", ack.reason);
}

fn usage(cost: f64) -> Usage {
    Usage {
        cost_usd: cost,
        input: cost * 1000.0,
        output: 1.0,
        cache_read: 2.0,
        cache_creation: 3.0,
    }
}

fn gauge(name: &str, value: f64, time_ns: u64) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time_ns,
                value: Some(Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

fn histogram(
    name: &str,
    counts: Vec<u64>,
    sum: f64,
    start: u64,
    time: u64,
    temporality: AggregationTemporality,
) -> Metric {
    Metric {
        name: name.into(),
        unit: "ms".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: counts.iter().sum(),
                sum: Some(sum),
                bucket_counts: counts,
                explicit_bounds: vec![10.0, 100.0],
                ..Default::default()
            }],
            aggregation_temporality: temporality as i32,
        })),
        ..Default::default()
    }
}

fn cost_of(store_dir: &std::path::Path, range: TimeRange) -> f64 {
    Reader::open(store_dir)
        .expect("reader")
        .report("r", range, None)
        .expect("report")
        .figures
        .cost_usd
}

#[tokio::test]
async fn restart_rebuilds_identical_totals_and_cumulative_keeps_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    // Delta session, cumulative session (two exports), a gauge and a cumulative histogram.
    ingest_metrics(&store, testkit::usage_metrics("delta", "u", "m1", usage(0.5), S, 2 * S, false))
        .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("delta", "u", "m1", usage(0.25), 5 * S, 6 * S, false),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("cum", "u", "m2", usage(1.0), 10 * S, 11 * S, true),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("cum", "u", "m2", usage(3.0), 10 * S, 12 * S, true),
    )
    .await;
    ingest_metrics(&store, vec![gauge("queue.depth", 7.0, 12 * S)]).await;
    ingest_metrics(
        &store,
        vec![histogram(
            "api.latency",
            vec![1, 2, 0],
            150.0,
            10 * S,
            11 * S,
            AggregationTemporality::Cumulative,
        )],
    )
    .await;
    let before = text(&store);
    assert!(before.contains("claude_code_cost_usage_USD_total"), "{before}");
    assert_eq!(cost_of(dir.path(), TimeRange::ALL), 3.75);
    store.close();
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(text(&store), before, "/metrics after a restart equals /metrics before it");

    // The cumulative client keeps sending running totals after our restart: only the increase
    // counts (3.0 → 4.5), and a re-sent old point adds nothing.
    ingest_metrics(
        &store,
        testkit::usage_metrics("cum", "u", "m2", usage(3.0), 10 * S, 12 * S, true),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("cum", "u", "m2", usage(4.5), 10 * S, 13 * S, true),
    )
    .await;
    ingest_metrics(
        &store,
        vec![histogram(
            "api.latency",
            vec![1, 3, 1],
            400.0,
            10 * S,
            13 * S,
            AggregationTemporality::Cumulative,
        )],
    )
    .await;
    assert_eq!(cost_of(dir.path(), TimeRange::ALL), 5.25);
    let after = text(&store);
    let sample = |name: &str| {
        after
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(sample("api_latency_milliseconds_count").as_deref(), Some("5"), "{after}");
    assert_eq!(sample("api_latency_milliseconds_sum").as_deref(), Some("400"), "{after}");
    assert_eq!(sample("queue_depth").as_deref(), Some("7"), "{after}");
}

/// Sum of every sample of `family` in a `/metrics` text, and how many series it has.
fn family_total(text: &str, family: &str) -> (f64, usize) {
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (samples.iter().sum(), samples.len())
}

/// Claude Code reports failed API calls only as `claude_code.api_error` events; tokentray counts
/// each stored one once in its own counter, across requests, sessions and a restart.
#[tokio::test]
async fn api_error_events_count_once_each_in_metrics() {
    use tokentray_core::ingest::Privacy;
    const FAMILY: &str = "claude_code_api_error_count_total";
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let api_error = |session: &str, status: Option<i64>, t: u64| {
        let mut r = testkit::event_record(
            session,
            "api_error",
            &[("model", testkit::MODEL), ("error", "Overloaded"), ("request_id", "req")],
            t,
        );
        r.attributes.extend(status.map(|c| testkit::kv_int("status_code", c)));
        r
    };
    let requests = [
        vec![api_error("s1", Some(529), S), api_error("s1", Some(529), 2 * S)],
        vec![
            api_error("s1", Some(500), 3 * S),
            testkit::event_record("s1", "api_retries_exhausted", &[], 3 * S),
        ],
        vec![api_error("s2", None, 4 * S)],
        vec![testkit::api_request_record("s2", "u", testkit::MODEL, usage(0.5), 5 * S)],
        vec![api_error("s2", None, 6 * S), api_error("s2", Some(400), 7 * S)],
    ];
    for records in requests {
        let batch = ingest::logs::normalize(testkit::logs_request(records), 0, Privacy::default());
        let events = batch.events.len();
        let ack = store.ingest(batch).await.expect("stored");
        assert_eq!((ack.accepted, ack.rejected), (events, 0), "the client sent events: {ack:?}");
    }
    let before = text(&store);
    assert_eq!(family_total(&before, FAMILY), (6.0, 4), "6 errors in 4 series:\n{before}");
    assert!(
        before.contains(&format!(
            "{FAMILY}{{anthropic_custom_base_url=\"true\",anthropic_provider=\"firstParty\",job=\"claude-code\",model=\"{}\",otel_scope_name=\"com.anthropic.claude_code.events\",otel_scope_version=\"{}\",session_id=\"s1\",status_code=\"529\",terminal_type=\"dumb\",user_id=\"u\"}} 2",
            testkit::MODEL,
            testkit::VERSION
        )),
        "{before}"
    );
    store.close();
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(text(&store), before, "the counter survives a restart unchanged");
    let batch = ingest::logs::normalize(
        testkit::logs_request(vec![api_error("s1", Some(529), 8 * S)]),
        0,
        Privacy::default(),
    );
    store.ingest(batch).await.expect("stored");
    assert_eq!(family_total(&text(&store), FAMILY), (7.0, 4), "and keeps counting after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Half the requests hit the same series, half their own.
            let session = if i % 2 == 0 { "shared".to_string() } else { format!("s{i}") };
            let batch = ingest::metrics::normalize(
                testkit::metrics_request(testkit::usage_metrics(
                    &session,
                    "u",
                    "m",
                    usage(0.125),
                    i * S,
                    (i + 1) * S,
                    false,
                )),
                0,
            );
            store.ingest(batch).await.expect("stored")
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").accepted, 5);
    }
    let report = store
        .reader()
        .expect("reader")
        .report("all", TimeRange::ALL, Some(GroupBy::Session))
        .expect("report");
    assert_eq!(report.figures.cost_usd, 8.0);
    assert_eq!(report.figures.tokens.input, 8000.0);
    let shared = report
        .groups
        .expect("groups")
        .into_iter()
        .find(|g| g.key == "shared")
        .expect("shared session");
    assert_eq!(shared.figures.cost_usd, 4.0);
}

#[tokio::test]
async fn reports_cut_ranges_by_point_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let day = 86_400 * S;
    let t0 = 20_000 * day; // a midnight UTC
    ingest_metrics(
        &store,
        testkit::usage_metrics("a", "u", "m", usage(1.0), t0, t0 + 3600 * S, false),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("a", "u", "m", usage(2.0), t0, t0 + day + 3600 * S, false),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("b", "u", "m", usage(4.0), t0, t0 + 2 * day + 60 * S, false),
    )
    .await;
    let ns = |t: u64| t as i64;
    assert_eq!(cost_of(dir.path(), TimeRange::between(ns(t0), ns(t0 + day))), 1.0);
    assert_eq!(cost_of(dir.path(), TimeRange::between(ns(t0 + day), ns(t0 + 3 * day))), 6.0);
    assert_eq!(
        cost_of(dir.path(), TimeRange::between(ns(t0 + 2 * day + 900 * S), ns(t0 + 3 * day))),
        0.0
    );
    assert_eq!(cost_of(dir.path(), TimeRange::ALL), 7.0);

    let reader = store.reader().expect("reader");
    let by_hour = reader.report("all", TimeRange::ALL, Some(GroupBy::Hour)).expect("report");
    let groups = by_hour.groups.expect("groups");
    assert_eq!(groups.len(), 3, "{groups:?}");
    assert_eq!(groups.iter().map(|g| g.figures.cost_usd).sum::<f64>(), 7.0);
    assert_eq!(
        reader.session_ids(TimeRange::ALL).expect("sessions"),
        vec!["a".to_string(), "b".to_string()]
    );
}

/// A database written before schema v3 (running state in the wide `series` row, no rendered
/// `/metrics` identity) upgrades with every total, cumulative mark and histogram intact, and the
/// first start renders and stores the missing identities.
#[tokio::test]
async fn a_v2_database_upgrades_with_exact_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    ingest_metrics(
        &store,
        testkit::usage_metrics("delta", "u", "m1", usage(0.25), S, 2 * S, false),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("delta", "u", "m1", usage(0.5), 5 * S, 6 * S, false),
    )
    .await;
    ingest_metrics(
        &store,
        testkit::usage_metrics("cum", "u", "m2", usage(1.0), 10 * S, 11 * S, true),
    )
    .await;
    ingest_metrics(&store, vec![gauge("queue.depth", 7.0, 12 * S)]).await;
    ingest_metrics(
        &store,
        vec![histogram(
            "api.latency",
            vec![1, 2, 0],
            150.0,
            10 * S,
            11 * S,
            AggregationTemporality::Cumulative,
        )],
    )
    .await;
    let before = text(&store);
    let cost = cost_of(dir.path(), TimeRange::ALL);
    assert_eq!(cost, 1.75);
    store.close();
    drop(store);

    // Put the database back into the v2 layout: the state columns in `series`, no `series_state`
    // (and none of the later forwarding, metric-kind, transcript and pushed-group tables).
    let path = dir.path().join(tokentray_core::store::DB_FILE);
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute_batch(
        "DROP INDEX series_expo_hash;
         ALTER TABLE series ADD COLUMN attrs TEXT NOT NULL DEFAULT '{}';
         UPDATE series SET attrs = (SELECT CASE WHEN a.templated THEN replace(a.text, char(1), series.session_id) ELSE a.text END
             FROM series_texts a WHERE a.id = series.attrs_text);
         ALTER TABLE series DROP COLUMN attrs_text;
         ALTER TABLE series DROP COLUMN labels_text;
         ALTER TABLE series DROP COLUMN expo_hash;
         DROP TABLE series_texts;
         ALTER TABLE events ADD COLUMN session_id TEXT;
         UPDATE events SET session_id =
             (SELECT session_id FROM rollup_sessions WHERE id = events.session_key);
         DROP INDEX events_session_key;
         ALTER TABLE events DROP COLUMN session_key;
         CREATE INDEX events_session ON events(session_id, time_ns);
         DROP INDEX events_request;
         ALTER TABLE events DROP COLUMN request_id;
         ALTER TABLE events DROP COLUMN promoted;
         ALTER TABLE events DROP COLUMN attr_set;
         ALTER TABLE events DROP COLUMN attr_values;
         ALTER TABLE events ADD COLUMN attrs TEXT NOT NULL DEFAULT '{}';
         DROP TABLE event_attr_sets;
         DROP TABLE forward_queue;
         DROP TABLE forward_dirty;
         DROP TABLE metric_kinds;
         DROP TABLE transcript_files;
         DROP TABLE transcript_requests;
         DROP TABLE transcript_session_models;
         DROP TABLE transcript_api_errors;
         DROP TABLE transcript_sessions;
         DROP TABLE transcript_cost_state;
         DROP TABLE pushed_groups;
         DROP TABLE agent_requests;
         DROP TABLE rollup_keys;
         DROP TABLE rollup_sessions;
         DROP TABLE usage_days;
         DROP TABLE usage_slots;
         DROP TABLE usage_session_days;
         DROP TABLE event_days;
         DROP TABLE event_slots;
         DROP TABLE event_session_days;
         ALTER TABLE series ADD COLUMN total REAL NOT NULL DEFAULT 0;
         ALTER TABLE series ADD COLUMN hist TEXT;
         ALTER TABLE series ADD COLUMN cum_start_ns INTEGER;
         ALTER TABLE series ADD COLUMN cum_time_ns INTEGER;
         ALTER TABLE series ADD COLUMN cum_value TEXT;
         ALTER TABLE series ADD COLUMN last_time_ns INTEGER NOT NULL DEFAULT 0;
         UPDATE series SET (total, hist, cum_start_ns, cum_time_ns, cum_value, last_time_ns) =
             (SELECT total, hist, cum_start_ns, cum_time_ns, cum_value, last_time_ns FROM series_state WHERE series_id = series.id);
         ALTER TABLE series DROP COLUMN expo_family;
         ALTER TABLE series DROP COLUMN expo_unit;
         DROP TABLE series_state;
         PRAGMA user_version = 2;",
    )
    .expect("downgrade to v2");
    drop(conn);

    let store = Store::open(dir.path()).expect("upgrade");
    assert_eq!(text(&store), before, "/metrics after the upgrade equals /metrics before it");
    assert_eq!(cost_of(dir.path(), TimeRange::ALL), cost);
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let missing: i64 = conn
        .query_row("SELECT COUNT(*) FROM series WHERE labels_text IS NULL", [], |r| r.get(0))
        .expect("count");
    assert_eq!(missing, 0, "the first start stores every series' rendered identity");

    // Cumulative series keep counting from the carried-over marks: 1.0 → 1.5 adds 0.5.
    ingest_metrics(
        &store,
        testkit::usage_metrics("cum", "u", "m2", usage(1.5), 10 * S, 13 * S, true),
    )
    .await;
    ingest_metrics(
        &store,
        vec![histogram(
            "api.latency",
            vec![1, 3, 1],
            400.0,
            10 * S,
            13 * S,
            AggregationTemporality::Cumulative,
        )],
    )
    .await;
    assert_eq!(cost_of(dir.path(), TimeRange::ALL), 2.25);
    let after = text(&store);
    assert!(
        after.contains("api_latency_milliseconds_count{") && after.contains("} 5\n"),
        "{after}"
    );
    store.close();
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(text(&store), after, "/metrics after a restart on the upgraded database");
}
