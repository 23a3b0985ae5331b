//! `[metrics]` shapes `/metrics` only: an idle series leaves and comes back with its full total
//! (delta and cumulative, across restarts), `drop_labels` folds sessions into exact totals, and a
//! real Prometheus scraping throughout still gets the exact totals and session count with range
//! functions.
//!
//! Needs `prometheus` and `promtool` (tests/setup.sh installs them); fails, never skips, without.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::prometheus::{promtool_check, require_tool, Prometheus};
use support::serve::ServeOptions;
use support::{approx_eq, eventually, now_ns, post_usage_at, prom, Checker, Serve};
use tokentray_core::testkit::Usage;

const COST: &str = "claude_code_cost_usage_USD_total";
const TOKENS: &str = "claude_code_token_usage_tokens_total";
const HOUR_NS: u64 = 3_600_000_000_000;
const SECOND_NS: u64 = 1_000_000_000;

/// A distinct usage per step, so that a lost or double-counted step shows in the totals.
fn usage(step: u32) -> Usage {
    let k = f64::from(step);
    Usage {
        cost_usd: 0.0193 * k,
        input: 2100.0 * k,
        output: 80.0 + k,
        cache_read: 9000.0 * k,
        cache_creation: 1500.0 + 3.0 * k,
    }
}

fn plus(a: Usage, b: Usage) -> Usage {
    Usage {
        cost_usd: a.cost_usd + b.cost_usd,
        input: a.input + b.input,
        output: a.output + b.output,
        cache_read: a.cache_read + b.cache_read,
        cache_creation: a.cache_creation + b.cache_creation,
    }
}

fn serve_with(metrics_toml: &str) -> Serve {
    Serve::start_with(ServeOptions {
        config_toml: Some(format!("[metrics]\n{metrics_toml}\n")),
        ..ServeOptions::default()
    })
}

/// Cost and tokens (by type) of `session` in a scrape; `None` when the session is not in it.
fn session_totals(samples: &[prom::Sample], session: &str) -> Option<(f64, BTreeMap<String, f64>)> {
    let of = |s: &&prom::Sample| s.labels.get("session_id").is_some_and(|v| v == session);
    let cost: Vec<f64> =
        samples.iter().filter(of).filter(|s| s.name == COST).map(|s| s.value).collect();
    let tokens: BTreeMap<String, f64> = samples
        .iter()
        .filter(of)
        .filter(|s| s.name == TOKENS)
        .map(|s| (s.labels.get("type").cloned().unwrap_or_default(), s.value))
        .collect();
    if cost.is_empty() && tokens.is_empty() {
        return None;
    }
    Some((cost.iter().sum(), tokens))
}

fn check_session(c: &mut Checker, samples: &[prom::Sample], session: &str, want: Option<Usage>) {
    match (session_totals(samples, session), want) {
        (None, None) => {}
        (Some(_), None) => c.fail(format!("session {session} is in /metrics, want it idle")),
        (None, Some(_)) => c.fail(format!("session {session} is missing from /metrics")),
        (Some((cost, tokens)), Some(u)) => {
            c.num(format!("{session} cost"), cost, u.cost_usd);
            let by_type = [
                ("input", u.input),
                ("output", u.output),
                ("cacheRead", u.cache_read),
                ("cacheCreation", u.cache_creation),
            ];
            for (ty, want) in by_type {
                c.num(
                    format!("{session} {ty} tokens"),
                    tokens.get(ty).copied().unwrap_or(0.0),
                    want,
                );
            }
        }
    }
}

fn check_scrape(serve: &Serve, want: &[(&str, Option<Usage>)], context: &str) {
    let samples = prom::parse(&serve.scrape());
    let mut c = Checker::new();
    for (session, u) in want {
        check_session(&mut c, &samples, session, *u);
    }
    c.assert_ok(context);
}

