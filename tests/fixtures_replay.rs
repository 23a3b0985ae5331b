//! Replays every recorded Claude Code fixture set (`tests/fixtures/claude-code/*/`, copied from `shared/fixtures`) into a real
//! `tokentray serve` over the transport it was recorded on, then checks `/metrics` and
//! `tokentray report --json` against the set's `expected.json`. Also across a graceful restart and
//! a `kill -9` between the two halves of a replay.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::fixtures::ExpectedMetric;
use support::prom::{self, label_name, prometheus_name};
use support::{discover_sets, eventually, Checker, Expected, FixtureSet, Replayer, Serve};

/// How long acknowledged data may take to show up in `/metrics` and `report`.
const SETTLE: Duration = Duration::from_secs(5);

/// tokentray's own counter of `claude_code.api_error` events (not in `expected.json`'s metrics:
/// Claude Code sends no such metric), its Prometheus name and the scope it carries (the events').
const API_ERROR_COUNT: &str = "claude_code.api_error.count";
const API_ERROR_FAMILY: &str = "claude_code_api_error_count_total";
const EVENTS_SCOPE: &str = "com.anthropic.claude_code.events";

/// Stored `claude_code.api_error` events of the set: what tokentray's counter must read.
fn api_errors(exp: &Expected) -> f64 {
    exp.events.counts.get("claude_code.api_error").copied().unwrap_or(0) as f64
}

/// Prometheus name of an OTLP metric of the fixtures (all are monotonic sums).
fn prom_name(name: &str, m: &ExpectedMetric) -> String {
    prometheus_name(name, &m.unit, true)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// `v[key]` as a number, 0 when absent (a total that was never touched).
fn num_or_zero(v: &Value, key: &str) -> f64 {
    match v.get(key) {
        None | Some(Value::Null) => 0.0,
        Some(x) => num(x),
    }
}

// ---- /metrics ------------------------------------------------------------------------------

fn check_metrics_endpoint(set: &FixtureSet, body: &str) -> Checker {
    let mut c = Checker::new();
    let samples = prom::parse(body);
    let exp = &set.expected;
    for (name, m) in &exp.metrics {
        let pname = prom_name(name, m);
        c.check(prom::count(&samples, &pname) > 0, || {
            format!("/metrics has no {pname} (for {name})")
        });
        c.num(format!("sum({pname})"), prom::sum(&samples, &pname), m.total);

        // by the attribute set of each expected group
        let key_sets: BTreeSet<Vec<String>> =
            m.by_attributes.iter().map(|g| g.attributes.keys().cloned().collect()).collect();
        for keys in &key_sets {
            let labels: Vec<String> = keys.iter().map(|k| label_name(k)).collect();
            let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let got = prom::sum_by(&samples, &pname, &label_refs);
            let mut want: BTreeMap<Vec<String>, f64> = BTreeMap::new();
            for g in m.by_attributes.iter().filter(|g| g.attributes.keys().eq(keys.iter())) {
                *want.entry(keys.iter().map(|k| g.attributes[k].clone()).collect()).or_default() +=
                    g.value;
            }
            // With one key set for the whole metric, a group /metrics has beyond the expected
            // ones must be zero.
            let all_keys: BTreeSet<&Vec<String>> =
                if key_sets.len() == 1 { got.keys().collect() } else { BTreeSet::new() };
            for k in want.keys().chain(all_keys).collect::<BTreeSet<_>>() {
                c.num(
                    format!("sum by ({}) ({pname}) [{}]", labels.join(","), k.join(",")),
                    got.get(k).copied().unwrap_or(0.0),
                    want.get(k).copied().unwrap_or(0.0),
                );
            }
        }

        // by session
        let got = prom::sum_by(&samples, &pname, &["session_id"]);
        let mut want: BTreeMap<Vec<String>, f64> =
            m.by_session.iter().map(|(s, v)| (vec![s.clone()], *v)).collect();
        let no_session = m.total - m.by_session.values().sum::<f64>();
        if no_session.abs() > 1e-12 {
            want.insert(vec![String::new()], no_session);
        }
        for k in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
            c.num(
                format!("sum by (session_id) ({pname}) [{}]", k[0]),
                got.get(k).copied().unwrap_or(0.0),
                want.get(k).copied().unwrap_or(0.0),
            );
        }
    }

    // Labels every Claude Code series carries.
    let ours: Vec<&prom::Sample> =
        samples.iter().filter(|s| s.name.starts_with("claude_code_")).collect();
    for s in &ours {
        c.check(s.labels.get("job").map(String::as_str) == Some("claude-code"), || {
            format!("{} {:?}: want job=\"claude-code\"", s.name, s.labels)
        });
        let scope =
            if s.name == API_ERROR_FAMILY { EVENTS_SCOPE } else { "com.anthropic.claude_code" };
        c.check(s.labels.get("otel_scope_name").map(String::as_str) == Some(scope), || {
            format!("{} {:?}: want otel_scope_name=\"{scope}\"", s.name, s.labels)
        });
        c.check(s.labels.get("otel_scope_version").is_some_and(|v| !v.is_empty()), || {
            format!("{} {:?}: want an otel_scope_version label", s.name, s.labels)
        });
    }
    // Each stored api_error event counted once, whatever the transport or restart.
    c.num(
        format!("sum({API_ERROR_FAMILY})"),
        prom::sum_by(&samples, API_ERROR_FAMILY, &[]).values().sum(),
        api_errors(&set.expected),
    );
    // Point attributes that identify who/what: the label values are exactly the data's values.
    for attr in ["user.id", "session.id", "team.id", "cost_center"] {
        let label = label_name(attr);
        let in_data = set.attribute_values(attr);
        let on_metrics: BTreeSet<String> =
            ours.iter().filter_map(|s| s.labels.get(&label).cloned()).collect();
        if attr == "session.id" {
            // A session with events only (no metric point) has no series.
            c.check(on_metrics.is_subset(&in_data), || {
                format!("/metrics {label} values {on_metrics:?} not all in the data {in_data:?}")
            });
        } else {
            c.check(on_metrics == in_data, || {
                format!("/metrics {label} values {on_metrics:?}, data has {in_data:?}")
            });
        }
    }
    c
}

