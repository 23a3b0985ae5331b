//! The real Claude Code CLI (npm `@anthropic-ai/claude-code@2.1.330`, installed by
//! `tests/setup.sh` into `tests/.cache/claude-code/`) against a local stand-in for the Anthropic
//! Messages API, exporting its telemetry to a real `tokentray serve` over each of its three OTLP
//! protocols. The stand-in's fixed token usage times the number of calls it answered is the
//! ground truth.
//!
//! The only allowed skip: the CLI binary is missing after setup (npm unreachable).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::anthropic::{StandIn, Usage};
use support::claude::{claude_or_skip, run_claude, run_claude_in};
use support::{eventually, prom, tempdir, Checker, Serve};

const REPLY: &str = "hi from the stand-in";
const USAGE: Usage = Usage { input: 1111, output: 23, cache_read: 4444, cache_creation: 555 };

/// The harness itself, independent of tokentray: the real CLI talks to the stand-in and prints
/// its reply (telemetry goes to a port where nothing listens; the CLI still exits 0).
#[test]
fn stand_in_answers_the_real_cli() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let dead = support::free_port();
    let run = run_claude(&bin, &api, "http/json", &format!("http://127.0.0.1:{dead}"), "say hi");
    assert!(
        run.status.success(),
        "claude -p failed\n{}\nstand-in log: {:?}",
        run.describe(),
        api.log()
    );
    assert!(run.stdout.contains(REPLY), "reply not printed\n{}", run.describe());
    assert!(api.calls() >= 1, "the CLI never called the stand-in: {:?}", api.log());
    eprintln!("stand-in log: {:?}\nclaude stdout: {}", api.log(), run.stdout.trim());
}

