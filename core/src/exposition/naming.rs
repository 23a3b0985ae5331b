//! OTLP → Prometheus name translation, ported from `prometheus/otlptranslator`.
//!
//! Dashboards built on the OpenTelemetry Collector's `prometheus` exporter query the names that
//! exporter produces, so `/metrics` must spell every metric and label name exactly as it does. The
//! Collector delegates naming to `otlptranslator` with the default `UnderscoreEscapingWithSuffixes`
//! strategy (legacy `[a-zA-Z0-9:_]` character set, unit and type suffixes added); this module is a
//! port of that strategy only — the UTF-8 and suffix-less strategies are deliberately absent.
//!
//! Sources ported (the Go function names are kept in comments so the two can be compared):
//! `metric_namer.go` (`normalizeName`, `addUnitTokens`), `unit_namer.go` (`buildUnitSuffixes`,
//! `cleanUpUnit`, `UnitNamer.Build`), `label_namer.go` (`LabelNamer.Build`) and `strconv.go`
//! (`sanitizeLabelName`). Quirks of the Go code are kept on purpose (for instance a per-unit such
//! as `per_second` is never recognised as already present in a name, because name tokens are split
//! on `_`): matching the Collector byte for byte matters more here than tidiness.
//!
//! Everything here runs once per new metric or series, never per scrape, so it favours clarity
//! over avoiding allocations.

use std::sync::Arc;

use super::Labels;

/// OTLP metric kind, as far as it matters for naming.
///
/// Mirrors the subset of `otlptranslator.MetricType` that OTLP can produce. Only the distinctions
/// that change a name are kept: monotonic counters get `_total`, and gauges with unit `1` get
/// `_ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// Monotonic OTLP sum: a Prometheus counter, named with a trailing `_total`.
    MonotonicCounter,
    /// OTLP gauge. Unit `1` adds a `_ratio` suffix.
    ///
    /// A non-monotonic sum is also a Prometheus gauge, but use [`MetricType::NonMonotonicSum`] for
    /// it: the Collector does not add `_ratio` to non-monotonic sums.
    Gauge,
    /// Non-monotonic OTLP sum (an up-down counter): exposed as a Prometheus gauge, but named like
    /// `otlptranslator.MetricTypeNonMonotonicCounter`, i.e. without the `_ratio` rule of gauges.
    NonMonotonicSum,
    /// Explicit-bucket (or exponential) histogram; the name carries no type suffix, the
    /// `_bucket`/`_sum`/`_count` sample suffixes are the encoder's business.
    Histogram,
}

