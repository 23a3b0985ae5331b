//! `[transcripts] expose = true`: what only the transcripts saw, on `/metrics` and to the team.
//!
//! Off by default: `/metrics` and forwarding carry what telemetry sent and nothing else. When on,
//! the counting rule's share of each session's transcript requests (what telemetry did not
//! count: requests without a matching `request_id`, tokens beyond a metrics-only session's
//! totals, Claude Code's `cost-state` money beyond telemetry's cost) becomes this engine's own
//! series, named as Claude Code names its own:
//!
//! * `claude_code.cost.usage` with `session.id` and `model`;
//! * `claude_code.token.usage` with `session.id`, `model` and `type`;
//!
//! under the instrumentation scope [`SCOPE`], so on `/metrics` they carry
//! `otel_scope_name="tokentray.transcripts"` and `sum(claude_code_cost_usage_USD_total)` is
//! telemetry plus the transcripts, each request once. They are written through the receiver's
//! own path as DELTA points, so `/metrics` (its idle rule and `drop_labels`), remote write and
//! OTLP forwarding treat them like telemetry; the history's usage does not take them in
//! (`Batch::from_own_transcripts`), because reports already count the transcripts.
//!
//! Two rules keep a counter honest where the two sources race:
//! * a request is exposed once it has **settled**: it is older than `settle_seconds` (telemetry
//!   sends its events within seconds and its metrics within a minute, so by then a request
//!   telemetry saw is known to be telemetry's);
//! * a counter **never goes down**: where the rule's figure for a series falls below what was
//!   exposed (a session's `cost-state`, written at its end, states less than the price table
//!   gave its requests before), the series keeps its total.
//!
//! Rounds run at start, after committed changes (coalesced) and when the next request settles;
//! with nothing pending the task sleeps without waking up. A round reads the sessions with a
//! request in the last [`RECENT`] (every request of each, so their totals are whole): a live
//! session costs milliseconds, not a re-count of the year. Every session is counted again at
//! start and, after changes, once [`FULL_EVERY`] has passed since the last full round, for
//! what changes in older sessions (an import of old transcripts, a `cost-state` written when a
//! session left open for days ends).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::broadcast::error::RecvError;

use super::counting::Share;
use crate::query::report::names;
use crate::receiver::Receiver;
use crate::store::{Reader, StoreError};

/// The instrumentation scope of the exposed transcript series.
pub(crate) const SCOPE: &str = "tokentray.transcripts";
/// The kind of a cost series, beside the token types (`input`, `output`, ...).
pub(crate) const COST_KIND: &str = "cost";
/// Changes arrive in bursts (an import commits every 100 ms, telemetry every few seconds):
/// one round after the burst instead of one per commit.
const COALESCE: Duration = Duration::from_secs(2);
/// A round after a change reads the sessions with a request this recent.
const RECENT: Duration = Duration::from_secs(48 * 3600);
/// A change this long after the last full round brings the next full one.
const FULL_EVERY: Duration = Duration::from_secs(3600);
/// Smallest raise worth a point: below it the difference is summation noise.
const COST_EPSILON: f64 = 1e-9;
const TOKEN_EPSILON: f64 = 0.5;

/// One exposed series: a session's cost of one model, or its tokens of one model and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ExposedKey {
    pub session_id: String,
    pub model: String,
    /// [`COST_KIND`] or a token type (`input`, `output`, `cacheRead`, `cacheCreation`).
    pub kind: String,
}

/// What the settled shares add up to per series, and when the next share settles.
#[derive(Debug, Default, PartialEq)]
struct Settled {
    totals: BTreeMap<ExposedKey, (f64, i64)>,
    next_settles_ns: Option<i64>,
}

/// Sums the shares of requests older than `cutoff_ns` per series (value, newest request time);
/// notes when the oldest younger one settles.
fn settle(shares: &[Share], cutoff_ns: i64, settle_ns: i64) -> Settled {
    let mut out = Settled::default();
    for s in shares {
        if s.time_ns >= cutoff_ns {
            let due = s.time_ns.saturating_add(settle_ns);
            out.next_settles_ns = Some(out.next_settles_ns.map_or(due, |d: i64| d.min(due)));
            continue;
        }
        let kinds = [
            (COST_KIND, s.cost_usd),
            ("input", s.input),
            ("output", s.output),
            ("cacheRead", s.cache_read),
            ("cacheCreation", s.cache_creation),
        ];
        for (kind, value) in kinds {
            let key = ExposedKey {
                session_id: s.session_id.clone(),
                model: s.model.clone(),
                kind: kind.to_string(),
            };
            let entry = out.totals.entry(key).or_insert((0.0, i64::MIN));
            entry.0 += value;
            entry.1 = entry.1.max(s.time_ns);
        }
    }
    out
}

