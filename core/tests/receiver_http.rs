//! OTLP/HTTP receiver, tested as a tower service over a real SQLite store: what clients get back
//! for good and bad input, and that bad input never costs data that was already accepted.
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use prost::Message;
use tokentray_core::config::Config;
use tokentray_core::receiver::{http::router, status::RpcStatus, Receiver};
use tokentray_core::store::Store;
use tokentray_core::testkit::{self, Usage};
use tower::ServiceExt;

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    app: axum::Router,
}

fn harness(config: Config) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let app = router(Receiver::new(store.clone(), &config));
    Harness { _dir: dir, store, app }
}

async fn post(
    app: &axum::Router,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::post(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let ctype =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, ctype, bytes)
}

const PB: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

fn usage_request(session: &str, cost: f64) -> ExportMetricsServiceRequest {
    let usage = Usage { cost_usd: cost, ..Usage::TYPICAL };
    testkit::metrics_request(testkit::usage_metrics(
        session,
        "u",
        testkit::MODEL,
        usage,
        1,
        2_000_000_000,
        false,
    ))
}

/// Total of `claude_code_cost_usage_USD_total` over all series, as /metrics would show it.
fn cost_total(store: &Store) -> f64 {
    store
        .snapshot()
        .families
        .iter()
        .filter(|f| f.name == "claude_code_cost_usage_USD_total")
        .flat_map(|f| &f.series)
        .map(|s| match s.value {
            tokentray_core::exposition::SeriesValue::Number(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn status_of(body: &[u8]) -> RpcStatus {
    RpcStatus::decode(body).expect("google.rpc.Status body")
}

#[tokio::test]
async fn protobuf_and_json_are_accepted_and_answered_in_kind() {
    let h = harness(Config::default());
    let (status, ctype, body) =
        post(&h.app, "/v1/metrics", &[PB], usage_request("s1", 0.5).encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "application/x-protobuf");
    let resp = ExportMetricsServiceResponse::decode(body.as_slice()).expect("response");
    assert!(resp.partial_success.is_none());

    let json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/claude-code/http-json-delta/0002_metrics.json"
    ))
    .expect("fixture");
    let (status, ctype, body) = post(&h.app, "/v1/metrics", &[JSON], json).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json response");
    assert!(v.get("partialSuccess").is_none(), "{v}");
    assert!(cost_total(&h.store) > 0.5);
}

#[tokio::test]
async fn refused_points_are_reported_as_partial_success() {
    let h = harness(Config::default());
    let mut req = usage_request("s1", 0.25);
    // Make one token point negative: impossible on a monotonic counter.
    if let Some(Data::Sum(sum)) = &mut req.resource_metrics[0].scope_metrics[0].metrics[1].data {
        sum.data_points[0].value = Some(number_data_point::Value::AsDouble(-3.0));
    }
    let (status, _, body) = post(&h.app, "/v1/metrics", &[PB], req.encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let partial = ExportMetricsServiceResponse::decode(body.as_slice())
        .expect("response")
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(partial.error_message.contains("negative"), "{}", partial.error_message);
    assert_eq!(cost_total(&h.store), 0.25, "the valid points of the request were stored");

    let json = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","exponentialHistogram":{"dataPoints":[{}],"aggregationTemporality":1}}]}]}]}"#;
    let (status, _, body) = post(&h.app, "/v1/metrics", &[JSON], json.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], serde_json::json!("1"), "{v}");
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_loses_nothing() {
    let mut config = Config::default();
    config.receiver.max_body_bytes = 64 * 1024;
    let h = harness(config);
    let good = usage_request("kept", 1.0).encode_to_vec();
    assert_eq!(post(&h.app, "/v1/metrics", &[PB], good.clone()).await.0, StatusCode::OK);

    // Truncated and garbage protobuf.
    let (status, ctype, body) =
        post(&h.app, "/v1/metrics", &[PB], good[..good.len() / 2].to_vec()).await;
    assert_eq!((status, ctype.as_str()), (StatusCode::BAD_REQUEST, "application/x-protobuf"));
    let st = status_of(&body);
    assert_eq!(st.code, 3);
    assert!(st.message.contains("invalid protobuf"), "{}", st.message);
    let (status, _, _) = post(&h.app, "/v1/logs", &[PB], vec![0xff; 300]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Bad JSON: the error names where.
    let (status, ctype, body) =
        post(&h.app, "/v1/metrics", &[JSON], b"{\"resourceMetrics\": [".to_vec()).await;
    assert_eq!((status, ctype.as_str()), (StatusCode::BAD_REQUEST, "application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json status");
    assert_eq!(v["code"], 3);
    assert!(v["message"].as_str().unwrap_or("").contains("JSON"), "{v}");
    let typed = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","sum":{"dataPoints":[{"asInt":"1.5"}]}}]}]}]}"#;
    assert_eq!(
        post(&h.app, "/v1/metrics", &[JSON], typed.to_vec()).await.0,
        StatusCode::BAD_REQUEST
    );

    // Wrong media type and encoding.
    assert_eq!(
        post(&h.app, "/v1/metrics", &[("content-type", "text/plain")], good.clone()).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post(&h.app, "/v1/metrics", &[], good.clone()).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post(&h.app, "/v1/metrics", &[PB, ("content-encoding", "br")], good.clone()).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post(&h.app, "/v1/metrics", &[PB, ("content-encoding", "gzip")], good.clone()).await.0,
        StatusCode::BAD_REQUEST
    );

    // Oversized on the wire.
    let (status, _, body) = post(&h.app, "/v1/metrics", &[PB], vec![0u8; 64 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(status_of(&body).code, 8);

    // Still serving, and what was accepted before is all there.
    assert_eq!(
        post(&h.app, "/v1/metrics", &[PB], usage_request("after", 2.0).encode_to_vec()).await.0,
        StatusCode::OK
    );
    assert_eq!(cost_total(&h.store), 3.0);
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// 1 GiB of zeros, gzipped (about 1 MiB), streamed so the test itself stays small.
pub fn gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&chunk).expect("compress");
    }
    enc.finish().expect("finish")
}

#[tokio::test]
async fn gzip_bomb_is_refused_with_bounded_memory() {
    let h = harness(Config::default());
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("compress");
        e.finish().expect("finish")
    };
    let (status, _, _) = post(
        &h.app,
        "/v1/metrics",
        &[PB, ("content-encoding", "gzip")],
        gz(&usage_request("gz", 1.5).encode_to_vec()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let bomb = gzip_bomb();
    assert!(bomb.len() < 16 << 20, "the bomb passes the wire limit: {}", bomb.len());
    let before = peak_rss();
    let (status, _, body) =
        post(&h.app, "/v1/metrics", &[PB, ("content-encoding", "gzip")], bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(status_of(&body).message.contains("decompressed"), "{:?}", status_of(&body));
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 128 << 20, "decompressing the bomb grew the peak RSS by {} MiB", grown >> 20);
    assert_eq!(cost_total(&h.store), 1.5);
}

#[tokio::test]
async fn browser_origins_are_refused_unless_allowed() {
    let h = harness(Config::default());
    let body = usage_request("web", 99.0).encode_to_vec();
    let (status, _, resp) =
        post(&h.app, "/v1/metrics", &[PB, ("origin", "https://evil.example")], body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let v: serde_json::Value = serde_json::from_slice(&resp).expect("json status");
    assert!(v["message"].as_str().unwrap_or("").contains("allowed_origins"), "{v}");
    assert_eq!(cost_total(&h.store), 0.0, "nothing from the page was stored");

    let mut config = Config::default();
    config.receiver.allowed_origins = vec!["http://localhost:3000".into()];
    let h = harness(config);
    assert_eq!(
        post(&h.app, "/v1/metrics", &[PB, ("origin", "http://localhost:3000")], body.clone())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        post(&h.app, "/v1/metrics", &[PB, ("origin", "http://localhost:3001")], body).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn prompts_are_redacted_unless_opted_in() {
    for (store_prompts, expect_text) in [(false, false), (true, true)] {
        let mut config = Config::default();
        config.privacy.store_prompts = store_prompts;
        let h = harness(config);
        let req = testkit::user_prompt_log("s", "rename the secret project", 1_000);
        assert_eq!(post(&h.app, "/v1/logs", &[PB], req.encode_to_vec()).await.0, StatusCode::OK);
        let events =
            h.store.reader().expect("reader").recent_events(10, None, None).expect("events");
        assert_eq!(events.len(), 1);
        let attrs = events[0].attrs.to_string();
        assert_eq!(attrs.contains("secret project"), expect_text, "{attrs}");
        assert!(attrs.contains("prompt_length"), "{attrs}");
    }
}

#[tokio::test]
async fn traces_are_accepted_and_counted() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let h = harness(Config::default());
    let span = |name: &str, id: u8| Span {
        trace_id: vec![1; 16],
        span_id: vec![id; 8],
        name: name.into(),
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        attributes: vec![
            testkit::kv("session.id", "s1"),
            testkit::kv("user_prompt", "private words"),
        ],
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(testkit::resource()),
            scope_spans: vec![ScopeSpans {
                spans: vec![span("claude_code.interaction", 1), span("claude_code.llm_request", 2)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, _, _) = post(&h.app, "/v1/traces", &[PB], req.encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"claude_code.tool","kind":1,"startTimeUnixNano":"5","endTimeUnixNano":"9"}]}]}]}"#;
    let (status, _, _) = post(&h.app, "/v1/traces", &[JSON], json.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.store.reader().expect("reader").span_count().expect("count"), 3);
}

/// An `api_request` event whose token count is no count (i64::MAX, negative) is stored without
/// it: summed with the session's other events it overflowed the report's 64-bit totals, and
/// every `report` of that period failed with "integer overflow" (found by tests/fuzz_receivers.rs).
#[tokio::test]
async fn an_absurd_token_count_does_not_break_the_reports() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use tokentray_core::query::{GroupBy, TimeRange};
    let h = harness(Config::default());
    let typical = Usage::TYPICAL;
    let mut records = Vec::new();
    for (key, bad) in [("cache_read_tokens", i64::MAX), ("input_tokens", -5)] {
        let mut rec = testkit::api_request_record("s", "u", testkit::MODEL, typical, 1_000);
        for kv in rec.attributes.iter_mut().filter(|kv| kv.key == key) {
            kv.value = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(Value::IntValue(bad)),
            });
        }
        records.push(rec);
    }
    records.push(testkit::api_request_record("s", "u", testkit::MODEL, typical, 2_000));
    let body = testkit::logs_request(records).encode_to_vec();
    let (status, _, _) = post(&h.app, "/v1/logs", &[PB], body).await;
    assert_eq!(status, StatusCode::OK);
    let reader = h.store.reader().expect("reader");
    for by in [None, Some(GroupBy::Session), Some(GroupBy::Model)] {
        let report = reader.report("all", TimeRange::ALL, by).expect("report after the request");
        let a = &report.figures.api_requests;
        assert_eq!(a.count, 3, "{by:?}");
        assert_eq!(a.cache_read_tokens, 2 * typical.cache_read as i64, "{by:?}");
        assert_eq!(a.input_tokens, 2 * typical.input as i64, "{by:?}");
        assert_eq!(a.output_tokens, 3 * typical.output as i64, "{by:?}");
    }
}
