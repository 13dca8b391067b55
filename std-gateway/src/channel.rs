//! Channels: bidirectional, ordered streams of values between this process and code
//! running in a worker.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use execnet_core::encode::Encode;
use execnet_core::serde::Serde;
use execnet_core::{Limits, Node, StrConfig, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Death, Error, RemoteError, Result};
use crate::gateway::Shared;

/// How a channel's receiving side ended.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// Closed by either side, or the peer sent its last message.
    Closed,
    /// The peer closed it with this traceback.
    Error(String),
    /// The gateway died.
    Died(Death),
}

/// A callback that receives a channel's values on the gateway's reader thread.
pub type Callback = Box<dyn FnMut(Value) + Send>;

pub(crate) struct Queue {
    items: VecDeque<(Vec<u8>, StrConfig)>,
    end: Option<End>,
    callback: Option<Callback>,
    endmarker: Option<Value>,
    /// We closed it (or sent our last message): sending is an error.
    sent_close: bool,
}

/// Per-channel state shared between handles and the reader thread.
pub(crate) struct ChanState {
    q: Mutex<Queue>,
    cv: Condvar,
    /// Set while values (or the end) wait in the queue: lets a receiver poll without
    /// the lock.
    ready: std::sync::atomic::AtomicBool,
}

/// How long a receiver polls before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

impl ChanState {
    pub(crate) fn new() -> Arc<ChanState> {
        Arc::new(ChanState {
            q: Mutex::new(Queue {
                items: VecDeque::new(),
                end: None,
                callback: None,
                endmarker: None,
                sent_close: false,
            }),
            cv: Condvar::new(),
            ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until notified, or fails with [`Error::Timeout`] once `deadline` (set from
    /// `timeout`) has passed.
    fn wait<'g>(
        &self,
        q: MutexGuard<'g, Queue>,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<MutexGuard<'g, Queue>> {
        match deadline {
            None => Ok(self.cv.wait(q).unwrap_or_else(|e| e.into_inner())),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::Timeout(timeout.unwrap_or_default()));
                }
                Ok(self
                    .cv
                    .wait_timeout(q, d - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0))
            }
        }
    }

    /// Called by the reader thread with a new value.
    /// Returns `false` when a callback took the value (it is then not queued).
    pub(crate) fn deliver(&self, payload: Vec<u8>, config: StrConfig, limits: &Limits) -> bool {
        let mut q = self.lock();
        if let Some(cb) = q.callback.as_mut() {
            if let Ok(v) = decode_value(&payload, config, limits) {
                cb(v);
            }
            return false;
        }
        q.items.push_back((payload, config));
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        self.cv.notify_all();
        true
    }

    /// Called by the reader thread when the receiving side ends.
    pub(crate) fn finish(&self, end: End) {
        let mut q = self.lock();
        if q.end.is_none() {
            q.end = Some(end);
        }
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        if q.callback.is_some() {
            if let Some(marker) = q.endmarker.take() {
                if let Some(cb) = q.callback.as_mut() {
                    cb(marker);
                }
            }
        }
        self.cv.notify_all();
    }
}

fn decode_value(payload: &[u8], config: StrConfig, limits: &Limits) -> Result<Value> {
    let mut nodes: Vec<Node> = Vec::new();
    let v = execnet_core::decode::decode_internal(payload, &mut nodes, limits)?;
    Ok(Value::from_ref(&v, config))
}

fn end_error(end: &End) -> Error {
    match end {
        End::Closed => Error::Eof,
        End::Error(tb) => Error::Remote(RemoteError {
            traceback: tb.clone(),
        }),
        End::Died(d) => Error::GatewayDied(d.clone()),
    }
}

struct Handle {
    gw: Arc<Shared>,
    id: i32,
    st: Arc<ChanState>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let q = self.st.lock();
        let open = !q.sent_close && q.end.is_none();
        let has_cb = q.callback.is_some();
        drop(q);
        if open {
            // A channel dropped while open tells the peer: with a callback it keeps
            // receiving, so only our sending ends.
            let _ = if has_cb {
                self.gw.send_last_message(self.id)
            } else {
                self.gw.send_close(self.id, None)
            };
        }
        if !has_cb {
            self.gw.forget_channel(self.id);
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
        write!(f, "<Channel id={} gateway={}>", self.h.id, self.h.gw.id)
    }
}

impl Channel {
    pub(crate) fn new(gw: Arc<Shared>, id: i32, st: Arc<ChanState>) -> Channel {
        Channel {
            h: Arc::new(Handle { gw, id, st }),
        }
    }

    /// The channel id (odd: opened by this side; even: by the worker).
    pub fn id(&self) -> i32 {
        self.h.id
    }

    /// A value for [`send_value`](Self::send_value) that refers to this channel, so that
    /// the worker receives it as a channel object.
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

    /// Sends any `Serialize` value (see the mapping in [`execnet_core::serde`]).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_encoded(&Serde(value))
    }

    /// Sends a dynamic [`Value`], with its exact kinds (tuples, sets, Python 2 strings).
    pub fn send_value(&self, value: &Value) -> Result<()> {
        self.send_encoded(value)
    }

    /// Sends anything that implements [`Encode`].
    pub fn send_encoded<E: Encode + ?Sized>(&self, value: &E) -> Result<()> {
        self.check_sendable()?;
        self.h.gw.send_data(self.h.id, value)
    }

