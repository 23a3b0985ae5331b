//! What `/metrics` leaves out or folds together: `[metrics] series_idle_hours` and `drop_labels`.
//!
//! Only the exposition is shaped. The totals in memory and in the store stay whole, so a series
//! that left `/metrics` for being idle comes back with its full total at its next point, and a
//! folded series is the exact sum of its members.

use super::naming;
use super::{HistogramValue, SeriesValue};

/// How `/metrics` is shaped; the default keeps every series with all its labels (as before
/// `[metrics]` existed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsShape {
    /// A series whose newest point (by its own timestamp) is older than this leaves `/metrics`.
    pub idle_after_ns: Option<u64>,
    /// Rendered label names removed from every series; series that then share a label set are
    /// added into one.
    pub drop_labels: Vec<String>,
}

impl MetricsShape {
    /// From `[metrics]`: `series_idle_hours = 0` keeps every series; label names are taken as
    /// OTLP attribute keys or Prometheus names alike (`session.id` and `session_id` both work).
    pub fn new(series_idle_hours: f64, drop_labels: &[String]) -> MetricsShape {
        let idle_after_ns = (series_idle_hours.is_finite() && series_idle_hours > 0.0)
            .then(|| (series_idle_hours * 3_600e9).min(u64::MAX as f64) as u64);
        let mut drop: Vec<String> = drop_labels.iter().map(|l| naming::label_name(l)).collect();
        drop.sort();
        drop.dedup();
        MetricsShape { idle_after_ns, drop_labels: drop }
    }

    /// Whether a series whose newest point is at `newest_ns` is left out at `now_ns`.
    pub(crate) fn is_idle(&self, newest_ns: u64, now_ns: u64) -> bool {
        self.idle_after_ns.is_some_and(|after| now_ns.saturating_sub(newest_ns) > after)
    }
}

/// `labels` (rendered, `a="x",b="y"`) without the labels named in `drop`, still rendered.
#[cfg(test)]
pub(crate) fn without_labels(labels: &str, drop: &[String]) -> String {
    let mut kept = String::with_capacity(labels.len());
    without_labels_into(labels, drop, &mut kept);
    kept
}

/// [`without_labels`] into a buffer the caller reuses (one scrape folds every series).
pub(crate) fn without_labels_into(labels: &str, drop: &[String], kept: &mut String) {
    kept.clear();
    for pair in rendered_pairs(labels) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if drop.iter().any(|d| d == name) {
            continue;
        }
        if !kept.is_empty() {
            kept.push(',');
        }
        kept.push_str(pair);
    }
}

/// Splits rendered labels into their `name="value"` pieces: commas inside a quoted value (which
/// may hold `\"` escapes) do not split.
fn rendered_pairs(labels: &str) -> impl Iterator<Item = &str> {
    let bytes = labels.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let (mut quoted, mut escaped) = (false, false);
        while pos < bytes.len() {
            match bytes[pos] {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => break,
                _ => {}
            }
            pos += 1;
        }
        let pair = &labels[start..pos];
        pos += 1;
        start = pos;
        Some(pair)
    })
}

/// Adds `add` into `into`: numbers are added (counters, up-down counters and gauges alike: the
/// folded series is the total of its members), histograms add count, sum and buckets.
pub(crate) fn add_value(into: &mut SeriesValue, add: &SeriesValue) {
    match (into, add) {
        (SeriesValue::Number(a), SeriesValue::Number(b)) => *a += b,
        (SeriesValue::Histogram(a), SeriesValue::Histogram(b)) => add_histogram(a, b),
        // A family holds one kind; a mismatch cannot be exposed and is left out.
        _ => {}
    }
}

/// Count and sum are exact. Buckets with the same bounds add up; a member with other bounds has
/// each bucket counted in the first bucket of `into` whose bound holds it (`le` stays true).
fn add_histogram(into: &mut HistogramValue, add: &HistogramValue) {
    into.sum += add.sum;
    into.count += add.count;
    if into.bounds == add.bounds {
        for (c, inc) in into.counts.iter_mut().zip(&add.counts) {
            *c += inc;
        }
        return;
    }
    for (i, inc) in add.counts.iter().enumerate() {
        let upper = add.bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let target = into.bounds.iter().position(|&b| b >= upper).unwrap_or(into.bounds.len());
        if let Some(c) = into.counts.get_mut(target) {
            *c += inc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_named_labels_and_keeps_quoted_commas() {
        let labels = r#"model="a,b",session_id="s\"1,",type="input""#;
        let drop = vec!["session_id".to_string()];
        assert_eq!(without_labels(labels, &drop), r#"model="a,b",type="input""#);
        assert_eq!(without_labels(r#"session_id="x""#, &drop), "");
        assert_eq!(without_labels("", &drop), "");
    }

    #[test]
    fn idle_threshold_is_fractional_and_zero_keeps_everything() {
        let shape = MetricsShape::new(0.001, &[]);
        assert_eq!(shape.idle_after_ns, Some(3_600_000_000));
        assert!(shape.is_idle(0, 3_600_000_001));
        assert!(!shape.is_idle(1, 3_600_000_001));
        assert!(!MetricsShape::new(0.0, &[]).is_idle(0, u64::MAX));
        assert_eq!(MetricsShape::new(1.0, &["session.id".into()]).drop_labels, ["session_id"]);
    }

    #[test]
    fn histograms_with_other_bounds_fold_into_the_holding_bucket() {
        let mut into = SeriesValue::Histogram(HistogramValue {
            bounds: vec![1.0, 10.0],
            counts: vec![1.0, 0.0, 0.0],
            sum: 0.5,
            count: 1.0,
        });
        let add = SeriesValue::Histogram(HistogramValue {
            bounds: vec![5.0],
            counts: vec![2.0, 3.0],
            sum: 40.0,
            count: 5.0,
        });
        add_value(&mut into, &add);
        let SeriesValue::Histogram(h) = into else { unreachable!() };
        assert_eq!(h.counts, [1.0, 2.0, 3.0]);
        assert_eq!((h.sum, h.count), (40.5, 6.0));
    }
}
