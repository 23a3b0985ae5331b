//! Read-side queries over the history (reports, dashboards, diagnostics).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Local, TimeZone, Weekday};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::rollups::{self, Part};
use super::{data_dir, StoreError, DB_FILE, SLOT_SECONDS};
use crate::query::report::{names, EventSums, Figures};
use crate::query::{local_bucket, Group, GroupBy, Report, TimeRange};

/// A connection for queries. Several may be open while `serve` writes (WAL).
pub struct Reader {
    conn: Connection,
    /// Prices for transcript requests no Claude Code cost covers (`[pricing]` overrides).
    prices: crate::pricing::PriceTable,
}

/// One stored event, for the activity list and the "last request" line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    /// When the event happened, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Event name without attributes (`claude_code.api_request`, `claude_code.tool_result`, …).
    pub name: String,
    /// The usage columns, flattened into this object's JSON.
    #[serde(flatten)]
    pub figures: EventFigures,
    /// The event's attributes as a JSON object (prompt text only when `store_prompts` is on).
    pub attrs: serde_json::Value,
}

/// What an event says about usage (the promoted columns of `events`); the views built on
/// [`EventRow`] carry it as is, so their JSON has the same field names.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EventFigures {
    /// Claude Code's `session.id`; `None` when the event has none.
    pub session_id: Option<String>,
    /// The `model` attribute; `None` for events without one (tool results, prompts).
    pub model: Option<String>,
    /// Cost Claude Code stated for the request, in USD; `None` when not sent.
    pub cost_usd: Option<f64>,
    /// Input tokens of the request; `None` when not sent.
    pub input_tokens: Option<i64>,
    /// Output tokens of the request; `None` when not sent.
    pub output_tokens: Option<i64>,
    /// Tokens read from the prompt cache; `None` when not sent.
    pub cache_read_tokens: Option<i64>,
    /// Tokens written to the prompt cache; `None` when not sent.
    pub cache_creation_tokens: Option<i64>,
    /// How long the request or tool took, in milliseconds; `None` when not sent.
    pub duration_ms: Option<i64>,
}

/// First and last stored instant of one session (dashboard's session list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTimes {
    /// Earliest stored event or metric point of the session, in nanoseconds since the Unix epoch.
    pub first_ns: i64,
    /// Latest stored event or metric point of the session, in nanoseconds since the Unix epoch.
    pub last_ns: i64,
}

const SLOT_NS: i64 = SLOT_SECONDS * 1_000_000_000;

/// One sum of usage as the report query returns it.
struct UsageRow {
    metric: String,
    kind: Option<String>,
    /// The grouping's raw key: a model, a session id or a slot number.
    key: rusqlite::types::Value,
    /// By model: the series' session, so that model-less figures of a session (its count and
    /// active time) go to the models the session used.
    session: Option<String>,
    value: f64,
    models_of_session: Vec<String>,
}

/// By model, the models each session used within the range, onto the model-less rows.
fn attach_session_models(rows: &mut [UsageRow]) {
    let mut models: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows.iter() {
        if let (Some(sid), rusqlite::types::Value::Text(model)) = (&r.session, &r.key) {
            if !model.is_empty() {
                let list = models.entry(sid.clone()).or_default();
                if !list.contains(model) {
                    list.push(model.clone());
                }
            }
        }
    }
    for r in rows.iter_mut() {
        let model_less = matches!(&r.key, rusqlite::types::Value::Text(m) if m.is_empty());
        if let (true, Some(sid)) = (model_less, &r.session) {
            r.models_of_session = models.get(sid).cloned().unwrap_or_default();
        }
    }
}

/// How raw grouping keys become row labels.
struct Bucketing {
    by: Option<GroupBy>,
    week_start: Weekday,
    /// Labels of the slots seen so far: the rollups give many rows per slot and local bucket.
    labels: std::cell::RefCell<std::collections::HashMap<i64, String>>,
}

impl Bucketing {
    /// The rows a usage sum goes to (none when ungrouped, or by type for what is not tokens).
    fn metric_keys(&self, row: &UsageRow) -> Option<Vec<String>> {
        match self.by? {
            GroupBy::Type if row.metric != names::TOKENS => None,
            GroupBy::Model if !row.models_of_session.is_empty() => {
                Some(row.models_of_session.clone())
            }
            _ => Some(vec![self.key(row.key.clone(), row.kind.as_deref())]),
        }
    }

