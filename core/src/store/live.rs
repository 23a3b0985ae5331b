//! The in-memory totals behind `/metrics`, shaped the way the Collector's prometheus exporter
//! shapes them.
//!
//! Several stored series can render to the same Prometheus label set (the exporter drops resource
//! attributes other than `job`/`instance`), so a [`Row`] is keyed by family name + labels and
//! counters of colliding series are added into it, as Prometheus would need them to be.

use std::collections::HashMap;

use crate::exposition::naming::{self, MetricType};
use crate::exposition::shape::{self, MetricsShape};
use crate::exposition::{
    Family, FamilyKind, HistogramValue, Labels, Series, SeriesValue, Snapshot,
};
use crate::ingest::attrs::{self, AttrValue};
use crate::ingest::{Resource, Shape};

/// Where a stored series shows up in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RowRef {
    pub family: u32,
    pub row: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Live {
    families: Vec<FamilyState>,
    by_name: HashMap<String, u32>,
    targets: Vec<Labels>,
    target_index: HashMap<Labels, ()>,
}

#[derive(Debug)]
struct FamilyState {
    name: String,
    help: String,
    unit: String,
    kind: FamilyKind,
    rows: Vec<Row>,
    by_labels: HashMap<Labels, u32, LabelHasher>,
    /// Slots of rows that left memory for being idle, reused by the next new row: a `RowRef`
    /// stays a plain index, and the family does not grow with the history.
    free: Vec<u32>,
}

/// Rendered label sets are ~300 bytes each and hashed once per series at start-up (and on every
/// new series): xxh3 does that several times faster than the default SipHash. The receiver
/// takes the user's own clients' telemetry (on loopback by default), so SipHash's resistance to
/// crafted collisions is not worth its cost here.
type LabelHasher = xxhash_rust::xxh3::Xxh3DefaultBuilder;

#[derive(Debug)]
struct Row {
    labels: Labels,
    value: SeriesValue,
    created_ms: i64,
    /// Gauges keep the value of the latest point, whichever series of the row sent it.
    time_ns: u64,
    /// False until the transaction that created the row has committed: a failed commit (a full
    /// disk) must not leave a "phantom" series at 0 in /metrics.
    committed: bool,
    /// The newest point of any series of the row, by the point's own timestamp: what
    /// `series_idle_hours` measures. 0 until the row's first point is committed.
    newest_ns: u64,
    /// False once the row left memory (its slot waits in `FamilyState::free`).
    held: bool,
}

/// Rendered identity of a series in `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct ExpoKey {
    pub family: String,
    pub help: String,
    pub unit: String,
    pub kind: FamilyKind,
    pub labels: Labels,
    pub target: Option<Labels>,
}

pub(crate) fn kind_of(shape: Shape) -> FamilyKind {
    match shape {
        Shape::MonotonicSum => FamilyKind::Counter,
        Shape::NonMonotonicSum | Shape::Gauge => FamilyKind::Gauge,
        Shape::Histogram => FamilyKind::Histogram,
    }
}

/// What names a series on `/metrics`, borrowed from an incoming series or a stored row.
pub(crate) struct SeriesNaming<'a> {
    pub metric: &'a str,
    pub unit: &'a str,
    pub description: &'a str,
    pub shape: Shape,
    pub resource: &'a Resource,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub point_attrs: &'a [(String, AttrValue)],
}

