//! The grouping key of a push, from the path after `/metrics/`: `job/<job>{/<label>/<value>}`.
//! A label name with the suffix `@base64` takes its value in URL-safe base64 (RFC 4648 §5,
//! padding optional), which is how a value holding `/` (or an empty value, written `=`) is sent —
//! what Pushgateway documents and `prometheus_client` does.

use std::collections::BTreeMap;

use base64::Engine;

use super::PushError;

/// The grouping labels of one group: `job` and any others, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupingKey(BTreeMap<String, String>);

impl GroupingKey {
    /// From the path below `/metrics/` (e.g. `job/exercise/instance/x`), segments still
    /// percent-encoded.
    pub(crate) fn from_path(rest: &str) -> Result<GroupingKey, PushError> {
        let bad = |m: String| PushError::Grouping(m);
        let segments: Vec<&str> = rest.split('/').collect();
        if !segments.len().is_multiple_of(2) {
            return Err(bad(format!("'{rest}' has a label name without a value")));
        }
        let mut labels = BTreeMap::new();
        for (i, pair) in segments.chunks(2).enumerate() {
            let (raw_name, raw_value) = (pair[0], pair[1]);
            let name = decode(raw_name)?;
            let (name, value) = match name.strip_suffix("@base64") {
                Some(stem) => (stem.to_string(), base64_value(stem, raw_value)?),
                None => (name.clone(), decode(raw_value)?),
            };
            if i == 0 && name != "job" {
                return Err(bad(format!("the path must start with job/, not {name}/")));
            }
            if !is_label_name(&name) || name.starts_with("__") {
                return Err(bad(format!("'{name}' is not a valid label name")));
            }
            if name == "job" && value.is_empty() {
                return Err(bad("the job name is empty".into()));
            }
            if value.is_empty() && !raw_name.ends_with("@base64") {
                return Err(bad(format!(
                    "label {name} has an empty value; send it as {name}@base64/="
                )));
            }
            if labels.insert(name.clone(), value).is_some() {
                return Err(bad(format!("label {name} appears twice")));
            }
        }
        Ok(GroupingKey(labels))
    }

    /// From stored labels (the store round-trips keys through this).
    pub(crate) fn from_labels(labels: BTreeMap<String, String>) -> GroupingKey {
        GroupingKey(labels)
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Stable text form used as the store's primary key: the labels as a JSON object.
    pub(crate) fn canonical(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for GroupingKey {
    /// `{job="x",instance="y"}`, as Pushgateway names a group in its messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

fn decode(segment: &str) -> Result<String, PushError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| PushError::Grouping(format!("'{segment}' is not UTF-8 once decoded")))
}

fn base64_value(name: &str, raw: &str) -> Result<String, PushError> {
    // Padding is optional (`=` alone is the empty value); `%3D` is a percent-encoded `=`.
    let raw = decode(raw)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .map_err(|e| {
            PushError::Grouping(format!("label {name}: '{raw}' is not URL-safe base64 ({e})"))
        })?;
    String::from_utf8(bytes)
        .map_err(|_| PushError::Grouping(format!("label {name}: the base64 value is not UTF-8")))
}

pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Result<Vec<(String, String)>, PushError> {
        GroupingKey::from_path(path).map(|k| k.0.into_iter().collect())
    }

    #[test]
    fn plain_and_base64_segments() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert_eq!(
            key("job/exercise/instance/x").unwrap(),
            pairs(&[("instance", "x"), ("job", "exercise")])
        );
        // "a/b" in URL-safe base64, with and without padding; `=` is the empty value.
        assert_eq!(key("job@base64/YS9i").unwrap(), pairs(&[("job", "a/b")]));
        assert_eq!(
            key("job/j/path@base64/L3Zhci90bXA=/empty@base64/=").unwrap(),
            pairs(&[("empty", ""), ("job", "j"), ("path", "/var/tmp")])
        );
        assert_eq!(key("job/a%20b").unwrap(), pairs(&[("job", "a b")]));
    }

    #[test]
    fn refusals_say_why() {
        for bad in ["job", "instance/x", "job/", "job/j/instance", "job/j/__x/1", "job/j/job/k"] {
            assert!(matches!(key(bad), Err(PushError::Grouping(_))), "{bad}");
        }
        let err = key("job/j/x@base64/!!").unwrap_err().to_string();
        assert!(err.contains("base64"), "{err}");
    }
}
