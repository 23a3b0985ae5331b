//! Projected end-of-period spend from the recent burn rate, robust to nights and weekends.
//!
//! Claude Code spend comes in bursts while someone works and is zero the rest of the time, so a
//! wall-clock average ("$4 in the first 10 hours of the day, so $9.60 by midnight") is wrong
//! both ways: it extrapolates a busy morning over the night, and a quiet night over the
//! afternoon. Instead, in 15-minute slots (the storage granularity):
//!
//! * **rate** — spend per *active* slot (a slot with any spend), averaged over the most recent
//!   [`RATE_SLOTS`] active slots of the last [`RATE_WINDOW_DAYS`] days. Idle slots do not dilute it.
//! * **activity profile** — for each (weekday, local hour), the share of slots that were active
//!   over the last [`PROFILE_DAYS`] days before today (only since history began: days before
//!   tokentray ran are not evidence of idleness). The weekday-specific share is shrunk toward the
//!   all-days share of the same hour with a prior of [`PRIOR_SLOTS`] slots, so that one observed
//!   Tuesday does not decide every Tuesday, while four idle Saturdays do say Saturdays are idle.
//!   With no history before today, today's own share of active slots so far is used.
//! * **projection** — spent so far + rate × Σ over the slots left in the period of
//!   P(slot active). Slots are real 15-minute intervals mapped to their local weekday and hour,
//!   so a 23- or 25-hour DST day counts the hours it really has.
//!
//! The same walk gives the instant at which the expected spend reaches the limit.
//!
//! **Enough data first** (issue 16): no projection until the history holds
//! [`MIN_ACTIVE_SLOTS`] active slots, and none beyond today for a week or month until
//! [`MIN_HISTORY_DAYS`] days of history came before today. Until then the forecast is what was
//! spent ("not enough data yet"), instead of one busy quarter hour extrapolated over a month.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike};

use crate::store::SLOT_SECONDS;

pub(crate) const SLOT_NS: i64 = SLOT_SECONDS * 1_000_000_000;
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Days of history the activity profile looks at (four of each weekday).
pub(crate) const PROFILE_DAYS: i64 = 28;
/// How far back the burn rate looks for active slots.
pub(crate) const RATE_WINDOW_DAYS: i64 = 7;
/// Active slots the burn rate averages over (four active hours): recent enough to follow a
/// change of model or of pace, long enough not to follow one expensive request.
pub(crate) const RATE_SLOTS: usize = 16;
/// Weight, in observed slots, of the all-days hour profile in the weekday-specific one.
pub(crate) const PRIOR_SLOTS: f64 = 2.0;

/// Active slots (an hour of use in all) before any projection.
pub(crate) const MIN_ACTIVE_SLOTS: usize = 4;
/// Days of history before today needed to project a week or a month beyond today.
pub(crate) const MIN_HISTORY_DAYS: i64 = 3;

/// Whether there is enough history to project to `period_end_ns` from `now_ns`.
pub(crate) fn enough_data(
    costs: &SlotCosts,
    now_ns: i64,
    history_start_slot: Option<i64>,
    today_end_ns: i64,
    period_end_ns: i64,
) -> bool {
    let now_slot = now_ns.div_euclid(SLOT_NS);
    let active_slots = costs.range(..=now_slot).filter(|(_, &c)| c > 0.0).count();
    if active_slots < MIN_ACTIVE_SLOTS {
        return false;
    }
    if period_end_ns <= today_end_ns {
        return true;
    }
    let today_start_slot = (today_end_ns - DAY_NS).div_euclid(SLOT_NS);
    // Days touched by history before today: a first use at 09:00 on the 1st makes the 1st one.
    let slots_per_day = DAY_NS / SLOT_NS;
    let history_days = history_start_slot
        .map_or(0, |first| ((today_start_slot - first).max(0) + slots_per_day - 1) / slots_per_day);
    history_days >= MIN_HISTORY_DAYS
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    active: u32,
    observed: u32,
}

impl Tally {
    fn add(&mut self, active: bool) {
        self.observed += 1;
        self.active += u32::from(active);
    }
}

/// How likely each local (weekday, hour) is to see Claude Code in use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActivityProfile {
    /// Indexed by weekday (Monday = 0) and local hour.
    by_weekday_hour: [[Tally; 24]; 7],
    by_hour: [Tally; 24],
    /// Used when no slot of an hour was observed before today: today's share of active slots.
    fallback: f64,
}

