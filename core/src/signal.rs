//! The three OTLP signals: [`Signal`] names one (its stored code, its OTLP/HTTP path, its gRPC
//! method), and `OtlpSignal` is what the receiver and the forwarder need of a signal's request
//! type, so that each of them handles requests once, generically, instead of once per signal.
//!
//! Adding a signal means a variant here and one `OtlpSignal` impl; the HTTP handler, the gRPC
//! services, the partial-success answers and the forwarder's exports follow.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::ingest::{self, Batch, Privacy};
use crate::receiver::json::{self, JsonError};
use crate::receiver::limits::{self, AttributeLimits, Refused};
use crate::store::ForwardMode;

/// Which OTLP signal a request, a response or a queued forwarding request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/metrics`, `ExportMetricsServiceRequest`.
    Metrics,
    /// `/v1/logs`, `ExportLogsServiceRequest` (Claude Code events).
    Logs,
    /// `/v1/traces`, `ExportTraceServiceRequest`.
    Traces,
}

impl Signal {
    /// The code stored in `forward_queue.signal`: 1 metrics, 2 logs, 3 traces. Stored values
    /// outlive releases, so these never change.
    pub fn as_code(self) -> u8 {
        match self {
            Signal::Metrics => 1,
            Signal::Logs => 2,
            Signal::Traces => 3,
        }
    }

    /// The signal of a stored code; `None` for a code tokentray never writes.
    pub fn from_code(code: u8) -> Option<Signal> {
        match code {
            1 => Some(Signal::Metrics),
            2 => Some(Signal::Logs),
            3 => Some(Signal::Traces),
            _ => None,
        }
    }

    /// The OTLP/HTTP path requests of this signal are posted to.
    pub fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
            Signal::Traces => "/v1/traces",
        }
    }

    /// The fully qualified name of the signal's OTLP gRPC service.
    pub(crate) fn grpc_service(self) -> &'static str {
        match self {
            Signal::Metrics => "opentelemetry.proto.collector.metrics.v1.MetricsService",
            Signal::Logs => "opentelemetry.proto.collector.logs.v1.LogsService",
            Signal::Traces => "opentelemetry.proto.collector.trace.v1.TraceService",
        }
    }

    /// The path of the service's one method, `Export` (`PathAndQuery::from_static` wants it
    /// whole).
    pub(crate) fn grpc_export_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        }
    }

    /// The OTLP/JSON name of the `Export*PartialSuccess` counter field of this signal.
    pub(crate) fn json_rejected_field(self) -> &'static str {
        match self {
            Signal::Metrics => "rejectedDataPoints",
            Signal::Logs => "rejectedLogRecords",
            Signal::Traces => "rejectedSpans",
        }
    }

    /// Whether accepted requests of this signal are queued for forwarding in `mode`.
    pub(crate) fn is_forwarded(self, mode: ForwardMode) -> bool {
        mode.otlp && (self != Signal::Traces || mode.traces)
    }
}

/// The `partial_success` of an export response, whatever the signal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartialSuccess {
    pub rejected: i64,
    pub message: String,
}

impl PartialSuccess {
    /// What an answer to a request acknowledged with `ack` carries: nothing unless something
    /// was rejected.
    pub(crate) fn of(ack: &crate::store::Ack) -> Option<PartialSuccess> {
        (ack.rejected > 0).then(|| PartialSuccess {
            rejected: ack.rejected.min(i64::MAX as u64) as i64,
            message: ack.reason.clone().unwrap_or_default(),
        })
    }
}

/// An OTLP export request type (`Export*ServiceRequest`) and what tokentray does with it.
pub(crate) trait OtlpSignal: Message + Default + Clone + Send + Sync + 'static {
    /// The signal this request type carries.
    const SIGNAL: Signal;
    /// `Export*ServiceResponse`.
    type Response: Message + Default + Send + Sync + 'static;

    /// Decodes an OTLP/JSON body.
    fn decode_json(body: &[u8]) -> Result<Self, JsonError>;
    /// Removes what is beyond the attribute limits; says what was refused.
    fn enforce_limits(&mut self, limits: &AttributeLimits) -> Refused;
    /// A copy with prompt text redacted, as it may leave the machine; `None` when the signal
    /// carries nothing to redact (the request goes out as it is).
    fn redacted(&self) -> Option<Self>;
    /// Normalises the request into what the store keeps.
    fn normalize(self, received_ns: i64, privacy: Privacy) -> Batch;
    /// The `resource` of every `Resource*` entry, to add attributes to.
    fn resources_mut(&mut self) -> impl Iterator<Item = &mut Option<Resource>>;
    /// The response carrying `partial`.
    fn response(partial: Option<PartialSuccess>) -> Self::Response;
    /// The `partial_success` of a peer's response.
    fn partial_success(response: Self::Response) -> Option<PartialSuccess>;
}

