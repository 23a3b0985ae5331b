//! The dashboard: everything the tray window shows, in one serialisable value.
//!
//! The same [`Dashboard`] feeds the Tauri window (through a command) and the read-only page the
//! engine serves on the metrics listener (`GET /api/dashboard`), so the two cannot disagree.
//! Spend and tokens come from [`Reader::report`], the code behind `tokentray report`: the
//! `claude_code.cost.usage` / `claude_code.token.usage` metrics (the same increments `/metrics`
//! adds up), what Claude Code's transcripts add to them, and other agents' requests, so the
//! window and the CLI show one number. Events only supply what metrics cannot: the last API
//! request and when sessions started and ended.
//!
//! [`build`] runs on every committed change while a window is open, so it is a fixed handful of
//! indexed queries (no per-session or per-day loop).

pub mod activity;
pub(crate) mod assets;
pub mod endpoints;

pub use endpoints::Endpoints;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Local, TimeZone};
use serde::Serialize;

use crate::budget::{self, BudgetStatus};
use crate::config::BudgetsConfig;
use crate::query::report::{Figures, Report};
use crate::query::{local_midnight_ns, GroupBy, Period, TimeRange, Tokens};
use crate::store::read::SessionTimes;
use crate::store::transcripts::SessionPlace;
use crate::store::{EventFigures, NewestRequest, Reader, StoreError};

/// Today's sessions listed in the dashboard JSON, most recently started first; the rest are
/// counted in [`Dashboard::sessions_today_count`], so the JSON stays small on a busy day.
pub(crate) const SESSIONS_SHOWN: usize = 50;

/// Claude Code's event for a failed API request.
const API_ERROR: &str = "claude_code.api_error";

/// Days in the daily chart, today included.
pub(crate) const DAILY_DAYS: i64 = 30;

/// Everything the window shows. Field names are the JSON contract with `ui/app.js`.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// When this was computed (RFC 3339, local time).
    pub generated_at: String,
    /// False until anything was ever received: the window then shows how to set Claude Code up.
    pub has_data: bool,
    /// Since local midnight.
    pub today: PeriodSummary,
    /// Since the start of this local week (`[budgets] week_start`).
    pub week: PeriodSummary,
    /// Since the first of this local month.
    pub month: PeriodSummary,
    /// Today's cacheRead / (input + cacheRead + cacheCreation); null with no prompt tokens.
    pub cache_hit_ratio: Option<f64>,
    /// This month, most expensive first.
    pub models: Vec<ModelRow>,
    /// Today's spend per machine the data came from: this machine first, then every machine
    /// that forwarded to this one (a remote dev box), by name. Their sum is `today`.
    pub machines_today: Vec<MachineRow>,
    /// Sessions with usage or events today, most recently started first, at most
    /// [`SESSIONS_SHOWN`].
    pub sessions_today: Vec<SessionRow>,
    /// All of today's sessions with a session id, listed or not.
    pub sessions_today_count: usize,
    /// The last [`DAILY_DAYS`] local days, oldest first, zero days included.
    pub daily: Vec<DayCost>,
    /// Today's 24 local hours.
    pub hourly: Vec<HourCost>,
    /// The newest `claude_code.api_request` event.
    pub last_request: Option<LastRequest>,
    /// Every configured budget with its spend, forecast and thresholds, and whether alerts are
    /// paused; null when no budget is set.
    pub budgets: Option<BudgetStatus>,
    /// Why the budgets could not be computed, in words (the rest of the dashboard still shows).
    pub budgets_error: Option<String>,
    /// The latest plan usage from `tokentray statusline`; null until it ran with rate limits.
    pub plan_limits: Option<crate::plan::PlanLimits>,
    /// The plan windows' countdowns and the time the pace uses each up; null with no limits.
    pub plan_outlook: Option<crate::plan::PlanOutlook>,
    /// The local listeners' addresses, for the setup instructions.
    pub endpoints: Endpoints,
    /// [`Endpoints::claude_code_env`], for the empty state's copy button.
    pub setup_env: String,
    /// This month by project (git work tree of the sessions' cwd), most expensive first.
    pub projects: Vec<ProjectRow>,
    /// Today's spend per agent (Claude Code, Codex CLI, Gemini CLI), most expensive first; their
    /// sum is `today`.
    pub agents_today: Vec<AgentRow>,
}

