//! The report shape shared by `tokentray report --json`, the window and budgets.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Sums of counts (tokens, sessions) are kept as `f64` because Claude Code sends every value as a
/// double; whole values are written as JSON integers so scripts see `27334`, not `27334.0`.
pub fn whole_as_int<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Dollars as the decimal they stand for: a sum of doubles comes out as `0.059699999999999996`;
/// JSON gets `0.0597`. Rounded to the nano-dollar (9 decimals), finer than any price Claude
/// Code sends (7 decimals), coarser than the noise of summing doubles (README, "report").
pub fn decimal_usd<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
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
        // Money as a decimal (see `decimal_usd`); other sums as sent.
        let v = if k == names::COST { round_decimal(*v) } else { *v };
        map.serialize_entry(k, &AsInt(v))?;
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
    pub const COST: &str = "claude_code.cost.usage";
    pub const TOKENS: &str = "claude_code.token.usage";
    pub const SESSIONS: &str = "claude_code.session.count";
    pub const ACTIVE_TIME: &str = "claude_code.active_time.total";
    pub const API_REQUEST: &str = "claude_code.api_request";
}

/// Tokens by Claude Code's `type` attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tokens {
    #[serde(serialize_with = "whole_as_int")]
    pub input: f64,
    #[serde(serialize_with = "whole_as_int")]
    pub output: f64,
    #[serde(rename = "cacheRead", serialize_with = "whole_as_int")]
    pub cache_read: f64,
    #[serde(rename = "cacheCreation", serialize_with = "whole_as_int")]
    pub cache_creation: f64,
    #[serde(serialize_with = "whole_as_int")]
    pub total: f64,
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
    pub count: u64,
    #[serde(serialize_with = "decimal_usd")]
    pub cost_usd: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
}

/// Figures for a period, or for one group of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    #[serde(serialize_with = "decimal_usd")]
    pub cost_usd: f64,
    pub tokens: Tokens,
    /// Sessions started (`claude_code.session.count`).
    #[serde(serialize_with = "whole_as_int")]
    pub sessions: f64,
    pub active_time_seconds: f64,
    /// Every monotonic sum by OTel metric name.
    #[serde(serialize_with = "map_whole_as_int")]
    pub metrics: BTreeMap<String, f64>,
    pub api_requests: ApiRequests,
    /// Events by name (`claude_code.api_request`, `claude_code.tool_result`, …).
    pub events: BTreeMap<String, u64>,
}

/// Aggregated events of one name within one group.
#[derive(Debug, Clone, Default)]
pub struct EventSums {
    pub count: u64,
    pub cost_usd: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
}

impl Figures {
    /// Adds the increments of one metric (for one token/lines type).
    pub fn add_metric(&mut self, metric: &str, kind: Option<&str>, value: f64) {
        *self.metrics.entry(metric.to_string()).or_insert(0.0) += value;
        match metric {
            names::COST => self.cost_usd += value,
            names::TOKENS => self.tokens.add(kind, value),
            names::SESSIONS => self.sessions += value,
            names::ACTIVE_TIME => self.active_time_seconds += value,
            _ => {}
        }
    }

    pub fn add_events(&mut self, name: &str, sums: &EventSums) {
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub period: String,
    /// RFC 3339, local time; null when unbounded.
    pub start: Option<String>,
    pub end: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
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
