//! Read-side queries over the history (reports, dashboards, diagnostics).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Local;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{schema, StoreError, DB_FILE, SLOT_SECONDS};
use crate::query::report::{EventSums, Figures};
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
    pub time_ns: i64,
    pub name: String,
    #[serde(flatten)]
    pub figures: EventFigures,
    pub attrs: serde_json::Value,
}

/// What an event says about usage (the promoted columns of `events`); the views built on
/// [`EventRow`] carry it as is, so their JSON has the same field names.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EventFigures {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_creation_tokens: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// First and last stored instant of one session (dashboard's session list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    pub first_ns: i64,
    pub last_ns: i64,
}

const SLOT_NS: i64 = SLOT_SECONDS * 1_000_000_000;

impl Reader {
    /// Opens the database of a data directory, creating it if this is the first run.
    pub fn open(data_dir: &Path) -> Result<Reader, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        Reader::open_file(&data_dir.join(DB_FILE))
    }

    pub(super) fn open_file(path: &Path) -> Result<Reader, StoreError> {
        let mut conn = super::connect(path)?;
        schema::migrate(&mut conn)?;
        Ok(Reader { conn, prices: crate::pricing::PriceTable::embedded() })
    }

    /// Prices transcript requests with `prices` (the embedded table plus `[pricing]`).
    pub fn with_prices(mut self, prices: crate::pricing::PriceTable) -> Reader {
        self.prices = prices;
        self
    }

    pub fn set_prices(&mut self, prices: crate::pricing::PriceTable) {
        self.prices = prices;
    }

    pub fn prices(&self) -> &crate::pricing::PriceTable {
        &self.prices
    }

    /// The connection, for queries of other core modules (budgets) that live next to their
    /// vocabulary rather than here.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Spend, tokens, sessions, active time and events for a range, optionally broken down.
    pub fn report(
        &self,
        period: &str,
        range: TimeRange,
        by: Option<GroupBy>,
    ) -> Result<Report, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let slot_lo = start_ns.div_euclid(SLOT_NS);
        let slot_hi = if end_ns == i64::MAX {
            i64::MAX
        } else {
            end_ns.div_euclid(SLOT_NS) + i64::from(end_ns.rem_euclid(SLOT_NS) != 0)
        };
        let series_key = match by {
            None | Some(GroupBy::Type) => "''",
            Some(GroupBy::Model) => "COALESCE(s.model, '')",
            Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => {
                "COALESCE(s.session_id, '')"
            }
            Some(GroupBy::Day) | Some(GroupBy::Hour) => "u.slot",
        };
        let mut total = Figures::default();
        let mut groups: BTreeMap<String, Figures> = BTreeMap::new();
        let tz = Local;
        let key_of = |raw: rusqlite::types::Value, kind: Option<&str>, slot_scale: i64| -> String {
            match by {
                Some(GroupBy::Type) => kind.unwrap_or_default().to_string(),
                Some(g @ (GroupBy::Day | GroupBy::Hour)) => match raw {
                    rusqlite::types::Value::Integer(v) => {
                        local_bucket(&tz, v.saturating_mul(slot_scale), g)
                    }
                    _ => String::new(),
                },
                _ => match raw {
                    rusqlite::types::Value::Text(t) => t,
                    _ => String::new(),
                },
            }
        };

        let sql = format!(
            "SELECT s.metric, s.type, {series_key} AS k, SUM(u.value)
             FROM usage u JOIN series s ON s.id = u.series_id
             WHERE u.slot >= ?1 AND u.slot < ?2
             GROUP BY s.metric, s.type, k"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![slot_lo, slot_hi])?;
        while let Some(r) = rows.next()? {
            let metric: String = r.get(0)?;
            let kind: Option<String> = r.get(1)?;
            let value: f64 = r.get(3)?;
            total.add_metric(&metric, kind.as_deref(), value);
            if by.is_some() {
                let key = key_of(r.get(2)?, kind.as_deref(), SLOT_NS);
                groups.entry(key).or_default().add_metric(&metric, kind.as_deref(), value);
            }
        }

        let event_key = match by {
            None | Some(GroupBy::Type) => "''",
            Some(GroupBy::Model) => "COALESCE(model, '')",
            Some(GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr) => {
                "COALESCE(session_id, '')"
            }
            // Grouped by 15-minute slot in SQL, then folded into local days or hours.
            Some(GroupBy::Day) | Some(GroupBy::Hour) => "(time_ns / 900000000000)",
        };
        let sql = format!(
            "SELECT name, {event_key} AS k, COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0),
                    COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_creation_tokens), 0)
             FROM events WHERE time_ns >= ?1 AND time_ns < ?2 GROUP BY name, k"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![start_ns, end_ns])?;
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            let sums = EventSums {
                count: r.get::<_, i64>(2)? as u64,
                cost_usd: r.get(3)?,
                input_tokens: r.get(4)?,
                output_tokens: r.get(5)?,
                cache_read_tokens: r.get(6)?,
                cache_creation_tokens: r.get(7)?,
            };
            total.add_events(&name, &sums);
            if by.is_some() {
                let key = key_of(r.get(1)?, None, SLOT_NS);
                groups.entry(key).or_default().add_events(&name, &sums);
            }
        }

        self.add_transcripts(start_ns, end_ns, by, &mut total, &mut groups)?;
        let groups = match by {
            Some(g @ (GroupBy::Project | GroupBy::Branch | GroupBy::Pr)) => {
                self.fold_by_place(g, groups)?
            }
            _ => groups
                .into_iter()
                .map(|(key, figures)| Group { key, detail: None, figures })
                .collect(),
        };

        let fmt = |ns: Option<i64>| ns.map(|ns| tz.timestamp_nanos(ns).to_rfc3339());
        use chrono::TimeZone;
        Ok(Report {
            period: period.to_string(),
            start: fmt(range.start_ns),
            end: fmt(range.end_ns),
            figures: total,
            by: by.map(|b| b.name().to_string()),
            groups: by.map(|_| groups),
        })
    }

    /// The most recent events, newest first, optionally of one session and/or one name.
    pub fn recent_events(
        &self,
        limit: usize,
        session: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT time_ns, name, session_id, model, cost_usd, input_tokens, output_tokens, cache_read_tokens,
                    cache_creation_tokens, duration_ms, attrs
             FROM events
             WHERE (?1 IS NULL OR session_id = ?1) AND (?2 IS NULL OR name = ?2)
             ORDER BY time_ns DESC, id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![session, name, limit as i64], |r| {
            Ok(EventRow {
                time_ns: r.get(0)?,
                name: r.get(1)?,
                figures: EventFigures {
                    session_id: r.get(2)?,
                    model: r.get(3)?,
                    cost_usd: r.get(4)?,
                    input_tokens: r.get(5)?,
                    output_tokens: r.get(6)?,
                    cache_read_tokens: r.get(7)?,
                    cache_creation_tokens: r.get(8)?,
                    duration_ms: r.get(9)?,
                },
                attrs: serde_json::from_str(&r.get::<_, String>(10)?)
                    .unwrap_or(serde_json::Value::Null),
            })
        })?;
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
    pub fn has_any_data(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM series) OR EXISTS(SELECT 1 FROM events) OR EXISTS(SELECT 1 FROM spans)
                 OR EXISTS(SELECT 1 FROM transcript_requests)",
            [],
            |r| r.get(0),
        )?)
    }

    /// First and last stored instant of every session with usage or events in `range`, over all
    /// of the session's events and the series it had usage on within `range` (a series' first
    /// and last point time). Sessions are what Claude Code's `session.id` names; the session
    /// list of the dashboard shows when each started and how long it has run without one query
    /// per session.
    pub fn session_times(
        &self,
        range: TimeRange,
    ) -> Result<BTreeMap<String, SessionTimes>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let slot_lo = start_ns.div_euclid(SLOT_NS);
        let slot_hi = if end_ns == i64::MAX {
            i64::MAX
        } else {
            end_ns.div_euclid(SLOT_NS) + i64::from(end_ns.rem_euclid(SLOT_NS) != 0)
        };
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
                 SELECT session_id FROM events WHERE time_ns >= ?3 AND time_ns < ?4 AND session_id IS NOT NULL
             ),
             spans_of AS (
                 SELECT sid, t0, t1 FROM in_range
                 UNION ALL
                 SELECT e.session_id, MIN(e.time_ns), MAX(e.time_ns) FROM events e
                 WHERE e.session_id IN (SELECT sid FROM ids) GROUP BY e.session_id
             )
             SELECT sid, MIN(t0), MAX(t1) FROM spans_of GROUP BY sid",
        )?;
        let rows = stmt.query_map(params![slot_lo, slot_hi, start_ns, end_ns], |r| {
            Ok((r.get::<_, String>(0)?, SessionTimes { first_ns: r.get(1)?, last_ns: r.get(2)? }))
        })?;
        Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
    }
}
