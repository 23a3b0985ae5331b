//! Sending to the team: OTLP over gRPC (tonic) or HTTP/protobuf, and Prometheus remote write
//! 1.0, over TLS with rustls (system roots plus an optional CA file), and the classification of
//! every answer into deliver / retry / drop / stop-for-auth, with the error in words.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use super::headers::Headers;
use super::ForwardError;
use crate::config::{ForwardConfig, ForwardProtocol};
use crate::receiver::status::RpcStatus;
use crate::signal::{OtlpSignal, PartialSuccess, Signal};

/// What became of one send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Taken. `refused` items were refused by the peer as invalid (OTLP partial success).
    Delivered { refused: u64, message: Option<String> },
    /// Try again later; `after` when the peer said when (Retry-After, gRPC RetryInfo).
    Retry { after: Option<Duration>, error: String },
    /// Refused for good (the data is invalid for the peer): dropped and counted.
    Rejected { error: String },
    /// The credentials are wrong: stop until they change.
    Auth { error: String },
}

pub(crate) enum Exporter {
    Grpc { channel: Channel, headers: Headers, host: String, gzip: bool },
    Http { client: reqwest::Client, base: String, headers: Headers, host: String, gzip: bool },
    RemoteWrite { client: reqwest::Client, url: String, headers: Headers, host: String },
}

/// `scheme://host[:port]` → `host`, for messages.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_string()
}

/// Checks an endpoint the way the exporter will use it.
pub(crate) fn validate_endpoint(endpoint: &str) -> Result<(), ForwardError> {
    let e = endpoint.trim();
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        return Err(ForwardError::Config(format!(
            "the endpoint '{e}' must start with https:// (or http:// for a collector without TLS)"
        )));
    }
    let host = host_of(e);
    if host.is_empty() || host.starts_with(':') {
        return Err(ForwardError::Config(format!("the endpoint '{e}' has no host")));
    }
    e.parse::<http::Uri>().map_err(|err| {
        ForwardError::Config(format!("the endpoint '{e}' is not a valid URL: {err}"))
    })?;
    Ok(())
}

fn read_ca(config: &ForwardConfig) -> Result<Option<Vec<u8>>, ForwardError> {
    config
        .ca_file
        .as_ref()
        .map(|p| {
            std::fs::read(p).map_err(|e| {
                ForwardError::Config(format!("cannot read the CA file {}: {e}", p.display()))
            })
        })
        .transpose()
}

fn http_client(config: &ForwardConfig, ca: Option<&[u8]>) -> Result<reqwest::Client, ForwardError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true)
        .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
        .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 10)))
        .user_agent(concat!("tokentray/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca {
        let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
            ForwardError::Config(format!("the CA file is not a PEM certificate: {e}"))
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| ForwardError::Config(format!("cannot set up HTTPS: {e}")))
}

