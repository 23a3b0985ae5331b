// Test support: a failed step panics with what went wrong. Compiled only for tests, benches and
// the load generator (feature `testkit`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test builders, not shipped (feature `testkit`): their names and shapes are their documentation.
#![allow(missing_docs)]
//! Builders of Claude Code-shaped OTLP requests, shared by unit tests, integration tests and the
//! load generator, so that what is benchmarked is what is tested.
//!
//! Shapes follow `shared/reference/claude-code-telemetry.md`: one resource and one scope per
//! request, every value a double, the common attributes on every point.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub mod transcripts_year;
pub mod v4;
pub mod year;

/// The leaf pages of `table` in the database file at `path`, in key order (tests damage one).
pub fn table_pages(path: &std::path::Path, table: &str) -> Vec<u32> {
    crate::store::table_pages(path, table).expect("read dbstat")
}

pub const VERSION: &str = "2.1.330";
pub const MODEL: &str = "claude-opus-5-5";

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

pub fn kv_double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(value)) }),
        ..Default::default()
    }
}

/// The resource Claude Code sends.
pub fn resource() -> Resource {
    Resource {
        attributes: vec![
            kv("host.arch", "amd64"),
            kv("os.type", "linux"),
            kv("os.version", "6.1.0"),
            kv("service.name", "claude-code"),
            kv("service.version", VERSION),
        ],
        ..Default::default()
    }
}

/// Attributes Claude Code puts on every point of a session.
pub fn common_attrs(session_id: &str, user_id: &str) -> Vec<KeyValue> {
    vec![
        kv("user.id", user_id),
        kv("session.id", session_id),
        kv("anthropic.provider", "firstParty"),
        KeyValue {
            key: "anthropic.custom_base_url".into(),
            value: Some(AnyValue { value: Some(any_value::Value::BoolValue(true)) }),
            ..Default::default()
        },
        kv("terminal.type", "dumb"),
    ]
}

/// Usage of one API response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cost_usd: f64,
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_creation: f64,
}

impl Usage {
    /// The first call of the fixtures' `tools` scenario.
    pub const TYPICAL: Usage = Usage {
        cost_usd: 0.0193,
        input: 2100.0,
        output: 80.0,
        cache_read: 9000.0,
        cache_creation: 1500.0,
    };
}

fn temporality_code(cumulative: bool) -> i32 {
    if cumulative {
        AggregationTemporality::Cumulative as i32
    } else {
        AggregationTemporality::Delta as i32
    }
}

