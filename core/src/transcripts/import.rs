//! Reading what is new in each transcript file into the store.
//!
//! A file is read from where the last read stopped, in chunks, only up to its last complete
//! line (a half-written line is read again once it is complete). A file whose inode changed,
//! that shrank below the stored position, or whose first bytes changed (rewritten) is read
//! again from the start; requests are keyed, so that adds nothing twice. Each chunk and the
//! new position are committed together: an import stopped anywhere resumes exactly.

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use super::discover;
use super::line::parse_line;
use super::project::{Project, ProjectResolver};
use super::record::Line;
use super::{TranscriptError, TranscriptsConfig};
use crate::store::transcripts::{FileBatch, FileState, TranscriptWriter};

const CHUNK: usize = 4 << 20;
const HEAD: u64 = 4096;
/// Where an import stands (for a progress bar or line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Transcript files this import covers.
    pub files_total: u64,
    /// Files read to their end so far.
    pub files_done: u64,
    /// Sum of the files' sizes in bytes when the import started.
    pub bytes_total: u64,
    /// Bytes read (or skipped as read before) so far.
    pub bytes_done: u64,
    /// Requests not stored before.
    pub new_requests: u64,
    /// Complete lines that did not parse as a transcript entry (skipped).
    pub malformed_lines: u64,
    /// Stopped before the end (the next import continues).
    pub stopped: bool,
}

/// Reads Claude Code's transcripts into the database at `db_path`.
pub struct Importer {
    writer: TranscriptWriter,
    resolver: ProjectResolver,
    /// The read buffer, kept across files: a fresh 4 MiB buffer per file was a large share of
    /// a first import's system time.
    chunk: Vec<u8>,
}

/// Every transcript file of the configured directories.
pub fn all_files(config: &TranscriptsConfig) -> Vec<PathBuf> {
    if !config.enabled {
        return Vec::new();
    }
    let mut files = Vec::new();
    for dir in discover::config_dirs(config) {
        files.extend(discover::transcript_files(&discover::projects_root(&dir)));
    }
    files
}

/// What the reading thread hands the writing one.
enum Read {
    /// One chunk of a file, parsed.
    Chunk(ParsedChunk),
    /// The file is read to its end (or was unchanged, or vanished).
    FileDone,
    /// The file could not be read: the import ends with this error.
    Failed(TranscriptError),
}

/// The complete lines of one read of a file, parsed, and the file's position after them.
struct ParsedChunk {
    path: PathBuf,
    state: FileState,
    restarted: bool,
    lines: Vec<Line>,
    malformed: u64,
    projects: HashMap<String, Project>,
}

/// Parsed chunks waiting for the writer; each holds only the few facts of its lines (about
/// 1 % of the bytes read). Long enough that the reading thread can go on parsing while the
/// writer waits on a commit's sync and checkpoint (16 chunks are about 16 files).
const QUEUE: usize = 256;

impl Importer {
    /// Opens the database at `db_path` for writing transcripts beside a running engine (its
    /// telemetry writer waits for the importer's open transaction only briefly).
    pub fn open(db_path: &Path) -> Result<Importer, TranscriptError> {
        Ok(Importer {
            writer: TranscriptWriter::open(db_path, false)?,
            resolver: ProjectResolver::default(),
            chunk: Vec::new(),
        })
    }

    /// Opens the database at `db_path` for an import by the only process writing it (`tokentray
    /// import` with no engine running): reads are committed in larger groups, so a first import
    /// writes each page of the history far fewer times. Each commit is still durable.
    pub fn open_alone(db_path: &Path) -> Result<Importer, TranscriptError> {
        Ok(Importer {
            writer: TranscriptWriter::open(db_path, true)?,
            resolver: ProjectResolver::default(),
            chunk: Vec::new(),
        })
    }

