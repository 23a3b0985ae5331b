//! What `tokentray setup` added to the settings file, key by key (issue 16), so that `--undo`
//! removes exactly that: a key the user added since stays, a key of ours the user changed by
//! hand stays and is named. Kept next to the settings file as `settings.json.tokentray-setup`,
//! with the text of tokentray's last write: while nobody else ever edited the file, undo puts the
//! original bytes back (the backup); once the user edited it, undo goes key by key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{read_optional, remove, sibling, write_atomic, SetupError};

/// One key tokentray set: where, what was there before (`None`: absent), what it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// `["env", "OTEL_EXPORTER_OTLP_PROTOCOL"]` or `["statusLine"]`.
    pub path: Vec<String>,
    pub before: Option<Value>,
    pub set: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Ledger {
    /// The file's text as tokentray last wrote it.
    pub written: String,
    /// Whether the file had the object tokentray's keys live in (`env` for Claude Code,
    /// `telemetry` for Gemini CLI, `[otel]` for Codex) before tokentray's first change.
    pub had_env: bool,
    /// Nobody else changed the file between tokentray's writes: the backup (the file before the
    /// first change) is then all that undo needs.
    #[serde(default)]
    pub edited_between: bool,
    pub entries: Vec<Entry>,
}

/// Where the ledger of `settings` lives: beside it, named `<file name>.tokentray-setup`
/// (`settings.json.tokentray-setup`).
pub fn ledger_path(settings: &Path) -> PathBuf {
    sibling(settings, ".tokentray-setup")
}

pub(super) fn load(settings: &Path) -> Result<Option<Ledger>, SetupError> {
    let path = ledger_path(settings);
    let Some(text) = read_optional(&path)? else { return Ok(None) };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SetupError::Read { path, reason: e.to_string() })
}

/// Records a write: `before` and `after` are the file's JSON objects (for a TOML file, its data
/// as JSON) around it; `parent` is the object the keys live in. A key already recorded keeps its
/// first `before` (what the user had before tokentray ever touched it).
pub(super) fn record(
    settings: &Path,
    before_text: Option<&str>,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    keys: &[Vec<String>],
    parent: &str,
) -> Result<(), SetupError> {
    let mut ledger = match load(settings)? {
        Some(mut l) => {
            l.edited_between |= before_text != Some(l.written.as_str());
            l
        }
        None => Ledger { had_env: before.get(parent).is_some(), ..Ledger::default() },
    };
    let written = super::read_optional(settings)?.unwrap_or_default();
    for key in keys {
        let Some(set) = get(after, key).cloned() else { continue };
        match ledger.entries.iter_mut().find(|e| &e.path == key) {
            Some(e) => e.set = set,
            None => ledger.entries.push(Entry {
                path: key.clone(),
                before: get(before, key).cloned(),
                set,
            }),
        }
    }
    ledger.written = written;
    let text = serde_json::to_string_pretty(&ledger)
        .map_err(|e| SetupError::Write { path: ledger_path(settings), reason: e.to_string() })?;
    write_atomic(&ledger_path(settings), &text)
}

/// Takes tokentray's keys out of `root` (the file as it is now): each back to what it was, unless
/// the user changed it since; those are returned by name and left alone. `parent` (the object
/// the keys live in) goes too when tokentray created it and it is empty now.
pub(super) fn revert(ledger: &Ledger, root: &mut Map<String, Value>, parent: &str) -> Vec<String> {
    let mut changed_by_hand = Vec::new();
    for e in ledger.entries.iter().rev() {
        if get(root, &e.path) != Some(&e.set) {
            changed_by_hand.push(e.path.join("."));
            continue;
        }
        match &e.before {
            Some(v) => set(root, &e.path, v.clone()),
            None => unset(root, &e.path),
        }
    }
    let parent_empty = matches!(root.get(parent), Some(Value::Object(m)) if m.is_empty());
    if !ledger.had_env && parent_empty {
        root.remove(parent);
    }
    changed_by_hand.reverse();
    changed_by_hand
}

pub(super) fn forget(settings: &Path) -> Result<(), SetupError> {
    let path = ledger_path(settings);
    if path.exists() {
        remove(&path)?;
    }
    Ok(())
}

pub(super) fn get<'a>(root: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(root.get(first)?, |v, k| v.get(k))
}

fn set(root: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut map = root;
    for k in parents {
        let entry = map.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(m) = entry else { return };
        map = m;
    }
    map.insert(last.clone(), value);
}

fn unset(root: &mut Map<String, Value>, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut map = root;
    for k in parents {
        let Some(Value::Object(m)) = map.get_mut(k) else { return };
        map = m;
    }
    map.remove(last);
}