impl<'a> SeriesNaming<'a> {
    pub(crate) fn of(desc: &'a crate::ingest::SeriesDesc) -> SeriesNaming<'a> {
        SeriesNaming {
            metric: &desc.metric,
            unit: &desc.unit,
            description: &desc.description,
            shape: desc.shape,
            resource: &desc.resource,
            scope_name: &desc.scope_name,
            scope_version: &desc.scope_version,
            point_attrs: &desc.attrs,
        }
    }
}

/// Translates a series into its Prometheus family and labels (otlptranslator rules); with the
/// label names of the point attributes left out (see [`naming::render_series_labels`]).
pub(crate) fn expo_key(series: SeriesNaming<'_>) -> (ExpoKey, Vec<String>) {
    let SeriesNaming {
        metric,
        unit,
        description,
        shape,
        resource,
        scope_name,
        scope_version,
        point_attrs,
    } = series;
    let kind = kind_of(shape);
    let mtype = match shape {
        Shape::MonotonicSum => MetricType::MonotonicCounter,
        Shape::NonMonotonicSum => MetricType::NonMonotonicSum,
        Shape::Gauge => MetricType::Gauge,
        Shape::Histogram => MetricType::Histogram,
    };
    let pairs: Vec<(String, String)> =
        point_attrs.iter().map(|(k, v)| (k.clone(), v.to_label())).collect();
    let (mut own, target) = target_labels(resource);
    own.push(("otel_scope_name".into(), scope_name.into()));
    own.push(("otel_scope_version".into(), scope_version.into()));
    let (labels, dropped) = naming::render_series_labels(&pairs, &own, kind_reserved(kind));
    if !dropped.is_empty() {
        tracing::warn!(
            metric,
            dropped = dropped.join(","),
            "attributes named like a reserved or tokentray's own label (__name__, job, le, …) are not shown on /metrics"
        );
    }
    let key = ExpoKey {
        family: naming::metric_name(metric, unit, mtype),
        help: description.to_string(),
        unit: naming::unit_name(unit, mtype),
        kind,
        labels,
        target,
    };
    (key, dropped)
}

/// Label names a family of this kind sets on its own samples (`le` on histogram buckets).
pub(crate) fn kind_reserved(kind: FamilyKind) -> &'static [&'static str] {
    match kind {
        FamilyKind::Histogram => &["le"],
        FamilyKind::Counter | FamilyKind::Gauge => &[],
    }
}

/// `job`/`instance` for every series of the resource, and the `target_info` labels where the
/// Collector emits one (a resource with attributes beyond the service identity).
pub(crate) fn target_labels(resource: &Resource) -> (Vec<(String, String)>, Option<Labels>) {
    let get = |k| attrs::get_str(&resource.attrs, k).filter(|s| !s.is_empty());
    let mut ids = Vec::new();
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        };
        ids.push(("job".to_string(), job));
    }
    if let Some(instance) = get("service.instance.id") {
        ids.push(("instance".to_string(), instance.to_string()));
    }
    let rest: Vec<(String, String)> = resource
        .attrs
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "service.name" | "service.namespace" | "service.instance.id")
        })
        .map(|(k, v)| (k.clone(), v.to_label()))
        .collect();
    if rest.is_empty() {
        return (ids, None);
    }
    // `target_info` carries only `job` and `instance` of tokentray's own labels.
    let (labels, _) = naming::render_series_labels(&rest, &ids, &[]);
    (ids, Some(labels))
}

/// A family exists under the same name with another type (e.g. a gauge and a counter both named
/// `x_total`): Prometheus cannot show both.
#[derive(Debug, Clone)]
pub(crate) struct KindConflict {
    pub family: String,
    pub existing: FamilyKind,
}

