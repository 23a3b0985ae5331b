//! Claude Code's transcripts as a second source: the SQL of their tables.
//!
//! Only numbers, ids, model, time, cwd, branch and PR are stored. Requests are keyed by
//! (`requestId`, `message.id`), so the same request read from several files or config
//! directories, or read again after a file was rewritten, is stored once. Each file's read
//! position is kept with its inode, size, mtime and a hash of its first bytes, so a restart
//! reads only what is new and a rewritten file is read again from the start.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::transcript_sums::NewRequests;
use super::{read::Reader, EventFigures, StoreError};
use crate::query::report::{names, Figures};
use crate::query::{local_bucket, Group, GroupBy};
use crate::transcripts::counting::{self, Share};
use crate::transcripts::expose::{self, ExposedKey};
use crate::transcripts::project::Project;
use crate::transcripts::record::Line;

/// Schema of the transcript tables (appended to the migrations; issue 15).
pub(super) const MIGRATION: &str = r#"
    -- One row per transcript file read: where reading stopped and what the file looked like.
    CREATE TABLE transcript_files (
        id        INTEGER PRIMARY KEY,
        path      TEXT NOT NULL UNIQUE,
        inode     INTEGER NOT NULL,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        offset    INTEGER NOT NULL,          -- bytes read: always just after a complete line
        head_hash BLOB NOT NULL,             -- xxh3-64 of the first min(offset, 4096) bytes
        malformed INTEGER NOT NULL DEFAULT 0 -- lines skipped as not JSON
    );
    -- One row per API request, however many lines and files repeat it.
    CREATE TABLE transcript_requests (
        request_id        TEXT NOT NULL,
        message_id        TEXT NOT NULL,
        session_id        TEXT NOT NULL,
        model             TEXT NOT NULL,
        time_ns           INTEGER NOT NULL,
        input_tokens      INTEGER NOT NULL,
        output_tokens     INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_5m_tokens   INTEGER NOT NULL,
        cache_1h_tokens   INTEGER NOT NULL,
        fast              INTEGER NOT NULL,
        PRIMARY KEY (request_id, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX transcript_requests_time ON transcript_requests(time_ns);
    CREATE INDEX transcript_requests_session ON transcript_requests(session_id);
    -- API errors shown to the user (not billed), once per line.
    CREATE TABLE transcript_api_errors (
        key        TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        time_ns    INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Where a session ran: the first cwd and branch seen, its project (resolved at import), a PR.
    CREATE TABLE transcript_sessions (
        session_id    TEXT PRIMARY KEY,
        first_ns      INTEGER NOT NULL,
        last_ns       INTEGER NOT NULL,
        cwd           TEXT NOT NULL,
        git_branch    TEXT,
        project       TEXT NOT NULL,
        project_path  TEXT NOT NULL,
        pr_number     INTEGER,
        pr_url        TEXT,
        pr_repository TEXT
    ) WITHOUT ROWID;
    -- Claude Code's own cost per session and model (the last cost-state line read), and the
    -- newest request it covers: later requests of the session are not in it yet.
    CREATE TABLE transcript_cost_state (
        session_id   TEXT NOT NULL,
        model        TEXT NOT NULL,
        cost_usd     REAL NOT NULL,
        covers_to_ns INTEGER NOT NULL,
        PRIMARY KEY (session_id, model)
    ) WITHOUT ROWID;
"#;

/// How a file looked when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileState {
    pub inode: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub offset: u64,
    pub head_hash: u64,
}

/// What one read of a file adds: its lines in file order, and where reading stopped.
pub(crate) struct FileBatch<'a> {
    pub path: &'a Path,
    pub state: FileState,
    /// The read started over at byte 0 (a new, truncated or rewritten file).
    pub restarted: bool,
    pub lines: Vec<Line>,
    pub malformed: u64,
    pub projects: &'a HashMap<String, Project>,
}

/// How long a group of file reads stays open before it commits, beside a running engine.
const GROUP_TIME: std::time::Duration = std::time::Duration::from_millis(100);

/// The same for an importer that is the only writer ([`TranscriptWriter::open`] `alone`): each
/// commit writes every page its group touched (the requests' table is keyed by a random id, so
/// that is about a page per request), so longer groups write each page fewer times.
const GROUP_TIME_ALONE: std::time::Duration = std::time::Duration::from_millis(1000);

/// The importer's page cache, KiB (negative: SQLite's unit for a size in KiB).
const IMPORT_CACHE_KIB: i64 = -24 * 1024;

/// The importer's page cache when alone: a group's dirty pages stay in memory until it commits.
const IMPORT_CACHE_ALONE_KIB: i64 = -32 * 1024;

/// The importer's connection (its own, beside the engine's writer; SQLite serialises them).
pub(crate) struct TranscriptWriter {
    conn: Connection,
    /// When the open group of file reads began ([`TranscriptWriter::begin_group`]).
    group_started: Option<std::time::Instant>,
    group_time: std::time::Duration,
}

impl TranscriptWriter {
    /// `alone`: no other process writes the database (no engine runs), so the group of reads
    /// committed together may stay open longer (nobody waits for it) and use a larger cache.
    pub(crate) fn open(db_path: &Path, alone: bool) -> Result<TranscriptWriter, StoreError> {
        let mut conn = super::connect(db_path)?;
        super::schema::migrate(&mut conn)?;
        // Requests are keyed by a random id, so each insert lands on a random page of the
        // tables: with SQLite's default 2 MiB cache a first import rewrote and re-read its pages
        // (1.4 M page writes for a 49 MB file). The cache is memory only while importing.
        let (cache, group_time) = if alone {
            (IMPORT_CACHE_ALONE_KIB, GROUP_TIME_ALONE)
        } else {
            (IMPORT_CACHE_KIB, GROUP_TIME)
        };
        conn.pragma_update(None, "cache_size", cache)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // SQLite re-prepares a statement whose bound values could change its plan (the bundled
        // build has STAT4): the cost-state upsert, with its sub-select, was parsed and planned
        // again for every cost-state line, 4 % of a first import's time. Its plan is the same
        // for every session, so the planner is told to keep it.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        Ok(TranscriptWriter { conn, group_started: None, group_time })
    }

    /// Opens a group: the reads applied until [`TranscriptWriter::end_group`] commit in one
    /// transaction, each with its file's new position, so a stop anywhere still resumes exactly
    /// (a group not committed is read again). One commit per file cost a WAL sync per file:
    /// most of a first import's time on a year of transcripts.
    /// The group is committed and a new one begun once it is [`GROUP_TIME`] old (checked after
    /// each read, so also inside a large file): the engine's writer waits for the importer's
    /// open transaction only briefly.
    pub(crate) fn begin_group(&mut self) -> Result<(), StoreError> {
        if self.group_started.is_none() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.group_started = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Commits the open group, if any.
    pub(crate) fn end_group(&mut self) -> Result<(), StoreError> {
        if self.group_started.take().is_some() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// Where the last read of each file stopped, by path.
    pub(crate) fn file_states(&self) -> Result<HashMap<String, FileState>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, inode, size, mtime_ns, offset, head_hash FROM transcript_files",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, file_state_of(r, 1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores one read of a file and its new position in one transaction: stopped at any
    /// point, the next import starts exactly where this one committed.
    pub(crate) fn apply(&mut self, batch: &FileBatch) -> Result<u64, StoreError> {
        if let Some(started) = self.group_started {
            // No savepoint per read: inside one, SQLite copies every page before its first
            // change into a statement journal (4 % of a first import's time). A read that fails
            // to apply instead rolls the whole group back, so no line is kept without its
            // file's position; the group's reads are read again by the next import.
            let new_requests = match apply_batch(&self.conn, batch) {
                Ok(n) => n,
                Err(e) => {
                    self.group_started = None;
                    // The failure is what the caller needs; a failed rollback ends the
                    // transaction as well (SQLite rolls back when the connection closes).
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            };
            if started.elapsed() >= self.group_time {
                self.end_group()?;
                self.begin_group()?;
            }
            return Ok(new_requests);
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let new_requests = apply_batch(&tx, batch)?;
        tx.commit()?;
        Ok(new_requests)
    }
}

/// A [`FileState`] from the columns inode, size, mtime_ns, offset, head_hash from `first` on.
fn file_state_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<FileState> {
    let hash: Vec<u8> = r.get(first + 4)?;
    let mut bytes = [0u8; 8];
    bytes.iter_mut().zip(hash).for_each(|(b, h)| *b = h);
    Ok(FileState {
        inode: r.get::<_, i64>(first)? as u64,
        size: r.get::<_, i64>(first + 1)? as u64,
        mtime_ns: r.get(first + 2)?,
        offset: r.get::<_, i64>(first + 3)? as u64,
        head_hash: u64::from_le_bytes(bytes),
    })
}

/// The statements of one read: its lines, then the file's new position.
fn apply_batch(tx: &Connection, batch: &FileBatch) -> Result<u64, StoreError> {
    let mut new_requests = 0u64;
    // Nearly every line names its session's place; folded here, each session of the read is
    // written once instead of once per line (most of the import's statements).
    let mut sessions: HashMap<String, Option<SessionRow>> = HashMap::new();
    let mut stored = NewRequests::default();
    for line in &batch.lines {
        new_requests += apply_line(tx, line, batch.projects, &mut sessions, &mut stored)?;
    }
    for (session, row) in &sessions {
        if let Some(row) = row.as_ref().filter(|r| r.changed) {
            write_session(tx, session, row)?;
        }
    }
    stored.write(tx)?;
    let s = &batch.state;
    tx.prepare_cached(
            "INSERT INTO transcript_files (path, inode, size, mtime_ns, offset, head_hash, malformed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(path) DO UPDATE SET inode = excluded.inode, size = excluded.size,
                 mtime_ns = excluded.mtime_ns, offset = excluded.offset, head_hash = excluded.head_hash,
                 malformed = CASE WHEN ?8 THEN excluded.malformed ELSE malformed + excluded.malformed END",
        )?
        .execute(params![
            batch.path.to_string_lossy(),
            s.inode as i64,
            s.size as i64,
            s.mtime_ns,
            s.offset as i64,
            s.head_hash.to_le_bytes().as_slice(),
            batch.malformed as i64,
            batch.restarted,
        ])?;
    Ok(new_requests)
}

/// A session's row of `transcript_sessions` while one read is applied.
#[derive(Debug, Clone)]
struct SessionRow {
    first_ns: i64,
    last_ns: i64,
    cwd: String,
    git_branch: Option<String>,
    project: String,
    project_path: String,
    pr_number: Option<i64>,
    pr_url: Option<String>,
    pr_repository: Option<String>,
    /// Differs from what is stored.
    changed: bool,
}

/// The session's row as stored, read once per read of a file (`None`: not stored yet).
fn session_row<'m>(
    tx: &Connection,
    sessions: &'m mut HashMap<String, Option<SessionRow>>,
    session: &str,
) -> Result<&'m mut Option<SessionRow>, StoreError> {
    let vacant = match sessions.entry(session.to_string()) {
        Entry::Occupied(o) => return Ok(o.into_mut()),
        Entry::Vacant(v) => v,
    };
    let row = tx
        .prepare_cached(
            "SELECT first_ns, last_ns, cwd, git_branch, project, project_path, pr_number, pr_url,
                        pr_repository
                 FROM transcript_sessions WHERE session_id = ?1",
        )?
        .query_row([session], |r| {
            Ok(SessionRow {
                first_ns: r.get(0)?,
                last_ns: r.get(1)?,
                cwd: r.get(2)?,
                git_branch: r.get(3)?,
                project: r.get(4)?,
                project_path: r.get(5)?,
                pr_number: r.get(6)?,
                pr_url: r.get(7)?,
                pr_repository: r.get(8)?,
                changed: false,
            })
        })
        .optional()?;
    Ok(vacant.insert(row))
}

fn write_session(tx: &Connection, session: &str, row: &SessionRow) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO transcript_sessions (session_id, first_ns, last_ns, cwd, git_branch, project,
             project_path, pr_number, pr_url, pr_repository)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(session_id) DO UPDATE SET first_ns = excluded.first_ns,
             last_ns = excluded.last_ns, cwd = excluded.cwd, git_branch = excluded.git_branch,
             project = excluded.project, project_path = excluded.project_path,
             pr_number = excluded.pr_number, pr_url = excluded.pr_url,
             pr_repository = excluded.pr_repository",
    )?
    .execute(params![
        session,
        row.first_ns,
        row.last_ns,
        row.cwd,
        row.git_branch,
        row.project,
        row.project_path,
        row.pr_number,
        row.pr_url,
        row.pr_repository,
    ])?;
    Ok(())
}

fn apply_line(
    tx: &Connection,
    line: &Line,
    projects: &HashMap<String, Project>,
    sessions: &mut HashMap<String, Option<SessionRow>>,
    stored: &mut NewRequests,
) -> Result<u64, StoreError> {
    let mut added = 0;
    if let Some(c) = &line.context {
        let project = projects.get(&c.cwd);
        let (name, path) =
            project.map(|p| (p.name.as_str(), p.path.as_str())).unwrap_or((&c.cwd, &c.cwd));
        // Outside any work tree the `gitBranch` Claude Code wrote (`HEAD`) is no branch.
        let branch =
            if project.is_some_and(|p| p.outside_git) { None } else { c.git_branch.as_deref() };
        let row = session_row(tx, sessions, &c.session_id)?;
        match row {
            None => {
                *row = Some(SessionRow {
                    first_ns: c.time_ns,
                    last_ns: c.last_ns,
                    cwd: c.cwd.clone(),
                    git_branch: branch.map(str::to_string),
                    project: name.to_string(),
                    project_path: path.to_string(),
                    pr_number: None,
                    pr_url: None,
                    pr_repository: None,
                    changed: true,
                })
            }
            // The first line seen (by time) names the place; a later branch fills one missing.
            Some(r) => {
                let earlier = c.time_ns < r.first_ns;
                if earlier {
                    (r.cwd, r.project, r.project_path) =
                        (c.cwd.clone(), name.to_string(), path.to_string());
                }
                if (earlier || r.git_branch.is_none()) && branch.is_some() {
                    r.git_branch = branch.map(str::to_string);
                }
                let (first, last) = (r.first_ns.min(c.time_ns), r.last_ns.max(c.last_ns));
                (r.first_ns, r.last_ns) = (first, last);
                r.changed = true;
            }
        }
    }
    if let Some(r) = &line.request {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO transcript_requests (request_id, message_id, session_id, model, time_ns,
                     input_tokens, output_tokens, cache_read_tokens, cache_5m_tokens, cache_1h_tokens, fast)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                r.request_id,
                r.message_id,
                r.session_id,
                r.model,
                r.time_ns,
                r.input as i64,
                r.output as i64,
                r.cache_read as i64,
                r.cache_write_5m as i64,
                r.cache_write_1h as i64,
                r.fast,
            ])? as u64;
        if inserted > 0 {
            stored.add(r);
        }
        added += inserted;
    }
    if let Some(e) = &line.api_error {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO transcript_api_errors (key, session_id, time_ns) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![e.key, e.session_id, e.time_ns])?;
    }
    if let Some(cs) = &line.cost_state {
        for (model, cost) in &cs.models {
            // Requests are applied in file order: what is stored now is what this line covers.
            tx.prepare_cached(
                "INSERT INTO transcript_cost_state (session_id, model, cost_usd, covers_to_ns)
                 VALUES (?1, ?2, ?3, COALESCE((SELECT MAX(time_ns) FROM transcript_requests WHERE session_id = ?1 AND model = ?2), 0))
                 ON CONFLICT(session_id, model) DO UPDATE SET
                     cost_usd = excluded.cost_usd, covers_to_ns = MAX(covers_to_ns, excluded.covers_to_ns)",
            )?
            .execute(params![cs.session_id, model, cost])?;
        }
    }
    if let Some(pr) = &line.pr_link {
        // The first PR a session names is kept (a session without a place gets none).
        if let Some(r) = session_row(tx, sessions, &pr.session_id)?.as_mut() {
            if r.pr_number.is_none() {
                (r.pr_number, r.pr_url, r.pr_repository) =
                    (Some(pr.number), pr.url.clone(), pr.repository.clone());
                r.changed = true;
            }
        }
    }
    Ok(added)
}

