//! The counting rule: each API request once, Claude Code's own money wherever it stated it.
//!
//! Per session with transcript requests:
//! * a request telemetry's `api_request` events saw (same `request_id`) is telemetry's, and
//!   adds nothing here;
//! * a session with telemetry token metrics but no events: per model and token type, the
//!   transcripts add only what they hold beyond the metrics' total (each is a subset of the
//!   same requests);
//! * money: per model, the session's last `cost-state` minus what telemetry's
//!   `claude_code.cost.usage` already counted (never below zero), spread over the requests it
//!   covers; the price table only for requests no Claude Code cost covers.

use std::collections::HashMap;

use crate::pricing::{PriceTable, Usage, CLAUDE_CODE};
use crate::store::transcripts::{StoredRequest, TranscriptFacts};

/// What one transcript request adds to the totals.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Share {
    pub session_id: String,
    pub request_id: String,
    pub model: String,
    pub time_ns: i64,
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_creation: f64,
    /// The API requests it counts: 1 for one request's share, more for a session's sums
    /// (store/transcript_sums.rs).
    pub requests: u64,
    pub cost_usd: f64,
    /// The cost comes from the price table, not from Claude Code.
    pub priced_from_table: bool,
    /// Neither Claude Code nor the price table has a cost for it.
    pub unpriced: bool,
}

/// The shares of every transcript request in `facts` (all time; the caller picks its range).
pub(crate) fn shares(facts: &TranscriptFacts, prices: &PriceTable) -> Vec<Share> {
    let mut by_session: HashMap<&str, Vec<&StoredRequest>> = HashMap::new();
    for r in &facts.requests {
        by_session.entry(r.session_id.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (session, requests) in by_session {
        session_shares(facts, prices, session, &requests, &mut out);
    }
    out
}

fn session_shares(
    facts: &TranscriptFacts,
    prices: &PriceTable,
    session: &str,
    requests: &[&StoredRequest],
    out: &mut Vec<Share>,
) {
    let telemetry = facts.telemetry.get(session);
    let seen =
        |r: &&&StoredRequest| telemetry.is_some_and(|t| t.request_ids.contains(&r.request_id));
    let only_here: Vec<&StoredRequest> = requests.iter().filter(|r| !seen(r)).copied().collect();
    let metrics_only = telemetry.is_some_and(|t| t.request_ids.is_empty() && !t.tokens.is_empty());
    let shortfall =
        if metrics_only { metric_shortfall(&only_here, facts, session) } else { HashMap::new() };

    let mut by_model: HashMap<&str, Vec<&StoredRequest>> = HashMap::new();
    for r in &only_here {
        by_model.entry(r.model.as_str()).or_default().push(r);
    }
    for (model, reqs) in by_model {
        let stated = facts.stated.get(&(session.to_string(), model.to_string()));
        let counted = telemetry.and_then(|t| t.cost_by_model.get(model)).copied().unwrap_or(0.0);
        let table = |r: &StoredRequest| prices.cost(CLAUDE_CODE, model, &usage_of(r));
        let covered: Vec<&StoredRequest> = reqs
            .iter()
            .filter(|r| stated.is_some_and(|s| r.time_ns <= s.covers_to_ns))
            .copied()
            .collect();
        // Claude Code's stated money not yet counted by telemetry, spread by price (or tokens).
        let extra = stated.map_or(0.0, |s| (s.cost_usd - counted).max(0.0));
        let weight = |r: &StoredRequest| table(r).unwrap_or_else(|| total_tokens(r) as f64);
        let weights: f64 = covered.iter().map(|r| weight(r)).sum();
        let f = |r: &StoredRequest, kind: &str| {
            let v = match kind {
                "input" => r.input,
                "output" => r.output,
                "cacheRead" => r.cache_read,
                _ => r.cache_write_5m + r.cache_write_1h,
            } as f64;
            match metrics_only {
                true => {
                    shortfall.get(&(r.request_id.clone(), kind.to_string())).copied().unwrap_or(0.0)
                }
                false => v,
            }
        };
        for r in reqs {
            let is_covered = stated.is_some_and(|s| r.time_ns <= s.covers_to_ns);
            let (cost_usd, priced_from_table, unpriced) = if is_covered {
                let share =
                    if weights > 0.0 { weight(r) / weights } else { 1.0 / covered.len() as f64 };
                (extra * share, false, false)
            } else if metrics_only && counted > 0.0 {
                // Telemetry's cost metric already counted this session's money.
                (0.0, false, false)
            } else {
                match table(r) {
                    Some(c) => (c, true, false),
                    None => (0.0, false, true),
                }
            };
            out.push(Share {
                session_id: session.to_string(),
                request_id: r.request_id.clone(),
                model: model.to_string(),
                time_ns: r.time_ns,
                input: f(r, "input"),
                output: f(r, "output"),
                cache_read: f(r, "cacheRead"),
                cache_creation: f(r, "cacheCreation"),
                // Without events telemetry counts no requests: each one is counted here.
                requests: 1,
                cost_usd,
                priced_from_table,
                unpriced,
            });
        }
    }
}

/// Per request and type, the tokens the transcripts add beyond what the metrics counted: per
/// (model, type) the transcripts' total minus the metrics' (never below zero), given to the
/// earliest requests first (what telemetry missed is what ran before it was on). Whole tokens,
/// so the sums stay exact.
fn metric_shortfall(
    requests: &[&StoredRequest],
    facts: &TranscriptFacts,
    session: &str,
) -> HashMap<(String, String), f64> {
    let metrics = facts.telemetry.get(session).map(|t| &t.tokens);
    let mut sums: HashMap<(String, String), f64> = HashMap::new();
    for r in requests {
        for (kind, v) in kinds(r) {
            *sums.entry((r.model.clone(), kind.to_string())).or_insert(0.0) += v as f64;
        }
    }
    let mut left: HashMap<(String, String), f64> = sums
        .into_iter()
        .map(|(key, here)| {
            let counted = metrics.and_then(|m| m.get(&key)).copied().unwrap_or(0.0);
            (key, (here - counted).max(0.0))
        })
        .collect();
    let mut ordered: Vec<&&StoredRequest> = requests.iter().collect();
    ordered.sort_by_key(|r| (r.time_ns, &r.request_id));
    let mut out = HashMap::new();
    for r in ordered {
        for (kind, v) in kinds(r) {
            let remaining = left.entry((r.model.clone(), kind.to_string())).or_insert(0.0);
            let given = (v as f64).min(*remaining);
            *remaining -= given;
            out.insert((r.request_id.clone(), kind.to_string()), given);
        }
    }
    out
}

fn kinds(r: &StoredRequest) -> [(&'static str, u64); 4] {
    [
        ("input", r.input),
        ("output", r.output),
        ("cacheRead", r.cache_read),
        ("cacheCreation", r.cache_write_5m + r.cache_write_1h),
    ]
}

/// The price table's cost of one request; `None` for a model without any price.
pub(crate) fn table_cost(prices: &PriceTable, r: &StoredRequest) -> Option<f64> {
    prices.cost(CLAUDE_CODE, &r.model, &usage_of(r))
}

fn usage_of(r: &StoredRequest) -> Usage {
    Usage {
        input: r.input,
        output: r.output,
        cache_read: r.cache_read,
        cache_write_5m: r.cache_write_5m,
        cache_write_1h: r.cache_write_1h,
        fast: r.fast,
    }
}

fn total_tokens(r: &StoredRequest) -> u64 {
    r.input + r.output + r.cache_read + r.cache_write_5m + r.cache_write_1h
}
