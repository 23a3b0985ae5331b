//! Rollups of usage and events (schema v13, issue 13): period reports read a row per day (or
//! 15-minute slot) and dimension instead of every stored increment and event.
//!
//! Usage, per rollup key (`rollup_keys`: metric, `type`, `model` and resource; the agent and the
//! machine are the resource's) and, for the groupings that need it, per session
//! (`rollup_sessions`, 0 for none); every series has both (`series_state.rollup_key`,
//! `rollup_session`):
//! * `usage_days`: per UTC day (`slot / 96`) and key, the sum of the day's increments;
//! * `usage_slots`: the same per 15-minute slot (days that straddle two local days of a
//!   breakdown, the edges of a period);
//! * `usage_session_days`: per UTC day, session and key (by session, project, branch, PR and
//!   model, which hands a session's model-less figures to the models it used).
//!
//! Events, with their count and the sums of their cost and tokens: `event_days` and
//! `event_slots` per name, model (`''` for none) and resource, `event_session_days` per session
//! and name.
//!
//! All of them are written in the transaction that writes the detail rows, from the very
//! increments and events it stores, so a rollup never holds what the detail does not (and the
//! other way round). A report over `[start, end)` reads the whole UTC days inside it from the
//! day rollups and the rest from the slot rollups (every time zone is offset by a multiple of
//! 15 minutes, so local days and hours are exact unions of slots) or, for the session
//! groupings, from the detail rows (the partial days at the edges of the period). Events at
//! an edge that is not on a slot boundary are read from the detail rows.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};

use super::{StoreError, SLOT_SECONDS};
use crate::query::report::EventSums;

/// Usage slots per UTC day.
pub(super) const DAY_SLOTS: i64 = 86_400 / SLOT_SECONDS;

/// Nanoseconds per UTC day.
pub(super) const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Nanoseconds per usage slot.
pub(super) const SLOT_NS: i64 = SLOT_SECONDS * 1_000_000_000;

/// SQL of the UTC day of a slot (`slot` names the column), rounding down like `div_euclid`.
macro_rules! day_of_slot_sql {
    ($slot:literal) => {
        concat!(
            "(CASE WHEN ",
            $slot,
            " >= 0 THEN ",
            $slot,
            " / 96 ELSE -((95 - ",
            $slot,
            ") / 96) END)"
        )
    };
}

/// SQL of `ns / unit` for a time in nanoseconds (`ns` names the column), rounding down.
macro_rules! floor_div_sql {
    ($ns:literal, $unit:literal) => {
        concat!(
            "(CASE WHEN ",
            $ns,
            " >= 0 THEN ",
            $ns,
            " / ",
            $unit,
            " ELSE -((",
            $unit,
            " - 1 - ",
            $ns,
            ") / ",
            $unit,
            ") END)"
        )
    };
}

/// The sums every event rollup row keeps, in column order.
macro_rules! event_sums_sql {
    () => {
        "COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0),
         COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0),
         COALESCE(SUM(cache_creation_tokens), 0)"
    };
}