/// One stored transcript request, as the counting rule reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRequest {
    pub request_id: String,
    pub session_id: String,
    pub model: String,
    pub time_ns: i64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub fast: bool,
}

/// A session's place: project, branch and PR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SessionPlace {
    pub project: String,
    pub project_path: String,
    pub git_branch: Option<String>,
    pub pr_number: Option<i64>,
    pub pr_url: Option<String>,
    pub pr_repository: Option<String>,
    pub first_ns: i64,
}

/// What telemetry holds for one session, for the counting rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TelemetrySession {
    /// `request_id` of every `claude_code.api_request` event.
    pub request_ids: HashSet<String>,
    /// All-time `claude_code.cost.usage` per model.
    pub cost_by_model: HashMap<String, f64>,
    /// All-time `claude_code.token.usage` per (model, type).
    pub tokens: HashMap<(String, String), f64>,
    /// Telemetry counted the session itself (`claude_code.session.count`).
    pub counted_session: bool,
}

/// Claude Code's last stated cost of one session and model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StatedCost {
    pub cost_usd: f64,
    pub covers_to_ns: i64,
}

/// Everything the counting rule needs about the sessions with transcript requests in a range.
#[derive(Debug, Default)]
pub(crate) struct TranscriptFacts {
    /// Every request (all time) of each session that has one in the range.
    pub requests: Vec<StoredRequest>,
    pub places: HashMap<String, SessionPlace>,
    pub telemetry: HashMap<String, TelemetrySession>,
    pub stated: HashMap<(String, String), StatedCost>,
}

