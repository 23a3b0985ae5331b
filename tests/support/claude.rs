//! The real Claude Code CLI (npm `@anthropic-ai/claude-code`, installed by `tests/setup.sh` into
//! `tests/.cache/claude-code/`): finding it, and `claude -p PROMPT` with a throwaway HOME against
//! a [`StandIn`] of the Messages API, telemetry on or off.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::anthropic::StandIn;
use super::tempdir;

pub const CLI_VERSION: &str = "2.1.330";
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

pub fn claude_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.cache/claude-code/node_modules/.bin/claude")
}

/// The CLI, or `None` (with the one allowed skip message) when setup could not install it.
pub fn claude_or_skip() -> Option<PathBuf> {
    let bin = claude_bin();
    if !bin.exists() {
        println!("skipped: claude CLI not installed (run tests/setup.sh)");
        return None;
    }
    let home = tempdir("tokentray-claude-version-");
    let out = Command::new(&bin).arg("--version").env("HOME", home.path()).output();
    let version = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    assert!(
        version.starts_with(CLI_VERSION),
        "{} --version printed {version:?}, want {CLI_VERSION} (re-run tests/setup.sh)",
        bin.display()
    );
    Some(bin)
}

pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub debug_log: String,
}

impl Run {
    pub fn describe(&self) -> String {
        let tail: String = {
            let lines: Vec<&str> = self.debug_log.lines().collect();
            let interesting: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.contains("telemetry") || l.contains("OTLP") || l.contains("rror"))
                .collect();
            interesting[interesting.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}\ndebug log (telemetry/error lines):\n{}",
            self.status.code(),
            self.stdout,
            self.stderr,
            tail
        )
    }
}

/// `claude -p PROMPT` with a throwaway HOME, nothing inherited but PATH, telemetry to `endpoint`.
pub fn run_claude(bin: &Path, api: &StandIn, protocol: &str, endpoint: &str, prompt: &str) -> Run {
    let dir = tempdir("tokentray-claude-home-");
    run_claude_in(bin, api, &dir.path().join("home"), Some((protocol, endpoint)), prompt)
}

/// `claude -p PROMPT` with `home` as HOME and nothing inherited but PATH; telemetry turned on
/// through the environment when `otel` (protocol, endpoint) is given, else only by whatever
/// `home/.claude/settings.json` says.
pub fn run_claude_in(
    bin: &Path,
    api: &StandIn,
    home: &Path,
    otel: Option<(&str, &str)>,
    prompt: &str,
) -> Run {
    run_claude_with(bin, api, home, otel, prompt, &[])
}

/// [`run_claude_in`] with `env` set last (so it can override the telemetry variables, e.g.
/// `OTEL_LOGS_EXPORTER=none` for metrics without events).
pub fn run_claude_with(
    bin: &Path,
    api: &StandIn,
    home: &Path,
    otel: Option<(&str, &str)>,
    prompt: &str,
    env: &[(&str, &str)],
) -> Run {
    run_claude_at(bin, api, home, None, otel, prompt, env)
}

/// [`run_claude_with`] in the working directory `cwd` (which must exist), else in a fresh empty
/// folder: the session's `cwd`, and so its project and branch.
pub fn run_claude_at(
    bin: &Path,
    api: &StandIn,
    home: &Path,
    cwd: Option<&Path>,
    otel: Option<(&str, &str)>,
    prompt: &str,
    env: &[(&str, &str)],
) -> Run {
    let dir = tempdir("tokentray-claude-");
    let work = cwd.map_or_else(|| dir.path().join("work"), Path::to_path_buf);
    std::fs::create_dir_all(home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let debug_file = dir.path().join("debug.log");
    let out_file = dir.path().join("stdout");
    let err_file = dir.path().join("stderr");
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "dumb")
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-dummy")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .arg("-p")
        .arg(prompt)
        .arg("--debug-file")
        .arg(&debug_file)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap());
    if let Some((protocol, endpoint)) = otel {
        cmd.env("CLAUDE_CODE_ENABLE_TELEMETRY", "1")
            .env("OTEL_METRICS_EXPORTER", "otlp")
            .env("OTEL_LOGS_EXPORTER", "otlp")
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
            .env("OTEL_LOGS_EXPORT_INTERVAL", "1000");
    }
    cmd.envs(env.iter().copied());
    let protocol = otel.map(|o| o.0).unwrap_or("settings.json");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "claude -p ({protocol}) did not exit within {RUN_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}\nstand-in log: {:?}",
                std::fs::read_to_string(&out_file).unwrap_or_default(),
                std::fs::read_to_string(&err_file).unwrap_or_default(),
                api.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&out_file).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_file).unwrap_or_default(),
        debug_log: std::fs::read_to_string(&debug_file).unwrap_or_default(),
    }
}
