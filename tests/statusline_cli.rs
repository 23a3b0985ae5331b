//! `tokentray statusline` as Claude Code runs it: the statusline JSON on stdin (with and without
//! `rate_limits`), one line on stdout, and the limits handed to the running engine, which then
//! serves them in its dashboard. Also `setup --statusline` chaining a statusLine the user had.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{tempdir, Serve};
use tokentray_core::testkit;

fn statusline(serve: &Serve, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = support::serve::command(&serve.data_dir, &serve.config)
        .arg("statusline")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tokentray statusline");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spend(serve: &Serve, cost: f64) {
    support::post_usage(serve.http, testkit::Usage { cost_usd: cost, ..testkit::Usage::TYPICAL });
}

fn dashboard(serve: &Serve) -> Value {
    reqwest::blocking::get(format!("http://{}/api/dashboard", serve.metrics))
        .expect("GET /api/dashboard")
        .json()
        .expect("JSON")
}

/// The statusline JSON of a subscriber whose 5-hour window resets three hours from now (a fixed
/// time would turn into "resets now" once the clock passes it) and that reset time.
fn with_limits() -> (String, i64) {
    let resets_at = chrono::Utc::now().timestamp() + 3 * 3600;
    let json = format!(
        r#"{{"session_id": "abc", "model": {{"id": "claude-opus-4-5", "display_name": "Opus"}},
  "cost": {{"total_cost_usd": 0.42}},
  "rate_limits": {{"five_hour": {{"used_percentage": 37.4, "resets_at": {resets_at}}}, "seven_day": {{"used_percentage": 12}}}}}}"#
    );
    (json, resets_at)
}
const WITHOUT_LIMITS: &str = r#"{"session_id": "abc", "model": {"id": "claude-opus-4-5", "display_name": "Opus"}, "cost": {"total_cost_usd": 0.42}}"#;

#[test]
fn prints_todays_spend_and_plan_usage_and_hands_the_limits_to_the_engine() {
    let serve = Serve::start();
    spend(&serve, 3.42);
    assert!(dashboard(&serve)["plan_limits"].is_null());

    let (with_limits, resets_at) = with_limits();
    let (ok, out, err) = statusline(&serve, &[], &with_limits);
    assert!(ok, "{err}");
    assert!(out.starts_with("$3.42 today · $0.42 session · 5h 37% (resets in "), "{out} {err}");
    assert!(out.ends_with(") · 7d 12%\n"), "{out}");
    let d = dashboard(&serve);
    assert_eq!(d["plan_limits"]["five_hour"]["used_percentage"], 37.4, "{d:#}");
    assert_eq!(d["plan_limits"]["seven_day"]["used_percentage"], 12.0, "{d:#}");
    let reset = d["plan_limits"]["five_hour"]["resets_at"].as_str().expect("reset time");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(reset).expect("RFC 3339").timestamp(),
        resets_at
    );

    // Without rate limits (API-key users): the spend only; the last known limits stay.
    let (ok, out, err) = statusline(&serve, &[], WITHOUT_LIMITS);
    assert!(ok, "{err}");
    assert_eq!(out, "$3.42 today · $0.42 session\n");
    assert_eq!(dashboard(&serve)["plan_limits"]["five_hour"]["used_percentage"], 37.4);

    // Garbage on stdin still gives Claude Code a line.
    let (ok, out, _) = statusline(&serve, &[], "not json");
    assert!(ok);
    assert_eq!(out, "$3.42 today\n");
}

#[test]
fn setup_statusline_chains_the_previous_command() {
    let serve = Serve::start();
    spend(&serve, 1.5);
    let dir = tempdir("tokentray-statusline-home-");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).expect("mkdir");
    std::fs::write(
        home.join(".claude/settings.json"),
        r#"{"statusLine": {"type": "command", "command": "printf 'repo:main'"}}"#,
    )
    .expect("write");
    let out = support::serve::command(&serve.data_dir, &serve.config)
        .env("HOME", &home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env("TOKENTRAY_CLAUDE_MANAGED_SETTINGS", dir.path().join("none.json"))
        .args(["setup", "--statusline"])
        .output()
        .expect("run setup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(home.join(".claude/settings.json")).expect("read"),
    )
    .expect("JSON");
    let command =
        settings["statusLine"]["command"].as_str().expect("statusLine command").to_string();
    assert!(command.contains("statusline --after"), "{command}");

    // Run it as Claude Code does: through a shell, with the JSON on stdin.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    child.stdin.take().expect("stdin").write_all(with_limits().0.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("repo:main │ $1.50 today · $0.42 session · 5h 37% (resets in "),
        "{line}"
    );
}

