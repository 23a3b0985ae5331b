//! The team's Grafana dashboard (`packaging/grafana/tokentray-team.json`): it is what the
//! generator in tests/support/grafana.rs writes, it is structurally sound for Grafana, and every
//! panel's query, run on a real Prometheus that two developers' tokentrays forwarded the recorded
//! Claude Code sessions to by remote write, returns the numbers those tokentrays hold.
//!
//! Rewrite the committed file after changing the generator:
//! `TOKENTRAY_WRITE_DASHBOARD=1 cargo test --test grafana_dashboard committed`.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use support::forward::{forwarding_options, replay, wait_delivered};
use support::grafana;
use support::prom::{self, Sample};
use support::prometheus::Prometheus;
use support::{Checker, Serve};

/// Grafana's own variables a query may use.
const BUILT_IN: [&str; 3] = ["__range", "__interval", "__rate_interval"];

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(grafana::PATH)
}

fn committed() -> Value {
    let text = std::fs::read_to_string(committed_path()).expect("read the committed dashboard");
    serde_json::from_str(&text).expect("the committed dashboard is JSON")
}

/// Every query panel with its targets (rows have none).
fn query_panels(d: &Value) -> Vec<&Value> {
    d["panels"].as_array().expect("panels").iter().filter(|p| p["type"] != "row").collect()
}

#[test]
fn committed_dashboard_is_the_generated_one() {
    let generated = grafana::render();
    if std::env::var_os("TOKENTRAY_WRITE_DASHBOARD").is_some() {
        std::fs::write(committed_path(), &generated).expect("write the dashboard");
    }
    let on_disk = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} differs from what tests/support/grafana.rs generates: run TOKENTRAY_WRITE_DASHBOARD=1 cargo test --test grafana_dashboard committed",
        grafana::PATH
    );
}

fn variables_used(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[test]
fn dashboard_is_structurally_sound() {
    let d = committed();
    let mut c = Checker::new();
    let defined: BTreeSet<String> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    for wanted in ["datasource", "developer", "team", "model"] {
        c.check(defined.contains(wanted), || format!("no ${wanted} variable"));
    }
    let ds = d["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "datasource"));
    c.check(ds.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"), || {
        "$datasource is not a Prometheus data source variable".into()
    });
    let is_defined = |name: &String| defined.contains(name) || BUILT_IN.contains(&name.as_str());
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        for used in variables_used(&format!("{} {}", v["definition"], v["query"])) {
            c.check(is_defined(&used), || format!("variable {} uses undefined ${used}", v["name"]));
        }
    }

    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        c.check(p["id"].as_u64().is_some_and(|id| ids.insert(id)), || {
            format!("{title}: id missing or not unique")
        });
        let g = &p["gridPos"];
        let (x, w, h) = (g["x"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
        c.check(
            matches!((x, w, h, g["y"].as_u64()), (Some(x), Some(w), Some(h), Some(_)) if w > 0 && h > 0 && x + w <= 24),
            || format!("{title}: gridPos {g}"),
        );
    }
    let panels = query_panels(&d);
    c.check(panels.len() >= 20, || format!("only {} panels", panels.len()));
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        c.check(!targets.is_empty(), || format!("{title}: no targets"));
        let ref_ids: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
        c.check(ref_ids.len() == targets.len(), || format!("{title}: refIds missing or repeated"));
        for t in std::iter::once(p).chain(targets) {
            c.check(t["datasource"]["uid"] == "${datasource}", || {
                format!("{title}: datasource {} is not ${{datasource}}", t["datasource"])
            });
        }
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            c.check(!expr.trim().is_empty(), || format!("{title}: a target without expr"));
            for used in variables_used(expr) {
                c.check(is_defined(&used), || format!("{title}: ${used} is not defined"));
            }
        }
    }
    c.assert_ok("the dashboard's structure");
}

/// One developer's tokentray forwarding by remote write to `prometheus`, with its identity.
fn developer(prometheus: &Prometheus, name: &str, machine: &str, project: Option<&str>) -> Serve {
    let mut options =
        forwarding_options(&prometheus.remote_write_url(), "prometheus-remote-write", None);
    options.config_toml = options.config_toml.map(|c| {
        let c = c.replace(
            "retry_initial_ms",
            &format!("developer = \"{name}\"\nteam = \"payments\"\nmachine = \"{machine}\"\nretry_initial_ms"),
        );
        match project {
            Some(p) => format!("{c}project = \"{p}\"\n"),
            None => c,
        }
    });
    Serve::start_with(options)
}

/// The local `/metrics` of one developer, each sample with the labels forwarding adds.
fn labelled(serve: &Serve, extra: &[(&str, &str)]) -> Vec<Sample> {
    prom::parse(&serve.scrape())
        .into_iter()
        .filter(|s| s.name.starts_with("claude_code_"))
        .map(|mut s| {
            for (k, v) in extra {
                s.labels.insert(k.to_string(), v.to_string());
            }
            s
        })
        .collect()
}

