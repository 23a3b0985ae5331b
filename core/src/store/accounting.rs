//! Exact accounting of one series: how much each incoming point adds.
//!
//! Claude Code sends DELTA sums by default and skips idle intervals, so a delta point's start
//! time often differs from the previous point's end. That is not a reset: every delta point is
//! simply added. CUMULATIVE points are turned into increments against the last point of the same
//! series; a new start time (or a value going down) means the client restarted, and the whole new
//! value is an increment. Nothing here ever lowers a total.

use serde::{Deserialize, Serialize};

use crate::ingest::{model::HistogramPoint, PointValue, Shape, Temporality};

/// The last cumulative point of a series, kept (and persisted) to compute the next increment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CumMark {
    pub start_ns: u64,
    pub time_ns: u64,
    pub value: PointValue,
}

/// Accumulated histogram of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistAcc {
    pub bounds: Vec<f64>,
    pub counts: Vec<f64>,
    pub sum: f64,
    pub count: f64,
}

/// Running state of one series.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SeriesTotals {
    /// Monotonic and delta up-down sums: running total. Gauges: last value.
    pub total: f64,
    pub hist: Option<HistAcc>,
    pub cum: Option<CumMark>,
    /// Time of the latest point applied.
    pub last_time_ns: u64,
}

/// What one point changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Nothing: a stale or repeated cumulative point.
    None,
    /// The total went up by this much (counters, delta up-down sums).
    Add(f64),
    /// The gauge now reads this.
    Set(f64),
    /// Histogram increments: per-bucket counts, sum, count.
    Histogram { counts: Vec<f64>, sum: f64, count: f64 },
}

/// Why a point could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// Histogram bucket bounds differ from what the series had.
    BoundsChanged,
    /// A number where a histogram was expected, or the other way round.
    WrongValueType,
    /// The point would make a total (or a histogram's sum or count) infinite.
    NotFinite,
}

/// Relation of a cumulative point to the last one seen.
enum Step {
    First,
    /// Same start, later time: the increment is the difference (or the whole value if it went down).
    Continue,
    /// A newer start time: the client restarted; the whole value is new.
    Restart,
    /// Older or repeated: already counted.
    Stale,
}

fn step(mark: Option<&CumMark>, start_ns: u64, time_ns: u64) -> Step {
    match mark {
        None => Step::First,
        Some(m) if start_ns == m.start_ns => {
            if time_ns > m.time_ns {
                Step::Continue
            } else {
                Step::Stale
            }
        }
        Some(m) if start_ns > m.start_ns => Step::Restart,
        Some(_) => Step::Stale,
    }
}

impl SeriesTotals {
    /// [`SeriesTotals::apply`], refusing a point after which a total would not be finite (two
    /// deltas of 1e308); a refused point leaves the state as it was.
    pub(crate) fn apply_finite(
        &mut self,
        shape: Shape,
        temporality: Temporality,
        start_ns: u64,
        time_ns: u64,
        value: &PointValue,
    ) -> Result<Effect, Refusal> {
        let mut next = self.clone();
        let effect = next.apply(shape, temporality, start_ns, time_ns, value)?;
        if !next.is_finite() {
            return Err(Refusal::NotFinite);
        }
        *self = next;
        Ok(effect)
    }

    fn is_finite(&self) -> bool {
        self.total.is_finite()
            && self.hist.as_ref().is_none_or(|h| {
                h.sum.is_finite() && h.count.is_finite() && h.counts.iter().all(|c| c.is_finite())
            })
    }

