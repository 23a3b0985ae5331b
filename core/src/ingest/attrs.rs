//! Attribute values, detached from the protobuf types.
//!
//! OTLP attributes arrive as `AnyValue`s. We keep them in a small owned enum so that series
//! identity can be hashed without serialising, labels can be rendered the way the Collector
//! renders them, and the store can write them as JSON.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use xxhash_rust::xxh3::Xxh3;

/// Attributes sorted by key, duplicates removed (last one wins, as in the SDKs).
pub(crate) type Attrs = Vec<(String, AttrValue)>;

#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Vec<(String, AttrValue)>),
}

impl AttrValue {
    pub(crate) fn from_any(value: Option<AnyValue>) -> Self {
        match value.and_then(|v| v.value) {
            None => AttrValue::Empty,
            Some(Value::StringValue(s)) => AttrValue::Str(s),
            Some(Value::BoolValue(b)) => AttrValue::Bool(b),
            Some(Value::IntValue(i)) => AttrValue::Int(i),
            Some(Value::DoubleValue(d)) => AttrValue::Double(d),
            Some(Value::BytesValue(b)) => AttrValue::Bytes(b),
            Some(Value::ArrayValue(a)) => AttrValue::Array(
                a.values.into_iter().map(|v| AttrValue::from_any(Some(v))).collect(),
            ),
            Some(Value::KvlistValue(kv)) => AttrValue::Map(
                kv.values.into_iter().map(|kv| (kv.key, AttrValue::from_any(kv.value))).collect(),
            ),
            // Profiles-only dictionary reference; meaningless without the dictionary.
            Some(Value::StringValueStrindex(i)) => AttrValue::Int(i64::from(i)),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Numeric view. Claude Code sends some numbers as strings (`prompt_length`, `duration_ms` on
    /// `tool_result`), so numeric strings count too.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Int(i) => Some(*i as f64),
            AttrValue::Double(d) => Some(*d),
            AttrValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            AttrValue::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
            AttrValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a Prometheus label value, following the Collector (`pcommon.Value.AsString`):
    /// strings verbatim, scalars in their plain form, arrays and maps as JSON.
    pub(crate) fn to_label(&self) -> String {
        match self {
            AttrValue::Empty => String::new(),
            AttrValue::Str(s) => s.clone(),
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Double(d) => d.to_string(),
            other => other.to_json().to_string(),
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            AttrValue::Empty => J::Null,
            AttrValue::Str(s) => J::String(s.clone()),
            AttrValue::Bool(b) => J::Bool(*b),
            AttrValue::Int(i) => J::from(*i),
            // JSON has no NaN/Infinity: such doubles are kept as their text.
            AttrValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(J::Number)
                .unwrap_or_else(|| J::String(d.to_string())),
            AttrValue::Bytes(b) => J::String(hex::encode(b)),
            AttrValue::Array(a) => J::Array(a.iter().map(AttrValue::to_json).collect()),
            AttrValue::Map(m) => {
                J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    pub(crate) fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match value {
            J::Null => AttrValue::Empty,
            J::Bool(b) => AttrValue::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => AttrValue::Int(i),
                None => AttrValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => AttrValue::Str(s.clone()),
            J::Array(a) => AttrValue::Array(a.iter().map(AttrValue::from_json).collect()),
            J::Object(o) => AttrValue::Map(
                o.iter().map(|(k, v)| (k.clone(), AttrValue::from_json(v))).collect(),
            ),
        }
    }

    /// Feeds a type-tagged encoding into a hasher, so `"1"` and `1` are different identities.
    fn hash_into(&self, h: &mut Xxh3) {
        match self {
            AttrValue::Empty => h.update(&[0]),
            AttrValue::Str(s) => {
                h.update(&[1]);
                hash_str(h, s);
            }
            AttrValue::Bool(b) => h.update(&[2, *b as u8]),
            AttrValue::Int(i) => {
                h.update(&[3]);
                h.update(&i.to_le_bytes());
            }
            AttrValue::Double(d) => {
                h.update(&[4]);
                h.update(&d.to_bits().to_le_bytes());
            }
            AttrValue::Bytes(b) => {
                h.update(&[5]);
                h.update(&(b.len() as u64).to_le_bytes());
                h.update(b);
            }
            AttrValue::Array(a) => {
                h.update(&[6]);
                h.update(&(a.len() as u64).to_le_bytes());
                a.iter().for_each(|v| v.hash_into(h));
            }
            AttrValue::Map(m) => {
                h.update(&[7]);
                hash_attrs(h, m);
            }
        }
    }
}

fn hash_str(h: &mut Xxh3, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// Length-prefixed, type-tagged hashing of an attribute list (assumed sorted by key).
pub(crate) fn hash_attrs(h: &mut Xxh3, attrs: &[(String, AttrValue)]) {
    h.update(&(attrs.len() as u64).to_le_bytes());
    for (k, v) in attrs {
        hash_str(h, k);
        v.hash_into(h);
    }
}

/// Hashes one string field into an identity hash.
pub(crate) fn hash_field(h: &mut Xxh3, s: &str) {
    hash_str(h, s);
}

/// Converts protobuf attributes into sorted, de-duplicated owned attributes.
pub(crate) fn from_proto(kvs: Vec<KeyValue>) -> Attrs {
    let mut attrs: Attrs =
        kvs.into_iter().map(|kv| (kv.key, AttrValue::from_any(kv.value))).collect();
    // Stable sort keeps arrival order among equal keys, so `dedup` can keep the last one.
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Attrs = Vec::with_capacity(attrs.len());
    for (k, v) in attrs {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    out
}

pub(crate) fn get<'a>(attrs: &'a [(String, AttrValue)], key: &str) -> Option<&'a AttrValue> {
    attrs.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| &attrs[i].1)
}

pub(crate) fn get_str<'a>(attrs: &'a [(String, AttrValue)], key: &str) -> Option<&'a str> {
    get(attrs, key).and_then(AttrValue::as_str)
}

/// Attributes as a JSON object (the store's column format).
pub(crate) fn to_json(attrs: &[(String, AttrValue)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        attrs.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    serde_json::Value::Object(map).to_string()
}

/// Parses the store's JSON column back; malformed text yields no attributes rather than a panic.
pub(crate) fn from_json(text: &str) -> Attrs {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => {
            let mut attrs: Attrs =
                map.iter().map(|(k, v)| (k.clone(), AttrValue::from_json(v))).collect();
            attrs.sort_by(|a, b| a.0.cmp(&b.0));
            attrs
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }

    #[test]
    fn sorted_and_last_duplicate_wins() {
        let attrs = from_proto(vec![
            kv("b", Value::StringValue("1".into())),
            kv("a", Value::IntValue(2)),
            kv("b", Value::StringValue("3".into())),
        ]);
        assert_eq!(
            attrs,
            vec![("a".into(), AttrValue::Int(2)), ("b".into(), AttrValue::Str("3".into()))]
        );
        assert_eq!(get_str(&attrs, "b"), Some("3"));
        assert!(get(&attrs, "c").is_none());
    }

    #[test]
    fn identity_distinguishes_types() {
        let hash = |v: AttrValue| {
            let mut h = Xxh3::new();
            hash_attrs(&mut h, &[("k".into(), v)]);
            h.digest128()
        };
        assert_ne!(hash(AttrValue::Str("1".into())), hash(AttrValue::Int(1)));
        assert_eq!(hash(AttrValue::Int(1)), hash(AttrValue::Int(1)));
    }

    #[test]
    fn labels_and_json_round_trip() {
        let attrs = vec![
            ("anthropic.custom_base_url".to_string(), AttrValue::Bool(true)),
            (
                "list".to_string(),
                AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("x".into())]),
            ),
        ];
        assert_eq!(attrs[0].1.to_label(), "true");
        assert_eq!(attrs[1].1.to_label(), r#"[1,"x"]"#);
        assert_eq!(from_json(&to_json(&attrs)), attrs);
        assert_eq!(AttrValue::Str("157".into()).as_i64(), Some(157));
    }
}