/// One agent's share of today.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentRow {
    /// `claude-code`, `codex` or `gemini-cli`.
    pub agent: String,
    /// The agent's spend today, in USD.
    pub cost_usd: f64,
    /// The agent's tokens today, by kind.
    pub tokens: Tokens,
    /// The agent's sessions that started today.
    pub sessions: f64,
    /// Its API requests today.
    pub api_requests: u64,
}

/// One project of the month: its name, full path, and how its money is known.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectRow {
    /// Project name (the work tree's directory name); empty for usage without a known cwd.
    pub project: String,
    /// Full path of the project's work tree; null when unknown.
    pub path: Option<String>,
    /// This month's spend on the project, in USD.
    pub cost_usd: f64,
    /// This month's tokens on the project, by kind.
    pub tokens: Tokens,
    /// `claude_code.api_request` events, plus requests seen only in transcripts.
    pub api_requests: u64,
    /// Requests only the transcripts saw (the rest are exact, from telemetry).
    pub from_transcripts: u64,
    /// Of `cost_usd`, priced from the table rather than stated by Claude Code.
    pub priced_usd: f64,
    /// Tokens of models without any price.
    pub unpriced_tokens: f64,
    /// How the money is known, in one word (from `priced_usd` and `unpriced_tokens`).
    pub cost_source: CostSource,
}

/// How a row's money is known: what the window marks it with.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// All of it stated by Claude Code: telemetry's cost metric or a transcript's `cost-state`.
    Exact,
    /// Some of it priced from the price table (requests only the transcripts saw, without a
    /// `cost-state` of Claude Code's own yet).
    Priced,
    /// Some tokens are of a model without any price: the cost leaves them out (a lower bound).
    Unpriced,
}

impl CostSource {
    /// Unpriced tokens outweigh a table price: the row's cost is then incomplete, not estimated.
    fn of(transcripts: &crate::query::report::TranscriptFigures) -> CostSource {
        if unpriced_total(transcripts) > 0.0 {
            CostSource::Unpriced
        } else if transcripts.cost_usd_price_table > 0.0 {
            CostSource::Priced
        } else {
            CostSource::Exact
        }
    }
}

/// Tokens of models without any price, all models together.
fn unpriced_total(transcripts: &crate::query::report::TranscriptFigures) -> f64 {
    // Not `sum()`: the f64 sum of no values is -0.0, which the JSON would show.
    transcripts.unpriced_tokens.values().fold(0.0, |a, b| a + b)
}

/// Figures of today, this week or this month.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeriodSummary {
    /// Spend in USD (`claude_code.cost.usage`).
    pub cost_usd: f64,
    /// Tokens by kind (`claude_code.token.usage`).
    pub tokens: Tokens,
    /// Sessions started (`claude_code.session.count`).
    pub sessions: f64,
    /// Time Claude Code was active, in seconds (`claude_code.active_time.total`).
    pub active_time_seconds: f64,
    /// Number of `claude_code.api_request` events.
    pub api_requests: u64,
    /// Bounds of the period (RFC 3339, local).
    pub start: Option<String>,
    /// End of the period (RFC 3339, local), exclusive.
    pub end: Option<String>,
}

impl PeriodSummary {
    fn of(report: &Report) -> PeriodSummary {
        let f = &report.figures;
        PeriodSummary {
            cost_usd: f.cost_usd,
            tokens: f.tokens.clone(),
            sessions: f.sessions,
            active_time_seconds: f.active_time_seconds,
            api_requests: f.api_requests.count,
            start: report.start.clone(),
            end: report.end.clone(),
        }
    }
}

