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
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub const VERSION: &str = "2.1.330";
pub const MODEL: &str = "claude-opus-5-5";

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }), ..Default::default() }
}

pub fn kv_double(key: &str, value: f64) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(value)) }), ..Default::default() }
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
        KeyValue { key: "anthropic.custom_base_url".into(), value: Some(AnyValue { value: Some(any_value::Value::BoolValue(true)) }), ..Default::default() },
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
    pub const TYPICAL: Usage = Usage { cost_usd: 0.0193, input: 2100.0, output: 80.0, cache_read: 9000.0, cache_creation: 1500.0 };
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

fn sum_metric(name: &str, unit: &str, description: &str, cumulative: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        data: Some(Data::Sum(Sum { data_points: points, aggregation_temporality: temporality_code(cumulative), is_monotonic: true })),
        ..Default::default()
    }
}

/// Wraps metrics in a request with Claude Code's resource and scope.
pub fn metrics_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: "com.anthropic.claude_code".into(), version: VERSION.into(), ..Default::default() }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `cost.usage` and the four `token.usage` points of one session and model. With `cumulative`,
/// `usage` is the running total since `start_ns`, as Claude Code sends it with that preference.
pub fn usage_metrics(session_id: &str, user_id: &str, model: &str, usage: Usage, start_ns: u64, time_ns: u64, cumulative: bool) -> Vec<Metric> {
    let with = |extra: &[(&str, &str)]| {
        let mut a = common_attrs(session_id, user_id);
        a.push(kv("model", model));
        a.push(kv("query_source", "main"));
        a.push(kv("effort", "medium"));
        a.extend(extra.iter().map(|(k, v)| kv(k, v)));
        a
    };
    vec![
        sum_metric("claude_code.cost.usage", "USD", "Cost of the Claude Code session", cumulative, vec![point(with(&[]), start_ns, time_ns, usage.cost_usd)]),
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
pub fn session_start_metric(session_id: &str, user_id: &str, start_ns: u64, time_ns: u64) -> Metric {
    let mut a = common_attrs(session_id, user_id);
    a.push(kv("start_type", "fresh"));
    sum_metric("claude_code.session.count", "", "Count of CLI sessions started", false, vec![point(a, start_ns, time_ns, 1.0)])
}

/// A load-test request of `points` data points: groups of five (cost + four token types) for
/// distinct sessions `first_session..`, so that each request touches many series.
pub fn load_request(points: usize, first_session: usize, time_ns: u64) -> ExportMetricsServiceRequest {
    let sessions = points.div_ceil(5).max(1);
    let mut cost = Vec::with_capacity(sessions);
    let mut tokens = Vec::with_capacity(sessions * 4);
    for s in 0..sessions {
        let session = format!("00000000-0000-4000-8000-{:012}", first_session + s);
        for metric in usage_metrics(&session, "load", MODEL, Usage::TYPICAL, time_ns.saturating_sub(1_000_000_000), time_ns, false) {
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
pub fn api_request_log(session_id: &str, user_id: &str, model: &str, usage: Usage, time_ns: u64) -> ExportLogsServiceRequest {
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
    logs_request(vec![LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        body: Some(AnyValue { value: Some(any_value::Value::StringValue("claude_code.api_request".into())) }),
        attributes: attrs,
        ..Default::default()
    }])
}

/// One `claude_code.user_prompt` event carrying `prompt` text.
pub fn user_prompt_log(session_id: &str, prompt: &str, time_ns: u64) -> ExportLogsServiceRequest {
    let mut attrs = common_attrs(session_id, "u");
    attrs.extend([kv("event.name", "user_prompt"), kv("prompt", prompt), kv("prompt_length", &prompt.chars().count().to_string())]);
    logs_request(vec![LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        body: Some(AnyValue { value: Some(any_value::Value::StringValue("claude_code.user_prompt".into())) }),
        attributes: attrs,
        ..Default::default()
    }])
}

pub fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope { name: "com.anthropic.claude_code.events".into(), version: VERSION.into(), ..Default::default() }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