impl Reader {
    /// The facts behind the transcripts' share of `[start_ns, end_ns)`.
    pub(crate) fn transcript_facts(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<TranscriptFacts, StoreError> {
        let sessions: Vec<String> = self
            .conn()
            .prepare_cached(
                "SELECT DISTINCT session_id FROM transcript_requests WHERE time_ns >= ?1 AND time_ns < ?2
                 UNION SELECT session_id FROM transcript_sessions WHERE first_ns >= ?1 AND first_ns < ?2",
            )?
            .query_map(params![start_ns, end_ns], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        self.facts_of(sessions)
    }

    /// The facts of the given sessions (every request of each, all time).
    fn facts_of(&self, mut sessions: Vec<String>) -> Result<TranscriptFacts, StoreError> {
        let conn = self.conn();
        sessions.sort();
        sessions.dedup();
        let mut facts = TranscriptFacts::default();
        if sessions.is_empty() {
            return Ok(facts);
        }
        let wanted: HashSet<&str> = sessions.iter().map(String::as_str).collect();
        if sessions.len() > SESSIONS_PER_LOOKUP {
            self.requests_of_many(&wanted, &mut facts.requests)?;
        } else {
            for session in &sessions {
                self.requests_of(session, &mut facts.requests)?;
            }
        }
        for session in &sessions {
            if let Some(place) = self.session_place(session)? {
                facts.places.insert(session.clone(), place);
            }
            let ids = telemetry_request_ids(conn, session)?;
            if !ids.is_empty() {
                facts.telemetry.entry(session.clone()).or_default().request_ids = ids;
            }
        }
        self.telemetry_totals(&wanted, &mut facts.telemetry)?;
        let mut stmt = conn.prepare_cached(
            "SELECT session_id, model, cost_usd, covers_to_ns FROM transcript_cost_state",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let session: String = r.get(0)?;
            if wanted.contains(session.as_str()) {
                let stated = StatedCost { cost_usd: r.get(2)?, covers_to_ns: r.get(3)? };
                facts.stated.insert((session, r.get(1)?), stated);
            }
        }
        Ok(facts)
    }

    /// Every request of one session, through the session index.
    fn requests_of(&self, session: &str, out: &mut Vec<StoredRequest>) -> Result<(), StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT request_id, model, time_ns, input_tokens, output_tokens, cache_read_tokens,
                    cache_5m_tokens, cache_1h_tokens, fast, session_id
             FROM transcript_requests WHERE session_id = ?1",
        )?;
        let rows = stmt.query_map([session], stored_request)?;
        for row in rows {
            out.push(row?);
        }
        Ok(())
    }