/// One model's spend this month.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelRow {
    /// Empty when Claude Code sent usage without a `model` attribute.
    pub model: String,
    /// The model's spend this month, in USD.
    pub cost_usd: f64,
    /// The model's tokens this month, by kind.
    pub tokens: Tokens,
    /// Of `cost_usd`, priced from the table rather than stated by Claude Code.
    pub priced_usd: f64,
    /// Of `tokens`, those without any price (the model is in no price table and Claude Code
    /// stated no cost for them): their cost is unknown, not $0.
    pub unpriced_tokens: f64,
    /// How the model's money is known.
    pub cost_source: CostSource,
}

/// One machine's share of today (see [`Reader::usage_by_machine`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MachineRow {
    /// `host.name` of forwarded data; this machine's host name for its own.
    pub machine: String,
    /// Who the forwarded data says it is from; null for this machine's own data.
    pub developer: Option<String>,
    /// True for the data this machine's own Claude Code sent (not forwarded to it).
    pub this_machine: bool,
    /// The machine's spend today, in USD.
    pub cost_usd: f64,
    /// The machine's tokens today, by kind.
    pub tokens: Tokens,
}

fn machine_rows(usage: Vec<crate::store::MachineUsage>) -> Vec<MachineRow> {
    let here = crate::forward::identity::host_name().unwrap_or_else(|| "this machine".into());
    usage
        .into_iter()
        .filter(|m| has_usage(&m.figures))
        .map(|m| MachineRow {
            this_machine: m.machine.is_none(),
            machine: m.machine.unwrap_or_else(|| here.clone()),
            developer: m.developer,
            cost_usd: m.figures.cost_usd,
            tokens: m.figures.tokens,
        })
        .collect()
}

/// One of today's sessions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionRow {
    /// Empty for usage sent without `session.id` (`OTEL_METRICS_INCLUDE_SESSION_ID=false`).
    pub session_id: String,
    /// Today's spend and tokens of the session (from metrics).
    pub cost_usd: f64,
    /// Today's tokens of the session, by kind (from metrics).
    pub tokens: Tokens,
    /// Today's `claude_code.api_request` events of the session.
    pub api_requests: u64,
    /// First stored event or metric point of the session (RFC 3339, local); null if unknown.
    pub started_at: Option<String>,
    /// From the first to the last stored event or point.
    pub duration_seconds: f64,
    /// Today's requests of the session only its transcript saw (the rest are telemetry's).
    pub from_transcripts: u64,
    /// Of `cost_usd`, priced from the table rather than stated by Claude Code.
    pub priced_usd: f64,
    /// Tokens of models without any price (not in `cost_usd`).
    pub unpriced_tokens: f64,
    /// How the session's money is known: `exact` (telemetry or Claude Code's own cost),
    /// `priced` (some from the price table) or `unpriced`.
    pub cost_source: CostSource,
    /// The models the session used today, in name order.
    pub models: Vec<String>,
    /// Today's API errors of the session (`claude_code.api_error` events).
    pub api_errors: u64,
    /// The session's project (its git work tree's folder name), when its transcript says.
    pub project: Option<String>,
    /// The project's full path.
    pub project_path: Option<String>,
}

/// Spend of one local day, for the daily chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayCost {
    /// Local calendar day, `YYYY-MM-DD`.
    pub date: String,
    /// The day's spend in USD (0 for a day without usage).
    pub cost_usd: f64,
}

/// Spend of one local hour of today, for the hourly chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HourCost {
    /// Local hour of today, `HH:00`.
    pub hour: String,
    /// The hour's spend in USD (0 for an hour without usage).
    pub cost_usd: f64,
}

/// The newest `claude_code.api_request` event, for "last request" in the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastRequest {
    /// RFC 3339, local.
    pub time: String,
    /// Seconds between the request and `generated_at` (never negative).
    pub seconds_ago: i64,
    /// The event's model, cost and tokens, flattened into this object.
    #[serde(flatten)]
    pub figures: EventFigures,
}

