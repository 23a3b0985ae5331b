//! Questions the product asks of the history: spend, tokens, sessions and active time for a
//! period in the user's local time zone, optionally broken down by model, token type, session,
//! day or hour. The SQL lives in [`crate::store::read`]; this module owns the vocabulary.

pub mod format;
pub mod report;

pub use report::{ApiRequests, Group, Report, Tokens};

use chrono::{
    DateTime, Datelike, Duration, Local, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Weekday,
};

/// A named period, always relative to "now" in the local time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Today,
    Week,
    Month,
    All,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Today => "today",
            Period::Week => "week",
            Period::Month => "month",
            Period::All => "all",
        }
    }

    /// The period containing `now`, with weeks starting on `week_start`.
    pub fn range_at<Tz: TimeZone>(self, now: &DateTime<Tz>, week_start: Weekday) -> TimeRange {
        let tz = now.timezone();
        let today = now.date_naive();
        let (from, to) = match self {
            Period::All => return TimeRange::ALL,
            Period::Today => (today, today + Duration::days(1)),
            Period::Week => {
                let back = (7 + today.weekday().num_days_from_monday() as i64
                    - week_start.num_days_from_monday() as i64)
                    % 7;
                let first = today - Duration::days(back);
                (first, first + Duration::days(7))
            }
            Period::Month => {
                let first = today.with_day(1).unwrap_or(today);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first + Duration::days(31));
                (first, next)
            }
        };
        TimeRange {
            start_ns: Some(local_midnight_ns(&tz, from)),
            end_ns: Some(local_midnight_ns(&tz, to)),
        }
    }

    pub fn range_now(self, week_start: Weekday) -> TimeRange {
        self.range_at(&Local::now(), week_start)
    }
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "today" | "day" => Period::Today,
            "week" => Period::Week,
            "month" => Period::Month,
            "all" => Period::All,
            other => return Err(format!("unknown period '{other}' (today, week, month, all)")),
        })
    }
}

/// Start of a local calendar day in unix nanoseconds. On a day whose midnight does not exist
/// (a DST jump at 00:00) the day starts at the first instant that does.
pub fn local_midnight_ns<Tz: TimeZone>(tz: &Tz, day: NaiveDate) -> i64 {
    let midnight: NaiveDateTime = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let mut probe = midnight;
    for _ in 0..8 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.timestamp_nanos_opt().unwrap_or(0),
            LocalResult::Ambiguous(earliest, _) => {
                return earliest.timestamp_nanos_opt().unwrap_or(0)
            }
            LocalResult::None => probe += Duration::minutes(15),
        }
    }
    tz.from_utc_datetime(&midnight).timestamp_nanos_opt().unwrap_or(0)
}

/// Half-open `[start, end)` in unix nanoseconds; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange { start_ns: None, end_ns: None };

    pub fn between(start_ns: i64, end_ns: i64) -> TimeRange {
        TimeRange { start_ns: Some(start_ns), end_ns: Some(end_ns) }
    }

    pub(crate) fn bounds_ns(&self) -> (i64, i64) {
        (self.start_ns.unwrap_or(i64::MIN), self.end_ns.unwrap_or(i64::MAX))
    }
}

/// Breakdown dimension of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Model,
    /// Token type (`input`, `output`, `cacheRead`, `cacheCreation`) or lines `added`/`removed`.
    Type,
    Session,
    Day,
    Hour,
    /// The git work tree (else the folder) a session ran in, from its transcripts.
    Project,
    /// The session's git branch, from its transcripts.
    Branch,
    /// The pull request the session opened (`pr-link`).
    Pr,
}

impl GroupBy {
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Type => "type",
            GroupBy::Session => "session",
            GroupBy::Day => "day",
            GroupBy::Hour => "hour",
            GroupBy::Project => "project",
            GroupBy::Branch => "branch",
            GroupBy::Pr => "pr",
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "model" => GroupBy::Model,
            "type" => GroupBy::Type,
            "session" => GroupBy::Session,
            "day" => GroupBy::Day,
            "hour" => GroupBy::Hour,
            "project" => GroupBy::Project,
            "branch" => GroupBy::Branch,
            "pr" => GroupBy::Pr,
            other => {
                return Err(format!(
                "unknown grouping '{other}' (model, type, session, day, hour, project, branch, pr)"
            ))
            }
        })
    }
}

/// Label of the local day or hour containing `ns`: `2026-11-22` or `2026-11-22T14:00`.
pub fn local_bucket<Tz: TimeZone>(tz: &Tz, ns: i64, by: GroupBy) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let t = tz.timestamp_nanos(ns);
    match by {
        GroupBy::Hour => t.format("%Y-%m-%dT%H:00").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn periods_follow_the_local_calendar() {
        let tz = FixedOffset::east_opt(5 * 3600 + 1800).expect("offset"); // India, +05:30
        let now = tz.with_ymd_and_hms(2026, 11, 22, 0, 10, 0).single().expect("time"); // a Sunday
        let day = Period::Today.range_at(&now, Weekday::Mon);
        let start = tz.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).single().expect("time");
        assert_eq!(day.start_ns, start.timestamp_nanos_opt());
        assert_eq!(day.end_ns.zip(day.start_ns).map(|(e, s)| e - s), Some(86_400_000_000_000));
        let week = Period::Week.range_at(&now, Weekday::Mon);
        let monday = tz.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).single().expect("time");
        assert_eq!(week.start_ns, monday.timestamp_nanos_opt());
        let week_sun = Period::Week.range_at(&now, Weekday::Sun);
        assert_eq!(week_sun.start_ns, start.timestamp_nanos_opt());
        let month = Period::Month.range_at(&now, Weekday::Mon);
        let dec = tz.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("time");
        assert_eq!(month.end_ns, dec.timestamp_nanos_opt());
        assert_eq!(Period::All.range_at(&now, Weekday::Mon), TimeRange::ALL);
    }

    #[test]
    fn buckets_are_local() {
        let tz = FixedOffset::west_opt(8 * 3600).expect("offset");
        let t = tz.with_ymd_and_hms(2026, 3, 1, 23, 30, 0).single().expect("time");
        let ns = t.timestamp_nanos_opt().expect("ns");
        assert_eq!(local_bucket(&tz, ns, GroupBy::Day), "2026-03-01");
        assert_eq!(local_bucket(&tz, ns, GroupBy::Hour), "2026-03-01T23:00");
    }
}
