//! Errors as a user meets them (issue 16): one line in one style (`tokentray: …; <the fix>`),
//! the documented exit codes, read-only commands on a read-only history (made read-only for real:
//! a read-only bind mount in a private mount namespace, since CI runs as root), and a closed
//! stdout ending every printing command quietly by SIGPIPE.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tokentray_core::ingest;
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};

fn tokentray(data: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOKENTRAY_") {
            cmd.env_remove(&k);
        }
    }
    // Never the user's Claude Code settings, never the fixed ports.
    cmd.env("CLAUDE_CONFIG_DIR", config.with_extension("claude"))
        .env("TOKENTRAY_OTLP_GRPC", "127.0.0.1:0")
        .env("TOKENTRAY_OTLP_HTTP", "127.0.0.1:0")
        .env("TOKENTRAY_METRICS", "127.0.0.1:0")
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config);
    cmd
}

fn run(data: &Path, config: &Path, args: &[&str]) -> Output {
    tokentray(data, config).args(args).stdin(Stdio::null()).output().expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one style: a single line starting `tokentray: `.
fn assert_one_line(out: &Output, code: i32, says: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(err.starts_with("tokentray: "), "style: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(says), "expected {says:?} in: {err}");
    assert!(!err.contains("os error"), "no bare OS error: {err}");
}

fn spend(data: &Path, usd: f64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = Store::open(data).expect("store");
        let t = chrono::Local::now().timestamp_nanos_opt().expect("ns") as u64;
        let usage = Usage {
            cost_usd: usd,
            input: 1000.0,
            output: 100.0,
            cache_read: 0.0,
            cache_creation: 0.0,
        };
        let req = testkit::metrics_request(testkit::usage_metrics(
            "s1",
            "u",
            "claude-opus-5-5",
            usage,
            t - 1_000_000_000,
            t,
            false,
        ));
        store.ingest(ingest::metrics::normalize(req, t as i64)).await.expect("ingest");
        store.close();
    });
}

#[test]
fn a_data_dir_that_is_a_file_is_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("data");
    std::fs::write(&file, "not a directory").expect("write");
    let config = dir.path().join("config.toml");
    for args in [&["report"][..], &["budget", "status"], &["serve"]] {
        let out = run(&file, &config, args);
        assert_one_line(&out, 1, "is a file, not a directory");
        assert!(text(&out.stderr).contains("--data-dir"), "the fix: {}", text(&out.stderr));
    }
}

#[test]
fn a_mistyped_data_dir_is_not_created_by_read_only_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("dtaa");
    let config = dir.path().join("config.toml");
    for args in [&["report"][..], &["budget", "status"], &["forward", "on"], &["budget", "pause"]] {
        let out = run(&missing, &config, args);
        assert_one_line(&out, 1, "does not exist");
        assert!(!missing.exists(), "{args:?} created the directory");
    }
    // The statusline still prints its line (Claude Code shows it), and says why on stderr.
    let out = run(&missing, &config, &["statusline"]);
    assert!(out.status.success());
    assert!(!text(&out.stdout).trim().is_empty());
    assert!(text(&out.stderr).contains("does not exist"), "{}", text(&out.stderr));
    assert!(!missing.exists());
}

#[test]
fn bad_values_get_our_style_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    let out = run(&data, &config, &["budget", "set", "daily", "20", "--thresholds", "50,abc"]);
    assert_one_line(&out, 2, "'abc' is not a percentage");
    assert!(!text(&out.stderr).contains("invalid digit"), "{}", text(&out.stderr));

    let out = run(&data, &config, &["budget", "set", "daily", "-5"]);
    assert_one_line(&out, 2, "a budget must be a positive amount");
    assert!(!text(&out.stderr).contains("-- -5"), "no clap tip: {}", text(&out.stderr));

    let out = run(&data, &config, &["report", "fortnight"]);
    assert_one_line(&out, 2, "see `tokentray report --help`");

    let out = run(&data, &config, &["--no-such-flag"]);
    assert_one_line(&out, 2, "--no-such-flag");
    assert!(!config.exists(), "nothing written by a refused command");
}

#[test]
fn thresholds_that_replace_the_defaults_are_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    let out = run(&data, &config, &["budget", "set", "daily", "20", "--thresholds", "150"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("--thresholds 50,80,100,150"), "how to keep the defaults: {err}");
    assert!(text(&out.stdout).contains("alerts at 150%"), "{}", text(&out.stdout));
}

#[test]
fn forwarding_not_set_up_says_how_and_refuses_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    std::fs::create_dir_all(&data).expect("mkdir");
    // No session bus: a keychain lookup would fail loudly; an unconfigured status needs none.
    let out = tokentray(&data, &config)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["forward", "status"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("not set up") && stdout.contains("forward setup --endpoint"),
        "{stdout}"
    );
    assert!(!stdout.to_lowercase().contains("d-bus") && out.stderr.is_empty(), "{stdout}");

    let out = run(&data, &config, &["forward", "on"]);
    assert_one_line(&out, 2, "forward setup --endpoint");
    let out = run(&data, &config, &["forward", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["enabled"], serde_json::json!(false), "refused `on` changed nothing: {v}");
}

#[test]
fn the_tray_without_a_display_suggests_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    let out = tokentray(&data, &config)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.starts_with("tokentray: ") && err.contains("tokentray serve"), "{err}");
}

/// Runs `args` with stdout a pipe whose reading end is already closed.
fn with_closed_stdout(data: &Path, config: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    tokentray(data, config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("runs")
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    spend(&data, 1.25);
    let commands: &[&[&str]] = &[
        &["report"],
        &["report", "all", "--json"],
        &["report", "--by", "model"],
        &["budget", "status"],
        &["budget", "status", "--json"],
        &["doctor"],
        &["statusline"],
        &["forward", "status"],
        &["setup", "--dry-run"],
        &["--help"],
        &["--version"],
    ];
    for args in commands {
        let out = with_closed_stdout(&data, &config, args);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"), "{args:?}: {}", text(&out.stderr));
    }
}

/// Runs the command with `data` mounted read-only (a bind mount in a private mount namespace).
fn on_read_only_mount(data: &Path, config: &Path, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_tokentray");
    let script = r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"]).arg(data).arg(bin);
    let inner = tokentray(data, config);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(inner.get_args()).args(args).stdin(Stdio::null()).output().expect("runs unshare")
}

#[test]
fn read_only_commands_work_on_a_read_only_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("config.toml"));
    spend(&data, 2.5);
    // The mount really is read-only: a write fails inside it.
    let probe = on_read_only_mount(&data, &config, &["budget", "pause"]);
    assert_ne!(probe.status.code(), Some(0), "the mount must refuse writes");

    let out = on_read_only_mount(&data, &config, &["report", "--json"]);
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["cost_usd"], serde_json::json!(2.5), "{v}");

    let out = on_read_only_mount(&data, &config, &["budget", "status"]);
    assert!(out.status.success(), "budget status: {}", text(&out.stderr));

    let out = on_read_only_mount(&data, &config, &["statusline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("$2.50 today"), "{}", text(&out.stdout));

    let out = on_read_only_mount(&data, &config, &["doctor"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(!said.contains("aside"), "never advise moving history aside: {said}");
    assert_ne!(out.status.code(), Some(14), "not damaged: {said}");
    assert!(said.contains("can only be read here"), "the read-only directory is named: {said}");
}
