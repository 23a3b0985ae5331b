//! Other agents' API requests (Codex CLI, Gemini CLI): the SQL of their table, and how a report
//! counts them.
//!
//! One row per request, keyed by (agent, request key): the same export sent twice (a retry, a
//! replay) stores each request once. Spend and tokens of these agents come from these rows, each
//! priced on its own by (agent, model) unless the agent stated a cost. Their metrics stay on
//! `/metrics` and in the report's `metrics` map; they add to spend and tokens only for a Gemini
//! CLI session that sent no request event (Codex's metrics name no session).

use std::collections::{BTreeMap, HashMap};

use chrono::Weekday;
use rusqlite::{params, Connection};

use super::{read::Reader, StoreError};
use crate::ingest::agents::{AgentRequest, GEMINI_CLI};
use crate::pricing::{ModelPrice, PriceTable, Usage, CLAUDE_CODE};
use crate::query::report::Figures;
use crate::query::{local_bucket, GroupBy};

/// Gemini CLI's token counter: `type` input (cache included), output, thought, cache, tool.
const GEMINI_TOKENS: &str = "gemini_cli.token.usage";

/// Schema of the table (appended to the migrations).
pub(super) const MIGRATION: &str = r#"
    -- One row per API request of another agent, however often its export arrived.
    CREATE TABLE agent_requests (
        agent          TEXT NOT NULL,        -- 'codex' | 'gemini-cli'
        request_key    TEXT NOT NULL,        -- record time, session, model and counts
        session_id     TEXT NOT NULL,        -- the agent's own session / conversation id
        model          TEXT NOT NULL,
        time_ns        INTEGER NOT NULL,
        input_uncached INTEGER NOT NULL,     -- input − cached: the kinds are disjoint
        input_cached   INTEGER NOT NULL,
        cache_write    INTEGER NOT NULL,
        output         INTEGER NOT NULL,     -- reasoning included
        reasoning      INTEGER NOT NULL,     -- of output; shown, never added again
        cost_usd       REAL,                 -- only when the agent stated one
        PRIMARY KEY (agent, request_key)
    ) WITHOUT ROWID;
    CREATE INDEX agent_requests_time ON agent_requests(time_ns);
"#;

/// Stores one request unless it is already stored; the writer calls it in its transaction.
pub(super) fn insert(tx: &Connection, r: &AgentRequest) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO agent_requests (agent, request_key, session_id, model, time_ns,
             input_uncached, input_cached, cache_write, output, reasoning, cost_usd)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.agent,
        r.request_key,
        r.session_id,
        r.model,
        r.time_ns,
        r.input_uncached as i64,
        r.input_cached as i64,
        r.cache_write as i64,
        r.output as i64,
        r.reasoning as i64,
        r.cost_usd,
    ])?;
    Ok(())
}

/// One stored request, as a report reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredAgentRequest {
    pub agent: String,
    pub session_id: String,
    pub model: String,
    pub time_ns: i64,
    pub input_uncached: u64,
    pub input_cached: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
    pub cost_usd: Option<f64>,
    /// A sum of several requests (a metric's slot), not one: no per-request tier applies.
    pub aggregated: bool,
}

impl StoredAgentRequest {
    /// The agent's own cost, else the price table's; `None` when neither has one.
    fn cost(&self, prices: &PriceTable) -> (Option<f64>, bool) {
        if let Some(c) = self.cost_usd {
            return (Some(c), false);
        }
        let usage = Usage {
            input: self.input_uncached,
            output: self.output,
            cache_read: self.input_cached,
            cache_write_5m: self.cache_write,
            ..Default::default()
        };
        let price = prices.price(&self.agent, &self.model);
        let cost = match self.aggregated {
            // Gemini 2.5 Pro's >200k rates are per request; a slot's sum says nothing of them.
            true => price.map(|p| ModelPrice { long_context_threshold: None, ..*p }.cost(&usage)),
            false => price.map(|p| p.cost(&usage)),
        };
        (cost, true)
    }
}

