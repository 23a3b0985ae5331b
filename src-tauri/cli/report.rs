//! `tokentray report`: figures for a period from the local history, as a table, CSV or JSON.

use std::process::ExitCode;

use chrono::{Local, NaiveDate};
use clap::Args;
use tokentray_core::config::Config;
use tokentray_core::pricing::PriceTable;
use tokentray_core::query::format::{count, usd};
use tokentray_core::query::{days_range, report::Figures, GroupBy, Period, Report, TimeRange};
use tokentray_core::store::Reader;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// today, yesterday, week, last-week, month, last-month, a month (2026-11), a day
    /// (2026-11-22) or all
    #[arg(default_value = "today")]
    pub period: Period,
    /// From this local day on (YYYY-MM-DD), instead of a period
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub since: Option<NaiveDate>,
    /// Up to and including this local day (YYYY-MM-DD), instead of a period
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub until: Option<NaiveDate>,
    /// Break down by day, week, month, model, session, type (tokens), hour, project, branch, pr or
    /// agent (claude-code, codex, gemini-cli)
    #[arg(long, value_name = "DIMENSION")]
    pub by: Option<GroupBy>,
    /// Print JSON instead of a table (money as decimals, to the nano-dollar)
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (one row per group, then a total row) instead of a table
    #[arg(long)]
    pub csv: bool,
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("'{s}' is not a day; write it as YYYY-MM-DD, e.g. 2026-11-22"))
}

