//! Pushed groups on `/metrics`, written after tokentray's own families.
//!
//! Each metric name gets one `# HELP`/`# TYPE` with the samples of every group under it (the
//! help of the first group that has one), then `push_time_seconds` and
//! `push_failure_time_seconds` per group, as Pushgateway exposes them. The samples carry their
//! grouping labels, so a Prometheus scraping with `honor_labels: true` keeps the pushed `job` and
//! `instance`.
//!
//! Names tokentray itself exposes win: a pushed family whose name (or one of its sample names)
//! is also a name in tokentray's own output is left out, so the exposition never has two
//! `# TYPE` lines for one name. A push is refused when it collides at the time it is made; this
//! covers the case where tokentray's own series appear later.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use super::{PushedFamily, PushedGroup, PushedKind, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::exposition::encode::{write_escaped_help, write_value};
use crate::exposition::{FamilyKind, Snapshot};

/// Every name a snapshot's exposition uses: families, their metadata names in OpenMetrics,
/// histogram sample names, `target_info`.
pub(crate) fn names_in(snapshot: &Snapshot) -> HashSet<String> {
    let mut names = HashSet::new();
    if !snapshot.targets.is_empty() {
        names.insert("target_info".to_string());
        names.insert("target".to_string());
    }
    for family in snapshot.families.iter().filter(|f| !f.series.is_empty()) {
        names.insert(family.name.clone());
        match family.kind {
            FamilyKind::Counter => {
                if let Some(stem) = family.name.strip_suffix("_total") {
                    names.insert(stem.to_string());
                }
            }
            FamilyKind::Histogram => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{}{suffix}", family.name));
                }
            }
            FamilyKind::Gauge => {}
        }
    }
    names
}

/// The names a pushed family would use on `/metrics`.
pub(crate) fn names_of(family: &PushedFamily) -> impl Iterator<Item = &str> {
    std::iter::once(family.name.as_str())
        .chain(family.name.strip_suffix("_total").filter(|_| family.kind == PushedKind::Counter))
        .chain(family.samples.iter().map(|s| s.name.as_str()))
}

/// The first pushed name that is taken by tokentray's own output, if any.
pub(crate) fn collision<'a>(
    families: &'a [PushedFamily],
    taken: &HashSet<String>,
) -> Option<&'a str> {
    families.iter().flat_map(names_of).find(|n| taken.contains(*n))
}

/// Writes `groups` (in the order given) in text 0.0.4 or, with `open_metrics`, OpenMetrics
/// (without the final `# EOF`, which the caller writes after everything).
pub(crate) fn write<W: Write>(
    out: &mut W,
    groups: &[PushedGroup],
    taken: &HashSet<String>,
    open_metrics: bool,
) -> io::Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    // Families by name, in order of first appearance.
    let mut order: Vec<&str> = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<&PushedFamily>> = BTreeMap::new();
    for family in groups.iter().flat_map(|g| &g.families) {
        if names_of(family).any(|n| taken.contains(n)) {
            continue;
        }
        let same = by_name.entry(family.name.as_str()).or_default();
        // One type per name: the push-time check keeps groups consistent; a family that still
        // disagrees with the first one of its name is left out rather than written twice.
        if same.first().is_some_and(|first| first.kind != family.kind) {
            continue;
        }
        if same.is_empty() {
            order.push(family.name.as_str());
        }
        same.push(family);
    }
    for name in order {
        let families = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        write_family(out, name, families, open_metrics)?;
    }
    write_times(
        out,
        groups,
        PUSH_TIME,
        "Last Unix time when changing this group in the Pushgateway succeeded.",
        |g| g.push_time_ns,
    )?;
    write_times(
        out,
        groups,
        PUSH_FAILURE_TIME,
        "Last Unix time when changing this group in the Pushgateway failed.",
        |g| g.push_failure_time_ns,
    )
}

fn write_family<W: Write>(
    out: &mut W,
    name: &str,
    families: &[&PushedFamily],
    om: bool,
) -> io::Result<()> {
    let Some(first) = families.first() else { return Ok(()) };
    // OpenMetrics names a counter family without `_total` and its samples with it, as
    // tokentray's own counters (exposition::encode) and client_golang do.
    let counter_om = om && first.kind == PushedKind::Counter;
    let meta = if counter_om { name.strip_suffix("_total").unwrap_or(name) } else { name };
    if let Some(help) = families.iter().map(|f| f.help.as_str()).find(|h| !h.is_empty()) {
        write!(out, "# HELP {meta} ")?;
        write_escaped_help(out, help, om)?;
        out.write_all(b"\n")?;
    }
    writeln!(out, "# TYPE {meta} {}", first.kind.word(om))?;
    for sample in families.iter().flat_map(|f| &f.samples) {
        let sample_name = if counter_om && sample.name == name {
            format!("{meta}_total")
        } else {
            sample.name.clone()
        };
        write_sample(out, &sample_name, sample.labels.iter(), sample.value)?;
    }
    Ok(())
}

fn write_times<W: Write>(
    out: &mut W,
    groups: &[PushedGroup],
    name: &str,
    help: &str,
    ns: impl Fn(&PushedGroup) -> i64,
) -> io::Result<()> {
    writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge")?;
    for group in groups {
        let mut labels = group.key.labels().clone();
        labels.entry("instance".to_string()).or_default();
        write_sample(out, name, labels.iter(), ns(group) as f64 / 1e9)?;
    }
    Ok(())
}

fn write_sample<'a, W: Write>(
    out: &mut W,
    name: &str,
    labels: impl Iterator<Item = (&'a String, &'a String)>,
    value: f64,
) -> io::Result<()> {
    out.write_all(name.as_bytes())?;
    let mut first = true;
    for (k, v) in labels {
        out.write_all(if first { b"{" } else { b"," })?;
        first = false;
        out.write_all(k.as_bytes())?;
        out.write_all(b"=\"")?;
        for c in v.chars() {
            match c {
                '\\' => out.write_all(b"\\\\")?,
                '"' => out.write_all(b"\\\"")?,
                '\n' => out.write_all(b"\\n")?,
                c => write!(out, "{c}")?,
            }
        }
        out.write_all(b"\"")?;
    }
    if !first {
        out.write_all(b"}")?;
    }
    out.write_all(b" ")?;
    write_value(out, value)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushgateway::{text, GroupingKey};

    #[test]
    fn tokentrays_own_names_win_and_each_name_is_declared_once() {
        let group = |path: &str, body: &str| {
            let key = GroupingKey::from_path(path).unwrap();
            let families = text::parse(body.as_bytes(), &key).unwrap();
            PushedGroup { key, families, push_time_ns: 1_500_000_000, push_failure_time_ns: 0 }
        };
        let groups = [
            group(
                "job/a",
                "# TYPE up_level gauge\nup_level 1\n# TYPE taken_total counter\ntaken_total 2\n",
            ),
            group("job/b", "# TYPE up_level gauge\nup_level 3\n"),
        ];
        let taken: HashSet<String> = ["taken_total".to_string()].into();
        let mut out = Vec::new();
        write(&mut out, &groups, &taken, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("# TYPE up_level gauge").count(), 1, "{text}");
        assert!(
            text.contains(
                "up_level{instance=\"\",job=\"a\"} 1\nup_level{instance=\"\",job=\"b\"} 3\n"
            ),
            "{text}"
        );
        assert!(!text.contains("taken_total"), "{text}");
        assert!(text.contains("push_time_seconds{instance=\"\",job=\"a\"} 1.5\n"), "{text}");
    }
}