/// Issue 16: the countdown to the 5-hour reset, the session's own cost, the daily budget with
/// the time the pace reaches it, the burn rate, and `--format`.
#[test]
fn countdown_session_cost_budget_and_burn_rate() {
    let serve = Serve::start_with(support::serve::ServeOptions {
        config_toml: Some("[budgets]\ndaily = 20\n".into()),
        ..Default::default()
    });
    // Six requests of $0.50 in six different minutes of the last hour: $3 over 6 active minutes,
    // $30/h; $17 left of $20 is reached in 34 minutes.
    let now = chrono::Local::now();
    let now_ns = now.timestamp_nanos_opt().expect("ns");
    for m in 1..=6i64 {
        let t = (now_ns - m * 60_000_000_000) as u64;
        post_api_request(&serve, t, 0.5);
    }
    spend(&serve, 3.0);
    let resets = now.timestamp() + 2 * 3600 + 17 * 60 + 30;
    let input = format!(
        r#"{{"session_id": "s1", "cost": {{"total_cost_usd": 1.25}}, "rate_limits": {{"five_hour": {{"used_percentage": 37, "resets_at": {resets}}}}}}}"#
    );
    let (ok, out, err) = statusline(&serve, &[], &input);
    assert!(ok, "{err}");
    let reached = (now + chrono::Duration::minutes(34)).format("%H:%M").to_string();
    let reached_late = (now + chrono::Duration::minutes(35)).format("%H:%M").to_string();
    assert!(out.starts_with("$3.00 today · $1.25 session · day $3.00/$20 (15%)"), "{out}");
    // (Only while the pace reaches the limit before local midnight.)
    if (now + chrono::Duration::minutes(36)).date_naive() == now.date_naive() {
        assert!(
            out.contains(&format!(", $20 at {reached}"))
                || out.contains(&format!(", $20 at {reached_late}")),
            "reached at about {reached}: {out}"
        );
    }
    assert!(out.contains("5h 37% (resets in 2 h 17 m)"), "{out}");
    assert!(out.trim_end().ends_with("$30.00/h"), "{out}");

    let (_, out, _) = statusline(&serve, &["--format", "{5h} | {session}"], &input);
    assert_eq!(out, "5h 37% (resets in 2 h 17 m) | $1.25 session\n");
}

/// One `claude_code.api_request` event of `cost` at `time_ns`, over OTLP/HTTP.
fn post_api_request(serve: &Serve, time_ns: u64, cost: f64) {
    use prost::Message;
    let usage = testkit::Usage { cost_usd: cost, ..testkit::Usage::TYPICAL };
    let req = testkit::api_request_log("s1", "u", "claude-opus-4-5", usage, time_ns);
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/logs", serve.http))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .expect("POST /v1/logs");
    assert!(resp.status().is_success(), "POST /v1/logs: {}", resp.status());
}

/// Issue 16: "at this pace the 5-hour limit is reached at 16:40", from the pace since the window
/// began (it resets five hours after its first request).
#[test]
fn the_time_the_pace_uses_the_five_hour_window_up() {
    let serve = Serve::start();
    let now = chrono::Local::now();
    // 90% three hours into the window: 30%/h, the last 10% in 20 minutes, before the reset in 2 h.
    let resets = now.timestamp() + 2 * 3600;
    let input = format!(
        r#"{{"rate_limits": {{"five_hour": {{"used_percentage": 90, "resets_at": {resets}}}}}}}"#
    );
    let (ok, out, err) = statusline(&serve, &["--format", "{5h}"], &input);
    assert!(ok, "{err}");
    let candidates: Vec<String> = [0, 3]
        .iter()
        .map(|s| (now + chrono::Duration::seconds(20 * 60 + s)).format("%H:%M").to_string())
        .collect();
    assert!(
        candidates.iter().any(|at| out.contains(&format!(", 100% at {at})"))),
        "full at about {candidates:?}: {out}"
    );
    // The dashboard says the same, for the window.
    let outlook = &dashboard(&serve)["plan_outlook"]["five_hour"];
    assert!(
        outlook["resets_in"].as_str().is_some_and(
            |t| t.starts_with("resets in 1 h 59 m") || t.starts_with("resets in 2 h 00 m")
        ),
        "{outlook}"
    );
    assert!(candidates.iter().any(|at| outlook["full_at_clock"] == at.as_str()), "{outlook}");

    // At a pace that ends after the reset, no time is given.
    let slow = format!(
        r#"{{"rate_limits": {{"five_hour": {{"used_percentage": 30, "resets_at": {resets}}}}}}}"#
    );
    let (_, out, _) = statusline(&serve, &["--format", "{5h}"], &slow);
    assert!(!out.contains("100% at"), "{out}");
}
