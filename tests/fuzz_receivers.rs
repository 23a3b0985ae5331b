//! A bounded fuzz test of the OTLP/HTTP and OTLP/gRPC receivers of a real `tokentray serve`.
//!
//! Every case takes one of the recorded Claude Code requests (`tests/fixtures/claude-code/`),
//! mutates it (bytes, protobuf or JSON structure, content type, compression, path) and sends it
//! with a real client (reqwest; tonic with a pass-through codec, so that undecodable messages
//! reach the server as they are). What must hold:
//!
//! * the process never dies or hangs, and exits 0 on SIGTERM at the end;
//! * every HTTP answer is 2xx/4xx/5xx with an OTLP body (`Export*ServiceResponse` for 2xx, a
//!   `google.rpc.Status` otherwise); every gRPC answer carries a grpc-status;
//! * a rejected request (HTTP 4xx/5xx, gRPC error) changed nothing: the Claude Code series on
//!   `/metrics` are the same before and after it, and at the end the whole state (`/metrics` and
//!   `report --json`) equals that of a second `serve` that only got the accepted requests;
//! * each fixture set, sent once unmutated under fresh session ids (a namespace mutations cannot
//!   reach) at random points of the stream, adds up exactly to its `expected.json` by session.
//!
//! Cases run in rounds of [`ROUND`], each on a fresh `serve` pair, so a long run stays linear.
//!
//! Knobs: `TOKENTRAY_FUZZ_CASES` (default [`DEFAULT_CASES`]), `TOKENTRAY_FUZZ_SEED` (default
//! [`DEFAULT_SEED`]), `TOKENTRAY_FUZZ_ONLY=<case>` (send just that case, to reproduce one),
//! `TOKENTRAY_FUZZ_FIRST=<case>` (start there: one round of a long run),
//! `TOKENTRAY_FUZZ_REPORT_EACH=1` (run the `report`s after every accepted request, to find the
//! one that breaks them).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, NumberDataPoint,
};
use prost::bytes::{Buf, BufMut};
use prost::Message;
use serde_json::Value;
use support::prom::{self, label_name, prometheus_name};
use support::serve::ServeOptions;
use support::{approx_eq, Checker, FixtureSet, Request, Serve, Signal, Transport};

/// Cases of a default run: about 40 s of a debug build on a shared 2-core machine.
const DEFAULT_CASES: u64 = 2000;
/// The fixed seed of the suite's run.
const DEFAULT_SEED: u64 = 0x70c3_e4a7_2026_1202;
/// The receiver's body limit in this test (small, so that a modest gzip bomb exceeds it).
const MAX_BODY: usize = 1 << 20;
/// Fresh session ids of the unmutated sends start with this; no mutation produces it.
const NS_PREFIX: &str = "f0220000-";

const HOP_HEADERS: &[&str] =
    &["host", "content-length", "connection", "transfer-encoding", "content-encoding"];
const METRICS_METHOD: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_METHOD: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_METHOD: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

// ---- PRNG ------------------------------------------------------------------------------------

/// splitmix64: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    /// The generator of case `index` of a run with `seed` (each case reproducible alone).
    fn for_case(seed: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

// ---- what goes on the wire -------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Wire {
    Http { path: String, headers: Vec<(String, String)>, body: Vec<u8> },
    Grpc { method: String, metadata: Vec<(String, String)>, message: Vec<u8>, gzip: bool },
}

/// One case: where it came from, what was done to it, and the request.
struct Case {
    index: u64,
    source: String,
    mutation: String,
    wire: Wire,
}

impl Case {
    fn reproducer(&self, seed: u64) -> String {
        format!(
            "case {} (source {}, mutation: {}); reproduce: TOKENTRAY_FUZZ_SEED={seed:#x} \
             TOKENTRAY_FUZZ_ONLY={} cargo test --test fuzz_receivers -- --nocapture (alone; \
             with what came before in its round: TOKENTRAY_FUZZ_CASES={})",
            self.index,
            self.source,
            self.mutation,
            self.index,
            self.index + 1
        )
    }
}

/// How the receiver answered (the contract held; violations are `Err` of [`Client::send`]).
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// 2xx / gRPC OK, with the `partial_success` rejected count.
    Accepted { rejected: i64 },
    /// HTTP status or gRPC code, with the status message.
    Rejected { status: String, message: String },
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("compress");
    e.finish().expect("finish")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// The recorded request as it was sent, with `body` (decoded) in place of its body.
fn wire_of(req: &Request, body: &[u8]) -> Wire {
    match req.transport {
        Transport::Http => {
            let mut headers: Vec<(String, String)> = req
                .headers
                .iter()
                .filter(|(k, _)| !HOP_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            let body = if req.content_encoding.as_deref() == Some("gzip") {
                headers.push(("content-encoding".into(), "gzip".into()));
                gzip(body)
            } else {
                body.to_vec()
            };
            Wire::Http { path: req.path.clone(), headers, body }
        }
        Transport::Grpc => Wire::Grpc {
            method: req.path.clone(),
            metadata: req
                .headers
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "user-agent" | "accept-encoding" | "content-type" | "te")
                })
                .cloned()
                .collect(),
            message: body.to_vec(),
            gzip: false,
        },
    }
}

// ---- the corpus ------------------------------------------------------------------------------

struct Corpus {
    sets: Vec<FixtureSet>,
    /// (set index, request index, decoded body) of every recorded request.
    sources: Vec<(usize, usize, Vec<u8>)>,
    /// Per set: original session id → its fresh id (same length).
    namespaces: Vec<BTreeMap<String, String>>,
    /// The unmutated sends under fresh ids, all sets in recorded order.
    pristine: Vec<(String, Wire)>,
    /// gzip of 2 MiB of zeros: over [`MAX_BODY`] once inflated.
    bomb: Vec<u8>,
}

