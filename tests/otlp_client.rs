//! The real OpenTelemetry Rust SDK and `opentelemetry-otlp` exporter against a real
//! `tokentray serve`: gRPC, HTTP/protobuf and HTTP/JSON, each with DELTA and CUMULATIVE
//! temporality.
//!
//! Each case records known values on an f64 counter (`test.cost`, unit `USD`), a u64 counter
//! (`test.token.usage`, unit `tokens`) with `model`/`type` attributes and an f64 histogram
//! (`test.duration`, unit `ms`, explicit bounds), flushes, records more, shuts the provider down
//! (final export), then "restarts the client": a new `SdkMeterProvider` — for CUMULATIVE that is a
//! new series start time, whose whole value is new — records, flushes, records, shuts down. After
//! every export the `/metrics` text and `report all --json` must equal the sum of everything
//! recorded so far (floats within 1e-9 relative).
// Tests and benches may panic: a failed step is the point. Library code may not (Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

#[path = "support/mod.rs"]
mod support;

use support::prom::{self, Sample};
use support::Serve;

/// The one sample named `name` whose labels include all of `want`.
fn sample(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name}{want:?} matches {} samples: {found:?}", found.len());
    found.first().map(|s| s.value)
}

fn approx(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

// ---------------------------------------------------------------------------------------------
// What is recorded and what must show.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

const BOUNDS: [f64; 3] = [10.0, 100.0, 1000.0];

/// One round of recordings.
struct Round {
    cost: &'static [(&'static str, f64)],
    tokens: &'static [(&'static str, &'static str, u64)],
    durations: &'static [(&'static str, f64)],
}

const OPUS: &str = "claude-opus-5-5";
const HAIKU: &str = "claude-haiku-5";

/// First client: rounds 0 and 1. Second client: rounds 2 and 3 (HAIKU's cost only in round 3).
const ROUNDS: [Round; 4] = [
    Round {
        cost: &[(OPUS, 0.0193), (OPUS, 0.004512), (HAIKU, 0.000731)],
        tokens: &[
            (OPUS, "input", 2100),
            (OPUS, "output", 80),
            (OPUS, "cacheRead", 9000),
            (OPUS, "cacheCreation", 1500),
            (HAIKU, "input", 310),
        ],
        durations: &[(OPUS, 1200.0), (OPUS, 35.5), (HAIKU, 7.25)],
    },
    Round {
        cost: &[(OPUS, 0.1234567), (HAIKU, 0.0000012)],
        tokens: &[
            (OPUS, "input", 17),
            (OPUS, "output", 4096),
            (HAIKU, "input", 1),
            (HAIKU, "output", 99),
        ],
        durations: &[(OPUS, 99.9), (HAIKU, 1000.0)],
    },
    Round {
        cost: &[(OPUS, 2.5), (OPUS, 0.3333333333)],
        tokens: &[(OPUS, "input", 123_456), (OPUS, "cacheRead", 1_000_000)],
        durations: &[(OPUS, 10.0), (OPUS, 0.5)],
    },
    Round {
        cost: &[(OPUS, 0.0000001), (HAIKU, 0.42)],
        tokens: &[(HAIKU, "cacheCreation", 64), (OPUS, "output", 3)],
        durations: &[(HAIKU, 5000.0)],
    },
];

#[derive(Default, Debug)]
struct Totals {
    cost: BTreeMap<String, f64>,
    tokens: BTreeMap<(String, String), u64>,
    /// Per model: per-bucket counts (len BOUNDS + 1), sum, count.
    hist: BTreeMap<String, (Vec<u64>, f64, u64)>,
}

