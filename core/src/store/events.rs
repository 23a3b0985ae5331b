//! How an event's attributes are kept (schema v11, issue 13): compactly, and exactly.
//!
//! An event's figures already have typed columns of `events` (session, prompt, model, cost,
//! tokens, duration, request id), and its time is `time_ns`. Until v11 every event also kept all
//! of its attributes as one JSON document, repeating those figures and the same identity strings
//! (user, organization, terminal, `speed`, …) in every row: ~360 of its ~520 bytes. Now an
//! event keeps
//! * `promoted`: a bit per attribute left out because its column holds exactly that value
//!   (and `event.timestamp` when it is `time_ns` to the millisecond, as Claude Code sends it);
//! * `attr_set`: the id of its other string-valued attributes in `event_attr_sets`, a
//!   dictionary, so that the identity strings every event of a user repeats are stored once;
//! * `attr_values`: its other (number, boolean) attributes as a small JSON object, or NULL.
//!
//! [`join`] puts the original attributes back together, value for value.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::{Map, Value};

use super::StoreError;

/// Attributes whose value a typed column of `events` holds, in bit order of `promoted`.
const PROMOTED: [&str; 11] = [
    "session.id",
    "prompt.id",
    "model",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "duration_ms",
    "request_id",
    "event.timestamp",
];

/// The typed columns of one event, which promoted attributes are rebuilt from.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Columns {
    pub time_ns: i64,
    pub session_id: Option<String>,
    pub prompt_id: Option<String>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_creation_tokens: Option<i64>,
    pub duration_ms: Option<i64>,
    pub request_id: Option<String>,
}

impl Columns {
    /// The attribute `PROMOTED[bit]` as its column would give it back.
    fn value_of(&self, bit: usize) -> Option<Value> {
        let text = |s: &Option<String>| s.as_ref().map(|s| Value::String(s.clone()));
        let int = |n: &Option<i64>| n.map(Value::from);
        match bit {
            0 => text(&self.session_id),
            1 => text(&self.prompt_id),
            2 => text(&self.model),
            3 => self.cost_usd.and_then(serde_json::Number::from_f64).map(Value::Number),
            4 => int(&self.input_tokens),
            5 => int(&self.output_tokens),
            6 => int(&self.cache_read_tokens),
            7 => int(&self.cache_creation_tokens),
            8 => int(&self.duration_ms),
            9 => text(&self.request_id),
            10 => Some(Value::String(client_timestamp(self.time_ns))),
            _ => None,
        }
    }
}