impl Corpus {
    fn load() -> Corpus {
        let sets: Vec<FixtureSet> =
            support::discover_sets().iter().map(|d| FixtureSet::load(d)).collect();
        let mut sources = Vec::new();
        let mut namespaces = Vec::new();
        let mut pristine = Vec::new();
        for (si, set) in sets.iter().enumerate() {
            let ns: BTreeMap<String, String> = set
                .expected
                .sessions
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let fresh = format!("{NS_PREFIX}0000-4000-8000-{:06}{:06}", si, k);
                    assert_eq!(fresh.len(), s.len(), "{}: session id {s} is not a UUID", set.name);
                    (s.clone(), fresh)
                })
                .collect();
            for (ri, req) in set.requests.iter().enumerate() {
                let body = req.decoded_body();
                assert!(
                    !contains(&body, NS_PREFIX.as_bytes()),
                    "{}: fixture has the prefix",
                    req.file
                );
                let mut fresh = body.clone();
                for (old, new) in &ns {
                    fresh = replace_all(&fresh, old.as_bytes(), new.as_bytes());
                }
                pristine
                    .push((format!("{}/{} (fresh ids)", set.name, req.file), wire_of(req, &fresh)));
                sources.push((si, ri, body));
            }
            namespaces.push(ns);
        }
        Corpus { sets, sources, namespaces, pristine, bomb: gzip(&vec![0u8; 2 << 20]) }
    }

    /// Case `index` of a run with `seed`: the same every time.
    fn case(&self, seed: u64, index: u64) -> Case {
        let mut rng = Rng::for_case(seed, index);
        let (si, ri, body) = &self.sources[rng.below(self.sources.len())];
        let req = &self.sets[*si].requests[*ri];
        let source = format!("{}/{}", self.sets[*si].name, req.file);
        loop {
            let (mutation, wire) = mutate(&mut rng, req, body, &self.bomb);
            // A mutation must not reach the fresh ids of the checked sends.
            let body = match &wire {
                Wire::Http { body, .. } => body,
                Wire::Grpc { message, .. } => message,
            };
            if !contains(body, NS_PREFIX.as_bytes()) {
                return Case { index, source, mutation, wire };
            }
        }
    }
}

// ---- mutations -------------------------------------------------------------------------------

fn mutate(rng: &mut Rng, req: &Request, body: &[u8], bomb: &[u8]) -> (String, Wire) {
    let kind = rng.below(100);
    let http = req.transport == Transport::Http;
    match kind {
        0..=9 => ("none (the recorded request)".into(), wire_of(req, body)),
        10..=34 => {
            let (what, b) = mutate_bytes(rng, body);
            (what, wire_of(req, &b))
        }
        35..=64 => {
            let (what, b) = if req.is_json() {
                mutate_json(rng, body)
            } else {
                mutate_proto(rng, req.signal, body)
            };
            if rng.chance(15) {
                let (w2, b2) = mutate_bytes(rng, &b);
                (format!("{what}, then {w2}"), wire_of(req, &b2))
            } else {
                (what, wire_of(req, &b))
            }
        }
        65..=74 if http => {
            let mut wire = wire_of(req, body);
            let what = mutate_content_type(rng, &mut wire, req.is_json());
            (what, wire)
        }
        65..=74 => {
            let method = rng.pick(&[
                METRICS_METHOD,
                LOGS_METHOD,
                TRACES_METHOD,
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Nope",
                "/no.such.Service/Export",
            ]);
            let mut wire = wire_of(req, body);
            if let Wire::Grpc { method: m, .. } = &mut wire {
                *m = method.to_string();
            }
            (format!("gRPC method {method}"), wire)
        }
        75..=86 if http => mutate_encoding(rng, req, body, bomb),
        75..=86 => {
            let (what, b) = if rng.chance(50) {
                ("unchanged".to_string(), body.to_vec())
            } else {
                mutate_bytes(rng, body)
            };
            let mut wire = wire_of(req, &b);
            if let Wire::Grpc { gzip, .. } = &mut wire {
                *gzip = true;
            }
            (format!("gRPC gzip-compressed message ({what})"), wire)
        }
        87..=93 if http => {
            let path = *rng.pick(&["/v1/metrics", "/v1/logs", "/v1/traces"]);
            let mut wire = wire_of(req, body);
            if let Wire::Http { path: p, .. } = &mut wire {
                *p = path.to_string();
            }
            (format!("posted to {path}"), wire)
        }
        87..=93 => {
            let mut wire = wire_of(req, body);
            let (k, v) = rng.pick(&[
                ("grpc-encoding", "gzip"),
                ("grpc-encoding", "snappy"),
                ("grpc-encoding", "identity"),
                ("origin", "https://evil.example"),
                ("authorization", "Bearer nope"),
            ]);
            if let Wire::Grpc { metadata, .. } = &mut wire {
                metadata.push((k.to_string(), v.to_string()));
            }
            (format!("gRPC metadata {k}: {v}"), wire)
        }
        _ => {
            let b: Vec<u8> = if rng.chance(50) { Vec::new() } else { vec![0u8; rng.below(64)] };
            (format!("{} zero byte(s) as body", b.len()), wire_of(req, &b))
        }
    }
}

fn mutate_bytes(rng: &mut Rng, body: &[u8]) -> (String, Vec<u8>) {
    let mut b = body.to_vec();
    let len = b.len().max(1);
    match rng.below(6) {
        0 => {
            let n = 1 + rng.below(8);
            let mut at = Vec::new();
            for _ in 0..n {
                let i = rng.below(b.len());
                let x = (rng.next() as u8) | 1;
                if let Some(c) = b.get_mut(i) {
                    *c ^= x;
                }
                at.push(i);
            }
            (format!("flipped bytes at {at:?}"), b)
        }
        1 => {
            let at = rng.below(len);
            b.truncate(at);
            (format!("truncated to {at} bytes"), b)
        }
        2 => {
            let at = rng.below(len);
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(at.min(b.len())..at.min(b.len()), ins);
            (format!("{n} random bytes inserted at {at}"), b)
        }
        3 => {
            let from = rng.below(len);
            let n = 1 + rng.below(len - from);
            let to = rng.below(len);
            let range: Vec<u8> = b[from.min(b.len())..(from + n).min(b.len())].to_vec();
            b.splice(to.min(b.len())..to.min(b.len()), range);
            (format!("bytes {from}..{} duplicated at {to}", from + n), b)
        }
        4 => {
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(64));
            b.drain(from.min(b.len())..(from + n).min(b.len()));
            (format!("bytes {from}..{} deleted", from + n), b)
        }
        _ => {
            let k = 1 + rng.below(3);
            let mut out = b.clone();
            for _ in 1..k {
                out.extend_from_slice(&b);
            }
            (format!("body repeated {k} times"), out)
        }
    }
}