impl Totals {
    fn add(&mut self, round: &Round) {
        for (m, v) in round.cost {
            *self.cost.entry(m.to_string()).or_default() += v;
        }
        for (m, t, v) in round.tokens {
            *self.tokens.entry((m.to_string(), t.to_string())).or_default() += v;
        }
        for (m, v) in round.durations {
            let h = self
                .hist
                .entry(m.to_string())
                .or_insert_with(|| (vec![0; BOUNDS.len() + 1], 0.0, 0));
            // OTel explicit buckets are (prev, bound]: a value equal to a bound goes to that bound's bucket.
            let i = BOUNDS.iter().position(|b| v <= b).unwrap_or(BOUNDS.len());
            h.0[i] += 1;
            h.1 += v;
            h.2 += 1;
        }
    }
}

struct Client {
    provider: SdkMeterProvider,
    cost: opentelemetry::metrics::Counter<f64>,
    tokens: opentelemetry::metrics::Counter<u64>,
    duration: opentelemetry::metrics::Histogram<f64>,
}

impl Client {
    fn new(
        serve: &Serve,
        transport: Transport,
        temporality: Temporality,
        rt: &tokio::runtime::Runtime,
    ) -> Client {
        let exporter = match transport {
            Transport::Grpc => {
                // tonic's channel spawns its connection task on the runtime it is built in.
                let _guard = rt.enter();
                opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(format!("http://{}", serve.grpc))
                    .with_timeout(Duration::from_secs(10))
                    .with_temporality(temporality)
                    .build()
            }
            Transport::HttpProtobuf | Transport::HttpJson => {
                opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(if transport == Transport::HttpJson {
                        Protocol::HttpJson
                    } else {
                        Protocol::HttpBinary
                    })
                    .with_endpoint(format!("http://{}/v1/metrics", serve.http))
                    .with_timeout(Duration::from_secs(10))
                    .with_temporality(temporality)
                    .build()
            }
        }
        .expect("build exporter");
        // Exports happen on force_flush and shutdown only (the interval never elapses in a test).
        let reader =
            PeriodicReader::builder(exporter).with_interval(Duration::from_secs(3600)).build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(Resource::builder().with_service_name("otlp-client-test").build())
            .build();
        let meter = provider.meter("tokentray-otlp-client-test");
        let cost =
            meter.f64_counter("test.cost").with_unit("USD").with_description("Test cost").build();
        let tokens = meter
            .u64_counter("test.token.usage")
            .with_unit("tokens")
            .with_description("Test tokens")
            .build();
        let duration = meter
            .f64_histogram("test.duration")
            .with_unit("ms")
            .with_description("Test duration")
            .with_boundaries(BOUNDS.to_vec())
            .build();
        Client { provider, cost, tokens, duration }
    }

    fn record(&self, round: &Round) {
        for (m, v) in round.cost {
            self.cost.add(*v, &[KeyValue::new("model", *m)]);
        }
        for (m, t, v) in round.tokens {
            self.tokens.add(*v, &[KeyValue::new("model", *m), KeyValue::new("type", *t)]);
        }
        for (m, v) in round.durations {
            self.duration.record(*v, &[KeyValue::new("model", *m)]);
        }
    }
}

