//! The Rust worker: serves the execnet protocol from this process, so that a Python
//! execnet master (or ours) can call registered Rust functions.
//!
//! A CHANNEL_EXEC request names the function in `call_name`; its keyword arguments
//! arrive as a dict and the function talks to the master over a [`WorkerChannel`]. The
//! source code in the request is not executed (there is no Python here): a request
//! without a known `call_name` closes its channel with an error naming the functions
//! that exist. STATUS is answered; GATEWAY_TERMINATE or the end of input stops the
//! worker.
//!
//! The protocol logic is the sans-IO [`Engine`] of `execnet-core`, the same one a
//! microcontroller would drive over a UART; this module only adds threads and IO.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use execnet_core::encode::Encode;
use execnet_core::engine::{ChannelState, Engine, Event, ExecRequest, Role};
use execnet_core::frame::{push_value_frame, Frame, Header, MsgCode, HEADER_LEN};
use execnet_core::serde::Serde;
use execnet_core::{Limits, StrConfig, Value, ValueRef};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A registered function: gets the channel and the keyword arguments (a dict); an
/// `Err` text becomes the master's RemoteError.
pub type Function =
    Arc<dyn Fn(&WorkerChannel, Value) -> std::result::Result<(), String> + Send + Sync>;

type Table = BTreeMap<i32, ChannelState>;

/// Longest bootstrap line accepted. A Python master sends its whole worker source as one
/// string literal: the reference's is under 100 KB, our agent's about 30 KB.
pub const MAX_BOOTSTRAP_LINE: usize = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Link {
    engine: Mutex<Engine<Table>>,
    writer: Mutex<Box<dyn Write + Send>>,
    queues: Mutex<HashMap<i32, Arc<Inbox>>>,
    executing: AtomicUsize,
    limits: Limits,
}

impl Link {
    fn write(&self, build: impl FnOnce(&mut Engine<Table>) -> Result<Vec<u8>>) -> Result<()> {
        let mut w = lock(&self.writer);
        let bytes = build(&mut lock(&self.engine))?;
        w.write_all(&bytes)?;
        w.flush()?;
        Ok(())
    }

    fn close(&self, id: i32, error: Option<&str>) -> Result<()> {
        self.write(|engine| {
            let mut out = Vec::new();
            match error {
                None => out.extend_from_slice(
                    &engine.close(id, None).map_err(Error::Protocol)?.to_bytes(),
                ),
                Some(text) => {
                    let payload = execnet_core::encode::to_vec(
                        &ValueRef::Str(execnet_core::value::PyStr::Py3(text)),
                        execnet_core::Envelope::Internal,
                    )?;
                    let h = engine
                        .close(id, Some(payload.len()))
                        .map_err(Error::Protocol)?;
                    out.extend_from_slice(&h.to_bytes());
                    out.extend_from_slice(&payload);
                }
            }
            Ok(out)
        })
    }

    fn inbox(&self, id: i32) -> Arc<Inbox> {
        lock(&self.queues)
            .entry(id)
            .or_insert_with(Inbox::new)
            .clone()
    }
}

/// Values waiting, and how the channel ended (`Some(None)`: closed; `Some(Some(text))`:
/// closed with an error).
type InboxState = (VecDeque<(Vec<u8>, StrConfig)>, Option<Option<String>>);

struct Inbox {
    q: Mutex<InboxState>,
    cv: Condvar,
}

impl Inbox {
    fn new() -> Arc<Inbox> {
        Arc::new(Inbox {
            q: Mutex::new((VecDeque::new(), None)),
            cv: Condvar::new(),
        })
    }
    fn push(&self, item: (Vec<u8>, StrConfig)) {
        lock(&self.q).0.push_back(item);
        self.cv.notify_all();
    }
    fn end(&self, error: Option<String>) {
        let mut q = lock(&self.q);
        if q.1.is_none() {
            q.1 = Some(error);
        }
        self.cv.notify_all();
    }
}

