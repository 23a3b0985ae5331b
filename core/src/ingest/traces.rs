//! `ExportTraceServiceRequest` → [`SpanRecord`]s (names, times and ids only).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::attrs;
use super::model::*;

pub(crate) fn normalize(req: ExportTraceServiceRequest) -> Batch {
    let mut batch = Batch::default();
    for rs in req.resource_spans {
        let resource = super::resource(rs.resource);
        if batch.client.is_none() {
            batch.client = super::client_of(&resource);
        }
        for ss in rs.scope_spans {
            for span in ss.spans {
                let session_id =
                    span.attributes.iter().find(|kv| kv.key == "session.id").and_then(|kv| {
                        attrs::AttrValue::from_any(kv.value.clone()).as_str().map(str::to_string)
                    });
                batch.spans.push(SpanRecord {
                    start_ns: span.start_time_unix_nano.min(i64::MAX as u64) as i64,
                    end_ns: span.end_time_unix_nano.min(i64::MAX as u64) as i64,
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    session_id,
                    status_code: span.status.map(|s| s.code).unwrap_or(0),
                });
            }
        }
    }
    batch
}
