//! `tokentray budget …` as a user and their scripts run it, and `serve` delivering an alert to a
//! webhook and a command.
//!
//! Data is spent "now" in the local time zone (the binary uses the real clock), so each test
//! first steps past local midnight if it is about to strike.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Local, Timelike};
use prost::Message;
use serde_json::Value;
use tokentray_core::ingest;
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};

const OPUS: &str = "claude-opus-5-5";
const SONNET: &str = "claude-sonnet-5";

/// Waits out the last two minutes of a local day, so that "today" cannot change mid-test.
fn not_at_midnight() {
    let now = Local::now();
    let left = 86_400 - i64::from(now.num_seconds_from_midnight());
    if left < 120 {
        std::thread::sleep(Duration::from_secs(left as u64 + 2));
    }
}

fn tokentray(data: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOKENTRAY_") {
            cmd.env_remove(&k);
        }
    }
    cmd.arg("--data-dir").arg(data).arg("--config").arg(config);
    cmd
}

fn run(data: &Path, config: &Path, args: &[&str]) -> Output {
    tokentray(data, config).args(args).output().expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn usage(usd: f64) -> Usage {
    Usage { cost_usd: usd, input: 1000.0, output: 100.0, cache_read: 0.0, cache_creation: 0.0 }
}

fn now_ns() -> u64 {
    Local::now().timestamp_nanos_opt().expect("ns") as u64
}

/// Spends through the core API into `data` (what `serve` would have stored).
fn spend_directly(data: &Path, spends: &[(&str, f64)]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = Store::open(data).expect("store");
        for (i, (model, usd)) in spends.iter().enumerate() {
            let t = now_ns();
            let req = testkit::metrics_request(testkit::usage_metrics(
                &format!("s{i}"),
                "u",
                model,
                usage(*usd),
                t - 1_000_000_000,
                t,
                false,
            ));
            store.ingest(ingest::metrics::normalize(req, t as i64)).await.expect("ingest");
        }
        store.close();
    });
}

