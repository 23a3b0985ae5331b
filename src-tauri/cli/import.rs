//! `tokentray import`: reads Claude Code's transcripts into the history, with a progress bar on
//! a terminal. Ctrl-C stops after the chunk being written; the next run continues from there.
//!
//! The data directory has one engine (`serve`, the tray): when one runs, it is asked to do the
//! import (`POST /api/import` on its metrics listener) and this command only draws its progress
//! (`GET /api/import`); Ctrl-C then stops following, not the import. Nothing is written beside a
//! running engine, also not when it is too old to be asked.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::de::DeserializeOwned;
use tokentray_core::config::Config;
use tokentray_core::dashboard::endpoints;
use tokentray_core::store::{running_engine, EngineInfo, DB_FILE};
use tokentray_core::transcripts::import::{all_files, Importer, Progress};
use tokentray_core::transcripts::ImportStatus;

/// How long one request to the engine may take (it answers from memory).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the engine's progress is asked for.
const POLL: Duration = Duration::from_millis(100);

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    if !config.transcripts.enabled {
        eprintln!("tokentray: transcripts are off in the config ([transcripts] enabled = false)");
        return Ok(ExitCode::from(2));
    }
    let data_dir = config.data_dir()?;
    std::fs::create_dir_all(&data_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    match running_engine(&data_dir) {
        Some(engine) => in_engine(config, &engine, &stop),
        None => here(config, &data_dir, &stop),
    }
}

