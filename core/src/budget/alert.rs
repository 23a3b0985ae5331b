//! What an alert says, and the trait that delivers it. The core stays headless: desktop
//! notifications, commands and webhooks are implemented by the binary.

use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, TimeZone};
use serde::Serialize;

use super::{rfc3339, BudgetPeriod, BudgetState};
use crate::query::format::{usd, usd_short};

/// One threshold of one budget crossed for the first time in its period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Notification title: `Daily budget: 80% reached`.
    pub summary: String,
    /// `80% of your $20 daily budget ($16.12). At this pace you reach $20 around 16:40.`
    pub body: String,
    /// The budget's period: daily, weekly or monthly.
    pub period: BudgetPeriod,
    /// The model the budget limits; `None` for a budget on all models together.
    pub model: Option<String>,
    /// Percent of the limit that was crossed (the highest one, when several were at once).
    pub threshold: u32,
    /// The budget's limit in USD.
    pub limit_usd: f64,
    /// Spend so far in the period, in USD.
    pub spent_usd: f64,
    /// `spent_usd` as a percentage of `limit_usd` (may exceed 100).
    pub percent: f64,
    /// Spend projected for the end of the period at the current pace, in USD.
    pub forecast_usd: f64,
    /// RFC 3339, local; null when the limit is reached already or not expected this period.
    pub reach_limit_at: Option<String>,
    /// Start of the budget's period (RFC 3339, local).
    pub period_start: String,
    /// End of the budget's period, exclusive (RFC 3339, local).
    pub period_end: String,
    /// When the alert was raised (RFC 3339, local).
    pub fired_at: String,
}

/// Why a notifier could not deliver an alert.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A channel failed: the program exited non-zero, the webhook failed, D-Bus refused, ….
    #[error("{channel}: {reason}")]
    Failed {
        /// The channel that failed (`desktop`, `command`, `webhook`, …).
        channel: &'static str,
        /// What went wrong, in words.
        reason: String,
    },
}

/// Delivers alerts. Called from the evaluator's own thread, so an implementation may block
/// (a D-Bus call, an HTTP POST); it should not block for long, since evaluation waits.
pub trait Notifier: Send + Sync {
    /// Delivers one alert; an error says which channel failed and why.
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError>;
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        (**self).notify(alert)
    }
}

impl<N: Notifier + ?Sized> Notifier for Box<N> {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        (**self).notify(alert)
    }
}

/// Writes each alert to the log (`tracing`, level info). `serve` always has it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        tracing::info!(
            period = alert.period.name(),
            model = alert.model.as_deref().unwrap_or("*"),
            threshold = alert.threshold,
            spent_usd = alert.spent_usd,
            limit_usd = alert.limit_usd,
            "budget alert: {}",
            alert.body
        );
        Ok(())
    }
}

/// Several notifiers: every one is tried; the first failure is returned after all have run, so
/// one broken channel does not silence the others.
#[derive(Default)]
pub struct Notifiers {
    list: Vec<Box<dyn Notifier>>,
}

impl Notifiers {
    /// No notifiers yet.
    pub fn new() -> Notifiers {
        Notifiers::default()
    }

    /// Adds `notifier`, builder style.
    pub fn with(mut self, notifier: impl Notifier + 'static) -> Notifiers {
        self.list.push(Box::new(notifier));
        self
    }

    /// Adds an already boxed notifier.
    pub fn push(&mut self, notifier: Box<dyn Notifier>) {
        self.list.push(notifier);
    }

