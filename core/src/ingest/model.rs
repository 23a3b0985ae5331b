//! Normalised records: what one OTLP request contributes, before any state is applied.
//!
//! Conversion from protobuf is stateless, so it runs on the request's task; everything that
//! needs history (delta/cumulative accounting) happens in the store's single writer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attrs::Attrs;
use crate::signal::Signal;

/// The emitting entity (a Claude Code installation), shared by all records of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The OTLP resource attributes (`service.name`, `host.name`, ...).
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
    /// Gauge: the last value is what counts.
    Gauge,
    /// Explicit-bucket histogram.
    Histogram,
}

impl Shape {
    /// The integer stored in the `shape` column of the series table (1 to 4).
    pub fn code(self) -> i64 {
        match self {
            Shape::MonotonicSum => 1,
            Shape::NonMonotonicSum => 2,
            Shape::Gauge => 3,
            Shape::Histogram => 4,
        }
    }

    /// The shape stored as `code` (see [`Shape::code`]); `None` for an unknown code.
    pub(crate) fn from_code(code: i64) -> Option<Shape> {
        Some(match code {
            1 => Shape::MonotonicSum,
            2 => Shape::NonMonotonicSum,
            3 => Shape::Gauge,
            4 => Shape::Histogram,
            _ => return None,
        })
    }
}

/// OTLP aggregation temporality of a sum or histogram point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// The value covers only `start_ns..time_ns`, since the previous point.
    Delta,
    /// The value is the running total since `start_ns` (the series' start).
    Cumulative,
}

/// Identity and metadata of one time series: metric name + resource + scope + point attributes.
#[derive(Debug, Clone)]
pub struct SeriesDesc {
    /// Metric name as sent, e.g. `claude_code.cost.usage`.
    pub metric: String,
    /// UCUM unit as sent (`USD`, `tokens`, `s`); empty when the sender gave none.
    pub unit: String,
    /// The metric's description as sent; may be empty.
    pub description: String,
    /// Data shape of the metric.
    pub shape: Shape,
    /// The emitting entity.
    pub resource: Arc<Resource>,
    /// Instrumentation scope name (e.g. `com.anthropic.claude_code`); empty if none.
    pub scope_name: String,
    /// Instrumentation scope version; empty if none.
    pub scope_version: String,
    /// The data point's own attributes (`model`, `type`, `session.id`, ...).
    pub attrs: Attrs,
    /// Identity hash of everything above except unit, description and shape.
    pub key: u128,
}

/// The value of one data point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PointValue {
    /// A sum or gauge value (integer points are converted to `f64`).
    Number(f64),
    /// An explicit-bucket histogram.
    Histogram(HistogramPoint),
}

/// An explicit-bucket histogram data point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramPoint {
    /// Upper bounds of the buckets, ascending (OTLP `explicit_bounds`).
    pub bounds: Vec<f64>,
    /// Per-bucket counts, `bounds.len() + 1` entries.
    pub counts: Vec<u64>,
    /// Sum of all recorded values (0 when the sender omitted it).
    pub sum: f64,
    /// Number of recorded values.
    pub count: u64,
}

/// One metric data point, normalised, with the series it belongs to.
#[derive(Debug, Clone)]
pub struct MetricPoint {
    /// The time series the point belongs to.
    pub series: Arc<SeriesDesc>,
    /// Meaningful for sums and histograms; gauges are `Cumulative` by convention.
    pub temporality: Temporality,
    /// OTLP `start_time_unix_nano`, nanoseconds since the epoch; 0 when not sent.
    pub start_ns: u64,
    /// Nanoseconds since the epoch the point was taken; a point sent without one is dated on
    /// arrival.
    pub time_ns: u64,
    /// The point's value.
    pub value: PointValue,
}

