//! Settings: defaults, then the TOML file, then `TOKENTRAY_*` environment variables; the CLI's
//! flags come last (applied by the binary).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Weekday;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file exists but could not be read (permissions, not a file, bad UTF-8).
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The config file is not valid TOML, has an unknown key or a value out of range.
    #[error("invalid config file {path}: {reason}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The TOML or validation error, as text.
        reason: String,
    },
    /// A `TOKENTRAY_*` environment variable holds a value that does not parse or is out of range.
    #[error("invalid value for {var}: {reason}")]
    Env {
        /// The variable's name (`TOKENTRAY_MAX_BODY_BYTES`, …).
        var: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Neither `$HOME` nor a platform home directory is known, so there is no default data or
    /// config directory.
    #[error("no home directory found; pass --data-dir and --config")]
    NoHome,
}

/// All settings: the TOML config file (`config.toml`) after `TOKENTRAY_*` overrides. Every table is
/// optional; missing keys take their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[listen]`: the addresses the three listeners bind to.
    pub listen: Listen,
    /// Where the database lives; the platform data directory when unset.
    pub data_dir: Option<PathBuf>,
    /// `[receiver]`: limits and access checks on incoming OTLP requests.
    pub receiver: ReceiverConfig,
    /// `[privacy]`: what of Claude Code's log events is kept.
    pub privacy: PrivacyConfig,
    /// `[budgets]`: spending limits and their alert thresholds.
    pub budgets: BudgetsConfig,
    /// `[alerts]`: where budget alerts are sent besides the log.
    pub alerts: AlertsConfig,
    /// `[forward]`: relaying received telemetry to a team collector or Prometheus.
    pub forward: ForwardConfig,
    /// `[metrics]`: the shape of the `/metrics` exposition (left out of the file when default).
    #[serde(skip_serializing_if = "MetricsConfig::is_default")]
    pub metrics: MetricsConfig,
    /// `[connections]`: timeouts and connection limits on every listening port.
    pub connections: ConnectionsConfig,
    /// Claude Code's local transcripts (issue 15).
    pub transcripts: crate::transcripts::TranscriptsConfig,
    /// Price overrides and new models, for requests no Claude Code cost covers.
    pub pricing: crate::pricing::PricingConfig,
    /// The file this was read from (set by [`Config::from_file`], even when the file did not
    /// exist yet), so that long-running parts can pick up `tokentray budget set` edits.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[listen]`: socket addresses (`host:port`) of the listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// OTLP/gRPC receiver; [`DEFAULT_OTLP_GRPC`] by default (`TOKENTRAY_OTLP_GRPC`).
    pub otlp_grpc: String,
    /// OTLP/HTTP receiver; [`DEFAULT_OTLP_HTTP`] by default (`TOKENTRAY_OTLP_HTTP`).
    pub otlp_http: String,
    /// Prometheus `/metrics`, the dashboard and its API; [`DEFAULT_METRICS`] by default
    /// (`TOKENTRAY_METRICS`).
    pub metrics: String,
}

/// Connection hygiene on each of the three ports (server/connections.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// A new connection must send its first bytes within this many seconds.
    pub header_timeout_seconds: f64,
    /// A connection silent this long (nothing read or written) while the server waits for the
    /// next request is closed (HTTP/1.1 keep-alive, HTTP/2 and gRPC alike).
    pub idle_timeout_seconds: f64,
    /// A request head must arrive whole within this many seconds, however steadily its bytes
    /// trickle in (a slow-loris client is never idle): on HTTP/1 each request's head, timed from
    /// when the server starts waiting for it (so it also bounds an idle keep-alive connection);
    /// on HTTP/2 and gRPC the connection preface and the first request's headers, timed from
    /// the accept.
    pub request_head_timeout_seconds: f64,
    /// HTTP/2 and gRPC connections are pinged after this many seconds without a frame from the
    /// client, and closed when a ping is not answered within 20 s (a peer that vanished without
    /// closing); 0 turns the pings off.
    pub http2_keepalive_seconds: f64,
    /// Concurrent connections per port; past it a new one is refused.
    pub max_per_port: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            header_timeout_seconds: 10.0,
            idle_timeout_seconds: 120.0,
            request_head_timeout_seconds: 30.0,
            http2_keepalive_seconds: 60.0,
            max_per_port: 1024,
        }
    }
}