    /// Applies one point and returns its effect. Pure state transition: the caller persists.
    pub(crate) fn apply(
        &mut self,
        shape: Shape,
        temporality: Temporality,
        start_ns: u64,
        time_ns: u64,
        value: &PointValue,
    ) -> Result<Effect, Refusal> {
        match (shape, value) {
            (Shape::Histogram, PointValue::Histogram(h)) => {
                self.apply_histogram(temporality, start_ns, time_ns, h)
            }
            (Shape::Histogram, _) | (_, PointValue::Histogram(_)) => Err(Refusal::WrongValueType),
            (Shape::Gauge, PointValue::Number(v))
            | (Shape::NonMonotonicSum, PointValue::Number(v))
                if shape == Shape::Gauge || temporality == Temporality::Cumulative =>
            {
                if time_ns < self.last_time_ns {
                    return Ok(Effect::None);
                }
                self.last_time_ns = time_ns;
                self.total = *v;
                Ok(Effect::Set(*v))
            }
            (_, PointValue::Number(v)) => {
                let inc = match temporality {
                    Temporality::Delta => *v,
                    Temporality::Cumulative => {
                        let inc = match step(self.cum.as_ref(), start_ns, time_ns) {
                            Step::Stale => return Ok(Effect::None),
                            Step::First | Step::Restart => *v,
                            Step::Continue => match self.cum.as_ref().map(|m| &m.value) {
                                Some(PointValue::Number(last)) if *v >= *last => *v - *last,
                                // Went down without a new start time: a reset all the same.
                                _ => *v,
                            },
                        };
                        self.cum = Some(CumMark { start_ns, time_ns, value: value.clone() });
                        inc
                    }
                };
                self.total += inc;
                self.last_time_ns = self.last_time_ns.max(time_ns);
                Ok(Effect::Add(inc))
            }
        }
    }

