//! A real Prometheus scraping `tokentray serve`: the PromQL of the Claude Code monitoring guides
//! returns the fixtures' ground truth, `promtool check metrics` finds nothing to complain about,
//! and `increase()` sees exactly the new spend (within Prometheus' documented extrapolation).
//!
//! Needs `prometheus` and `promtool` (tests/setup.sh installs them); fails, never skips, without.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::fixtures::{load_set_by_name, FixtureSet, Signal};
use support::prometheus::{promtool_check, require_tool, Prometheus};
use support::replay::{json_time_span_ns, shift_json_times};
use support::{approx_eq, prom, Checker, Replayer, Serve};

const DELTA_SET: &str = "http-json-delta";
const CUMULATIVE_SET: &str = "http-json-cumulative-slow";
const COST: &str = "claude_code_cost_usage_USD_total";
const TOKENS: &str = "claude_code_token_usage_tokens_total";

fn add_into(acc: &mut BTreeMap<String, f64>, more: BTreeMap<String, f64>) {
    for (k, v) in more {
        *acc.entry(k).or_default() += v;
    }
}

/// Sum over sets of `metric`'s `by_attributes`, by one attribute.
fn expected_by(sets: &[&FixtureSet], metric: &str, attr: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in sets {
        if let Some(m) = s.expected.metric(metric) {
            add_into(&mut out, m.by_attribute(attr));
        }
    }
    out
}

/// Polls `f` until it returns `Some`, at most `timeout`; panics with `context()` otherwise.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn compare_maps(
    c: &mut Checker,
    what: &str,
    got: &BTreeMap<String, f64>,
    want: &BTreeMap<String, f64>,
) {
    for k in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
        c.num(
            format!("{what} [{k}]"),
            got.get(k).copied().unwrap_or(0.0),
            want.get(k).copied().unwrap_or(0.0),
        );
    }
}

