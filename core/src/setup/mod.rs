//! Points Claude Code at tokentray through its own settings file, so no shell profile needs
//! editing: `env` in `~/.claude/settings.json` (or `$CLAUDE_CONFIG_DIR/settings.json`) is applied
//! by Claude Code to every session, wherever it is started from.
//!
//! The edit is a merge: only the telemetry keys under `env` are written, every other key (and
//! the order of the keys) is kept. The file as it was before tokentray first touched it is kept
//! next to it ([`backup_path`]), so [`undo`] can put it back exactly, and a file that did not
//! exist is removed again. Writing is atomic (a sibling temporary file renamed over the file).
//! Managed settings (set by an administrator, which win over the user's file) are checked first:
//! if they fix one of these keys to another value, writing the user's file would change nothing,
//! and the user is told so instead.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::dashboard::Endpoints;

mod agents;
mod ledger;
pub use agents::{
    agent_settings_path, apply_agent, current_agent_protocol, describe_agent, plan_agent,
    undo_agent, Agent, AgentPlan,
};
pub use ledger::ledger_path;

/// Why `tokentray setup` (or its `--undo`) failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The settings file exists but does not parse as JSON.
    #[error("{path} is not valid JSON ({reason}); fix or move it, nothing was written")]
    InvalidJson {
        /// The settings file.
        path: PathBuf,
        /// The JSON parser's message.
        reason: String,
    },
    /// The settings file is JSON, but its top level (or its `env`) is not an object.
    #[error("{path} holds JSON but not an object at the top (or its \"env\" is not an object); nothing was written")]
    NotAnObject {
        /// The settings file.
        path: PathBuf,
    },
    /// A file (settings, backup or ledger) exists but cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O (or, for the ledger, JSON) error.
        reason: String,
    },
    /// A file (settings, backup, ledger or marker) cannot be written, renamed or removed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The I/O (or serialisation) error.
        reason: String,
    },
    /// Managed settings pin one of the telemetry keys to another value, so writing the
    /// user's file would change nothing.
    #[error("managed settings in {path} set {key}={value}, which wins over your settings file; ask whoever manages this machine to point it at tokentray ({wanted}), or run tokentray on the endpoint they chose")]
    Managed {
        /// The managed settings file.
        path: PathBuf,
        /// The `env` key it pins (`OTEL_EXPORTER_OTLP_ENDPOINT`, say).
        key: String,
        /// The value the managed file gives it.
        value: String,
        /// What tokentray would set, as `KEY=value`.
        wanted: String,
    },
    /// `--undo` found no ledger, no backup and no marker: setup never changed this file.
    #[error("nothing to undo: {path} was not changed by tokentray setup (no {backup})")]
    NothingToUndo {
        /// The settings file.
        path: PathBuf,
        /// Where its backup would be ([`backup_path`]).
        backup: PathBuf,
    },
    /// Neither `HOME` nor `CLAUDE_CONFIG_DIR` is set, so there is no settings file to find.
    #[error("no home directory; set HOME or CLAUDE_CONFIG_DIR")]
    NoHome,
    /// Codex's config file exists but does not parse as TOML.
    #[error("{path} is not valid TOML ({reason}); fix or move it, nothing was written")]
    InvalidToml {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message (line and column included).
        reason: String,
    },
    /// The key that holds tokentray's settings (`otel` in Codex's config, `telemetry` in Gemini
    /// CLI's settings) is there but is not a table/object.
    #[error("{path}: \"{key}\" is not a table, so tokentray cannot add its settings to it; nothing was written")]
    NotATable {
        /// The config file.
        path: PathBuf,
        /// The key (`otel`, `telemetry`).
        key: String,
    },
}

/// The OTLP protocol Claude Code should use; each has its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), sent to tokentray's OTLP/gRPC port.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`), sent to the OTLP/HTTP port.
    HttpProtobuf,
    /// OTLP over HTTP with JSON bodies (`http/json`), sent to the OTLP/HTTP port.
    HttpJson,
}

impl Protocol {
    /// The value Claude Code expects in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            other => Err(format!("unknown protocol '{other}' (grpc, http/protobuf, http/json)")),
        }
    }
}

/// Metrics every 10 s and events every 5 s: the tray and window follow a session closely,
/// where Claude Code's defaults (60 s, 5 s) would leave the spend a minute behind.
const METRIC_INTERVAL_MS: &str = "10000";
const LOGS_INTERVAL_MS: &str = "5000";