// ---- report --json --------------------------------------------------------------------------

/// The metrics whose groups `report --by <by>` shows by their own attribute: by type only the
/// tokens; by model only metrics that carry a model (a session's count and active time go to
/// every model the session used, checked in tests/report_cli.rs).
fn grouped_as_sent(exp: &Expected, by: &str, name: &str) -> bool {
    let Some(m) = exp.metric(name) else { return false };
    match by {
        "type" => name == "claude_code.token.usage",
        "model" => !m.by_attribute("model").contains_key(""),
        _ => true,
    }
}

/// Expected value per group key of every metric, for `report --by <by>`.
fn expected_groups(exp: &Expected, by: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (name, m) in exp.metrics.iter().filter(|(n, _)| grouped_as_sent(exp, by, n)) {
        let per_key: BTreeMap<String, f64> = if by == "session" {
            let mut v = m.by_session.clone();
            let rest = m.total - m.by_session.values().sum::<f64>();
            if rest.abs() > 1e-12 {
                v.insert(String::new(), rest);
            }
            v
        } else {
            m.by_attribute(by)
        };
        for (k, v) in per_key {
            out.entry(k).or_default().insert(name.clone(), v);
        }
    }
    out
}

fn check_report(set: &FixtureSet, serve: &Serve) -> Checker {
    let mut c = Checker::new();
    let exp = &set.expected;
    let r = serve.report(&["all", "--json"]);
    c.check(r["period"] == "all", || format!("report period: {}", r["period"]));

    // metrics totals
    for (name, m) in &exp.metrics {
        c.num(format!("report metrics[{name}]"), num(&r["metrics"][name]), m.total);
    }
    if let Some(obj) = r["metrics"].as_object() {
        let not_sent = |n: &String| !exp.metrics.contains_key(n) && n != API_ERROR_COUNT;
        for (name, v) in obj.iter().filter(|(n, _)| not_sent(n)) {
            c.num(format!("report metrics[{name}] (not in the data)"), num(v), 0.0);
        }
        c.num(
            format!("report metrics[{API_ERROR_COUNT}] (from the events)"),
            num_or_zero(&r["metrics"], API_ERROR_COUNT),
            api_errors(exp),
        );
    } else {
        c.fail(format!("report metrics is not an object: {}", r["metrics"]));
    }
    c.num("report cost_usd", num(&r["cost_usd"]), exp.total("claude_code.cost.usage"));
    c.num("report sessions", num(&r["sessions"]), exp.total("claude_code.session.count"));
    c.num(
        "report active_time_seconds",
        num(&r["active_time_seconds"]),
        exp.total("claude_code.active_time.total"),
    );

    // tokens by type
    let tokens_by_type =
        exp.metric("claude_code.token.usage").map(|m| m.by_attribute("type")).unwrap_or_default();
    for t in ["input", "output", "cacheRead", "cacheCreation"] {
        c.num(
            format!("report tokens.{t}"),
            num(&r["tokens"][t]),
            tokens_by_type.get(t).copied().unwrap_or(0.0),
        );
    }
    c.num("report tokens.total", num(&r["tokens"]["total"]), exp.total("claude_code.token.usage"));

    // events
    let events = r["events"].as_object().cloned().unwrap_or_default();
    for (name, n) in &exp.events.counts {
        c.num(format!("report events[{name}]"), num_or_zero(&r["events"], name), *n as f64);
    }
    for (name, v) in events.iter().filter(|(n, _)| !exp.events.counts.contains_key(*n)) {
        c.num(format!("report events[{name}] (not in the data)"), num(v), 0.0);
    }
    let a = &exp.events.api_request;
    let ra = &r["api_requests"];
    c.num("report api_requests.count", num(&ra["count"]), a.count as f64);
    c.num("report api_requests.cost_usd", num(&ra["cost_usd"]), a.cost_usd);
    c.num("report api_requests.input_tokens", num(&ra["input_tokens"]), a.input_tokens as f64);
    c.num("report api_requests.output_tokens", num(&ra["output_tokens"]), a.output_tokens as f64);
    c.num(
        "report api_requests.cache_read_tokens",
        num(&ra["cache_read_tokens"]),
        a.cache_read_tokens as f64,
    );
    c.num(
        "report api_requests.cache_creation_tokens",
        num(&ra["cache_creation_tokens"]),
        a.cache_creation_tokens as f64,
    );

    // grouped reports
    for by in ["session", "model", "type"] {
        let g = serve.report(&["all", "--by", by, "--json"]);
        c.check(g["by"] == by, || format!("report --by {by}: \"by\" is {}", g["by"]));
        let mut got: BTreeMap<String, Value> = BTreeMap::new();
        for grp in g["groups"].as_array().into_iter().flatten() {
            let key = grp["key"].as_str().unwrap_or_default().to_string();
            if got.insert(key.clone(), grp.clone()).is_some() {
                c.fail(format!("report --by {by}: group {key:?} twice"));
            }
        }
        let want = expected_groups(exp, by);
        let empty = Value::Null;
        for key in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
            let gv = got.get(key).unwrap_or(&empty);
            let wm = want.get(key).cloned().unwrap_or_default();
            if gv.is_null() && wm.values().all(|v| *v == 0.0) {
                continue; // only zero values expected: the group may be absent
            }
            let what = format!("report --by {by} [{key}]");
            if gv.is_null() {
                c.fail(format!("{what}: no such group (want {wm:?})"));
                continue;
            }
            for name in exp.metrics.keys().filter(|n| grouped_as_sent(exp, by, n)) {
                let w = wm.get(name).copied().unwrap_or(0.0);
                c.num(format!("{what} metrics[{name}]"), num_or_zero(&gv["metrics"], name), w);
            }
            c.num(
                format!("{what} cost_usd"),
                num_or_zero(gv, "cost_usd"),
                wm.get("claude_code.cost.usage").copied().unwrap_or(0.0),
            );
            c.num(
                format!("{what} tokens.total"),
                num_or_zero(&gv["tokens"], "total"),
                wm.get("claude_code.token.usage").copied().unwrap_or(0.0),
            );
            if by == "session" {
                // (Per model/type the session count is a matter of definition; per session it is not.)
                c.num(
                    format!("{what} sessions"),
                    num_or_zero(gv, "sessions"),
                    wm.get("claude_code.session.count").copied().unwrap_or(0.0),
                );
            }
        }
        // tokens by type within each model; api_requests per model and per session
        if by == "model" {
            if let Some(m) = exp.metric("claude_code.token.usage") {
                for grp in &m.by_attributes {
                    let (Some(model), Some(t)) =
                        (grp.attributes.get("model"), grp.attributes.get("type"))
                    else {
                        continue;
                    };
                    let gv = got.get(model).unwrap_or(&empty);
                    c.num(
                        format!("report --by model [{model}] tokens.{t}"),
                        num_or_zero(&gv["tokens"], t),
                        grp.value,
                    );
                }
            }
        }
        let per = match by {
            "model" => Some(&a.by_model),
            "session" => Some(&a.by_session),
            _ => None,
        };
        for (key, w) in per.into_iter().flatten() {
            let gv = &got.get(key).unwrap_or(&empty)["api_requests"];
            for f in [
                "cost_usd",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_creation_tokens",
            ] {
                c.num(
                    format!("report --by {by} [{key}] api_requests.{f}"),
                    num_or_zero(gv, f),
                    num(&w[f]),
                );
            }
        }
    }
    c
}

