//! Channels: bidirectional, ordered streams of values between this process and code at
//! the other end of a gateway. One type serves both roles: the master's channels
//! ([`Gateway::remote_exec`](crate::Gateway::remote_exec)) and the channels a Rust
//! worker's functions talk over ([`Worker`](crate::worker::Worker)).

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use execnet_core::encode::Encode;
use execnet_core::serde::Serde;
use execnet_core::{Limits, StrConfig, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::budget::Budget;
use crate::error::{Death, Error, RemoteError, Result};
use crate::session::{guarded, Ending, Session};

/// How a channel's receiving side ended.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// Closed by either side, or the peer sent its last message.
    Closed,
    /// The peer closed it with this traceback.
    Error(String),
    /// This side ended it with an error (a callback failed, a message was refused).
    Failed(String),
    /// The gateway died.
    Died(Death),
}

/// A received value as it waits in a channel's queue.
pub(crate) enum Payload {
    /// Its encoding (internal envelope).
    Encoded(Vec<u8>),
    /// A value that is one string, received split (see
    /// [`FrameReader::with_split_strings`](execnet_core::frame::FrameReader::with_split_strings)):
    /// its opcode and its bytes, in the allocation they were read into.
    Str(u8, Vec<u8>),
}

use execnet_core::frame::STRING_OVERHEAD;

impl Payload {
    /// Its size on the wire, which the budget counts.
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Encoded(v) => v.len(),
            Payload::Str(_, bytes) => bytes.len() + STRING_OVERHEAD,
        }
    }

    /// The encoding: as it is, or put back together for a split string (one copy).
    fn encoded(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Payload::Encoded(v) => std::borrow::Cow::Borrowed(v),
            Payload::Str(code, bytes) => {
                std::borrow::Cow::Owned(execnet_core::frame::string_payload(*code, bytes))
            }
        }
    }
}

/// What a callback is handed: one value, or the end of the channel.
pub(crate) enum Delivery {
    Value(Payload, StrConfig),
    End,
}

/// A callback with its decoding folded in: it decodes what it is handed into the type the
/// user's function takes and calls it; an `Err` text closes the channel.
type Callback = Box<dyn FnMut(Delivery, &Limits) -> std::result::Result<(), String> + Send>;

/// Decodes a value for a callback; the text the channel closes with when it cannot.
fn decode_for_callback<T: DeserializeOwned + 'static>(
    payload: Payload,
    config: StrConfig,
    limits: &Limits,
) -> std::result::Result<T, String> {
    decode_payload(payload, config, limits)
        .map_err(|e| format!("RuntimeError: a value for the channel callback did not decode: {e}"))
}

/// The text a channel is closed with when its callback panicked.
fn panicked(p: String) -> String {
    format!("RuntimeError: the channel callback panicked: {p}")
}

/// Decodes one value as a `T`: a [`Value`] by the owned decoder, any other type by serde
/// reading the opcodes. A split string becomes a `Value` or a `String` in the allocation
/// it was received into.
pub(crate) fn decode_payload<T: DeserializeOwned + 'static>(
    payload: Payload,
    config: StrConfig,
    limits: &Limits,
) -> Result<T> {
    let payload = match payload {
        Payload::Str(code, bytes) => match string_as::<T>(code, bytes, limits) {
            Ok(v) => return Ok(v),
            Err(bytes) => Payload::Str(code, bytes),
        },
        other => other,
    };
    decode_as(&payload.encoded(), config, limits)
}

