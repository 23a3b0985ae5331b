//! Budgets: spend per local day, week and month against limits, a forecast of where each period
//! ends, and one alert per threshold and period.
//!
//! * [`status`] — the figures of every configured budget at an instant (what `tokentray budget
//!   status --json`, the tray label and the dashboard show).
//! * [`Evaluator`] — subscribed to [`Store::subscribe`](crate::store::Store::subscribe): after
//!   each commit it recomputes the budgets and notifies a threshold crossed for the first time
//!   in its period, through a [`Notifier`] (desktop, log, command, webhook: the core does not
//!   know which). A timer to the next period boundary republishes the status when a day, week
//!   or month starts; no data is polled.
//! * [`AlertState`] — which thresholds fired (SQLite, so a restart does not repeat them) and
//!   whether alerts are paused.
//! * [`forecast`] — the projection, and why it counts active hours rather than wall-clock ones.
//! * [`edit`] — `budget set`/`unset` on the TOML file, keeping the user's comments.
//! * [`BudgetsSource`] — the budgets in effect for the dashboard and tray, following the file.
//!
//! Periods are in the evaluator's time zone (the local one in production; any
//! `chrono::TimeZone` in tests), so DST days have 23 or 25 hours and nothing else changes.

mod alert;
mod clock;
pub mod edit;
mod evaluator;
pub(crate) mod forecast;
mod source;
mod state;

pub use alert::{Alert, LogNotifier, Notifier, Notifiers, NotifyError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use evaluator::{Evaluator, EvaluatorHandle};
pub use source::BudgetsSource;
pub use state::AlertState;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveTime, SecondsFormat, TimeZone, Utc, Weekday};
use serde::Serialize;

use crate::config::{BudgetLimit, BudgetsConfig};
use crate::query::report::names;
use crate::query::{local_midnight_ns, Period};
use crate::store::{Reader, StoreError};
use forecast::{ActivityProfile, SlotCosts, SLOT_NS};

/// What can go wrong evaluating or editing budgets.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// Reading spend or alert state from the history failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored alert state could not be read or written (SQLite's message).
    #[error("budget state: {0}")]
    Sqlite(String),
    /// The config file could not be read (`budget set` edits it in place).
    #[error("cannot read {path}: {reason}")]
    ReadConfig {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The edited config file could not be written.
    #[error("cannot write {path}: {reason}")]
    WriteConfig {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The config file is not TOML, or its `[budgets]` section has the wrong shape.
    #[error("{path}: {reason}")]
    InvalidConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong, in the parser's words.
        reason: String,
    },
    /// A value given on the command line is out of range (a negative limit, a bad threshold).
    #[error("{0}")]
    Invalid(String),
    /// The evaluator's task has ended (the engine is shutting down).
    #[error("the budget evaluator has stopped")]
    Stopped,
}

/// The period a budget covers, in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// From local midnight to the next.
    Daily,
    /// From Monday 00:00 local to the next Monday.
    Weekly,
    /// From the 1st 00:00 local to the next month's 1st.
    Monthly,
}

impl BudgetPeriod {
    /// Every period, in the order they are shown.
    pub const ALL: [BudgetPeriod; 3] =
        [BudgetPeriod::Daily, BudgetPeriod::Weekly, BudgetPeriod::Monthly];

    /// `daily`, `weekly`, `monthly`: the config key and the CLI word.
    pub fn name(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Weekly => "weekly",
            BudgetPeriod::Monthly => "monthly",
        }
    }

    /// `day`, `week`, `month`.
    pub fn noun(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "day",
            BudgetPeriod::Weekly => "week",
            BudgetPeriod::Monthly => "month",
        }
    }

    /// The report period that covers the same span (today, this week, this month).
    pub fn period(self) -> Period {
        match self {
            BudgetPeriod::Daily => Period::Today,
            BudgetPeriod::Weekly => Period::Week,
            BudgetPeriod::Monthly => Period::Month,
        }
    }

    /// `[start, end)` in unix nanoseconds of the period containing `now`.
    pub fn range_at<Tz: TimeZone>(self, now: &DateTime<Tz>, week_start: Weekday) -> (i64, i64) {
        let r = self.period().range_at(now, week_start);
        // Named periods are always bounded; the fallbacks only keep this total.
        (r.start_ns.unwrap_or(i64::MIN), r.end_ns.unwrap_or(i64::MAX))
    }
}

impl std::str::FromStr for BudgetPeriod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "daily" | "day" | "today" => BudgetPeriod::Daily,
            "weekly" | "week" => BudgetPeriod::Weekly,
            "monthly" | "month" => BudgetPeriod::Monthly,
            other => {
                return Err(format!("unknown budget period '{other}' (daily, weekly, monthly)"))
            }
        })
    }
}

