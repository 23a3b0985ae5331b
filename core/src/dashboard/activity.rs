//! The window's Activity list: recent Claude Code events (API requests and errors, tool decisions
//! and results, prompts), newest first, optionally of one session and one kind, each with a
//! one-line description in words. Prompt text is never shown: only its length.

use chrono::{Local, TimeZone};
use serde::Serialize;

use crate::store::{EventFigures, EventRow, Reader, StoreError};

/// Longest list the window asks for.
pub(crate) const MAX_ROWS: usize = 500;

/// Event kinds the filter offers (the part after `claude_code.`).
pub const KINDS: [&str; 6] = [
    "api_request",
    "api_error",
    "tool_decision",
    "tool_result",
    "user_prompt",
    "api_retries_exhausted",
];

/// One event of the dashboard's activity list (JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActivityRow {
    /// RFC 3339, local.
    pub time: String,
    /// `api_request`, `tool_result`, … (the event name without `claude_code.`).
    pub kind: String,
    /// `duration_ms` also from a string attribute (tool results send it so).
    #[serde(flatten)]
    pub figures: EventFigures,
    /// What happened, in words: `Bash succeeded`, `Write: reject (config)`, `overloaded (529)`.
    pub summary: String,
}

/// The `kind` that lists every event, internal ones (`plugin_loaded`,
/// `managed_settings_resolved`, other agents' stream events, …) included.
pub const ALL_KINDS: &str = "all";

/// Up to `limit` events (capped at [`MAX_ROWS`]), newest first; `kind` without the
/// `claude_code.` prefix. Without a kind, the events a person acts on ([`KINDS`]); internal
/// events only with `kind` = [`ALL_KINDS`].
pub fn activity(
    reader: &Reader,
    session: Option<&str>,
    kind: Option<&str>,
    limit: usize,
) -> Result<Vec<ActivityRow>, StoreError> {
    let full = |k: &str| {
        if k.starts_with("claude_code.") {
            k.to_string()
        } else {
            format!("claude_code.{k}")
        }
    };
    let names: Vec<String> = match kind {
        Some(ALL_KINDS) => Vec::new(),
        Some(k) => vec![full(k)],
        None => KINDS.iter().map(|k| full(k)).collect(),
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let rows = reader.recent_events_named(limit.min(MAX_ROWS), session, &names)?;
    Ok(rows.into_iter().map(row).collect())
}

fn row(e: EventRow) -> ActivityRow {
    let kind = e.name.strip_prefix("claude_code.").unwrap_or(&e.name).to_string();
    let attr = |k: &str| {
        e.attrs.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
    };
    // Some numbers arrive as strings (tool_result's duration_ms): take either.
    let duration_ms =
        e.figures.duration_ms.or_else(|| attr("duration_ms").and_then(|d| d.parse().ok()));
    let summary = match kind.as_str() {
        "api_request" => format!(
            "{} in · {} out · {} cache read",
            e.figures.input_tokens.unwrap_or(0),
            e.figures.output_tokens.unwrap_or(0),
            e.figures.cache_read_tokens.unwrap_or(0)
        ),
        "api_error" => match attr("status_code") {
            Some(code) => format!("{} ({code})", attr("error").unwrap_or_else(|| "error".into())),
            None => attr("error").unwrap_or_else(|| "error".into()),
        },
        "tool_decision" => format!(
            "{}: {}{}",
            attr("tool_name").unwrap_or_else(|| "tool".into()),
            attr("decision").unwrap_or_else(|| "?".into()),
            attr("source").map(|s| format!(" ({s})")).unwrap_or_default()
        ),
        "tool_result" => format!(
            "{} {}",
            attr("tool_name").unwrap_or_else(|| "tool".into()),
            if attr("success").as_deref() == Some("true") { "succeeded" } else { "failed" }
        ),
        "user_prompt" => {
            format!("prompt of {} characters", attr("prompt_length").unwrap_or_else(|| "?".into()))
        }
        other => attr("error").unwrap_or_else(|| other.replace('_', " ")),
    };
    ActivityRow {
        time: Local.timestamp_nanos(e.time_ns).to_rfc3339(),
        kind,
        figures: EventFigures { duration_ms, ..e.figures },
        summary,
    }
}
