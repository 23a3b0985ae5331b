//! `ExportLogsServiceRequest` → [`EventRecord`]s, with prompt text redacted unless opted in, and
//! the counter points tokentray derives from some of them ([`super::derived`]).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::agents;
use super::attrs::{self, AttrValue};
use super::derived::{self, EventScope};
use super::model::*;
use super::Privacy;

/// What stands in for text the user did not opt in to keep; the same marker Claude Code uses.
pub const REDACTED: &str = "<REDACTED>";

/// Attributes that carry the user's words or file contents. Their length is kept (Claude Code
/// already sends `prompt_length` / `response_length`; for the others we add `<key>_length`).
/// Gemini CLI's `gen_ai.*` records carry the system prompt and messages even with its
/// `logPrompts` off.
const PRIVATE_KEYS: &[&str] = &[
    "prompt",
    "prompt_text",
    "response",
    "user_prompt",
    "tool_input",
    "content",
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
];

/// Turns an OTLP logs request into a [`Batch`] of events. A record without a timestamp (or observed
/// timestamp) takes `received_ns` (nanoseconds since the Unix epoch); private attributes are
/// replaced by their lengths unless `privacy.store_prompts` is on.
pub fn normalize(req: ExportLogsServiceRequest, received_ns: i64, privacy: Privacy) -> Batch {
    let mut batch = Batch::default();
    for rl in req.resource_logs {
        let resource = super::resource(rl.resource);
        if batch.client.is_none() {
            batch.client = super::client_of(&resource);
        }
        for sl in rl.scope_logs {
            let (scope_name, scope_version) =
                sl.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            let scope =
                EventScope { resource: &resource, name: &scope_name, version: &scope_version };
            for record in sl.log_records {
                let body_name = match record.body.and_then(|b| b.value) {
                    Some(Value::StringValue(s)) => Some(s),
                    _ => None,
                };
                let mut attrs = attrs::from_proto(record.attributes);
                // Other agents name their events in `event.name`; their bodies are sentences
                // with durations in them (Gemini CLI) or source locations (Codex).
                let agent_event = agents::agent_of(&resource)
                    .and_then(|_| attrs::get_str(&attrs, "event.name"))
                    .map(str::to_string);
                let name = agent_event
                    .or(body_name)
                    .filter(|s| !s.is_empty() && s.len() <= 256)
                    .or_else(|| (!record.event_name.is_empty()).then(|| record.event_name.clone()))
                    .or_else(|| {
                        attrs::get_str(&attrs, "event.name").map(|n| format!("claude_code.{n}"))
                    })
                    .unwrap_or_else(|| "log".to_string());
                if !privacy.store_prompts {
                    redact(&mut attrs);
                }
                let time_ns = [record.time_unix_nano, record.observed_time_unix_nano]
                    .into_iter()
                    .find(|t| *t != 0)
                    .map(|t| t.min(i64::MAX as u64) as i64)
                    .unwrap_or(received_ns);
                let s = |k: &str| attrs::get_str(&attrs, k).map(str::to_string);
                let i = |k: &str| attrs::get(&attrs, k).and_then(AttrValue::as_i64);
                // A token count outside 0..=MAX_EVENT_TOKENS is no count: it is kept in the
                // event's attributes but not summed.
                let tokens = |k: &str| i(k).filter(|n| (0..=MAX_EVENT_TOKENS).contains(n));
                let event = EventRecord {
                    time_ns,
                    // Codex names its session `conversation.id`.
                    session_id: s("session.id").or_else(|| {
                        (agents::agent_of(&resource) == Some(agents::CODEX))
                            .then(|| s("conversation.id"))
                            .flatten()
                    }),
                    prompt_id: s("prompt.id"),
                    model: s("model"),
                    cost_usd: attrs::get(&attrs, "cost_usd")
                        .and_then(AttrValue::as_f64)
                        .filter(|c| c.is_finite()),
                    input_tokens: tokens("input_tokens"),
                    output_tokens: tokens("output_tokens"),
                    cache_read_tokens: tokens("cache_read_tokens"),
                    cache_creation_tokens: tokens("cache_creation_tokens"),
                    duration_ms: i("duration_ms"),
                    name,
                    resource: resource.clone(),
                    attrs,
                };
                batch.derived.extend(derived::point_for(&event, &scope));
                batch.agent_requests.extend(agents::request_of(&resource, &event.attrs, time_ns));
                batch.events.push(event);
            }
        }
    }
    batch
}

