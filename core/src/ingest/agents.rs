//! Other agents' per-request events (Codex CLI, Gemini CLI) → [`AgentRequest`]s, the rows that
//! become their spend, tokens and sessions in reports.
//!
//! Only numbers, ids, the model and the time are taken; no text (Gemini CLI puts system-prompt
//! text into some records even with `logPrompts` off). Token kinds are made disjoint here:
//! both agents count cached tokens inside their input, so the uncached input is input − cached;
//! totals and `tool_token_count` are never added.

use super::attrs::{self, AttrValue, Attrs};
use super::model::Resource;

/// The agent key of Codex CLI (`service.name` `codex_exec`, `codex_tui`, …) in the price table
/// and in `report --by agent`.
pub(crate) const CODEX: &str = "codex";
/// The agent key of Gemini CLI (`service.name` `gemini-cli`).
pub(crate) const GEMINI_CLI: &str = "gemini-cli";

/// One API request of another agent, as its per-request event stated it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentRequest {
    /// [`CODEX`] or [`GEMINI_CLI`].
    pub agent: &'static str,
    /// The agent's own session: Codex's `conversation.id`, Gemini CLI's `session.id`.
    pub session_id: String,
    /// What makes the request unique, so a replayed export counts once: the record's time,
    /// the session and the counts (neither agent sends a response id in these events).
    pub request_key: String,
    pub model: String,
    pub time_ns: i64,
    /// Input tokens not served from the cache (input − cached).
    pub input_uncached: u64,
    /// Input tokens read from the cache.
    pub input_cached: u64,
    /// Input tokens written to the cache (Codex's `cache_write_token_count`).
    pub cache_write: u64,
    /// Every token billed as output, reasoning included.
    pub output: u64,
    /// Of `output`, the reasoning/thinking tokens (shown separately, never added again).
    pub reasoning: u64,
    /// A cost the agent stated for the request, USD; none of the measured versions sends one.
    pub cost_usd: Option<f64>,
}

/// Which agent sent a resource, by its `service.name`; `None` for Claude Code and the rest.
pub(crate) fn agent_of(resource: &Resource) -> Option<&'static str> {
    match attrs::get_str(&resource.attrs, "service.name")? {
        name if name.starts_with("codex") => Some(CODEX),
        "gemini-cli" => Some(GEMINI_CLI),
        _ => None,
    }
}

/// The request a log record stands for, if it is one of the per-request events: Codex's
/// `codex.sse_event` of kind `response.completed` with token counts, or Gemini CLI's
/// `gemini_cli.api_response`.
pub(crate) fn request_of(resource: &Resource, attrs: &Attrs, time_ns: i64) -> Option<AgentRequest> {
    let agent = agent_of(resource)?;
    let count = |k: &str| attrs::get(attrs, k).and_then(AttrValue::as_i64).map(|v| v.max(0) as u64);
    let text = |k: &str| attrs::get_str(attrs, k).map(str::to_string);
    let event = attrs::get_str(attrs, "event.name")?;
    let (session_id, input, cached, cache_write, output, reasoning) = match (agent, event) {
        (CODEX, "codex.sse_event")
            if attrs::get_str(attrs, "event.kind") == Some("response.completed") =>
        {
            // Codex logs `response.completed` twice: once with the counts, once without.
            let input = count("input_token_count")?;
            let output = count("output_token_count").unwrap_or(0);
            (
                text("conversation.id")?,
                input,
                count("cached_token_count").unwrap_or(0),
                count("cache_write_token_count").unwrap_or(0),
                output,
                // Part of the output already: kept to be shown, never summed again.
                count("reasoning_token_count").unwrap_or(0).min(output),
            )
        }
        (GEMINI_CLI, "gemini_cli.api_response") => {
            let session = text("session.id")
                .or_else(|| attrs::get_str(&resource.attrs, "session.id").map(str::to_string))?;
            let thought = count("thoughts_token_count").unwrap_or(0);
            // Gemini's candidates exclude the thoughts, which are billed as output: the
            // output kind holds both, the thoughts shown separately as reasoning.
            (
                session,
                count("input_token_count")?,
                count("cached_content_token_count").unwrap_or(0),
                0,
                count("output_token_count").unwrap_or(0) + thought,
                thought,
            )
        }
        _ => return None,
    };
    let model = text("model").unwrap_or_default();
    let request_key = format!(
        "{time_ns}/{session_id}/{model}/{input}/{cached}/{cache_write}/{output}/{reasoning}"
    );
    Some(AgentRequest {
        agent,
        session_id,
        request_key,
        model,
        time_ns,
        input_uncached: input.saturating_sub(cached),
        input_cached: cached.min(input),
        cache_write,
        output,
        reasoning,
        cost_usd: attrs::get(attrs, "cost_usd")
            .and_then(AttrValue::as_f64)
            .filter(|c| c.is_finite()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(service: &str) -> Resource {
        Resource { attrs: vec![("service.name".into(), AttrValue::Str(service.into()))], key: 0 }
    }

    fn attrs(kvs: &[(&str, &str)]) -> Attrs {
        attrs::from_proto(
            kvs.iter()
                .map(|(k, v)| opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: k.to_string(),
                    value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                v.to_string(),
                            ),
                        ),
                    }),
                    ..Default::default()
                })
                .collect(),
        )
    }

    #[test]
    fn codex_counts_become_disjoint_kinds() {
        let a = attrs(&[
            ("event.name", "codex.sse_event"),
            ("event.kind", "response.completed"),
            ("input_token_count", "1500"),
            ("output_token_count", "60"),
            ("cached_token_count", "1000"),
            ("cache_write_token_count", "0"),
            ("reasoning_token_count", "20"),
            ("tool_token_count", "1560"),
            ("conversation.id", "c1"),
            ("model", "gpt-5-codex"),
        ]);
        let r = request_of(&resource("codex_exec"), &a, 7).expect("a request");
        assert_eq!((r.input_uncached, r.input_cached, r.output, r.reasoning), (500, 1000, 60, 20));
        assert_eq!((r.agent, r.session_id.as_str()), (CODEX, "c1"));
        let no_counts = attrs(&[
            ("event.name", "codex.sse_event"),
            ("event.kind", "response.completed"),
            ("conversation.id", "c1"),
        ]);
        assert_eq!(request_of(&resource("codex_exec"), &no_counts, 7), None);
        assert_eq!(request_of(&resource("claude-code"), &a, 7), None, "not by service.name");
    }

    #[test]
    fn gemini_thoughts_are_output_shown_apart() {
        let a = attrs(&[
            ("event.name", "gemini_cli.api_response"),
            ("session.id", "s1"),
            ("model", "gemini-2.5-pro"),
            ("input_token_count", "1800"),
            ("output_token_count", "40"),
            ("cached_content_token_count", "600"),
            ("thoughts_token_count", "50"),
            ("tool_token_count", "0"),
            ("total_token_count", "1890"),
        ]);
        let r = request_of(&resource("gemini-cli"), &a, 7).expect("a request");
        assert_eq!((r.input_uncached, r.input_cached, r.output, r.reasoning), (1200, 600, 90, 50));
        assert_eq!(r.input_uncached + r.input_cached + r.output, 1890, "the total, nothing twice");
    }
}
