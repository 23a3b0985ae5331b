//! OTLP/JSON ("JSON Protobuf Encoding" of the OTLP specification) → the prost messages of
//! `opentelemetry-proto`, and the small JSON response bodies an OTLP/HTTP receiver sends back.
//!
//! Why a hand-written converter instead of `opentelemetry-proto`'s `with-serde` feature: the
//! spec lets a sender spell the same request many ways (lowerCamelCase *or* the original
//! snake_case field names, 64-bit integers as JSON strings *or* numbers, enums as integers *or*
//! their names, `"NaN"`/`"Infinity"` for doubles), and the serde derive accepts only some of
//! them. Claude Code itself sends one particular spelling (see the telemetry reference, §2.2),
//! but any OTLP/JSON client may point at tokentray.
//!
//! How it works: the body is parsed into a [`serde_json::Value`] (which keeps serde_json's
//! recursion limit of 128 levels, so hostile nesting cannot overflow the stack), then each
//! message is built by walking the object's keys and matching both spellings of every field.
//! Unknown keys are skipped (forward compatibility) and `null` means "absent", as the proto3 JSON
//! mapping prescribes. Every error names the JSON path of the offending value, e.g.
//! `resourceMetrics[0].scopeMetrics[0].metrics[2].sum.dataPoints[1].timeUnixNano`, using the key
//! spelling the sender used, because the person reading the error has the sender's JSON in front
//! of them.
//!
//! Doubles are only exact if serde_json's `float_roundtrip` feature is enabled in the workspace:
//! its default parser is "best effort" and turns Claude Code's `0.059699999999999996` into the
//! neighbouring double `0.0597`, so the same request would be stored differently over http/json
//! and http/protobuf (`doubles_are_parsed_exactly` checks this).
//!
//! Exemplars are skipped on purpose: tokentray never reads them, and skipping them means a
//! malformed exemplar cannot get an otherwise good request rejected.

use std::fmt::Write as _;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{
    LogRecord, LogRecordFlags, ResourceLogs, ScopeLogs, SeverityNumber,
};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
    AggregationTemporality, DataPointFlags, ExponentialHistogram, ExponentialHistogramDataPoint,
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, SpanFlags, Status,
};
use serde_json::{Map, Value};

use crate::signal::Signal;

/// How many `arrayValue`/`kvlistValue` levels an attribute value may nest. serde_json's own
/// limit (128 JSON levels, about 42 `AnyValue` levels) already bounds the recursion; this
/// explicit, lower bound keeps the converter safe on its own and rejects absurd attributes with
/// a precise path instead of a generic "too deep" syntax error. Real telemetry nests one or two
/// levels.
pub(crate) const MAX_ANY_VALUE_DEPTH: usize = 32;

/// serde_json's default recursion limit, restated for the error message.
const JSON_RECURSION_LIMIT: usize = 128;

/// Why an OTLP/JSON body could not be decoded. The `Display` text is meant to be sent back to
/// the client (in a `google.rpc.Status` message) and read by a human.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonError {
    /// The body is not syntactically valid JSON: garbage, truncated, trailing characters,
    /// invalid UTF-8, a number outside the range of a double.
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Syntax { line: usize, column: usize, message: String },
    /// The body nests arrays/objects deeper than the parser allows.
    #[error("invalid JSON at line {line} column {column}: nested deeper than {limit} levels")]
    TooDeep { line: usize, column: usize, limit: usize },
    /// A known field holds a JSON type that cannot represent it (e.g. an object where a list of
    /// data points belongs, a number where a string belongs).
    #[error("{path}: expected {expected}, found {found}")]
    WrongType { path: String, expected: &'static str, found: String },
    /// A known field has the right JSON type but an unacceptable value: a fraction where an
    /// integer belongs, an integer out of range, a bad hex id, an unknown enum name, two members
    /// of a oneof, nesting beyond [`MAX_ANY_VALUE_DEPTH`].
    #[error("{path}: {problem}")]
    InvalidValue { path: String, problem: String },
}

impl JsonError {
    /// The JSON path of the offending value, for errors that have one (the tests check it; the
    /// message already carries it).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn path(&self) -> Option<&str> {
        match self {
            JsonError::WrongType { path, .. } | JsonError::InvalidValue { path, .. } => Some(path),
            JsonError::Syntax { .. } | JsonError::TooDeep { .. } => None,
        }
    }
}

/// Decodes the body of an OTLP/HTTP `POST /v1/metrics` with `Content-Type: application/json`.
///
/// # Errors
///
/// [`JsonError`] when the body is not JSON, or a known field has a type or value the OTLP/JSON
/// encoding does not allow; the error names the field's path.
pub(crate) fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    Ok(ExportMetricsServiceRequest {
        resource_metrics: decode_root(
            body,
            "resourceMetrics",
            "resource_metrics",
            resource_metrics,
        )?,
    })
}

/// Decodes the body of an OTLP/HTTP `POST /v1/logs` with `Content-Type: application/json`.
///
/// # Errors
///
/// [`JsonError`] when the body is not JSON, or a known field has a type or value the OTLP/JSON
/// encoding does not allow; the error names the field's path.
pub(crate) fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    Ok(ExportLogsServiceRequest {
        resource_logs: decode_root(body, "resourceLogs", "resource_logs", resource_logs)?,
    })
}

/// Decodes the body of an OTLP/HTTP `POST /v1/traces` with `Content-Type: application/json`.
///
/// # Errors
///
/// [`JsonError`] when the body is not JSON, or a known field has a type or value the OTLP/JSON
/// encoding does not allow; the error names the field's path.
pub(crate) fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    Ok(ExportTraceServiceRequest {
        resource_spans: decode_root(body, "resourceSpans", "resource_spans", resource_spans)?,
    })
}

/// Response bodies in OTLP/JSON: `{}` when nothing was rejected, else
/// `{"partialSuccess":{"rejectedDataPoints":"N","errorMessage":"..."}}` (rejectedLogRecords /
/// rejectedSpans for the other signals; int64 as string per the spec).
///
/// A zero count with a non-empty message is still written out as a partial success: the spec
/// uses that form to pass warnings to the client. An empty message is omitted (proto3 JSON
/// leaves out default values). The fields are written in a fixed order, independent of
/// serde_json's map features, so responses are byte-stable.
#[must_use]
pub(crate) fn encode_partial_success(signal: Signal, rejected: i64, message: &str) -> Vec<u8> {
    if rejected == 0 && message.is_empty() {
        return b"{}".to_vec();
    }
    let mut out = String::from("{\"partialSuccess\":{\"");
    out.push_str(signal.json_rejected_field());
    out.push_str("\":\"");
    out.push_str(&rejected.to_string());
    out.push('"');
    if !message.is_empty() {
        out.push_str(",\"errorMessage\":");
        out.push_str(&json_string(message));
    }
    out.push_str("}}");
    out.into_bytes()
}

/// google.rpc.Status as JSON: {"code":3,"message":"..."}
///
/// OTLP/HTTP sends this as the body of 4xx/5xx responses when the request was JSON.
#[must_use]
pub(crate) fn encode_status(code: i32, message: &str) -> Vec<u8> {
    format!("{{\"code\":{code},\"message\":{}}}", json_string(message)).into_bytes()
}

/// A JSON string literal for `s`, escaped by serde_json.
fn json_string(s: &str) -> String {
    // Serializing a `&str` cannot fail; the fallback only exists so that no path can panic.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// The location of the value being converted, as a linked list on the stack: building it costs
/// nothing on the happy path, and it is only turned into text when an error is reported.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl Path<'_> {
    const ROOT: Path<'static> = Path { parent: None, segment: Segment::Root };

    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path { parent: Some(self), segment: Segment::Key(key) }
    }

    fn index(&self, index: usize) -> Path<'_> {
        Path { parent: Some(self), segment: Segment::Index(index) }
    }

    /// `a[0].b.c[2]`; the body itself is `(root)`.
    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut current = Some(self);
        while let Some(path) = current {
            segments.push(path.segment);
            current = path.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => {}
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        if out.is_empty() {
            out.push_str("(root)");
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and generic helpers
// ---------------------------------------------------------------------------------------------

fn wrong_type(path: &Path<'_>, expected: &'static str, found: &Value) -> JsonError {
    JsonError::WrongType { path: path.render(), expected, found: describe(found) }
}

fn invalid(path: &Path<'_>, problem: impl Into<String>) -> JsonError {
    JsonError::InvalidValue { path: path.render(), problem: problem.into() }
}

/// A short, human-readable rendering of a JSON value for error messages; long strings are cut
/// so that a hostile body cannot make the error (and the response) arbitrarily large.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 40;
    match value {
        Value::Null => String::from("null"),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            if s.chars().count() > MAX_CHARS {
                let cut: String = s.chars().take(MAX_CHARS).collect();
                format!("string {cut:?}…")
            } else {
                format!("string {s:?}")
            }
        }
        Value::Array(_) => String::from("an array"),
        Value::Object(_) => String::from("an object"),
    }
}

/// Parses the body and turns serde_json's error into [`JsonError::Syntax`] / `TooDeep`.
fn parse(body: &[u8]) -> Result<Value, JsonError> {
    // A UTF-8 byte order mark is not JSON, but some Windows tooling writes one; it carries no
    // meaning, so skip it rather than reject the request.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        // serde_json appends " at line L column C"; we print the position in front instead.
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        if message == "recursion limit exceeded" {
            JsonError::TooDeep { line, column, limit: JSON_RECURSION_LIMIT }
        } else {
            JsonError::Syntax { line, column, message }
        }
    })
}

/// Parses `body`, which must be an object, and converts the list under its one known key.
fn decode_root<T>(
    body: &[u8],
    camel: &'static str,
    snake: &'static str,
    mut item: impl FnMut(Value, &Path<'_>) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    let root = parse(body)?;
    let path = Path::ROOT;
    let mut out = Vec::new();
    for (key, value) in object(root, &path)? {
        if !value.is_null() && (key == camel || key == snake) {
            out = repeated(value, &path.key(&key), &mut item)?;
        }
    }
    Ok(out)
}

fn object(value: Value, path: &Path<'_>) -> Result<Map<String, Value>, JsonError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(wrong_type(path, "an object", &other)),
    }
}

/// A repeated field: a JSON array whose items are converted by `item`.
fn repeated<T>(
    value: Value,
    path: &Path<'_>,
    mut item: impl FnMut(Value, &Path<'_>) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    match value {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (index, value) in items.into_iter().enumerate() {
                out.push(item(value, &path.index(index))?);
            }
            Ok(out)
        }
        other => Err(wrong_type(path, "an array", &other)),
    }
}

