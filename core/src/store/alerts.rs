//! Fired budget thresholds (`alerts_fired`) and the alerts pause. A threshold is claimed in one
//! transaction before anyone is notified, so two evaluators on the same data directory (the
//! tray app and `serve`) notify it once between them.

use rusqlite::{params, Connection, TransactionBehavior};

use super::settings::{self, key};
use super::StoreError;

/// Fired rows older than this are deleted: only the current periods matter, and a month is the
/// longest period.
const KEEP_NS: i64 = 100 * 86_400 * 1_000_000_000;

/// Read-write access to the alert state of one database, on a connection of its own (WAL lets
/// it write beside the engine's writer).
pub(crate) struct AlertTable {
    conn: Connection,
}

/// One claim of thresholds crossed in a budget's period.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim<'a> {
    pub budget_key: &'a str,
    pub period_start_ns: i64,
    pub crossed: &'a [u32],
    pub highest: u32,
    pub now_ns: i64,
    pub paused: bool,
}

pub(crate) fn paused_until_ns(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(settings::get(conn, key::ALERTS_PAUSED_UNTIL)?.and_then(|v| v.parse().ok()))
}

impl AlertTable {
    pub(crate) fn open(db_path: &std::path::Path) -> Result<AlertTable, StoreError> {
        Ok(AlertTable { conn: super::open_migrated(db_path)? })
    }

    /// Silences notifications until `until_ns`; `None` turns them back on.
    pub(crate) fn set_paused_until(&self, until_ns: Option<i64>) -> Result<(), StoreError> {
        match until_ns {
            Some(ns) => settings::set(&self.conn, key::ALERTS_PAUSED_UNTIL, &ns.to_string()),
            None => settings::unset(&self.conn, key::ALERTS_PAUSED_UNTIL),
        }
    }

    pub(crate) fn paused_until_ns(&self) -> Result<Option<i64>, StoreError> {
        paused_until_ns(&self.conn)
    }

    /// Thresholds already fired for a budget in the period starting at `period_start_ns`,
    /// ascending.
    pub(crate) fn fired(
        &self,
        budget_key: &str,
        period_start_ns: i64,
    ) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT threshold FROM alerts_fired WHERE budget_key = ?1 AND period_start_ns = ?2 ORDER BY threshold",
        )?;
        let rows = stmt.query_map(params![budget_key, period_start_ns], |r| r.get::<_, i64>(0))?;
        Ok(rows.filter_map(|r| r.ok()).filter_map(|t| u32::try_from(t).ok()).collect())
    }

    /// Records the crossed thresholds as fired and tells whether `highest` was claimed by this
    /// call. Lower thresholds crossed together with it, and everything claimed while paused,
    /// are stored as silent.
    pub(crate) fn claim(&mut self, c: Claim<'_>) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut claimed = false;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO alerts_fired (budget_key, period_start_ns, threshold, fired_at_ns, silent) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for &t in c.crossed {
                let silent = c.paused || t != c.highest;
                let n = insert.execute(params![
                    c.budget_key,
                    c.period_start_ns,
                    i64::from(t),
                    c.now_ns,
                    silent
                ])?;
                if t == c.highest && n == 1 {
                    claimed = true;
                }
            }
        }
        tx.execute(
            "DELETE FROM alerts_fired WHERE period_start_ns < ?1",
            [c.now_ns.saturating_sub(KEEP_NS)],
        )?;
        tx.commit()?;
        Ok(claimed)
    }
}