/// Spend per slot (unix seconds / 900), for one budget's model filter.
pub(crate) type SlotCosts = BTreeMap<i64, f64>;

fn local_key<Tz: TimeZone>(tz: &Tz, slot: i64) -> (usize, usize) {
    let t: DateTime<Tz> = tz.timestamp_nanos(slot.saturating_mul(SLOT_NS));
    (t.weekday().num_days_from_monday() as usize, t.hour() as usize)
}

fn active(costs: &SlotCosts, slot: i64) -> bool {
    costs.get(&slot).is_some_and(|&c| c > 0.0)
}

impl ActivityProfile {
    /// Builds the profile from the slots of the [`PROFILE_DAYS`] days before `today_start_ns`
    /// (local midnight), counting only slots from `history_start_slot` on.
    pub(crate) fn build<Tz: TimeZone>(
        costs: &SlotCosts,
        tz: &Tz,
        today_start_ns: i64,
        now_ns: i64,
        history_start_slot: Option<i64>,
    ) -> ActivityProfile {
        let mut p = ActivityProfile {
            by_weekday_hour: [[Tally::default(); 24]; 7],
            by_hour: [Tally::default(); 24],
            fallback: 0.0,
        };
        let today_slot = today_start_ns.div_euclid(SLOT_NS);
        let Some(first) = history_start_slot else { return p };
        let lo = (today_start_ns - PROFILE_DAYS * DAY_NS).div_euclid(SLOT_NS).max(first);
        for slot in lo..today_slot {
            let is_active = active(costs, slot);
            let (wd, h) = local_key(tz, slot);
            p.by_weekday_hour[wd][h].add(is_active);
            p.by_hour[h].add(is_active);
        }
        // Today so far (whole slots before the current one), for a first day of history.
        let now_slot = now_ns.div_euclid(SLOT_NS);
        let elapsed = (now_slot - today_slot.max(first)).max(0);
        if elapsed > 0 {
            let busy = (today_slot.max(first)..now_slot).filter(|&s| active(costs, s)).count();
            // Spread over the whole day so far, not since the first use: on a first day that
            // began at 09:00, four busy slots by 10:00 do not mean "busy every slot until midnight".
            let since_midnight = (now_slot - today_slot).max(1);
            p.fallback = busy as f64 / since_midnight as f64;
        }
        p
    }

    /// Probability that a slot at this local weekday (Monday = 0) and hour is active.
    pub(crate) fn p(&self, weekday: usize, hour: usize) -> f64 {
        let (Some(day), Some(&all)) = (self.by_weekday_hour.get(weekday), self.by_hour.get(hour))
        else {
            return 0.0;
        };
        let Some(&wd) = day.get(hour) else { return 0.0 };
        if all.observed == 0 {
            return self.fallback;
        }
        let p_hour = f64::from(all.active) / f64::from(all.observed);
        (f64::from(wd.active) + PRIOR_SLOTS * p_hour) / (f64::from(wd.observed) + PRIOR_SLOTS)
    }
}

/// A slot counts at most this many times the median active slot in the burn rate, so that one
/// burst (a huge context, an expensive model for one request) does not set the pace of the day.
pub(crate) const BURST_CAP: f64 = 3.0;

/// Spend per active slot: the mean of the most recent [`RATE_SLOTS`] active slots before the
/// current one within [`RATE_WINDOW_DAYS`], each capped at [`BURST_CAP`] × their median. The
/// current slot is still filling up, so it only counts when it is all there is.
pub(crate) fn burn_rate(costs: &SlotCosts, now_ns: i64) -> f64 {
    let now_slot = now_ns.div_euclid(SLOT_NS);
    let lo = (now_ns - RATE_WINDOW_DAYS * DAY_NS).div_euclid(SLOT_NS);
    let recent: Vec<f64> = costs
        .range(lo..now_slot)
        .rev()
        .map(|(_, &c)| c)
        .filter(|&c| c > 0.0)
        .take(RATE_SLOTS)
        .collect();
    if recent.is_empty() {
        return costs.get(&now_slot).copied().filter(|&c| c > 0.0).unwrap_or(0.0);
    }
    let mut sorted = recent.clone();
    sorted.sort_by(f64::total_cmp);
    let cap = sorted[sorted.len() / 2] * BURST_CAP;
    recent.iter().map(|c| c.min(cap)).sum::<f64>() / recent.len() as f64
}