fn rfc3339(ns: i64) -> String {
    Local.timestamp_nanos(ns).to_rfc3339()
}

fn has_usage(f: &Figures) -> bool {
    f.cost_usd != 0.0 || f.tokens.total != 0.0
}

/// Everything the window shows, computed from the history at `now` (local time zone). Weeks
/// start on `budgets.week_start` (Monday unless configured), as for the weekly budget.
pub fn build(
    reader: &Reader,
    now: DateTime<Local>,
    endpoints: &Endpoints,
    budgets: &BudgetsConfig,
) -> Result<Dashboard, StoreError> {
    let week_start = budgets.week_start.0;
    let today_range = Period::Today.range_at(&now, week_start);
    let week_range = Period::Week.range_at(&now, week_start);
    let month_range = Period::Month.range_at(&now, week_start);
    let first_day = now.date_naive() - Duration::days(DAILY_DAYS - 1);
    let daily_range = TimeRange {
        start_ns: Some(local_midnight_ns(&Local, first_day)),
        end_ns: today_range.end_ns,
    };

    // Totals of a period come with its breakdown: one report per question.
    let today = reader.report("today", today_range, Some(GroupBy::Session))?;
    let week = reader.report("week", week_range, None)?;
    let month = reader.report("month", month_range, Some(GroupBy::Model))?;
    let by_hour = reader.report("today", today_range, Some(GroupBy::Hour))?;
    let by_day = reader.report("daily", daily_range, Some(GroupBy::Day))?;
    let by_project = reader.report("month", month_range, Some(GroupBy::Project))?;
    let by_agent = reader.report("today", today_range, Some(GroupBy::Agent))?;
    let times = reader.session_times(today_range)?;
    let session_models = reader.session_models(today_range)?;
    let places = today_places(reader, &today)?;
    let machines_today = machine_rows(reader.usage_by_machine(today_range)?);
    let last = reader.newest_request()?;
    let has_data = reader.has_any_data()?;
    let plan_limits = crate::plan::load(reader)?;

    let (sessions_today, sessions_today_count) =
        session_rows(&today, &times, &session_models, &places);
    let (budgets, budgets_error) = budget_status(reader, budgets, &now)?;
    Ok(Dashboard {
        generated_at: now.to_rfc3339(),
        has_data,
        cache_hit_ratio: today.figures.tokens.cache_hit_ratio(),
        today: PeriodSummary::of(&today),
        week: PeriodSummary::of(&week),
        month: PeriodSummary::of(&month),
        models: model_rows(&month),
        machines_today,
        sessions_today,
        sessions_today_count,
        daily: daily_costs(&by_day, first_day),
        hourly: hourly_costs(&by_hour),
        last_request: last_request(last, &now),
        budgets,
        budgets_error,
        plan_outlook: plan_limits
            .as_ref()
            .map(|p| p.outlook(now.timestamp_nanos_opt().unwrap_or(0))),
        plan_limits,
        endpoints: endpoints.clone(),
        setup_env: endpoints.claude_code_env(),
        projects: project_rows(&by_project),
        agents_today: agent_rows(&by_agent),
    })
}

/// Project, branch and PR of today's sessions only (not every session ever imported).
fn today_places(
    reader: &Reader,
    today: &Report,
) -> Result<HashMap<String, SessionPlace>, StoreError> {
    let mut places = HashMap::new();
    for g in today.groups.iter().flatten() {
        if let Some(place) = reader.session_place(&g.key)? {
            places.insert(g.key.clone(), place);
        }
    }
    Ok(places)
}

/// Today's agents with usage, most expensive first.
fn agent_rows(by_agent: &Report) -> Vec<AgentRow> {
    let mut rows: Vec<AgentRow> = by_agent
        .groups
        .iter()
        .flatten()
        .filter(|g| has_usage(&g.figures))
        .map(|g| AgentRow {
            agent: g.key.clone(),
            cost_usd: g.figures.cost_usd,
            tokens: g.figures.tokens.clone(),
            sessions: g.figures.sessions,
            api_requests: g.figures.api_requests.count + g.figures.agents.requests,
        })
        .collect();
    rows.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then_with(|| a.agent.cmp(&b.agent)));
    rows
}

