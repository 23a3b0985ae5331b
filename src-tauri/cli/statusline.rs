//! `tokentray statusline`: a Claude Code `statusLine` command. Claude Code runs it after each
//! turn with a JSON description of the session on stdin and shows the first line it prints.
//! It prints today's spend from the local history, the session's own cost, the budget state,
//! the plan's 5-hour and 7-day usage with their reset countdowns and the burn rate
//! (`$3.42 today · $0.42 session · day $16.12/$20 (81%), $20 at 16:40 · 5h 37% (resets in
//! 2 h 17 m) · 7d 12% · $2.10/h`; `--format` picks and orders the parts), and hands the plan
//! limits to the engine through the shared history database so the window shows them.
//!
//! It must never break Claude Code's status line: any problem still prints a line (and the
//! reason goes to stderr, which Claude Code does not show).

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};

use chrono::TimeZone;
use clap::Args;
use serde_json::Value;
use tokentray_core::budget::{self, BudgetPeriod};
use tokentray_core::config::Config;
use tokentray_core::plan::{self, PlanLimits};
use tokentray_core::query::format::{self, usd};
use tokentray_core::query::report;
use tokentray_core::query::Period;
use tokentray_core::statusline;
use tokentray_core::store::{Reader, DB_FILE};

#[derive(Debug, Args)]
pub struct StatuslineArgs {
    /// A statusLine command that was there before (run with the same stdin, through `sh -c`);
    /// its first line is printed before ours. `tokentray setup --statusline` sets this.
    #[arg(long, value_name = "COMMAND")]
    pub after: Option<String>,
    /// The line's parts and their order: {today} {session} {budget} {5h} {7d} {burn}; parts
    /// that are not known are left out with their separator
    #[arg(long, value_name = "FORMAT", default_value = statusline::DEFAULT_FORMAT)]
    pub format: String,
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
    let reader = if !data_dir_ok {
        None
    } else if data_dir.join(DB_FILE).exists() {
        Reader::open(&data_dir).map_err(|e| eprintln!("tokentray statusline: {e}")).ok()
    } else {
        None
    };
    let today = match &reader {
        Some(r) => r
            .report("today", Period::Today.range_now(config.budgets.week_start.0), None)
            .map(|r| r.figures.cost_usd)
            .map_err(|e| eprintln!("tokentray statusline: {e}"))
            .ok(),
        None if data_dir_ok => Some(0.0),
        None => None,
    };

    let mut line = String::new();
    if let Some(before) = args.after.as_deref().and_then(|cmd| run_previous(cmd, &input)) {
        line.push_str(&before);
        line.push_str(" │ ");
    }
    let session = json.get("cost").and_then(|c| c.get("total_cost_usd")).and_then(Value::as_f64);
    line.push_str(&ours(
        &args.format,
        today,
        session,
        limits.as_ref(),
        reader.as_ref(),
        config,
        now_ns,
    ));
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// Our part of the line, in `format` (see [`statusline::render`]).
fn ours(
    format: &str,
    today: Option<f64>,
    session: Option<f64>,
    limits: Option<&PlanLimits>,
    reader: Option<&Reader>,
    config: &Config,
    now_ns: i64,
) -> String {
    let today = Some(match today {
        Some(v) => format!("{} today", usd(v)),
        None => "tokentray: history unreadable".to_string(),
    });
    let window = |label: &str, w: Option<&plan::Window>, length_ns: i64| {
        let w = w?;
        let outlook = w.outlook(length_ns, now_ns);
        let ahead: Vec<String> =
            [outlook.resets_in, outlook.full_at_clock.map(|at| format!("100% at {at}"))]
                .into_iter()
                .flatten()
                .collect();
        let ahead =
            if ahead.is_empty() { String::new() } else { format!(" ({})", ahead.join(", ")) };
        Some(format!("{label} {:.0}%{ahead}", w.used_percentage))
    };
    // Every request of the last hour once: telemetry's events, and what only the transcripts
    // saw (a session with telemetry off, or started before tokentray).
    let hour_ago_ns = now_ns - 3_600_000_000_000;
    let burn = reader
        .and_then(|r| {
            let mut spends = r.event_costs_since(report::names::API_REQUEST, hour_ago_ns).ok()?;
            spends.extend(r.transcript_request_costs(hour_ago_ns, now_ns + 1).ok()?);
            Some(spends)
        })
        .and_then(|spends| statusline::burn_rate_per_hour(now_ns, &spends));
    let parts = [
        ("today", today),
        ("session", session.map(|c| format!("{} session", usd(c)))),
        ("budget", reader.and_then(|r| budget_part(r, config, now_ns, burn))),
        ("5h", window("5h", limits.and_then(|l| l.five_hour.as_ref()), plan::FIVE_HOUR_NS)),
        ("7d", window("7d", limits.and_then(|l| l.seven_day.as_ref()), plan::SEVEN_DAY_NS)),
        ("burn", burn.map(|b| format!("{}/h", usd(b)))),
    ];
    statusline::render(format, &parts)
}

/// The first budget (the daily one for all models when set): `day $16.12/$20 (81%)`, and when the
/// burn rate reaches the limit before the period ends, `, $20 at 16:40`.
fn budget_part(reader: &Reader, config: &Config, now_ns: i64, burn: Option<f64>) -> Option<String> {
    let now = chrono::Local.timestamp_nanos(now_ns);
    let status = budget::status(reader, &config.budgets, &now).ok()?;
    let b = status
        .budgets
        .iter()
        .find(|b| b.model.is_none() && b.agent.is_none() && b.period == BudgetPeriod::Daily)
        .or_else(|| status.budgets.first())?;
    let mut out = format!(
        "{} {}/{} ({:.0}%)",
        b.period.noun(),
        usd(b.spent_usd),
        format::usd_short(b.limit_usd),
        b.percent
    );
    if let Some(at) = burn.and_then(|rate| {
        statusline::reached_at_ns(now_ns, b.spent_usd, b.limit_usd, rate, b.period_end_ns)
    }) {
        out += &format!(
            ", {} at {}",
            format::usd_short(b.limit_usd),
            statusline::clock(&chrono::Local, at)
        );
    }
    Some(out)
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