#[test]
fn idle_series_leave_and_come_back_with_full_totals_across_restarts() {
    // 3 minutes: points back-dated by 2 hours are idle at once, points sent now stay shown for
    // the whole test.
    let mut serve = serve_with("series_idle_hours = 0.05");
    let old = now_ns() - 2 * HOUR_NS;
    let cum_start = old - 10 * SECOND_NS;
    post_usage_at(serve.http, "delta", usage(1), old - SECOND_NS, old, false);
    post_usage_at(serve.http, "cumulative", usage(2), cum_start, old, true);
    let now = now_ns();
    post_usage_at(serve.http, "live", usage(3), now - SECOND_NS, now, false);
    let idle_pair = [("delta", None), ("cumulative", None), ("live", Some(usage(3)))];
    check_scrape(&serve, &idle_pair, "back-dated series are idle at once");

    serve.restart();
    check_scrape(&serve, &idle_pair, "idleness persists across a restart");

    // A new point brings each series back with everything it ever counted.
    let now = now_ns();
    post_usage_at(serve.http, "delta", usage(4), now - SECOND_NS, now, false);
    let cum_total = plus(usage(2), usage(5));
    post_usage_at(serve.http, "cumulative", cum_total, cum_start, now, true);
    let back = [
        ("delta", Some(plus(usage(1), usage(4)))),
        ("cumulative", Some(cum_total)),
        ("live", Some(usage(3))),
    ];
    check_scrape(&serve, &back, "series back after a new point, with their full totals");

    serve.restart();
    check_scrape(&serve, &back, "the same totals after another restart");
}

#[test]
fn drop_labels_fold_sessions_into_exact_totals() {
    require_tool("promtool");
    let serve = serve_with("series_idle_hours = 0.05\ndrop_labels = [\"session_id\"]");
    let now = now_ns();
    let old = now - 2 * HOUR_NS;
    // Three live sessions and one idle by itself: its totals stay in the folded series, which is
    // live (a folded total never falls when a member goes idle).
    let sessions = [
        ("s-1", usage(1), now),
        ("s-2", usage(2), now),
        ("s-3", usage(7), now),
        ("s-old", usage(11), old),
    ];
    let mut want =
        Usage { cost_usd: 0.0, input: 0.0, output: 0.0, cache_read: 0.0, cache_creation: 0.0 };
    for (session, u, time) in sessions {
        post_usage_at(serve.http, session, u, time - SECOND_NS, time, false);
        want = plus(want, u);
    }

    let body = serve.scrape();
    let samples = prom::parse(&body);
    let mut c = Checker::new();
    c.check(samples.iter().all(|s| !s.labels.contains_key("session_id")), || {
        "a sample still has a session_id label".into()
    });
    let mut seen = std::collections::BTreeSet::new();
    for s in &samples {
        c.check(seen.insert((s.name.clone(), s.labels.clone())), || {
            format!("two samples of {} with labels {:?}", s.name, s.labels)
        });
    }
    c.check(prom::count(&samples, COST) == 1, || {
        format!(
            "{} cost series, want one for the one remaining label set",
            prom::count(&samples, COST)
        )
    });
    c.check(prom::count(&samples, TOKENS) == 4, || {
        format!("{} token series, want one per type", prom::count(&samples, TOKENS))
    });
    c.num("folded cost", prom::sum(&samples, COST), want.cost_usd);
    let by_type = prom::sum_by(&samples, TOKENS, &["type"]);
    let by = |ty: &str| by_type.get(&vec![ty.to_string()]).copied().unwrap_or(0.0);
    c.num("folded input tokens", by("input"), want.input);
    c.num("folded output tokens", by("output"), want.output);
    c.num("folded cacheRead tokens", by("cacheRead"), want.cache_read);
    c.num("folded cacheCreation tokens", by("cacheCreation"), want.cache_creation);
    c.assert_ok(&format!("drop_labels = [\"session_id\"]:\n{body}"));
    promtool_check(&body);
}

/// Waits for `expr` (an instant query) to satisfy `ok`; panics with what it saw after `timeout`.
fn wait_query(
    prometheus: &Prometheus,
    expr: &str,
    timeout: Duration,
    ok: impl Fn(Option<f64>) -> bool,
) {
    let c = eventually(timeout, || {
        let got = prometheus.query_one(expr);
        let mut c = Checker::new();
        c.check(ok(got), || format!("{expr} = {got:?}"));
        c
    });
    c.assert_ok(&format!("waiting for Prometheus\n{}", prometheus.log()));
}