pub fn run(config: &Config, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let reader = Reader::open(&super::existing_data_dir(config)?)?
        .with_prices(PriceTable::with_overrides(&config.pricing));
    // Weeks start where the weekly budget says (`[budgets] week_start`, Monday by default).
    let week_start = config.budgets.week_start.0;
    let (name, range) = chosen_range(&args, week_start)?;
    let report = reader.report_weeks_from(&name, range, args.by, week_start)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.csv {
        print!("{}", csv(&report));
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The period's name and range, or the days `--since` / `--until` name (either end open).
fn chosen_range(
    args: &ReportArgs,
    week_start: chrono::Weekday,
) -> anyhow::Result<(String, TimeRange)> {
    if args.since.is_none() && args.until.is_none() {
        return Ok((args.period.name(), args.period.range_now(week_start)));
    }
    if let (Some(from), Some(to)) = (args.since, args.until) {
        if to < from {
            return Err(
                super::Usage(format!("--until {to} is before --since {from}; swap them")).into()
            );
        }
    }
    let tz = Local;
    let start = args.since.and_then(|d| days_range(&tz, d, d).start_ns);
    let end = args.until.and_then(|d| d.succ_opt()).and_then(|d| days_range(&tz, d, d).start_ns);
    let name = format!(
        "{}..{}",
        args.since.map(|d| d.to_string()).unwrap_or_default(),
        args.until.map(|d| d.to_string()).unwrap_or_default()
    );
    Ok((name, TimeRange { start_ns: start, end_ns: end }))
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

fn render(r: &Report) -> String {
    let f: &Figures = &r.figures;
    let when = match (&r.start, &r.end, &r.period[..]) {
        (_, _, "all") | (None, None, _) => "all time".to_string(),
        (Some(start), _, p) => format!("{p} (from {})", &start[..start.len().min(10)]),
        (None, Some(_), p) => p.to_string(),
    };
    let t = &f.tokens;
    let mut out = format!("Claude Code usage, {when}\n");
    let unpriced = if f.transcripts.unpriced_tokens.is_empty() { "" } else { " + unpriced" };
    out += &format!("  Spend         {}{unpriced}\n", usd(f.cost_usd));
    out += &format!(
        "  Tokens        {} (input {} · output {} · cache read {} · cache write {})\n",
        count(t.total),
        count(t.input),
        count(t.output),
        count(t.cache_read),
        count(t.cache_creation)
    );
    if let Some(ratio) = t.cache_hit_ratio() {
        out += &format!("  Cache hits    {:.0}% of prompt tokens\n", ratio * 100.0);
    }
    out += &format!("  Sessions      {}\n", count(f.sessions));
    out += &format!("  Active time   {}\n", duration(f.active_time_seconds));
    out += &format!("  API requests  {}\n", f.api_requests.count);
    if f.transcripts.requests > 0 {
        out += &format!(
            "  From transcripts {} requests (Claude Code's cost {} · priced from the table {})\n",
            f.transcripts.requests,
            usd(f.transcripts.cost_usd_claude_code),
            usd(f.transcripts.cost_usd_price_table)
        );
    }
    for (model, tokens) in &f.transcripts.unpriced_tokens {
        out += &format!("  Unpriced      {model}: {} tokens, cost unknown\n", count(*tokens));
    }
    let a = &f.agents;
    if !a.is_empty() {
        // Codex and Gemini CLI: their requests are in the figures above; reasoning is part of
        // the output, shown apart.
        out += &format!(
            "  Other agents  {} requests, {} sessions (Codex, Gemini CLI; priced from the table {} · their own cost {}; reasoning {} of the output)\n",
            a.requests,
            a.sessions,
            usd(a.cost_usd_price_table),
            usd(a.cost_usd_agent),
            count(t.reasoning)
        );
    }
    for (model, tokens) in &a.unpriced_tokens {
        out += &format!("  Unpriced      {model}: {} tokens, cost unknown\n", count(*tokens));
    }
    if f.metrics.is_empty() && f.events.is_empty() && f.transcripts.is_empty() && a.is_empty() {
        out += "\n  Nothing in this period. If Claude Code never sent anything: `tokentray setup` points it here, `tokentray doctor` says what is missing.\n";
    }
    if let (Some(by), Some(groups)) = (&r.by, &r.groups) {
        out += &table(by, groups, f);
    }
    out
}

/// The breakdown: one row per group and a total row (by type, tokens only: spend, sessions and
/// active time are not per token type).
fn table(by: &str, groups: &[tokentray_core::query::Group], total: &Figures) -> String {
    let tokens_only = by == "type";
    let line = |key: &str, f: &Figures| {
        let t = &f.tokens;
        let (spend, sessions, active) = if tokens_only {
            ("".into(), "".into(), "".into())
        } else {
            (usd(f.cost_usd), count(f.sessions), duration(f.active_time_seconds))
        };
        format!(
            "  {key:<30} {:>8} {:>8} {:>10} {:>11} {:>8} {spend:>10} {sessions:>8} {active:>9}\n",
            count(t.input),
            count(t.output),
            count(t.cache_read),
            count(t.cache_creation),
            count(t.total),
        )
    };
    let mut out = format!(
        "\n  {by:<30} {:>8} {:>8} {:>10} {:>11} {:>8} {:>10} {:>8} {:>9}\n",
        "input", "output", "cache read", "cache write", "total", "cost", "sessions", "active"
    );
    for g in groups {
        out += &line(if g.key.is_empty() { "(none)" } else { &g.key }, &g.figures);
    }
    out += &line("total", total);
    out
}

/// CSV with exact figures (money as a decimal, to the nano-dollar), one row per group and a total row.
fn csv(r: &Report) -> String {
    let mut out = format!(
        "{},input,output,cache_read,cache_write,total_tokens,cost_usd,sessions,active_seconds\n",
        r.by.as_deref().unwrap_or("period")
    );
    let row = |key: &str, f: &Figures| {
        let t = &f.tokens;
        let quoted = if key.contains([',', '"', '\n']) {
            format!("\"{}\"", key.replace('"', "\"\""))
        } else {
            key.to_string()
        };
        format!(
            "{quoted},{},{},{},{},{},{},{},{}\n",
            t.input,
            t.output,
            t.cache_read,
            t.cache_creation,
            t.total,
            tokentray_core::query::report::round_decimal(f.cost_usd),
            f.sessions,
            (f.active_time_seconds * 1e3).round() / 1e3
        )
    };
    for g in r.groups.iter().flatten() {
        out += &row(&g.key, &g.figures);
    }
    out += &row(if r.groups.is_some() { "total" } else { &r.period }, &r.figures);
    out
}
