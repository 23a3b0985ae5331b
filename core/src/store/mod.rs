//! Local history in SQLite: the only state tokentray has.
//!
//! * [`Store`] owns one writer thread ([`writer`]) that applies batches with exact accounting
//!   ([`accounting`]) and acknowledges a request only after its transaction committed.
//! * `/metrics` reads the in-memory totals ([`live`]) the writer keeps in step with the database:
//!   with [`Store::open_shaped`] only the active series, loaded by key from `series_state` when
//!   a point arrives and let go again when idle, so memory and start-up do not grow with history.
//! * Reports read the database through [`Reader`] ([`read`]), from `serve` or any other process.
//! * Everything else kept in the file has its typed methods here too: [`settings`], the
//!   forwarding [`outbox`], the budget [`alerts`]. This module tree is the only place that holds
//!   a SQLite connection (`clippy.toml` disallows `rusqlite::Connection` everywhere else), and
//!   [`open_migrated`] is the one way a connection is opened.
#![allow(clippy::disallowed_types)]

pub(crate) mod accounting;
pub(crate) mod agents;
pub(crate) mod alerts;
mod clean_close;
pub mod data_dir;
pub mod disk;
mod events;
mod integrity;
mod kinds;
#[cfg(any(test, feature = "testkit"))]
pub(crate) mod legacy;
pub(crate) mod live;
mod lock;
mod machines;
pub(crate) mod outbox;
pub(crate) mod pushgateway;
pub(crate) mod read;
mod read_settings;
mod repair;
mod request_ids;
mod rollups;
pub(crate) mod schema;
mod series_texts;
pub(crate) mod settings;
mod transcript_sums;
pub(crate) mod transcripts;
mod writer;

#[cfg(feature = "testkit")]
pub(crate) use integrity::table_pages;
pub use integrity::Damage;
pub use lock::{running_engine, EngineInfo, LockError, LOCK_FILE};
pub use machines::MachineUsage;
pub use read::{EventFigures, EventRow, Reader};
pub use repair::{repair, RepairOutcome, RepairReport, TableRecovery};
pub use transcripts::NewestRequest;
pub use writer::SLOT_SECONDS;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::exposition::Snapshot;
use crate::ingest::Batch;
use live::Live;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, corruption, busy, a bad query); the SQLite error as text.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The data directory is missing and could not be created.
    #[error("cannot create the data directory {path}: {reason}")]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The data directory's path names a file.
    #[error("the data directory {path} is a file, not a directory; pass --data-dir with a directory (or move the file away)")]
    NotADirectory {
        /// The data directory.
        path: PathBuf,
    },
    /// A reader was opened on a data directory that does not exist (readers never create it).
    #[error("the data directory {path} does not exist; check --data-dir (`tokentray serve` or the tray creates it on first start)")]
    NoDataDir {
        /// The data directory.
        path: PathBuf,
    },
    /// The database can only be opened read-only and cannot be used as it is (e.g. its schema
    /// is older and needs an upgrade, which takes write access).
    #[error("the history {path} can only be read here, and {reason}")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// Why read-only access is not enough.
        reason: String,
    },
    /// The database's schema version is newer than this build knows.
    #[error("the database was written by a newer tokentray (schema {found}, this build knows up to {supported}); upgrade tokentray")]
    TooNew {
        /// The database's `PRAGMA user_version`.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// Stored state (JSON) could not be serialised; the serde error as text.
    #[error("could not encode state: {0}")]
    Encode(String),
    /// The writer has stopped: the store was closed or is closing.
    #[error("the store is shutting down")]
    Closed,
    /// A thread panicked while holding one of the store's locks.
    #[error("internal lock poisoned")]
    Poisoned,
    /// The database file is damaged: found at start by the integrity check, before anything
    /// was written to it (`tokentray repair` keeps a copy and recovers what can be read).
    #[error("the history {path} is damaged: {damage}. Stop tokentray and run `tokentray repair`: it keeps a copy of the damaged file and recovers what SQLite can read into a new one")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        damage: Damage,
    },
    /// `tokentray repair` could not finish (the damaged file is untouched; its copy may exist).
    #[error("cannot repair the history: {0}")]
    Repair(String),
    /// SQLite reported damage while reading or writing (after the start-up check passed).
    #[error("the database is damaged ({0}); stop tokentray and run `tokentray repair`")]
    Corrupt(String),
    /// The data directory's engine lock is held by another engine (`serve` or the tray) or
    /// its lock file cannot be used.
    #[error(transparent)]
    Locked(#[from] LockError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        // Damage is not worth retrying: a client told "retry later" would retry forever.
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

impl StoreError {
    /// The database file is damaged: retrying cannot help, `tokentray repair` can.
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Damaged { .. } | StoreError::Corrupt(_))
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

/// What became of one request's records once committed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ack {
    /// Data points, log records and spans stored.
    pub accepted: usize,
    /// Refused, with the first reason (reported to the client as OTLP partial success).
    pub rejected: u64,
    /// The first rejection's reason; `None` when nothing was rejected.
    pub reason: Option<String>,
}

