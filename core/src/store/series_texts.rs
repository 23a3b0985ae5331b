//! How a series' attributes and its rendered `/metrics` labels are kept (schema v14, issue 13):
//! once per shape of text, not once per series.
//!
//! Until v14 every series row held its point attributes as a JSON document and its rendered
//! labels as text, and the `series_expo` index held the labels a third time: ~1 kB a series,
//! three quarters of a year's `series` bytes, although Claude Code's series of one user differ
//! only in their `session.id` (and model and type, a handful of values). Now
//! * each text is a row of `series_texts`, a dictionary, with the series' own session id (the
//!   `session_id` column of `series`) taken out of it: every occurrence replaced by
//!   [`MARKER`], so the series of all sessions of a user, metric, model and type share one row;
//! * `series` names its attributes' row (`attrs_text`) and its labels' row (`labels_text`);
//! * the rendered identity is found by `expo_hash` (xxh3-64 of family and labels, indexed)
//!   instead of an index on the text; a lookup compares the text too.
//!
//! The texts are put back together in SQL ([`ATTRS_SQL`], [`LABELS_SQL`]: `replace()` of the
//! marker by the session id) exactly as [`render`] does it in Rust; a text that would not come
//! back byte for byte (it holds the marker itself) is stored whole (`templated = 0`).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// Stands for the series' session id in a templated text (SQL `char(1)`). Rendered labels and
/// JSON escape control characters, so it never occurs in Claude Code's texts; a text that holds
/// it is stored whole.
const MARKER: char = '\u{1}';

/// The series' attributes (JSON object, as before v14) of `series s`.
pub(crate) const ATTRS_SQL: &str =
    "(SELECT CASE WHEN a.templated THEN replace(a.text, char(1), s.session_id) ELSE a.text END
      FROM series_texts a WHERE a.id = s.attrs_text)";

/// The series' rendered labels (NULL when it has no `/metrics` identity) of `series s`.
pub(crate) const LABELS_SQL: &str =
    "(SELECT CASE WHEN l.templated THEN replace(l.text, char(1), s.session_id) ELSE l.text END
      FROM series_texts l WHERE l.id = s.labels_text)";

/// `text` as stored for a series of `session`: whether the session id was taken out, and what
/// is left.
pub(crate) fn template(text: &str, session: Option<&str>) -> (bool, String) {
    match session {
        Some(session) if !session.is_empty() && !text.contains(MARKER) => {
            let templated = text.replace(session, &MARKER.to_string());
            // Exact by construction (no marker in the text); checked all the same, since a
            // text that does not come back is a wrong total in /metrics.
            if render(true, &templated, Some(session)) == text {
                return (true, templated);
            }
            (false, text.to_string())
        }
        _ => (false, text.to_string()),
    }
}

/// The text a stored one stands for, as [`ATTRS_SQL`] and [`LABELS_SQL`] give it back.
pub(crate) fn render(templated: bool, text: &str, session: Option<&str>) -> String {
    match (templated, session) {
        (true, Some(session)) => text.replace(MARKER, session),
        _ => text.to_string(),
    }
}

/// Dictionary rows by their stored form (templated, text): the writer's committed ones, and
/// those a transaction found or added (kept once it committed).
pub(crate) type TextIds = HashMap<(bool, String), i64>;

/// How many dictionary rows the writer keeps in memory at most: the shapes of text the sessions
/// of its users share are a few dozen; texts of one series each are not worth keeping.
pub(crate) const KEPT: usize = 4096;

/// Moves what a committed transaction found or added into `known`, at most `kept` entries
/// (emptied when full, so the memory stays bounded whatever the history). The writer's
/// dictionary caches (series texts here, event session keys in store/events.rs) share it.
pub(crate) fn keep<K: Eq + std::hash::Hash, V>(
    known: &mut HashMap<K, V>,
    found: HashMap<K, V>,
    kept: usize,
) {
    if known.len() + found.len() > kept {
        known.clear();
    }
    if found.len() <= kept {
        known.extend(found);
    }
}

/// [`text_id`], first asking the rows of committed transactions (`known`) and of this one
/// (`found`, where a row found or added now goes).
pub(crate) fn text_id_in(
    conn: &Connection,
    text: &str,
    session: Option<&str>,
    known: &TextIds,
    found: &mut TextIds,
) -> Result<i64, StoreError> {
    let key = template(text, session);
    if let Some(&id) = known.get(&key).or_else(|| found.get(&key)) {
        return Ok(id);
    }
    let id = stored_text_id(conn, key.0, &key.1)?;
    found.insert(key, id);
    Ok(id)
}

/// The id of the dictionary row of `text` for a series of `session`, stored now if it is new.
pub(crate) fn text_id(
    conn: &Connection,
    text: &str,
    session: Option<&str>,
) -> Result<i64, StoreError> {
    let (templated, stored) = template(text, session);
    stored_text_id(conn, templated, &stored)
}

fn stored_text_id(conn: &Connection, templated: bool, stored: &str) -> Result<i64, StoreError> {
    let hash = text_hash(templated, stored);
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM series_texts WHERE hash = ?1 AND templated = ?2 AND text = ?3",
        )?
        .query_row(params![hash, templated, stored], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO series_texts (hash, templated, text) VALUES (?1, ?2, ?3)")?
        .execute(params![hash, templated, stored])?;
    Ok(conn.last_insert_rowid())
}

fn text_hash(templated: bool, text: &str) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&[u8::from(templated)]);
    h.update(text.as_bytes());
    h.digest() as i64
}

/// The indexed hash of a rendered `/metrics` identity (`series.expo_hash`).
pub(crate) fn expo_hash(family: &str, labels: &str) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(family.as_bytes());
    // Never in UTF-8: "ab" + "c" and "a" + "bc" differ.
    h.update(&[0xff]);
    h.update(labels.as_bytes());
    h.digest() as i64
}

