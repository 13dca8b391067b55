//! RSync: send a directory tree to one or more gateways at once.
//!
//! [`RSync`] behaves as Python execnet's `execnet.RSync`: the source tree is walked once
//! and described to every target; each target compares the description with its copy
//! (size and mtime, then a checksum where only the mtime differs) and asks for what
//! differs; each file it asks for is read once here and streamed, in chunks, to every
//! target that asked (a file larger than a chunk that some target must compare by
//! checksum is read twice: once to hash it, once to send it). Extra files can be deleted, symlinks and file modes are kept, a
//! filter chooses what goes, and a progress callback sees every chunk and file.
//!
//! ```no_run
//! use execnet::rsync::{RSync, TargetOptions};
//! use execnet::Group;
//!
//! let group = Group::new();
//! let gws = group.makegateways(&["popen//python=python3", "popen//python=python2.7"])?;
//! let mut sync = RSync::new("src/");
//! sync.add_target(&gws[0], "/tmp/copy-a", TargetOptions::new())
//!     .add_target(&gws[1], "/tmp/copy-b", TargetOptions::new().delete(true))
//!     .filter(|path| path.extension().map_or(true, |e| e != "pyc"))
//!     .on_progress(|p| eprint!("\r{}/{} files, {}/{} bytes", p.files_done, p.files_total,
//!                              p.bytes_done, p.bytes_total));
//! match sync.send() {
//!     Ok(report) => println!("{}", report.summary()),
//!     Err(e) => eprintln!("{e}"),       // every failure, each naming its file
//! }
//! # Ok::<(), execnet::Error>(())
//! ```
//!
//! The worker side is our own Python (`agent/rsync_remote.py`), sent with
//! [`Gateway::remote_exec`]; it runs on every interpreter the crate supports (CPython
//! 2.7 to 3.13, PyPy3, Jython 2.7).
//!
//! # What is compared and what is kept
//!
//! - A regular file is sent when the target has none, or one of another size; when only
//!   the mtime differs, both sides hash their copy (SHA-256) and the content goes only if
//!   the hashes differ (otherwise just the mode and mtime are set). Size and mtime equal:
//!   nothing is read; a differing mode is set.
//! - A written file gets the source's mode (`& 0o7777`) and mtime (to the nanosecond on
//!   Python 3; Python 2 and Jython have only a float clock, so there mtimes within a
//!   millisecond count as equal). Content goes to a temporary file in the same directory,
//!   renamed over the old one when complete: a failed or interrupted transfer leaves the
//!   old file in place.
//! - Directories get the source's mode, and are made writable for their owner while they
//!   are filled.
//! - A symlink is copied as it is, except an absolute one that points into the source
//!   tree: it is pointed at the same place in the destination.
//! - Something of another kind in the way (a directory where the source has a file, a
//!   symlink where it has a directory) is removed, whatever `delete` says: a symlink in
//!   the destination is never followed, except the destination root itself. A single
//!   file sent to a destination that is a directory goes into it instead.
//! - With [`TargetOptions::delete`], entries the source directory does not have are
//!   removed, and so are those the filter leaves out (as the reference does).
//! - Sockets, FIFOs and devices in the source are reported as failures.
//!
//! # Failures
//!
//! A problem with one file (unreadable here, unwritable there) is reported and the rest
//! goes on; a target whose gateway dies is reported and the others go on.
//! [`send`](RSync::send) returns the [`Report`] when everything went through, and
//! otherwise an [`RsyncError`] that lists every [`Failure`] (each naming the file, and the
//! target where it happened) and still holds the report.
//!
//! # Where it differs from `execnet.RSync`
//!
//! - The filter gets the path relative to the source, not joined to it.
//! - Checksums are SHA-256 (both ends are ours), not MD5; mtimes are kept to the
//!   nanosecond where the worker's Python can set them.
//! - Content is written to a temporary file and renamed into place; an unchanged symlink
//!   is left alone rather than made again; directories end with their exact mode.
//! - A single file sent to an existing directory goes into it rather than replacing it.
//! - Progress goes to a callback (no printing: `verbose` has no counterpart), and
//!   [`send`](RSync::send) may be called again.
//!
//! # Memory
//!
//! Content travels in chunks ([`RSync::chunk_size`], 1 MiB by default), and each target
//! has at most four chunks' worth in flight: it acknowledges what it has written, and the
//! sender waits for a slow target rather than queueing. Both sides hold a bounded amount
//! of file data whatever the file sizes; the tree's listing (paths and sizes) is held in
//! full on this side.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use execnet_core::encode::{Encode, Encoder};
use execnet_core::sink::Sink;
use execnet_core::EncodeError;
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::error::Error;
use crate::gateway::Gateway;
use crate::Value;

/// The worker side, run in each target with [`Gateway::remote_exec`].
pub const REMOTE_SOURCE: &str = include_str!("agent/rsync_remote.py");

