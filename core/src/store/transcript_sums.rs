//! Per session and model, the sums of the transcripts' requests, kept at import (schema v16).
//!
//! The counting rule (transcripts/counting.rs) reads every request of a session, because
//! telemetry may have seen some of them and Claude Code's stated cost may cover only the first
//! ones. Most sessions of a long history need neither: no telemetry at all, wholly inside the
//! period, and per model a `cost-state` that covers every request or none at all. For those
//! the rule's outcome is the sums kept here (tokens and requests) with Claude Code's stated
//! cost itself, or the price table's from the sums (split by the price's classes, fast mode and
//! long context, within which it is linear), so a report over a year reads a few rows per
//! session instead of every request (`report all --by project` on a year of transcripts read
//! 131,400 requests, 0.6 s).

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{params, Connection};

use super::{read::Reader, StoreError};
use crate::pricing::{Usage, CLAUDE_CODE};
use crate::query::report::names;
use crate::transcripts::counting::Share;
use crate::transcripts::record::Request;

/// The rollup's table, filled from the requests already stored (appended to the migrations).
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE transcript_session_models (
        session_id        TEXT NOT NULL,
        model             TEXT NOT NULL,
        fast              INTEGER NOT NULL,  -- served in fast mode
        long_context      INTEGER NOT NULL,  -- the prompt was above LONG_CONTEXT tokens
        requests          INTEGER NOT NULL,
        input_tokens      INTEGER NOT NULL,
        output_tokens     INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_5m_tokens   INTEGER NOT NULL,
        cache_1h_tokens   INTEGER NOT NULL,
        first_ns          INTEGER NOT NULL,
        last_ns           INTEGER NOT NULL,
        PRIMARY KEY (session_id, model, fast, long_context)
    ) WITHOUT ROWID;
    INSERT INTO transcript_session_models
        SELECT session_id, model, fast,
               input_tokens + cache_read_tokens + cache_5m_tokens + cache_1h_tokens > 200000,
               COUNT(*), SUM(input_tokens), SUM(output_tokens),
               SUM(cache_read_tokens), SUM(cache_5m_tokens), SUM(cache_1h_tokens),
               MIN(time_ns), MAX(time_ns)
        FROM transcript_requests GROUP BY 1, 2, 3, 4;
"#;

/// Where the sums split requests by prompt size (the migration above names it too): the
/// price table's long-context threshold. Within each side and speed a model's price is
/// linear in the tokens, so the sums price exactly what pricing each request would; a model
/// whose threshold (in the table or `[pricing]`) is another is priced request by request.
const LONG_CONTEXT: u64 = 200_000;

/// The pricing class of a request: (fast mode, above [`LONG_CONTEXT`]).
fn class_of(r: &Request) -> (bool, bool) {
    let prompt = r.input + r.cache_read + r.cache_write_5m + r.cache_write_1h;
    (r.fast, prompt > LONG_CONTEXT)
}

/// The sums of one session and model's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Sums {
    requests: u64,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_5m: u64,
    cache_1h: u64,
    first_ns: i64,
    last_ns: i64,
}

impl Sums {
    fn of(r: &Request) -> Sums {
        Sums {
            requests: 1,
            input: r.input,
            output: r.output,
            cache_read: r.cache_read,
            cache_5m: r.cache_write_5m,
            cache_1h: r.cache_write_1h,
            first_ns: r.time_ns,
            last_ns: r.time_ns,
        }
    }

    fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_5m += o.cache_5m;
        self.cache_1h += o.cache_1h;
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
    }
}

/// The requests one read of a file stored for the first time, summed per (session, model):
/// written once per read instead of once per request (an import's statements are its time).
#[derive(Debug, Default)]
pub(super) struct NewRequests(HashMap<(String, String, (bool, bool)), Sums>);

impl NewRequests {
    /// Counts a request that was just stored (not one already there).
    pub(super) fn add(&mut self, r: &Request) {
        let sums = Sums::of(r);
        let key = (r.session_id.clone(), r.model.clone(), class_of(r));
        self.0.entry(key).and_modify(|s| s.add(&sums)).or_insert(sums);
    }