/// Schema v13: the rollups, filled from the detail rows stored so far.
pub(crate) const MIGRATION: &str = concat!(
    r#"
    CREATE TABLE rollup_keys (
        id          INTEGER PRIMARY KEY,
        metric      TEXT NOT NULL,
        type        TEXT,
        model       TEXT,
        resource_id INTEGER NOT NULL
    );
    CREATE INDEX rollup_keys_dims ON rollup_keys(metric, resource_id);
    CREATE TABLE rollup_sessions (
        id         INTEGER PRIMARY KEY,          -- 0 stands for "no session" in the rollups
        session_id TEXT NOT NULL UNIQUE
    );
    ALTER TABLE series_state ADD COLUMN rollup_key INTEGER;
    ALTER TABLE series_state ADD COLUMN rollup_session INTEGER;
    CREATE TABLE usage_days (
        day   INTEGER NOT NULL,                  -- UTC day: slot / 96
        key   INTEGER NOT NULL,                  -- rollup_keys.id
        value REAL NOT NULL,
        PRIMARY KEY (day, key)
    ) WITHOUT ROWID;
    CREATE TABLE usage_slots (
        slot  INTEGER NOT NULL,
        key   INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (slot, key)
    ) WITHOUT ROWID;
    CREATE TABLE usage_session_days (
        day     INTEGER NOT NULL,
        session INTEGER NOT NULL,                -- rollup_sessions.id, 0 for none
        key     INTEGER NOT NULL,
        value   REAL NOT NULL,
        PRIMARY KEY (day, session, key)
    ) WITHOUT ROWID;
    CREATE TABLE event_days (
        day                   INTEGER NOT NULL,
        name                  TEXT NOT NULL,
        model                 TEXT NOT NULL,     -- '' for none
        resource_id           INTEGER NOT NULL,
        count                 INTEGER NOT NULL,
        cost_usd              REAL NOT NULL,
        input_tokens          INTEGER NOT NULL,
        output_tokens         INTEGER NOT NULL,
        cache_read_tokens     INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        PRIMARY KEY (day, name, model, resource_id)
    ) WITHOUT ROWID;
    CREATE TABLE event_slots (
        slot                  INTEGER NOT NULL,
        name                  TEXT NOT NULL,
        model                 TEXT NOT NULL,
        resource_id           INTEGER NOT NULL,
        count                 INTEGER NOT NULL,
        cost_usd              REAL NOT NULL,
        input_tokens          INTEGER NOT NULL,
        output_tokens         INTEGER NOT NULL,
        cache_read_tokens     INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        PRIMARY KEY (slot, name, model, resource_id)
    ) WITHOUT ROWID;
    CREATE TABLE event_session_days (
        day                   INTEGER NOT NULL,
        session               INTEGER NOT NULL,
        name                  TEXT NOT NULL,
        count                 INTEGER NOT NULL,
        cost_usd              REAL NOT NULL,
        input_tokens          INTEGER NOT NULL,
        output_tokens         INTEGER NOT NULL,
        cache_read_tokens     INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        PRIMARY KEY (day, session, name)
    ) WITHOUT ROWID;
    INSERT INTO rollup_keys (metric, type, model, resource_id)
        SELECT DISTINCT metric, type, model, resource_id FROM series ORDER BY 1, 2, 3, 4;
    INSERT INTO rollup_sessions (session_id)
        SELECT session_id FROM series WHERE session_id IS NOT NULL
        UNION SELECT session_id FROM events WHERE session_id IS NOT NULL ORDER BY 1;
    UPDATE series_state SET
        rollup_key = (
            SELECT k.id FROM series s JOIN rollup_keys k
                ON k.metric = s.metric AND k.type IS s.type AND k.model IS s.model
                   AND k.resource_id = s.resource_id
            WHERE s.id = series_state.series_id),
        rollup_session = COALESCE((
            SELECT rs.id FROM series s JOIN rollup_sessions rs ON rs.session_id = s.session_id
            WHERE s.id = series_state.series_id), 0);
    CREATE TEMP TABLE rollup_fill AS
        SELECT u.slot AS slot, k.id AS key, COALESCE(rs.id, 0) AS session, u.value AS value
        FROM usage u JOIN series s ON s.id = u.series_id
        JOIN rollup_keys k ON k.metric = s.metric AND k.type IS s.type AND k.model IS s.model
            AND k.resource_id = s.resource_id
        LEFT JOIN rollup_sessions rs ON rs.session_id = s.session_id;
    INSERT INTO usage_days (day, key, value)
        SELECT "#,
    day_of_slot_sql!("slot"),
    r#" AS d, key, SUM(value) FROM rollup_fill GROUP BY d, key;
    INSERT INTO usage_slots (slot, key, value)
        SELECT slot, key, SUM(value) FROM rollup_fill GROUP BY slot, key;
    INSERT INTO usage_session_days (day, session, key, value)
        SELECT "#,
    day_of_slot_sql!("slot"),
    r#" AS d, session, key, SUM(value) FROM rollup_fill GROUP BY d, session, key;
    DROP TABLE rollup_fill;
    INSERT INTO event_days (day, name, model, resource_id, count, cost_usd, input_tokens,
            output_tokens, cache_read_tokens, cache_creation_tokens)
        SELECT "#,
    floor_div_sql!("time_ns", "86400000000000"),
    r#" AS d, name, COALESCE(model, '') AS m, resource_id, "#,
    event_sums_sql!(),
    r#"
        FROM events GROUP BY d, name, m, resource_id;
    INSERT INTO event_slots (slot, name, model, resource_id, count, cost_usd, input_tokens,
            output_tokens, cache_read_tokens, cache_creation_tokens)
        SELECT "#,
    floor_div_sql!("time_ns", "900000000000"),
    r#" AS sl, name, COALESCE(model, '') AS m, resource_id, "#,
    event_sums_sql!(),
    r#"
        FROM events GROUP BY sl, name, m, resource_id;
    INSERT INTO event_session_days (day, session, name, count, cost_usd, input_tokens,
            output_tokens, cache_read_tokens, cache_creation_tokens)
        SELECT "#,
    floor_div_sql!("e.time_ns", "86400000000000"),
    r#" AS d, COALESCE(rs.id, 0) AS ses, e.name, "#,
    event_sums_sql!(),
    r#"
        FROM events e LEFT JOIN rollup_sessions rs ON rs.session_id = e.session_id
        GROUP BY d, ses, e.name;
    "#
);