fn weird_string(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => String::new(),
        1 => "x".repeat(1 + rng.below(70_000)),
        2 => "a b{c}=\"d\"\n\\e".into(),
        3 => "ünïcödé ✓ 💸".into(),
        4 => "__name__".into(),
        5 => "\u{0}nul\u{0}".into(),
        6 => format!("fz-{:x}", rng.next()),
        7 => "claude_code.cost.usage".into(),
        _ => "NaN".into(),
    }
}

fn weird_any(rng: &mut Rng) -> Option<AnyValue> {
    let v = match rng.below(10) {
        0 => return None,
        1 => any_value::Value::StringValue(weird_string(rng)),
        2 => any_value::Value::IntValue(*rng.pick(&[i64::MIN, -1, 0, i64::MAX])),
        3 => any_value::Value::DoubleValue(*rng.pick(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            1e308,
            5e-324,
        ])),
        4 => any_value::Value::BoolValue(rng.chance(50)),
        5 => any_value::Value::BytesValue(vec![0xff, 0, 0xfe]),
        6 => any_value::Value::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: Some(any_value::Value::IntValue(1)) }],
        }),
        7 => any_value::Value::StringValue("-5".into()),
        8 => any_value::Value::StringValue("99999999999999999999999".into()),
        _ => any_value::Value::StringValue("1e400".into()),
    };
    Some(AnyValue { value: Some(v) })
}

/// Changes one attribute list: a value, a removal, an addition, or many additions.
fn mutate_attrs(rng: &mut Rng, attrs: &mut Vec<KeyValue>) -> String {
    match rng.below(5) {
        0 if !attrs.is_empty() => {
            let i = rng.below(attrs.len());
            let key = attrs[i].key.clone();
            attrs[i].value = weird_any(rng);
            format!("attribute {key} = {:?}", attrs[i].value)
        }
        1 if !attrs.is_empty() => {
            let i = rng.below(attrs.len());
            let kv = attrs.remove(i);
            format!("attribute {} removed", kv.key)
        }
        2 => {
            attrs.clear();
            "all attributes removed".into()
        }
        3 => {
            let n = 1 + rng.below(300);
            for k in 0..n {
                attrs.push(KeyValue {
                    key_strindex: 0,
                    key: format!("fz.attr.{k}"),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(k.to_string())),
                    }),
                });
            }
            format!("{n} attributes added")
        }
        _ => {
            let key = match rng.below(5) {
                0 => String::new(),
                1 => "session.id".into(),
                2 => "job".into(),
                3 => "le".into(),
                _ => weird_string(rng),
            };
            let value = weird_any(rng);
            let what = format!("attribute {:?} = {value:?} added", &key[..key.len().min(40)]);
            attrs.push(KeyValue { key, value, ..Default::default() });
            what
        }
    }
}

fn mutate_proto(rng: &mut Rng, signal: Signal, body: &[u8]) -> (String, Vec<u8>) {
    match signal {
        Signal::Metrics => {
            let Ok(mut req) = ExportMetricsServiceRequest::decode(body) else {
                return mutate_bytes(rng, body);
            };
            let what = mutate_metrics(rng, &mut req);
            (format!("protobuf: {what}"), req.encode_to_vec())
        }
        Signal::Logs => {
            let Ok(mut req) = ExportLogsServiceRequest::decode(body) else {
                return mutate_bytes(rng, body);
            };
            let what = mutate_logs(rng, &mut req);
            (format!("protobuf: {what}"), req.encode_to_vec())
        }
        Signal::Traces => mutate_bytes(rng, body),
    }
}