/// Where the period is headed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Projection {
    /// Expected spend at the end of the period.
    pub forecast_usd: f64,
    /// When the expected spend reaches the limit; `None` if it already has or will not.
    pub reach_limit_at_ns: Option<i64>,
    pub rate_usd_per_active_slot: f64,
    /// Expected active slots left in the period.
    pub active_slots_left: f64,
}

/// Projects `spent` from `now_ns` to `period_end_ns`.
pub(crate) fn project<Tz: TimeZone>(
    profile: &ActivityProfile,
    rate: f64,
    tz: &Tz,
    now_ns: i64,
    period_end_ns: i64,
    spent: f64,
    limit: f64,
) -> Projection {
    let mut acc = spent;
    let mut expected = 0.0;
    let mut reach = None;
    let first = now_ns.div_euclid(SLOT_NS);
    let last =
        period_end_ns.div_euclid(SLOT_NS) + i64::from(period_end_ns.rem_euclid(SLOT_NS) != 0);
    for slot in first..last {
        let lo = (slot * SLOT_NS).max(now_ns);
        let hi = ((slot + 1) * SLOT_NS).min(period_end_ns);
        if hi <= lo {
            continue;
        }
        let (wd, h) = local_key(tz, slot);
        let weight = profile.p(wd, h) * (hi - lo) as f64 / SLOT_NS as f64;
        let add = rate * weight;
        if reach.is_none() && acc < limit && add > 0.0 && acc + add >= limit {
            let fraction = ((limit - acc) / add).clamp(0.0, 1.0);
            reach = Some(lo + (fraction * (hi - lo) as f64) as i64);
        }
        acc += add;
        expected += weight;
    }
    Projection {
        forecast_usd: acc,
        reach_limit_at_ns: reach,
        rate_usd_per_active_slot: rate,
        active_slots_left: expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, FixedOffset, NaiveDate};

    const C: f64 = 0.25; // USD per active slot

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(3600).expect("offset")
    }

    fn at(tz: &impl TimeZone, day: u32, h: u32, m: u32) -> i64 {
        tz.from_local_datetime(
            &NaiveDate::from_ymd_opt(2026, 11, day)
                .and_then(|d| d.and_hms_opt(h, m, 0))
                .expect("date"),
        )
        .single()
        .and_then(|t| t.timestamp_nanos_opt())
        .expect("time")
    }

    /// Spend `C` in every slot from 09:00 to 17:00 on `days`, and today from 09:00 until `until`.
    fn office_hours<Tz: TimeZone>(
        tz: &Tz,
        days: std::ops::Range<u32>,
        today: u32,
        until: (u32, u32),
    ) -> SlotCosts {
        let mut costs = SlotCosts::new();
        for day in days {
            for slot in at(tz, day, 9, 0) / SLOT_NS..at(tz, day, 17, 0) / SLOT_NS {
                costs.insert(slot, C);
            }
        }
        for slot in at(tz, today, 9, 0) / SLOT_NS..at(tz, today, until.0, until.1) / SLOT_NS {
            costs.insert(slot, C);
        }
        costs
    }

    fn run(
        tz: &impl TimeZone,
        costs: &SlotCosts,
        today: u32,
        now: i64,
        limit: f64,
    ) -> (f64, Projection) {
        let today_start = at(tz, today, 0, 0);
        let history = costs.keys().next().copied();
        let profile = ActivityProfile::build(costs, tz, today_start, now, history);
        let spent: f64 = costs.range(today_start / SLOT_NS..).map(|(_, c)| c).sum();
        let rate = burn_rate(costs, now);
        (spent, project(&profile, rate, tz, now, today_start + DAY_NS, spent, limit))
    }

    #[test]
    fn the_first_minutes_of_a_day_are_not_enough_data() {
        // First use ever at 09:00; ten minutes later: one active slot.
        let tz = tz();
        let mut costs = SlotCosts::new();
        costs.insert(at(&tz, 20, 9, 0) / SLOT_NS, 0.95);
        let now = at(&tz, 20, 9, 10);
        let day_end = at(&tz, 21, 0, 0);
        let history = costs.keys().next().copied();
        assert!(!enough_data(&costs, now, history, day_end, day_end));
        // After an hour of use the day is projected.
        for m in [15, 30, 45] {
            costs.insert(at(&tz, 20, 9, m) / SLOT_NS, 0.95);
        }
        assert!(enough_data(&costs, at(&tz, 20, 10, 0), history, day_end, day_end));
    }

    #[test]
    fn the_first_day_of_a_month_does_not_project_the_month() {
        // A whole busy first day (the 1st), still no month forecast; on the 4th there is.
        let tz = tz();
        let costs = office_hours(&tz, 1..1, 1, (17, 0));
        let history = costs.keys().next().copied();
        let month_end = at(&tz, 30, 0, 0);
        let now = at(&tz, 1, 17, 0);
        assert!(enough_data(&costs, now, history, at(&tz, 2, 0, 0), at(&tz, 2, 0, 0)), "the day");
        assert!(!enough_data(&costs, now, history, at(&tz, 2, 0, 0), month_end), "the month");
        let costs = office_hours(&tz, 1..4, 4, (10, 0));
        let now = at(&tz, 4, 10, 0);
        assert!(enough_data(&costs, now, history, at(&tz, 5, 0, 0), month_end));
    }

    #[test]
    fn a_burst_does_not_make_the_forecast_swing() {
        // Four office days, then today a steady morning with one $20 slot at 11:00.
        let tz = tz();
        let steady = office_hours(&tz, 16..20, 20, (12, 0));
        let mut burst = steady.clone();
        burst.insert(at(&tz, 20, 11, 0) / SLOT_NS, 20.0);
        let now = at(&tz, 20, 12, 0);
        let (_, calm) = run(&tz, &steady, 20, now, 1000.0);
        let (spent, p) = run(&tz, &burst, 20, now, 1000.0);
        // The burst itself is spent; what is left of the day is projected at most a few dollars
        // higher (the rate averages 16 active slots), not at the burst's pace.
        let left_calm = calm.forecast_usd - (spent - 20.0 + C);
        let left_burst = p.forecast_usd - spent;
        assert!(
            left_burst < left_calm + 20.0 * 5.0 * 4.0 / 16.0 + 1e-9,
            "{left_calm} {left_burst}"
        );
        assert!(left_burst < 30.0, "not $20 per slot for the rest of the day: {left_burst}");
    }

    #[test]
    fn after_work_the_day_is_done() {
        // Mon 16 … Fri 20 November, 09:00–17:00; Friday 18:00: nothing more is expected tonight.
        let tz = tz();
        let costs = office_hours(&tz, 16..20, 20, (17, 0));
        let (spent, p) = run(&tz, &costs, 20, at(&tz, 20, 18, 0), 100.0);
        assert!((spent - 32.0 * C).abs() < 1e-9);
        assert!((p.forecast_usd - spent).abs() < 1e-9, "{p:?}");
        assert_eq!(p.reach_limit_at_ns, None);
    }

    #[test]
    fn a_steady_morning_extrapolates_over_the_active_hours_left() {
        // Several office days, then Friday 10:00 after one busy hour: 28 active slots are left
        // (10:00–17:00), not 56 wall-clock slots (10:00–24:00).
        let tz = tz();
        let costs = office_hours(&tz, 16..20, 20, (10, 0));
        let (spent, p) = run(&tz, &costs, 20, at(&tz, 20, 10, 0), 7.0);
        assert!((spent - 4.0 * C).abs() < 1e-9);
        assert!((p.rate_usd_per_active_slot - C).abs() < 1e-9);
        assert!((p.active_slots_left - 28.0).abs() < 1e-9, "{p:?}");
        assert!((p.forecast_usd - 32.0 * C).abs() < 1e-9, "{p:?}");
        // The morning's pace (4 slots an hour) over the 14 wall-clock hours left would say $15.
        let wall_clock = spent + 4.0 * C * 14.0;
        assert!(
            p.forecast_usd < wall_clock * 0.6,
            "a wall-clock extrapolation would say {wall_clock}"
        );
        // $7 = 28 slots of $0.25: reached at the end of the 24th slot after 10:00, i.e. 16:00.
        assert_eq!(p.reach_limit_at_ns, Some(at(&tz, 20, 16, 0)));
    }

    #[test]
    fn idle_weekends_stay_idle() {
        // Four weeks of Monday–Friday office hours; on Saturday morning the rest of the weekend
        // is expected to cost almost nothing, and a week starting Monday is a full week again.
        let tz = tz();
        let mut costs = SlotCosts::new();
        let mut day = NaiveDate::from_ymd_opt(2026, 10, 26).expect("date"); // a Monday
        let saturday = NaiveDate::from_ymd_opt(2026, 11, 21).expect("date");
        while day < saturday {
            if day.weekday().num_days_from_monday() < 5 {
                let nine = tz
                    .from_local_datetime(&day.and_hms_opt(9, 0, 0).expect("t"))
                    .single()
                    .expect("t");
                let s = nine.timestamp_nanos_opt().expect("ns") / SLOT_NS;
                for slot in s..s + 32 {
                    costs.insert(slot, C);
                }
            }
            day += Duration::days(1);
        }
        let now = at(&tz, 21, 9, 0);
        let profile = ActivityProfile::build(
            &costs,
            &tz,
            at(&tz, 21, 0, 0),
            now,
            costs.keys().next().copied(),
        );
        let rate = burn_rate(&costs, now);
        let weekend = project(&profile, rate, &tz, now, at(&tz, 23, 0, 0), 0.0, 1000.0);
        // A calendar average (five office days spread over seven) would expect 2 × 5/7 of a
        // working day; the profile expects a small fraction of one.
        let calendar = 2.0 * 5.0 / 7.0 * 32.0 * C;
        assert!(
            weekend.forecast_usd < 0.25 * 32.0 * C && weekend.forecast_usd < calendar * 0.2,
            "{weekend:?}"
        );
        let week = project(&profile, rate, &tz, at(&tz, 23, 0, 0), at(&tz, 30, 0, 0), 0.0, 1000.0);
        assert!((week.forecast_usd - 5.0 * 32.0 * C).abs() < 5.0 * 32.0 * C * 0.1, "{week:?}");
    }

    #[test]
    fn no_history_means_no_extrapolation_beyond_today_so_far() {
        let tz = tz();
        let p = ActivityProfile::build(
            &SlotCosts::new(),
            &tz,
            at(&tz, 20, 0, 0),
            at(&tz, 20, 12, 0),
            None,
        );
        let proj = project(
            &p,
            burn_rate(&SlotCosts::new(), at(&tz, 20, 12, 0)),
            &tz,
            at(&tz, 20, 12, 0),
            at(&tz, 21, 0, 0),
            0.0,
            1.0,
        );
        assert_eq!(proj.forecast_usd, 0.0);
        // First day: busy 09:00–10:00 out of the 40 slots since midnight.
        let costs = office_hours(&tz, 0..0, 20, (10, 0));
        let (spent, proj) = run(&tz, &costs, 20, at(&tz, 20, 10, 0), 100.0);
        assert!(
            proj.forecast_usd > spent && proj.forecast_usd < spent + 56.0 * C * 0.2,
            "{proj:?}"
        );
    }

    #[test]
    fn a_23_hour_day_has_92_slots_left_at_midnight() {
        // America/New_York springs forward on 8 March 2026: 00:00 → 24:00 is 23 hours.
        let ny = chrono_tz::America::New_York;
        let midnight = ny
            .with_ymd_and_hms(2026, 3, 8, 0, 0, 0)
            .single()
            .expect("t")
            .timestamp_nanos_opt()
            .expect("ns");
        let next = ny
            .with_ymd_and_hms(2026, 3, 9, 0, 0, 0)
            .single()
            .expect("t")
            .timestamp_nanos_opt()
            .expect("ns");
        // Always busy before: every slot is expected to be active.
        let mut costs = SlotCosts::new();
        for slot in (midnight - 7 * DAY_NS) / SLOT_NS..midnight / SLOT_NS {
            costs.insert(slot, 1.0);
        }
        let profile =
            ActivityProfile::build(&costs, &ny, midnight, midnight, costs.keys().next().copied());
        let p = project(&profile, 1.0, &ny, midnight, next, 0.0, 1e9);
        assert!((p.active_slots_left - 92.0).abs() < 1e-9, "{p:?}");
        // Berlin falls back on 25 October 2026: a 25-hour day.
        let berlin = chrono_tz::Europe::Berlin;
        let midnight = berlin
            .with_ymd_and_hms(2026, 10, 25, 0, 0, 0)
            .single()
            .expect("t")
            .timestamp_nanos_opt()
            .expect("ns");
        let next = berlin
            .with_ymd_and_hms(2026, 10, 26, 0, 0, 0)
            .single()
            .expect("t")
            .timestamp_nanos_opt()
            .expect("ns");
        let mut costs = SlotCosts::new();
        for slot in (midnight - 7 * DAY_NS) / SLOT_NS..midnight / SLOT_NS {
            costs.insert(slot, 1.0);
        }
        let profile = ActivityProfile::build(
            &costs,
            &berlin,
            midnight,
            midnight,
            costs.keys().next().copied(),
        );
        let p = project(&profile, 1.0, &berlin, midnight, next, 0.0, 1e9);
        assert!((p.active_slots_left - 100.0).abs() < 1e-9, "{p:?}");
    }
}
