//! The single writer: owns the read-write connection, applies batches with exact accounting and
//! commits them, several requests per transaction when they queue up (group commit).
//!
//! A request is acknowledged only after the transaction holding it has committed, so whatever a
//! client was told is on disk. In-memory state (series totals, `/metrics` rows) changes only after
//! the commit succeeded; a failed transaction leaves both exactly as they were.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::accounting::{Effect, HistAcc, Refusal, SeriesTotals};
use super::kinds::{self, KindBook, NameSpace, NewKinds};
use super::live::{self, ExpoKey, Live, RowRef};
use super::rollups;
use super::series_texts::{self, ATTRS_SQL, LABELS_SQL};
use super::{Ack, Change, StoreError};
use crate::exposition::{naming, Labels};
use crate::ingest::attrs;
use crate::ingest::{Batch, MetricPoint, Resource, SeriesDesc, Shape};

/// Most requests folded into one transaction; bounds the latency a large group adds.
const MAX_GROUP: usize = 256;

/// Seconds per usage slot (see the `usage` table).
pub const SLOT_SECONDS: i64 = 900;

/// Series and resource keys are xxh3-128 hashes already; SipHashing them again on every lookup
/// (several per point, and once per series at start-up) cost more than the lookup itself.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here (`write_u128`); anything else still gets a fair mix.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3).rotate_left(5);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = (key as u64) ^ ((key >> 64) as u64);
    }
}

type KeyMap<V> = HashMap<u128, V, BuildHasherDefault<KeyHasher>>;

pub(super) enum Job {
    /// Store a batch and answer once it is committed.
    Ingest { batch: Box<Batch>, reply: oneshot::Sender<Result<Ack, StoreError>> },
    /// Let idle series go from memory; answers how many rows of `/metrics` left (the timer in
    /// `Store::open_shaped` sends these without waiting for the answer).
    ReleaseIdle { reply: Option<oneshot::Sender<usize>> },
}

/// Which series the writer holds in memory, with their running state and `/metrics` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Residency {
    /// Every stored series, loaded at start: what `/metrics` needs when it shows every series
    /// (`series_idle_hours = 0`) or folds idle ones into its totals (`drop_labels`).
    Every,
    /// Only series with a point (by its own timestamp) within `idle_after_ns`: start-up loads
    /// those, idle ones leave memory, and a point for a series not in memory loads its running
    /// state (and its row's other series) by key first, exact whatever its age.
    Active { idle_after_ns: u64 },
}

/// A batch to store and where its answer goes.
type IngestJob = (Batch, oneshot::Sender<Result<Ack, StoreError>>);

/// A stored resource and its `target` labels, by id while loading.
type StoredResource = (Arc<Resource>, Option<Labels>);

/// Series ids with the `/metrics` identity rendered for them while loading, to store.
type Backfill = Vec<(i64, ExpoKey)>;

#[derive(Debug, Clone)]
struct SeriesState {
    id: i64,
    shape: Shape,
    row: RowRef,
    totals: SeriesTotals,
    /// Its place in the rollups (store/rollups.rs); `None` until looked up for a series whose
    /// state row names none.
    rollup: Option<rollups::SeriesRollup>,
}

pub(super) struct Writer {
    conn: Connection,
    /// The series held in memory (all of them, or the active ones: [`Residency`]).
    series: KeyMap<SeriesState>,
    residency: Residency,
    resources: KeyMap<i64>,
    /// Stored resources by id with their `target` labels, as series that use them are loaded.
    resource_rows: HashMap<i64, StoredResource>,
    live: Arc<RwLock<Live>>,
    changes: broadcast::Sender<Change>,
    /// [`super::ForwardMode`] bits: what the receiver prepares for forwarding (queued by the
    /// writer only while the switch in `settings` is on).
    forward: Arc<AtomicU8>,
    /// The first kind of every metric name (see [`kinds`]).
    kinds: KindBook,
    /// Committed rows of `series_texts` (bounded), so a new series of a known shape reads none.
    texts: series_texts::TextIds,
    /// A commit failed on a damaged file: this run does not end in a clean close.
    met_damage: bool,
    /// Committed session keys of events (bounded, store/events.rs).
    sessions: super::events::SessionKeys,
}

/// Changes of one transaction, applied to memory only once it has committed.
#[derive(Default)]
struct Pending {
    series: KeyMap<SeriesState>,
    resources: KeyMap<i64>,
    /// Rows of `series_texts` the new series named (store/series_texts.rs).
    texts: series_texts::TextIds,
    /// Session keys the transaction's events found or added.
    sessions: super::events::SessionKeys,
    usage: HashMap<(i64, i64), f64>,
    /// The same increments and the transaction's events, by day (store/rollups.rs).
    rollups: rollups::PendingRollups,
    live_ops: Vec<(RowRef, Effect, u64)>,
    /// Mark the touched series for remote write (forwarding on, with that protocol).
    remote_write: bool,
    kinds: NewKinds,
}

