//! Issue 15's acceptance with the real Claude Code CLI: its transcripts (written under a throwaway
//! HOME) read by `tokentray import`, alone and beside its telemetry. Ground truth: the stand-in's
//! fixed usage times the calls it answered, and Claude Code's own cost as its `cost-state` lines
//! state it (read from the transcript files here), which telemetry's cost must equal.
//!
//! The only allowed skip: the CLI binary is missing after setup (npm unreachable).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::anthropic::{StandIn, Usage};
use support::claude::{claude_or_skip, run_claude_with};
use support::serve::ServeOptions;
use support::{eventually, tempdir, Checker, Serve};

const REPLY: &str = "hi from the transcripts' stand-in";
const USAGE: Usage = Usage { input: 2222, output: 31, cache_read: 7777, cache_creation: 666 };
const PROMPTS: [&str; 2] = ["say hi", "say hi again"];

/// A throwaway HOME for the CLI; its transcripts land in `home/.claude/projects/`.
struct ClaudeHome {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl ClaudeHome {
    fn new() -> ClaudeHome {
        let dir = tempdir("tokentray-transcripts-home-");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        ClaudeHome { _dir: dir, home }
    }

    fn config_dir(&self) -> PathBuf {
        self.home.join(".claude")
    }

    /// A tokentray config that reads exactly this HOME's transcripts.
    fn config_toml(&self) -> String {
        format!("[transcripts]\npaths = [{:?}]\n", self.config_dir().display().to_string())
    }

    /// `claude -p prompt`, telemetry to `otel` (protocol, endpoint) or off; asserts it answered.
    fn run(&self, bin: &Path, api: &StandIn, otel: Option<(&str, &str)>, prompt: &str) {
        self.run_with(bin, api, otel, prompt, &[]);
    }

    /// [`ClaudeHome::run`] with extra environment for the CLI.
    fn run_with(
        &self,
        bin: &Path,
        api: &StandIn,
        otel: Option<(&str, &str)>,
        prompt: &str,
        env: &[(&str, &str)],
    ) {
        let before = api.calls();
        let run = run_claude_with(bin, api, &self.home, otel, prompt, env);
        assert!(
            run.status.success() && run.stdout.contains(REPLY),
            "claude -p {prompt:?} failed\n{}\nstand-in log: {:?}",
            run.describe(),
            api.log()
        );
        assert!(api.calls() > before, "claude -p never called the stand-in: {:?}", api.log());
    }

