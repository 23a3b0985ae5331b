//! Sends recorded requests to a running `serve` over their real transport: OTLP/HTTP with the
//! recorded headers, or OTLP/gRPC `Export` through the generated tonic clients.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;

use super::fixtures::{Request, Signal, Transport};

/// Headers reqwest sets itself from the connection and body; everything else recorded is sent.
const HOP_HEADERS: &[&str] = &["host", "content-length", "connection", "transfer-encoding"];

pub struct Replayer {
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    http: reqwest::blocking::Client,
    rt: tokio::runtime::Runtime,
    channel: Option<tonic::transport::Channel>,
}

impl Replayer {
    pub fn new(http_addr: SocketAddr, grpc_addr: SocketAddr) -> Replayer {
        Replayer {
            http_addr,
            grpc_addr,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("reqwest client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            channel: None,
        }
    }

    pub fn for_serve(serve: &super::Serve) -> Replayer {
        Replayer::new(serve.http, serve.grpc)
    }

    /// Sends one request; panics unless the receiver accepted all of it (2xx / gRPC OK, and no
    /// `partialSuccess` rejecting anything).
    pub fn send(&mut self, req: &Request) {
        match req.transport {
            Transport::Http => self.send_http(req, &req.body),
            Transport::Grpc => self.send_grpc(req, &req.decoded_body()),
        }
    }

    pub fn send_all<'a>(&mut self, reqs: impl IntoIterator<Item = &'a Request>) {
        for r in reqs {
            self.send(r);
        }
    }

    /// POST `body` to the recorded path with the recorded headers (Content-Type,
    /// Content-Encoding, User-Agent, custom ones such as Authorization).
    pub fn send_http(&mut self, req: &Request, body: &[u8]) {
        let url = format!("http://{}{}", self.http_addr, req.path);
        let mut rb = self.http.post(&url).body(body.to_vec());
        for (k, v) in &req.headers {
            if !HOP_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                rb = rb.header(k.as_str(), v.as_str());
            }
        }
        let resp = rb.send().unwrap_or_else(|e| panic!("POST {url} ({}): {e}", req.file));
        let status = resp.status();
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.bytes().unwrap_or_default();
        assert!(
            status.is_success(),
            "POST {url} ({}): HTTP {status}: {}",
            req.file,
            String::from_utf8_lossy(&bytes)
        );
        check_http_partial_success(req, &ct, &bytes);
    }

    fn channel(&mut self) -> tonic::transport::Channel {
        if self.channel.is_none() {
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_addr))
                    .expect("endpoint")
                    .timeout(Duration::from_secs(15))
                    .connect_timeout(Duration::from_secs(5));
            let ch = self
                .rt
                .block_on(endpoint.connect())
                .unwrap_or_else(|e| panic!("gRPC connect {}: {e}", self.grpc_addr));
            self.channel = Some(ch);
        }
        self.channel.clone().unwrap()
    }

    /// Decodes the protobuf message and calls `Export` on the service named in the recorded
    /// method, with the recorded custom metadata.
    pub fn send_grpc(&mut self, req: &Request, message: &[u8]) {
        let ch = self.channel();
        let md: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "user-agent" | "accept-encoding" | "content-type" | "te")
            })
            .cloned()
            .collect();
        fn request<T>(msg: T, md: &[(String, String)]) -> tonic::Request<T> {
            let mut r = tonic::Request::new(msg);
            for (k, v) in md {
                let key =
                    tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).expect("metadata key");
                r.metadata_mut().append(key, v.parse().expect("metadata value"));
            }
            r
        }
        let what = format!("gRPC {} ({})", req.path, req.file);
        match req.path.as_str() {
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => {
                let msg =
                    ExportMetricsServiceRequest::decode(message).expect("decode metrics request");
                let resp: ExportMetricsServiceResponse = self
                    .rt
                    .block_on(MetricsServiceClient::new(ch).export(request(msg, &md)))
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .into_inner();
                if let Some(ps) = resp.partial_success {
                    assert_eq!(
                        ps.rejected_data_points, 0,
                        "{what}: partial success: {}",
                        ps.error_message
                    );
                }
            }
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => {
                let msg = ExportLogsServiceRequest::decode(message).expect("decode logs request");
                let resp: ExportLogsServiceResponse = self
                    .rt
                    .block_on(LogsServiceClient::new(ch).export(request(msg, &md)))
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .into_inner();
                if let Some(ps) = resp.partial_success {
                    assert_eq!(
                        ps.rejected_log_records, 0,
                        "{what}: partial success: {}",
                        ps.error_message
                    );
                }
            }
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => {
                let msg = ExportTraceServiceRequest::decode(message).expect("decode trace request");
                let resp: ExportTraceServiceResponse = self
                    .rt
                    .block_on(TraceServiceClient::new(ch).export(request(msg, &md)))
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .into_inner();
                if let Some(ps) = resp.partial_success {
                    assert_eq!(
                        ps.rejected_spans, 0,
                        "{what}: partial success: {}",
                        ps.error_message
                    );
                }
            }
            other => panic!("{}: unknown gRPC method {other}", req.file),
        }
    }
}

