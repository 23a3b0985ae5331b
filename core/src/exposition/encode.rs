//! Snapshot → Prometheus text: the 0.0.4 text format and OpenMetrics 1.0.
//!
//! [`encode`] is a pure function of the [`Snapshot`]; it allocates nothing per sample (labels are
//! rendered once per series elsewhere, numbers are formatted on the stack, histogram bucket bounds
//! once per family), so a scrape costs little more than copying bytes. Write into a `Vec<u8>` or a
//! `BufWriter`: every sample is several small `write_all` calls.
//!
//! The output follows what the OpenTelemetry Collector's `prometheus` exporter (client_golang's
//! `expfmt`) writes, so scrapers and dashboards see the same series, with two deliberate
//! differences: sample values that are whole numbers are written in full (`1234567`, where Go
//! writes `1.234567e+06`; both parse to the same float), and no `# HELP` line is written for an
//! empty description. Histogram `le` values, which are label text and so part of a series'
//! identity, are formatted exactly as Go's `strconv.FormatFloat(b, 'g', -1, 64)` does.

use std::io::{self, Write};

use super::{Family, FamilyKind, HistogramValue, SeriesValue, Snapshot};

/// Exposition format of a `/metrics` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default for any client that does not ask for OpenMetrics.
    #[default]
    Text004,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics100,
}

impl Format {
    /// The `Content-Type` header value for a response in this format.
    #[must_use]
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics100 => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format for a request's `Accept` header, as client_golang's
    /// `expfmt.NegotiateIncludingOpenMetrics` does: media ranges are considered by descending
    /// `q` (ties in header order), and the first one we can serve wins — OpenMetrics for
    /// `application/openmetrics-text` with no version or version `1.0.0`/`0.0.1`, text for
    /// `text/plain` with no version or version `0.0.4`. Anything else, including a missing
    /// header or `*/*`, gets the text format.
    #[must_use]
    pub(crate) fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text004;
        };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let Some((ty, subtype)) = media.split_once('/') else {
                continue;
            };
            let (ty, subtype) = (ty.trim(), subtype.trim());
            let mut q = 1.0_f32;
            let mut version = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let (key, value) = (key.trim(), value.trim().trim_matches('"'));
                if key.eq_ignore_ascii_case("q") {
                    // Like goautoneg: an unparsable q counts as 0.
                    q = value.parse().unwrap_or(0.0);
                } else if key.eq_ignore_ascii_case("version") {
                    version = Some(value);
                }
            }
            if q <= 0.0 || q.is_nan() {
                continue;
            }
            let candidate = if ty.eq_ignore_ascii_case("application")
                && subtype.eq_ignore_ascii_case("openmetrics-text")
                && matches!(version, None | Some("1.0.0" | "0.0.1"))
            {
                Format::OpenMetrics100
            } else if ty.eq_ignore_ascii_case("text")
                && subtype.eq_ignore_ascii_case("plain")
                && matches!(version, None | Some("0.0.4"))
            {
                Format::Text004
            } else {
                continue;
            };
            if best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, candidate));
            }
        }
        best.map_or(Format::Text004, |(_, format)| format)
    }
}