/// OTLP (UCUM) units with a Prometheus base-unit word (otlptranslator `unitMap`).
///
/// Unknown units are kept as written (e.g. `USD`, `tokens`). `1` maps to nothing: a dimensionless
/// gauge gets `_ratio` through a separate rule instead.
fn unit_word(unit: &str) -> &str {
    match unit {
        // Time
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        // Bytes. `TiBy` keeps otlptranslator's historical spelling, which released Collectors use.
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        // SI
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        // Misc
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The denominator of a rate unit (`By/s` → `second`), singular (otlptranslator `perUnitMap`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Characters allowed in a metric name token. `_` is not among them: it separates tokens.
fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Splits an OTLP unit into its main and per parts, mapped to words but not yet cleaned up
/// (otlptranslator `buildUnitSuffixes`). Annotations in braces (`{token}`) drop the whole part.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main_otel = parts.next().unwrap_or("").trim();
    let main = if !main_otel.is_empty() && !main_otel.contains(['{', '}']) {
        unit_word(main_otel).to_owned()
    } else {
        String::new()
    };

    let mut per = String::new();
    if let Some(per_raw) = parts.next().filter(|p| !p.is_empty()) {
        let per_otel = per_raw.trim();
        if !per_otel.is_empty() && !per_otel.contains(['{', '}']) {
            let word = per_unit_word(per_otel);
            if !word.is_empty() {
                per = format!("per_{word}");
            }
        }
    }
    (main, per)
}

/// Replaces characters outside `[a-zA-Z0-9:]` with `_`, collapses runs of `_` and drops one
/// leading `_` (otlptranslator `cleanUpUnit`).
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// The Prometheus metric name the Collector's `prometheus` exporter gives an OTLP metric.
///
/// Port of otlptranslator `MetricNamer.Build` with `WithMetricSuffixes: true, UTF8Allowed: false`
/// and no namespace:
/// 1. the OTLP name is split into tokens on every character outside `[a-zA-Z0-9:]` (so `.`, `-`
///    and runs of `_` all become a single `_`);
/// 2. the unit is appended unless a token already equals it: UCUM units become words (`s` →
///    `seconds`, `By` → `bytes`), a rate becomes `…_per_<unit>` (`By/s` → `bytes_per_second`),
///    `{annotations}` are dropped, and unknown units are kept as written (`USD`, `tokens`);
/// 3. monotonic counters get `total` moved to (or added at) the end; gauges with unit `1` get
///    `ratio` likewise;
/// 4. a name starting with a digit is prefixed with `_`.
///
/// Returns an empty string when nothing valid is left (e.g. a name made only of punctuation); the
/// Collector drops such metrics with an error, and callers should drop them too.
///
/// ```
/// use tokentray_core::exposition::naming::{metric_name, MetricType};
/// assert_eq!(
///     metric_name("claude_code.cost.usage", "USD", MetricType::MonotonicCounter),
///     "claude_code_cost_usage_USD_total"
/// );
/// ```
#[must_use]
pub fn metric_name(otel_name: &str, unit: &str, kind: MetricType) -> String {
    // normalizeName
    let mut tokens: Vec<&str> =
        otel_name.split(|c: char| !is_metric_char(c)).filter(|t| !t.is_empty()).collect();

    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_up_unit(&main), clean_up_unit(&per));

    // addUnitTokens. The unit strings are compared against whole tokens; since tokens never hold
    // `_`, a multi-word unit (`per_second`) is never found and is always appended, as in Go.
    let mut main: &str = if tokens.contains(&main.as_str()) { "" } else { &main };
    let per: &str = if per == "per_" {
        ""
    } else {
        let trimmed = per.strip_suffix('_').unwrap_or(&per);
        if tokens.contains(&trimmed) {
            ""
        } else {
            trimmed
        }
    };
    if !per.is_empty() {
        main = main.strip_suffix('_').unwrap_or(main);
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }

    if kind == MetricType::MonotonicCounter {
        tokens.retain(|t| *t != "total");
        tokens.push("total");
    }
    // Go compares the raw unit, not a trimmed one, and only for gauges proper.
    if unit == "1" && kind == MetricType::Gauge {
        tokens.retain(|t| *t != "ratio");
        tokens.push("ratio");
    }

    let joined = tokens.join("_");
    if joined.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// The Prometheus unit of an OTLP metric, as OpenMetrics `# UNIT` states it (`seconds`, `USD`,
/// `bytes_per_second`); empty when there is none.
///
/// Port of otlptranslator `UnitNamer.Build` with `UTF8Allowed: false` (mapped, cleaned up, with
/// leading and trailing `_` trimmed), plus one addition: a gauge with unit `1` reports `ratio`,
/// the suffix [`metric_name`] gave it, where `UnitNamer` would report nothing. The Collector writes
/// no `# UNIT` line at all, so this only adds information for OpenMetrics scrapers.
#[must_use]
pub fn unit_name(unit: &str, kind: MetricType) -> String {
    if unit == "1" && kind == MetricType::Gauge {
        return "ratio".to_owned();
    }
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_up_unit(&main), clean_up_unit(&per));
    let joined = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    let trimmed = joined.strip_prefix('_').unwrap_or(&joined);
    let trimmed = trimmed.strip_suffix('_').unwrap_or(trimmed);
    trimmed.to_owned()
}

/// How attribute keys become label names: the two knobs of otlptranslator's `LabelNamer` that
/// differ between Collector and Prometheus releases.
///
/// [`label_name`] uses [`LabelNaming::DEFAULT`]; the knobs exist so that matching a specific
/// Collector configuration is a one-line change, and so the tests can pin both behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LabelNaming {
    /// Prefix `key` to names that start with exactly one `_` (`_foo` → `key_foo`).
    pub underscore_label_sanitization: bool,
    /// Keep runs of `_` (`a..b` → `a__b`); when false they collapse to one (`a_b`), except inside
    /// the reserved `__…__` form.
    pub preserve_multiple_underscores: bool,
}