/// `[receiver]`: what the OTLP receiver accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Largest request body accepted, before and after decompression.
    pub max_body_bytes: usize,
    /// Browser origins allowed to post telemetry (`http://localhost:3000`); none by default, so a
    /// web page cannot post fake spend to the local receiver.
    pub allowed_origins: Vec<String>,
    /// Headers every request must carry, as `NAME=@file:PATH` or `NAME=@keychain` (the value
    /// itself never goes here); `serve --require-header` adds to them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require_headers: Vec<String>,
    /// Attributes per data point, resource and log record (the OpenTelemetry SDKs' default).
    pub max_attributes: usize,
    /// Bytes of one attribute value of a metric point or resource (it becomes a label value).
    pub max_attribute_value_bytes: usize,
    /// Bytes of a point's attribute keys and values together with its resource's.
    pub max_label_set_bytes: usize,
}

/// `[privacy]`: what tokentray keeps of the text Claude Code sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Keep prompt and response text when Claude Code sends it (`OTEL_LOG_USER_PROMPTS=1`).
    /// Off: only lengths are kept.
    pub store_prompts: bool,
}

/// `[budgets]`: spending limits per local day, week and month, for all models together and/or
/// per model. Evaluated by [`crate::budget`].
///
/// ```toml
/// [budgets]
/// week_start = "monday"
/// daily = 20                                          # USD, thresholds 50, 80, 100 %
/// monthly = { limit_usd = 300, thresholds = [80, 100] }
/// [budgets.models.claude-opus-5-5]
/// daily = 10
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetsConfig {
    /// First day of the week for the weekly budget.
    pub week_start: WeekStart,
    /// Limit on all models' spend per local calendar day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<BudgetLimit>,
    /// Limit on all models' spend per local week (starting on `week_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weekly: Option<BudgetLimit>,
    /// Limit on all models' spend per local calendar month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly: Option<BudgetLimit>,
    /// Limits for one model (Claude Code's `model` attribute, e.g. `claude-opus-5-5`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelBudgets>,
    /// Limits for one agent's spend (`claude-code`, `codex`, `gemini-cli`): `[budgets.agents.codex]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, ModelBudgets>,
}

/// The limits of one model (or one agent, in `[budgets.agents]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelBudgets {
    /// Limit on this model's spend per local calendar day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<BudgetLimit>,
    /// Limit on this model's spend per local week (starting on `[budgets] week_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weekly: Option<BudgetLimit>,
    /// Limit on this model's spend per local calendar month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly: Option<BudgetLimit>,
}

/// Percentages of the limit that notify when crossed, unless a budget lists its own.
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];
/// Highest threshold accepted (10× the limit): beyond that a typo is likelier than intent.
pub const MAX_THRESHOLD: u32 = 1000;

/// One limit: `daily = 20` or `daily = { limit_usd = 20, thresholds = [50, 80, 100] }`.
/// Validated when read: a positive finite amount, thresholds 1..=1000 (sorted, deduplicated).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetLimit {
    /// The limit in USD; positive and finite.
    pub limit_usd: f64,
    /// Percentages of `limit_usd` that raise an alert when crossed, ascending and deduplicated,
    /// each 1..=[`MAX_THRESHOLD`]; [`DEFAULT_THRESHOLDS`] when none were given.
    pub thresholds: Vec<u32>,
}

impl BudgetLimit {
    /// A validated limit; `thresholds` empty means [`DEFAULT_THRESHOLDS`].
    pub fn new(limit_usd: f64, thresholds: &[u32]) -> Result<BudgetLimit, String> {
        if !limit_usd.is_finite() || limit_usd <= 0.0 {
            return Err(format!("a budget must be a positive amount of USD, not {limit_usd}"));
        }
        let mut t: Vec<u32> =
            if thresholds.is_empty() { DEFAULT_THRESHOLDS.to_vec() } else { thresholds.to_vec() };
        if let Some(bad) = t.iter().find(|&&p| p == 0 || p > MAX_THRESHOLD) {
            return Err(format!(
                "threshold {bad}% is out of range (1 to {MAX_THRESHOLD} percent of the limit)"
            ));
        }
        t.sort_unstable();
        t.dedup();
        Ok(BudgetLimit { limit_usd, thresholds: t })
    }
}

