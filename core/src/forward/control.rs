//! What the CLI, the tray and the window change and read, from any process: the `[forward]`
//! section of the config file (`forward setup`), on/off and "the headers changed" (the
//! `settings` table), and the status in words.

use std::path::Path;

use serde::Serialize;
use toml_edit::{DocumentMut, Item, Table, Value};

use super::queue::{self, key, Queue, QueueStats};
use super::ForwardError;
use crate::config::{Config, ForwardConfig, ForwardProtocol};

/// What `tokentray forward setup` sets.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The collector's URL (`https://otel.example.com:4317`); must include the scheme.
    pub endpoint: String,
    /// How to send: OTLP/gRPC, OTLP/HTTP protobuf or Prometheus remote write.
    pub protocol: ForwardProtocol,
    /// A CA certificate (PEM) trusted besides the system roots; `None` removes `ca_file`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Replaces the configured attributes when `Some`.
    pub resource_attributes: Option<Vec<(String, String)>>,
    /// `[forward] developer`, `team`, `machine`: each replaces the configured one when `Some`
    /// (an empty string removes it).
    pub developer: Option<String>,
    /// `[forward] team`; see `developer`.
    pub team: Option<String>,
    /// `[forward] machine` (sent as `host.name`); see `developer`.
    pub machine: Option<String>,
}

/// Parses `team.id=payments,cost_center=42` (`OTEL_RESOURCE_ATTRIBUTES` syntax, values
/// percent-decoded).
pub fn parse_resource_attributes(text: &str) -> Result<Vec<(String, String)>, ForwardError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| ForwardError::Config(format!("'{item}' is not key=value (resource attributes are written team.id=payments,cost_center=42)")))?;
        let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy().into_owned();
        out.push((k.trim().to_string(), v));
    }
    Ok(out)
}

/// Writes `[forward]` into the config file, keeping everything else in it as it was.
pub fn setup(config_path: &Path, setup: &Setup) -> Result<(), ForwardError> {
    super::exporter::validate_endpoint(&setup.endpoint)?;
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(ForwardError::Config(format!("cannot read {}: {e}", config_path.display())))
        }
    };
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        ForwardError::Config(format!("{} is not valid TOML: {e}", config_path.display()))
    })?;
    if !doc.contains_table("forward") {
        doc.insert("forward", Item::Table(Table::new()));
    }
    let forward = doc["forward"].as_table_like_mut().ok_or_else(|| {
        ForwardError::Config("[forward] in the config file is not a table".into())
    })?;
    forward.insert("endpoint", Item::Value(Value::from(setup.endpoint.trim())));
    forward.insert("protocol", Item::Value(Value::from(setup.protocol.name())));
    match &setup.ca_file {
        Some(p) => {
            forward.insert("ca_file", Item::Value(Value::from(p.display().to_string())));
        }
        None => {
            forward.remove("ca_file");
        }
    }
    if let Some(attrs) = &setup.resource_attributes {
        let mut t = Table::new();
        for (k, v) in attrs {
            t.insert(k, Item::Value(Value::from(v.as_str())));
        }
        forward.remove("resource_attributes");
        if !t.is_empty() {
            forward.insert("resource_attributes", Item::Table(t));
        }
    }
    for (key, value) in
        [("developer", &setup.developer), ("team", &setup.team), ("machine", &setup.machine)]
    {
        match value.as_deref().map(str::trim) {
            Some("") => {
                forward.remove(key);
            }
            Some(v) => {
                forward.insert(key, Item::Value(Value::from(v)));
            }
            None => {}
        }
    }
    let new_text = doc.to_string();
    toml::from_str::<Config>(&new_text).map_err(|e| {
        ForwardError::Config(format!("the result would not be a valid config: {e}"))
    })?;
    crate::fsutil::write_atomic(config_path, &new_text).map_err(|e| {
        ForwardError::Config(format!("cannot write {}: {e}", config_path.display()))
    })?;
    Ok(())
}