fn slot_of(time_ns: u64) -> i64 {
    (time_ns / 1_000_000_000) as i64 / SLOT_SECONDS
}

/// A series' histogram and cumulative value as the JSON `series_state` stores them.
pub(super) fn encoded_state(
    t: &SeriesTotals,
) -> Result<(Option<String>, Option<String>), StoreError> {
    let encode = |e: serde_json::Error| StoreError::Encode(e.to_string());
    let hist = t.hist.as_ref().map(serde_json::to_string).transpose().map_err(encode)?;
    let cum_value =
        t.cum.as_ref().map(|c| serde_json::to_string(&c.value)).transpose().map_err(encode)?;
    Ok((hist, cum_value))
}

pub(super) fn clamp_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

impl Writer {
    /// Loads the running state of the series `residency` keeps in memory and rebuilds their
    /// `/metrics` rows; with [`Residency::Active`] a back-dated history loads nothing.
    pub(super) fn load(
        conn: Connection,
        residency: Residency,
        live: Arc<RwLock<Live>>,
        changes: broadcast::Sender<Change>,
        forward: Arc<AtomicU8>,
    ) -> Result<Writer, StoreError> {
        let kinds = KindBook::load(&conn)?;
        let mut writer = Writer {
            conn,
            series: KeyMap::default(),
            residency,
            resources: KeyMap::default(),
            resource_rows: HashMap::new(),
            texts: HashMap::new(),
            sessions: HashMap::new(),
            live,
            changes,
            forward,
            kinds,
            met_damage: false,
        };
        writer.render_missing_expo_keys()?;
        match residency {
            Residency::Every => writer.load_series(SeriesFilter::Every, params![])?,
            Residency::Active { idle_after_ns } => {
                let cutoff = clamp_i64(now_u64().saturating_sub(idle_after_ns));
                writer.load_series(SeriesFilter::ActiveSince, params![cutoff])?
            }
        };
        Ok(writer)
    }

