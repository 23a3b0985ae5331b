//! One transcript line → the few facts tokentray keeps.
//!
//! Lines are parsed with borrowed, mostly-ignored fields: `message.content`, prompts, tool input
//! and output are skipped by the parser (serde ignores fields a struct does not name), never
//! copied into a string, so no text of the conversation can reach the database or a log.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::record::{ApiError, CostState, Line, PrLink, Request, SessionContext};

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cwd: Option<Cow<'a, str>>,
    #[serde(rename = "gitBranch", borrow, default)]
    git_branch: Option<Cow<'a, str>>,
    #[serde(rename = "isApiErrorMessage", default)]
    is_api_error: Option<bool>,
    #[serde(borrow, default)]
    message: Option<RawMessage<'a>>,
    #[serde(rename = "modelUsage", default)]
    model_usage: Option<BTreeMap<String, RawModelUsage>>,
    #[serde(rename = "prNumber", default)]
    pr_number: Option<i64>,
    #[serde(rename = "prUrl", borrow, default)]
    pr_url: Option<Cow<'a, str>>,
    #[serde(rename = "prRepository", borrow, default)]
    pr_repository: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<RawUsage<'a>>,
}

#[derive(Deserialize, Default)]
struct RawUsage<'a> {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<RawCacheCreation>,
    #[serde(borrow, default)]
    speed: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct RawCacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct RawModelUsage {
    #[serde(rename = "costUSD", default)]
    cost_usd: Option<f64>,
}

/// Why a line was not understood (counted per file, never fatal).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum LineError {
    #[error("not a JSON object: {0}")]
    Json(String),
}

/// The model name Claude Code gives the lines it writes itself for an API error.
pub(crate) const SYNTHETIC_MODEL: &str = "<synthetic>";

/// Parses one complete line. Lines of other types, or without what we keep, give
/// [`Line::default`].
pub(crate) fn parse_line(text: &[u8]) -> Result<Line, LineError> {
    let raw: RawLine = serde_json::from_slice(text).map_err(|e| LineError::Json(e.to_string()))?;
    let mut line = Line::default();
    let Some(session) = raw.session_id.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(line);
    };
    let time_ns = raw.timestamp.as_deref().and_then(parse_time_ns);
    if let (Some(cwd), Some(time_ns)) = (raw.cwd.as_deref(), time_ns) {
        line.context = Some(SessionContext {
            session_id: session.to_string(),
            time_ns,
            last_ns: time_ns,
            cwd: cwd.to_string(),
            git_branch: raw.git_branch.as_deref().map(str::to_string),
        });
    }
    match raw.kind.as_deref() {
        Some("assistant") => assistant(&raw, session, time_ns, &mut line),
        Some("cost-state") => {
            let models = raw
                .model_usage
                .iter()
                .flatten()
                .filter_map(|(model, u)| Some((model.clone(), u.cost_usd?)))
                .filter(|(_, c)| c.is_finite() && *c >= 0.0)
                .collect();
            line.cost_state = Some(CostState { session_id: session.to_string(), models });
        }
        Some("pr-link") => {
            if let Some(number) = raw.pr_number {
                line.pr_link = Some(PrLink {
                    session_id: session.to_string(),
                    number,
                    url: raw.pr_url.as_deref().map(str::to_string),
                    repository: raw.pr_repository.as_deref().map(str::to_string),
                });
            }
        }
        _ => {}
    }
    Ok(line)
}

fn assistant(raw: &RawLine, session: &str, time_ns: Option<i64>, line: &mut Line) {
    let (Some(message), Some(time_ns)) = (&raw.message, time_ns) else {
        return;
    };
    let model = message.model.as_deref().unwrap_or_default();
    let request_id = raw.request_id.as_deref().unwrap_or_default();
    if raw.is_api_error == Some(true) || model == SYNTHETIC_MODEL {
        // An error Claude Code showed, not a billed request.
        let key = [request_id, raw.uuid.as_deref().unwrap_or_default()].concat();
        line.api_error = Some(ApiError { session_id: session.to_string(), key, time_ns });
        return;
    }
    let (Some(usage), Some(message_id)) = (&message.usage, message.id.as_deref()) else {
        return;
    };
    let cache_creation = usage.cache_creation_input_tokens.unwrap_or(0);
    let (w5m, w1h) = match &usage.cache_creation {
        Some(c) => {
            (c.ephemeral_5m_input_tokens.unwrap_or(0), c.ephemeral_1h_input_tokens.unwrap_or(0))
        }
        None => (cache_creation, 0),
    };
    // Older lines give only the total; the split, when given, says which lifetime.
    let (w5m, w1h) = if w5m + w1h == cache_creation { (w5m, w1h) } else { (cache_creation, 0) };
    line.request = Some(Request {
        request_id: request_id.to_string(),
        message_id: message_id.to_string(),
        session_id: session.to_string(),
        model: model.to_string(),
        time_ns,
        input: usage.input_tokens.unwrap_or(0),
        output: usage.output_tokens.unwrap_or(0),
        cache_read: usage.cache_read_input_tokens.unwrap_or(0),
        cache_write_5m: w5m,
        cache_write_1h: w1h,
        fast: usage.speed.as_deref() == Some("fast"),
    });
}

fn parse_time_ns(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_usage_and_ids_but_no_text() {
        let text = br#"{"type":"assistant","sessionId":"s1","requestId":"req_1","timestamp":"2026-12-02T04:03:57.179Z","cwd":"/w/p","gitBranch":"main","message":{"id":"msg_1","model":"claude-sonnet-4-5","content":[{"type":"text","text":"SECRET MARKER"}],"usage":{"input_tokens":2100,"cache_creation_input_tokens":1500,"cache_read_input_tokens":9000,"output_tokens":80,"speed":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":1500}}}}"#;
        let line = parse_line(text).expect("parses");
        let r = line.request.expect("a request");
        assert_eq!((r.request_id.as_str(), r.message_id.as_str()), ("req_1", "msg_1"));
        assert_eq!(
            (r.input, r.output, r.cache_read, r.cache_write_5m, r.cache_write_1h),
            (2100, 80, 9000, 1500, 0)
        );
        assert_eq!(line.context.expect("context").git_branch.as_deref(), Some("main"));
        assert!(!format!("{:?}", r).contains("SECRET"));
    }

    #[test]
    fn synthetic_lines_are_errors_and_garbage_is_an_error() {
        let text = br#"{"type":"assistant","sessionId":"s1","requestId":"req_2","uuid":"u","timestamp":"2026-12-02T04:03:57Z","isApiErrorMessage":true,"message":{"id":"x","model":"<synthetic>","usage":{"input_tokens":0,"output_tokens":0}}}"#;
        let line = parse_line(text).expect("parses");
        assert!(line.request.is_none());
        assert_eq!(line.api_error.expect("error").key, "req_2u");
        assert!(parse_line(b"{\"type\":\"assist").is_err());
        assert_eq!(
            parse_line(br#"{"type":"user","message":{"content":"hi"}}"#),
            Ok(Line::default())
        );
    }
}
