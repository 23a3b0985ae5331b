//! Fired thresholds and the pause, kept in the history database by the store
//! ([`crate::store::alerts`]); this side speaks in budget terms (instants, `BudgetError`).

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};

use super::BudgetError;
use crate::store::alerts::{AlertTable, Claim};
use crate::store::{self, DB_FILE};

/// Read-write access to the alert state of one data directory.
pub struct AlertState {
    table: AlertTable,
}

impl AlertState {
    /// Opens the database file (`<data dir>/tokentray.sqlite3`), migrating it if needed.
    pub fn open(db_path: &Path) -> Result<AlertState, BudgetError> {
        Ok(AlertState { table: AlertTable::open(db_path)? })
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
        Ok(self.table.set_paused_until(until.and_then(|t| t.timestamp_nanos_opt()))?)
    }

    /// When the pause ends, if one was set (possibly already over).
    pub fn paused_until(&self) -> Result<Option<DateTime<Utc>>, BudgetError> {
        Ok(self.table.paused_until_ns()?.map(|ns| Utc.timestamp_nanos(ns)))
    }

    /// Whether alerts are paused at `now`.
    pub fn is_paused(&self, now: DateTime<Utc>) -> Result<bool, BudgetError> {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        Ok(self.table.paused_until_ns()?.is_some_and(|until| now_ns < until))
    }

    /// Thresholds already fired (notified or marked) for a budget in the period starting at
    /// `period_start_ns`, ascending.
    pub(crate) fn fired(
        &self,
        budget_key: &str,
        period_start_ns: i64,
    ) -> Result<Vec<u32>, BudgetError> {
        Ok(self.table.fired(budget_key, period_start_ns)?)
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
        Ok(self.table.claim(Claim {
            budget_key,
            period_start_ns,
            crossed,
            highest,
            now_ns,
            paused,
        })?)
    }
}
