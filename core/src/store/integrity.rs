//! The start-up integrity check (issue 14): a damaged history is reported in one line with its
//! fix, never silently replaced and never answered with "retry later" forever.
//!
//! Before, SQLite was left to find out: a 0-byte file became a fresh, empty history (SQLite
//! initialises an empty file without a word), a damaged page 2 made every write fail with a
//! retryable 503, a damaged middle page was written around until `doctor` noticed, and a
//! garbage write-ahead log was dropped with the commits in it. Now:
//!
//! 1. [`check_files`] looks at the bytes before SQLite does: an empty file where a history is
//!    expected, a header that is not SQLite's, a size that is not whole pages, a write-ahead log
//!    whose header (magic and checksum) is not SQLite's. SQLite would "repair" each of these by
//!    starting over; refusing keeps the file as it is for `tokentray repair`.
//! 2. [`quick_check`] runs SQLite's `PRAGMA quick_check` once when an engine opens the store
//!    (readers skip it: `report` and the dashboard must stay instant).
//!
//! Either refuses with [`StoreError::Damaged`], whose message names the damage and the fix.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreError, LOCK_FILE};

/// SQLite's file header starts with these 16 bytes.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// A write-ahead log's header starts with one of these (big- or little-endian checksums).
const WAL_MAGIC_BE: u32 = 0x377f_0683;
const WAL_MAGIC_LE: u32 = 0x377f_0682;
const WAL_HEADER_LEN: usize = 32;

/// What is wrong with a database file, in the words the one-line message uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file has 0 bytes although this data directory has held a history.
    Empty,
    /// The first 100 bytes are not a SQLite header.
    Header,
    /// The file is not a whole number of pages (cut off while being copied or written).
    Truncated {
        /// The file's size in bytes.
        len: u64,
        /// The page size its header names.
        page_size: u32,
    },
    /// The write-ahead log beside it (`-wal`) has a header SQLite would discard, with the
    /// commits in it.
    WriteAheadLog,
    /// SQLite found damaged pages; its first finding.
    Pages(String),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Empty => write!(f, "it is empty (0 bytes), although this data directory has held a history"),
            Damage::Header => write!(f, "its header is not a SQLite header"),
            Damage::Truncated { len, page_size } => write!(
                f,
                "it is cut off ({len} bytes is not a whole number of {page_size}-byte pages)"
            ),
            Damage::WriteAheadLog => write!(
                f,
                "its write-ahead log (-wal) is not a SQLite log; SQLite would drop the commits in it"
            ),
            Damage::Pages(finding) => write!(f, "SQLite's check says: {finding}"),
        }
    }
}

/// True when this data directory has held a history: an engine has run here (its lock file
/// stays behind) or SQLite's write-ahead files exist. A 0-byte database is then damage, not a
/// first start.
pub(crate) fn history_expected(db_path: &Path) -> bool {
    let lock = db_path.parent().map(|dir| dir.join(LOCK_FILE));
    lock.is_some_and(|l| l.exists())
        || sidecar(db_path, "-wal").exists()
        || sidecar(db_path, "-shm").exists()
}

/// [`history_expected`] for a reader (`report`, the dashboard, …): a running engine may have
/// just created the file it is about to write its first schema into, so a 0-byte file beside a
/// running engine is that engine's first start, not damage (the engine checked before it began).
/// The lock is only probed for a 0-byte file.
pub(crate) fn reader_expects_history(db_path: &Path) -> bool {
    let empty = std::fs::metadata(db_path).is_ok_and(|m| m.len() == 0);
    if !empty {
        return true;
    }
    let engine_runs = db_path.parent().and_then(super::running_engine).is_some();
    history_expected(db_path) && !engine_runs
}

