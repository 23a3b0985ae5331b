//! A history written in the layout of schema v4, as the engine of that time wrote it, for the
//! migration tests (issue 13; `testkit::v4`). Feature `testkit` only: the shipped engine never
//! writes an old layout.
//!
//! The tables are created by the migrations 1–4 themselves (released migrations are never
//! edited), and the rows are written as the v4 writer wrote them (`git show
//! 6fbaa57^:core/src/store/writer.rs`, the last commit at v4): a series row with its rendered
//! `/metrics` identity and its resource (the series row with v4's statement, its attributes and
//! labels as text: v14 moved them to a dictionary), its running state in `series_state` and the
//! increments of monotonic sums per 15-minute slot in `usage` (with the writer's own statements
//! for these, unchanged since v4), and every event with all of its attributes as one JSON
//! document (v4's statement: no `request_id` column, no dictionary). The running state of each
//! series is written once, at the end, as the last of the v4 writer's transactions would have
//! left it.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use super::accounting::{Effect, SeriesTotals};
use super::live;
use super::writer::{self, SLOT_SECONDS};
use super::{connect, schema, StoreError, DB_FILE};
use crate::ingest::{attrs, Batch, Resource, SeriesDesc, Shape};

/// The schema version [`V4Writer`] writes.
pub(crate) const V4: i64 = 4;

struct V4Series {
    id: i64,
    shape: Shape,
    totals: SeriesTotals,
}

/// Writes batches into a new schema-v4 database, all in one transaction.
pub(crate) struct V4Writer {
    conn: Connection,
    series: HashMap<u128, V4Series>,
    resources: HashMap<u128, i64>,
    usage: HashMap<(i64, i64), f64>,
}

impl V4Writer {
    /// Creates `data_dir` (if needed) and a schema-v4 database in it; refuses an existing one.
    pub(crate) fn create(data_dir: &Path) -> Result<V4Writer, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let path = data_dir.join(DB_FILE);
        if path.exists() {
            return Err(StoreError::Sqlite(format!("{} exists already", path.display())));
        }
        let mut conn = connect(&path)?;
        schema::migrate_to(&mut conn, V4)?;
        // A fixture, not acknowledged data: one transaction, no fsync per page.
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(V4Writer {
            conn,
            series: HashMap::new(),
            resources: HashMap::new(),
            usage: HashMap::new(),
        })
    }

    /// Applies one normalised request as the v4 writer did. Refuses what v4 could not hold
    /// (counters derived from events, other agents' requests) and any refused point.
    pub(crate) fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if !batch.derived.is_empty() || !batch.agent_requests.is_empty() || batch.rejected != 0 {
            return Err(StoreError::Sqlite(
                "a v4 history holds only Claude Code's own points, events and spans".into(),
            ));
        }
        for point in &batch.points {
            let desc = &point.series;
            if !self.series.contains_key(&desc.key) {
                let created = self.create_series(desc, point.time_ns)?;
                self.series.insert(desc.key, created);
            }
            let Some(state) = self.series.get_mut(&desc.key) else { continue };
            let effect = state
                .totals
                .apply_finite(
                    state.shape,
                    point.temporality,
                    point.start_ns,
                    point.time_ns,
                    &point.value,
                )
                .map_err(|r| StoreError::Sqlite(format!("{}: {r:?}", desc.metric)))?;
            if let (Shape::MonotonicSum, Effect::Add(inc)) = (state.shape, effect) {
                if inc != 0.0 {
                    let slot = (point.time_ns / 1_000_000_000) as i64 / SLOT_SECONDS;
                    *self.usage.entry((slot, state.id)).or_insert(0.0) += inc;
                }
            }
        }
        for event in &batch.events {
            let resource_id = self.resource_id(&event.resource)?;
            self.conn
                .prepare_cached(
                    "INSERT INTO events (time_ns, name, resource_id, session_id, prompt_id, model, cost_usd, input_tokens,
                        output_tokens, cache_read_tokens, cache_creation_tokens, duration_ms, attrs)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?
                .execute(params![
                    event.time_ns,
                    event.name,
                    resource_id,
                    event.session_id,
                    event.prompt_id,
                    event.model,
                    event.cost_usd,
                    event.input_tokens,
                    event.output_tokens,
                    event.cache_read_tokens,
                    event.cache_creation_tokens,
                    event.duration_ms,
                    attrs::to_json(&event.attrs),
                ])?;
        }
        for span in &batch.spans {
            self.conn
                .prepare_cached(
                    "INSERT INTO spans (start_ns, end_ns, name, trace_id, span_id, session_id, status_code)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    span.start_ns,
                    span.end_ns,
                    span.name,
                    span.trace_id,
                    span.span_id,
                    span.session_id,
                    span.status_code
                ])?;
        }
        Ok(())
    }

    fn create_series(&mut self, desc: &SeriesDesc, time_ns: u64) -> Result<V4Series, StoreError> {
        let (expo, _) = live::expo_key(live::SeriesNaming::of(desc));
        let resource_id = self.resource_id(&desc.resource)?;
        let id = insert_v4_series(&self.conn, desc, resource_id, time_ns, &expo)?;
        Ok(V4Series { id, shape: desc.shape, totals: SeriesTotals::default() })
    }

    fn resource_id(&mut self, resource: &Resource) -> Result<i64, StoreError> {
        if let Some(&id) = self.resources.get(&resource.key) {
            return Ok(id);
        }
        let id = writer::stored_resource_id(&self.conn, resource)?;
        self.resources.insert(resource.key, id);
        Ok(id)
    }

    /// Writes every series' running state and the usage increments, commits and closes the
    /// file (its WAL folded back in: one file to copy).
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let V4Writer { conn, series, usage, .. } = self;
        store_states_v4(&conn, series.values().map(|s| (s.id, &s.totals)).collect())?;
        writer::add_usage(&conn, &usage)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params!["last_ingest_ns", crate::ingest::now_ns().to_string()],
        )?;
        conn.execute_batch("COMMIT")?;
        conn.close().map_err(|(_, e)| StoreError::from(e))
    }
}

