//! The data directory as commands find it (issue 16): a file where the directory should be, a
//! directory that does not exist, or a history that may only be read (a read-only mount, a
//! directory of another user). Readers work on a read-only history; only the engine and
//! commands that write create the directory.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{integrity, schema, StoreError};

/// Creates `dir` when it is missing (engines and writing commands), refusing a file in its place.
pub(super) fn create(dir: &Path) -> Result<(), StoreError> {
    refuse_a_file(dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::DataDir { path: dir.to_path_buf(), reason: e.to_string() })
}

/// For commands that only read: the directory must exist and be a directory.
pub fn check_existing(dir: &Path) -> Result<(), StoreError> {
    refuse_a_file(dir)?;
    if !dir.exists() {
        return Err(StoreError::NoDataDir { path: dir.to_path_buf() });
    }
    Ok(())
}

fn refuse_a_file(dir: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(StoreError::NotADirectory { path: dir.to_path_buf() }),
        _ => Ok(()),
    }
}

/// A connection that never writes, for a history on a read-only mount or in a directory this
/// user may not write. SQLite needs the WAL index (`-shm`) to read a WAL database; when it
/// cannot create one there, the file is opened as immutable (nothing can change it meanwhile:
/// the directory is not writable).
pub(super) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    integrity::check_files(path, integrity::reader_expects_history(path))?;
    let conn = match Connection::open_with_flags(path, flags).and_then(readable) {
        Ok(conn) => conn,
        Err(_) => Connection::open_with_flags(immutable_uri(path), flags).and_then(readable)?,
    };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > schema::LATEST {
        return Err(StoreError::TooNew { found: version, supported: schema::LATEST });
    }
    if version < schema::LATEST {
        return Err(StoreError::ReadOnly {
            path: path.to_path_buf(),
            reason: "it was written by an older tokentray and must be upgraded once with write access (run `tokentray serve` or the tray where it is writable)".into(),
        });
    }
    Ok(conn)
}

/// An empty, up-to-date history in memory: what a reader sees in a read-only directory that
/// holds no database yet.
pub(super) fn empty_history() -> Result<Connection, StoreError> {
    let mut conn = Connection::open_in_memory()?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Fails unless the database can actually be read (opening alone reads nothing).
fn readable(conn: Connection) -> rusqlite::Result<Connection> {
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

/// `file:/path?immutable=1`, with the characters a URI gives meaning to escaped.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' => uri += &format!("%{b:02X}"),
            _ => uri.push(b as char),
        }
    }
    uri + "?immutable=1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_not_a_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("data");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(create(&file), Err(StoreError::NotADirectory { .. })));
        assert!(matches!(check_existing(&file), Err(StoreError::NotADirectory { .. })));
        let missing = dir.path().join("mistyped");
        assert!(matches!(check_existing(&missing), Err(StoreError::NoDataDir { .. })));
        assert!(!missing.exists(), "checking creates nothing");
        create(&missing).expect("create");
        check_existing(&missing).expect("exists now");
    }

    #[test]
    fn uri_escapes_query_characters() {
        assert_eq!(immutable_uri(Path::new("/a?b#c%d")), "file:/a%3Fb%23c%25d?immutable=1");
    }
}