/// `tokentray.sqlite3-wal` and the like.
pub(crate) fn sidecar(db_path: &Path, suffix: &str) -> PathBuf {
    let mut name = db_path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses a database file (and its write-ahead log) that SQLite would silently start over.
/// A missing file is fine: it is a first start.
pub(crate) fn check_files(db_path: &Path, expected: bool) -> Result<(), StoreError> {
    let damaged = |damage: Damage| StoreError::Damaged { path: db_path.to_path_buf(), damage };
    let Ok(meta) = std::fs::metadata(db_path) else { return Ok(()) };
    let len = meta.len();
    if len == 0 {
        // SQLite leaves a 0-byte file for a moment on a first start, before its first commit.
        return if expected { Err(damaged(Damage::Empty)) } else { Ok(()) };
    }
    // An unreadable file is for SQLite to report (permissions are not damage).
    let Some(header) = read_prefix(db_path, 100) else { return Ok(()) };
    let page_size = match header_page_size(&header) {
        Some(size) => size,
        None => return Err(damaged(Damage::Header)),
    };
    if len % u64::from(page_size) != 0 {
        return Err(damaged(Damage::Truncated { len, page_size }));
    }
    if let Some(wal) = read_prefix(&sidecar(db_path, "-wal"), WAL_HEADER_LEN) {
        if !wal.is_empty() && !wal_header_is_valid(&wal) {
            return Err(damaged(Damage::WriteAheadLog));
        }
    }
    Ok(())
}

/// `Some(valid)` for a non-empty write-ahead log at `wal`; `None` when there is none.
pub(crate) fn wal_header(wal: &Path) -> Option<bool> {
    let header = read_prefix(wal, WAL_HEADER_LEN)?;
    (!header.is_empty()).then(|| wal_header_is_valid(&header))
}

/// Rewrites a damaged file header with what SQLite needs to read the pages behind it: the
/// magic, 4096-byte pages (SQLite's default, which tokentray never changes), the size in pages
/// from the file's length, UTF-8, no free list. `Ok(false)` when the header was fine (or the
/// file is too short to have one). Only ever used on repair's scratch copy.
pub(crate) fn rebuild_header(path: &Path) -> std::io::Result<bool> {
    let Some(header) = read_prefix(path, 100) else { return Ok(false) };
    if header.len() < 100 || header_page_size(&header).is_some() {
        return Ok(false);
    }
    let len = std::fs::metadata(path)?.len();
    let pages = u32::try_from(len / 4096).unwrap_or(u32::MAX);
    let mut fresh = [0u8; 100];
    fresh[..16].copy_from_slice(SQLITE_MAGIC);
    fresh[16..18].copy_from_slice(&4096u16.to_be_bytes());
    // File format versions: 2 = WAL, as tokentray writes.
    fresh[18] = 2;
    fresh[19] = 2;
    // Payload fractions, fixed by the format.
    fresh[21] = 64;
    fresh[22] = 32;
    fresh[23] = 32;
    let change_counter = 1u32.to_be_bytes();
    fresh[24..28].copy_from_slice(&change_counter);
    fresh[28..32].copy_from_slice(&pages.to_be_bytes());
    fresh[40..44].copy_from_slice(&1u32.to_be_bytes()); // schema cookie
    fresh[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format
    fresh[56..60].copy_from_slice(&1u32.to_be_bytes()); // UTF-8
    fresh[92..96].copy_from_slice(&change_counter); // the page count above is valid
    fresh[96..100].copy_from_slice(&3_046_000u32.to_be_bytes());
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    std::io::Write::write_all(&mut file, &fresh)?;
    file.sync_all()?;
    Ok(true)
}

/// SQLite's `quick_check` of the file at `db_path` through a read-only connection, so that a
/// damaged file is not written to (a read-write connection checkpoints its write-ahead log into
/// the file when it closes). A missing file passes: it is a first start.
pub(crate) fn quick_check_file(db_path: &Path) -> Result<(), StoreError> {
    if !db_path.exists() {
        return Ok(());
    }
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match Connection::open_with_flags(db_path, flags) {
        Ok(conn) => quick_check(&conn, db_path),
        // Not openable read-only (e.g. no `-shm` can be made): the engine's own open says why.
        Err(_) => Ok(()),
    }
}

/// SQLite's `quick_check` on an open connection: `Ok` when it says "ok".
pub(crate) fn quick_check(conn: &Connection, db_path: &Path) -> Result<(), StoreError> {
    let damaged = |finding: String| StoreError::Damaged {
        path: db_path.to_path_buf(),
        damage: Damage::Pages(finding),
    };
    let findings: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get::<_, String>(0))?.collect());
    match findings {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(damaged(one_line(&lines.join("; ")))),
        Err(e) => Err(damaged(one_line(&e.to_string()))),
    }
}

