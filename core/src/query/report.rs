//! The report shape shared by `tokentray report --json`, the window and budgets.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Sums of counts (tokens, sessions) are kept as `f64` because Claude Code sends every value as a
/// double; whole values are written as JSON integers so scripts see `27334`, not `27334.0`.
pub(crate) fn whole_as_int<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// A sum as the decimal it stands for: a sum of doubles comes out as `0.059699999999999996`;
/// JSON gets `0.0597`. Rounded to 9 decimals (the nano-dollar, the nanosecond), finer than
/// anything Claude Code sends (prices have 7 decimals, active time 3), coarser than the noise of
/// summing doubles, which depends on the order the points arrived in: a team's history that got
/// the same points forwarded in other batches must report the same figures (README, "report").
pub(crate) fn decimal<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_decimal(*v))
}

/// `v` to 9 decimals; the integer division makes the double the one nearest that decimal.
pub fn round_decimal(v: f64) -> f64 {
    if v.is_finite() && v.abs() < 9.0e6 {
        (v * 1e9).round() / 1e9
    } else {
        v
    }
}

fn map_whole_as_int<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        // Every sum as a decimal (see `decimal`); whole ones stay whole.
        map.serialize_entry(k, &AsInt(round_decimal(*v)))?;
    }
    map.end()
}

struct AsInt(f64);

impl Serialize for AsInt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        whole_as_int(&self.0, s)
    }
}

/// Claude Code's metric names, which reports turn into named figures.
pub mod names {
    /// Spend in USD, a monotonic sum by `model`.
    pub const COST: &str = "claude_code.cost.usage";
    /// Tokens, a monotonic sum by `model` and `type` (input, output, cacheRead, cacheCreation).
    pub const TOKENS: &str = "claude_code.token.usage";
    /// Sessions started, a monotonic sum.
    pub const SESSIONS: &str = "claude_code.session.count";
    /// Active time in seconds, a monotonic sum by `type` (user, cli).
    pub(crate) const ACTIVE_TIME: &str = "claude_code.active_time.total";
    /// The event Claude Code logs once per API request, with its own cost and tokens.
    pub const API_REQUEST: &str = "claude_code.api_request";
}

/// Tokens by Claude Code's `type` attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tokens {
    /// Uncached prompt tokens (`type="input"`).
    #[serde(serialize_with = "whole_as_int")]
    pub input: f64,
    /// Generated tokens (`type="output"`).
    #[serde(serialize_with = "whole_as_int")]
    pub output: f64,
    /// Prompt tokens read from the cache (`type="cacheRead"`).
    #[serde(rename = "cacheRead", serialize_with = "whole_as_int")]
    pub cache_read: f64,
    /// Prompt tokens written to the cache (`type="cacheCreation"`).
    #[serde(rename = "cacheCreation", serialize_with = "whole_as_int")]
    pub cache_creation: f64,
    /// Every token of any type, including types not named above.
    #[serde(serialize_with = "whole_as_int")]
    pub total: f64,
    /// Of `output`, the reasoning (Codex) or thinking (Gemini CLI) tokens: shown, never added
    /// to `total` again; left out of the JSON while zero.
    #[serde(serialize_with = "whole_as_int", skip_serializing_if = "is_zero")]
    pub reasoning: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Tokens {
    fn add(&mut self, kind: Option<&str>, value: f64) {
        match kind {
            Some("input") => self.input += value,
            Some("output") => self.output += value,
            Some("cacheRead") => self.cache_read += value,
            Some("cacheCreation") => self.cache_creation += value,
            _ => {}
        }
        self.total += value;
    }

    /// Share of prompt tokens served from the cache: cacheRead / (input + cacheRead + cacheCreation).
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let prompt = self.input + self.cache_read + self.cache_creation;
        (prompt > 0.0).then(|| self.cache_read / prompt)
    }
}

/// Sums over Claude Code's own `api_request` events (an independent check on the metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApiRequests {
    /// Requests counted (each `request_id` once, transcript-only requests included).
    pub count: u64,
    /// The sum of the events' own `cost_usd`, in USD.
    #[serde(serialize_with = "decimal")]
    pub cost_usd: f64,
    /// The events' `input_tokens`.
    pub input_tokens: i64,
    /// The events' `output_tokens`.
    pub output_tokens: i64,
    /// The events' `cache_read_tokens`.
    pub cache_read_tokens: i64,
    /// The events' `cache_creation_tokens`.
    pub cache_creation_tokens: i64,
}