/// The month's models with usage, most expensive first.
fn model_rows(month: &Report) -> Vec<ModelRow> {
    let mut models: Vec<ModelRow> = month
        .groups
        .iter()
        .flatten()
        .filter(|g| has_usage(&g.figures))
        .map(|g| ModelRow {
            model: g.key.clone(),
            cost_usd: g.figures.cost_usd,
            tokens: g.figures.tokens.clone(),
            priced_usd: g.figures.transcripts.cost_usd_price_table,
            unpriced_tokens: unpriced_total(&g.figures.transcripts),
            cost_source: CostSource::of(&g.figures.transcripts),
        })
        .collect();
    models.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then_with(|| b.tokens.total.total_cmp(&a.tokens.total))
            .then_with(|| a.model.cmp(&b.model))
    });
    models
}

/// Today's sessions, most recently started first and at most [`SESSIONS_SHOWN`], and how many
/// named sessions there were in all.
fn session_rows(
    today: &Report,
    times: &BTreeMap<String, SessionTimes>,
    models: &BTreeMap<String, Vec<String>>,
    places: &HashMap<String, SessionPlace>,
) -> (Vec<SessionRow>, usize) {
    let mut sessions: Vec<(Option<i64>, SessionRow)> = today
        .groups
        .iter()
        .flatten()
        // The unnamed group also collects session-less metrics (none today means nothing to show).
        .filter(|g| !g.key.is_empty() || has_usage(&g.figures))
        .map(|g| {
            let t = times.get(&g.key);
            let row = SessionRow {
                session_id: g.key.clone(),
                cost_usd: g.figures.cost_usd,
                tokens: g.figures.tokens.clone(),
                api_requests: g.figures.api_requests.count,
                started_at: t.map(|t| rfc3339(t.first_ns)),
                duration_seconds: t
                    .map(|t| (t.last_ns.saturating_sub(t.first_ns)).max(0) as f64 / 1e9)
                    .unwrap_or(0.0),
                from_transcripts: g.figures.transcripts.requests,
                priced_usd: g.figures.transcripts.cost_usd_price_table,
                unpriced_tokens: unpriced_total(&g.figures.transcripts),
                cost_source: CostSource::of(&g.figures.transcripts),
                models: models.get(&g.key).cloned().unwrap_or_default(),
                api_errors: g.figures.events.get(API_ERROR).copied().unwrap_or(0),
                project: places.get(&g.key).map(|p| p.project.clone()),
                project_path: places.get(&g.key).map(|p| p.project_path.clone()),
            };
            (t.map(|t| t.first_ns), row)
        })
        .collect();
    sessions.sort_by(|(a, ra), (b, rb)| b.cmp(a).then_with(|| ra.session_id.cmp(&rb.session_id)));
    let count = sessions.iter().filter(|(_, r)| !r.session_id.is_empty()).count();
    sessions.truncate(SESSIONS_SHOWN);
    (sessions.into_iter().map(|(_, r)| r).collect(), count)
}

/// One entry per day from `first_day` on, days without spend included.
fn daily_costs(by_day: &Report, first_day: chrono::NaiveDate) -> Vec<DayCost> {
    let day_costs: BTreeMap<&str, f64> =
        by_day.groups.iter().flatten().map(|g| (g.key.as_str(), g.figures.cost_usd)).collect();
    (0..DAILY_DAYS)
        .map(|i| {
            let date = (first_day + Duration::days(i)).format("%Y-%m-%d").to_string();
            let cost_usd = day_costs.get(date.as_str()).copied().unwrap_or(0.0);
            DayCost { date, cost_usd }
        })
        .collect()
}

