//! The std host of the protocol driver: one gateway end's [`Engine`] behind a lock, one
//! reader thread (`read -> FrameReader -> Engine::handle_frame -> react`), writers that
//! queue frames and transmit them under one writer lock, the channels' queues, and the
//! end of the connection. The master ([`Gateway`](crate::Gateway)) and the Rust worker
//! ([`Worker`](crate::worker::Worker)) are both sessions; neither parses a header nor
//! assembles a frame.
//!
//! Locks: the engine lock is held only to change protocol state and queue frames, never
//! across IO; the writer lock serializes writers, which take the engine's queued bytes
//! and write them. The reader thread never waits on the writer: what it must send (a
//! STATUS answer, a close after a failed callback) is written by a short-lived flusher
//! thread, and a channel handle dropped anywhere sends its close the same way, so that
//! neither the reader nor a `Drop` can block behind a full pipe.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use execnet_core::buffer::GrowBuf;
use execnet_core::encode::{Encode, Encoder};
use execnet_core::engine::{
    close_error_text, ChannelTable, Engine, Entry, Event, ProtocolError, Role, SendError,
};
use execnet_core::frame::{FrameReader, Header, Incoming, HEADER_LEN};
use execnet_core::sink::Sink;
use execnet_core::{EncodeError, Limits};

use crate::budget::{Budget, Overflow};
use crate::channel::{ChanState, End, Payload};
use crate::error::{Death, DeathKind, Error, Result};
use crate::process::Process;

/// The host's data per channel: its queue, made when the channel is first used.
pub(crate) type Slot = Option<Arc<ChanState>>;
pub(crate) type Table = BTreeMap<i32, Entry<Slot>>;
pub(crate) type Eng = Engine<Vec<u8>, Table>;

/// Values whose encoding is larger go straight to the transport, not through the queue.
const QUEUE_MAX: usize = 64 * 1024;
/// Payloads at least this large are received into an allocation of their own, which then
/// moves into the channel's queue without a copy.
const DIRECT_MIN: usize = 32 * 1024;
/// Channels the peer ended before this side claimed them, kept at most.
const UNCLAIMED_MAX: usize = 4096;
/// How much the reader asks for per read.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The transport's writing half, and a spare buffer to swap with the engine's queue.
struct Writer {
    sink: Option<Box<dyn Write + Send>>,
    spare: Vec<u8>,
}

impl Writer {
    /// Encodes `value` (internal envelope) straight into the transport.
    fn stream<V: Encode + ?Sized>(&mut self, value: &V) -> io::Result<()> {
        let sink = self.sink.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let mut buffered = io::BufWriter::with_capacity(READ_CHUNK, sink);
        let mut s = IoErrSink {
            w: &mut buffered,
            err: None,
        };
        let mut enc = Encoder::new(&mut s);
        match value.encode(&mut enc).and_then(|()| enc.stop()) {
            Ok(()) => buffered.flush(),
            Err(EncodeError::Io) => {
                Err(s.err.take().unwrap_or_else(|| io::ErrorKind::Other.into()))
            }
            // The length was measured with the same encoder: it cannot fail now, but if it
            // did the stream would be cut mid-frame.
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let sink = self.sink.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        sink.write_all(bytes)?;
        sink.flush()
    }
}

/// A [`Sink`] over an `io::Write` that keeps the first IO error.
struct IoErrSink<'w, W> {
    w: &'w mut W,
    err: Option<io::Error>,
}

impl<W: Write> Sink for IoErrSink<'_, W> {
    type Output = ();
    fn try_push(&mut self, byte: u8) -> std::result::Result<(), EncodeError> {
        self.try_extend(&[byte])
    }
    fn try_extend(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError> {
        self.w.write_all(bytes).map_err(|e| {
            self.err = Some(e);
            EncodeError::Io
        })
    }
    fn finalize(self) -> std::result::Result<(), EncodeError> {
        Ok(())
    }
}

/// What a worker runs for each CHANNEL_EXEC: the session, the new channel, the request.
pub(crate) type ExecHook<'f> = dyn Fn(&Arc<Session>, i32, &[u8]) + 'f;

/// What the reader does with an event once the engine lock is released.
enum Action {
    Deliver(i32, Arc<ChanState>, execnet_core::StrConfig),
    End(Option<Arc<ChanState>>, End),
    EndWithErrorText(Option<Arc<ChanState>>),
    Exec(i32),
    Flush,
    Stop,
    Nothing,
}

/// How a session's reader ended.
pub(crate) struct Ending {
    pub(crate) kind: DeathKind,
    pub(crate) cause: String,
}

