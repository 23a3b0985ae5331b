//! Pushgateway-style pushes on the metrics listener: `PUT`/`POST`/`DELETE` on
//! `/metrics/job/<job>{/<label>/<value>}` with a Prometheus text 0.0.4 body, as Prometheus'
//! Pushgateway answers them, so hook scripts and `prometheus_client.push_to_gateway` work
//! unchanged against tokentray.
//!
//! * [`grouping`] — the grouping key from the URL path, including the `@base64` encoding.
//! * [`text`] — the body parser; a malformed line is refused with its number, and nothing of the
//!   request is kept.
//! * [`expose`] — the pushed groups written after tokentray's own families on `/metrics`.
//!
//! The groups are kept in SQLite (`store::pushgateway`) and leave only by `DELETE`, as in
//! Pushgateway; `[metrics] series_idle_hours` does not apply to them.

pub(crate) mod expose;
pub(crate) mod grouping;
pub(crate) mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use grouping::GroupingKey;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PushError {
    #[error("bad grouping key in the URL: {0} (expected /metrics/job/<job>{{/<label>/<value>}}, values with `/` as <label>@base64/<url-safe base64>)")]
    Grouping(String),
    #[error("line {line}: {problem}")]
    Syntax { line: usize, problem: String },
    #[error("the body is not UTF-8 text (byte {0}); push Prometheus text format 0.0.4")]
    NotUtf8(usize),
    #[error("{0}")]
    Inconsistent(String),
}

/// Prometheus metric type of a pushed family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PushedKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl PushedKind {
    pub(crate) fn word(self, open_metrics: bool) -> &'static str {
        match self {
            PushedKind::Counter => "counter",
            PushedKind::Gauge => "gauge",
            PushedKind::Histogram => "histogram",
            PushedKind::Summary => "summary",
            // OpenMetrics calls it `unknown`.
            PushedKind::Untyped if open_metrics => "unknown",
            PushedKind::Untyped => "untyped",
        }
    }
}

/// One metric family as pushed, its samples already carrying the grouping labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PushedFamily {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub help: String,
    pub kind: PushedKind,
    pub samples: Vec<PushedSample>,
}

/// One sample line: its full name (`x_bucket` for a histogram `x`), labels and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PushedSample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// As text, so that NaN and ±Inf survive JSON (Rust's `Display` round-trips every f64).
    #[serde(with = "value_text")]
    pub value: f64,
}

/// One grouping key with its metrics and the two times Pushgateway exposes per group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushedGroup {
    pub key: GroupingKey,
    pub families: Vec<PushedFamily>,
    /// Last successful change (unix ns): `push_time_seconds`.
    pub push_time_ns: i64,
    /// Last refused change (unix ns), 0 if none: `push_failure_time_seconds`.
    pub push_failure_time_ns: i64,
}

/// What a request does to its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushMode {
    /// `PUT`: the pushed families are the whole group.
    Replace,
    /// `POST`: the pushed families replace those of the same name; the others stay.
    Merge,
}

/// The names Pushgateway writes itself per group; a push may not use them.
pub(crate) const PUSH_TIME: &str = "push_time_seconds";
pub(crate) const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";

/// The families `group` holds after a push of `pushed` with `mode`.
pub(crate) fn combine(
    existing: Option<&[PushedFamily]>,
    pushed: Vec<PushedFamily>,
    mode: PushMode,
) -> Vec<PushedFamily> {
    match (mode, existing) {
        (PushMode::Replace, _) | (PushMode::Merge, None) => pushed,
        (PushMode::Merge, Some(existing)) => {
            let mut out: Vec<PushedFamily> = existing
                .iter()
                .filter(|f| !pushed.iter().any(|p| p.name == f.name))
                .cloned()
                .collect();
            out.extend(pushed);
            out
        }
    }
}

/// Pushgateway's consistency check across groups: one metric name has one type everywhere.
/// (Different help texts are allowed; the exposition takes the first group's.)
pub(crate) fn check_consistent(
    key: &GroupingKey,
    families: &[PushedFamily],
    others: &[PushedGroup],
) -> Result<(), PushError> {
    for family in families {
        for other in others.iter().filter(|g| &g.key != key) {
            if let Some(theirs) = other.families.iter().find(|f| f.name == family.name) {
                if theirs.kind != family.kind {
                    return Err(PushError::Inconsistent(format!(
                        "metric {} is pushed as {} but group {} already has it as {}",
                        family.name,
                        family.kind.word(false),
                        other.key,
                        theirs.kind.word(false)
                    )));
                }
            }
        }
    }
    Ok(())
}

mod value_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
