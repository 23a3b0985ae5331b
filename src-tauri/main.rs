//! The `tokentray` binary: CLI commands over the headless core. The tray shell (desktop issue)
//! plugs in here as another command behind the `desktop` feature; everything it shows comes from
//! `tokentray-core`, as everything the CLI prints does.

mod cli;

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
