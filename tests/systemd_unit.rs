//! `tokentray serve --install-service` on a headless box without a user systemd (this sandbox,
//! CI, a container): the unit is written where systemd's user manager looks for it, it names the
//! flags it was given and no secret, its ExecStart really starts the engine, `systemd-analyze
//! verify` accepts it, and the output says what to run to enable it.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = "tokentray.service";
/// Listen flags for the test: port 0 everywhere, so the unit's command can really be started.
const LISTEN: [&str; 6] =
    ["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--metrics", "127.0.0.1:0"];
/// Stands in for a webhook token in the config file and an API key in the environment: neither
/// may end up in the unit file.
const WEBHOOK_SECRET: &str = "T0KEN-webhook-s3cret";
const ENV_SECRET: &str = "sk-ant-api-s3cret";

struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::Builder::new().prefix("tokentray-unit-").tempdir().expect("tempdir");
        for d in ["home", "run"] {
            std::fs::create_dir_all(tmp.path().join(d)).expect("create dir");
        }
        Sandbox { tmp }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    /// The binary with a temp HOME, an empty XDG_RUNTIME_DIR (so: no user systemd), no session
    /// bus and none of the developer's `TOKENTRAY_*` variables.
    fn command(&self, xdg_config_home: Option<&Path>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentray"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TOKENTRAY_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("ANTHROPIC_API_KEY", ENV_SECRET);
        match xdg_config_home {
            Some(d) => cmd.env("XDG_CONFIG_HOME", d),
            None => cmd.env_remove("XDG_CONFIG_HOME"),
        };
        cmd
    }
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run tokentray");
    assert!(
        out.status.success(),
        "tokentray serve --install-service failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Splits an ExecStart value into words the way systemd does for what the unit contains:
/// whitespace-separated, double quotes with `\"` and `\\`, and `%%` / `$$` for `%` / `$`.
fn exec_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut w = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => w.push(chars.next().expect("escape at end")),
                    c => w.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        words.push(w.replace("%%", "%").replace("$$", "$"));
    }
    words
}

fn key<'a>(unit: &'a str, name: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('='))).collect()
}

#[test]
fn install_service_writes_the_unit_and_says_what_to_run() {
    let b = Sandbox::new();
    let xdg = b.path("xdg config");
    // A space in the path: the unit must quote it.
    let data_dir = b.path("data dir");
    let config = b.path("config.toml");
    std::fs::write(
        &config,
        format!("[alerts]\nwebhook = \"https://hooks.example.com/services/{WEBHOOK_SECRET}\"\n"),
    )
    .expect("write config");

    let mut cmd = b.command(Some(&xdg));
    cmd.arg("--data-dir").arg(&data_dir).arg("--config").arg(&config);
    cmd.args(["serve", "--install-service"]).args(LISTEN);
    let out = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);

    let unit_path = xdg.join("systemd/user").join(UNIT);
    assert!(
        stdout.contains(&format!("wrote {}", unit_path.display())),
        "stdout names the unit: {stdout}"
    );
    assert!(
        stdout.contains(
            "systemctl --user daemon-reload && systemctl --user enable --now tokentray.service"
        ),
        "without a user systemd it says exactly what to run: {stdout}"
    );
    assert!(!data_dir.exists(), "installing does not start serving (no data dir created)");

    let unit = std::fs::read_to_string(&unit_path).expect("unit written under XDG_CONFIG_HOME");
    assert!(
        !unit.contains(WEBHOOK_SECRET) && !unit.contains(ENV_SECRET),
        "no secret in the unit:\n{unit}"
    );
    assert_eq!(key(&unit, "Restart"), ["on-failure"], "{unit}");
    assert_eq!(key(&unit, "WantedBy"), ["default.target"], "{unit}");
    let exec = key(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart: {unit}");
    let words = exec_words(exec[0]);
    let exe =
        std::fs::canonicalize(env!("CARGO_BIN_EXE_tokentray")).expect("canonical binary path");
    let head = [
        exe.to_str().expect("utf-8"),
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "serve",
    ];
    let expected: Vec<String> = head.iter().chain(LISTEN.iter()).map(|s| s.to_string()).collect();
    assert_eq!(
        words, expected,
        "ExecStart runs this binary's `serve` with the flags it was given: {}",
        exec[0]
    );
    assert!(
        exec[0].contains(&format!("\"{}\"", data_dir.display())),
        "the path with a space is quoted: {}",
        exec[0]
    );

    // What systemd would start really serves, on the data dir the unit names.
    start_and_stop(&words, &b);
    assert!(data_dir.is_dir(), "the service's engine used the data dir from the unit");

    verify_with_systemd_analyze(&unit_path, &b);
}

#[test]
fn install_service_without_xdg_config_home_uses_home_and_is_idempotent() {
    let b = Sandbox::new();
    let config = b.path("no-such-config.toml");
    let install = || {
        let mut cmd = b.command(None);
        cmd.arg("--config").arg(&config).args(["serve", "--install-service"]);
        String::from_utf8_lossy(&run(cmd).stdout).into_owned()
    };
    let first = install();
    let unit_path = b.path("home/.config/systemd/user").join(UNIT);
    assert!(first.contains(&format!("wrote {}", unit_path.display())), "{first}");
    let unit = std::fs::read_to_string(&unit_path).expect("unit written under ~/.config");
    let words = exec_words(key(&unit, "ExecStart")[0]);
    // No --data-dir and no listen flags were given: the unit leaves them to the config file.
    assert_eq!(&words[1..], ["--config", config.to_str().expect("utf-8"), "serve"], "{unit}");

    let second = install();
    assert!(
        second.contains(&format!("unchanged {}", unit_path.display())),
        "running it again changes nothing: {second}"
    );
    assert_eq!(std::fs::read_to_string(&unit_path).expect("unit"), unit);
}

/// Runs the unit's command line until it prints its `listening` line, then stops it.
fn start_and_stop(words: &[String], b: &Sandbox) {
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .env("HOME", b.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the ExecStart command");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("the ExecStart command printed nothing within 30 s");
    assert!(
        line.starts_with("listening otlp-grpc=127.0.0.1:"),
        "the ExecStart command serves: {line:?}"
    );
}

/// `systemd-analyze verify` checks the unit's syntax and that ExecStart's program exists.
fn verify_with_systemd_analyze(unit: &Path, b: &Sandbox) {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not found (Debian package `systemd`, installed by tests/setup.sh): skipping `systemd-analyze verify` of the unit");
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(unit)
        .env("HOME", b.path("home"))
        .env("XDG_RUNTIME_DIR", b.path("run"))
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only lines about our unit count: verify also loads default.target & co. from the host,
    // whose own warnings (a container's masked units) are not this test's business.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(UNIT)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify rejects the unit ({}):\n{stderr}",
        out.status
    );
}