fn mutate_metrics(rng: &mut Rng, req: &mut ExportMetricsServiceRequest) -> String {
    let Some(rm) = req.resource_metrics.first_mut() else {
        return "no resource (unchanged)".into();
    };
    if rng.chance(10) {
        let res = rm.resource.get_or_insert_with(Default::default);
        return format!("resource: {}", mutate_attrs(rng, &mut res.attributes));
    }
    let Some(sm) = rm.scope_metrics.first_mut() else { return "no scope (unchanged)".into() };
    if rng.chance(5) {
        sm.scope = None;
        return "scope removed".into();
    }
    if sm.metrics.is_empty() {
        return "no metric (unchanged)".into();
    }
    let mi = rng.below(sm.metrics.len());
    if rng.chance(5) {
        let copy = sm.metrics[mi].clone();
        sm.metrics.push(copy);
        return format!("metric {mi} duplicated");
    }
    let metric = &mut sm.metrics[mi];
    let name = metric.name.clone();
    match rng.below(8) {
        0 => {
            metric.name = weird_string(rng);
            format!("{name}: renamed to {:?}", &metric.name[..metric.name.len().min(40)])
        }
        1 => {
            metric.unit = weird_string(rng);
            format!("{name}: unit {:?}", &metric.unit[..metric.unit.len().min(40)])
        }
        2 => {
            // Change the kind of data.
            let points: Vec<NumberDataPoint> = match metric.data.take() {
                Some(Data::Sum(s)) => s.data_points,
                Some(Data::Gauge(g)) => g.data_points,
                _ => Vec::new(),
            };
            match rng.below(3) {
                0 => {
                    metric.data = Some(Data::Gauge(Gauge { data_points: points }));
                    format!("{name}: sum → gauge")
                }
                1 => {
                    let dps = points
                        .iter()
                        .map(|p| HistogramDataPoint {
                            attributes: p.attributes.clone(),
                            start_time_unix_nano: p.start_time_unix_nano,
                            time_unix_nano: p.time_unix_nano,
                            count: rng.next() % 5,
                            sum: Some(f64::NAN),
                            bucket_counts: vec![1, 2, 3],
                            explicit_bounds: vec![5.0, 1.0],
                            ..Default::default()
                        })
                        .collect();
                    metric.data = Some(Data::Histogram(Histogram {
                        data_points: dps,
                        aggregation_temporality: 1,
                    }));
                    format!("{name}: sum → inconsistent histogram")
                }
                _ => format!("{name}: data removed"),
            }
        }
        _ => {
            let Some(Data::Sum(sum)) = &mut metric.data else {
                return format!("{name}: not a sum (unchanged)");
            };
            if rng.chance(15) {
                sum.aggregation_temporality = *rng.pick(&[0, 1, 2, 3, -1, 99]);
                return format!("{name}: temporality {}", sum.aggregation_temporality);
            }
            if rng.chance(10) {
                sum.is_monotonic = !sum.is_monotonic;
                return format!("{name}: is_monotonic {}", sum.is_monotonic);
            }
            if sum.data_points.is_empty() {
                return format!("{name}: no point (unchanged)");
            }
            let pi = rng.below(sum.data_points.len());
            if rng.chance(10) {
                let copy = sum.data_points[pi].clone();
                sum.data_points.push(copy);
                return format!("{name}: point {pi} duplicated");
            }
            let p = &mut sum.data_points[pi];
            match rng.below(4) {
                0 => {
                    p.value = match rng.below(3) {
                        0 => None,
                        1 => Some(number_data_point::Value::AsInt(*rng.pick(&[
                            i64::MIN,
                            -1,
                            0,
                            i64::MAX,
                        ]))),
                        _ => Some(number_data_point::Value::AsDouble(*rng.pick(&[
                            f64::NAN,
                            f64::INFINITY,
                            f64::NEG_INFINITY,
                            -1.0,
                            -0.0,
                            1e308,
                            f64::MAX,
                            5e-324,
                            1e15,
                        ]))),
                    };
                    format!("{name}[{pi}]: value {:?}", p.value)
                }
                1 => {
                    let (s, t) = *rng.pick(&[
                        (0, 0),
                        (u64::MAX, u64::MAX),
                        (p.time_unix_nano, p.start_time_unix_nano),
                        (0, u64::MAX),
                        (p.start_time_unix_nano, p.start_time_unix_nano),
                    ]);
                    p.start_time_unix_nano = s;
                    p.time_unix_nano = t;
                    format!("{name}[{pi}]: start {s} time {t}")
                }
                2 => {
                    p.flags = u32::MAX;
                    format!("{name}[{pi}]: flags all set")
                }
                _ => format!("{name}[{pi}]: {}", mutate_attrs(rng, &mut p.attributes)),
            }
        }
    }
}

fn mutate_logs(rng: &mut Rng, req: &mut ExportLogsServiceRequest) -> String {
    let Some(rl) = req.resource_logs.first_mut() else { return "no resource (unchanged)".into() };
    if rng.chance(10) {
        let res = rl.resource.get_or_insert_with(Default::default);
        return format!("resource: {}", mutate_attrs(rng, &mut res.attributes));
    }
    let Some(sl) = rl.scope_logs.first_mut() else { return "no scope (unchanged)".into() };
    if sl.log_records.is_empty() {
        return "no record (unchanged)".into();
    }
    let i = rng.below(sl.log_records.len());
    if rng.chance(8) {
        let copy = sl.log_records[i].clone();
        sl.log_records.push(copy);
        return format!("record {i} duplicated");
    }
    let rec = &mut sl.log_records[i];
    match rng.below(6) {
        0 => {
            rec.body = weird_any(rng);
            format!(
                "record {i}: body {:?}",
                rec.body.as_ref().map(|b| format!("{b:?}").chars().take(60).collect::<String>())
            )
        }
        1 => {
            rec.time_unix_nano = *rng.pick(&[0, u64::MAX]);
            rec.observed_time_unix_nano = *rng.pick(&[0, u64::MAX]);
            format!("record {i}: times {} / {}", rec.time_unix_nano, rec.observed_time_unix_nano)
        }
        2 => {
            // A numeric attribute of an api_request (cost_usd, tokens) as something else.
            let keys =
                ["cost_usd", "input_tokens", "output_tokens", "cache_read_tokens", "duration_ms"];
            let key = *rng.pick(&keys);
            let v = weird_any(rng);
            let what = format!("record {i}: {key} = {v:?}");
            match rec.attributes.iter_mut().find(|kv| kv.key == key) {
                Some(kv) => kv.value = v,
                None => rec.attributes.push(KeyValue {
                    key: key.into(),
                    value: v,
                    ..Default::default()
                }),
            }
            what
        }
        3 => {
            rec.severity_number = *rng.pick(&[-1, 0, 99, i32::MAX]);
            format!("record {i}: severity {}", rec.severity_number)
        }
        _ => format!("record {i}: {}", mutate_attrs(rng, &mut rec.attributes)),
    }
}

