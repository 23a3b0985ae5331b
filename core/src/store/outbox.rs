//! The outbox of forwarding, in the same SQLite file as the history: the queue of requests
//! (OTLP) and the set of changed series (remote write). The store's writer fills both inside
//! the transaction that stores the data; the forwarder takes from them through an [`Outbox`],
//! on its own connection, and never holds the write lock longer than one delete.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::accounting::HistAcc;
use super::series_texts::LABELS_SQL;
use super::settings::{self, key};
use super::StoreError;
use crate::exposition::FamilyKind;
use crate::ingest::Shape;
use crate::signal::Signal;

/// Requests of one signal taken from the head of the queue, sent as one export (protobuf
/// messages of one type concatenate into one message whose repeated fields are the union).
#[derive(Debug)]
pub struct QueuedBatch {
    /// The requests' signal; `None` for a `forward_queue.signal` code tokentray never writes (a
    /// damaged row), which is dropped as undeliverable.
    pub signal: Option<Signal>,
    /// `forward_queue` row ids of the requests, to delete once the export is acknowledged.
    pub ids: Vec<i64>,
    /// The concatenated protobuf requests.
    pub payload: Vec<u8>,
}

/// What a trim removed.
#[derive(Debug, Default, PartialEq)]
pub struct Trimmed {
    /// Queued requests dropped, for age or size.
    pub requests: u64,
    /// Stored (compressed) bytes of the dropped requests.
    pub bytes: u64,
    /// Of `requests`, those dropped for being older than the maximum age.
    pub by_age: u64,
}

/// How much forwarding has still to send.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Requests in the queue (OTLP forwarding).
    pub requests: u64,
    /// Their stored (compressed) size in bytes.
    pub bytes: u64,
    /// When the oldest queued request was queued, nanoseconds since the epoch; `None` when
    /// the queue is empty.
    pub oldest_ns: Option<i64>,
    /// Series waiting to be sent (remote write).
    pub changed_series: u64,
}

/// The current value of one `/metrics` row (family + labels), for remote write.
#[derive(Debug, Clone, PartialEq)]
pub struct RowValue {
    /// The metric family name as in `/metrics`.
    pub family: String,
    /// Rendered as in `/metrics`: `a="1",b="2"`.
    pub labels: String,
    /// Counter, gauge or histogram.
    pub kind: FamilyKind,
    /// The counter or gauge value (0 for a histogram).
    pub value: f64,
    /// The buckets, sum and count of a histogram row; `None` for counters and gauges.
    pub hist: Option<HistAcc>,
}

pub(crate) struct Outbox {
    conn: Connection,
}

impl Outbox {
    pub(crate) fn open(db_path: &Path) -> Result<Outbox, StoreError> {
        Ok(Outbox { conn: super::open_migrated(db_path)? })
    }