    /// Imports what is new in `files`, calling `progress` after each chunk; returns early when
    /// `stop` is set.
    ///
    /// The files are read and parsed on a thread of their own while this one writes the
    /// database: parsing is about half of a first import's work, and the writes the other half.
    pub fn run(
        &mut self,
        files: &[PathBuf],
        stop: &AtomicBool,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Progress, TranscriptError> {
        let sizes: Vec<u64> =
            files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).collect();
        let mut p = Progress {
            files_total: files.len() as u64,
            bytes_total: sizes.iter().sum(),
            ..Progress::default()
        };
        progress(&p);
        let stored = self.writer.file_states()?;
        let Importer { writer, resolver, chunk } = self;
        let (send, reads) = std::sync::mpsc::sync_channel(QUEUE);
        let result = std::thread::scope(|scope| {
            let reading = std::thread::Builder::new()
                .name("tokentray-transcripts-read".into())
                .spawn_scoped(scope, move || {
                    read_files(files, &stored, stop, resolver, chunk, send)
                });
            if let Err(e) = reading {
                return Err(TranscriptError::Read {
                    path: PathBuf::new(),
                    reason: format!("cannot start the reading thread: {e}"),
                });
            }
            writer.begin_group()?;
            let written = write_reads(writer, &reads, &sizes, stop, &mut p, &mut progress);
            // Ends the reading thread at its next send, if it is not done yet.
            drop(reads);
            // What the group read before a failed read of a file is kept, as with one commit
            // per file (a read that failed to apply has already rolled its group back).
            let ended = writer.end_group();
            written?;
            Ok(ended?)
        });
        result?;
        p.stopped |= stop.load(Ordering::Relaxed) && p.files_done < p.files_total;
        Ok(p)
    }
}

/// The writing side of [`Importer::run`]: applies each parsed chunk with its file's position.
fn write_reads(
    writer: &mut TranscriptWriter,
    reads: &Receiver<Read>,
    sizes: &[u64],
    stop: &AtomicBool,
    p: &mut Progress,
    progress: &mut impl FnMut(&Progress),
) -> Result<(), TranscriptError> {
    let mut sizes = sizes.iter();
    let mut file_start = 0;
    while let Ok(read) = reads.recv() {
        if stop.load(Ordering::Relaxed) {
            // A chunk not applied is read again by the next import.
            p.stopped = true;
            return Ok(());
        }
        match read {
            Read::Chunk(c) => {
                p.malformed_lines += c.malformed;
                let batch = FileBatch {
                    path: &c.path,
                    state: c.state,
                    restarted: c.restarted,
                    lines: c.lines,
                    malformed: c.malformed,
                    projects: &c.projects,
                };
                p.new_requests += writer.apply(&batch)?;
                p.bytes_done = file_start + batch.state.offset.min(batch.state.size);
            }
            Read::FileDone => {
                file_start += sizes.next().copied().unwrap_or(0);
                p.bytes_done = file_start;
                p.files_done += 1;
            }
            Read::Failed(e) => return Err(e),
        }
        progress(p);
    }
    Ok(())
}

/// The reading side of [`Importer::run`]: each file's new complete lines, parsed, in order.
fn read_files(
    files: &[PathBuf],
    stored: &HashMap<String, FileState>,
    stop: &AtomicBool,
    resolver: &mut ProjectResolver,
    chunk: &mut Vec<u8>,
    send: SyncSender<Read>,
) {
    for file in files {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let state = stored.get(file.to_string_lossy().as_ref());
        let mut emit = |c: ParsedChunk| send.send(Read::Chunk(c)).is_ok();
        let read = match read_file(file, state, stop, resolver, chunk, &mut emit) {
            Ok(true) => Read::FileDone,
            Ok(false) => return,
            Err(e) => Read::Failed(e),
        };
        if send.send(read).is_err() {
            return;
        }
    }
}