impl Display for BudgetPeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One configured budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The span the limit applies to.
    pub period: BudgetPeriod,
    /// Only this model's spend; `None` is every model together.
    pub model: Option<String>,
    /// Only this agent's spend (`claude-code`, `codex`, `gemini-cli`); `None` is every agent.
    pub agent: Option<String>,
    /// The limit, in USD.
    pub limit_usd: f64,
    /// Percentages of the limit, ascending.
    pub thresholds: Vec<u32>,
}

impl Budget {
    fn new(period: BudgetPeriod, scope: edit::Scope<'_>, limit: &BudgetLimit) -> Budget {
        let (model, agent) = match scope {
            edit::Scope::All => (None, None),
            edit::Scope::Model(m) => (Some(m.to_string()), None),
            edit::Scope::Agent(a) => (None, Some(a.to_string())),
        };
        Budget {
            period,
            model,
            agent,
            limit_usd: limit.limit_usd,
            thresholds: limit.thresholds.clone(),
        }
    }

    /// Identifies the budget in the fired-alert state. The limit is part of it: raising or
    /// lowering a limit makes a new budget whose thresholds are armed again.
    pub fn key(&self) -> String {
        let whose = match (&self.model, &self.agent) {
            (Some(m), _) => m.clone(),
            (None, Some(a)) => format!("agent={a}"),
            (None, None) => "*".to_string(),
        };
        format!("{}:{whose}:{}", self.period.name(), self.limit_usd)
    }

    /// The highest threshold `spent` has reached (reaching counts: $16 of $20 is 80%).
    pub fn highest_crossed(&self, spent: f64) -> Option<u32> {
        // Compared as spent × 100 ≥ limit × t: no division, so 16 of 20 is exactly 80.
        self.thresholds
            .iter()
            .copied()
            .filter(|&t| spent * 100.0 >= self.limit_usd * f64::from(t))
            .max()
    }
}

/// Every budget of the config: daily, weekly, monthly for all models, then per model.
pub fn budgets(config: &BudgetsConfig) -> Vec<Budget> {
    let mut out = Vec::new();
    for (period, limit) in [
        (BudgetPeriod::Daily, &config.daily),
        (BudgetPeriod::Weekly, &config.weekly),
        (BudgetPeriod::Monthly, &config.monthly),
    ] {
        if let Some(limit) = limit {
            out.push(Budget::new(period, edit::Scope::All, limit));
        }
    }
    let models = config.models.iter().map(|(m, b)| (edit::Scope::Model(m), b));
    let agents = config.agents.iter().map(|(a, b)| (edit::Scope::Agent(a), b));
    for (scope, m) in models.chain(agents) {
        for (period, limit) in [
            (BudgetPeriod::Daily, &m.daily),
            (BudgetPeriod::Weekly, &m.weekly),
            (BudgetPeriod::Monthly, &m.monthly),
        ] {
            if let Some(limit) = limit {
                out.push(Budget::new(period, scope, limit));
            }
        }
    }
    out
}

/// Where one budget stands (one entry of `budget status --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetState {
    /// The budget's period.
    pub period: BudgetPeriod,
    /// The budget's model; `None` is every model together.
    pub model: Option<String>,
    /// The budget's agent; absent for a budget of every agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The limit, in USD.
    pub limit_usd: f64,
    /// Exact sum of `claude_code.cost.usage` in the period (what `tokentray report` says).
    pub spent_usd: f64,
    /// Of the limit, rounded to 0.01.
    pub percent: f64,
    /// The alert thresholds, percent of the limit, ascending.
    pub thresholds: Vec<u32>,
    /// The highest threshold the spend has reached this period, if any.
    pub highest_crossed: Option<u32>,
    /// Projected spend at the end of the period (see [`forecast`]), rounded to cents.
    pub forecast_usd: f64,
    /// When the projection reaches the limit (RFC 3339, local); null if it has or will not.
    pub reach_limit_at: Option<String>,
    /// False while the history is too short to project ("not enough data yet"; see
    /// [`forecast::enough_data`]): `forecast_usd` is then what was spent.
    pub forecast_ready: bool,
    /// The period's start, RFC 3339, local.
    pub period_start: String,
    /// The period's end (exclusive), RFC 3339, local.
    pub period_end: String,
    /// The budget's identity for alert state (period and model), stable across restarts.
    #[serde(skip)]
    pub key: String,
    /// `period_start` in nanoseconds since the epoch.
    #[serde(skip)]
    pub period_start_ns: i64,
    /// `period_end` in nanoseconds since the epoch.
    #[serde(skip)]
    pub period_end_ns: i64,
    /// `reach_limit_at` in nanoseconds since the epoch.
    #[serde(skip)]
    pub reach_limit_at_ns: Option<i64>,
}

