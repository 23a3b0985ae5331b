//! Explicit limits on attributes, checked before anything is normalised or stored, so that one
//! request with a huge attribute set cannot hold the writer (or a scrape) up.
//!
//! The defaults follow the OpenTelemetry SDKs' attribute limits (`OTEL_ATTRIBUTE_COUNT_LIMIT`
//! = 128 per point, resource or record; the SDKs leave value length unlimited, but an attribute of
//! a metric point becomes a Prometheus label, so it is bounded here); Claude Code sends about 15.
//! A point, or a log record, beyond a limit is refused through OTLP `partial_success` with the
//! reason and counted; a resource beyond a limit refuses every point under it. Everything else
//! in the request is stored as usual.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

use crate::config::ReceiverConfig;

/// The limits in force (`[receiver]` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AttributeLimits {
    /// Attributes per data point, per resource and per log record.
    pub max_attributes: usize,
    /// Bytes of one attribute value of a metric point or resource (a label value).
    pub max_value_bytes: usize,
    /// Bytes of all attribute keys and values of one point together with its resource's (its
    /// label set).
    pub max_label_set_bytes: usize,
}

impl AttributeLimits {
    pub(crate) fn of(config: &ReceiverConfig) -> AttributeLimits {
        AttributeLimits {
            max_attributes: config.max_attributes,
            max_value_bytes: config.max_attribute_value_bytes,
            max_label_set_bytes: config.max_label_set_bytes,
        }
    }
}

/// What the limits refused: a count and the first reason.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Refused {
    pub count: u64,
    pub reason: Option<String>,
}

impl Refused {
    fn add(&mut self, n: u64, reason: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.count += n;
        if self.reason.is_none() {
            self.reason = Some(reason());
        }
    }
}

fn value_bytes(kv: &KeyValue) -> usize {
    kv.value.as_ref().map_or(0, Message::encoded_len)
}

/// Bytes of a set of attributes as labels (keys plus values).
fn set_bytes(attrs: &[KeyValue]) -> usize {
    attrs.iter().map(|kv| kv.key.len() + value_bytes(kv)).sum()
}

/// Why `attrs` (of a `what`) break a limit, `None` when they do not. `base` is the label bytes
/// the point inherits from its resource.
fn check_labels(
    limits: &AttributeLimits,
    what: &str,
    attrs: &[KeyValue],
    base: usize,
) -> Option<String> {
    if attrs.len() > limits.max_attributes {
        return Some(format!(
            "{what} with {} attributes, over the limit of {} ([receiver] max_attributes)",
            attrs.len(),
            limits.max_attributes
        ));
    }
    if let Some(kv) = attrs.iter().find(|kv| value_bytes(kv) > limits.max_value_bytes) {
        return Some(format!(
            "{what}: attribute '{}' has a value of {} bytes, over the limit of {} ([receiver] max_attribute_value_bytes)",
            kv.key.chars().take(64).collect::<String>(),
            value_bytes(kv),
            limits.max_value_bytes
        ));
    }
    let total = base + set_bytes(attrs);
    (total > limits.max_label_set_bytes).then(|| {
        format!(
            "{what}: {total} bytes of labels, over the limit of {} ([receiver] max_label_set_bytes)",
            limits.max_label_set_bytes
        )
    })
}

fn point_count(data: &Data) -> u64 {
    (match data {
        Data::Sum(s) => s.data_points.len(),
        Data::Gauge(g) => g.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }) as u64
}

/// Removes the data points beyond a limit from `req`; returns what was refused.
pub(crate) fn enforce_metrics(
    req: &mut ExportMetricsServiceRequest,
    limits: &AttributeLimits,
) -> Refused {
    let mut refused = Refused::default();
    req.resource_metrics.retain_mut(|rm| {
        let resource = rm.resource.as_ref().map_or(&[][..], |r| r.attributes.as_slice());
        if let Some(reason) = check_labels(limits, "resource", resource, 0) {
            let points = rm
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
                .filter_map(|m| m.data.as_ref())
                .map(point_count)
                .sum();
            refused.add(points, || reason);
            return false;
        }
        let base = set_bytes(resource);
        for metric in rm.scope_metrics.iter_mut().flat_map(|s| &mut s.metrics) {
            let name = metric.name.chars().take(128).collect::<String>();
            let mut keep = |attrs: &[KeyValue]| match check_labels(
                limits,
                &format!("metric {name}: data point"),
                attrs,
                base,
            ) {
                Some(reason) => {
                    refused.add(1, || reason);
                    false
                }
                None => true,
            };
            match metric.data.as_mut() {
                Some(Data::Sum(s)) => s.data_points.retain(|p| keep(&p.attributes)),
                Some(Data::Gauge(g)) => g.data_points.retain(|p| keep(&p.attributes)),
                Some(Data::Histogram(h)) => h.data_points.retain(|p| keep(&p.attributes)),
                Some(Data::ExponentialHistogram(h)) => {
                    h.data_points.retain(|p| keep(&p.attributes))
                }
                Some(Data::Summary(s)) => s.data_points.retain(|p| keep(&p.attributes)),
                None => {}
            }
        }
        true
    });
    refused
}

/// Removes the log records beyond the attribute count limit (values may be long: prompt text
/// when `store_prompts` is on); returns what was refused.
pub(crate) fn enforce_logs(
    req: &mut ExportLogsServiceRequest,
    limits: &AttributeLimits,
) -> Refused {
    let mut refused = Refused::default();
    let over = |n: usize| n > limits.max_attributes;
    let limit = limits.max_attributes;
    req.resource_logs.retain_mut(|rl| {
        let resource = rl.resource.as_ref().map_or(0, |r| r.attributes.len());
        if over(resource) {
            let records = rl.scope_logs.iter().map(|s| s.log_records.len() as u64).sum();
            refused.add(records, || {
                format!("resource with {resource} attributes, over the limit of {limit} ([receiver] max_attributes)")
            });
            return false;
        }
        for scope in &mut rl.scope_logs {
            scope.log_records.retain(|r| {
                let n = r.attributes.len();
                if over(n) {
                    refused.add(1, || {
                        format!("log record with {n} attributes, over the limit of {limit} ([receiver] max_attributes)")
                    });
                }
                !over(n)
            });
        }
        true
    });
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    const LIMITS: AttributeLimits =
        AttributeLimits { max_attributes: 128, max_value_bytes: 4096, max_label_set_bytes: 65536 };

    #[test]
    fn points_beyond_a_limit_are_refused_and_the_rest_kept() {
        let mut metrics =
            testkit::usage_metrics("s", "u", testkit::MODEL, testkit::Usage::TYPICAL, 1, 2, false);
        let Some(Data::Sum(tokens)) = metrics[1].data.as_mut() else { panic!("a sum") };
        let many: Vec<KeyValue> = (0..200).map(|i| testkit::kv(&format!("k{i}"), "v")).collect();
        tokens.data_points[0].attributes.extend(many);
        tokens.data_points[1].attributes.push(testkit::kv("long", &"x".repeat(5000)));
        let mut req = testkit::metrics_request(metrics);
        let refused = enforce_metrics(&mut req, &LIMITS);
        assert_eq!(refused.count, 2);
        assert!(refused.reason.as_deref().unwrap_or("").contains("max_attributes"), "{refused:?}");
        let kept: u64 = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .filter_map(|m| m.data.as_ref())
            .map(point_count)
            .sum();
        assert_eq!(kept, 3, "the cost point and two token points stay");
    }
}