    fn key(&self, raw: rusqlite::types::Value, kind: Option<&str>) -> String {
        use rusqlite::types::Value;
        match (self.by, raw) {
            (Some(GroupBy::Type), _) => kind.unwrap_or_default().to_string(),
            (
                Some(g @ (GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour)),
                Value::Integer(v),
            ) => {
                let label = || local_bucket(&Local, v.saturating_mul(SLOT_NS), g, self.week_start);
                match self.labels.try_borrow_mut() {
                    Ok(mut labels) => labels.entry(v).or_insert_with(label).clone(),
                    Err(_) => label(),
                }
            }
            (_, Value::Text(t)) => t,
            _ => String::new(),
        }
    }
}

impl Reader {
    /// Opens the database of a data directory, creating it if this is the first run.
    /// A history that cannot be written here (a read-only mount) is opened read-only.
    pub fn open(data_dir: &Path) -> Result<Reader, StoreError> {
        let path = data_dir.join(DB_FILE);
        if let Err(created) = data_dir::create(data_dir) {
            return match data_dir::check_existing(data_dir) {
                Ok(()) => Reader::open_read_only(&path),
                Err(_) => Err(created),
            };
        }
        match Reader::open_file(&path) {
            Ok(reader) if reader.readable() => Ok(reader),
            Ok(_) => Reader::open_read_only(&path),
            Err(e) => Reader::open_read_only(&path).map_err(|_| e),
        }
    }

    /// The history read-only, or an empty one when the read-only directory holds none yet.
    fn open_read_only(path: &Path) -> Result<Reader, StoreError> {
        if !path.exists() {
            return Ok(Reader::with_connection(data_dir::empty_history()?));
        }
        Ok(Reader::with_connection(data_dir::open_read_only(path)?))
    }

    fn readable(&self) -> bool {
        self.conn.query_row("SELECT COUNT(*) FROM series", [], |r| r.get::<_, i64>(0)).is_ok()
    }

    pub(super) fn open_file(path: &Path) -> Result<Reader, StoreError> {
        Ok(Reader::with_connection(super::open_migrated(path)?))
    }

    /// Transcript requests are priced with the process's table (the embedded one plus the
    /// `[pricing]` given to [`crate::pricing::PriceTable::configure`]) until `with_prices` says
    /// otherwise.
    fn with_connection(conn: Connection) -> Reader {
        Reader { conn, prices: crate::pricing::PriceTable::configured() }
    }

    /// Prices transcript requests with `prices` (the embedded table plus `[pricing]`).
    pub fn with_prices(mut self, prices: crate::pricing::PriceTable) -> Reader {
        self.prices = prices;
        self
    }

    /// Replaces the price table used for transcript requests (after `[pricing]` changed).
    pub fn set_prices(&mut self, prices: crate::pricing::PriceTable) {
        self.prices = prices;
    }

    /// The price table transcript requests are priced with.
    pub fn prices(&self) -> &crate::pricing::PriceTable {
        &self.prices
    }

    /// The connection, for queries of other core modules (budgets) that live next to their
    /// vocabulary rather than here.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Spend, tokens, sessions, active time and events for a range, optionally broken down
    /// (weeks starting on Monday; see [`Reader::report_weeks_from`]).
    pub fn report(
        &self,
        period: &str,
        range: TimeRange,
        by: Option<GroupBy>,
    ) -> Result<Report, StoreError> {
        self.report_weeks_from(period, range, by, Weekday::Mon)
    }