impl BudgetState {
    /// Whether the spend is at or past the limit.
    pub fn over_limit(&self) -> bool {
        self.spent_usd >= self.limit_usd
    }
}

/// Every budget at one instant, and whether alerts are paused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// Every configured budget, daily first.
    pub budgets: Vec<BudgetState>,
    /// RFC 3339, local; null when alerts are on.
    pub paused_until: Option<String>,
    /// `paused_until` in nanoseconds since the epoch.
    #[serde(skip)]
    pub paused_until_ns: Option<i64>,
}

/// How bad it is, for exit codes and icons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Under every threshold.
    Ok = 0,
    /// Past a threshold.
    Threshold = 1,
    /// At or past a limit.
    OverLimit = 2,
}

impl BudgetStatus {
    /// The worst level over every budget (the tray icon and `budget status`'s exit code).
    pub fn level(&self) -> Level {
        self.budgets
            .iter()
            .map(|b| {
                if b.over_limit() {
                    Level::OverLimit
                } else if b.highest_crossed.is_some() {
                    Level::Threshold
                } else {
                    Level::Ok
                }
            })
            .max()
            .unwrap_or(Level::Ok)
    }

    /// Whether alerts are paused at `now`.
    pub fn is_paused(&self, now: DateTime<Utc>) -> bool {
        self.paused_until_ns.zip(now.timestamp_nanos_opt()).is_some_and(|(until, now)| now < until)
    }
}

/// The figures of every budget in `budgets` at `now` (periods in `now`'s time zone).
pub fn status<Tz>(
    reader: &Reader,
    budgets: &BudgetsConfig,
    now: &DateTime<Tz>,
) -> Result<BudgetStatus, BudgetError>
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    let list = self::budgets(budgets);
    let states = compute(reader, &list, budgets.week_start.0, now)?;
    let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let paused_until_ns = reader.alerts_paused_until_ns()?.filter(|&until| until > now_ns);
    Ok(BudgetStatus {
        budgets: states,
        paused_until: paused_until_ns.map(|ns| rfc3339(&now.timezone(), ns)),
        paused_until_ns,
    })
}

