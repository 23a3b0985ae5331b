//! `tokentray import`: reads Claude Code's transcripts into the history, with a progress bar on
//! a terminal. Ctrl-C stops after the chunk being written; the next run continues from there.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokentray_core::config::Config;
use tokentray_core::store::DB_FILE;
use tokentray_core::transcripts::import::{all_files, Importer, Progress};

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    if !config.transcripts.enabled {
        eprintln!("tokentray: transcripts are off in the config ([transcripts] enabled = false)");
        return Ok(ExitCode::from(2));
    }
    let data_dir = config.data_dir()?;
    std::fs::create_dir_all(&data_dir)?;
    let files = all_files(&config.transcripts);
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    let mut importer = Importer::open(&data_dir.join(DB_FILE))?;
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_draw = Instant::now() - std::time::Duration::from_secs(1);
    let done = importer.run(&files, &stop, |p| {
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
    println!(
        "import {verb}: {} of {} files, {:.1} MB, {} new requests, {} malformed lines skipped",
        done.files_done,
        done.files_total,
        done.bytes_done as f64 / 1e6,
        done.new_requests,
        done.malformed_lines
    );
    Ok(if done.stopped { ExitCode::from(130) } else { ExitCode::SUCCESS })
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
