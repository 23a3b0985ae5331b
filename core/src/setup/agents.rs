//! `tokentray setup --agent codex|gemini` (issue 17): points the Codex CLI and the Gemini CLI at
//! tokentray through their own config files, with Claude Code's guarantees (the rest of the file
//! kept, a backup, `--dry-run`, `--undo`, a refusal on a file that does not parse).
//!
//! * Codex: the `[otel]` table of `~/.codex/config.toml` (`$CODEX_HOME/config.toml`): its log
//!   (`exporter`), trace (`trace_exporter`) and metrics (`metrics_exporter`) exporters. The file
//!   is edited with `toml_edit`, so the user's comments, order and formatting stay. Codex's
//!   metrics exporter defaults to `statsig` (OpenAI's own metrics endpoint), not to nothing: the
//!   plan says so when that is what it replaces.
//! * Gemini CLI: the `telemetry` object of `~/.gemini/settings.json` (`enabled`, `target:
//!   "local"`, `otlpEndpoint`, `otlpProtocol`, `logPrompts: false`).
//!
//! Key names as the CLIs read them (Codex 0.169 `OtelConfigToml`, Gemini CLI 0.61 settings) and
//! as measured on the wire: `shared/reference/other-agents-telemetry.md`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use toml_edit::DocumentMut;

use super::{
    apply_keys, json_object, ledger, read_optional, revert_edited, undo_with, write_atomic, Plan,
    Protocol, SetupError, Undone,
};
use crate::dashboard::Endpoints;

/// The coding agent whose settings `tokentray setup` edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// Claude Code: `env` in `~/.claude/settings.json` (the default).
    Claude,
    /// OpenAI's Codex CLI: `[otel]` in `~/.codex/config.toml`.
    Codex,
    /// Google's Gemini CLI: `telemetry` in `~/.gemini/settings.json`.
    Gemini,
}

impl Agent {
    /// The agent's name as its users know it.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Claude => "Claude Code",
            Agent::Codex => "Codex CLI",
            Agent::Gemini => "Gemini CLI",
        }
    }

    /// The object tokentray's keys live in.
    fn parent(self) -> &'static str {
        match self {
            Agent::Claude => "env",
            Agent::Codex => "otel",
            Agent::Gemini => "telemetry",
        }
    }
}

impl std::str::FromStr for Agent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "claude" | "claude-code" => Ok(Agent::Claude),
            "codex" => Ok(Agent::Codex),
            "gemini" | "gemini-cli" => Ok(Agent::Gemini),
            other => Err(format!("unknown agent '{other}' (claude, codex, gemini)")),
        }
    }
}

/// The settings file `setup --agent` edits for the user running this process: Claude Code's
/// (see [`super::user_settings_path`]), `$CODEX_HOME/config.toml` or `~/.codex/config.toml`,
/// `~/.gemini/settings.json`.
pub fn agent_settings_path(agent: Agent) -> Result<PathBuf, SetupError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match agent {
        Agent::Claude => super::user_settings_path(),
        Agent::Codex => {
            let codex_home = std::env::var_os("CODEX_HOME").map(PathBuf::from);
            codex_config_path(home.as_deref(), codex_home.as_deref())
        }
        Agent::Gemini => {
            home.map(|h| h.join(".gemini").join("settings.json")).ok_or(SetupError::NoHome)
        }
    }
}

/// `$CODEX_HOME/config.toml` when that is set (as Codex does), else `~/.codex/config.toml`.
pub(crate) fn codex_config_path(
    home: Option<&Path>,
    codex_home: Option<&Path>,
) -> Result<PathBuf, SetupError> {
    match (codex_home.filter(|d| !d.as_os_str().is_empty()), home) {
        (Some(dir), _) => Ok(dir.join("config.toml")),
        (None, Some(home)) => Ok(home.join(".codex").join("config.toml")),
        (None, None) => Err(SetupError::NoHome),
    }
}

/// What `setup --agent` would do to one agent's settings file.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPlan {
    /// The agent.
    pub agent: Agent,
    /// The file's text before and after, and the keys that change (`otel.metrics_exporter`).
    pub plan: Plan,
    /// Where the agent sends once this is applied, as `protocol → endpoint`.
    pub target: String,
    /// Settings of the user's this replaces, one sentence each (their endpoints, never their
    /// headers, which may hold credentials).
    pub replaced: Vec<String>,
}

/// Codex's three exporters: `[otel]` key, signal, OTLP/HTTP path.
const CODEX_EXPORTERS: [(&str, &str, &str); 3] = [
    ("exporter", "logs", "/v1/logs"),
    ("trace_exporter", "traces", "/v1/traces"),
    ("metrics_exporter", "metrics", "/v1/metrics"),
];

