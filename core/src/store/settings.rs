//! The `settings` table: small named values kept with the history rather than in the config
//! file, which any process (the engine, the CLI, the tray, the statusline) reads and changes.
//! Every key is named here, so the table's vocabulary has one place.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// Keys of the `settings` table.
pub(crate) mod key {
    /// Budget notifications are paused until this instant (unix ns).
    pub(crate) const ALERTS_PAUSED_UNTIL: &str = "alerts.paused_until_ns";
    /// The latest plan usage the statusline handed over (JSON).
    pub(crate) const PLAN_RATE_LIMITS: &str = "plan.rate_limits";
    /// Forwarding: on/off, counters and state (`forward.*`).
    pub(crate) const FORWARD_ENABLED: &str = "forward.enabled";
    pub(crate) const FORWARD_DELIVERED: &str = "forward.delivered";
    pub(crate) const FORWARD_DROPPED_REJECTED: &str = "forward.dropped_rejected";
    pub(crate) const FORWARD_DROPPED_OVERFLOW: &str = "forward.dropped_overflow";
    pub(crate) const FORWARD_LAST_SUCCESS_NS: &str = "forward.last_success_ns";
    pub(crate) const FORWARD_LAST_ERROR: &str = "forward.last_error";
    pub(crate) const FORWARD_LAST_ERROR_NS: &str = "forward.last_error_ns";
    pub(crate) const FORWARD_LAST_DROP: &str = "forward.last_drop";
    pub(crate) const FORWARD_PAUSED: &str = "forward.paused";
    pub(crate) const FORWARD_RETRY_AT_NS: &str = "forward.retry_at_ns";
    pub(crate) const FORWARD_HEADERS_CHANGED_NS: &str = "forward.headers_changed_ns";
    /// Prefix of every forwarding key, for the status.
    pub(crate) const FORWARD_PREFIX: &str = "forward.";
    /// Point attributes left off `/metrics` because their label name is reserved or tokentray's
    /// own (`__name__`, `job`, `le`, …): how many (once per series), and the first few names
    /// (comma-separated; label names have no commas).
    pub(crate) const DROPPED_LABELS: &str = "exposition.dropped_labels";
    pub(crate) const DROPPED_LABEL_NAMES: &str = "exposition.dropped_label_names";
}

/// How many distinct names [`note_dropped_labels`] keeps as examples.
const DROPPED_LABEL_EXAMPLES: usize = 5;

pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute(params![key, value])?;
    Ok(())
}

pub(crate) fn unset(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM settings WHERE key = ?1")?.execute([key])?;
    Ok(())
}

/// Adds `n` to a counter kept as text (absent counts as 0).
pub(crate) fn add_counter(conn: &Connection, key: &str, n: u64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
    )?
    .execute(params![key, n as i64])?;
    Ok(())
}

/// Whether a switch is on (`'1'`).
pub(crate) fn is_on(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    Ok(get(conn, key)?.as_deref() == Some("1"))
}

/// Every setting whose key starts with `prefix`.
pub(crate) fn with_prefix(
    conn: &Connection,
    prefix: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value FROM settings WHERE substr(key, 1, length(?1)) = ?1")?;
    let rows = stmt.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts the attributes of a new series left off its `/metrics` labels (their translated
/// `names`), keeping the first few distinct names as examples.
pub(crate) fn note_dropped_labels(conn: &Connection, names: &[String]) -> Result<(), StoreError> {
    add_counter(conn, key::DROPPED_LABELS, names.len() as u64)?;
    let stored = get(conn, key::DROPPED_LABEL_NAMES)?.unwrap_or_default();
    let mut examples: Vec<&str> = stored.split(',').filter(|n| !n.is_empty()).collect();
    if examples.len() >= DROPPED_LABEL_EXAMPLES {
        return Ok(());
    }
    for name in names {
        if examples.len() < DROPPED_LABEL_EXAMPLES && !examples.contains(&name.as_str()) {
            examples.push(name);
        }
    }
    set(conn, key::DROPPED_LABEL_NAMES, &examples.join(","))
}

/// What [`note_dropped_labels`] counted: how many, and the example names.
pub(crate) fn dropped_labels(conn: &Connection) -> Result<(u64, Vec<String>), StoreError> {
    let count = get(conn, key::DROPPED_LABELS)?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let names = get(conn, key::DROPPED_LABEL_NAMES)?
        .map(|v| v.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok((count, names))
}