    /// The value of one `settings` key (the forwarding state lives there).
    pub(crate) fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        settings::get(&self.conn, key)
    }

    pub(crate) fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        settings::set(&self.conn, key, value)
    }

    pub(crate) fn unset_setting(&self, key: &str) -> Result<(), StoreError> {
        settings::unset(&self.conn, key)
    }

    /// Every `forward.*` setting, for the status.
    pub(crate) fn forward_settings(&self) -> Result<BTreeMap<String, String>, StoreError> {
        settings::with_prefix(&self.conn, key::FORWARD_PREFIX)
    }

    /// A transaction that takes the write lock at once (waiting for the store's writer), so that
    /// one reading before it writes never fails to upgrade.
    fn write_transaction(&self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?)
    }

    /// SQLite's `data_version`: changes whenever another connection (the store's writer, a
    /// `tokentray forward on` in another process) committed something. One cheap read that lets
    /// an idle forwarder skip everything else.
    pub(crate) fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?)
    }

    /// The oldest queued requests of one signal (the oldest request's), up to `max_bytes`
    /// (always at least one request).
    pub(crate) fn next_batch(&self, max_bytes: usize) -> Result<Option<QueuedBatch>, StoreError> {
        let head: Option<(i64, u8)> = self
            .conn
            .query_row("SELECT id, signal FROM forward_queue ORDER BY id LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((first, signal)) = head else { return Ok(None) };
        let mut stmt = self.conn.prepare_cached("SELECT id, payload FROM forward_queue WHERE signal = ?1 AND id >= ?2 ORDER BY id LIMIT 1000")?;
        let mut rows = stmt.query(params![signal, first])?;
        let mut batch =
            QueuedBatch { signal: Signal::from_code(signal), ids: Vec::new(), payload: Vec::new() };
        let mut decoder = snap::raw::Decoder::new();
        while let Some(r) = rows.next()? {
            let compressed = r.get_ref(1)?.as_blob()?;
            let len = snap::raw::decompress_len(compressed).unwrap_or(0);
            if !batch.ids.is_empty() && batch.payload.len() + len > max_bytes {
                break;
            }
            let id: i64 = r.get(0)?;
            match decoder.decompress_vec(compressed) {
                Ok(payload) => batch.payload.extend_from_slice(&payload),
                // Cannot happen to what the writer stored; such a row is sent as nothing (and
                // removed with the batch) rather than blocking the queue forever.
                Err(e) => {
                    tracing::warn!(id, error = %e, "forwarding: a queued request is corrupt; skipped")
                }
            }
            batch.ids.push(id);
        }
        Ok(Some(batch))
    }

    /// Removes delivered (or dropped) requests and updates the counters in one transaction.
    pub(crate) fn remove(
        &self,
        ids: &[i64],
        counter: &str,
        now_ns: i64,
        success: bool,
    ) -> Result<(), StoreError> {
        let tx = self.write_transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM forward_queue WHERE id = ?1")?;
            for id in ids {
                del.execute([id])?;
            }
        }
        settings::add_counter(&tx, counter, ids.len() as u64)?;
        if success {
            settings::set(&tx, key::FORWARD_LAST_SUCCESS_NS, &now_ns.to_string())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Keeps the queue within `max_bytes` and `max_age_ns`, oldest out first. When anything is
    /// dropped, `describe` words it and the words become the forwarder's last drop and last
    /// error in the same commit as the drop and its count, so a status never shows a count
    /// without the reason.
    pub(crate) fn trim(
        &self,
        max_bytes: u64,
        max_age_ns: i64,
        now_ns: i64,
        describe: impl FnOnce(&Trimmed) -> String,
    ) -> Result<Trimmed, StoreError> {
        let tx = self.write_transaction()?;
        let mut out = Trimmed::default();
        let (n, b): (i64, i64) = tx.query_row(
            "SELECT count(*), COALESCE(sum(bytes), 0) FROM forward_queue WHERE created_ns < ?1",
            [now_ns.saturating_sub(max_age_ns)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if n > 0 {
            tx.execute(
                "DELETE FROM forward_queue WHERE created_ns < ?1",
                [now_ns.saturating_sub(max_age_ns)],
            )?;
            out.requests += n as u64;
            out.bytes += b as u64;
            out.by_age += n as u64;
        }
        let total: i64 =
            tx.query_row("SELECT COALESCE(sum(bytes), 0) FROM forward_queue", [], |r| r.get(0))?;
        if total as u64 > max_bytes {
            let mut excess = total as u64 - max_bytes;
            let mut cutoff = None;
            {
                let mut stmt = tx.prepare("SELECT id, bytes FROM forward_queue ORDER BY id")?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let (id, bytes): (i64, i64) = (r.get(0)?, r.get(1)?);
                    cutoff = Some(id);
                    out.requests += 1;
                    out.bytes += bytes as u64;
                    excess = excess.saturating_sub(bytes as u64);
                    if excess == 0 {
                        break;
                    }
                }
            }
            if let Some(id) = cutoff {
                tx.execute("DELETE FROM forward_queue WHERE id <= ?1", [id])?;
            }
        }
        if out.requests > 0 {
            settings::add_counter(&tx, key::FORWARD_DROPPED_OVERFLOW, out.requests)?;
            let words = describe(&out);
            settings::set(&tx, key::FORWARD_LAST_DROP, &words)?;
            settings::set(&tx, key::FORWARD_LAST_ERROR, &words)?;
            settings::set(&tx, key::FORWARD_LAST_ERROR_NS, &now_ns.to_string())?;
        }
        tx.commit()?;
        Ok(out)
    }

    pub(crate) fn stats(&self) -> Result<QueueStats, StoreError> {
        stats(&self.conn)
    }

    /// Queues every series for remote write (when it is turned on, so the team's Prometheus
    /// gets all totals, not only those that change from now on).
    pub(crate) fn mark_all_changed(&self) -> Result<(), StoreError> {
        self.conn
            .execute("INSERT OR IGNORE INTO forward_dirty (series_id) SELECT id FROM series", [])?;
        Ok(())
    }

    /// Queues again every series that changed since `since_ns` (its total is re-sent even if
    /// it did not change since it was last delivered). Returns how many were queued.
    pub(crate) fn mark_changed_since(&self, since_ns: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute("INSERT OR IGNORE INTO forward_dirty (series_id) SELECT series_id FROM series_state WHERE last_time_ns >= ?1", [since_ns])?)
    }

    /// Up to `max` changed rows with their current totals, read in one snapshot, and the queue
    /// entries they account for (to remove once delivered).
    pub(crate) fn changed_rows(&self, max: usize) -> Result<(Vec<RowValue>, Vec<i64>), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut seqs = Vec::new();
        let mut wanted: Vec<(i64, String, String)> = Vec::new();
        let mut seen: HashMap<(String, String), ()> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT d.seq, s.expo_hash, s.expo_family, {LABELS_SQL} FROM forward_dirty d JOIN series s ON s.id = d.series_id ORDER BY d.seq LIMIT ?1",
            ))?;
            let mut rows = stmt.query([max as i64])?;
            while let Some(r) = rows.next()? {
                seqs.push(r.get(0)?);
                if let (Some(hash), Some(family), Some(labels)) = (
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ) {
                    if seen.insert((family.clone(), labels.clone()), ()).is_none() {
                        wanted.push((hash, family, labels));
                    }
                }
            }
        }
        // Entries whose series is gone (never happens today) would otherwise stay forever.
        if seqs.is_empty() {
            tx.execute(
                "DELETE FROM forward_dirty WHERE series_id NOT IN (SELECT id FROM series)",
                [],
            )?;
        }
        let mut out = Vec::with_capacity(wanted.len());
        {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT s.shape, COALESCE(st.total, 0), st.hist, st.cum_value IS NULL, COALESCE(st.last_time_ns, 0)
                 FROM series s LEFT JOIN series_state st ON st.series_id = s.id
                 WHERE s.expo_hash = ?1 AND s.expo_family = ?2 AND {LABELS_SQL} = ?3",
            ))?;
            for (hash, family, labels) in wanted {
                let mut rows = stmt.query(params![hash, family, labels])?;
                let mut row =
                    RowValue { family, labels, kind: FamilyKind::Counter, value: 0.0, hist: None };
                let mut latest = 0i64;
                while let Some(r) = rows.next()? {
                    let Some(shape) = Shape::from_code(r.get(0)?) else { continue };
                    let total: f64 = r.get(1)?;
                    row.kind = super::live::kind_of(shape);
                    match shape {
                        // The same rule as /metrics: counters and delta up-down sums add up,
                        // gauges show the latest point.
                        Shape::MonotonicSum => row.value += total,
                        Shape::NonMonotonicSum if r.get::<_, bool>(3)? => row.value += total,
                        Shape::NonMonotonicSum | Shape::Gauge => {
                            let t: i64 = r.get(4)?;
                            if t >= latest {
                                latest = t;
                                row.value = total;
                            }
                        }
                        Shape::Histogram => {
                            let Some(h) = r
                                .get_ref(2)?
                                .as_str_or_null()?
                                .and_then(|t| serde_json::from_str::<HistAcc>(t).ok())
                            else {
                                continue;
                            };
                            match &mut row.hist {
                                Some(acc) if acc.bounds == h.bounds => {
                                    for (a, b) in acc.counts.iter_mut().zip(&h.counts) {
                                        *a += b;
                                    }
                                    acc.sum += h.sum;
                                    acc.count += h.count;
                                }
                                Some(_) => {}
                                None => row.hist = Some(h),
                            }
                        }
                    }
                }
                out.push(row);
            }
        }
        tx.commit()?;
        Ok((out, seqs))
    }

    /// Removes delivered changed-series entries (a newer change of the same series has a newer
    /// seq and stays).
    pub(crate) fn remove_changed(&self, seqs: &[i64], now_ns: i64) -> Result<(), StoreError> {
        let tx = self.write_transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM forward_dirty WHERE seq = ?1")?;
            for seq in seqs {
                del.execute([seq])?;
            }
        }
        settings::add_counter(&tx, key::FORWARD_DELIVERED, seqs.len() as u64)?;
        settings::set(&tx, key::FORWARD_LAST_SUCCESS_NS, &now_ns.to_string())?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn clear_changed(&self) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM forward_dirty", [])?;
        Ok(())
    }
}