fn status_json(data: &Path, config: &Path) -> (i32, Value) {
    let out = run(data, config, &["budget", "status", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code().expect("exit code"), json)
}

#[test]
fn status_exit_codes_and_json() {
    not_at_midnight();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    // An existing history (the engine creates it; commands that only read or note do not).
    std::fs::create_dir_all(&data).expect("mkdir");

    // No budgets: exit 0, an empty list.
    let (code, json) = status_json(&data, &config);
    assert_eq!(code, 0);
    assert_eq!(json, serde_json::json!({ "budgets": [], "paused_until": null }));

    spend_directly(&data, &[(OPUS, 9.5), (SONNET, 2.5)]); // $12 today: $9.50 Opus

    for (daily, want_code, want_crossed) in [
        (100.0, 0, Value::Null),
        (20.0, 1, serde_json::json!(50)),
        (12.0, 2, serde_json::json!(100)),
        (10.0, 2, serde_json::json!(100)),
    ] {
        std::fs::write(&config, format!("[budgets]\ndaily = {daily}\n")).expect("write config");
        let (code, json) = status_json(&data, &config);
        assert_eq!(code, want_code, "daily {daily}: {json}");
        let b = &json["budgets"][0];
        assert_eq!(b["highest_crossed"], want_crossed, "daily {daily}: {json}");
        assert_eq!(b["spent_usd"].as_f64(), Some(12.0));
        assert_eq!(b["limit_usd"].as_f64(), Some(daily));
        assert_eq!(
            b["percent"].as_f64().map(|p| (p * 100.0).round() / 100.0),
            Some(((1200.0 / daily) * 100.0_f64).round() / 100.0)
        );
    }

    // Every documented field, with a per-model monthly budget next to the daily one.
    std::fs::write(
        &config,
        "# mine\n[budgets]\nweek_start = \"sunday\"\ndaily = { limit_usd = 40, thresholds = [25, 90] }\n[budgets.models.claude-opus-5-5]\nmonthly = 10\n",
    )
    .expect("write config");
    let (code, json) = status_json(&data, &config);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["paused_until"], Value::Null);
    let budgets = json["budgets"].as_array().expect("list");
    assert_eq!(budgets.len(), 2);
    let keys: Vec<&str> =
        budgets[0].as_object().expect("object").keys().map(String::as_str).collect();
    let mut want = vec![
        "period",
        "model",
        "limit_usd",
        "spent_usd",
        "percent",
        "thresholds",
        "highest_crossed",
        "forecast_usd",
        "reach_limit_at",
        "forecast_ready",
        "period_start",
        "period_end",
    ];
    want.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, want);
    assert_eq!(budgets[0]["period"], "daily");
    assert_eq!(budgets[0]["model"], Value::Null);
    assert_eq!(budgets[0]["thresholds"], serde_json::json!([25, 90]));
    assert_eq!(budgets[0]["highest_crossed"], serde_json::json!(25));
    assert!(budgets[0]["forecast_usd"].as_f64().is_some_and(|f| f >= 12.0), "{json}");
    let start = budgets[0]["period_start"].as_str().expect("start");
    assert_eq!(&start[..10], Local::now().format("%Y-%m-%d").to_string(), "{json}");
    assert_eq!(&start[10..19], "T00:00:00");
    assert_eq!(budgets[1]["period"], "monthly");
    assert_eq!(budgets[1]["model"], OPUS);
    assert_eq!(budgets[1]["spent_usd"].as_f64(), Some(9.5));
    assert_eq!(budgets[1]["highest_crossed"], serde_json::json!(80));
    assert_eq!(&budgets[1]["period_start"].as_str().expect("start")[8..19], "01T00:00:00");

    // The table for people.
    let out = run(&data, &config, &["budget", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    assert!(
        table.contains("daily") && table.contains("$12.00 of $40.00") && table.contains("past 25%"),
        "{table}"
    );
    assert!(
        table.contains("monthly claude-opus-5-5") && table.contains("$9.50 of $10.00"),
        "{table}"
    );
}

#[test]
fn set_and_unset_round_trip_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    // An existing history (the engine creates it; commands that only read or note do not).
    std::fs::create_dir_all(&data).expect("mkdir");
    let original = "# tokentray settings\n[listen]\nmetrics = \"127.0.0.1:9999\"  # the team's port\n\n[privacy]\nstore_prompts = false\n";
    std::fs::write(&config, original).expect("write");

    let ok = |args: &[&str]| {
        let out = run(&data, &config, args);
        assert!(out.status.success(), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    };
    let said = ok(&["budget", "set", "daily", "20"]);
    assert!(said.contains("daily budget to $20.00 (alerts at 50%, 80%, 100%)"), "{said}");
    ok(&["budget", "set", "weekly", "$75.5", "--thresholds", "80,100"]);
    ok(&["budget", "set", "daily", "10", "--model", OPUS]);
    ok(&["budget", "set", "daily", "25"]);
    let file = std::fs::read_to_string(&config).expect("read");
    assert_eq!(
        file,
        format!("{original}\n[budgets]\ndaily = 25\nweekly = {{ limit_usd = 75.5, thresholds = [80, 100] }}\n\n[budgets.models.{OPUS}]\ndaily = 10\n")
    );
    let (_, json) = status_json(&data, &config);
    let got: Vec<(String, Value, f64)> = json["budgets"]
        .as_array()
        .expect("list")
        .iter()
        .map(|b| {
            (
                b["period"].as_str().unwrap_or_default().to_string(),
                b["model"].clone(),
                b["limit_usd"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("daily".into(), Value::Null, 25.0),
            ("weekly".into(), Value::Null, 75.5),
            ("daily".into(), Value::from(OPUS), 10.0)
        ]
    );

    ok(&["budget", "unset", "daily", "--model", OPUS]);
    ok(&["budget", "unset", "weekly"]);
    let said = ok(&["budget", "unset", "monthly"]);
    assert!(said.contains("No monthly budget was set"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        format!("{original}\n[budgets]\ndaily = 25\n")
    );

    // Bad input is refused and leaves the file alone.
    for bad in [
        &["budget", "set", "daily", "-5"][..],
        &["budget", "set", "daily", "5", "--thresholds", "0"],
        &["budget", "set", "hourly", "5"],
    ] {
        let out = run(&data, &config, bad);
        assert!(!out.status.success(), "{bad:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        format!("{original}\n[budgets]\ndaily = 25\n")
    );
}

#[test]
fn pause_and_resume() {
    not_at_midnight();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    // An existing history (the engine creates it; commands that only read or note do not).
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(&config, "[budgets]\ndaily = 20\n").expect("write");
    let out = run(&data, &config, &["budget", "pause"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, json) = status_json(&data, &config);
    let tomorrow = (Local::now().date_naive() + chrono::Duration::days(1))
        .format("%Y-%m-%dT00:00:00")
        .to_string();
    assert!(json["paused_until"].as_str().is_some_and(|p| p.starts_with(&tomorrow)), "{json}");
    assert!(run(&data, &config, &["budget", "resume"]).status.success());
    let (_, json) = status_json(&data, &config);
    assert_eq!(json["paused_until"], Value::Null);
    let out = run(&data, &config, &["budget", "pause", "--until", "soon"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("HH:MM"), "{}", text(&out.stderr));
}

/// A local webhook receiver recording each request's target and JSON body.
struct Webhook {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    _runtime: tokio::runtime::Runtime,
}

fn webhook() -> Webhook {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let record = got.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
        let record = record.clone();
        async move {
            let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
            record.lock().expect("lock").push((uri.to_string(), json));
            "ok"
        }
    });
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Webhook { url: format!("http://{addr}/hook/T0KEN-SECRET?key=s3cr3t"), got, _runtime: runtime }
}

struct Serving {
    child: Child,
    http: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, config: &Path) -> Serving {
    let mut child = tokentray(data, config)
        .args([
            "serve",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .env("TOKENTRAY_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().expect("stderr");
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("otlp-http="))
        .unwrap_or_else(|| panic!("no listening line: {line:?} {}", stderr.lock().expect("lock")));
    Serving { http: http.to_string(), child, stderr }
}

fn post_spend(http: &str, session: &str, usd: f64) {
    let t = now_ns();
    let req = testkit::metrics_request(testkit::usage_metrics(
        session,
        "u",
        OPUS,
        usage(usd),
        t - 1_000_000_000,
        t,
        false,
    ));
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{http}/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .expect("post");
    assert!(resp.status().is_success(), "{}", resp.status());
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn serve_sends_exactly_one_alert_to_the_webhook_and_the_command_when_a_request_crosses_80_percent()
{
    not_at_midnight();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    // An existing history (the engine creates it; commands that only read or note do not).
    std::fs::create_dir_all(&data).expect("mkdir");
    let hook = webhook();
    let out_file: PathBuf = dir.path().join("command-args.txt");
    let script = dir.path().join("alert.sh");
    std::fs::write(&script, "#!/bin/sh\nout=\"$1\"; shift\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> \"$out\"\necho --- >> \"$out\"\n").expect("script");
    std::fs::write(
        &config,
        format!(
            "[budgets]\ndaily = {{ limit_usd = 20, thresholds = [80, 100] }}\n\n[alerts]\nwebhook = \"{}\"\ncommand = [\"sh\", \"{}\", \"{}\", \"{{summary}}\", \"{{body}}\", \"{{threshold}}\", \"{{model}}\"]\n",
            hook.url,
            script.display(),
            out_file.display()
        ),
    )
    .expect("config");
    let s = serve(&data, &config);

    post_spend(&s.http, "a", 10.0); // 50%: under the first threshold (80)
    std::thread::sleep(Duration::from_millis(1500));
    assert!(hook.got.lock().expect("lock").is_empty());
    assert!(!out_file.exists());

    post_spend(&s.http, "b", 7.0); // 85%
    assert!(
        wait_until(Duration::from_secs(30), || !hook.got.lock().expect("lock").is_empty()),
        "no webhook call; serve said:\n{}",
        s.stderr.lock().expect("lock")
    );
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&out_file)
            .is_ok_and(|t| t.ends_with("---\n"))),
        "the command did not run"
    );
    post_spend(&s.http, "c", 0.5); // 87.5%: nothing new
    std::thread::sleep(Duration::from_millis(1500));

    let got = hook.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (target, alert) = &got[0];
    assert_eq!(target, "/hook/T0KEN-SECRET?key=s3cr3t");
    assert_eq!(alert["threshold"], 80);
    assert_eq!(alert["period"], "daily");
    assert_eq!(alert["spent_usd"].as_f64(), Some(17.0));
    assert_eq!(alert["limit_usd"].as_f64(), Some(20.0));
    assert_eq!(alert["summary"], "Daily budget: 80% reached");
    assert!(
        alert["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("80% of your $20 daily budget ($17.00).")),
        "{alert}"
    );
    for field in [
        "percent",
        "forecast_usd",
        "reach_limit_at",
        "period_start",
        "period_end",
        "fired_at",
        "model",
    ] {
        assert!(alert.get(field).is_some(), "{field} missing: {alert}");
    }

    let args = std::fs::read_to_string(&out_file).expect("command output");
    let lines: Vec<&str> = args.lines().collect();
    assert_eq!(lines.iter().filter(|l| **l == "---").count(), 1, "{args}");
    assert_eq!(lines[0], "Daily budget: 80% reached");
    assert!(lines[1].starts_with("80% of your $20 daily budget ($17.00)."), "{args}");
    assert_eq!(lines[2], "80");
    assert_eq!(lines[3], "", "{{model}} of an all-models budget is empty");

    let log = s.stderr.lock().expect("lock").clone();
    assert!(log.contains("budget alert: 80% of your $20 daily budget"), "{log}");
    assert!(
        !log.contains("T0KEN") && !log.contains("s3cr3t"),
        "the webhook's secret is in the log:\n{log}"
    );
}

/// `budget set … --agent codex` keeps a budget for one agent's spend in `[budgets.agents.codex]`;
/// an agent tokentray does not know, or `--model` with `--agent`, is refused.
#[test]
fn a_budget_for_one_agent_round_trips_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    std::fs::create_dir_all(&data).expect("mkdir");
    let ok = |args: &[&str]| {
        let out = run(&data, &config, args);
        assert!(out.status.success(), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    };
    spend_directly(&data, &[(OPUS, 7.0)]);
    let said = ok(&["budget", "set", "daily", "20", "--agent", "codex"]);
    assert!(said.contains("daily budget for codex to $20.00"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        "[budgets.agents.codex]\ndaily = 20\n"
    );
    let (code, json) = status_json(&data, &config);
    assert_eq!(code, 0, "{json}");
    let b = &json["budgets"][0];
    assert_eq!((b["agent"].as_str(), b["model"].is_null()), (Some("codex"), true), "{json}");
    assert_eq!(b["spent_usd"], 0.0, "Claude Code's spend is not Codex's: {json}");
    let table = ok(&["budget", "status"]);
    assert!(table.contains("daily codex"), "{table}");

    for bad in [
        &["budget", "set", "daily", "5", "--agent", "copilot"][..],
        &["budget", "set", "daily", "5", "--agent", "codex", "--model", OPUS],
    ] {
        let out = run(&data, &config, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr).lines().count(), 1, "one line: {}", text(&out.stderr));
    }
    ok(&["budget", "unset", "daily", "--agent", "codex"]);
    assert_eq!(std::fs::read_to_string(&config).expect("read"), "");
}
