//! Questions the product asks of the history: spend, tokens, sessions and active time for a
//! period in the user's local time zone, optionally broken down by model, token type, session,
//! day or hour. The SQL lives in [`crate::store::read`]; this module owns the vocabulary.

pub mod format;
pub mod report;

pub use report::{ApiRequests, Group, Report, Tokens};

use chrono::{
    DateTime, Datelike, Duration, Local, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Weekday,
};

/// A period of `tokentray report`: named ones relative to "now" in the local time zone, or a
/// calendar month or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The current local day (`today`, also `day`).
    Today,
    /// The local day before today.
    Yesterday,
    /// The current local week (`[budgets] week_start`).
    Week,
    /// The week before the current one.
    LastWeek,
    /// The current local calendar month.
    Month,
    /// The calendar month before the current one.
    LastMonth,
    /// A calendar month, `2026-11` (the day is the 1st).
    CalendarMonth(NaiveDate),
    /// A calendar day, `2026-11-22`.
    Day(NaiveDate),
    /// All time: no bounds.
    All,
}

impl Period {
    /// What reports call it: `today`, `last-week`, `2026-11`, `2026-11-22`.
    pub fn name(self) -> String {
        match self {
            Period::Today => "today".into(),
            Period::Yesterday => "yesterday".into(),
            Period::Week => "week".into(),
            Period::LastWeek => "last-week".into(),
            Period::Month => "month".into(),
            Period::LastMonth => "last-month".into(),
            Period::CalendarMonth(d) => d.format("%Y-%m").to_string(),
            Period::Day(d) => d.format("%Y-%m-%d").to_string(),
            Period::All => "all".into(),
        }
    }

    /// The local days `[from, to)` of the period as of `today`, with weeks starting on
    /// `week_start`; `None` for all time.
    pub fn days(self, today: NaiveDate, week_start: Weekday) -> Option<(NaiveDate, NaiveDate)> {
        let week = |d: NaiveDate| {
            let back = (7 + d.weekday().num_days_from_monday() as i64
                - week_start.num_days_from_monday() as i64)
                % 7;
            let first = d - Duration::days(back);
            (first, first + Duration::days(7))
        };
        Some(match self {
            Period::All => return None,
            Period::Today => (today, today + Duration::days(1)),
            Period::Yesterday => (today - Duration::days(1), today),
            Period::Day(d) => (d, d + Duration::days(1)),
            Period::Week => week(today),
            Period::LastWeek => week(today - Duration::days(7)),
            Period::Month => month_of(today),
            Period::LastMonth => month_of(month_of(today).0 - Duration::days(1)),
            Period::CalendarMonth(d) => month_of(d),
        })
    }

    /// The period containing `now`, with weeks starting on `week_start`.
    pub fn range_at<Tz: TimeZone>(self, now: &DateTime<Tz>, week_start: Weekday) -> TimeRange {
        match self.days(now.date_naive(), week_start) {
            None => TimeRange::ALL,
            Some((from, to)) => days_range(&now.timezone(), from, to),
        }
    }

    /// The period containing the current local time, with weeks starting on `week_start`.
    pub fn range_now(self, week_start: Weekday) -> TimeRange {
        self.range_at(&Local::now(), week_start)
    }
}

/// The first day of `d`'s month and of the next.
pub(crate) fn month_of(d: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = d.with_day(1).unwrap_or(d);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first + Duration::days(31));
    (first, next)
}

/// Local days `[from, to)` as a time range (local midnights).
pub fn days_range<Tz: TimeZone>(tz: &Tz, from: NaiveDate, to: NaiveDate) -> TimeRange {
    TimeRange {
        start_ns: Some(local_midnight_ns(tz, from)),
        end_ns: Some(local_midnight_ns(tz, to)),
    }
}

/// The periods `report` takes, for messages.
pub(crate) const PERIODS: &str =
    "today, yesterday, week, last-week, month, last-month, YYYY-MM, YYYY-MM-DD, all";

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "today" | "day" => Period::Today,
            "yesterday" => Period::Yesterday,
            "week" => Period::Week,
            "last-week" => Period::LastWeek,
            "month" => Period::Month,
            "last-month" => Period::LastMonth,
            "all" => Period::All,
            other => {
                if let Ok(d) = NaiveDate::parse_from_str(other, "%Y-%m-%d") {
                    Period::Day(d)
                } else if let Ok(d) = NaiveDate::parse_from_str(&format!("{other}-01"), "%Y-%m-%d")
                {
                    Period::CalendarMonth(d)
                } else {
                    return Err(format!("unknown period '{other}' ({PERIODS})"));
                }
            }
        })
    }
}

