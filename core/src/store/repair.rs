//! `tokentray repair`: keeps a copy of a damaged history and recovers what SQLite can still read
//! into a new file, which then takes the damaged one's place.
//!
//! The steps, in order:
//! 1. take the data directory's engine lock (no engine may write meanwhile);
//! 2. copy the damaged file (and its write-ahead log) to `tokentray.sqlite3.damaged-<time>`,
//!    byte for byte, before anything opens it;
//! 3. work on a scratch copy: a write-ahead log with a garbage header is left out, a damaged
//!    file header is rewritten from what the file still says (page size, size in pages);
//! 4. create the tables of the old schema in a new file and copy every row that can be read:
//!    a table is scanned in key order, and past a damaged page the scan resumes at the next
//!    key that can be reached (rowid tables) or from the other end (tables without rowid);
//! 5. create the indexes, set the schema version, and rename the new file over the old one.
//!
//! Running totals live in `series_state`, so losing a page of events costs those events'
//! detail, not the totals; the report says, per table, how many rows came back and whether
//! some could not be read.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::Connection;

use super::{integrity, lock, schema, StoreError, DB_FILE};

/// What one table gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRecovery {
    /// The table's name.
    pub table: String,
    /// Rows copied into the new file.
    pub rows: u64,
    /// Some rows could not be read (a damaged page); they are only in the kept copy.
    pub rows_lost: bool,
}

/// What `tokentray repair` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The damaged file, kept as it was.
    pub backup: PathBuf,
    /// Its write-ahead log, kept beside it, when there was one.
    pub backup_wal: Option<PathBuf>,
    /// The schema could be read (without it no table can be found: the new file is empty).
    pub schema_readable: bool,
    /// The write-ahead log was left out because its header was not SQLite's.
    pub wal_discarded: bool,
    /// The file header was rewritten to read the file.
    pub header_rebuilt: bool,
    /// Per table, in schema order.
    pub tables: Vec<TableRecovery>,
}

/// What `tokentray repair` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The history passes the integrity check: nothing was changed.
    Healthy,
    /// The history was damaged and has been rebuilt.
    Repaired(RepairReport),
}