/// A raise of one exposed series, sent as a DELTA point dated at its newest request.
#[derive(Debug, Clone, PartialEq)]
struct Raise {
    key: ExposedKey,
    by: f64,
    time_ns: i64,
}

/// What to send so that every series reaches its settled total; never a decrease.
fn raises(settled: &Settled, exposed: &HashMap<ExposedKey, f64>) -> Vec<Raise> {
    settled
        .totals
        .iter()
        .filter_map(|(key, &(total, time_ns))| {
            let by = total - exposed.get(key).copied().unwrap_or(0.0);
            let epsilon = if key.kind == COST_KIND { COST_EPSILON } else { TOKEN_EPSILON };
            (by > epsilon).then(|| Raise { key: key.clone(), by, time_ns })
        })
        .collect()
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// The raises as one OTLP export, shaped like Claude Code's own (one resource, one scope,
/// doubles), so the team's collector or `serve` reads it like telemetry.
fn export_request(raises: &[Raise]) -> ExportMetricsServiceRequest {
    let point = |r: &Raise| {
        let mut attributes =
            vec![text("session.id", &r.key.session_id), text("model", &r.key.model)];
        if r.key.kind != COST_KIND {
            attributes.push(text("type", &r.key.kind));
        }
        let time = r.time_ns.max(0) as u64;
        NumberDataPoint {
            attributes,
            start_time_unix_nano: time,
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsDouble(r.by)),
            ..Default::default()
        }
    };
    let metric = |name: &str, unit: &str, description: &str, cost: bool| Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        data: Some(Data::Sum(Sum {
            data_points: raises
                .iter()
                .filter(|r| (r.key.kind == COST_KIND) == cost)
                .map(point)
                .collect(),
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let metrics = [
        metric(names::COST, "USD", "Cost of the Claude Code session (from its transcripts)", true),
        metric(names::TOKENS, "tokens", "Number of tokens used (from the transcripts)", false),
    ]
    .into_iter()
    .filter(|m| matches!(&m.data, Some(Data::Sum(s)) if !s.data_points.is_empty()))
    .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", "claude-code")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Why a round could not expose.
#[derive(Debug, thiserror::Error)]
enum ExposeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the round's task failed: {0}")]
    Task(String),
    #[error("the store refused some of the exposed points")]
    Refused,
}

/// What the task knows between rounds: the exposed totals (it is their only writer), read
/// again at each full round.
#[derive(Default)]
struct Exposer {
    exposed: HashMap<ExposedKey, f64>,
}

impl Exposer {
    /// Reads the settled shares (of every session when `full`, else of the recent ones; on a
    /// blocking thread: a year of requests takes a moment) and sends the raises through the
    /// receiver. Returns when the next share settles.
    async fn round(
        &mut self,
        receiver: &Receiver,
        settle_ns: i64,
        full: bool,
    ) -> Result<Option<i64>, ExposeError> {
        let store = receiver.store().clone();
        let known = (!full).then(|| std::mem::take(&mut self.exposed));
        let (exposed, raises, next) = tokio::task::spawn_blocking(move || {
            let reader: Reader = store.reader()?;
            let now_ns = crate::ingest::now_ns();
            let since_ns = match full {
                true => i64::MIN,
                false => now_ns.saturating_sub(RECENT.as_nanos() as i64),
            };
            let shares = reader.transcript_shares_since(since_ns)?;
            let settled = settle(&shares, now_ns.saturating_sub(settle_ns), settle_ns);
            let exposed = match known {
                Some(known) => known,
                None => reader.exposed_transcript_totals()?,
            };
            let raises = raises(&settled, &exposed);
            Ok::<_, StoreError>((exposed, raises, settled.next_settles_ns))
        })
        .await
        .map_err(|e| ExposeError::Task(e.to_string()))??;
        self.exposed = exposed;
        if raises.is_empty() {
            return Ok(next);
        }
        let ack = receiver.export_own_transcripts(export_request(&raises)).await?;
        tracing::debug!(
            series = raises.len(),
            full,
            accepted = ack.accepted,
            "transcripts exposed"
        );
        if ack.rejected > 0 {
            // What was refused is not exposed: the next full round reads the store's totals.
            tracing::warn!(reason = ?ack.reason, "some exposed transcript points were refused");
            self.exposed.clear();
            return Err(ExposeError::Refused);
        }
        for r in raises {
            *self.exposed.entry(r.key).or_insert(0.0) += r.by;
        }
        Ok(next)
    }
}

/// Keeps the exposed series in step with the counting rule until `stop` resolves.
pub(crate) async fn run(receiver: Receiver, settle: Duration, stop: impl Future<Output = ()>) {
    let settle_ns = i64::try_from(settle.as_nanos()).unwrap_or(i64::MAX);
    let mut changes = receiver.store().subscribe();
    tokio::pin!(stop);
    let mut exposer = Exposer::default();
    let mut due = Some(tokio::time::Instant::now());
    // `None`: the next round is a full one.
    let mut last_full: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = sleep => {
                let full = last_full.is_none_or(|at| at.elapsed() >= FULL_EVERY);
                due = match exposer.round(&receiver, settle_ns, full).await {
                    Ok(next) => {
                        if full {
                            last_full = Some(tokio::time::Instant::now());
                        }
                        next.map(|at_ns| {
                            let wait = at_ns.saturating_sub(crate::ingest::now_ns()).max(0);
                            tokio::time::Instant::now() + Duration::from_nanos(wait as u64)
                        })
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "exposing the transcripts failed; trying again");
                        last_full = None;
                        Some(tokio::time::Instant::now() + COALESCE)
                    }
                };
            }
            change = changes.recv() => match change {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    let soon = tokio::time::Instant::now() + COALESCE;
                    due = Some(due.map_or(soon, |d| d.min(soon)));
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(session: &str, model: &str, time_ns: i64, cost: f64, input: f64) -> Share {
        Share {
            session_id: session.into(),
            request_id: format!("req-{time_ns}"),
            model: model.into(),
            time_ns,
            input,
            output: 0.0,
            cache_read: 0.0,
            cache_creation: 0.0,
            requests: 1,
            cost_usd: cost,
            priced_from_table: false,
            unpriced: false,
        }
    }

    fn key(session: &str, model: &str, kind: &str) -> ExposedKey {
        ExposedKey { session_id: session.into(), model: model.into(), kind: kind.into() }
    }

    #[test]
    fn only_settled_requests_count_and_the_next_one_is_scheduled() {
        let shares = [
            share("s", "m", 100, 1.0, 10.0),
            share("s", "m", 200, 2.0, 20.0),
            share("s", "m", 900, 4.0, 40.0),
            share("s", "m", 950, 8.0, 80.0),
        ];
        let settled = settle(&shares, 500, 1000);
        assert_eq!(settled.totals[&key("s", "m", COST_KIND)], (3.0, 200));
        assert_eq!(settled.totals[&key("s", "m", "input")], (30.0, 200));
        assert_eq!(settled.next_settles_ns, Some(1900));
    }

    #[test]
    fn raises_bring_each_series_up_to_its_total_and_never_down() {
        let shares = [share("a", "m", 1, 5.0, 100.0), share("b", "m", 1, 1.0, 10.0)];
        let settled = settle(&shares, 10, 10);
        let exposed = HashMap::from([
            (key("a", "m", COST_KIND), 2.0),
            (key("a", "m", "input"), 100.0),
            // More than the rule says now (a cost-state below the table's price): kept.
            (key("b", "m", COST_KIND), 3.0),
        ]);
        let mut got = raises(&settled, &exposed);
        got.sort_by(|x, y| x.key.cmp(&y.key));
        let want = vec![
            Raise { key: key("a", "m", COST_KIND), by: 3.0, time_ns: 1 },
            Raise { key: key("b", "m", "input"), by: 10.0, time_ns: 1 },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn the_export_is_claude_code_shaped_delta_sums_under_the_own_scope() {
        let raises = [
            Raise { key: key("s", "claude-x", COST_KIND), by: 0.5, time_ns: 7 },
            Raise { key: key("s", "claude-x", "output"), by: 12.0, time_ns: 7 },
        ];
        let batch = crate::ingest::metrics::normalize(export_request(&raises), 0);
        assert_eq!(batch.points.len(), 2);
        for p in &batch.points {
            assert_eq!(p.series.scope_name, SCOPE);
            assert_eq!(p.temporality, crate::ingest::Temporality::Delta);
            assert_eq!(crate::ingest::attrs::get_str(&p.series.attrs, "session.id"), Some("s"));
        }
        let cost = batch.points.iter().find(|p| p.series.metric == names::COST).expect("cost");
        assert_eq!(cost.value, crate::ingest::PointValue::Number(0.5));
        let tokens =
            batch.points.iter().find(|p| p.series.metric == names::TOKENS).expect("tokens");
        assert_eq!(crate::ingest::attrs::get_str(&tokens.series.attrs, "type"), Some("output"));
    }
}