fn check(serve: &Serve, want: &Totals, when: &str) {
    let text = serve.scrape();
    let samples = prom::parse(&text);
    let mut errors = Vec::new();
    for (model, v) in &want.cost {
        match sample(&samples, "test_cost_USD_total", &[("model", model)]) {
            Some(got) if approx(got, *v) => {}
            got => errors.push(format!(
                "/metrics test_cost_USD_total{{model={model}}}: got {got:?}, want {v}"
            )),
        }
    }
    for ((model, kind), v) in &want.tokens {
        match sample(&samples, "test_token_usage_tokens_total", &[("model", model), ("type", kind)]) {
            Some(got) if got == *v as f64 => {}
            got => errors.push(format!("/metrics test_token_usage_tokens_total{{model={model},type={kind}}}: got {got:?}, want {v}")),
        }
    }
    for (model, (buckets, sum, count)) in &want.hist {
        let name = "test_duration_milliseconds";
        match sample(&samples, &format!("{name}_count"), &[("model", model)]) {
            Some(got) if got == *count as f64 => {}
            got => errors
                .push(format!("/metrics {name}_count{{model={model}}}: got {got:?}, want {count}")),
        }
        match sample(&samples, &format!("{name}_sum"), &[("model", model)]) {
            Some(got) if approx(got, *sum) => {}
            got => errors
                .push(format!("/metrics {name}_sum{{model={model}}}: got {got:?}, want {sum}")),
        }
        let mut cumulative = 0;
        for (i, n) in buckets.iter().enumerate() {
            cumulative += n;
            let le = BOUNDS.get(i).map(|b| format!("{b}")).unwrap_or_else(|| "+Inf".into());
            match sample(&samples, &format!("{name}_bucket"), &[("model", model), ("le", &le)]) {
                Some(got) if got == cumulative as f64 => {}
                got => errors.push(format!("/metrics {name}_bucket{{model={model},le={le}}}: got {got:?}, want {cumulative}")),
            }
        }
    }

    let report = serve.report(&["all", "--json"]);
    let metric = |name: &str| report["metrics"][name].as_f64();
    let want_cost: f64 = want.cost.values().sum();
    let want_tokens: u64 = want.tokens.values().sum();
    match metric("test.cost") {
        Some(got) if approx(got, want_cost) => {}
        got => errors.push(format!("report metrics[test.cost]: got {got:?}, want {want_cost}")),
    }
    match metric("test.token.usage") {
        Some(got) if got == want_tokens as f64 => {}
        got => errors
            .push(format!("report metrics[test.token.usage]: got {got:?}, want {want_tokens}")),
    }
    if !errors.is_empty() {
        panic!("{when}: {} mismatch(es):\n  {}\n--- /metrics ---\n{text}\n--- report ---\n{report:#}\n--- serve stderr ---\n{}", errors.len(), errors.join("\n  "), serve.stderr());
    }
}

fn run(transport: Transport, temporality: Temporality) {
    let serve = Serve::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut want = Totals::default();

    // First client.
    let client = Client::new(&serve, transport, temporality, &rt);
    client.record(&ROUNDS[0]);
    want.add(&ROUNDS[0]);
    client.provider.force_flush().expect("flush round 0");
    check(&serve, &want, "after the first flush");
    client.record(&ROUNDS[1]);
    want.add(&ROUNDS[1]);
    client.provider.shutdown().expect("shutdown the first client");
    check(&serve, &want, "after the first client shut down");

    // The client restarts: for CUMULATIVE, new series start times and values from zero again.
    std::thread::sleep(Duration::from_millis(5));
    let client = Client::new(&serve, transport, temporality, &rt);
    client.record(&ROUNDS[2]);
    want.add(&ROUNDS[2]);
    client.provider.force_flush().expect("flush round 2");
    check(&serve, &want, "after the restarted client's first flush");
    // A flush with nothing new must change nothing (CUMULATIVE re-sends the same totals).
    client.provider.force_flush().expect("empty flush");
    check(&serve, &want, "after a flush with nothing new");
    client.record(&ROUNDS[3]);
    want.add(&ROUNDS[3]);
    client.provider.shutdown().expect("shutdown the second client");
    check(&serve, &want, "after the second client shut down");
}

#[test]
fn grpc_delta() {
    run(Transport::Grpc, Temporality::Delta);
}

#[test]
fn grpc_cumulative() {
    run(Transport::Grpc, Temporality::Cumulative);
}

#[test]
fn http_protobuf_delta() {
    run(Transport::HttpProtobuf, Temporality::Delta);
}

#[test]
fn http_protobuf_cumulative() {
    run(Transport::HttpProtobuf, Temporality::Cumulative);
}

#[test]
fn http_json_delta() {
    run(Transport::HttpJson, Temporality::Delta);
}

#[test]
fn http_json_cumulative() {
    run(Transport::HttpJson, Temporality::Cumulative);
}