    /// [`Reader::report`] with `--by week` buckets starting on `week_start`. Every grouping puts
    /// sessions and active time in the row they belong to: by model, a session counts in each
    /// model it used; by type, rows are the four token types only.
    pub fn report_weeks_from(
        &self,
        period: &str,
        range: TimeRange,
        by: Option<GroupBy>,
        week_start: Weekday,
    ) -> Result<Report, StoreError> {
        let bucket = Bucketing { by, week_start, labels: Default::default() };
        let mut total = Figures::default();
        let mut groups: BTreeMap<String, Figures> = BTreeMap::new();
        for row in self.usage_rows(range, &bucket)? {
            total.add_metric(&row.metric, row.kind.as_deref(), row.value);
            if let Some(keys) = bucket.metric_keys(&row) {
                for key in keys {
                    groups.entry(key).or_default().add_metric(
                        &row.metric,
                        row.kind.as_deref(),
                        row.value,
                    );
                }
            }
        }
        for (name, raw_key, sums) in self.event_rows(range, &bucket)? {
            total.add_events(&name, &sums);
            if by.is_some() && by != Some(GroupBy::Type) {
                let key = bucket.key(raw_key, None);
                groups.entry(key).or_default().add_events(&name, &sums);
            }
        }
        let (start_ns, end_ns) = range.bounds_ns();
        self.add_transcripts(start_ns, end_ns, by, week_start, &mut total, &mut groups)?;
        self.add_agents(start_ns, end_ns, by, week_start, &mut total, &mut groups)?;
        let groups = match by {
            Some(g @ (GroupBy::Project | GroupBy::Branch | GroupBy::Pr)) => {
                self.fold_by_place(g, groups)?
            }
            _ => groups
                .into_iter()
                .map(|(key, figures)| Group { key, detail: None, figures })
                .collect(),
        };
        let tz = Local;
        let fmt = |ns: Option<i64>| ns.map(|ns| tz.timestamp_nanos(ns).to_rfc3339());
        Ok(Report {
            period: period.to_string(),
            start: fmt(range.start_ns),
            end: fmt(range.end_ns),
            figures: total,
            by: by.map(|b| b.name().to_string()),
            groups: by.map(|_| groups),
        })
    }

    /// Sums of usage by metric, type, grouping key and (by model) session.
    fn usage_rows(
        &self,
        range: TimeRange,
        bucket: &Bucketing,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let mut rows = Vec::new();
        for (sql, lo, hi) in self.usage_statements(range, bucket)? {
            if sql == SLOT_BUCKETS_SQL {
                self.usage_slot_buckets(lo, hi, bucket, &mut rows)?;
                continue;
            }
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let found = stmt.query_map(params![lo, hi], |r| {
                Ok(UsageRow {
                    metric: r.get(0)?,
                    kind: r.get(1)?,
                    key: r.get(2)?,
                    session: r.get(3)?,
                    value: r.get(4)?,
                    models_of_session: Vec::new(),
                })
            })?;
            for row in found {
                rows.push(row?);
            }
        }
        if bucket.by == Some(GroupBy::Model) {
            attach_session_models(&mut rows);
        }
        Ok(rows)
    }

    /// The statements (SQL, bounds) that read a report's usage: whole days from a day rollup,
    /// the rest from the slot rollup or, for the session groupings, the increments
    /// (store/rollups.rs).
    fn usage_statements(
        &self,
        range: TimeRange,
        bucket: &Bucketing,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let (slot_lo, slot_hi) = slots_of(start_ns, end_ns);
        let by = bucket.by;
        let data = self.rollup_days("usage_days")?;
        let aligned = |day: i64| bucket.aligned(day);
        let sessions = needs_session(by, false);
        let check = (!sessions && has_time_buckets(by)).then_some(&aligned as &dyn Fn(i64) -> bool);
        let parts = rollups::plan(slot_lo, slot_hi, rollups::DAY_SLOTS, data, check);
        Ok(parts
            .into_iter()
            .map(|part| match (part, sessions) {
                (Part::Days(lo, hi), false) => (usage_rollup_sql(by, UsageGrain::Days), lo, hi),
                (Part::Days(lo, hi), true) => {
                    (usage_rollup_sql(by, UsageGrain::SessionDays), lo, hi)
                }
                (Part::Rest(lo, hi), false) if has_time_buckets(by) => {
                    (SLOT_BUCKETS_SQL.to_string(), lo, hi)
                }
                (Part::Rest(lo, hi), false) => (usage_rollup_sql(by, UsageGrain::Slots), lo, hi),
                (Part::Rest(lo, hi), true) => (usage_detail_sql(by), lo, hi),
            })
            .collect())
    }

