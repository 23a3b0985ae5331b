//! `ExportMetricsServiceRequest` → [`MetricPoint`]s.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, HistogramDataPoint, NumberDataPoint,
};
use xxhash_rust::xxh3::Xxh3;

use super::attrs::{self, hash_attrs, hash_field};
use super::model::*;

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point marks a gap, it carries no value.
const NO_RECORDED_VALUE: u32 = 1;

/// Normalises a metrics request. Never fails: bad points are counted in `Batch::rejected`.
pub fn normalize(req: ExportMetricsServiceRequest, received_ns: i64) -> Batch {
    let mut batch = Batch::default();
    for rm in req.resource_metrics {
        let resource = super::resource(rm.resource);
        if batch.client.is_none() {
            batch.client = super::client_of(&resource);
        }
        for sm in rm.scope_metrics {
            let (scope_name, scope_version) =
                sm.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for metric in sm.metrics {
                let Some(data) = metric.data else { continue };
                let base = Base {
                    metric: &metric.name,
                    unit: &metric.unit,
                    description: &metric.description,
                    resource: &resource,
                    scope_name: &scope_name,
                    scope_version: &scope_version,
                    received_ns,
                };
                if metric.name.is_empty() {
                    let n = count_points(&data);
                    batch.reject(n, || "metric with an empty name".into());
                    continue;
                }
                match data {
                    Data::Sum(sum) => {
                        let shape = if sum.is_monotonic {
                            Shape::MonotonicSum
                        } else {
                            Shape::NonMonotonicSum
                        };
                        let temporality = match temporality(sum.aggregation_temporality) {
                            Some(t) => t,
                            None => {
                                batch.reject(sum.data_points.len() as u64, || {
                                    format!(
                                        "metric {}: aggregation temporality unspecified",
                                        metric.name
                                    )
                                });
                                continue;
                            }
                        };
                        for p in sum.data_points {
                            base.number(&mut batch, shape, temporality, p);
                        }
                    }
                    Data::Gauge(gauge) => {
                        for p in gauge.data_points {
                            base.number(&mut batch, Shape::Gauge, Temporality::Cumulative, p);
                        }
                    }
                    Data::Histogram(hist) => {
                        let Some(temporality) = temporality(hist.aggregation_temporality) else {
                            batch.reject(hist.data_points.len() as u64, || {
                                format!(
                                    "metric {}: aggregation temporality unspecified",
                                    metric.name
                                )
                            });
                            continue;
                        };
                        for p in hist.data_points {
                            base.histogram(&mut batch, temporality, p);
                        }
                    }
                    Data::ExponentialHistogram(h) => {
                        batch.reject(h.data_points.len() as u64, || {
                            format!(
                                "metric {}: exponential histograms are not supported",
                                metric.name
                            )
                        })
                    }
                    Data::Summary(s) => batch.reject(s.data_points.len() as u64, || {
                        format!("metric {}: summaries are not supported", metric.name)
                    }),
                }
            }
        }
    }
    batch
}

fn temporality(code: i32) -> Option<Temporality> {
    match AggregationTemporality::try_from(code) {
        Ok(AggregationTemporality::Delta) => Some(Temporality::Delta),
        Ok(AggregationTemporality::Cumulative) => Some(Temporality::Cumulative),
        _ => None,
    }
}

fn count_points(data: &Data) -> u64 {
    (match data {
        Data::Sum(s) => s.data_points.len(),
        Data::Gauge(g) => g.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }) as u64
}

/// What all points of one metric share (also of the counters derived from events).
pub(super) struct Base<'a> {
    pub metric: &'a str,
    pub unit: &'a str,
    pub description: &'a str,
    pub resource: &'a Arc<Resource>,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub received_ns: i64,
}

impl Base<'_> {
    pub(super) fn series(&self, shape: Shape, attrs: attrs::Attrs) -> Arc<SeriesDesc> {
        let mut h = Xxh3::new();
        hash_field(&mut h, self.metric);
        h.update(&self.resource.key.to_le_bytes());
        hash_field(&mut h, self.scope_name);
        hash_field(&mut h, self.scope_version);
        hash_attrs(&mut h, &attrs);
        Arc::new(SeriesDesc {
            metric: self.metric.to_string(),
            unit: self.unit.to_string(),
            description: self.description.to_string(),
            shape,
            resource: Arc::clone(self.resource),
            scope_name: self.scope_name.to_string(),
            scope_version: self.scope_version.to_string(),
            attrs,
            key: h.digest128(),
        })
    }

    /// A point without a timestamp is dated on arrival, so it still lands in today's totals.
    fn time(&self, time_ns: u64) -> u64 {
        if time_ns == 0 {
            self.received_ns.max(0) as u64
        } else {
            time_ns
        }
    }

    fn number(
        &self,
        batch: &mut Batch,
        shape: Shape,
        temporality: Temporality,
        p: NumberDataPoint,
    ) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => {
                batch.reject(1, || format!("metric {}: data point without a value", self.metric));
                return;
            }
        };
        if !value.is_finite() {
            batch.reject(1, || format!("metric {}: value {value} is not finite", self.metric));
            return;
        }
        if shape == Shape::MonotonicSum && value < 0.0 {
            batch.reject(1, || {
                format!("metric {}: negative value {value} on a monotonic sum", self.metric)
            });
            return;
        }
        let series = self.series(shape, attrs::from_proto(p.attributes));
        batch.points.push(MetricPoint {
            series,
            temporality,
            start_ns: p.start_time_unix_nano,
            time_ns: self.time(p.time_unix_nano),
            value: PointValue::Number(value),
        });
    }

    fn histogram(&self, batch: &mut Batch, temporality: Temporality, p: HistogramDataPoint) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let bounds_ok = p.explicit_bounds.windows(2).all(|w| w[0] < w[1])
            && p.explicit_bounds.iter().all(|b| b.is_finite());
        if p.bucket_counts.len() != p.explicit_bounds.len() + 1 || !bounds_ok {
            batch.reject(1, || {
                format!(
                    "metric {}: histogram with {} bucket counts for {} bounds (need bounds + 1, bounds ascending)",
                    self.metric,
                    p.bucket_counts.len(),
                    p.explicit_bounds.len()
                )
            });
            return;
        }
        let sum = p.sum.unwrap_or(0.0);
        if !sum.is_finite() {
            batch.reject(1, || format!("metric {}: histogram sum is not finite", self.metric));
            return;
        }
        let series = self.series(Shape::Histogram, attrs::from_proto(p.attributes));
        batch.points.push(MetricPoint {
            series,
            temporality,
            start_ns: p.start_time_unix_nano,
            time_ns: self.time(p.time_unix_nano),
            value: PointValue::Histogram(HistogramPoint {
                bounds: p.explicit_bounds,
                counts: p.bucket_counts,
                sum,
                count: p.count,
            }),
        });
    }
}