impl Reader {
    /// Every request of another agent in `[start_ns, end_ns)`, oldest first.
    pub(crate) fn agent_requests(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<StoredAgentRequest>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT agent, session_id, model, time_ns, input_uncached, input_cached, cache_write,
                    output, reasoning, cost_usd
             FROM agent_requests WHERE time_ns >= ?1 AND time_ns < ?2
             ORDER BY time_ns, agent, request_key",
        )?;
        let rows = stmt.query_map(params![start_ns, end_ns], |r| {
            Ok(StoredAgentRequest {
                agent: r.get(0)?,
                session_id: r.get(1)?,
                model: r.get(2)?,
                time_ns: r.get(3)?,
                input_uncached: r.get::<_, i64>(4)? as u64,
                input_cached: r.get::<_, i64>(5)? as u64,
                cache_write: r.get::<_, i64>(6)? as u64,
                output: r.get::<_, i64>(7)? as u64,
                reasoning: r.get::<_, i64>(8)? as u64,
                cost_usd: r.get(9)?,
                aggregated: false,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The first request time of every session of another agent (all time): a session counts
    /// in the period its first request falls in.
    fn agent_session_starts(&self) -> Result<HashMap<(String, String), i64>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT agent, session_id, MIN(time_ns) FROM agent_requests GROUP BY agent, session_id",
        )?;
        let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What Gemini CLI's `gemini_cli.token.usage` metric holds of its sessions that sent no
    /// `api_response` event, per (session, model, 15-minute slot) in `[start_ns, end_ns)`, as
    /// request-shaped rows (one per slot, not per request: the metric has no requests).
    ///
    /// Codex's `codex.turn.token_usage` names no conversation, so a session of it without
    /// events cannot be told apart: its metrics never count.
    fn gemini_metric_only(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<StoredAgentRequest>, StoreError> {
        if !self.has_series_of(GEMINI_TOKENS)? {
            return Ok(Vec::new());
        }
        let slot_ns = super::SLOT_SECONDS * 1_000_000_000;
        let slot_lo = start_ns.div_euclid(slot_ns);
        let slot_hi = if end_ns == i64::MAX {
            i64::MAX
        } else {
            end_ns.div_euclid(slot_ns) + i64::from(end_ns.rem_euclid(slot_ns) != 0)
        };
        let sql = format!(
            "SELECT s.session_id, COALESCE(s.model, ''), u.slot, COALESCE(s.type, ''), SUM(u.value)
             FROM usage u JOIN series s ON s.id = u.series_id
             WHERE s.metric = ?1 AND s.session_id IS NOT NULL AND u.slot >= ?2 AND u.slot < ?3
               AND {agent} = ?4
               AND NOT EXISTS (SELECT 1 FROM agent_requests a
                               WHERE a.agent = ?4 AND a.session_id = s.session_id)
             GROUP BY 1, 2, 3, 4 ORDER BY 3, 1, 2",
            agent = agent_of_resource_sql("s.resource_id")
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![GEMINI_TOKENS, slot_lo, slot_hi, GEMINI_CLI])?;
        let mut sums: BTreeMap<(i64, String, String), [f64; 4]> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let key = (r.get::<_, i64>(2)?, r.get::<_, String>(0)?, r.get::<_, String>(1)?);
            let kind: String = r.get(3)?;
            let value: f64 = r.get(4)?;
            let slot = sums.entry(key).or_default();
            // input (cache included), cache, output, thought; `tool` is never added.
            match kind.as_str() {
                "input" => slot[0] += value,
                "cache" => slot[1] += value,
                "output" => slot[2] += value,
                "thought" => slot[3] += value,
                _ => {}
            }
        }
        let whole = |v: f64| v.max(0.0).round() as u64;
        Ok(sums
            .into_iter()
            .map(|((slot, session_id, model), [input, cache, output, thought])| {
                StoredAgentRequest {
                    agent: GEMINI_CLI.to_string(),
                    session_id,
                    model,
                    time_ns: slot.saturating_mul(slot_ns),
                    input_uncached: whole(input - cache),
                    input_cached: whole(cache.min(input)),
                    cache_write: 0,
                    output: whole(output + thought),
                    reasoning: whole(thought),
                    cost_usd: None,
                    aggregated: true,
                }
            })
            .collect())
    }

    /// Where each Gemini CLI session known only from its metrics began (its first slot), all time.
    fn gemini_metric_only_starts(&self) -> Result<HashMap<(String, String), i64>, StoreError> {
        if !self.has_series_of(GEMINI_TOKENS)? {
            return Ok(HashMap::new());
        }
        let slot_ns = super::SLOT_SECONDS * 1_000_000_000;
        let sql = format!(
            "SELECT s.session_id, MIN(u.slot) FROM usage u JOIN series s ON s.id = u.series_id
             WHERE s.metric = ?1 AND s.session_id IS NOT NULL AND {agent} = ?2
               AND NOT EXISTS (SELECT 1 FROM agent_requests a
                               WHERE a.agent = ?2 AND a.session_id = s.session_id)
             GROUP BY 1",
            agent = agent_of_resource_sql("s.resource_id")
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(params![GEMINI_TOKENS, GEMINI_CLI], |r| {
            Ok(((GEMINI_CLI.to_string(), r.get(0)?), r.get::<_, i64>(1)?.saturating_mul(slot_ns)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether any series of `metric` is stored (through its index): the queries over Gemini
    /// CLI's token metric read the usage of every slot they cover, and most histories have none.
    fn has_series_of(&self, metric: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM series WHERE metric = ?1)")?
            .query_row([metric], |r| r.get(0))?)
    }

    /// Other agents' spend in `[start_ns, end_ns)` as (15-minute slot, agent, model, USD), each
    /// request priced as reports price it: what budgets add to Claude Code's spend.
    pub(crate) fn agent_cost_slots(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(i64, String, String, f64)>, StoreError> {
        let slot_ns = super::SLOT_SECONDS * 1_000_000_000;
        let requests = self.agent_requests(start_ns, end_ns)?;
        let from_metrics = self.gemini_metric_only(start_ns, end_ns)?;
        Ok(requests
            .into_iter()
            .chain(from_metrics)
            .filter_map(|r| {
                let cost = r.cost(self.prices()).0.filter(|c| *c > 0.0)?;
                Some((r.time_ns.div_euclid(slot_ns), r.agent, r.model, cost))
            })
            .collect())
    }

    /// Adds other agents' requests of `[start_ns, end_ns)` to a report: tokens, spend (each
    /// request priced on its own), requests and sessions; then, for Gemini CLI sessions that
    /// sent no request events, what their token metric holds.
    pub(super) fn add_agents(
        &self,
        start_ns: i64,
        end_ns: i64,
        by: Option<GroupBy>,
        week_start: Weekday,
        total: &mut Figures,
        groups: &mut BTreeMap<String, Figures>,
    ) -> Result<(), StoreError> {
        let tz = chrono::Local;
        let requests = self.agent_requests(start_ns, end_ns)?.into_iter().map(|r| (r, true));
        let from_metrics =
            self.gemini_metric_only(start_ns, end_ns)?.into_iter().map(|r| (r, false));
        for (r, is_request) in requests.chain(from_metrics) {
            let (cost, from_table) = r.cost(self.prices());
            total.add_agent_request(&r, cost, from_table, is_request);
            let Some(by) = by else { continue };
            let key = match by {
                GroupBy::Agent => r.agent.clone(),
                GroupBy::Model => r.model.clone(),
                GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour => {
                    local_bucket(&tz, r.time_ns, by, week_start)
                }
                // Token types: these rows join Claude Code's by their disjoint kinds.
                GroupBy::Type => {
                    for (kind, part) in r.split_by_type() {
                        // Spend and the request count once, in the row of no type.
                        let first = kind.is_empty();
                        let c = if first { cost } else { Some(0.0) };
                        let figures = groups.entry(kind.to_string()).or_default();
                        figures.add_agent_request(
                            &part,
                            c,
                            first && from_table,
                            first && is_request,
                        );
                    }
                    continue;
                }
                // Projects, branches and PRs are known from Claude Code's transcripts only.
                GroupBy::Session | GroupBy::Project | GroupBy::Branch | GroupBy::Pr => {
                    r.session_id.clone()
                }
            };
            groups.entry(key).or_default().add_agent_request(&r, cost, from_table, is_request);
        }
        let mut starts = self.agent_session_starts()?;
        starts.extend(self.gemini_metric_only_starts()?);
        for ((agent, session), first_ns) in starts {
            if first_ns < start_ns || first_ns >= end_ns {
                continue;
            }
            total.add_agent_session();
            let key = match by {
                None | Some(GroupBy::Type | GroupBy::Model) => continue,
                Some(GroupBy::Agent) => agent,
                Some(g @ (GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour)) => {
                    local_bucket(&tz, first_ns, g, week_start)
                }
                Some(_) => session,
            };
            groups.entry(key).or_default().add_agent_session();
        }
        Ok(())
    }
}

impl StoredAgentRequest {
    /// The row for spend and requests (`""`), then one per token type with only its tokens.
    fn split_by_type(&self) -> Vec<(&'static str, StoredAgentRequest)> {
        let zero = StoredAgentRequest {
            input_uncached: 0,
            input_cached: 0,
            cache_write: 0,
            output: 0,
            reasoning: 0,
            ..self.clone()
        };
        vec![
            ("", zero.clone()),
            ("input", StoredAgentRequest { input_uncached: self.input_uncached, ..zero.clone() }),
            (
                "output",
                StoredAgentRequest {
                    output: self.output,
                    reasoning: self.reasoning,
                    ..zero.clone()
                },
            ),
            ("cacheRead", StoredAgentRequest { input_cached: self.input_cached, ..zero.clone() }),
            ("cacheCreation", StoredAgentRequest { cache_write: self.cache_write, ..zero }),
        ]
    }
}

/// SQL of the agent a resource's `service.name` names, for grouping telemetry rows by agent
/// (`resource` is the column holding the resource id); the same rule as `ingest::agents`.
pub(super) fn agent_of_resource_sql(resource: &str) -> String {
    format!(
        "(SELECT CASE WHEN json_extract(r.attrs, '$.\"service.name\"') LIKE 'codex%' THEN 'codex'
                      WHEN json_extract(r.attrs, '$.\"service.name\"') = 'gemini-cli' THEN 'gemini-cli'
                      ELSE '{CLAUDE_CODE}' END
          FROM resources r WHERE r.id = {resource})"
    )
}