/// Today's spend per hour of the clock, all 24 hours.
fn hourly_costs(by_hour: &Report) -> Vec<HourCost> {
    // Keys are `YYYY-MM-DDTHH:00`; on a day with a repeated hour (DST) both fold into one label.
    let mut hour_costs = [0.0f64; 24];
    for g in by_hour.groups.iter().flatten() {
        if let Some(h) = g.key.get(11..13).and_then(|h| h.parse::<usize>().ok()).filter(|h| *h < 24)
        {
            hour_costs[h] += g.figures.cost_usd;
        }
    }
    hour_costs
        .iter()
        .enumerate()
        .map(|(h, c)| HourCost { hour: format!("{h:02}:00"), cost_usd: *c })
        .collect()
}

/// The newest request of either source: telemetry's event or a request only the transcripts saw.
fn last_request(last: Option<NewestRequest>, now: &DateTime<Local>) -> Option<LastRequest> {
    let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    last.map(|e| LastRequest {
        time: rfc3339(e.time_ns),
        seconds_ago: (now_ns.saturating_sub(e.time_ns) / 1_000_000_000).max(0),
        figures: e.figures,
    })
}

/// The budgets' status, or why it cannot be computed; only a store failure fails the whole
/// dashboard, a bad budget shows as a message beside the rest.
fn budget_status(
    reader: &Reader,
    budgets: &BudgetsConfig,
    now: &DateTime<Local>,
) -> Result<(Option<BudgetStatus>, Option<String>), StoreError> {
    if budget::budgets(budgets).is_empty() {
        return Ok((None, None));
    }
    match budget::status(reader, budgets, now) {
        Ok(status) => Ok((Some(status), None)),
        Err(budget::BudgetError::Store(e)) => Err(e),
        Err(e) => Ok((None, Some(format!("cannot compute the budgets: {e}")))),
    }
}