impl Exporter {
    /// Builds the exporter; must run inside a tokio runtime (the gRPC channel connects lazily).
    pub(crate) fn new(config: &ForwardConfig, headers: Headers) -> Result<Exporter, ForwardError> {
        let endpoint = config
            .endpoint
            .as_deref()
            .ok_or_else(|| {
                ForwardError::Config("no endpoint configured: run tokentray forward setup".into())
            })?
            .trim();
        validate_endpoint(endpoint)?;
        let host = host_of(endpoint);
        let ca = read_ca(config)?;
        Ok(match config.protocol {
            ForwardProtocol::Grpc => {
                let mut ep = Endpoint::from_shared(endpoint.to_string())
                    .map_err(|e| {
                        ForwardError::Config(format!("invalid gRPC endpoint '{endpoint}': {e}"))
                    })?
                    .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
                    .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 10)))
                    .tcp_nodelay(true);
                if endpoint.starts_with("https://") {
                    let mut tls = ClientTlsConfig::new().with_native_roots();
                    if let Some(pem) = &ca {
                        tls = tls.ca_certificate(Certificate::from_pem(pem));
                    }
                    ep = ep.tls_config(tls).map_err(|e| {
                        ForwardError::Config(format!("cannot set up TLS for {host}: {e}"))
                    })?;
                }
                Exporter::Grpc { channel: ep.connect_lazy(), headers, host, gzip: config.gzip }
            }
            ForwardProtocol::HttpProtobuf => Exporter::Http {
                client: http_client(config, ca.as_deref())?,
                base: endpoint.trim_end_matches('/').to_string(),
                headers,
                host,
                gzip: config.gzip,
            },
            ForwardProtocol::PrometheusRemoteWrite => Exporter::RemoteWrite {
                client: http_client(config, ca.as_deref())?,
                url: endpoint.to_string(),
                headers,
                host,
            },
        })
    }

    /// Sends queued export requests of one signal, concatenated, with `extra` added to every
    /// resource.
    pub(crate) async fn send_otlp(
        &self,
        signal: Signal,
        payload: &[u8],
        extra: &[(String, String)],
    ) -> Outcome {
        // The one place a signal (read from the queue) picks its request type.
        match signal {
            Signal::Metrics => self.send::<ExportMetricsServiceRequest>(payload, extra).await,
            Signal::Logs => self.send::<ExportLogsServiceRequest>(payload, extra).await,
            Signal::Traces => self.send::<ExportTraceServiceRequest>(payload, extra).await,
        }
    }

    async fn send<S: OtlpSignal>(&self, payload: &[u8], extra: &[(String, String)]) -> Outcome {
        match self {
            Exporter::Grpc { channel, headers, host, gzip } => {
                send_grpc::<S>(channel.clone(), headers, host, *gzip, payload, extra).await
            }
            Exporter::Http { client, base, headers, host, gzip } => {
                let body = match with_extra::<S>(payload, extra) {
                    Ok(b) => b,
                    Err(error) => return Outcome::Rejected { error },
                };
                let path = S::SIGNAL.path();
                let (body, encoding) =
                    if *gzip { (gzip_bytes(&body), Some("gzip")) } else { (body, None) };
                let mut req = client
                    .post(format!("{base}{path}"))
                    .header("content-type", "application/x-protobuf")
                    .body(body);
                if let Some(enc) = encoding {
                    req = req.header("content-encoding", enc);
                }
                for (k, v) in headers.iter() {
                    req = req.header(k, v);
                }
                match req.send().await {
                    Err(e) => Outcome::Retry { after: None, error: transport_error(host, &e) },
                    Ok(resp) => {
                        let status = resp.status();
                        let retry_after = retry_after(resp.headers());
                        let content_type = resp
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = resp.bytes().await.unwrap_or_default();
                        if status.is_success() {
                            let response = S::Response::decode(&body[..]).unwrap_or_default();
                            return delivered(S::partial_success(response));
                        }
                        classify_http(
                            status.as_u16(),
                            host,
                            &error_text(&content_type, &body),
                            retry_after,
                            false,
                        )
                    }
                }
            }
            Exporter::RemoteWrite { .. } => Outcome::Rejected {
                error: "internal: OTLP data queued while the protocol is remote write".into(),
            },
        }
    }

    /// Sends one remote-write request (an encoded `WriteRequest`, not yet compressed).
    pub(crate) async fn send_remote_write(&self, write_request: &[u8]) -> Outcome {
        let Exporter::RemoteWrite { client, url, headers, host } = self else {
            return Outcome::Rejected {
                error: "internal: remote-write data for an OTLP exporter".into(),
            };
        };
        let body = match snap::raw::Encoder::new().compress_vec(write_request) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Rejected {
                    error: format!("cannot snappy-compress the request: {e}"),
                }
            }
        };
        let mut req = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .body(body);
        for (k, v) in headers.iter() {
            req = req.header(k, v);
        }
        match req.send().await {
            Err(e) => Outcome::Retry { after: None, error: transport_error(host, &e) },
            Ok(resp) => {
                let status = resp.status();
                let retry_after = retry_after(resp.headers());
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let body = resp.bytes().await.unwrap_or_default();
                if status.is_success() {
                    return Outcome::Delivered { refused: 0, message: None };
                }
                classify_http(
                    status.as_u16(),
                    host,
                    &error_text(&content_type, &body),
                    retry_after,
                    true,
                )
            }
        }
    }
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// reqwest's error chain without the URL's query or credentials (it may carry neither here, but
/// the message is for people: say what failed).
fn transport_error(host: &str, e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = last {
        msg.push_str(": ");
        msg.push_str(&cause);
    }
    format!("{host}: {msg}")
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// The peer's explanation from an error body: a `google.rpc.Status` (OTLP), JSON with a
/// `message`, or the first line of text.
fn error_text(content_type: &str, body: &[u8]) -> String {
    if content_type.starts_with("application/x-protobuf") {
        if let Ok(s) = RpcStatus::decode(body) {
            return s.message;
        }
    }
    if content_type.starts_with("application/json") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
            if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    line.chars().take(300).collect()
}

fn reason_phrase(code: u16) -> &'static str {
    http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

fn classify_http(
    code: u16,
    host: &str,
    detail: &str,
    retry_after: Option<Duration>,
    remote_write: bool,
) -> Outcome {
    let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
    let error = format!("{code} {} from {host}{detail}", reason_phrase(code));
    match code {
        401 | 403 => Outcome::Auth {
            error: format!("{error}: check the token (tokentray forward set-headers)"),
        },
        408 | 429 | 502 | 503 | 504 => Outcome::Retry { after: retry_after, error },
        // Remote write 1.0: every 5xx is to be retried. OTLP/HTTP: only the codes above.
        500..=599 if remote_write => Outcome::Retry { after: retry_after, error },
        _ => Outcome::Rejected { error },
    }
}

/// A delivery, with what the peer refused (an undecodable answer refused nothing).
fn delivered(partial: Option<PartialSuccess>) -> Outcome {
    let PartialSuccess { rejected, message } =
        partial.unwrap_or(PartialSuccess { rejected: 0, message: String::new() });
    Outcome::Delivered {
        refused: rejected.max(0) as u64,
        message: (!message.is_empty()).then_some(message),
    }
}

fn add_attrs(resource: &mut Option<Resource>, extra: &[(String, String)]) {
    let r = resource.get_or_insert_with(Resource::default);
    for (k, v) in extra {
        // The machine and developer the data came from stay named as they arrived.
        if super::identity::KEYS.contains(&k.as_str()) && r.attributes.iter().any(|kv| &kv.key == k)
        {
            continue;
        }
        r.attributes.retain(|kv| &kv.key != k);
        r.attributes.push(KeyValue {
            key: k.clone(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.clone())) }),
            ..Default::default()
        });
    }
}