/// The `PRAGMA user_version` of the database at `path`, read without migrating or changing it:
/// read-only, so closing does not checkpoint the WAL a `kill -9` left (the next start recovers
/// from it as it found it).
pub(crate) fn schema_version(path: &Path) -> Result<i64, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Stores the running state of each series `(id, totals)` with the writer's statement of v4 to
/// v12 (v13 added the rollup key columns, which a v4 file does not have yet).
fn store_states_v4(
    conn: &Connection,
    mut states: Vec<(i64, &SeriesTotals)>,
) -> Result<(), StoreError> {
    // Upserts: a series created in this transaction has no state row yet. In id order, so
    // consecutive statements walk the B-tree forward through the same pages.
    let mut update = conn.prepare_cached(
        "INSERT INTO series_state (series_id, total, hist, cum_start_ns, cum_time_ns, cum_value, last_time_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (series_id) DO UPDATE SET total = excluded.total, hist = excluded.hist,
            cum_start_ns = excluded.cum_start_ns, cum_time_ns = excluded.cum_time_ns,
            cum_value = excluded.cum_value, last_time_ns = excluded.last_time_ns",
    )?;
    states.sort_unstable_by_key(|(id, _)| *id);
    for (id, t) in states {
        let (hist, cum_value) = writer::encoded_state(t)?;
        update.execute(params![
            id,
            t.total,
            hist,
            t.cum.as_ref().map(|c| writer::clamp_i64(c.start_ns)),
            t.cum.as_ref().map(|c| writer::clamp_i64(c.time_ns)),
            cum_value,
            writer::clamp_i64(t.last_time_ns),
        ])?;
    }
    Ok(())
}

