//! `Serve`: the real `tokentray serve` binary as a child process, on port 0 everywhere, with a
//! temporary data dir and a config file that does not exist (so the user's config is never read).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tokentray")
}

/// How long the child may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the child may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A `Command` for the binary with every `TOKENTRAY_*` variable removed, so that nothing from
/// the developer's environment overrides what the test passes on the command line.
pub fn command(data_dir: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOKENTRAY_") {
            cmd.env_remove(&k);
        }
    }
    // Hermetic: a test's engine imports no transcripts of this machine's own Claude Code (its
    // background import would count them); a test that wants transcripts names them.
    cmd.env("CLAUDE_CONFIG_DIR", data_dir.with_file_name("no-claude-config"));
    cmd.arg("--data-dir").arg(data_dir).arg("--config").arg(config);
    cmd
}

/// A running `tokentray serve`. Killed on drop.
pub struct Serve {
    /// Owns the data dir (and the config path inside its sibling dir) for the whole test.
    _tmp: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
    /// How many times the process was started (1 after `start`).
    pub generation: u32,
    pub options: ServeOptions,
}

/// What a test changes about `serve`: a config file, extra flags, fixed OTLP addresses.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Written to `config.toml` next to the data dir and passed with `--config`.
    pub config_toml: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub otlp_grpc: String,
    pub otlp_http: String,
    /// Commands (`["forward", "on"]`) run on the data dir and config before the first start.
    pub before_start: Vec<Vec<String>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            config_toml: None,
            args: Vec::new(),
            env: Vec::new(),
            otlp_grpc: "127.0.0.1:0".into(),
            otlp_http: "127.0.0.1:0".into(),
            before_start: Vec::new(),
        }
    }
}

impl Serve {
    /// Starts `serve` on a fresh temporary data dir.
    pub fn start() -> Serve {
        Serve::start_with(ServeOptions::default())
    }

