//! Prometheus text format 0.0.4, as pushed: `# HELP`, `# TYPE`, other comments, and sample lines
//! `name{label="value",…} value`. Every problem is refused with its line number; a push is all
//! or nothing, so the caller keeps nothing of a body that fails here.
//!
//! As Pushgateway does, the grouping labels are set on every sample whatever the body said
//! (grouping labels win), an `instance` label is added as `""` where there is none, and samples
//! with a timestamp are refused (Pushgateway rejects them: a pushed value has no time of its own).

use std::collections::{BTreeMap, HashSet};

use super::grouping::is_label_name;
use super::{
    GroupingKey, PushError, PushedFamily, PushedKind, PushedSample, PUSH_FAILURE_TIME, PUSH_TIME,
};

/// Parses `body` into families whose samples carry `key`'s labels.
pub(crate) fn parse(body: &[u8], key: &GroupingKey) -> Result<Vec<PushedFamily>, PushError> {
    let text = std::str::from_utf8(body).map_err(|e| PushError::NotUtf8(e.valid_up_to()))?;
    let mut parser = Parser::default();
    for (i, line) in text.lines().enumerate() {
        parser.line(line, key).map_err(|problem| PushError::Syntax { line: i + 1, problem })?;
    }
    // A `# HELP`/`# TYPE` without samples declares nothing to show.
    Ok(parser.families.into_iter().filter(|f| !f.samples.is_empty()).collect())
}

#[derive(Default)]
struct Parser {
    families: Vec<PushedFamily>,
    /// Families that already had samples (a `# TYPE` after them is refused, as expfmt does).
    sampled: HashSet<String>,
    /// Families that had a `# TYPE` line.
    typed: HashSet<String>,
    /// Name + labels of every sample seen: a repeated series is refused.
    series: HashSet<(String, Vec<(String, String)>)>,
}

impl Parser {
    fn line(&mut self, line: &str, key: &GroupingKey) -> Result<(), String> {
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.comment(comment.trim_start_matches([' ', '\t']));
        }
        self.sample(line, key)
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let (word, rest) = split_word(comment);
        match word {
            "HELP" => {
                let (name, help) = split_word(rest);
                check_metric_name(name)?;
                let family = self.family_mut(name);
                if !family.help.is_empty() {
                    return Err(format!("second HELP line for {name}"));
                }
                family.help = unescape_help(help);
                Ok(())
            }
            "TYPE" => {
                let (name, kind) = split_word(rest);
                check_metric_name(name)?;
                let kind = match kind.trim() {
                    "counter" => PushedKind::Counter,
                    "gauge" => PushedKind::Gauge,
                    "histogram" => PushedKind::Histogram,
                    "summary" => PushedKind::Summary,
                    "untyped" => PushedKind::Untyped,
                    other => return Err(format!("unknown metric type '{other}' for {name}")),
                };
                if self.sampled.contains(name) {
                    return Err(format!("TYPE line for {name} after its samples"));
                }
                if !self.typed.insert(name.to_string()) {
                    return Err(format!("second TYPE line for {name}"));
                }
                self.family_mut(name).kind = kind;
                Ok(())
            }
            // Any other comment is just a comment.
            _ => Ok(()),
        }
    }

    fn sample(&mut self, line: &str, key: &GroupingKey) -> Result<(), String> {
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        check_metric_name(name)?;
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = parse_labels(after, &mut labels)?;
        }
        let mut fields = rest.split_ascii_whitespace();
        let value = fields.next().ok_or_else(|| format!("sample {name} has no value"))?;
        let value = parse_value(value).ok_or_else(|| format!("'{value}' is not a number"))?;
        if fields.next().is_some() {
            return Err(format!(
                "sample {name} has a timestamp (or trailing text); pushed samples may not carry timestamps"
            ));
        }
        let family_name = self.family_of(name);
        if family_name == PUSH_TIME || family_name == PUSH_FAILURE_TIME {
            return Err(format!("{family_name} is written by the gateway itself, not pushed"));
        }
        let kind = self.families.iter().find(|f| f.name == family_name).map(|f| f.kind);
        if kind == Some(PushedKind::Histogram)
            && name.ends_with("_bucket")
            && !labels.contains_key("le")
        {
            return Err(format!("histogram bucket {name} has no le label"));
        }
        // Grouping labels win over the body's; `instance` is always there, as in Pushgateway.
        for (k, v) in key.labels() {
            labels.insert(k.clone(), v.clone());
        }
        labels.entry("instance".to_string()).or_default();
        let identity =
            (name.to_string(), labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        if !self.series.insert(identity) {
            return Err(format!("sample {name} with these labels appears twice"));
        }
        self.sampled.insert(family_name.clone());
        self.family_mut(&family_name).samples.push(PushedSample {
            name: name.to_string(),
            labels,
            value,
        });
        Ok(())
    }
}

