//! OTLP/HTTP: `POST /v1/metrics`, `/v1/logs`, `/v1/traces` with protobuf or JSON bodies.
//!
//! Errors follow the OTLP/HTTP spec: a `google.rpc.Status` body in the request's encoding, 400 for
//! undecodable input, 413 for oversized bodies, 415 for unsupported media, 503 (retryable) when
//! the store cannot commit. The response to a success is the `Export*ServiceResponse`, with
//! `partial_success` when some points were refused.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::body::{self, BodyError, Encoding};
use super::status::{code, RpcStatus};
use super::{json, Receiver, Signal};
use crate::store::Ack;

/// The OTLP/HTTP router. The body limit is enforced here on the wire and again after decompression.
pub fn router(receiver: Receiver) -> Router {
    let limit = receiver.max_body_bytes();
    Router::new()
        .route("/v1/metrics", post(|s, h, b| export(s, h, b, Signal::Metrics)))
        .route("/v1/logs", post(|s, h, b| export(s, h, b, Signal::Logs)))
        .route("/v1/traces", post(|s, h, b| export(s, h, b, Signal::Traces)))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(receiver)
}

/// An error answer in the request's encoding.
fn error(status: StatusCode, grpc_code: i32, message: String, encoding: Encoding) -> Response {
    let body = match encoding {
        Encoding::Json => json::encode_status(grpc_code, &message),
        Encoding::Protobuf => {
            RpcStatus { code: grpc_code, message: message.clone() }.encode_to_vec()
        }
    };
    let mut resp =
        (status, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn export(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
    signal: Signal,
) -> Response {
    // Until the content type is known, errors are answered in JSON, the readable choice.
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("<non-ascii>"));
    if !receiver.origin_allowed(origin) {
        return error(
            StatusCode::FORBIDDEN,
            code::PERMISSION_DENIED,
            super::origin_refusal(origin.unwrap_or_default()),
            Encoding::Json,
        );
    }
    if let Some(reason) = receiver.check_auth(|name| headers.get(name).map(|v| v.as_bytes())) {
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            format!("{reason}: this receiver requires authentication"),
            Encoding::Json,
        );
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let Some(encoding) = content_type.and_then(Encoding::from_content_type) else {
        let msg = format!(
            "unsupported Content-Type '{}': send application/x-protobuf or application/json",
            content_type.unwrap_or("")
        );
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            msg,
            Encoding::Json,
        );
    };
    let raw = match raw {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let msg = BodyError::TooLarge { limit: receiver.max_body_bytes(), decompressed: false }
                .to_string();
            return error(StatusCode::PAYLOAD_TOO_LARGE, code::RESOURCE_EXHAUSTED, msg, encoding);
        }
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                format!("cannot read the request body: {rejection}"),
                encoding,
            )
        }
    };
    let body = match body::decode(
        header_str(&headers, header::CONTENT_ENCODING),
        raw,
        receiver.max_body_bytes(),
    ) {
        Ok(b) => b,
        Err(e @ BodyError::TooLarge { .. }) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::RESOURCE_EXHAUSTED,
                e.to_string(),
                encoding,
            )
        }
        Err(e @ BodyError::UnsupportedEncoding(_)) => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                e.to_string(),
                encoding,
            )
        }
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, e.to_string(), encoding)
        }
    };
    let result = match signal {
        Signal::Metrics => {
            match decode::<ExportMetricsServiceRequest>(&body, encoding, json::decode_metrics) {
                Ok(req) => receiver.export_metrics(req).await,
                Err(msg) => {
                    return error(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, msg, encoding)
                }
            }
        }
        Signal::Logs => {
            match decode::<ExportLogsServiceRequest>(&body, encoding, json::decode_logs) {
                Ok(req) => receiver.export_logs(req).await,
                Err(msg) => {
                    return error(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, msg, encoding)
                }
            }
        }
        Signal::Traces => {
            match decode::<ExportTraceServiceRequest>(&body, encoding, json::decode_traces) {
                Ok(req) => receiver.export_traces(req).await,
                Err(msg) => {
                    return error(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, msg, encoding)
                }
            }
        }
    };
    match result {
        Ok(ack) => success(signal, &ack, encoding),
        // A damaged database does not heal: 500 is not retried by OTLP exporters.
        Err(e) if e.is_damage() => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            format!("could not store the data: {e}"),
            encoding,
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            format!("could not store the data, retry later: {e}"),
            encoding,
        ),
    }
}

fn decode<M: Message + Default>(
    body: &[u8],
    encoding: Encoding,
    from_json: fn(&[u8]) -> Result<M, json::JsonError>,
) -> Result<M, String> {
    match encoding {
        Encoding::Protobuf => M::decode(body).map_err(|e| format!("invalid protobuf body: {e}")),
        Encoding::Json => from_json(body).map_err(|e| format!("invalid OTLP/JSON body: {e}")),
    }
}

fn success(signal: Signal, ack: &Ack, encoding: Encoding) -> Response {
    let rejected = ack.rejected.min(i64::MAX as u64) as i64;
    let message = ack.reason.clone().unwrap_or_default();
    let body = match encoding {
        Encoding::Json => json::encode_partial_success(signal, rejected, &message),
        Encoding::Protobuf => {
            let partial = rejected > 0;
            match signal {
                Signal::Metrics => ExportMetricsServiceResponse {
                    partial_success: partial.then_some(ExportMetricsPartialSuccess {
                        rejected_data_points: rejected,
                        error_message: message,
                    }),
                }
                .encode_to_vec(),
                Signal::Logs => ExportLogsServiceResponse {
                    partial_success: partial.then_some(ExportLogsPartialSuccess {
                        rejected_log_records: rejected,
                        error_message: message,
                    }),
                }
                .encode_to_vec(),
                Signal::Traces => ExportTraceServiceResponse {
                    partial_success: partial.then_some(ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message,
                    }),
                }
                .encode_to_vec(),
            }
        }
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}
