//! Which series the engine holds in memory (`Store::open_shaped`, issue 13): start-up loads no
//! idle series, idle series leave memory again, and a point for one that left loads its whole
//! total back first, delta and cumulative alike, across a restart too. The totals are what was
//! sent, to the cent, whatever was in memory at the time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tokentray_core::exposition::MetricsShape;
use tokentray_core::exposition::{encode, Format};
use tokentray_core::ingest;
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};

const S: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * S;

fn now_ns() -> u64 {
    chrono::Utc::now().timestamp_nanos_opt().expect("now") as u64
}

/// `/metrics` shows a series idle for an hour no more, and only active series stay in memory.
fn an_hour() -> MetricsShape {
    MetricsShape::new(1.0, &[])
}

fn usage(cost: f64) -> Usage {
    Usage { cost_usd: cost, input: 100.0, output: 10.0, cache_read: 0.0, cache_creation: 0.0 }
}

async fn send(store: &Store, session: &str, cost: f64, start: u64, time: u64, cumulative: bool) {
    let metrics = testkit::usage_metrics(session, "u", "m", usage(cost), start, time, cumulative);
    let batch = ingest::metrics::normalize(testkit::metrics_request(metrics), 0);
    let ack = store.ingest(batch).await.expect("stored");
    assert_eq!(ack.rejected, 0, "{:?}", ack.reason);
}

/// The cost a session has in `/metrics` (every model and label set of it), if it is shown.
fn cost_shown(store: &Store, session: &str) -> Option<f64> {
    let mut out = Vec::new();
    encode(&mut out, &store.snapshot(), Format::Text004).expect("encode");
    let text = String::from_utf8(out).expect("utf8");
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("claude_code_cost_usage_USD_total{"))
        .filter(|l| l.contains(&format!("session_id=\"{session}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

#[tokio::test]
async fn idle_series_leave_memory_and_come_back_with_their_whole_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_ns();
    let old = now - 3 * HOUR;

    // A back-dated history: a delta session and a cumulative one, three hours old; and one
    // session active now.
    let store = Store::open_shaped(dir.path(), &an_hour()).expect("open");
    send(&store, "delta", 0.5, old - S, old, false).await;
    send(&store, "delta", 0.25, old, old + S, false).await;
    send(&store, "cum", 1.0, old - 10 * S, old, true).await;
    send(&store, "cum", 3.0, old - 10 * S, old + S, true).await;
    send(&store, "now", 2.0, now - S, now, false).await;
    let held_with_everything = store.series_count();
    assert!(held_with_everything > 0);

    // The release lets the idle sessions go; the active one stays, and only it is shown.
    let released = store.release_idle_series().await.expect("release");
    assert!(released > 0, "the back-dated sessions are idle");
    assert_eq!(store.series_count(), held_with_everything - released);
    assert_eq!(cost_shown(&store, "delta"), None);
    assert_eq!(cost_shown(&store, "cum"), None);
    assert_eq!(cost_shown(&store, "now"), Some(2.0));
    let held_active = store.series_count();

    // Each idle session gets a point again: it is back with its whole total, never reset.
    send(&store, "delta", 0.125, now - S, now, false).await;
    assert_eq!(cost_shown(&store, "delta"), Some(0.875));
    // The cumulative client kept its running total: only the increase counts (3.0 → 4.5), and
    // an old point sent again adds nothing.
    send(&store, "cum", 3.0, old - 10 * S, old + S, true).await;
    send(&store, "cum", 4.5, old - 10 * S, now, true).await;
    assert_eq!(cost_shown(&store, "cum"), Some(4.5));
    assert!(store.series_count() > held_active);
    store.close();
    drop(store);

    // After a restart the three sessions are active: loaded, with the same totals.
    let store = Store::open_shaped(dir.path(), &an_hour()).expect("reopen");
    assert_eq!(cost_shown(&store, "delta"), Some(0.875));
    assert_eq!(cost_shown(&store, "cum"), Some(4.5));
    assert_eq!(cost_shown(&store, "now"), Some(2.0));
    store.close();
}

#[tokio::test]
async fn start_up_loads_no_idle_series_and_a_point_for_one_loads_it_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = now_ns() - 30 * 24 * HOUR;
    // A month-old history of 200 sessions, written by an engine that keeps every series.
    let store = Store::open(dir.path()).expect("open");
    for i in 0..200u64 {
        let at = old + i * 60 * S;
        send(&store, &format!("s{i}"), 0.01 * (i + 1) as f64, at - S, at, i % 2 == 0).await;
    }
    let everything = store.series_count();
    assert!(everything >= 200 * 4, "{everything} series");
    store.close();
    drop(store);

    // The engine's start-up holds none of it.
    let store = Store::open_shaped(dir.path(), &an_hour()).expect("reopen");
    assert_eq!(store.series_count(), 0, "start-up loaded idle series");
    assert_eq!(cost_shown(&store, "s7"), None);

    // A point for one old session (a delta one) brings back that session alone, exactly.
    let now = now_ns();
    send(&store, "s7", 0.5, now - S, now, false).await;
    let cost = cost_shown(&store, "s7").expect("shown again");
    assert!((cost - 0.58).abs() < 1e-9, "{cost}");
    assert!(store.series_count() < 10, "{} series held", store.series_count());

    // Without an idle rule every series is held, as before.
    store.close();
    drop(store);
    let store = Store::open_shaped(dir.path(), &MetricsShape::new(0.0, &[])).expect("keep all");
    assert_eq!(store.series_count(), everything);
    store.close();
    drop(store);
    // Folded series (drop_labels) need the idle ones in their totals: every series is held.
    let folded = MetricsShape::new(1.0, &["session_id".to_string()]);
    let store = Store::open_shaped(dir.path(), &folded).expect("folded");
    assert_eq!(store.series_count(), everything);
    store.close();
}
