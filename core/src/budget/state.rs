//! Fired thresholds and the pause, in the history database (tables of schema v2).
//!
//! The writer thread owns the telemetry connection; this is a second read-write connection
//! (WAL allows it) that only touches `alerts_fired` and `settings`. A threshold is claimed in
//! one transaction before anyone is notified, so two evaluators on the same data directory
//! (the tray app and `serve`) notify it once between them.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::BudgetError;
use crate::store::{self, schema, DB_FILE};

const PAUSED_UNTIL: &str = "alerts.paused_until_ns";
/// Fired rows older than this are deleted: only the current periods matter, and a month is the
/// longest period.
const KEEP_NS: i64 = 100 * 86_400 * 1_000_000_000;

/// Read-write access to the alert state of one data directory.
pub struct AlertState {
    conn: Connection,
}

pub(crate) fn read_paused_until(conn: &Connection) -> Result<Option<i64>, BudgetError> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [PAUSED_UNTIL], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()))
}

impl AlertState {
    /// Opens the database file (`<data dir>/tokentray.sqlite3`), migrating it if needed.
    pub fn open(db_path: &Path) -> Result<AlertState, BudgetError> {
        let mut conn = store::connect(db_path)?;
        schema::migrate(&mut conn)?;
        Ok(AlertState { conn })
    }

    /// Opens the database of a data directory, creating the directory on a first run.
    pub fn open_dir(data_dir: &Path) -> Result<AlertState, BudgetError> {
        std::fs::create_dir_all(data_dir).map_err(|e| store::StoreError::DataDir {
            path: data_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        AlertState::open(&data_dir.join(DB_FILE))
    }

    /// Silences notifications until `until`; `None` turns them back on. Thresholds crossed
    /// while paused are recorded as handled and not notified later.
    pub fn pause_until(&self, until: Option<DateTime<Utc>>) -> Result<(), BudgetError> {
        match until.and_then(|t| t.timestamp_nanos_opt()) {
            Some(ns) => {
                self.conn.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![PAUSED_UNTIL, ns.to_string()],
                )?;
            }
            None => {
                self.conn.execute("DELETE FROM settings WHERE key = ?1", [PAUSED_UNTIL])?;
            }
        }
        Ok(())
    }

    /// When the pause ends, if one was set (possibly already over).
    pub fn paused_until(&self) -> Result<Option<DateTime<Utc>>, BudgetError> {
        Ok(read_paused_until(&self.conn)?.map(|ns| Utc.timestamp_nanos(ns)))
    }

    pub fn is_paused(&self, now: DateTime<Utc>) -> Result<bool, BudgetError> {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        Ok(read_paused_until(&self.conn)?.is_some_and(|until| now_ns < until))
    }

    /// Thresholds already fired (notified or marked) for a budget in the period starting at
    /// `period_start_ns`, ascending.
    pub fn fired(&self, budget_key: &str, period_start_ns: i64) -> Result<Vec<u32>, BudgetError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT threshold FROM alerts_fired WHERE budget_key = ?1 AND period_start_ns = ?2 ORDER BY threshold")?;
        let rows = stmt.query_map(params![budget_key, period_start_ns], |r| r.get::<_, i64>(0))?;
        Ok(rows.filter_map(|r| r.ok()).filter_map(|t| u32::try_from(t).ok()).collect())
    }

    /// Records `crossed` thresholds as fired and tells whether `highest` was claimed by this
    /// call, i.e. whether the caller is the one to notify it. Lower thresholds crossed together
    /// with it, and everything claimed while `paused`, are stored as silent.
    pub(crate) fn claim(
        &mut self,
        budget_key: &str,
        period_start_ns: i64,
        crossed: &[u32],
        highest: u32,
        now_ns: i64,
        paused: bool,
    ) -> Result<bool, BudgetError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut claimed = false;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO alerts_fired (budget_key, period_start_ns, threshold, fired_at_ns, silent) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for &t in crossed {
                let silent = paused || t != highest;
                let n = insert.execute(params![
                    budget_key,
                    period_start_ns,
                    i64::from(t),
                    now_ns,
                    silent
                ])?;
                if t == highest && n == 1 {
                    claimed = true;
                }
            }
        }
        tx.execute(
            "DELETE FROM alerts_fired WHERE period_start_ns < ?1",
            [now_ns.saturating_sub(KEEP_NS)],
        )?;
        tx.commit()?;
        Ok(claimed)
    }
}