fn point(attrs: Vec<KeyValue>, start_ns: u64, time_ns: u64, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn sum_metric(
    name: &str,
    unit: &str,
    description: &str,
    cumulative: bool,
    points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality_code(cumulative),
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// Wraps metrics in a request with Claude Code's resource and scope.
pub fn metrics_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "com.anthropic.claude_code".into(),
                    version: VERSION.into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `cost.usage` and the four `token.usage` points of one session and model. With `cumulative`,
/// `usage` is the running total since `start_ns`, as Claude Code sends it with that preference.
pub fn usage_metrics(
    session_id: &str,
    user_id: &str,
    model: &str,
    usage: Usage,
    start_ns: u64,
    time_ns: u64,
    cumulative: bool,
) -> Vec<Metric> {
    let with = |extra: &[(&str, &str)]| {
        let mut a = common_attrs(session_id, user_id);
        a.push(kv("model", model));
        a.push(kv("query_source", "main"));
        a.push(kv("effort", "medium"));
        a.extend(extra.iter().map(|(k, v)| kv(k, v)));
        a
    };
    vec![
        sum_metric(
            "claude_code.cost.usage",
            "USD",
            "Cost of the Claude Code session",
            cumulative,
            vec![point(with(&[]), start_ns, time_ns, usage.cost_usd)],
        ),
        sum_metric(
            "claude_code.token.usage",
            "tokens",
            "Number of tokens used",
            cumulative,
            vec![
                point(with(&[("type", "input")]), start_ns, time_ns, usage.input),
                point(with(&[("type", "output")]), start_ns, time_ns, usage.output),
                point(with(&[("type", "cacheRead")]), start_ns, time_ns, usage.cache_read),
                point(with(&[("type", "cacheCreation")]), start_ns, time_ns, usage.cache_creation),
            ],
        ),
    ]
}

/// `session.count` +1 for a session.
pub fn session_start_metric(
    session_id: &str,
    user_id: &str,
    start_ns: u64,
    time_ns: u64,
) -> Metric {
    let mut a = common_attrs(session_id, user_id);
    a.push(kv("start_type", "fresh"));
    sum_metric(
        "claude_code.session.count",
        "",
        "Count of CLI sessions started",
        false,
        vec![point(a, start_ns, time_ns, 1.0)],
    )
}

/// A load-test request of `points` data points: groups of five (cost + four token types) for
/// distinct sessions `first_session..`, so that each request touches many series.
pub fn load_request(
    points: usize,
    first_session: usize,
    time_ns: u64,
) -> ExportMetricsServiceRequest {
    let sessions = points.div_ceil(5).max(1);
    let mut cost = Vec::with_capacity(sessions);
    let mut tokens = Vec::with_capacity(sessions * 4);
    for s in 0..sessions {
        let session = format!("00000000-0000-4000-8000-{:012}", first_session + s);
        for metric in usage_metrics(
            &session,
            "load",
            MODEL,
            Usage::TYPICAL,
            time_ns.saturating_sub(1_000_000_000),
            time_ns,
            false,
        ) {
            if let Some(Data::Sum(sum)) = metric.data {
                if metric.name == "claude_code.cost.usage" {
                    cost.extend(sum.data_points);
                } else {
                    tokens.extend(sum.data_points);
                }
            }
        }
    }
    cost.truncate(points.div_ceil(5));
    tokens.truncate(points - cost.len().min(points));
    metrics_request(vec![
        sum_metric("claude_code.cost.usage", "USD", "Cost of the Claude Code session", false, cost),
        sum_metric("claude_code.token.usage", "tokens", "Number of tokens used", false, tokens),
    ])
}

/// One `claude_code.api_request` event.
pub fn api_request_log(
    session_id: &str,
    user_id: &str,
    model: &str,
    usage: Usage,
    time_ns: u64,
) -> ExportLogsServiceRequest {
    logs_request(vec![api_request_record(session_id, user_id, model, usage, time_ns)])
}

/// The log record of one `claude_code.api_request` event, to batch several in one request.
pub fn api_request_record(
    session_id: &str,
    user_id: &str,
    model: &str,
    usage: Usage,
    time_ns: u64,
) -> LogRecord {
    let mut attrs = common_attrs(session_id, user_id);
    attrs.extend([
        kv("event.name", "api_request"),
        kv("model", model),
        kv_int("input_tokens", usage.input as i64),
        kv_int("output_tokens", usage.output as i64),
        kv_int("cache_read_tokens", usage.cache_read as i64),
        kv_int("cache_creation_tokens", usage.cache_creation as i64),
        kv_double("cost_usd", usage.cost_usd),
        kv_int("duration_ms", 1200),
    ]);
    LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("claude_code.api_request".into())),
        }),
        attributes: attrs,
        ..Default::default()
    }
}

/// One `claude_code.user_prompt` event carrying `prompt` text.
pub fn user_prompt_log(session_id: &str, prompt: &str, time_ns: u64) -> ExportLogsServiceRequest {
    let mut attrs = common_attrs(session_id, "u");
    attrs.extend([
        kv("event.name", "user_prompt"),
        kv("prompt", prompt),
        kv("prompt_length", &prompt.chars().count().to_string()),
    ]);
    logs_request(vec![LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("claude_code.user_prompt".into())),
        }),
        attributes: attrs,
        ..Default::default()
    }])
}

