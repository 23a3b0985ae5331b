//! Claude Code's transcripts through the `tokentray` binary: `import`, then `report`; and the
//! background import of a starting `serve`. Ground truth: the captured transcripts' expected.json.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/claude-code-transcripts");

/// `tokentray` with its own data dir and config, and a HOME holding the captured `~/.claude`.
fn tokentray(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAY_")) {
        cmd.env_remove(k);
    }
    cmd.env("HOME", dir.join("home"))
        .env_remove("CLAUDE_CONFIG_DIR")
        .env("XDG_CONFIG_HOME", dir.join("home/.config"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("config.toml"));
    cmd
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_tree(&Path::new(FIXTURE).join("home/.claude"), &dir.path().join("home/.claude"));
    // Only the engines create a data directory; the reports here may run before serve did.
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    dir
}

fn report(dir: &Path, by: &str) -> Value {
    let out =
        tokentray(dir).args(["report", "all", "--json", "--by", by]).output().expect("report");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn assert_expected(r: &Value) {
    let e: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE).join("expected.json")).expect("read"),
    )
    .expect("json");
    for kind in ["input", "output", "cacheRead", "cacheCreation"] {
        assert_eq!(r["tokens"][kind], e["tokens"][kind], "{kind}");
    }
    assert_eq!(r["api_requests"]["count"], e["requests"]);
    assert_eq!(r["sessions"], e["sessions"]);
    let cost = r["cost_usd"].as_f64().expect("cost");
    assert!((cost - e["cost_usd_claude_code"].as_f64().expect("n")).abs() < 1e-9, "{cost}");
}