fn project_rows(report: &crate::query::Report) -> Vec<ProjectRow> {
    let mut rows: Vec<ProjectRow> = report
        .groups
        .iter()
        .flatten()
        .filter(|g| has_usage(&g.figures))
        .map(|g| ProjectRow {
            project: g.key.clone(),
            path: g.detail.clone(),
            cost_usd: g.figures.cost_usd,
            tokens: g.figures.tokens.clone(),
            api_requests: g.figures.api_requests.count,
            from_transcripts: g.figures.transcripts.requests,
            priced_usd: g.figures.transcripts.cost_usd_price_table,
            unpriced_tokens: unpriced_total(&g.figures.transcripts),
            cost_source: CostSource::of(&g.figures.transcripts),
        })
        .collect();
    rows.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then_with(|| a.project.cmp(&b.project)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Listen;
    use crate::store::Store;
    use crate::testkit;

    /// What the window marks a row with: Claude Code's own money is exact, any table price
    /// makes it priced, and tokens without a price make the cost incomplete whatever else.
    #[test]
    fn cost_source_says_how_the_money_is_known() {
        use crate::query::report::TranscriptFigures;
        let exact =
            TranscriptFigures { requests: 2, cost_usd_claude_code: 0.5, ..Default::default() };
        assert_eq!(CostSource::of(&exact), CostSource::Exact);
        assert_eq!(CostSource::of(&TranscriptFigures::default()), CostSource::Exact);
        let priced = TranscriptFigures { cost_usd_price_table: 0.2, ..exact.clone() };
        assert_eq!(CostSource::of(&priced), CostSource::Priced);
        let mut unpriced = priced.clone();
        unpriced.unpriced_tokens.insert("claude-unknown-9".into(), 1290.0);
        assert_eq!(CostSource::of(&unpriced), CostSource::Unpriced);
        assert_eq!(unpriced_total(&unpriced), 1290.0);
        let json = serde_json::to_value(CostSource::Priced).expect("json");
        assert_eq!(json, serde_json::json!("priced"));
    }

    /// Today's session rows say which models a session used and how many of its requests
    /// failed; the Activity list keeps internal events behind `kind = all`.
    #[test]
    fn session_rows_carry_models_and_errors_and_activity_hides_internal_events() {
        use crate::ingest::{logs, metrics, Privacy};
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Local::now();
        let t = now.timestamp_nanos_opt().expect("ns") as u64 - 60_000_000_000;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let usage = testkit::Usage {
            cost_usd: 0.5,
            input: 10.0,
            output: 1.0,
            cache_read: 0.0,
            cache_creation: 0.0,
        };
        let store = rt.block_on(async {
            let store = Store::open(dir.path()).expect("store");
            let mut points = Vec::new();
            for (i, model) in ["claude-sonnet-4-5", "claude-opus-4-5"].into_iter().enumerate() {
                let at = t + i as u64 * 1_000_000;
                points.extend(testkit::usage_metrics("two", "u", model, usage, at - 1, at, false));
            }
            let req = testkit::metrics_request(points);
            store.ingest(metrics::normalize(req, t as i64)).await.expect("metrics");
            let records = vec![
                testkit::api_request_record("two", "u", "claude-opus-4-5", usage, t),
                testkit::event_record("two", "api_error", &[("error", "Overloaded")], t + 1),
                testkit::event_record("two", "api_error", &[("error", "Overloaded")], t + 2),
                testkit::event_record("two", "plugin_loaded", &[], t + 3),
            ];
            let req = testkit::logs_request(records);
            store.ingest(logs::normalize(req, t as i64, Privacy::default())).await.expect("logs");
            store
        });
        let reader = store.reader().expect("reader");
        let endpoints = Endpoints::from_listen(&Listen::default());
        let d = build(&reader, now, &endpoints, &BudgetsConfig::default()).expect("dashboard");
        let row = d.sessions_today.iter().find(|r| r.session_id == "two").expect("session row");
        assert_eq!(row.models, ["claude-opus-4-5", "claude-sonnet-4-5"]);
        assert_eq!(row.api_errors, 2);
        assert_eq!(d.agents_today.len(), 1, "{:?}", d.agents_today);
        assert_eq!(d.agents_today[0].agent, "claude-code");
        assert!((d.agents_today[0].cost_usd - d.today.cost_usd).abs() < 1e-9);

        let kinds = |kind: Option<&str>| -> Vec<String> {
            activity::activity(&reader, None, kind, 100)
                .expect("activity")
                .into_iter()
                .map(|r| r.kind)
                .collect()
        };
        assert_eq!(kinds(None), ["api_error", "api_error", "api_request"]);
        assert_eq!(kinds(Some(activity::ALL_KINDS))[0], "plugin_loaded");
        assert_eq!(kinds(Some("api_request")), ["api_request"]);
        drop(reader);
        store.close();
    }

    /// Issue 14: a busy day must not make the dashboard JSON grow with its sessions.
    #[test]
    fn ten_thousand_sessions_today_keep_the_json_small() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Local::now();
        let now_ns = now.timestamp_nanos_opt().expect("ns");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let store = rt.block_on(async {
            let store = Store::open(dir.path()).expect("store");
            // 10,000 sessions of one cost and four token points each, in two requests.
            for first in [0, 5_000] {
                let req = testkit::load_request(25_000, first, now_ns as u64);
                let ack = store.ingest(crate::ingest::metrics::normalize(req, now_ns)).await;
                assert_eq!(ack.expect("ingest").accepted, 25_000);
            }
            store
        });
        let reader = store.reader().expect("reader");
        let endpoints = Endpoints::from_listen(&Listen::default());
        let d = build(&reader, now, &endpoints, &BudgetsConfig::default()).expect("dashboard");
        assert_eq!(d.sessions_today_count, 10_000);
        assert_eq!(d.sessions_today.len(), SESSIONS_SHOWN);
        let json = serde_json::to_string(&d).expect("json");
        assert!(json.len() < 100_000, "{} bytes", json.len());
        store.close();
    }
}