/// The UTC day of a usage slot.
pub(super) fn day_of_slot(slot: i64) -> i64 {
    slot.div_euclid(DAY_SLOTS)
}

/// A series' place in the rollups: its `rollup_keys` row and its `rollup_sessions` row (0 for
/// a series without a session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SeriesRollup {
    pub key: i64,
    pub session: i64,
}

/// One event as sums: a count of one and its figures.
fn sums_of(event: &crate::ingest::EventRecord) -> EventSums {
    EventSums {
        count: 1,
        cost_usd: event.cost_usd.unwrap_or(0.0),
        input_tokens: event.input_tokens.unwrap_or(0),
        output_tokens: event.output_tokens.unwrap_or(0),
        cache_read_tokens: event.cache_read_tokens.unwrap_or(0),
        cache_creation_tokens: event.cache_creation_tokens.unwrap_or(0),
    }
}

/// The sums as the rollup tables' columns after the key: count, cost, the four token counts.
fn event_values(sums: &EventSums) -> [Value; 6] {
    [
        Value::Integer(sums.count.min(i64::MAX as u64) as i64),
        Value::Real(sums.cost_usd),
        Value::Integer(sums.input_tokens),
        Value::Integer(sums.output_tokens),
        Value::Integer(sums.cache_read_tokens),
        Value::Integer(sums.cache_creation_tokens),
    ]
}

/// (day or slot, name, model or `''`, resource id): a row of `event_days` / `event_slots`.
type EventKey = (i64, String, String, i64);

/// What a transaction adds to the rollups, summed in memory and written at its end.
#[derive(Debug, Default)]
pub(super) struct PendingRollups {
    /// `(day, key)` → increment.
    usage_days: HashMap<(i64, i64), f64>,
    /// `(slot, key)` → increment.
    usage_slots: HashMap<(i64, i64), f64>,
    /// `(day, session, key)` → increment.
    usage_sessions: HashMap<(i64, i64, i64), f64>,
    event_days: HashMap<EventKey, EventSums>,
    event_slots: HashMap<EventKey, EventSums>,
    /// `(day, session, name)`: the session's `rollup_sessions` id (0 for none), which the
    /// writer looked up for the event's row.
    event_sessions: HashMap<(i64, i64, String), EventSums>,
}

impl PendingRollups {
    /// A usage increment of a series in `slot`.
    pub(super) fn add_usage(&mut self, slot: i64, series: SeriesRollup, inc: f64) {
        let day = day_of_slot(slot);
        *self.usage_days.entry((day, series.key)).or_insert(0.0) += inc;
        *self.usage_slots.entry((slot, series.key)).or_insert(0.0) += inc;
        *self.usage_sessions.entry((day, series.session, series.key)).or_insert(0.0) += inc;
    }

    /// One stored event, of the session `session` (its `rollup_sessions` id, 0 for none).
    pub(super) fn add_event(
        &mut self,
        event: &crate::ingest::EventRecord,
        resource_id: i64,
        session: i64,
    ) {
        let day = event.time_ns.div_euclid(DAY_NS);
        let model = event.model.clone().unwrap_or_default();
        let slot = event.time_ns.div_euclid(SLOT_NS);
        let one = sums_of(event);
        self.event_days
            .entry((day, event.name.clone(), model.clone(), resource_id))
            .or_default()
            .merge(&one);
        self.event_slots
            .entry((slot, event.name.clone(), model, resource_id))
            .or_default()
            .merge(&one);
        self.event_sessions.entry((day, session, event.name.clone())).or_default().merge(&one);
    }