impl<'de> Deserialize<'de> for BudgetLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so that a typo inside the table is reported by
        // name instead of as "did not match any variant".
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            limit_usd: f64,
            #[serde(default)]
            thresholds: Vec<u32>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BudgetLimit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an amount in USD or a table { limit_usd = 20, thresholds = [50, 80, 100] }",
                )
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<BudgetLimit, E> {
                BudgetLimit::new(v, &[]).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<BudgetLimit, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<BudgetLimit, E> {
                self.visit_f64(v as f64)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<BudgetLimit, A::Error> {
                let full = Full::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                BudgetLimit::new(full.limit_usd, &full.thresholds).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// First day of the week, written as its English name (`"monday"`, `"sun"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekStart(pub Weekday);

impl Default for WeekStart {
    fn default() -> Self {
        WeekStart(Weekday::Mon)
    }
}

impl std::str::FromStr for WeekStart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<Weekday>()
            .map(WeekStart)
            .map_err(|_| format!("'{s}' is not a day of the week (monday … sunday)"))
    }
}

impl std::fmt::Display for WeekStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Weekday::Mon => "monday",
            Weekday::Tue => "tuesday",
            Weekday::Wed => "wednesday",
            Weekday::Thu => "thursday",
            Weekday::Fri => "friday",
            Weekday::Sat => "saturday",
            Weekday::Sun => "sunday",
        })
    }
}

impl Serialize for WeekStart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WeekStart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[alerts]`: where budget alerts go besides the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Desktop notifications (D-Bus `org.freedesktop.Notifications`). Unset: on in the tray app,
    /// off for `tokentray serve`; `true` turns them on for `serve` too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desktop: Option<bool>,
    /// A program to run per alert, as an argument list (no shell): `["notify-send", "{summary}",
    /// "{body}"]`. Placeholders: `{summary}`, `{body}`, `{period}`, `{model}`, `{threshold}`,
    /// `{percent}`, `{spent_usd}`, `{limit_usd}`, `{forecast_usd}`, `{reach_limit_at}`, `{json}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A URL to POST each alert to as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// `[forward]`: where to forward what tokentray receives (the team's collector or Prometheus).
/// Whether forwarding is on is not here but in the database (`tokentray forward on|off`, the
/// tray's checkbox), and the headers (tokens) are in the OS keychain, never in this file.
///
/// ```toml
/// [forward]
/// endpoint = "https://otel.example.com:4317"
/// protocol = "grpc"                     # or "http/protobuf", "prometheus-remote-write"
/// ca_file = "/etc/ssl/team-ca.pem"      # trusted besides the system roots
/// [forward.resource_attributes]
/// "team.id" = "payments"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// gRPC: the collector's address (`https://host:4317`). HTTP: the base URL, to which
    /// `/v1/metrics`, `/v1/logs`, `/v1/traces` are appended (as `OTEL_EXPORTER_OTLP_ENDPOINT`).
    /// Remote write: the full URL (`https://prometheus.example.com/api/v1/write`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Wire protocol to forward with; gRPC by default.
    pub protocol: ForwardProtocol,
    /// PEM file of a CA to trust besides the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Headers from a file (`OTEL_EXPORTER_OTLP_HEADERS` syntax) instead of the keychain, for
    /// machines without one. The file should be readable only by its owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_file: Option<PathBuf>,
    /// Added to every resource on the way out (labels in remote write), so the team can group
    /// by them: `team.id`, `cost_center`, `developer`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_attributes: BTreeMap<String, String>,
    /// Who the forwarded data is from (resource attribute `developer`); the OS user if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub developer: Option<String>,
    /// The developer's team (resource attribute `team`); none if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// This machine's name (resource attribute `host.name`); the host name if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// gzip request bodies (OTLP). Remote write always uses snappy, as its protocol says.
    pub gzip: bool,
    /// Per-request timeout in seconds (at least 1; connecting is capped at 10 s).
    pub timeout_seconds: u64,
    /// First retry delay; doubled per failure (with jitter) up to `retry_max_seconds`.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in seconds.
    pub retry_max_seconds: u64,
    /// The queue is bounded: beyond this size or age the oldest requests are dropped (and
    /// counted, and said in `tokentray forward status`).
    pub max_queue_mib: u64,
    /// Requests queued longer than this many hours are dropped (a week by default).
    pub max_queue_age_hours: u64,
    /// Forward traces too (metrics and logs always are). Off by default: span attributes are
    /// redacted like log attributes, but traces are the most likely place for text to hide.
    pub traces: bool,
    /// Remote write: re-send the totals of series that changed in the last
    /// `resend_window_hours` this often, as a scrape would, so the team's instant queries
    /// (which look back 5 minutes) keep seeing them between changes. 0: only on change.
    pub resend_interval_seconds: u64,
    /// How far back, in hours, a series must have changed to be re-sent every
    /// `resend_interval_seconds`.
    pub resend_window_hours: u64,
}