    /// Slots `[lo, hi)` of `usage_slots` for a breakdown by local day, week, month or hour: the
    /// rows come in slot order, so each run of slots with one label is summed per rollup key as
    /// it is read (a month is ~20 000 rows and ~500 sums), one row per run and key.
    fn usage_slot_buckets(
        &self,
        lo: i64,
        hi: i64,
        bucket: &Bucketing,
        rows: &mut Vec<UsageRow>,
    ) -> Result<(), StoreError> {
        let mut dims: BTreeMap<i64, (String, Option<String>)> = BTreeMap::new();
        let mut stmt = self.conn.prepare_cached("SELECT id, metric, type FROM rollup_keys")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))? {
            let (id, dim) = row?;
            dims.insert(id, dim);
        }
        let mut emit = |first_slot: i64, sums: &mut BTreeMap<i64, f64>| {
            for (key, value) in std::mem::take(sums) {
                if let Some((metric, kind)) = dims.get(&key) {
                    rows.push(UsageRow {
                        metric: metric.clone(),
                        kind: kind.clone(),
                        key: rusqlite::types::Value::Integer(first_slot),
                        session: None,
                        value,
                        models_of_session: Vec::new(),
                    });
                }
            }
        };
        let mut stmt = self.conn.prepare_cached(SLOT_BUCKETS_SQL)?;
        let mut found = stmt.query(params![lo, hi])?;
        // The current run: its label, its first slot, the last slot seen, the sums per key.
        let mut run: Option<(String, i64, i64)> = None;
        let mut sums: BTreeMap<i64, f64> = BTreeMap::new();
        while let Some(r) = found.next()? {
            let (slot, key, value): (i64, i64, f64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            match &mut run {
                Some((_, _, last)) if *last == slot => {}
                _ => {
                    let label = bucket.key(rusqlite::types::Value::Integer(slot), None);
                    match &mut run {
                        Some((current, _, last)) if *current == label => *last = slot,
                        _ => {
                            if let Some((_, first, _)) = run.take() {
                                emit(first, &mut sums);
                            }
                            run = Some((label, slot, slot));
                        }
                    }
                }
            }
            *sums.entry(key).or_insert(0.0) += value;
        }
        if let Some((_, first, _)) = run {
            emit(first, &mut sums);
        }
        Ok(())
    }

    /// The first and last day a rollup table holds, if any.
    fn rollup_days(&self, table: &str) -> Result<Option<(i64, i64)>, StoreError> {
        let sql = format!("SELECT MIN(day), MAX(day) FROM {table}");
        let (first, last): (Option<i64>, Option<i64>) =
            self.conn.prepare_cached(&sql)?.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(first.zip(last))
    }

    /// Sums of events by name and grouping key.
    fn event_rows(
        &self,
        range: TimeRange,
        bucket: &Bucketing,
    ) -> Result<Vec<(String, rusqlite::types::Value, EventSums)>, StoreError> {
        let mut rows = Vec::new();
        for (sql, lo, hi) in self.event_statements(range, bucket)? {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let found = stmt.query_map(params![lo, hi], |r| {
                let sums = EventSums {
                    count: r.get::<_, i64>(2)? as u64,
                    cost_usd: r.get(3)?,
                    input_tokens: r.get(4)?,
                    output_tokens: r.get(5)?,
                    cache_read_tokens: r.get(6)?,
                    cache_creation_tokens: r.get(7)?,
                };
                Ok((r.get(0)?, r.get(1)?, sums))
            })?;
            for row in found {
                rows.push(row?);
            }
        }
        Ok(rows)
    }

    /// The statements (SQL, bounds) that read a report's events, as [`Reader::usage_statements`]
    /// does for usage (the plan in nanoseconds; what is not on a slot boundary from the events).
    fn event_statements(
        &self,
        range: TimeRange,
        bucket: &Bucketing,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let by = bucket.by;
        let data = self.rollup_days("event_days")?;
        let aligned = |day: i64| bucket.aligned(day);
        let sessions = needs_session(by, true);
        let check = (!sessions && has_time_buckets(by)).then_some(&aligned as &dyn Fn(i64) -> bool);
        let parts = rollups::plan(start_ns, end_ns, rollups::DAY_NS, data, check);
        let mut statements = Vec::new();
        for part in parts {
            match (part, sessions) {
                (Part::Days(lo, hi), false) => {
                    statements.push((event_rollup_sql(by, EventGrain::Days), lo, hi))
                }
                (Part::Days(lo, hi), true) => {
                    statements.push((event_rollup_sql(by, EventGrain::SessionDays), lo, hi))
                }
                (Part::Rest(lo, hi), true) => statements.push((event_detail_sql(by), lo, hi)),
                (Part::Rest(lo, hi), false) => {
                    // Whole slots from the slot rollup, the partial ones at either end from the
                    // events.
                    let first = lo.div_euclid(SLOT_NS) + i64::from(lo.rem_euclid(SLOT_NS) != 0);
                    let last = hi.div_euclid(SLOT_NS);
                    if first >= last {
                        statements.push((event_detail_sql(by), lo, hi));
                        continue;
                    }
                    if lo < first * SLOT_NS {
                        statements.push((event_detail_sql(by), lo, first * SLOT_NS));
                    }
                    statements.push((event_rollup_sql(by, EventGrain::Slots), first, last));
                    if last * SLOT_NS < hi {
                        statements.push((event_detail_sql(by), last * SLOT_NS, hi));
                    }
                }
            }
        }
        Ok(statements)
    }

    /// `EXPLAIN QUERY PLAN` of every statement a report of `range` by `by` runs on usage and
    /// events (tests check that period reports read the rollups).
    #[cfg(test)]
    pub(crate) fn explain_report(
        &self,
        range: TimeRange,
        by: Option<GroupBy>,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let bucket = Bucketing { by, week_start: Weekday::Mon, labels: Default::default() };
        let mut out = Vec::new();
        let statements = self
            .usage_statements(range, &bucket)?
            .into_iter()
            .chain(self.event_statements(range, &bucket)?);
        for (sql, lo, hi) in statements {
            let mut stmt = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let plan = stmt
                .query_map(params![lo, hi], |r| r.get::<_, String>(3))?
                .collect::<Result<Vec<_>, _>>()?;
            out.push((sql, plan));
        }
        Ok(out)
    }

    /// The most recent events, newest first, optionally of one session and/or one name.
    pub fn recent_events(
        &self,
        limit: usize,
        session: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<EventRow>, StoreError> {
        match name {
            Some(name) => self.recent_events_named(limit, session, &[name]),
            None => self.recent_events_named(limit, session, &[]),
        }
    }

    /// The most recent events, newest first, optionally of one session, of any of `names` (all
    /// names when empty).
    pub(crate) fn recent_events_named(
        &self,
        limit: usize,
        session: Option<&str>,
        names: &[&str],
    ) -> Result<Vec<EventRow>, StoreError> {
        let name_filter = if names.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (0..names.len()).map(|i| format!("?{}", i + 3)).collect();
            format!("AND e.name IN ({})", marks.join(", "))
        };
        let session_sql = super::events::SESSION_SQL;
        let session_key = super::events::session_key_sql(1);
        let sql = format!(
            "SELECT e.time_ns, e.name, {session_sql}, e.model, e.cost_usd, e.input_tokens, e.output_tokens,
                    e.cache_read_tokens, e.cache_creation_tokens, e.duration_ms, e.prompt_id, e.request_id,
                    e.promoted, a.attrs, e.attr_values
             FROM events e LEFT JOIN event_attr_sets a ON a.id = e.attr_set
             WHERE (?1 IS NULL OR e.session_key = {session_key}) {name_filter}
             ORDER BY e.time_ns DESC, e.id DESC LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut values: Vec<rusqlite::types::Value> = vec![
            session.map(str::to_string).into(),
            rusqlite::types::Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
        ];
        values.extend(names.iter().map(|n| rusqlite::types::Value::Text((*n).to_string())));
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
            let columns = super::events::Columns {
                time_ns: r.get(0)?,
                session_id: r.get(2)?,
                model: r.get(3)?,
                cost_usd: r.get(4)?,
                input_tokens: r.get(5)?,
                output_tokens: r.get(6)?,
                cache_read_tokens: r.get(7)?,
                cache_creation_tokens: r.get(8)?,
                duration_ms: r.get(9)?,
                prompt_id: r.get(10)?,
                request_id: r.get(11)?,
            };
            let attrs = super::events::join(
                r.get(12)?,
                r.get_ref(13)?.as_str_or_null()?,
                r.get_ref(14)?.as_str_or_null()?,
                &columns,
            );
            Ok(EventRow {
                time_ns: columns.time_ns,
                name: r.get(1)?,
                figures: EventFigures {
                    session_id: columns.session_id,
                    model: columns.model,
                    cost_usd: columns.cost_usd,
                    input_tokens: columns.input_tokens,
                    output_tokens: columns.output_tokens,
                    cache_read_tokens: columns.cache_read_tokens,
                    cache_creation_tokens: columns.cache_creation_tokens,
                    duration_ms: columns.duration_ms,
                },
                attrs,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Time and cost of every event named `name` from `since_ns` on (the statusline's burn
    /// rate over the last hour).
    pub fn event_costs_since(
        &self,
        name: &str,
        since_ns: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT time_ns, COALESCE(cost_usd, 0) FROM events WHERE name = ?1 AND time_ns >= ?2",
        )?;
        let rows = stmt.query_map(params![name, since_ns], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Distinct sessions with any usage in the range.
    pub fn session_ids(&self, range: TimeRange) -> Result<Vec<String>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT s.session_id FROM usage u JOIN series s ON s.id = u.series_id
             WHERE s.session_id IS NOT NULL AND u.slot >= ?1 AND u.slot < ?2 ORDER BY 1",
        )?;
        let rows = stmt.query_map(
            params![start_ns.div_euclid(SLOT_NS), end_ns.div_euclid(SLOT_NS).saturating_add(1)],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A value the writer records in `meta` (`last_ingest_ns`, `last_client`).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Number of stored spans (traces are accepted and counted).
    pub fn span_count(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))?)
    }

    /// `PRAGMA quick_check`: "ok" when the database is healthy.
    pub fn quick_check(&self) -> Result<String, StoreError> {
        Ok(self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?)
    }

    /// Whether anything at all was ever stored: the window shows its setup instructions until
    /// the first metric point, event or span arrives.
    pub(crate) fn has_any_data(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM series) OR EXISTS(SELECT 1 FROM events) OR EXISTS(SELECT 1 FROM spans)
                 OR EXISTS(SELECT 1 FROM transcript_requests)",
            [],
            |r| r.get(0),
        )?)
    }

    /// First and last stored instant of every session with usage or events in `range`, over all
    /// of the session's events and the series it had usage on within `range` (a series' first
    /// and last point time), and of its transcript's requests (a session with telemetry off has
    /// nothing else). Sessions are what Claude Code's `session.id` names; the session
    /// list of the dashboard shows when each started and how long it has run without one query
    /// per session.
    pub(crate) fn session_times(
        &self,
        range: TimeRange,
    ) -> Result<BTreeMap<String, SessionTimes>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let (slot_lo, slot_hi) = slots_of(start_ns, end_ns);
        let mut stmt = self.conn.prepare_cached(
            "WITH in_range AS (
                 SELECT s.session_id AS sid, MIN(s.created_ns) AS t0, MAX(st.last_time_ns) AS t1
                 FROM usage u JOIN series s ON s.id = u.series_id JOIN series_state st ON st.series_id = s.id
                 WHERE u.slot >= ?1 AND u.slot < ?2 AND s.session_id IS NOT NULL
                 GROUP BY s.session_id
             ),
             ids AS (
                 SELECT sid FROM in_range
                 UNION
                 SELECT rs.session_id FROM events e JOIN rollup_sessions rs ON rs.id = e.session_key
                 WHERE e.time_ns >= ?3 AND e.time_ns < ?4
                 UNION
                 SELECT session_id FROM transcript_requests WHERE time_ns >= ?3 AND time_ns < ?4
             ),
             spans_of AS (
                 SELECT sid, t0, t1 FROM in_range
                 UNION ALL
                 SELECT rs.session_id, MIN(e.time_ns), MAX(e.time_ns)
                 FROM rollup_sessions rs JOIN events e ON e.session_key = rs.id
                 WHERE rs.session_id IN (SELECT sid FROM ids) GROUP BY rs.id
                 UNION ALL
                 -- Sessions with telemetry off are known from their transcript's requests only.
                 SELECT t.session_id, MIN(t.time_ns), MAX(t.time_ns) FROM transcript_requests t
                 WHERE t.session_id IN (SELECT sid FROM ids) GROUP BY t.session_id
             )
             SELECT sid, MIN(t0), MAX(t1) FROM spans_of GROUP BY sid",
        )?;
        let rows = stmt.query_map(params![slot_lo, slot_hi, start_ns, end_ns], |r| {
            Ok((r.get::<_, String>(0)?, SessionTimes { first_ns: r.get(1)?, last_ns: r.get(2)? }))
        })?;
        Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
    }

    /// The models each session used in `range`, in name order: from its usage series, its
    /// `api_request` events, its transcript's requests and other agents' requests (the
    /// dashboard's session rows, one query for every session).
    pub(crate) fn session_models(
        &self,
        range: TimeRange,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let (slot_lo, slot_hi) = slots_of(start_ns, end_ns);
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.session_id, s.model FROM usage u JOIN series s ON s.id = u.series_id
             WHERE u.slot >= ?1 AND u.slot < ?2 AND s.session_id IS NOT NULL AND s.model IS NOT NULL
             UNION
             SELECT rs.session_id, e.model FROM events e JOIN rollup_sessions rs ON rs.id = e.session_key
             WHERE e.time_ns >= ?3 AND e.time_ns < ?4 AND e.name = ?5 AND e.model IS NOT NULL
             UNION
             SELECT session_id, model FROM transcript_requests WHERE time_ns >= ?3 AND time_ns < ?4
             UNION
             SELECT session_id, model FROM agent_requests WHERE time_ns >= ?3 AND time_ns < ?4
             ORDER BY 1, 2",
        )?;
        let rows = stmt
            .query_map(params![slot_lo, slot_hi, start_ns, end_ns, names::API_REQUEST], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
        let mut models: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            let (session, model) = row?;
            if !model.is_empty() {
                models.entry(session).or_default().push(model);
            }
        }
        Ok(models)
    }
}

