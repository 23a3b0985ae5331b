//! Usage per machine the data came from: a tray that receives from another tokentray (a remote
//! dev box forwarding to the laptop) shows each machine under its name. The machine is the
//! `host.name` resource attribute forwarding adds ([`crate::forward::identity`]); data straight
//! from Claude Code has none and belongs to this machine.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Reader, StoreError};
use crate::query::report::Figures;
use crate::query::TimeRange;

/// The usage of one machine within a range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineUsage {
    /// `host.name` of the data; `None` for data without one (this machine's own).
    pub machine: Option<String>,
    /// `developer` of the forwarded data, when it says.
    pub developer: Option<String>,
    /// The machine's sums over the range, as in [`Reader::report`].
    pub figures: Figures,
}

impl Reader {
    /// Spend, tokens and the other sums of `range`, one entry per machine (this machine's
    /// own data first), from the same increments as [`Reader::report`].
    pub(crate) fn usage_by_machine(
        &self,
        range: TimeRange,
    ) -> Result<Vec<MachineUsage>, StoreError> {
        let (start_ns, end_ns) = range.bounds_ns();
        let (slot_lo, slot_hi) = super::read::slots_of(start_ns, end_ns);
        let mut stmt = self.conn().prepare_cached(
            "SELECT json_extract(r.attrs, '$.\"host.name\"') AS machine,
                    json_extract(r.attrs, '$.developer') AS developer,
                    s.metric, s.type, SUM(u.value)
             FROM usage u JOIN series s ON s.id = u.series_id JOIN resources r ON r.id = s.resource_id
             WHERE u.slot >= ?1 AND u.slot < ?2
             GROUP BY machine, developer, s.metric, s.type",
        )?;
        let mut rows = stmt.query(params![slot_lo, slot_hi])?;
        let mut machines: BTreeMap<(Option<String>, Option<String>), Figures> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let key = (text(r.get(0)?), text(r.get(1)?));
            let metric: String = r.get(2)?;
            let kind: Option<String> = r.get(3)?;
            let value: f64 = r.get(4)?;
            machines.entry(key).or_default().add_metric(&metric, kind.as_deref(), value);
        }
        // BTreeMap order puts `None` (this machine) first, then the others by name.
        Ok(machines
            .into_iter()
            .map(|((machine, developer), figures)| MachineUsage { machine, developer, figures })
            .collect())
    }
}

/// A JSON attribute value as text (numbers and booleans too); empty text counts as none.
fn text(v: rusqlite::types::Value) -> Option<String> {
    match v {
        rusqlite::types::Value::Text(t) if !t.is_empty() => Some(t),
        rusqlite::types::Value::Integer(i) => Some(i.to_string()),
        rusqlite::types::Value::Real(f) => Some(f.to_string()),
        _ => None,
    }
}
