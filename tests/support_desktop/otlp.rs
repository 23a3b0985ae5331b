//! Claude Code-shaped usage sent over OTLP/HTTP (protobuf), at times relative to now, with the
//! figures the window must show computed independently of the app: each point is counted in
//! today/week/month by the local calendar (weeks start on Monday, as `tokentray report`). Also a
//! Codex turn, as Codex's captured OTLP/JSON logs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{Local, Weekday};
use prost::Message;
use serde_json::{json, Value};
use tokentray_core::query::{Period, TimeRange};
use tokentray_core::testkit::{self, Usage};

/// One API response's usage, `days_ago` days before now (same time of day).
#[derive(Debug, Clone)]
pub struct Point {
    pub session: String,
    pub model: &'static str,
    pub usage: Usage,
    pub days_ago: i64,
    /// Also send `session.count` +1 for it.
    pub new_session: bool,
}

pub fn point(
    session: &str,
    model: &'static str,
    cost: f64,
    tokens: [f64; 4],
    days_ago: i64,
) -> Point {
    Point {
        session: session.into(),
        model,
        usage: Usage {
            cost_usd: cost,
            input: tokens[0],
            output: tokens[1],
            cache_read: tokens[2],
            cache_creation: tokens[3],
        },
        days_ago,
        new_session: true,
    }
}

/// The history of the window tests: today, 2 and 10 days ago (in or out of this week and
/// month depending on today's date), and 40 days ago (always before this month).
pub fn history() -> Vec<Point> {
    vec![
        point(
            "11111111-aaaa-4000-8000-000000000001",
            "claude-opus-4-5",
            1.25,
            [1200.0, 300.0, 5000.0, 700.0],
            0,
        ),
        point(
            "22222222-bbbb-4000-8000-000000000002",
            "claude-sonnet-4-5",
            0.5,
            [400.0, 100.0, 2500.0, 0.0],
            0,
        ),
        point(
            "33333333-cccc-4000-8000-000000000003",
            "claude-opus-4-5",
            2.0,
            [2000.0, 500.0, 9000.0, 1000.0],
            2,
        ),
        point(
            "44444444-dddd-4000-8000-000000000004",
            "claude-sonnet-4-5",
            4.0,
            [3000.0, 800.0, 12000.0, 2000.0],
            10,
        ),
        point(
            "55555555-eeee-4000-8000-000000000005",
            "claude-opus-4-5",
            8.0,
            [5000.0, 900.0, 20000.0, 3000.0],
            40,
        ),
    ]
}

/// What arrives while the window is open.
pub fn live_point() -> Point {
    point(
        "66666666-ffff-4000-8000-000000000006",
        "claude-haiku-4-5",
        0.25,
        [800.0, 50.0, 0.0, 0.0],
        0,
    )
}

fn time_ns(days_ago: i64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let t = now.saturating_sub(Duration::from_secs(u64::try_from(days_ago).unwrap_or(0) * 86_400));
    u64::try_from(t.as_nanos()).expect("time fits u64")
}

/// Sends the points as Claude Code does (delta sums, and the `api_request` event of each
/// response), one request each; panics unless accepted.
pub fn send(http: SocketAddr, points: &[Point]) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client");
    let post = |path: &str, body: Vec<u8>| {
        let resp = client
            .post(format!("http://{http}{path}"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path} to {http}: {e}"));
        assert!(resp.status().is_success(), "POST {path} answered {}", resp.status());
    };
    for p in points {
        let t = time_ns(p.days_ago);
        let mut metrics = testkit::usage_metrics(
            &p.session,
            "user-1",
            p.model,
            p.usage,
            t - 1_000_000_000,
            t,
            false,
        );
        if p.new_session {
            metrics.push(testkit::session_start_metric(
                &p.session,
                "user-1",
                t - 2_000_000_000,
                t - 1_000_000_000,
            ));
        }
        post(
            "/v1/logs",
            testkit::api_request_log(&p.session, "user-1", p.model, p.usage, t).encode_to_vec(),
        );
        post("/v1/metrics", testkit::metrics_request(metrics).encode_to_vec());
    }
}