/// Figures for a period, or for one group of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Spend in USD under the counting rule (Claude Code's own cost first, then the price table).
    #[serde(serialize_with = "decimal")]
    pub cost_usd: f64,
    /// Tokens by type.
    pub tokens: Tokens,
    /// Sessions started (`claude_code.session.count`).
    #[serde(serialize_with = "whole_as_int")]
    pub sessions: f64,
    /// Active time (`claude_code.active_time.total`), in seconds.
    #[serde(serialize_with = "decimal")]
    pub active_time_seconds: f64,
    /// Every monotonic sum by OTel metric name.
    #[serde(serialize_with = "map_whole_as_int")]
    pub metrics: BTreeMap<String, f64>,
    /// The `claude_code.api_request` events' own sums.
    pub api_requests: ApiRequests,
    /// Events by name (`claude_code.api_request`, `claude_code.tool_result`, …).
    pub events: BTreeMap<String, u64>,
    /// What Claude Code's transcripts add beyond telemetry (already in the figures above).
    #[serde(skip_serializing_if = "TranscriptFigures::is_empty")]
    pub transcripts: TranscriptFigures,
    /// What other agents (Codex CLI, Gemini CLI) add (already in the figures above).
    #[serde(skip_serializing_if = "AgentFigures::is_empty")]
    pub agents: AgentFigures,
}

/// Other agents' share of a period or group: their requests and sessions, and how their money
/// is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentFigures {
    /// Their API requests (each once, however often its export arrived).
    pub requests: u64,
    /// Their sessions (the agent's own session / conversation id) that started in the period.
    pub sessions: u64,
    /// Of `cost_usd`: the cost the agent itself stated.
    #[serde(serialize_with = "decimal")]
    pub cost_usd_agent: f64,
    /// Of `cost_usd`: priced from the table by (agent, model), request by request.
    #[serde(serialize_with = "decimal")]
    pub cost_usd_price_table: f64,
    /// Models (`agent/model`) whose requests have no price anywhere, with their tokens.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", serialize_with = "map_whole_as_int")]
    pub unpriced_tokens: BTreeMap<String, f64>,
}

impl AgentFigures {
    /// Whether no other agent added anything (the JSON then leaves the object out).
    pub fn is_empty(&self) -> bool {
        self == &AgentFigures::default()
    }
}

/// The transcripts' share of a period or group: requests telemetry did not see, and how their
/// money is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TranscriptFigures {
    /// Requests only the transcripts saw.
    pub requests: u64,
    /// Sessions only the transcripts saw.
    pub sessions: u64,
    /// Of `cost_usd`: Claude Code's own (cost-state) money.
    #[serde(serialize_with = "decimal")]
    pub cost_usd_claude_code: f64,
    /// Of `cost_usd`: priced from the table.
    #[serde(serialize_with = "decimal")]
    pub cost_usd_price_table: f64,
    /// Models whose requests have no price anywhere, with their tokens (never a silent $0).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", serialize_with = "map_whole_as_int")]
    pub unpriced_tokens: BTreeMap<String, f64>,
    /// API errors the transcripts recorded (`<synthetic>` / `isApiErrorMessage` lines).
    pub api_errors: u64,
}

impl TranscriptFigures {
    /// Whether the transcripts added nothing (the JSON then leaves the object out).
    pub fn is_empty(&self) -> bool {
        self == &TranscriptFigures::default()
    }
}

/// Aggregated events of one name within one group (a report's rows, and the store's rollups).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EventSums {
    /// Events of that name.
    pub count: u64,
    /// Their `cost_usd` attributes summed, in USD.
    pub cost_usd: f64,
    /// Their `input_tokens` summed.
    pub input_tokens: i64,
    /// Their `output_tokens` summed.
    pub output_tokens: i64,
    /// Their `cache_read_tokens` summed.
    pub cache_read_tokens: i64,
    /// Their `cache_creation_tokens` summed.
    pub cache_creation_tokens: i64,
}

impl EventSums {
    /// Adds the count and sums of `other`.
    pub(crate) fn merge(&mut self, other: &EventSums) {
        self.count += other.count;
        self.cost_usd += other.cost_usd;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
    }
}