/// Everything `expected.json` says, on `/metrics` and in `report`, waiting up to [`SETTLE`].
fn check_all(set: &FixtureSet, serve: &Serve) -> Checker {
    eventually(SETTLE, || {
        let mut c = Checker::new();
        c.merge("", check_metrics_endpoint(set, &serve.scrape()));
        c.merge("", check_report(set, serve));
        c
    })
}

/// Per-metric totals as `/metrics` and `report` show them now (for "never goes down").
fn totals_now(set: &FixtureSet, serve: &Serve) -> BTreeMap<String, (f64, f64)> {
    let samples = prom::parse(&serve.scrape());
    let r = serve.report(&["all", "--json"]);
    set.expected
        .metrics
        .iter()
        .map(|(name, m)| {
            (
                name.clone(),
                (prom::sum(&samples, &prom_name(name, m)), num_or_zero(&r["metrics"], name)),
            )
        })
        .collect()
}

/// Runs `f` for every set, collecting each set's mismatches; panics once with all of them.
fn for_every_set(what: &str, f: impl Fn(&FixtureSet) -> Checker) {
    let mut all = Checker::new();
    let mut names = Vec::new();
    for dir in discover_sets() {
        let set = FixtureSet::load(&dir);
        names.push(set.name.clone());
        let c = f(&set);
        all.merge(&format!("[{}] ", set.name), c);
    }
    eprintln!("{what}: checked sets {names:?}");
    all.assert_ok(what);
}