/// Writes `snapshot` to `out` in `format`.
///
/// Layout, in both formats: `target_info` first (one sample per entry of `Snapshot::targets`,
/// value 1, only when there are any), then each family in snapshot order, skipping families with
/// no series. A family is `# HELP` (when the description is not empty), `# TYPE`, in OpenMetrics
/// `# UNIT` (when the name ends with `_<unit>`), then its samples; histograms expand to cumulative
/// `_bucket` samples (bounds as given, then `le="+Inf"` with the total count), `_sum` and `_count`.
///
/// OpenMetrics differs where its spec requires: a counter's metadata uses the family name without
/// `_total` while its sample keeps it, `target_info` is declared as `# TYPE target info`, `# HELP`
/// also escapes `"`, bucket bounds are written as floats (`le="1.0"`), and the output ends with
/// `# EOF`. `_created` samples are not written (client_golang, and so the Collector, omits them by
/// default, and Prometheus before 3.x stored each as an extra `*_created` series).
///
/// A series whose value does not fit its family's kind (a histogram value in a counter family or
/// the reverse) is skipped rather than written malformed.
///
/// # Errors
///
/// Only those of `out`; encoding itself cannot fail. Output written before an error stays
/// written, so a partial response must not be sent as complete.
pub fn encode<W: Write>(out: &mut W, snapshot: &Snapshot, format: Format) -> io::Result<()> {
    let om = format == Format::OpenMetrics100;

    if !snapshot.targets.is_empty() {
        if om {
            out.write_all(b"# HELP target Target metadata\n# TYPE target info\n")?;
        } else {
            out.write_all(b"# HELP target_info Target metadata\n# TYPE target_info gauge\n")?;
        }
        for labels in &snapshot.targets {
            write_sample_name(out, "target_info", "", labels, None)?;
            out.write_all(b"1\n")?;
        }
    }

    let mut les = LeCache::default();
    for family in &snapshot.families {
        if !family.series.is_empty() {
            write_family(out, family, om, &mut les)?;
        }
    }

    if om {
        out.write_all(b"# EOF\n")?;
    }
    Ok(())
}

