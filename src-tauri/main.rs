//! The `tokentray` binary: CLI commands over the headless core, and (with the default `desktop`
//! feature) the tray app, which `tokentray` with no command starts. See `lib.rs` for the layout.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = tokentray::cli::Args::parse();
    match tokentray::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokentray: {e:#}");
            ExitCode::from(1)
        }
    }
}