#[derive(Clone, Copy, PartialEq)]
enum Between {
    Nothing,
    Restart,
    Kill9,
}

fn replay_in_halves(set: &FixtureSet, between: Between) -> Checker {
    let mut serve = Serve::start();
    let half = set.requests.len() / 2;
    let (first, second) =
        set.requests.split_at(if between == Between::Nothing { set.requests.len() } else { half });
    Replayer::for_serve(&serve).send_all(first);
    let mut c = Checker::new();
    if between != Between::Nothing {
        // Every request of the first half was acknowledged; read the totals once they are stable.
        let mut before = totals_now(set, &serve);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            let again = totals_now(set, &serve);
            if again == before {
                break;
            }
            before = again;
        }
        match between {
            Between::Restart => serve.restart(),
            Between::Kill9 => {
                serve.kill9();
                serve.start_again();
            }
            Between::Nothing => unreachable!(),
        }
        // Nothing acknowledged before the stop may be missing afterwards, nor counted twice:
        // the totals after the restart are the totals before it.
        let after = totals_now(set, &serve);
        let how = if between == Between::Kill9 { "kill -9" } else { "SIGTERM" };
        for (name, (m_before, r_before)) in &before {
            let (m_after, r_after) = after[name];
            c.num(
                format!("/metrics total of {name} after {how} + restart (before: {m_before})"),
                m_after,
                *m_before,
            );
            c.num(
                format!("report metrics[{name}] after {how} + restart (before: {r_before})"),
                r_after,
                *r_before,
            );
        }
        Replayer::for_serve(&serve).send_all(second);
    }
    c.merge("", check_all(set, &serve));
    if !c.ok() {
        eprintln!("[{}] serve stderr:\n{}", set.name, serve.stderr());
    }
    c
}

#[test]
fn every_set_replayed_into_a_fresh_serve() {
    for_every_set("replay", |set| replay_in_halves(set, Between::Nothing));
}

#[test]
fn every_set_with_a_graceful_restart_between_halves() {
    for_every_set("replay with SIGTERM + restart after half", |set| {
        replay_in_halves(set, Between::Restart)
    });
}

#[test]
fn every_set_with_kill9_between_halves() {
    for_every_set("replay with kill -9 + restart after half", |set| {
        replay_in_halves(set, Between::Kill9)
    });
}

/// The name rule used above reproduces the reference's table (section 9) of the eight Claude
/// Code metrics, and covers every metric of the fixtures.
#[test]
fn prometheus_names_match_the_reference_table() {
    let doc_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code-telemetry.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", doc_path.display()));
    let section = doc.split("## 9.").nth(1).expect("section 9 of the reference");
    let section = section.split("\n## ").next().unwrap();
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `claude_code.")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (otlp_cell, prom_cell) = (cells[1], cells[2]);
        let otlp = otlp_cell.split('`').nth(1).unwrap();
        let unit =
            otlp_cell.split_once('(').map(|(_, u)| u.trim_end_matches(')').trim()).unwrap_or("");
        let want = prom_cell.trim_matches('`');
        assert_eq!(prometheus_name(otlp, unit, true), want, "name rule for {otlp} ({unit:?})");
        table.insert(otlp.to_string(), want.to_string());
    }
    assert_eq!(table.len(), 8, "rows of the reference table: {table:?}");
    for dir in discover_sets() {
        let set = FixtureSet::load(&dir);
        for (name, m) in &set.expected.metrics {
            assert_eq!(
                table.get(name),
                Some(&prom_name(name, m)),
                "{}: {name} unit {:?}",
                set.name,
                m.unit
            );
        }
    }
}