/// One OTLP log record: a Claude Code event such as `claude_code.api_request`.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Nanoseconds since the epoch: the record's time, else its observed time, else arrival.
    pub time_ns: i64,
    /// The event name: the record body (`claude_code.api_request`), or `event.name` if the body
    /// is not a string.
    pub name: String,
    /// The emitting entity.
    pub resource: Arc<Resource>,
    /// Attributes after redaction (see [`super::logs`]).
    pub attrs: Attrs,
    /// The `session.id` attribute; `None` when absent.
    pub session_id: Option<String>,
    /// The `prompt.id` attribute (one user prompt); `None` when absent.
    pub prompt_id: Option<String>,
    /// The `model` attribute (API request events); `None` when absent.
    pub model: Option<String>,
    /// The `cost_usd` attribute in USD; `None` when absent or not a finite number.
    pub cost_usd: Option<f64>,
    /// The `input_tokens` attribute; `None` when absent.
    pub input_tokens: Option<i64>,
    /// The `output_tokens` attribute; `None` when absent.
    pub output_tokens: Option<i64>,
    /// The `cache_read_tokens` attribute; `None` when absent.
    pub cache_read_tokens: Option<i64>,
    /// The `cache_creation_tokens` attribute (cache writes); `None` when absent.
    pub cache_creation_tokens: Option<i64>,
    /// The `duration_ms` attribute, milliseconds; `None` when absent.
    pub duration_ms: Option<i64>,
}

/// A span, kept as a count-able row without its attributes (they may carry prompt text).
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Span start, nanoseconds since the epoch.
    pub start_ns: i64,
    /// Span end, nanoseconds since the epoch.
    pub end_ns: i64,
    /// The span name.
    pub name: String,
    /// Trace id, lowercase hex.
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// The span's `session.id` attribute; `None` when absent.
    pub session_id: Option<String>,
    /// OTLP status code: 0 unset (also when no status was sent), 1 ok, 2 error.
    pub status_code: i32,
}

/// Everything one request contributes, plus what was refused and why.
#[derive(Debug, Default)]
pub struct Batch {
    /// Metric data points as sent.
    pub points: Vec<MetricPoint>,
    /// Log records (Claude Code events).
    pub events: Vec<EventRecord>,
    /// Counter points tokentray derives from `events` ([`super::derived`]): stored in the same
    /// transaction as their events, not acknowledged to the client (it sent events, not these).
    pub derived: Vec<MetricPoint>,
    /// Spans (trace export requests).
    pub spans: Vec<SpanRecord>,
    /// Other agents' API requests found among `events` (Codex, Gemini CLI), stored once each.
    pub(crate) agent_requests: Vec<super::agents::AgentRequest>,
    /// Data points / records refused while normalising (OTLP `partial_success`).
    pub rejected: u64,
    /// First reason for a refusal, for the `partial_success.error_message`.
    pub reject_reason: Option<String>,
    /// `service.name/service.version` of the sender, for diagnostics.
    pub client: Option<String>,
    /// The request as it goes to the team (OTLP forwarding on), queued in the same transaction.
    pub outgoing: Option<Outgoing>,
    /// Points this engine made from its own transcripts (`[transcripts] expose`): shown on
    /// `/metrics` and forwarded like telemetry, but not added to the history's usage, which
    /// already counts the transcripts through the counting rule.
    pub(crate) from_own_transcripts: bool,
}

/// An export request queued for forwarding: protobuf, prompt text already redacted, snappy
/// compressed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The request's signal (stored as its code, [`Signal::as_code`]).
    pub signal: Signal,
    /// Snappy (raw block format) of the protobuf request.
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// Compressed on the request's task, not by the writer: OTLP protobuf repeats its attribute
    /// strings in every point and shrinks several times, and the bytes the single writer puts
    /// into the WAL (and syncs) are what forwarding costs local ingest.
    pub fn new(signal: Signal, protobuf: &[u8]) -> Outgoing {
        // Compressing into a Vec cannot fail for inputs below snappy's 4 GiB limit, which the
        // 16 MiB body limit keeps us far from; an empty payload would be dropped by the decoder.
        Outgoing {
            signal,
            payload: snap::raw::Encoder::new().compress_vec(protobuf).unwrap_or_default(),
        }
    }
}

impl Batch {
    /// Counts `n` refused points or records; `reason` is kept only if it is the first refusal.
    pub fn reject(&mut self, n: u64, reason: impl FnOnce() -> String) {
        self.rejected += n;
        if self.reject_reason.is_none() {
            self.reject_reason = Some(reason());
        }
    }

    /// No points, events or spans (derived points and refusals are not counted).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.events.is_empty() && self.spans.is_empty()
    }

    /// Points, events and spans accepted: what the request is acknowledged for (not `derived`).
    pub fn len(&self) -> usize {
        self.points.len() + self.events.len() + self.spans.len()
    }
}