    /// Every request of many sessions in one pass over the table, in its own order: one
    /// index lookup per request would read a page per row (the table is ordered by request id,
    /// so a session's rows are scattered), which on a year of history cost seconds.
    fn requests_of_many(
        &self,
        sessions: &HashSet<&str>,
        out: &mut Vec<StoredRequest>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT request_id, model, time_ns, input_tokens, output_tokens, cache_read_tokens,
                    cache_5m_tokens, cache_1h_tokens, fast, session_id
             FROM transcript_requests",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            if sessions.contains(r.get_ref(9)?.as_str()?) {
                out.push(stored_request(r)?);
            }
        }
        Ok(())
    }

    /// Project, branch and PR of one session, if its transcripts were read.
    pub(crate) fn session_place(&self, session: &str) -> Result<Option<SessionPlace>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT project, project_path, git_branch, pr_number, pr_url, pr_repository, first_ns
             FROM transcript_sessions WHERE session_id = ?1",
        )?;
        Ok(stmt
            .query_row([session], |r| {
                Ok(SessionPlace {
                    project: r.get(0)?,
                    project_path: r.get(1)?,
                    git_branch: r.get(2)?,
                    pr_number: r.get(3)?,
                    pr_url: r.get(4)?,
                    pr_repository: r.get(5)?,
                    first_ns: r.get(6)?,
                })
            })
            .optional()?)
    }

    /// Every session's place (project, branch, PR), for groupings of telemetry by session.
    pub(crate) fn session_places(&self) -> Result<HashMap<String, SessionPlace>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT session_id, project, project_path, git_branch, pr_number, pr_url, pr_repository, first_ns
             FROM transcript_sessions",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                SessionPlace {
                    project: r.get(1)?,
                    project_path: r.get(2)?,
                    git_branch: r.get(3)?,
                    pr_number: r.get(4)?,
                    pr_url: r.get(5)?,
                    pr_repository: r.get(6)?,
                    first_ns: r.get(7)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// All-time cost and tokens telemetry's metrics hold per session (from the running totals,
    /// not the usage history), and whether it counted the session.
    pub(super) fn telemetry_totals(
        &self,
        wanted: &HashSet<&str>,
        out: &mut HashMap<String, TelemetrySession>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT s.session_id, s.metric, COALESCE(s.model, ''), COALESCE(s.type, ''), st.total
             FROM series s JOIN series_state st ON st.series_id = s.id
             WHERE s.metric IN (?1, ?2, ?3) AND s.session_id IS NOT NULL AND s.scope_name != ?4",
        )?;
        // The engine's own exposed transcript series are the counting rule's output, not input.
        let mut rows =
            stmt.query(params![names::COST, names::TOKENS, names::SESSIONS, expose::SCOPE])?;
        while let Some(r) = rows.next()? {
            let session: String = r.get(0)?;
            if !wanted.contains(session.as_str()) {
                continue;
            }
            let metric: String = r.get(1)?;
            let model: String = r.get(2)?;
            let total: f64 = r.get(4)?;
            let t = out.entry(session).or_default();
            match metric.as_str() {
                names::COST => *t.cost_by_model.entry(model).or_insert(0.0) += total,
                names::TOKENS => *t.tokens.entry((model, r.get(3)?)).or_insert(0.0) += total,
                _ => t.counted_session = true,
            }
        }
        Ok(())
    }

    /// Per file: path, bytes read, size, malformed lines (doctor, import status).
    pub fn transcript_files(&self) -> Result<Vec<(String, u64, u64, u64)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT path, offset, size, malformed FROM transcript_files ORDER BY path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// API errors the transcripts show in `[start_ns, end_ns)`.
    pub fn transcript_api_errors(&self, start_ns: i64, end_ns: i64) -> Result<u64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM transcript_api_errors WHERE time_ns >= ?1 AND time_ns < ?2",
            params![start_ns, end_ns],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

