//! `[alerts] command = ["notify-send", "{summary}", "{body}"]`: runs a program per alert.
//!
//! An argument list, not a shell line: the alert's text is substituted into single arguments,
//! so nothing in it (a model name, a quote) can turn into shell syntax.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokentray_core::budget::{Alert, Notifier, NotifyError};

/// How long the program may run before it is killed; it runs in the background meanwhile.
const TIME_LIMIT: Duration = Duration::from_secs(60);

pub struct CommandNotifier {
    argv: Vec<String>,
}

impl CommandNotifier {
    /// `None` when the list is empty (no command configured).
    pub fn new(argv: &[String]) -> Option<CommandNotifier> {
        (!argv.is_empty() && !argv[0].is_empty()).then(|| CommandNotifier { argv: argv.to_vec() })
    }

    /// The program's name, for logs (arguments may carry tokens).
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or_default()
    }
}

impl Notifier for CommandNotifier {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let args: Vec<String> = self.argv.iter().map(|a| alert.substitute(a)).collect();
        let program = self.program().to_string();
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            // stdout of `serve` carries the line scripts parse; keep the program's output off it.
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| NotifyError::Failed {
                channel: "command",
                reason: format!("cannot run {program}: {e}"),
            })?;
        // Reaped on a thread: the evaluator does not wait for the program, and a program that
        // hangs is killed after TIME_LIMIT instead of piling up.
        std::thread::Builder::new()
            .name("tokentray-alert-command".into())
            .spawn(move || {
                let started = Instant::now();
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) if status.success() => return,
                        Ok(Some(status)) => {
                            tracing::warn!(program, %status, "alert command failed");
                            return;
                        }
                        Ok(None) if started.elapsed() > TIME_LIMIT => {
                            tracing::warn!(program, "alert command still running after {}s; killed", TIME_LIMIT.as_secs());
                            let _ = child.kill();
                            let _ = child.wait();
                            return;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                        Err(e) => {
                            tracing::warn!(program, error = %e, "cannot wait for the alert command");
                            return;
                        }
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| NotifyError::Failed { channel: "command", reason: format!("cannot start a thread: {e}") })
    }
}