/// Gemini CLI's `otlpProtocol` for `protocol`: it has `grpc` and `http` (which sends OTLP/JSON).
fn gemini_protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf | Protocol::HttpJson => "http",
    }
}

/// Reads the agent's file and works out the change, without writing anything.
pub fn plan_agent(
    agent: Agent,
    path: &Path,
    endpoints: &Endpoints,
    protocol: Protocol,
) -> Result<AgentPlan, SetupError> {
    match agent {
        Agent::Claude => {
            let env = super::telemetry_env(endpoints, protocol);
            let plan = super::plan(path, &env, &super::managed_settings_paths())?;
            let target =
                format!("{} → http://{}", protocol.name(), grpc_or_http(endpoints, protocol));
            Ok(AgentPlan { agent, plan, target, replaced: Vec::new() })
        }
        Agent::Codex => plan_codex(path, endpoints, protocol),
        Agent::Gemini => plan_gemini(path, endpoints, protocol),
    }
}

fn grpc_or_http(endpoints: &Endpoints, protocol: Protocol) -> String {
    match protocol {
        Protocol::Grpc => endpoints.connectable_grpc(),
        Protocol::HttpProtobuf | Protocol::HttpJson => endpoints.connectable_http(),
    }
}

/// The `[otel]` exporter value for one signal, as data: `{ otlp-grpc = { endpoint } }` or
/// `{ otlp-http = { endpoint = ".../v1/<signal>", protocol = "binary" | "json" } }` (Codex's
/// HTTP endpoints are full per-signal URLs).
fn codex_exporter(endpoints: &Endpoints, protocol: Protocol, path: &str) -> Value {
    match protocol {
        Protocol::Grpc => {
            json!({ "otlp-grpc": { "endpoint": format!("http://{}", endpoints.connectable_grpc()) } })
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let body = if protocol == Protocol::HttpJson { "json" } else { "binary" };
            let endpoint = format!("http://{}{path}", endpoints.connectable_http());
            json!({ "otlp-http": { "endpoint": endpoint, "protocol": body } })
        }
    }
}

fn plan_codex(
    path: &Path,
    endpoints: &Endpoints,
    protocol: Protocol,
) -> Result<AgentPlan, SetupError> {
    let before = read_optional(path)?;
    let mut doc = match &before {
        None => DocumentMut::new(),
        Some(text) => text.parse::<DocumentMut>().map_err(|e| SetupError::InvalidToml {
            path: path.to_path_buf(),
            reason: one_line(&e.to_string()),
        })?,
    };
    let data = toml_data(before.as_deref());
    let otel = doc.entry("otel").or_insert(toml_edit::table());
    let Some(otel) = otel.as_table_like_mut() else {
        return Err(SetupError::NotATable { path: path.to_path_buf(), key: "otel".into() });
    };
    let mut changed_keys = Vec::new();
    let mut replaced = Vec::new();
    for (key, signal, url_path) in CODEX_EXPORTERS {
        let want = codex_exporter(endpoints, protocol, url_path);
        let current = data.get("otel").and_then(|o| o.get(key));
        if current == Some(&want) {
            continue;
        }
        match current {
            Some(old) => replaced.push(format!(
                "otel.{key} sent Codex's {signal} to {}; it now sends them to tokentray",
                describe_codex_exporter(old)
            )),
            None if key == "metrics_exporter" => replaced.push(
                "otel.metrics_exporter was not set, so Codex sent its metrics to its default \
                 exporter, statsig (OpenAI's own metrics endpoint); they now go to tokentray"
                    .to_string(),
            ),
            None => {}
        }
        let Some(value) = toml_value(&want) else { continue };
        otel.insert(key, toml_edit::Item::Value(value));
        changed_keys.push(format!("otel.{key}"));
    }
    let after =
        if changed_keys.is_empty() { before.clone().unwrap_or_default() } else { doc.to_string() };
    let target = match protocol {
        Protocol::Grpc => format!("otlp-grpc → http://{}", endpoints.connectable_grpc()),
        Protocol::HttpProtobuf | Protocol::HttpJson => format!(
            "otlp-http {} → http://{}/v1/{{logs,traces,metrics}}",
            if protocol == Protocol::HttpJson { "json" } else { "binary" },
            endpoints.connectable_http()
        ),
    };
    Ok(AgentPlan {
        agent: Agent::Codex,
        plan: Plan { path: path.to_path_buf(), before, after, changed_keys },
        target,
        replaced,
    })
}

/// An exporter setting of the user's in words: its kind and endpoint (`statsig`, `none`,
/// `otlp-http https://otel.example.com/v1/metrics`), never its headers.
fn describe_codex_exporter(v: &Value) -> String {
    match v {
        Value::String(kind) if kind == "statsig" => {
            "statsig (OpenAI's own metrics endpoint)".to_string()
        }
        Value::String(kind) => kind.clone(),
        Value::Object(m) => m
            .iter()
            .next()
            .map(|(kind, inner)| match inner.get("endpoint").and_then(Value::as_str) {
                Some(endpoint) => format!("{kind} {endpoint}"),
                None => kind.clone(),
            })
            .unwrap_or_else(|| "an empty exporter table".to_string()),
        other => other.to_string(),
    }
}