/// Every node of a JSON tree, as a path of object keys / array indices.
fn json_paths(v: &Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(path.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                path.push(PathStep::Key(k.clone()));
                json_paths(c, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                path.push(PathStep::Index(i));
                json_paths(c, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn json_at<'a>(v: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

fn path_text(path: &[PathStep]) -> String {
    path.iter()
        .map(|s| match s {
            PathStep::Key(k) => format!(".{k}"),
            PathStep::Index(i) => format!("[{i}]"),
        })
        .collect()
}

fn mutate_json(rng: &mut Rng, body: &[u8]) -> (String, Vec<u8>) {
    let Ok(mut root) = serde_json::from_slice::<Value>(body) else {
        return mutate_bytes(rng, body);
    };
    if rng.chance(8) {
        // Text-level: what a parser must refuse (or survive) without a tree.
        let text = String::from_utf8_lossy(body).into_owned();
        return match rng.below(5) {
            0 => {
                let n = *rng.pick(&[64usize, 200, 5000, 100_000]);
                let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
                let t =
                    text.replacen("\"dataPoints\":", &format!("\"fz\":{deep},\"dataPoints\":"), 1);
                let t = t.replacen("\"logRecords\":", &format!("\"fz\":{deep},\"logRecords\":"), 1);
                (format!("JSON text: {n} nested arrays inserted"), t.into_bytes())
            }
            1 => ("JSON text: trailing garbage".into(), format!("{text} }}{{x").into_bytes()),
            2 => ("JSON text: UTF-8 BOM in front".into(), [&[0xef, 0xbb, 0xbf][..], body].concat()),
            3 => (
                "JSON text: duplicate resourceMetrics/resourceLogs key".into(),
                text.replacen('{', "{\"resourceMetrics\":[],\"resourceLogs\":[],", 1).into_bytes(),
            ),
            _ => ("JSON text: invalid UTF-8 inside a string".into(), {
                let mut b = body.to_vec();
                if let Some(i) = b.iter().position(|c| *c == b'"') {
                    b.insert(i + 1, 0xff);
                }
                b
            }),
        };
    }
    let mut paths = Vec::new();
    json_paths(&root, &mut Vec::new(), &mut paths);
    let path = rng.pick(&paths[1..]).clone();
    let where_ = path_text(&path);
    let what = match rng.below(9) {
        0 => {
            // drop the field / element
            let (last, parent) = path.split_last().expect("not the root");
            match (json_at(&mut root, parent), last) {
                (Value::Object(m), PathStep::Key(k)) => {
                    m.remove(k);
                }
                (Value::Array(a), PathStep::Index(i)) => {
                    a.remove(*i);
                }
                _ => {}
            }
            "dropped".to_string()
        }
        1 => {
            let node = json_at(&mut root, &path);
            let s = match &*node {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *node = match s.parse::<f64>() {
                Ok(_) if rng.chance(50) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                _ => Value::String(s),
            };
            "number ↔ string".into()
        }
        2 => {
            let (last, parent) = path.split_last().expect("not the root");
            if let (Value::Object(m), PathStep::Key(k)) = (json_at(&mut root, parent), last) {
                if let Some(v) = m.remove(k) {
                    let snake: String = k
                        .chars()
                        .flat_map(|c| {
                            if c.is_ascii_uppercase() {
                                vec!['_', c.to_ascii_lowercase()]
                            } else {
                                vec![c]
                            }
                        })
                        .collect();
                    let new = if snake != *k && rng.chance(70) { snake } else { format!("{k}X") };
                    m.insert(new, v);
                }
            }
            "key renamed".into()
        }
        3 => {
            let (last, parent) = path.split_last().expect("not the root");
            if let (Value::Array(a), PathStep::Index(i)) = (json_at(&mut root, parent), last) {
                let copy = a[*i].clone();
                a.push(copy);
            }
            "element duplicated (if in an array)".into()
        }
        _ => {
            let v: Value = match rng.below(14) {
                0 => "NaN".into(),
                1 => "Infinity".into(),
                2 => "-Infinity".into(),
                3 => "1e400".into(),
                4 => serde_json::from_str("123456789012345678901234567890").unwrap(),
                5 => serde_json::from_str("1e400").unwrap_or(Value::Null),
                6 => (-1).into(),
                7 => Value::Null,
                8 => true.into(),
                9 => Value::Array(vec![]),
                10 => Value::Object(Default::default()),
                11 => "".into(),
                12 => "0x10".into(),
                _ => (u64::MAX).into(),
            };
            let text = v.to_string();
            *json_at(&mut root, &path) = v;
            format!("set to {text}")
        }
    };
    (format!("JSON {where_}: {what}"), serde_json::to_vec(&root).unwrap())
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    if let Some(v) = value {
        headers.push((name.to_string(), v.to_string()));
    }
}

fn mutate_content_type(rng: &mut Rng, wire: &mut Wire, is_json: bool) -> String {
    let Wire::Http { headers, .. } = wire else { unreachable!() };
    let swapped = if is_json { "application/x-protobuf" } else { "application/json" };
    let ct = *rng.pick(&[
        Some(swapped),
        Some(swapped),
        None,
        Some(""),
        Some("text/plain"),
        Some("application/grpc"),
        Some("application/x-protobuf; charset=utf-8"),
        Some("APPLICATION/JSON"),
        Some("application/json; charset=latin1"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-protobufX"),
    ]);
    set_header(headers, "content-type", ct);
    format!("Content-Type {ct:?}")
}

fn mutate_encoding(rng: &mut Rng, req: &Request, body: &[u8], bomb: &[u8]) -> (String, Wire) {
    let mut wire = wire_of(req, body);
    let Wire::Http { headers, body: wbody, .. } = &mut wire else { unreachable!() };
    let what = match rng.below(8) {
        0 => {
            set_header(headers, "content-encoding", Some("gzip"));
            *wbody = body.to_vec();
            "Content-Encoding gzip, body not compressed".to_string()
        }
        1 => {
            set_header(headers, "content-encoding", Some("gzip"));
            let g = gzip(body);
            let at = rng.below(g.len());
            *wbody = g[..at].to_vec();
            format!("gzip body truncated to {at} bytes")
        }
        2 => {
            set_header(headers, "content-encoding", Some("gzip"));
            let mut g = gzip(body);
            let i = 10 + rng.below(g.len() - 10);
            g[i] ^= 0x5a;
            *wbody = g;
            format!("gzip body with byte {i} flipped")
        }
        3 => {
            let enc = *rng.pick(&[
                "br",
                "deflate",
                "identity",
                "gzip, identity",
                "x-unknown",
                "GZIP",
                "",
            ]);
            set_header(headers, "content-encoding", Some(enc));
            *wbody = if enc.eq_ignore_ascii_case("gzip") { gzip(body) } else { body.to_vec() };
            format!("Content-Encoding {enc:?}")
        }
        4 => {
            set_header(headers, "content-encoding", None);
            *wbody = gzip(body);
            "gzip body without Content-Encoding".into()
        }
        5 => {
            set_header(headers, "content-encoding", Some("gzip"));
            *wbody = gzip(&gzip(body));
            "gzip applied twice, announced once".into()
        }
        6 => {
            set_header(headers, "content-encoding", Some("gzip"));
            *wbody = bomb.to_vec();
            format!("gzip bomb ({} bytes → 2 MiB of zeros)", bomb.len())
        }
        _ => {
            set_header(headers, "content-encoding", Some("gzip"));
            *wbody = [gzip(body), gzip(body)].concat();
            "two gzip members".into()
        }
    };
    (what, wire)
}

// ---- the client ------------------------------------------------------------------------------

/// tonic codec that sends the message bytes as they are and returns the answer's bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct Client {
    http_addr: std::net::SocketAddr,
    http: reqwest::blocking::Client,
    rt: tokio::runtime::Runtime,
    channel: tonic::transport::Channel,
}

impl Client {
    fn new(serve: &Serve) -> Client {
        // A worker thread drives the gRPC connection between calls too (answers the server's
        // pings): with a current-thread runtime an idle channel would not answer the GOAWAY/PING
        // of the graceful shutdown, and `serve` would wait for it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", serve.grpc))
            .unwrap()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10));
        let channel = rt.block_on(endpoint.connect()).expect("gRPC connect");
        Client {
            http_addr: serve.http,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            rt,
            channel,
        }
    }

    /// Sends one request. `Err` says how the answer broke the receiver's contract.
    fn send(&mut self, wire: &Wire) -> Result<Outcome, String> {
        match wire {
            Wire::Http { path, headers, body } => {
                let mut rb =
                    self.http.post(format!("http://{}{path}", self.http_addr)).body(body.clone());
                for (k, v) in headers {
                    rb = rb.header(k.as_str(), v.as_str());
                }
                let resp = rb.send().map_err(|e| format!("HTTP request failed: {e:?}"))?;
                let status = resp.status().as_u16();
                let ct = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let bytes = resp.bytes().map_err(|e| format!("reading the answer: {e}"))?;
                http_outcome(path, status, &ct, &bytes)
            }
            Wire::Grpc { method, metadata, message, gzip } => {
                let mut grpc = tonic::client::Grpc::new(self.channel.clone());
                if *gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                let mut req = tonic::Request::new(message.clone());
                for (k, v) in metadata {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap();
                    req.metadata_mut().append(key, v.parse().unwrap());
                }
                let path = tonic::codegen::http::uri::PathAndQuery::from_str(method).unwrap();
                let result = self.rt.block_on(async {
                    grpc.ready()
                        .await
                        .map_err(|e| tonic::Status::unknown(format!("not ready: {e}")))?;
                    grpc.unary::<Vec<u8>, Vec<u8>, _>(req, path, RawCodec).await
                });
                grpc_outcome(method, result)
            }
        }
    }
}

/// The OTLP answer of a 2xx: the partial_success rejected count.
fn rejected_count(path: &str, ct: &str, body: &[u8]) -> Result<i64, String> {
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            format!("2xx body is not JSON ({e}): {}", String::from_utf8_lossy(body))
        })?;
        if !v.is_object() {
            return Err(format!("2xx JSON body is not an object: {v}"));
        }
        let ps = &v["partialSuccess"];
        Ok(["rejectedDataPoints", "rejectedLogRecords", "rejectedSpans"]
            .iter()
            .map(|k| match &ps[k] {
                Value::Number(n) => n.as_i64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            })
            .sum())
    } else if ct.starts_with("application/x-protobuf") {
        let bad = |e: prost::DecodeError| format!("2xx body is no Export*ServiceResponse: {e}");
        Ok(match path {
            "/v1/metrics" | METRICS_METHOD => ExportMetricsServiceResponse::decode(body)
                .map_err(bad)?
                .partial_success
                .map_or(0, |p| p.rejected_data_points),
            "/v1/logs" | LOGS_METHOD => ExportLogsServiceResponse::decode(body)
                .map_err(bad)?
                .partial_success
                .map_or(0, |p| p.rejected_log_records),
            _ => ExportTraceServiceResponse::decode(body)
                .map_err(bad)?
                .partial_success
                .map_or(0, |p| p.rejected_spans),
        })
    } else {
        Err(format!("2xx with Content-Type {ct:?}"))
    }
}