/// Reads what is new in one file, handing each chunk of complete lines to `emit`. A file that
/// vanished keeps what was read from it. `Ok(false)`: `emit` refused a chunk (the writer
/// stopped).
fn read_file(
    path: &Path,
    stored: Option<&FileState>,
    stop: &AtomicBool,
    resolver: &mut ProjectResolver,
    chunk: &mut Vec<u8>,
    emit: &mut impl FnMut(ParsedChunk) -> bool,
) -> Result<bool, TranscriptError> {
    let read_err = |e: std::io::Error| TranscriptError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let Ok(mut file) = std::fs::File::open(path) else { return Ok(true) };
    let meta = file.metadata().map_err(read_err)?;
    let (inode, size, mtime_ns) = identity(&meta);
    let mut offset = match stored {
        Some(s) if s.inode == inode && s.size == size && s.mtime_ns == mtime_ns => return Ok(true),
        Some(s)
            if s.inode == inode
                && size >= s.offset
                && head_hash(&mut file, s.offset).map_err(read_err)? == s.head_hash =>
        {
            s.offset
        }
        _ => 0,
    };
    let mut restarted = offset == 0;
    file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK.min(size as usize + 1));
    chunk.resize(CHUNK, 0);
    loop {
        let n = file.read(chunk).map_err(read_err)?;
        buf.extend_from_slice(&chunk[..n]);
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete > 0 || n == 0 {
            offset += complete as u64;
            let hash = head_hash(&mut std::fs::File::open(path).map_err(read_err)?, offset)
                .map_err(read_err)?;
            let state = FileState { inode, size, mtime_ns, offset, head_hash: hash };
            let mut parsed = parse_chunk(&buf[..complete], resolver);
            parsed.path = path.to_path_buf();
            parsed.state = state;
            parsed.restarted = restarted;
            if !emit(parsed) {
                return Ok(false);
            }
            restarted = false;
            buf.drain(..complete);
        }
        if n == 0 {
            return Ok(true);
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
}

/// The lines of one chunk; a request repeated within it (a line per content block) is kept
/// once, as the store would keep it.
fn parse_chunk(bytes: &[u8], resolver: &mut ProjectResolver) -> ParsedChunk {
    let mut parsed = ParsedChunk {
        path: PathBuf::new(),
        state: FileState { inode: 0, size: 0, mtime_ns: 0, offset: 0, head_hash: 0 },
        restarted: false,
        lines: Vec::new(),
        malformed: 0,
        projects: HashMap::new(),
    };
    let mut seen: HashSet<(String, String)> = HashSet::new();
    // The line holding the last place named: lines naming the same session, cwd and branch
    // after it only widen its time range. Folded or not, the session's stored row is the same
    // (the earliest line names the place, the branch is the same), and it is one row to apply
    // instead of one per line.
    let mut last_place: Option<usize> = None;
    for text in lines(bytes).filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        let Ok(mut line) = parse_line(text) else {
            parsed.malformed += 1;
            continue;
        };
        if let Some(c) = line.context.take() {
            let same =
                last_place.and_then(|i| parsed.lines.get_mut(i)?.context.as_mut()).filter(|p| {
                    (&p.session_id, &p.cwd, &p.git_branch) == (&c.session_id, &c.cwd, &c.git_branch)
                });
            match same {
                Some(p) => {
                    (p.time_ns, p.last_ns) = (p.time_ns.min(c.time_ns), p.last_ns.max(c.last_ns))
                }
                None => {
                    if !parsed.projects.contains_key(&c.cwd) {
                        parsed.projects.insert(c.cwd.clone(), resolver.resolve(&c.cwd));
                    }
                    last_place = Some(parsed.lines.len());
                    line.context = Some(c);
                }
            }
        }
        if let Some(r) = &line.request {
            if !seen.insert((r.request_id.clone(), r.message_id.clone())) {
                line.request = None;
            }
        }
        if line != Line::default() {
            parsed.lines.push(line);
        }
    }
    parsed
}

/// The lines of `bytes`, split at `\n` found with memchr (a first import splits 685 MB; the
/// byte-at-a-time split was inlined in the reading thread's largest own-code profile entry).
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())).map(move |end| {
        let line = bytes.get(start..end).unwrap_or_default();
        start = end + 1;
        line
    })
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64, i64) {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    (inode, meta.len(), mtime_ns)
}

/// xxh3 of the first `min(upto, 4096)` bytes: tells a rewritten file from a grown one.
fn head_hash(file: &mut std::fs::File, upto: u64) -> std::io::Result<u64> {
    let mut head = vec![0u8; upto.min(HEAD) as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    Ok(xxhash_rust::xxh3::xxh3_64(&head))
}