/// The `env` entries that send Claude Code's telemetry to `endpoints` over `protocol`.
pub fn telemetry_env(endpoints: &Endpoints, protocol: Protocol) -> Vec<(&'static str, String)> {
    let addr = match protocol {
        Protocol::Grpc => endpoints.connectable_grpc(),
        Protocol::HttpProtobuf | Protocol::HttpJson => endpoints.connectable_http(),
    };
    vec![
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".to_string()),
        ("OTEL_METRICS_EXPORTER", "otlp".to_string()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_string()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.name().to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS.to_string()),
        ("OTEL_LOGS_EXPORT_INTERVAL", LOGS_INTERVAL_MS.to_string()),
    ]
}

/// `$CLAUDE_CONFIG_DIR/settings.json` when that is set (as Claude Code does), else
/// `~/.claude/settings.json`.
pub(crate) fn settings_path(
    home: Option<&Path>,
    claude_config_dir: Option<&Path>,
) -> Result<PathBuf, SetupError> {
    match (claude_config_dir.filter(|d| !d.as_os_str().is_empty()), home) {
        (Some(dir), _) => Ok(dir.join("settings.json")),
        (None, Some(home)) => Ok(home.join(".claude").join("settings.json")),
        (None, None) => Err(SetupError::NoHome),
    }
}

/// The settings file of the user running this process (`HOME`, `CLAUDE_CONFIG_DIR`).
pub fn user_settings_path() -> Result<PathBuf, SetupError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let claude_dir = std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from);
    settings_path(home.as_deref(), claude_dir.as_deref())
}

/// Where Claude Code reads managed (administrator) settings on this platform;
/// `TOKENTRAY_CLAUDE_MANAGED_SETTINGS` (a path list) replaces them, for tests and unusual installs.
pub fn managed_settings_paths() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("TOKENTRAY_CLAUDE_MANAGED_SETTINGS") {
        return std::env::split_paths(&list).collect();
    }
    if cfg!(target_os = "macos") {
        vec![PathBuf::from("/Library/Application Support/ClaudeCode/managed-settings.json")]
    } else if cfg!(windows) {
        vec![
            PathBuf::from(r"C:\ProgramData\ClaudeCode\managed-settings.json"),
            PathBuf::from(r"C:\Program Files\ClaudeCode\managed-settings.json"),
        ]
    } else {
        vec![PathBuf::from("/etc/claude-code/managed-settings.json")]
    }
}

/// The original file, kept by the first change.
pub fn backup_path(settings: &Path) -> PathBuf {
    sibling(settings, ".tokentray-backup")
}

/// Left by the first change when there was no file: undo then removes the file.
fn absent_marker(settings: &Path) -> PathBuf {
    sibling(settings, ".tokentray-created")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// The protocol the settings file already names (`env.OTEL_EXPORTER_OTLP_PROTOCOL`), so that
/// running setup again (say, for `--statusline`) keeps the user's choice.
pub fn current_protocol(path: &Path) -> Option<Protocol> {
    let text = read_optional(path).ok()??;
    let root: Value = serde_json::from_str(&text).ok()?;
    root.get("env")?.get("OTEL_EXPORTER_OTLP_PROTOCOL")?.as_str()?.parse().ok()
}

/// What setup would do to one settings file.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The settings file the plan is for.
    pub path: PathBuf,
    /// The file's text now; `None` when it does not exist.
    pub before: Option<String>,
    /// The text it would have.
    pub after: String,
    /// Keys whose value changes (added or different), in the order written.
    pub changed_keys: Vec<String>,
}

impl Plan {
    /// Whether the file already says everything setup would write (nothing to change).
    pub fn is_noop(&self) -> bool {
        self.changed_keys.is_empty()
    }

    /// A unified diff of the change, for `--dry-run`.
    pub fn diff(&self) -> String {
        let before = self.before.as_deref().unwrap_or("");
        let old = if self.before.is_some() {
            self.path.display().to_string()
        } else {
            "/dev/null".to_string()
        };
        similar::TextDiff::from_lines(before, &self.after)
            .unified_diff()
            .context_radius(3)
            .header(&old, &self.path.display().to_string())
            .to_string()
    }
}