/// A queued request, decoded, with the extra resource attributes.
fn decode_with_extra<S: OtlpSignal>(
    payload: &[u8],
    extra: &[(String, String)],
) -> Result<S, String> {
    let mut req =
        S::decode(payload).map_err(|e| format!("a queued request cannot be decoded: {e}"))?;
    req.resources_mut().for_each(|r| add_attrs(r, extra));
    Ok(req)
}

/// The payload with the extra resource attributes, re-encoded (unchanged when there are none).
fn with_extra<S: OtlpSignal>(
    payload: &[u8],
    extra: &[(String, String)],
) -> Result<Vec<u8>, String> {
    if extra.is_empty() {
        return Ok(payload.to_vec());
    }
    Ok(decode_with_extra::<S>(payload, extra)?.encode_to_vec())
}

fn grpc_request<T>(msg: T, headers: &Headers) -> Result<tonic::Request<T>, String> {
    let mut req = tonic::Request::new(msg);
    for (k, v) in headers.iter() {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("'{k}' cannot be a gRPC metadata key"))?;
        let value = MetadataValue::try_from(v)
            .map_err(|_| format!("the value of {k} cannot be sent as gRPC metadata"))?;
        req.metadata_mut().insert(key, value);
    }
    Ok(req)
}

async fn send_grpc<S: OtlpSignal>(
    channel: Channel,
    headers: &Headers,
    host: &str,
    gzip: bool,
    payload: &[u8],
    extra: &[(String, String)],
) -> Outcome {
    let req = match decode_with_extra::<S>(payload, extra) {
        Ok(r) => r,
        Err(error) => return Outcome::Rejected { error },
    };
    let req = match grpc_request(req, headers) {
        Ok(r) => r,
        Err(error) => return Outcome::Auth { error },
    };
    match grpc_export(channel, gzip, req).await {
        Ok(response) => delivered(S::partial_success(response)),
        Err(status) => classify_grpc(&status, host),
    }
}

