//! Command-line interface. `anyhow` lives here, at the binary's edge; the core has typed errors.

mod report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokentray_core::config::{self, Config};

#[derive(Debug, Parser)]
#[command(name = "tokentray", version, about = "Claude Code cost and usage: a local OTLP receiver with exact history and a Prometheus endpoint")]
pub struct Args {
    /// Where the history database lives [default: the platform data directory]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file [default: config.toml in the platform config directory]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine headless: OTLP on 4317 (gRPC) and 4318 (HTTP), Prometheus /metrics on 8889.
    Serve(serve::ServeArgs),
    /// Spend, tokens, sessions and active time from the local history.
    Report(report::ReportArgs),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = load_config(&args)?;
    match args.command {
        Command::Serve(serve_args) => serve::run(config, serve_args),
        Command::Report(report_args) => report::run(&config, report_args),
    }
}

/// Defaults, then the file, then `TOKENTRAY_*`, then `--data-dir`.
fn load_config(args: &Args) -> anyhow::Result<Config> {
    let path = match args.config.clone().or_else(|| std::env::var_os("TOKENTRAY_CONFIG").map(PathBuf::from)) {
        Some(p) => p,
        None => config::default_config_path()?,
    };
    let mut config = Config::from_file(&path)?;
    config.apply_env(std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAY_")))?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = Some(dir.clone());
    }
    config.data_dir().context("finding the data directory")?;
    Ok(config)
}