#[test]
fn real_prometheus_keeps_exact_totals_of_series_that_left() {
    require_tool("prometheus");
    // 18 s: long enough for Prometheus (scraping every second) to see each point before its
    // series leaves, short enough to watch series leave and come back.
    let serve = serve_with("series_idle_hours = 0.005");
    let prometheus = Prometheus::start(serve.metrics);
    let count_sessions = |expr: &str| format!("count(count by (session_id) ({expr}))");

    // Round 1: four sessions spend once.
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    let now = now_ns();
    for (i, session) in ["s-1", "s-2", "s-3", "s-4"].into_iter().enumerate() {
        let u = usage(i as u32 + 1);
        post_usage_at(serve.http, session, u, now - SECOND_NS, now, false);
        *totals.entry(session).or_default() += u.cost_usd;
    }
    wait_query(&prometheus, &count_sessions(COST), Duration::from_secs(30), |v| v == Some(4.0));

    // They go idle: /metrics drops them and Prometheus' instant queries stop seeing them.
    let c = eventually(Duration::from_secs(60), || {
        let mut c = Checker::new();
        let n = prom::count(&prom::parse(&serve.scrape()), COST);
        c.check(n == 0, || format!("{n} cost series still in /metrics"));
        c
    });
    c.assert_ok("round 1 series leave /metrics");
    wait_query(&prometheus, &format!("count({COST})"), Duration::from_secs(30), |v| v.is_none());

    // Round 2: two of them spend again (back with their full totals), and a fifth starts.
    let now = now_ns();
    let mut growth = 0.0;
    for (session, step) in [("s-1", 10), ("s-2", 20), ("s-5", 5)] {
        let u = usage(step);
        post_usage_at(serve.http, session, u, now - SECOND_NS, now, false);
        if totals.contains_key(session) {
            growth += u.cost_usd;
        }
        *totals.entry(session).or_default() += u.cost_usd;
    }
    let want_total: f64 = totals.values().sum();
    let range = "10m";
    let total_q = format!("sum(max_over_time({COST}[{range}]))");
    wait_query(&prometheus, &total_q, Duration::from_secs(30), |v| {
        v.is_some_and(|v| approx_eq(v, want_total))
    });
    let samples_q = format!("min(count_over_time({COST}[{range}]))");
    let n_before = prometheus.query_one(&samples_q).unwrap_or(0.0);
    wait_query(&prometheus, &samples_q, Duration::from_secs(30), |v| {
        v.is_some_and(|v| v >= n_before + 3.0)
    });

    let mut c = Checker::new();
    let sessions =
        prometheus.query_one(&count_sessions(&format!("max_over_time({COST}[{range}])")));
    c.num("sessions over the range", sessions.unwrap_or(0.0), totals.len() as f64);
    let per_session = prometheus.query_by(&format!("max_over_time({COST}[{range}])"), "session_id");
    for (session, want) in &totals {
        c.num(format!("{session} total"), per_session.get(*session).copied().unwrap_or(0.0), *want);
    }
    c.num("total over the range", prometheus.query_one(&total_q).unwrap_or(0.0), want_total);
    c.assert_ok("range queries after series left and came back");

    // increase(): only the growth Prometheus saw between samples (s-1 and s-2's second spend;
    // a first value is not an increase), never a reset (a series that came back at zero would
    // count its whole total). Extrapolation adds at most 1.6 average sample intervals per
    // series: growth ≤ increase ≤ growth · (1 + 1.6/(n−1)) for n ≥ the fewest samples.
    let n = prometheus.query_one(&samples_q).unwrap_or(0.0);
    let inc_q = format!("sum(increase({COST}[{range}]))");
    let inc = prometheus.query_one(&inc_q).unwrap_or(f64::NAN);
    let upper = growth * (1.0 + 1.6 / (n - 1.0));
    assert!(
        inc >= growth * (1.0 - 1e-9) && inc <= upper * (1.0 + 1e-9),
        "{inc_q} = {inc}; want the growth {growth} ≤ it ≤ {upper} (n = {n} samples)\nper series: {:?}",
        prometheus.query(&format!("increase({COST}[{range}])")),
    );
}