/// The signal's `Export` call, as tonic's generated `*ServiceClient::export` makes it (the three
/// clients differ only in the method's path).
async fn grpc_export<S: OtlpSignal>(
    channel: Channel,
    gzip: bool,
    mut req: tonic::Request<S>,
) -> Result<S::Response, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    if gzip {
        grpc = grpc.send_compressed(CompressionEncoding::Gzip);
    }
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
    req.extensions_mut().insert(tonic::GrpcMethod::new(S::SIGNAL.grpc_service(), "Export"));
    let path = http::uri::PathAndQuery::from_static(S::SIGNAL.grpc_export_path());
    let codec = tonic_prost::ProstCodec::<S, S::Response>::default();
    Ok(grpc.unary(req, path, codec).await?.into_inner())
}

fn classify_grpc(status: &tonic::Status, host: &str) -> Outcome {
    let code = status.code();
    let name = format!("{code:?}").to_uppercase();
    let message = status.message();
    let error = if message.is_empty() {
        format!("{name} from {host}")
    } else {
        format!("{name} from {host}: {message}")
    };
    let retry_info = status.get_details_retry_info().and_then(|r| r.retry_delay);
    match code {
        Code::Unauthenticated | Code::PermissionDenied => Outcome::Auth {
            error: format!("{error}: check the token (tokentray forward set-headers)"),
        },
        // The retryable codes of the OTLP specification; RESOURCE_EXHAUSTED only when the
        // server says when to come back.
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry { after: retry_info, error },
        Code::ResourceExhausted if retry_info.is_some() => {
            Outcome::Retry { after: retry_info, error }
        }
        _ => Outcome::Rejected { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_classified_as_the_specs_say() {
        let auth = classify_http(401, "otel.example.com", "", None, false);
        assert_eq!(auth, Outcome::Auth { error: "401 Unauthorized from otel.example.com: check the token (tokentray forward set-headers)".into() });
        assert!(
            matches!(classify_http(400, "h", "bad", None, false), Outcome::Rejected { error } if error == "400 Bad Request from h (bad)")
        );
        assert!(
            matches!(classify_http(503, "h", "", Some(Duration::from_secs(7)), false), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(classify_http(500, "h", "", None, false), Outcome::Rejected { .. }));
        assert!(matches!(classify_http(500, "h", "", None, true), Outcome::Retry { .. }));
        assert!(matches!(classify_http(429, "h", "", None, true), Outcome::Retry { .. }));
    }

    #[test]
    fn grpc_statuses_are_classified_as_the_spec_says() {
        assert!(matches!(
            classify_grpc(&tonic::Status::unavailable("down"), "h"),
            Outcome::Retry { after: None, .. }
        ));
        assert!(
            matches!(classify_grpc(&tonic::Status::unauthenticated("no"), "h"), Outcome::Auth { error } if error.starts_with("UNAUTHENTICATED from h: no"))
        );
        assert!(matches!(
            classify_grpc(&tonic::Status::invalid_argument("bad"), "h"),
            Outcome::Rejected { .. }
        ));
        assert!(matches!(
            classify_grpc(&tonic::Status::resource_exhausted("big"), "h"),
            Outcome::Rejected { .. }
        ));
        let with_delay = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        assert!(
            matches!(classify_grpc(&with_delay, "h"), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3))
        );
    }

    #[test]
    fn endpoints_and_hosts() {
        assert_eq!(host_of("https://otel.example.com:4317"), "otel.example.com:4317");
        assert_eq!(host_of("https://prom.example.com/api/v1/write"), "prom.example.com");
        assert!(validate_endpoint("otel.example.com:4317").is_err());
        assert!(validate_endpoint("https://").is_err());
        assert!(validate_endpoint("http://127.0.0.1:4317").is_ok());
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "12".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert("retry-after", later.parse().expect("value"));
        let d = retry_after(&h).expect("date parses");
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28), "{d:?}");
    }

    #[test]
    fn extra_attributes_are_added_to_every_resource() {
        let req = crate::testkit::metrics_request(crate::testkit::usage_metrics(
            "s",
            "u",
            "m",
            crate::testkit::Usage::TYPICAL,
            1,
            2,
            false,
        ));
        let out = with_extra::<ExportMetricsServiceRequest>(
            &req.encode_to_vec(),
            &[("team.id".into(), "payments".into())],
        )
        .expect("re-encodes");
        let back = ExportMetricsServiceRequest::decode(out.as_slice()).expect("decodes");
        for rm in back.resource_metrics {
            let attrs = rm.resource.expect("resource").attributes;
            assert!(attrs.iter().any(|kv| kv.key == "team.id"), "{attrs:?}");
        }
    }
}