/// The v4 writer's statement for a new series (the layout of `series` from v4 to v13): its
/// attributes as JSON and its rendered labels as text in the row.
fn insert_v4_series(
    conn: &Connection,
    desc: &SeriesDesc,
    resource_id: i64,
    created_ns: u64,
    expo: &live::ExpoKey,
) -> Result<i64, StoreError> {
    let get = |k| attrs::get_str(&desc.attrs, k);
    conn.prepare_cached(
        "INSERT INTO series (key, metric, unit, description, shape, resource_id, scope_name, scope_version, attrs,
            session_id, model, type, user_id, created_ns, expo_family, expo_unit, expo_labels)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        desc.key.to_be_bytes().as_slice(),
        desc.metric,
        desc.unit,
        desc.description,
        desc.shape.code(),
        resource_id,
        desc.scope_name,
        desc.scope_version,
        attrs::to_json(&desc.attrs),
        get("session.id"),
        get("model"),
        get("type"),
        get("user.id"),
        writer::clamp_i64(created_ns),
        expo.family,
        expo.unit,
        &*expo.labels,
    ])?;
    Ok(conn.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::ingest::{self, Privacy};
    use crate::query::TimeRange;
    use crate::store::{Store, DB_FILE};
    use crate::testkit::{self, v4, year::HistoryPlan};

    /// A small v4 history, migrated in process: every figure is the generator's, every event
    /// keeps every attribute it was sent with, and its request id is found through the column
    /// v5 added. (`tests/migration_v4.rs` does the same through the real binary, and kills it.)
    #[test]
    fn a_v4_history_migrates_with_every_figure_and_attribute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = HistoryPlan {
            sessions_per_day: 6,
            api_requests_per_session: 10,
            ..HistoryPlan::heavy_user(1, ingest::now_ns() as u64)
        };
        let sessions: Vec<_> = plan.generate().map(testkit::with_request_details).collect();
        // What each event was sent with, by request id.
        let mut sent: HashMap<String, serde_json::Value> = HashMap::new();
        for s in &sessions {
            for e in ingest::logs::normalize(s.logs.clone(), 0, Privacy::default()).events {
                let attrs: serde_json::Value =
                    serde_json::from_str(&crate::ingest::attrs::to_json(&e.attrs)).expect("json");
                let id = attrs["request_id"].as_str().expect("request_id").to_string();
                sent.insert(id, attrs);
            }
        }
        let totals = v4::write_v4_history(dir.path(), sessions).expect("v4");
        assert_eq!(totals, plan.totals());
        let db = dir.path().join(DB_FILE);
        assert_eq!(v4::schema_version(&db).expect("version"), v4::SCHEMA);

        let store = Store::open(dir.path()).expect("open migrates");
        assert_eq!(v4::schema_version(&db).expect("version"), v4::CURRENT_SCHEMA);
        let reader = store.reader().expect("reader");
        let f = reader.report("all", TimeRange::ALL, None).expect("report").figures;
        assert!(testkit::year::same_cost(f.cost_usd, totals.cost_usd));
        assert_eq!(
            (f.tokens.input, f.tokens.output, f.tokens.cache_read, f.tokens.cache_creation),
            (totals.input, totals.output, totals.cache_read, totals.cache_creation)
        );
        assert_eq!(f.sessions, totals.sessions as f64);
        assert_eq!(f.active_time_seconds, totals.active_seconds);
        assert_eq!(f.api_requests.count, totals.records);
        let ids = reader.telemetry_request_ids(0, i64::MAX).expect("ids");
        assert_eq!(ids.len() as u64, totals.records);
        let events = reader.recent_events(1_000, None, None).expect("events");
        assert_eq!(events.len(), sent.len());
        for e in &events {
            let id = e.attrs["request_id"].as_str().expect("request_id");
            assert_eq!(Some(&e.attrs), sent.get(id), "event {id}");
        }
        let snapshot = store.snapshot();
        let tokens = testkit::year::family_sum(&snapshot, "claude_code_token_usage_tokens_total");
        assert_eq!(tokens, totals.tokens());
        let cost = testkit::year::family_sum(&snapshot, "claude_code_cost_usage_USD_total");
        assert!(testkit::year::same_cost(cost, totals.cost_usd));
        store.close();
    }
}