pub(crate) fn rfc3339<Tz: TimeZone>(tz: &Tz, ns: i64) -> String
where
    Tz::Offset: Display,
{
    tz.timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn round_to(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

fn ceil_slot(ns: i64) -> i64 {
    ns.div_euclid(SLOT_NS) + i64::from(ns.rem_euclid(SLOT_NS) != 0)
}

/// A budget's filter: (model, agent); both `None` for all spend.
type Filter<'a> = (Option<&'a str>, Option<&'a str>);

/// Spend, percent and forecast of each budget at `now`, from one query over the union of their
/// periods and the forecast's history window.
pub(crate) fn compute<Tz>(
    reader: &Reader,
    list: &[Budget],
    week_start: Weekday,
    now: &DateTime<Tz>,
) -> Result<Vec<BudgetState>, BudgetError>
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let tz = now.timezone();
    let now_ns = now
        .timestamp_nanos_opt()
        .ok_or_else(|| BudgetError::Invalid("the clock is out of range".into()))?;
    let today = now.date_naive();
    let today_start_ns = local_midnight_ns(&tz, today);
    let profile_start_ns = local_midnight_ns(&tz, today - Duration::days(forecast::PROFILE_DAYS));
    let ranges: Vec<(i64, i64)> = list.iter().map(|b| b.period.range_at(now, week_start)).collect();
    let lo_ns = ranges.iter().map(|r| r.0).min().unwrap_or(today_start_ns).min(profile_start_ns);
    let hi_ns = ranges.iter().map(|r| r.1).max().unwrap_or(now_ns).max(now_ns);

    let history_start = reader.first_usage_slot()?;
    let mut per_model: HashMap<String, SlotCosts> = HashMap::new();
    let mut per_agent: HashMap<String, SlotCosts> = HashMap::new();
    let mut all = SlotCosts::new();
    // Claude Code's spend: telemetry's cost and what the transcripts add to it (the same
    // counting rule as reports); then the other agents' requests (Codex CLI, Gemini CLI).
    let mut rows: Vec<(i64, String, String, f64)> = reader
        .sum_by_slot_and_model(names::COST, lo_ns.div_euclid(SLOT_NS), ceil_slot(hi_ns))?
        .into_iter()
        .chain(reader.transcript_cost_slots(lo_ns, hi_ns)?)
        .map(|(slot, model, cost)| (slot, crate::pricing::CLAUDE_CODE.to_string(), model, cost))
        .collect();
    rows.extend(reader.agent_cost_slots(lo_ns, hi_ns)?);
    for (slot, agent, model, cost) in rows {
        *all.entry(slot).or_insert(0.0) += cost;
        *per_model.entry(model).or_default().entry(slot).or_insert(0.0) += cost;
        *per_agent.entry(agent).or_default().entry(slot).or_insert(0.0) += cost;
    }
    let empty = SlotCosts::new();
    // One profile and rate per filter, shared by its daily, weekly and monthly budgets.
    let mut profiles: BTreeMap<Filter<'_>, (ActivityProfile, f64)> = BTreeMap::new();

    let mut out = Vec::with_capacity(list.len());
    for (budget, &(start_ns, end_ns)) in list.iter().zip(&ranges) {
        let costs = match (&budget.model, &budget.agent) {
            (Some(m), _) => per_model.get(m).unwrap_or(&empty),
            (None, Some(a)) => per_agent.get(a).unwrap_or(&empty),
            (None, None) => &all,
        };
        // `+ 0.0`: an empty float sum is -0.0, which would print as "$-0.00".
        let spent: f64 = costs
            .range(start_ns.div_euclid(SLOT_NS)..ceil_slot(end_ns))
            .map(|(_, c)| c)
            .sum::<f64>()
            + 0.0;
        let filter = (budget.model.as_deref(), budget.agent.as_deref());
        let (profile, rate) = profiles.entry(filter).or_insert_with(|| {
            (
                ActivityProfile::build(costs, &tz, today_start_ns, now_ns, history_start),
                forecast::burn_rate(costs, now_ns),
            )
        });
        let today_end_ns = local_midnight_ns(&tz, today + Duration::days(1));
        let ready = forecast::enough_data(costs, now_ns, history_start, today_end_ns, end_ns);
        let projection = if ready {
            forecast::project(
                profile,
                *rate,
                &tz,
                now_ns.max(start_ns),
                end_ns,
                spent,
                budget.limit_usd,
            )
        } else {
            forecast::Projection {
                forecast_usd: spent,
                reach_limit_at_ns: None,
                rate_usd_per_active_slot: *rate,
                active_slots_left: 0.0,
            }
        };
        out.push(BudgetState {
            period: budget.period,
            model: budget.model.clone(),
            agent: budget.agent.clone(),
            limit_usd: budget.limit_usd,
            spent_usd: spent,
            percent: round_to(spent / budget.limit_usd * 100.0, 0.01),
            thresholds: budget.thresholds.clone(),
            highest_crossed: budget.highest_crossed(spent),
            forecast_usd: round_to(projection.forecast_usd, 0.01),
            reach_limit_at: projection.reach_limit_at_ns.map(|ns| rfc3339(&tz, ns)),
            forecast_ready: ready,
            period_start: rfc3339(&tz, start_ns),
            period_end: rfc3339(&tz, end_ns),
            key: budget.key(),
            period_start_ns: start_ns,
            period_end_ns: end_ns,
            reach_limit_at_ns: projection.reach_limit_at_ns,
        });
    }
    Ok(out)
}

/// Start of the next local day after `now`: when "pause until tomorrow" ends.
pub fn tomorrow_start<Tz: TimeZone>(now: &DateTime<Tz>) -> DateTime<Utc> {
    Utc.timestamp_nanos(local_midnight_ns(&now.timezone(), now.date_naive() + Duration::days(1)))
}

/// The next time the local clock shows `at` after `now` (today if still ahead, else tomorrow);
/// for `budget pause --until 14:30`. A time skipped by a DST jump resolves to the first instant
/// after the gap.
pub fn next_local_time<Tz: TimeZone>(now: &DateTime<Tz>, at: NaiveTime) -> DateTime<Utc> {
    let tz = now.timezone();
    let resolve = |day: chrono::NaiveDate| {
        let mut probe = day.and_time(at);
        for _ in 0..8 {
            match tz.from_local_datetime(&probe) {
                chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
                chrono::LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
                chrono::LocalResult::None => probe += Duration::minutes(15),
            }
        }
        tz.from_utc_datetime(&probe).with_timezone(&Utc)
    };
    let today = resolve(now.date_naive());
    if today > now.with_timezone(&Utc) {
        today
    } else {
        resolve(now.date_naive() + Duration::days(1))
    }
}

#[cfg(test)]
mod tests;