/// What one setup did, in a sentence for the CLI and the window.
pub fn describe(plan: &Plan, env: &[(&'static str, String)]) -> String {
    let protocol = env
        .iter()
        .find(|(k, _)| *k == "OTEL_EXPORTER_OTLP_PROTOCOL")
        .map_or("?", |(_, v)| v.as_str());
    let endpoint = env
        .iter()
        .find(|(k, _)| *k == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map_or("?", |(_, v)| v.as_str());
    if plan.is_noop() {
        format!("Claude Code is already set up: {} sends telemetry to tokentray ({protocol} → {endpoint}). Nothing to change.", plan.path.display())
    } else {
        format!("Claude Code now sends its telemetry to tokentray ({protocol} → {endpoint}): updated {}. New Claude Code sessions pick this up; restart running ones.", plan.path.display())
    }
}

/// Reads the settings and works out the merged file, without writing anything.
pub fn plan(
    path: &Path,
    env: &[(&'static str, String)],
    managed: &[PathBuf],
) -> Result<Plan, SetupError> {
    check_managed(managed, env)?;
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
    let env_map = root.entry("env").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(env_map) = env_map else {
        return Err(SetupError::NotAnObject { path: path.to_path_buf() });
    };
    let mut changed_keys = Vec::new();
    for (key, value) in env {
        if env_map.get(*key).and_then(Value::as_str) != Some(value.as_str()) {
            env_map.insert((*key).to_string(), Value::String(value.clone()));
            changed_keys.push((*key).to_string());
        }
    }
    let after = if changed_keys.is_empty() {
        before.clone().unwrap_or_default()
    } else {
        // Claude Code writes its settings with two-space indentation; so do we.
        let mut text = serde_json::to_string_pretty(&Value::Object(root))
            .map_err(|e| SetupError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
        text.push('\n');
        text
    };
    Ok(Plan { path: path.to_path_buf(), before, after, changed_keys })
}

/// Adds tokentray's `statusLine` command (`tokentray_statusline`, e.g. `/usr/bin/tokentray
/// statusline`) to a plan. A statusLine command the user already had keeps running: ours gets it
/// as `--after '<their command>'` and prints its line first. Nothing changes when ours is there.
pub fn with_statusline(mut plan: Plan, tokentray_statusline: &str) -> Result<Plan, SetupError> {
    let mut root = match serde_json::from_str::<Value>(&plan.after) {
        Ok(Value::Object(map)) => map,
        _ if plan.after.trim().is_empty() => Map::new(),
        _ => return Err(SetupError::NotAnObject { path: plan.path.clone() }),
    };
    let existing = root
        .get("statusLine")
        .and_then(|s| s.get("command"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let command = match existing {
        Some(c) if c.contains("tokentray") && c.contains(" statusline") => return Ok(plan),
        Some(c) => format!("{tokentray_statusline} --after {}", shell_quote(&c)),
        None => tokentray_statusline.to_string(),
    };
    root.insert("statusLine".into(), serde_json::json!({ "type": "command", "command": command }));
    let mut text = serde_json::to_string_pretty(&Value::Object(root))
        .map_err(|e| SetupError::Write { path: plan.path.clone(), reason: e.to_string() })?;
    text.push('\n');
    plan.after = text;
    plan.changed_keys.push("statusLine".into());
    Ok(plan)
}

/// `s` as one word for `sh`: single-quoted, with `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes the plan: the backup of the original first (only on the first change), then the file.
pub fn apply(plan: &Plan) -> Result<(), SetupError> {
    let keys: Vec<Vec<String>> = plan
        .changed_keys
        .iter()
        .map(|k| match k.as_str() {
            "statusLine" => vec![k.clone()],
            _ => vec!["env".to_string(), k.clone()],
        })
        .collect();
    apply_keys(plan, &keys, "env", json_object)
}

/// The file's JSON object, or an empty one (absent, empty or not an object).
fn json_object(text: Option<&str>) -> Map<String, Value> {
    match text.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    }
}

/// [`apply`] for any settings file: `keys` are the changed keys as paths inside `parent`'s
/// document, `object` reads the file's text as data (JSON, or TOML as JSON) for the ledger.
fn apply_keys(
    plan: &Plan,
    keys: &[Vec<String>],
    parent: &str,
    object: fn(Option<&str>) -> Map<String, Value>,
) -> Result<(), SetupError> {
    if plan.is_noop() {
        return Ok(());
    }
    let backup = backup_path(&plan.path);
    let marker = absent_marker(&plan.path);
    if !backup.exists() && !marker.exists() {
        match &plan.before {
            Some(original) => write_atomic(&backup, original)?,
            None => {
                let name = plan.path.file_name().unwrap_or_default().to_string_lossy();
                write_atomic(
                    &marker,
                    &format!(
                        "tokentray setup created {name}; `tokentray setup --undo` removes it\n"
                    ),
                )?
            }
        }
    }
    write_atomic(&plan.path, &plan.after)?;
    ledger::record(
        &plan.path,
        plan.before.as_deref(),
        &object(plan.before.as_deref()),
        &object(Some(&plan.after)),
        keys,
        parent,
    )
}

/// What [`undo`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    /// The original file is back.
    Restored,
    /// There was no file before setup: it is gone again.
    Removed,
    /// The file was edited since tokentray's last change: tokentray's keys were taken out one by
    /// one (everything else stays); these keys of ours had been changed by hand and stay too.
    Reverted {
        /// Our keys the user changed by hand, as dotted paths (`env.OTEL_METRICS_EXPORTER`).
        changed_by_hand: Vec<String>,
    },
}

/// Removes what `setup` added: the original bytes when the file is still as tokentray left it,
/// else key by key (see [`ledger`]).
pub fn undo(path: &Path) -> Result<Undone, SetupError> {
    undo_with(path, |text, ledger, created| revert_edited(path, text, ledger, created, "env"))
}

/// [`undo`] for any settings file; `revert` takes tokentray's keys out of a file edited since.
fn undo_with(
    path: &Path,
    revert: impl FnOnce(&str, &ledger::Ledger, bool) -> Result<Undone, SetupError>,
) -> Result<Undone, SetupError> {
    let backup = backup_path(path);
    let marker = absent_marker(path);
    if let Some(ledger) = ledger::load(path)? {
        let current = read_optional(path)?;
        let edited = ledger.edited_between || current.as_deref() != Some(ledger.written.as_str());
        if let Some(text) = current.filter(|_| edited) {
            let undone = revert(&text, &ledger, marker.exists())?;
            for leftover in [&backup, &marker] {
                if leftover.exists() {
                    remove(leftover)?;
                }
            }
            ledger::forget(path)?;
            return Ok(undone);
        }
    }
    ledger::forget(path)?;
    if let Some(original) = read_optional(&backup)? {
        write_atomic(path, &original)?;
        remove(&backup)?;
        return Ok(Undone::Restored);
    }
    if marker.exists() {
        if path.exists() {
            remove(path)?;
        }
        remove(&marker)?;
        return Ok(Undone::Removed);
    }
    Err(SetupError::NothingToUndo { path: path.to_path_buf(), backup })
}

/// Undo on a JSON file the user edited after tokentray: only tokentray's keys (in `parent`) go.
fn revert_edited(
    path: &Path,
    text: &str,
    ledger: &ledger::Ledger,
    created: bool,
    parent: &str,
) -> Result<Undone, SetupError> {
    let mut root = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(SetupError::NotAnObject { path: path.to_path_buf() }),
        Err(e) => {
            return Err(SetupError::InvalidJson { path: path.to_path_buf(), reason: e.to_string() })
        }
    };
    let changed_by_hand = ledger::revert(ledger, &mut root, parent);
    if created && root.is_empty() {
        remove(path)?;
        return Ok(Undone::Removed);
    }
    let mut out = serde_json::to_string_pretty(&Value::Object(root))
        .map_err(|e| SetupError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
    out.push('\n');
    write_atomic(path, &out)?;
    Ok(Undone::Reverted { changed_by_hand })
}

/// Refuses when managed settings pin one of our keys to a different value.
fn check_managed(managed: &[PathBuf], env: &[(&'static str, String)]) -> Result<(), SetupError> {
    for path in managed {
        let Some(text) = read_optional(path)? else { continue };
        // An unreadable managed file is Claude Code's problem to report; it fixes nothing here.
        let Ok(Value::Object(root)) = serde_json::from_str::<Value>(&text) else { continue };
        let Some(Value::Object(menv)) = root.get("env") else { continue };
        for (key, wanted) in env {
            if let Some(value) = menv.get(*key) {
                let value = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
                if &value != wanted {
                    return Err(SetupError::Managed {
                        path: path.clone(),
                        key: (*key).to_string(),
                        value,
                        wanted: format!("{key}={wanted}"),
                    });
                }
            }
        }
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<String>, SetupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SetupError::Read { path: path.to_path_buf(), reason: e.to_string() }),
    }
}

fn remove(path: &Path) -> Result<(), SetupError> {
    std::fs::remove_file(path)
        .map_err(|e| SetupError::Write { path: path.to_path_buf(), reason: e.to_string() })
}

fn write_atomic(path: &Path, text: &str) -> Result<(), SetupError> {
    crate::fsutil::write_atomic(path, text)
        .map_err(|e| SetupError::Write { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests;
