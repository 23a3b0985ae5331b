//! Following the transcripts live: after the start-up import, the file-system notifications
//! (`notify`: inotify, FSEvents, ReadDirectoryChangesW) for each projects folder, recursively,
//! wake the engine's transcript thread, which reads what is new in the files named.
//!
//! No polling: with nothing written the thread blocks on its channel without a timeout. A burst
//! of writes (Claude Code writes a line per content block) is gathered until it has been quiet
//! for [`QUIET`] (at most [`MAX_GATHER`]) and imported as one batch, announced once. The
//! importer's read positions do the rest: only new complete lines are read, a half-written
//! line is read again when complete, a truncated or rewritten file is read again from the start.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::discover;
use super::import::{all_files, Importer};
use super::TranscriptsConfig;
use crate::store::Store;

/// How long a burst of writes must have been quiet before it is imported.
const QUIET: Duration = Duration::from_millis(60);
/// The longest a batch waits while writes keep coming.
const MAX_GATHER: Duration = Duration::from_millis(300);

/// What wakes the transcript thread.
#[derive(Debug)]
pub(super) enum Wake {
    /// Files or folders that changed.
    Paths(Vec<PathBuf>),
    /// Events were lost (the kernel's queue overflowed): look at every file.
    Rescan,
    /// The engine is stopping.
    Stop,
}

/// Watches every configured projects folder, sending what changes to `wake`. `None` when no
/// folder could be watched (none exists yet, or the platform refuses).
pub(super) fn watch(config: &TranscriptsConfig, wake: Sender<Wake>) -> Option<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event| forward(event, &wake))
        .map_err(|e| tracing::warn!(error = %e, "cannot follow the transcripts"))
        .ok()?;
    let mut watching = 0;
    for dir in discover::config_dirs(config) {
        let root = discover::projects_root(&dir);
        match watcher.watch(&root, RecursiveMode::Recursive) {
            Ok(()) => watching += 1,
            Err(e) => tracing::debug!(dir = %root.display(), error = %e, "not followed"),
        }
    }
    (watching > 0).then_some(watcher)
}

fn forward(event: notify::Result<notify::Event>, wake: &Sender<Wake>) {
    let event = match event {
        Ok(event) => event,
        Err(e) => return tracing::warn!(error = %e, "transcript notification"),
    };
    let wake_up = if event.need_rescan() {
        Wake::Rescan
    } else if matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other
    ) {
        Wake::Paths(event.paths)
    } else {
        return;
    };
    let _ = wake.send(wake_up);
}

/// Imports what the notifications name until [`Wake::Stop`] (or every sender is gone).
pub(super) fn follow(
    importer: &mut Importer,
    store: &Store,
    config: &TranscriptsConfig,
    wake: &Receiver<Wake>,
    stop: &AtomicBool,
) {
    // Blocks without a timeout: nothing written, no wake-up.
    while let Ok(first) = wake.recv() {
        let Some(files) = gather(first, wake, config) else { return };
        if files.is_empty() {
            continue;
        }
        let files: Vec<PathBuf> = files.into_iter().collect();
        let turn = store.transcript_turn();
        let result = importer.run(&files, stop, |_| {});
        drop(turn);
        match result {
            Ok(p) => {
                tracing::debug!(files = files.len(), new_requests = p.new_requests, "followed");
                store.announce_change();
            }
            Err(e) => tracing::warn!(error = %e, "reading new transcript lines"),
        }
    }
}

/// The transcript files a burst of notifications names; `None` when the engine stops.
fn gather(
    first: Wake,
    wake: &Receiver<Wake>,
    config: &TranscriptsConfig,
) -> Option<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    add(first, &mut files, config)?;
    let started = Instant::now();
    while started.elapsed() < MAX_GATHER {
        match wake.recv_timeout(QUIET) {
            Ok(next) => add(next, &mut files, config)?,
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
    Some(files)
}

/// Adds the transcript files a notification names: a new folder (a new project, or a
/// subagents folder) is listed whole, since files may be in it before its watch was added.
fn add(wake: Wake, files: &mut BTreeSet<PathBuf>, config: &TranscriptsConfig) -> Option<()> {
    match wake {
        Wake::Stop => return None,
        Wake::Rescan => files.extend(all_files(config)),
        Wake::Paths(paths) => {
            for path in paths {
                if path.is_dir() {
                    files.extend(discover::transcript_files(&path));
                } else if path.extension().is_some_and(|e| e == "jsonl") {
                    files.insert(path);
                }
            }
        }
    }
    Some(())
}
