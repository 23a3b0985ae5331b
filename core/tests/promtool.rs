//! `/metrics` output checked by Prometheus' own linter.
//!
//! Encodes a realistic Claude Code snapshot — all eight metrics with their usual attributes, a
//! `target_info`, a histogram, awkward label values — in the 0.0.4 text format and pipes it
//! through `promtool check metrics`, which parses it with Prometheus' parser and lints it
//! (`_total` on counters, HELP present, base units, no camelCase, ...). promtool only reads the
//! 0.0.4 text format, so OpenMetrics is covered by the exact-output unit tests instead.
//!
//! promtool comes from Debian's `prometheus` package, which the project's setup script installs;
//! where it is missing the test says so and passes.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokentray_core::exposition::naming::{metric_name, render_labels, unit_name, MetricType};
use tokentray_core::exposition::{
    encode, Family, FamilyKind, Format, HistogramValue, Labels, Series, SeriesValue, Snapshot,
};

/// Attributes Claude Code puts on every metric data point. (Its count metrics carry no unit on
/// the wire, which is why the Collector names them without a `_count` unit suffix.)
const STANDARD: &[(&str, &str)] = &[
    ("session.id", "5f0c6a1e-2b7d-4c1a-9e53-8d1f0a2b3c4d"),
    ("app.version", "1.0.71"),
    ("organization.id", "0d5b2c8e-7a61-4f0e-b1a3-6c2d9e8f7a10"),
    ("user.account_uuid", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
    ("user.email", "dev@example.com"),
    ("terminal.type", "vscode"),
];

/// Labels the Collector's exporter adds to every series.
const SCOPE: &[(&str, &str)] = &[
    ("otel_scope_name", "com.anthropic.claude_code"),
    ("otel_scope_version", "1.0.71"),
    ("otel_scope_schema_url", ""),
    ("job", "claude-code"),
    ("instance", "laptop-1"),
];

fn labels(extra: &[(&str, &str)]) -> Labels {
    let pairs: Vec<(String, String)> = STANDARD
        .iter()
        .chain(SCOPE)
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    render_labels(&pairs)
}

fn number(extra: &[(&str, &str)], value: f64) -> Series {
    Series {
        labels: labels(extra),
        value: SeriesValue::Number(value),
        created_ms: 1_754_000_000_000,
    }
}

fn counter(otel_name: &str, unit: &str, help: &str, series: Vec<Series>) -> Family {
    Family {
        name: metric_name(otel_name, unit, MetricType::MonotonicCounter),
        help: help.to_owned(),
        unit: unit_name(unit, MetricType::MonotonicCounter),
        kind: FamilyKind::Counter,
        series,
    }
}

fn claude_code_snapshot() -> Snapshot {
    let sonnet = ("model", "claude-sonnet-4-20250514");
    let opus = ("model", "claude-opus-4-1-20250805");
    let families = vec![
        counter(
            "claude_code.session.count",
            "",
            "Count of CLI sessions started",
            vec![number(&[], 3.0)],
        ),
        counter(
            "claude_code.lines_of_code.count",
            "",
            "Count of lines of code modified",
            vec![number(&[("type", "added")], 412.0), number(&[("type", "removed")], 97.0)],
        ),
        counter(
            "claude_code.pull_request.count",
            "",
            "Number of pull requests created",
            vec![number(&[], 1.0)],
        ),
        counter(
            "claude_code.commit.count",
            "",
            "Number of git commits created",
            vec![number(&[], 4.0)],
        ),
        counter(
            "claude_code.cost.usage",
            "USD",
            "Cost of the Claude Code session",
            vec![number(&[sonnet], 0.019299999999999998), number(&[opus], 12.734)],
        ),
        counter(
            "claude_code.token.usage",
            "tokens",
            "Number of tokens used",
            vec![
                number(&[sonnet, ("type", "input")], 18_234.0),
                number(&[sonnet, ("type", "output")], 5_120.0),
                number(&[sonnet, ("type", "cacheRead")], 1_234_567.0),
                number(&[sonnet, ("type", "cacheCreation")], 45_678.0),
                number(&[opus, ("type", "input")], 1e15),
            ],
        ),
        counter(
            "claude_code.code_edit_tool.decision",
            "",
            "Count of code editing tool permission decisions",
            vec![
                number(
                    &[
                        ("tool", "Edit"),
                        ("decision", "accept"),
                        ("source", "config"),
                        ("language", "Rust"),
                    ],
                    31.0,
                ),
                number(
                    &[
                        ("tool", "Write"),
                        ("decision", "reject"),
                        ("source", "user_reject"),
                        ("language", "unknown"),
                    ],
                    2.0,
                ),
            ],
        ),
        counter(
            "claude_code.active_time.total",
            "s",
            "Total active time in seconds",
            vec![number(&[("type", "user")], 1_804.25), number(&[("type", "cli")], 655.5)],
        ),
        Family {
            name: metric_name("http.server.request.duration", "s", MetricType::Histogram),
            help: "Duration of OTLP export requests\\handled, in seconds.\nSecond line.".to_owned(),
            unit: unit_name("s", MetricType::Histogram),
            kind: FamilyKind::Histogram,
            series: vec![Series {
                labels: render_labels(&[
                    ("http.route".to_owned(), "/v1/metrics".to_owned()),
                    ("odd.value".to_owned(), "quote \" backslash \\ newline \n end".to_owned()),
                ]),
                value: SeriesValue::Histogram(HistogramValue {
                    bounds: vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 1e6,
                    ],
                    counts: vec![10.0, 4.0, 3.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                    sum: 1.2345,
                    count: 19.0,
                }),
                created_ms: 0,
            }],
        },
        Family {
            name: metric_name("process.open_fds", "{fd}", MetricType::Gauge),
            help: "Open file descriptors".to_owned(),
            unit: unit_name("{fd}", MetricType::Gauge),
            kind: FamilyKind::Gauge,
            series: vec![Series {
                labels: Arc::from(""),
                value: SeriesValue::Number(f64::NAN),
                created_ms: 0,
            }],
        },
    ];
    let target: Vec<(String, String)> = [
        ("job", "claude-code"),
        ("instance", "laptop-1"),
        ("service.version", "1.0.71"),
        ("os.type", "linux"),
        ("os.version", "6.8.0"),
        ("host.arch", "amd64"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Snapshot { families, targets: vec![render_labels(&target)] }
}

#[test]
fn promtool_accepts_text_output() {
    let mut text = Vec::new();
    encode(&mut text, &claude_code_snapshot(), Format::Text004).expect("writing to a Vec");

    // The names dashboards query must be there, spelt as the Collector spells them.
    let shown = String::from_utf8(text.clone()).expect("UTF-8");
    for name in [
        "claude_code_session_count_total",
        "claude_code_lines_of_code_count_total",
        "claude_code_pull_request_count_total",
        "claude_code_commit_count_total",
        "claude_code_cost_usage_USD_total",
        "claude_code_token_usage_tokens_total",
        "claude_code_code_edit_tool_decision_total",
        "claude_code_active_time_seconds_total",
        "http_server_request_duration_seconds_bucket",
        "process_open_fds",
        "target_info",
    ] {
        assert!(
            shown.contains(&format!("\n{name}{{")) || shown.contains(&format!("\n{name} ")),
            "{name} missing"
        );
    }

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: promtool not installed (Debian package `prometheus`)");
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child.stdin.take().expect("stdin is piped").write_all(&text).expect("feeding promtool");
    let result = child.wait_with_output().expect("waiting for promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        result.status.success() && report.trim().is_empty(),
        "promtool check metrics: {}\n{report}\n--- input ---\n{shown}",
        result.status
    );
}
