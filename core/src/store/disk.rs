//! What the history costs on disk, for the benches and diagnostics: rows per table and bytes
//! per table and index (where SQLite was built with the `dbstat` table).

use std::path::Path;

use super::{connect, StoreError, DB_FILE};

/// Row counts and on-disk sizes of the history database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskUsage {
    /// Rows of the main tables.
    pub rows: Vec<(&'static str, i64)>,
    /// Bytes per table or index, largest first (empty without `dbstat`).
    pub objects: Vec<(String, i64)>,
}

const COUNTED: [&str; 4] = ["series", "usage", "events", "resources"];

/// Checkpoints the WAL of the database in `data_dir` into the main file (so that the file's size
/// is the history's), then measures it.
pub fn checkpoint_and_measure(data_dir: &Path) -> Result<DiskUsage, StoreError> {
    let conn = connect(&data_dir.join(DB_FILE))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let mut usage = DiskUsage::default();
    for table in COUNTED {
        let n = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        usage.rows.push((table, n));
    }
    if let Ok(mut stmt) =
        conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
    {
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        usage.objects = rows.filter_map(Result::ok).collect();
    }
    Ok(usage)
}