    fn apply_histogram(
        &mut self,
        temporality: Temporality,
        start_ns: u64,
        time_ns: u64,
        h: &HistogramPoint,
    ) -> Result<Effect, Refusal> {
        if let Some(acc) = &self.hist {
            if acc.bounds != h.bounds {
                return Err(Refusal::BoundsChanged);
            }
        }
        let full =
            || (h.counts.iter().map(|&c| c as f64).collect::<Vec<f64>>(), h.sum, h.count as f64);
        let (counts, sum, count) = match temporality {
            Temporality::Delta => full(),
            Temporality::Cumulative => {
                let inc = match step(self.cum.as_ref(), start_ns, time_ns) {
                    Step::Stale => return Ok(Effect::None),
                    Step::First | Step::Restart => full(),
                    Step::Continue => match self.cum.as_ref().map(|m| &m.value) {
                        Some(PointValue::Histogram(last))
                            if last.bounds == h.bounds
                                && last.count <= h.count
                                && last.counts.iter().zip(&h.counts).all(|(a, b)| a <= b) =>
                        {
                            (
                                h.counts
                                    .iter()
                                    .zip(&last.counts)
                                    .map(|(n, o)| (n - o) as f64)
                                    .collect(),
                                h.sum - last.sum,
                                (h.count - last.count) as f64,
                            )
                        }
                        _ => full(),
                    },
                };
                self.cum =
                    Some(CumMark { start_ns, time_ns, value: PointValue::Histogram(h.clone()) });
                inc
            }
        };
        let acc = self.hist.get_or_insert_with(|| HistAcc {
            bounds: h.bounds.clone(),
            counts: vec![0.0; h.bounds.len() + 1],
            sum: 0.0,
            count: 0.0,
        });
        for (a, c) in acc.counts.iter_mut().zip(&counts) {
            *a += c;
        }
        acc.sum += sum;
        acc.count += count;
        self.last_time_ns = self.last_time_ns.max(time_ns);
        Ok(Effect::Histogram { counts, sum, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Temporality::*;

    fn n(v: f64) -> PointValue {
        PointValue::Number(v)
    }

    fn run(shape: Shape, points: &[(Temporality, u64, u64, f64)]) -> f64 {
        let mut s = SeriesTotals::default();
        for &(t, start, time, v) in points {
            s.apply(shape, t, start, time, &n(v)).expect("applies");
        }
        s.total
    }

    #[test]
    fn a_total_never_becomes_infinite() {
        let mut t = SeriesTotals::default();
        let apply = |t: &mut SeriesTotals| {
            t.apply_finite(Shape::MonotonicSum, Temporality::Delta, 1, 2, &n(1e308))
        };
        assert_eq!(apply(&mut t), Ok(Effect::Add(1e308)));
        assert_eq!(apply(&mut t), Err(Refusal::NotFinite));
        assert_eq!(t.total, 1e308, "the refused point changed nothing");
    }

    #[test]
    fn delta_points_add_up_across_gaps() {
        // The cost series of reference section 5.2: start != previous time after an idle
        // collection is normal, not a reset. The Collector's exporter ends at 0.01346 here.
        let total = run(
            Shape::MonotonicSum,
            &[
                (Delta, 117_953, 118_183, 0.0193),
                (Delta, 119_551, 120_185, 0.0135),
                (Delta, 120_185, 121_221, 0.01344),
                (Delta, 122_735, 122_761, 0.01346),
            ],
        );
        assert!((total - 0.0597).abs() < 1e-12, "{total}");
    }

    #[test]
    fn cumulative_counts_increments_and_survives_client_restart() {
        let total = run(
            Shape::MonotonicSum,
            &[
                (Cumulative, 100, 110, 5.0),
                (Cumulative, 100, 120, 5.0), // idle re-send
                (Cumulative, 100, 130, 8.0),
                (Cumulative, 100, 125, 7.0), // late, out of order: already counted
                (Cumulative, 100, 130, 8.0), // retry of the same point
                (Cumulative, 200, 210, 2.0), // client restarted: new start
                (Cumulative, 200, 220, 3.0),
            ],
        );
        assert_eq!(total, 11.0);
    }

    #[test]
    fn cumulative_drop_without_new_start_is_a_reset() {
        assert_eq!(
            run(Shape::MonotonicSum, &[(Cumulative, 0, 10, 9.0), (Cumulative, 0, 20, 4.0)]),
            13.0
        );
    }

    #[test]
    fn old_incarnation_arriving_late_is_ignored() {
        assert_eq!(
            run(Shape::MonotonicSum, &[(Cumulative, 200, 210, 2.0), (Cumulative, 100, 150, 50.0)]),
            2.0
        );
    }

    #[test]
    fn gauges_keep_the_latest_value() {
        assert_eq!(
            run(
                Shape::Gauge,
                &[(Cumulative, 0, 10, 3.0), (Cumulative, 0, 30, 1.0), (Cumulative, 0, 20, 9.0)]
            ),
            1.0
        );
        // A delta up-down counter adds; a cumulative one is a level.
        assert_eq!(run(Shape::NonMonotonicSum, &[(Delta, 0, 10, 3.0), (Delta, 0, 20, -1.0)]), 2.0);
        assert_eq!(
            run(Shape::NonMonotonicSum, &[(Cumulative, 0, 10, 3.0), (Cumulative, 0, 20, -1.0)]),
            -1.0
        );
    }

    fn hist(counts: &[u64], sum: f64) -> PointValue {
        PointValue::Histogram(HistogramPoint {
            bounds: vec![1.0, 10.0],
            counts: counts.to_vec(),
            sum,
            count: counts.iter().sum(),
        })
    }

    #[test]
    fn histograms_accumulate_in_both_temporalities() {
        let mut d = SeriesTotals::default();
        d.apply(Shape::Histogram, Delta, 0, 1, &hist(&[1, 2, 0], 5.0)).expect("applies");
        d.apply(Shape::Histogram, Delta, 1, 2, &hist(&[0, 1, 1], 20.0)).expect("applies");
        let acc = d.hist.clone().expect("histogram");
        assert_eq!((acc.counts, acc.sum, acc.count), (vec![1.0, 3.0, 1.0], 25.0, 5.0));

        let mut c = SeriesTotals::default();
        c.apply(Shape::Histogram, Cumulative, 5, 6, &hist(&[1, 2, 0], 5.0)).expect("applies");
        c.apply(Shape::Histogram, Cumulative, 5, 7, &hist(&[1, 3, 1], 25.0)).expect("applies");
        c.apply(Shape::Histogram, Cumulative, 9, 10, &hist(&[0, 1, 0], 2.0)).expect("applies");
        let acc = c.hist.expect("histogram");
        assert_eq!((acc.counts, acc.sum, acc.count), (vec![1.0, 4.0, 1.0], 27.0, 6.0));

        let other = PointValue::Histogram(HistogramPoint {
            bounds: vec![2.0],
            counts: vec![1, 1],
            sum: 1.0,
            count: 2,
        });
        assert_eq!(d.apply(Shape::Histogram, Delta, 0, 3, &other), Err(Refusal::BoundsChanged));
    }
}