/// A split string as a `T`, with no copy, where that gives exactly what decoding its
/// encoding would: a [`Value`] of the string's own kind, or a `String` from a `str` or
/// `unicode`. Gives the bytes back otherwise (another type, a limit exceeded, text that
/// is not UTF-8), for the decoder to say what it makes of them.
fn string_as<T: 'static>(
    code: u8,
    bytes: Vec<u8>,
    limits: &Limits,
) -> std::result::Result<T, Vec<u8>> {
    use execnet_core::opcode as op;
    let within = bytes.len() <= limits.max_bytes as usize
        && bytes.len() + STRING_OVERHEAD <= limits.max_message as usize;
    let wanted = TypeId::of::<T>();
    let text = code == op::PY3STRING || code == op::UNICODE;
    if !within || !(wanted == TypeId::of::<Value>() || (text && wanted == TypeId::of::<String>())) {
        return Err(bytes);
    }
    let value: Box<dyn Any> = match code {
        op::BYTES => Box::new(Value::Bytes(bytes)),
        op::PY2STRING => Box::new(Value::Py2Str(bytes)),
        _ => {
            let s = String::from_utf8(bytes).map_err(|e| e.into_bytes())?;
            if wanted == TypeId::of::<String>() {
                Box::new(s)
            } else if code == op::PY3STRING {
                Box::new(Value::Str(s))
            } else {
                Box::new(Value::Unicode(s))
            }
        }
    };
    // The type was checked above: this cannot fail, and gives nothing back if it did.
    value.downcast::<T>().map(|b| *b).map_err(|_| Vec::new())
}

/// Decodes one encoded value as a `T`.
pub(crate) fn decode_as<T: DeserializeOwned + 'static>(
    payload: &[u8],
    config: StrConfig,
    limits: &Limits,
) -> Result<T> {
    if TypeId::of::<T>() == TypeId::of::<Value>() {
        let v: Box<dyn Any> = Box::new(Value::decode_internal_with(payload, limits, config)?);
        return v.downcast::<T>().map(|b| *b).map_err(|_| {
            Error::Decode(execnet_core::DecodeError::unplaced(
                execnet_core::DecodeErrorKind::Internal,
            ))
        });
    }
    Ok(execnet_core::serde::from_internal(payload, limits, config)?)
}

struct Queue {
    items: VecDeque<(Payload, StrConfig)>,
    /// Bytes of `items`, counted against the session's budget.
    bytes: usize,
    end: Option<End>,
    /// Set once a callback is installed, also while it runs (when `callback` is out).
    has_callback: bool,
    callback: Option<Callback>,
    /// We closed it (or sent our last message): sending is an error.
    sent_close: bool,
    /// Receivers asleep on the condition variable: a new value wakes them only when
    /// there are any (a notification is a system call, and a polling receiver needs
    /// none).
    sleepers: usize,
}

/// A channel's receiving side: the values that wait, how it ended, its callback.
pub(crate) struct ChanState {
    q: Mutex<Queue>,
    cv: Condvar,
    /// Set while values (or the end) wait in the queue: lets a receiver poll without
    /// the lock.
    ready: AtomicBool,
    budget: Arc<Budget>,
    /// A [`Channel`] handle was made for it.
    claimed: AtomicBool,
    /// How long a receiver polls for a value before it sleeps, in microseconds (see
    /// [`ChanState::waited`]).
    spin_us: AtomicU32,
}

/// The longest a receiver polls for its value before it sleeps on the condition
/// variable.
const SPIN_MAX: u32 = 50;
/// A wait at most this long could have been saved by polling (or was): polling goes on,
/// or starts again. A longer one shortens it, to none after three in a row.
const SHORT_WAIT: Duration = Duration::from_micros(4 * SPIN_MAX as u64);