/// `google.rpc.Status`, as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn http_outcome(path: &str, status: u16, ct: &str, body: &[u8]) -> Result<Outcome, String> {
    match status {
        200..=299 => Ok(Outcome::Accepted { rejected: rejected_count(path, ct, body)? }),
        400..=599 => {
            let (code, message) = if ct.starts_with("application/json") {
                let v: Value = serde_json::from_slice(body).map_err(|e| {
                    format!(
                        "HTTP {status}: body is not JSON ({e}): {}",
                        String::from_utf8_lossy(body)
                    )
                })?;
                (v["code"].as_i64().unwrap_or(0), v["message"].as_str().unwrap_or("").to_string())
            } else if ct.starts_with("application/x-protobuf") {
                let s = RpcStatus::decode(body)
                    .map_err(|e| format!("HTTP {status}: body is no google.rpc.Status: {e}"))?;
                (i64::from(s.code), s.message)
            } else {
                return Err(format!(
                    "HTTP {status} with Content-Type {ct:?}: {}",
                    String::from_utf8_lossy(body)
                ));
            };
            if code == 0 || message.is_empty() {
                return Err(format!(
                    "HTTP {status}: status body without code/message: {}",
                    String::from_utf8_lossy(body)
                ));
            }
            Ok(Outcome::Rejected { status: format!("HTTP {status}"), message })
        }
        other => Err(format!("HTTP {other}: {}", String::from_utf8_lossy(body))),
    }
}

