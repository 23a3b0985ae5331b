//! Headers in the `OTEL_EXPORTER_OTLP_HEADERS` syntax: `key1=value1,key2=value2`, values
//! percent-decoded (W3C Baggage octets, as the OpenTelemetry spec says), keys trimmed.
//!
//! [`Headers`] never prints a value: `Debug` and [`Headers::masked`] show names and lengths only,
//! so a header cannot reach a log line or an error message by accident.

use super::ForwardError;

/// Headers sent with every forwarded request, as (name, value) pairs in the order given; the values
/// are secrets (tokens) and are never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.masked()).finish()
    }
}

impl Headers {
    /// Parses `Authorization=Bearer%20abc,X-Scope-OrgID=team-a`. Empty text is no headers.
    pub fn parse(text: &str) -> Result<Headers, ForwardError> {
        let mut out = Vec::new();
        for (i, item) in text.split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            // Never quote the item: it holds the secret.
            let Some((key, value)) = item.split_once('=') else {
                return Err(ForwardError::Headers(format!(
                    "item {} has no '=' (expected name=value)",
                    i + 1
                )));
            };
            let key = key.trim();
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(ForwardError::Headers(format!(
                    "item {}: '{}' is not a valid header name",
                    i + 1,
                    key.escape_debug()
                )));
            }
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| {
                    ForwardError::Headers(format!(
                        "the value of {key} is not UTF-8 once percent-decoded"
                    ))
                })?
                .into_owned();
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(ForwardError::Headers(format!(
                    "the value of {key} contains a line break"
                )));
            }
            out.push((key.to_string(), value));
        }
        Ok(Headers(out))
    }

    /// The same syntax back (values percent-encoded where needed), for storing.
    pub fn to_text(&self) -> String {
        const ENCODE: &percent_encoding::AsciiSet =
            &percent_encoding::CONTROLS.add(b',').add(b'%').add(b'=').add(b' ');
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, ENCODE)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The (name, value) pairs, in order, for putting on a request.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The headers' names, without their values.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|(k, _)| k.clone()).collect()
    }

    /// `Authorization=****** (18 characters)`: what status output shows.
    pub fn masked(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}=****** ({} characters)", v.chars().count()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_otel_syntax_and_never_prints_values() {
        let h = Headers::parse(" Authorization=Bearer%20s3cr3t , X-Scope-OrgID=team-a,")
            .expect("parses");
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![("Authorization", "Bearer s3cr3t"), ("X-Scope-OrgID", "team-a")]
        );
        assert_eq!(Headers::parse(&h.to_text()).expect("round trip"), h);
        let shown = format!("{h:?} {}", h.masked().join(" "));
        assert!(!shown.contains("s3cr3t") && !shown.contains("team-a"), "{shown}");
        assert!(shown.contains("Authorization=****** (13 characters)"), "{shown}");
        assert!(Headers::parse("").expect("empty").is_empty());
        // Values may contain '=' (base64 padding).
        assert_eq!(
            Headers::parse("Authorization=Basic dXNlcjpwYXNz==").expect("parses").iter().next(),
            Some(("Authorization", "Basic dXNlcjpwYXNz=="))
        );
    }

    #[test]
    fn errors_name_the_item_but_not_the_secret() {
        for (text, needle) in [
            ("Bearer s3cr3t", "item 1 has no '='"),
            ("a=b,bad name=s3cr3t", "item 2"),
            ("a=s3cr3t%0Aevil", "line break"),
        ] {
            let err = Headers::parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{text}: {err}");
        }
    }
}
