//! The persistent side of forwarding as the forwarder sees it: the store's outbox (the queue of
//! requests for OTLP and the set of changed series for remote write, filled by the writer in
//! the transaction that stores the data; [`crate::store::outbox`]) and the forwarding state
//! shown by `tokentray forward status` (the `settings` table, so any process can read and
//! change it). Every statement is the store's; this wrapper speaks `ForwardError`.

use std::collections::BTreeMap;
use std::path::Path;

use super::ForwardError;
use crate::store::outbox::Outbox;
pub use crate::store::outbox::{QueueStats, QueuedBatch, RowValue, Trimmed};

/// Keys of the forwarding state in the `settings` table.
pub(crate) mod key {
    use crate::store::settings::key;
    pub(crate) const ENABLED: &str = key::FORWARD_ENABLED;
    pub(crate) const DELIVERED: &str = key::FORWARD_DELIVERED;
    pub(crate) const DROPPED_REJECTED: &str = key::FORWARD_DROPPED_REJECTED;
    pub(crate) const DROPPED_OVERFLOW: &str = key::FORWARD_DROPPED_OVERFLOW;
    pub(crate) const LAST_SUCCESS_NS: &str = key::FORWARD_LAST_SUCCESS_NS;
    pub(crate) const LAST_ERROR: &str = key::FORWARD_LAST_ERROR;
    pub(crate) const LAST_ERROR_NS: &str = key::FORWARD_LAST_ERROR_NS;
    pub(crate) const LAST_DROP: &str = key::FORWARD_LAST_DROP;
    pub(crate) const PAUSED: &str = key::FORWARD_PAUSED;
    pub(crate) const RETRY_AT_NS: &str = key::FORWARD_RETRY_AT_NS;
    pub(crate) const HEADERS_CHANGED_NS: &str = key::FORWARD_HEADERS_CHANGED_NS;
}

/// A connection to the store's outbox and the forwarding state, for the forwarder and the
/// commands that read or change it.
pub struct Queue {
    outbox: Outbox,
}

impl Queue {
    /// Opens the history database at `db_path` (migrating it if needed).
    pub fn open(db_path: &Path) -> Result<Queue, ForwardError> {
        Ok(Queue { outbox: Outbox::open(db_path)? })
    }

    /// SQLite's `data_version`: changes whenever another connection (the store's writer, a
    /// `tokentray forward on` in another process) committed something. One cheap read that lets
    /// an idle forwarder skip everything else.
    pub fn data_version(&self) -> Result<i64, ForwardError> {
        Ok(self.outbox.data_version()?)
    }

    /// The oldest queued requests of one signal (the oldest request's), up to `max_bytes`
    /// (always at least one request).
    pub(crate) fn next_batch(&self, max_bytes: usize) -> Result<Option<QueuedBatch>, ForwardError> {
        Ok(self.outbox.next_batch(max_bytes)?)
    }

    /// Removes delivered (or dropped) requests and updates the counters in one transaction.
    pub fn remove(
        &self,
        ids: &[i64],
        counter: &str,
        now_ns: i64,
        success: bool,
    ) -> Result<(), ForwardError> {
        Ok(self.outbox.remove(ids, counter, now_ns, success)?)
    }

    /// Keeps the queue within `max_bytes` and `max_age_ns`, oldest out first; what `describe`
    /// says of a drop is stored with it (see `Outbox::trim`).
    pub fn trim(
        &self,
        max_bytes: u64,
        max_age_ns: i64,
        now_ns: i64,
        describe: impl FnOnce(&Trimmed) -> String,
    ) -> Result<Trimmed, ForwardError> {
        Ok(self.outbox.trim(max_bytes, max_age_ns, now_ns, describe)?)
    }

    /// How much is queued: requests, their bytes, when the oldest was queued, changed series.
    pub fn stats(&self) -> Result<QueueStats, ForwardError> {
        Ok(self.outbox.stats()?)
    }

    /// Queues every series for remote write (when it is turned on, so the team's Prometheus
    /// gets all totals, not only those that change from now on).
    pub(crate) fn mark_all_changed(&self) -> Result<(), ForwardError> {
        Ok(self.outbox.mark_all_changed()?)
    }

    /// Queues again every series that changed since `since_ns`. Returns how many were queued.
    pub(crate) fn mark_changed_since(&self, since_ns: i64) -> Result<usize, ForwardError> {
        Ok(self.outbox.mark_changed_since(since_ns)?)
    }

    /// Up to `max` changed rows with their current totals, read in one snapshot, and the queue
    /// entries they account for (to remove once delivered).
    pub(crate) fn changed_rows(
        &self,
        max: usize,
    ) -> Result<(Vec<RowValue>, Vec<i64>), ForwardError> {
        Ok(self.outbox.changed_rows(max)?)
    }

    /// Removes delivered changed-series entries (a newer change of the same series has a newer
    /// seq and stays).
    pub(crate) fn remove_changed(&self, seqs: &[i64], now_ns: i64) -> Result<(), ForwardError> {
        Ok(self.outbox.remove_changed(seqs, now_ns)?)
    }

    /// Forgets every changed series (when remote write is turned off, nothing is due any more).
    pub(crate) fn clear_changed(&self) -> Result<(), ForwardError> {
        Ok(self.outbox.clear_changed()?)
    }

    #[cfg(test)]
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

pub(crate) fn get(queue: &Queue, key: &str) -> Result<Option<String>, ForwardError> {
    Ok(queue.outbox.setting(key)?)
}

pub(crate) fn set(queue: &Queue, key: &str, value: &str) -> Result<(), ForwardError> {
    Ok(queue.outbox.set_setting(key, value)?)
}

pub(crate) fn unset(queue: &Queue, key: &str) -> Result<(), ForwardError> {
    Ok(queue.outbox.unset_setting(key)?)
}

/// Every `forward.*` setting, for the status.
pub(crate) fn all_settings(queue: &Queue) -> Result<BTreeMap<String, String>, ForwardError> {
    Ok(queue.outbox.forward_settings()?)
}