/// The 15-minute usage slots that cover `[start_ns, end_ns)`.
pub(super) fn slots_of(start_ns: i64, end_ns: i64) -> (i64, i64) {
    let slot_lo = start_ns.div_euclid(SLOT_NS);
    let slot_hi = if end_ns == i64::MAX {
        i64::MAX
    } else {
        end_ns.div_euclid(SLOT_NS) + i64::from(end_ns.rem_euclid(SLOT_NS) != 0)
    };
    (slot_lo, slot_hi)
}

/// Whether a grouping needs the session of each figure: by session, project, branch and PR,
/// and for usage by model (a session's model-less figures go to the models it used).
fn needs_session(by: Option<GroupBy>, events: bool) -> bool {
    match by {
        Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => true,
        Some(GroupBy::Model) => !events,
        _ => false,
    }
}

/// Whether a grouping is by local day, week, month or hour.
fn has_time_buckets(by: Option<GroupBy>) -> bool {
    matches!(by, Some(GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour))
}

impl Bucketing {
    /// Whether UTC day `day` lies within one local bucket of the grouping (its first and last
    /// slot have the same label), so that its rollup rows can stand for it.
    fn aligned(&self, day: i64) -> bool {
        use rusqlite::types::Value;
        let first = day.saturating_mul(rollups::DAY_SLOTS);
        let last = first.saturating_add(rollups::DAY_SLOTS - 1);
        self.key(Value::Integer(first), None) == self.key(Value::Integer(last), None)
    }
}