impl Live {
    /// Finds or creates the row for a series. Idempotent.
    pub(crate) fn row_for(
        &mut self,
        key: &ExpoKey,
        created_ms: i64,
        bounds: Option<&[f64]>,
    ) -> Result<RowRef, KindConflict> {
        if key.family.is_empty() {
            // Nothing of the OTLP name survives translation (e.g. only punctuation): the
            // Collector drops such metrics too.
            return Err(KindConflict { family: String::new(), existing: key.kind });
        }
        let fi = match self.by_name.get(&key.family) {
            Some(&fi) => {
                let fam = &self.families[fi as usize];
                if fam.kind != key.kind {
                    return Err(KindConflict { family: key.family.clone(), existing: fam.kind });
                }
                fi
            }
            None => {
                let fi = self.families.len() as u32;
                self.families.push(FamilyState {
                    name: key.family.clone(),
                    help: key.help.clone(),
                    unit: key.unit.clone(),
                    kind: key.kind,
                    rows: Vec::new(),
                    by_labels: HashMap::default(),
                    free: Vec::new(),
                });
                self.by_name.insert(key.family.clone(), fi);
                fi
            }
        };
        if let Some(target) = &key.target {
            if self.target_index.insert(target.clone(), ()).is_none() {
                self.targets.push(target.clone());
            }
        }
        let fam = &mut self.families[fi as usize];
        if let Some(&ri) = fam.by_labels.get(&key.labels) {
            return Ok(RowRef { family: fi, row: ri });
        }
        let value = match key.kind {
            FamilyKind::Histogram => {
                let bounds = bounds.unwrap_or_default().to_vec();
                SeriesValue::Histogram(HistogramValue {
                    counts: vec![0.0; bounds.len() + 1],
                    bounds,
                    sum: 0.0,
                    count: 0.0,
                })
            }
            _ => SeriesValue::Number(0.0),
        };
        let row = Row {
            labels: key.labels.clone(),
            value,
            created_ms,
            time_ns: 0,
            committed: false,
            newest_ns: 0,
            held: true,
        };
        let ri = match fam.free.pop() {
            Some(ri) => {
                if let Some(slot) = fam.rows.get_mut(ri as usize) {
                    *slot = row;
                }
                ri
            }
            None => {
                fam.rows.push(row);
                fam.rows.len() as u32 - 1
            }
        };
        fam.by_labels.insert(key.labels.clone(), ri);
        Ok(RowRef { family: fi, row: ri })
    }

    /// Bucket bounds of a histogram row, to refuse points whose bounds differ.
    pub(crate) fn histogram_bounds(&self, at: RowRef) -> Option<&[f64]> {
        match &self.row(at)?.value {
            SeriesValue::Histogram(h) => Some(&h.bounds),
            SeriesValue::Number(_) => None,
        }
    }

    fn row(&self, at: RowRef) -> Option<&Row> {
        self.families.get(at.family as usize)?.rows.get(at.row as usize)
    }

    fn row_mut(&mut self, at: RowRef) -> Option<&mut Row> {
        self.families.get_mut(at.family as usize)?.rows.get_mut(at.row as usize)
    }

    /// Adds a counter increment (or a delta of an up-down counter).
    pub(crate) fn add(&mut self, at: RowRef, inc: f64) {
        if let Some(Row { value: SeriesValue::Number(v), .. }) = self.row_mut(at) {
            *v += inc;
        }
    }

    /// Sets a gauge, unless the row already holds a newer point.
    pub(crate) fn set(&mut self, at: RowRef, value: f64, time_ns: u64) {
        if let Some(row) = self.row_mut(at) {
            if time_ns >= row.time_ns {
                row.time_ns = time_ns;
                row.value = SeriesValue::Number(value);
            }
        }
    }

    /// Adds per-bucket increments to a histogram row with the same bounds.
    pub(crate) fn add_histogram(&mut self, at: RowRef, counts: &[f64], sum: f64, count: f64) {
        if let Some(Row { value: SeriesValue::Histogram(h), .. }) = self.row_mut(at) {
            for (c, inc) in h.counts.iter_mut().zip(counts) {
                *c += inc;
            }
            h.sum += sum;
            h.count += count;
        }
    }

    /// Shows a row in /metrics: its series is on disk (loaded, or its transaction committed).
    pub(crate) fn mark_committed(&mut self, at: RowRef) {
        if let Some(row) = self.row_mut(at) {
            row.committed = true;
        }
    }

    /// Records that a committed point of the row is at `time_ns` (the newest one counts).
    pub(crate) fn touch(&mut self, at: RowRef, time_ns: u64) {
        if let Some(row) = self.row_mut(at) {
            row.newest_ns = row.newest_ns.max(time_ns);
        }
    }