/// Collects the member of a protobuf `oneof`. The proto3 JSON mapping forbids setting two
/// members, and silently picking one would make the result depend on key order, so a second
/// member is an error.
struct OneOf<T> {
    members: &'static str,
    value: Option<T>,
}

impl<T> OneOf<T> {
    fn new(members: &'static str) -> Self {
        OneOf { members, value: None }
    }

    fn set(&mut self, path: &Path<'_>, value: T) -> Result<(), JsonError> {
        if self.value.is_some() {
            return Err(invalid(path, format!("only one of {} may be set", self.members)));
        }
        self.value = Some(value);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

fn string(value: Value, path: &Path<'_>) -> Result<String, JsonError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(wrong_type(path, "a string", &other)),
    }
}

fn boolean(value: Value, path: &Path<'_>) -> Result<bool, JsonError> {
    match value {
        Value::Bool(b) => Ok(b),
        other => Err(wrong_type(path, "a boolean", &other)),
    }
}

/// Any integer spelling proto3 JSON allows, widened to `i128` so that one range check per target
/// type suffices: a JSON number (also in exponent form, `1e3`, as long as it is integral) or a
/// string holding one (`"1795330083098000000"`, the usual form of 64-bit values).
fn integer(value: &Value, path: &Path<'_>) -> Result<i128, JsonError> {
    fn integral(f: f64) -> Option<i128> {
        // `as` saturates for values beyond i128; the caller's range check then rejects them.
        (f.is_finite() && f.fract() == 0.0).then_some(f as i128)
    }
    let parsed = match value {
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from))
            .or_else(|| n.as_f64().and_then(integral)),
        Value::String(s) => {
            s.parse::<i128>().ok().or_else(|| s.parse::<f64>().ok().and_then(integral))
        }
        other => return Err(wrong_type(path, "an integer (a number or a decimal string)", other)),
    };
    parsed.ok_or_else(|| invalid(path, format!("{} is not an integer", describe(value))))
}

/// An integer of protobuf type `type_name`, range-checked.
fn ranged<T: TryFrom<i128>>(
    value: Value,
    path: &Path<'_>,
    type_name: &'static str,
) -> Result<T, JsonError> {
    let n = integer(&value, path)?;
    T::try_from(n)
        .map_err(|_| invalid(path, format!("{} is out of range for {type_name}", describe(&value))))
}

fn uint64(value: Value, path: &Path<'_>) -> Result<u64, JsonError> {
    ranged(value, path, "uint64")
}

fn int64(value: Value, path: &Path<'_>) -> Result<i64, JsonError> {
    ranged(value, path, "int64")
}

fn uint32(value: Value, path: &Path<'_>) -> Result<u32, JsonError> {
    ranged(value, path, "uint32")
}

fn int32(value: Value, path: &Path<'_>) -> Result<i32, JsonError> {
    ranged(value, path, "int32")
}

/// A double: a JSON number, one of the spec's spellings of the non-finite values (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`), or a string holding a finite number. Rust's own spellings
/// (`"inf"`, `"nan"`) and strings that overflow to infinity are rejected: they are not
/// proto3 JSON, and accepting them would hide a sender bug.
fn double(value: Value, path: &Path<'_>) -> Result<f64, JsonError> {
    let parsed = match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse::<f64>().ok().filter(|f| f.is_finite()),
        },
        other => return Err(wrong_type(path, "a number", other)),
    };
    parsed.ok_or_else(|| {
        invalid(
            path,
            format!(
                "{} is not a number (non-finite values are spelled \"NaN\", \"Infinity\", \"-Infinity\")",
                describe(&value)
            ),
        )
    })
}

/// An enum field: its integer value (unknown values are kept, proto3 enums are open) or its name
/// as in the .proto file (`"AGGREGATION_TEMPORALITY_DELTA"`). An unknown name is an error rather
/// than a silent 0, because 0 means "unspecified" and would change how the data is counted.
fn enumeration(
    value: Value,
    path: &Path<'_>,
    type_name: &'static str,
    from_name: fn(&str) -> Option<i32>,
) -> Result<i32, JsonError> {
    if let Value::String(name) = &value {
        if let Some(n) = from_name(name).or_else(|| from_name(&name.to_ascii_uppercase())) {
            return Ok(n);
        }
        if name.parse::<i128>().is_err() {
            return Err(invalid(path, format!("{} is not a {type_name} name", describe(&value))));
        }
    }
    int32(value, path)
}

/// A flags bit field (`uint32`/`fixed32`): an integer, or the name of one of the flag enum's
/// values (the spec lets enum-typed flags be written by name).
fn flags(
    value: Value,
    path: &Path<'_>,
    type_name: &'static str,
    from_name: fn(&str) -> Option<i32>,
) -> Result<u32, JsonError> {
    if let Value::String(name) = &value {
        if let Some(n) = from_name(name).and_then(|n| u32::try_from(n).ok()) {
            return Ok(n);
        }
        if name.parse::<i128>().is_err() {
            return Err(invalid(
                path,
                format!("{} is neither an integer nor a {type_name} name", describe(&value)),
            ));
        }
    }
    uint32(value, path)
}

/// A trace or span id: hex (either case) of exactly `bytes` bytes, or `""` for "no id". OTLP/JSON
/// deliberately deviates from proto3 JSON here (which would use base64).
fn hex_id(value: Value, path: &Path<'_>, bytes: usize) -> Result<Vec<u8>, JsonError> {
    let text = string(value, path)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.len() != bytes * 2 {
        return Err(invalid(
            path,
            format!(
                "expected {} hex digits ({bytes} bytes), found {} characters",
                bytes * 2,
                text.chars().count()
            ),
        ));
    }
    hex::decode(&text).map_err(|e| invalid(path, format!("not a hex id: {e}")))
}

/// `bytesValue`: base64, standard or URL-safe alphabet, padded or not (all are allowed by the
/// proto3 JSON mapping).
fn base64_bytes(value: Value, path: &Path<'_>) -> Result<Vec<u8>, JsonError> {
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

    let text = string(value, path)?;
    let engine = if text.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
    engine.decode(text.as_bytes()).map_err(|e| invalid(path, format!("not base64: {e}")))
}

// ---------------------------------------------------------------------------------------------
// common.v1 and resource.v1
// ---------------------------------------------------------------------------------------------

fn attributes(value: Value, path: &Path<'_>) -> Result<Vec<KeyValue>, JsonError> {
    repeated(value, path, |v, p| key_value(v, p, 0))
}

fn key_value(value: Value, path: &Path<'_>, depth: usize) -> Result<KeyValue, JsonError> {
    let mut out = KeyValue::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "key" => out.key = string(v, &p)?,
            "value" => out.value = Some(any_value(v, &p, depth)?),
            "keyStrindex" | "key_strindex" => out.key_strindex = int32(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

/// `depth` counts the `arrayValue`/`kvlistValue` levels above this value; see
/// [`MAX_ANY_VALUE_DEPTH`].
fn any_value(value: Value, path: &Path<'_>, depth: usize) -> Result<AnyValue, JsonError> {
    if depth > MAX_ANY_VALUE_DEPTH {
        return Err(invalid(
            path,
            format!("attribute value nested more than {MAX_ANY_VALUE_DEPTH} levels deep"),
        ));
    }
    let mut one = OneOf::new(
        "stringValue, boolValue, intValue, doubleValue, arrayValue, kvlistValue, bytesValue",
    );
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        let member = match key.as_str() {
            "stringValue" | "string_value" => any_value::Value::StringValue(string(v, &p)?),
            "boolValue" | "bool_value" => any_value::Value::BoolValue(boolean(v, &p)?),
            "intValue" | "int_value" => any_value::Value::IntValue(int64(v, &p)?),
            "doubleValue" | "double_value" => any_value::Value::DoubleValue(double(v, &p)?),
            "bytesValue" | "bytes_value" => any_value::Value::BytesValue(base64_bytes(v, &p)?),
            "arrayValue" | "array_value" => {
                any_value::Value::ArrayValue(array_value(v, &p, depth + 1)?)
            }
            "kvlistValue" | "kvlist_value" => {
                any_value::Value::KvlistValue(kvlist_value(v, &p, depth + 1)?)
            }
            "stringValueStrindex" | "string_value_strindex" => {
                any_value::Value::StringValueStrindex(int32(v, &p)?)
            }
            _ => continue,
        };
        one.set(&p, member)?;
    }
    Ok(AnyValue { value: one.value })
}

fn array_value(value: Value, path: &Path<'_>, depth: usize) -> Result<ArrayValue, JsonError> {
    let mut out = ArrayValue::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        if key == "values" {
            out.values = repeated(v, &p, |v, p| any_value(v, p, depth))?;
        }
    }
    Ok(out)
}

fn kvlist_value(value: Value, path: &Path<'_>, depth: usize) -> Result<KeyValueList, JsonError> {
    let mut out = KeyValueList::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        if key == "values" {
            out.values = repeated(v, &p, |v, p| key_value(v, p, depth))?;
        }
    }
    Ok(out)
}

fn scope(value: Value, path: &Path<'_>) -> Result<InstrumentationScope, JsonError> {
    let mut out = InstrumentationScope::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "name" => out.name = string(v, &p)?,
            "version" => out.version = string(v, &p)?,
            "attributes" => out.attributes = attributes(v, &p)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = uint32(v, &p)?
            }
            _ => {}
        }
    }
    Ok(out)
}

fn resource(value: Value, path: &Path<'_>) -> Result<Resource, JsonError> {
    let mut out = Resource::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "attributes" => out.attributes = attributes(v, &p)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = uint32(v, &p)?
            }
            "entityRefs" | "entity_refs" => out.entity_refs = repeated(v, &p, entity_ref)?,
            _ => {}
        }
    }
    Ok(out)
}