/// `[metrics]`: how `/metrics` is shaped. Only the exposition: the store and forwarding keep
/// every series whole.
///
/// ```toml
/// [metrics]
/// series_idle_hours = 24          # 0: every series stays, however old
/// drop_labels = ["session_id"]    # one exact total per remaining label set
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A series whose newest point (by its own timestamp) is older than this many hours leaves
    /// `/metrics` until its next point, which brings it back with its full total. Fractional
    /// values are allowed; 0 keeps every series.
    pub series_idle_hours: f64,
    /// Labels left out of every series; series that then look alike are added into one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_labels: Vec<String>,
    /// A header every request to the metrics listener (`/metrics`, the dashboard page and its
    /// API) must carry, as `NAME=@file:PATH` or `NAME=@keychain` (e.g.
    /// `Authorization=@file:/etc/tokentray/scrape-token`, the file Prometheus'
    /// `authorization.credentials_file` reads); off when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_header: Option<String>,
}

/// Default `[metrics] series_idle_hours`: a series idle for a day leaves `/metrics`.
pub(crate) const DEFAULT_SERIES_IDLE_HOURS: f64 = 24.0;

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            series_idle_hours: DEFAULT_SERIES_IDLE_HOURS,
            drop_labels: Vec::new(),
            require_header: None,
        }
    }
}

impl MetricsConfig {
    fn is_default(&self) -> bool {
        *self == MetricsConfig::default()
    }

    /// The shape `/metrics` takes from these settings.
    pub fn shape(&self) -> crate::exposition::shape::MetricsShape {
        crate::exposition::shape::MetricsShape::new(self.series_idle_hours, &self.drop_labels)
    }

    fn validate(&self) -> Result<(), String> {
        if !self.series_idle_hours.is_finite() || self.series_idle_hours < 0.0 {
            return Err(format!(
                "[metrics] series_idle_hours must be 0 or a positive number of hours, not {}",
                self.series_idle_hours
            ));
        }
        Ok(())
    }
}

/// How forwarded data is sent (`[forward] protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardProtocol {
    /// OTLP over gRPC (`grpc`), the default.
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// Prometheus remote write 1.0, snappy-compressed (`prometheus-remote-write`); metrics only.
    #[serde(rename = "prometheus-remote-write")]
    PrometheusRemoteWrite,
}

impl ForwardProtocol {
    /// The name as written in the config file and accepted by `tokentray forward`.
    pub fn name(self) -> &'static str {
        match self {
            ForwardProtocol::Grpc => "grpc",
            ForwardProtocol::HttpProtobuf => "http/protobuf",
            ForwardProtocol::PrometheusRemoteWrite => "prometheus-remote-write",
        }
    }
}

impl std::str::FromStr for ForwardProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "grpc" => Ok(ForwardProtocol::Grpc),
            "http/protobuf" | "http" => Ok(ForwardProtocol::HttpProtobuf),
            "prometheus-remote-write" | "remote-write" | "prometheusremotewrite" => {
                Ok(ForwardProtocol::PrometheusRemoteWrite)
            }
            other => Err(format!(
                "unknown protocol '{other}': use grpc, http/protobuf or prometheus-remote-write"
            )),
        }
    }
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            endpoint: None,
            protocol: ForwardProtocol::Grpc,
            ca_file: None,
            headers_file: None,
            resource_attributes: BTreeMap::new(),
            developer: None,
            team: None,
            machine: None,
            gzip: true,
            timeout_seconds: 10,
            retry_initial_ms: 1000,
            retry_max_seconds: 300,
            max_queue_mib: 256,
            max_queue_age_hours: 24 * 7,
            traces: false,
            resend_interval_seconds: 60,
            resend_window_hours: 24,
        }
    }
}

