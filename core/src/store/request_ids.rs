//! The request ids (`request_id`, the API's request-id) of the stored `api_request` events: the
//! transcripts import deduplicates what Claude Code's own logs add against them. Callers use
//! these methods only, so the layout behind them (today the event's attribute JSON) can change
//! without them.

use std::collections::HashSet;

use rusqlite::params;

use super::{Reader, StoreError};
use crate::query::report::names;

impl Reader {
    /// Every `request_id` of a stored `claude_code.api_request` event with `time_ns` in
    /// `[from_ns, to_ns)`.
    pub fn telemetry_request_ids(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<HashSet<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT json_extract(attrs, '$.request_id') FROM events
             WHERE name = ?1 AND time_ns >= ?2 AND time_ns < ?3 AND json_valid(attrs)",
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
        let mut stmt = self.conn().prepare_cached(
            "SELECT json_extract(attrs, '$.request_id') FROM events
             WHERE session_id = ?1 AND name = ?2 AND json_valid(attrs)",
        )?;
        let rows = stmt.query_map(params![session_id, names::API_REQUEST], |r| {
            r.get::<_, Option<String>>(0)
        })?;
        collect_ids(rows)
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
    use crate::ingest::{self, Privacy};
    use crate::store::Store;
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
}