/// The default size of the chunks file content travels in.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// What a message costs in the flow-control window beyond its data; the worker counts
/// the same.
const OVERHEAD: usize = 64;
/// Chunks that may be in flight to one target.
const WINDOW_CHUNKS: usize = 4;
/// A batch of the tree's description is sent when it reaches this many bytes or entries.
const BATCH_BYTES: usize = 64 << 10;
const BATCH_ENTRIES: usize = 1024;

/// Per-target options for [`RSync::add_target`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetOptions {
    /// Remove what the destination has and the source (after the filter) does not.
    pub delete: bool,
}

impl TargetOptions {
    /// The defaults: nothing is deleted.
    pub fn new() -> TargetOptions {
        TargetOptions::default()
    }

    /// Sets [`delete`](Self::delete).
    pub fn delete(mut self, delete: bool) -> TargetOptions {
        self.delete = delete;
        self
    }
}

/// What just happened, in a [`Progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Every target has compared the tree: the totals are known (the `path` is empty).
    Planned,
    /// A chunk of `path` went to every target that needs it.
    Chunk,
    /// `path` is done: sent, found equal by checksum, or failed (see the failures).
    File,
}

/// A progress report, handed to the [`RSync::on_progress`] callback.
///
/// Totals count each file once, however many targets need it: `files_total` files of
/// `bytes_total` bytes are needed by at least one target.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Progress<'p> {
    /// What happened.
    pub step: Step,
    /// The file, relative to the source.
    pub path: &'p Path,
    /// Bytes of this file sent so far.
    pub file_bytes: u64,
    /// This file's size, as listed.
    pub file_size: u64,
    /// Files done so far.
    pub files_done: u64,
    /// Files to do.
    pub files_total: u64,
    /// Bytes done so far.
    pub bytes_done: u64,
    /// Bytes to do.
    pub bytes_total: u64,
}

/// What happened at one target, in a [`Report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetReport {
    /// The gateway's id.
    pub gateway: String,
    /// The destination directory there.
    pub dest: PathBuf,
    /// Regular files compared.
    pub files: u64,
    /// Files whose content was written.
    pub sent: u64,
    /// Bytes of content written.
    pub bytes: u64,
    /// Files whose mtime differed but whose content was equal: mode and mtime set.
    pub touched: u64,
    /// Files that were equal but for their mode: mode set.
    pub modes: u64,
    /// Files this target hashed to compare them.
    pub hashed: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Entries deleted (a directory counts once).
    pub deleted: u64,
    /// Symlinks created or changed.
    pub links: u64,
    /// Whether the target went through to the end (its failures aside).
    pub completed: bool,
}

/// One thing that went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where: `None` for the source side, or the target as `GATEWAY-ID:DEST`.
    pub target: Option<String>,
    /// The file: its path in the source, or in the target's destination.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(t) => {
                let gw = t.split_once(':').map_or(t.as_str(), |(g, _)| g);
                write!(f, "{gw}:{}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// What a [`RSync::send`] did.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Each target, in the order they were added.
    pub targets: Vec<TargetReport>,
    /// Regular files in the source tree (after the filter).
    pub files: u64,
    /// Source files whose content was read and sent (each counted once, however many
    /// targets received it).
    pub files_read: u64,
    /// Bytes of those files.
    pub bytes_read: u64,
    /// Source files hashed for a target that had the right size but another mtime.
    pub files_hashed: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Everything that went wrong (empty when `send` returned `Ok`).
    pub failures: Vec<Failure>,
}

impl Report {
    /// One line: files compared, sent, bytes, deletions, time, and the failures count.
    pub fn summary(&self) -> String {
        let sum = |f: fn(&TargetReport) -> u64| self.targets.iter().map(f).sum::<u64>();
        let mut s = format!(
            "{} target{}: {} files compared, {} read and sent ({} bytes) as {} file writes",
            self.targets.len(),
            if self.targets.len() == 1 { "" } else { "s" },
            self.files,
            self.files_read,
            self.bytes_read,
            sum(|t| t.sent),
        );
        let deleted = sum(|t| t.deleted);
        if deleted > 0 {
            s.push_str(&format!(", {deleted} deleted"));
        }
        let touched = sum(|t| t.touched + t.modes);
        if touched > 0 {
            s.push_str(&format!(", {touched} modes or mtimes set"));
        }
        s.push_str(&format!(" in {:.2} s", self.elapsed.as_secs_f64()));
        if !self.failures.is_empty() {
            s.push_str(&format!(", {} failed", self.failures.len()));
        }
        s
    }
}

/// A [`RSync::send`] that did not go through everywhere: every [`Failure`], and the
/// [`Report`] of what was done.
#[derive(Clone, Debug)]
pub struct RsyncError {
    /// What was done; `report.failures` lists what went wrong (never empty).
    pub report: Box<Report>,
}

impl RsyncError {
    /// Everything that went wrong.
    pub fn failures(&self) -> &[Failure] {
        &self.report.failures
    }
}