/// v14's statements before the texts move: the dictionary and the new columns.
const MIGRATION_BEFORE: &str = r#"
    -- Texts of series (point attributes as JSON, rendered labels), each once; `templated`: every
    -- occurrence of the series' session id replaced by char(1) (store/series_texts.rs).
    CREATE TABLE series_texts (
        id        INTEGER PRIMARY KEY,
        hash      INTEGER NOT NULL,          -- xxh3-64 of templated and text
        templated INTEGER NOT NULL,
        text      TEXT NOT NULL
    );
    CREATE INDEX series_texts_hash ON series_texts(hash);
    ALTER TABLE series ADD COLUMN attrs_text INTEGER;   -- series_texts.id
    ALTER TABLE series ADD COLUMN labels_text INTEGER;  -- series_texts.id; NULL: no /metrics identity (yet)
    ALTER TABLE series ADD COLUMN expo_hash INTEGER;    -- expo_hash(expo_family, labels)
"#;

/// v14's statements after the texts moved: they leave the rows, the index on them goes.
const MIGRATION_AFTER: &str = r#"
    DROP INDEX series_expo;
    ALTER TABLE series DROP COLUMN attrs;
    ALTER TABLE series DROP COLUMN expo_labels;
    CREATE INDEX series_expo_hash ON series(expo_hash);
"#;

/// Moves every series' texts into the dictionary (v14). A file that has the dictionary already
/// (its version set back by hand, as tests of older migrations do) is left as it is.
pub(crate) fn migrate(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let compact: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'series_texts')",
        [],
        |r| r.get(0),
    )?;
    if compact {
        return Ok(());
    }
    tx.execute_batch(MIGRATION_BEFORE)?;
    move_texts(tx)?;
    tx.execute_batch(MIGRATION_AFTER)?;
    Ok(())
}

fn move_texts(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut read = tx.prepare(
        "SELECT id, session_id, attrs, expo_family, expo_labels FROM series ORDER BY id",
    )?;
    let mut update = tx.prepare(
        "UPDATE series SET attrs_text = ?2, labels_text = ?3, expo_hash = ?4 WHERE id = ?1",
    )?;
    let mut rows = read.query([])?;
    let mut moved = 0u64;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let session: Option<String> = r.get(1)?;
        let attrs: String = r.get(2)?;
        let family: Option<String> = r.get(3)?;
        let labels: Option<String> = r.get(4)?;
        let attrs_text = text_id(tx, &attrs, session.as_deref())?;
        let (labels_text, hash) = match (&family, &labels) {
            (Some(family), Some(labels)) => {
                (Some(text_id(tx, labels, session.as_deref())?), Some(expo_hash(family, labels)))
            }
            // Rendered by the writer at its next start (series stored before v3).
            _ => (None, None),
        };
        update.execute(params![id, attrs_text, labels_text, hash])?;
        moved += 1;
        if moved.is_multiple_of(50_000) {
            tracing::info!(series = moved, "upgrading the history: series labels");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_back_byte_for_byte() {
        let sid = "6c0f-4b1e";
        let cases: [(&str, Option<&str>); 7] = [
            (r#"{"session.id":"6c0f-4b1e","model":"x"}"#, Some(sid)),
            (r#"a="6c0f-4b1e",b="6c0f-4b1e6c0f-4b1e""#, Some(sid)),
            ("no session here", Some(sid)),
            ("marker \u{1} inside 6c0f-4b1e", Some(sid)),
            ("anything", None),
            ("anything", Some("")),
            ("aaa", Some("aa")),
        ];
        for (text, session) in cases {
            let (templated, stored) = template(text, session);
            assert_eq!(render(templated, &stored, session), text, "{text:?}");
        }
        let (templated, stored) = template(cases[0].0, Some(sid));
        assert!(templated);
        assert_eq!(stored, "{\"session.id\":\"\u{1}\",\"model\":\"x\"}");
        assert!(!template(cases[3].0, Some(sid)).0);
    }

    #[test]
    fn sql_puts_the_texts_back_as_render_does() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE series (id INTEGER PRIMARY KEY, session_id TEXT, attrs_text INTEGER,
                labels_text INTEGER);",
        )
        .expect("series");
        conn.execute_batch(MIGRATION_BEFORE.split("ALTER TABLE").next().expect("create"))
            .expect("dictionary");
        let texts = [
            (r#"{"session.id":"s-1","n":"s-1s-1"}"#, Some("s-1")),
            ("x=\"s-1\"", Some("s-1")),
            ("odd \u{1} s-1", Some("s-1")),
            ("no session", None),
        ];
        for (i, (text, session)) in texts.iter().enumerate() {
            let attrs = text_id(&conn, text, *session).expect("attrs");
            let labels = text_id(&conn, text, *session).expect("labels");
            assert_eq!(attrs, labels, "one row per text");
            conn.execute(
                "INSERT INTO series (id, session_id, attrs_text, labels_text) VALUES (?1, ?2, ?3, ?3)",
                params![i as i64, session, attrs],
            )
            .expect("insert");
            let back: (String, String) = conn
                .query_row(
                    &format!("SELECT {ATTRS_SQL}, {LABELS_SQL} FROM series s WHERE s.id = ?1"),
                    [i as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("read");
            assert_eq!((back.0.as_str(), back.1.as_str()), (*text, *text));
        }
        // Two sessions of the same shape share their row.
        let a = text_id(&conn, r#"{"session.id":"s-2"}"#, Some("s-2")).expect("a");
        let b = text_id(&conn, r#"{"session.id":"s-3"}"#, Some("s-3")).expect("b");
        assert_eq!(a, b);
    }
}