    /// Starts `serve` on a fresh temporary data dir, as `options` say.
    pub fn start_with(options: ServeOptions) -> Serve {
        let tmp = tempfile::Builder::new().prefix("tokentray-test-").tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        // Without a config: deliberately not created, the binary must run with defaults.
        let config = match &options.config_toml {
            Some(text) => {
                let path = tmp.path().join("config.toml");
                std::fs::write(&path, text).expect("write config.toml");
                path
            }
            None => tmp.path().join("no-such-config.toml"),
        };
        let mut s = Serve {
            _tmp: tmp,
            data_dir,
            config,
            child: None,
            stderr: Arc::new(Mutex::new(String::new())),
            grpc: ([127, 0, 0, 1], 0).into(),
            http: ([127, 0, 0, 1], 0).into(),
            metrics: ([127, 0, 0, 1], 0).into(),
            generation: 0,
            options,
        };
        for args in &s.options.before_start {
            s.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "serve already running");
        self.generation += 1;
        let mut cmd = command(&self.data_dir, &self.config);
        cmd.args([
            "serve",
            "--otlp-grpc",
            &self.options.otlp_grpc,
            "--otlp-http",
            &self.options.otlp_http,
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(&self.options.args);
        // The captured fixtures and generated histories are back-dated: with the default
        // `series_idle_hours` (24) their series would leave /metrics at once. Tests keep every
        // series unless they test idleness (by naming the setting in their config or env).
        if !self.options.config_toml.as_deref().is_some_and(|t| t.contains("series_idle_hours")) {
            cmd.env("TOKENTRAY_SERIES_IDLE_HOURS", "0");
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin()));

        // stderr: collected for failure messages (each generation appended, labelled).
        let stderr_buf = self.stderr.clone();
        let generation = self.generation;
        let mut err = child.stderr.take().unwrap();
        stderr_buf.lock().unwrap().push_str(&format!("--- serve #{generation} stderr ---\n"));
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        stderr_buf.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]))
                    }
                }
            }
        });

        // stdout: the first line is the listening line; the rest is drained (and kept).
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let stdout_rest = self.stderr.clone();
        thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            drop(tx);
            for line in lines.map_while(Result::ok) {
                stdout_rest.lock().unwrap().push_str(&format!("[stdout] {line}\n"));
            }
        });
        self.child = Some(child);

        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let status = self.child.as_mut().unwrap().try_wait().ok().flatten();
                // Give the stderr reader a moment to collect what the child printed last.
                thread::sleep(Duration::from_millis(200));
                self.kill_child();
                panic!(
                    "tokentray serve did not print its listening line within {STARTUP_TIMEOUT:?} ({e:?}); \
                     exit status: {status:?}\n{}",
                    self.stderr()
                );
            }
        };
        match parse_listening_line(&line) {
            Some((g, h, m)) => {
                self.grpc = g;
                self.http = h;
                self.metrics = m;
            }
            None => {
                self.kill_child();
                panic!(
                    "unexpected first stdout line of serve: {line:?}; want \
                     `listening otlp-grpc=HOST:PORT otlp-http=HOST:PORT metrics=HOST:PORT`\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// Everything the child(ren) wrote to stderr so far (and stdout after the listening line).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("serve not running").id()
    }

    /// Sends SIGTERM and waits for the exit; asserts exit code 0.
    pub fn stop(&mut self) {
        let pid = self.pid();
        let st = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
        assert!(st.success(), "kill -TERM {pid} failed");
        let status = self.wait_exit(STOP_TIMEOUT);
        match status {
            Some(s) if s.success() => {}
            other => {
                self.kill_child();
                panic!(
                    "serve did not exit with 0 within {STOP_TIMEOUT:?} of SIGTERM: {other:?}\n{}",
                    self.stderr()
                )
            }
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("serve not running");
        child.kill().expect("kill -9");
        child.wait().expect("wait after kill -9");
    }

    /// Starts the binary again on the same data dir (after `stop` or `kill9`); new ports.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// `stop` (SIGTERM) then `start_again`.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }

    /// GET /metrics (text format 0.0.4: no OpenMetrics Accept header).
    pub fn scrape(&self) -> String {
        let resp = reqwest::blocking::Client::new()
            .get(self.metrics_url())
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap_or_else(|e| panic!("GET {}: {e}\n{}", self.metrics_url(), self.stderr()));
        let status = resp.status();
        let body = resp.text().expect("read /metrics body");
        assert!(status.is_success(), "GET /metrics: {status}: {body}\n{}", self.stderr());
        body
    }

    /// `tokentray --data-dir D --config C ARGS...` (another command on the same data and config);
    /// panics unless it exits 0, returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = command(&self.data_dir, &self.config).args(args).output().expect("run tokentray");
        assert!(
            out.status.success(),
            "tokentray {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `tokentray --data-dir D --config C report ARGS...`, parsed as JSON (pass `--json`).
    pub fn report(&self, args: &[&str]) -> Value {
        report(&self.data_dir, &self.config, args)
    }
}

/// Runs `report` on a data dir and parses its JSON output; panics with stderr on failure.
pub fn report(data_dir: &Path, config: &Path, args: &[&str]) -> Value {
    let out = command(data_dir, config)
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tokentray report");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tokentray report {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "tokentray report {args:?}: stdout is not JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill_child();
    }
}

/// The output of `child`, a command expected to end by itself (a refusal); panics naming `what`
/// if it is still running after `timeout`.
pub fn output_within(mut child: Child, timeout: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} kept running: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `serve` with every listener on port 0 (the kernel picks free ports; the listening line names
/// them), for tests that start the binary by hand.
pub const SERVE_ON_PORT_0: [&str; 7] = [
    "serve",
    "--otlp-grpc",
    "127.0.0.1:0",
    "--otlp-http",
    "127.0.0.1:0",
    "--metrics",
    "127.0.0.1:0",
];

/// Spawns `cmd` (a `serve`, however started) with its stdout piped and reads its listening
/// line: the child and its three addresses, or a panic naming `what` did not start.
pub fn spawn_listening(
    mut cmd: Command,
    what: &str,
) -> (Child, (SocketAddr, SocketAddr, SocketAddr)) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addrs =
        parse_listening_line(&line).unwrap_or_else(|| panic!("{what} did not start: {line:?}"));
    (child, addrs)
}

/// `listening otlp-grpc=HOST:PORT otlp-http=HOST:PORT metrics=HOST:PORT` → the three addresses.
pub fn parse_listening_line(line: &str) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    let mut it = line.trim_end().split(' ');
    if it.next()? != "listening" {
        return None;
    }
    let (mut g, mut h, mut m) = (None, None, None);
    for part in it {
        let (k, v) = part.split_once('=')?;
        let addr: SocketAddr = v.parse().ok()?;
        match k {
            "otlp-grpc" => g = Some(addr),
            "otlp-http" => h = Some(addr),
            "metrics" => m = Some(addr),
            _ => return None,
        }
    }
    Some((g?, h?, m?))
}