/// Sum of `metric` over `samples` matching `keep`, keyed by the values of `by` joined with `/`.
fn local_sum(
    samples: &[Sample],
    metric: &str,
    by: &[&str],
    keep: impl Fn(&Sample) -> bool,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == metric && keep(s)) {
        let key: Vec<&str> =
            by.iter().map(|l| s.labels.get(*l).map(String::as_str).unwrap_or("")).collect();
        *out.entry(key.join("/")).or_insert(0.0) += s.value;
    }
    out
}

fn queried(p: &Prometheus, expr: &str, by: &[&str]) -> BTreeMap<String, f64> {
    p.query(expr)
        .into_iter()
        .map(|(labels, v)| {
            let key: Vec<&str> =
                by.iter().map(|l| labels.get(*l).map(String::as_str).unwrap_or("")).collect();
            (key.join("/"), v)
        })
        .collect()
}

/// `$variable`s replaced as Grafana would with "All" (`.*`) or the chosen values, and the
/// range as one hour (everything was sent within the last minute).
fn substitute(expr: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = expr.replace("$__range", "1h");
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v).replace(&format!("${k}"), v);
    }
    out
}

fn compare(c: &mut Checker, what: &str, got: &BTreeMap<String, f64>, want: &BTreeMap<String, f64>) {
    let want: BTreeMap<&String, f64> =
        want.iter().filter(|(_, v)| **v != 0.0).map(|(k, v)| (k, *v)).collect();
    let got_keys: BTreeSet<&String> = got.keys().filter(|k| got[*k] != 0.0).collect();
    c.check(got_keys == want.keys().copied().collect(), || {
        format!("{what}: groups {got_keys:?}, want {:?}", want.keys())
    });
    for (k, w) in &want {
        c.num(format!("{what} [{k}]"), got.get(*k).copied().unwrap_or(0.0), *w);
    }
}

/// What each panel's queries must return, from the developers' own `/metrics`.
fn expected(
    title: &str,
    ref_id: &str,
    all: &[Sample],
) -> Option<(Vec<&'static str>, BTreeMap<String, f64>)> {
    let any = |_: &Sample| true;
    let total = |metric: &str| (vec![], local_sum(all, metric, &[], any));
    let by = |metric: &str, labels: Vec<&'static str>| {
        let m = local_sum(all, metric, &labels, any);
        (labels, m)
    };
    Some(match (title, ref_id) {
        ("Spend today" | "Spend this week" | "Spend this month" | "Spend in range", _) => {
            total(grafana::COST)
        }
        ("Tokens today" | "Tokens this week" | "Tokens this month" | "Tokens in range", _) => {
            total(grafana::TOKENS)
        }
        ("Sessions", _) => total(grafana::SESSIONS),
        ("Active time", _) => total(grafana::ACTIVE),
        ("Commits", _) => total(grafana::COMMITS),
        ("Pull requests", _) => total(grafana::PULL_REQUESTS),
        ("API errors", _) => total(grafana::API_ERRORS),
        ("API errors by developer and model", _) => {
            by(grafana::API_ERRORS, vec!["developer", "model"])
        }
        ("Cache hit ratio", _) => {
            let t = local_sum(all, grafana::TOKENS, &["type"], any);
            let read = t.get("cacheRead").copied().unwrap_or(0.0);
            let prompt: f64 = ["input", "cacheRead", "cacheCreation"]
                .iter()
                .map(|k| t.get(*k).copied().unwrap_or(0.0))
                .sum();
            (vec![], BTreeMap::from([(String::new(), read / prompt)]))
        }
        ("Spend by developer", _) | ("By developer", "A") => by(grafana::COST, vec!["developer"]),
        ("By developer", "B") => by(grafana::TOKENS, vec!["developer"]),
        ("By developer", "C") => by(grafana::SESSIONS, vec!["developer"]),
        ("By developer", "D") => by(grafana::ACTIVE, vec!["developer"]),
        ("By developer", "E") => by(grafana::COMMITS, vec!["developer"]),
        ("By developer", "F") => by(grafana::PULL_REQUESTS, vec!["developer"]),
        ("Spend by model", _) => by(grafana::COST, vec!["model"]),
        ("Spend by agent", _) => by(grafana::COST, vec!["job"]),
        ("Spend by machine", _) => by(grafana::COST, vec!["developer", "host_name"]),
        ("Spend by project", _) => {
            let labels = vec!["project"];
            let m = local_sum(all, grafana::COST, &labels, |s| s.labels.contains_key("project"));
            (labels, m)
        }
        ("Tokens by type", _) => by(grafana::TOKENS, vec!["type"]),
        ("Lines changed", _) => by(grafana::LINES, vec!["type"]),
        _ => return None,
    })
}