/// The usage grouping key over the increments (`u` usage, `s` series).
fn usage_detail_sql(by: Option<GroupBy>) -> String {
    let by_agent = super::agents::agent_of_resource_sql("s.resource_id");
    let series_key = match by {
        None | Some(GroupBy::Type) => "''",
        Some(GroupBy::Model) => "COALESCE(s.model, '')",
        Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => {
            "COALESCE(s.session_id, '')"
        }
        Some(GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour) => "u.slot",
        Some(GroupBy::Agent) => by_agent.as_str(),
    };
    let session = if by == Some(GroupBy::Model) { "s.session_id" } else { "NULL" };
    format!(
        "SELECT s.metric, s.type, {series_key} AS k, {session} AS sid, SUM(u.value)
         FROM usage u JOIN series s ON s.id = u.series_id
         WHERE u.slot >= ?1 AND u.slot < ?2
         GROUP BY s.metric, s.type, k, sid"
    )
}

/// The slot rollup's rows as they are, for [`Reader::usage_slot_buckets`].
const SLOT_BUCKETS_SQL: &str =
    "SELECT slot, key, value FROM usage_slots WHERE slot >= ?1 AND slot < ?2";

/// Which usage rollup a statement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UsageGrain {
    /// `usage_days`, whole UTC days `[?1, ?2)`.
    Days,
    /// `usage_slots`, slots `[?1, ?2)`.
    Slots,
    /// `usage_session_days`, whole UTC days `[?1, ?2)`, by session.
    SessionDays,
}

