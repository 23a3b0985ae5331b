//! OTLP/gRPC: the Metrics, Logs and Trace services, with gzip and the same size limit as HTTP.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::Receiver;
use crate::signal::{OtlpSignal, PartialSuccess};
use crate::store::StoreError;

#[derive(Clone)]
pub(crate) struct GrpcReceiver {
    inner: Receiver,
}

/// The three services, ready for `tonic::transport::Server::add_service`.
pub(crate) fn services(
    receiver: Receiver,
) -> (
    MetricsServiceServer<GrpcReceiver>,
    LogsServiceServer<GrpcReceiver>,
    TraceServiceServer<GrpcReceiver>,
) {
    let limit = receiver.max_body_bytes();
    let svc = GrpcReceiver { inner: receiver };
    (
        MetricsServiceServer::new(svc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
        LogsServiceServer::new(svc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
        TraceServiceServer::new(svc)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
    )
}

impl GrpcReceiver {
    fn check_origin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let origin = req.metadata().get("origin").map(|v| v.to_str().unwrap_or("<non-ascii>"));
        if !self.inner.origin_allowed(origin) {
            return Err(Status::permission_denied(super::origin_refusal(
                origin.unwrap_or_default(),
            )));
        }
        match self.inner.check_auth(|name| req.metadata().get(name).map(|v| v.as_bytes())) {
            None => Ok(()),
            Some(reason) => Err(Status::unauthenticated(format!(
                "{reason}: this receiver requires authentication"
            ))),
        }
    }
}

/// Corrects two statuses tonic gives for bad input, which happen before any handler runs (so
/// they are trailers-only responses with the status in the headers):
/// * an undecodable message is INTERNAL; for the client it is INVALID_ARGUMENT (HTTP 400's twin);
/// * a message over the size limit is OUT_OF_RANGE, which OTLP clients retry forever; grpc-go
///   and the Collector say RESOURCE_EXHAUSTED, which they do not retry.
pub(crate) fn fix_bad_input_status<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers();
    let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
    let fixed = match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some("13")
            if message.starts_with("failed%20to%20decode")
                || message.starts_with("failed to decode") =>
        {
            "3"
        }
        Some("11") if message.contains("too%20large") || message.contains("too large") => "8",
        _ => return resp,
    };
    resp.headers_mut().insert("grpc-status", http::HeaderValue::from_static(fixed));
    resp
}

fn unavailable(e: StoreError) -> Status {
    // A damaged database does not heal: INTERNAL is not retried by OTLP exporters.
    if e.is_damage() {
        return Status::internal(format!("could not store the data: {e}"));
    }
    Status::unavailable(format!("could not store the data, retry later: {e}"))
}

impl GrpcReceiver {
    /// The `Export` method of every signal's service.
    async fn export_signal<S: OtlpSignal>(
        &self,
        request: Request<S>,
    ) -> Result<Response<S::Response>, Status> {
        self.check_origin(&request)?;
        let ack = self.inner.export(request.into_inner()).await.map_err(unavailable)?;
        Ok(Response::new(S::response(PartialSuccess::of(&ack))))
    }
}

/// tonic generates one service trait per signal; each is [`GrpcReceiver::export_signal`].
macro_rules! export_service {
    ($service:ident, $request:ty) => {
        #[tonic::async_trait]
        impl $service for GrpcReceiver {
            async fn export(
                &self,
                request: Request<$request>,
            ) -> Result<Response<<$request as OtlpSignal>::Response>, Status> {
                self.export_signal(request).await
            }
        }
    };
}

export_service!(MetricsService, ExportMetricsServiceRequest);
export_service!(LogsService, ExportLogsServiceRequest);
export_service!(TraceService, ExportTraceServiceRequest);