/// An OTLP/HTTP response may carry `partial_success`; nothing of Claude Code's data may be
/// rejected.
fn check_http_partial_success(req: &Request, content_type: &str, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    let rejected: i64 = if content_type.starts_with("application/json") {
        let v: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => panic!(
                "{}: response is not JSON ({e}): {}",
                req.file,
                String::from_utf8_lossy(body)
            ),
        };
        let ps = &v["partialSuccess"];
        ["rejectedDataPoints", "rejectedLogRecords", "rejectedSpans"]
            .iter()
            .map(|k| match &ps[k] {
                Value::Number(n) => n.as_i64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            })
            .sum()
    } else if content_type.starts_with("application/x-protobuf") {
        match req.signal {
            Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                .expect("decode metrics response")
                .partial_success
                .map_or(0, |p| p.rejected_data_points),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .expect("decode logs response")
                .partial_success
                .map_or(0, |p| p.rejected_log_records),
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .expect("decode trace response")
                .partial_success
                .map_or(0, |p| p.rejected_spans),
        }
    } else {
        0
    };
    assert_eq!(
        rejected,
        0,
        "{}: receiver rejected part of the request: {}",
        req.file,
        String::from_utf8_lossy(body)
    );
}

/// OTLP/JSON body with every `timeUnixNano` / `startTimeUnixNano` / `observedTimeUnixNano`
/// moved by `shift_ns` (kept in the spelling it had: string or number). Used to send "the same
/// series, later": identical attributes, non-overlapping delta intervals.
pub fn shift_json_times(body: &[u8], shift_ns: u64) -> Vec<u8> {
    fn walk(v: &mut Value, shift: u64) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "timeUnixNano" | "startTimeUnixNano" | "observedTimeUnixNano"
                    ) {
                        match child {
                            Value::String(s) => {
                                let t: u64 = s.parse().expect("timestamp string");
                                *s = (t + shift).to_string();
                            }
                            Value::Number(n) => {
                                *child = Value::from(n.as_u64().expect("timestamp number") + shift);
                            }
                            _ => {}
                        }
                    } else {
                        walk(child, shift);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, shift)),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_slice(body).expect("OTLP/JSON body");
    walk(&mut v, shift_ns);
    serde_json::to_vec(&v).unwrap()
}

/// Latest `timeUnixNano` minus earliest `startTimeUnixNano`/`timeUnixNano` over OTLP/JSON bodies.
pub fn json_time_span_ns<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> (u64, u64) {
    fn walk(v: &Value, lo: &mut u64, hi: &mut u64) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if matches!(
                        k.as_str(),
                        "timeUnixNano" | "startTimeUnixNano" | "observedTimeUnixNano"
                    ) {
                        let t = match child {
                            Value::String(s) => s.parse().ok(),
                            Value::Number(n) => n.as_u64(),
                            _ => None,
                        };
                        if let Some(t) = t.filter(|t| *t > 0) {
                            *lo = (*lo).min(t);
                            *hi = (*hi).max(t);
                        }
                    } else {
                        walk(child, lo, hi);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, lo, hi)),
            _ => {}
        }
    }
    let (mut lo, mut hi) = (u64::MAX, 0);
    for b in bodies {
        let v: Value = serde_json::from_slice(b).expect("OTLP/JSON body");
        walk(&v, &mut lo, &mut hi);
    }
    (lo, hi)
}
