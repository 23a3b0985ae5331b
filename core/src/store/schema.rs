//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Each entry upgrades the database by one version inside one transaction. Never edit a
//! released migration: append a new one.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[Migration] = &[
    // v1
    Migration::Sql(
        r#"
    CREATE TABLE resources (
        id    INTEGER PRIMARY KEY,
        key   BLOB NOT NULL UNIQUE,          -- xxh3-128 of the attributes
        attrs TEXT NOT NULL                  -- JSON object
    );
    -- One row per time series, holding its running state so that a restart rebuilds /metrics
    -- without re-reading history.
    CREATE TABLE series (
        id            INTEGER PRIMARY KEY,
        key           BLOB NOT NULL UNIQUE,  -- xxh3-128 of metric + resource + scope + attributes
        metric        TEXT NOT NULL,
        unit          TEXT NOT NULL,
        description   TEXT NOT NULL,
        shape         INTEGER NOT NULL,      -- 1 monotonic sum, 2 non-monotonic sum, 3 gauge, 4 histogram
        resource_id   INTEGER NOT NULL,
        scope_name    TEXT NOT NULL,
        scope_version TEXT NOT NULL,
        attrs         TEXT NOT NULL,         -- JSON object of the point attributes
        session_id    TEXT,                  -- promoted attributes, for reports
        model         TEXT,
        type          TEXT,
        user_id       TEXT,
        created_ns    INTEGER NOT NULL,
        total         REAL NOT NULL DEFAULT 0,  -- sums: running total; gauges: last value
        hist          TEXT,                  -- histograms: accumulated buckets (JSON)
        cum_start_ns  INTEGER,               -- last cumulative point seen, for increments
        cum_time_ns   INTEGER,
        cum_value     TEXT,
        last_time_ns  INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX series_metric ON series(metric);
    -- Increments of monotonic sums per 15-minute slot (unix seconds / 900). Every time zone in
    -- use is offset by a multiple of 15 minutes, so local hours and days are exact unions of slots.
    CREATE TABLE usage (
        slot      INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        value     REAL NOT NULL,
        PRIMARY KEY (slot, series_id)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id                    INTEGER PRIMARY KEY,
        time_ns               INTEGER NOT NULL,
        name                  TEXT NOT NULL,
        resource_id           INTEGER NOT NULL,
        session_id            TEXT,
        prompt_id             TEXT,
        model                 TEXT,
        cost_usd              REAL,
        input_tokens          INTEGER,
        output_tokens         INTEGER,
        cache_read_tokens     INTEGER,
        cache_creation_tokens INTEGER,
        duration_ms           INTEGER,
        attrs                 TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time_ns);
    CREATE INDEX events_session ON events(session_id, time_ns);
    CREATE TABLE spans (
        id          INTEGER PRIMARY KEY,
        start_ns    INTEGER NOT NULL,
        end_ns      INTEGER NOT NULL,
        name        TEXT NOT NULL,
        trace_id    TEXT NOT NULL,
        span_id     TEXT NOT NULL,
        session_id  TEXT,
        status_code INTEGER NOT NULL
    );
    CREATE INDEX spans_time ON spans(start_ns);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    ),
    // v2: budget alerts. A threshold notifies at most once per budget and period, across
    // restarts and across processes (the tray app and `serve` on the same data directory).
    Migration::Sql(
        r#"
    CREATE TABLE alerts_fired (
        budget_key      TEXT NOT NULL,       -- period, model and limit (a changed limit re-arms)
        period_start_ns INTEGER NOT NULL,    -- start of the local day/week/month
        threshold       INTEGER NOT NULL,    -- percent of the limit
        fired_at_ns     INTEGER NOT NULL,
        silent          INTEGER NOT NULL,    -- 1: marked without a notification (paused, or a higher one notified)
        PRIMARY KEY (budget_key, period_start_ns, threshold)
    ) WITHOUT ROWID;
    -- User settings kept with the history, not in the config file (e.g. alerts paused until).
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    ),
    // v3: the running state of every series moves to a narrow table of its own. Each commit
    // rewrites the state of every series it touched; in the wide `series` row (attribute JSON,
    // ~480 bytes) that dirtied and logged to the WAL a page per ~8 series, here a page per
    // ~150. `series` gains the rendered `/metrics` identity (family, unit, labels), so start-up
    // does not re-render it from the attribute JSON; rows written before v3 have NULL there and
    // are filled in by the writer the first time it loads them.
    Migration::Sql(
        r#"
    CREATE TABLE series_state (
        series_id     INTEGER PRIMARY KEY,   -- series.id
        total         REAL NOT NULL DEFAULT 0,  -- sums: running total; gauges: last value
        last_time_ns  INTEGER NOT NULL DEFAULT 0,
        hist          TEXT,                  -- histograms: accumulated buckets (JSON)
        cum_start_ns  INTEGER,               -- last cumulative point seen, for increments
        cum_time_ns   INTEGER,
        cum_value     TEXT
    );
    INSERT INTO series_state (series_id, total, last_time_ns, hist, cum_start_ns, cum_time_ns, cum_value)
        SELECT id, total, last_time_ns, hist, cum_start_ns, cum_time_ns, cum_value FROM series;
    ALTER TABLE series DROP COLUMN total;
    ALTER TABLE series DROP COLUMN hist;
    ALTER TABLE series DROP COLUMN cum_start_ns;
    ALTER TABLE series DROP COLUMN cum_time_ns;
    ALTER TABLE series DROP COLUMN cum_value;
    ALTER TABLE series DROP COLUMN last_time_ns;
    ALTER TABLE series ADD COLUMN expo_family TEXT;
    ALTER TABLE series ADD COLUMN expo_unit TEXT;
    ALTER TABLE series ADD COLUMN expo_labels TEXT;
    "#,
    ),
    // v4: forwarding to the team. What a client was told is stored is also queued for the team
    // in the same transaction, so nothing acknowledged can miss the queue.
    Migration::Sql(
        r#"
    -- OTLP forwarding: each accepted export request, re-encoded as protobuf with prompt text
    -- already redacted and snappy-compressed, until the team's collector took it.
    CREATE TABLE forward_queue (
        id         INTEGER PRIMARY KEY,
        signal     INTEGER NOT NULL,         -- 1 metrics, 2 logs, 3 traces
        created_ns INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,         -- of the payload as stored (compressed)
        payload    BLOB NOT NULL
    );
    -- Remote write sends current cumulative totals, not requests: the series whose total
    -- changed since it was last delivered. A new change of a queued series replaces its row
    -- (new seq), so a delivery deletes only what it actually sent.
    CREATE TABLE forward_dirty (
        seq       INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL UNIQUE
    );
    -- Rows of /metrics (family + labels) gather several stored series; remote write sends the
    -- row's total, found through this index.
    CREATE INDEX series_expo ON series(expo_family, expo_labels);
    "#,
    ),
    // v5 (issue 13): each API request's id as a typed, indexed column of `events` (the transcripts
    // import deduplicates by it), filled from the attribute JSON of the events stored before.
    Migration::Sql(
        r#"
    ALTER TABLE events ADD COLUMN request_id TEXT;
    UPDATE events SET request_id = json_extract(attrs, '$.request_id')
        WHERE json_valid(attrs) AND json_type(attrs, '$.request_id') = 'text';
    CREATE INDEX events_request ON events(request_id) WHERE request_id IS NOT NULL;
    "#,
    ),
    // v6 (issue 14): the kind each metric name keeps (store/kinds.rs), the first one seen; existing
    // series name theirs, oldest first.
    Migration::Sql(
        r#"
    CREATE TABLE metric_kinds (
        namespace INTEGER NOT NULL,          -- 0 OTLP metric name, 1 Prometheus family name
        name      TEXT NOT NULL,
        kind      INTEGER NOT NULL,          -- 1 monotonic counter, 2 gauge, 3 histogram
        first_ns  INTEGER NOT NULL,
        PRIMARY KEY (namespace, name)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO metric_kinds (namespace, name, kind, first_ns)
        SELECT 0, metric, CASE shape WHEN 1 THEN 1 WHEN 4 THEN 3 ELSE 2 END, created_ns
        FROM series ORDER BY created_ns, id;
    INSERT OR IGNORE INTO metric_kinds (namespace, name, kind, first_ns)
        SELECT 1, expo_family, CASE shape WHEN 1 THEN 1 WHEN 4 THEN 3 ELSE 2 END, created_ns
        FROM series WHERE expo_family IS NOT NULL ORDER BY created_ns, id;
    "#,
    ),
    // v7 (issue 15): Claude Code's transcripts as a second source (store/transcripts.rs).
    Migration::Sql(super::transcripts::MIGRATION),
    // v8 (issue 17): Pushgateway-style pushed groups (store/pushgateway.rs).
    Migration::Sql(super::pushgateway::MIGRATION),
    // v9: other agents' API requests, Codex CLI and Gemini CLI (store/agents.rs).
    Migration::Sql(super::agents::MIGRATION),
    // v10 (issue 13): the writer holds only active series in memory; start-up finds them by
    // their newest point instead of reading every series' state.
    Migration::Sql(
        r#"
    CREATE INDEX series_state_newest ON series_state(last_time_ns);
    "#,
    ),
    // v11 (issue 13): events keep only the attributes their columns do not hold, the repeated
    // strings among them once in a dictionary (store/events.rs); ~70 % of the events' bytes.
    Migration::Steps(&[
        Step::Sql(super::events::MIGRATION_BEFORE),
        Step::Rust(super::events::migrate_attrs),
        Step::Sql(super::events::MIGRATION_AFTER),
    ]),
    // v12 (issue 15): which sessions have requests in a period is answered from the time index
    // alone; without the session in it, every request in the period cost a lookup in the table
    // (ordered by request id, so a page read per row: seconds for `report all` on a year).
    Migration::Sql(
        r#"
    CREATE INDEX transcript_requests_time_session ON transcript_requests(time_ns, session_id);
    DROP INDEX transcript_requests_time;
    "#,
    ),
    // v13 (issue 13): per-day rollups of usage and events, so that period reports do not read
    // every stored increment and event (store/rollups.rs).
    Migration::Sql(super::rollups::MIGRATION),
    // v14 (issue 13): a series' attributes and rendered labels once per shape of text, in a
    // dictionary, and its `/metrics` identity indexed by a hash instead of its text
    // (store/series_texts.rs); ~60 % of the `series` bytes and nearly all of `series_expo`.
    Migration::Steps(&[Step::Rust(super::series_texts::migrate)]),
    // v15 (issue 13): events name their session by a key into the session dictionary of the
    // rollups, and `events_session_key` indexes that key (store/events.rs); ~16 MB of a year's
    // ~100 (BENCHMARKS.md, "Events name their session by a key").
    Migration::Sql(super::events::SESSION_MIGRATION),
    // v16 (issue 15): per session and model, the sums of the transcripts' requests, so that a
    // report reads a row per session instead of every request (store/transcript_sums.rs).
    Migration::Sql(super::transcript_sums::MIGRATION),
];

/// One schema version's change, applied in one transaction.
enum Migration {
    Sql(&'static str),
    /// Statements and Rust code in turn: data that SQL alone cannot move.
    Steps(&'static [Step]),
}

enum Step {
    Sql(&'static str),
    Rust(fn(&rusqlite::Transaction<'_>) -> Result<(), StoreError>),
}

impl Migration {
    fn apply(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        match self {
            Migration::Sql(sql) => tx.execute_batch(sql)?,
            Migration::Steps(steps) => {
                for step in *steps {
                    match step {
                        Step::Sql(sql) => tx.execute_batch(sql)?,
                        Step::Rust(run) => run(tx)?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// The versions that free most of a table's pages (compact events, store/events.rs; compact
/// series texts, store/series_texts.rs; event session keys, store/events.rs); the file is
/// vacuumed after them.
const COMPACTING: [i64; 3] = [11, 14, 15];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// An object each migration creates, newest first: what a damaged file whose header (and with
/// it `user_version`) was lost is taken to be (`tokentray repair`).
const CREATED_BY: &[(i64, &str)] = &[
    (16, "transcript_session_models"),
    (15, "events_session_key"),
    (14, "series_texts"),
    (13, "usage_days"),
    (12, "transcript_requests_time_session"),
    (11, "event_attr_sets"),
    (10, "series_state_newest"),
    (9, "agent_requests"),
    (8, "pushed_groups"),
    (7, "transcript_requests"),
    (6, "metric_kinds"),
    (5, "events_request"),
    (4, "forward_queue"),
    (3, "series_state"),
    (2, "alerts_fired"),
    (1, "series"),
];

/// The schema version a database holding the objects `names` has.
pub(crate) fn version_of<'a>(names: impl Iterator<Item = &'a str>) -> i64 {
    let names: std::collections::HashSet<&str> = names.collect();
    CREATED_BY.iter().find(|(_, name)| names.contains(name)).map_or(0, |(version, _)| *version)
}

/// The version that added `events.request_id` (tests build the layout just before it).
#[cfg(test)]
pub(crate) const REQUEST_ID_COLUMN: i64 = 5;

/// Brings the database up to [`LATEST`]. Refuses a database written by a newer tokentray.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, LATEST)
}

/// Brings the database up to `target` (tests build older layouts with it).
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew { found: current, supported: LATEST });
    }
    let wanted = MIGRATIONS.iter().enumerate().take(target.clamp(0, LATEST) as usize);
    let mut compacted = false;
    for (i, migration) in wanted.skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        migration.apply(&tx)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
        compacted |= COMPACTING.contains(&(i as i64 + 1));
    }
    if compacted {
        // The compact layout frees most of the events' pages; without this the file keeps its
        // size (SQLite reuses free pages, it does not give them back). VACUUM is atomic: a kill
        // leaves the migrated file as it was before it.
        tracing::info!("upgrading the history: returning the freed space to the disk");
        conn.execute_batch("VACUUM")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_names_an_object_it_creates() {
        assert_eq!(CREATED_BY.len() as i64, LATEST, "a new migration needs its CREATED_BY row");
        let mut conn = Connection::open_in_memory().expect("open");
        for version in 1..=LATEST {
            migrate_to(&mut conn, version).expect("migrate");
            let mut stmt = conn.prepare("SELECT name FROM sqlite_schema").expect("prepare");
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .expect("query")
                .map(|n| n.expect("name"))
                .collect();
            assert_eq!(version_of(names.iter().map(String::as_str)), version);
        }
    }

    #[test]
    fn migrates_once_and_refuses_a_newer_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite3");
        let mut conn = Connection::open(&path).expect("open");
        migrate(&mut conn).expect("fresh database migrates");
        migrate(&mut conn).expect("second run is a no-op");
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(version, LATEST);
        conn.execute_batch(&format!("PRAGMA user_version = {}", LATEST + 1)).expect("bump");
        match migrate(&mut conn) {
            Err(StoreError::TooNew { found, supported }) => {
                assert_eq!((found, supported), (LATEST + 1, LATEST))
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
    }
}