impl Figures {
    /// Adds the increments of one metric (for one token/lines type).
    pub(crate) fn add_metric(&mut self, metric: &str, kind: Option<&str>, value: f64) {
        *self.metrics.entry(metric.to_string()).or_insert(0.0) += value;
        match metric {
            names::COST => self.cost_usd += value,
            names::TOKENS => self.tokens.add(kind, value),
            names::SESSIONS => self.sessions += value,
            names::ACTIVE_TIME => self.active_time_seconds += value,
            _ => {}
        }
    }

    /// Adds one transcript request's share (see `transcripts::counting`).
    pub(crate) fn add_transcript(&mut self, s: &crate::transcripts::counting::Share) {
        self.tokens.add(Some("input"), s.input);
        self.tokens.add(Some("output"), s.output);
        self.tokens.add(Some("cacheRead"), s.cache_read);
        self.tokens.add(Some("cacheCreation"), s.cache_creation);
        self.cost_usd += s.cost_usd;
        let t = &mut self.transcripts;
        t.requests += s.requests;
        self.api_requests.count += s.requests;
        if s.priced_from_table {
            t.cost_usd_price_table += s.cost_usd;
        } else if !s.unpriced {
            t.cost_usd_claude_code += s.cost_usd;
        } else {
            *t.unpriced_tokens.entry(s.model.clone()).or_insert(0.0) +=
                s.input + s.output + s.cache_read + s.cache_creation;
        }
    }

    /// Adds every figure of `other` (groups folded together, e.g. sessions into a project).
    pub fn merge(&mut self, other: &Figures) {
        self.cost_usd += other.cost_usd;
        let (t, o) = (&mut self.tokens, &other.tokens);
        t.input += o.input;
        t.output += o.output;
        t.cache_read += o.cache_read;
        t.cache_creation += o.cache_creation;
        t.total += o.total;
        t.reasoning += o.reasoning;
        self.sessions += other.sessions;
        self.active_time_seconds += other.active_time_seconds;
        for (k, v) in &other.metrics {
            *self.metrics.entry(k.clone()).or_insert(0.0) += v;
        }
        for (k, v) in &other.events {
            *self.events.entry(k.clone()).or_insert(0) += v;
        }
        let (a, b) = (&mut self.api_requests, &other.api_requests);
        a.count += b.count;
        a.cost_usd += b.cost_usd;
        a.input_tokens += b.input_tokens;
        a.output_tokens += b.output_tokens;
        a.cache_read_tokens += b.cache_read_tokens;
        a.cache_creation_tokens += b.cache_creation_tokens;
        let (x, y) = (&mut self.transcripts, &other.transcripts);
        x.requests += y.requests;
        x.sessions += y.sessions;
        x.cost_usd_claude_code += y.cost_usd_claude_code;
        x.cost_usd_price_table += y.cost_usd_price_table;
        x.api_errors += y.api_errors;
        for (k, v) in &y.unpriced_tokens {
            *x.unpriced_tokens.entry(k.clone()).or_insert(0.0) += v;
        }
        let (x, y) = (&mut self.agents, &other.agents);
        x.requests += y.requests;
        x.sessions += y.sessions;
        x.cost_usd_agent += y.cost_usd_agent;
        x.cost_usd_price_table += y.cost_usd_price_table;
        for (k, v) in &y.unpriced_tokens {
            *x.unpriced_tokens.entry(k.clone()).or_insert(0.0) += v;
        }
    }

    /// Adds one request of another agent: its disjoint token kinds, and `cost` (the agent's own,
    /// or the table's when `from_table`; `None`: unpriced). `counts_request` is off for the
    /// per-type parts of a request (`--by type`), so it counts once.
    pub(crate) fn add_agent_request(
        &mut self,
        r: &crate::store::agents::StoredAgentRequest,
        cost: Option<f64>,
        from_table: bool,
        counts_request: bool,
    ) {
        self.tokens.add(Some("input"), r.input_uncached as f64);
        self.tokens.add(Some("cacheRead"), r.input_cached as f64);
        self.tokens.add(Some("cacheCreation"), r.cache_write as f64);
        self.tokens.add(Some("output"), r.output as f64);
        self.tokens.reasoning += r.reasoning as f64;
        let a = &mut self.agents;
        if counts_request {
            a.requests += 1;
        }
        match cost {
            Some(c) => {
                self.cost_usd += c;
                if from_table {
                    a.cost_usd_price_table += c;
                } else {
                    a.cost_usd_agent += c;
                }
            }
            None => {
                let tokens = r.input_uncached + r.input_cached + r.cache_write + r.output;
                *a.unpriced_tokens.entry(format!("{}/{}", r.agent, r.model)).or_insert(0.0) +=
                    tokens as f64;
            }
        }
    }