/// The worker side of a channel, handed to a registered function.
pub struct WorkerChannel {
    id: i32,
    link: Arc<Link>,
    inbox: Arc<Inbox>,
}

impl WorkerChannel {
    /// The channel id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Sends a value with its exact kinds.
    pub fn send_value(&self, value: &Value) -> Result<()> {
        self.send_encoded(value)
    }

    /// Sends any `Serialize` value.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_encoded(&Serde(value))
    }

    fn send_encoded<E: Encode + ?Sized>(&self, value: &E) -> Result<()> {
        let mut bytes = Vec::new();
        push_value_frame(&mut bytes, MsgCode::ChannelData, self.id, value)?;
        self.link.write(|engine| {
            engine
                .data(self.id, bytes.len() - HEADER_LEN)
                .map_err(|_| Error::Closed)?;
            Ok(bytes)
        })
    }

    fn receive_raw(&self) -> Result<(Vec<u8>, StrConfig)> {
        let mut q = lock(&self.inbox.q);
        loop {
            if let Some(item) = q.0.pop_front() {
                return Ok(item);
            }
            match &q.1 {
                Some(None) => return Err(Error::Eof),
                Some(Some(tb)) => {
                    return Err(Error::Remote(crate::RemoteError {
                        traceback: tb.clone(),
                    }))
                }
                None => {}
            }
            q = self.inbox.cv.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Receives the next value; [`Error::Eof`] once the master closed the channel.
    pub fn receive_value(&self) -> Result<Value> {
        let (payload, config) = self.receive_raw()?;
        let mut nodes = Vec::new();
        let v = execnet_core::decode::decode_internal(&payload, &mut nodes, &self.link.limits)?;
        Ok(Value::from_ref(&v, config))
    }

    /// Receives the next value as a `T`.
    pub fn receive<T: DeserializeOwned>(&self) -> Result<T> {
        let (payload, config) = self.receive_raw()?;
        let mut nodes = Vec::new();
        let v = execnet_core::decode::decode_internal(&payload, &mut nodes, &self.link.limits)?;
        Ok(execnet_core::serde::from_value(v, config)?)
    }
}

/// A table of Rust functions served over the execnet protocol.
#[derive(Clone, Default)]
pub struct Worker {
    functions: HashMap<String, Function>,
    limits: Limits,
}

impl Worker {
    /// A worker with no functions.
    pub fn new() -> Worker {
        Worker::default()
    }

    /// Registers `f` under `name` (the `call_name` a master sends).
    pub fn register<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&WorkerChannel, Value) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        self.functions.insert(name.into(), Arc::new(f));
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.functions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Accepts a Python master's bootstrap on `input` (it writes one line, the source of
    /// its own worker, which is not run here), answers `1`, then serves.
    pub fn serve_bootstrapped<R: Read + Send + 'static, W: Write + Send + 'static>(
        &self,
        input: R,
        mut output: W,
    ) -> Result<()> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut line = Vec::new();
        // Bounded: a peer that never sends the newline must not grow this process.
        (&mut input)
            .take(MAX_BOOTSTRAP_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(Error::Eof);
        }
        if line.last() != Some(&b'\n') && line.len() > MAX_BOOTSTRAP_LINE {
            return Err(Error::Other(format!(
                "bootstrap line longer than {MAX_BOOTSTRAP_LINE} bytes without a newline \
                 (expected one line of Python source as a string literal)"
            )));
        }
        output.write_all(b"1")?;
        output.flush()?;
        self.serve(input, output)
    }

    /// Serves the protocol (after any handshake) until GATEWAY_TERMINATE or the end of
    /// input.
    pub fn serve<R: Read, W: Write + Send + 'static>(&self, input: R, output: W) -> Result<()> {
        let link = Arc::new(Link {
            engine: Mutex::new(Engine::new(Role::Worker, Table::new())),
            writer: Mutex::new(Box::new(output)),
            queues: Mutex::new(HashMap::new()),
            executing: AtomicUsize::new(0),
            limits: self.limits,
        });
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut head = [0u8; HEADER_LEN];
        loop {
            match input.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let header = Header::parse(&head, self.limits.max_message)
                .map_err(|e| Error::Protocol(e.into()))?;
            let mut payload = vec![0u8; header.len as usize];
            input.read_exact(&mut payload)?;
            let frame = Frame {
                code: header.code,
                channel: header.channel,
                payload: &payload,
            };
            let event = lock(&link.engine)
                .handle_frame(frame)
                .map_err(Error::Protocol)?;
            match event {
                Event::StatusRequest { channel } => {
                    let executing = link.executing.load(Ordering::SeqCst);
                    link.write(|engine| {
                        let mut out = Vec::new();
                        engine.status_reply(channel, executing, &mut out)?;
                        Ok(out)
                    })?;
                }
                Event::Exec { channel, payload } => self.exec(&link, channel, payload),
                Event::Data {
                    channel,
                    payload,
                    config,
                } => link.inbox(channel).push((payload.to_vec(), config)),
                Event::Closed { channel, error } => {
                    let text = error.map(|p| {
                        let mut nodes = Vec::new();
                        match execnet_core::decode::decode_internal(p, &mut nodes, &Limits::DEFAULT)
                        {
                            Ok(ValueRef::Str(s)) => s.chars().collect(),
                            _ => String::from("<undecodable error>"),
                        }
                    });
                    link.inbox(channel).end(text);
                }
                Event::LastMessage { channel } => link.inbox(channel).end(None),
                Event::Terminate => return Ok(()),
                Event::Reconfigure { .. } | Event::Dropped { .. } => {}
            }
        }
    }

    fn exec(&self, link: &Arc<Link>, channel: i32, payload: &[u8]) {
        let mut nodes = Vec::new();
        let request = ExecRequest::decode(payload, &mut nodes, &self.limits);
        let (name, kwargs) = match request {
            Ok(r) => (
                r.call_name.map(String::from),
                r.kwargs
                    .map(|m| Value::from_ref(&ValueRef::Dict(m), StrConfig::GATEWAY))
                    .unwrap_or(Value::Dict(Vec::new())),
            ),
            Err(e) => {
                let _ = link.close(channel, Some(&format!("bad CHANNEL_EXEC request: {e}")));
                return;
            }
        };
        let function = name.as_deref().and_then(|n| self.functions.get(n)).cloned();
        let Some(function) = function else {
            let text = match name {
                Some(n) => format!(
                    "RuntimeError: no Rust function {n:?} is registered in this worker (registered: {})",
                    self.names().join(", ")
                ),
                None => format!(
                    "RuntimeError: this is a Rust worker: it cannot run Python source; call one of its functions by name (registered: {})",
                    self.names().join(", ")
                ),
            };
            let _ = link.close(channel, Some(&text));
            return;
        };
        let ch = WorkerChannel {
            id: channel,
            link: link.clone(),
            inbox: link.inbox(channel),
        };
        let outer = link.clone();
        let link = link.clone();
        link.executing.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new()
            .name(format!("execnet-exec-{channel}"))
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| function(&ch, kwargs)));
                link.executing.fetch_sub(1, Ordering::SeqCst);
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(text)) => Some(text),
                    Err(_) => Some("RuntimeError: the Rust function panicked".to_string()),
                };
                let _ = link.close(ch.id, error.as_deref());
                lock(&link.queues).remove(&ch.id);
            });
        if let Err(e) = spawned {
            outer.executing.fetch_sub(1, Ordering::SeqCst);
            let _ = outer.close(
                channel,
                Some(&format!("RuntimeError: cannot start a thread: {e}")),
            );
        }
    }
}
