//! Reads of other concerns' data that report-like code needs from a [`Reader`]: settings (plan
//! limits, the alerts pause) and the spend per slot and model the budgets forecast from.

use rusqlite::{params, OptionalExtension};

use super::settings::{self, key};
use super::{alerts, Reader, StoreError};

impl Reader {
    /// The value of one `settings` key.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        settings::get(self.conn(), key)
    }

    /// Point attributes left off `/metrics` since the history began because their label name
    /// is reserved by Prometheus or set by tokentray (`__name__`, `job`, `le`, …): how many,
    /// counted once per series, and up to five of the label names.
    pub fn dropped_label_attributes(&self) -> Result<(u64, Vec<String>), StoreError> {
        settings::dropped_labels(self.conn())
    }

    /// When the alerts pause ends (unix ns), if one was set.
    pub(crate) fn alerts_paused_until_ns(&self) -> Result<Option<i64>, StoreError> {
        alerts::paused_until_ns(self.conn())
    }

    /// The latest plan usage the statusline stored (JSON), if any.
    pub(crate) fn plan_rate_limits_json(&self) -> Result<Option<String>, StoreError> {
        self.setting(key::PLAN_RATE_LIMITS)
    }

    /// The first slot with any usage, if any (where the history starts).
    pub(crate) fn first_usage_slot(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT MIN(slot) FROM usage", [], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// The sum of `metric` per (slot, model) in slots `[lo_slot, hi_slot)`; model `''` when the
    /// series has none.
    pub(crate) fn sum_by_slot_and_model(
        &self,
        metric: &str,
        lo_slot: i64,
        hi_slot: i64,
    ) -> Result<Vec<(i64, String, f64)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT u.slot, COALESCE(s.model, ''), SUM(u.value)
             FROM usage u JOIN series s ON s.id = u.series_id
             WHERE s.metric = ?3 AND u.slot >= ?1 AND u.slot < ?2
             GROUP BY u.slot, s.model",
        )?;
        let rows = stmt.query_map(params![lo_slot, hi_slot, metric], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
