//! The `tokentray` binary as a user runs it: port conflicts, config precedence, empty history.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tokentray(dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAY_")) {
        cmd.env_remove(k);
    }
    cmd.arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("config.toml"));
    cmd
}

#[test]
fn port_in_use_exits_non_zero_naming_the_port_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = tokentray(&dir)
        .args([
            "serve",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            &format!("127.0.0.1:{port}"),
            "--metrics",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("port {port}")), "{err}");
    assert!(err.contains("--otlp-http"), "{err}");
    assert!(out.stdout.is_empty(), "no listening line when not listening");
}

#[test]
fn bad_address_and_bad_config_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tokentray(&dir).args(["serve", "--metrics", "localhost"]).output().expect("runs");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--metrics"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(dir.path().join("config.toml"), "[listen]\nmetricz = 1\n").expect("write");
    let out = tokentray(&dir).args(["report"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_file_and_env_choose_the_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The file asks for fixed ports; the environment overrides one of them with port 0.
    let grpc = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let grpc_port = grpc.local_addr().expect("addr").port();
    drop(grpc);
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[listen]\notlp_grpc = \"127.0.0.1:{grpc_port}\"\notlp_http = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:1\"\n"),
    )
    .expect("write");
    let mut child = tokentray(&dir)
        .arg("serve")
        .env("TOKENTRAY_METRICS", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let started = Instant::now();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        line.starts_with(&format!(
            "listening otlp-grpc=127.0.0.1:{grpc_port} otlp-http=127.0.0.1:"
        )),
        "{line}"
    );
    assert!(!line.contains("metrics=127.0.0.1:1\n"), "env overrides the file: {line}");
}

#[test]
fn report_on_an_empty_history_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    let out = tokentray(&dir).args(["report", "today"]).output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("`tokentray setup`") && text.contains("`tokentray doctor`"), "{text}");
    let out = tokentray(&dir).args(["report", "all", "--json"]).output().expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["cost_usd"], serde_json::json!(0.0));
    assert_eq!(v["period"], "all");
    let out = tokentray(&dir).args(["report", "fortnight"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

/// A supervisor that waits for the listening line may stop `serve` right after it: the SIGTERM
/// must end it cleanly (exit 0), not meet the signal's default action because the handler was
/// only installed later (it died of SIGTERM in most of these ten tries before the fix).
#[test]
fn sigterm_right_after_the_listening_line_stops_cleanly() {
    for attempt in 0..10 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = tokentray(&dir)
            .env("CLAUDE_CONFIG_DIR", dir.path().join("no-claude-config"))
            .args(["serve", "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--metrics", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        assert!(line.starts_with("listening "), "attempt {attempt}: first line {line:?}");
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "attempt {attempt}: serve still running 20 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .expect("read stderr");
        assert!(status.success(), "attempt {attempt}: serve ended with {status:?}\n{stderr}");
    }
}