fn write_family<W: Write>(
    out: &mut W,
    family: &Family,
    om: bool,
    les: &mut LeCache,
) -> io::Result<()> {
    let name = family.name.as_str();
    // In OpenMetrics a counter family is named without `_total`; its samples carry the suffix. A
    // counter name lacking `_total` (not something `naming::metric_name` produces) gets the
    // suffix on its samples, which OpenMetrics requires.
    let (meta_name, sample_suffix) = match (om, family.kind) {
        (true, FamilyKind::Counter) => (name.strip_suffix("_total").unwrap_or(name), "_total"),
        _ => (name, ""),
    };

    if !family.help.is_empty() {
        out.write_all(b"# HELP ")?;
        out.write_all(meta_name.as_bytes())?;
        out.write_all(b" ")?;
        write_escaped_help(out, &family.help, om)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"# TYPE ")?;
    out.write_all(meta_name.as_bytes())?;
    out.write_all(match family.kind {
        FamilyKind::Counter => b" counter\n",
        FamilyKind::Gauge => b" gauge\n",
        FamilyKind::Histogram => b" histogram\n",
    })?;
    if om && name_has_unit(meta_name, &family.unit) {
        out.write_all(b"# UNIT ")?;
        out.write_all(meta_name.as_bytes())?;
        out.write_all(b" ")?;
        out.write_all(family.unit.as_bytes())?;
        out.write_all(b"\n")?;
    }

    match family.kind {
        FamilyKind::Counter | FamilyKind::Gauge => {
            for series in &family.series {
                if let SeriesValue::Number(value) = series.value {
                    write_sample_name(out, meta_name, sample_suffix, &series.labels, None)?;
                    write_value(out, value)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        FamilyKind::Histogram => {
            for series in &family.series {
                if let SeriesValue::Histogram(hist) = &series.value {
                    write_histogram(out, name, &series.labels, hist, les.get(&hist.bounds, om))?;
                }
            }
        }
    }
    Ok(())
}

/// OpenMetrics: "If a unit is specified it MUST be provided in a UNIT metadata line. In addition,
/// the MetricFamily name MUST be suffixed with the unit." So `# UNIT` is written only where the
/// name really ends with `_<unit>`; a name that already held the unit word elsewhere (and so did
/// not get it appended) goes without.
fn name_has_unit(name: &str, unit: &str) -> bool {
    !unit.is_empty()
        && name.strip_suffix(unit).is_some_and(|stem| stem.len() > 1 && stem.ends_with('_'))
}

fn write_histogram<W: Write>(
    out: &mut W,
    name: &str,
    labels: &str,
    hist: &HistogramValue,
    les: &[Option<String>],
) -> io::Result<()> {
    let mut cumulative = 0.0;
    for (i, le) in les.iter().enumerate() {
        cumulative += hist.counts.get(i).copied().unwrap_or(0.0);
        if let Some(le) = le {
            write_sample_name(out, name, "_bucket", labels, Some(le))?;
            write_value(out, cumulative)?;
            out.write_all(b"\n")?;
        }
    }
    // As client_golang does, the `+Inf` bucket is the total count, whatever the per-bucket counts
    // add up to, so `_bucket{le="+Inf"}` and `_count` can never disagree.
    write_sample_name(out, name, "_bucket", labels, Some("+Inf"))?;
    write_value(out, hist.count)?;
    out.write_all(b"\n")?;
    write_sample_name(out, name, "_sum", labels, None)?;
    write_value(out, hist.sum)?;
    out.write_all(b"\n")?;
    write_sample_name(out, name, "_count", labels, None)?;
    write_value(out, hist.count)?;
    out.write_all(b"\n")
}

/// Writes `name suffix{labels,le="…"} ` — everything before the value, including the space.
fn write_sample_name<W: Write>(
    out: &mut W,
    name: &str,
    suffix: &str,
    labels: &str,
    le: Option<&str>,
) -> io::Result<()> {
    out.write_all(name.as_bytes())?;
    out.write_all(suffix.as_bytes())?;
    match le {
        None if labels.is_empty() => return out.write_all(b" "),
        None => {
            out.write_all(b"{")?;
            out.write_all(labels.as_bytes())?;
        }
        Some(le) => {
            out.write_all(b"{")?;
            if !labels.is_empty() {
                out.write_all(labels.as_bytes())?;
                out.write_all(b",")?;
            }
            out.write_all(b"le=\"")?;
            out.write_all(le.as_bytes())?;
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"} ")
}

/// `# HELP` text escaping: `\` and newline in both formats, and `"` in OpenMetrics, whose HELP is
/// an escaped string like a label value.
pub(crate) fn write_escaped_help<W: Write>(out: &mut W, help: &str, om: bool) -> io::Result<()> {
    let bytes = help.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if om => b"\\\"",
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        out.write_all(escaped)?;
        start = i + 1;
    }
    out.write_all(&bytes[start..])
}

/// Writes a sample value: `NaN`, `+Inf`, `-Inf`; whole numbers below 10^15 as integers (the
/// common case — token counts, session counts — on a fast path); anything else in Rust's
/// shortest round-trip form, positional between 10^-5 and 10^21 (`0.019299999999999998`) and
/// with an exponent outside it (`1e21`, `1.5e-7`) so no value prints hundreds of digits. Every
/// form is a valid Prometheus and OpenMetrics number.
pub(crate) fn write_value<W: Write>(out: &mut W, v: f64) -> io::Result<()> {
    if v.is_nan() {
        return out.write_all(b"NaN");
    }
    if v.is_infinite() {
        return out.write_all(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    }
    let abs = v.abs();
    if abs < 9.0e18 && v.fract() == 0.0 {
        // Exact: an integral double below 2^63 fits an i64 without rounding; -0.0 becomes 0.
        return write_int(out, v as i64);
    }
    // zmij (already used by serde_json) writes the shortest round-trip form, several times
    // faster than `Display`; the float is the bulk of a scrape's cost.
    let mut buf = zmij::Buffer::new();
    out.write_all(buf.format_finite(v).as_bytes())
}

fn write_int<W: Write>(out: &mut W, v: i64) -> io::Result<()> {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    out.write_all(&buf[i..])
}

/// Rendered `le` values of the last bucket layout seen. Every series of a histogram family
/// normally shares one layout, so bounds are formatted once per family per scrape, not once per
/// bucket per series. `None` marks a bound that is not written (`+Inf`, which the encoder adds
/// itself, or NaN); its count still accumulates into the next buckets.
#[derive(Default)]
struct LeCache {
    bounds: Vec<f64>,
    rendered: Vec<Option<String>>,
    om: bool,
    filled: bool,
}

impl LeCache {
    fn get(&mut self, bounds: &[f64], om: bool) -> &[Option<String>] {
        let same = self.filled
            && self.om == om
            && self.bounds.len() == bounds.len()
            && self.bounds.iter().zip(bounds).all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            self.bounds.clear();
            self.bounds.extend_from_slice(bounds);
            self.rendered.clear();
            self.rendered.extend(
                bounds
                    .iter()
                    .map(|&b| (!b.is_nan() && b != f64::INFINITY).then(|| format_le(b, om))),
            );
            self.om = om;
            self.filled = true;
        }
        &self.rendered
    }
}

/// An `le` label value as client_golang writes it: Go's `FormatFloat(b, 'g', -1, 64)` in the text
/// format (`0.005`, `1`, `1e+06`), and in OpenMetrics the same with `.0` added where there is
/// neither a `.` nor an exponent (`1.0`), as OpenMetrics wants canonical floats there.
fn format_le(b: f64, om: bool) -> String {
    if b == 0.0 {
        // Go writes both zeros as `0`.
        return if om { "0.0" } else { "0" }.to_owned();
    }
    let mut s = go_format_g(b);
    if om && !s.contains(['.', 'e', 'I', 'N']) {
        s.push_str(".0");
    }
    s
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the shortest digits that round-trip, positional
/// when the decimal exponent is in [-4, 6), otherwise `d.ddde±XX` with at least two exponent
/// digits.
fn go_format_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` is also shortest round-trip: "1.2345e6", "5e-7".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();

    let mut out = String::with_capacity(digits.len() + 8);
    if v < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push(char::from(digits[0]));
        if digits.len() > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&d| char::from(d)));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        for i in 0..int_len {
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
        if digits.len() > int_len {
            out.push('.');
            out.extend(digits[int_len..].iter().map(|&d| char::from(d)));
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.extend(digits.iter().map(|&d| char::from(d)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::naming::{metric_name, render_labels, unit_name, MetricType};
    use crate::exposition::{Labels, Series};
    use std::sync::Arc;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        let pairs: Vec<(String, String)> =
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        render_labels(&pairs)
    }

    fn number(labels: Labels, v: f64) -> Series {
        Series { labels, value: SeriesValue::Number(v), created_ms: 1_700_000_000_000 }
    }

    fn render(snapshot: &Snapshot, format: Format) -> String {
        let mut out = Vec::new();
        encode(&mut out, snapshot, format).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("the encoder writes UTF-8")
    }

    fn value_str(v: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("ASCII")
    }

    fn sample_snapshot() -> Snapshot {
        Snapshot {
            targets: vec![labels(&[
                ("job", "claude-code"),
                ("instance", "host-1"),
                ("os.type", "linux"),
            ])],
            families: vec![
                Family {
                    name: metric_name(
                        "claude_code.cost.usage",
                        "USD",
                        MetricType::MonotonicCounter,
                    ),
                    help: "Cost of the Claude Code session".into(),
                    unit: unit_name("USD", MetricType::MonotonicCounter),
                    kind: FamilyKind::Counter,
                    series: vec![
                        number(
                            labels(&[("model", "claude-sonnet-4"), ("session.id", "s1")]),
                            0.019299999999999998,
                        ),
                        number(labels(&[("model", "claude-opus-4"), ("session.id", "s1")]), 5.0),
                    ],
                },
                Family {
                    name: "empty_family_total".into(),
                    help: "never written".into(),
                    unit: String::new(),
                    kind: FamilyKind::Counter,
                    series: vec![],
                },
                Family {
                    name: "queue_depth".into(),
                    help: "Back\\slash, \"quotes\"\nand a newline".into(),
                    unit: String::new(),
                    kind: FamilyKind::Gauge,
                    series: vec![number(Arc::from(""), -3.0)],
                },
                Family {
                    name: metric_name("http.server.request.duration", "s", MetricType::Histogram),
                    help: "Request duration".into(),
                    unit: unit_name("s", MetricType::Histogram),
                    kind: FamilyKind::Histogram,
                    series: vec![
                        Series {
                            labels: labels(&[("route", "/v1/metrics")]),
                            value: SeriesValue::Histogram(HistogramValue {
                                bounds: vec![0.005, 1.0, 1e6],
                                counts: vec![1.0, 2.0, 0.0, 1.0],
                                sum: 2.5,
                                count: 4.0,
                            }),
                            created_ms: 0,
                        },
                        Series {
                            labels: Arc::from(""),
                            value: SeriesValue::Histogram(HistogramValue {
                                bounds: vec![0.005, 1.0, 1e6],
                                counts: vec![0.0, 0.0, 0.0, 0.0],
                                sum: 0.0,
                                count: 0.0,
                            }),
                            created_ms: 0,
                        },
                    ],
                },
            ],
        }
    }

    #[test]
    fn text_format_exact() {
        let want = concat!(
            "# HELP target_info Target metadata\n",
            "# TYPE target_info gauge\n",
            "target_info{instance=\"host-1\",job=\"claude-code\",os_type=\"linux\"} 1\n",
            "# HELP claude_code_cost_usage_USD_total Cost of the Claude Code session\n",
            "# TYPE claude_code_cost_usage_USD_total counter\n",
            "claude_code_cost_usage_USD_total{model=\"claude-sonnet-4\",session_id=\"s1\"} 0.019299999999999998\n",
            "claude_code_cost_usage_USD_total{model=\"claude-opus-4\",session_id=\"s1\"} 5\n",
            "# HELP queue_depth Back\\\\slash, \"quotes\"\\nand a newline\n",
            "# TYPE queue_depth gauge\n",
            "queue_depth -3\n",
            "# HELP http_server_request_duration_seconds Request duration\n",
            "# TYPE http_server_request_duration_seconds histogram\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"0.005\"} 1\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"1\"} 3\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"1e+06\"} 3\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"+Inf\"} 4\n",
            "http_server_request_duration_seconds_sum{route=\"/v1/metrics\"} 2.5\n",
            "http_server_request_duration_seconds_count{route=\"/v1/metrics\"} 4\n",
            "http_server_request_duration_seconds_bucket{le=\"0.005\"} 0\n",
            "http_server_request_duration_seconds_bucket{le=\"1\"} 0\n",
            "http_server_request_duration_seconds_bucket{le=\"1e+06\"} 0\n",
            "http_server_request_duration_seconds_bucket{le=\"+Inf\"} 0\n",
            "http_server_request_duration_seconds_sum 0\n",
            "http_server_request_duration_seconds_count 0\n",
        );
        assert_eq!(render(&sample_snapshot(), Format::Text004), want);
    }

    #[test]
    fn openmetrics_format_exact() {
        let want = concat!(
            "# HELP target Target metadata\n",
            "# TYPE target info\n",
            "target_info{instance=\"host-1\",job=\"claude-code\",os_type=\"linux\"} 1\n",
            "# HELP claude_code_cost_usage_USD Cost of the Claude Code session\n",
            "# TYPE claude_code_cost_usage_USD counter\n",
            "# UNIT claude_code_cost_usage_USD USD\n",
            "claude_code_cost_usage_USD_total{model=\"claude-sonnet-4\",session_id=\"s1\"} 0.019299999999999998\n",
            "claude_code_cost_usage_USD_total{model=\"claude-opus-4\",session_id=\"s1\"} 5\n",
            "# HELP queue_depth Back\\\\slash, \\\"quotes\\\"\\nand a newline\n",
            "# TYPE queue_depth gauge\n",
            "queue_depth -3\n",
            "# HELP http_server_request_duration_seconds Request duration\n",
            "# TYPE http_server_request_duration_seconds histogram\n",
            "# UNIT http_server_request_duration_seconds seconds\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"0.005\"} 1\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"1.0\"} 3\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"1e+06\"} 3\n",
            "http_server_request_duration_seconds_bucket{route=\"/v1/metrics\",le=\"+Inf\"} 4\n",
            "http_server_request_duration_seconds_sum{route=\"/v1/metrics\"} 2.5\n",
            "http_server_request_duration_seconds_count{route=\"/v1/metrics\"} 4\n",
            "http_server_request_duration_seconds_bucket{le=\"0.005\"} 0\n",
            "http_server_request_duration_seconds_bucket{le=\"1.0\"} 0\n",
            "http_server_request_duration_seconds_bucket{le=\"1e+06\"} 0\n",
            "http_server_request_duration_seconds_bucket{le=\"+Inf\"} 0\n",
            "http_server_request_duration_seconds_sum 0\n",
            "http_server_request_duration_seconds_count 0\n",
            "# EOF\n",
        );
        assert_eq!(render(&sample_snapshot(), Format::OpenMetrics100), want);
    }

    #[test]
    fn empty_snapshot() {
        let empty = Snapshot::default();
        assert_eq!(render(&empty, Format::Text004), "");
        assert_eq!(render(&empty, Format::OpenMetrics100), "# EOF\n");
    }

    #[test]
    fn unit_line_only_when_the_name_ends_with_it() {
        assert!(name_has_unit("a_seconds", "seconds"));
        assert!(!name_has_unit("a_seconds", ""));
        assert!(!name_has_unit("seconds", "seconds"));
        assert!(!name_has_unit("_seconds", "seconds"));
        assert!(!name_has_unit("aseconds", "seconds"));
        // `cpu.seconds.total` in `s`: the unit word is in the name but not at its end.
        assert!(!name_has_unit("cpu_seconds", "sec"));

        let family = Family {
            name: metric_name("cpu.seconds.used", "s", MetricType::MonotonicCounter),
            help: "h".into(),
            unit: "seconds".into(),
            kind: FamilyKind::Counter,
            series: vec![number(Arc::from(""), 1.5)],
        };
        let snap = Snapshot { families: vec![family], targets: vec![] };
        assert_eq!(
            render(&snap, Format::OpenMetrics100),
            "# HELP cpu_seconds_used h\n# TYPE cpu_seconds_used counter\ncpu_seconds_used_total 1.5\n# EOF\n"
        );
    }

    #[test]
    fn empty_help_and_mismatched_series_are_skipped() {
        let snap = Snapshot {
            targets: vec![],
            families: vec![
                Family {
                    name: "c_total".into(),
                    help: String::new(),
                    unit: String::new(),
                    kind: FamilyKind::Counter,
                    series: vec![
                        number(Arc::from(""), 1.0),
                        Series {
                            labels: Arc::from("x=\"y\""),
                            value: SeriesValue::Histogram(HistogramValue::default()),
                            created_ms: 0,
                        },
                    ],
                },
                Family {
                    name: "h".into(),
                    help: String::new(),
                    unit: String::new(),
                    kind: FamilyKind::Histogram,
                    series: vec![number(Arc::from(""), 1.0)],
                },
            ],
        };
        assert_eq!(
            render(&snap, Format::Text004),
            "# TYPE c_total counter\nc_total 1\n# TYPE h histogram\n"
        );
    }

    #[test]
    fn malformed_histograms_do_not_panic() {
        let hist = |bounds: Vec<f64>, counts: Vec<f64>| Series {
            labels: Arc::from(""),
            value: SeriesValue::Histogram(HistogramValue { bounds, counts, sum: 1.0, count: 3.0 }),
            created_ms: 0,
        };
        let snap = Snapshot {
            targets: vec![],
            families: vec![Family {
                name: "h".into(),
                help: String::new(),
                unit: String::new(),
                kind: FamilyKind::Histogram,
                series: vec![
                    hist(vec![1.0, 2.0], vec![]),
                    hist(vec![1.0, f64::INFINITY], vec![1.0, 1.0, 1.0]),
                    hist(vec![], vec![]),
                ],
            }],
        };
        assert_eq!(
            render(&snap, Format::Text004),
            concat!(
                "# TYPE h histogram\n",
                "h_bucket{le=\"1\"} 0\nh_bucket{le=\"2\"} 0\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n",
                "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n",
                "h_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n",
            )
        );
    }

    #[test]
    fn target_info_without_labels() {
        let snap = Snapshot { families: vec![], targets: vec![Arc::from("")] };
        assert_eq!(
            render(&snap, Format::Text004),
            "# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info 1\n"
        );
    }

    #[test]
    fn sample_values() {
        let cases = [
            (5.0, "5"),
            (0.0, "0"),
            (-0.0, "0"),
            (-7.0, "-7"),
            (1234567.0, "1234567"),
            (999_999_999_999_999.0, "999999999999999"),
            (1e15, "1000000000000000"),
            (0.019299999999999998, "0.019299999999999998"),
            (0.1 + 0.2, "0.30000000000000004"),
            (2.5, "2.5"),
            (-0.125, "-0.125"),
            (1e-5, "0.00001"),
            (1.5e-7, "1.5e-7"),
            (1e21, "1e+21"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            let got = value_str(v);
            assert_eq!(got, want, "value {v:?}");
            if v.is_finite() {
                assert_eq!(got.parse::<f64>().ok(), Some(v), "{got} must round-trip");
            }
        }
    }

    #[test]
    fn le_values_match_go() {
        let cases = [
            (0.005, "0.005", "0.005"),
            (1.0, "1", "1.0"),
            (-1.0, "-1", "-1.0"),
            (0.0, "0", "0.0"),
            (-0.0, "0", "0.0"),
            (2.5, "2.5", "2.5"),
            (10.0, "10", "10.0"),
            (100000.0, "100000", "100000.0"),
            (1e6, "1e+06", "1e+06"),
            (123456789.0, "1.23456789e+08", "1.23456789e+08"),
            (0.0001, "0.0001", "0.0001"),
            (0.00001, "1e-05", "1e-05"),
            (1.5e-10, "1.5e-10", "1.5e-10"),
            (1e21, "1e+21", "1e+21"),
            (1e100, "1e+100", "1e+100"),
            (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
            (f64::NAN, "NaN", "NaN"),
            (f64::NEG_INFINITY, "-Inf", "-Inf"),
        ];
        for (v, text, om) in cases {
            assert_eq!(format_le(v, false), text, "text le {v:?}");
            assert_eq!(format_le(v, true), om, "openmetrics le {v:?}");
        }
    }

    #[test]
    fn negotiation() {
        use Format::*;
        let cases: &[(Option<&str>, Format)] = &[
            (None, Text004),
            (Some(""), Text004),
            (Some("*/*"), Text004),
            (Some("text/plain"), Text004),
            (Some("text/plain; version=0.0.4"), Text004),
            (Some("application/openmetrics-text"), OpenMetrics100),
            (Some("Application/OpenMetrics-Text; Version=1.0.0"), OpenMetrics100),
            (Some("application/openmetrics-text;version=0.0.1"), OpenMetrics100),
            (Some("application/openmetrics-text;version=2.0.0"), Text004),
            (Some("application/openmetrics-text;q=0"), Text004),
            (Some("application/openmetrics-text;q=bogus"), Text004),
            // What Prometheus 2.x sends by default.
            (
                Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                OpenMetrics100,
            ),
            // Prometheus 3.x with UTF-8 escaping hints.
            (
                Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
                OpenMetrics100,
            ),
            // `scrape_protocols` preferring the classic text format.
            (
                Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5"),
                Text004,
            ),
            // Equal q: the first listed wins.
            (Some("text/plain, application/openmetrics-text"), Text004),
            (Some("application/openmetrics-text, text/plain"), OpenMetrics100),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), Text004),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(*accept), *want, "Accept: {accept:?}");
        }
        assert_eq!(Text004.content_type(), "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(
            OpenMetrics100.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    /// Scrape cost for 10k series. Timing is meaningless in debug builds and noisy on a shared
    /// box, so this is opt-in: `cargo test --release -p tokentray-core encode_10k -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore = "benchmark; run with --release --ignored"]
    fn encode_10k_series_timing() {
        let series: Vec<Series> = (0..10_000)
            .map(|i| {
                number(
                    labels(&[
                        ("model", "claude-sonnet-4-20250514"),
                        ("session.id", &format!("5f0c6a1e-2b7d-4c1a-9e53-{i:012}")),
                        ("type", if i % 2 == 0 { "input" } else { "cacheRead" }),
                        ("user.account_uuid", "0d5b2c8e-7a61-4f0e-b1a3-6c2d9e8f7a10"),
                    ]),
                    if i % 3 == 0 { f64::from(i) * 1000.0 } else { f64::from(i) * 0.0017 },
                )
            })
            .collect();
        let snap = Snapshot {
            targets: vec![],
            families: vec![Family {
                name: "claude_code_token_usage_tokens_total".into(),
                help: "Number of tokens used".into(),
                unit: "tokens".into(),
                kind: FamilyKind::Counter,
                series,
            }],
        };
        let mut out = Vec::with_capacity(2 << 20);
        let runs = 50;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            out.clear();
            encode(&mut out, &snap, Format::Text004).expect("Vec write");
        }
        let per_scrape = start.elapsed() / runs;
        println!("10k series: {per_scrape:?} per scrape, {} bytes", out.len());
    }
}
