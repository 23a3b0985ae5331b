//! `tokentray budget`: set and unset limits (edits the config file), show where they stand
//! (exit 0 under every threshold, 1 past a threshold, 2 at or past a limit, for scripts and
//! prompts), pause and resume alerts.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Local, NaiveTime, Utc};
use clap::{Args, Subcommand};
use tokentray_core::budget::edit::{self, Scope};
use tokentray_core::budget::{self, AlertState, BudgetPeriod, BudgetStatus, Level};
use tokentray_core::config::{BudgetLimit, Config, DEFAULT_THRESHOLDS, MAX_THRESHOLD};
use tokentray_core::store::Reader;

use tokentray_core::query::format::usd;

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Set a limit in USD for a local day, week or month: `budget set daily 20`
    Set(SetArgs),
    /// Remove a limit: `budget unset daily [--model M]`
    Unset(UnsetArgs),
    /// Spend, percent and forecast of every budget; exit 0 (fine), 1 (past a threshold), 2 (past a limit)
    Status(StatusArgs),
    /// Silence alerts until tomorrow (or --until HH:MM); thresholds crossed meanwhile stay silent
    Pause(PauseArgs),
    /// Turn alerts back on
    Resume,
}

fn parse_usd(s: &str) -> Result<f64, String> {
    let v = s
        .trim()
        .trim_start_matches('$')
        .parse::<f64>()
        .map_err(|_| format!("'{s}' is not an amount of USD (for example 20 or 12.50)"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("a budget must be a positive amount of USD, not {s}"));
    }
    Ok(v)
}

fn parse_percent(s: &str) -> Result<u32, String> {
    let bad = || {
        format!("'{s}' is not a percentage of the limit (a whole number from 1 to {MAX_THRESHOLD}, e.g. --thresholds 50,80,100)")
    };
    match s.trim().trim_end_matches('%').parse::<u32>() {
        Ok(p) if (1..=MAX_THRESHOLD).contains(&p) => Ok(p),
        _ => Err(bad()),
    }
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// daily, weekly or monthly
    pub period: BudgetPeriod,
    /// Limit in USD
    #[arg(value_parser = parse_usd, allow_negative_numbers = true)]
    pub usd: f64,
    /// Only this model's spend (Claude Code's `model`, e.g. claude-opus-5-5)
    #[arg(long, conflicts_with = "agent")]
    pub model: Option<String>,
    /// Only this agent's spend: claude-code, codex or gemini-cli
    #[arg(long, value_parser = parse_agent)]
    pub agent: Option<String>,
    /// Percentages of the limit that alert when crossed [default: 50,80,100]
    #[arg(long, value_delimiter = ',', value_name = "PERCENTS", value_parser = parse_percent)]
    pub thresholds: Vec<u32>,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// daily, weekly or monthly
    pub period: BudgetPeriod,
    #[arg(long, conflicts_with = "agent")]
    pub model: Option<String>,
    #[arg(long, value_parser = parse_agent)]
    pub agent: Option<String>,
}

/// The agents whose spend tokentray knows (their keys in reports, `--by agent`).
const AGENTS: [&str; 3] = ["claude-code", "codex", "gemini-cli"];

fn parse_agent(s: &str) -> Result<String, String> {
    if AGENTS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not an agent tokentray knows (one of {})", AGENTS.join(", ")))
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// `tomorrow` (local midnight), a local time `HH:MM` (its next occurrence), or an RFC 3339 instant
    #[arg(long, default_value = "tomorrow")]
    pub until: String,
}