fn plan_gemini(
    path: &Path,
    endpoints: &Endpoints,
    protocol: Protocol,
) -> Result<AgentPlan, SetupError> {
    let before = read_optional(path)?;
    let mut root = match &before {
        None => Map::new(),
        Some(text) if text.trim().is_empty() => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(SetupError::NotAnObject { path: path.to_path_buf() }),
            Err(e) => {
                return Err(SetupError::InvalidJson {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        },
    };
    let endpoint = format!("http://{}", grpc_or_http(endpoints, protocol));
    let wanted = [
        ("enabled", json!(true)),
        ("target", json!("local")),
        ("otlpEndpoint", json!(endpoint)),
        ("otlpProtocol", json!(gemini_protocol(protocol))),
        ("logPrompts", json!(false)),
    ];
    let telemetry = root.entry("telemetry").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(telemetry) = telemetry else {
        return Err(SetupError::NotATable { path: path.to_path_buf(), key: "telemetry".into() });
    };
    let mut changed_keys = Vec::new();
    let mut replaced = Vec::new();
    for (key, value) in wanted {
        if telemetry.get(key) == Some(&value) {
            continue;
        }
        if let Some(old) = telemetry.get(key).filter(|_| key == "otlpEndpoint" || key == "target") {
            replaced.push(format!("telemetry.{key} was {old}"));
        }
        telemetry.insert(key.to_string(), value);
        changed_keys.push(format!("telemetry.{key}"));
    }
    let after = if changed_keys.is_empty() {
        before.clone().unwrap_or_default()
    } else {
        // Gemini CLI writes its settings with two-space indentation; so do we.
        let mut text = serde_json::to_string_pretty(&Value::Object(root))
            .map_err(|e| SetupError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
        text.push('\n');
        text
    };
    Ok(AgentPlan {
        agent: Agent::Gemini,
        plan: Plan { path: path.to_path_buf(), before, after, changed_keys },
        target: format!(
            "{} → {endpoint}",
            match gemini_protocol(protocol) {
                "http" => "http (OTLP/JSON)",
                other => other,
            }
        ),
        replaced,
    })
}

/// What one `setup --agent` did (or would find already done), in a sentence.
pub fn describe_agent(p: &AgentPlan) -> String {
    let (name, path, target) = (p.agent.name(), p.plan.path.display(), &p.target);
    let what = match p.agent {
        Agent::Claude => "its telemetry",
        Agent::Codex => "its logs, traces and metrics",
        Agent::Gemini => "its telemetry (prompts not logged)",
    };
    if p.plan.is_noop() {
        format!("{name} is already set up: {path} sends {what} to tokentray ({target}). Nothing to change.")
    } else {
        format!("{name} now sends {what} to tokentray ({target}): updated {path}. New sessions pick this up; restart running ones.")
    }
}

/// The protocol the agent's file already names, so running setup again keeps the user's choice.
pub fn current_agent_protocol(agent: Agent, path: &Path) -> Option<Protocol> {
    match agent {
        Agent::Claude => super::current_protocol(path),
        Agent::Codex => {
            let text = read_optional(path).ok()??;
            let data = toml_data(Some(&text));
            let exporter = data.get("otel")?.get("exporter")?;
            if exporter.get("otlp-grpc").is_some() {
                return Some(Protocol::Grpc);
            }
            match exporter.get("otlp-http")?.get("protocol")?.as_str()? {
                "json" => Some(Protocol::HttpJson),
                _ => Some(Protocol::HttpProtobuf),
            }
        }
        Agent::Gemini => {
            let text = read_optional(path).ok()??;
            let root: Value = serde_json::from_str(&text).ok()?;
            match root.get("telemetry")?.get("otlpProtocol")?.as_str()? {
                "grpc" => Some(Protocol::Grpc),
                "http" => Some(Protocol::HttpJson),
                _ => None,
            }
        }
    }
}

/// Writes the plan: the backup of the original first (only on the first change), then the file,
/// then what changed into the ledger (for a key-by-key undo after the user edits the file).
pub fn apply_agent(p: &AgentPlan) -> Result<(), SetupError> {
    let keys: Vec<Vec<String>> =
        p.plan.changed_keys.iter().map(|k| k.split('.').map(str::to_string).collect()).collect();
    let object = match p.agent {
        Agent::Claude => return super::apply(&p.plan),
        Agent::Codex => toml_data,
        Agent::Gemini => json_object,
    };
    apply_keys(&p.plan, &keys, p.agent.parent(), object)
}

/// `setup --agent … --undo`: the original bytes while nobody else edited the file since, else
/// only tokentray's keys go (each back to what it was), naming those changed by hand.
pub fn undo_agent(agent: Agent, path: &Path) -> Result<Undone, SetupError> {
    match agent {
        Agent::Claude => super::undo(path),
        Agent::Gemini => undo_with(path, |text, ledger, created| {
            revert_edited(path, text, ledger, created, Agent::Gemini.parent())
        }),
        Agent::Codex => {
            undo_with(path, |text, ledger, created| revert_edited_toml(path, text, ledger, created))
        }
    }
}

/// Undo on a Codex config the user edited after tokentray: only tokentray's `[otel]` keys go,
/// with the user's formatting everywhere else kept.
fn revert_edited_toml(
    path: &Path,
    text: &str,
    ledger: &ledger::Ledger,
    created: bool,
) -> Result<Undone, SetupError> {
    let mut doc = text.parse::<DocumentMut>().map_err(|e| SetupError::InvalidToml {
        path: path.to_path_buf(),
        reason: one_line(&e.to_string()),
    })?;
    let data = toml_data(Some(text));
    let mut changed_by_hand = Vec::new();
    for e in ledger.entries.iter().rev() {
        let [table, key] = e.path.as_slice() else { continue };
        if ledger::get(&data, &e.path) != Some(&e.set) {
            changed_by_hand.push(e.path.join("."));
            continue;
        }
        let Some(t) = doc.get_mut(table).and_then(|t| t.as_table_like_mut()) else { continue };
        match e.before.as_ref().and_then(toml_value) {
            Some(v) => {
                t.insert(key, toml_edit::Item::Value(v));
            }
            None => {
                t.remove(key);
            }
        }
    }
    let parent = Agent::Codex.parent();
    let parent_empty =
        doc.get(parent).and_then(|t| t.as_table_like()).is_some_and(|t| t.is_empty());
    if !ledger.had_env && parent_empty {
        doc.remove(parent);
    }
    if created && doc.is_empty() {
        super::remove(path)?;
        return Ok(Undone::Removed);
    }
    changed_by_hand.reverse();
    write_atomic(path, &doc.to_string())?;
    Ok(Undone::Reverted { changed_by_hand })
}

/// A TOML file's data as a JSON object (empty when absent or not TOML), for comparisons and the
/// ledger.
fn toml_data(text: Option<&str>) -> Map<String, Value> {
    let Some(Ok(table)) = text.map(|t| t.parse::<toml::Table>()) else { return Map::new() };
    match serde_json::to_value(table) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A JSON value as an inline TOML value (objects become inline tables); `None` for `null`.
fn toml_value(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            toml_edit::Value::Array(items.iter().filter_map(toml_value).collect())
        }
        Value::Object(m) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in m {
                if let Some(v) = toml_value(v) {
                    t.insert(k.as_str(), v);
                }
            }
            t.fmt();
            toml_edit::Value::InlineTable(t)
        }
    })
}