    /// Counts a session of another agent.
    pub(crate) fn add_agent_session(&mut self) {
        self.sessions += 1.0;
        self.agents.sessions += 1;
    }

    /// Counts a session only the transcripts know.
    pub(crate) fn add_transcript_session(&mut self) {
        self.sessions += 1.0;
        self.transcripts.sessions += 1;
    }

    /// Adds the sums of the events named `name`; `api_request` also feeds [`ApiRequests`].
    pub(crate) fn add_events(&mut self, name: &str, sums: &EventSums) {
        *self.events.entry(name.to_string()).or_insert(0) += sums.count;
        if name == names::API_REQUEST {
            let a = &mut self.api_requests;
            a.count += sums.count;
            a.cost_usd += sums.cost_usd;
            a.input_tokens += sums.input_tokens;
            a.output_tokens += sums.output_tokens;
            a.cache_read_tokens += sums.cache_read_tokens;
            a.cache_creation_tokens += sums.cache_creation_tokens;
        }
    }
}

/// One row of a grouped report (`--by …`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The group's value: a day, model, session id, project name, branch, … (`(none)` if unset).
    pub key: String,
    /// The full path of a project (`--by project`), or a PR's URL (`--by pr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The group's figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// What `report` prints and the dashboard API serves: a period's figures, optionally grouped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The period as asked (`today`, `2026-11`, `2026-11-01..2026-11-15`, …).
    pub period: String,
    /// RFC 3339, local time; null when unbounded.
    pub start: Option<String>,
    /// RFC 3339, local time, exclusive; null when unbounded.
    pub end: Option<String>,
    /// The whole period's figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// The grouping asked for (`day`, `model`, `project`, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The rows of that grouping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_counts_are_integers_in_json() {
        let mut f = Figures::default();
        f.add_metric(names::TOKENS, Some("input"), 27334.0);
        f.add_metric(names::COST, None, 0.0193);
        f.add_metric(names::SESSIONS, None, 5.0);
        let v = serde_json::to_value(&f).expect("json");
        assert_eq!(v["tokens"]["input"], serde_json::json!(27334));
        assert_eq!(v["sessions"], serde_json::json!(5));
        assert_eq!(v["metrics"][names::COST], serde_json::json!(0.0193));
        assert_eq!(v["metrics"][names::TOKENS], serde_json::json!(27334));
        assert_eq!(f.tokens.cache_hit_ratio(), Some(0.0));
    }

    /// The same points summed in another order (a team's history, fed by a forwarder that
    /// batches differently) differ in the last bit of a double; the JSON must not.
    #[test]
    fn the_same_points_in_another_order_give_the_same_json() {
        let points = [0.1, 0.2, 0.3];
        let (mut forward, mut backward) = (Figures::default(), Figures::default());
        for (a, b) in points.iter().zip(points.iter().rev()) {
            for (f, v) in [(&mut forward, *a), (&mut backward, *b)] {
                f.add_metric(names::ACTIVE_TIME, None, v);
                f.add_metric(names::COST, Some("m"), v / 10.0);
                f.add_metric("claude_code.lines_of_code.count", Some("added"), v);
                f.add_transcript(&crate::transcripts::counting::Share {
                    session_id: "s".into(),
                    request_id: "r".into(),
                    model: "m".into(),
                    time_ns: 0,
                    input: 1.0,
                    output: 1.0,
                    cache_read: 0.0,
                    cache_creation: 0.0,
                    requests: 1,
                    cost_usd: v,
                    priced_from_table: true,
                    unpriced: false,
                });
            }
        }
        assert_ne!(forward.active_time_seconds, backward.active_time_seconds, "the test's premise");
        let (a, b) = (serde_json::to_value(&forward), serde_json::to_value(&backward));
        assert_eq!(a.expect("json"), b.expect("json"));
    }

    #[test]
    fn money_is_a_clean_decimal_in_json() {
        let mut f = Figures::default();
        for v in [0.0193, 0.0193, 0.0193] {
            f.add_metric(names::COST, None, v);
        }
        assert_ne!(f.cost_usd, 0.0579, "the float sum is not the decimal");
        let json = serde_json::to_string(&f).expect("json");
        assert!(json.contains(r#""cost_usd":0.0579"#), "{json}");
        assert!(json.contains(r#""claude_code.cost.usage":0.0579"#), "{json}");
    }
}
