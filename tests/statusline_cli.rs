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

const WITH_LIMITS: &str = r#"{"session_id": "abc", "model": {"id": "claude-opus-4-5", "display_name": "Opus"},
  "cost": {"total_cost_usd": 0.42},
  "rate_limits": {"five_hour": {"used_percentage": 37.4, "resets_at": 1796400000}, "seven_day": {"used_percentage": 12}}}"#;
const WITHOUT_LIMITS: &str = r#"{"session_id": "abc", "model": {"id": "claude-opus-4-5", "display_name": "Opus"}, "cost": {"total_cost_usd": 0.42}}"#;

#[test]
fn prints_todays_spend_and_plan_usage_and_hands_the_limits_to_the_engine() {
    let serve = Serve::start();
    spend(&serve, 3.42);
    assert!(dashboard(&serve)["plan_limits"].is_null());

    let (ok, out, err) = statusline(&serve, &[], WITH_LIMITS);
    assert!(ok, "{err}");
    assert_eq!(out, "$3.42 today · 5h 37% · 7d 12%\n", "{err}");
    let d = dashboard(&serve);
    assert_eq!(d["plan_limits"]["five_hour"]["used_percentage"], 37.4, "{d:#}");
    assert_eq!(d["plan_limits"]["seven_day"]["used_percentage"], 12.0, "{d:#}");
    let reset = d["plan_limits"]["five_hour"]["resets_at"].as_str().expect("reset time");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(reset).expect("RFC 3339").timestamp(),
        1_796_400_000
    );

    // Without rate limits (API-key users): the spend only; the last known limits stay.
    let (ok, out, err) = statusline(&serve, &[], WITHOUT_LIMITS);
    assert!(ok, "{err}");
    assert_eq!(out, "$3.42 today\n");
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
    child.stdin.take().expect("stdin").write_all(WITH_LIMITS.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "repo:main │ $1.50 today · 5h 37% · 7d 12%\n");
}