/// One Claude Code event `claude_code.<name>` with string attributes, as Claude Code sends most
/// of them (`tool_result`'s `success` and `duration_ms` are strings too).
pub fn event_record(
    session_id: &str,
    name: &str,
    attrs: &[(&str, &str)],
    time_ns: u64,
) -> LogRecord {
    let mut a = common_attrs(session_id, "u");
    a.push(kv("event.name", name));
    a.extend(attrs.iter().map(|(k, v)| kv(k, v)));
    LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!("claude_code.{name}"))),
        }),
        attributes: a,
        ..Default::default()
    }
}

pub fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "com.anthropic.claude_code.events".into(),
                    version: VERSION.into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `claude_code.active_time.total` (unit `s`, attribute `type`) of a session, as a delta.
pub fn active_time_metric(
    session_id: &str,
    user_id: &str,
    kind: &str,
    seconds: f64,
    start_ns: u64,
    time_ns: u64,
) -> Metric {
    let mut a = common_attrs(session_id, user_id);
    a.push(kv("type", kind));
    sum_metric(
        "claude_code.active_time.total",
        "s",
        "Total active time in seconds",
        false,
        vec![point(a, start_ns, time_ns, seconds)],
    )
}

/// `session` with the attributes Claude Code 2.1 puts on an `api_request` beyond
/// [`api_request_record`]'s (shared/reference/claude-code-telemetry.md) added to each of its
/// events: `request_id` (unique per request), `prompt.id` (a prompt per five requests),
/// `event.timestamp` (the record's time to the millisecond, as Claude Code writes it),
/// `event.sequence`, `speed`, `query_source`, `effort`, `ttft_ms` and `cost_usd_micros`. The
/// figures the session adds up to are unchanged.
pub fn with_request_details(mut session: SyntheticSession) -> SyntheticSession {
    let compact = session.session_id.replace('-', "");
    let records = session
        .logs
        .resource_logs
        .iter_mut()
        .flat_map(|r| r.scope_logs.iter_mut())
        .flat_map(|s| s.log_records.iter_mut());
    for (k, record) in records.enumerate() {
        let cost = record.attributes.iter().find(|a| a.key == "cost_usd").and_then(|a| {
            match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::DoubleValue(d)) => Some(*d),
                _ => None,
            }
        });
        let stamp = chrono::DateTime::from_timestamp_nanos(record.time_unix_nano as i64)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        record.attributes.extend([
            kv("request_id", &format!("req_011C{compact}{k:04x}")),
            kv("prompt.id", &format!("{:08x}-7000-4000-8000-{compact:.12}", k / 5)),
            kv("event.timestamp", &stamp),
            kv_int("event.sequence", k as i64),
            kv("speed", "normal"),
            kv("query_source", "sdk"),
            kv("effort", "medium"),
            kv_int("ttft_ms", 600 + (k as i64 * 37) % 900),
        ]);
        if let Some(cost) = cost {
            record.attributes.push(kv_int("cost_usd_micros", (cost * 1e6).round() as i64));
        }
    }
    session
}

/// Models a heavy user switches between in [`synthetic_session`].
pub const MODELS: [&str; 3] = [MODEL, "claude-sonnet-5", "claude-haiku-5"];

/// Shape of one synthetic Claude Code session (see [`synthetic_session`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPlan {
    /// Distinguishes sessions: the session id, the model and the usage derive from it.
    pub index: u64,
    /// When the session starts (unix ns).
    pub start_ns: u64,
    /// Exports, one per 15 minutes of the session, each carrying the session's usage since the
    /// previous one (DELTA, as Claude Code sends by default).
    pub exports: u32,
    /// `claude_code.api_request` events, spread evenly over the session.
    pub api_requests: u32,
}

