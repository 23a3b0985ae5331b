//! Reading what is new in each transcript file into the store.
//!
//! A file is read from where the last read stopped, in chunks, only up to its last complete
//! line (a half-written line is read again once it is complete). A file whose inode changed,
//! that shrank below the stored position, or whose first bytes changed (rewritten) is read
//! again from the start; requests are keyed, so that adds nothing twice. Each chunk and the
//! new position are committed together: an import stopped anywhere resumes exactly.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::discover;
use super::line::parse_line;
use super::project::ProjectResolver;
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

impl Importer {
    /// Opens the database at `db_path` for writing transcripts.
    pub fn open(db_path: &Path) -> Result<Importer, TranscriptError> {
        Ok(Importer {
            writer: TranscriptWriter::open(db_path)?,
            resolver: ProjectResolver::default(),
            chunk: Vec::new(),
        })
    }

    /// Imports what is new in `files`, calling `progress` after each chunk; returns early when
    /// `stop` is set.
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
        self.writer.begin_group()?;
        for (file, size) in files.iter().zip(sizes) {
            if stop.load(Ordering::Relaxed) {
                p.stopped = true;
                break;
            }
            let before = p.bytes_done;
            if let Err(e) = self.import_file(file, stop, &mut p, &mut progress) {
                // What the group read before the failure is kept, as with one commit per file.
                let _ = self.writer.end_group();
                return Err(e);
            }
            p.bytes_done = before + size;
            p.files_done += 1;
            progress(&p);
        }
        self.writer.end_group()?;
        p.stopped |= stop.load(Ordering::Relaxed) && p.files_done < p.files_total;
        Ok(p)
    }

    /// Reads what is new in one file. A file that vanished keeps what was read from it.
    pub(crate) fn import_file(
        &mut self,
        path: &Path,
        stop: &AtomicBool,
        p: &mut Progress,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), TranscriptError> {
        let read_err = |e: std::io::Error| TranscriptError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let Ok(mut file) = std::fs::File::open(path) else { return Ok(()) };
        let meta = file.metadata().map_err(read_err)?;
        let (inode, size, mtime_ns) = identity(&meta);
        let stored = self.writer.file_state(path)?;
        let mut offset = match &stored {
            Some(s) if s.inode == inode && s.size == size && s.mtime_ns == mtime_ns => {
                return Ok(())
            }
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
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.resize(CHUNK, 0);
        let mut read_all = || -> Result<(), TranscriptError> {
            loop {
                let n = file.read(&mut chunk).map_err(read_err)?;
                buf.extend_from_slice(&chunk[..n]);
                let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                if complete > 0 || n == 0 {
                    let consumed = &buf[..complete];
                    offset += complete as u64;
                    let hash = head_hash(&mut std::fs::File::open(path).map_err(read_err)?, offset)
                        .map_err(read_err)?;
                    let state = FileState { inode, size, mtime_ns, offset, head_hash: hash };
                    p.new_requests += self.apply_chunk(path, consumed, state, restarted, p)?;
                    restarted = false;
                    buf.drain(..complete);
                    progress(p);
                }
                if n == 0 || stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        };
        let result = read_all();
        self.chunk = chunk;
        result
    }

    fn apply_chunk(
        &mut self,
        path: &Path,
        bytes: &[u8],
        state: FileState,
        restarted: bool,
        p: &mut Progress,
    ) -> Result<u64, TranscriptError> {
        let mut lines = Vec::new();
        let mut malformed = 0u64;
        let mut projects = HashMap::new();
        for text in bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        {
            match parse_line(text) {
                Ok(line) => {
                    if let Some(c) = &line.context {
                        projects
                            .entry(c.cwd.clone())
                            .or_insert_with(|| self.resolver.resolve(&c.cwd));
                    }
                    lines.push(line)
                }
                Err(_) => malformed += 1,
            }
        }
        p.malformed_lines += malformed;
        let batch = FileBatch { path, state, restarted, lines, malformed, projects: &projects };
        Ok(self.writer.apply(&batch)?)
    }
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
