//! Prometheus remote write 1.0: the `prometheus.WriteRequest` protobuf (the few messages it
//! needs, declared here with prost) built from our exact cumulative totals.
//!
//! Remote write carries cumulative samples, so what is sent is each changed `/metrics` row's
//! total at the time of sending, read from the store: delta→cumulative is done once, here, and a
//! long outage costs no accuracy (the latest total is still the total).

use crate::exposition::naming;
use crate::exposition::FamilyKind;

use super::queue::RowValue;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Parses labels as `/metrics` renders them (`a="1",b="x\"y"`) back into pairs.
pub(crate) fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim_start_matches(',').to_string();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = rest.len() - eq - 2;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((name, value));
        rest = &rest[(eq + 2 + end).min(rest.len())..];
    }
    out
}

/// Formats a bucket bound as Prometheus does (`0.5`, `1`, `+Inf`).
fn le(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{bound}")
    }
}

fn series(
    name: &str,
    base: &[(String, String)],
    extra: Option<(&str, String)>,
    value: f64,
    timestamp: i64,
) -> TimeSeries {
    let mut labels: Vec<Label> =
        base.iter().map(|(n, v)| Label { name: n.clone(), value: v.clone() }).collect();
    labels.push(Label { name: "__name__".into(), value: name.into() });
    if let Some((n, v)) = extra {
        labels.push(Label { name: n.into(), value: v });
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels.dedup_by(|a, b| a.name == b.name);
    TimeSeries { labels, samples: vec![Sample { value, timestamp }] }
}

/// The request for `rows` at `timestamp_ms`, with `extra` labels (the configured resource
/// attributes, translated to label names) on every series.
pub(crate) fn build(
    rows: &[RowValue],
    extra: &[(String, String)],
    timestamp_ms: i64,
) -> WriteRequest {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (naming::label_name(k), v.clone()))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let mut timeseries = Vec::with_capacity(rows.len());
    for row in rows {
        let mut base = parse_labels(&row.labels);
        for (k, v) in &extra {
            if !base.iter().any(|(n, _)| n == k) {
                base.push((k.clone(), v.clone()));
            }
        }
        match (row.kind, &row.hist) {
            (FamilyKind::Histogram, Some(h)) => {
                let mut cumulative = 0.0;
                for (i, count) in h.counts.iter().enumerate() {
                    cumulative += count;
                    let bound = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    timeseries.push(series(
                        &format!("{}_bucket", row.family),
                        &base,
                        Some(("le", le(bound))),
                        cumulative,
                        timestamp_ms,
                    ));
                }
                timeseries.push(series(
                    &format!("{}_sum", row.family),
                    &base,
                    None,
                    h.sum,
                    timestamp_ms,
                ));
                timeseries.push(series(
                    &format!("{}_count", row.family),
                    &base,
                    None,
                    h.count,
                    timestamp_ms,
                ));
            }
            (FamilyKind::Histogram, None) => {}
            _ => timeseries.push(series(&row.family, &base, None, row.value, timestamp_ms)),
        }
    }
    WriteRequest { timeseries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::accounting::HistAcc;

    #[test]
    fn labels_round_trip_through_the_rendered_form() {
        let pairs = vec![
            ("a".to_string(), "x\"y\\z\nw".to_string()),
            ("job".into(), "claude-code".into()),
            ("model".into(), "a,b=c".into()),
        ];
        assert_eq!(parse_labels(&naming::render_labels(&pairs)), pairs);
        assert!(parse_labels("").is_empty());
    }

    #[test]
    fn counters_and_histograms_become_sorted_series() {
        let rows = vec![
            RowValue {
                family: "claude_code_cost_usage_USD_total".into(),
                labels: r#"model="m",type="x""#.into(),
                kind: FamilyKind::Counter,
                value: 1.5,
                hist: None,
            },
            RowValue {
                family: "lat_seconds".into(),
                labels: String::new(),
                kind: FamilyKind::Histogram,
                value: 0.0,
                hist: Some(HistAcc {
                    bounds: vec![0.5, 1.0],
                    counts: vec![1.0, 2.0, 3.0],
                    sum: 9.0,
                    count: 6.0,
                }),
            },
        ];
        let req = build(&rows, &[("team.id".into(), "payments".into())], 1000);
        let first: Vec<(&str, &str)> =
            req.timeseries[0].labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(
            first,
            vec![
                ("__name__", "claude_code_cost_usage_USD_total"),
                ("model", "m"),
                ("team_id", "payments"),
                ("type", "x")
            ]
        );
        assert_eq!(req.timeseries[0].samples, vec![Sample { value: 1.5, timestamp: 1000 }]);
        let buckets: Vec<(String, f64)> = req.timeseries[1..4]
            .iter()
            .map(|t| {
                (
                    t.labels
                        .iter()
                        .find(|l| l.name == "le")
                        .map(|l| l.value.clone())
                        .unwrap_or_default(),
                    t.samples[0].value,
                )
            })
            .collect();
        assert_eq!(buckets, vec![("0.5".into(), 1.0), ("1".into(), 3.0), ("+Inf".into(), 6.0)]);
        assert_eq!(req.timeseries.len(), 6);
    }
}
