//! The request ids (`request_id`, the API's request-id) of the stored `api_request` events: the
//! transcripts import deduplicates what Claude Code's own logs add against them. The id is a
//! typed column of `events` (`events.request_id`, indexed; filled from the attribute JSON by
//! the migration for events stored before it), read only through these methods.

use std::collections::HashSet;

use rusqlite::params;

use super::{Reader, StoreError};
use crate::ingest::attrs::{AttrValue, Attrs};
use crate::query::report::names;

/// The `request_id` attribute of an event, when it is a non-empty string.
pub(crate) fn request_id_of(attrs: &Attrs) -> Option<&str> {
    attrs.iter().find(|(k, _)| k == "request_id").and_then(|(_, v)| match v {
        AttrValue::Str(s) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    })
}

impl Reader {
    /// Every `request_id` of a stored `claude_code.api_request` event with `time_ns` in
    /// `[from_ns, to_ns)`.
    pub fn telemetry_request_ids(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT request_id FROM events
             WHERE name = ?1 AND time_ns >= ?2 AND time_ns < ?3 AND request_id IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![names::API_REQUEST, from_ns, to_ns], |r| {
            r.get::<_, Option<String>>(0)
        })?;
        collect_ids(rows)
    }

    /// Every `request_id` of the stored `claude_code.api_request` events of one session.
    pub fn telemetry_request_ids_of_session(
        &self,
        session_id: &str,
    ) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT request_id FROM events
             WHERE session_key = {} AND name = ?2 AND request_id IS NOT NULL",
            super::events::session_key_sql(1)
        ))?;
        let rows = stmt.query_map(params![session_id, names::API_REQUEST], |r| {
            r.get::<_, Option<String>>(0)
        })?;
        collect_ids(rows)
    }
}

impl Reader {
    /// Whether an `api_request` event with this request id is stored (one index lookup).
    pub fn has_telemetry_request(&self, request_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM events WHERE request_id = ?1 AND name = ?2)",
            )?
            .query_row(params![request_id, names::API_REQUEST], |r| r.get(0))?)
    }
}

fn collect_ids(
    rows: impl Iterator<Item = rusqlite::Result<Option<String>>>,
) -> Result<HashSet<String>, StoreError> {
    let mut ids = HashSet::new();
    for id in rows {
        if let Some(id) = id?.filter(|s| !s.is_empty()) {
            ids.insert(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use crate::ingest::{self, Privacy};
    use crate::store::{connect, schema, Reader, Store, DB_FILE};
    use crate::testkit::{self, kv, Usage};

    #[test]
    fn request_ids_of_api_requests_by_range_and_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let record = |session: &str, id: Option<&str>, t: u64| {
            let mut r =
                testkit::api_request_record(session, "u", testkit::MODEL, Usage::TYPICAL, t);
            r.attributes.extend(id.map(|id| kv("request_id", id)));
            r
        };
        let request = testkit::logs_request(vec![
            record("s1", Some("req_a"), 1_000),
            record("s1", Some("req_b"), 2_000),
            record("s2", Some("req_c"), 3_000),
            record("s2", None, 3_500),
            testkit::event_record("s1", "tool_result", &[("request_id", "req_tool")], 2_500),
        ]);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let batch = ingest::logs::normalize(request, ingest::now_ns(), Privacy::default());
        rt.block_on(store.ingest(batch)).expect("ingest");
        let reader = store.reader().expect("reader");
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reader.telemetry_request_ids(0, i64::MAX).expect("all"),
            ids(&["req_a", "req_b", "req_c"])
        );
        assert_eq!(reader.telemetry_request_ids(1_500, 3_000).expect("range"), ids(&["req_b"]));
        assert_eq!(
            reader.telemetry_request_ids_of_session("s1").expect("session"),
            ids(&["req_a", "req_b"]),
            "only api_request events count, not the tool_result of the same request"
        );
        store.close();
    }

    /// A database of the layout before the column, holding events with and without an id, is
    /// migrated: the ids are found by the typed lookups, through the index.
    #[test]
    fn the_migration_fills_the_column_from_stored_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        {
            let mut conn = connect(&path).expect("connect");
            schema::migrate_to(&mut conn, schema::REQUEST_ID_COLUMN - 1)
                .expect("the layout before");
            conn.execute("INSERT INTO resources (id, key, attrs) VALUES (1, x'00', '{}')", [])
                .expect("resource");
            let event = |t: i64, name: &str, session: &str, attrs: &str| {
                conn.execute(
                    "INSERT INTO events (time_ns, name, resource_id, session_id, attrs) VALUES (?1, ?2, 1, ?3, ?4)",
                    params![t, name, session, attrs],
                )
                .expect("event");
            };
            event(1, "claude_code.api_request", "s1", r#"{"request_id":"req_old","model":"m"}"#);
            event(2, "claude_code.api_request", "s1", r#"{"model":"m"}"#);
            event(3, "claude_code.api_request", "s2", r#"{"request_id":42}"#);
            event(4, "claude_code.tool_result", "s1", r#"{"request_id":"req_tool"}"#);
        }
        let reader = Reader::open(dir.path()).expect("migrates");
        let ids = reader.telemetry_request_ids(0, i64::MAX).expect("ids");
        assert_eq!(ids, ["req_old".to_string()].into_iter().collect());
        assert!(reader.has_telemetry_request("req_old").expect("lookup"));
        assert!(!reader.has_telemetry_request("req_tool").expect("lookup"), "not an api_request");
        let plan: Vec<String> = reader
            .conn()
            .prepare("EXPLAIN QUERY PLAN SELECT EXISTS (SELECT 1 FROM events WHERE request_id = ?1 AND name = ?2)")
            .expect("explain")
            .query_map(params!["x", "y"], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan");
        assert!(plan.iter().any(|l| l.contains("events_request")), "{plan:?}");
    }
}
