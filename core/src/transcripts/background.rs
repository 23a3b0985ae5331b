//! The engine's own import: started with `serve` and the tray (the process that holds the data
//! directory does the importing), on a thread of its own, so the first minute already shows
//! the history on disk; then it follows the transcripts live (`follow.rs`). Commits are
//! announced like telemetry's, so the tray label, the dashboard and budgets follow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::follow::{self, Wake};
use super::import::{all_files, Importer};
use super::TranscriptsConfig;
use crate::store::Store;

/// The running import and follower; dropping it stops both (after the chunk being written).
pub struct BackgroundImport {
    stop: Arc<AtomicBool>,
    wake: Sender<Wake>,
    handle: Option<JoinHandle<()>>,
}

impl BackgroundImport {
    /// Starts importing every transcript file not yet read, then following them (nothing when
    /// transcripts are off).
    pub fn start(store: &Store, config: &TranscriptsConfig) -> Option<BackgroundImport> {
        if !config.enabled {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel();
        let (store, config, flag, events) =
            (store.clone(), config.clone(), stop.clone(), wake.clone());
        let handle = std::thread::Builder::new()
            .name("tokentray-transcripts".into())
            .spawn(move || run(&store, &config, &flag, events, &woken))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the transcript import"))
            .ok()?;
        Some(BackgroundImport { stop, wake, handle: Some(handle) })
    }
}

fn run(
    store: &Store,
    config: &TranscriptsConfig,
    stop: &AtomicBool,
    events: Sender<Wake>,
    woken: &Receiver<Wake>,
) {
    let mut importer = match Importer::open(store.path()) {
        Ok(i) => i,
        Err(e) => return tracing::warn!(error = %e, "transcript import not started"),
    };
    // Watching starts before the first read, so nothing written during the import is missed.
    let watcher = follow::watch(config, events);
    start_up_import(&mut importer, store, config, stop);
    if watcher.is_some() && !stop.load(Ordering::Relaxed) {
        tracing::info!("following the transcripts");
        follow::follow(&mut importer, store, config, woken, stop);
    }
}

fn start_up_import(
    importer: &mut Importer,
    store: &Store,
    config: &TranscriptsConfig,
    stop: &AtomicBool,
) {
    // An import asked for over HTTP waits for this one (and the other way round).
    let _turn = store.transcript_turn();
    let files = all_files(config);
    let mut announced = 0;
    let result = importer.run(&files, stop, |p| {
        if p.new_requests > announced {
            announced = p.new_requests;
            store.announce_change();
        }
    });
    // The announcements above come while the last group is still open: this one comes after
    // its commit, so a reader woken by it (the exposer) sees every request.
    if announced > 0 {
        store.announce_change();
    }
    match result {
        Ok(p) => tracing::info!(
            files = p.files_done,
            new_requests = p.new_requests,
            malformed = p.malformed_lines,
            "transcripts imported"
        ),
        Err(e) => tracing::warn!(error = %e, "transcript import stopped"),
    }
}

impl Drop for BackgroundImport {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(Wake::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