fn grpc_outcome(
    method: &str,
    result: Result<tonic::Response<Vec<u8>>, tonic::Status>,
) -> Result<Outcome, String> {
    match result {
        Ok(resp) => Ok(Outcome::Accepted {
            rejected: rejected_count(method, "application/x-protobuf", resp.get_ref())?,
        }),
        Err(s) => {
            use std::error::Error;
            // A transport failure (connection reset, the server gone) or a hang is no answer.
            if s.source().is_some()
                || matches!(
                    s.code(),
                    tonic::Code::Unknown | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                )
            {
                return Err(format!("gRPC call failed without a server status: {s:?}"));
            }
            Ok(Outcome::Rejected {
                status: format!("gRPC {:?}", s.code()),
                message: s.message().into(),
            })
        }
    }
}

// ---- state -----------------------------------------------------------------------------------

/// The Claude Code series of `/metrics`, sorted (tokentray's own counters of requests change
/// with every request, accepted or not, and are left out).
fn state(serve: &Serve) -> Vec<String> {
    let mut lines: Vec<String> = serve
        .scrape()
        .lines()
        .filter(|l| l.starts_with("claude_code_"))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

fn diff(before: &[String], after: &[String]) -> String {
    let b: BTreeSet<&String> = before.iter().collect();
    let a: BTreeSet<&String> = after.iter().collect();
    let gone: Vec<_> = b.difference(&a).take(5).collect();
    let new: Vec<_> = a.difference(&b).take(5).collect();
    format!("gone: {gone:#?}\nnew: {new:#?}")
}

/// `report` outputs that describe the whole stored state.
fn reports(serve: &Serve) -> Vec<Value> {
    vec![
        serve.report(&["all", "--json"]),
        serve.report(&["all", "--by", "session", "--json"]),
        serve.report(&["all", "--by", "model", "--json"]),
    ]
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        v => v.as_f64().unwrap_or(f64::NAN),
    }
}

/// Each set's fresh-id sessions add up exactly to its `expected.json`, on `/metrics` and in
/// `report --by session`.
fn check_fixture_totals(corpus: &Corpus, serve: &Serve) -> Checker {
    let mut c = Checker::new();
    let samples = prom::parse(&serve.scrape());
    let by_session = serve.report(&["all", "--by", "session", "--json"]);
    let groups: BTreeMap<String, &Value> = by_session["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| (g["key"].as_str().unwrap_or_default().to_string(), g))
        .collect();
    for (set, ns) in corpus.sets.iter().zip(&corpus.namespaces) {
        let fresh: BTreeSet<&str> = ns.values().map(String::as_str).collect();
        let ours: Vec<prom::Sample> = samples
            .iter()
            .filter(|s| s.labels.get("session_id").is_some_and(|v| fresh.contains(v.as_str())))
            .cloned()
            .collect();
        for (name, m) in &set.expected.metrics {
            let pname = prometheus_name(name, &m.unit, true);
            let what = format!("[{}] {pname}", set.name);
            c.num(
                format!("{what} total over the fresh sessions"),
                prom::sum(&ours, &pname),
                m.total,
            );
            let got = prom::sum_by(&ours, &pname, &["session_id"]);
            for (old, want) in &m.by_session {
                let id = &ns[old];
                c.num(
                    format!("{what} session {id}"),
                    got.get(&vec![id.clone()]).copied().unwrap_or(0.0),
                    *want,
                );
                c.num(
                    format!("[{}] report --by session [{id}] metrics[{name}]", set.name),
                    groups.get(id).map_or(0.0, |g| num(&g["metrics"][name])),
                    *want,
                );
            }
            for g in &m.by_attributes {
                let keys: Vec<String> = g.attributes.keys().map(|k| label_name(k)).collect();
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let vals: Vec<String> = g.attributes.values().cloned().collect();
                let sums = prom::sum_by(&ours, &pname, &refs);
                let want: f64 = m
                    .by_attributes
                    .iter()
                    .filter(|h| {
                        h.attributes.keys().eq(g.attributes.keys())
                            && h.attributes.values().eq(vals.iter())
                    })
                    .map(|h| h.value)
                    .sum();
                c.num(
                    format!("{what} by {keys:?} {vals:?}"),
                    sums.get(&vals).copied().unwrap_or(0.0),
                    want,
                );
            }
        }
        for (old, w) in &set.expected.events.api_request.by_session {
            let id = &ns[old];
            let got = groups.get(id).map(|g| &g["api_requests"]).unwrap_or(&Value::Null);
            for f in [
                "cost_usd",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_creation_tokens",
            ] {
                c.num(
                    format!("[{}] report --by session [{id}] api_requests.{f}", set.name),
                    num(&got[f]),
                    num(&w[f]),
                );
            }
        }
    }
    c
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    Some(match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{name}={v}: {e}")),
        None => v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")),
    })
}

fn start_serve() -> Serve {
    Serve::start_with(ServeOptions {
        env: vec![("TOKENTRAY_MAX_BODY_BYTES".into(), MAX_BODY.to_string())],
        ..ServeOptions::default()
    })
}

/// One step of the stream: a fuzz case, or one of the unmutated fresh-id requests.
#[derive(Clone, Copy, Debug)]
enum Step {
    Fuzz(u64),
    Pristine(usize),
}

/// Cases per round: each round gets a fresh `serve` (and replica), so that the series the
/// accepted mutations add do not pile up and make a long run slower with every case.
const ROUND: usize = 2500;