/// Turns forwarding on or off. The store's writer queues from its next commit on; a forwarder
/// in this process starts sending at once, one in another process within 10 s. Turning it on
/// also lifts a pause for wrong credentials, to try again.
pub fn set_enabled(queue: &Queue, on: bool) -> Result<(), ForwardError> {
    queue::set(queue, key::ENABLED, if on { "1" } else { "0" })?;
    if on {
        queue::unset(queue, key::PAUSED)?;
        queue::unset(queue, key::RETRY_AT_NS)?;
    }
    super::run::nudge();
    Ok(())
}

/// Whether forwarding is turned on (`tokentray forward on`); off until it is first turned on.
pub fn is_enabled(queue: &Queue) -> Result<bool, ForwardError> {
    Ok(queue::get(queue, key::ENABLED)?.as_deref() == Some("1"))
}

/// Tells the running engine that the headers changed: it re-reads them and, if it had stopped
/// for wrong credentials, tries again.
pub fn headers_changed(queue: &Queue) -> Result<(), ForwardError> {
    queue::set(queue, key::HEADERS_CHANGED_NS, &crate::ingest::now_ns().to_string())?;
    queue::unset(queue, key::PAUSED)?;
    queue::unset(queue, key::RETRY_AT_NS)?;
    super::run::nudge();
    Ok(())
}

/// Everything `tokentray forward status` and the window show.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardStatus {
    /// Whether `[forward] endpoint` is set in the config.
    pub configured: bool,
    /// Whether forwarding is turned on (see [`set_enabled`]).
    pub enabled: bool,
    /// The configured collector URL; `None` when not configured.
    pub endpoint: Option<String>,
    /// The configured protocol's name as written in the config (`grpc`, `http/protobuf`, ...).
    pub protocol: &'static str,
    /// `not configured`, `off`, `up to date`, `sending`, `retrying`, `paused`.
    pub state: &'static str,
    /// The state in one sentence.
    pub summary: String,
    /// What is waiting to be sent.
    pub queue: QueueStats,
    /// Requests (OTLP) or series updates (remote write) delivered, ever.
    pub delivered: u64,
    /// Requests dropped because the collector rejected them as permanently invalid, ever.
    pub dropped_rejected: u64,
    /// Requests dropped to keep the queue within its size or age limit, ever.
    pub dropped_overflow: u64,
    /// When a send last succeeded, in nanoseconds since the Unix epoch; `None` if never.
    pub last_success_ns: Option<i64>,
    /// The last error, in words; `None` if there never was one.
    pub last_error: Option<String>,
    /// When `last_error` happened, in nanoseconds since the Unix epoch.
    pub last_error_ns: Option<i64>,
    /// Why requests were last dropped to keep the queue within its limits, in words (kept
    /// apart from `last_error`, which the next failed delivery replaces); `None` if never.
    pub last_drop: Option<String>,
    /// Why sending stopped for wrong credentials (the collector's error); `None` unless paused.
    /// Lifted by `forward on` or a headers change.
    pub paused: Option<String>,
    /// When the next retry is due, in nanoseconds since the Unix epoch; `None` unless a retry
    /// is scheduled in the future.
    pub retry_at_ns: Option<i64>,
    /// `[forward.resource_attributes]` from the config, added to what is sent.
    pub resource_attributes: Vec<(String, String)>,
    /// `developer`, `team`, `host.name` as they go out (configured or defaulted).
    pub identity: Vec<(String, String)>,
}