fn entity_ref(value: Value, path: &Path<'_>) -> Result<EntityRef, JsonError> {
    let mut out = EntityRef::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            "type" => out.r#type = string(v, &p)?,
            "idKeys" | "id_keys" => out.id_keys = repeated(v, &p, string)?,
            "descriptionKeys" | "description_keys" => {
                out.description_keys = repeated(v, &p, string)?
            }
            _ => {}
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// metrics.v1
// ---------------------------------------------------------------------------------------------

fn temporality(value: Value, path: &Path<'_>) -> Result<i32, JsonError> {
    enumeration(value, path, "AggregationTemporality", |name| {
        AggregationTemporality::from_str_name(name).map(|e| e as i32)
    })
}

fn data_point_flags(value: Value, path: &Path<'_>) -> Result<u32, JsonError> {
    flags(value, path, "DataPointFlags", |name| {
        DataPointFlags::from_str_name(name).map(|e| e as i32)
    })
}

fn resource_metrics(value: Value, path: &Path<'_>) -> Result<ResourceMetrics, JsonError> {
    let mut out = ResourceMetrics::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "resource" => out.resource = Some(resource(v, &p)?),
            "scopeMetrics" | "scope_metrics" => out.scope_metrics = repeated(v, &p, scope_metrics)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn scope_metrics(value: Value, path: &Path<'_>) -> Result<ScopeMetrics, JsonError> {
    let mut out = ScopeMetrics::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "scope" => out.scope = Some(scope(v, &p)?),
            "metrics" => out.metrics = repeated(v, &p, metric)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn metric(value: Value, path: &Path<'_>) -> Result<Metric, JsonError> {
    let mut out = Metric::default();
    let mut data = OneOf::new("gauge, sum, histogram, exponentialHistogram, summary");
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "name" => out.name = string(v, &p)?,
            "description" => out.description = string(v, &p)?,
            "unit" => out.unit = string(v, &p)?,
            "metadata" => out.metadata = attributes(v, &p)?,
            "gauge" => data.set(&p, metric::Data::Gauge(gauge(v, &p)?))?,
            "sum" => data.set(&p, metric::Data::Sum(sum(v, &p)?))?,
            "histogram" => data.set(&p, metric::Data::Histogram(histogram(v, &p)?))?,
            "exponentialHistogram" | "exponential_histogram" => {
                data.set(&p, metric::Data::ExponentialHistogram(exponential_histogram(v, &p)?))?
            }
            "summary" => data.set(&p, metric::Data::Summary(summary(v, &p)?))?,
            _ => {}
        }
    }
    out.data = data.value;
    Ok(out)
}

fn gauge(value: Value, path: &Path<'_>) -> Result<Gauge, JsonError> {
    let mut out = Gauge::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        if key == "dataPoints" || key == "data_points" {
            out.data_points = repeated(v, &p, number_data_point)?;
        }
    }
    Ok(out)
}

fn sum(value: Value, path: &Path<'_>) -> Result<Sum, JsonError> {
    let mut out = Sum::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "dataPoints" | "data_points" => out.data_points = repeated(v, &p, number_data_point)?,
            "aggregationTemporality" | "aggregation_temporality" => {
                out.aggregation_temporality = temporality(v, &p)?
            }
            "isMonotonic" | "is_monotonic" => out.is_monotonic = boolean(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn histogram(value: Value, path: &Path<'_>) -> Result<Histogram, JsonError> {
    let mut out = Histogram::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "dataPoints" | "data_points" => {
                out.data_points = repeated(v, &p, histogram_data_point)?
            }
            "aggregationTemporality" | "aggregation_temporality" => {
                out.aggregation_temporality = temporality(v, &p)?
            }
            _ => {}
        }
    }
    Ok(out)
}

fn exponential_histogram(value: Value, path: &Path<'_>) -> Result<ExponentialHistogram, JsonError> {
    let mut out = ExponentialHistogram::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "dataPoints" | "data_points" => {
                out.data_points = repeated(v, &p, exponential_histogram_data_point)?
            }
            "aggregationTemporality" | "aggregation_temporality" => {
                out.aggregation_temporality = temporality(v, &p)?
            }
            _ => {}
        }
    }
    Ok(out)
}

fn summary(value: Value, path: &Path<'_>) -> Result<Summary, JsonError> {
    let mut out = Summary::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        if key == "dataPoints" || key == "data_points" {
            out.data_points = repeated(v, &p, summary_data_point)?;
        }
    }
    Ok(out)
}

fn number_data_point(value: Value, path: &Path<'_>) -> Result<NumberDataPoint, JsonError> {
    let mut out = NumberDataPoint::default();
    let mut number = OneOf::new("asDouble, asInt");
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "attributes" => out.attributes = attributes(v, &p)?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                out.start_time_unix_nano = uint64(v, &p)?
            }
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = uint64(v, &p)?,
            "asDouble" | "as_double" => {
                number.set(&p, number_data_point::Value::AsDouble(double(v, &p)?))?
            }
            "asInt" | "as_int" => number.set(&p, number_data_point::Value::AsInt(int64(v, &p)?))?,
            "flags" => out.flags = data_point_flags(v, &p)?,
            _ => {} // exemplars (see module docs) and unknown fields
        }
    }
    out.value = number.value;
    Ok(out)
}

fn histogram_data_point(value: Value, path: &Path<'_>) -> Result<HistogramDataPoint, JsonError> {
    let mut out = HistogramDataPoint::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "attributes" => out.attributes = attributes(v, &p)?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                out.start_time_unix_nano = uint64(v, &p)?
            }
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = uint64(v, &p)?,
            "count" => out.count = uint64(v, &p)?,
            "sum" => out.sum = Some(double(v, &p)?),
            "bucketCounts" | "bucket_counts" => out.bucket_counts = repeated(v, &p, uint64)?,
            "explicitBounds" | "explicit_bounds" => out.explicit_bounds = repeated(v, &p, double)?,
            "flags" => out.flags = data_point_flags(v, &p)?,
            "min" => out.min = Some(double(v, &p)?),
            "max" => out.max = Some(double(v, &p)?),
            _ => {} // exemplars (see module docs) and unknown fields
        }
    }
    Ok(out)
}

fn exponential_histogram_data_point(
    value: Value,
    path: &Path<'_>,
) -> Result<ExponentialHistogramDataPoint, JsonError> {
    let mut out = ExponentialHistogramDataPoint::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "attributes" => out.attributes = attributes(v, &p)?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                out.start_time_unix_nano = uint64(v, &p)?
            }
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = uint64(v, &p)?,
            "count" => out.count = uint64(v, &p)?,
            "sum" => out.sum = Some(double(v, &p)?),
            "scale" => out.scale = int32(v, &p)?,
            "zeroCount" | "zero_count" => out.zero_count = uint64(v, &p)?,
            "positive" => out.positive = Some(buckets(v, &p)?),
            "negative" => out.negative = Some(buckets(v, &p)?),
            "flags" => out.flags = data_point_flags(v, &p)?,
            "min" => out.min = Some(double(v, &p)?),
            "max" => out.max = Some(double(v, &p)?),
            "zeroThreshold" | "zero_threshold" => out.zero_threshold = double(v, &p)?,
            _ => {} // exemplars (see module docs) and unknown fields
        }
    }
    Ok(out)
}

fn buckets(
    value: Value,
    path: &Path<'_>,
) -> Result<exponential_histogram_data_point::Buckets, JsonError> {
    let mut out = exponential_histogram_data_point::Buckets::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "offset" => out.offset = int32(v, &p)?,
            "bucketCounts" | "bucket_counts" => out.bucket_counts = repeated(v, &p, uint64)?,
            _ => {}
        }
    }
    Ok(out)
}

fn summary_data_point(value: Value, path: &Path<'_>) -> Result<SummaryDataPoint, JsonError> {
    let mut out = SummaryDataPoint::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "attributes" => out.attributes = attributes(v, &p)?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                out.start_time_unix_nano = uint64(v, &p)?
            }
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = uint64(v, &p)?,
            "count" => out.count = uint64(v, &p)?,
            "sum" => out.sum = double(v, &p)?,
            "quantileValues" | "quantile_values" => {
                out.quantile_values = repeated(v, &p, value_at_quantile)?
            }
            "flags" => out.flags = data_point_flags(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn value_at_quantile(
    value: Value,
    path: &Path<'_>,
) -> Result<summary_data_point::ValueAtQuantile, JsonError> {
    let mut out = summary_data_point::ValueAtQuantile::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "quantile" => out.quantile = double(v, &p)?,
            "value" => out.value = double(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// logs.v1
// ---------------------------------------------------------------------------------------------

fn resource_logs(value: Value, path: &Path<'_>) -> Result<ResourceLogs, JsonError> {
    let mut out = ResourceLogs::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "resource" => out.resource = Some(resource(v, &p)?),
            "scopeLogs" | "scope_logs" => out.scope_logs = repeated(v, &p, scope_logs)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn scope_logs(value: Value, path: &Path<'_>) -> Result<ScopeLogs, JsonError> {
    let mut out = ScopeLogs::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "scope" => out.scope = Some(scope(v, &p)?),
            "logRecords" | "log_records" => out.log_records = repeated(v, &p, log_record)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn log_record(value: Value, path: &Path<'_>) -> Result<LogRecord, JsonError> {
    let mut out = LogRecord::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = uint64(v, &p)?,
            "observedTimeUnixNano" | "observed_time_unix_nano" => {
                out.observed_time_unix_nano = uint64(v, &p)?
            }
            "severityNumber" | "severity_number" => {
                out.severity_number = enumeration(v, &p, "SeverityNumber", |name| {
                    SeverityNumber::from_str_name(name).map(|e| e as i32)
                })?
            }
            "severityText" | "severity_text" => out.severity_text = string(v, &p)?,
            "body" => out.body = Some(any_value(v, &p, 0)?),
            "attributes" => out.attributes = attributes(v, &p)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = uint32(v, &p)?
            }
            "flags" => {
                out.flags = flags(v, &p, "LogRecordFlags", |name| {
                    LogRecordFlags::from_str_name(name).map(|e| e as i32)
                })?
            }
            "traceId" | "trace_id" => out.trace_id = hex_id(v, &p, 16)?,
            "spanId" | "span_id" => out.span_id = hex_id(v, &p, 8)?,
            "eventName" | "event_name" => out.event_name = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// trace.v1
// ---------------------------------------------------------------------------------------------

fn span_flags(value: Value, path: &Path<'_>) -> Result<u32, JsonError> {
    flags(value, path, "SpanFlags", |name| SpanFlags::from_str_name(name).map(|e| e as i32))
}

fn resource_spans(value: Value, path: &Path<'_>) -> Result<ResourceSpans, JsonError> {
    let mut out = ResourceSpans::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "resource" => out.resource = Some(resource(v, &p)?),
            "scopeSpans" | "scope_spans" => out.scope_spans = repeated(v, &p, scope_spans)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn scope_spans(value: Value, path: &Path<'_>) -> Result<ScopeSpans, JsonError> {
    let mut out = ScopeSpans::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "scope" => out.scope = Some(scope(v, &p)?),
            "spans" => out.spans = repeated(v, &p, span)?,
            "schemaUrl" | "schema_url" => out.schema_url = string(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn span(value: Value, path: &Path<'_>) -> Result<Span, JsonError> {
    let mut out = Span::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "traceId" | "trace_id" => out.trace_id = hex_id(v, &p, 16)?,
            "spanId" | "span_id" => out.span_id = hex_id(v, &p, 8)?,
            "traceState" | "trace_state" => out.trace_state = string(v, &p)?,
            "parentSpanId" | "parent_span_id" => out.parent_span_id = hex_id(v, &p, 8)?,
            "flags" => out.flags = span_flags(v, &p)?,
            "name" => out.name = string(v, &p)?,
            "kind" => {
                out.kind = enumeration(v, &p, "SpanKind", |name| {
                    span::SpanKind::from_str_name(name).map(|e| e as i32)
                })?
            }
            "startTimeUnixNano" | "start_time_unix_nano" => {
                out.start_time_unix_nano = uint64(v, &p)?
            }
            "endTimeUnixNano" | "end_time_unix_nano" => out.end_time_unix_nano = uint64(v, &p)?,
            "attributes" => out.attributes = attributes(v, &p)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = uint32(v, &p)?
            }
            "events" => out.events = repeated(v, &p, span_event)?,
            "droppedEventsCount" | "dropped_events_count" => {
                out.dropped_events_count = uint32(v, &p)?
            }
            "links" => out.links = repeated(v, &p, span_link)?,
            "droppedLinksCount" | "dropped_links_count" => out.dropped_links_count = uint32(v, &p)?,
            "status" => out.status = Some(span_status(v, &p)?),
            _ => {}
        }
    }
    Ok(out)
}

fn span_event(value: Value, path: &Path<'_>) -> Result<span::Event, JsonError> {
    let mut out = span::Event::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "timeUnixNano" | "time_unix_nano" => out.time_unix_nano = uint64(v, &p)?,
            "name" => out.name = string(v, &p)?,
            "attributes" => out.attributes = attributes(v, &p)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = uint32(v, &p)?
            }
            _ => {}
        }
    }
    Ok(out)
}

fn span_link(value: Value, path: &Path<'_>) -> Result<span::Link, JsonError> {
    let mut out = span::Link::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "traceId" | "trace_id" => out.trace_id = hex_id(v, &p, 16)?,
            "spanId" | "span_id" => out.span_id = hex_id(v, &p, 8)?,
            "traceState" | "trace_state" => out.trace_state = string(v, &p)?,
            "attributes" => out.attributes = attributes(v, &p)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                out.dropped_attributes_count = uint32(v, &p)?
            }
            "flags" => out.flags = span_flags(v, &p)?,
            _ => {}
        }
    }
    Ok(out)
}