/// Sends Claude Code events (log records) in one OTLP/HTTP request; panics unless accepted.
pub fn send_events(
    http: SocketAddr,
    records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>,
) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{http}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(testkit::logs_request(records).encode_to_vec())
        .send()
        .unwrap_or_else(|e| panic!("POST /v1/logs to {http}: {e}"));
    assert!(resp.status().is_success(), "POST /v1/logs answered {}", resp.status());
}

/// Codex's captured OTLP/JSON logs (`tests/fixtures/codex/0004_logs.json`: one turn with its
/// `response.completed` token counts), re-timed to `now_ns` as if Codex had just sent them.
fn codex_logs_now(now_ns: u64) -> Vec<u8> {
    fn retime(v: &mut Value, now_ns: u64, rfc3339: &str) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if k == "timeUnixNano" || k == "observedTimeUnixNano" {
                        *x = json!(now_ns.to_string());
                    } else {
                        retime(x, now_ns, rfc3339);
                    }
                }
                if o.get("key") == Some(&json!("event.timestamp")) {
                    o.insert("value".into(), json!({ "stringValue": rfc3339 }));
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| retime(x, now_ns, rfc3339)),
            _ => {}
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codex/0004_logs.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("codex capture"))
            .expect("json");
    let when = chrono::DateTime::from_timestamp_nanos(now_ns as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    retime(&mut v, now_ns, &when);
    serde_json::to_vec(&v).expect("json")
}

/// Sends one Codex turn at `now_ns` (see [`codex_logs_now`]) as Codex does, OTLP/JSON logs;
/// panics unless accepted. tokentray prices it from its token counts.
pub fn send_codex_turn(http: SocketAddr, now_ns: u64) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{http}/v1/logs"))
        .header("content-type", "application/json")
        .body(codex_logs_now(now_ns))
        .send()
        .unwrap_or_else(|e| panic!("POST Codex logs to {http}: {e}"));
    assert!(resp.status().is_success(), "Codex logs answered {}", resp.status());
}

/// Now, in unix nanoseconds.
pub fn now_ns() -> u64 {
    time_ns(0)
}

/// Figures of one period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub cost: f64,
    /// input, output, cacheRead, cacheCreation
    pub tokens: [f64; 4],
    pub sessions: f64,
}

impl Figures {
    pub fn total_tokens(&self) -> f64 {
        self.tokens.iter().sum()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub today: Figures,
    pub week: Figures,
    pub month: Figures,
    /// This month's spend by model.
    pub models: BTreeMap<String, f64>,
}

fn contains(range: &TimeRange, ns: i64) -> bool {
    range.start_ns.is_none_or(|s| ns >= s) && range.end_ns.is_none_or(|e| ns < e)
}

/// The figures a correct dashboard shows for `points` right now.
pub fn expected(points: &[Point]) -> Expected {
    let now = Local::now();
    let today = Period::Today.range_at(&now, Weekday::Mon);
    let week = Period::Week.range_at(&now, Weekday::Mon);
    let month = Period::Month.range_at(&now, Weekday::Mon);
    let mut e = Expected::default();
    for p in points {
        let ns = i64::try_from(time_ns(p.days_ago)).expect("ns");
        // The usage point sits at `ns`; its session.count point one second earlier.
        let session_ns = ns - 1_000_000_000;
        for (range, f) in [(&today, &mut e.today), (&week, &mut e.week), (&month, &mut e.month)] {
            if contains(range, ns) {
                f.cost += p.usage.cost_usd;
                f.tokens[0] += p.usage.input;
                f.tokens[1] += p.usage.output;
                f.tokens[2] += p.usage.cache_read;
                f.tokens[3] += p.usage.cache_creation;
            }
            if p.new_session && contains(range, session_ns) {
                f.sessions += 1.0;
            }
        }
        if contains(&month, ns) {
            *e.models.entry(p.model.to_string()).or_insert(0.0) += p.usage.cost_usd;
        }
    }
    e
}

/// Dollars as the tray shows them.
pub fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

pub fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}