/// The newest API request of either source (the dashboard's "last request").
#[derive(Debug, Clone, PartialEq)]
pub struct NewestRequest {
    /// When the request happened, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Its session, model, tokens and cost. For a request only the transcripts saw, the cost
    /// is Claude Code's own (its `cost-state`) where it stated one, else the price table's, and
    /// `None` for a model without any price; `duration_ms` is then `None`.
    pub figures: EventFigures,
    /// Only Claude Code's transcripts saw it (no telemetry `claude_code.api_request` event).
    pub from_transcripts: bool,
}

impl Reader {
    /// The newest API request: telemetry's newest `claude_code.api_request` event, or the
    /// newest request of the transcripts when that one is newer and telemetry did not see it.
    pub fn newest_request(&self) -> Result<Option<NewestRequest>, StoreError> {
        let telemetry = self.recent_events(1, None, Some(names::API_REQUEST))?.into_iter().next();
        let from_telemetry = telemetry.as_ref().map(|e| NewestRequest {
            time_ns: e.time_ns,
            figures: e.figures.clone(),
            from_transcripts: false,
        });
        let newest = self
            .conn()
            .prepare_cached(
                "SELECT request_id, session_id, time_ns FROM transcript_requests
                 ORDER BY time_ns DESC, request_id DESC LIMIT 1",
            )?
            .query_row([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)))
            .optional()?;
        let Some((request_id, session, time_ns)) = newest else { return Ok(from_telemetry) };
        if telemetry.as_ref().is_some_and(|e| e.time_ns >= time_ns) {
            return Ok(from_telemetry);
        }
        let facts = self.facts_of(vec![session.clone()])?;
        if facts.telemetry.get(&session).is_some_and(|t| t.request_ids.contains(&request_id)) {
            return Ok(from_telemetry);
        }
        let Some(request) = facts.requests.iter().find(|r| r.request_id == request_id) else {
            return Ok(from_telemetry);
        };
        let share = counting::shares(&facts, self.prices())
            .into_iter()
            .find(|s| s.request_id == request_id);
        let cost_usd = match share {
            Some(s) if s.unpriced => None,
            // Telemetry's metrics already counted the session's money: the table's figure.
            Some(s) if s.cost_usd == 0.0 && !s.priced_from_table => {
                counting::table_cost(self.prices(), request).or(Some(0.0))
            }
            Some(s) => Some(s.cost_usd),
            None => counting::table_cost(self.prices(), request),
        };
        Ok(Some(NewestRequest {
            time_ns: request.time_ns,
            figures: EventFigures {
                session_id: Some(session),
                model: Some(request.model.clone()),
                cost_usd,
                input_tokens: Some(request.input as i64),
                output_tokens: Some(request.output as i64),
                cache_read_tokens: Some(request.cache_read as i64),
                cache_creation_tokens: Some(
                    (request.cache_write_5m + request.cache_write_1h) as i64,
                ),
                duration_ms: None,
            },
            from_transcripts: true,
        }))
    }
}