/// Default `[listen] otlp_grpc`: the standard OTLP/gRPC port, loopback only.
pub(crate) const DEFAULT_OTLP_GRPC: &str = "127.0.0.1:4317";
/// Default `[listen] otlp_http`: the standard OTLP/HTTP port, loopback only.
pub(crate) const DEFAULT_OTLP_HTTP: &str = "127.0.0.1:4318";
/// Default `[listen] metrics`: the Prometheus endpoint and dashboard, loopback only.
pub(crate) const DEFAULT_METRICS: &str = "127.0.0.1:8889";
/// Default `[receiver] max_body_bytes`: 16 MiB.
pub(crate) const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

impl Default for Listen {
    fn default() -> Self {
        Listen {
            otlp_grpc: DEFAULT_OTLP_GRPC.into(),
            otlp_http: DEFAULT_OTLP_HTTP.into(),
            metrics: DEFAULT_METRICS.into(),
        }
    }
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            max_body_bytes: DEFAULT_MAX_BODY,
            allowed_origins: Vec::new(),
            require_headers: Vec::new(),
            max_attributes: 128,
            max_attribute_value_bytes: 4096,
            max_label_set_bytes: 64 * 1024,
        }
    }
}

/// Platform directories (`~/.config/tokentray`, `~/.local/share/tokentray` on Linux).
pub(crate) fn project_dirs() -> Result<directories::ProjectDirs, ConfigError> {
    directories::ProjectDirs::from("dev", "tokentray", "tokentray").ok_or(ConfigError::NoHome)
}

/// How the followers of the config file (budgets, forwarding, the tray) tell that it changed:
/// its modification time and size, so that an edit within the clock's resolution that changes
/// the length still counts.
pub type FileStamp = (std::time::SystemTime, u64);

/// The stamp of `path`; `None` while the file is missing or unreadable.
pub fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Where the config file is read from by default: `config.toml` in the platform config directory
/// (`~/.config/tokentray/config.toml` on Linux).
pub fn default_config_path() -> Result<PathBuf, ConfigError> {
    Ok(project_dirs()?.config_dir().join("config.toml"))
}