/// `event.timestamp` as Claude Code writes it for a record at `time_ns`:
/// `2026-11-22T06:50:10.563Z`.
fn client_timestamp(time_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(time_ns).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An event's attributes as stored: see the module's header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Split {
    pub promoted: i64,
    /// JSON object of the string-valued rest (`{}` when there is none).
    pub strings: String,
    /// JSON object of the other rest, `None` when there is none.
    pub values: Option<String>,
}

/// Splits attributes (a JSON object) into what the columns already hold and the rest.
pub(crate) fn split(attrs: &Map<String, Value>, columns: &Columns) -> Split {
    let mut promoted = 0i64;
    let mut strings = Map::new();
    let mut values = Map::new();
    for (key, value) in attrs {
        let bit = PROMOTED.iter().position(|k| k == key);
        if let Some(bit) = bit {
            // Only when the column gives back this very value (a token count out of range, a
            // Codex session named by `conversation.id`, … stay in the rest).
            if promoted & (1 << bit) == 0 && columns.value_of(bit).as_ref() == Some(value) {
                promoted |= 1 << bit;
                continue;
            }
        }
        match value {
            Value::String(_) | Value::Array(_) | Value::Object(_) => {
                strings.insert(key.clone(), value.clone())
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => {
                values.insert(key.clone(), value.clone())
            }
        };
    }
    Split {
        promoted,
        strings: Value::Object(strings).to_string(),
        values: (!values.is_empty()).then(|| Value::Object(values).to_string()),
    }
}

/// The attributes [`split`] was given, put back together (keys sorted).
pub(crate) fn join(
    promoted: i64,
    strings: Option<&str>,
    values: Option<&str>,
    columns: &Columns,
) -> Value {
    let mut attrs: Vec<(String, Value)> = Vec::new();
    for part in [strings, values].into_iter().flatten() {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(part) {
            attrs.extend(map);
        }
    }
    for (bit, key) in PROMOTED.iter().enumerate() {
        if promoted & (1 << bit) != 0 {
            if let Some(value) = columns.value_of(bit) {
                attrs.push(((*key).to_string(), value));
            }
        }
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(attrs.into_iter().collect())
}

/// The id of a string-attribute set in the dictionary, added if it is new.
pub(crate) fn attr_set_id(tx: &Transaction<'_>, strings: &str) -> Result<i64, StoreError> {
    let found: Option<i64> = tx
        .prepare_cached("SELECT id FROM event_attr_sets WHERE attrs = ?1")?
        .query_row([strings], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO event_attr_sets (attrs) VALUES (?1)")?.execute([strings])?;
    Ok(tx.last_insert_rowid())
}

/// The session id of the event row `e`, as text: schema v15 keeps a key into
/// `rollup_sessions` (the dictionary the rollups already hold every session in) instead of the
/// id itself, which was 37 of an event's ~164 bytes and again ~40 of each `events_session`
/// index entry.
pub(crate) const SESSION_SQL: &str =
    "(SELECT rs.session_id FROM rollup_sessions rs WHERE rs.id = e.session_key)";

/// The `session_key` of the session id `?N` (NULL, so matching no event, for one never seen).
pub(crate) fn session_key_sql(param: usize) -> String {
    session_key_sql_of(&format!("?{param}"))
}

/// [`session_key_sql`] of a session id that an SQL expression gives (a column of the query).
pub(crate) fn session_key_sql_of(session_id: &str) -> String {
    format!("(SELECT id FROM rollup_sessions WHERE session_id = {session_id})")
}

/// Committed session keys the writer keeps (bounded): the sessions of a user are active a few
/// at a time, and each event of one would otherwise cost a dictionary lookup.
pub(crate) type SessionKeys = HashMap<String, i64>;

/// How many session keys the writer keeps in memory at most.
pub(crate) const KEPT_SESSIONS: usize = 4096;

/// The `rollup_sessions` id of an event's session, added if it is new; `None` without one.
/// Asks the keys of committed transactions (`known`) and of this one (`found`) first: a key
/// found in a transaction that rolls back is never kept.
pub(crate) fn session_key(
    tx: &Transaction<'_>,
    session: Option<&str>,
    known: &SessionKeys,
    found: &mut SessionKeys,
) -> Result<Option<i64>, StoreError> {
    let Some(session) = session else { return Ok(None) };
    if let Some(&id) = known.get(session).or_else(|| found.get(session)) {
        return Ok(Some(id));
    }
    let id = super::rollups::session_id(tx, Some(session))?;
    found.insert(session.to_string(), id);
    Ok(Some(id))
}

/// Schema v15 (issue 13): events name their session by its key in `rollup_sessions`, and the
/// per-session index is on that key. Every event session is in the dictionary already (the
/// v13 migration and the writer's rollups put it there); `INSERT OR IGNORE` makes sure.
/// `DROP COLUMN` rewrites every row, in this one transaction.
pub(crate) const SESSION_MIGRATION: &str = r#"
    INSERT OR IGNORE INTO rollup_sessions (session_id)
        SELECT DISTINCT session_id FROM events WHERE session_id IS NOT NULL ORDER BY 1;
    ALTER TABLE events ADD COLUMN session_key INTEGER;   -- rollup_sessions.id, NULL for none
    UPDATE events SET session_key =
        (SELECT rs.id FROM rollup_sessions rs WHERE rs.session_id = events.session_id)
        WHERE session_id IS NOT NULL;
    DROP INDEX events_session;
    ALTER TABLE events DROP COLUMN session_id;
    CREATE INDEX events_session_key ON events(session_key, time_ns);
"#;

/// Schema v11, before its Rust step: the dictionary and the new columns.
pub(crate) const MIGRATION_BEFORE: &str = r#"
    CREATE TABLE event_attr_sets (
        id    INTEGER PRIMARY KEY,
        attrs TEXT NOT NULL UNIQUE           -- JSON object of string-valued attributes
    );
    ALTER TABLE events ADD COLUMN promoted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN attr_set INTEGER;
    ALTER TABLE events ADD COLUMN attr_values TEXT;
"#;

/// Schema v11, after its Rust step: the attribute JSON goes.
pub(crate) const MIGRATION_AFTER: &str = "ALTER TABLE events DROP COLUMN attrs;";

/// Events moved per statement batch of the migration (and per progress line).
const MIGRATION_CHUNK: i64 = 50_000;

/// Schema v11's Rust step: splits the attributes of every stored event. Part of the migration's
/// one transaction: a kill in the middle leaves the database at v10, and the next start does
/// it again from the beginning.
pub(crate) fn migrate_attrs(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let total: i64 = tx.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    if total > 0 {
        tracing::info!(events = total, "upgrading the history: storing event attributes compactly");
    }
    let mut done = 0i64;
    let mut after = i64::MIN;
    loop {
        let chunk = read_chunk(tx, after)?;
        let Some(last) = chunk.last().map(|(id, ..)| *id) else { break };
        let mut update = tx.prepare_cached(
            "UPDATE events SET promoted = ?2, attr_set = ?3, attr_values = ?4 WHERE id = ?1",
        )?;
        for (id, attrs, columns) in &chunk {
            let map = match serde_json::from_str::<Value>(attrs) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            let stored = split(&map, columns);
            let set = attr_set_id(tx, &stored.strings)?;
            update.execute(params![id, stored.promoted, set, stored.values])?;
        }
        done += chunk.len() as i64;
        after = last;
        if total > MIGRATION_CHUNK {
            tracing::info!(done, of = total, "upgrading the history: event attributes");
        }
    }
    Ok(())
}

type ChunkRow = (i64, String, Columns);

fn read_chunk(tx: &Transaction<'_>, after: i64) -> Result<Vec<ChunkRow>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, attrs, time_ns, session_id, prompt_id, model, cost_usd, input_tokens, output_tokens,
                cache_read_tokens, cache_creation_tokens, duration_ms, request_id
         FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, MIGRATION_CHUNK], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            Columns {
                time_ns: r.get(2)?,
                session_id: r.get(3)?,
                prompt_id: r.get(4)?,
                model: r.get(5)?,
                cost_usd: r.get(6)?,
                input_tokens: r.get(7)?,
                output_tokens: r.get(8)?,
                cache_read_tokens: r.get(9)?,
                cache_creation_tokens: r.get(10)?,
                duration_ms: r.get(11)?,
                request_id: r.get(12)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns {
        Columns {
            // 2026-11-22T06:50:10.563Z
            time_ns: 1_795_330_210_563_000_000,
            session_id: Some("s1".into()),
            model: Some("claude-opus-4-5".into()),
            cost_usd: Some(0.019299999999999998),
            input_tokens: Some(200),
            output_tokens: Some(50),
            request_id: Some("req_1".into()),
            ..Columns::default()
        }
    }

    #[test]
    fn what_the_columns_hold_is_left_out_and_comes_back_exactly() {
        let attrs = serde_json::json!({
            "session.id": "s1", "model": "claude-opus-4-5", "cost_usd": 0.019299999999999998,
            "input_tokens": 200, "output_tokens": 50, "request_id": "req_1",
            "event.timestamp": client_timestamp(columns().time_ns), "event.sequence": 7,
            "user.id": "u", "terminal.type": "vscode", "speed": "normal", "ttft_ms": 800,
        });
        let Value::Object(map) = &attrs else { unreachable!() };
        let stored = split(map, &columns());
        assert_eq!(stored.strings, r#"{"user.id":"u","terminal.type":"vscode","speed":"normal"}"#);
        assert_eq!(stored.values.as_deref(), Some(r#"{"event.sequence":7,"ttft_ms":800}"#));
        let back =
            join(stored.promoted, Some(&stored.strings), stored.values.as_deref(), &columns());
        assert_eq!(back, attrs);
    }

    #[test]
    fn a_value_its_column_does_not_give_back_stays_in_the_rest() {
        // A count stored as a double, a timestamp from another clock, a session id the column
        // took from elsewhere: each stays as sent.
        let attrs = serde_json::json!({
            "input_tokens": 200.0, "event.timestamp": "2026-11-22T06:50:11.000Z", "session.id": "other",
        });
        let Value::Object(map) = &attrs else { unreachable!() };
        let stored = split(map, &columns());
        assert_eq!(stored.promoted, 0);
        let back =
            join(stored.promoted, Some(&stored.strings), stored.values.as_deref(), &columns());
        assert_eq!(back, attrs);
    }

    #[test]
    fn the_migration_keeps_every_attribute_of_every_stored_event() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        super::super::schema::migrate_to(&mut conn, 10).expect("v10");
        let stamp = client_timestamp(columns().time_ns);
        let originals = [
            serde_json::json!({"session.id": "s1", "model": "claude-opus-4-5", "cost_usd": 0.019299999999999998,
                "input_tokens": 200, "output_tokens": 50, "request_id": "req_1", "event.timestamp": stamp,
                "event.sequence": 1, "user.id": "u"}),
            serde_json::json!({"session.id": "s1", "tool_name": "Bash", "success": "true", "event.sequence": 2, "user.id": "u"}),
            serde_json::json!({}),
        ];
        for (i, attrs) in originals.iter().enumerate() {
            let c = columns();
            let promoted = i == 0;
            conn.execute(
                "INSERT INTO events (time_ns, name, resource_id, session_id, model, cost_usd, input_tokens,
                    output_tokens, request_id, attrs) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    c.time_ns,
                    "claude_code.api_request",
                    (i < 2).then_some("s1"),
                    promoted.then_some("claude-opus-4-5"),
                    promoted.then_some(0.019299999999999998),
                    promoted.then_some(200),
                    promoted.then_some(50),
                    promoted.then_some("req_1"),
                    attrs.to_string()
                ],
            )
            .expect("insert");
        }
        // The v11 step (v15 moves the session column: its own test below).
        super::super::schema::migrate_to(&mut conn, 11).expect("migrate");
        let mut stmt = conn
            .prepare(
                "SELECT e.time_ns, e.session_id, e.model, e.cost_usd, e.input_tokens, e.output_tokens,
                        e.request_id, e.promoted, a.attrs, e.attr_values
                 FROM events e LEFT JOIN event_attr_sets a ON a.id = e.attr_set ORDER BY e.id",
            )
            .expect("prepare");
        let back: Vec<Value> = stmt
            .query_map([], |r| {
                let c = Columns {
                    time_ns: r.get(0)?,
                    session_id: r.get(1)?,
                    model: r.get(2)?,
                    cost_usd: r.get(3)?,
                    input_tokens: r.get(4)?,
                    output_tokens: r.get(5)?,
                    request_id: r.get(6)?,
                    ..Columns::default()
                };
                Ok(join(
                    r.get(7)?,
                    r.get_ref(8)?.as_str_or_null()?,
                    r.get_ref(9)?.as_str_or_null()?,
                    &c,
                ))
            })
            .expect("query")
            .map(|v| v.expect("row"))
            .collect();
        assert_eq!(back, originals);
        // One dictionary row per distinct combination of string attributes.
        let sets: i64 = conn
            .query_row("SELECT COUNT(*) FROM event_attr_sets", [], |r| r.get(0))
            .expect("count");
        assert_eq!(sets, 3, "{{user.id}}, {{tool_name, success, user.id}}, {{}}");
    }

    /// Schema v15 on a v14 history: every event reads back as before, session and all, and the
    /// per-session queries find the same events (by the key, through the new index).
    #[test]
    fn the_session_key_migration_keeps_every_event_as_it_was() {
        use rusqlite::types::Value as Sql;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(super::super::DB_FILE);
        let mut conn = rusqlite::Connection::open(&path).expect("open");
        super::super::schema::migrate_to(&mut conn, 14).expect("v14");
        conn.execute("INSERT INTO resources (id, key, attrs) VALUES (1, x'00', '{}')", [])
            .expect("resource");
        conn.execute(
            "INSERT INTO event_attr_sets (id, attrs) VALUES (7, '{\"user.id\":\"u\"}')",
            [],
        )
        .expect("attr set");
        // A session the rollups know from a series only, and one of the events' sessions known
        // already: the migration adds the others and keeps these ids.
        conn.execute_batch(
            "INSERT INTO rollup_sessions (id, session_id) VALUES (3, 'series-only'),
                 (5, '0b7c3c1e-1f7a-4d2e-9a51-2f6d8e4c9b10');",
        )
        .expect("sessions");
        let sessions: [Option<&str>; 8] = [
            Some("0b7c3c1e-1f7a-4d2e-9a51-2f6d8e4c9b10"),
            Some("f3e1a2b4-5c6d-4e7f-8a9b-0c1d2e3f4a5b"),
            None,
            Some(""),
            Some("0"),
            Some("NULL"),
            Some("it's a \u{1} session ✓"),
            Some("session"),
        ];
        for i in 0..64i64 {
            let session = sessions[(i % 8) as usize];
            let api = i % 3 != 0;
            conn.execute(
                "INSERT INTO events (time_ns, name, resource_id, session_id, prompt_id, model, cost_usd,
                    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, duration_ms,
                    request_id, promoted, attr_set, attr_values)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    // Two events at the same instant now and then, and times out of id order.
                    1_795_330_210_000_000_000 + (i / 2) * 1_000_000_000 - (i % 5) * 7,
                    if api { "claude_code.api_request" } else { "claude_code.tool_result" },
                    session,
                    (i % 4 == 0).then(|| format!("prompt-{}", i / 4)),
                    api.then_some("claude-opus-4-5"),
                    api.then_some(0.001 * i as f64),
                    api.then_some(100 + i),
                    api.then_some(10 + i),
                    (i % 2 == 0).then_some(i * 1000),
                    (i % 5 == 0).then_some(i),
                    api.then_some(800 + i),
                    api.then(|| format!("req_{i}")),
                    if api { 0b101 } else { 0 },
                    (i % 7 != 0).then_some(7),
                    (i % 2 == 1).then(|| format!("{{\"event.sequence\":{i}}}")),
                ],
            )
            .expect("event");
        }
        let all_columns = |session: &str| {
            format!(
                "SELECT id, time_ns, name, resource_id, {session}, prompt_id, model, cost_usd, input_tokens,
                        output_tokens, cache_read_tokens, cache_creation_tokens, duration_ms, request_id,
                        promoted, attr_set, attr_values
                 FROM events e ORDER BY id"
            )
        };
        let rows = |conn: &rusqlite::Connection, sql: &str| -> Vec<Vec<Sql>> {
            let mut stmt = conn.prepare(sql).expect("prepare");
            let n = stmt.column_count();
            stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
                .expect("query")
                .map(|r| r.expect("row"))
                .collect()
        };
        let before = rows(&conn, &all_columns("e.session_id"));
        assert_eq!(before.len(), 64);
        drop(conn);

        let reader = super::super::Reader::open(dir.path()).expect("migrates");
        let conn = rusqlite::Connection::open(&path).expect("open");
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(version, super::super::schema::LATEST);
        assert_eq!(rows(&conn, &all_columns(SESSION_SQL)), before, "every column of every event");
        let kept: Vec<(i64, String)> = conn
            .prepare("SELECT id, session_id FROM rollup_sessions WHERE id IN (3, 5) ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        assert_eq!(
            kept,
            [(3, "series-only".into()), (5, "0b7c3c1e-1f7a-4d2e-9a51-2f6d8e4c9b10".into())]
        );
        let no_session: i64 = conn
            .query_row("SELECT COUNT(*) FROM events WHERE session_key IS NULL", [], |r| r.get(0))
            .expect("count");
        assert_eq!(no_session, 8, "events without a session stay without one");

        // The reader's views: every event, newest first, with its session; per session, its
        // events, request ids and first and last instant.
        let session_of = |row: &Vec<Sql>| match &row[4] {
            Sql::Text(s) => Some(s.clone()),
            _ => None,
        };
        let time_of = |row: &Vec<Sql>| match row[1] {
            Sql::Integer(t) => t,
            _ => unreachable!(),
        };
        let id_of = |row: &Vec<Sql>| match row[0] {
            Sql::Integer(id) => id,
            _ => unreachable!(),
        };
        let mut newest_first: Vec<&Vec<Sql>> = before.iter().collect();
        newest_first.sort_by_key(|r| std::cmp::Reverse((time_of(r), id_of(r))));
        let recent = reader.recent_events(1000, None, None).expect("recent");
        let seen: Vec<(i64, Option<String>)> =
            recent.iter().map(|e| (e.time_ns, e.figures.session_id.clone())).collect();
        let wanted: Vec<(i64, Option<String>)> =
            newest_first.iter().map(|r| (time_of(r), session_of(r))).collect();
        assert_eq!(seen, wanted);
        let times = reader.session_times(crate::query::TimeRange::ALL).expect("times");
        for session in sessions.iter().flatten() {
            let of: Vec<&&Vec<Sql>> = newest_first
                .iter()
                .filter(|r| session_of(r).as_deref() == Some(*session))
                .collect();
            let got = reader.recent_events(1000, Some(session), None).expect("recent of session");
            assert_eq!(
                got.iter().map(|e| e.time_ns).collect::<Vec<_>>(),
                of.iter().map(|r| time_of(r)).collect::<Vec<_>>(),
                "{session:?}"
            );
            assert!(got.iter().all(|e| e.figures.session_id.as_deref() == Some(*session)));
            let ids = reader.telemetry_request_ids_of_session(session).expect("ids");
            let wanted: std::collections::HashSet<String> = of
                .iter()
                .filter(|r| r[2] == Sql::Text("claude_code.api_request".into()))
                .filter_map(|r| match &r[13] {
                    Sql::Text(id) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(ids, wanted, "{session:?}");
            let t = times.get(*session).expect("session times");
            let lo = of.iter().map(|r| time_of(r)).min().expect("events");
            let hi = of.iter().map(|r| time_of(r)).max().expect("events");
            assert_eq!((t.first_ns, t.last_ns), (lo, hi), "{session:?}");
        }
        assert!(!times.contains_key("series-only"), "a session without events or usage");
        assert!(reader.recent_events(10, Some("unknown"), None).expect("none").is_empty());
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT request_id FROM events WHERE session_key = {} AND name = ?2",
                session_key_sql(1)
            ))
            .expect("explain")
            .query_map(params!["x", "y"], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan");
        assert!(plan.iter().any(|l| l.contains("events_session_key")), "{plan:?}");
    }
}