pub fn run(
    config: &Config,
    command: BudgetCommand,
    config_file: &Path,
) -> anyhow::Result<ExitCode> {
    match command {
        BudgetCommand::Set(a) => set(config_file, a),
        BudgetCommand::Unset(a) => unset(config_file, a),
        BudgetCommand::Status(a) => status(config, a),
        BudgetCommand::Pause(a) => pause(config, a),
        BudgetCommand::Resume => {
            AlertState::open_dir(&super::existing_data_dir(config)?)?.pause_until(None)?;
            println!("Budget alerts are on.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe(period: BudgetPeriod, scope: Scope<'_>) -> String {
    match scope {
        Scope::All => format!("{period} budget"),
        Scope::Model(m) | Scope::Agent(m) => format!("{period} budget for {m}"),
    }
}

fn set(config_file: &Path, a: SetArgs) -> anyhow::Result<ExitCode> {
    let limit = BudgetLimit::new(a.usd, &a.thresholds).map_err(anyhow::Error::msg)?;
    let scope = Scope::of(a.model.as_deref(), a.agent.as_deref());
    edit::set_budget(config_file, a.period, scope, &limit)?;
    let at: Vec<String> = limit.thresholds.iter().map(|t| format!("{t}%")).collect();
    let dropped: Vec<String> = DEFAULT_THRESHOLDS
        .iter()
        .filter(|d| !limit.thresholds.contains(d))
        .map(|t| t.to_string())
        .collect();
    if !dropped.is_empty() {
        let mut keep: Vec<u32> = limit.thresholds.clone();
        keep.extend(DEFAULT_THRESHOLDS);
        keep.sort_unstable();
        keep.dedup();
        let keep: Vec<String> = keep.iter().map(|t| t.to_string()).collect();
        eprintln!(
            "tokentray: note: --thresholds replaces the default alerts ({}% are not kept); to keep them too: --thresholds {}",
            dropped.join("%, "),
            keep.join(",")
        );
    }
    println!(
        "Set the {} to {} (alerts at {}) in {}.",
        describe(a.period, scope),
        usd(limit.limit_usd),
        at.join(", "),
        config_file.display()
    );
    println!("A running `tokentray serve` applies it with the next data it receives.");
    Ok(ExitCode::SUCCESS)
}

fn unset(config_file: &Path, a: UnsetArgs) -> anyhow::Result<ExitCode> {
    let scope = Scope::of(a.model.as_deref(), a.agent.as_deref());
    let what = describe(a.period, scope);
    if edit::unset_budget(config_file, a.period, scope)? {
        println!("Removed the {what} from {}.", config_file.display());
    } else {
        println!("No {what} was set in {}.", config_file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(config: &Config, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let data_dir = super::existing_data_dir(config)?;
    let reader = Reader::open(&data_dir)
        .with_context(|| format!("opening the history in {}", data_dir.display()))?;
    let now = Local::now();
    let status = budget::status(&reader, &config.budgets, &now)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status, &now));
    }
    Ok(ExitCode::from(status.level() as u8))
}

fn short_time(rfc3339: &str, now: &DateTime<Local>) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let t = t.with_timezone(&Local);
            if t.date_naive() == now.date_naive() {
                t.format("%H:%M").to_string()
            } else if (t.date_naive() - now.date_naive()).num_days() < 7 {
                t.format("%a %H:%M").to_string()
            } else {
                t.format("%b %-d %H:%M").to_string()
            }
        }
        Err(_) => rfc3339.to_string(),
    }
}

fn render(status: &BudgetStatus, now: &DateTime<Local>) -> String {
    if status.budgets.is_empty() {
        return "No budgets set. Example: tokentray budget set daily 20 (also weekly, monthly; --model for one model, --agent for one agent).\n".into();
    }
    let mut out = match &status.paused_until {
        Some(until) => format!("Budgets (alerts paused until {})\n", short_time(until, now)),
        None => "Budgets\n".to_string(),
    };
    for b in &status.budgets {
        let name = match b.model.as_ref().or(b.agent.as_ref()) {
            None => b.period.name().to_string(),
            Some(m) => format!("{} {m}", b.period.name()),
        };
        let filled = ((b.percent / 10.0).floor().max(0.0) as usize).min(10);
        let bar = format!("{}{}", "█".repeat(filled), "░".repeat(10 - filled));
        let mark = if b.over_limit() {
            "limit reached".to_string()
        } else if let Some(t) = b.highest_crossed {
            format!("past {t}%")
        } else {
            String::new()
        };
        let forecast = if b.forecast_ready {
            format!("forecast {} by end of {}", usd(b.forecast_usd), b.period.noun())
        } else {
            "forecast: not enough data yet".to_string()
        };
        let mut line = format!(
            "  {name:<24} {:>9} of {:<9} {:>4.0}% {bar} {mark:<13}  {forecast}",
            usd(b.spent_usd),
            usd(b.limit_usd),
            b.percent,
        );
        if let Some(at) = &b.reach_limit_at {
            line += &format!(", reaches {} around {}", usd(b.limit_usd), short_time(at, now));
        }
        out += line.trim_end();
        out += "\n";
    }
    out
}

fn pause(config: &Config, a: PauseArgs) -> anyhow::Result<ExitCode> {
    let now = Local::now();
    let until: DateTime<Utc> = match a.until.trim() {
        "tomorrow" => budget::tomorrow_start(&now),
        s => match NaiveTime::parse_from_str(s, "%H:%M") {
            Ok(t) => budget::next_local_time(&now, t),
            Err(_) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| anyhow::anyhow!("--until takes `tomorrow`, a local time HH:MM or an RFC 3339 instant, not '{s}'"))?,
        },
    };
    if until <= now.with_timezone(&Utc) {
        anyhow::bail!("--until {} is in the past", a.until);
    }
    AlertState::open_dir(&super::existing_data_dir(config)?)?.pause_until(Some(until))?;
    let local = until.with_timezone(&Local);
    println!(
        "Budget alerts paused until {} ({}). Thresholds crossed meanwhile will not alert later; `tokentray budget resume` turns alerts back on.",
        short_time(&local.to_rfc3339(), &now),
        local.format("%Y-%m-%d %H:%M")
    );
    Ok(ExitCode::SUCCESS)
}

// `status.level() as u8` is the exit code the docs promise.
const _: () =
    assert!(Level::Ok as u8 == 0 && Level::Threshold as u8 == 1 && Level::OverLimit as u8 == 2);