#[test]
fn real_cli_over_grpc_http_protobuf_and_http_json() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let serve = Serve::start();
    let runs = [
        ("grpc", format!("http://{}", serve.grpc)),
        ("http/protobuf", format!("http://{}", serve.http)),
        ("http/json", format!("http://{}", serve.http)),
    ];
    for (i, (protocol, endpoint)) in runs.iter().enumerate() {
        let before = api.calls();
        let run = run_claude(&bin, &api, protocol, endpoint, "say hi");
        assert!(
            run.status.success() && run.stdout.contains(REPLY),
            "claude -p over {protocol} failed\n{}\nstand-in log: {:?}\nserve stderr:\n{}",
            run.describe(),
            api.log(),
            serve.stderr()
        );
        assert!(
            api.calls() > before,
            "claude -p over {protocol} never called the stand-in: {:?}",
            api.log()
        );
        assert!(
            !run.debug_log.contains("First metrics export: FAILED"),
            "the CLI reports a failed metrics export over {protocol}\n{}\nserve stderr:\n{}",
            run.describe(),
            serve.stderr()
        );
        // This run's session arrived over its protocol.
        let c = eventually(Duration::from_secs(10), || {
            let mut c = Checker::new();
            let r = serve.report(&["all", "--json"]);
            c.num(
                format!("report sessions after the {protocol} run"),
                f(&r["sessions"]),
                (i + 1) as f64,
            );
            c
        });
        if !c.ok() {
            eprintln!("{}\nserve stderr:\n{}", run.describe(), serve.stderr());
        }
        c.assert_ok(&format!("claude -p over {protocol}"));
    }
    let n_runs = runs.len() as f64;
    let calls = api.calls();
    let mut calls_by_model: BTreeMap<String, u64> = BTreeMap::new();
    for m in api.models() {
        *calls_by_model.entry(m).or_default() += 1;
    }
    let want_tokens = |c: u64| {
        [
            ("input", (USAGE.input * c) as f64),
            ("output", (USAGE.output * c) as f64),
            ("cacheRead", (USAGE.cache_read * c) as f64),
            ("cacheCreation", (USAGE.cache_creation * c) as f64),
        ]
    };

    // The CLI flushed at exit; give the engine a moment to make it visible, then check.
    let check = || {
        let mut c = Checker::new();
        let r = serve.report(&["all", "--json"]);
        for (k, want) in want_tokens(calls) {
            c.num(format!("report tokens.{k}"), f(&r["tokens"][k]), want);
        }
        c.num(
            "report tokens.total",
            f(&r["tokens"]["total"]),
            want_tokens(calls).iter().map(|(_, v)| v).sum(),
        );
        c.num("report sessions", f(&r["sessions"]), n_runs);
        c.num(
            "report metrics[claude_code.session.count]",
            f(&r["metrics"]["claude_code.session.count"]),
            n_runs,
        );
        let a = &r["api_requests"];
        c.num("report api_requests.count", f(&a["count"]), calls as f64);
        c.num(
            "report events[claude_code.api_request]",
            f(&r["events"]["claude_code.api_request"]),
            calls as f64,
        );
        c.num(
            "report api_requests.input_tokens",
            f(&a["input_tokens"]),
            (USAGE.input * calls) as f64,
        );
        c.num(
            "report api_requests.output_tokens",
            f(&a["output_tokens"]),
            (USAGE.output * calls) as f64,
        );
        c.num(
            "report api_requests.cache_read_tokens",
            f(&a["cache_read_tokens"]),
            (USAGE.cache_read * calls) as f64,
        );
        c.num(
            "report api_requests.cache_creation_tokens",
            f(&a["cache_creation_tokens"]),
            (USAGE.cache_creation * calls) as f64,
        );
        // Cost: Claude Code's own price computation, as both the metric and the events carry it.
        let cost_metric = f(&r["metrics"]["claude_code.cost.usage"]);
        let cost_events = f(&a["cost_usd"]);
        c.check(cost_metric > 0.0, || {
            format!("metrics[claude_code.cost.usage] = {cost_metric}, want > 0")
        });
        c.num(
            "report metrics[claude_code.cost.usage] vs api_requests.cost_usd",
            cost_metric,
            cost_events,
        );
        c.num("report cost_usd vs metrics[claude_code.cost.usage]", f(&r["cost_usd"]), cost_metric);

        // Per model, as the stand-in saw the requests.
        let by_model = serve.report(&["all", "--by", "model", "--json"]);
        let groups = groups(&by_model);
        for (model, n) in &calls_by_model {
            match groups.get(model) {
                None => c.fail(format!(
                    "report --by model: no group {model:?} (groups: {:?})",
                    groups.keys()
                )),
                Some(g) => {
                    for (k, want) in want_tokens(*n) {
                        c.num(
                            format!("report --by model [{model}] tokens.{k}"),
                            f(&g["tokens"][k]),
                            want,
                        );
                    }
                }
            }
        }

        // /metrics: tokens by type, one session per run.
        let samples = prom::parse(&serve.scrape());
        let by_type = prom::sum_by(&samples, "claude_code_token_usage_tokens_total", &["type"]);
        for (k, want) in want_tokens(calls) {
            c.num(
                format!(
                    "/metrics sum by (type) claude_code_token_usage_tokens_total{{type={k:?}}}"
                ),
                by_type.get(&vec![k.to_string()]).copied().unwrap_or(0.0),
                want,
            );
        }
        let sessions = prom::sum_by(&samples, "claude_code_session_count_total", &["session_id"]);
        c.check(sessions.len() == runs.len() && !sessions.contains_key(&vec![String::new()]), || {
            format!("/metrics: claude_code_session_count_total session_id values {:?}, want {} distinct", sessions.keys(), runs.len())
        });
        c.num(
            "/metrics sum(claude_code_session_count_total)",
            prom::sum(&samples, "claude_code_session_count_total"),
            n_runs,
        );
        c.num(
            "/metrics sum(claude_code_cost_usage_USD_total) vs report cost",
            prom::sum(&samples, "claude_code_cost_usage_USD_total"),
            cost_events,
        );
        c
    };
    let c = eventually(Duration::from_secs(10), check);
    if !c.ok() {
        eprintln!("stand-in log: {:?}\nserve stderr:\n{}", api.log(), serve.stderr());
    }
    c.assert_ok(&format!("real claude CLI, {} runs, {calls} API calls answered", runs.len()));
    eprintln!("real claude CLI: {} runs, {calls} API calls answered ({calls_by_model:?}), all totals match", runs.len());
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn groups(report: &Value) -> BTreeMap<String, Value> {
    report["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| (g["key"].as_str().unwrap_or_default().to_string(), g.clone()))
        .collect()
}

/// `tokentray setup` is all the configuration Claude Code needs: with no OTEL variable in its
/// environment, the `env` block setup merged into `~/.claude/settings.json` sends the session,
/// its tokens and its events to tokentray.
#[test]
fn settings_written_by_tokentray_setup_are_all_claude_code_needs() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let serve = Serve::start();
    let dir = tempdir("tokentray-setup-");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    // A user's settings with other keys: setup must keep them.
    std::fs::write(home.join(".claude/settings.json"), "{\n  \"includeCoAuthoredBy\": false\n}\n")
        .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[listen]\notlp_grpc = \"{}\"\notlp_http = \"{}\"\n", serve.grpc, serve.http),
    )
    .unwrap();
    let out = support::serve::command(&serve.data_dir, &config)
        .env("HOME", &home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env("TOKENTRAY_CLAUDE_MANAGED_SETTINGS", dir.path().join("no-managed-settings.json"))
        .arg("setup")
        .output()
        .expect("run tokentray setup");
    assert!(
        out.status.success(),
        "setup failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".claude/settings.json")).unwrap())
            .unwrap();
    assert_eq!(settings["includeCoAuthoredBy"], Value::Bool(false), "{settings:#}");
    assert_eq!(
        settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
        format!("http://{}", serve.grpc),
        "{settings:#}"
    );

    let run = run_claude_in(&bin, &api, &home, None, "say hi");
    assert!(
        run.status.success() && run.stdout.contains(REPLY),
        "claude -p failed\n{}\nstand-in log: {:?}",
        run.describe(),
        api.log()
    );
    let calls = api.calls();
    assert!(calls >= 1, "the CLI never called the stand-in: {:?}", api.log());
    let c = eventually(Duration::from_secs(15), || {
        let mut c = Checker::new();
        let r = serve.report(&["all", "--json"]);
        c.num("report sessions", f(&r["sessions"]), 1.0);
        c.num("report tokens.input", f(&r["tokens"]["input"]), (USAGE.input * calls) as f64);
        c.num(
            "report tokens.cacheRead",
            f(&r["tokens"]["cacheRead"]),
            (USAGE.cache_read * calls) as f64,
        );
        c.num(
            "report events[claude_code.api_request]",
            f(&r["events"]["claude_code.api_request"]),
            calls as f64,
        );
        c
    });
    if !c.ok() {
        eprintln!("{}\nserve stderr:\n{}", run.describe(), serve.stderr());
    }
    c.assert_ok("claude -p configured only by tokentray setup");
}
