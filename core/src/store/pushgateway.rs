//! Pushed groups (`crate::pushgateway`): one row per grouping key with its families as JSON and
//! the two push times. A push is one transaction, so a refused or failed one changes nothing
//! but the group's failure time. Rows leave only by `DELETE` from the pusher: the idle rule of
//! `[metrics] series_idle_hours` applies to the `series` table, never here.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use super::StoreError;
use crate::pushgateway::{GroupingKey, PushError, PushedFamily, PushedGroup};

pub(crate) const MIGRATION: &str = r#"
    CREATE TABLE pushed_groups (
        id                   INTEGER PRIMARY KEY,   -- order of first push, the exposition's order
        grouping             TEXT NOT NULL UNIQUE,  -- JSON object of the grouping labels, sorted
        families             TEXT NOT NULL,         -- JSON array of pushgateway::PushedFamily
        push_time_ns         INTEGER NOT NULL,
        push_failure_time_ns INTEGER NOT NULL DEFAULT 0
    );
"#;

/// The pushed groups of one history; its own connection, beside the writer thread (a push is
/// small and rare; WAL lets both write in turn).
pub(crate) struct PushGroups {
    inner: Mutex<Inner>,
}

/// The connection and what the table last read back: every scrape shows the groups, pushes are
/// rare, and only this engine writes the table (one engine per data directory), so a scrape reads
/// SQLite only after a push or delete changed it.
struct Inner {
    conn: Connection,
    cached: Option<Vec<PushedGroup>>,
}

/// What became of a push.
#[derive(Debug)]
pub(crate) enum PushOutcome {
    Stored,
    /// Refused by the check; only the group's failure time changed.
    Refused(PushError),
}

impl PushGroups {
    pub(crate) fn open(db: &Path) -> Result<PushGroups, StoreError> {
        let inner = Inner { conn: super::open_migrated(db)?, cached: None };
        Ok(PushGroups { inner: Mutex::new(inner) })
    }

    /// Every group, in order of first push.
    pub(crate) fn groups(&self) -> Result<Vec<PushedGroup>, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(groups) = &inner.cached {
            return Ok(groups.clone());
        }
        let groups = all_groups(&inner.conn)?;
        inner.cached = Some(groups.clone());
        Ok(groups)
    }

    /// Stores `families` as `key`'s group once `check` accepts them given the group's current
    /// families and every group: `check` returns what the group holds afterwards.
    pub(crate) fn push(
        &self,
        key: &GroupingKey,
        now_ns: i64,
        check: impl FnOnce(
            Option<&[PushedFamily]>,
            &[PushedGroup],
        ) -> Result<Vec<PushedFamily>, PushError>,
    ) -> Result<PushOutcome, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        inner.cached = None;
        let tx = inner.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let all = all_groups(&tx)?;
        let current = all.iter().find(|g| &g.key == key).map(|g| g.families.as_slice());
        let grouping = key.canonical();
        match check(current, &all) {
            Ok(families) => {
                let json = serde_json::to_string(&families)
                    .map_err(|e| StoreError::Encode(e.to_string()))?;
                tx.execute(
                    "INSERT INTO pushed_groups (grouping, families, push_time_ns) VALUES (?1, ?2, ?3)
                     ON CONFLICT (grouping) DO UPDATE SET families = excluded.families,
                         push_time_ns = excluded.push_time_ns",
                    params![grouping, json, now_ns],
                )?;
                tx.commit()?;
                Ok(PushOutcome::Stored)
            }
            Err(refusal) => {
                tx.execute(
                    "UPDATE pushed_groups SET push_failure_time_ns = ?2 WHERE grouping = ?1",
                    params![grouping, now_ns],
                )?;
                tx.commit()?;
                Ok(PushOutcome::Refused(refusal))
            }
        }
    }

    /// Removes `key`'s group; whether there was one.
    pub(crate) fn delete(&self, key: &GroupingKey) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        inner.cached = None;
        let n = inner
            .conn
            .execute("DELETE FROM pushed_groups WHERE grouping = ?1", [key.canonical()])?;
        Ok(n > 0)
    }
}

fn all_groups(conn: &Connection) -> Result<Vec<PushedGroup>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT grouping, families, push_time_ns, push_failure_time_ns FROM pushed_groups ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut groups = Vec::new();
    while let Some(r) = rows.next()? {
        let grouping: String = r.get(0)?;
        let families: String = r.get(1)?;
        let labels: BTreeMap<String, String> = serde_json::from_str(&grouping)
            .map_err(|e| StoreError::Encode(format!("pushed group {grouping}: {e}")))?;
        let families: Vec<PushedFamily> = serde_json::from_str(&families)
            .map_err(|e| StoreError::Encode(format!("pushed group {grouping}: {e}")))?;
        groups.push(PushedGroup {
            key: GroupingKey::from_labels(labels),
            families,
            push_time_ns: r.get(2)?,
            push_failure_time_ns: r.get(3)?,
        });
    }
    Ok(groups)
}