#[test]
fn mutated_fixtures_never_break_the_receivers() {
    let seed = env_u64("TOKENTRAY_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_u64("TOKENTRAY_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
    let only = env_u64("TOKENTRAY_FUZZ_ONLY");
    eprintln!(
        "fuzz_receivers: seed {seed:#x}, {cases} cases{}",
        only.map_or(String::new(), |o| format!(", only case {o}"))
    );
    let started = Instant::now();
    let corpus = Corpus::load();
    let fuzz: Vec<u64> = match only {
        Some(o) => vec![o],
        None => (env_u64("TOKENTRAY_FUZZ_FIRST").unwrap_or(0)..cases).collect(),
    };
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut accepted = 0;
    for (round, chunk) in fuzz.chunks(ROUND).enumerate() {
        accepted += run_round(&corpus, seed, round as u64, chunk, &mut tally);
        eprintln!(
            "fuzz_receivers: round {round} done ({} cases so far, {:?}); answers {tally:?}",
            (round * ROUND + chunk.len()),
            started.elapsed()
        );
    }
    eprintln!(
        "fuzz_receivers: seed {seed:#x}, {} cases, {accepted} requests accepted, done in {:?}",
        fuzz.len(),
        started.elapsed()
    );
}

/// One round on a fresh `serve`: the fuzz cases `fuzz` with every fixture request, unmutated
/// under fresh ids, at seeded random places (in recorded order, so a cumulative set stays in
/// order); then the checks. Returns how many requests were accepted.
fn run_round(
    corpus: &Corpus,
    seed: u64,
    round: u64,
    fuzz: &[u64],
    tally: &mut BTreeMap<String, u64>,
) -> usize {
    let mut place = Rng::for_case(seed ^ 0x5eed, round);
    let mut slots: BTreeSet<usize> = BTreeSet::new();
    let total = fuzz.len() + corpus.pristine.len();
    while slots.len() < corpus.pristine.len() {
        slots.insert(place.below(total));
    }
    let mut stream = Vec::with_capacity(total);
    let (mut f, mut p) = (fuzz.iter(), 0..corpus.pristine.len());
    for i in 0..total {
        stream.push(if slots.contains(&i) {
            Step::Pristine(p.next().unwrap())
        } else {
            Step::Fuzz(*f.next().unwrap())
        });
    }
    let request = |step: &Step| match step {
        Step::Fuzz(i) => {
            let case = corpus.case(seed, *i);
            (case.reproducer(seed), case.wire)
        }
        Step::Pristine(k) => {
            (format!("unmutated {}", corpus.pristine[*k].0), corpus.pristine[*k].1.clone())
        }
    };

    let report_each = std::env::var_os("TOKENTRAY_FUZZ_REPORT_EACH").is_some();
    let mut serve = start_serve();
    let mut client = Client::new(&serve);
    let mut snapshot = state(&serve);
    let mut dirty = false;
    let mut accepted: Vec<(Step, Outcome)> = Vec::new();
    let mut changed_by_accepted = 0u64;
    for step in &stream {
        if dirty {
            let now = state(&serve);
            if now != snapshot {
                changed_by_accepted += 1;
            }
            snapshot = now;
            dirty = false;
        }
        let (what, wire) = request(step);
        let outcome = client.send(&wire).unwrap_or_else(|e| {
            panic!("{what}: {e}\nrequest: {}\n{}", abbreviate(&wire), serve.stderr())
        });
        match &outcome {
            Outcome::Accepted { rejected } => {
                if let Step::Pristine(_) = step {
                    assert_eq!(*rejected, 0, "{what}: partial success rejecting {rejected}");
                }
                let key = if *rejected > 0 { "2xx partial" } else { "2xx" };
                *tally.entry(key.into()).or_default() += 1;
                accepted.push((*step, outcome.clone()));
                dirty = true;
                if report_each {
                    eprintln!("fuzz_receivers: accepted, now the reports: {what}");
                    reports(&serve);
                }
            }
            Outcome::Rejected { status, message } => {
                assert!(!matches!(step, Step::Pristine(_)), "{what}: rejected: {status} {message}");
                *tally.entry(status.clone()).or_default() += 1;
                let after = state(&serve);
                assert!(
                    after == snapshot,
                    "{what}: rejected ({status}: {message}) but /metrics changed:\n{}",
                    diff(&snapshot, &after)
                );
            }
        }
    }
    assert!(
        changed_by_accepted > 0,
        "round {round}: no accepted request changed /metrics: the before/after check sees nothing"
    );

    let c = support::eventually(Duration::from_secs(5), || check_fixture_totals(corpus, &serve));
    c.assert_ok(&format!("round {round}: fixture totals after the fuzz run"));

    // A second serve that only gets the accepted requests, in the same order, must end in the
    // same state: together the rejected requests changed nothing.
    let replica = start_serve();
    let mut replica_client = Client::new(&replica);
    for (step, outcome) in &accepted {
        let (what, wire) = request(step);
        let again = replica_client.send(&wire).unwrap_or_else(|e| panic!("replica, {what}: {e}"));
        assert_eq!(&again, outcome, "replica, {what}: another answer than the first time");
    }
    let (a, b) = (state(&serve), state(&replica));
    assert!(
        a == b,
        "round {round}: /metrics of the fuzzed serve vs a serve that got only the accepted \
         requests:\n{}",
        diff(&b, &a)
    );
    for (x, y) in reports(&serve).iter().zip(&reports(&replica)) {
        assert!(
            values_equal(x, y),
            "round {round}: report of the fuzzed serve vs the replica:\n{x:#}\nvs\n{y:#}"
        );
    }
    check_fixture_totals(corpus, &replica)
        .assert_ok(&format!("round {round}: fixture totals on the replica"));

    // Still alive and well: a clean exit on SIGTERM.
    serve.stop();
    accepted.len()
}

/// JSON equality with floats compared to [`support::REL_TOL`] (sums may be added in another
/// order).
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            approx_eq(x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The request for a failure message, bodies cut short.
fn abbreviate(wire: &Wire) -> String {
    let cut = |b: &[u8]| {
        let s = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
        format!("{} bytes: {s:?}…", b.len())
    };
    match wire {
        Wire::Http { path, headers, body } => format!("POST {path} {headers:?} {}", cut(body)),
        Wire::Grpc { method, metadata, message, gzip } => {
            format!("gRPC {method} {metadata:?} gzip={gzip} {}", cut(message))
        }
    }
}