/// The page size of a SQLite header, `None` unless the header is SQLite's.
fn header_page_size(header: &[u8]) -> Option<u32> {
    if header.len() < 100 || &header[..16] != SQLITE_MAGIC {
        return None;
    }
    let raw = u32::from(u16::from_be_bytes([header[16], header[17]]));
    // 1 stands for 65536, which does not fit the two bytes.
    let size = if raw == 1 { 65_536 } else { raw };
    (size.is_power_of_two() && (512..=65_536).contains(&size)).then_some(size)
}

/// The magic number and the header checksum of a write-ahead log (SQLite's WAL format: the
/// checksum of the first 24 bytes, in the byte order the magic's low bit names).
fn wal_header_is_valid(header: &[u8]) -> bool {
    if header.len() < WAL_HEADER_LEN {
        return false;
    }
    let word = |at: usize, big: bool| {
        let b = [header[at], header[at + 1], header[at + 2], header[at + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let magic = word(0, true);
    let big_endian_sums = match magic {
        WAL_MAGIC_BE => true,
        WAL_MAGIC_LE => false,
        _ => return false,
    };
    let (mut s0, mut s1) = (0u32, 0u32);
    for pair in (0..24).step_by(8) {
        s0 = s0.wrapping_add(word(pair, big_endian_sums)).wrapping_add(s1);
        s1 = s1.wrapping_add(word(pair + 4, big_endian_sums)).wrapping_add(s0);
    }
    // The stored checksum is always big-endian.
    s0 == word(24, true) && s1 == word(28, true)
}

/// Up to `n` bytes from the start of a file; `None` when it cannot be read (or does not exist).
fn read_prefix(path: &Path, n: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    File::open(path).ok()?.take(n as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The page numbers of `table`'s b-tree in the database at `path`, in key order of SQLite's
/// `dbstat` walk (tests damage a chosen page with it).
#[cfg(feature = "testkit")]
pub(crate) fn table_pages(path: &Path, table: &str) -> Result<Vec<u32>, StoreError> {
    let conn = Connection::open(path)?;
    let mut stmt = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY path")?;
    let pages = stmt.query_map([table], |r| r.get::<_, u32>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(pages)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_db(dir: &Path) -> PathBuf {
        let path = dir.join("t.sqlite3");
        let conn = super::super::connect(&path).expect("connect");
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").expect("write");
        drop(conn);
        path
    }

    #[test]
    fn a_healthy_file_and_a_first_start_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fresh_db(dir.path());
        check_files(&path, true).expect("healthy");
        check_files(&dir.path().join("missing.sqlite3"), true).expect("first start");
        let empty = dir.path().join("empty.sqlite3");
        std::fs::write(&empty, b"").expect("write");
        check_files(&empty, false).expect("a 0-byte file on a first start");
        assert!(matches!(
            check_files(&empty, true),
            Err(StoreError::Damaged { damage: Damage::Empty, .. })
        ));
    }

    #[test]
    fn a_0_byte_file_beside_a_running_engine_is_its_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(super::super::DB_FILE);
        std::fs::write(&db, b"").expect("write");
        let engine = super::super::lock::EngineLock::acquire(dir.path()).expect("lock");
        assert!(!reader_expects_history(&db), "the engine is about to write its schema");
        drop(engine);
        assert!(reader_expects_history(&db), "an engine ran here and left an empty file");
    }

    #[test]
    fn a_wal_written_by_sqlite_has_a_valid_header_and_a_flipped_byte_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.sqlite3");
        let conn = super::super::connect(&path).expect("connect");
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        )
        .expect("write");
        let wal = read_prefix(&sidecar(&path, "-wal"), WAL_HEADER_LEN).expect("a WAL exists");
        assert!(wal_header_is_valid(&wal), "SQLite's own WAL header");
        let mut flipped = wal.clone();
        flipped[12] ^= 0x40;
        assert!(!wal_header_is_valid(&flipped), "a changed salt breaks the checksum");
        drop(conn);
    }

    #[test]
    fn header_page_size_reads_sqlite_headers_only() {
        let mut header = vec![0u8; 100];
        header[..16].copy_from_slice(SQLITE_MAGIC);
        header[16..18].copy_from_slice(&4096u16.to_be_bytes());
        assert_eq!(header_page_size(&header), Some(4096));
        header[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(header_page_size(&header), Some(65_536));
        header[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(header_page_size(&header), None);
        header[0] = b'X';
        assert_eq!(header_page_size(&header), None);
    }
}