#[test]
fn real_prometheus_scrapes_the_guides_numbers() {
    require_tool("prometheus");
    require_tool("promtool");
    let delta = load_set_by_name(DELTA_SET);
    let cumulative = load_set_by_name(CUMULATIVE_SET);
    let sets = [&delta, &cumulative];

    let serve = Serve::start();
    let mut replayer = Replayer::for_serve(&serve);
    for s in sets {
        replayer.send_all(&s.requests);
    }

    // ---- the exposition itself -----------------------------------------------------------
    let text = serve.scrape();
    promtool_check(&text);
    // OpenMetrics on request, with the same samples.
    let om = reqwest::blocking::Client::new()
        .get(serve.metrics_url())
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .expect("GET /metrics (OpenMetrics)");
    let om_type =
        om.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let om_body = om.text().unwrap();
    assert!(
        om_type.starts_with("application/openmetrics-text"),
        "OpenMetrics Content-Type: {om_type:?}"
    );
    assert!(om_body.ends_with("# EOF\n"), "OpenMetrics body must end with `# EOF`:\n{om_body}");
    let (text_samples, om_samples) = (prom::parse(&text), prom::parse(&om_body));
    for name in [COST, TOKENS] {
        let (a, b) = (
            prom::sum_by(&text_samples, name, &["session_id", "type"]),
            prom::sum_by(&om_samples, name, &["session_id", "type"]),
        );
        assert_eq!(a, b, "{name}: text 0.0.4 vs OpenMetrics samples differ");
    }

    // ---- Prometheus scrapes it -----------------------------------------------------------
    let want_cost: f64 = sets.iter().map(|s| s.expected.total("claude_code.cost.usage")).sum();
    let prometheus = Prometheus::start(serve.metrics);
    let ctx = || {
        format!(
            "targets: {}\nprometheus log:\n{}\nserve stderr:\n{}",
            prometheus.targets(),
            prometheus.log(),
            serve.stderr()
        )
    };
    wait_for(
        "Prometheus to scrape the replayed totals",
        Duration::from_secs(30),
        || prometheus.query_one(&format!("sum({COST})")).filter(|v| approx_eq(*v, want_cost)),
        || {
            format!(
                "sum({COST}) = {:?}, want {want_cost}\n{}",
                prometheus.query_one(&format!("sum({COST})")),
                ctx()
            )
        },
    );

    let mut c = Checker::new();
    // Spend by model.
    compare_maps(
        &mut c,
        &format!("sum by (model) ({COST})"),
        &prometheus.query_by(&format!("sum by (model) ({COST})"), "model"),
        &expected_by(&sets, "claude_code.cost.usage", "model"),
    );
    // Tokens by type.
    let tokens_by_type = expected_by(&sets, "claude_code.token.usage", "type");
    compare_maps(
        &mut c,
        &format!("sum by (type) ({TOKENS})"),
        &prometheus.query_by(&format!("sum by (type) ({TOKENS})"), "type"),
        &tokens_by_type,
    );
    // Cache-read ratio.
    let t = |k: &str| tokens_by_type.get(k).copied().unwrap_or(0.0);
    let want_ratio = t("cacheRead") / (t("input") + t("cacheRead") + t("cacheCreation"));
    let ratio_q = format!(
        "sum({TOKENS}{{type=\"cacheRead\"}}) / sum({TOKENS}{{type=~\"input|cacheRead|cacheCreation\"}})"
    );
    c.num(&ratio_q, prometheus.query_one(&ratio_q).unwrap_or(f64::NAN), want_ratio);
    // Distinct users, from the data's user.id values.
    let users: BTreeSet<String> = sets.iter().flat_map(|s| s.attribute_values("user.id")).collect();
    assert!(!users.is_empty(), "the fixtures carry no user.id");
    let users_q = format!("count(count by (user_id) ({COST}))");
    c.num(&users_q, prometheus.query_one(&users_q).unwrap_or(f64::NAN), users.len() as f64);
    // Sessions: one per scenario.
    let sessions_q = "sum(claude_code_session_count_total)";
    c.num(
        sessions_q,
        prometheus.query_one(sessions_q).unwrap_or(f64::NAN),
        sets.iter().map(|s| s.expected.total("claude_code.session.count")).sum(),
    );
    c.assert_ok("PromQL of the guides after the replay");

    // ---- increase() ----------------------------------------------------------------------
    // Every cost series has been scraped since Prometheus started, all with their full value v
    // (the replay was complete before the first scrape). Now the same sessions spend again: the
    // delta set's metrics requests are sent once more, shifted later in time (same series, later
    // non-overlapping delta intervals), which adds the set's cost total D on top. Then
    // `sum(increase(cost[1h]))` = Σ (last − first) × f per series, with first = v, last = v + Δ,
    // and Prometheus' extrapolation factor f: 1 ≤ f ≤ 1 + 1.6/(n−1) for n samples (half an
    // average interval at the start, since the first sample is far from the range start and the
    // zero point is further; at most 1.1 average intervals at the end). So
    //     D ≤ increase ≤ D · (1 + 1.6/(n−1)).
    // A counter that ever went down between scrapes counts as a reset and overshoots the upper
    // bound; a counter that forgot (or double-counted) the new spend misses the range.
    let min_samples =
        |p: &Prometheus| p.query_one(&format!("min(count_over_time({COST}[1h]))")).unwrap_or(0.0);
    wait_for(
        "5 scrapes of the first state",
        Duration::from_secs(30),
        || (min_samples(&prometheus) >= 5.0).then_some(()),
        ctx,
    );

    let metrics_reqs: Vec<_> =
        delta.requests.iter().filter(|r| r.signal == Signal::Metrics).collect();
    assert!(metrics_reqs.iter().all(|r| r.is_json()), "{DELTA_SET} is expected to be OTLP/JSON");
    let (lo, hi) = json_time_span_ns(metrics_reqs.iter().map(|r| r.body.as_slice()));
    let shift = hi - lo + 1_000_000_000;
    for r in &metrics_reqs {
        replayer.send_http(r, &shift_json_times(&r.body, shift));
    }
    let d = delta.expected.total("claude_code.cost.usage");
    assert!(d > 0.0, "{DELTA_SET} has no cost");
    wait_for(
        "Prometheus to scrape the second round",
        Duration::from_secs(30),
        || prometheus.query_one(&format!("sum({COST})")).filter(|v| approx_eq(*v, want_cost + d)),
        || {
            format!(
                "sum({COST}) = {:?}, want {}\n{}",
                prometheus.query_one(&format!("sum({COST})")),
                want_cost + d,
                ctx()
            )
        },
    );
    let n_before = min_samples(&prometheus);
    wait_for(
        "5 more scrapes",
        Duration::from_secs(30),
        || (min_samples(&prometheus) >= n_before + 5.0).then_some(()),
        ctx,
    );

    // n first: the increase evaluated a moment later has at least n samples, so the bound holds.
    let n = min_samples(&prometheus);
    let inc_q = format!("sum(increase({COST}[1h]))");
    let inc = prometheus.query_one(&inc_q).unwrap_or(f64::NAN);
    let upper = d * (1.0 + 1.6 / (n - 1.0));
    eprintln!("{inc_q} = {inc}: new spend {d}, bound {upper} for n = {n} samples");
    assert!(
        inc >= d * (1.0 - 1e-9) && inc <= upper * (1.0 + 1e-9),
        "{inc_q} = {inc}; want the new spend {d} ≤ it ≤ {upper} (extrapolation bound for n = {n} samples)\n\
         per series: {:?}\nsamples per series: {:?}",
        prometheus.query(&format!("increase({COST}[1h])")),
        prometheus.query(&format!("count_over_time({COST}[1h])")),
    );
}