/// Repairs the history in `data_dir` (see the module documentation); a healthy one is left
/// alone.
pub fn repair(data_dir: &Path) -> Result<RepairOutcome, StoreError> {
    super::data_dir::check_existing(data_dir)?;
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        return Err(repair_error(format!("there is no history at {} to repair", db.display())));
    }
    let history_expected = integrity::history_expected(&db);
    let _engine = lock::EngineLock::acquire(data_dir)?;
    if is_healthy(&db, history_expected) {
        return Ok(RepairOutcome::Healthy);
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let (backup, backup_wal) = keep_a_copy(&db, &stamp)?;
    let scratch = data_dir.join(format!(".repair-{stamp}"));
    std::fs::create_dir_all(&scratch).map_err(io_error("create", &scratch))?;
    let outcome = recover_into_new_file(&db, &scratch);
    let result = outcome.and_then(|(new_file, mut report)| {
        replace(&db, &new_file)?;
        report.backup = backup;
        report.backup_wal = backup_wal;
        Ok(RepairOutcome::Repaired(report))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The same check an engine makes at start.
fn is_healthy(db: &Path, history_expected: bool) -> bool {
    // Read-only: nothing may touch the damaged file before its copy is taken.
    integrity::check_files(db, history_expected).is_ok() && integrity::quick_check_file(db).is_ok()
}

/// Step 2: the damaged file and its log, copied byte for byte.
fn keep_a_copy(db: &Path, stamp: &str) -> Result<(PathBuf, Option<PathBuf>), StoreError> {
    let backup = db.with_file_name(format!("{DB_FILE}.damaged-{stamp}"));
    std::fs::copy(db, &backup).map_err(io_error("copy", db))?;
    let wal = integrity::sidecar(db, "-wal");
    let backup_wal = match std::fs::metadata(&wal) {
        Ok(m) if m.len() > 0 => {
            let to = integrity::sidecar(&backup, "-wal");
            std::fs::copy(&wal, &to).map_err(io_error("copy", &wal))?;
            Some(to)
        }
        _ => None,
    };
    Ok((backup, backup_wal))
}

/// Steps 3 to 5, in the scratch directory; returns the new file.
fn recover_into_new_file(db: &Path, scratch: &Path) -> Result<(PathBuf, RepairReport), StoreError> {
    let old = scratch.join("old.sqlite3");
    std::fs::copy(db, &old).map_err(io_error("copy", db))?;
    let wal = integrity::sidecar(db, "-wal");
    let wal_discarded = match integrity::wal_header(&wal) {
        Some(true) => {
            std::fs::copy(&wal, integrity::sidecar(&old, "-wal"))
                .map_err(io_error("copy", &wal))?;
            false
        }
        Some(false) => true,
        None => false,
    };
    let header_rebuilt = integrity::rebuild_header(&old).map_err(io_error("rewrite", &old))?;
    let new_file = scratch.join("new.sqlite3");
    // Two connections, not one with the old file attached: after SQLite meets a damaged page in
    // an attached file, it refuses every further write on that connection.
    let from = Connection::open(&old)?;
    let mut conn = Connection::open(&new_file)?;
    let mut report = RepairReport {
        backup: PathBuf::new(),
        backup_wal: None,
        schema_readable: false,
        wal_discarded,
        header_rebuilt,
        tables: Vec::new(),
    };
    match old_schema(&from) {
        Some(objects) => {
            report.schema_readable = true;
            let version = if header_rebuilt {
                schema::version_of(objects.iter().map(|o| o.name.as_str()))
            } else {
                from.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap_or(0)
            };
            report.tables = copy_objects(&from, &conn, &objects)?;
            conn.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        }
        // Nothing can be found without the schema: the new file starts at the latest layout.
        None => schema::migrate(&mut conn)?,
    }
    Ok((new_file, report))
}

/// A table, index, trigger or view of the old file.
struct SchemaObject {
    kind: String,
    name: String,
    sql: String,
}

/// The old file's own objects (SQLite's internal ones are created as needed); `None` when the
/// schema cannot be read.
fn old_schema(conn: &Connection) -> Option<Vec<SchemaObject>> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY rowid",
        )
        .ok()?;
    let rows = stmt
        .query_map([], |r| Ok(SchemaObject { kind: r.get(0)?, name: r.get(1)?, sql: r.get(2)? }))
        .ok()?;
    rows.collect::<Result<Vec<_>, _>>().ok()
}

/// Tables first, their rows, then indexes, triggers and views (faster, and an index of the old
/// file cannot refuse a row the table took).
fn copy_objects(
    from: &Connection,
    conn: &Connection,
    objects: &[SchemaObject],
) -> Result<Vec<TableRecovery>, StoreError> {
    let tables: Vec<&SchemaObject> = objects.iter().filter(|o| o.kind == "table").collect();
    for table in &tables {
        conn.execute_batch(&table.sql)?;
    }
    conn.execute_batch("BEGIN")?;
    let mut recovered = Vec::with_capacity(tables.len());
    for table in &tables {
        recovered.push(copy_table(from, conn, &table.name)?);
    }
    conn.execute_batch("COMMIT")?;
    for other in objects.iter().filter(|o| o.kind != "table") {
        conn.execute_batch(&other.sql)?;
    }
    Ok(recovered)
}

/// Copies what can be read of one table from `from` into `conn`.
fn copy_table(
    from: &Connection,
    conn: &Connection,
    table: &str,
) -> Result<TableRecovery, StoreError> {
    let quoted = quote(table);
    let columns = columns_of(from, table)?;
    let list = columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ");
    let marks = vec!["?"; columns.len()].join(", ");
    let mut insert =
        conn.prepare(&format!("INSERT OR IGNORE INTO {quoted} ({list}) VALUES ({marks})"))?;
    let mut copy = Copy { table: table.to_string(), rows: 0, rows_lost: false };
    let has_rowid = from.prepare(&format!("SELECT rowid FROM {quoted} LIMIT 0")).is_ok();
    if has_rowid {
        copy_by_rowid(from, &quoted, &list, &mut insert, &mut copy)?;
    } else {
        copy_by_key(from, &quoted, &list, &columns, &mut insert, &mut copy)?;
    }
    Ok(TableRecovery { table: copy.table, rows: copy.rows, rows_lost: copy.rows_lost })
}

struct Copy {
    table: String,
    rows: u64,
    rows_lost: bool,
}

struct Column {
    name: String,
    /// Position in the primary key, 0 when not part of it.
    pk: i64,
}

fn columns_of(conn: &Connection, table: &str) -> Result<Vec<Column>, StoreError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let columns = stmt
        .query_map([], |r| Ok(Column { name: r.get(1)?, pk: r.get(5)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(columns)
}

/// Where a scan stopped.
enum ScanEnd {
    /// The end of the table.
    Done,
    /// A damaged page; the last rowid read before it, if any.
    Damaged(Option<i64>),
}

/// Rowid tables: scan forward; past a damaged page, resume at the next reachable rowid.
fn copy_by_rowid(
    from: &Connection,
    quoted: &str,
    list: &str,
    insert: &mut rusqlite::Statement<'_>,
    copy: &mut Copy,
) -> Result<(), StoreError> {
    let scan_sql = format!("SELECT rowid, {list} FROM {quoted} WHERE rowid >= ?1 ORDER BY rowid");
    let probe_sql = format!("SELECT rowid FROM {quoted} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1");
    let mut start = i64::MIN;
    loop {
        match scan_rowids(from, &scan_sql, start, insert, copy)? {
            ScanEnd::Done => return Ok(()),
            ScanEnd::Damaged(last) => {
                copy.rows_lost = true;
                let failed_at = last.map_or(start, |l| l.saturating_add(1));
                match next_reachable(from, &probe_sql, failed_at) {
                    Some(next) => start = next,
                    None => return Ok(()),
                }
            }
        }
    }
}

fn scan_rowids(
    from: &Connection,
    scan_sql: &str,
    start: i64,
    insert: &mut rusqlite::Statement<'_>,
    copy: &mut Copy,
) -> Result<ScanEnd, StoreError> {
    let Ok(mut stmt) = from.prepare(scan_sql) else { return Ok(ScanEnd::Damaged(None)) };
    let Ok(mut rows) = stmt.query([start]) else { return Ok(ScanEnd::Damaged(None)) };
    let mut last = None;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(ScanEnd::Done),
            Err(_) => return Ok(ScanEnd::Damaged(last)),
        };
        let Ok(rowid) = row.get::<_, i64>(0) else { return Ok(ScanEnd::Damaged(last)) };
        let Some(values) = values_of(row, 1) else { return Ok(ScanEnd::Damaged(last)) };
        copy.rows += insert.execute(rusqlite::params_from_iter(values))? as u64;
        last = Some(rowid);
    }
}

/// The smallest start at or after `failed_at + 1` from which a seek reads: probes at doubling
/// distances, then narrows down between the last failing and the first working distance. `None`
/// when nothing after `failed_at` can be reached (or nothing is there).
fn next_reachable(from: &Connection, probe_sql: &str, failed_at: i64) -> Option<i64> {
    let reads = |at: i64| -> Option<bool> {
        match from.query_row(probe_sql, [at], |r| r.get::<_, i64>(0)) {
            Ok(_) => Some(true),
            Err(rusqlite::Error::QueryReturnedNoRows) => None,
            Err(_) => Some(false),
        }
    };
    let (mut bad, mut distance) = (failed_at, 1i64);
    let good = loop {
        let at = failed_at.checked_add(distance)?;
        match reads(at) {
            None => return None,
            Some(true) => break at,
            Some(false) => {
                bad = at;
                distance = distance.checked_mul(2)?;
            }
        }
    };
    let (mut bad, mut good) = (bad, good);
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        match reads(mid) {
            Some(true) => good = mid,
            _ => bad = mid,
        }
    }
    Some(good)
}

