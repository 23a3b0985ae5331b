//! An import asked of the running engine (`POST /api/import`, sent by `tokentray import`): the
//! process that holds the data directory does the writing, the asking process only follows the
//! progress (`GET /api/import`). One runs at a time; asking while one runs joins it. It takes
//! its turn with the engine's own import and follower ([`Store::transcript_turn`]), so no
//! file is read by two importers at once; requests are keyed by their id in the store besides,
//! so a request either of them already stored is not counted again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::import::{all_files, Importer, Progress};
use super::TranscriptsConfig;
use crate::store::Store;

/// Where the import asked of the engine stands: the JSON of `GET /api/import` and of the
/// answer to `POST /api/import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStatus {
    /// The engine's process id.
    pub pid: u32,
    /// Number of the import, counted from 1 since the engine started; 0: none asked yet.
    pub id: u64,
    /// This answer to a `POST` joined an import that was already running.
    #[serde(default)]
    pub joined: bool,
    /// Still running (or waiting for the engine's own import to finish first).
    pub running: bool,
    /// Finished: every file read to its end.
    pub done: bool,
    /// Ended before the end because the engine is stopping (the next import continues).
    pub stopped: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Transcript files this import covers.
    pub files_total: u64,
    /// Files read to their end so far.
    pub files_done: u64,
    /// Sum of the files' sizes in bytes when the import started.
    pub bytes_total: u64,
    /// Bytes read (or skipped as read before) so far.
    pub bytes_done: u64,
    /// Requests not stored before.
    pub new_requests: u64,
    /// Complete lines that did not parse as a transcript entry (skipped).
    pub malformed_lines: u64,
}

impl ImportStatus {
    /// The counts as the importer's [`Progress`], so both ways of importing draw the same bar.
    pub fn progress(&self) -> Progress {
        Progress {
            files_total: self.files_total,
            files_done: self.files_done,
            bytes_total: self.bytes_total,
            bytes_done: self.bytes_done,
            new_requests: self.new_requests,
            malformed_lines: self.malformed_lines,
            stopped: self.stopped,
        }
    }

    fn take_counts(&mut self, p: &Progress) {
        self.files_total = p.files_total;
        self.files_done = p.files_done;
        self.bytes_total = p.bytes_total;
        self.bytes_done = p.bytes_done;
        self.new_requests = p.new_requests;
        self.malformed_lines = p.malformed_lines;
    }
}

/// Why the engine did not start an import.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// `[transcripts] enabled = false` in the engine's config.
    #[error("transcripts are off in the engine's config ([transcripts] enabled = false)")]
    Off,
    /// The import thread could not be started.
    #[error("cannot start the import thread: {0}")]
    Thread(String),
}

/// The imports asked of this engine: at most one runs.
pub(crate) struct RequestedImports {
    store: Store,
    config: TranscriptsConfig,
    status: Arc<Mutex<ImportStatus>>,
    stop: Arc<AtomicBool>,
}

impl RequestedImports {
    pub(crate) fn new(store: Store, config: TranscriptsConfig) -> RequestedImports {
        let status = ImportStatus { pid: std::process::id(), ..ImportStatus::default() };
        RequestedImports {
            store,
            config,
            status: Arc::new(Mutex::new(status)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The last import asked for (or the running one).
    pub(crate) fn status(&self) -> ImportStatus {
        lock(&self.status).clone()
    }

    /// Starts an import of every transcript file on a thread of its own, or joins the one
    /// running (`joined` in the answer).
    pub(crate) fn start(&self) -> Result<ImportStatus, RequestError> {
        if !self.config.enabled {
            return Err(RequestError::Off);
        }
        // Checked and marked under one lock: two requests at once start one import.
        let mut status = lock(&self.status);
        if status.running {
            return Ok(ImportStatus { joined: true, ..status.clone() });
        }
        *status = ImportStatus {
            pid: status.pid,
            id: status.id + 1,
            running: true,
            ..ImportStatus::default()
        };
        let (store, config, shared, stop) =
            (self.store.clone(), self.config.clone(), self.status.clone(), self.stop.clone());
        let spawned = std::thread::Builder::new()
            .name("tokentray-import".into())
            .spawn(move || run(&store, &config, &shared, &stop));
        if let Err(e) = spawned {
            status.running = false;
            status.error = Some(e.to_string());
            return Err(RequestError::Thread(e.to_string()));
        }
        Ok(status.clone())
    }

    /// The engine is stopping: a running import ends after the chunk being written.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn lock(status: &Mutex<ImportStatus>) -> MutexGuard<'_, ImportStatus> {
    // Only counts live behind it: a panicked writer leaves them readable.
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(store: &Store, config: &TranscriptsConfig, status: &Mutex<ImportStatus>, stop: &AtomicBool) {
    let _turn = store.transcript_turn();
    let files = all_files(config);
    let mut announced = 0;
    let result = Importer::open(store.path()).and_then(|mut importer| {
        importer.run(&files, stop, |p| {
            lock(status).take_counts(p);
            // Announced like the engine's own import: the tray and dashboard follow.
            if p.new_requests > announced {
                announced = p.new_requests;
                store.announce_change();
            }
        })
    });
    // The announcements above come while the last group is still open: this one comes after
    // its commit.
    if announced > 0 {
        store.announce_change();
    }
    let mut status = lock(status);
    status.running = false;
    match result {
        Ok(p) => {
            status.take_counts(&p);
            status.stopped = p.stopped;
            status.done = !p.stopped;
            tracing::info!(
                files = p.files_done,
                new_requests = p.new_requests,
                malformed = p.malformed_lines,
                stopped = p.stopped,
                "requested transcript import ended"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "requested transcript import failed");
            status.error = Some(e.to_string());
        }
    }
}