/// The `request_id` of every telemetry `claude_code.api_request` event of one session.
///
/// The one place that knows where telemetry keeps an event's request id: the typed, indexed
/// `events.request_id` column (schema v5).
/// Above this many sessions, their requests are read in one pass over the table
/// ([`Reader::requests_of_many`]) instead of one index lookup per session.
const SESSIONS_PER_LOOKUP: usize = 200;

fn stored_request(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRequest> {
    Ok(StoredRequest {
        request_id: r.get(0)?,
        model: r.get(1)?,
        time_ns: r.get(2)?,
        input: r.get::<_, i64>(3)? as u64,
        output: r.get::<_, i64>(4)? as u64,
        cache_read: r.get::<_, i64>(5)? as u64,
        cache_write_5m: r.get::<_, i64>(6)? as u64,
        cache_write_1h: r.get::<_, i64>(7)? as u64,
        fast: r.get(8)?,
        session_id: r.get(9)?,
    })
}

fn telemetry_request_ids(conn: &Connection, session: &str) -> Result<HashSet<String>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT request_id FROM events
         WHERE session_key = {} AND name = ?2 AND request_id IS NOT NULL",
        super::events::session_key_sql(1)
    ))?;
    let rows = stmt.query_map(params![session, names::API_REQUEST], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Reader {
    /// Adds the transcripts' share of `[start_ns, end_ns)` (the counting rule) to a report.
    pub(super) fn add_transcripts(
        &self,
        start_ns: i64,
        end_ns: i64,
        by: Option<GroupBy>,
        week_start: chrono::Weekday,
        total: &mut Figures,
        groups: &mut BTreeMap<String, Figures>,
    ) -> Result<(), StoreError> {
        let tz = chrono::Local;
        let bucket = |ns: i64, g: GroupBy| local_bucket(&tz, ns, g, week_start);
        let (shares, new_sessions) = self.period_shares(start_ns, end_ns, by)?;
        for share in &shares {
            total.add_transcript(share);
            let Some(by) = by else { continue };
            if by == GroupBy::Type {
                for (kind, part) in split_by_type(share) {
                    groups.entry(kind.to_string()).or_default().add_transcript(&part);
                }
                continue;
            }
            let key = match by {
                GroupBy::Model => share.model.clone(),
                GroupBy::Agent => crate::pricing::CLAUDE_CODE.to_string(),
                GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour => {
                    bucket(share.time_ns, by)
                }
                _ => share.session_id.clone(),
            };
            groups.entry(key).or_default().add_transcript(share);
        }
        for (session, first_ns) in new_sessions {
            total.add_transcript_session();
            let key = match by {
                None | Some(GroupBy::Type | GroupBy::Model) => continue,
                Some(GroupBy::Agent) => crate::pricing::CLAUDE_CODE.to_string(),
                Some(g @ (GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour)) => {
                    bucket(first_ns, g)
                }
                Some(_) => session,
            };
            groups.entry(key).or_default().add_transcript_session();
        }
        total.transcripts.api_errors += self.transcript_api_errors(start_ns, end_ns)?;
        Ok(())
    }

    /// The counting rule's shares of `[start_ns, end_ns)`, and the sessions it adds that
    /// began in it (with when) and that telemetry did not count.
    ///
    /// Where no grouping splits a session by time, a session whose outcome is its sums
    /// (store/transcript_sums.rs) gives one share per model instead of one per request.
    #[allow(clippy::type_complexity)]
    fn period_shares(
        &self,
        start_ns: i64,
        end_ns: i64,
        by: Option<GroupBy>,
    ) -> Result<(Vec<Share>, Vec<(String, i64)>), StoreError> {
        let in_range = |ns: i64| ns >= start_ns && ns < end_ns;
        let by_whole_sessions = !matches!(
            by,
            Some(GroupBy::Type | GroupBy::Day | GroupBy::Week | GroupBy::Month | GroupBy::Hour)
        );
        let (facts, mut shares, mut new_sessions) = if by_whole_sessions {
            let period = self.period_sessions(start_ns, end_ns)?;
            (self.facts_of(period.rest)?, period.summed, period.summed_began)
        } else {
            (self.transcript_facts(start_ns, end_ns)?, Vec::new(), Vec::new())
        };
        let read = counting::shares(&facts, self.prices());
        shares.extend(read.into_iter().filter(|s| in_range(s.time_ns)));
        for (session, place) in facts.places {
            let counted = facts.telemetry.get(&session).is_some_and(|t| t.counted_session);
            if !counted && in_range(place.first_ns) {
                new_sessions.push((session, place.first_ns));
            }
        }
        Ok((shares, new_sessions))
    }

    /// What the transcripts add to spend per (15-minute slot, model) in `[start_ns, end_ns)`:
    /// budgets and their forecast read it beside telemetry's cost.
    pub(crate) fn transcript_cost_slots(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(i64, String, f64)>, StoreError> {
        let slot_ns = super::SLOT_SECONDS * 1_000_000_000;
        Ok(self
            .costed_shares(start_ns, end_ns)?
            .into_iter()
            .map(|s| (s.time_ns.div_euclid(slot_ns), s.model, s.cost_usd))
            .collect())
    }

    /// Time and cost of each request from `start_ns` to `end_ns` that the transcripts add to
    /// telemetry (the counting rule's shares: what telemetry's `api_request` events did not
    /// already count), for the statusline's burn rate next to those events.
    pub fn transcript_request_costs(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        Ok(self
            .costed_shares(start_ns, end_ns)?
            .into_iter()
            .map(|s| (s.time_ns, s.cost_usd))
            .collect())
    }

    /// The counting rule's shares of requests from `start_ns` to `end_ns` that add money.
    fn costed_shares(&self, start_ns: i64, end_ns: i64) -> Result<Vec<Share>, StoreError> {
        let facts = self.transcript_facts(start_ns, end_ns)?;
        Ok(counting::shares(&facts, self.prices())
            .into_iter()
            .filter(|s| s.time_ns >= start_ns && s.time_ns < end_ns && s.cost_usd > 0.0)
            .collect())
    }

    /// What this engine has put on `/metrics` from its transcripts so far (`[transcripts]
    /// expose`): the running total of each of its series, by session, model and kind.
    pub(crate) fn exposed_transcript_totals(&self) -> Result<HashMap<ExposedKey, f64>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT s.session_id, s.metric, COALESCE(s.model, ''), COALESCE(s.type, ''), st.total
             FROM series s JOIN series_state st ON st.series_id = s.id
             WHERE s.scope_name = ?1 AND s.session_id IS NOT NULL",
        )?;
        let mut rows = stmt.query([expose::SCOPE])?;
        let mut out = HashMap::new();
        while let Some(r) = rows.next()? {
            let metric: String = r.get(1)?;
            let kind = match metric.as_str() {
                names::COST => expose::COST_KIND.to_string(),
                _ => r.get(3)?,
            };
            out.insert(ExposedKey { session_id: r.get(0)?, model: r.get(2)?, kind }, r.get(4)?);
        }
        Ok(out)
    }

    /// The counting rule's share of every request (all time) of each session with a transcript
    /// request since `since_ns` (`i64::MIN`: every session), for `[transcripts] expose`.
    pub(crate) fn transcript_shares_since(&self, since_ns: i64) -> Result<Vec<Share>, StoreError> {
        let facts = self.transcript_facts(since_ns, i64::MAX)?;
        Ok(counting::shares(&facts, self.prices()))
    }

    /// Groups keyed by session, folded into projects, branches or PRs.
    pub(super) fn fold_by_place(
        &self,
        by: GroupBy,
        by_session: BTreeMap<String, Figures>,
    ) -> Result<Vec<Group>, StoreError> {
        let places = self.session_places()?;
        // Keyed by the full path: two work trees may share a folder name.
        let mut folded: BTreeMap<(Option<String>, String), Figures> = BTreeMap::new();
        for (session, figures) in by_session {
            let place = places.get(&session);
            let (key, detail) = match (by, place) {
                (GroupBy::Project, Some(p)) => (p.project.clone(), Some(p.project_path.clone())),
                (GroupBy::Branch, Some(p)) => (p.git_branch.clone().unwrap_or_default(), None),
                (GroupBy::Pr, Some(p)) => match p.pr_number {
                    Some(n) => (format!("#{n}"), p.pr_url.clone()),
                    None => (String::new(), None),
                },
                _ => (String::new(), None),
            };
            folded.entry((detail, key)).or_default().merge(&figures);
        }
        let mut groups: Vec<Group> = folded
            .into_iter()
            .map(|((detail, key), figures)| Group { key, detail, figures })
            .collect();
        groups.sort_by(|a, b| (&a.key, &a.detail).cmp(&(&b.key, &b.detail)));
        Ok(groups)
    }
}

