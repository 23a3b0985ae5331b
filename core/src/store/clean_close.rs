//! Skipping the start-up `quick_check` for a file that is provably as its engine left it.
//!
//! `PRAGMA quick_check` reads every page, so on a year of history it is most of the time from
//! start to bound ports (issue 13's goal is 100 ms; the check alone took 150–350 ms). Yet on
//! almost every start the file is exactly what the previous engine checked and then wrote
//! through SQLite. So an engine that closes cleanly — its writer ended without a damage error
//! and folded the write-ahead log into the file — leaves a stamp beside it: the file's identity
//! (device, inode, size, modification and status-change times) and when it was last checked in
//! full. The next engine trusts the file without a check when
//!
//! 1. the stamp names exactly the file it finds (any write through the file system, a copy,
//!    a restore, a truncation, `touch`, `tokentray repair`, another program's SQLite write
//!    changes the status-change time, which no program can set back),
//! 2. there is no write-ahead log with content beside it, and
//! 3. the last full check is less than [`RECHECK_AFTER_SECS`] old,
//!
//! and checks in full otherwise (the first start, after a crash, a kill, a damage error, or
//! anything that touched the file). The stamp is removed before anything is written, so a run
//! that does not end cleanly leaves none. What the stamp cannot see is damage below the file
//! system (a failing disk changing bytes in place): SQLite reports that when it reads the page
//! (the engine answers it as damage, see [`super::StoreError::Corrupt`], and `doctor` names
//! `repair`), and the weekly full check bounds how long it can go unnoticed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::integrity::sidecar;

/// The stamp's file name in the data directory.
pub(crate) const STAMP_FILE: &str = "clean-close.json";

/// A file is checked in full at least this often (seconds), stamp or not.
const RECHECK_AFTER_SECS: i64 = 7 * 24 * 3600;

/// File timestamps come from the kernel's coarse clock (one tick, up to 10 ms): a write in the
/// same tick as the engine's last one would keep the status-change time the stamp names. The
/// stamp is written only once this much time has passed since that change.
const TIMESTAMP_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// What identifies one state of the database file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    file: FileIdentity,
    /// Unix seconds of the last full `quick_check` of this file.
    checked_at: i64,
}

/// What an engine's start found beside the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartCheck {
    /// The file is as a clean close left it; it was last checked in full at this Unix time.
    Trusted { checked_at: i64 },
    /// The file must be checked in full.
    Needed,
}

/// Reads and removes the stamp in `data_dir` (the engine holds the directory's lock), and says
/// whether the database at `db_path` may skip its full check. `now` is Unix seconds.
pub(crate) fn take(data_dir: &Path, db_path: &Path, now: i64) -> StartCheck {
    let path = stamp_path(data_dir);
    let stamp =
        std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<Stamp>(&bytes).ok());
    // Removed before anything is written: a run that does not end cleanly leaves no stamp.
    // If it cannot be removed, it cannot be relied on either.
    let removed = match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    let Some(stamp) = stamp else { return StartCheck::Needed };
    let unchanged = identity(db_path).as_ref() == Some(&stamp.file);
    let recent = (0..RECHECK_AFTER_SECS).contains(&(now - stamp.checked_at));
    if removed && unchanged && recent && !wal_has_content(db_path) {
        StartCheck::Trusted { checked_at: stamp.checked_at }
    } else {
        StartCheck::Needed
    }
}

/// Leaves the stamp for the next engine after a clean close: the writer ended without damage
/// and the write-ahead log is folded into the file. `checked_at` is when the file was last
/// checked in full. Best effort: without a stamp the next start checks in full.
pub(crate) fn leave(data_dir: &Path, db_path: &Path, checked_at: i64) {
    if wal_has_content(db_path) {
        return;
    }
    let Some(file) = identity(db_path) else { return };
    wait_past(file.ctime_ns);
    // Read again: the file must still be the one just described.
    if identity(db_path).as_ref() != Some(&file) {
        return;
    }
    let Ok(json) = serde_json::to_string(&Stamp { file, checked_at }) else { return };
    if let Err(e) = crate::fsutil::write_atomic(&stamp_path(data_dir), &json) {
        tracing::debug!(error = %e, "no clean-close stamp: the next start checks the history in full");
    }
}

fn stamp_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STAMP_FILE)
}

/// A write-ahead log with commits in it: they are not in the file the stamp describes.
fn wal_has_content(db_path: &Path) -> bool {
    std::fs::metadata(sidecar(db_path, "-wal")).is_ok_and(|m| m.len() > 0)
}

/// Sleeps until the coarse clock of file timestamps is surely past `ctime_ns` (at most
/// [`TIMESTAMP_TICK`]), so that any later write shows as a new status-change time.
fn wait_past(ctime_ns: i128) {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let tick = TIMESTAMP_TICK.as_nanos() as i128;
    let left = (ctime_ns + tick - now_ns).clamp(0, tick);
    if left > 0 {
        std::thread::sleep(std::time::Duration::from_nanos(left as u64));
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Some(FileIdentity {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
    })
}

/// Without a status-change time no stamp can be trusted: every start checks in full.
#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<FileIdentity> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("tokentray.sqlite3");
        std::fs::write(&db, vec![7u8; 8192]).expect("write");
        (dir, db)
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn an_untouched_file_is_trusted_once() {
        let (dir, db) = history();
        leave(dir.path(), &db, NOW - 60);
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Trusted { checked_at: NOW - 60 });
        // The stamp is gone with the start: a second start (after a crash) checks.
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
    }

    #[test]
    fn any_write_to_the_file_asks_for_the_check() {
        let (dir, db) = history();
        leave(dir.path(), &db, NOW);
        // The same size, the same bytes even: the status-change time still moves.
        std::fs::write(&db, vec![7u8; 8192]).expect("rewrite");
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
    }

    #[test]
    fn a_write_ahead_log_with_content_asks_for_the_check() {
        let (dir, db) = history();
        std::fs::write(sidecar(&db, "-wal"), b"").expect("empty wal");
        leave(dir.path(), &db, NOW);
        std::fs::write(sidecar(&db, "-wal"), b"commits").expect("wal");
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
    }

    #[test]
    fn a_file_replaced_by_a_copy_asks_for_the_check() {
        let (dir, db) = history();
        leave(dir.path(), &db, NOW);
        let copy = dir.path().join("copy");
        std::fs::copy(&db, &copy).expect("copy");
        std::fs::rename(&copy, &db).expect("replace");
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
    }

    #[test]
    fn a_check_older_than_a_week_is_done_again() {
        let (dir, db) = history();
        leave(dir.path(), &db, NOW - RECHECK_AFTER_SECS);
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
        // A clock set back is no reason to trust either.
        leave(dir.path(), &db, NOW + 60);
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
    }

    #[test]
    fn a_garbled_or_missing_stamp_asks_for_the_check() {
        let (dir, db) = history();
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
        std::fs::write(dir.path().join(STAMP_FILE), b"{not json").expect("write");
        assert_eq!(take(dir.path(), &db, NOW), StartCheck::Needed);
        assert!(!dir.path().join(STAMP_FILE).exists(), "a garbled stamp is removed too");
    }
}