impl LabelNaming {
    /// Prefix `key` to a single leading `_`, keep runs of `_`.
    ///
    /// This is the long-standing behaviour of the Collector's exporter (before it moved to
    /// otlptranslator, and with `pkg.translator.prometheus.PermissiveLabelSanitization` off, the
    /// default) and the default of Prometheus' own OTLP receiver since 3.8. Some Collector
    /// releases since the otlptranslator migration differ on one knob or the other; Claude Code's
    /// attribute keys (`session.id`, `model`, `type`, …) translate identically under all of them.
    pub(crate) const DEFAULT: LabelNaming =
        LabelNaming { underscore_label_sanitization: true, preserve_multiple_underscores: true };

    /// Translates one attribute key to a label name (otlptranslator `LabelNamer.Build` with
    /// `UTF8Allowed: false`).
    ///
    /// Returns an empty string where otlptranslator returns an error: an empty key, or one that
    /// becomes only underscores (e.g. `ようこそ`). Such keys cannot be expressed as labels.
    #[must_use]
    pub(crate) fn build(&self, key: &str) -> String {
        if key.is_empty() {
            return String::new();
        }
        let mut name = sanitize_label_name(key, self.preserve_multiple_underscores);
        if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            name.insert_str(0, "key_");
        } else if self.underscore_label_sanitization
            && name.starts_with('_')
            && !name.starts_with("__")
        {
            name.insert_str(0, "key");
        }
        if name.bytes().all(|b| b == b'_') {
            return String::new();
        }
        name
    }
}

impl Default for LabelNaming {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// otlptranslator `sanitizeLabelName`: every character outside `[a-zA-Z0-9]` becomes `_` (one per
/// character, so a non-ASCII character is one `_`, not one per byte).
fn sanitize_label_name(name: &str, preserve_multiple_underscores: bool) -> String {
    let mut out = String::with_capacity(name.len());
    if preserve_multiple_underscores {
        out.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
        return out;
    }
    // A reserved `__x__` name keeps its outer double underscores; only the inside collapses.
    let reserved = name.len() >= 4 && name.starts_with("__") && name.ends_with("__");
    let inner = if reserved { &name[2..name.len() - 2] } else { name };
    if reserved {
        out.push_str("__");
    }
    let mut prev_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_underscore = false;
        } else if !prev_underscore {
            out.push('_');
            prev_underscore = true;
        }
    }
    if reserved {
        out.push_str("__");
    }
    out
}

/// The Prometheus label name for an OTLP attribute key: `.` and every other character outside
/// `[a-zA-Z0-9_]` become `_`, a leading digit gets `key_`, a single leading `_` gets `key` (see
/// [`LabelNaming::DEFAULT`]).
///
/// Returns an empty string when the key cannot be a label name (empty, or only underscores once
/// sanitised); [`render_labels`] drops such pairs.
#[must_use]
pub fn label_name(key: &str) -> String {
    LabelNaming::DEFAULT.build(key)
}

/// Renders a series' labels once, for the text formats: `name="value",name2="value2"` without
/// braces, or an empty string when there are none.
///
/// `pairs` are **(original OTLP attribute key, value)**: keys are translated here with
/// [`label_name`], because merging keys that collide after translation (`a.b` and `a_b` both
/// become `a_b`) depends on the original keys. As Prometheus' OTLP translator does, pairs are
/// stably sorted by original key (byte order) and colliding values are joined with `;` in that
/// order; the result is sorted by label name, as client libraries write it. Keys already in
/// Prometheus form (`job`, `instance`, `otel_scope_name`) pass through translation unchanged.
/// Keys that cannot be label names are dropped. Values are escaped for the text formats (`\` →
/// `\\`, `"` → `\"`, newline → `\n`); empty values are kept, as the Collector writes them.
#[must_use]
pub fn render_labels(pairs: &[(String, String)]) -> Labels {
    let mut merged = merge_translated(pairs);
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    write_labels(&merged)
}