impl fmt::Display for RsyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 10;
        let failures = &self.report.failures;
        write!(f, "rsync: {} failed", failures.len())?;
        for failure in failures.iter().take(SHOWN) {
            write!(f, "\n  {failure}")?;
        }
        if failures.len() > SHOWN {
            write!(f, "\n  and {} more", failures.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl std::error::Error for RsyncError {}

impl From<RsyncError> for Error {
    fn from(e: RsyncError) -> Error {
        Error::Rsync(Box::new(e))
    }
}

struct Target {
    gateway: Gateway,
    dest: PathBuf,
    options: TargetOptions,
}

type Filter<'a> = Box<dyn FnMut(&Path) -> bool + 'a>;
type ProgressFn<'a> = Box<dyn FnMut(&Progress<'_>) + 'a>;

/// Sends a directory tree (or one file) to any number of targets at once; see the
/// [module documentation](self).
pub struct RSync<'a> {
    source: PathBuf,
    targets: Vec<Target>,
    filter: Option<Filter<'a>>,
    progress: Option<ProgressFn<'a>>,
    chunk_size: usize,
}

impl fmt::Debug for RSync<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RSync")
            .field("source", &self.source)
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|t| format!("{}:{}", t.gateway.id(), t.dest.display()))
                    .collect::<Vec<_>>(),
            )
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl<'a> RSync<'a> {
    /// An rsync of `source`: a directory (its contents go into each destination), or a
    /// single file (it becomes each destination, or goes into it, under its own name,
    /// when the destination is a directory). A symlink given as the source is followed.
    pub fn new(source: impl Into<PathBuf>) -> RSync<'a> {
        RSync {
            source: source.into(),
            targets: Vec::new(),
            filter: None,
            progress: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Adds a target: the directory `dest` as the worker behind `gateway` sees it
    /// (relative to its working directory unless absolute; created with its parents when
    /// missing). The same gateway may take several destinations.
    pub fn add_target(
        &mut self,
        gateway: &Gateway,
        dest: impl Into<PathBuf>,
        options: TargetOptions,
    ) -> &mut Self {
        self.targets.push(Target {
            gateway: gateway.clone(),
            dest: dest.into(),
            options,
        });
        self
    }

    /// Chooses what goes: called with each entry's path relative to the source (the
    /// source itself is not asked); `false` leaves the entry, and all below it, out.
    pub fn filter(&mut self, filter: impl FnMut(&Path) -> bool + 'a) -> &mut Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Calls `callback` when the plan is known, after every chunk, and after every file.
    pub fn on_progress(&mut self, callback: impl FnMut(&Progress<'_>) + 'a) -> &mut Self {
        self.progress = Some(Box::new(callback));
        self
    }

    /// Sets the size of the chunks file content travels in (at least 1 KiB); each target
    /// has at most four chunks in flight.
    pub fn chunk_size(&mut self, bytes: usize) -> &mut Self {
        self.chunk_size = bytes.max(1024);
        self
    }

    /// Brings every target in line with the source, and says what was done. May be
    /// called again: a second call sends only what changed since.
    pub fn send(&mut self) -> Result<Report, RsyncError> {
        let start = Instant::now();
        let mut run = Run::new(self);
        run.go();
        let mut report = run.into_report();
        report.elapsed = start.elapsed();
        if report.failures.is_empty() {
            Ok(report)
        } else {
            Err(RsyncError {
                report: Box::new(report),
            })
        }
    }
}

/// A listed regular file.
struct FileInfo {
    rel: PathBuf,
    size: u64,
}

/// One target during a run.
struct Live {
    channel: Option<Channel>,
    /// Cost sent and not yet acknowledged.
    unacked: usize,
    listed: bool,
    done: bool,
    /// Its end arrived (normal or not).
    ended: bool,
    needs: Vec<(u32, Option<Vec<u8>>)>,
    report: TargetReport,
}

impl Live {
    fn alive(&self) -> bool {
        self.channel.is_some()
    }
}

/// A target that needs a file, with the digest of its copy when only the mtime differs.
type Want = (usize, Option<Vec<u8>>);

/// An event from a target: a message, or the end of its channel.
type Event = crate::multi::Routed;

struct Run<'r, 'a> {
    rsync: &'r mut RSync<'a>,
    live: Vec<Live>,
    events: Option<mpsc::Receiver<Event>>,
    files: Vec<FileInfo>,
    batch: Vec<Value>,
    batch_cost: usize,
    failures: Vec<Failure>,
    files_read: u64,
    bytes_read: u64,
    files_hashed: u64,
    files_done: u64,
    files_total: u64,
    bytes_done: u64,
    bytes_total: u64,
}

/// The first chunk of a file (`("w", index, data, last)`) or a later one
/// (`("c", data, last)`), encoded straight from the read buffer.
struct Chunk<'d> {
    first: Option<u32>,
    data: &'d [u8],
    last: bool,
}

impl Encode for Chunk<'_> {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        match self.first {
            Some(index) => {
                e.str("w")?;
                e.int(i128::from(index))?;
                e.bytes(self.data)?;
                e.bool(self.last)?;
                e.build_tuple(4)
            }
            None => {
                e.str("c")?;
                e.bytes(self.data)?;
                e.bool(self.last)?;
                e.build_tuple(3)
            }
        }
    }
}