    /// Series stored before schema v3 have no rendered `/metrics` identity: render and store it
    /// once, so that rows can be found by it (the `series_expo_hash` index).
    fn render_missing_expo_keys(&mut self) -> Result<(), StoreError> {
        let mut backfill: Backfill = Vec::new();
        let sql = format!("{} WHERE s.labels_text IS NULL ORDER BY s.id", series_columns());
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some(shape) = Shape::from_code(r.get(5)?) else { continue };
            let Some(resource) = resource_row(&self.conn, &mut self.resource_rows, r.get(6)?)?
            else {
                continue;
            };
            Self::stored_expo_key(r, r.get(0)?, shape, &resource, &mut backfill)?;
        }
        drop(rows);
        drop(stmt);
        Self::write_back_expo_keys(&self.conn, &backfill)
    }

    /// Loads the series `filter` selects (with `params`) into memory and their rows into
    /// `/metrics`, skipping any already held.
    fn load_series(
        &mut self,
        filter: SeriesFilter,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, StoreError> {
        let mut live_w = self.live.write().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = self.conn.prepare_cached(filter.sql())?;
        let mut rows = stmt.query(params)?;
        let mut loaded = 0;
        let mut unused_backfill: Backfill = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let key = key_from_blob(r.get_ref(1)?.as_blob()?);
            if self.series.contains_key(&key) {
                continue;
            }
            let Some(shape) = Shape::from_code(r.get(5)?) else { continue };
            let Some(resource) = resource_row(&self.conn, &mut self.resource_rows, r.get(6)?)?
            else {
                continue;
            };
            // Rendered by `render_missing_expo_keys` already; nothing is left to write back.
            let expo = Self::stored_expo_key(r, id, shape, &resource, &mut unused_backfill)?;
            let created_ms = r.get::<_, i64>(7)? / 1_000_000;
            let totals = Self::stored_totals(r)?;
            let bounds = totals.hist.as_ref().map(|h| h.bounds.clone());
            // A stored series always got its row when it was created; a conflict here means the
            // naming rules changed between versions, and the series is left out of /metrics.
            let Ok(row) = live_w.row_for(&expo, created_ms, bounds.as_deref()) else {
                tracing::warn!(
                    metric = r.get_ref(2)?.as_str()?,
                    "series no longer maps to a consistent Prometheus family; not exposed"
                );
                continue;
            };
            Self::replay_into_live(&mut live_w, row, shape, &totals);
            self.resources.insert(resource.0.key, r.get(6)?);
            let rollup = match (r.get(20)?, r.get(21)?) {
                (Some(key), Some(session)) => Some(rollups::SeriesRollup { key, session }),
                _ => None,
            };
            self.series.insert(key, SeriesState { id, shape, row, totals, rollup });
            loaded += 1;
        }
        Ok(loaded)
    }

    /// Before a group is written: every series its points name that is stored but not in
    /// memory (it went idle, or start-up did not load it) is loaded with the other series of
    /// its `/metrics` row, so the row shows its whole total again. Reads committed state only,
    /// so a failed transaction afterwards leaves memory right.
    fn load_idle_series(&mut self, batches: &[Batch]) -> Result<(), StoreError> {
        if self.residency == Residency::Every {
            return Ok(());
        }
        let mut missing: Vec<u128> = batches
            .iter()
            .flat_map(|b| b.points.iter().chain(&b.derived))
            .map(|p| p.series.key)
            .filter(|k| !self.series.contains_key(k))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for key in missing {
            let row_identity: Option<(Option<i64>, Option<String>, Option<String>)> = self
                .conn
                .prepare_cached(&format!(
                    "SELECT s.expo_hash, s.expo_family, {LABELS_SQL} FROM series s WHERE s.key = ?1"
                ))?
                .query_row([key.to_be_bytes().as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            match row_identity {
                // A new series: created by the transaction.
                None => {}
                Some((Some(hash), Some(family), Some(labels))) => {
                    self.load_series(SeriesFilter::Row, params![hash, family, labels])?;
                }
                // No rendered identity (its metric has no Prometheus form): the series alone.
                Some(_) => {
                    self.load_series(SeriesFilter::Key, params![key.to_be_bytes().as_slice()])?;
                }
            }
        }
        Ok(())
    }

    /// Lets idle series go from memory: their `/metrics` rows and running state. Returns how
    /// many rows left.
    fn release_idle(&mut self) -> usize {
        let Residency::Active { idle_after_ns } = self.residency else { return 0 };
        let released = match self.live.write() {
            Ok(mut live) => live.release_idle(idle_after_ns, now_u64()),
            Err(_) => return 0,
        };
        if !released.is_empty() {
            let released: std::collections::HashSet<RowRef> = released.into_iter().collect();
            self.series.retain(|_, s| !released.contains(&s.row));
            self.series.shrink_to_fit();
            tracing::debug!(
                rows = released.len(),
                held = self.series.len(),
                "idle series left memory"
            );
            return released.len();
        }
        0
    }

    /// The series' `/metrics` identity as stored, or rendered now from its attributes and
    /// queued in `backfill`: series stored before schema v3 have none yet.
    fn stored_expo_key(
        r: &rusqlite::Row<'_>,
        id: i64,
        shape: Shape,
        (resource, target): &StoredResource,
        backfill: &mut Backfill,
    ) -> Result<ExpoKey, StoreError> {
        let stored = (
            r.get::<_, Option<String>>(8)?,
            r.get::<_, Option<String>>(9)?,
            r.get_ref(10)?.as_str_or_null()?,
        );
        if let (Some(family), Some(unit), Some(labels)) = stored {
            return Ok(ExpoKey {
                family,
                help: r.get(4)?,
                unit,
                kind: live::kind_of(shape),
                // Rendered by an older tokentray: without reserved labels now.
                labels: naming::without_reserved(labels, live::kind_reserved(live::kind_of(shape))),
                target: target.clone(),
            });
        }
        let point_attrs = attrs::from_json(r.get_ref(13)?.as_str_or_null()?.unwrap_or("{}"));
        // Not counted as dropped labels: the series was counted when it was created (or by a
        // version before the count).
        let (expo, _) = live::expo_key(live::SeriesNaming {
            metric: r.get_ref(2)?.as_str()?,
            unit: r.get_ref(3)?.as_str()?,
            description: r.get_ref(4)?.as_str()?,
            shape,
            resource,
            scope_name: r.get_ref(11)?.as_str_or_null()?.unwrap_or_default(),
            scope_version: r.get_ref(12)?.as_str_or_null()?.unwrap_or_default(),
            point_attrs: &point_attrs,
        });
        backfill.push((id, expo.clone()));
        Ok(expo)
    }

    /// The running totals from `series_state` (zero for a series without a row there).
    fn stored_totals(r: &rusqlite::Row<'_>) -> Result<SeriesTotals, StoreError> {
        let hist: Option<HistAcc> =
            r.get_ref(15)?.as_str_or_null()?.and_then(|t| serde_json::from_str(t).ok());
        let cum = match (
            r.get::<_, Option<i64>>(16)?,
            r.get::<_, Option<i64>>(17)?,
            r.get_ref(18)?.as_str_or_null()?,
        ) {
            (Some(start), Some(time), Some(value)) => {
                serde_json::from_str(value).ok().map(|value| super::accounting::CumMark {
                    start_ns: start as u64,
                    time_ns: time as u64,
                    value,
                })
            }
            _ => None,
        };
        Ok(SeriesTotals { total: r.get(14)?, hist, cum, last_time_ns: r.get::<_, i64>(19)? as u64 })
    }

    fn replay_into_live(live_w: &mut Live, row: RowRef, shape: Shape, totals: &SeriesTotals) {
        live_w.mark_committed(row);
        match shape {
            Shape::MonotonicSum => live_w.add(row, totals.total),
            Shape::NonMonotonicSum if totals.cum.is_none() => live_w.add(row, totals.total),
            Shape::NonMonotonicSum | Shape::Gauge => {
                live_w.set(row, totals.total, totals.last_time_ns)
            }
            Shape::Histogram => {
                if let Some(h) = &totals.hist {
                    live_w.add_histogram(row, &h.counts, h.sum, h.count);
                }
            }
        }
        // Persisted idleness: the stored newest point decides whether /metrics shows it.
        live_w.touch(row, totals.last_time_ns);
    }

    /// Stores the identities rendered by [`Self::stored_expo_key`], so they are rendered once.
    fn write_back_expo_keys(conn: &Connection, backfill: &Backfill) -> Result<(), StoreError> {
        if backfill.is_empty() {
            return Ok(());
        }
        let tx = conn.unchecked_transaction()?;
        {
            let mut session = tx.prepare("SELECT session_id FROM series WHERE id = ?1")?;
            let mut update = tx.prepare("UPDATE series SET expo_family = ?2, expo_unit = ?3, labels_text = ?4, expo_hash = ?5 WHERE id = ?1")?;
            for (id, expo) in backfill {
                let session: Option<String> = session.query_row([id], |r| r.get(0))?;
                let labels = series_texts::text_id(&tx, &expo.labels, session.as_deref())?;
                let hash = series_texts::expo_hash(&expo.family, &expo.labels);
                update.execute(params![id, expo.family, expo.unit, labels, hash])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Settings of the writer's connection only, set after [`Writer::load`]: the load reads every
    /// series once and would only fill the cache with pages it never needs again.
    pub(super) fn tune_for_writing(&self) -> Result<(), StoreError> {
        // A bigger page cache keeps the pages a commit touches (series state, the current usage
        // slot, their indexes) in memory instead of re-reading them; checkpointing every 10 000
        // pages (~40 MiB of WAL) instead of 1 000 moves fewer pages twice. Neither changes
        // durability: each commit still syncs its WAL frames.
        self.conn.pragma_update(None, "cache_size", -16384)?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 10000)?;
        Ok(())
    }

    /// Serves jobs until every sender is gone. True when it ended cleanly: no commit met damage
    /// and the write-ahead log is folded into the file (see store/clean_close.rs).
    pub(super) fn run(mut self, mut jobs: mpsc::Receiver<Job>) -> bool {
        while let Some(first) = jobs.blocking_recv() {
            let mut group = Vec::new();
            let mut release = None;
            match first {
                Job::Ingest { batch, reply } => group.push((*batch, reply)),
                Job::ReleaseIdle { reply } => release = Some(reply),
            }
            while release.is_none() && !group.is_empty() && group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(Job::Ingest { batch, reply }) => group.push((*batch, reply)),
                    Ok(Job::ReleaseIdle { reply }) => release = Some(reply),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(reply) = release {
                let released = self.release_idle();
                if let Some(reply) = reply {
                    let _ = reply.send(released);
                }
            }
        }
        // The store is closing: fold the write-ahead log into the database file, so that the
        // file alone is the whole history (a copy, a backup, the start-up check all see it).
        // Its first column is 1 when a reader kept it from finishing.
        let folded = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|busy| busy == 0);
        folded && !self.met_damage
    }

    fn commit_group(&mut self, group: Vec<IngestJob>) {
        let (batches, replies): (Vec<Batch>, Vec<_>) = group.into_iter().unzip();
        if batches.iter().all(Batch::is_empty) {
            for (batch, reply) in batches.into_iter().zip(replies) {
                let _ = reply.send(Ok(Ack {
                    accepted: 0,
                    rejected: batch.rejected,
                    reason: batch.reject_reason,
                }));
            }
            return;
        }
        let written = self.load_idle_series(&batches).and_then(|()| self.write(&batches));
        match written {
            Ok((pending, acks)) => {
                self.apply(pending);
                let change = Change {
                    points: acks.iter().map(|a| a.accepted).sum(),
                    events: batches.iter().map(|b| b.events.len()).sum(),
                    at_ns: crate::ingest::now_ns(),
                };
                for (reply, ack) in replies.into_iter().zip(acks) {
                    let _ = reply.send(Ok(ack));
                }
                let _ = self.changes.send(change);
            }
            Err(e) => {
                self.met_damage |= e.is_damage();
                tracing::error!(error = %e, requests = batches.len(), "could not store telemetry; clients will retry");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn write(&self, batches: &[Batch]) -> Result<(Pending, Vec<Ack>), StoreError> {
        // `unchecked` lets the methods below borrow `self` too. IMMEDIATE takes the write lock
        // first: the transaction reads (the forwarding switch) before it writes, and a deferred
        // one could not upgrade its read to a write if the forwarder committed in between.
        let tx = Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let mut pending = Pending::default();
        let mut acks = Vec::with_capacity(batches.len());
        let mut client = None;
        // Forwarding: what the receiver prepared is queued only while the switch is on, as read
        // in this very transaction (so `tokentray forward on` takes effect with the next commit).
        let mode = super::ForwardMode::from_bits(self.forward.load(Ordering::Acquire));
        let forward_on = (mode.otlp || mode.remote_write)
            && super::settings::is_on(&tx, super::settings::key::FORWARD_ENABLED)?;
        pending.remote_write = forward_on && mode.remote_write;
        for batch in batches {
            let mut ack =
                Ack { accepted: 0, rejected: batch.rejected, reason: batch.reject_reason.clone() };
            let history = !batch.from_own_transcripts;
            for point in &batch.points {
                match self.apply_point(&tx, &mut pending, point, history)? {
                    Ok(()) => ack.accepted += 1,
                    Err(reason) => {
                        ack.rejected += 1;
                        ack.reason.get_or_insert(reason);
                    }
                }
            }
            for event in &batch.events {
                let resource_id = self.resource_id(&tx, &mut pending, &event.resource)?;
                let session = super::events::session_key(
                    &tx,
                    event.session_id.as_deref(),
                    &self.sessions,
                    &mut pending.sessions,
                )?;
                insert_event(&tx, event, resource_id, session)?;
                pending.rollups.add_event(event, resource_id, session.unwrap_or(0));
                ack.accepted += 1;
            }
            // Other agents' requests among them, each once however often it is sent.
            for request in &batch.agent_requests {
                super::agents::insert(&tx, request)?;
            }
            // The counters derived from the events just stored, once per event. Not part of the
            // ack (the client sent events); a refusal (the name already taken by a metric of
            // another kind) loses that count, never the event.
            for point in &batch.derived {
                if let Err(reason) = self.apply_point(&tx, &mut pending, point, history)? {
                    tracing::warn!(%reason, "a counter derived from events was refused");
                }
            }
            for span in &batch.spans {
                tx.prepare_cached(
                    "INSERT INTO spans (start_ns, end_ns, name, trace_id, span_id, session_id, status_code)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![span.start_ns, span.end_ns, span.name, span.trace_id, span.span_id, span.session_id, span.status_code])?;
                ack.accepted += 1;
            }
            if batch.client.is_some() {
                client = batch.client.clone();
            }
            if let Some(out) = batch.outgoing.as_ref().filter(|_| forward_on && ack.accepted > 0) {
                tx.prepare_cached("INSERT INTO forward_queue (signal, created_ns, bytes, payload) VALUES (?1, ?2, ?3, ?4)")?.execute(params![
                    out.signal.as_code(),
                    crate::ingest::now_ns(),
                    out.payload.len() as i64,
                    out.payload
                ])?;
            }
            acks.push(ack);
        }
        self.flush(&tx, &pending, client)?;
        tx.commit()?;
        Ok((pending, acks))
    }

    /// Applies one point to the pending state; with `history` its increments also go to `usage`
    /// and the rollups. The outer error aborts the transaction; the inner one refuses just this
    /// point (OTLP partial success).
    fn apply_point(
        &self,
        tx: &Transaction,
        pending: &mut Pending,
        point: &MetricPoint,
        history: bool,
    ) -> Result<Result<(), String>, StoreError> {
        let desc = &point.series;
        if !pending.series.contains_key(&desc.key) {
            let state = match self.series.get(&desc.key) {
                Some(s) => s.clone(),
                None => match self.create_series(tx, pending, desc, point)? {
                    Ok(s) => s,
                    Err(reason) => return Ok(Err(reason)),
                },
            };
            pending.series.insert(desc.key, state);
        }
        let Some(state) = pending.series.get_mut(&desc.key) else {
            return Ok(Err("internal: series state missing".into()));
        };
        if let Some(refusal) = kinds::shape_refusal(&desc.metric, state.shape, desc.shape) {
            return Ok(Err(refusal));
        }
        // The series' shape is fixed by its first point; a histogram turning into a number (or
        // back) is refused by the accounting.
        let effect = match state.totals.apply_finite(
            state.shape,
            point.temporality,
            point.start_ns,
            point.time_ns,
            &point.value,
        ) {
            Ok(effect) => effect,
            Err(Refusal::BoundsChanged) => {
                return Ok(Err(format!("metric {}: histogram bucket bounds changed", desc.metric)))
            }
            Err(Refusal::WrongValueType) => {
                return Ok(Err(format!("metric {}: data type changed", desc.metric)))
            }
            Err(Refusal::NotFinite) => {
                return Ok(Err(format!(
                    "metric {}: the total would no longer be finite",
                    desc.metric
                )))
            }
        };
        if let (Shape::MonotonicSum, Effect::Add(inc)) = (state.shape, &effect) {
            if *inc != 0.0 && history {
                let slot = slot_of(point.time_ns);
                *pending.usage.entry((slot, state.id)).or_insert(0.0) += inc;
                if state.rollup.is_none() {
                    state.rollup = rollups::rollup_of_series(tx, state.id)?;
                }
                if let Some(rollup) = state.rollup {
                    pending.rollups.add_usage(slot, rollup, *inc);
                }
            }
        }
        if effect != Effect::None {
            pending.live_ops.push((state.row, effect, point.time_ns));
        }
        Ok(Ok(()))
    }

    fn create_series(
        &self,
        tx: &Transaction,
        pending: &mut Pending,
        desc: &SeriesDesc,
        point: &MetricPoint,
    ) -> Result<Result<SeriesState, String>, StoreError> {
        let (expo, dropped_labels) = live::expo_key(live::SeriesNaming::of(desc));
        if !expo.family.is_empty() {
            let names =
                [(NameSpace::Otlp, desc.metric.as_str()), (NameSpace::Prometheus, &expo.family)];
            if let Err(refusal) = self.kinds.claim(&mut pending.kinds, &names, expo.kind) {
                return Ok(Err(refusal));
            }
        }
        let bounds = match &point.value {
            crate::ingest::PointValue::Histogram(h) => Some(h.bounds.as_slice()),
            _ => None,
        };
        // The row is created before commit, hidden from /metrics until the commit succeeded
        // (Live::mark_committed); if the transaction fails it stays hidden at zero.
        let row = {
            let mut live_w = self.live.write().map_err(|_| StoreError::Poisoned)?;
            match live_w.row_for(&expo, clamp_i64(point.time_ns) / 1_000_000, bounds) {
                Ok(row) => {
                    if let (Some(b), Some(existing)) = (bounds, live_w.histogram_bounds(row)) {
                        if b != existing {
                            return Ok(Err(format!("metric {}: histogram bucket bounds differ from another series with the same labels", desc.metric)));
                        }
                    }
                    row
                }
                Err(conflict) if conflict.family.is_empty() => {
                    return Ok(Err(format!(
                        "metric name '{}' has no valid Prometheus form",
                        desc.metric
                    )))
                }
                Err(conflict) => {
                    return Ok(Err(format!(
                        "metric {} maps to Prometheus family {} which already exists as a {:?}",
                        desc.metric, conflict.family, conflict.existing
                    )))
                }
            }
        };
        let resource_id = self.resource_id(tx, pending, &desc.resource)?;
        let texts = SeriesTexts::of(tx, desc, &expo, &self.texts, &mut pending.texts)?;
        let id = insert_series(tx, desc, resource_id, point.time_ns, &expo, texts)?;
        // In the series' transaction: counted once per series, for `tokentray doctor`.
        if !dropped_labels.is_empty() {
            super::settings::note_dropped_labels(tx, &dropped_labels)?;
        }
        let get = |k| attrs::get_str(&desc.attrs, k);
        let rollup = rollups::series_rollup(
            tx,
            &desc.metric,
            get("type"),
            get("model"),
            get("session.id"),
            resource_id,
        )?;
        Ok(Ok(SeriesState {
            id,
            shape: desc.shape,
            row,
            totals: SeriesTotals::default(),
            rollup: Some(rollup),
        }))
    }

    fn resource_id(
        &self,
        tx: &Transaction,
        pending: &mut Pending,
        resource: &Resource,
    ) -> Result<i64, StoreError> {
        if let Some(&id) =
            self.resources.get(&resource.key).or_else(|| pending.resources.get(&resource.key))
        {
            return Ok(id);
        }
        let id = stored_resource_id(tx, resource)?;
        pending.resources.insert(resource.key, id);
        Ok(id)
    }

    /// Writes the new running state of every touched series and the usage increments.
    fn flush(
        &self,
        tx: &Transaction,
        pending: &Pending,
        client: Option<String>,
    ) -> Result<(), StoreError> {
        // Upserts: a series created in this transaction has no state row yet. In id order, so
        // consecutive statements walk the B-tree forward through the same pages.
        let mut update = tx.prepare_cached(
            "INSERT INTO series_state (series_id, total, hist, cum_start_ns, cum_time_ns, cum_value, last_time_ns, rollup_key, rollup_session)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (series_id) DO UPDATE SET total = excluded.total, hist = excluded.hist,
                cum_start_ns = excluded.cum_start_ns, cum_time_ns = excluded.cum_time_ns,
                cum_value = excluded.cum_value, last_time_ns = excluded.last_time_ns,
                rollup_key = excluded.rollup_key, rollup_session = excluded.rollup_session",
        )?;
        let mut states: Vec<&SeriesState> = pending.series.values().collect();
        states.sort_unstable_by_key(|s| s.id);
        for state in states {
            let t = &state.totals;
            let (hist, cum_value) = encoded_state(t)?;
            update.execute(params![
                state.id,
                t.total,
                hist,
                t.cum.as_ref().map(|c| clamp_i64(c.start_ns)),
                t.cum.as_ref().map(|c| clamp_i64(c.time_ns)),
                cum_value,
                clamp_i64(t.last_time_ns),
                state.rollup.map(|r| r.key),
                state.rollup.map(|r| r.session),
            ])?;
        }
        if pending.remote_write {
            let mut dirty =
                tx.prepare_cached("INSERT OR REPLACE INTO forward_dirty (series_id) VALUES (?1)")?;
            for state in pending.series.values() {
                dirty.execute([state.id])?;
            }
        }
        add_usage(tx, &pending.usage)?;
        pending.rollups.flush(tx)?;
        let mut meta = tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?;
        meta.execute(params!["last_ingest_ns", crate::ingest::now_ns().to_string()])?;
        pending.kinds.persist(tx, crate::ingest::now_ns())?;
        if let Some(client) = client {
            meta.execute(params!["last_client", client])?;
        }
        Ok(())
    }

    fn apply(&mut self, pending: Pending) {
        if let Ok(mut live) = self.live.write() {
            for state in pending.series.values() {
                live.mark_committed(state.row);
            }
            for (row, effect, time_ns) in &pending.live_ops {
                match effect {
                    Effect::None => {}
                    Effect::Add(inc) => live.add(*row, *inc),
                    Effect::Set(v) => live.set(*row, *v, *time_ns),
                    Effect::Histogram { counts, sum, count } => {
                        live.add_histogram(*row, counts, *sum, *count)
                    }
                }
                live.touch(*row, *time_ns);
            }
        }
        self.series.extend(pending.series);
        self.resources.extend(pending.resources);
        series_texts::keep(&mut self.texts, pending.texts, series_texts::KEPT);
        series_texts::keep(&mut self.sessions, pending.sessions, super::events::KEPT_SESSIONS);
        self.kinds.apply(pending.kinds);
    }
}

/// Adds the increments of monotonic sums, by (slot, series id), to `usage`, in key order.
pub(super) fn add_usage(
    conn: &Connection,
    usage: &HashMap<(i64, i64), f64>,
) -> Result<(), StoreError> {
    let mut add = conn.prepare_cached(
        "INSERT INTO usage (slot, series_id, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (slot, series_id) DO UPDATE SET value = value + excluded.value",
    )?;
    let mut increments: Vec<(&(i64, i64), &f64)> = usage.iter().collect();
    increments.sort_unstable_by_key(|(k, _)| **k);
    for (&(slot, series_id), &value) in increments {
        add.execute(params![slot, series_id, value])?;
    }
    Ok(())
}

/// The dictionary rows of a new series' attributes and labels (store/series_texts.rs).
struct SeriesTexts {
    attrs: i64,
    labels: i64,
}

impl SeriesTexts {
    fn of(
        conn: &Connection,
        desc: &SeriesDesc,
        expo: &ExpoKey,
        known: &series_texts::TextIds,
        found: &mut series_texts::TextIds,
    ) -> Result<SeriesTexts, StoreError> {
        let session = attrs::get_str(&desc.attrs, "session.id");
        let json = attrs::to_json(&desc.attrs);
        Ok(SeriesTexts {
            attrs: series_texts::text_id_in(conn, &json, session, known, found)?,
            labels: series_texts::text_id_in(conn, &expo.labels, session, known, found)?,
        })
    }
}

/// Stores a new series' identity, its texts by their dictionary rows; returns its id.
fn insert_series(
    conn: &Connection,
    desc: &SeriesDesc,
    resource_id: i64,
    created_ns: u64,
    expo: &ExpoKey,
    texts: SeriesTexts,
) -> Result<i64, StoreError> {
    let get = |k| attrs::get_str(&desc.attrs, k);
    let session = get("session.id");
    conn.prepare_cached(
        "INSERT INTO series (key, metric, unit, description, shape, resource_id, scope_name, scope_version, attrs_text,
            session_id, model, type, user_id, created_ns, expo_family, expo_unit, labels_text, expo_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        desc.key.to_be_bytes().as_slice(),
        desc.metric,
        desc.unit,
        desc.description,
        desc.shape.code(),
        resource_id,
        desc.scope_name,
        desc.scope_version,
        texts.attrs,
        session,
        get("model"),
        get("type"),
        get("user.id"),
        clamp_i64(created_ns),
        expo.family,
        expo.unit,
        texts.labels,
        series_texts::expo_hash(&expo.family, &expo.labels),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The id of `resource`'s row, stored now if it is new.
pub(super) fn stored_resource_id(
    conn: &Connection,
    resource: &Resource,
) -> Result<i64, StoreError> {
    let key = resource.key.to_be_bytes();
    let existing: Option<i64> = conn
        .query_row("SELECT id FROM resources WHERE key = ?1", [key.as_slice()], |r| r.get(0))
        .optional()?;
    match existing {
        Some(id) => Ok(id),
        None => {
            conn.execute(
                "INSERT INTO resources (key, attrs) VALUES (?1, ?2)",
                params![key.as_slice(), attrs::to_json(&resource.attrs)],
            )?;
            Ok(conn.last_insert_rowid())
        }
    }
}

/// Stores one event: its figures in their columns (its session by `session`, the key
/// [`super::events::session_key`] gave), the rest of its attributes compactly (store/events.rs).
fn insert_event(
    tx: &Transaction<'_>,
    event: &crate::ingest::EventRecord,
    resource_id: i64,
    session: Option<i64>,
) -> Result<(), StoreError> {
    let columns = super::events::Columns {
        time_ns: event.time_ns,
        session_id: event.session_id.clone(),
        prompt_id: event.prompt_id.clone(),
        model: event.model.clone(),
        cost_usd: event.cost_usd,
        input_tokens: event.input_tokens,
        output_tokens: event.output_tokens,
        cache_read_tokens: event.cache_read_tokens,
        cache_creation_tokens: event.cache_creation_tokens,
        duration_ms: event.duration_ms,
        request_id: super::request_ids::request_id_of(&event.attrs).map(str::to_string),
    };
    let attrs: serde_json::Map<String, serde_json::Value> =
        event.attrs.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    let stored = super::events::split(&attrs, &columns);
    let attr_set = super::events::attr_set_id(tx, &stored.strings)?;
    tx.prepare_cached(
        "INSERT INTO events (time_ns, name, resource_id, session_key, prompt_id, model, cost_usd, input_tokens,
            output_tokens, cache_read_tokens, cache_creation_tokens, duration_ms, request_id, promoted,
            attr_set, attr_values)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        columns.time_ns,
        event.name,
        resource_id,
        session,
        columns.prompt_id,
        columns.model,
        columns.cost_usd,
        columns.input_tokens,
        columns.output_tokens,
        columns.cache_read_tokens,
        columns.cache_creation_tokens,
        columns.duration_ms,
        columns.request_id,
        stored.promoted,
        attr_set,
        stored.values,
    ])?;
    Ok(())
}

/// The columns every series load reads: the series, its rendered identity, the attributes to
/// render one from where it is missing, and its running state.
fn series_columns() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT s.id, s.key, s.metric, s.unit, s.description, s.shape, s.resource_id, s.created_ns,
                s.expo_family, s.expo_unit, {LABELS_SQL},
                CASE WHEN s.labels_text IS NULL THEN s.scope_name END,
                CASE WHEN s.labels_text IS NULL THEN s.scope_version END,
                CASE WHEN s.labels_text IS NULL THEN {ATTRS_SQL} END,
                COALESCE(st.total, 0), st.hist, st.cum_start_ns, st.cum_time_ns, st.cum_value, COALESCE(st.last_time_ns, 0),
                st.rollup_key, st.rollup_session
             FROM series s LEFT JOIN series_state st ON st.series_id = s.id"
        )
    })
}

/// Which stored series a load reads.
#[derive(Debug, Clone, Copy)]
enum SeriesFilter {
    /// All of them.
    Every,
    /// Those of every `/metrics` row with a point at or after `?1` (ns): the active rows.
    ActiveSince,
    /// Those of the `/metrics` row of hash `?1`, family `?2` and labels `?3`.
    Row,
    /// The one with key `?1`.
    Key,
}

impl SeriesFilter {
    fn sql(self) -> &'static str {
        // Built once per filter; `prepare_cached` keeps the statements.
        static SQL: std::sync::OnceLock<[String; 4]> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let columns = series_columns();
            [
                format!("{columns} ORDER BY s.id"),
                // By hash alone: a series of another row with the same hash (2^-64) would only
                // be loaded early, with its own exact state.
                format!(
                    "{columns} WHERE s.expo_hash IN (
                        SELECT x.expo_hash FROM series_state a
                        JOIN series x ON x.id = a.series_id WHERE a.last_time_ns >= ?1)
                     ORDER BY s.id"
                ),
                format!(
                    "{columns} WHERE s.expo_hash = ?1 AND s.expo_family = ?2 AND {LABELS_SQL} = ?3
                     ORDER BY s.id"
                ),
                format!("{columns} WHERE s.key = ?1"),
            ]
        });
        match self {
            SeriesFilter::Every => &sql[0],
            SeriesFilter::ActiveSince => &sql[1],
            SeriesFilter::Row => &sql[2],
            SeriesFilter::Key => &sql[3],
        }
    }
}

/// The resource `id` with its `target` labels, read once and kept in `cache`; `None` for an id
/// with no row (a damaged history repaired without it).
fn resource_row(
    conn: &Connection,
    cache: &mut HashMap<i64, StoredResource>,
    id: i64,
) -> Result<Option<StoredResource>, StoreError> {
    if let Some(found) = cache.get(&id) {
        return Ok(Some(found.clone()));
    }
    let stored: Option<(Vec<u8>, String)> = conn
        .prepare_cached("SELECT key, attrs FROM resources WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((key, attrs_json)) = stored else { return Ok(None) };
    let resource =
        Arc::new(Resource { attrs: attrs::from_json(&attrs_json), key: key_from_blob(&key) });
    let target = live::target_labels(&resource).1;
    cache.insert(id, (resource.clone(), target.clone()));
    Ok(Some((resource, target)))
}

fn now_u64() -> u64 {
    crate::ingest::now_ns().max(0) as u64
}

fn key_from_blob(blob: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = blob.len().min(16);
    bytes[..n].copy_from_slice(&blob[..n]);
    u128::from_be_bytes(bytes)
}