/// Label names tokentray sets itself on every series (from the resource and the scope, as
/// otlptranslator does); an attribute translating to one of them would be emitted twice.
pub(crate) const OWN_LABELS: &[&str] =
    &["job", "instance", "otel_scope_name", "otel_scope_version", "otel_scope_schema_url"];

/// Whether an attribute's translated label name may be shown: not reserved by Prometheus
/// (`__name__`, any `__*`), not one of [`OWN_LABELS`], not in `kind_reserved` (`le` on
/// histograms, `quantile` on summaries).
#[must_use]
pub(crate) fn is_free_label(name: &str, kind_reserved: &[&str]) -> bool {
    !name.starts_with("__") && !OWN_LABELS.contains(&name) && !kind_reserved.contains(&name)
}

/// The labels of one series: its attributes (translated and merged as [`render_labels`] does)
/// and the labels tokentray sets itself (`own`: `job`, `instance`, `otel_scope_*`).
///
/// Like Prometheus' OTLP translator, tokentray's own labels win: an attribute that translates to
/// one of them, to a reserved `__*` name or to a name in `kind_reserved` (`le` on histograms) is
/// dropped, never emitted twice. Returns the labels and the (translated) names of the
/// attributes dropped.
#[must_use]
pub(crate) fn render_series_labels(
    attrs: &[(String, String)],
    own: &[(String, String)],
    kind_reserved: &[&str],
) -> (Labels, Vec<String>) {
    let (mut merged, dropped): (Vec<_>, Vec<_>) = merge_translated(attrs)
        .into_iter()
        .partition(|(name, _)| is_free_label(name, kind_reserved));
    let dropped = dropped.into_iter().map(|(name, _)| name).collect();
    merged.extend(own.iter().filter(|(_, v)| !v.is_empty()).cloned());
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    (write_labels(&merged), dropped)
}

/// Labels rendered by an older tokentray (stored with the series) without those that are not
/// free any more (see [`is_free_label`]; tokentray's own labels are kept): a series persisted
/// with an `__name__` attribute is shown without it.
#[must_use]
pub(crate) fn without_reserved(labels: &str, kind_reserved: &[&str]) -> Labels {
    let pairs = split_rendered(labels);
    let keep = |name: &str| !name.starts_with("__") && !kind_reserved.contains(&name);
    if pairs.iter().all(|(name, _)| keep(name)) {
        return Labels::from(labels);
    }
    let kept: Vec<&str> =
        pairs.iter().filter(|(name, _)| keep(name)).map(|(_, pair)| *pair).collect();
    Labels::from(kept.join(","))
}

/// Splits `a="x",b="y\"z"` into `(name, whole pair)`, honouring escapes inside values.
fn split_rendered(labels: &str) -> Vec<(&str, &str)> {
    let bytes = labels.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let Some(eq) = labels[i..].find("=\"").map(|p| i + p) else { break };
        let mut j = eq + 2;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        let end = (j + 1).min(bytes.len());
        out.push((&labels[start..eq], &labels[start..end]));
        i = end + 1; // past the comma
        start = i;
    }
    out
}

/// Translates keys and merges the values of keys that collide after translation (in original key
/// order, joined with `;`); keys that cannot be label names are dropped.
fn merge_translated(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut order: Vec<&(String, String)> = pairs.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0)); // stable

    let mut merged: Vec<(String, String)> = Vec::with_capacity(order.len());
    let mut index: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(order.len());
    for (key, value) in order {
        let name = label_name(key);
        if name.is_empty() {
            continue;
        }
        match index.get(&name) {
            Some(&at) => {
                let existing = &mut merged[at].1;
                existing.push(';');
                existing.push_str(value);
            }
            None => {
                index.insert(name.clone(), merged.len());
                merged.push((name, value.clone()));
            }
        }
    }
    merged
}

/// `name="value",…` for pairs already sorted by name.
fn write_labels(merged: &[(String, String)]) -> Labels {
    let mut out =
        String::with_capacity(merged.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
    for (i, (name, value)) in merged.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(value, &mut out);
        out.push('"');
    }
    Arc::from(out)
}

