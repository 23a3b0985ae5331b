//! The `tokentray` binary: CLI commands over the headless core, and (with the default `desktop`
//! feature) the tray app, which `tokentray` with no command starts. See `lib.rs` for the layout.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match tokentray::cli::parse() {
        Ok(args) => args,
        Err(code) => return code,
    };
    tokentray::cli::exit_quietly_on_closed_stdout(&args);
    match tokentray::cli::run(args) {
        Ok(code) => code,
        Err(e) => tokentray::cli::report_error(&e),
    }
}