    /// Adds everything to the rollup tables, in key order.
    pub(super) fn flush(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        add_usage(
            tx,
            "usage_days (day, key, value) VALUES (?1, ?2, ?3)",
            "day, key",
            &self.usage_days,
            |k| vec![k.0, k.1],
        )?;
        add_usage(
            tx,
            "usage_slots (slot, key, value) VALUES (?1, ?2, ?3)",
            "slot, key",
            &self.usage_slots,
            |k| vec![k.0, k.1],
        )?;
        add_usage(
            tx,
            "usage_session_days (day, session, key, value) VALUES (?1, ?2, ?3, ?4)",
            "day, session, key",
            &self.usage_sessions,
            |k| vec![k.0, k.1, k.2],
        )?;
        let by_resource = |k: &EventKey| {
            vec![
                Value::Integer(k.0),
                Value::Text(k.1.clone()),
                Value::Text(k.2.clone()),
                Value::Integer(k.3),
            ]
        };
        add_events(
            tx,
            "event_days",
            "day, name, model, resource_id",
            &self.event_days,
            by_resource,
        )?;
        add_events(
            tx,
            "event_slots",
            "slot, name, model, resource_id",
            &self.event_slots,
            by_resource,
        )?;
        add_events(tx, "event_session_days", "day, session, name", &self.event_sessions, |k| {
            vec![Value::Integer(k.0), Value::Integer(k.1), Value::Text(k.2.clone())]
        })
    }
}

/// Upserts usage increments: `insert` is the table, its columns and `VALUES`; `conflict` the
/// primary key; `dims` the key's values in column order.
fn add_usage<K: Ord + Copy>(
    tx: &Transaction<'_>,
    insert: &str,
    conflict: &str,
    rows: &HashMap<K, f64>,
    dims: impl Fn(&K) -> Vec<i64>,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO {insert} ON CONFLICT ({conflict}) DO UPDATE SET value = value + excluded.value"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows: Vec<(&K, &f64)> = rows.iter().collect();
    rows.sort_unstable_by_key(|(k, _)| **k);
    for (k, v) in rows {
        let mut values: Vec<Value> = dims(k).into_iter().map(Value::Integer).collect();
        values.push(Value::Real(*v));
        stmt.execute(params_from_iter(values))?;
    }
    Ok(())
}

/// Upserts event sums into `table`, whose key columns are `columns`.
fn add_events<K: Ord>(
    tx: &Transaction<'_>,
    table: &str,
    columns: &str,
    rows: &HashMap<K, EventSums>,
    dims: impl Fn(&K) -> Vec<Value>,
) -> Result<(), StoreError> {
    let n = columns.split(',').count();
    let marks: Vec<String> = (1..=n + 6).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({columns}, count, cost_usd, input_tokens, output_tokens,
            cache_read_tokens, cache_creation_tokens) VALUES ({})
         ON CONFLICT ({columns}) DO UPDATE SET
            count = count + excluded.count, cost_usd = cost_usd + excluded.cost_usd,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens,
            cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
            cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens",
        marks.join(", ")
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows: Vec<(&K, &EventSums)> = rows.iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, sums) in rows {
        let mut values = dims(k);
        values.extend(event_values(sums));
        stmt.execute(params_from_iter(values))?;
    }
    Ok(())
}