/// Escapes a label value for both text formats: `\`, `"` and newline are the only characters
/// that need it.
fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricType::*;

    #[test]
    fn claude_code_metric_names() {
        let cases = [
            ("claude_code.cost.usage", "USD", "claude_code_cost_usage_USD_total"),
            ("claude_code.token.usage", "tokens", "claude_code_token_usage_tokens_total"),
            ("claude_code.active_time.total", "s", "claude_code_active_time_seconds_total"),
            ("claude_code.session.count", "", "claude_code_session_count_total"),
            ("claude_code.session.count", "count", "claude_code_session_count_total"),
            ("claude_code.lines_of_code.count", "count", "claude_code_lines_of_code_count_total"),
            ("claude_code.lines_of_code.count", "", "claude_code_lines_of_code_count_total"),
            (
                "claude_code.code_edit_tool.decision",
                "",
                "claude_code_code_edit_tool_decision_total",
            ),
            ("claude_code.commit.count", "", "claude_code_commit_count_total"),
            ("claude_code.pull_request.count", "", "claude_code_pull_request_count_total"),
        ];
        for (name, unit, want) in cases {
            assert_eq!(metric_name(name, unit, MonotonicCounter), want, "{name} [{unit}]");
        }
        assert_eq!(unit_name("USD", MonotonicCounter), "USD");
        assert_eq!(unit_name("tokens", MonotonicCounter), "tokens");
        assert_eq!(unit_name("s", MonotonicCounter), "seconds");
        assert_eq!(unit_name("", MonotonicCounter), "");
    }

    /// `TestMetricNamer_Build`, the `UTF8Allowed: false, WithMetricSuffixes: true` cases without a
    /// namespace: (name, unit, type, metric name, unit name).
    #[test]
    fn otlptranslator_metric_namer_cases() {
        let cases: &[(&str, &str, MetricType, &str, &str)] = &[
            ("requests", "", MonotonicCounter, "requests_total", ""),
            ("cpu_usage", "1", Gauge, "cpu_usage_ratio", "ratio"),
            ("items", "1", MonotonicCounter, "items_total", ""),
            ("response_time", "ms", Gauge, "response_time_milliseconds", "milliseconds"),
            ("memory_usage", "By", Gauge, "memory_usage_bytes", "bytes"),
            ("requests", "1/s", Gauge, "requests_per_second", "per_second"),
            ("throughput", "By/s", Gauge, "throughput_bytes_per_second", "bytes_per_second"),
            ("custom_metric", "custom_unit", Gauge, "custom_metric_custom_unit", "custom_unit"),
            ("custom_metric", "{custom}", Gauge, "custom_metric", ""),
            ("custom_metric", "By/{custom}", Gauge, "custom_metric_bytes", "bytes"),
            ("requests_total", "", MonotonicCounter, "requests_total", ""),
            ("cpu_usage_ratio", "1", Gauge, "cpu_usage_ratio", "ratio"),
            ("response_time_seconds", "s", Gauge, "response_time_seconds", "seconds"),
            (
                "metric__with__multiple__underscores",
                "unit__multiple__underscores",
                Gauge,
                "metric_with_multiple_underscores_unit_multiple_underscores",
                "unit_multiple_underscores",
            ),
            (
                "custom_metric",
                "unit@with#special/chars",
                Gauge,
                "custom_metric_unit_with_special_per_chars",
                "unit_with_special_per_chars",
            ),
            ("@#$%", "", Gauge, "", ""),
            ("request_duration", "s", Histogram, "request_duration_seconds", "seconds"),
            ("active_connections", "", NonMonotonicSum, "active_connections", ""),
            ("uptime", "d", Gauge, "uptime_days", "days"),
            ("duration", "h", Gauge, "duration_hours", "hours"),
            ("timeout", "min", Gauge, "timeout_minutes", "minutes"),
            ("latency", "us", Gauge, "latency_microseconds", "microseconds"),
            ("precision_time", "ns", Gauge, "precision_time_nanoseconds", "nanoseconds"),
            ("cache_size", "KiBy", Gauge, "cache_size_kibibytes", "kibibytes"),
            ("memory", "MiBy", Gauge, "memory_mebibytes", "mebibytes"),
            ("storage", "GiBy", Gauge, "storage_gibibytes", "gibibytes"),
            ("capacity", "TiBy", Gauge, "capacity_tibibytes", "tibibytes"),
            ("transfer", "KBy", Gauge, "transfer_kilobytes", "kilobytes"),
            ("download", "MBy", Gauge, "download_megabytes", "megabytes"),
            ("backup", "GBy", Gauge, "backup_gigabytes", "gigabytes"),
            ("archive", "TBy", Gauge, "archive_terabytes", "terabytes"),
            ("distance", "m", Gauge, "distance_meters", "meters"),
            ("voltage", "V", Gauge, "voltage_volts", "volts"),
            ("current", "A", Gauge, "current_amperes", "amperes"),
            ("energy", "J", Gauge, "energy_joules", "joules"),
            ("power", "W", Gauge, "power_watts", "watts"),
            ("weight", "g", Gauge, "weight_grams", "grams"),
            ("temperature", "Cel", Gauge, "temperature_celsius", "celsius"),
            ("frequency", "Hz", Gauge, "frequency_hertz", "hertz"),
            ("cpu_usage", "%", Gauge, "cpu_usage_percent", "percent"),
            ("requests", "1/m", Gauge, "requests_per_minute", "per_minute"),
            ("events", "1/h", Gauge, "events_per_hour", "per_hour"),
            ("transactions", "1/d", Gauge, "transactions_per_day", "per_day"),
            ("reports", "1/w", Gauge, "reports_per_week", "per_week"),
            ("invoices", "1/mo", Gauge, "invoices_per_month", "per_month"),
            ("renewals", "1/y", Gauge, "renewals_per_year", "per_year"),
            ("custom", "1/custom_unit", Gauge, "custom_per_custom_unit", "per_custom_unit"),
            ("metric", "By/", Gauge, "metric_bytes", "bytes"),
            ("metric", " By / s ", Gauge, "metric_bytes_per_second", "bytes_per_second"),
            ("metric", "/", Gauge, "metric", ""),
            (
                "http.request.duration",
                "ms",
                Histogram,
                "http_request_duration_milliseconds",
                "milliseconds",
            ),
            ("http.requests", "1", MonotonicCounter, "http_requests_total", ""),
        ];
        for &(name, unit, kind, want_name, want_unit) in cases {
            assert_eq!(
                metric_name(name, unit, kind),
                want_name,
                "name of {name} [{unit}] {kind:?}"
            );
            assert_eq!(unit_name(unit, kind), want_unit, "unit of {name} [{unit}] {kind:?}");
            assert!(want_name.contains(want_unit), "{want_name} should contain {want_unit}");
        }
    }

    /// The no-suffix cases of `TestMetricNamer_Build` that still apply with suffixes: special
    /// characters become one `_`, a leading digit gets `_`.
    #[test]
    fn metric_name_characters_and_digits() {
        assert_eq!(
            metric_name("metric@with#special$chars", "", Gauge),
            "metric_with_special_chars"
        );
        assert_eq!(metric_name("metric@@##$$name", "", Gauge), "metric_name");
        assert_eq!(metric_name("123metric", "", Gauge), "_123metric");
        assert_eq!(metric_name("123_requests", "", MonotonicCounter), "_123_requests_total");
        assert_eq!(metric_name("", "", Gauge), "");
        assert_eq!(metric_name("", "", MonotonicCounter), "total");
        // Colons are legal in metric names and are kept.
        assert_eq!(metric_name("a:b.c", "", Gauge), "a:b_c");
        // Non-ASCII characters separate tokens.
        assert_eq!(metric_name("métric_ñ", "", Gauge), "m_tric");
        // `total` anywhere moves to the end; `ratio` likewise for `1` gauges only.
        assert_eq!(metric_name("total.requests", "", MonotonicCounter), "requests_total");
        assert_eq!(metric_name("ratio.used", "1", Gauge), "used_ratio");
        assert_eq!(metric_name("ratio.used", "1", NonMonotonicSum), "ratio_used");
        assert_eq!(metric_name("used", "1", Histogram), "used");
    }

    #[test]
    fn metric_name_unit_quirks_match_go() {
        // A unit word already present as a token is not repeated ...
        assert_eq!(metric_name("cpu.seconds.total", "s", MonotonicCounter), "cpu_seconds_total");
        // ... but a per-unit never matches a single token, so Go appends it again.
        assert_eq!(
            metric_name("requests_per_second", "1/s", Gauge),
            "requests_per_second_per_second"
        );
        // The main unit loses a trailing `_` only when a per-unit follows.
        assert_eq!(metric_name("m", "u_/s", Gauge), "m_u_per_second");
        // ... while `UnitNamer` keeps it, so name and unit disagree, as they do in Go.
        assert_eq!(unit_name("u_/s", Gauge), "u__per_second");
        // A per-unit that cleans up to nothing is dropped.
        assert_eq!(metric_name("m", "By/@", Gauge), "m_bytes");
        // `1` is only special when it is the whole unit.
        assert_eq!(metric_name("m", " 1", Gauge), "m");
        assert_eq!(metric_name("m", "1/s", MonotonicCounter), "m_per_second_total");
    }

    /// `TestUnitNamer_Build` with `UTF8Allowed: false`.
    #[test]
    fn otlptranslator_unit_namer_cases() {
        let cases = [
            ("", ""),
            ("   ", ""),
            ("s", "seconds"),
            ("1", ""),
            ("1/s", "per_second"),
            ("By/s", "bytes_per_second"),
            ("KBy/s", "kilobytes_per_second"),
            ("MBy/h", "megabytes_per_hour"),
            ("requests/m", "requests_per_minute"),
            ("W/h", "watts_per_hour"),
            ("custom_unit", "custom_unit"),
            ("1/custom", "per_custom"),
            ("custom/custom", "custom_per_custom"),
            ("{custom}", ""),
            ("By/{custom}", "bytes"),
            ("{custom}/s", "per_second"),
            ("{custom}/{invalid}", ""),
            ("custom@unit#with$chars", "custom_unit_with_chars"),
            ("By/custom@per#unit", "bytes_per_custom_per_unit"),
            ("unit@@##$$name", "unit_name"),
            ("unit__with__multiple__underscores", "unit_with_multiple_underscores"),
            ("@#$%", ""),
            ("/", ""),
            ("By/", "bytes"),
            ("seconds/", "seconds"),
            ("/s", "per_second"),
            ("_custom_unit", "custom_unit"),
            ("custom_unit_", "custom_unit"),
            ("By/_custom__unit_", "bytes_per_custom_unit"),
        ];
        for (unit, want) in cases {
            // A histogram, so that the `ratio` addition for `1` gauges does not apply.
            assert_eq!(unit_name(unit, Histogram), want, "unit {unit:?}");
        }
        assert_eq!(unit_name("1", Gauge), "ratio");
        assert_eq!(unit_name("1", NonMonotonicSum), "");
    }

    /// `labelTestCases` and `TestBuildLabel_Underscores` from `label_namer_test.go`, for both
    /// settings of each knob.
    #[test]
    fn otlptranslator_label_namer_cases() {
        let collapse_no_key = LabelNaming {
            underscore_label_sanitization: false,
            preserve_multiple_underscores: false,
        };
        // (key, otlptranslator zero-value LabelNamer, our default)
        let cases = [
            ("label:with:colons", "label_with_colons", "label_with_colons"),
            ("LabelWithCapitalLetters", "LabelWithCapitalLetters", "LabelWithCapitalLetters"),
            ("label!with&special$chars)", "label_with_special_chars_", "label_with_special_chars_"),
            (
                "label_with_foreign_characters_字符",
                "label_with_foreign_characters_",
                "label_with_foreign_characters___",
            ),
            ("label.with.dots", "label_with_dots", "label_with_dots"),
            ("123label", "key_123label", "key_123label"),
            (
                "_label_starting_with_underscore",
                "_label_starting_with_underscore",
                "key_label_starting_with_underscore",
            ),
            (
                "__label_starting_with_2underscores",
                "_label_starting_with_2underscores",
                "__label_starting_with_2underscores",
            ),
            ("ようこそ", "", ""),
            ("regular label", "regular_label", "regular_label"),
            ("", "", ""),
            ("__", "", ""),
            ("__name__", "__name__", "__name__"),
            ("a__b", "a_b", "a__b"),
            ("a..b", "a_b", "a__b"),
            ("__a..b__", "__a_b__", "__a__b__"),
        ];
        for (key, zero_value, ours) in cases {
            assert_eq!(collapse_no_key.build(key), zero_value, "zero-value namer, {key:?}");
            assert_eq!(label_name(key), ours, "default namer, {key:?}");
        }
        // The current Collector test for the gate-disabled path: collapse and `key` prefix.
        let collapse_key = LabelNaming {
            underscore_label_sanitization: true,
            preserve_multiple_underscores: false,
        };
        assert_eq!(collapse_key.build("a__b"), "a_b");
        assert_eq!(collapse_key.build("_foo"), "key_foo");
        assert_eq!(collapse_key.build("__name__"), "__name__");
    }

    #[test]
    fn claude_code_label_names() {
        for (key, want) in [
            ("session.id", "session_id"),
            ("user.account_uuid", "user_account_uuid"),
            ("organization.id", "organization_id"),
            ("user.email", "user_email"),
            ("terminal.type", "terminal_type"),
            ("app.version", "app_version"),
            ("model", "model"),
            ("type", "type"),
            ("tool_name", "tool_name"),
            ("decision", "decision"),
            ("language", "language"),
            ("service.name", "service_name"),
            ("job", "job"),
            ("otel_scope_name", "otel_scope_name"),
        ] {
            assert_eq!(label_name(key), want);
        }
    }

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn attributes_never_shadow_reserved_or_own_labels() {
        let attrs = pairs(&[
            ("__name__", "x"),
            ("job", "x"),
            ("otel.scope.name", "x"),
            ("le", "x"),
            ("__x", "x"),
            ("model", "m"),
        ]);
        let own = pairs(&[("job", "claude-code"), ("otel_scope_name", "s"), ("instance", "")]);
        let (labels, dropped) = render_series_labels(&attrs, &own, &["le"]);
        assert_eq!(&*labels, r#"job="claude-code",model="m",otel_scope_name="s""#);
        assert_eq!(dropped, ["__name__", "__x", "job", "le", "otel_scope_name"]);
    }

    #[test]
    fn labels_persisted_by_an_older_version_lose_reserved_names() {
        let stored = r#"__name__="a\",b",job="j",le="5",model="m\"x""#;
        assert_eq!(&*without_reserved(stored, &["le"]), r#"job="j",model="m\"x""#);
        assert_eq!(&*without_reserved(stored, &[]), r#"job="j",le="5",model="m\"x""#);
        assert_eq!(&*without_reserved(r#"model="m""#, &["le"]), r#"model="m""#);
        assert_eq!(&*without_reserved("", &["le"]), "");
    }

    #[test]
    fn render_labels_sorts_and_escapes() {
        assert_eq!(&*render_labels(&[]), "");
        let got = render_labels(&pairs(&[
            ("type", "input"),
            ("model", "claude-sonnet-4"),
            ("session.id", "a\\b\"c\nd"),
        ]));
        assert_eq!(&*got, r#"model="claude-sonnet-4",session_id="a\\b\"c\nd",type="input""#);
        // Unicode passes through unescaped; empty values are kept.
        assert_eq!(&*render_labels(&pairs(&[("k", "ü€"), ("e", "")])), r#"e="",k="ü€""#);
    }

    #[test]
    fn render_labels_merges_collisions_in_original_key_order() {
        // `a.b` < `a/b` < `a_b` in byte order, whatever order they arrive in.
        let got = render_labels(&pairs(&[("a_b", "3"), ("a.b", "1"), ("z", "z"), ("a/b", "2")]));
        assert_eq!(&*got, r#"a_b="1;2;3",z="z""#);
        // Invalid keys are dropped.
        assert_eq!(
            &*render_labels(&pairs(&[("", "x"), ("ようこそ", "y"), ("ok", "1")])),
            r#"ok="1""#
        );
    }
}