fn span_status(value: Value, path: &Path<'_>) -> Result<Status, JsonError> {
    let mut out = Status::default();
    for (key, v) in object(value, path)? {
        if v.is_null() {
            continue;
        }
        let p = path.key(&key);
        match key.as_str() {
            "message" => out.message = string(v, &p)?,
            "code" => {
                out.code = enumeration(v, &p, "StatusCode", |name| {
                    status::StatusCode::from_str_name(name).map(|e| e as i32)
                })?
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::float_cmp
)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read as _;
    use std::path::PathBuf;

    use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
    use prost::Message as _;
    use serde_json::json;

    // -----------------------------------------------------------------------------------------
    // Fixture helpers
    // -----------------------------------------------------------------------------------------

    fn fixtures_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/claude-code")
    }

    /// Every fixture folder (one capture run each), sorted by name.
    fn fixture_sets() -> Vec<PathBuf> {
        let mut sets: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
            .expect("fixtures folder must exist")
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("index.jsonl").is_file())
            .collect();
        sets.sort();
        assert!(sets.len() >= 7, "expected the 7 fixture sets, found {sets:?}");
        sets
    }

    fn read_json(path: &std::path::Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn index(set: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(set.join("index.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    enum Request {
        Metrics(ExportMetricsServiceRequest),
        Logs(ExportLogsServiceRequest),
    }

    /// Loads one request of a set: JSON bodies through this module, protobuf bodies through
    /// prost (they serve as an independent reference for the checks on `expected.json`).
    fn load(set: &std::path::Path, entry: &serde_json::Value) -> Request {
        let file = entry["file"].as_str().unwrap();
        let mut bytes = std::fs::read(set.join(file)).unwrap();
        if file.ends_with(".gz") {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut raw).unwrap();
            bytes = raw;
        }
        let json = file.ends_with(".json");
        let what = format!("{}/{file}", set.display());
        match entry["signal"].as_str().unwrap() {
            "metrics" if json => {
                Request::Metrics(decode_metrics(&bytes).unwrap_or_else(|e| panic!("{what}: {e}")))
            }
            "metrics" => Request::Metrics(ExportMetricsServiceRequest::decode(&*bytes).unwrap()),
            "logs" if json => {
                Request::Logs(decode_logs(&bytes).unwrap_or_else(|e| panic!("{what}: {e}")))
            }
            "logs" => Request::Logs(ExportLogsServiceRequest::decode(&*bytes).unwrap()),
            other => panic!("unexpected signal {other}"),
        }
    }

    fn metrics_of(
        req: &ExportMetricsServiceRequest,
    ) -> impl Iterator<Item = (&ResourceMetrics, &ScopeMetrics, &Metric)> {
        req.resource_metrics.iter().flat_map(|rm| {
            rm.scope_metrics.iter().flat_map(move |sm| sm.metrics.iter().map(move |m| (rm, sm, m)))
        })
    }

    fn records_of(req: &ExportLogsServiceRequest) -> impl Iterator<Item = &LogRecord> {
        req.resource_logs
            .iter()
            .flat_map(|rl| rl.scope_logs.iter().flat_map(|sl| sl.log_records.iter()))
    }

    fn body_text(record: &LogRecord) -> String {
        match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Av::StringValue(s)) => s.clone(),
            other => panic!("log body is not a string: {other:?}"),
        }
    }

    /// What `index.jsonl` calls `names`: metric names, or event names (log bodies).
    fn names(request: &Request) -> Vec<String> {
        match request {
            Request::Metrics(req) => metrics_of(req).map(|(_, _, m)| m.name.clone()).collect(),
            Request::Logs(req) => records_of(req).map(body_text).collect(),
        }
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Av> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn number(dp: &NumberDataPoint) -> f64 {
        match dp.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => panic!("data point without a value"),
        }
    }

    fn close(actual: f64, expected: f64) -> bool {
        actual == expected || (actual - expected).abs() <= 1e-9 * actual.abs().max(expected.abs())
    }

    /// Per metric name: (number of values added, total), following the rules of the fixtures'
    /// README: delta points are all added, of a cumulative series only the latest point counts.
    fn metric_totals(requests: &[Request]) -> BTreeMap<String, (u64, f64)> {
        let mut delta: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        // series key -> (metric name, time, value)
        let mut latest: BTreeMap<String, (String, u64, f64)> = BTreeMap::new();
        for request in requests {
            let Request::Metrics(req) = request else {
                continue;
            };
            for (rm, sm, m) in metrics_of(req) {
                let Some(metric::Data::Sum(sum)) = &m.data else {
                    panic!("{}: Claude Code only sends sums", m.name)
                };
                for dp in &sum.data_points {
                    if sum.aggregation_temporality == AggregationTemporality::Cumulative as i32 {
                        let series = format!(
                            "{:?}|{:?}|{}|{:?}|{}",
                            rm.resource.as_ref().map(|r| &r.attributes),
                            sm.scope.as_ref().map(|s| (&s.name, &s.version)),
                            m.name,
                            dp.attributes,
                            dp.start_time_unix_nano
                        );
                        let slot = latest.entry(series).or_insert((m.name.clone(), 0, 0.0));
                        if dp.time_unix_nano >= slot.1 {
                            *slot = (m.name.clone(), dp.time_unix_nano, number(dp));
                        }
                    } else {
                        assert_eq!(
                            sum.aggregation_temporality,
                            AggregationTemporality::Delta as i32
                        );
                        let slot = delta.entry(m.name.clone()).or_default();
                        slot.0 += 1;
                        slot.1 += number(dp);
                    }
                }
            }
        }
        for (name, _, value) in latest.into_values() {
            let slot = delta.entry(name).or_default();
            slot.0 += 1;
            slot.1 += value;
        }
        delta
    }

    fn load_set(set: &std::path::Path) -> Vec<Request> {
        index(set).iter().map(|entry| load(set, entry)).collect()
    }

    // -----------------------------------------------------------------------------------------
    // Fixture tests
    // -----------------------------------------------------------------------------------------

    /// Every `NNNN_metrics.json` / `NNNN_logs.json` body of every folder decodes, and what it
    /// contains is exactly what `index.jsonl` lists under `names`, in the same order.
    #[test]
    fn every_fixture_json_body_decodes_and_matches_index() {
        let mut decoded = 0;
        for set in fixture_sets() {
            let entries = index(&set);
            let mut bodies: Vec<String> = std::fs::read_dir(&set)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with("_metrics.json") || n.ends_with("_logs.json"))
                .collect();
            bodies.sort();
            let indexed: Vec<&str> = entries
                .iter()
                .map(|e| e["file"].as_str().unwrap())
                .filter(|f| f.ends_with(".json"))
                .collect();
            assert_eq!(bodies, indexed, "{}: bodies vs index.jsonl", set.display());
            for entry in entries.iter().filter(|e| e["file"].as_str().unwrap().ends_with(".json")) {
                let request = load(&set, entry);
                let expected: Vec<String> = entry["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(names(&request), expected, "{}: {}", set.display(), entry["file"]);
                decoded += 1;
            }
        }
        // 10 + 12 + 10 + 4 request bodies in the four JSON sets.
        assert_eq!(decoded, 36);
    }

    /// Every metric total, number of values, event count and `api_request` sum of
    /// `expected.json`, recomputed from the decoded requests of every folder (protobuf folders
    /// too, as a check on the computation itself).
    #[test]
    fn fixture_totals_match_expected_json() {
        for set in fixture_sets() {
            let expected = read_json(&set.join("expected.json"));
            let requests = load_set(&set);
            let what = set.display().to_string();

            let totals = metric_totals(&requests);
            let expected_metrics = expected["metrics"].as_object().unwrap();
            assert_eq!(
                totals.keys().collect::<Vec<_>>(),
                expected_metrics.keys().collect::<Vec<_>>(),
                "{what}: metric names"
            );
            for (name, exp) in expected_metrics {
                let (count, total) = totals[name];
                assert_eq!(count, exp["values_summed"].as_u64().unwrap(), "{what}: {name} count");
                let want = exp["total"].as_f64().unwrap();
                assert!(close(total, want), "{what}: {name} total {total} != {want}");
            }

            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let (mut api_count, mut cost, mut input, mut output) = (0u64, 0.0f64, 0i64, 0i64);
            let (mut cache_read, mut cache_creation) = (0i64, 0i64);
            for request in &requests {
                let Request::Logs(req) = request else {
                    continue;
                };
                for record in records_of(req) {
                    let name = body_text(record);
                    if name == "claude_code.api_request" {
                        let int = |key| match attr(&record.attributes, key) {
                            Some(Av::IntValue(i)) => *i,
                            other => panic!("{what}: {key} = {other:?}"),
                        };
                        api_count += 1;
                        cost += match attr(&record.attributes, "cost_usd") {
                            Some(Av::DoubleValue(d)) => *d,
                            Some(Av::IntValue(i)) => *i as f64,
                            other => panic!("{what}: cost_usd = {other:?}"),
                        };
                        input += int("input_tokens");
                        output += int("output_tokens");
                        cache_read += int("cache_read_tokens");
                        cache_creation += int("cache_creation_tokens");
                    }
                    *counts.entry(name).or_default() += 1;
                }
            }
            let expected_counts: BTreeMap<String, u64> = expected["events"]["counts"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect();
            assert_eq!(counts, expected_counts, "{what}: event counts");
            let api = &expected["events"]["api_request"];
            assert_eq!(api_count, api["count"].as_u64().unwrap(), "{what}");
            assert!(close(cost, api["cost_usd"].as_f64().unwrap()), "{what}: cost_usd {cost}");
            assert_eq!(input, api["input_tokens"].as_i64().unwrap(), "{what}");
            assert_eq!(output, api["output_tokens"].as_i64().unwrap(), "{what}");
            assert_eq!(cache_read, api["cache_read_tokens"].as_i64().unwrap(), "{what}");
            assert_eq!(cache_creation, api["cache_creation_tokens"].as_i64().unwrap(), "{what}");
        }
    }

    /// The sum named in the brief, spelled out: all `claude_code.cost.usage` `asDouble` points of
    /// the JSON metric bodies of `http-json-delta` add up to `expected.json`'s total.
    #[test]
    fn http_json_delta_cost_usage_sums_to_expected_total() {
        let set = fixtures_root().join("http-json-delta");
        let expected = read_json(&set.join("expected.json"));
        let want = expected["metrics"]["claude_code.cost.usage"]["total"].as_f64().unwrap();
        let mut total = 0.0;
        let mut points = 0;
        for entry in index(&set) {
            let file = entry["file"].as_str().unwrap();
            if !file.ends_with("_metrics.json") {
                continue;
            }
            let req = decode_metrics(&std::fs::read(set.join(file)).unwrap()).unwrap();
            for (_, _, m) in metrics_of(&req).filter(|(_, _, m)| m.name == "claude_code.cost.usage")
            {
                let Some(metric::Data::Sum(sum)) = &m.data else { panic!("not a sum") };
                for dp in &sum.data_points {
                    let Some(number_data_point::Value::AsDouble(d)) = dp.value else {
                        panic!("cost is not asDouble: {:?}", dp.value)
                    };
                    total += d;
                    points += 1;
                }
            }
        }
        assert!(points >= 4, "only {points} cost points");
        assert!(close(total, want), "{total} != {want}");
    }

    fn kind(value: Option<&AnyValue>) -> &'static str {
        match value.and_then(|v| v.value.as_ref()) {
            None => "empty",
            Some(Av::StringValue(_)) => "string",
            Some(Av::BoolValue(_)) => "bool",
            Some(Av::IntValue(_)) => "int",
            Some(Av::DoubleValue(_)) => "double",
            Some(Av::ArrayValue(_)) => "array",
            Some(Av::KvlistValue(_)) => "kvlist",
            Some(Av::BytesValue(_)) => "bytes",
            Some(Av::StringValueStrindex(_)) => "strindex",
        }
    }

    fn attr_shape(attrs: &[KeyValue]) -> String {
        attrs
            .iter()
            .map(|kv| format!("{}:{}", kv.key, kind(kv.value.as_ref())))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Everything of a request that does not depend on the run (ids, timestamps, durations and
    /// the active time differ between two runs of the same scenario; names, attribute keys and
    /// types, enums, and the scripted token counts and costs do not).
    fn shape(request: &Request) -> Vec<String> {
        let mut out = Vec::new();
        match request {
            Request::Metrics(req) => {
                for rm in &req.resource_metrics {
                    let res = rm.resource.as_ref().map(|r| attr_shape(&r.attributes));
                    out.push(format!("resource {res:?} {}", rm.schema_url));
                    for sm in &rm.scope_metrics {
                        out.push(format!(
                            "scope {:?}",
                            sm.scope.as_ref().map(|s| (&s.name, &s.version))
                        ));
                        for m in &sm.metrics {
                            let Some(metric::Data::Sum(sum)) = &m.data else { panic!() };
                            out.push(format!(
                                "metric {} {:?} {:?} t={} mono={}",
                                m.name,
                                m.unit,
                                m.description,
                                sum.aggregation_temporality,
                                sum.is_monotonic
                            ));
                            for dp in &sum.data_points {
                                let value = if m.name == "claude_code.active_time.total" {
                                    String::from("(varies)")
                                } else {
                                    format!("{:?}", dp.value)
                                };
                                out.push(format!(
                                    "  point {} flags={} start>0={} time>=start={} {value}",
                                    attr_shape(&dp.attributes),
                                    dp.flags,
                                    dp.start_time_unix_nano > 0,
                                    dp.time_unix_nano >= dp.start_time_unix_nano,
                                ));
                            }
                        }
                    }
                }
            }
            Request::Logs(req) => {
                for rl in &req.resource_logs {
                    let res = rl.resource.as_ref().map(|r| attr_shape(&r.attributes));
                    out.push(format!("resource {res:?} {}", rl.schema_url));
                    for sl in &rl.scope_logs {
                        out.push(format!(
                            "scope {:?}",
                            sl.scope.as_ref().map(|s| (&s.name, &s.version))
                        ));
                        for r in &sl.log_records {
                            out.push(format!(
                                "record {} sev={} {:?} flags={} ids={}/{} time={} {}",
                                body_text(r),
                                r.severity_number,
                                r.severity_text,
                                r.flags,
                                r.trace_id.len(),
                                r.span_id.len(),
                                r.time_unix_nano == r.observed_time_unix_nano,
                                attr_shape(&r.attributes)
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// `http-protobuf-delta` ran the same scenarios as `http-json-delta`: request by request
    /// (matched on signal and scenario), the JSON decoding must have the same structure and the
    /// same deterministic values as the protobuf decoding.
    #[test]
    fn json_and_protobuf_runs_of_the_same_scenarios_have_the_same_shape() {
        let by_scenario = |name: &str| -> BTreeMap<(String, String), Vec<Vec<String>>> {
            let set = fixtures_root().join(name);
            let mut out: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
            for entry in index(&set) {
                let key = (
                    entry["signal"].as_str().unwrap().to_owned(),
                    entry["scenario"].as_str().unwrap().to_owned(),
                );
                out.entry(key).or_default().push(shape(&load(&set, &entry)));
            }
            out
        };
        let json = by_scenario("http-json-delta");
        let protobuf = by_scenario("http-protobuf-delta");
        assert_eq!(json.len(), 10);
        assert_eq!(json.keys().collect::<Vec<_>>(), protobuf.keys().collect::<Vec<_>>());
        for (key, shapes) in &json {
            assert_eq!(
                shapes, &protobuf[key],
                "{key:?} (values one ULP apart? see `doubles_are_parsed_exactly`)"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Targeted tests
    // -----------------------------------------------------------------------------------------

    const POINT_PATH: &str = "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0]";
    const RECORD_PATH: &str = "resourceLogs[0].scopeLogs[0].logRecords[0]";

    /// A metrics body with one sum metric holding `point`.
    fn sum_body(point: serde_json::Value) -> Vec<u8> {
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "m", "sum": {"aggregationTemporality": 1, "dataPoints": [point]}}
        ]}]}]})
        .to_string()
        .into_bytes()
    }

    fn point(body: &[u8]) -> Result<NumberDataPoint, JsonError> {
        let req = decode_metrics(body)?;
        let (_, _, m) = metrics_of(&req).next().unwrap();
        let Some(metric::Data::Sum(sum)) = &m.data else { panic!("not a sum") };
        Ok(sum.data_points[0].clone())
    }

    /// A logs body with one record.
    fn log_body(record: serde_json::Value) -> Vec<u8> {
        json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]})
            .to_string()
            .into_bytes()
    }

    fn record(body: &[u8]) -> Result<LogRecord, JsonError> {
        Ok(records_of(&decode_logs(body)?).next().unwrap().clone())
    }

    /// Decodes `value` as the value of a log attribute.
    fn attribute(value: serde_json::Value) -> Result<Option<Av>, JsonError> {
        let r = record(&log_body(json!({"attributes": [{"key": "k", "value": value}]})))?;
        Ok(r.attributes[0].value.as_ref().unwrap().value.clone())
    }

    fn path_of(result: Result<impl std::fmt::Debug, JsonError>) -> String {
        result.expect_err("expected an error").path().unwrap().to_owned()
    }

    #[test]
    fn int64_fields_accept_strings_and_numbers() {
        for t in [json!("1795330083098000000"), json!(1795330083098000000u64)] {
            let dp = point(&sum_body(json!({"timeUnixNano": t, "startTimeUnixNano": t}))).unwrap();
            assert_eq!(dp.time_unix_nano, 1_795_330_083_098_000_000);
            assert_eq!(dp.start_time_unix_nano, 1_795_330_083_098_000_000);
        }
        // The full uint64 range, exponent form, integral fractions.
        let dp = point(&sum_body(json!({"timeUnixNano": "18446744073709551615"}))).unwrap();
        assert_eq!(dp.time_unix_nano, u64::MAX);
        let dp = point(&sum_body(json!({"timeUnixNano": 1e3}))).unwrap();
        assert_eq!(dp.time_unix_nano, 1000);
        let dp = point(&sum_body(json!({"timeUnixNano": "2.0"}))).unwrap();
        assert_eq!(dp.time_unix_nano, 2);

        for v in [json!("-42"), json!(-42)] {
            let dp = point(&sum_body(json!({"asInt": v}))).unwrap();
            assert_eq!(dp.value, Some(number_data_point::Value::AsInt(-42)));
            assert_eq!(attribute(json!({"intValue": v})).unwrap(), Some(Av::IntValue(-42)));
        }
        let dp = point(&sum_body(json!({"asInt": "-9223372036854775808"}))).unwrap();
        assert_eq!(dp.value, Some(number_data_point::Value::AsInt(i64::MIN)));
        assert_eq!(attribute(json!({"intValue": 5.0})).unwrap(), Some(Av::IntValue(5)));
    }

    #[test]
    fn int64_fields_reject_fractions_and_out_of_range_values_naming_the_path() {
        let time = format!("{POINT_PATH}.timeUnixNano");
        for bad in [
            json!("18446744073709551616"),
            json!(18446744073709551616.0),
            json!(-1),
            json!("-1"),
            json!(1.5),
            json!("1.5"),
            json!("12abc"),
            json!(""),
            json!(" 1"),
            json!("NaN"),
            json!("Infinity"),
        ] {
            let result = point(&sum_body(json!({"timeUnixNano": bad})));
            assert_eq!(path_of(result), time, "{bad}");
        }
        for bad in [json!(true), json!([1]), json!({"v": 1})] {
            let err = point(&sum_body(json!({"timeUnixNano": bad}))).unwrap_err();
            assert!(matches!(err, JsonError::WrongType { .. }), "{err}");
        }
        let err = point(&sum_body(json!({"asInt": "9223372036854775808"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{POINT_PATH}.asInt: string \"9223372036854775808\" is out of range for int64")
        );
        let err = point(&sum_body(json!({"timeUnixNano": -5}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{POINT_PATH}.timeUnixNano: number -5 is out of range for uint64")
        );
        // u32 fields are range-checked too.
        let err = record(&log_body(json!({"droppedAttributesCount": 4294967296u64}))).unwrap_err();
        assert_eq!(err.path(), Some(&*format!("{RECORD_PATH}.droppedAttributesCount")));
    }

    #[test]
    fn fractional_int_value_is_an_error_with_its_path() {
        let body = log_body(json!({"attributes": [
            {"key": "fine", "value": {"intValue": 3}},
            {"key": "bad", "value": {"intValue": 1.5}}
        ]}));
        let err = decode_logs(&body).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{RECORD_PATH}.attributes[1].value.intValue: number 1.5 is not an integer")
        );
    }

    #[test]
    fn doubles_accept_numbers_special_strings_and_numeric_strings() {
        let value = |v| point(&sum_body(json!({"asDouble": v}))).unwrap().value;
        let as_double = |v| match value(v) {
            Some(number_data_point::Value::AsDouble(d)) => d,
            other => panic!("{other:?}"),
        };
        assert!(as_double(json!("NaN")).is_nan());
        assert_eq!(as_double(json!("Infinity")), f64::INFINITY);
        assert_eq!(as_double(json!("-Infinity")), f64::NEG_INFINITY);
        assert_eq!(as_double(json!("0.25")), 0.25);
        assert_eq!(as_double(json!("-1e-3")), -0.001);
        assert_eq!(as_double(json!(1)), 1.0);
        assert_eq!(as_double(json!(u64::MAX)), u64::MAX as f64);
        match attribute(json!({"doubleValue": "NaN"})).unwrap() {
            Some(Av::DoubleValue(d)) => assert!(d.is_nan()),
            other => panic!("{other:?}"),
        }
    }

    /// Claude Code writes costs like `0.059699999999999996`; serde_json's default float parser
    /// is only "best effort" and returns the neighbouring double (`0.0597`), so the same request
    /// would store a different value over http/json than over http/protobuf. The workspace must
    /// enable serde_json's `float_roundtrip` feature for this test to pass.
    #[test]
    fn doubles_are_parsed_exactly() {
        for text in ["0.059699999999999996", "0.019299999999999998", "0.013300000000000003", "0.1"]
        {
            let expected: f64 = text.parse().unwrap();
            let body = format!("{{\"resourceMetrics\":[{{\"scopeMetrics\":[{{\"metrics\":[{{\"sum\":{{\"dataPoints\":[{{\"asDouble\":{text}}}]}}}}]}}]}}]}}");
            let value = point(body.as_bytes()).unwrap().value;
            assert_eq!(
                value,
                Some(number_data_point::Value::AsDouble(expected)),
                "{text} was not parsed exactly: enable the `float_roundtrip` feature of serde_json"
            );
        }
    }

    #[test]
    fn doubles_reject_non_proto_spellings() {
        for bad in
            [json!("nan"), json!("inf"), json!("infinity"), json!("1e999"), json!("x"), json!("")]
        {
            let err = point(&sum_body(json!({"asDouble": bad}))).unwrap_err();
            assert_eq!(err.path(), Some(&*format!("{POINT_PATH}.asDouble")), "{bad}");
        }
        let err = point(&sum_body(json!({"asDouble": false}))).unwrap_err();
        assert!(matches!(err, JsonError::WrongType { .. }));
    }

    #[test]
    fn enums_accept_names_and_numbers() {
        let temporality = |t: serde_json::Value| {
            let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
                {"name": "m", "sum": {"aggregationTemporality": t, "isMonotonic": true}}
            ]}]}]});
            let req = decode_metrics(body.to_string().as_bytes()).unwrap();
            let (_, _, m) = metrics_of(&req).next().unwrap();
            let Some(metric::Data::Sum(sum)) = &m.data else { panic!() };
            assert!(sum.is_monotonic);
            sum.aggregation_temporality
        };
        assert_eq!(temporality(json!(1)), 1);
        assert_eq!(temporality(json!("AGGREGATION_TEMPORALITY_DELTA")), 1);
        assert_eq!(temporality(json!(2)), 2);
        assert_eq!(temporality(json!("AGGREGATION_TEMPORALITY_CUMULATIVE")), 2);
        assert_eq!(temporality(json!("aggregation_temporality_cumulative")), 2);
        assert_eq!(temporality(json!("2")), 2);
        // Open enums: an unknown number is kept, as protobuf does.
        assert_eq!(temporality(json!(7)), 7);

        let severity = |s| record(&log_body(json!({"severityNumber": s}))).unwrap().severity_number;
        assert_eq!(severity(json!("SEVERITY_NUMBER_INFO")), 9);
        assert_eq!(severity(json!(17)), 17);
        assert_eq!(severity(json!("SEVERITY_NUMBER_FATAL4")), 24);

        let flags = |f| point(&sum_body(json!({"flags": f}))).unwrap().flags;
        assert_eq!(flags(json!("DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK")), 1);
        assert_eq!(flags(json!(1)), 1);
        assert_eq!(
            record(&log_body(json!({"flags": "LOG_RECORD_FLAGS_TRACE_FLAGS_MASK"}))).unwrap().flags,
            255
        );
    }

    #[test]
    fn unknown_enum_names_are_errors() {
        let err = record(&log_body(json!({"severityNumber": "SEVERITY_NUMBER_LOUD"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{RECORD_PATH}.severityNumber: string \"SEVERITY_NUMBER_LOUD\" is not a SeverityNumber name")
        );
        let err = point(&sum_body(json!({"flags": "LOUD"}))).unwrap_err();
        assert_eq!(err.path(), Some(&*format!("{POINT_PATH}.flags")));
        let err = record(&log_body(json!({"severityNumber": 1.5}))).unwrap_err();
        assert_eq!(err.path(), Some(&*format!("{RECORD_PATH}.severityNumber")));
        let err = record(&log_body(json!({"severityNumber": 4294967296u64}))).unwrap_err();
        assert_eq!(err.path(), Some(&*format!("{RECORD_PATH}.severityNumber")));
    }

    #[test]
    fn hex_ids_decode_in_either_case() {
        let r = record(&log_body(json!({
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "eee19b7ec3c1b174",
            "flags": 1
        })))
        .unwrap();
        assert_eq!(hex::encode(&r.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(r.span_id, vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]);
        assert_eq!(r.flags, 1);
        let r = record(&log_body(json!({"traceId": "", "spanId": ""}))).unwrap();
        assert!(r.trace_id.is_empty() && r.span_id.is_empty());
    }

    #[test]
    fn bad_hex_ids_are_rejected() {
        for (field, bad) in [
            ("traceId", json!("5b8efff798038103d269b633813fc60")), // 31 digits
            ("traceId", json!("5b8efff798038103")),                // a span id's length
            ("traceId", json!("W4795/eAOBAtJpttjOBP8YA==")),       // base64
            ("spanId", json!("eee19b7ec3c1b17g")),                 // not hex
            ("spanId", json!("eee19b7ec3c1b1745")),                // odd length
            ("spanId", json!("ééé19b7ec3c1b1")),                   // multi-byte characters
            ("spanId", json!(12345)),                              // not a string
        ] {
            let err = record(&log_body(json!({ field: bad }))).unwrap_err();
            assert_eq!(err.path(), Some(&*format!("{RECORD_PATH}.{field}")), "{bad}: {err}");
        }
        let err = record(&log_body(json!({"spanId": "eee19b7ec3c1b17g"}))).unwrap_err();
        assert!(err.to_string().contains("not a hex id"), "{err}");
    }

    #[test]
    fn snake_case_field_names_are_accepted() {
        let body = json!({"resource_metrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "svc"}}],
                         "dropped_attributes_count": "2"},
            "schema_url": "https://example.invalid/s",
            "scope_metrics": [{"scope": {"name": "sc", "version": "1"}, "metrics": [
                {"name": "s", "sum": {"aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA",
                                      "is_monotonic": true,
                                      "data_points": [{"start_time_unix_nano": "1", "time_unix_nano": 2,
                                                       "as_int": "3"}]}},
                {"name": "h", "histogram": {"aggregation_temporality": 2, "data_points": [
                    {"count": "3", "bucket_counts": ["1", 2], "explicit_bounds": [1.5]}]}},
                {"name": "e", "exponential_histogram": {"data_points": [
                    {"zero_count": 1, "zero_threshold": 0.5, "positive": {"offset": -2, "bucket_counts": [4]}}]}},
                {"name": "q", "summary": {"data_points": [
                    {"quantile_values": [{"quantile": 0.5, "value": 10}]}]}}
            ]}]
        }]});
        let req = decode_metrics(body.to_string().as_bytes()).unwrap();
        let rm = &req.resource_metrics[0];
        assert_eq!(rm.schema_url, "https://example.invalid/s");
        let res = rm.resource.as_ref().unwrap();
        assert_eq!(res.dropped_attributes_count, 2);
        assert_eq!(attr(&res.attributes, "service.name"), Some(&Av::StringValue("svc".into())));
        let metrics = &rm.scope_metrics[0].metrics;
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else { panic!() };
        assert_eq!(sum.aggregation_temporality, 1);
        assert!(sum.is_monotonic);
        let dp = &sum.data_points[0];
        assert_eq!((dp.start_time_unix_nano, dp.time_unix_nano), (1, 2));
        assert_eq!(dp.value, Some(number_data_point::Value::AsInt(3)));
        let Some(metric::Data::Histogram(h)) = &metrics[1].data else { panic!() };
        assert_eq!(h.aggregation_temporality, 2);
        assert_eq!(h.data_points[0].bucket_counts, vec![1, 2]);
        let Some(metric::Data::ExponentialHistogram(e)) = &metrics[2].data else { panic!() };
        assert_eq!(e.data_points[0].zero_count, 1);
        assert_eq!(e.data_points[0].positive.as_ref().unwrap().offset, -2);
        let Some(metric::Data::Summary(s)) = &metrics[3].data else { panic!() };
        assert_eq!(s.data_points[0].quantile_values[0].value, 10.0);

        // Errors name the spelling the sender used.
        let body = json!({"resource_logs": [{"scope_logs": [{"log_records": [{"time_unix_nano": "x"}]}]}]});
        let err = decode_logs(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.path(),
            Some("resource_logs[0].scope_logs[0].log_records[0].time_unix_nano")
        );
    }

    #[test]
    fn any_value_kinds() {
        assert_eq!(
            attribute(json!({"stringValue": "x"})).unwrap(),
            Some(Av::StringValue("x".into()))
        );
        assert_eq!(attribute(json!({"boolValue": false})).unwrap(), Some(Av::BoolValue(false)));
        assert_eq!(attribute(json!({"doubleValue": 2})).unwrap(), Some(Av::DoubleValue(2.0)));
        assert_eq!(attribute(json!({})).unwrap(), None);
        assert_eq!(attribute(json!({"stringValue": null})).unwrap(), None);
        for b64 in ["/+8=", "/+8", "_-8=", "_-8"] {
            let v = attribute(json!({"bytesValue": b64})).unwrap();
            assert_eq!(v, Some(Av::BytesValue(vec![0xff, 0xef])), "{b64}");
        }
        assert_eq!(attribute(json!({"bytesValue": ""})).unwrap(), Some(Av::BytesValue(vec![])));
        let err = attribute(json!({"bytesValue": "not base64!"})).unwrap_err();
        assert_eq!(err.path(), Some(&*format!("{RECORD_PATH}.attributes[0].value.bytesValue")));

        let v = attribute(
            json!({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "7"}, {}]}}),
        );
        let Some(Av::ArrayValue(a)) = v.unwrap() else { panic!() };
        assert_eq!(a.values.len(), 3);
        assert_eq!(a.values[1].value, Some(Av::IntValue(7)));
        assert_eq!(a.values[2].value, None);
        let Some(Av::ArrayValue(a)) = attribute(json!({"arrayValue": {}})).unwrap() else {
            panic!()
        };
        assert!(a.values.is_empty());

        let v = attribute(json!({"kvlistValue": {"values": [
            {"key": "inner", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"boolValue": true}}]}}},
            {"key": "novalue"}
        ]}}));
        let Some(Av::KvlistValue(kv)) = v.unwrap() else { panic!() };
        assert_eq!(kv.values[0].key, "inner");
        assert!(kv.values[1].value.is_none());
        let Some(Av::KvlistValue(inner)) = kv.values[0].value.as_ref().unwrap().value.as_ref()
        else {
            panic!()
        };
        assert_eq!(attr(&inner.values, "x"), Some(&Av::BoolValue(true)));

        // A key-value without "value" has no value at all; with `{}` an empty one.
        let r = record(&log_body(json!({"attributes": [{"key": "a"}, {"key": "b", "value": {}}]})))
            .unwrap();
        assert!(r.attributes[0].value.is_none());
        assert_eq!(r.attributes[1].value, Some(AnyValue { value: None }));
    }

    #[test]
    fn two_members_of_a_oneof_are_rejected() {
        let err = attribute(json!({"stringValue": "a", "intValue": 1})).unwrap_err();
        assert!(err.to_string().contains("only one of"), "{err}");
        let err = point(&sum_body(json!({"asDouble": 1, "asInt": 1}))).unwrap_err();
        assert!(err.path().unwrap().starts_with(POINT_PATH), "{err}");
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "m", "gauge": {}, "sum": {}}]}]}]});
        let err = decode_metrics(body.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("only one of gauge, sum"), "{err}");
    }

    #[test]
    fn unknown_fields_and_nulls_are_ignored() {
        let body = json!({
            "resourceLogs": [{
                "resource": null,
                "futureField": {"anything": [1, 2, {"x": null}]},
                "scopeLogs": [{"scope": null, "logRecords": [{
                    "timeUnixNano": null,
                    "body": {"stringValue": "b", "futureKind": 1},
                    "attributes": null,
                    "eventName": "ev",
                    "nested": {"deep": "ignored"}
                }]}]
            }],
            "somethingElse": true
        });
        let req = decode_logs(body.to_string().as_bytes()).unwrap();
        assert!(req.resource_logs[0].resource.is_none());
        let r = records_of(&req).next().unwrap();
        assert_eq!(r.time_unix_nano, 0);
        assert_eq!(body_text(r), "b");
        assert_eq!(r.event_name, "ev");
        assert!(r.attributes.is_empty());
        assert_eq!(decode_metrics(b"{}").unwrap(), ExportMetricsServiceRequest::default());
        assert_eq!(
            decode_logs(b"{\"resourceLogs\":null}").unwrap(),
            ExportLogsServiceRequest::default()
        );
    }

    #[test]
    fn exemplars_are_skipped_even_when_malformed() {
        let dp = point(&sum_body(json!({
            "asDouble": 1.5,
            "exemplars": [{"traceId": "not hex", "asInt": 1.5, "timeUnixNano": "x"}, "garbage"]
        })))
        .unwrap();
        assert_eq!(dp.value, Some(number_data_point::Value::AsDouble(1.5)));
        assert!(dp.exemplars.is_empty());
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "h", "histogram": {"dataPoints": [{"count": 1, "exemplars": 42}]}}]}]}]});
        assert!(decode_metrics(body.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn histogram_and_friends_decode_fully() {
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "g", "gauge": {"dataPoints": [{"asInt": 4, "timeUnixNano": "10"}]}},
            {"name": "h", "unit": "ms", "histogram": {
                "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "dataPoints": [{
                    "attributes": [{"key": "route", "value": {"stringValue": "/"}}],
                    "startTimeUnixNano": "1", "timeUnixNano": "2",
                    "count": "6", "sum": 21.5, "min": "0.5", "max": "Infinity",
                    "bucketCounts": ["1", 2, "3"], "explicitBounds": [1, "2.5"],
                    "flags": 0
                }]}},
            {"name": "e", "exponentialHistogram": {"aggregationTemporality": 1, "dataPoints": [{
                "count": 3, "sum": 3, "scale": -1, "zeroCount": "1", "zeroThreshold": 1e-9,
                "positive": {"offset": 1, "bucketCounts": ["1", "1"]},
                "negative": {"bucketCounts": []}, "min": 0, "max": 2
            }]}},
            {"name": "s", "summary": {"dataPoints": [{
                "count": 2, "sum": "NaN",
                "quantileValues": [{"quantile": 0, "value": 1}, {"quantile": 1, "value": "-Infinity"}]
            }]}}
        ]}]}]});
        let req = decode_metrics(body.to_string().as_bytes()).unwrap();
        let metrics: Vec<&Metric> = metrics_of(&req).map(|(_, _, m)| m).collect();

        let Some(metric::Data::Gauge(g)) = &metrics[0].data else { panic!() };
        assert_eq!(g.data_points[0].value, Some(number_data_point::Value::AsInt(4)));
        assert_eq!(g.data_points[0].time_unix_nano, 10);

        let Some(metric::Data::Histogram(h)) = &metrics[1].data else { panic!() };
        assert_eq!(h.aggregation_temporality, 2);
        let hp = &h.data_points[0];
        assert_eq!(attr(&hp.attributes, "route"), Some(&Av::StringValue("/".into())));
        assert_eq!((hp.start_time_unix_nano, hp.time_unix_nano, hp.count), (1, 2, 6));
        assert_eq!((hp.sum, hp.min, hp.max), (Some(21.5), Some(0.5), Some(f64::INFINITY)));
        assert_eq!(hp.bucket_counts, vec![1, 2, 3]);
        assert_eq!(hp.explicit_bounds, vec![1.0, 2.5]);

        let Some(metric::Data::ExponentialHistogram(e)) = &metrics[2].data else { panic!() };
        let ep = &e.data_points[0];
        assert_eq!((ep.count, ep.scale, ep.zero_count), (3, -1, 1));
        assert_eq!(ep.positive.as_ref().unwrap().bucket_counts, vec![1, 1]);
        assert!(ep.negative.as_ref().unwrap().bucket_counts.is_empty());
        assert_eq!((ep.min, ep.max, ep.zero_threshold), (Some(0.0), Some(2.0), 1e-9));

        let Some(metric::Data::Summary(s)) = &metrics[3].data else { panic!() };
        let sp = &s.data_points[0];
        assert!(sp.sum.is_nan());
        assert_eq!(sp.quantile_values[1].value, f64::NEG_INFINITY);

        // A histogram without sum/min/max leaves them absent (they are `optional` in the proto).
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "h", "histogram": {"dataPoints": [{"count": 0}]}}]}]}]});
        let req = decode_metrics(body.to_string().as_bytes()).unwrap();
        let (_, _, m) = metrics_of(&req).next().unwrap();
        let Some(metric::Data::Histogram(h)) = &m.data else { panic!() };
        assert_eq!((h.data_points[0].sum, h.data_points[0].min), (None, None));

        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "h", "histogram": {"dataPoints": [{"bucketCounts": [1, -1]}]}}]}]}]});
        let err = decode_metrics(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.path(),
            Some("resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0].bucketCounts[1]")
        );
    }

    #[test]
    fn traces_decode() {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]},
            "scopeSpans": [{
                "scope": {"name": "com.anthropic.claude_code.tracing", "version": "1.0.0"},
                "spans": [{
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "eee19b7ec3c1b174",
                    "parentSpanId": "",
                    "traceState": "k=v",
                    "flags": 257,
                    "name": "claude_code.llm_request",
                    "kind": "SPAN_KIND_INTERNAL",
                    "startTimeUnixNano": "1795330118183123456",
                    "endTimeUnixNano": 1795330118283123456u64,
                    "attributes": [{"key": "gen_ai.response.finish_reasons",
                                    "value": {"arrayValue": {"values": [{"stringValue": "end_turn"}]}}}],
                    "droppedAttributesCount": 0,
                    "events": [{"timeUnixNano": "5", "name": "gen_ai.request.attempt",
                                "attributes": [{"key": "attempt", "value": {"intValue": 1}}]}],
                    "droppedEventsCount": 0,
                    "links": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "00f067aa0ba902b7",
                               "flags": "SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK"}],
                    "droppedLinksCount": "1",
                    "status": {"code": "STATUS_CODE_ERROR", "message": "overloaded"}
                }, {
                    "kind": 3,
                    "status": {"code": 1}
                }]
            }]
        }]});
        let req = decode_traces(body.to_string().as_bytes()).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let s = &spans[0];
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(hex::encode(&s.span_id), "eee19b7ec3c1b174");
        assert!(s.parent_span_id.is_empty());
        assert_eq!((s.flags, s.kind), (257, span::SpanKind::Internal as i32));
        assert_eq!(s.trace_state, "k=v");
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 100_000_000);
        assert_eq!(s.events[0].name, "gen_ai.request.attempt");
        assert_eq!(attr(&s.events[0].attributes, "attempt"), Some(&Av::IntValue(1)));
        assert_eq!(s.links[0].trace_id, s.trace_id);
        assert_eq!(s.links[0].flags, 256);
        assert_eq!(s.dropped_links_count, 1);
        let status = s.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "overloaded"));
        assert_eq!(spans[1].kind, 3);
        assert_eq!(spans[1].status.as_ref().unwrap().code, 1);

        let bad =
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"parentSpanId": "abcd"}]}]}]});
        let err = decode_traces(bad.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.path(), Some("resourceSpans[0].scopeSpans[0].spans[0].parentSpanId"));
        let bad =
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_BOGUS"}]}]}]});
        let err = decode_traces(bad.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.path(), Some("resourceSpans[0].scopeSpans[0].spans[0].kind"));
    }

    #[test]
    fn wrong_types_for_known_fields_name_the_path() {
        let cases: [(serde_json::Value, &str, &str); 6] = [
            (json!({"resourceMetrics": {}}), "resourceMetrics", "an array"),
            (json!({"resourceMetrics": [5]}), "resourceMetrics[0]", "an object"),
            (
                json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": 7}]}]}]}),
                "resourceMetrics[0].scopeMetrics[0].metrics[0].name",
                "a string",
            ),
            (
                json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"sum": {"isMonotonic": "true"}}]}]}]}),
                "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotonic",
                "a boolean",
            ),
            (
                json!({"resourceMetrics": [{"resource": {"attributes": [{"key": "k", "value": "v"}]}}]}),
                "resourceMetrics[0].resource.attributes[0].value",
                "an object",
            ),
            (
                json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"sum": {"dataPoints": [null]}}]}]}]}),
                "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0]",
                "an object",
            ),
        ];
        for (body, path, expected_type) in cases {
            match decode_metrics(body.to_string().as_bytes()).unwrap_err() {
                JsonError::WrongType { path: p, expected, .. } => {
                    assert_eq!((p.as_str(), expected), (path, expected_type));
                }
                other => panic!("{body}: {other}"),
            }
        }
        let err = decode_metrics(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"isMonotonic":"true"}}]}]}]}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotonic: expected a boolean, found string \"true\""
        );
    }

    #[test]
    fn the_body_must_be_a_json_object() {
        for body in [&b"[]"[..], b"null", b"42", b"\"resourceMetrics\""] {
            let err = decode_metrics(body).unwrap_err();
            assert_eq!(err.path(), Some("(root)"), "{err}");
            assert!(err.to_string().starts_with("(root): expected an object, found"), "{err}");
        }
    }

    #[test]
    fn garbage_is_a_syntax_error_with_position() {
        let cases: [&[u8]; 8] = [
            b"",
            b"   ",
            b"hello",
            b"{\"resourceMetrics\": [}",
            b"{} trailing",
            b"\xff\xfe\x00\x01",
            b"{\"resourceMetrics\": [{\"x\": \"\xc3\x28\"}]}",
            b"{'single': 'quotes'}",
        ];
        for body in cases {
            for err in [
                decode_metrics(body).unwrap_err(),
                decode_logs(body).unwrap_err(),
                decode_traces(body).unwrap_err(),
            ] {
                assert!(matches!(err, JsonError::Syntax { .. }), "{body:?}: {err}");
                assert!(err.to_string().starts_with("invalid JSON at line "), "{err}");
                assert!(err.path().is_none());
            }
        }
        let err = decode_logs(b"{\n  \"resourceLogs\": [\n    {\"x\": tru }\n  ]\n}").unwrap_err();
        assert_eq!(err.to_string(), "invalid JSON at line 3 column 14: expected ident");
    }

    #[test]
    fn truncated_json_is_reported_as_such() {
        let full =
            std::fs::read(fixtures_root().join("http-json-delta/0002_metrics.json")).unwrap();
        let err = decode_metrics(&full[..full.len() / 2]).unwrap_err();
        match &err {
            JsonError::Syntax { line, message, .. } => {
                assert_eq!(*line, 1);
                assert!(message.starts_with("EOF while parsing"), "{message}");
            }
            other => panic!("{other}"),
        }
        // Every proper prefix of a real body is rejected, none panics.
        for len in 0..full.len() {
            assert!(decode_metrics(&full[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        assert!(decode_metrics(&full).is_ok());
    }

    /// A cheap fuzz: thousands of single- and multi-byte corruptions of a real body; each must
    /// come back as `Ok` or `Err`, never as a panic.
    #[test]
    fn corrupted_fixtures_never_panic() {
        let originals = [
            std::fs::read(fixtures_root().join("http-json-delta/0002_metrics.json")).unwrap(),
            std::fs::read(fixtures_root().join("http-json-delta/0001_logs.json")).unwrap(),
        ];
        let interesting = b"\"{}[],:-+.eE0123456789 \\xnulltrueNaN\xff\x00";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut ok, mut err) = (0, 0);
        for original in &originals {
            for _ in 0..1500 {
                let mut body = original.clone();
                for _ in 0..=(next() % 3) {
                    let at = (next() % body.len() as u64) as usize;
                    body[at] = interesting[(next() % interesting.len() as u64) as usize];
                }
                for result in [
                    decode_metrics(&body).map(|_| ()),
                    decode_logs(&body).map(|_| ()),
                    decode_traces(&body).map(|_| ()),
                ] {
                    match result {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            assert!(!e.to_string().is_empty());
                            err += 1;
                        }
                    }
                }
            }
        }
        assert!(ok > 0 && err > 0, "ok={ok} err={err}");
    }

    #[test]
    fn deeply_nested_json_is_rejected_without_overflowing_the_stack() {
        for body in [
            "[".repeat(100_000),
            "{\"a\":".repeat(100_000),
            format!("{{\"resourceLogs\":{}", "[".repeat(1_000_000)),
        ] {
            let err = decode_logs(body.as_bytes()).unwrap_err();
            assert!(matches!(err, JsonError::TooDeep { limit: 128, .. }), "{err}");
            assert!(err.to_string().contains("nested deeper than 128 levels"), "{err}");
        }
    }

    #[test]
    fn any_value_nesting_is_bounded() {
        fn nested(levels: usize) -> serde_json::Value {
            let mut v = json!({"stringValue": "leaf"});
            for _ in 0..levels {
                v = json!({"arrayValue": {"values": [v]}});
            }
            v
        }
        assert!(record(&log_body(json!({"body": nested(MAX_ANY_VALUE_DEPTH)}))).is_ok());
        let err = record(&log_body(json!({"body": nested(MAX_ANY_VALUE_DEPTH + 1)}))).unwrap_err();
        let path = err.path().unwrap().to_owned();
        assert!(path.starts_with(&format!("{RECORD_PATH}.body.arrayValue.values[0]")), "{path}");
        assert!(err.to_string().contains("nested more than 32 levels"), "{err}");
        // The same through kvlistValue.
        let mut v = json!({"intValue": 1});
        for _ in 0..=MAX_ANY_VALUE_DEPTH {
            v = json!({"kvlistValue": {"values": [{"key": "k", "value": v}]}});
        }
        assert!(record(&log_body(json!({"attributes": [{"key": "deep", "value": v}]}))).is_err());
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(&log_body(json!({"body": {"stringValue": "x"}})));
        assert_eq!(body_text(&record(&body).unwrap()), "x");
    }

    #[test]
    fn partial_success_bodies() {
        assert_eq!(encode_partial_success(Signal::Metrics, 0, ""), b"{}");
        assert_eq!(encode_partial_success(Signal::Logs, 0, ""), b"{}");
        assert_eq!(
            String::from_utf8(encode_partial_success(Signal::Metrics, 3, "bad \"points\"\n"))
                .unwrap(),
            r#"{"partialSuccess":{"rejectedDataPoints":"3","errorMessage":"bad \"points\"\n"}}"#
        );
        assert_eq!(
            String::from_utf8(encode_partial_success(Signal::Logs, 1, "")).unwrap(),
            r#"{"partialSuccess":{"rejectedLogRecords":"1"}}"#
        );
        assert_eq!(
            String::from_utf8(encode_partial_success(Signal::Traces, 0, "slow down")).unwrap(),
            r#"{"partialSuccess":{"rejectedSpans":"0","errorMessage":"slow down"}}"#
        );
        // Every form is valid JSON.
        for signal in [Signal::Metrics, Signal::Logs, Signal::Traces] {
            let body = encode_partial_success(signal, i64::MAX, "ü\u{0}");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["partialSuccess"]["errorMessage"], "ü\u{0}");
        }
    }

    #[test]
    fn status_bodies() {
        assert_eq!(
            String::from_utf8(encode_status(3, "resourceMetrics: expected an array, found \"x\""))
                .unwrap(),
            r#"{"code":3,"message":"resourceMetrics: expected an array, found \"x\""}"#
        );
        assert_eq!(encode_status(14, ""), br#"{"code":14,"message":""}"#);
    }
}
