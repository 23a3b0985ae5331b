//! The tray app as a child process: `tokentray tray` on port 0 everywhere, a temporary data dir
//! and a config file that does not exist, its output collected for assertions and failures.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc;

/// The binary under test; `TOKENTRAY_TEST_BIN` points the measurements at a release build
/// without building the tests in release.
pub fn bin() -> String {
    std::env::var("TOKENTRAY_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tokentray").to_string())
}

/// Output of a child process, both streams interleaved as read, stdout lines marked.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    pub fn attach(&self, child: &mut Child) {
        if let Some(s) = child.stdout.take() {
            self.pump(s, "[stdout] ");
        }
        if let Some(s) = child.stderr.take() {
            self.pump(s, "");
        }
    }

    fn pump(&self, mut stream: impl Read + Send + 'static, mark: &'static str) {
        let out = self.0.clone();
        std::thread::spawn(move || {
            let mut pending = String::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    out.lock().expect("output lock").push_str(&format!("{mark}{line}"));
                }
            }
            if !pending.is_empty() {
                out.lock().expect("output lock").push_str(&format!("{mark}{pending}\n"));
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().expect("output lock").clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        super::wait_for(timeout, || self.contains(needle).then_some(())).is_some()
    }

    /// The engine's `listening …` line, once printed.
    pub fn wait_listening(&self, timeout: Duration) -> Option<Listening> {
        super::wait_for(timeout, || self.text().lines().find_map(Listening::parse))
    }
}

/// Ports from `listening otlp-grpc=HOST:PORT otlp-http=HOST:PORT metrics=HOST:PORT`.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
}

impl Listening {
    pub fn parse(line: &str) -> Option<Listening> {
        let rest = line.trim_start_matches("[stdout] ").strip_prefix("listening ")?;
        let mut grpc = None;
        let mut http = None;
        let mut metrics = None;
        for part in rest.split_whitespace() {
            let (k, v) = part.split_once('=')?;
            let addr = v.parse().ok()?;
            match k {
                "otlp-grpc" => grpc = Some(addr),
                "otlp-http" => http = Some(addr),
                "metrics" => metrics = Some(addr),
                _ => {}
            }
        }
        Some(Listening { grpc: grpc?, http: http?, metrics: metrics? })
    }
}

/// A data dir and a (missing) config file for one app.
pub struct Dirs {
    _tmp: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let tmp = tempfile::Builder::new().prefix("tokentray-desktop-").tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let config = tmp.path().join("no-such-config.toml");
        Dirs { _tmp: tmp, data_dir, config }
    }

    /// Whether forwarding to the team is on, as the database says (what the engine's forwarder,
    /// the tray's checkbox and the window's switch follow).
    pub fn forward_enabled(&self) -> bool {
        let queue = tokentray_core::forward::queue::Queue::open(
            &self.data_dir.join(tokentray_core::store::DB_FILE),
        )
        .expect("open the history");
        tokentray_core::forward::control::is_enabled(&queue).expect("read forward.enabled")
    }

    /// Writes a config file whose `[forward]` points at a local port nothing listens on.
    pub fn write_forward_config(&self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        std::fs::write(
            &self.config,
            format!(
                "[forward]\nendpoint = \"http://127.0.0.1:{port}\"\nprotocol = \"http/protobuf\"\n"
            ),
        )
        .expect("write config");
    }

    /// `--data-dir D --config C tray --otlp-grpc 127.0.0.1:0 …` (plus `extra`).
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--data-dir".into(),
            path(&self.data_dir),
            "--config".into(),
            path(&self.config),
            "tray".into(),
        ];
        for (flag, default) in [
            ("--otlp-grpc", "127.0.0.1:0"),
            ("--otlp-http", "127.0.0.1:0"),
            ("--metrics", "127.0.0.1:0"),
        ] {
            if !extra.contains(&flag) {
                a.push(flag.into());
                a.push(default.into());
            }
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `tokentray report today --by agent --json` on `dirs`' history once every one of `agents`
/// (`claude-code`, `codex`) has a row in it (waits up to 30 s for the data to be stored): the
/// per-agent split the window and the tray must agree with.
pub fn report_with_agents(dirs: &Dirs, agents: &[&str]) -> serde_json::Value {
    let report = || {
        let out = command()
            .args(["--data-dir", &dirs.data_dir.to_string_lossy(), "--config"])
            .arg(&dirs.config)
            .args(["report", "today", "--by", "agent", "--json"])
            .output()
            .expect("run tokentray report");
        assert!(out.status.success(), "report: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("report JSON")
    };
    let mut last = serde_json::Value::Null;
    super::wait_for(Duration::from_secs(30), || {
        last = report();
        agents.iter().all(|a| agent_cost(&last, a).is_some()).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("report --by agent has no row for each of {agents:?}: {last:#}"))
}

/// One agent's cost in a [`report_with_agents`] answer, if the agent has a row.
pub fn agent_cost(report: &serde_json::Value, agent: &str) -> Option<f64> {
    let row = report["groups"].as_array()?.iter().find(|g| g["key"] == agent)?;
    row["cost_usd"].as_f64().or_else(|| row["figures"]["cost_usd"].as_f64())
}

/// A command for the binary without any `TOKENTRAY_*` from the developer's environment.
pub fn command() -> Command {
    command_for(&bin())
}

/// [`command`] for a given copy of the binary.
pub fn command_for(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOKENTRAY_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("TOKENTRAY_LOG", "info");
    cmd
}

/// A running tray app. Killed (with its WebKit children) on drop.
pub struct App {
    child: Option<Child>,
    pub out: Output,
    pub pid: u32,
}

impl App {
    pub fn spawn(args: &[String]) -> App {
        App::spawn_bin(&bin(), args)
    }

    /// [`spawn`](Self::spawn) for a given copy of the binary.
    pub fn spawn_bin(program: &str, args: &[String]) -> App {
        App::spawn_bin_env(program, args, &[])
    }

    /// [`spawn_bin`](Self::spawn_bin) with `env` added to the app's environment.
    pub fn spawn_bin_env(program: &str, args: &[String], env: &[(&str, &str)]) -> App {
        let mut child = command_for(program)
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let out = Output::default();
        out.attach(&mut child);
        let pid = child.id();
        App { child: Some(child), out, pid }
    }

    /// Starts it and waits for the engine's listening line.
    pub fn start(dirs: &Dirs, extra: &[&str]) -> (App, Listening) {
        App::start_with_env(dirs, extra, &[])
    }

    /// [`start`](Self::start) with `env` added to the app's environment.
    pub fn start_with_env(dirs: &Dirs, extra: &[&str], env: &[(&str, &str)]) -> (App, Listening) {
        let app = App::spawn_bin_env(&bin(), &dirs.args(extra), env);
        let listening = app
            .out
            .wait_listening(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no listening line within 30 s:\n{}", app.out.text()));
        (app, listening)
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let kids = proc::descendants(self.pid);
            let _ = child.kill();
            let _ = child.wait();
            for (pid, _) in kids {
                proc::signal(pid, "KILL");
            }
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `true` if something accepts connections on `addr`.
pub fn listening(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// `GET http://{metrics}/metrics` answered with 200.
pub fn metrics_ok(addr: SocketAddr) -> bool {
    reqwest::blocking::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}