fn tag(t: &str) -> Value {
    Value::Str(t.into())
}

fn bytes_of(path: &Path) -> Value {
    Value::Bytes(path.as_os_str().as_bytes().to_vec())
}

/// Text or bytes from the worker (Python 2 sends `str`, Python 3 `bytes` or `str`).
fn raw(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) | Value::Py2Str(b) => Some(b),
        Value::Str(s) | Value::Unicode(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "of an unknown kind"
    }
}

fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// Reads until `buf` holds `want` bytes or the file ends. The buffer is reused from file
/// to file and never zeroed: a small file costs what it holds, not a chunk.
fn fill(file: &mut fs::File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<()> {
    buf.clear();
    file.by_ref().take(want as u64).read_to_end(buf)?;
    Ok(())
}

impl<'r, 'a> Run<'r, 'a> {
    fn new(rsync: &'r mut RSync<'a>) -> Run<'r, 'a> {
        let live = rsync
            .targets
            .iter()
            .map(|t| Live {
                channel: None,
                unacked: 0,
                listed: false,
                done: false,
                ended: true,
                needs: Vec::new(),
                report: TargetReport {
                    gateway: t.gateway.id().to_string(),
                    dest: t.dest.clone(),
                    ..TargetReport::default()
                },
            })
            .collect();
        Run {
            rsync,
            live,
            events: None,
            files: Vec::new(),
            batch: Vec::new(),
            batch_cost: 0,
            failures: Vec::new(),
            files_read: 0,
            bytes_read: 0,
            files_hashed: 0,
            files_done: 0,
            files_total: 0,
            bytes_done: 0,
            bytes_total: 0,
        }
    }

    fn window(&self) -> usize {
        self.rsync.chunk_size * WINDOW_CHUNKS
    }

    fn target_name(&self, t: usize) -> String {
        let r = &self.live[t].report;
        format!("{}:{}", r.gateway, r.dest.display())
    }

    fn source_failure(&mut self, path: PathBuf, message: String) {
        self.failures.push(Failure {
            target: None,
            path,
            message,
        });
    }

    fn target_failure(&mut self, t: usize, path: PathBuf, message: String) {
        let target = Some(self.target_name(t));
        self.failures.push(Failure {
            target,
            path,
            message,
        });
    }

    /// Gives up on target `t`: closes its channel (with `error`, which the worker sees)
    /// and records why.
    fn lose(&mut self, t: usize, message: String) {
        // Its end may never be reported once this side has closed the channel.
        self.live[t].ended = true;
        if let Some(ch) = self.live[t].channel.take() {
            let _ = ch.close_with_error(&message);
        }
        let dest = self.live[t].report.dest.clone();
        self.target_failure(t, dest, message);
    }

    fn go(&mut self) {
        let source = self.rsync.source.clone();
        let root = match fs::metadata(&source) {
            Ok(m) => m,
            Err(e) => {
                self.source_failure(source, format!("cannot read the source: {e}"));
                return;
            }
        };
        if !(root.is_dir() || root.is_file()) {
            let kind = kind_name(root.file_type());
            self.source_failure(
                source,
                format!("cannot sync {kind}: only directories, files and symlinks"),
            );
            return;
        }
        if self.rsync.targets.is_empty() {
            self.source_failure(source, "no targets: add one with add_target".into());
            return;
        }
        let name = match source.file_name() {
            Some(n) if root.is_file() => Value::Bytes(n.as_bytes().to_vec()),
            _ => Value::None,
        };
        self.start(name);
        if !self.live.iter().any(Live::alive) {
            return;
        }
        if root.is_dir() {
            self.walk(&source, root);
        } else {
            self.list_file(PathBuf::new(), &root);
        }
        self.flush_batch();
        self.broadcast(&Value::Tuple(vec![tag("p")]), 0);
        self.wait_for(|l| l.listed);
        self.transfer();
        self.broadcast(&Value::Tuple(vec![tag("z")]), 0);
        self.wait_for(|l| l.done);
        // The worker's code returns after its last message; its channel's end says
        // whether it did so cleanly.
        self.wait_for(|l| l.ended);
    }

    /// Starts the worker code in every target and routes every message into one queue.
    fn start(&mut self, name: Value) {
        let (tx, rx) = mpsc::channel::<Event>();
        let ack_step = self.rsync.chunk_size;
        for t in 0..self.live.len() {
            let target = &self.rsync.targets[t];
            if target.dest.as_os_str().is_empty() {
                let message = "empty destination path".to_string();
                self.target_failure(t, PathBuf::new(), message);
                continue;
            }
            let opened = target.gateway.remote_exec(REMOTE_SOURCE).and_then(|ch| {
                let options = Value::Dict(vec![
                    (tag("delete"), Value::Bool(target.options.delete)),
                    (tag("ack_step"), Value::int(ack_step as i64)),
                    (tag("name"), name.clone()),
                ]);
                ch.send(&Value::Tuple(vec![bytes_of(&target.dest), options]))?;
                crate::multi::route(&ch, t, &tx)?;
                Ok(ch)
            });
            match opened {
                Ok(ch) => {
                    self.live[t].channel = Some(ch);
                    self.live[t].ended = false;
                }
                Err(e) => {
                    let dest = self.live[t].report.dest.clone();
                    self.target_failure(t, dest, format!("cannot start the rsync worker: {e}"));
                }
            }
        }
        self.events = Some(rx);
    }

    /// Waits for the next event and acts on it; `false` when none can come any more.
    fn pump(&mut self) -> bool {
        let Some(rx) = &self.events else {
            return false;
        };
        match rx.recv() {
            Ok((t, event)) => {
                self.handle(t, event);
                true
            }
            Err(_) => false,
        }
    }

    /// Pumps events until `cond` holds for every target that is still alive.
    fn wait_for(&mut self, cond: impl Fn(&Live) -> bool) {
        while self.live.iter().any(|l| !l.ended && !cond(l)) {
            if !self.pump() {
                for t in 0..self.live.len() {
                    if !self.live[t].ended {
                        self.live[t].ended = true;
                        self.lose(t, "the rsync worker's channel went away".into());
                    }
                }
                return;
            }
        }
    }

    fn handle(&mut self, t: usize, event: Option<Value>) {
        let Some(msg) = event else {
            self.ended(t);
            return;
        };
        if self.live[t].channel.is_none() {
            return;
        }
        if let Err(what) = self.message(t, &msg) {
            let text = format!("unexpected message from the rsync worker ({what}): {msg:?}");
            self.lose(t, text);
        }
    }

    fn ended(&mut self, t: usize) {
        self.live[t].ended = true;
        let Some(ch) = self.live[t].channel.take() else {
            return;
        };
        if self.live[t].done {
            if let Err(e) = ch.wait_close(Some(Duration::ZERO)) {
                let dest = self.live[t].report.dest.clone();
                self.target_failure(t, dest, format!("the rsync worker failed at the end: {e}"));
            }
            self.live[t].report.completed = true;
            return;
        }
        let why = match ch.wait_close(Some(Duration::ZERO)) {
            Ok(()) => "the rsync worker closed its channel before the end".to_string(),
            Err(Error::Remote(r)) => format!("the rsync worker failed: {}", r.summary()),
            Err(e) => format!("lost the rsync worker: {e}"),
        };
        let dest = self.live[t].report.dest.clone();
        self.target_failure(t, dest, why);
    }

    fn message(&mut self, t: usize, msg: &Value) -> Result<(), &'static str> {
        let Value::Tuple(items) = msg else {
            return Err("not a tuple");
        };
        let name = items.first().and_then(raw).ok_or("no tag")?;
        let int = |i: usize| items.get(i).and_then(Value::as_i64);
        match name {
            b"k" => {
                let n = int(1).ok_or("no count")?;
                let live = &mut self.live[t];
                live.unacked = live.unacked.saturating_sub(usize::try_from(n).unwrap_or(0));
            }
            b"n" => {
                let Some(Value::List(needs)) = items.get(1) else {
                    return Err("no list of files");
                };
                for need in needs {
                    let Value::Tuple(pair) = need else {
                        return Err("a need that is not a pair");
                    };
                    let index = pair
                        .first()
                        .and_then(Value::as_i64)
                        .and_then(|i| u32::try_from(i).ok())
                        .filter(|&i| (i as usize) < self.files.len())
                        .ok_or("a file index out of range")?;
                    let digest = match pair.get(1) {
                        Some(Value::None) | None => None,
                        Some(v) => Some(raw(v).ok_or("a digest that is not bytes")?.to_vec()),
                    };
                    self.live[t].needs.push((index, digest));
                }
            }
            b"e" => {
                let rel = items.get(1).and_then(raw).ok_or("no path")?;
                let text = items.get(2).and_then(raw).ok_or("no text")?;
                let mut path = self.live[t].report.dest.clone();
                if !rel.is_empty() {
                    path.push(std::ffi::OsStr::from_bytes(rel));
                }
                let message = String::from_utf8_lossy(text).into_owned();
                self.target_failure(t, path, message);
            }
            b"l" | b"d" => {
                let Some(Value::Tuple(counts)) = items.get(1) else {
                    return Err("no counts");
                };
                let c = |i: usize| {
                    counts
                        .get(i)
                        .and_then(Value::as_i64)
                        .map_or(0, |v| u64::try_from(v).unwrap_or(0))
                };
                let r = &mut self.live[t].report;
                (
                    r.files,
                    r.dirs_created,
                    r.deleted,
                    r.links,
                    r.modes,
                    r.hashed,
                ) = (c(0), c(1), c(2), c(3), c(4), c(5));
                (r.sent, r.bytes, r.touched) = (c(6), c(7), c(8));
                if name == b"l" {
                    self.live[t].listed = true;
                } else {
                    self.live[t].done = true;
                }
            }
            _ => return Err("unknown tag"),
        }
        Ok(())
    }

    /// Sends `msg` to target `t` once its window has room for `cost`.
    fn send_to<E: Encode + ?Sized>(&mut self, t: usize, msg: &E, cost: usize) {
        let chunk = self.rsync.chunk_size;
        let window = self.window();
        // An oversized message (a huge directory listing) counts as one chunk here, so
        // that it can always go once the window is nearly empty.
        while self.live[t].alive() && self.live[t].unacked + cost.min(chunk) > window {
            if !self.pump() {
                break;
            }
        }
        let Some(ch) = &self.live[t].channel else {
            return;
        };
        match ch.send_encoded(msg) {
            Ok(()) => self.live[t].unacked += cost,
            Err(e) => self.lose(t, format!("cannot send to the rsync worker: {e}")),
        }
    }

    fn broadcast(&mut self, msg: &Value, cost: usize) {
        for t in 0..self.live.len() {
            self.send_to(t, msg, cost);
        }
    }

    fn push_entry(&mut self, entry: Value, cost: usize) {
        self.batch.push(entry);
        self.batch_cost += cost;
        if self.batch_cost >= BATCH_BYTES || self.batch.len() >= BATCH_ENTRIES {
            self.flush_batch();
        }
    }

    fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let cost = self.batch_cost + OVERHEAD;
        let entries = std::mem::take(&mut self.batch);
        self.batch_cost = 0;
        let msg = Value::Tuple(vec![
            tag("s"),
            Value::int(cost as i64),
            Value::List(entries),
        ]);
        self.broadcast(&msg, cost);
    }

    fn list_file(&mut self, rel: PathBuf, meta: &fs::Metadata) {
        let Ok(index) = u32::try_from(self.files.len()) else {
            let path = self.rsync.source.join(&rel);
            self.source_failure(path, "more than 4294967295 files in one rsync".into());
            return;
        };
        let cost = OVERHEAD + rel.as_os_str().len();
        let entry = Value::Tuple(vec![
            tag("f"),
            bytes_of(&rel),
            Value::int(i64::from(meta.mode() & 0o7777)),
            Value::int(mtime_ns(meta)),
            Value::int(i64::try_from(meta.len()).unwrap_or(i64::MAX)),
            Value::int(i64::from(index)),
        ]);
        self.files.push(FileInfo {
            rel,
            size: meta.len(),
        });
        self.push_entry(entry, cost);
    }

    fn list_link(&mut self, rel: PathBuf, base: &Path) {
        let path = self.rsync.source.join(&rel);
        let target = match fs::read_link(&path) {
            Ok(t) => t,
            Err(e) => {
                self.source_failure(path, format!("cannot read the symlink: {e}"));
                return;
            }
        };
        // An absolute link into the tree is pointed at the same place in the copy.
        let inside = target
            .strip_prefix(base)
            .ok()
            .filter(|rest| {
                !rest.as_os_str().is_empty()
                    && rest.components().all(|c| matches!(c, Component::Normal(_)))
            })
            .map(Path::to_path_buf);
        let (target, inside) = match inside {
            Some(rest) if target.is_absolute() => (rest, true),
            _ => (target, false),
        };
        let cost = OVERHEAD + rel.as_os_str().len() + target.as_os_str().len();
        let entry = Value::Tuple(vec![
            tag("l"),
            bytes_of(&rel),
            bytes_of(&target),
            Value::Bool(inside),
        ]);
        self.push_entry(entry, cost);
    }

    /// Describes the tree to every target, each directory before what it holds.
    fn walk(&mut self, source: &Path, root: fs::Metadata) {
        let base = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
        let mut pending: Vec<(PathBuf, fs::Metadata)> = vec![(PathBuf::new(), root)];
        while let Some((rel, meta)) = pending.pop() {
            let dir = source.join(&rel);
            let listing = fs::read_dir(&dir).and_then(|d| {
                d.map(|e| e.map(|e| e.file_name()))
                    .collect::<std::io::Result<Vec<_>>>()
            });
            let mut names = match listing {
                Ok(n) => n,
                Err(e) => {
                    // No entry at all: the target's copy stays as it is (its parent lists
                    // the name, so it is not deleted either).
                    self.source_failure(dir, format!("cannot list the directory: {e}"));
                    continue;
                }
            };
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut kept = Vec::with_capacity(names.len());
            let mut children = Vec::with_capacity(names.len());
            for name in names {
                let child = rel.join(&name);
                if let Some(filter) = self.rsync.filter.as_mut() {
                    if !filter(&child) {
                        continue;
                    }
                }
                kept.push(Value::Bytes(name.into_vec()));
                match fs::symlink_metadata(source.join(&child)) {
                    Ok(m) => children.push((child, m)),
                    Err(e) => {
                        let path = source.join(&child);
                        self.source_failure(path, format!("cannot read: {e}"));
                    }
                }
            }
            let names_cost: usize = kept.iter().map(|n| raw(n).map_or(0, <[u8]>::len) + 8).sum();
            let cost = OVERHEAD + rel.as_os_str().len() + names_cost;
            let entry = Value::Tuple(vec![
                tag("d"),
                bytes_of(&rel),
                Value::int(i64::from(meta.mode() & 0o7777)),
                Value::List(kept),
            ]);
            self.push_entry(entry, cost);
            let mut subdirs = Vec::new();
            for (child, m) in children {
                let ft = m.file_type();
                if ft.is_dir() {
                    subdirs.push((child, m));
                } else if ft.is_file() {
                    self.list_file(child, &m);
                } else if ft.is_symlink() {
                    self.list_link(child, &base);
                } else {
                    let path = source.join(&child);
                    let kind = kind_name(ft);
                    self.source_failure(
                        path,
                        format!("cannot sync {kind}: only directories, files and symlinks"),
                    );
                }
            }
            pending.extend(subdirs.into_iter().rev());
        }
    }

    fn report_progress(&mut self, step: Step, path: &Path, file_bytes: u64, file_size: u64) {
        if let Some(cb) = self.rsync.progress.as_mut() {
            cb(&Progress {
                step,
                path,
                file_bytes,
                file_size,
                files_done: self.files_done,
                files_total: self.files_total,
                bytes_done: self.bytes_done,
                bytes_total: self.bytes_total,
            });
        }
    }

    /// Sends every file some target asked for, in listing order, each read once.
    fn transfer(&mut self) {
        let mut wanted: BTreeMap<u32, Vec<Want>> = BTreeMap::new();
        for (t, live) in self.live.iter_mut().enumerate() {
            if !live.alive() {
                continue;
            }
            for (index, digest) in std::mem::take(&mut live.needs) {
                wanted.entry(index).or_default().push((t, digest));
            }
        }
        self.files_total = wanted.len() as u64;
        self.bytes_total = wanted.keys().map(|&i| self.files[i as usize].size).sum();
        self.report_progress(Step::Planned, Path::new(""), 0, 0);
        let mut buf = Vec::new();
        let mut next = Vec::new();
        for (index, wants) in wanted {
            let wants: Vec<_> = wants
                .into_iter()
                .filter(|(t, _)| self.live[*t].alive())
                .collect();
            let rel = self.files[index as usize].rel.clone();
            let size = self.files[index as usize].size;
            let before = self.bytes_done;
            if !wants.is_empty() {
                self.send_file(index, &rel, wants, &mut buf, &mut next);
            }
            self.files_done += 1;
            self.bytes_done = before + size;
            self.report_progress(Step::File, &rel, size, size);
        }
    }

    fn source_path(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.rsync.source.clone()
        } else {
            self.rsync.source.join(rel)
        }
    }

    fn send_file(
        &mut self,
        index: u32,
        rel: &Path,
        wants: Vec<Want>,
        buf: &mut Vec<u8>,
        next: &mut Vec<u8>,
    ) {
        let path = self.source_path(rel);
        let chunk = self.rsync.chunk_size;
        let mut to: Vec<usize> = Vec::with_capacity(wants.len());
        let mut equal: Vec<usize> = Vec::new();
        let mut held: Option<Vec<u8>> = None;
        if wants.iter().any(|(_, d)| d.is_some()) {
            // Someone has the right size but another mtime: compare contents first.
            match hash_file(&path, chunk) {
                Ok((digest, small)) => {
                    self.files_hashed += 1;
                    held = small;
                    for (t, d) in wants {
                        match d {
                            Some(d) if d == digest => equal.push(t),
                            _ => to.push(t),
                        }
                    }
                }
                Err(e) => {
                    self.source_failure(path, format!("cannot read: {e}"));
                    return;
                }
            }
        } else {
            to.extend(wants.iter().map(|(t, _)| *t));
        }
        let touch = Value::Tuple(vec![tag("u"), Value::int(i64::from(index))]);
        for t in equal {
            self.send_to(t, &touch, OVERHEAD);
        }
        if to.is_empty() {
            return;
        }
        let size = self.files[index as usize].size;
        let before = self.bytes_done;
        if let Some(data) = held {
            self.send_chunk(&to, index, &data, true);
            self.files_read += 1;
            self.bytes_read += data.len() as u64;
            return;
        }
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                self.source_failure(path, format!("cannot read: {e}"));
                return;
            }
        };
        let mut sent: u64 = 0;
        let mut first = true;
        if let Err(e) = fill(&mut file, buf, chunk) {
            self.source_failure(path, format!("cannot read: {e}"));
            return;
        }
        loop {
            let last = if buf.len() < chunk {
                true
            } else {
                if let Err(e) = fill(&mut file, next, chunk) {
                    if !first {
                        self.broadcast_to(&to, &Value::Tuple(vec![tag("x")]));
                    }
                    self.source_failure(path, format!("cannot read: {e}"));
                    return;
                }
                next.is_empty()
            };
            let msg = Chunk {
                first: first.then_some(index),
                data: buf,
                last,
            };
            for &t in &to {
                self.send_to(t, &msg, buf.len() + OVERHEAD);
            }
            first = false;
            sent += buf.len() as u64;
            self.bytes_done = before + sent.min(size);
            self.report_progress(Step::Chunk, rel, sent, size);
            if last {
                break;
            }
            std::mem::swap(buf, next);
        }
        self.files_read += 1;
        self.bytes_read += sent;
    }

    fn send_chunk(&mut self, to: &[usize], index: u32, data: &[u8], last: bool) {
        let msg = Chunk {
            first: Some(index),
            data,
            last,
        };
        for &t in to {
            self.send_to(t, &msg, data.len() + OVERHEAD);
        }
    }

    fn broadcast_to(&mut self, to: &[usize], msg: &Value) {
        for &t in to {
            self.send_to(t, msg, 0);
        }
    }

    fn into_report(self) -> Report {
        Report {
            files: self.files.len() as u64,
            targets: self.live.into_iter().map(|l| l.report).collect(),
            files_read: self.files_read,
            bytes_read: self.bytes_read,
            files_hashed: self.files_hashed,
            elapsed: Duration::ZERO,
            failures: self.failures,
        }
    }
}