/// The largest token count one event may carry, a thousand times the largest context window.
/// Counts are summed in 64-bit integers: one event with `cache_read_tokens = i64::MAX` (a 200 for
/// the request) made every later `report` fail with "integer overflow". Below this bound a
/// group needs 2^31 events to overflow.
const MAX_EVENT_TOKENS: i64 = 1 << 32;

/// The same redaction on a request as it is forwarded to the team: private attributes become
/// [`REDACTED`] with a `<key>_length` next to them, and a body too long to be an event name is
/// replaced as well (it may be the text itself).
pub(crate) fn redact_request(req: &mut ExportLogsServiceRequest) {
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for record in &mut sl.log_records {
                redact_key_values(&mut record.attributes);
                if let Some(Value::StringValue(body)) =
                    record.body.as_mut().and_then(|b| b.value.as_mut())
                {
                    if body.len() > 256 {
                        *body = REDACTED.to_string();
                    }
                }
            }
        }
    }
}

/// [`redact`] on protobuf attributes (logs, and span attributes when traces are forwarded).
pub(crate) fn redact_key_values(kvs: &mut Vec<opentelemetry_proto::tonic::common::v1::KeyValue>) {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    let mut lengths = Vec::new();
    for kv in kvs.iter_mut() {
        if !PRIVATE_KEYS.contains(&kv.key.as_str()) {
            continue;
        }
        if let Some(Value::StringValue(text)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            if text != REDACTED {
                lengths.push((format!("{}_length", kv.key), text.chars().count() as i64));
            }
        }
        kv.value = Some(AnyValue { value: Some(Value::StringValue(REDACTED.to_string())) });
    }
    for (key, len) in lengths {
        if !kvs.iter().any(|kv| kv.key == key) {
            kvs.push(KeyValue {
                key,
                value: Some(AnyValue { value: Some(Value::IntValue(len)) }),
                ..Default::default()
            });
        }
    }
}

/// Replaces private text with [`REDACTED`], keeping its length in characters.
pub fn redact(attrs: &mut attrs::Attrs) {
    let mut lengths = Vec::new();
    for (key, value) in attrs.iter_mut() {
        if !PRIVATE_KEYS.contains(&key.as_str()) {
            continue;
        }
        if let AttrValue::Str(text) = value {
            if text != REDACTED {
                lengths.push((format!("{key}_length"), text.chars().count() as i64));
            }
        }
        *value = AttrValue::Str(REDACTED.to_string());
    }
    for (key, len) in lengths {
        if attrs::get(attrs, &key).is_none() {
            attrs.push((key, AttrValue::Int(len)));
        }
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_lengths_not_text() {
        let mut attrs = vec![
            ("prompt".to_string(), AttrValue::Str("secret plan".into())),
            ("prompt_length".to_string(), AttrValue::Str("11".into())),
            ("tool_input".to_string(), AttrValue::Str("{\"content\":\"x\"}".into())),
            ("model".to_string(), AttrValue::Str("m".into())),
        ];
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        redact(&mut attrs);
        assert_eq!(attrs::get_str(&attrs, "prompt"), Some(REDACTED));
        assert_eq!(attrs::get_str(&attrs, "prompt_length"), Some("11"), "client's length is kept");
        assert_eq!(attrs::get(&attrs, "tool_input_length"), Some(&AttrValue::Int(15)));
        assert_eq!(attrs::get_str(&attrs, "model"), Some("m"));
        assert!(!attrs::to_json(&attrs).contains("secret"));
    }

    #[test]
    fn forwarded_requests_are_redacted_the_same_way() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
            ..Default::default()
        };
        let mut req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(Value::StringValue("claude_code.user_prompt".into())),
                        }),
                        attributes: vec![kv("prompt", "secret plan"), kv("model", "m")],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        redact_request(&mut req);
        let record = &req.resource_logs[0].scope_logs[0].log_records[0];
        let text = format!("{record:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("claude_code.user_prompt"));
        assert!(record.attributes.iter().any(|kv| kv.key == "prompt_length"
            && kv.value == Some(AnyValue { value: Some(Value::IntValue(11)) })));
    }
}
