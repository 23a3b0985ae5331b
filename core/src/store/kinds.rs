//! The kind each metric name keeps: monotonic counter, gauge or histogram, the first one seen.
//!
//! A point of another kind under a name already taken is refused (OTLP partial success) instead of
//! being folded into the series it shares a key with: a non-monotonic delta of −5 under a cost
//! counter's name and attributes used to drive the counter down, and Prometheus cannot show two
//! kinds under one name. Both names count: the OTLP metric name (`claude_code.cost.usage`) and
//! the Prometheus family it translates to (`claude_code_cost_usage_USD_total`). The table
//! `metric_kinds` keeps the first kind of each, so the rule holds across restarts and does not
//! depend on which series happen to be in memory.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};

use super::{live, StoreError};
use crate::exposition::FamilyKind;
use crate::ingest::Shape;

/// Which vocabulary a name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum NameSpace {
    /// The metric name as the client sent it.
    Otlp,
    /// The translated Prometheus family name.
    Prometheus,
}

impl NameSpace {
    fn code(self) -> i64 {
        match self {
            NameSpace::Otlp => 0,
            NameSpace::Prometheus => 1,
        }
    }

    fn from_code(code: i64) -> Option<NameSpace> {
        match code {
            0 => Some(NameSpace::Otlp),
            1 => Some(NameSpace::Prometheus),
            _ => None,
        }
    }
}

fn kind_code(kind: FamilyKind) -> i64 {
    match kind {
        FamilyKind::Counter => 1,
        FamilyKind::Gauge => 2,
        FamilyKind::Histogram => 3,
    }
}

fn kind_from_code(code: i64) -> Option<FamilyKind> {
    match code {
        1 => Some(FamilyKind::Counter),
        2 => Some(FamilyKind::Gauge),
        3 => Some(FamilyKind::Histogram),
        _ => None,
    }
}

/// How a kind reads in a refusal.
pub(super) fn kind_word(kind: FamilyKind) -> &'static str {
    match kind {
        FamilyKind::Counter => "monotonic counter",
        FamilyKind::Gauge => "gauge (or non-monotonic sum)",
        FamilyKind::Histogram => "histogram",
    }
}

/// A point whose kind differs from its series' (the series key does not include the shape: a
/// non-monotonic sum under a counter's name and attributes lands on the counter's series).
pub(super) fn shape_refusal(metric: &str, series: Shape, point: Shape) -> Option<String> {
    let (first, this) = (live::kind_of(series), live::kind_of(point));
    (first != this).then(|| {
        format!(
            "metric {metric} is a {} (its first kind, kept); this point is a {}",
            kind_word(first),
            kind_word(this)
        )
    })
}

type Key = (NameSpace, String);

/// Every name's kind, as committed, plus those claimed by the transaction being written.
#[derive(Debug, Default)]
pub(super) struct KindBook {
    known: HashMap<Key, FamilyKind>,
}

/// Names first seen in the transaction being written; persisted with it, applied after commit.
#[derive(Debug, Default)]
pub(super) struct NewKinds {
    claimed: HashMap<Key, FamilyKind>,
}

impl KindBook {
    /// Reads the table.
    pub(super) fn load(conn: &Connection) -> Result<KindBook, StoreError> {
        let mut stmt = conn.prepare("SELECT namespace, name, kind FROM metric_kinds")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut known = HashMap::new();
        for row in rows {
            let (space, name, kind) = row?;
            if let (Some(space), Some(kind)) = (NameSpace::from_code(space), kind_from_code(kind)) {
                known.insert((space, name), kind);
            }
        }
        Ok(KindBook { known })
    }

    /// Checks `names` against their first kind and claims those seen for the first time.
    /// `Err` is the refusal to send back.
    pub(super) fn claim(
        &self,
        new: &mut NewKinds,
        names: &[(NameSpace, &str)],
        kind: FamilyKind,
    ) -> Result<(), String> {
        for &(space, name) in names {
            let key = (space, name.to_string());
            let first = self.known.get(&key).or_else(|| new.claimed.get(&key));
            if let Some(&first) = first.filter(|&&first| first != kind) {
                return Err(format!(
                    "metric {name} is a {} (its first kind, kept); this point is a {}",
                    kind_word(first),
                    kind_word(kind)
                ));
            }
        }
        for &(space, name) in names {
            let key = (space, name.to_string());
            if !self.known.contains_key(&key) {
                new.claimed.entry(key).or_insert(kind);
            }
        }
        Ok(())
    }

    /// Takes the names of a committed transaction in.
    pub(super) fn apply(&mut self, new: NewKinds) {
        self.known.extend(new.claimed);
    }
}

impl NewKinds {
    /// Writes the names claimed in this transaction.
    pub(super) fn persist(&self, tx: &Transaction, now_ns: i64) -> Result<(), StoreError> {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO metric_kinds (namespace, name, kind, first_ns) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for ((space, name), kind) in &self.claimed {
            insert.execute(params![space.code(), name, kind_code(*kind), now_ns])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_kind_wins_across_both_vocabularies() {
        let book = KindBook::default();
        let mut new = NewKinds::default();
        let names = [(NameSpace::Otlp, "a.b"), (NameSpace::Prometheus, "a_b_total")];
        book.claim(&mut new, &names, FamilyKind::Counter).expect("first claim");
        book.claim(&mut new, &names, FamilyKind::Counter).expect("same kind again");
        let gauge = [(NameSpace::Otlp, "a.b"), (NameSpace::Prometheus, "a_b")];
        let refusal = book.claim(&mut new, &gauge, FamilyKind::Gauge).expect_err("other kind");
        assert!(refusal.contains("monotonic counter"), "{refusal}");
        // The refused claim took no name.
        assert!(!new.claimed.contains_key(&(NameSpace::Prometheus, "a_b".into())));
    }
}