/// The file's SHA-256 and, when it fits in one chunk, its content (so that it is not
/// read twice).
fn hash_file(path: &Path, chunk: usize) -> std::io::Result<([u8; 32], Option<Vec<u8>>)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = Vec::new();
    fill(&mut file, &mut buf, chunk)?;
    hasher.update(&buf);
    if buf.len() < chunk {
        return Ok((hasher.finalize().into(), Some(buf)));
    }
    loop {
        fill(&mut file, &mut buf, chunk)?;
        if buf.is_empty() {
            return Ok((hasher.finalize().into(), None));
        }
        hasher.update(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_source_is_ascii_without_f_strings() {
        assert!(REMOTE_SOURCE.is_ascii());
        for (n, line) in REMOTE_SOURCE.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            for quote in ["f\"", "f'"] {
                let at = code.find(quote);
                // An `f` that starts a token (not the end of a name, not inside "f").
                let prefixed = at.is_some_and(|i| {
                    i == 0 || {
                        let before = code.as_bytes()[i - 1];
                        !(before.is_ascii_alphanumeric() || b"_\"'".contains(&before))
                    }
                });
                assert!(!prefixed, "line {}: an f-string: {line}", n + 1);
            }
            assert!(
                !code.trim_start().starts_with("nonlocal "),
                "line {}: {line}",
                n + 1
            );
        }
    }

    #[test]
    fn a_failure_names_the_gateway_and_the_file() {
        let f = Failure {
            target: Some("gw1:/srv/copy".into()),
            path: "/srv/copy/a/b.txt".into(),
            message: "cannot write: File too large (EFBIG)".into(),
        };
        assert_eq!(
            f.to_string(),
            "gw1:/srv/copy/a/b.txt: cannot write: File too large (EFBIG)"
        );
        let s = Failure {
            target: None,
            path: "/src/pipe".into(),
            message: "cannot sync a FIFO".into(),
        };
        assert_eq!(s.to_string(), "/src/pipe: cannot sync a FIFO");
    }

    #[test]
    fn an_error_lists_its_failures_and_counts_the_rest() {
        let failures = (0..12)
            .map(|i| Failure {
                target: None,
                path: format!("/src/f{i}").into(),
                message: "cannot read: denied".into(),
            })
            .collect();
        let e = RsyncError {
            report: Box::new(Report {
                failures,
                ..Report::default()
            }),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("rsync: 12 failed\n  /src/f0: cannot read"),
            "{text}"
        );
        assert!(text.contains("/src/f9:"), "{text}");
        assert!(!text.contains("/src/f10:"), "{text}");
        assert!(text.ends_with("and 2 more"), "{text}");
    }

    #[test]
    fn a_source_that_is_missing_fails_naming_it() {
        let mut sync = RSync::new("/nonexistent/execnet-rsync-source");
        let err = sync.send().unwrap_err();
        assert_eq!(err.failures().len(), 1);
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/execnet-rsync-source: cannot read the source"),
            "{text}"
        );
    }

    #[test]
    fn no_targets_is_a_failure() {
        let dir = std::env::temp_dir();
        let err = RSync::new(&dir).send().unwrap_err();
        assert!(err.to_string().contains("no targets"), "{err}");
    }

    #[test]
    fn hashing_keeps_small_files_and_matches_sha256() {
        let dir = std::env::temp_dir().join(format!("execnet-rsync-hash-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        fs::write(&small, b"abc").unwrap();
        let (digest, held) = hash_file(&small, 1024).unwrap();
        assert_eq!(held.as_deref(), Some(&b"abc"[..]));
        assert_eq!(digest[..4], [0xba, 0x78, 0x16, 0xbf]);
        let big = dir.join("big");
        fs::write(&big, vec![7u8; 4096]).unwrap();
        let (digest, held) = hash_file(&big, 1024).unwrap();
        assert!(held.is_none());
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(vec![7u8; 4096])));
        fs::remove_dir_all(&dir).unwrap();
    }
}