    fn receive_raw(&self, timeout: Option<Duration>) -> Result<(Vec<u8>, StrConfig)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spun = false;
        let mut q = self.h.st.lock();
        loop {
            if let Some(item) = q.items.pop_front() {
                self.h
                    .st
                    .ready
                    .store(!q.items.is_empty(), std::sync::atomic::Ordering::Release);
                self.h
                    .gw
                    .queued
                    .fetch_sub(item.0.len(), std::sync::atomic::Ordering::SeqCst);
                return Ok(item);
            }
            if let Some(end) = &q.end {
                return Err(end_error(end));
            }
            if q.callback.is_some() {
                return Err(Error::Other(
                    "channel has a callback: values go to it, not to receive()".into(),
                ));
            }
            if !spun {
                // A reply often arrives within microseconds: polling briefly before
                // sleeping saves the wake-up latency of the condition variable.
                spun = true;
                drop(q);
                let start = Instant::now();
                while start.elapsed() < SPIN {
                    std::thread::yield_now();
                    if self.h.st.ready.load(std::sync::atomic::Ordering::Acquire) {
                        break;
                    }
                }
                q = self.h.st.lock();
                continue;
            }
            q = self.h.st.wait(q, deadline, timeout)?;
        }
    }

    /// Receives the next value as a `T`, waiting as long as it takes. Ends with
    /// [`Error::Eof`] when the channel is closed, [`Error::Remote`] when the remote code
    /// failed, [`Error::GatewayDied`] when the worker is gone.
    pub fn receive<T: DeserializeOwned>(&self) -> Result<T> {
        self.receive_opt(None)
    }

    /// As [`receive`](Self::receive), giving up with [`Error::Timeout`] after `timeout`.
    pub fn receive_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        self.receive_opt(Some(timeout))
    }

    fn receive_opt<T: DeserializeOwned>(&self, timeout: Option<Duration>) -> Result<T> {
        let (payload, config) = self.receive_raw(timeout)?;
        let mut nodes: Vec<Node> = Vec::new();
        let v = execnet_core::decode::decode_internal(&payload, &mut nodes, &self.h.gw.limits)?;
        Ok(execnet_core::serde::from_value(v, config)?)
    }

    /// Receives the next value as a dynamic [`Value`], kinds kept as they came.
    pub fn receive_value(&self) -> Result<Value> {
        self.receive_value_with_config(None).map(|(v, _)| v)
    }

    /// Receives the next value and the string config it loads under on this side
    /// (pass it to [`execnet_core::strconfig::load_as`] to see what each string
    /// becomes), waiting at most `timeout` when given.
    pub fn receive_value_with_config(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(Value, StrConfig)> {
        let (payload, config) = self.receive_raw(timeout)?;
        Ok((decode_value(&payload, config, &self.h.gw.limits)?, config))
    }

    /// Iterates over received values until the channel closes; a failure (remote error,
    /// dead gateway) comes as the last item.
    pub fn iter_values(&self) -> impl Iterator<Item = Result<Value>> + '_ {
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            match self.receive_value() {
                Ok(v) => Some(Ok(v)),
                Err(Error::Eof) => None,
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        })
    }

    /// Iterates over received values as `T`, like [`iter_values`](Self::iter_values).
    pub fn iter<T: DeserializeOwned>(&self) -> impl Iterator<Item = Result<T>> + '_ {
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            match self.receive::<T>() {
                Ok(v) => Some(Ok(v)),
                Err(Error::Eof) => None,
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        })
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
            self.h.st.cv.notify_all();
        }
        self.h.gw.send_close(self.h.id, error)
    }

    /// Announces that this side will send no more; it can still receive.
    pub fn send_last_message(&self) -> Result<()> {
        {
            let mut q = self.h.st.lock();
            if q.sent_close {
                return Err(Error::Closed);
            }
            q.sent_close = true;
        }
        self.h.gw.send_last_message(self.h.id)
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
            q = self.h.st.wait(q, deadline, timeout)?;
        }
    }

    /// Hands every value (those already queued first) to `callback` on the gateway's
    /// reader thread; when the channel ends, `endmarker` (if given) is handed over last.
    pub fn set_callback<F: FnMut(Value) + Send + 'static>(
        &self,
        callback: F,
        endmarker: Option<Value>,
    ) -> Result<()> {
        let mut cb: Callback = Box::new(callback);
        let mut q = self.h.st.lock();
        if q.callback.is_some() {
            return Err(Error::Other("channel already has a callback".into()));
        }
        let limits = self.h.gw.limits;
        while let Some((payload, config)) = q.items.pop_front() {
            self.h
                .gw
                .queued
                .fetch_sub(payload.len(), std::sync::atomic::Ordering::SeqCst);
            if let Ok(v) = decode_value(&payload, config, &limits) {
                cb(v);
            }
        }
        if q.end.is_some() {
            if let Some(marker) = endmarker {
                cb(marker);
            }
            return Ok(());
        }
        q.callback = Some(cb);
        q.endmarker = endmarker;
        Ok(())
    }

    /// Sets the string config for this channel on both ends: how this side loads what
    /// comes on it, and (through RECONFIGURE) how the worker loads what we send.
    pub fn reconfigure(&self, py2str_as_py3str: bool, py3str_as_py2str: bool) -> Result<()> {
        self.h.gw.reconfigure(
            Some(self.h.id),
            StrConfig::new(py2str_as_py3str, py3str_as_py2str),
        )
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

/// Reads a channel's `bytes` and `str` values as one byte stream.
pub struct ChannelReader {
    ch: Channel,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.ch.receive_value() {
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