    /// Adds the read's sums to the stored ones, in the read's transaction.
    pub(super) fn write(&self, tx: &Connection) -> Result<(), StoreError> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO transcript_session_models (session_id, model, fast, long_context, requests,
                 input_tokens, output_tokens, cache_read_tokens, cache_5m_tokens, cache_1h_tokens,
                 first_ns, last_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT(session_id, model, fast, long_context) DO UPDATE SET
                 requests = requests + excluded.requests,
                 input_tokens = input_tokens + excluded.input_tokens,
                 output_tokens = output_tokens + excluded.output_tokens,
                 cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
                 cache_5m_tokens = cache_5m_tokens + excluded.cache_5m_tokens,
                 cache_1h_tokens = cache_1h_tokens + excluded.cache_1h_tokens,
                 first_ns = MIN(first_ns, excluded.first_ns),
                 last_ns = MAX(last_ns, excluded.last_ns)",
        )?;
        for ((session, model, (fast, long)), s) in &self.0 {
            stmt.execute(params![
                session,
                model,
                fast,
                long,
                s.requests as i64,
                s.input as i64,
                s.output as i64,
                s.cache_read as i64,
                s.cache_5m as i64,
                s.cache_1h as i64,
                s.first_ns,
                s.last_ns,
            ])?;
        }
        Ok(())
    }
}

/// The transcript sessions of a period, split by how the counting rule must read them.
#[derive(Debug, Default)]
pub(crate) struct PeriodSessions {
    /// One share per (session, model) of the sessions whose outcome is their sums: no
    /// telemetry, every request inside the period, and per model either Claude Code's stated
    /// cost covering every request or none at all (then the price table's, from the sums).
    pub summed: Vec<Share>,
    /// The summed sessions that began in the period (their place's first line), and when.
    pub summed_began: Vec<(String, i64)>,
    /// Every other session with a request in the period or beginning in it: read request by
    /// request.
    pub rest: Vec<String>,
}

/// One row of the period's sums (a session, model and pricing class), with the session's
/// stated cost for the model.
struct SummedRow {
    session: String,
    model: String,
    fast: bool,
    long_context: bool,
    sums: Sums,
    stated: Option<(f64, i64)>,
    telemetry_events: bool,
}