/// The rows of a rollup with what [`usage_detail_sql`] sums by (`k` rollup_keys, `rs`
/// rollup_sessions); time buckets are keyed by the first slot of the day or by the slot. Not
/// summed in SQL: a `GROUP BY` over the text columns sorts every row in a temporary B-tree, ten
/// times the cost of reading them; the report adds them up.
fn usage_rollup_sql(by: Option<GroupBy>, grain: UsageGrain) -> String {
    let (table, column) = match grain {
        UsageGrain::Days => ("usage_days", "day"),
        UsageGrain::Slots => ("usage_slots", "slot"),
        UsageGrain::SessionDays => ("usage_session_days", "day"),
    };
    let by_agent = super::agents::agent_of_resource_sql("k.resource_id");
    let bucket = match grain {
        UsageGrain::Slots => format!("{table}.slot"),
        _ => format!("{table}.day * 96"),
    };
    let key = match by {
        Some(GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour) => bucket.as_str(),
        Some(GroupBy::Agent) => by_agent.as_str(),
        Some(GroupBy::Model) => "COALESCE(k.model, '')",
        Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => {
            "COALESCE(rs.session_id, '')"
        }
        None | Some(GroupBy::Type) => "''",
    };
    let (session, join) = match grain {
        UsageGrain::SessionDays => {
            let sid = if by == Some(GroupBy::Model) { "rs.session_id" } else { "NULL" };
            (sid, format!("LEFT JOIN rollup_sessions rs ON rs.id = {table}.session"))
        }
        _ => ("NULL", String::new()),
    };
    format!(
        "SELECT k.metric, k.type, {key} AS kk, {session} AS sid, {table}.value
         FROM {table} JOIN rollup_keys k ON k.id = {table}.key {join}
         WHERE {table}.{column} >= ?1 AND {table}.{column} < ?2"
    )
}