#[test]
fn import_then_report_gives_the_captured_ground_truth_and_the_pr_once() {
    let dir = setup();
    let out = tokentray(dir.path()).arg("import").output().expect("import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("13 new requests"));
    let by_pr = report(dir.path(), "pr");
    assert_expected(&by_pr);
    let prs: Vec<&Value> =
        by_pr["groups"].as_array().expect("groups").iter().filter(|g| g["key"] == "#42").collect();
    assert_eq!(prs.len(), 1);
    // Importing again adds nothing.
    let again = tokentray(dir.path()).arg("import").output().expect("import");
    assert!(String::from_utf8_lossy(&again.stdout).contains(" 0 new requests"));
    assert_expected(&report(dir.path(), "project"));
}

#[test]
fn serve_imports_the_transcripts_on_disk_when_it_starts() {
    let dir = setup();
    let mut serve = tokentray(dir.path())
        .args([
            "serve",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        // `report` refuses a data dir that `serve` has not created yet.
        if !dir.path().join("data").exists() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        last = report(dir.path(), "model");
        if last["api_requests"]["count"] == 13 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = serve.kill();
    let _ = serve.wait();
    assert_expected(&last);
}

/// One `assistant` line of a request only the transcripts see (no cost-state yet), at `time`.
fn assistant_line(session: &str, request: &str, model: &str, time: &str) -> String {
    format!(
        "{{\"type\":\"assistant\",\"sessionId\":\"{session}\",\"requestId\":\"{request}\",\"timestamp\":\"{time}\",\"cwd\":\"/tmp/priced\",\"gitBranch\":\"main\",\"message\":{{\"id\":\"msg_{request}\",\"model\":\"{model}\",\"content\":[{{\"type\":\"text\",\"text\":\"hi\"}}],\"usage\":{{\"input_tokens\":1000,\"output_tokens\":2000,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}}}}\n"
    )
}

/// `[pricing]` for Sonnet 4.5 at $100 / $1000 per million: an [`assistant_line`] costs $2.10.
const SONNET_AT_2_10: &str = "[pricing.models.claude-sonnet-4-5]\ninput = 100\noutput = 1000\ncache_read = 0\ncache_write_5m = 0\ncache_write_1h = 0\n";

/// `serve` with `config` and its HOME and Claude config dir at `home` and `claude`.
fn serve_on_transcripts(home: &Path, claude: &Path, config: &str) -> support::Serve {
    support::Serve::start_with(support::serve::ServeOptions {
        config_toml: Some(config.into()),
        env: vec![
            ("HOME".into(), home.display().to_string()),
            ("CLAUDE_CONFIG_DIR".into(), claude.display().to_string()),
        ],
        ..Default::default()
    })
}

/// Issue 15: a `[pricing]` override prices a request only the transcripts saw in every view
/// (`report`, `serve`'s `/api/dashboard` with its budgets, `statusline`), and the dashboard's
/// last request is that request, with its model, tokens and the overridden price.
#[test]
fn pricing_override_and_the_last_request_of_a_transcript_only_request() {
    let home = tempfile::tempdir().expect("tempdir");
    let claude = home.path().join(".claude");
    let folder = claude.join("projects/-tmp-priced");
    std::fs::create_dir_all(&folder).unwrap();
    let now = chrono::Utc::now() - chrono::Duration::seconds(2);
    let time = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    std::fs::write(
        folder.join("s-priced.jsonl"),
        assistant_line("s-priced", "req_priced", "claude-sonnet-4-5", &time),
    )
    .unwrap();
    // $100 / $1000 per million instead of Sonnet 4.5's $3 / $15: 1000 in + 2000 out = $2.10.
    let config = format!("[budgets]\ndaily = 10\n\n{SONNET_AT_2_10}");
    let want = 2.1;
    let serve = serve_on_transcripts(home.path(), &claude, &config);
    let url = format!("http://{}/api/dashboard", serve.metrics);
    let close = |v: &Value| v.as_f64().is_some_and(|c| (c - want).abs() < 1e-9);
    // The dashboard is not built from one snapshot: a build racing the import's commit can see
    // the request in `last_request` but not yet in `today`, so wait for both.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut d = Value::Null;
    while Instant::now() < deadline {
        d = reqwest::blocking::get(&url).expect("GET").json().expect("JSON");
        if d["last_request"]["model"] == "claude-sonnet-4-5" && close(&d["today"]["cost_usd"]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = &d["last_request"];
    assert_eq!(last["session_id"], "s-priced", "{d:#}");
    assert_eq!(
        (last["input_tokens"].as_i64(), last["output_tokens"].as_i64()),
        (Some(1000), Some(2000))
    );
    assert!(close(&last["cost_usd"]), "the last request at the [pricing] price: {last:#}");
    let parsed = chrono::DateTime::parse_from_rfc3339(last["time"].as_str().expect("time"));
    assert_eq!(parsed.expect("rfc3339").timestamp_millis(), now.timestamp_millis());
    assert!(close(&d["today"]["cost_usd"]), "dashboard today: {:#}", d["today"]);
    assert!(close(&d["month"]["cost_usd"]), "dashboard month: {:#}", d["month"]);
    assert!(close(&d["budgets"]["budgets"][0]["spent_usd"]), "budgets: {:#}", d["budgets"]);

    let report = serve.report(&["all", "--json"]);
    assert!(close(&report["cost_usd"]), "report: {report:#}");
    assert_eq!(report["transcripts"]["cost_usd_price_table"].as_f64(), Some(want), "{report:#}");
    let out = support::serve::command(&serve.data_dir, &serve.config)
        .args(["statusline", "--format", "{today}"])
        .stdin(Stdio::null())
        .output()
        .expect("statusline");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("$2.10"),
        "statusline: {line} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 16's burn rate counts what only the transcripts saw: six requests of a session with
/// telemetry off, one in each of the last six minutes, at `[pricing]` prices of $2.10 each,
/// are $12.60 over six active minutes: `$126.00/h` in the statusline.
#[test]
fn the_statusline_burn_rate_counts_requests_only_the_transcripts_saw() {
    let home = tempfile::tempdir().expect("tempdir");
    let claude = home.path().join(".claude");
    let folder = claude.join("projects/-tmp-priced");
    std::fs::create_dir_all(&folder).unwrap();
    let now = chrono::Utc::now();
    let lines: String = (1..=6)
        .map(|m| {
            let t = now - chrono::Duration::seconds(60 * m - 20);
            let time = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assistant_line("s-burn", &format!("req_burn_{m}"), "claude-sonnet-4-5", &time)
        })
        .collect();
    std::fs::write(folder.join("s-burn.jsonl"), lines).unwrap();
    let serve = serve_on_transcripts(home.path(), &claude, SONNET_AT_2_10);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut report = Value::Null;
    while Instant::now() < deadline {
        report = serve.report(&["all", "--json"]);
        if report["cost_usd"].as_f64().is_some_and(|c| (c - 12.6).abs() < 1e-9) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(report["cost_usd"].as_f64().is_some_and(|c| (c - 12.6).abs() < 1e-9), "{report:#}");
    let out = support::serve::command(&serve.data_dir, &serve.config)
        .args(["statusline", "--format", "{burn}"])
        .stdin(Stdio::null())
        .output()
        .expect("statusline");
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(line, "$126.00/h\n", "statusline: {}", String::from_utf8_lossy(&out.stderr));
}

/// Issue 15's benchmark generator, scaled down to twenty days: `tokentray import` and
/// `report all --json` give exactly the totals the generator says it wrote (tokens, requests,
/// sessions, API errors, the money, one row per project), so the year's figures in
/// BENCHMARKS.md are about an import that counts right. 240 sessions: more than the store
/// looks up one by one, so `report all` reads them in its one pass over the table.
#[test]
fn the_benchmark_generator_s_totals_are_what_import_and_report_give() {
    use tokentray_core::testkit::transcripts_year::TranscriptPlan;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let end = chrono::Utc::now().timestamp_nanos_opt().expect("ns") as u64;
    let plan = TranscriptPlan::heavy_user(20, end);
    let t = plan.write(&dir.path().join("home/.claude")).expect("write");
    assert_eq!((t.files, t.requests), (240, 7_200));
    let out = tokentray(dir.path()).arg("import").output().expect("import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(dir.path(), "project");
    for (kind, want) in [
        ("input", t.input),
        ("output", t.output),
        ("cacheRead", t.cache_read),
        ("cacheCreation", t.cache_creation),
    ] {
        assert_eq!(r["tokens"][kind].as_f64(), Some(want as f64), "{kind}: {r:#}");
    }
    assert_eq!(r["api_requests"]["count"].as_u64(), Some(t.requests));
    assert_eq!(r["sessions"].as_f64(), Some(t.sessions as f64));
    assert_eq!(r["transcripts"]["api_errors"].as_u64(), Some(t.api_errors));
    let cost = r["cost_usd"].as_f64().expect("cost");
    assert!((cost - t.cost_usd).abs() < 1e-9 * t.cost_usd, "{cost} vs {}", t.cost_usd);
    // Every tenth session wrote no cost-state: those are priced from the table.
    assert!(r["transcripts"]["cost_usd_price_table"].as_f64().expect("n") > 0.0);
    let groups = r["groups"].as_array().expect("groups");
    assert_eq!(groups.len() as u64, t.projects, "{groups:#?}");
}