/// A synthetic session: the metrics requests Claude Code would send (session.count in the first
/// export, cost + four token types in each, active time in the last) and one logs request with
/// its `api_request` events. The sums of the events equal the sums of the metrics, as with the
/// real client.
#[derive(Debug, Clone)]
pub struct SyntheticSession {
    /// Its `session.id`.
    pub session_id: String,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: ExportLogsServiceRequest,
    /// What the requests add up to.
    pub cost_usd: f64,
    pub tokens: Usage,
    pub active_seconds: f64,
    /// Metric data points plus log records in the requests.
    pub points: usize,
    pub records: usize,
    pub model: &'static str,
}

/// Builds the requests of one session following `plan`; deterministic in `plan`.
pub fn synthetic_session(plan: SessionPlan) -> SyntheticSession {
    const SLOT_NS: u64 = 900 * 1_000_000_000;
    let session = format!("5e55{:04x}-0000-4000-8000-{:012x}", plan.index % 0xffff, plan.index);
    let user = "synthetic-user";
    let model = MODELS[(plan.index % MODELS.len() as u64) as usize];
    let exports = plan.exports.max(1) as u64;
    let calls = plan.api_requests.max(1) as u64;
    // Usage of the k-th API call: varies with the session and the call, in whole tokens and
    // prices that are exact in binary where it matters little (costs are sums of doubles anyway).
    let call_usage = |k: u64| {
        let input = (200 + (plan.index * 37 + k * 11) % 3000) as f64;
        let output = (50 + (plan.index * 13 + k * 7) % 1500) as f64;
        let cache_read = (5000 + (plan.index * 101 + k * 53) % 40000) as f64;
        let cache_creation = ((plan.index * 17 + k * 29) % 2000) as f64;
        let cost_usd =
            (input * 3.0 + output * 15.0 + cache_read * 0.3 + cache_creation * 3.75) / 1e6;
        Usage { cost_usd, input, output, cache_read, cache_creation }
    };
    let mut records = Vec::with_capacity(calls as usize);
    let mut per_export =
        vec![
            Usage { cost_usd: 0.0, input: 0.0, output: 0.0, cache_read: 0.0, cache_creation: 0.0 };
            exports as usize
        ];
    let span = exports * SLOT_NS;
    for k in 0..calls {
        let u = call_usage(k);
        let t = plan.start_ns + span * k / calls + 1_000_000_000;
        let e = ((t - plan.start_ns) / SLOT_NS).min(exports - 1) as usize;
        let acc = &mut per_export[e];
        acc.cost_usd += u.cost_usd;
        acc.input += u.input;
        acc.output += u.output;
        acc.cache_read += u.cache_read;
        acc.cache_creation += u.cache_creation;
        records.push(api_request_record(&session, user, model, u, t));
    }
    let active_seconds = (60 + plan.index % 1800) as f64;
    let mut metrics = Vec::with_capacity(exports as usize);
    let mut total =
        Usage { cost_usd: 0.0, input: 0.0, output: 0.0, cache_read: 0.0, cache_creation: 0.0 };
    let mut points = 0;
    for (e, usage) in per_export.iter().enumerate() {
        let start = plan.start_ns + e as u64 * SLOT_NS;
        let time = start + SLOT_NS - 1_000_000_000;
        let mut ms = Vec::new();
        if e == 0 {
            ms.push(session_start_metric(&session, user, start, start + 1_000_000_000));
            points += 1;
        }
        if usage.input + usage.output + usage.cache_read + usage.cache_creation > 0.0 {
            ms.extend(usage_metrics(&session, user, model, *usage, start, time, false));
            points += 5;
            total.cost_usd += usage.cost_usd;
            total.input += usage.input;
            total.output += usage.output;
            total.cache_read += usage.cache_read;
            total.cache_creation += usage.cache_creation;
        }
        if e as u64 == exports - 1 {
            ms.push(active_time_metric(&session, user, "cli", active_seconds, plan.start_ns, time));
            points += 1;
        }
        metrics.push(metrics_request(ms));
    }
    SyntheticSession {
        session_id: session.clone(),
        metrics,
        logs: logs_request(records),
        cost_usd: total.cost_usd,
        tokens: total,
        active_seconds,
        points,
        records: calls as usize,
        model,
    }
}