/// Published after each commit, so the UI and budgets react to new data without polling.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Records accepted by the commit: data points, log records and spans.
    pub points: usize,
    /// Log records (events) in the committed requests.
    pub events: usize,
    /// When the commit happened, in nanoseconds since the Unix epoch.
    pub at_ns: i64,
}

/// What the store queues for forwarding (set by the forwarder, read on every request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ForwardMode {
    /// Queue accepted metrics and logs requests (OTLP forwarding).
    pub otlp: bool,
    /// Queue traces requests too.
    pub traces: bool,
    /// Mark series whose total changed (remote write).
    pub remote_write: bool,
}

impl ForwardMode {
    /// Nothing is queued: forwarding is off.
    pub(crate) const OFF: ForwardMode =
        ForwardMode { otlp: false, traces: false, remote_write: false };

    fn bits(self) -> u8 {
        u8::from(self.otlp) | u8::from(self.traces) << 1 | u8::from(self.remote_write) << 2
    }

    fn from_bits(b: u8) -> ForwardMode {
        ForwardMode { otlp: b & 1 != 0, traces: b & 2 != 0, remote_write: b & 4 != 0 }
    }
}

/// Handle to the store; cheap to clone. The writer thread stops once the last handle is dropped,
/// after finishing what was queued.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    path: PathBuf,
    /// When the file was last checked in full (Unix seconds), for the clean-close stamp.
    checked_at: i64,
    jobs: Mutex<Option<mpsc::Sender<writer::Job>>>,
    live: Arc<RwLock<Live>>,
    changes: broadcast::Sender<Change>,
    /// The writer thread; it returns whether it ended cleanly.
    writer: Mutex<Option<JoinHandle<bool>>>,
    forward: Arc<AtomicU8>,
    /// This process is the data directory's one engine while it holds this; `close` lets go.
    engine_lock: Mutex<Option<lock::EngineLock>>,
    /// Held by whichever transcript import of this engine runs (the background one and its
    /// follower, one asked for over HTTP): two reading the same file at once would each add its
    /// malformed lines to the file's count and move its read position back and forth.
    transcript_turn: Mutex<()>,
    /// Stops the timer that lets idle series go from memory, once dropped.
    release_timer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

/// How often idle series are let go from memory.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the thread that asks the writer to let idle series go every [`RELEASE_EVERY`]; it
/// stops when the returned sender is dropped (or the writer is gone). It holds only a weak
/// handle to the writer's queue, so it never keeps a closing store open.
fn release_timer(
    jobs: &mpsc::Sender<writer::Job>,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let jobs = jobs.downgrade();
    std::thread::Builder::new()
        .name("tokentray-release".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(RELEASE_EVERY)
            {
                let Some(jobs) = jobs.upgrade() else { return };
                // A full queue is busy writing: the next tick will do.
                let _ = jobs.try_send(writer::Job::ReleaseIdle { reply: None });
            }
        })
        .map_err(|e| StoreError::Sqlite(format!("cannot start the release timer: {e}")))?;
    Ok(stop)
}

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tokentray.sqlite3";

/// Opens a connection with the settings every tokentray connection uses.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL lets reports read while the writer writes. FULL makes each commit durable before the
    // client is acknowledged (the group commit pays one fsync for many requests).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// The one way a database file is opened for use: the common settings, then every migration
/// it lacks. The writer, the readers, the forwarder's outbox and the alert state all open here.
pub(crate) fn open_migrated(path: &Path) -> Result<Connection, StoreError> {
    open_checked(path, integrity::reader_expects_history(path), false)
}

/// [`open_migrated`] for a caller that knows whether a history is expected (an engine decides
/// before its own lock file exists) and wants SQLite's `quick_check` before anything is written.
fn open_checked(
    path: &Path,
    history_expected: bool,
    quick_check: bool,
) -> Result<Connection, StoreError> {
    integrity::check_files(path, history_expected)?;
    if quick_check {
        integrity::quick_check_file(path)?;
    }
    let mut conn = connect(path).map_err(|e| damaged_if_corrupt(e, path))?;
    schema::migrate(&mut conn).map_err(|e| damaged_if_corrupt(e, path))?;
    Ok(conn)
}