    /// Claude Code's own cost per session: the last `cost-state` line's `totalCostUSD` of each
    /// session in the transcript files.
    fn cost_states(&self) -> BTreeMap<String, f64> {
        let mut costs = BTreeMap::new();
        for file in jsonl_files(&self.config_dir().join("projects")) {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
                if v["type"] == "cost-state" {
                    let session = v["sessionId"].as_str().unwrap_or_default().to_string();
                    costs.insert(session, v["totalCostUSD"].as_f64().unwrap());
                }
            }
        }
        costs
    }
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(jsonl_files(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    out
}

/// `tokentray import` on `data_dir` with `config`; returns (success, stdout, stderr).
fn import(data_dir: &Path, config: &Path, home: &Path) -> (bool, String, String) {
    let out = support::serve::command(data_dir, config)
        .env("HOME", home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .arg("import")
        .output()
        .expect("run tokentray import");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The report's tokens, requests and sessions against the stand-in's `calls` answers in
/// `sessions` sessions, and its cost against `cost`.
fn check_totals(r: &Value, calls: u64, sessions: usize, cost: f64) -> Checker {
    let mut c = Checker::new();
    for (k, per_call) in [
        ("input", USAGE.input),
        ("output", USAGE.output),
        ("cacheRead", USAGE.cache_read),
        ("cacheCreation", USAGE.cache_creation),
    ] {
        c.num(format!("report tokens.{k}"), f(&r["tokens"][k]), (per_call * calls) as f64);
    }
    c.num("report api_requests.count", f(&r["api_requests"]["count"]), calls as f64);
    c.num("report sessions", f(&r["sessions"]), sessions as f64);
    c.num("report cost_usd vs Claude Code's cost-state", f(&r["cost_usd"]), cost);
    c
}

/// Telemetry off: only the transcripts know these sessions, and `import` on a fresh data dir
/// finds every request with the stand-in's exact usage and Claude Code's own cost.
#[test]
fn telemetry_off_import_gives_every_request_and_claude_codes_cost() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let claude = ClaudeHome::new();
    for prompt in PROMPTS {
        claude.run(&bin, &api, None, prompt);
    }
    let costs = claude.cost_states();
    assert_eq!(costs.len(), PROMPTS.len(), "one cost-state per `claude -p` session: {costs:?}");

    let dir = tempdir("tokentray-transcripts-data-");
    let (data_dir, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    std::fs::write(&config, claude.config_toml()).unwrap();
    let (ok, stdout, stderr) = import(&data_dir, &config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    eprintln!("import of {} sessions, {} API calls: {}", PROMPTS.len(), api.calls(), stdout.trim());

    let r = support::serve::report(&data_dir, &config, &["all", "--json"]);
    let c = check_totals(&r, api.calls(), PROMPTS.len(), costs.values().sum());
    if !c.ok() {
        eprintln!("import: {stdout}\nreport: {r:#}\nstand-in log: {:?}", api.log());
    }
    c.assert_ok("telemetry off, after `tokentray import`");
}

/// The figures a user reads, to compare two reports exactly.
fn totals(r: &Value) -> Value {
    serde_json::json!({
        "tokens": r["tokens"], "requests": r["api_requests"]["count"],
        "sessions": r["sessions"], "cost_usd": r["cost_usd"],
    })
}

fn serve_reading(claude: &ClaudeHome) -> Serve {
    Serve::start_with(ServeOptions {
        config_toml: Some(claude.config_toml()),
        env: vec![("HOME".into(), claude.home.display().to_string())],
        ..ServeOptions::default()
    })
}

/// A stand-in, a CLI home and a `serve` that reads that home's transcripts.
fn telemetry_to_serve() -> (StandIn, ClaudeHome, Serve) {
    let claude = ClaudeHome::new();
    let serve = serve_reading(&claude);
    (StandIn::start(USAGE, REPLY), claude, serve)
}

/// Telemetry on, to a running `serve`: importing the same sessions' transcripts beside the running
/// engine changes nothing (every request once; telemetry's totals, to the cent).
#[test]
fn telemetry_on_then_import_beside_the_engine_keeps_telemetrys_totals() {
    let Some(bin) = claude_or_skip() else { return };
    let (api, claude, serve) = telemetry_to_serve();
    let endpoint = format!("http://{}", serve.grpc);
    for prompt in PROMPTS {
        claude.run(&bin, &api, Some(("grpc", &endpoint)), prompt);
    }
    let cost: f64 = claude.cost_states().values().sum();
    let c = eventually(Duration::from_secs(15), || {
        check_totals(&serve.report(&["all", "--json"]), api.calls(), PROMPTS.len(), cost)
    });
    c.assert_ok(&format!("telemetry alone, before the import\nserve stderr:\n{}", serve.stderr()));
    let telemetry = serve.report(&["all", "--json"]);
    assert_eq!(
        f(&telemetry["events"]["claude_code.api_request"]),
        api.calls() as f64,
        "telemetry's api_request events, one per answered call: {telemetry:#}"
    );

    let (ok, stdout, stderr) = import(&serve.data_dir, &serve.config, &claude.home);
    assert!(
        ok,
        "tokentray import beside a running serve failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // `import` beside a running engine has the engine import (tests/import_engine.rs); the
    // requests telemetry already counted are recognised by their `requestId`.
    assert!(stdout.contains(" new requests"), "import printed {stdout:?}");
    assert!(stdout.contains("in the engine"), "import printed {stdout:?}");
    eprintln!("import beside the running serve: {}", stdout.trim());

    let after = serve.report(&["all", "--json"]);
    assert_eq!(totals(&after), totals(&telemetry), "the import changed telemetry's totals");
    check_totals(&after, api.calls(), PROMPTS.len(), cost).assert_ok("after the import");
}

/// tokentray starts in the middle: the first session's telemetry went nowhere (no serve), the
/// second's reached `serve`. The engine's own import at start and `tokentray import` afterwards
/// give both sessions once, each request once, Claude Code's whole cost.
#[test]
fn tokentray_started_between_two_sessions_counts_both_once() {
    let Some(bin) = claude_or_skip() else { return };
    let api = StandIn::start(USAGE, REPLY);
    let claude = ClaudeHome::new();
    let nobody = format!("http://127.0.0.1:{}", support::free_port());
    claude.run(&bin, &api, Some(("grpc", &nobody)), PROMPTS[0]);
    let first_calls = api.calls();

    let serve = serve_reading(&claude);
    let endpoint = format!("http://{}", serve.grpc);
    claude.run(&bin, &api, Some(("grpc", &endpoint)), PROMPTS[1]);
    let costs = claude.cost_states();
    assert_eq!(costs.len(), 2, "one cost-state per session: {costs:?}");
    // The second session's telemetry arrived (its requests are the stand-in's later calls).
    let c = eventually(Duration::from_secs(15), || {
        let r = serve.report(&["all", "--json"]);
        let mut c = Checker::new();
        c.num(
            "report events[claude_code.api_request] (second session's telemetry)",
            f(&r["events"]["claude_code.api_request"]),
            (api.calls() - first_calls) as f64,
        );
        c
    });
    c.assert_ok(&format!("second session's telemetry\nserve stderr:\n{}", serve.stderr()));

    let (ok, stdout, stderr) = import(&serve.data_dir, &serve.config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let r = serve.report(&["all", "--json"]);
    let c = check_totals(&r, api.calls(), 2, costs.values().sum());
    if !c.ok() {
        eprintln!("import: {stdout}\nreport: {r:#}\nserve stderr:\n{}", serve.stderr());
    }
    c.assert_ok("first session from transcripts only, second from telemetry and transcripts");
}

/// Telemetry metrics without events (`OTEL_LOGS_EXPORTER` off, as many users have it): the
/// counting rule takes per session, model and token type the larger of the metrics' total and
/// the transcripts'; both are the same requests here, so the import changes no token and no cent,
/// and adds the request count only the transcripts know.
#[test]
fn telemetry_metrics_without_events_then_import_keeps_the_metrics_totals() {
    let Some(bin) = claude_or_skip() else { return };
    let (api, claude, serve) = telemetry_to_serve();
    let endpoint = format!("http://{}", serve.grpc);
    let no_events = [("OTEL_LOGS_EXPORTER", "none")];
    claude.run_with(&bin, &api, Some(("grpc", &endpoint)), PROMPTS[0], &no_events);
    let cost: f64 = claude.cost_states().values().sum();
    let c = eventually(Duration::from_secs(15), || {
        let r = serve.report(&["all", "--json"]);
        let mut c = check_totals(&r, api.calls(), 1, cost);
        // Without events telemetry has no request count: everything else must match already.
        c.errors.retain(|e| !e.starts_with("report api_requests.count"));
        c
    });
    c.assert_ok(&format!("metrics alone\nserve stderr:\n{}", serve.stderr()));
    let metrics_only = serve.report(&["all", "--json"]);
    let events = metrics_only["events"]["claude_code.api_request"].as_f64().unwrap_or(0.0);
    assert_eq!(events, 0.0, "OTEL_LOGS_EXPORTER=none still sent events: {metrics_only:#}");

    let (ok, stdout, stderr) = import(&serve.data_dir, &serve.config, &claude.home);
    assert!(ok, "tokentray import failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let after = serve.report(&["all", "--json"]);
    assert_eq!(after["tokens"], metrics_only["tokens"], "the import changed the metrics' tokens");
    assert_eq!(after["cost_usd"], metrics_only["cost_usd"], "the import changed the metrics' cost");
    check_totals(&after, api.calls(), 1, cost).assert_ok("metrics, then the import");
}