impl ChanState {
    pub(crate) fn new(budget: Arc<Budget>) -> Arc<ChanState> {
        Arc::new(ChanState {
            q: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                end: None,
                has_callback: false,
                callback: None,
                sent_close: false,
                sleepers: 0,
            }),
            cv: Condvar::new(),
            ready: AtomicBool::new(false),
            budget,
            claimed: AtomicBool::new(false),
            spin_us: AtomicU32::new(SPIN_MAX),
        })
    }

    /// Learns from one wait for a value how long the next polls: on as long as values
    /// come soon (polling saves the sleep and the wake-up), shorter after each that
    /// comes late, to none when replies take long (polling would only burn the
    /// processor), and on again as soon as one comes soon.
    fn waited(&self, waited: Duration) {
        let us = if waited <= SHORT_WAIT {
            SPIN_MAX
        } else {
            self.spin_us.load(Ordering::Relaxed) / 4
        };
        self.spin_us.store(us, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a [`Channel`] handle was ever made for it.
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Sleeps until notified, or fails with [`Error::Timeout`] once `deadline` (set from
    /// `timeout`) has passed.
    fn wait<'g>(
        &self,
        mut q: MutexGuard<'g, Queue>,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<MutexGuard<'g, Queue>> {
        let mut q = match deadline {
            None => {
                q.sleepers += 1;
                self.cv.wait(q).unwrap_or_else(|e| e.into_inner())
            }
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::Timeout(timeout.unwrap_or_default()));
                }
                q.sleepers += 1;
                self.cv
                    .wait_timeout(q, d - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0)
            }
        };
        q.sleepers -= 1;
        Ok(q)
    }

    /// Called by the reader thread with a new value: queued, or handed to the callback
    /// with no lock held (so that the callback may use its own channel). A callback that
    /// panics, or a value it cannot be given because it does not decode, closes this
    /// channel with an error; the gateway goes on.
    pub(crate) fn deliver(
        &self,
        session: &Arc<Session>,
        id: i32,
        payload: Payload,
        config: StrConfig,
    ) -> std::result::Result<(), Ending> {
        let mut q = self.lock();
        if q.has_callback {
            let mut cb = q.callback.take();
            drop(q);
            let outcome = match cb.as_mut() {
                Some(cb) => guarded(|| cb(Delivery::Value(payload, config), &session.limits))
                    .map_err(panicked)
                    .and_then(|r| r),
                None => Ok(()),
            };
            self.restore_callback(cb, &session.limits);
            if let Err(text) = outcome {
                session.fail_channel(id, self, text);
            }
            return Ok(());
        }
        if !self.budget.take(payload.len()) {
            return Err(Ending {
                kind: crate::DeathKind::Overflow,
                cause: format!(
                    "{} sent more than {} bytes that were not received",
                    session.peer,
                    session.budget_max()
                ),
            });
        }
        q.bytes += payload.len();
        q.items.push_back((payload, config));
        self.ready.store(true, Ordering::Release);
        if q.sleepers > 0 {
            self.cv.notify_all();
        }
        Ok(())
    }

    /// Puts a callback back after it ran; if the channel ended meanwhile, hands it the
    /// end now.
    fn restore_callback(&self, cb: Option<Callback>, limits: &Limits) {
        let mut q = self.lock();
        if q.end.is_some() {
            drop(q);
            if let Some(mut cb) = cb {
                let _ = guarded(|| cb(Delivery::End, limits));
            }
            return;
        }
        if q.callback.is_none() {
            q.callback = cb;
        }
    }

    /// Ends the receiving side (the first end counts); a callback is told.
    pub(crate) fn finish(&self, end: End) {
        let mut q = self.lock();
        if q.end.is_none() {
            q.end = Some(end);
        }
        self.ready.store(true, Ordering::Release);
        let cb = q.callback.take();
        drop(q);
        self.cv.notify_all();
        if let Some(mut cb) = cb {
            let _ = guarded(|| cb(Delivery::End, &Limits::DEFAULT));
        }
    }

    /// Drops the values nobody will receive, giving their bytes back.
    fn clear(&self) {
        let mut q = self.lock();
        q.items.clear();
        self.budget.give(std::mem::take(&mut q.bytes));
    }

    /// Takes the next value, or the reason there is none.
    fn pop(&self, q: &mut Queue) -> Option<(Payload, StrConfig)> {
        let item = q.items.pop_front()?;
        q.bytes -= item.0.len();
        self.budget.give(item.0.len());
        self.ready
            .store(!q.items.is_empty() || q.end.is_some(), Ordering::Release);
        Some(item)
    }
}

impl Drop for ChanState {
    fn drop(&mut self) {
        self.clear();
    }
}

fn end_error(end: &End) -> Error {
    match end {
        End::Closed => Error::Eof,
        End::Error(tb) => Error::Remote(RemoteError {
            traceback: tb.clone(),
        }),
        End::Failed(text) => Error::ChannelFailed(text.clone()),
        End::Died(d) => Error::GatewayDied(d.clone()),
    }
}