    /// Rows held in memory, shown or idle.
    pub(crate) fn series_count(&self) -> usize {
        self.families.iter().map(|f| f.rows.len() - f.free.len()).sum()
    }

    /// Lets go of every row whose newest point is older than `idle_after_ns` at `now_ns` (and of
    /// rows a failed transaction left uncommitted), returning them: their series' totals stay in
    /// the store, and a new point loads them back (see the writer's `load_idle_series`).
    pub(crate) fn release_idle(&mut self, idle_after_ns: u64, now_ns: u64) -> Vec<RowRef> {
        let mut released = Vec::new();
        for (fi, fam) in self.families.iter_mut().enumerate() {
            for (ri, row) in fam.rows.iter_mut().enumerate() {
                let idle = now_ns.saturating_sub(row.newest_ns) > idle_after_ns;
                if !row.held || (row.committed && !idle) {
                    continue;
                }
                fam.by_labels.remove(&row.labels);
                *row = Row {
                    labels: Labels::from(""),
                    value: SeriesValue::Number(0.0),
                    created_ms: 0,
                    time_ns: 0,
                    committed: false,
                    newest_ns: 0,
                    held: false,
                };
                fam.free.push(ri as u32);
                released.push(RowRef { family: fi as u32, row: ri as u32 });
            }
        }
        released
    }

    /// Copies the totals out, so encoding never holds the writer up: every series, unshaped.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.snapshot_shaped(&MetricsShape::default(), 0)
    }

    /// Copies out what `/metrics` shows at `now_ns`: series folded over `drop_labels` first (so a
    /// folded total never falls when one of its members goes idle), then idle ones left out.
    pub(crate) fn snapshot_shaped(&self, shape: &MetricsShape, now_ns: u64) -> Snapshot {
        let mut families: Vec<Family> = self
            .families
            .iter()
            .map(|f| Family {
                name: f.name.clone(),
                help: f.help.clone(),
                unit: f.unit.clone(),
                kind: f.kind,
                series: if shape.drop_labels.is_empty() {
                    f.rows
                        .iter()
                        .filter(|r| r.committed && !shape.is_idle(r.newest_ns, now_ns))
                        .map(|r| Series {
                            labels: r.labels.clone(),
                            value: r.value.clone(),
                            created_ms: r.created_ms,
                        })
                        .collect()
                } else {
                    folded_series(&f.rows, shape, now_ns)
                },
            })
            .filter(|f: &Family| !f.series.is_empty())
            .collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        let mut targets = self.targets.clone();
        targets.sort();
        Snapshot { families, targets }
    }
}

/// The rows of one family added up per label set left after `drop_labels`, in first-seen order;
/// a folded series is idle when its newest member is.
fn folded_series(rows: &[Row], shape: &MetricsShape, now_ns: u64) -> Vec<Series> {
    let mut folded: Vec<(Series, u64)> = Vec::new();
    let mut index: HashMap<String, usize, LabelHasher> = HashMap::default();
    let mut labels = String::new();
    for row in rows.iter().filter(|r| r.committed) {
        shape::without_labels_into(&row.labels, &shape.drop_labels, &mut labels);
        match index.get(labels.as_str()) {
            Some(&i) => {
                let (series, newest) = &mut folded[i];
                shape::add_value(&mut series.value, &row.value);
                series.created_ms = series.created_ms.min(row.created_ms);
                *newest = (*newest).max(row.newest_ns);
            }
            None => {
                index.insert(labels.clone(), folded.len());
                let series = Series {
                    labels: Labels::from(labels.as_str()),
                    value: row.value.clone(),
                    created_ms: row.created_ms,
                };
                folded.push((series, row.newest_ns));
            }
        }
    }
    folded
        .into_iter()
        .filter(|(_, newest)| !shape.is_idle(*newest, now_ns))
        .map(|(series, _)| series)
        .collect()
}
