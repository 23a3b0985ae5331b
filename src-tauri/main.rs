//! The `tokentray` binary: CLI commands over the headless core, and (with the default `desktop`
//! feature) the tray app, which `tokentray` with no command starts. Everything either shows comes
//! from `tokentray-core`.

mod alerts;
mod cli;
#[cfg(feature = "desktop")]
mod desktop;
mod process;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokentray: {e:#}");
            ExitCode::from(1)
        }
    }
}
