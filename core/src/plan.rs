//! Plan usage (the 5-hour and 7-day rate-limit windows of a Claude subscription), as Claude Code
//! reports it to its `statusLine` command. tokentray reads no credential and asks no server:
//! `tokentray statusline` receives the JSON Claude Code passes on stdin, keeps the latest
//! `rate_limits` in the history database (the `settings` table, shared with the running engine),
//! and the window and `/api/dashboard` show them from there.

use std::path::Path;

use chrono::{Local, TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Reader, StoreError};

/// One rate-limit window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Share of the window's allowance used, 0–100.
    pub used_percentage: f64,
    /// When the window resets (RFC 3339, local), if Claude Code said.
    pub resets_at: Option<String>,
}

/// The latest plan usage Claude Code reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLimits {
    /// The 5-hour window (`rate_limits.five_hour`); `None` when Claude Code did not report it.
    pub five_hour: Option<Window>,
    /// The 7-day window (`rate_limits.seven_day`); `None` when Claude Code did not report it.
    pub seven_day: Option<Window>,
    /// When the statusline handed it over (RFC 3339, local).
    pub reported_at: String,
}

/// How long each window lasts: it resets this long after its first request.
pub const FIVE_HOUR_NS: i64 = 5 * 3_600_000_000_000;
/// The 7-day window's length.
pub const SEVEN_DAY_NS: i64 = 7 * 24 * 3_600_000_000_000;

/// What a window's figures say about the time ahead, for the window and the statusline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowOutlook {
    /// "resets in 2 h 17 m"; `None` when Claude Code gave no reset time.
    pub resets_in: Option<String>,
    /// When the allowance is used up at the pace since the window began (RFC 3339, local), if
    /// before the reset.
    pub full_at: Option<String>,
    /// `full_at` as the local `HH:MM`.
    pub full_at_clock: Option<String>,
}

impl Window {
    /// The reset time in nanoseconds since the epoch, if Claude Code gave one.
    pub fn resets_ns(&self) -> Option<i64> {
        let at = chrono::DateTime::parse_from_rfc3339(self.resets_at.as_deref()?).ok()?;
        at.timestamp_nanos_opt()
    }

    /// The countdown and the time the pace uses the window up, `length_ns` being its length.
    pub fn outlook(&self, length_ns: i64, now_ns: i64) -> WindowOutlook {
        let resets = self.resets_ns();
        let full = resets.and_then(|r| {
            crate::statusline::window_full_at_ns(now_ns, self.used_percentage, r, length_ns)
        });
        WindowOutlook {
            resets_in: resets.map(|r| crate::statusline::countdown(now_ns, r)),
            full_at: full.map(|t| Local.timestamp_nanos(t).to_rfc3339()),
            full_at_clock: full.map(|t| crate::statusline::clock(&Local, t)),
        }
    }
}

/// Both windows' outlooks (the dashboard's `plan_outlook`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOutlook {
    /// The 5-hour window's; `None` when it was not reported.
    pub five_hour: Option<WindowOutlook>,
    /// The 7-day window's; `None` when it was not reported.
    pub seven_day: Option<WindowOutlook>,
}

impl PlanLimits {
    /// What the windows say about the time ahead, as of `now_ns`.
    pub fn outlook(&self, now_ns: i64) -> PlanOutlook {
        PlanOutlook {
            five_hour: self.five_hour.as_ref().map(|w| w.outlook(FIVE_HOUR_NS, now_ns)),
            seven_day: self.seven_day.as_ref().map(|w| w.outlook(SEVEN_DAY_NS, now_ns)),
        }
    }
}

/// The `rate_limits` of a statusline JSON, or `None` when it carries none (API-key users, older
/// Claude Code versions).
pub fn from_statusline(input: &Value, now_ns: i64) -> Option<PlanLimits> {
    let limits = input.get("rate_limits")?;
    let window = |name: &str| {
        let w = limits.get(name)?;
        let used = w.get("used_percentage").and_then(Value::as_f64)?;
        Some(Window { used_percentage: used, resets_at: w.get("resets_at").and_then(resets_at) })
    };
    let (five_hour, seven_day) = (window("five_hour"), window("seven_day"));
    if five_hour.is_none() && seven_day.is_none() {
        return None;
    }
    Some(PlanLimits {
        five_hour,
        seven_day,
        reported_at: Local.timestamp_nanos(now_ns).to_rfc3339(),
    })
}

/// A reset time as RFC 3339: given as text (kept), or as unix seconds or milliseconds.
fn resets_at(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            let n = n.as_f64()?;
            // Milliseconds since 1970 are > 1e11 for any date after 1973; seconds are not.
            let ms = if n > 1e11 { n } else { n * 1000.0 };
            Local.timestamp_millis_opt(ms as i64).single().map(|t| t.to_rfc3339())
        }
        _ => None,
    }
}

/// Stores the limits in the history of `data_dir` (creating it on a first run).
pub fn save(data_dir: &Path, limits: &PlanLimits) -> Result<(), StoreError> {
    let json = serde_json::to_string(limits).map_err(|e| StoreError::Encode(e.to_string()))?;
    crate::store::save_plan_rate_limits(data_dir, &json)
}

/// The latest stored limits.
pub fn load(reader: &Reader) -> Result<Option<PlanLimits>, StoreError> {
    let text = reader.plan_rate_limits_json()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_read_from_the_statusline_json() {
        let input: Value = serde_json::from_str(
            r#"{"model": {"display_name": "Opus"}, "rate_limits": {"five_hour": {"used_percentage": 37.5, "resets_at": 1796400000}, "seven_day": {"used_percentage": 12}}}"#,
        )
        .expect("json");
        let p = from_statusline(&input, 0).expect("limits");
        assert_eq!(p.five_hour.as_ref().map(|w| w.used_percentage), Some(37.5));
        let reset = p.five_hour.and_then(|w| w.resets_at).expect("reset");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(&reset).expect("rfc3339").timestamp(),
            1_796_400_000
        );
        assert_eq!(p.seven_day, Some(Window { used_percentage: 12.0, resets_at: None }));
        let none: Value = serde_json::from_str(
            r#"{"model": {"display_name": "Opus"}, "cost": {"total_cost_usd": 0.5}}"#,
        )
        .expect("json");
        assert_eq!(from_statusline(&none, 0), None);
    }

    #[test]
    fn saved_limits_are_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = PlanLimits {
            five_hour: Some(Window { used_percentage: 37.0, resets_at: None }),
            seven_day: None,
            reported_at: "2026-11-29T10:00:00+00:00".into(),
        };
        save(dir.path(), &limits).expect("save");
        let reader = Reader::open(dir.path()).expect("reader");
        assert_eq!(load(&reader).expect("load"), Some(limits));
    }
}