struct Handle {
    session: Arc<Session>,
    id: i32,
    st: Arc<ChanState>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let q = self.st.lock();
        let open = !q.sent_close && q.end.is_none();
        let has_cb = q.has_callback;
        drop(q);
        if open && self.session.dead().is_none() {
            // A channel dropped while open tells the peer: with a callback it keeps
            // receiving, so only our sending ends. Written in the background: a drop must
            // not block behind a full pipe.
            let id = self.id;
            if has_cb {
                self.session.queue_and_flush(|e| e.last_message(id));
            } else {
                self.session
                    .queue_and_flush(|e| e.close(id, None).map(|_| ()));
            }
        }
        if !has_cb {
            self.st.clear();
        }
    }
}

/// One end of a channel. Cloning gives another handle to the same channel; when the last
/// handle is dropped while the channel is open, it is closed (or, with a callback set,
/// this side announces its last message and keeps receiving).
#[derive(Clone)]
pub struct Channel {
    h: Arc<Handle>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Channel id={} gateway={}>",
            self.h.id, self.h.session.name
        )
    }
}

impl Channel {
    pub(crate) fn new(session: Arc<Session>, id: i32, st: Arc<ChanState>) -> Channel {
        st.claimed.store(true, Ordering::Release);
        Channel {
            h: Arc::new(Handle { session, id, st }),
        }
    }

    /// The channel id (odd: opened by the master; even: by the worker).
    pub fn id(&self) -> i32 {
        self.h.id
    }

    /// A value for [`send`](Self::send) that refers to this channel, so that
    /// the other end receives it as a channel object.
    pub fn as_value(&self) -> Value {
        Value::Channel(self.h.id)
    }

    fn check_sendable(&self) -> Result<()> {
        let q = self.h.st.lock();
        if q.sent_close {
            return Err(Error::Closed);
        }
        if let Some(End::Died(d)) = &q.end {
            return Err(Error::GatewayDied(d.clone()));
        }
        Ok(())
    }

