//! Normalised records: what one OTLP request contributes, before any state is applied.
//!
//! Conversion from protobuf is stateless, so it runs on the request's task; everything that
//! needs history (delta/cumulative accounting) happens in the store's single writer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attrs::Attrs;

/// The emitting entity (a Claude Code installation), shared by all records of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub attrs: Attrs,
    /// Identity hash of `attrs`.
    pub key: u128,
}

/// Data shape of a metric, as far as accounting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Counter: only ever goes up.
    MonotonicSum,
    /// UpDownCounter: exposed as a gauge.
    NonMonotonicSum,
    Gauge,
    /// Explicit-bucket histogram.
    Histogram,
}

impl Shape {
    pub fn code(self) -> i64 {
        match self {
            Shape::MonotonicSum => 1,
            Shape::NonMonotonicSum => 2,
            Shape::Gauge => 3,
            Shape::Histogram => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<Shape> {
        Some(match code {
            1 => Shape::MonotonicSum,
            2 => Shape::NonMonotonicSum,
            3 => Shape::Gauge,
            4 => Shape::Histogram,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Delta,
    Cumulative,
}

/// Identity and metadata of one time series: metric name + resource + scope + point attributes.
#[derive(Debug, Clone)]
pub struct SeriesDesc {
    pub metric: String,
    pub unit: String,
    pub description: String,
    pub shape: Shape,
    pub resource: Arc<Resource>,
    pub scope_name: String,
    pub scope_version: String,
    pub attrs: Attrs,
    /// Identity hash of everything above except unit, description and shape.
    pub key: u128,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PointValue {
    Number(f64),
    Histogram(HistogramPoint),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramPoint {
    pub bounds: Vec<f64>,
    /// Per-bucket counts, `bounds.len() + 1` entries.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct MetricPoint {
    pub series: Arc<SeriesDesc>,
    /// Meaningful for sums and histograms; gauges are `Cumulative` by convention.
    pub temporality: Temporality,
    pub start_ns: u64,
    pub time_ns: u64,
    pub value: PointValue,
}

/// One OTLP log record: a Claude Code event such as `claude_code.api_request`.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub time_ns: i64,
    /// The event name: the record body (`claude_code.api_request`), or `event.name` if the body is not a string.
    pub name: String,
    pub resource: Arc<Resource>,
    /// Attributes after redaction (see [`super::logs`]).
    pub attrs: Attrs,
    pub session_id: Option<String>,
    pub prompt_id: Option<String>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_creation_tokens: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// A span, kept as a count-able row without its attributes (they may carry prompt text).
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub start_ns: i64,
    pub end_ns: i64,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub session_id: Option<String>,
    pub status_code: i32,
}

/// Everything one request contributes, plus what was refused and why.
#[derive(Debug, Default)]
pub struct Batch {
    pub points: Vec<MetricPoint>,
    pub events: Vec<EventRecord>,
    /// Counter points tokentray derives from `events` ([`super::derived`]): stored in the same
    /// transaction as their events, not acknowledged to the client (it sent events, not these).
    pub derived: Vec<MetricPoint>,
    pub spans: Vec<SpanRecord>,
    /// Data points / records refused while normalising (OTLP `partial_success`).
    pub rejected: u64,
    /// First reason for a refusal, for the `partial_success.error_message`.
    pub reject_reason: Option<String>,
    /// `service.name/service.version` of the sender, for diagnostics.
    pub client: Option<String>,
    /// The request as it goes to the team (OTLP forwarding on), queued in the same transaction.
    pub outgoing: Option<Outgoing>,
}

/// An export request queued for forwarding: protobuf, prompt text already redacted, snappy
/// compressed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// 1 metrics, 2 logs, 3 traces (the `forward_queue.signal` codes).
    pub signal: u8,
    /// Snappy (raw block format) of the protobuf request.
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// Compressed on the request's task, not by the writer: OTLP protobuf repeats its attribute
    /// strings in every point and shrinks several times, and the bytes the single writer puts
    /// into the WAL (and syncs) are what forwarding costs local ingest.
    pub fn new(signal: u8, protobuf: &[u8]) -> Outgoing {
        // Compressing into a Vec cannot fail for inputs below snappy's 4 GiB limit, which the
        // 16 MiB body limit keeps us far from; an empty payload would be dropped by the decoder.
        Outgoing {
            signal,
            payload: snap::raw::Encoder::new().compress_vec(protobuf).unwrap_or_default(),
        }
    }
}

impl Batch {
    pub fn reject(&mut self, n: u64, reason: impl FnOnce() -> String) {
        self.rejected += n;
        if self.reject_reason.is_none() {
            self.reject_reason = Some(reason());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.events.is_empty() && self.spans.is_empty()
    }

    pub fn len(&self) -> usize {
        self.points.len() + self.events.len() + self.spans.len()
    }
}
