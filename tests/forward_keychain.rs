//! Forwarding headers in a real OS keychain: GNOME Keyring's Secret Service, unlocked inside a
//! private `dbus-run-session` (with a temporary HOME, so no real keyring is touched).
//!
//! `tokentray forward set-headers` stores them; a new process (`forward status`, the running
//! `serve`'s forwarder) reads them back. A wrong token pauses forwarding with a visible error and
//! loses nothing; fixing it through the keychain resumes. The team receiver reads its own token
//! from the keychain too (`serve --require-header Authorization=@keychain`). Finally the secret is
//! looked for where it must never be: the config file, the logs, the processes' command lines.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
#[path = "support_desktop/mod.rs"]
mod support_desktop;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::forward::{
    assert_same_series, forwarding_options, replay, samples, status, wait_delivered, TOKEN,
};
use support::serve::ServeOptions;
use support::{eventually, Checker, Serve};

/// Unlocks a fresh login keyring for this session's Secret Service.
fn start_keyring() {
    let mut child = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets", "--daemonize"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gnome-keyring-daemon (installed by tests/setup-desktop.sh)");
    child.stdin.take().expect("stdin").write_all(b"test-keyring-password").expect("write password");
    let out = child.wait_with_output().expect("gnome-keyring-daemon");
    assert!(out.status.success(), "gnome-keyring-daemon: {}", String::from_utf8_lossy(&out.stderr));
}

/// `tokentray … ARGS` with `stdin`; returns (success, stdout + stderr).
fn cli_with_stdin(
    serve: &Serve,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut child = support::serve::command(&serve.data_dir, &serve.config)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tokentray");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("tokentray");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn headers_live_in_the_keychain_and_a_wrong_token_pauses_until_fixed() {
    if !support_desktop::session::enter(
        "headers_live_in_the_keychain_and_a_wrong_token_pauses_until_fixed",
        &["gnome-keyring-daemon"],
    ) {
        return;
    }
    start_keyring();

    // The team receiver, its token stored with `receiver set-header` and read from the keychain.
    let team_dir = support::tempdir("tokentray-team-");
    let team_cfg = team_dir.path().join("config.toml");
    let out = {
        let mut child = support::serve::command(&team_dir.path().join("data"), &team_cfg)
            .args(["receiver", "set-header", "Authorization"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("receiver set-header");
        child.stdin.take().expect("stdin").write_all(TOKEN.as_bytes()).expect("write");
        child.wait_with_output().expect("receiver set-header")
    };
    assert!(out.status.success(), "receiver set-header: {}", String::from_utf8_lossy(&out.stderr));
    let team = Serve::start_with(ServeOptions {
        args: vec!["--require-header".into(), "Authorization=@keychain".into()],
        ..ServeOptions::default()
    });

    // Local: headers from the keychain (no headers_file), and at first the wrong token.
    let local = Serve::start_with(forwarding_options(
        &format!("http://{}", team.http),
        "http/protobuf",
        None,
    ));
    let (ok, said) = cli_with_stdin(
        &local,
        &["forward", "set-headers"],
        "Authorization=Bearer%20wrong-token,X-Scope-OrgID=team-a\n",
        &[],
    );
    assert!(ok, "set-headers: {said}");
    assert!(
        said.contains("Authorization=****** (18 characters)") && !said.contains("wrong-token"),
        "{said}"
    );

    // A new process reads them back from the keychain, masked.
    let st = status(&local);
    assert_eq!(
        st["headers"],
        serde_json::json!([
            "Authorization=****** (18 characters)",
            "X-Scope-OrgID=****** (6 characters)"
        ]),
        "{st}"
    );

    replay(&local, &["http-protobuf-delta"]);
    let mut paused = Value::Null;
    eventually(Duration::from_secs(30), || {
        paused = status(&local);
        let mut c = Checker::new();
        c.check(paused["state"] == "paused", || format!("not paused: {paused}"));
        c
    })
    .assert_ok(&format!("a wrong token pauses forwarding\n{}", local.stderr()));
    let reason = paused["paused"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("401 Unauthorized from {}", team.http))
            && reason.ends_with("check the token (tokentray forward set-headers)"),
        "{reason}"
    );
    assert!(
        paused["queue"]["requests"].as_u64() > Some(0),
        "nothing lost: the requests wait in the queue: {paused}"
    );
    assert_eq!(
        support::prom::sum(
            &support::prom::parse(&team.scrape()),
            "claude_code_cost_usage_USD_total"
        ),
        0.0
    );
    let human = local.cli(&["forward", "status"]);
    assert!(human.contains("Paused: 401 Unauthorized"), "{human}");

    // Fixed from OTEL_EXPORTER_OTLP_HEADERS, as a user who has it in their shell would.
    let right = format!("Authorization={}", TOKEN.replace(' ', "%20"));
    let (ok, said) = cli_with_stdin(
        &local,
        &["forward", "set-headers", "--from-env"],
        "",
        &[("OTEL_EXPORTER_OTLP_HEADERS", &right)],
    );
    assert!(ok, "set-headers --from-env: {said}");
    wait_delivered(&local);
    assert_same_series(
        &samples(&local.scrape()),
        &samples(&team.scrape()),
        "after fixing the token",
    );

    // The secrets are nowhere they should not be.
    let secrets = ["wrong-token", "team-s3cr3t-7f3a"];
    let config_text = std::fs::read_to_string(&local.config).expect("config");
    let places = [
        ("the local config file", config_text),
        ("the local serve's log", local.stderr()),
        ("the team serve's log", team.stderr()),
        ("the local serve's command line", cmdline(local.pid())),
        ("the team serve's command line", cmdline(team.pid())),
        (
            "forward status",
            local.cli(&["forward", "status"]) + &local.cli(&["forward", "status", "--json"]),
        ),
    ];
    for (what, text) in &places {
        assert!(!text.is_empty() || what.contains("log"), "{what} could not be read");
        for s in secrets {
            assert!(!text.contains(s), "{what} contains the secret {s}:\n{text}");
        }
    }
}