    /// Sends a value: any `Serialize` type (see the mapping in [`execnet_core::serde`]),
    /// or a dynamic [`Value`] with its exact kinds (tuples, sets, Python 2 strings).
    ///
    /// ```
    /// # let group = execnet::Group::new();
    /// # let gw = group.makegateway("popen//python=python3")?;
    /// let ch = gw.remote_exec("for x in channel: channel.send(x)")?;
    /// ch.send(&("text", 42, vec![1.5, 2.5]))?;           // a tuple
    /// ch.send(&execnet::Value::Set(vec![1.into()]))?;    // or any Value
    /// let back: (String, i64, Vec<f64>) = ch.receive()?;
    /// assert_eq!(back, ("text".to_string(), 42, vec![1.5, 2.5]));
    /// assert_eq!(ch.receive::<execnet::Value>()?.to_string(), "{1}");
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_encoded(&Serde(value))
    }

    /// As [`send`](Self::send), but gives up with [`Error::Timeout`] when the value has
    /// not gone out within `timeout` (the worker does not read). A value that was cut off
    /// half-written cannot be taken back, so the gateway is closed then: the stream could
    /// not be read past it.
    pub fn send_timeout<T: Serialize + ?Sized>(&self, value: &T, timeout: Duration) -> Result<()> {
        self.check_sendable()?;
        let session = self.h.session.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::Builder::new()
            .name(format!("execnet-send-timeout-{}", session.name))
            .spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    done_rx.recv_timeout(timeout)
                {
                    session.shutdown(Duration::ZERO);
                    true
                } else {
                    false
                }
            })?;
        let result = self.h.session.send_value(self.h.id, &Serde(value));
        let _ = done_tx.send(());
        match watchdog.join() {
            Ok(true) => Err(Error::Timeout(timeout)),
            _ => result,
        }
    }

    /// Sends anything that implements [`Encode`] (the encoder's own trait).
    pub(crate) fn send_encoded<E: Encode + ?Sized>(&self, value: &E) -> Result<()> {
        self.check_sendable()?;
        self.h.session.send_value(self.h.id, value)
    }

    fn receive_raw(&self, timeout: Option<Duration>) -> Result<(Payload, StrConfig)> {
        let st = &self.h.st;
        let deadline = timeout.map(|t| Instant::now() + t);
        // When this call started to wait, once the queue was found empty.
        let mut waiting: Option<Instant> = None;
        let mut q = st.lock();
        loop {
            if let Some(item) = st.pop(&mut q) {
                if let Some(since) = waiting {
                    st.waited(since.elapsed());
                }
                return Ok(item);
            }
            if let Some(end) = &q.end {
                return Err(end_error(end));
            }
            if q.has_callback {
                return Err(Error::HasCallback);
            }
            if waiting.is_none() {
                let since = Instant::now();
                waiting = Some(since);
                let spin = st.spin_us.load(Ordering::Relaxed);
                if spin > 0 {
                    // A reply often comes within microseconds: polling for it first
                    // saves sleeping on the condition variable and being woken, which
                    // costs more time and processor than the polling. Yielding, so that
                    // on a busy machine the thread that delivers the value (the
                    // gateway's reader) gets the processor.
                    drop(q);
                    let budget = Duration::from_micros(u64::from(spin));
                    while since.elapsed() < budget && !st.ready.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    q = st.lock();
                    continue;
                }
            }
            let _starving = st.budget.starving();
            q = st.wait(q, deadline, timeout)?;
        }
    }

    /// Receives the next value as a `T`, waiting as long as it takes: any `Deserialize`
    /// type, or a dynamic [`Value`] with the kinds as they came. Ends with [`Error::Eof`]
    /// when the channel is closed, [`Error::Remote`] when the remote code failed,
    /// [`Error::GatewayDied`] when the other end is gone.
    ///
    /// ```
    /// # let group = execnet::Group::new();
    /// # let gw = group.makegateway("popen//python=python3")?;
    /// let ch = gw.remote_exec("channel.send({'n': 1, 'tags': ('a', 'b')})")?;
    /// #[derive(serde::Deserialize)]
    /// struct Item { n: i64, tags: (String, String) }
    /// let item: Item = ch.receive()?;
    /// assert_eq!((item.n, item.tags.1.as_str()), (1, "b"));
    /// let ch = gw.remote_exec("channel.send({1, 2.5})")?;
    /// let set: execnet::Value = ch.receive()?;            // Value::Set, as sent
    /// assert_eq!(set.to_string(), "{1, 2.5}");
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn receive<T: DeserializeOwned + 'static>(&self) -> Result<T> {
        self.receive_with_config(None).map(|(v, _)| v)
    }

    /// As [`receive`](Self::receive), giving up with [`Error::Timeout`] after `timeout`.
    pub fn receive_timeout<T: DeserializeOwned + 'static>(&self, timeout: Duration) -> Result<T> {
        self.receive_with_config(Some(timeout)).map(|(v, _)| v)
    }

    /// Receives the next value and the string config it loads under on this side
    /// (pass it to [`execnet_core::strconfig::load_as`] to see what each string
    /// becomes), waiting at most `timeout` when given.
    pub fn receive_with_config<T: DeserializeOwned + 'static>(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(T, StrConfig)> {
        let (payload, config) = self.receive_raw(timeout)?;
        Ok((
            decode_payload(payload, config, &self.h.session.limits)?,
            config,
        ))
    }

    /// Iterates over received values as `T` until the channel closes; a failure (remote
    /// error, dead gateway) comes as the last item. `for v in &channel` does the same
    /// with `T = Value`.
    pub fn iter<T: DeserializeOwned + 'static>(&self) -> Iter<'_, T> {
        Iter {
            ch: self,
            done: false,
            _t: std::marker::PhantomData,
        }
    }

    /// Closes the channel (both directions) and tells the peer.
    pub fn close(&self) -> Result<()> {
        self.close_inner(None)
    }

    /// Closes the channel with an error: the peer's `receive` raises it.
    pub fn close_with_error(&self, text: &str) -> Result<()> {
        self.close_inner(Some(text))
    }

    fn close_inner(&self, error: Option<&str>) -> Result<()> {
        {
            let mut q = self.h.st.lock();
            if q.sent_close {
                return Ok(());
            }
            q.sent_close = true;
            if q.end.is_some() {
                return Ok(());
            }
            q.end = Some(End::Closed);
            self.h.st.ready.store(true, Ordering::Release);
            self.h.st.cv.notify_all();
        }
        let id = self.h.id;
        self.h.session.transmit(|e| e.close(id, error).map(|_| ()))
    }

    /// Announces that this side will send no more; it can still receive. When the other
    /// side has closed the channel already (its code ended), there is nobody left to tell,
    /// and this succeeds; after this side's own `close` or `send_last_message` it is
    /// [`Error::Closed`].
    pub fn send_last_message(&self) -> Result<()> {
        {
            let mut q = self.h.st.lock();
            if q.sent_close {
                return Err(Error::Closed);
            }
            q.sent_close = true;
        }
        let id = self.h.id;
        match self.h.session.transmit(|e| e.last_message(id)) {
            // Not closed by this side (checked above): the peer closed it.
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    /// Whether the receiving side has ended (closed, failed, or the gateway died).
    pub fn is_closed(&self) -> bool {
        self.h.st.lock().end.is_some()
    }

    /// Waits until the peer closes the channel: `Ok` for a normal close,
    /// [`Error::Remote`] if the remote code failed, [`Error::Timeout`] after `timeout`.
    /// Values still queued are left for `receive`.
    pub fn wait_close(&self, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = self.h.st.lock();
        loop {
            match &q.end {
                Some(End::Closed) => return Ok(()),
                Some(end) => return Err(end_error(end)),
                None => {}
            }
            let _starving = self.h.st.budget.starving();
            q = self.h.st.wait(q, deadline, timeout)?;
        }
    }

    /// Hands every value (those already queued first), decoded as `T`, to `callback`, on
    /// the gateway's reader thread and with no lock held, so that the callback may send
    /// on this very channel; when the channel ends, `endmarker` (if given) is handed over
    /// last. A callback that panics closes this channel with an error naming the panic
    /// (the gateway and its other channels go on); so does a value that does not decode
    /// as a `T`.
    ///
    /// ```
    /// # let group = execnet::Group::new();
    /// # let gw = group.makegateway("popen//python=python3")?;
    /// let ch = gw.remote_exec("for i in range(3): channel.send(i)")?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// ch.set_callback(move |n: i64| tx.send(n).unwrap(), Some(-1))?;
    /// let got: Vec<i64> = rx.iter().take(4).collect();
    /// assert_eq!(got, [0, 1, 2, -1]);
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn set_callback<T, F>(&self, mut callback: F, endmarker: Option<T>) -> Result<()>
    where
        T: DeserializeOwned + Send + 'static,
        F: FnMut(T) + Send + 'static,
    {
        let mut marker = endmarker;
        self.install(Box::new(move |d: Delivery, limits: &Limits| match d {
            Delivery::Value(payload, config) => {
                callback(decode_for_callback(payload, config, limits)?);
                Ok(())
            }
            Delivery::End => {
                if let Some(m) = marker.take() {
                    callback(m);
                }
                Ok(())
            }
        }))
    }

    /// As [`set_callback`](Self::set_callback), with the end told to `on_end` instead of
    /// through a value.
    pub fn set_callback_with_end<T, F, E>(&self, mut callback: F, on_end: E) -> Result<()>
    where
        T: DeserializeOwned + Send + 'static,
        F: FnMut(T) + Send + 'static,
        E: FnOnce() + Send + 'static,
    {
        let mut on_end = Some(on_end);
        self.install(Box::new(move |d: Delivery, limits: &Limits| match d {
            Delivery::Value(payload, config) => {
                callback(decode_for_callback(payload, config, limits)?);
                Ok(())
            }
            Delivery::End => {
                if let Some(f) = on_end.take() {
                    f();
                }
                Ok(())
            }
        }))
    }

    fn install(&self, mut cb: Callback) -> Result<()> {
        let st = &self.h.st;
        let limits = self.h.session.limits;
        let mut q = st.lock();
        if q.has_callback {
            return Err(Error::HasCallback);
        }
        // What waits already goes first, in order; the lock is let go around each call.
        while let Some((payload, config)) = st.pop(&mut q) {
            drop(q);
            let outcome = guarded(|| cb(Delivery::Value(payload, config), &limits))
                .map_err(panicked)
                .and_then(|r| r);
            if let Err(text) = outcome {
                self.h.session.fail_channel(self.h.id, st, text);
            }
            q = st.lock();
        }
        if q.end.is_some() {
            drop(q);
            let _ = guarded(|| cb(Delivery::End, &limits));
            return Ok(());
        }
        q.has_callback = true;
        q.callback = Some(cb);
        Ok(())
    }

    /// Sets the string config for this channel on both ends: how this side loads what
    /// comes on it, and (through RECONFIGURE) how the other end loads what we send.
    pub fn reconfigure(&self, py2str_as_py3str: bool, py3str_as_py2str: bool) -> Result<()> {
        let id = self.h.id;
        let config = StrConfig::new(py2str_as_py3str, py3str_as_py2str);
        self.h.session.transmit(|e| e.reconfigure(Some(id), config))
    }

    /// A reader over the bytes and strings the peer sends (Python's
    /// `channel.makefile("r")`).
    pub fn reader(&self) -> ChannelReader {
        ChannelReader {
            ch: self.clone(),
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// A writer that sends each write as one `bytes` value (Python's
    /// `channel.makefile("w")`).
    pub fn writer(&self) -> ChannelWriter {
        ChannelWriter { ch: self.clone() }
    }
}

/// The values of a channel as `T`, until it closes (see [`Channel::iter`]).
pub struct Iter<'c, T> {
    ch: &'c Channel,
    done: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + 'static> Iterator for Iter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        match self.ch.receive::<T>() {
            Ok(v) => Some(Ok(v)),
            Err(Error::Eof) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<'c> IntoIterator for &'c Channel {
    type Item = Result<Value>;
    type IntoIter = Iter<'c, Value>;
    fn into_iter(self) -> Iter<'c, Value> {
        self.iter()
    }
}

/// Reads a channel's `bytes` and `str` values as one byte stream.
pub struct ChannelReader {
    ch: Channel,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.ch.receive::<Value>() {
                Ok(Value::Bytes(b) | Value::Py2Str(b)) => self.buf = b,
                Ok(Value::Str(s) | Value::Unicode(s)) => self.buf = s.into_bytes(),
                Ok(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "channel sent a {} where bytes were expected",
                            other.type_name()
                        ),
                    ))
                }
                Err(Error::Eof) => return Ok(0),
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
            self.pos = 0;
        }
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

/// Sends written bytes over a channel.
pub struct ChannelWriter {
    ch: Channel,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.ch
            .send_encoded(&execnet_core::ValueRef::Bytes(data))
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_follows_how_soon_values_come() {
        let st = ChanState::new(Arc::new(Budget::new(
            1 << 20,
            crate::budget::Overflow::Wait,
        )));
        let spin = || st.spin_us.load(Ordering::Relaxed);
        assert_eq!(spin(), SPIN_MAX);
        // Replies that take a millisecond: polling stops after three.
        let slow = Duration::from_millis(1);
        st.waited(slow);
        st.waited(slow);
        assert!(spin() > 0 && spin() < SPIN_MAX);
        st.waited(slow);
        assert_eq!(spin(), 0);
        st.waited(slow);
        assert_eq!(spin(), 0);
        // One that comes soon (as a sleeping receiver measures it too) brings it back;
        // one a little later than the polling lasts does not stop it.
        st.waited(Duration::from_micros(30));
        assert_eq!(spin(), SPIN_MAX);
        st.waited(SHORT_WAIT);
        assert_eq!(spin(), SPIN_MAX);
    }
}
