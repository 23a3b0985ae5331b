//! `tokentray statusline`: a Claude Code `statusLine` command. Claude Code runs it after each
//! turn with a JSON description of the session on stdin and shows the first line it prints.
//! It prints today's spend from the local history and, when Claude Code passes them, the plan's
//! 5-hour and 7-day usage (`$3.42 today · 5h 37% · 7d 12%`), and hands those limits to the
//! engine through the shared history database so the window shows them.
//!
//! It must never break Claude Code's status line: any problem still prints a line (and the
//! reason goes to stderr, which Claude Code does not show).

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};

use clap::Args;
use serde_json::Value;
use tokentray_core::config::Config;
use tokentray_core::plan::{self, PlanLimits};
use tokentray_core::query::format::usd;
use tokentray_core::query::Period;
use tokentray_core::store::{Reader, DB_FILE};

#[derive(Debug, Args)]
pub struct StatuslineArgs {
    /// A statusLine command that was there before (run with the same stdin, through `sh -c`);
    /// its first line is printed before ours. `tokentray setup --statusline` sets this.
    #[arg(long, value_name = "COMMAND")]
    pub after: Option<String>,
}

pub fn run(config: &Config, args: StatuslineArgs) -> anyhow::Result<ExitCode> {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let json: Value = serde_json::from_str(&input).unwrap_or(Value::Null);
    let now_ns = tokentray_core::ingest::now_ns();

    let limits = plan::from_statusline(&json, now_ns);
    let data_dir = config.data_dir()?;
    // A mistyped --data-dir is said on stderr; the status line itself still prints.
    let data_dir_ok = super::existing_data_dir(config)
        .map_err(|e| eprintln!("tokentray statusline: {e:#}"))
        .is_ok();
    if let Some(l) = limits.as_ref().filter(|_| data_dir_ok) {
        if let Err(e) = plan::save(&data_dir, l) {
            eprintln!("tokentray statusline: could not store the plan limits: {e}");
        }
    }
    let today = if !data_dir_ok {
        None
    } else if data_dir.join(DB_FILE).exists() {
        Reader::open(&data_dir)
            .and_then(|r| {
                r.report("today", Period::Today.range_now(config.budgets.week_start.0), None)
            })
            .map(|r| r.figures.cost_usd)
            .map_err(|e| eprintln!("tokentray statusline: {e}"))
            .ok()
    } else {
        Some(0.0)
    };

    let mut line = String::new();
    if let Some(before) = args.after.as_deref().and_then(|cmd| run_previous(cmd, &input)) {
        line.push_str(&before);
        line.push_str(" │ ");
    }
    line.push_str(&ours(today, limits.as_ref()));
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// `$3.42 today · 5h 37% · 7d 12%` (the parts that are known).
fn ours(today: Option<f64>, limits: Option<&PlanLimits>) -> String {
    let mut parts = vec![match today {
        Some(v) => format!("{} today", usd(v)),
        None => "tokentray: history unreadable".to_string(),
    }];
    if let Some(l) = limits {
        for (label, w) in [("5h", &l.five_hour), ("7d", &l.seven_day)] {
            if let Some(w) = w {
                parts.push(format!("{label} {:.0}%", w.used_percentage));
            }
        }
    }
    parts.join(" · ")
}

/// The first line the previous statusline command prints for the same input.
fn run_previous(command: &str, input: &str) -> Option<String> {
    use std::io::Write;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A previous command that does not read its input closes the pipe early.
        super::exit::with_sigpipe_ignored(|| {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let out = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
}
