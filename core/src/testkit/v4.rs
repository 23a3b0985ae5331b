//! A generated history in a schema-v4 database, as a tokentray of that time would have stored
//! it (issue 13's migration acceptance, `tests/migration_v4.rs`).
//!
//! The requests are normalised as the receivers do, then written with the v4 writer's
//! statements into the tables migrations 1–4 create (`store/legacy.rs`). What the history adds
//! up to comes from the generator ([`HistoryTotals`]), not from reading the file back, so a
//! test compares what the migrated file reports with figures the reading code did not make.

use std::path::Path;

use super::year::HistoryTotals;
use super::SyntheticSession;
use crate::ingest::{self, Privacy};
use crate::store::{legacy, StoreError};

/// The schema version [`write_v4_history`] writes.
pub const SCHEMA: i64 = legacy::V4;

/// The schema version this build migrates every database to.
pub const CURRENT_SCHEMA: i64 = crate::store::schema::LATEST;

/// Writes `sessions` into a new schema-v4 database in `data_dir` (one transaction); returns
/// what they add up to. Fails if the directory already holds a database or a request would
/// have been refused.
pub fn write_v4_history(
    data_dir: &Path,
    sessions: impl IntoIterator<Item = SyntheticSession>,
) -> Result<HistoryTotals, StoreError> {
    let mut writer = legacy::V4Writer::create(data_dir)?;
    let mut totals = HistoryTotals::default();
    for session in sessions {
        totals.add(&session);
        for request in session.metrics {
            writer.write(&ingest::metrics::normalize(request, ingest::now_ns()))?;
        }
        let logs = ingest::logs::normalize(session.logs, ingest::now_ns(), Privacy::default());
        writer.write(&logs)?;
    }
    writer.finish()?;
    Ok(totals)
}

/// The schema version (`PRAGMA user_version`) of the database file at `path`, read without
/// migrating it.
pub fn schema_version(path: &Path) -> Result<i64, StoreError> {
    legacy::schema_version(path)
}