fn split_by_type(s: &Share) -> Vec<(&'static str, Share)> {
    let zero = Share {
        input: 0.0,
        output: 0.0,
        cache_read: 0.0,
        cache_creation: 0.0,
        requests: 0,
        cost_usd: 0.0,
        ..s.clone()
    };
    vec![
        ("", Share { unpriced: s.unpriced, ..s.clone() }.tokens_zeroed()),
        ("input", Share { input: s.input, ..zero.clone() }),
        ("output", Share { output: s.output, ..zero.clone() }),
        ("cacheRead", Share { cache_read: s.cache_read, ..zero.clone() }),
        ("cacheCreation", Share { cache_creation: s.cache_creation, ..zero }),
    ]
}

impl Share {
    fn tokens_zeroed(self) -> Share {
        Share { input: 0.0, output: 0.0, cache_read: 0.0, cache_creation: 0.0, ..self }
    }
}

/// One session where telemetry and the transcripts disagree: requests only one of them saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDisagreement {
    pub session_id: String,
    pub telemetry_only: usize,
    pub transcripts_only: usize,
}

impl Reader {
    /// Sessions that both sources know whose requests differ (doctor's reconciliation).
    pub fn disagreeing_sessions(&self) -> Result<Vec<SessionDisagreement>, StoreError> {
        let conn = self.conn();
        let sessions: Vec<String> = conn
            .prepare_cached("SELECT session_id FROM transcript_sessions ORDER BY session_id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for session in sessions {
            let telemetry = telemetry_request_ids(conn, &session)?;
            if telemetry.is_empty() {
                continue;
            }
            let mut requests = Vec::new();
            self.requests_of(&session, &mut requests)?;
            let here: HashSet<&str> = requests.iter().map(|r| r.request_id.as_str()).collect();
            let telemetry_only = telemetry.iter().filter(|id| !here.contains(id.as_str())).count();
            let transcripts_only = here.iter().filter(|id| !telemetry.contains(**id)).count();
            if telemetry_only + transcripts_only > 0 {
                out.push(SessionDisagreement {
                    session_id: session,
                    telemetry_only,
                    transcripts_only,
                });
            }
        }
        Ok(out)
    }
}