/// The rollup key of (metric, type, model, resource), added if it is new.
pub(super) fn rollup_key(
    tx: &Transaction<'_>,
    metric: &str,
    kind: Option<&str>,
    model: Option<&str>,
    resource_id: i64,
) -> Result<i64, StoreError> {
    let found: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM rollup_keys
             WHERE metric = ?1 AND resource_id = ?2 AND type IS ?3 AND model IS ?4",
        )?
        .query_row(params![metric, resource_id, kind, model], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    tx.prepare_cached(
        "INSERT INTO rollup_keys (metric, type, model, resource_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![metric, kind, model, resource_id])?;
    Ok(tx.last_insert_rowid())
}

/// The `rollup_sessions` id of a session (added if it is new); 0 for none.
pub(super) fn session_id(tx: &Transaction<'_>, session: Option<&str>) -> Result<i64, StoreError> {
    let Some(session) = session else { return Ok(0) };
    let found: Option<i64> = tx
        .prepare_cached("SELECT id FROM rollup_sessions WHERE session_id = ?1")?
        .query_row([session], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO rollup_sessions (session_id) VALUES (?1)")?
        .execute([session])?;
    Ok(tx.last_insert_rowid())
}

/// The place in the rollups of a new series.
pub(super) fn series_rollup(
    tx: &Transaction<'_>,
    metric: &str,
    kind: Option<&str>,
    model: Option<&str>,
    session: Option<&str>,
    resource_id: i64,
) -> Result<SeriesRollup, StoreError> {
    Ok(SeriesRollup {
        key: rollup_key(tx, metric, kind, model, resource_id)?,
        session: session_id(tx, session)?,
    })
}

/// The place in the rollups of a stored series whose state row names none.
pub(super) fn rollup_of_series(
    tx: &Transaction<'_>,
    series_id: i64,
) -> Result<Option<SeriesRollup>, StoreError> {
    type Dims = (String, Option<String>, Option<String>, Option<String>, i64);
    let dims: Option<Dims> = tx
        .prepare_cached(
            "SELECT metric, type, model, session_id, resource_id FROM series WHERE id = ?1",
        )?
        .query_row([series_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    dims.map(|(metric, kind, model, session, resource)| {
        series_rollup(tx, &metric, kind.as_deref(), model.as_deref(), session.as_deref(), resource)
    })
    .transpose()
}

/// Where a part of a report's range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Whole UTC days `[lo, hi)` from a rollup.
    Days(i64, i64),
    /// `[lo, hi)` in the unit of the plan (usage slots, event nanoseconds): read from the slot
    /// rollups or the detail rows.
    Rest(i64, i64),
}

/// How a range `[lo, hi)` (in units of which `per_day` make a UTC day) is read: the whole days
/// within it from a day rollup, the rest from the slot rollups or the detail rows. `data` is the first and last day
/// the rollup holds (nothing is stored outside them, in the rollup or the detail); `aligned`,
/// when given, says which days may come from the rollup (a day straddling two local buckets of
/// a breakdown may not).
pub(super) fn plan(
    lo: i64,
    hi: i64,
    per_day: i64,
    data: Option<(i64, i64)>,
    aligned: Option<&dyn Fn(i64) -> bool>,
) -> Vec<Part> {
    let Some((first_day, last_day)) = data else { return Vec::new() };
    let lo = lo.max(first_day.saturating_mul(per_day));
    let hi = hi.min(last_day.saturating_add(1).saturating_mul(per_day));
    if lo >= hi {
        return Vec::new();
    }
    let day_lo = lo.div_euclid(per_day) + i64::from(lo.rem_euclid(per_day) != 0);
    let day_hi = hi.div_euclid(per_day);
    let mut parts: Vec<Part> = Vec::new();
    let mut push = |part: Part| match (parts.last_mut(), part) {
        (Some(Part::Rest(_, end)), Part::Rest(a, b)) if *end == a => *end = b,
        (Some(Part::Days(_, end)), Part::Days(a, b)) if *end == a => *end = b,
        (_, part) => parts.push(part),
    };
    if day_lo >= day_hi {
        push(Part::Rest(lo, hi));
        return parts;
    }
    if lo < day_lo * per_day {
        push(Part::Rest(lo, day_lo * per_day));
    }
    match aligned {
        None => push(Part::Days(day_lo, day_hi)),
        Some(aligned) => {
            for day in day_lo..day_hi {
                push(if aligned(day) {
                    Part::Days(day, day + 1)
                } else {
                    Part::Rest(day * per_day, (day + 1) * per_day)
                });
            }
        }
    }
    if day_hi * per_day < hi {
        push(Part::Rest(day_hi * per_day, hi));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_whole_days_from_the_rollup_and_its_edges_from_the_detail() {
        let data = Some((0, 100));
        // Slots 10..(3 days + 5): the rest of day 0, days 1 and 2, 5 slots of day 3.
        assert_eq!(
            plan(10, 3 * 96 + 5, 96, data, None),
            vec![Part::Rest(10, 96), Part::Days(1, 3), Part::Rest(288, 293)]
        );
        // Inside one day: detail only.
        assert_eq!(plan(10, 20, 96, data, None), vec![Part::Rest(10, 20)]);
        // All time: the days holding data.
        assert_eq!(plan(i64::MIN, i64::MAX, 96, data, None), vec![Part::Days(0, 101)]);
        assert_eq!(plan(0, 10, 96, None, None), vec![]);
        // Day 2 straddles two local buckets: read from the detail.
        let aligned = |d: i64| d != 2;
        assert_eq!(
            plan(0, 5 * 96, 96, data, Some(&aligned)),
            vec![Part::Days(0, 2), Part::Rest(192, 288), Part::Days(3, 5)]
        );
    }

    #[test]
    fn days_round_down_before_the_epoch_too() {
        assert_eq!(day_of_slot(-1), -1);
        assert_eq!(day_of_slot(95), 0);
        assert_eq!(day_of_slot(96), 1);
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        let sql = format!(
            "SELECT {}, {}, {}, {}",
            day_of_slot_sql!("-1"),
            day_of_slot_sql!("-96"),
            floor_div_sql!("-1", "86400000000000"),
            floor_div_sql!("86400000000000", "86400000000000")
        );
        let got: (i64, i64, i64, i64) = conn
            .transaction()
            .expect("tx")
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query");
        assert_eq!(got, (-1, -1, -1, 1));
    }

    use crate::query::{GroupBy, Period, TimeRange};
    use crate::store::Store;
    use crate::testkit::year::{self, HistoryPlan};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    type Rows = Vec<(String, Vec<f64>)>;

    /// Rows of `sql`: the first `dims` columns as the row's name, the rest as numbers.
    fn rows(conn: &rusqlite::Connection, sql: &str, dims: usize) -> Rows {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let mut name = Vec::new();
                for i in 0..dims {
                    name.push(format!("{:?}", r.get::<_, Value>(i)?));
                }
                let values = (dims..n).map(|i| r.get::<_, f64>(i)).collect::<Result<_, _>>()?;
                Ok((name.join("|"), values))
            })
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    /// Each rollup as stored, and as the detail rows add up.
    fn rollups_and_detail(conn: &rusqlite::Connection) -> Vec<(&'static str, Rows, Rows)> {
        let usage = "FROM usage u JOIN series s ON s.id = u.series_id";
        let sums = "COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0),
            COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_creation_tokens), 0)";
        let stored_sums = "count, cost_usd, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens";
        let cases: [(&'static str, String, String, usize); 6] = [
            (
                "usage_days",
                "SELECT d.day, k.metric, k.type, k.model, k.resource_id, d.value
                 FROM usage_days d JOIN rollup_keys k ON k.id = d.key ORDER BY 1, 2, 3, 4, 5".into(),
                format!("SELECT u.slot / 96, s.metric, s.type, s.model, s.resource_id, SUM(u.value) {usage}
                 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"),
                5,
            ),
            (
                "usage_slots",
                "SELECT d.slot, k.metric, k.type, k.model, k.resource_id, d.value
                 FROM usage_slots d JOIN rollup_keys k ON k.id = d.key ORDER BY 1, 2, 3, 4, 5".into(),
                format!("SELECT u.slot, s.metric, s.type, s.model, s.resource_id, SUM(u.value) {usage}
                 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"),
                5,
            ),
            (
                "usage_session_days",
                "SELECT d.day, rs.session_id, k.metric, k.type, k.model, k.resource_id, d.value
                 FROM usage_session_days d JOIN rollup_keys k ON k.id = d.key
                 LEFT JOIN rollup_sessions rs ON rs.id = d.session ORDER BY 1, 2, 3, 4, 5, 6".into(),
                format!("SELECT u.slot / 96, s.session_id, s.metric, s.type, s.model, s.resource_id, SUM(u.value) {usage}
                 GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"),
                6,
            ),
            (
                "event_days",
                format!("SELECT day, name, model, resource_id, {stored_sums} FROM event_days ORDER BY 1, 2, 3, 4"),
                format!("SELECT time_ns / 86400000000000, name, COALESCE(model, ''), resource_id, {sums}
                 FROM events GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"),
                4,
            ),
            (
                "event_slots",
                format!("SELECT slot, name, model, resource_id, {stored_sums} FROM event_slots ORDER BY 1, 2, 3, 4"),
                format!("SELECT time_ns / 900000000000, name, COALESCE(model, ''), resource_id, {sums}
                 FROM events GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"),
                4,
            ),
            (
                "event_session_days",
                format!("SELECT d.day, rs.session_id, d.name, {stored_sums} FROM event_session_days d
                 LEFT JOIN rollup_sessions rs ON rs.id = d.session ORDER BY 1, 2, 3"),
                format!("SELECT time_ns / 86400000000000, {}, name, {sums}
                 FROM events e GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", crate::store::events::SESSION_SQL),
                3,
            ),
        ];
        cases
            .into_iter()
            .map(|(table, stored, detail, dims)| {
                (table, rows(conn, &stored, dims), rows(conn, &detail, dims))
            })
            .collect()
    }

    /// Equal row for row; sums of doubles within the rounding of adding them in another order,
    /// whole numbers (counts, tokens) exactly.
    fn assert_same(tables: &[(&'static str, Rows, Rows)]) {
        for (table, stored, detail) in tables {
            assert!(!detail.is_empty(), "{table}: no detail rows");
            assert_eq!(stored.len(), detail.len(), "{table}: rows");
            for ((a, x), (b, y)) in stored.iter().zip(detail) {
                assert_eq!(a, b, "{table}");
                for (x, y) in x.iter().zip(y) {
                    if x.fract() == 0.0 && y.fract() == 0.0 {
                        assert_eq!(x, y, "{table} {a}");
                    } else {
                        assert!(year::same_cost(*x, *y), "{table} {a}: rollup {x} != detail {y}");
                    }
                }
            }
        }
    }

    /// The writer keeps the rollups equal to the detail rows through a restart, cumulative
    /// re-sends (counted once) and increments that cross midnight; the v13 migration computes
    /// the same rollups from the detail rows of a database that had none; reports read from
    /// them give what the detail rows give.
    #[test]
    fn the_rollups_add_up_to_the_detail_rows_through_restarts_resends_and_the_migration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let later = HistoryPlan::heavy_user(3, crate::ingest::now_ns() as u64);
        let earlier = later.before(2);
        let store = Store::open(dir.path()).expect("open");
        let first = rt.block_on(year::ingest_history(&store, &earlier, 8)).expect("ingest");
        store.close();
        drop(store);
        // A restart, then a cumulative series sent twice per point and across midnight.
        let store = Store::open(dir.path()).expect("reopen");
        let second = rt.block_on(year::ingest_history(&store, &later, 8)).expect("ingest");
        let day = DAY_NS as u64;
        let midnight = (later.start_ns() / day + 1) * day;
        let typical = crate::testkit::Usage::TYPICAL;
        for (total, time_ns) in [(1.0, midnight - 60_000_000_000), (3.0, midnight + 60_000_000_000)]
        {
            let usage = crate::testkit::Usage {
                input: typical.input * total,
                cost_usd: typical.cost_usd * total,
                ..typical
            };
            for _resend in 0..2 {
                let request = crate::testkit::metrics_request(crate::testkit::usage_metrics(
                    "cumulative-session",
                    "u",
                    "claude-opus-4-5",
                    usage,
                    midnight - 600_000_000_000,
                    time_ns,
                    true,
                ));
                let batch = crate::ingest::metrics::normalize(request, crate::ingest::now_ns());
                rt.block_on(store.ingest(batch)).expect("ingest");
            }
        }
        store.close();
        drop(store);

        let path = dir.path().join(super::super::DB_FILE);
        let conn = rusqlite::Connection::open(&path).expect("open");
        let written = rollups_and_detail(&conn);
        assert_same(&written);
        // The cumulative series counted its growth once: 3x TYPICAL input in all, on two days.
        let input: Vec<f64> = conn
            .prepare(
                "SELECT SUM(u.value) FROM usage u JOIN series s ON s.id = u.series_id
                 WHERE s.session_id = 'cumulative-session' AND s.type = 'input' GROUP BY u.slot / 96",
            )
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .map(|v| v.expect("row"))
            .collect();
        assert_eq!(input, vec![typical.input, 2.0 * typical.input]);

        // The same file as schema v12 (no rollups), migrated again: the same rollups.
        conn.execute_batch(
            "DROP TABLE usage_days; DROP TABLE usage_slots; DROP TABLE usage_session_days;
             DROP TABLE event_days; DROP TABLE event_slots; DROP TABLE event_session_days;
             ALTER TABLE events ADD COLUMN session_id TEXT;
             UPDATE events SET session_id =
                 (SELECT session_id FROM rollup_sessions WHERE id = events.session_key);
             DROP INDEX events_session_key; ALTER TABLE events DROP COLUMN session_key;
             CREATE INDEX events_session ON events(session_id, time_ns);
             DROP TABLE rollup_keys; DROP TABLE rollup_sessions;
             ALTER TABLE series_state DROP COLUMN rollup_key;
             ALTER TABLE series_state DROP COLUMN rollup_session;
             DROP TABLE transcript_session_models; PRAGMA user_version = 12;",
        )
        .expect("back to v12");
        drop(conn);
        let store = Store::open(dir.path()).expect("migrate");
        let reader = store.reader().expect("reader");
        let conn = rusqlite::Connection::open(&path).expect("open");
        let migrated = rollups_and_detail(&conn);
        assert_same(&migrated);
        for ((table, a, _), (_, b, _)) in written.iter().zip(&migrated) {
            assert_eq!(a.len(), b.len(), "{table}");
        }
        // The writer goes on from the migrated rollups.
        let more = HistoryPlan {
            first_index: 1_000_000,
            ..HistoryPlan::heavy_user(1, crate::ingest::now_ns() as u64)
        };
        let third = rt.block_on(year::ingest_history(&store, &more, 8)).expect("ingest");
        assert_same(&rollups_and_detail(&conn));

        // Reports: the rollups and the detail rows give the same figures.
        let sent = first.plus(&second).plus(&third);
        let all = reader.report("all", TimeRange::ALL, None).expect("report").figures;
        assert_eq!(all.api_requests.count, sent.records);
        assert_eq!(all.sessions, sent.sessions as f64);
        assert_eq!(all.tokens.output, sent.output + typical.output);
        assert_eq!(all.tokens.input, sent.input + 3.0 * typical.input);
        for by in [
            GroupBy::Session,
            GroupBy::Model,
            GroupBy::Project,
            GroupBy::Day,
            GroupBy::Hour,
            GroupBy::Week,
            GroupBy::Month,
            GroupBy::Agent,
            GroupBy::Type,
        ] {
            let r = reader.report("all", TimeRange::ALL, Some(by)).expect("report");
            assert_eq!(r.figures.tokens, all.tokens, "{by:?}");
            assert!(year::same_cost(r.figures.cost_usd, all.cost_usd), "{by:?}");
            assert_eq!(r.figures.api_requests.count, all.api_requests.count, "{by:?}");
            let groups = r.groups.expect("groups");
            let tokens: f64 = groups.iter().map(|g| g.figures.tokens.total).sum();
            if by != GroupBy::Model {
                assert_eq!(tokens, all.tokens.total, "{by:?}");
            }
        }
        let week = Period::Week.range_now(chrono::Weekday::Mon);
        let a = reader.report("week", week, None).expect("report").figures;
        let b = reader.report("week", week, Some(GroupBy::Session)).expect("report").figures;
        assert_eq!((a.tokens, a.api_requests.count), (b.tokens, b.api_requests.count));
        store.close();
    }

    /// `EXPLAIN QUERY PLAN`: a period report reads whole days from the rollups and never scans
    /// the detail rows; those it reads at all (the edges of the period: partial slots of events,
    /// partial days by session) through their time index.
    #[test]
    fn period_reports_read_the_rollups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let plan = HistoryPlan::heavy_user(40, crate::ingest::now_ns() as u64);
        let plan = HistoryPlan { sessions_per_day: 2, ..plan };
        let store = Store::open(dir.path()).expect("open");
        rt.block_on(year::ingest_history(&store, &plan, 8)).expect("ingest");
        let reader = store.reader().expect("reader");
        let now = crate::ingest::now_ns();
        let ranges = [
            TimeRange::ALL,
            TimeRange::between(now - 20 * DAY_NS, now - DAY_NS),
            TimeRange::between(now - 35 * DAY_NS - 7_777_000_000_000, now - 5 * DAY_NS),
        ];
        let groupings = [
            (None, ["usage_days", "event_days"]),
            (Some(GroupBy::Month), ["usage_days", "event_days"]),
            (Some(GroupBy::Hour), ["usage_slots", "event_slots"]),
            (Some(GroupBy::Agent), ["usage_days", "event_days"]),
            (Some(GroupBy::Type), ["usage_days", "event_days"]),
            (Some(GroupBy::Model), ["usage_session_days", "event_days"]),
            (Some(GroupBy::Session), ["usage_session_days", "event_session_days"]),
            (Some(GroupBy::Project), ["usage_session_days", "event_session_days"]),
        ];
        for range in ranges {
            for (by, tables) in groupings {
                let plans = reader.explain_report(range, by).expect("explain");
                let lines: Vec<&str> =
                    plans.iter().flat_map(|(_, p)| p).map(String::as_str).collect();
                let what = format!("{range:?} by {by:?}: {plans:#?}");
                for table in tables {
                    let read = |l: &&str| {
                        l.starts_with(&format!("SEARCH {table} "))
                            && (l.contains("day>") || l.contains("slot>"))
                    };
                    assert!(lines.iter().any(read), "{table} not read: {what}");
                }
                for line in &lines {
                    assert!(!line.starts_with("SCAN"), "a scan: {line}\n{what}");
                    let detail = line.contains(" u ")
                        || line.contains(" events ")
                        || line.ends_with(" events");
                    if detail {
                        assert!(
                            line.contains("slot>") || line.contains("time_ns>"),
                            "the detail rows read without their time index: {line}\n{what}"
                        );
                    }
                }
            }
        }
        store.close();
    }
}