pub(crate) fn stats(conn: &Connection) -> Result<QueueStats, StoreError> {
    let (requests, bytes, oldest_ns): (i64, i64, Option<i64>) = conn.query_row(
        "SELECT count(*), COALESCE(sum(bytes), 0), min(created_ns) FROM forward_queue",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let changed: i64 = conn.query_row("SELECT count(*) FROM forward_dirty", [], |r| r.get(0))?;
    Ok(QueueStats {
        requests: requests as u64,
        bytes: bytes as u64,
        oldest_ns,
        changed_series: changed as u64,
    })
}

#[cfg(test)]
impl Outbox {
    /// Puts a raw row into the queue, as the writer would.
    pub(crate) fn push_raw(&self, signal: u8, created_ns: i64, payload: &[u8]) {
        self.conn
            .execute(
                "INSERT INTO forward_queue (signal, created_ns, bytes, payload) VALUES (?1, ?2, ?3, ?4)",
                params![signal, created_ns, payload.len() as i64, payload],
            )
            .expect("insert");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_with(rows: &[(i64, usize)]) -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = Outbox::open(&dir.path().join("db.sqlite3")).expect("open");
        for (created_ns, bytes) in rows {
            q.push_raw(1, *created_ns, &vec![0; *bytes]);
        }
        (dir, q)
    }

    #[test]
    fn trim_keeps_the_newest_within_age_and_size() {
        let hour = 3_600_000_000_000i64;
        let now = 100 * hour;
        // Two requests older than 24 h, then three of 100 bytes.
        let (_dir, q) = queue_with(&[
            (now - 30 * hour, 100),
            (now - 25 * hour, 100),
            (now - 3 * hour, 100),
            (now - 2 * hour, 100),
            (now - hour, 100),
        ]);
        let t = q.trim(250, 24 * hour, now, |t| format!("dropped {}", t.requests)).expect("trim");
        assert_eq!(t, Trimmed { requests: 3, bytes: 300, by_age: 2 });
        let st = q.stats().expect("stats");
        assert_eq!(
            (st.requests, st.bytes, st.oldest_ns),
            (2, 200, Some(now - 2 * hour)),
            "the newest two are kept"
        );
        assert_eq!(
            q.setting(key::FORWARD_DROPPED_OVERFLOW).expect("counter").as_deref(),
            Some("3")
        );
        // The reason is stored in the drop's own commit: a status never has the count alone.
        for k in [key::FORWARD_LAST_DROP, key::FORWARD_LAST_ERROR] {
            assert_eq!(q.setting(k).expect("reason").as_deref(), Some("dropped 3"), "{k}");
        }
        assert_eq!(
            q.trim(250, 24 * hour, now, |_| "again".into()).expect("again"),
            Trimmed::default(),
            "nothing more to trim"
        );
    }

    #[test]
    fn batches_concatenate_one_signal_up_to_the_limit() {
        let (_dir, q) = queue_with(&[]);
        let put = |signal: u8, text: &[u8]| {
            let out = crate::ingest::Outgoing::new(Signal::from_code(signal).expect("code"), text);
            q.push_raw(signal, 0, &out.payload);
        };
        put(1, b"aaaa");
        put(2, b"logs");
        put(1, b"bbbb");
        put(1, b"cccc");
        let b = q.next_batch(8).expect("batch").expect("some");
        assert_eq!(
            (b.signal, b.payload.as_slice(), b.ids.len()),
            (Some(Signal::Metrics), b"aaaabbbb".as_slice(), 2),
            "metrics only, up to 8 bytes"
        );
        q.remove(&b.ids, key::FORWARD_DELIVERED, 1, true).expect("remove");
        let b = q.next_batch(8).expect("batch").expect("some");
        assert_eq!(
            (b.signal, b.payload.as_slice()),
            (Some(Signal::Logs), b"logs".as_slice()),
            "then the oldest left: logs"
        );
        assert_eq!(q.setting(key::FORWARD_DELIVERED).expect("counter").as_deref(), Some("2"));
    }
}