/// No engine runs: this process is the only writer.
fn here(config: &Config, data_dir: &Path, stop: &AtomicBool) -> anyhow::Result<ExitCode> {
    let files = all_files(&config.transcripts);
    let mut importer = Importer::open_alone(&data_dir.join(DB_FILE))?;
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_draw = Instant::now() - std::time::Duration::from_secs(1);
    let done = importer.run(&files, stop, |p| {
        if terminal && last_draw.elapsed().as_millis() >= 100 {
            last_draw = Instant::now();
            let _ = write!(std::io::stderr(), "\r\x1b[2K{}", bar(p, started));
        }
    })?;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let verb =
        if done.stopped { "stopped; run `tokentray import` again to continue" } else { "done" };
    println!("import {verb}: {}", summary(&done));
    Ok(if done.stopped { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// An engine holds the data directory: it imports, this process follows.
fn in_engine(config: &Config, engine: &EngineInfo, stop: &AtomicBool) -> anyhow::Result<ExitCode> {
    let Some(metrics) = engine.metrics.as_deref() else {
        eprintln!(
            "tokentray: an engine ({engine}) runs on this data directory but has not announced its metrics listener, so it cannot be asked to import; try again once it has started (nothing was imported)"
        );
        return Ok(ExitCode::from(1));
    };
    let client = EngineClient::new(config, metrics)?;
    let first = match client.start()? {
        Answer::Status(s) => s,
        Answer::NotFound => {
            eprintln!(
                "tokentray: the engine running on this data directory ({engine}) is too old to import for other commands (it has no /api/import); stop it and run `tokentray import` again, or update it (nothing was imported: two writers on one history are not allowed)"
            );
            return Ok(ExitCode::from(1));
        }
        Answer::Refused(code, reason) => {
            eprintln!(
                "tokentray: the engine ({engine}) refused the import (HTTP {code}): {reason}"
            );
            return Ok(ExitCode::from(1));
        }
    };
    if first.joined {
        eprintln!(
            "tokentray: joining the import already running in the engine (pid {})",
            first.pid
        );
    }
    let Some(last) = follow(&client, first, stop)? else {
        eprintln!(
            "tokentray: stopped following; the import continues in the engine ({engine}) — `tokentray import` again follows it"
        );
        return Ok(ExitCode::from(130));
    };
    if let Some(error) = &last.error {
        eprintln!("tokentray: the import in the engine (pid {}) failed: {error}", last.pid);
        return Ok(ExitCode::from(1));
    }
    let verb = if last.stopped {
        "stopped (the engine is stopping); run `tokentray import` again to continue"
    } else {
        "done"
    };
    println!("import {verb} in the engine (pid {}): {}", last.pid, summary(&last.progress()));
    Ok(if last.stopped { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Draws the engine's progress until its import `first.id` ends; `None` after Ctrl-C.
fn follow(
    client: &EngineClient,
    first: ImportStatus,
    stop: &AtomicBool,
) -> anyhow::Result<Option<ImportStatus>> {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut status = first;
    let id = status.id;
    while status.running {
        if terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[2K{}", bar(&status.progress(), started));
        }
        std::thread::sleep(POLL);
        if stop.load(Ordering::Relaxed) {
            if terminal {
                eprint!("\r\x1b[2K");
            }
            return Ok(None);
        }
        status = client.status().context(
            "the engine stopped answering before the import ended; run `tokentray import` again to continue",
        )?;
        // Only after ours ended can another have started.
        if status.id != id {
            anyhow::bail!(
                "the engine finished this import (#{id}) and started another (#{}) before its result was read; `tokentray import` again shows where it stands",
                status.id
            );
        }
    }
    if terminal {
        eprint!("\r\x1b[2K");
    }
    Ok(Some(status))
}

/// What the engine answered to `POST /api/import`.
enum Answer {
    Status(ImportStatus),
    /// No such route: an engine from before `/api/import`.
    NotFound,
    /// Any other refusal: the status code and the engine's reason.
    Refused(u16, String),
}

/// `/api/import` on the engine's metrics listener, with `[metrics] require_header` if set.
struct EngineClient {
    agent: ureq::Agent,
    url: String,
    auth: Option<(String, String)>,
}

impl EngineClient {
    fn new(config: &Config, metrics: &str) -> anyhow::Result<EngineClient> {
        let auth = match config.metrics.require_header.as_deref() {
            Some(spec) if !spec.trim().is_empty() => {
                tokentray_core::receiver::auth::resolve_all(&[spec.to_string()])
                    .context("reading [metrics] require_header to ask the running engine")?
                    .pop()
            }
            _ => None,
        };
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(REQUEST_TIMEOUT))
                .http_status_as_error(false)
                .build(),
        );
        let url = format!("http://{}/api/import", endpoints::connectable(metrics));
        Ok(EngineClient { agent, url, auth })
    }

    fn start(&self) -> anyhow::Result<Answer> {
        let mut request = self.agent.post(&self.url);
        if let Some((name, value)) = &self.auth {
            request = request.header(name.as_str(), value.as_str());
        }
        let resp =
            request.send_empty().with_context(|| format!("asking the engine at {}", self.url))?;
        let (code, text) = read(resp)?;
        Ok(match code {
            200 | 202 => Answer::Status(parse(&text)?),
            404 => Answer::NotFound,
            _ => {
                let reason = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| text.trim().to_string());
                Answer::Refused(code, reason)
            }
        })
    }

    fn status(&self) -> anyhow::Result<ImportStatus> {
        let mut request = self.agent.get(&self.url);
        if let Some((name, value)) = &self.auth {
            request = request.header(name.as_str(), value.as_str());
        }
        let resp = request.call().with_context(|| format!("GET {}", self.url))?;
        let (code, text) = read(resp)?;
        anyhow::ensure!(code == 200, "GET {}: HTTP {code}: {}", self.url, text.trim());
        parse(&text)
    }
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> anyhow::Result<(u16, String)> {
    let code = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().context("reading the engine's answer")?;
    Ok((code, text))
}

fn parse<T: DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    serde_json::from_str(text)
        .with_context(|| format!("the engine's answer is not an import status: {text}"))
}

fn summary(p: &Progress) -> String {
    format!(
        "{} of {} files, {:.1} MB, {} new requests, {} malformed lines skipped",
        p.files_done,
        p.files_total,
        p.bytes_done as f64 / 1e6,
        p.new_requests,
        p.malformed_lines
    )
}

fn bar(p: &Progress, started: Instant) -> String {
    let share = if p.bytes_total > 0 { p.bytes_done as f64 / p.bytes_total as f64 } else { 1.0 };
    let width = 24;
    let filled = (share * width as f64).round() as usize;
    let elapsed = started.elapsed().as_secs_f64();
    let eta = if share > 0.0 { elapsed / share - elapsed } else { 0.0 };
    format!(
        "[{}{}] {}/{} files · {:.1}/{:.1} MB · {} requests · ETA {:.0}s",
        "#".repeat(filled.min(width)),
        " ".repeat(width - filled.min(width)),
        p.files_done,
        p.files_total,
        p.bytes_done as f64 / 1e6,
        p.bytes_total as f64 / 1e6,
        p.new_requests,
        eta.max(0.0)
    )
}

fn watch_ctrl_c(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
}