/// The methods of [`OtlpSignal`] that only name a request type's fields: its list of
/// `Resource*` entries, its response and that response's partial-success counter.
macro_rules! message_fields {
    ($resources:ident, $response:ident { $partial:ident { $rejected:ident } }) => {
        fn resources_mut(&mut self) -> impl Iterator<Item = &mut Option<Resource>> {
            self.$resources.iter_mut().map(|r| &mut r.resource)
        }
        fn response(partial: Option<PartialSuccess>) -> $response {
            $response {
                partial_success: partial
                    .map(|p| $partial { $rejected: p.rejected, error_message: p.message }),
            }
        }
        fn partial_success(response: $response) -> Option<PartialSuccess> {
            response
                .partial_success
                .map(|p| PartialSuccess { rejected: p.$rejected, message: p.error_message })
        }
    };
}

impl OtlpSignal for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    type Response = ExportMetricsServiceResponse;

    fn decode_json(body: &[u8]) -> Result<Self, JsonError> {
        json::decode_metrics(body)
    }
    fn enforce_limits(&mut self, limits: &AttributeLimits) -> Refused {
        limits::enforce_metrics(self, limits)
    }
    fn redacted(&self) -> Option<Self> {
        // Metrics carry no prompt text.
        None
    }
    fn normalize(self, received_ns: i64, _: Privacy) -> Batch {
        ingest::metrics::normalize(self, received_ns)
    }
    message_fields!(
        resource_metrics,
        ExportMetricsServiceResponse { ExportMetricsPartialSuccess { rejected_data_points } }
    );
}

impl OtlpSignal for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    type Response = ExportLogsServiceResponse;

    fn decode_json(body: &[u8]) -> Result<Self, JsonError> {
        json::decode_logs(body)
    }
    fn enforce_limits(&mut self, limits: &AttributeLimits) -> Refused {
        limits::enforce_logs(self, limits)
    }
    fn redacted(&self) -> Option<Self> {
        let mut out = self.clone();
        ingest::logs::redact_request(&mut out);
        Some(out)
    }
    fn normalize(self, received_ns: i64, privacy: Privacy) -> Batch {
        ingest::logs::normalize(self, received_ns, privacy)
    }
    message_fields!(
        resource_logs,
        ExportLogsServiceResponse { ExportLogsPartialSuccess { rejected_log_records } }
    );
}

impl OtlpSignal for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    type Response = ExportTraceServiceResponse;

    fn decode_json(body: &[u8]) -> Result<Self, JsonError> {
        json::decode_traces(body)
    }
    fn enforce_limits(&mut self, _: &AttributeLimits) -> Refused {
        // Spans are stored by name, times and ids only: their attributes never become labels.
        Refused::default()
    }
    fn redacted(&self) -> Option<Self> {
        let mut out = self.clone();
        for span in out
            .resource_spans
            .iter_mut()
            .flat_map(|r| r.scope_spans.iter_mut())
            .flat_map(|s| s.spans.iter_mut())
        {
            ingest::logs::redact_key_values(&mut span.attributes);
            for event in &mut span.events {
                ingest::logs::redact_key_values(&mut event.attributes);
            }
        }
        Some(out)
    }
    fn normalize(self, _: i64, _: Privacy) -> Batch {
        ingest::traces::normalize(self)
    }
    message_fields!(
        resource_spans,
        ExportTraceServiceResponse { ExportTracePartialSuccess { rejected_spans } }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_codes_round_trip_and_never_change() {
        for (signal, code) in [(Signal::Metrics, 1), (Signal::Logs, 2), (Signal::Traces, 3)] {
            assert_eq!(signal.as_code(), code);
            assert_eq!(Signal::from_code(code), Some(signal));
        }
        assert_eq!(Signal::from_code(0), None);
        assert_eq!(Signal::from_code(4), None);
    }
}