impl Config {
    /// Reads the file if it exists (a missing file means defaults).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(ConfigError::Read { path: path.into(), reason: e.to_string() }),
        };
        config
            .metrics
            .validate()
            .map_err(|reason| ConfigError::Parse { path: path.into(), reason })?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Applies `TOKENTRAY_*` overrides from the given environment.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(
        &mut self,
        vars: I,
    ) -> Result<(), ConfigError> {
        for (var, value) in vars {
            let bad = |reason: String| ConfigError::Env { var: var.clone(), reason };
            match var.as_str() {
                "TOKENTRAY_OTLP_GRPC" => self.listen.otlp_grpc = value,
                "TOKENTRAY_OTLP_HTTP" => self.listen.otlp_http = value,
                "TOKENTRAY_METRICS" => self.listen.metrics = value,
                "TOKENTRAY_DATA_DIR" => self.data_dir = Some(PathBuf::from(value)),
                "TOKENTRAY_MAX_BODY_BYTES" => {
                    self.receiver.max_body_bytes = value.parse().map_err(|e| bad(format!("{e}")))?
                }
                "TOKENTRAY_ALLOWED_ORIGINS" => {
                    self.receiver.allowed_origins = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                "TOKENTRAY_SERIES_IDLE_HOURS" => {
                    self.metrics.series_idle_hours =
                        value.parse().map_err(|e| bad(format!("{e}")))?;
                    self.metrics.validate().map_err(bad)?;
                }
                "TOKENTRAY_STORE_PROMPTS" => {
                    self.privacy.store_prompts = match value.as_str() {
                        "1" | "true" | "yes" | "on" => true,
                        "0" | "false" | "no" | "off" | "" => false,
                        other => return Err(bad(format!("'{other}' is not a boolean"))),
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The data directory in effect.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(project_dirs()?.data_dir().to_path_buf()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[listen]\nmetrics = \"127.0.0.1:9999\"\n[privacy]\nstore_prompts = true\n",
        )
        .expect("write");
        let mut c = Config::from_file(&path).expect("parses");
        assert_eq!(c.listen.metrics, "127.0.0.1:9999");
        assert_eq!(c.listen.otlp_grpc, DEFAULT_OTLP_GRPC);
        assert!(c.privacy.store_prompts);
        c.apply_env([
            ("TOKENTRAY_METRICS".to_string(), "127.0.0.1:0".to_string()),
            ("TOKENTRAY_STORE_PROMPTS".into(), "0".into()),
        ])
        .expect("env");
        assert_eq!(c.listen.metrics, "127.0.0.1:0");
        assert!(!c.privacy.store_prompts);
        assert!(c
            .apply_env([("TOKENTRAY_MAX_BODY_BYTES".to_string(), "lots".to_string())])
            .is_err());
    }

    #[test]
    fn budgets_and_alerts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            r#"
[budgets]
week_start = "sunday"
daily = 20
monthly = { limit_usd = 300.5, thresholds = [100, 80, 80] }
[budgets.models.claude-opus-5-5]
weekly = { limit_usd = 10 }
[alerts]
command = ["notify-send", "{summary}", "{body}"]
webhook = "http://127.0.0.1:9/hook"
"#,
        )
        .expect("write");
        let c = Config::from_file(&path).expect("parses");
        assert_eq!(c.budgets.week_start, WeekStart(Weekday::Sun));
        assert_eq!(
            c.budgets.daily,
            Some(BudgetLimit { limit_usd: 20.0, thresholds: vec![50, 80, 100] })
        );
        assert_eq!(
            c.budgets.monthly,
            Some(BudgetLimit { limit_usd: 300.5, thresholds: vec![80, 100] })
        );
        assert_eq!(c.budgets.weekly, None);
        let opus = c.budgets.models.get("claude-opus-5-5").expect("model budget");
        assert_eq!(opus.weekly.as_ref().map(|b| b.limit_usd), Some(10.0));
        assert_eq!(c.alerts.command.len(), 3);
        assert_eq!(c.alerts.desktop, None);

        for (bad, needle) in [
            ("[budgets]\ndaily = -1\n", "positive"),
            ("[budgets]\ndaily = { limit_usd = 5, thresholds = [0] }\n", "threshold"),
            ("[budgets]\ndaily = { limit = 5 }\n", "limit"),
            ("[budgets]\nweek_start = \"someday\"\n", "someday"),
            ("[budgets]\nhourly = 5\n", "hourly"),
            ("[alerts]\nsound = true\n", "sound"),
        ] {
            std::fs::write(&path, bad).expect("write");
            let err = Config::from_file(&path).expect_err(bad);
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn metrics_shape_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let none = dir.path().join("none.toml");
        let default = Config::from_file(&none).expect("defaults").metrics.shape();
        assert_eq!(default.idle_after_ns, Some(24 * 3_600_000_000_000));
        std::fs::write(&path, "[metrics]\nseries_idle_hours = 0\ndrop_labels = [\"session.id\"]\n")
            .expect("write");
        let shape = Config::from_file(&path).expect("parses").metrics.shape();
        assert_eq!(
            (shape.idle_after_ns, shape.drop_labels),
            (None, vec!["session_id".to_string()])
        );
        std::fs::write(&path, "[metrics]\nseries_idle_hours = -1\n").expect("write");
        let err = Config::from_file(&path).expect_err("negative hours");
        assert!(err.to_string().contains("series_idle_hours"), "{err}");
        let mut c = Config::default();
        c.apply_env([("TOKENTRAY_SERIES_IDLE_HOURS".to_string(), "0.5".to_string())]).expect("env");
        assert_eq!(c.metrics.shape().idle_after_ns, Some(1_800_000_000_000));
        assert!(c
            .apply_env([("TOKENTRAY_SERIES_IDLE_HOURS".to_string(), "NaN".to_string())])
            .is_err());
    }

    #[test]
    fn missing_file_is_defaults_and_typos_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = dir.path().join("none.toml");
        assert_eq!(
            Config::from_file(&none).expect("defaults"),
            Config { source: Some(none.clone()), ..Config::default() }
        );
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[listen]\nmetric = \"x\"\n").expect("write");
        let err = Config::from_file(&path).expect_err("unknown key");
        assert!(err.to_string().contains("metric"), "{err}");
    }
}
