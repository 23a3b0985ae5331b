//! How every command ends (issue 16): one line on stderr in one style, `tokentray: <what is
//! wrong>; <the fix>`, and documented exit codes (README, "Exit codes"):
//!
//! * 0: done;
//! * 1: the command failed (the history, the config file, the keychain, …);
//! * 2: the command line cannot be run as given (an unknown option, a bad value, a command that
//!   needs what is not set up), or an engine cannot start (a port taken, the history held by
//!   another engine);
//! * `budget status` (1, 2) and `doctor` (10–14) add their own, documented with them;
//! * a closed stdout (`tokentray report | head -1`) ends the program as `cat` or `ls` end: by
//!   SIGPIPE, quietly (the shell shows 141).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use super::{Args, Command};

/// An error that is the user's command line, not a failure: exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The command line, or the exit code after clap's help, version or error was printed in our
/// style (`tokentray: invalid value … ; see `tokentray report --help``).
pub fn parse() -> Result<Args, ExitCode> {
    match Args::try_parse() {
        Ok(args) => Ok(args),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                default_sigpipe();
                let _ = e.print();
                Err(ExitCode::from(if e.use_stderr() { 2 } else { 0 }))
            }
            _ => {
                let words: Vec<String> = std::env::args().skip(1).collect();
                eprintln!("tokentray: {}", one_line(&e.render().to_string(), &command_of(&words)));
                Err(ExitCode::from(2))
            }
        },
    }
}

/// clap's `error: …` paragraph as one line, pointing at the command's `--help`.
fn one_line(rendered: &str, command: &str) -> String {
    let first = rendered.lines().next().unwrap_or_default();
    let what = first.strip_prefix("error: ").unwrap_or(first).trim();
    format!("{what}; see `{command} --help`")
}

/// `tokentray budget set` for `budget set daily -5 --model x`: the subcommands named in `words`.
fn command_of(words: &[String]) -> String {
    let mut command = Args::command();
    let mut path = vec!["tokentray".to_string()];
    for word in words {
        let Some(sub) = command.find_subcommand(word).cloned() else { continue };
        path.push(word.clone());
        command = sub;
    }
    path.join(" ")
}

/// Commands that print end by SIGPIPE on a closed stdout, as `cat` does. (Rust ignores SIGPIPE,
/// which turns the write into an error and `println!` into a panic.) The engines keep it
/// ignored: a client closing a connection must not end them.
pub fn exit_quietly_on_closed_stdout(args: &Args) {
    let engine = match &args.command {
        Some(Command::Serve(_)) => true,
        #[cfg(feature = "desktop")]
        Some(Command::Tray(_)) | None => true,
        _ => false,
    };
    if !engine {
        default_sigpipe();
    }
}

/// Runs `f` (writing to a child's stdin, which may exit without reading it) with SIGPIPE
/// ignored, so that the child's closed pipe is a write error and not the end of this program.
pub fn with_sigpipe_ignored<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(unix)]
    // SAFETY: the commands that call this are single-threaded; SIG_IGN is always valid.
    #[allow(unsafe_code)]
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let out = f();
    #[cfg(unix)]
    // SAFETY: restores the disposition returned above.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, previous);
    }
    out
}

fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: at the start of main, before any thread exists; SIG_DFL is always valid.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints a failed command's error in the one style and picks its exit code.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("tokentray: {e:#}");
    if e.downcast_ref::<Usage>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line_naming_the_help() {
        let rendered = "error: invalid value 'fortnight' for '[PERIOD]': unknown period\n\nFor more information, try '--help'.\n";
        let words: Vec<String> = ["--json", "report", "fortnight"].map(String::from).to_vec();
        assert_eq!(
            one_line(rendered, &command_of(&words)),
            "invalid value 'fortnight' for '[PERIOD]': unknown period; see `tokentray report --help`"
        );
        let words: Vec<String> = ["budget", "set", "daily", "-5"].map(String::from).to_vec();
        assert_eq!(command_of(&words), "tokentray budget set");
    }
}
