//! The parts of `tokentray statusline` (issue 16), as pure functions of "now" so that they are
//! tested with a controllable clock: reset countdowns of the plan windows, the burn rate over the
//! active part of the last hour, when that pace reaches a budget, and the configurable format.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone};

/// Minutes with spend needed in the last hour before a burn rate is given: one request alone
/// would otherwise read as its cost times sixty per hour.
pub(crate) const MIN_ACTIVE_MINUTES: usize = 5;

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;

/// "resets in 2 h 17 m" (or "3 d 4 h" for long waits, "in 40 s" at the end).
pub fn countdown(now_ns: i64, resets_ns: i64) -> String {
    let left = (resets_ns - now_ns).max(0) / 1_000_000_000;
    let (d, h, m) = (left / 86_400, (left % 86_400) / 3600, (left % 3600) / 60);
    match (d, h, m) {
        (0, 0, 0) if left == 0 => "resets now".to_string(),
        (0, 0, 0) => format!("resets in {left} s"),
        (0, 0, m) => format!("resets in {m} m"),
        (0, h, m) => format!("resets in {h} h {m:02} m"),
        (d, h, _) => format!("resets in {d} d {h} h"),
    }
}

/// Dollars per hour over the active part of the last hour: the spend of the last 60 minutes
/// divided by the minutes that had any spend, once there are [`MIN_ACTIVE_MINUTES`] of them.
/// `spends` are (time, dollars) of single requests.
pub fn burn_rate_per_hour(now_ns: i64, spends: &[(i64, f64)]) -> Option<f64> {
    let since = now_ns - HOUR_NS;
    let recent: Vec<&(i64, f64)> =
        spends.iter().filter(|(t, c)| *t > since && *t <= now_ns && *c > 0.0).collect();
    let minutes: BTreeSet<i64> = recent.iter().map(|(t, _)| t.div_euclid(MINUTE_NS)).collect();
    if minutes.len() < MIN_ACTIVE_MINUTES {
        return None;
    }
    let spent: f64 = recent.iter().map(|(_, c)| c).sum();
    Some(spent / minutes.len() as f64 * 60.0)
}

/// When `rate_per_hour` from `spent` reaches `limit`, if that happens before `period_end_ns`.
pub fn reached_at_ns(
    now_ns: i64,
    spent: f64,
    limit: f64,
    rate_per_hour: f64,
    period_end_ns: i64,
) -> Option<i64> {
    if spent >= limit || rate_per_hour <= 0.0 {
        return None;
    }
    let at = now_ns.saturating_add(((limit - spent) / rate_per_hour * HOUR_NS as f64) as i64);
    (at < period_end_ns).then_some(at)
}

/// When a plan window's allowance is used up at the pace since the window began, if that happens
/// before it resets. A window starts with its first request and resets `length_ns` later, so its
/// start is `resets_ns - length_ns` and the pace is what was used since then; before
/// [`MIN_WINDOW_MINUTES`] of it have passed the pace says too little.
pub fn window_full_at_ns(
    now_ns: i64,
    used_percent: f64,
    resets_ns: i64,
    length_ns: i64,
) -> Option<i64> {
    let elapsed = now_ns - (resets_ns - length_ns);
    if elapsed < MIN_WINDOW_MINUTES * MINUTE_NS
        || !(0.0..100.0).contains(&used_percent)
        || used_percent == 0.0
    {
        return None;
    }
    let per_ns = used_percent / elapsed as f64;
    let at = now_ns.saturating_add(((100.0 - used_percent) / per_ns) as i64);
    (at < resets_ns).then_some(at)
}

/// Minutes of a plan window that must have passed before its pace is extrapolated.
pub(crate) const MIN_WINDOW_MINUTES: i64 = 10;

/// `HH:MM` of an instant in `tz`.
pub fn clock<Tz: TimeZone>(tz: &Tz, ns: i64) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let t: DateTime<Tz> = tz.timestamp_nanos(ns);
    t.format("%H:%M").to_string()
}

/// The default line: every part that is known, joined by ` · `.
pub const DEFAULT_FORMAT: &str = "{today} · {session} · {budget} · {5h} · {7d} · {burn}";