impl Parser {
    /// The family a sample name belongs to: its own, or the histogram/summary it is a part of.
    fn family_of(&self, sample: &str) -> String {
        if self.families.iter().any(|f| f.name == sample) {
            return sample.to_string();
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(stem) = sample.strip_suffix(suffix) {
                let part_of = self.families.iter().any(|f| {
                    f.name == stem
                        && (f.kind == PushedKind::Histogram
                            || (f.kind == PushedKind::Summary && suffix != "_bucket"))
                });
                if part_of {
                    return stem.to_string();
                }
            }
        }
        sample.to_string()
    }

    fn family_mut(&mut self, name: &str) -> &mut PushedFamily {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(PushedFamily {
                    name: name.to_string(),
                    help: String::new(),
                    kind: PushedKind::Untyped,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    match s.find([' ', '\t']) {
        Some(at) => (&s[..at], s[at..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else if name.is_empty() {
        Err("a metric name is missing".into())
    } else {
        Err(format!("'{name}' is not a valid metric name"))
    }
}

/// `a="x",b="y\"z"}` (after the `{`) into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label has no '=' (or the '}' is missing)")?;
        let name = s[..eq].trim_matches([' ', '\t']);
        if !is_label_name(name) {
            return Err(format!("'{name}' is not a valid label name"));
        }
        s = s[eq + 1..].trim_start_matches([' ', '\t']);
        let body = s
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label {name} is not quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("the value of label {name} has no closing quote")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("bad escape in the value of label {name}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} appears twice in one sample"));
        }
        s = body[end + 1..].trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label value".into());
        }
    }
}

/// A sample value as Prometheus' text parser reads it (Go's `ParseFloat`: `NaN`, `+Inf`, `Inf`).
fn parse_value(v: &str) -> Option<f64> {
    match v {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ if v.chars().any(|c| c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E')) => None,
        _ => v.parse().ok(),
    }
}

fn unescape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GroupingKey {
        GroupingKey::from_path("job/j/instance/i").unwrap()
    }

    #[test]
    fn families_types_and_grouping_labels() {
        let body = b"# HELP a_total Things done.\n# TYPE a_total counter\na_total{kind=\"x\",job=\"other\"} 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\nloose NaN\n";
        let families = parse(body, &key()).unwrap();
        let names: Vec<_> = families.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        assert_eq!(
            names,
            [
                ("a_total", PushedKind::Counter),
                ("h", PushedKind::Histogram),
                ("loose", PushedKind::Untyped)
            ]
        );
        let a = &families[0].samples[0];
        assert_eq!(families[0].help, "Things done.");
        assert_eq!(a.labels.get("job").map(String::as_str), Some("j"), "grouping label wins");
        assert_eq!(a.labels.get("instance").map(String::as_str), Some("i"));
        assert_eq!(families[1].samples.len(), 4);
        assert!(families[2].samples[0].value.is_nan());
    }

    #[test]
    fn malformed_lines_are_named() {
        for (body, line, says) in [
            ("ok 1\nbad{x=1} 2\n", 2, "not quoted"),
            ("ok 1\n\nbroken\n", 3, "no value"),
            ("x 1 1700000000000\n", 1, "timestamp"),
            ("x one\n", 1, "not a number"),
            ("# TYPE x counter\n# TYPE x gauge\n", 2, "second TYPE"),
            ("x 1\nx 2\n", 2, "twice"),
            ("push_time_seconds 1\n", 1, "gateway itself"),
            ("# TYPE x wobbly\n", 1, "unknown metric type"),
        ] {
            match parse(body.as_bytes(), &key()) {
                Err(PushError::Syntax { line: l, problem }) => {
                    assert_eq!(l, line, "{body:?}: {problem}");
                    assert!(problem.contains(says), "{body:?}: {problem}");
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }
}