/// Builds the [`ForwardStatus`] from the config, the `settings` table and the queue, as of
/// `now_ns` (nanoseconds since the Unix epoch; a retry due before it no longer counts).
pub fn status(
    queue: &Queue,
    config: &ForwardConfig,
    now_ns: i64,
) -> Result<ForwardStatus, ForwardError> {
    let settings = queue::all_settings(queue)?;
    let num = |k: &str| settings.get(k).and_then(|v| v.parse::<i64>().ok());
    let stats = queue.stats()?;
    let configured = config.endpoint.is_some();
    let enabled = settings.get(key::ENABLED).map(String::as_str) == Some("1");
    let paused = settings.get(key::PAUSED).filter(|s| !s.is_empty()).cloned();
    let retry_at_ns = num(key::RETRY_AT_NS).filter(|&t| t > now_ns);
    let last_error = settings.get(key::LAST_ERROR).filter(|s| !s.is_empty()).cloned();
    let waiting = stats.requests + stats.changed_series;
    let failed_since_success =
        num(key::LAST_ERROR_NS).is_some_and(|e| num(key::LAST_SUCCESS_NS).is_none_or(|s| e > s));
    let host = config.endpoint.as_deref().unwrap_or("");
    let (state, summary) = if !configured {
        ("not configured", "Forwarding is not set up: run tokentray forward setup --endpoint URL --protocol grpc|http/protobuf|prometheus-remote-write".to_string())
    } else if !enabled {
        ("off", format!("Forwarding to {host} is off."))
    } else if let Some(p) = &paused {
        ("paused", format!("Paused: {p}"))
    } else if retry_at_ns.is_some() || (waiting > 0 && failed_since_success) {
        // Also while the retry is due or in flight: the state is "retrying" until an attempt
        // succeeds, not only while the forwarder waits out its backoff.
        (
            "retrying",
            format!("Retrying: {}", last_error.as_deref().unwrap_or("the last attempt failed")),
        )
    } else if waiting > 0 {
        ("sending", format!("Sending to {host}: {waiting} waiting."))
    } else {
        ("up to date", format!("Everything received has been forwarded to {host}."))
    };
    Ok(ForwardStatus {
        configured,
        enabled,
        endpoint: config.endpoint.clone(),
        protocol: config.protocol.name(),
        state,
        summary,
        queue: stats,
        delivered: num(key::DELIVERED).unwrap_or(0).max(0) as u64,
        dropped_rejected: num(key::DROPPED_REJECTED).unwrap_or(0).max(0) as u64,
        dropped_overflow: num(key::DROPPED_OVERFLOW).unwrap_or(0).max(0) as u64,
        last_success_ns: num(key::LAST_SUCCESS_NS),
        last_error,
        last_error_ns: num(key::LAST_ERROR_NS),
        last_drop: settings.get(key::LAST_DROP).filter(|s| !s.is_empty()).cloned(),
        paused,
        retry_at_ns,
        resource_attributes: config
            .resource_attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        identity: super::identity::attributes(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_writes_the_section_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\n[budgets]\ndaily = 20\n").expect("write");
        let s = Setup {
            endpoint: "https://otel.example.com:4317".into(),
            protocol: ForwardProtocol::Grpc,
            ca_file: None,
            resource_attributes: Some(
                parse_resource_attributes("team.id=payments, cost_center=4%202").expect("parses"),
            ),
            developer: Some("ana".into()),
            team: Some("payments".into()),
            machine: None,
        };
        setup(&path, &s).expect("writes");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# mine\n[budgets]\ndaily = 20\n"), "{text}");
        let c = Config::from_file(&path).expect("valid");
        assert_eq!(c.forward.endpoint.as_deref(), Some("https://otel.example.com:4317"));
        assert_eq!(
            c.forward.resource_attributes.get("cost_center").map(String::as_str),
            Some("4 2")
        );
        assert_eq!(c.forward.developer.as_deref(), Some("ana"));
        assert_eq!(c.forward.team.as_deref(), Some("payments"));
        assert_eq!(c.forward.machine, None);
        let bad = Setup { endpoint: "otel.example.com".into(), ..s };
        assert!(setup(&path, &bad).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            text,
            "a refused setup writes nothing"
        );
    }

    #[test]
    fn retrying_lasts_until_an_attempt_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = queue::Queue::open(&dir.path().join("db.sqlite3")).expect("open");
        let config = ForwardConfig {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..ForwardConfig::default()
        };
        q.outbox().push_raw(1, 0, &[0]);
        set_enabled(&q, true).expect("on");
        let state = || status(&q, &config, 1_000).expect("status").state;
        assert_eq!(state(), "sending");
        queue::set(&q, key::LAST_ERROR, "UNAVAILABLE from 127.0.0.1:1").expect("error");
        queue::set(&q, key::LAST_ERROR_NS, "500").expect("error time");
        queue::set(&q, key::RETRY_AT_NS, "900").expect("retry time");
        assert_eq!(
            state(),
            "retrying",
            "the retry is due (900 < now) and nothing succeeded since the error"
        );
        queue::set(&q, key::LAST_SUCCESS_NS, "800").expect("success time");
        assert_eq!(state(), "sending", "an attempt succeeded after the error");
    }
}
