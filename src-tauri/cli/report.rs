//! `tokentray report`: figures for a period from the local history.

use std::process::ExitCode;

use clap::Args;
use tokentray_core::config::Config;
use tokentray_core::pricing::PriceTable;
use tokentray_core::query::format::{count, usd};
use tokentray_core::query::{report::Figures, GroupBy, Period, Report};
use tokentray_core::store::Reader;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// today, week, month or all
    #[arg(default_value = "today")]
    pub period: Period,
    /// Break down by model, type, session, day, hour, project, branch or pr
    #[arg(long, value_name = "DIMENSION")]
    pub by: Option<GroupBy>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let reader =
        Reader::open(&config.data_dir()?)?.with_prices(PriceTable::with_overrides(&config.pricing));
    // Weeks start where the weekly budget says (`[budgets] week_start`, Monday by default).
    let range = args.period.range_now(config.budgets.week_start.0);
    let report = reader.report(args.period.name(), range, args.by)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
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
    let when = match (&r.start, &r.period[..]) {
        (_, "all") | (None, _) => "all time".to_string(),
        (Some(start), p) => format!("{p} (from {})", &start[..start.len().min(10)]),
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
    if f.metrics.is_empty() && f.events.is_empty() && f.transcripts.is_empty() {
        out += "\n  No data yet. Point Claude Code at tokentray (see `tokentray serve --help` and the README).\n";
    }
    if let (Some(by), Some(groups)) = (&r.by, &r.groups) {
        out += &format!(
            "\n  {:<38} {:>10} {:>10} {:>9} {:>10}\n",
            by, "spend", "tokens", "sessions", "active"
        );
        for g in groups {
            let key = if g.key.is_empty() { "(none)" } else { &g.key };
            let unpriced =
                if g.figures.transcripts.unpriced_tokens.is_empty() { "" } else { " + unpriced" };
            out += &format!(
                "  {:<38} {:>10} {:>10} {:>9} {:>10}\n",
                key,
                format!("{}{unpriced}", usd(g.figures.cost_usd)),
                count(g.figures.tokens.total),
                count(g.figures.sessions),
                duration(g.figures.active_time_seconds)
            );
        }
    }
    out
}
