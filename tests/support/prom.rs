//! A small parser for the Prometheus text exposition format (0.0.4; also reads the samples of
//! OpenMetrics text) and the OTLP → Prometheus metric-name rules of the Collector's exporter.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses every sample line; comment (`#`) and blank lines are skipped. Panics on a malformed
/// line (that is an exposition bug worth seeing).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            parse_line(l).unwrap_or_else(|e| panic!("/metrics line {}: {e}: {l:?}", i + 1))
        })
        .collect()
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let line = line.trim();
    let name_end = line.find(['{', ' ', '\t']).ok_or("no value")?;
    let name = line[..name_end].to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        let mut chars = rest[1..].char_indices().peekable();
        let end = loop {
            // skip separators
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || *c == ' ' {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.peek() {
                Some((i, '}')) => break *i,
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            match chars.next() {
                Some((_, '"')) => {}
                _ => return Err(format!("label {key}: value not quoted")),
            }
            let mut val = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => val.push('\n'),
                        Some((_, '\\')) => val.push('\\'),
                        Some((_, '"')) => val.push('"'),
                        Some((_, c)) => {
                            val.push('\\');
                            val.push(c)
                        }
                        None => return Err("unterminated escape".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => val.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            let key = key.trim().to_string();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {key:?}"));
            }
            if labels.insert(key.clone(), val).is_some() {
                return Err(format!("duplicate label {key}"));
            }
        };
        rest = &rest[1 + end + 1..];
    }
    let mut fields = rest.split_whitespace();
    let v = fields.next().ok_or("no value")?;
    let value = match v {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    Ok(Sample { name, labels, value })
}

/// Sum of `name`'s samples grouped by the values of `by` (a missing label counts as `""`).
pub fn sum_by(samples: &[Sample], name: &str, by: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        let key = by.iter().map(|l| s.labels.get(*l).cloned().unwrap_or_default()).collect();
        *out.entry(key).or_insert(0.0) += s.value;
    }
    out
}

/// Sum of all samples of `name`.
pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples.iter().filter(|s| s.name == name).map(|s| s.value).sum()
}

/// Number of samples of `name`.
pub fn count(samples: &[Sample], name: &str) -> usize {
    samples.iter().filter(|s| s.name == name).count()
}

/// An OTLP attribute name as a Prometheus label name: every character outside
/// `[A-Za-z0-9_]` becomes `_` (`session.id` → `session_id`).
pub fn label_name(attr: &str) -> String {
    attr.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// The Prometheus name the Collector's `prometheus` exporter (default normalization) gives an
/// OTLP metric: split the name into words on anything not alphanumeric; translate the unit
/// (`s` → `seconds`, ...; unknown units kept as written, `{...}` annotations and `1` dropped) and
/// append it unless the name already has it as a word; for monotonic sums drop any `total` word
/// and append `total` at the end; join with `_`.
pub fn prometheus_name(otlp_name: &str, unit: &str, monotonic_sum: bool) -> String {
    let mut words: Vec<String> = otlp_name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let main = translate_unit(main);
    if !main.is_empty() && !words.contains(&main) {
        words.push(main);
    }
    if let Some(per) = per.map(translate_per_unit).filter(|p| !p.is_empty()) {
        if !words.windows(2).any(|w| w[0] == "per" && w[1] == per) {
            words.push("per".into());
            words.push(per);
        }
    }
    if monotonic_sum {
        words.retain(|w| w != "total");
        words.push("total".into());
    }
    words.join("_")
}

fn translate_unit(unit: &str) -> String {
    let unit = unit.trim();
    if unit.starts_with('{') || unit == "1" {
        return String::new();
    }
    let known = match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => other,
    };
    known.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn translate_per_unit(unit: &str) -> String {
    match unit.trim() {
        "s" => "second".into(),
        "m" => "minute".into(),
        "h" => "hour".into(),
        "d" => "day".into(),
        "w" => "week".into(),
        "mo" => "month".into(),
        "y" => "year".into(),
        other => translate_unit(other),
    }
}