/// Tables without rowid: scan in key order until a damaged page, then from the other end.
fn copy_by_key(
    from: &Connection,
    quoted: &str,
    list: &str,
    columns: &[Column],
    insert: &mut rusqlite::Statement<'_>,
    copy: &mut Copy,
) -> Result<(), StoreError> {
    let forward = format!("SELECT {list} FROM {quoted}");
    if scan_all(from, &forward, insert, copy)? {
        return Ok(());
    }
    copy.rows_lost = true;
    let mut key: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
    key.sort_by_key(|c| c.pk);
    let descending = key.iter().map(|c| format!("{} DESC", quote(&c.name))).collect::<Vec<_>>();
    let backward = format!("SELECT {list} FROM {quoted} ORDER BY {}", descending.join(", "));
    scan_all(from, &backward, insert, copy)?;
    Ok(())
}

/// True when the scan reached the end.
fn scan_all(
    from: &Connection,
    sql: &str,
    insert: &mut rusqlite::Statement<'_>,
    copy: &mut Copy,
) -> Result<bool, StoreError> {
    let Ok(mut stmt) = from.prepare(sql) else { return Ok(false) };
    let Ok(mut rows) = stmt.query([]) else { return Ok(false) };
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(true),
            Err(_) => return Ok(false),
        };
        let Some(values) = values_of(row, 0) else { return Ok(false) };
        copy.rows += insert.execute(rusqlite::params_from_iter(values))? as u64;
    }
}