/// The ten most expensive sessions: each with its own spend, and none left out that costs more
/// than one shown (sessions of equal cost may swap places at the tenth).
fn check_top_sessions(c: &mut Checker, expr: &str, got: &BTreeMap<String, f64>, all: &[Sample]) {
    let sessions = local_sum(all, grafana::COST, &["developer", "session_id"], |_| true);
    c.check(got.len() == sessions.len().min(10), || format!("{expr}: {} sessions", got.len()));
    for (k, v) in got {
        c.num(format!("top sessions [{k}]"), *v, sessions.get(k).copied().unwrap_or(f64::NAN));
    }
    let cheapest_shown = got.values().copied().fold(f64::INFINITY, f64::min);
    for (k, v) in sessions.iter().filter(|(k, _)| !got.contains_key(*k)) {
        c.check(*v <= cheapest_shown * (1.0 + 1e-9), || {
            format!("top sessions: {k} (${v}) is left out")
        });
    }
}

#[test]
fn every_panel_query_returns_the_two_developers_numbers_from_prometheus() {
    let prometheus = Prometheus::start_receiver();
    let ana = developer(&prometheus, "ana", "ana-laptop", Some("checkout"));
    let bo = developer(&prometheus, "bo", "bo-devbox", None);
    replay(&ana, &["grpc-delta", "http-json-cumulative-slow"]);
    replay(&bo, &["http-protobuf-delta", "http-json-headers-resattrs"]);
    wait_delivered(&ana);
    wait_delivered(&bo);

    let mut all = labelled(
        &ana,
        &[
            ("developer", "ana"),
            ("team", "payments"),
            ("host_name", "ana-laptop"),
            ("project", "checkout"),
        ],
    );
    all.extend(labelled(
        &bo,
        &[("developer", "bo"), ("team", "payments"), ("host_name", "bo-devbox")],
    ));
    assert!(
        local_sum(&all, grafana::COST, &["developer"], |_| true).len() == 2,
        "both developers have spend"
    );

    let d = committed();
    let mut c = Checker::new();
    let everyone = BTreeMap::from([("team", ".*"), ("developer", ".*"), ("model", ".*")]);
    let mut checked = 0;
    for p in query_panels(&d) {
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            let ref_id = t["refId"].as_str().unwrap_or("A");
            let expr = substitute(t["expr"].as_str().unwrap_or(""), &everyone);
            // Prometheus answers "success" or the helper fails naming the query.
            if title == "Top sessions by cost" {
                check_top_sessions(
                    &mut c,
                    &expr,
                    &queried(&prometheus, &expr, &["developer", "session_id"]),
                    &all,
                );
                checked += 1;
                continue;
            }
            let Some((by, want)) = expected(title, ref_id, &all) else {
                c.fail(format!("{title} [{ref_id}]: no expectation for this panel"));
                continue;
            };
            // The recorded sessions have something for every panel: no comparison of nothing.
            c.check(want.values().any(|v| *v != 0.0), || {
                format!("{title} [{ref_id}]: the fixtures give it nothing to show")
            });
            compare(
                &mut c,
                &format!("{title} [{ref_id}]: {expr}"),
                &queried(&prometheus, &expr, &by),
                &want,
            );
            checked += 1;
        }
    }
    c.check(checked >= 25, || format!("only {checked} queries checked"));

    // The variables filter: one developer, then one model.
    let spend = query_panels(&d)
        .into_iter()
        .find(|p| p["title"] == "Spend in range")
        .and_then(|p| p["targets"][0]["expr"].as_str())
        .expect("the Spend in range panel")
        .to_string();
    let just_ana = BTreeMap::from([("team", "payments"), ("developer", "ana"), ("model", ".*")]);
    let want_ana = local_sum(&all, grafana::COST, &[], |s| s.labels["developer"] == "ana");
    compare(
        &mut c,
        "$developer=ana",
        &queried(&prometheus, &substitute(&spend, &just_ana), &[]),
        &want_ana,
    );
    let models = local_sum(&all, grafana::COST, &["model"], |_| true);
    let model = models.keys().next().expect("a model").clone();
    let one_model =
        BTreeMap::from([("team", ".*"), ("developer", ".*"), ("model", model.as_str())]);
    let want_model = local_sum(&all, grafana::COST, &[], |s| s.labels.get("model") == Some(&model));
    compare(
        &mut c,
        "$model",
        &queried(&prometheus, &substitute(&spend, &one_model), &[]),
        &want_model,
    );
    c.assert_ok(&format!("dashboard queries vs the developers' /metrics\n{}", prometheus.log()));
}