/// Fills `{today}`, `{session}`, `{budget}`, `{5h}`, `{7d}` and `{burn}` in `format`; an unknown
/// part leaves its separator out too, so the line never shows `·  ·`.
pub fn render(format: &str, parts: &[(&str, Option<String>)]) -> String {
    let mut out = format.to_string();
    for (name, value) in parts {
        out = out.replace(&format!("{{{name}}}"), value.as_deref().unwrap_or("\u{0}"));
    }
    // Drop the empty parts with one neighbouring separator.
    let pieces: Vec<&str> = out.split(" · ").filter(|p| !p.contains('\u{0}')).collect();
    pieces.join(" · ").replace('\u{0}', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    const S: i64 = 1_000_000_000;

    #[test]
    fn countdowns_read_like_a_person_says_them() {
        let now = 1_000_000 * S;
        assert_eq!(countdown(now, now + (2 * 3600 + 17 * 60 + 30) * S), "resets in 2 h 17 m");
        assert_eq!(countdown(now, now + (3 * 86_400 + 4 * 3600) * S), "resets in 3 d 4 h");
        assert_eq!(countdown(now, now + 9 * 60 * S), "resets in 9 m");
        assert_eq!(countdown(now, now + 40 * S), "resets in 40 s");
        assert_eq!(countdown(now, now - S), "resets now");
    }

    #[test]
    fn a_plan_window_is_full_at_the_pace_since_it_began() {
        let now = 1_800_000_000 * S;
        let h = 3600 * S;
        // 80% in the 2 hours since the window began: 40%/h, full in 30 minutes.
        assert_eq!(window_full_at_ns(now, 80.0, now + 3 * h, 5 * h), Some(now + h / 2));
        // 37% in 2 h 43 m: full long after the reset.
        assert_eq!(window_full_at_ns(now, 37.0, now + 2 * h + 17 * 60 * S, 5 * h), None);
        // Five minutes into the window, full, or unused: no forecast.
        assert_eq!(window_full_at_ns(now, 50.0, now + 5 * h - 300 * S, 5 * h), None);
        assert_eq!(window_full_at_ns(now, 100.0, now + h, 5 * h), None);
        assert_eq!(window_full_at_ns(now, 0.0, now + h, 5 * h), None);
    }

    #[test]
    fn burn_rate_counts_the_active_minutes_of_the_last_hour_only() {
        let now = 10 * HOUR_NS;
        // Four active minutes: not enough data yet.
        let mut spends: Vec<(i64, f64)> = (0..4).map(|m| (now - m * MINUTE_NS, 0.10)).collect();
        assert_eq!(burn_rate_per_hour(now, &spends), None);
        // Two requests in a fifth minute; and old spend, outside the hour, is not counted.
        spends.push((now - 30 * MINUTE_NS, 0.05));
        spends.push((now - 30 * MINUTE_NS + S, 0.05));
        spends.push((now - 2 * HOUR_NS, 50.0));
        // $0.50 over 5 active minutes: $6/h.
        let rate = burn_rate_per_hour(now, &spends).expect("rate");
        assert!((rate - 6.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn the_pace_reaches_the_budget_at_a_clock_time() {
        let tz = FixedOffset::east_opt(3600).expect("tz");
        let now = tz.with_ymd_and_hms(2026, 11, 22, 14, 40, 0).single().expect("t");
        let end = tz.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).single().expect("t");
        let (now_ns, end_ns) =
            (now.timestamp_nanos_opt().expect("ns"), end.timestamp_nanos_opt().expect("ns"));
        // $16 of $20 at $2/h: two hours from now.
        let at = reached_at_ns(now_ns, 16.0, 20.0, 2.0, end_ns).expect("reached today");
        assert_eq!(clock(&tz, at), "16:40");
        // At $0.20/h it would take 20 h: not today.
        assert_eq!(reached_at_ns(now_ns, 16.0, 20.0, 0.2, end_ns), None);
        assert_eq!(reached_at_ns(now_ns, 21.0, 20.0, 2.0, end_ns), None, "already past");
    }

    #[test]
    fn the_format_drops_what_is_not_known() {
        let parts = [
            ("today", Some("$3.42 today".to_string())),
            ("session", None),
            ("budget", Some("day 81% of $20".to_string())),
            ("5h", None),
            ("7d", Some("7d 12%".to_string())),
            ("burn", None),
        ];
        assert_eq!(render(DEFAULT_FORMAT, &parts), "$3.42 today · day 81% of $20 · 7d 12%");
        assert_eq!(render("{today} | {7d}", &parts), "$3.42 today | 7d 12%");
    }
}