/// toml_edit's multi-line error (a caret under the column) as one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            otlp_grpc: "127.0.0.1:4317".into(),
            otlp_http: "0.0.0.0:4318".into(),
            metrics: "127.0.0.1:8889".into(),
        }
    }

    #[test]
    fn codex_home_moves_the_config_file() {
        let home = Path::new("/home/u");
        assert_eq!(
            codex_config_path(Some(home), None).expect("path"),
            PathBuf::from("/home/u/.codex/config.toml")
        );
        assert_eq!(
            codex_config_path(Some(home), Some(Path::new("/c"))).expect("path"),
            PathBuf::from("/c/config.toml")
        );
    }

    #[test]
    fn codex_http_exporters_get_full_per_signal_urls_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let original = "# my settings\nmodel = \"gpt-5-codex\" # pinned\n\n[otel]\nenvironment = \"dev\"\nmetrics_exporter = \"statsig\"\n";
        std::fs::write(&path, original).expect("write");
        let p = plan_codex(&path, &endpoints(), Protocol::HttpJson).expect("plan");
        assert!(p.plan.after.starts_with("# my settings\nmodel = \"gpt-5-codex\" # pinned\n"));
        let data = toml_data(Some(&p.plan.after));
        assert_eq!(
            data["otel"]["metrics_exporter"],
            json!({"otlp-http": {"endpoint": "http://127.0.0.1:4318/v1/metrics", "protocol": "json"}})
        );
        assert_eq!(
            data["otel"]["exporter"]["otlp-http"]["endpoint"],
            "http://127.0.0.1:4318/v1/logs"
        );
        assert_eq!(data["otel"]["environment"], "dev");
        assert!(p.replaced.iter().any(|r| r.contains("statsig")), "{:?}", p.replaced);
    }
}