/// Event sums over the stored events in `[?1, ?2)` ns.
fn event_detail_sql(by: Option<GroupBy>) -> String {
    let by_agent = super::agents::agent_of_resource_sql("resource_id");
    let event_key = match by {
        Some(GroupBy::Agent) => by_agent.as_str(),
        None | Some(GroupBy::Type) => "''",
        Some(GroupBy::Model) => "COALESCE(model, '')",
        Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => {
            static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            SQL.get_or_init(|| format!("COALESCE({}, '')", super::events::SESSION_SQL))
        }
        // Grouped by 15-minute slot in SQL, then folded into local days, weeks, months or hours.
        Some(GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour) => {
            "(time_ns / 900000000000)"
        }
    };
    format!(
        "SELECT name, {event_key} AS k, COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0),
                COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_creation_tokens), 0)
         FROM events e WHERE time_ns >= ?1 AND time_ns < ?2 GROUP BY name, k"
    )
}

/// Which event rollup a statement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventGrain {
    /// `event_days`, whole UTC days `[?1, ?2)`.
    Days,
    /// `event_slots`, slots `[?1, ?2)`.
    Slots,
    /// `event_session_days`, whole UTC days `[?1, ?2)`, by session.
    SessionDays,
}

/// The rows of an event rollup with what [`event_detail_sql`] sums by (added up by the report).
fn event_rollup_sql(by: Option<GroupBy>, grain: EventGrain) -> String {
    let (table, column) = match grain {
        EventGrain::Days => ("event_days", "day"),
        EventGrain::Slots => ("event_slots", "slot"),
        EventGrain::SessionDays => ("event_session_days", "day"),
    };
    let by_agent = super::agents::agent_of_resource_sql(&format!("{table}.resource_id"));
    let bucket = match grain {
        EventGrain::Slots => format!("{table}.slot"),
        _ => format!("{table}.day * 96"),
    };
    let key = match by {
        Some(GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour) => bucket.as_str(),
        Some(GroupBy::Agent) => by_agent.as_str(),
        Some(GroupBy::Model) => "model",
        Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => {
            "COALESCE(rs.session_id, '')"
        }
        None | Some(GroupBy::Type) => "''",
    };
    let join = match grain {
        EventGrain::SessionDays => {
            format!("LEFT JOIN rollup_sessions rs ON rs.id = {table}.session")
        }
        _ => String::new(),
    };
    format!(
        "SELECT {table}.name, {key} AS k, count, cost_usd, input_tokens, output_tokens,
                cache_read_tokens, cache_creation_tokens
         FROM {table} {join} WHERE {table}.{column} >= ?1 AND {table}.{column} < ?2"
    )
}