impl Reader {
    /// The sessions with transcript requests in `[start_ns, end_ns)` (or beginning in it),
    /// split into those whose share is their sums and the rest ([`PeriodSessions`]).
    pub(crate) fn period_sessions(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<PeriodSessions, StoreError> {
        let rows = self.summed_rows(start_ns, end_ns)?;
        let candidates: HashSet<&str> = rows.iter().map(|r| r.session.as_str()).collect();
        let telemetry = self.telemetry_sessions(&candidates)?;
        let mut by_session: BTreeMap<&str, BTreeMap<&str, Vec<&SummedRow>>> = BTreeMap::new();
        for row in &rows {
            let models = by_session.entry(row.session.as_str()).or_default();
            models.entry(row.model.as_str()).or_default().push(row);
        }
        let mut out = PeriodSessions::default();
        let mut summed: HashSet<&str> = HashSet::new();
        for (session, models) in by_session {
            let inside = |r: &&SummedRow| r.sums.first_ns >= start_ns && r.sums.last_ns < end_ns;
            let seen_by_telemetry = telemetry.contains(session)
                || models.values().flatten().any(|r| r.telemetry_events);
            let shares: Option<Vec<Share>> = match seen_by_telemetry {
                true => None,
                false => models
                    .values()
                    .map(|classes| match classes.iter().all(inside) {
                        true => self.summed_share(classes),
                        false => None,
                    })
                    .collect(),
            };
            match shares {
                Some(shares) => {
                    summed.insert(session);
                    out.summed.extend(shares);
                }
                None => out.rest.push(session.to_string()),
            }
        }
        for (session, first_ns) in self.sessions_beginning_in(start_ns, end_ns)? {
            if summed.contains(session.as_str()) {
                out.summed_began.push((session, first_ns));
            } else if !candidates.contains(session.as_str()) {
                out.rest.push(session);
            }
        }
        Ok(out)
    }

    /// The counting rule's outcome for one session and model (its rows, one per pricing
    /// class) without telemetry and wholly inside the period, or `None` where only its requests
    /// tell it. Every request counts, with its tokens as the transcripts hold them, and:
    /// * Claude Code stated a cost covering every request: that cost (the rule spreads it over
    ///   the requests, so summed it is the stated cost itself; never below zero);
    /// * no stated cost: the price table's, from each class's sums; a model without any price
    ///   is unpriced (its tokens counted, no cost);
    /// * a stated cost that covers only the first requests: `None`.
    fn summed_share(&self, classes: &[&SummedRow]) -> Option<Share> {
        let first = classes.first()?;
        let last_ns = classes.iter().map(|r| r.sums.last_ns).max()?;
        let price = self.prices().price(CLAUDE_CODE, &first.model);
        let (cost_usd, priced_from_table, unpriced) = match (first.stated, price) {
            (Some((cost, covers_to)), _) if last_ns <= covers_to => (cost.max(0.0), false, false),
            (Some(_), _) => return None,
            (None, None) => (0.0, false, true),
            (None, Some(p)) => match p.long_context_threshold {
                None | Some(LONG_CONTEXT) => {
                    let cost =
                        classes.iter().map(|r| p.cost_of_class(&usage_of(r), r.long_context)).sum();
                    (cost, true, false)
                }
                Some(_) => return None,
            },
        };
        let mut total = Sums::default();
        for r in classes {
            total.add(&r.sums);
        }
        Some(Share {
            session_id: first.session.clone(),
            request_id: String::new(),
            model: first.model.clone(),
            time_ns: last_ns,
            input: total.input as f64,
            output: total.output as f64,
            cache_read: total.cache_read as f64,
            cache_creation: (total.cache_5m + total.cache_1h) as f64,
            requests: total.requests,
            cost_usd,
            priced_from_table,
            unpriced,
        })
    }

    /// The sums of every (session, model, class) with requests overlapping the period, with
    /// the stated cost and whether telemetry has `api_request` events for the session.
    fn summed_rows(&self, start_ns: i64, end_ns: i64) -> Result<Vec<SummedRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT m.session_id, m.model, m.fast, m.long_context, m.requests, m.input_tokens,
                    m.output_tokens, m.cache_read_tokens, m.cache_5m_tokens, m.cache_1h_tokens,
                    m.first_ns, m.last_ns, c.cost_usd, c.covers_to_ns,
                    EXISTS(SELECT 1 FROM events e WHERE e.session_key = {} AND e.name = ?3)
             FROM transcript_session_models m
             LEFT JOIN transcript_cost_state c ON c.session_id = m.session_id AND c.model = m.model
             WHERE m.last_ns >= ?1 AND m.first_ns < ?2",
            super::events::session_key_sql_of("m.session_id")
        ))?;
        let rows = stmt.query_map(params![start_ns, end_ns, names::API_REQUEST], |r| {
            let cost: Option<f64> = r.get(12)?;
            let covers_to: Option<i64> = r.get(13)?;
            Ok(SummedRow {
                session: r.get(0)?,
                model: r.get(1)?,
                fast: r.get(2)?,
                long_context: r.get(3)?,
                sums: Sums {
                    requests: r.get::<_, i64>(4)? as u64,
                    input: r.get::<_, i64>(5)? as u64,
                    output: r.get::<_, i64>(6)? as u64,
                    cache_read: r.get::<_, i64>(7)? as u64,
                    cache_5m: r.get::<_, i64>(8)? as u64,
                    cache_1h: r.get::<_, i64>(9)? as u64,
                    first_ns: r.get(10)?,
                    last_ns: r.get(11)?,
                },
                stated: cost.zip(covers_to),
                telemetry_events: r.get(14)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Which of `sessions` telemetry knows: its metrics (cost, tokens or the session count) or
    /// its `api_request` events.
    fn telemetry_sessions<'s>(
        &self,
        sessions: &HashSet<&'s str>,
    ) -> Result<HashSet<&'s str>, StoreError> {
        let mut totals = HashMap::new();
        self.telemetry_totals(sessions, &mut totals)?;
        Ok(sessions.iter().copied().filter(|s| totals.contains_key(*s)).collect())
    }

    /// Every session whose transcripts began in the period, and when.
    fn sessions_beginning_in(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT session_id, first_ns FROM transcript_sessions WHERE first_ns >= ?1 AND first_ns < ?2",
        )?;
        let rows = stmt.query_map(params![start_ns, end_ns], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One class's sums as the price table reads a request.
fn usage_of(r: &SummedRow) -> Usage {
    let s = &r.sums;
    Usage {
        input: s.input,
        output: s.output,
        cache_read: s.cache_read,
        cache_write_5m: s.cache_5m,
        cache_write_1h: s.cache_1h,
        fast: r.fast,
    }
}