/// One end of a gateway, shared by its handles, its channels and its reader thread.
pub(crate) struct Session {
    /// The gateway id, for names and messages.
    pub(crate) name: String,
    /// What the other end is called in messages ("the worker", "the master").
    pub(crate) peer: &'static str,
    engine: Mutex<Eng>,
    writer: Mutex<Writer>,
    death: Mutex<Option<Death>>,
    died: Condvar,
    pub(crate) limits: Limits,
    pub(crate) budget: Arc<Budget>,
    /// See [`Session::keep_unclaimed`].
    unclaimed: Mutex<BTreeMap<i32, Arc<ChanState>>>,
    pub(crate) process: Option<Process>,
    closer: Option<Box<dyn Fn() + Send + Sync>>,
    flush_scheduled: AtomicBool,
    /// Calls running (a worker's STATUS answer reports it).
    pub(crate) executing: AtomicUsize,
    /// The execution model a worker's STATUS answer reports.
    pub(crate) execmodel: String,
    /// The span every event of this gateway is recorded in, whatever thread records it.
    pub(crate) span: tracing::Span,
}

/// What a new session needs.
pub(crate) struct SessionConfig {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) output: Box<dyn Write + Send>,
    pub(crate) limits: Limits,
    pub(crate) max_queued: usize,
    pub(crate) overflow: Overflow,
    pub(crate) process: Option<Process>,
    pub(crate) closer: Option<Box<dyn Fn() + Send + Sync>>,
    /// The span to record in; a new one when `None`.
    pub(crate) span: Option<tracing::Span>,
}

impl Session {
    pub(crate) fn new(cfg: SessionConfig) -> Arc<Session> {
        let peer = match cfg.role {
            Role::Master => "the worker",
            Role::Worker => "the master",
        };
        let span = cfg
            .span
            .unwrap_or_else(|| tracing::debug_span!("gateway", id = %cfg.name, role = ?cfg.role));
        Arc::new(Session {
            name: cfg.name,
            peer,
            engine: Mutex::new(
                Engine::new(cfg.role, Vec::new(), BTreeMap::new()).with_queue_limit(QUEUE_MAX),
            ),
            writer: Mutex::new(Writer {
                sink: Some(cfg.output),
                spare: Vec::new(),
            }),
            death: Mutex::new(None),
            died: Condvar::new(),
            limits: cfg.limits,
            budget: Arc::new(Budget::new(cfg.max_queued, cfg.overflow)),
            unclaimed: Mutex::new(BTreeMap::new()),
            process: cfg.process,
            closer: cfg.closer,
            flush_scheduled: AtomicBool::new(false),
            executing: AtomicUsize::new(0),
            execmodel: "thread".into(),
            span,
        })
    }

    /// The bound on bytes of values waiting unread.
    pub(crate) fn budget_max(&self) -> usize {
        self.budget.max()
    }

    /// Why the session ended, if it has.
    pub(crate) fn dead(&self) -> Option<Death> {
        lock(&self.death).clone()
    }

