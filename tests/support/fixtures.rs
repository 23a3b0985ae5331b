//! Loader for the recorded Claude Code export requests in `tests/fixtures/claude-code/<set>/`
//! and their ground truth `expected.json` (format: that folder's README).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// `<repo>/tests/fixtures/claude-code`: the captured requests of `shared/fixtures/claude-code`,
/// copied into the repository so that a clone anywhere runs them.
pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code")
}

/// Every set folder (a directory with `index.jsonl` and `expected.json`), sorted by name.
/// Panics when there is none: a test that replays nothing must not pass.
pub fn discover_sets() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read fixtures dir {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("index.jsonl").is_file() && p.join("expected.json").is_file())
        .collect();
    sets.sort();
    assert!(!sets.is_empty(), "no fixture sets found under {}", root.display());
    sets
}

pub fn load_set_by_name(name: &str) -> FixtureSet {
    FixtureSet::load(&fixtures_root().join(name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
    Traces,
}

/// One recorded export request.
#[derive(Debug, Clone)]
pub struct Request {
    pub n: u64,
    pub signal: Signal,
    pub transport: Transport,
    pub file: String,
    pub scenario: String,
    /// Body bytes exactly as received (still gzip-compressed for `.pb.gz`).
    pub body: Vec<u8>,
    /// HTTP: the request path (`/v1/metrics`); gRPC: the method
    /// (`/opentelemetry.proto.collector.metrics.v1.MetricsService/Export`).
    pub path: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// HTTP headers as recorded (name, value), in order; gRPC metadata (lowercase name, value).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The body with any `Content-Encoding: gzip` undone.
    pub fn decoded_body(&self) -> Vec<u8> {
        match self.content_encoding.as_deref() {
            Some("gzip") => {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .unwrap_or_else(|e| panic!("gunzip {}: {e}", self.file));
                out
            }
            None | Some("identity") => self.body.clone(),
            Some(other) => panic!("{}: unsupported content encoding {other}", self.file),
        }
    }

    pub fn is_json(&self) -> bool {
        self.content_type.as_deref().is_some_and(|c| c.starts_with("application/json"))
    }
}

#[derive(Debug, Clone)]
pub struct FixtureSet {
    pub name: String,
    pub dir: PathBuf,
    /// In `index.jsonl` order (= arrival order).
    pub requests: Vec<Request>,
    pub expected: Expected,
}

#[derive(Deserialize)]
struct IndexLine {
    n: u64,
    signal: String,
    transport: String,
    file: String,
    #[serde(default)]
    scenario: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
}

/// The recorded requests of a capture folder (`index.jsonl` and the bodies and headers it
/// names), in arrival order; any agent's captures, whatever their `expected.json` says.
pub fn load_requests(dir: &Path) -> Vec<Request> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let index = std::fs::read_to_string(dir.join("index.jsonl"))
        .unwrap_or_else(|e| panic!("{}: read index.jsonl: {e}", dir.display()));
    let mut requests = Vec::new();
    for (i, line) in index.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let il: IndexLine = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}/index.jsonl line {}: {e}", i + 1));
        let signal = match il.signal.as_str() {
            "metrics" => Signal::Metrics,
            "logs" => Signal::Logs,
            "traces" => Signal::Traces,
            s => panic!("{name}: unknown signal {s}"),
        };
        let transport = match il.transport.as_str() {
            "http" => Transport::Http,
            "grpc" => Transport::Grpc,
            t => panic!("{name}: unknown transport {t}"),
        };
        // The file is named in the index; the body extension tells the encoding too.
        let body_path = dir.join(&il.file);
        let body = std::fs::read(&body_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", body_path.display()));
        let stem = il
            .file
            .strip_suffix(".pb.gz")
            .or_else(|| il.file.strip_suffix(".pb"))
            .or_else(|| il.file.strip_suffix(".json"))
            .unwrap_or_else(|| panic!("{name}: unexpected body file name {}", il.file));
        let hpath = dir.join(format!("{stem}.headers.json"));
        let h: Value = serde_json::from_str(
            &std::fs::read_to_string(&hpath)
                .unwrap_or_else(|e| panic!("read {}: {e}", hpath.display())),
        )
        .unwrap_or_else(|e| panic!("parse {}: {e}", hpath.display()));
        let (path, headers) = match transport {
            Transport::Http => {
                let path = h["path"].as_str().expect("headers.json: path").to_string();
                let headers = h["headers"]
                    .as_object()
                    .expect("headers.json: headers")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                (path, headers)
            }
            Transport::Grpc => {
                let path = h["method"].as_str().expect("headers.json: method").to_string();
                let mut headers = Vec::new();
                if let Some(md) = h["metadata"].as_object() {
                    for (k, vs) in md {
                        for v in vs.as_array().into_iter().flatten() {
                            headers.push((
                                k.to_ascii_lowercase(),
                                v.as_str().unwrap_or_default().to_string(),
                            ));
                        }
                    }
                }
                (path, headers)
            }
        };
        let header = |name: &str| {
            headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let content_type = il.content_type.clone().or_else(|| header("content-type"));
        let content_encoding = il.content_encoding.clone().or_else(|| header("content-encoding"));
        // The body's file extension and the recorded encoding must agree.
        assert_eq!(
            il.file.ends_with(".gz"),
            content_encoding.as_deref() == Some("gzip"),
            "{name}/{}: file name vs Content-Encoding {content_encoding:?}",
            il.file
        );
        requests.push(Request {
            n: il.n,
            signal,
            transport,
            file: il.file,
            scenario: il.scenario,
            body,
            path,
            content_type,
            content_encoding,
            headers,
        });
    }
    assert!(!requests.is_empty(), "{name}: index.jsonl lists no request");
    requests
}

impl FixtureSet {
    pub fn load(dir: &Path) -> FixtureSet {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let requests = load_requests(dir);
        let expected = Expected::load(&dir.join("expected.json"));
        let n_metrics = requests.iter().filter(|r| r.signal == Signal::Metrics).count() as u64;
        let n_logs = requests.iter().filter(|r| r.signal == Signal::Logs).count() as u64;
        assert_eq!(
            (expected.requests.metrics, expected.requests.logs),
            (n_metrics, n_logs),
            "{name}: expected.json request counts vs index.jsonl"
        );
        FixtureSet { name, dir: dir.to_path_buf(), requests, expected }
    }

    /// Every distinct string value of a data-point / log-record attribute (e.g. `user.id`) in
    /// the set's requests (JSON walked as is, protobuf decoded with prost).
    pub fn attribute_values(&self, key: &str) -> BTreeSet<String> {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use prost::Message;
        let mut out = BTreeSet::new();
        let take = |attrs: &[KeyValue], out: &mut BTreeSet<String>| {
            for kv in attrs.iter().filter(|kv| kv.key == key) {
                if let Some(any_value::Value::StringValue(s)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    out.insert(s.clone());
                }
            }
        };
        for r in &self.requests {
            let body = r.decoded_body();
            if r.is_json() {
                let v: Value = serde_json::from_slice(&body).expect("json body");
                out.extend(json_point_attr_values(&v, key));
                continue;
            }
            match r.signal {
                Signal::Metrics => {
                    let m = ExportMetricsServiceRequest::decode(&body[..]).expect("decode metrics");
                    for metric in m
                        .resource_metrics
                        .iter()
                        .flat_map(|rm| &rm.scope_metrics)
                        .flat_map(|sm| &sm.metrics)
                    {
                        match &metric.data {
                            Some(Data::Sum(s)) => {
                                s.data_points.iter().for_each(|p| take(&p.attributes, &mut out))
                            }
                            Some(Data::Gauge(g)) => {
                                g.data_points.iter().for_each(|p| take(&p.attributes, &mut out))
                            }
                            Some(Data::Histogram(h)) => {
                                h.data_points.iter().for_each(|p| take(&p.attributes, &mut out))
                            }
                            _ => {}
                        }
                    }
                }
                Signal::Logs => {
                    let l = ExportLogsServiceRequest::decode(&body[..]).expect("decode logs");
                    for rec in l
                        .resource_logs
                        .iter()
                        .flat_map(|rl| &rl.scope_logs)
                        .flat_map(|sl| &sl.log_records)
                    {
                        take(&rec.attributes, &mut out);
                    }
                }
                Signal::Traces => {}
            }
        }
        out
    }
}

/// In OTLP/JSON: the `stringValue` of every attribute `{"key": key, ...}` of a data point or log
/// record (attribute arrays below `dataPoints` / `logRecords`; resource attributes excluded).
fn json_point_attr_values(v: &Value, key: &str) -> Vec<String> {
    fn walk(v: &Value, key: &str, inside_points: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let inside = inside_points || k == "dataPoints" || k == "logRecords";
                    if inside && k == "attributes" {
                        for kv in child.as_array().into_iter().flatten() {
                            if kv["key"] == key {
                                if let Some(s) = kv["value"]["stringValue"].as_str() {
                                    out.push(s.to_string());
                                }
                            }
                        }
                    } else {
                        walk(child, key, inside, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, key, inside_points, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, key, false, &mut out);
    out
}

// ---- expected.json ---------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub requests: ExpectedRequests,
    pub sessions: Vec<String>,
    pub metrics: BTreeMap<String, ExpectedMetric>,
    pub events: ExpectedEvents,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedRequests {
    pub logs: u64,
    pub metrics: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedMetric {
    pub unit: String,
    pub temporality: Vec<String>,
    pub values_summed: u64,
    pub total: f64,
    pub by_attributes: Vec<AttrGroup>,
    pub by_session: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttrGroup {
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedEvents {
    pub counts: BTreeMap<String, u64>,
    pub api_request: ApiRequests,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiRequests {
    pub count: u64,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    #[serde(default)]
    pub by_model: BTreeMap<String, Value>,
    #[serde(default)]
    pub by_session: BTreeMap<String, Value>,
}

impl Expected {
    pub fn load(path: &Path) -> Expected {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
    }

    pub fn metric(&self, name: &str) -> Option<&ExpectedMetric> {
        self.metrics.get(name)
    }

    /// Total of a metric, 0 when the set has no point of it.
    pub fn total(&self, name: &str) -> f64 {
        self.metrics.get(name).map_or(0.0, |m| m.total)
    }
}

impl ExpectedMetric {
    /// Sums `by_attributes` over every attribute but `key`: value of `key` (or `""` where the
    /// group has no such attribute) → sum.
    pub fn by_attribute(&self, key: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for g in &self.by_attributes {
            let k = g.attributes.get(key).cloned().unwrap_or_default();
            *out.entry(k).or_insert(0.0) += g.value;
        }
        out
    }
}