/// Start of a local calendar day in unix nanoseconds. On a day whose midnight does not exist
/// (a DST jump at 00:00) the day starts at the first instant that does.
pub(crate) fn local_midnight_ns<Tz: TimeZone>(tz: &Tz, day: NaiveDate) -> i64 {
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
    /// Inclusive start, nanoseconds since the epoch; `None` for no lower bound.
    pub start_ns: Option<i64>,
    /// Exclusive end, nanoseconds since the epoch; `None` for no upper bound.
    pub end_ns: Option<i64>,
}

impl TimeRange {
    /// All time, unbounded on both sides.
    pub const ALL: TimeRange = TimeRange { start_ns: None, end_ns: None };

    /// `[start_ns, end_ns)`, nanoseconds since the epoch.
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
    /// The model of each request.
    Model,
    /// Token type (`input`, `output`, `cacheRead`, `cacheCreation`) or lines `added`/`removed`.
    Type,
    /// The Claude Code session (`session.id`).
    Session,
    /// Local calendar days.
    Day,
    /// Local weeks, labelled by their first day (`[budgets] week_start`).
    Week,
    /// Local calendar months.
    Month,
    /// Local clock hours.
    Hour,
    /// The git work tree (else the folder) a session ran in, from its transcripts.
    Project,
    /// The session's git branch, from its transcripts.
    Branch,
    /// The pull request the session opened (`pr-link`).
    Pr,
    /// The agent that sent it: `claude-code`, `codex` or `gemini-cli`.
    Agent,
}

impl GroupBy {
    /// The name `--by` takes and reports show: `model`, `type`, `day`, ...
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Type => "type",
            GroupBy::Session => "session",
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::Month => "month",
            GroupBy::Hour => "hour",
            GroupBy::Project => "project",
            GroupBy::Branch => "branch",
            GroupBy::Pr => "pr",
            GroupBy::Agent => "agent",
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
            "week" => GroupBy::Week,
            "month" => GroupBy::Month,
            "hour" => GroupBy::Hour,
            "project" => GroupBy::Project,
            "branch" => GroupBy::Branch,
            "pr" => GroupBy::Pr,
            "agent" => GroupBy::Agent,
            other => {
                return Err(format!(
                    "unknown grouping '{other}' (day, week, month, model, session, type, hour, project, branch, pr, agent)"
                ))
            }
        })
    }
}

/// Label of the local day, week, month or hour containing `ns`: `2026-11-22` (a week by its
/// first day, weeks starting on `week_start`), `2026-11` or `2026-11-22T14:00`.
pub(crate) fn local_bucket<Tz: TimeZone>(
    tz: &Tz,
    ns: i64,
    by: GroupBy,
    week_start: Weekday,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let t = tz.timestamp_nanos(ns);
    match by {
        GroupBy::Hour => t.format("%Y-%m-%dT%H:00").to_string(),
        GroupBy::Month => t.format("%Y-%m").to_string(),
        GroupBy::Week => Period::Week
            .days(t.date_naive(), week_start)
            .map(|(first, _)| first.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
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
        assert_eq!(local_bucket(&tz, ns, GroupBy::Day, Weekday::Mon), "2026-03-01");
        assert_eq!(local_bucket(&tz, ns, GroupBy::Hour, Weekday::Mon), "2026-03-01T23:00");
        assert_eq!(local_bucket(&tz, ns, GroupBy::Month, Weekday::Mon), "2026-03");
        // 2026-03-01 is a Sunday: its Monday week began on 2026-02-23.
        assert_eq!(local_bucket(&tz, ns, GroupBy::Week, Weekday::Mon), "2026-02-23");
        assert_eq!(local_bucket(&tz, ns, GroupBy::Week, Weekday::Sun), "2026-03-01");
    }

    #[test]
    fn every_period_has_its_days() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 7).expect("date"); // a Wednesday
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        let days = |p: &str| p.parse::<Period>().expect(p).days(today, Weekday::Mon);
        assert_eq!(days("yesterday"), Some((d(2026, 1, 6), d(2026, 1, 7))));
        assert_eq!(days("week"), Some((d(2026, 1, 5), d(2026, 1, 12))));
        assert_eq!(days("last-week"), Some((d(2025, 12, 29), d(2026, 1, 5))));
        assert_eq!(days("month"), Some((d(2026, 1, 1), d(2026, 2, 1))));
        assert_eq!(days("last-month"), Some((d(2025, 12, 1), d(2026, 1, 1))));
        assert_eq!(days("2025-02"), Some((d(2025, 2, 1), d(2025, 3, 1))));
        assert_eq!(days("2025-02-28"), Some((d(2025, 2, 28), d(2025, 3, 1))));
        assert_eq!(days("all"), None);
        assert_eq!("2025-02".parse::<Period>().map(Period::name), Ok("2025-02".to_string()));
        assert!("2025-13".parse::<Period>().is_err());
        assert!("fortnight".parse::<Period>().unwrap_err().contains("last-month"));
    }
}
