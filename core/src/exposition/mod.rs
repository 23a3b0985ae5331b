//! Prometheus exposition: what `/metrics` shows.
//!
//! The engine keeps exact running totals; at scrape time it takes a [`Snapshot`] of them and
//! [`encode`] turns that into text. Encoding is a pure function of the snapshot so it can be
//! tested and benchmarked without a server. Names follow the OTLP→Prometheus translation of
//! `prometheus/otlptranslator` (see [`naming`]) so dashboards built on the Collector keep working.

pub(crate) mod encode;
pub mod naming;
pub(crate) mod shape;

pub use encode::{encode, Format};
pub use shape::MetricsShape;

use std::sync::Arc;

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyKind {
    /// Monotonic sum. The family name ends in `_total`.
    Counter,
    /// Gauge, or a non-monotonic sum.
    Gauge,
    /// Explicit-bucket histogram.
    Histogram,
}

/// Everything `/metrics` shows at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Metric families, in the order they are to be written.
    pub families: Vec<Family>,
    /// One `target_info` sample per distinct resource, where the Collector would emit it.
    pub targets: Vec<Labels>,
}

/// One metric family: all series sharing one Prometheus name.
#[derive(Debug, Clone)]
pub struct Family {
    /// Full Prometheus name as the 0.0.4 text format shows it, e.g. `claude_code_cost_usage_USD_total`
    /// (already translated by [`naming::metric_name`]).
    pub name: String,
    /// From the OTLP metric description; written as `# HELP`.
    pub help: String,
    /// Prometheus unit (e.g. `USD`, `seconds`), empty when none; OpenMetrics writes it as `# UNIT`
    /// where the name ends with it.
    pub unit: String,
    /// Metric type, written as `# TYPE`.
    pub kind: FamilyKind,
    /// The family's series (one per distinct label set), in the order they are written.
    pub series: Vec<Series>,
}

/// Label pairs already rendered for the text format, without braces: `model="x",type="input"`.
///
/// Rendering (name sanitising, value escaping) happens once when a series is first seen, not at
/// every scrape; an empty string means no labels.
pub type Labels = Arc<str>;

/// One series of a [`Family`]: a label set and its current value.
#[derive(Debug, Clone)]
pub struct Series {
    /// The series' labels, pre-rendered (see [`Labels`]).
    pub labels: Labels,
    /// The value at snapshot time; a histogram only in a [`FamilyKind::Histogram`] family.
    pub value: SeriesValue,
    /// When the series was first seen, in unix milliseconds (OpenMetrics `_created`).
    pub created_ms: i64,
}

/// The value of one [`Series`].
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A counter's running total or a gauge's current value, in the family's unit.
    Number(f64),
    /// A histogram's buckets, sum and count.
    Histogram(HistogramValue),
}

/// Accumulated explicit-bucket histogram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramValue {
    /// Upper bounds, ascending, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; `bounds.len() + 1` entries, the last one for `+Inf`.
    pub counts: Vec<f64>,
    /// Sum of all observed values, in the family's unit (written as `_sum`).
    pub sum: f64,
    /// Number of observations, the total of `counts` (written as `_count`).
    pub count: f64,
}
