//! Counters tokentray derives from events, for what Claude Code reports only as an event.
//!
//! Claude Code sends a failed API call only as a `claude_code.api_error` log record; no metric
//! counts them, so a Prometheus (local scrape or the team's, by remote write) would have nothing
//! to count. Each such event therefore also yields one delta point of tokentray's own monotonic
//! sum [`API_ERROR_COUNT`] (`claude_code_api_error_count_total` in Prometheus). The point rides
//! in the same [`Batch`] as the event and is applied in the same transaction as the event is
//! stored, so the counter counts stored events exactly once and goes through the same exact
//! accounting, `/metrics` and remote write as Claude Code's own counters.

use std::sync::Arc;

use super::attrs::{self, AttrValue, Attrs};
use super::metrics::Base;
use super::model::*;

/// The event counted by [`API_ERROR_COUNT`].
pub(crate) const API_ERROR: &str = "claude_code.api_error";

/// tokentray's counter of `claude_code.api_error` events (Claude Code sends no such metric).
pub(crate) const API_ERROR_COUNT: &str = "claude_code.api_error.count";

const API_ERROR_UNIT: &str = "1";
const API_ERROR_DESCRIPTION: &str =
    "Count of failed API calls (claude_code.api_error events), derived by tokentray";

/// The attributes Claude Code puts on every data point and event (reference 5.1): the derived
/// series carries them too, so it is grouped and filtered like Claude Code's other series.
const IDENTITY_KEYS: &[&str] = &[
    "user.id",
    "session.id",
    "app.version",
    "app.entrypoint",
    "anthropic.provider",
    "anthropic.custom_base_url",
    "terminal.type",
];

/// The event's own attributes that make the counter useful and stay few in values. The error
/// text, request id, prompt id, attempt and duration are left out: they differ per event and
/// would make every error its own series.
const OWN_KEYS: &[&str] = &["model", "status_code"];

/// Where an event came from, as far as the derived series' identity is concerned.
pub(crate) struct EventScope<'a> {
    pub resource: &'a Arc<Resource>,
    pub name: &'a str,
    pub version: &'a str,
}

/// The counter point one event yields, if it is an event tokentray counts.
pub(crate) fn point_for(event: &EventRecord, scope: &EventScope) -> Option<MetricPoint> {
    if event.name != API_ERROR {
        return None;
    }
    let base = Base {
        metric: API_ERROR_COUNT,
        unit: API_ERROR_UNIT,
        description: API_ERROR_DESCRIPTION,
        resource: scope.resource,
        scope_name: scope.name,
        scope_version: scope.version,
        received_ns: event.time_ns,
    };
    let time_ns = event.time_ns.max(0) as u64;
    Some(MetricPoint {
        series: base.series(Shape::MonotonicSum, series_attrs(event)),
        temporality: Temporality::Delta,
        start_ns: time_ns,
        time_ns,
        value: PointValue::Number(1.0),
    })
}

/// The identity attributes, copies of resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, which
/// Claude Code repeats on every event) and the event's own low-cardinality attributes.
fn series_attrs(event: &EventRecord) -> Attrs {
    let is_resource_copy = |key: &str, value: &AttrValue| {
        attrs::get(&event.resource.attrs, key).is_some_and(|v| v == value)
    };
    // `event.attrs` is sorted by key, so the result is too.
    event
        .attrs
        .iter()
        .filter(|(key, value)| {
            IDENTITY_KEYS.contains(&key.as_str())
                || OWN_KEYS.contains(&key.as_str())
                || is_resource_copy(key, value)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;

    use super::*;
    use crate::ingest::{logs, Privacy};
    use crate::testkit::{self, kv, kv_int};

    /// An event as Claude Code sends it, with `team.id` from `OTEL_RESOURCE_ATTRIBUTES`.
    fn record(name: &str, status_code: Option<i64>) -> LogRecord {
        let per_event = [
            ("model", testkit::MODEL),
            ("error", "Overloaded"),
            ("request_id", "req_1"),
            ("prompt.id", "p1"),
            ("team.id", "platform"),
        ];
        let mut r = testkit::event_record("s1", name, &per_event, 1_795_330_118_183_000_000);
        r.attributes.extend([kv_int("attempt", 2), kv_int("event.sequence", 7)]);
        r.attributes.extend(status_code.map(|c| kv_int("status_code", c)));
        r
    }

    fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        let mut req = testkit::logs_request(records);
        if let Some(resource) = req.resource_logs[0].resource.as_mut() {
            resource.attributes.push(kv("team.id", "platform"));
        }
        req
    }

    #[test]
    fn an_api_error_event_yields_one_counter_point_with_its_identity() {
        let batch = logs::normalize(
            request(vec![
                record("api_error", Some(529)),
                record("api_request", None),
                record("api_retries_exhausted", Some(529)),
            ]),
            0,
            Privacy::default(),
        );
        assert_eq!(batch.events.len(), 3, "every event is still stored");
        assert!(batch.points.is_empty(), "derived points are not the client's points");
        assert_eq!(batch.derived.len(), 1, "only the api_error event is counted");
        let p = &batch.derived[0];
        assert_eq!(p.series.metric, API_ERROR_COUNT);
        assert_eq!(p.series.shape, Shape::MonotonicSum);
        assert_eq!(p.temporality, Temporality::Delta);
        assert_eq!(p.value, PointValue::Number(1.0));
        assert_eq!(p.time_ns, 1_795_330_118_183_000_000);
        assert_eq!(p.series.scope_name, "com.anthropic.claude_code.events");
        assert_eq!(p.series.resource, batch.events[0].resource);
        let keys: Vec<&str> = p.series.attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "anthropic.custom_base_url",
                "anthropic.provider",
                "model",
                "session.id",
                "status_code",
                "team.id",
                "terminal.type",
                "user.id"
            ],
            "identity, resource copies, model and status; not the per-event attributes"
        );
        assert_eq!(attrs::get(&p.series.attrs, "status_code"), Some(&AttrValue::Int(529)));
    }

    #[test]
    fn errors_of_one_session_and_status_share_a_series() {
        let batch = logs::normalize(
            request(vec![
                record("api_error", Some(500)),
                record("api_error", Some(500)),
                record("api_error", None),
            ]),
            0,
            Privacy::default(),
        );
        let keys: Vec<u128> = batch.derived.iter().map(|p| p.series.key).collect();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0], keys[1], "same session, model and status: one series");
        assert_ne!(keys[0], keys[2], "no status code (repeated 529s) is a series of its own");
    }
}
