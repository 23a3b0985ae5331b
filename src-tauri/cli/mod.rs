//! Command-line interface. `anyhow` lives here, at the binary's edge; the core has typed errors.

mod budget;
mod doctor;
mod exit;
mod forward;
mod import;
mod repair;
mod report;
mod serve;
mod setup;
mod statusline;

pub use exit::{exit_quietly_on_closed_stdout, parse, report_error, Usage};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokentray_core::config::{self, Config};

#[derive(Debug, Parser)]
#[command(
    name = "tokentray",
    version,
    about = "Claude Code cost and usage: a local OTLP receiver with exact history and a Prometheus endpoint"
)]
pub struct Args {
    /// Where the history database lives [default: the platform data directory]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file [default: config.toml in the platform config directory]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With no command: the tray app (`tray`), when built with the `desktop` feature
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine headless: OTLP on 4317 (gRPC) and 4318 (HTTP), Prometheus /metrics on 8889.
    Serve(serve::ServeArgs),
    /// Spend, tokens, sessions and active time from the local history.
    Report(report::ReportArgs),
    /// Read Claude Code's local transcripts (every config directory's projects/**/*.jsonl) into
    /// the history; resumable, each request counted once with telemetry.
    Import,
    /// Repair a damaged history: keep a copy of it and recover what SQLite can read into a new
    /// one (stop tokentray first; a healthy history is left alone).
    Repair,
    /// Point Claude Code at tokentray: merge the telemetry settings into ~/.claude/settings.json
    /// (or $CLAUDE_CONFIG_DIR/settings.json), with --dry-run and --undo.
    Setup(setup::SetupArgs),
    /// Check, in order, what stands between Claude Code and tokentray, with a fix for each
    /// problem (exit 0 when all is well, 10–15 for the first kind of failure)
    Doctor(doctor::DoctorArgs),
    /// A Claude Code statusLine command: today's spend and the plan's 5-hour / 7-day usage (read
    /// from the JSON on stdin and handed to the engine)
    Statusline(statusline::StatuslineArgs),
    /// Daily, weekly and monthly spending limits: set, unset, status (exit 0/1/2), pause alerts.
    #[command(subcommand)]
    Budget(budget::BudgetCommand),
    /// Forward everything received to the team's collector (OTLP) or Prometheus (remote write):
    /// setup, set-headers (into the keychain), on, off, status.
    #[command(subcommand)]
    Forward(forward::ForwardCommand),
    /// Our own receiver's authentication: `receiver set-header Authorization` (value on stdin,
    /// into the keychain) for `serve --require-header Authorization=@keychain`.
    #[command(subcommand)]
    Receiver(forward::ReceiverCommand),
    /// The tray app with the engine inside (the default with no command): today's spend in the
    /// tray, a dashboard window, the same ports, data and config as `serve`.
    #[cfg(feature = "desktop")]
    Tray(crate::desktop::TrayArgs),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = load_config(&args)?;
    let config_file = config_path(&args)?;
    match args.command {
        Some(Command::Serve(serve_args)) => serve::run(config, serve_args, config_file),
        Some(Command::Budget(budget_cmd)) => budget::run(&config, budget_cmd, &config_file),
        Some(Command::Report(report_args)) => report::run(&config, report_args),
        Some(Command::Setup(setup_args)) => setup::run(&config, setup_args),
        Some(Command::Forward(cmd)) => forward::run(&config, cmd, &config_file),
        Some(Command::Receiver(cmd)) => forward::run_receiver(cmd),
        Some(Command::Doctor(a)) => doctor::run(&config, a),
        Some(Command::Import) => import::run(&config),
        Some(Command::Repair) => repair::run(&config),
        Some(Command::Statusline(a)) => statusline::run(&config, a),
        #[cfg(feature = "desktop")]
        Some(Command::Tray(tray_args)) => tray(config, tray_args, &args.data_dir, &args.config),
        #[cfg(feature = "desktop")]
        None => tray(config, crate::desktop::TrayArgs::default(), &args.data_dir, &args.config),
        #[cfg(not(feature = "desktop"))]
        None => Err(Usage("this build has no tray app (built without the `desktop` feature); run `tokentray serve` for the engine, or see `tokentray --help`".into()).into()),
    }
}

#[cfg(feature = "desktop")]
fn tray(
    config: Config,
    tray_args: crate::desktop::TrayArgs,
    data_dir: &Option<PathBuf>,
    config_path: &Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let launch = crate::desktop::Launch { data_dir: data_dir.clone(), config: config_path.clone() };
    Ok(crate::desktop::run(config, tray_args, launch)?)
}

/// The data directory of a command that does not create it (everything but the engines): one
/// named in `--data-dir`, `TOKENTRAY_DATA_DIR` or the config must exist, so that a typo says so
/// instead of reading (or starting) an empty history. The platform default may be missing before
/// the first start, which reads as an empty history.
pub(crate) fn existing_data_dir(config: &Config) -> anyhow::Result<PathBuf> {
    let dir = config.data_dir()?;
    if config.data_dir.is_some() || dir.exists() {
        tokentray_core::store::data_dir::check_existing(&dir)?;
    }
    Ok(dir)
}

fn load_config(args: &Args) -> anyhow::Result<Config> {
    load_config_for(args.data_dir.as_deref(), args.config.as_deref())
}

fn config_path(args: &Args) -> anyhow::Result<PathBuf> {
    config_path_for(args.config.as_deref())
}

/// The configuration for `--data-dir` and `--config` (also the window process's): defaults,
/// then the file, then `TOKENTRAY_*`, then `--data-dir`.
pub fn load_config_for(
    data_dir: Option<&std::path::Path>,
    config_file: Option<&std::path::Path>,
) -> anyhow::Result<Config> {
    let path = config_path_for(config_file)?;
    let mut config = Config::from_file(&path)?;
    config.apply_env(std::env::vars().filter(|(k, _)| k.starts_with("TOKENTRAY_")))?;
    if let Some(dir) = data_dir {
        config.data_dir = Some(dir.to_path_buf());
    }
    config.data_dir().context("finding the data directory")?;
    // Every view of this process prices transcript requests with `[pricing]`.
    tokentray_core::pricing::PriceTable::configure(&config.pricing);
    Ok(config)
}

/// The config file in effect: `--config`, else `TOKENTRAY_CONFIG`, else the platform default.
fn config_path_for(config_file: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    Ok(
        match config_file
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("TOKENTRAY_CONFIG").map(PathBuf::from))
        {
            Some(p) => p,
            None => config::default_config_path()?,
        },
    )
}
