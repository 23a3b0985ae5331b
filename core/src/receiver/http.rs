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
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::body::{self, BodyError, Encoding};
use super::status::{code, RpcStatus};
use super::{json, Receiver};
use crate::signal::{OtlpSignal, PartialSuccess};
use crate::store::Ack;

/// The OTLP/HTTP router. The body limit is enforced here on the wire and again after decompression.
pub fn router(receiver: Receiver) -> Router {
    let limit = receiver.max_body_bytes();
    let router = route::<ExportMetricsServiceRequest>(Router::new());
    let router = route::<ExportLogsServiceRequest>(router);
    let router = route::<ExportTraceServiceRequest>(router);
    router.layer(DefaultBodyLimit::max(limit)).with_state(receiver)
}

/// `POST` of the signal's path (`/v1/metrics` …) answered by [`export`].
fn route<S: OtlpSignal>(router: Router<Receiver>) -> Router<Receiver> {
    router.route(S::SIGNAL.path(), post(export::<S>))
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

async fn export<S: OtlpSignal>(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
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
    let result = match decode::<S>(&body, encoding) {
        Ok(req) => receiver.export(req).await,
        Err(msg) => return error(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, msg, encoding),
    };
    match result {
        Ok(ack) => success::<S>(&ack, encoding),
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

fn decode<S: OtlpSignal>(body: &[u8], encoding: Encoding) -> Result<S, String> {
    match encoding {
        Encoding::Protobuf => S::decode(body).map_err(|e| format!("invalid protobuf body: {e}")),
        Encoding::Json => S::decode_json(body).map_err(|e| format!("invalid OTLP/JSON body: {e}")),
    }
}

fn success<S: OtlpSignal>(ack: &Ack, encoding: Encoding) -> Response {
    let body = match encoding {
        // A zero count with a message is still a partial success in JSON (a warning).
        Encoding::Json => json::encode_partial_success(
            S::SIGNAL,
            ack.rejected.min(i64::MAX as u64) as i64,
            ack.reason.as_deref().unwrap_or_default(),
        ),
        Encoding::Protobuf => S::response(PartialSuccess::of(ack)).encode_to_vec(),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}