/// SQLite's own corruption errors on opening, as the one-line damage report.
fn damaged_if_corrupt(e: StoreError, path: &Path) -> StoreError {
    match e {
        StoreError::Corrupt(finding) => {
            StoreError::Damaged { path: path.to_path_buf(), damage: Damage::Pages(finding) }
        }
        other => other,
    }
}

/// Stores the plan usage the statusline handed over (JSON) in the history of `data_dir`,
/// creating it on a first run.
pub(crate) fn save_plan_rate_limits(data_dir: &Path, json: &str) -> Result<(), StoreError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StoreError::DataDir { path: data_dir.to_path_buf(), reason: e.to_string() })?;
    let conn = open_migrated(&data_dir.join(DB_FILE))?;
    settings::set(&conn, settings::key::PLAN_RATE_LIMITS, json)
}

impl Store {
    /// Opens (creating and migrating as needed) the database in `data_dir` and starts the writer,
    /// holding every stored series in memory ([`Store::snapshot`] shows them all).
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, writer::Residency::Every)
    }

    /// [`Store::open`] for an engine whose `/metrics` is shaped by `shape`: when idle series
    /// leave `/metrics` (and none are folded into others by `drop_labels`), only the active ones
    /// are held in memory. Start-up then loads no idle series' state, idle series leave memory
    /// again (checked every minute), and a point for one loads its exact total back first.
    pub fn open_shaped(
        data_dir: &Path,
        shape: &crate::exposition::shape::MetricsShape,
    ) -> Result<Store, StoreError> {
        let residency = match shape.idle_after_ns {
            Some(idle_after_ns) if shape.drop_labels.is_empty() => {
                writer::Residency::Active { idle_after_ns }
            }
            // Every series shows, or folded totals need the idle ones too.
            _ => writer::Residency::Every,
        };
        Store::open_with(data_dir, residency)
    }

    fn open_with(data_dir: &Path, residency: writer::Residency) -> Result<Store, StoreError> {
        data_dir::create(data_dir)?;
        let path = data_dir.join(DB_FILE);
        // Decided before this engine's own lock file exists.
        let history_expected = integrity::history_expected(&path);
        // Before the database is touched: a second engine must change nothing.
        let engine_lock = lock::EngineLock::acquire(data_dir)?;
        let now = chrono::Utc::now().timestamp();
        // The file-level checks always run; SQLite's page check only when no clean close
        // vouches for the file (store/clean_close.rs).
        let (page_check, checked_at) = match clean_close::take(data_dir, &path, now) {
            clean_close::StartCheck::Trusted { checked_at } => {
                tracing::debug!(
                    checked_at,
                    "the history is as its clean close left it: no page check"
                );
                (false, checked_at)
            }
            clean_close::StartCheck::Needed => {
                tracing::debug!("checking every page of the history");
                (true, now)
            }
        };
        let conn = open_checked(&path, history_expected, page_check)?;
        let live = Arc::new(RwLock::new(Live::default()));
        let (changes, _) = broadcast::channel(64);
        let forward = Arc::new(AtomicU8::new(0));
        let writer =
            writer::Writer::load(conn, residency, live.clone(), changes.clone(), forward.clone())?;
        writer.tune_for_writing()?;
        let (tx, rx) = mpsc::channel(1024);
        let handle = std::thread::Builder::new()
            .name("tokentray-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Sqlite(format!("cannot start the writer thread: {e}")))?;
        let release_timer = match residency {
            writer::Residency::Active { .. } => Some(release_timer(&tx)?),
            writer::Residency::Every => None,
        };
        Ok(Store {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                checked_at,
                path,
                jobs: Mutex::new(Some(tx)),
                live,
                changes,
                writer: Mutex::new(Some(handle)),
                forward,
                engine_lock: Mutex::new(Some(engine_lock)),
                transcript_turn: Mutex::new(()),
                release_timer: Mutex::new(release_timer),
            }),
        })
    }

    /// Records the addresses this engine listens on in the data directory's lock file, where
    /// [`running_engine`] (a second engine's refusal, `doctor`, another tray) finds them.
    pub fn announce_listeners(
        &self,
        otlp_grpc: std::net::SocketAddr,
        otlp_http: std::net::SocketAddr,
        metrics: std::net::SocketAddr,
    ) -> Result<(), StoreError> {
        let mut guard = self.inner.engine_lock.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(lock) = guard.as_mut() {
            lock.announce(
                Some(otlp_grpc.to_string()),
                Some(otlp_http.to_string()),
                Some(metrics.to_string()),
            )?;
        }
        Ok(())
    }

    /// The writer's queue, while the store is open.
    fn writer_queue(&self) -> Result<mpsc::Sender<writer::Job>, StoreError> {
        self.inner.jobs.lock().map_err(|_| StoreError::Poisoned)?.clone().ok_or(StoreError::Closed)
    }

    /// Stores a batch; resolves once it is committed to disk.
    pub async fn ingest(&self, batch: Batch) -> Result<Ack, StoreError> {
        let sender = self.writer_queue()?;
        let (reply, rx) = oneshot::channel();
        sender
            .send(writer::Job::Ingest { batch: Box::new(batch), reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Lets the series that went idle go from memory now, as the engine does every minute
    /// (nothing happens for a store opened with [`Store::open`]). Returns how many `/metrics`
    /// rows left memory; their totals stay in the history and come back with their next point.
    pub async fn release_idle_series(&self) -> Result<usize, StoreError> {
        let sender = self.writer_queue()?;
        let (reply, rx) = oneshot::channel();
        sender
            .send(writer::Job::ReleaseIdle { reply: Some(reply) })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// What is queued for forwarding from now on.
    pub(crate) fn forward_mode(&self) -> ForwardMode {
        ForwardMode::from_bits(self.inner.forward.load(Ordering::Acquire))
    }

    /// Set by the forwarder when forwarding is turned on or off or its protocol changes.
    pub(crate) fn set_forward_mode(&self, mode: ForwardMode) {
        self.inner.forward.store(mode.bits(), Ordering::Release);
    }

    /// Current totals for `/metrics`.
    pub fn snapshot(&self) -> Snapshot {
        match self.inner.live.read() {
            Ok(live) => live.snapshot(),
            Err(poisoned) => poisoned.into_inner().snapshot(),
        }
    }

    /// What `/metrics` shows now, shaped by `[metrics]` (idle series left out, labels dropped).
    pub(crate) fn metrics_snapshot(
        &self,
        shape: &crate::exposition::shape::MetricsShape,
    ) -> Snapshot {
        let now_ns = crate::ingest::now_ns().max(0) as u64;
        match self.inner.live.read() {
            Ok(live) => live.snapshot_shaped(shape, now_ns),
            Err(poisoned) => poisoned.into_inner().snapshot_shaped(shape, now_ns),
        }
    }

    /// Number of `/metrics` rows held in memory (shown or idle); with [`Store::open_shaped`]
    /// only the active ones.
    pub fn series_count(&self) -> usize {
        self.inner.live.read().map(|l| l.series_count()).unwrap_or(0)
    }

    /// Tells subscribers (tray label, dashboard, budgets) that data written beside the writer
    /// thread (the transcript import) is committed.
    pub(crate) fn announce_change(&self) {
        let at_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let _ = self.inner.changes.send(Change { points: 0, events: 1, at_ns });
    }

    /// Waits until no other transcript import of this engine runs; it is this caller's turn
    /// until the guard drops. A holder that panicked left nothing half-done (each chunk is one
    /// transaction), so a poisoned lock is taken as it is.
    pub(crate) fn transcript_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.transcript_turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notifications of committed changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// A read connection for reports and dashboards.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::open_file(&self.inner.path)
    }

    /// The database file this store writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops accepting batches, lets the writer finish what is queued, and waits for it.
    pub fn close(&self) {
        self.inner.stop_writer();
        // Nothing writes any more: another engine may take the directory now.
        if let Ok(mut lock) = self.inner.engine_lock.lock() {
            lock.take();
        }
    }
}

impl Inner {
    /// Closes the writer's queue and waits for it to finish what is queued; after a clean end,
    /// leaves the stamp that spares the next start its full check (store/clean_close.rs).
    /// Called with the engine lock still held.
    fn stop_writer(&self) {
        if let Ok(mut timer) = self.release_timer.lock() {
            timer.take();
        }
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(Ok(true)) = handle.map(JoinHandle::join) {
            clean_close::leave(&self.data_dir, &self.path, self.checked_at);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The lock is a field: it is let go after this, once the writer has stopped.
        self.stop_writer();
    }
}