    /// How many notifiers there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are no notifiers.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Notifier for Notifiers {
    fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let mut first = None;
        for n in &self.list {
            if let Err(e) = n.notify(alert) {
                tracing::warn!(error = %e, "could not deliver a budget alert");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// "16:40" today, "Thu 16:40" within the week, "Nov 28" further out; rounded to 5 minutes
/// since the projection is an estimate ("around").
fn around<Tz: TimeZone>(tz: &Tz, now_ns: i64, at_ns: i64) -> String
where
    Tz::Offset: Display,
{
    const FIVE_MIN: i64 = 300 * 1_000_000_000;
    let rounded = (at_ns + FIVE_MIN / 2).div_euclid(FIVE_MIN) * FIVE_MIN;
    let now: DateTime<Tz> = tz.timestamp_nanos(now_ns);
    let t: DateTime<Tz> = tz.timestamp_nanos(rounded);
    let days = (t.date_naive() - now.date_naive()).num_days();
    if days == 0 {
        t.format("%H:%M").to_string()
    } else if (1..7).contains(&days) {
        t.format("%a %H:%M").to_string()
    } else {
        t.format("%b %-d").to_string()
    }
}

impl Alert {
    /// The alert for `threshold` of `state`, worded at `now`.
    pub fn new<Tz: TimeZone>(state: &BudgetState, threshold: u32, now: &DateTime<Tz>) -> Alert
    where
        Tz::Offset: Display,
    {
        let tz = now.timezone();
        let now_ns = now.timestamp_nanos_opt().unwrap_or(0);
        let period = state.period;
        let capital = {
            let n = period.name();
            let mut c = n.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        };
        let (summary, what) = match (&state.model, &state.agent) {
            (None, None) => (
                format!("{capital} budget: {threshold}% reached"),
                format!("{} budget", period.name()),
            ),
            // One model's or one agent's spend (a budget has at most one of them).
            (Some(whose), _) | (None, Some(whose)) => (
                format!("{capital} {whose} budget: {threshold}% reached"),
                format!("{} budget for {whose}", period.name()),
            ),
        };
        let limit = usd_short(state.limit_usd);
        let mut body = format!("{threshold}% of your {limit} {what} ({}).", usd(state.spent_usd));
        if state.spent_usd < state.limit_usd {
            if let Some(at) = state.reach_limit_at_ns {
                body +=
                    &format!(" At this pace you reach {limit} around {}.", around(&tz, now_ns, at));
            }
        } else if state.forecast_usd >= state.spent_usd + 0.01 {
            body += &format!(
                " At this pace the {} ends around {}.",
                period.noun(),
                usd(state.forecast_usd)
            );
        }
        Alert {
            summary,
            body,
            period,
            model: state.model.clone(),
            threshold,
            limit_usd: state.limit_usd,
            spent_usd: state.spent_usd,
            percent: state.percent,
            forecast_usd: state.forecast_usd,
            reach_limit_at: state.reach_limit_at.clone(),
            period_start: state.period_start.clone(),
            period_end: state.period_end.clone(),
            fired_at: rfc3339(&tz, now_ns),
        }
    }

    /// Values for the `{name}` placeholders of `[alerts] command`.
    pub(crate) fn placeholders(&self) -> Vec<(&'static str, String)> {
        vec![
            ("summary", self.summary.clone()),
            ("body", self.body.clone()),
            ("period", self.period.name().to_string()),
            ("model", self.model.clone().unwrap_or_default()),
            ("threshold", self.threshold.to_string()),
            ("percent", format!("{:.0}", self.percent)),
            ("spent_usd", format!("{:.2}", self.spent_usd)),
            ("limit_usd", format!("{:.2}", self.limit_usd)),
            ("forecast_usd", format!("{:.2}", self.forecast_usd)),
            ("reach_limit_at", self.reach_limit_at.clone().unwrap_or_default()),
            ("json", serde_json::to_string(self).unwrap_or_default()),
        ]
    }

    /// Replaces `{name}` placeholders in one argument, in a single pass (a body containing
    /// `{model}` is not substituted again). Unknown names are kept as written.
    pub fn substitute(&self, template: &str) -> String {
        let values = self.placeholders();
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) => {
                    let name = &after[..close];
                    match values.iter().find(|(k, _)| *k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push('{');
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}