    /// Waits until the session ends, at most `timeout`.
    pub(crate) fn wait_dead(&self, timeout: Duration) -> Option<Death> {
        let deadline = Instant::now() + timeout;
        let mut d = lock(&self.death);
        loop {
            if let Some(death) = d.as_ref() {
                return Some(death.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            d = self
                .died
                .wait_timeout(d, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Runs `f` on the protocol state (it may queue frames), without transmitting.
    pub(crate) fn with_engine<R>(&self, f: impl FnOnce(&mut Eng) -> R) -> R {
        f(&mut lock(&self.engine))
    }

    /// A new channel queue for this session.
    pub(crate) fn new_chan(&self) -> Arc<ChanState> {
        ChanState::new(self.budget.clone())
    }

    /// The queue of channel `id`, made if the channel is open and has none yet.
    /// The queue of channel `id`: made if the channel is open and has none yet, or the
    /// queue of a channel the peer named and ended before this side claimed it.
    pub(crate) fn chan(&self, id: i32) -> Option<Arc<ChanState>> {
        let mut e = lock(&self.engine);
        match e.data_mut(id) {
            Some(slot) => Some(slot.get_or_insert_with(|| self.new_chan()).clone()),
            None => lock(&self.unclaimed).remove(&id),
        }
    }

    /// The queue of a channel that leaves the table, kept when no handle claimed it yet:
    /// a channel the peer named inside a value and ended (with its values) before this
    /// side decoded the value. The oldest are let go beyond [`UNCLAIMED_MAX`].
    fn keep_unclaimed(&self, id: i32, data: Slot) -> Arc<ChanState> {
        let st = data.unwrap_or_else(|| self.new_chan());
        if !st.is_claimed() {
            let mut kept = lock(&self.unclaimed);
            kept.insert(id, st.clone());
            while kept.len() > UNCLAIMED_MAX {
                kept.pop_first();
            }
        }
        st
    }

    /// The error for a local request the protocol state refused.
    pub(crate) fn refused(&self, e: SendError) -> Error {
        match e {
            SendError::Closed(_) => Error::Closed,
            SendError::Terminated => self.dead().map_or(Error::Closed, Error::GatewayDied),
            SendError::Encode(e) => Error::Encode(e),
            other => Error::NotAllowed(other),
        }
    }

    /// Runs `f` (which may queue frames) under the engine lock, then writes everything
    /// queued, all under the writer lock so that frames reach the transport in the order
    /// they were queued.
    pub(crate) fn transmit<R>(
        &self,
        f: impl FnOnce(&mut Eng) -> std::result::Result<R, SendError>,
    ) -> Result<R> {
        let mut w = lock(&self.writer);
        let (result, bytes) = {
            let mut e = lock(&self.engine);
            let r = f(&mut e);
            let mut out = std::mem::take(&mut w.spare);
            e.swap_transmit(&mut out);
            (r, out)
        };
        self.trace_out(&bytes);
        let written = w.write_all(&bytes);
        let mut bytes = bytes;
        bytes.clear();
        w.spare = bytes;
        drop(w);
        let r = result.map_err(|e| self.refused(e))?;
        written.map_err(|e| self.lost(e))?;
        Ok(r)
    }

    /// Sends a value on channel `id`: a small one through the queue, a large one (the
    /// engine refuses it with `OutputFull`, the queue being capped) straight into the
    /// transport, with only its header queued.
    pub(crate) fn send_value<V: Encode + ?Sized>(&self, id: i32, value: &V) -> Result<()> {
        if let Some(d) = self.dead() {
            return Err(Error::GatewayDied(d));
        }
        let mut w = lock(&self.writer);
        let (queued, stream, bytes) = {
            let mut e = lock(&self.engine);
            let (queued, stream) = match e.send(id, value) {
                Err(SendError::OutputFull { needed }) => {
                    (e.send_header(id, needed - HEADER_LEN), true)
                }
                other => (other, false),
            };
            let mut out = std::mem::take(&mut w.spare);
            e.swap_transmit(&mut out);
            (queued, stream, out)
        };
        self.trace_out(&bytes);
        let mut written = w.write_all(&bytes);
        let mut bytes = bytes;
        bytes.clear();
        w.spare = bytes;
        if stream && queued.is_ok() && written.is_ok() {
            written = w.stream(value);
        }
        drop(w);
        queued.map_err(|e| self.refused(e))?;
        written.map_err(|e| self.lost(e))
    }

    /// Records each frame header in `bytes` at trace level (a streamed value's payload
    /// follows its header separately, so a header may close the batch).
    fn trace_out(&self, mut bytes: &[u8]) {
        if !tracing::enabled!(tracing::Level::TRACE) {
            return;
        }
        let _span = self.span.enter();
        while let Some(head) = bytes.first_chunk::<HEADER_LEN>() {
            let Ok(h) = Header::parse(head, u32::MAX >> 1) else {
                break;
            };
            tracing::trace!(
                code = h.code.name(),
                channel = h.channel,
                len = h.len,
                "frame out"
            );
            bytes = bytes.get(HEADER_LEN + h.len as usize..).unwrap_or(&[]);
        }
    }

    /// Queues with `f` and has the queue written by a short-lived thread: for the reader
    /// thread and for `Drop`, which must not block behind a full pipe.
    pub(crate) fn queue_and_flush(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Eng) -> std::result::Result<(), SendError>,
    ) {
        let queued = f(&mut lock(&self.engine)).is_ok();
        if queued {
            self.schedule_flush();
        }
    }

    /// Makes sure queued frames get written soon, without waiting for the writer here.
    pub(crate) fn schedule_flush(self: &Arc<Self>) {
        if self.flush_scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        let spawned = thread::Builder::new()
            .name(format!("execnet-flush-{}", self.name))
            .spawn(move || {
                // Cleared first: a request made while this one writes starts another.
                me.flush_scheduled.store(false, Ordering::SeqCst);
                let _ = me.transmit(|_| Ok(()));
            });
        if spawned.is_err() {
            self.flush_scheduled.store(false, Ordering::SeqCst);
        }
    }

    /// Whether frames wait in the queue.
    pub(crate) fn has_transmit(&self) -> bool {
        lock(&self.engine).has_transmit()
    }

    /// The error for a failed write: the death, once the reader has seen it.
    fn lost(&self, e: io::Error) -> Error {
        if let Some(p) = &self.process {
            p.wait_timeout(Duration::from_millis(500));
        }
        match self.wait_dead(Duration::from_millis(200)) {
            Some(d) => Error::GatewayDied(d),
            None => Error::GatewayDied(self.death_report(
                DeathKind::Io,
                format!("writing to {} failed: {e}", self.peer),
            )),
        }
    }

    /// A death report: the cause, and the worker process's exit and last stderr lines.
    pub(crate) fn death_report(&self, kind: DeathKind, cause: String) -> Death {
        let (exit, tail) = match &self.process {
            Some(p) => {
                let exit = p.wait_timeout(Duration::from_millis(200));
                p.output().wait_done(Duration::from_millis(200));
                (exit, p.output().tail())
            }
            None => (None, Vec::new()),
        };
        Death {
            kind,
            cause,
            exit,
            stderr_tail: tail,
        }
    }

    /// Marks the session dead and ends every channel with the cause.
    pub(crate) fn die(&self, death: Death) {
        {
            let mut d = lock(&self.death);
            if d.is_some() {
                return;
            }
            *d = Some(death.clone());
            self.died.notify_all();
        }
        {
            let _span = self.span.enter();
            match death.kind {
                DeathKind::Closed | DeathKind::Terminated => {
                    tracing::debug!(kind = ?death.kind, cause = %death, "gateway ended")
                }
                _ => tracing::warn!(kind = ?death.kind, cause = %death, "gateway died"),
            }
        }
        let mut chans = Vec::new();
        lock(&self.engine).table().for_each(&mut |_, e| {
            if let Some(st) = &e.data {
                chans.push(st.clone());
            }
        });
        for st in chans {
            st.finish(End::Died(death.clone()));
        }
    }

    /// Ends the session from this side: GATEWAY_TERMINATE (written in the background, so
    /// that a writer blocked on a full pipe cannot hold this up), then the worker process
    /// gets `grace` to exit before its group is signalled, then the transport is closed.
    pub(crate) fn shutdown(self: &Arc<Self>, grace: Duration) {
        if self.dead().is_none() {
            let queued = lock(&self.engine).terminate().is_ok();
            if queued {
                self.schedule_flush();
                // Give the flusher a moment when nothing else would wait for the worker.
                if self.process.is_none() {
                    let deadline = Instant::now() + grace.min(Duration::from_millis(500));
                    while self.has_transmit() && Instant::now() < deadline {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        if let Some(p) = &self.process {
            p.terminate(grace);
        }
        if let Some(close) = &self.closer {
            close();
        }
        self.die(Death {
            kind: DeathKind::Terminated,
            cause: "the gateway was closed".into(),
            exit: self.process.as_ref().and_then(|p| p.try_exit()),
            stderr_tail: Vec::new(),
        });
    }

    /// Reads frames until the stream ends, reacting to each; returns how it ended. A
    /// worker passes `on_exec`, called with each CHANNEL_EXEC's channel and payload.
    pub(crate) fn run_reader(
        self: &Arc<Self>,
        input: &mut dyn Read,
        on_exec: Option<&ExecHook<'_>>,
    ) -> Ending {
        let _span = self.span.enter();
        let mut reader = FrameReader::new(GrowBuf::new(), self.limits.max_message)
            .with_direct_payloads(DIRECT_MIN)
            .with_split_strings(true);
        loop {
            self.budget.wait_for_room(|| self.dead().is_some());
            // A large payload is read into its allocation's spare capacity, which std does
            // without zeroing it first; anything else into the reader's buffer.
            let read = match reader
                .fill_direct(|v, need| (&mut *input).take(need as u64).read_to_end(v))
            {
                Some(read) => read,
                None => {
                    let read = input.read(reader.space(READ_CHUNK));
                    if let Ok(n) = read {
                        reader.commit(n);
                    }
                    read
                }
            };
            match read {
                Ok(0) if reader.buffered() == 0 => {
                    return self.ending(
                        DeathKind::Closed,
                        format!("{} closed the connection", self.peer),
                    )
                }
                Ok(0) => {
                    return self.ending(
                        DeathKind::Truncated,
                        format!("{}'s output ended inside a message", self.peer),
                    )
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return self.ending(
                        DeathKind::Io,
                        format!("reading from {} failed: {e}", self.peer),
                    )
                }
            }
            loop {
                let action = {
                    let item = match reader.next_frame() {
                        Ok(Some(item)) => item,
                        Ok(None) => break,
                        Err(e) => return self.protocol_ending(e.into()),
                    };
                    match &item {
                        Incoming::Frame(f) => tracing::trace!(
                            code = f.code.name(),
                            channel = f.channel,
                            len = f.payload.len(),
                            "frame in"
                        ),
                        Incoming::Oversized(h) => tracing::debug!(
                            code = h.code.name(),
                            channel = h.channel,
                            len = h.len,
                            "frame in, too large for the buffer: skipped"
                        ),
                    }
                    let max = self.limits.max_message as usize;
                    let mut e = lock(&self.engine);
                    let event = match &item {
                        Incoming::Frame(f) => e.handle_frame(f),
                        Incoming::Oversized(h) => e.handle_oversized(h, max),
                    };
                    match event {
                        Ok(ev) => self.react(&mut e, ev),
                        Err(err) => return self.protocol_ending(err),
                    }
                };
                match action {
                    Action::Deliver(id, st, config) => {
                        let payload = match reader.take_string() {
                            Some((code, bytes)) => Payload::Str(code, bytes),
                            None => Payload::Encoded(reader.take_payload()),
                        };
                        if let Err(ending) = st.deliver(self, id, payload, config) {
                            return ending;
                        }
                    }
                    Action::End(st, end) => {
                        if let Some(st) = st {
                            st.finish(end);
                        }
                    }
                    Action::EndWithErrorText(st) => {
                        if let Some(st) = st {
                            let text = match close_error_text(reader.payload()) {
                                Some(s) => s.chars().collect(),
                                None => "<the error text did not decode as a str>".into(),
                            };
                            st.finish(End::Error(text));
                        }
                    }
                    Action::Exec(id) => {
                        if let Some(f) = on_exec {
                            f(self, id, reader.payload());
                        }
                    }
                    Action::Flush => self.schedule_flush(),
                    Action::Stop => {
                        return self.ending(
                            DeathKind::Terminated,
                            format!("{} terminated the gateway", self.peer),
                        )
                    }
                    Action::Nothing => {}
                }
            }
        }
    }

    fn ending(&self, kind: DeathKind, cause: String) -> Ending {
        Ending { kind, cause }
    }

    fn protocol_ending(&self, e: ProtocolError) -> Ending {
        self.ending(
            DeathKind::Protocol,
            format!("protocol error from {}: {e}", self.peer),
        )
    }

    /// Turns an event into what to do once the engine is unlocked; runs under the lock.
    fn react(&self, e: &mut Eng, event: Event<Slot>) -> Action {
        match event {
            Event::Data { channel, config } => match e.data_mut(channel) {
                Some(slot) => {
                    let st = slot.get_or_insert_with(|| self.new_chan()).clone();
                    Action::Deliver(channel, st, config)
                }
                None => Action::Nothing,
            },
            Event::Closed {
                channel,
                error: false,
                data,
            } => Action::End(Some(self.keep_unclaimed(channel, data)), End::Closed),
            Event::Closed {
                channel,
                error: true,
                data,
            } => Action::EndWithErrorText(Some(self.keep_unclaimed(channel, data))),
            Event::LastMessage { channel } => Action::End(
                e.data_mut(channel)
                    .map(|slot| slot.get_or_insert_with(|| self.new_chan()).clone()),
                End::Closed,
            ),
            Event::Refused {
                channel,
                data,
                reason,
                code,
            } => Action::End(
                data.map(|d| self.keep_unclaimed(channel, d)),
                End::Failed(format!(
                    "{} sent a {} that was refused: {reason}",
                    self.peer,
                    code.name()
                )),
            ),
            Event::Exec { channel } => Action::Exec(channel),
            Event::StatusRequest { channel } => {
                let executing = self.executing.load(Ordering::SeqCst);
                match e.status_reply(channel, executing, &self.execmodel) {
                    Ok(()) => Action::Flush,
                    Err(_) => Action::Nothing,
                }
            }
            Event::Terminate => Action::Stop,
            Event::Reconfigure { .. } | Event::Dropped { .. } => Action::Nothing,
            _ => Action::Nothing,
        }
    }

    /// Closes channel `id` with an error (the peer's code sees it raised) and ends it here
    /// with the same text, without blocking: a failed callback on the reader thread.
    pub(crate) fn fail_channel(self: &Arc<Self>, id: i32, st: &ChanState, text: String) {
        self.queue_and_flush(|e| e.close(id, Some(&text)).map(|_| ()));
        st.finish(End::Failed(text));
    }
}

/// The text of a caught panic.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Runs `f`, turning a panic into its text.
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_text(&*p))
}