fn values_of(row: &rusqlite::Row<'_>, from: usize) -> Option<Vec<Value>> {
    (from..row.as_ref().column_count()).map(|i| row.get::<_, Value>(i).ok()).collect()
}

/// Step 5's last part: the new file in the old one's place, its log and index gone.
fn replace(db: &Path, new_file: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm"] {
        let side = integrity::sidecar(db, suffix);
        if side.exists() {
            std::fs::remove_file(&side).map_err(io_error("remove", &side))?;
        }
    }
    std::fs::rename(new_file, db).map_err(io_error("move", new_file))?;
    // The rename is durable once the directory is.
    if let Some(dir) = db.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn repair_error(reason: String) -> StoreError {
    StoreError::Repair(reason)
}

fn io_error<'a>(what: &'a str, path: &'a Path) -> impl Fn(std::io::Error) -> StoreError + 'a {
    move |e| repair_error(format!("cannot {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: i64 = 5000;

    /// A history-like file with a rowid table and a table without rowid, each of many pages.
    fn build(dir: &Path) -> PathBuf {
        let db = dir.join(DB_FILE);
        let conn = super::super::connect(&db).expect("connect");
        conn.execute_batch(
            "CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             CREATE TABLE k (a INTEGER NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a)) WITHOUT ROWID;
             CREATE INDEX r_v ON r(v);
             PRAGMA user_version = 3;",
        )
        .expect("schema");
        for i in 0..ROWS {
            let text = format!("{i:08}{}", "x".repeat(200));
            conn.execute("INSERT INTO r (id, v) VALUES (?1, ?2)", rusqlite::params![i, text])
                .expect("insert r");
            conn.execute("INSERT INTO k (a, b) VALUES (?1, ?2)", rusqlite::params![i, text])
                .expect("insert k");
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
        drop(conn);
        db
    }

    fn damage_middle_leaf(db: &Path, table: &str) {
        use std::io::{Seek, SeekFrom, Write};
        let pages = integrity_pages(db, table);
        let page = u64::from(pages[pages.len() / 2]);
        let mut f = std::fs::OpenOptions::new().write(true).open(db).expect("open");
        f.seek(SeekFrom::Start((page - 1) * 4096)).expect("seek");
        f.write_all(&[0xA5; 4096]).expect("damage");
    }

    fn integrity_pages(db: &Path, table: &str) -> Vec<u32> {
        let conn = Connection::open(db).expect("open");
        let mut stmt = conn
            .prepare(
                "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY path",
            )
            .expect("dbstat");
        let pages: Vec<u32> = stmt
            .query_map([table], |r| r.get(0))
            .expect("query")
            .map(|p| p.expect("page"))
            .collect();
        assert!(pages.len() > 10, "{table} spans many pages");
        pages
    }

    #[test]
    fn both_kinds_of_table_come_back_but_for_their_damaged_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = build(dir.path());
        damage_middle_leaf(&db, "r");
        damage_middle_leaf(&db, "k");
        let damaged = std::fs::read(&db).expect("read");

        let RepairOutcome::Repaired(report) = repair(dir.path()).expect("repair") else {
            panic!("the damage was not found");
        };
        assert_eq!(std::fs::read(&report.backup).expect("backup"), damaged, "kept byte for byte");
        for table in &report.tables {
            assert!(table.rows_lost, "{table:?}");
            // One 4 KiB leaf holds about 17 of these rows: the rest must come back.
            assert!(table.rows > (ROWS - 40) as u64 && table.rows < ROWS as u64, "{table:?}");
        }
        let conn = Connection::open(&db).expect("open the repaired file");
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(version, 3, "the schema version is kept");
        let check: String =
            conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
        assert_eq!(check, "ok");
        // What came back is what was written, and the last rows (behind the damage) are there.
        let wrong: i64 = conn
            .query_row(
                "SELECT count(*) FROM r JOIN k ON k.a = r.id WHERE substr(r.v, 1, 8) != printf('%08d', r.id) OR k.b != r.v",
                [],
                |r| r.get(0),
            )
            .expect("compare");
        assert_eq!(wrong, 0);
        let last: i64 = conn.query_row("SELECT max(a) FROM k", [], |r| r.get(0)).expect("max");
        assert_eq!(last, ROWS - 1);

        assert_eq!(repair(dir.path()).expect("again"), RepairOutcome::Healthy);
    }
}
