//! Gateways: one connection to one worker, carrying any number of channels.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use execnet_core::encode::{Encode, Encoder};
use execnet_core::engine::{ChannelState, Engine, EngineError, Event, Role};
use execnet_core::frame::{push_value_frame, Frame, Header, MsgCode, HEADER_LEN};
use execnet_core::{Limits, StrConfig, Value, ValueRef};
use serde::{Deserialize, Serialize};

use crate::channel::{ChanState, Channel, End};
use crate::error::{Death, DeathKind, Error, Result};
use crate::process::{OutputMode, Process};
use crate::spec::Spec;

type Table = BTreeMap<i32, ChannelState>;

/// Options for starting a gateway.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long the worker may take to start and answer the handshake.
    pub startup_timeout: Duration,
    /// What to do with the worker's stderr and with what its code prints.
    pub output: OutputMode,
    /// Bounds on what the worker may send.
    pub limits: Limits,
    /// How long [`Gateway::exit`] waits for the worker before signalling it.
    pub exit_timeout: Duration,
    /// How long to wait for a TCP or ssh connection.
    pub connect_timeout: Duration,
    /// Most bytes of received values that may wait unread, over all channels; a worker
    /// that sends more is cut off with [`DeathKind::Overflow`].
    pub max_queued_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            startup_timeout: Duration::from_secs(60),
            output: OutputMode::Capture,
            limits: Limits::DEFAULT,
            exit_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            max_queued_bytes: 256 << 20,
        }
    }
}

/// State shared by a gateway's handles, its channels and its reader thread.
pub(crate) struct Shared {
    pub(crate) id: String,
    spec: Spec,
    engine: Mutex<Engine<Table>>,
    writer: Mutex<Option<Box<dyn Write + Send>>>,
    channels: Mutex<HashMap<i32, Arc<ChanState>>>,
    death: Mutex<Option<Death>>,
    pub(crate) process: Option<Process>,
    pub(crate) limits: Limits,
    closer: Option<Box<dyn Fn() + Send + Sync>>,
    /// Bytes of received values waiting unread.
    pub(crate) queued: std::sync::atomic::AtomicUsize,
    max_queued: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn dead(&self) -> Option<Death> {
        lock(&self.death).clone()
    }

    fn write_frame(&self, build: impl FnOnce(&mut Engine<Table>) -> Result<Vec<u8>>) -> Result<()> {
        let mut writer = lock(&self.writer);
        let bytes = build(&mut lock(&self.engine))?;
        let Some(w) = writer.as_mut() else {
            return Err(self.dead().map_or(Error::Closed, Error::GatewayDied));
        };
        let result = w.write_all(&bytes).and_then(|_| w.flush());
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                drop(writer);
                Err(self.lost(e))
            }
        }
    }

    /// The error for a failed write: the death, once the reader has seen it.
    fn lost(&self, e: io::Error) -> Error {
        if let Some(p) = &self.process {
            p.wait_timeout(Duration::from_millis(500));
        }
        match self.dead() {
            Some(d) => Error::GatewayDied(d),
            None => Error::GatewayDied(
                self.death_report(DeathKind::Io, format!("writing to the worker failed: {e}")),
            ),
        }
    }

    pub(crate) fn send_data<E: Encode + ?Sized>(&self, id: i32, value: &E) -> Result<()> {
        let mut bytes = Vec::new();
        push_value_frame(&mut bytes, MsgCode::ChannelData, id, value)?;
        self.write_frame(|engine| {
            let payload_len = bytes.len() - HEADER_LEN;
            engine.data(id, payload_len).map_err(proto_local)?;
            Ok(bytes)
        })
    }

    pub(crate) fn send_close(&self, id: i32, error: Option<&str>) -> Result<()> {
        self.write_frame(|engine| {
            let mut out = Vec::new();
            match error {
                None => {
                    out.extend_from_slice(&engine.close(id, None).map_err(proto_local)?.to_bytes())
                }
                Some(text) => {
                    let payload = execnet_core::encode::to_vec(
                        &ValueRef::Str(execnet_core::value::PyStr::Py3(text)),
                        execnet_core::Envelope::Internal,
                    )?;
                    let h = engine.close(id, Some(payload.len())).map_err(proto_local)?;
                    out.extend_from_slice(&h.to_bytes());
                    out.extend_from_slice(&payload);
                }
            }
            Ok(out)
        })
    }

    pub(crate) fn send_last_message(&self, id: i32) -> Result<()> {
        self.write_frame(|engine| {
            Ok(engine
                .last_message(id)
                .map_err(proto_local)?
                .to_bytes()
                .to_vec())
        })
    }

    pub(crate) fn reconfigure(&self, channel: Option<i32>, config: StrConfig) -> Result<()> {
        self.write_frame(|engine| {
            let (h, payload) = engine.reconfigure(channel, config).map_err(proto_local)?;
            let mut out = h.to_bytes().to_vec();
            out.extend_from_slice(&payload);
            Ok(out)
        })
    }

    pub(crate) fn forget_channel(&self, id: i32) {
        lock(&self.channels).remove(&id);
    }

    fn channel_state(&self, id: i32) -> Arc<ChanState> {
        lock(&self.channels)
            .entry(id)
            .or_insert_with(ChanState::new)
            .clone()
    }

    fn death_report(&self, kind: DeathKind, cause: String) -> Death {
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

    /// Marks the gateway dead and fails every waiting channel with the cause.
    fn die(&self, death: Death) {
        {
            let mut d = lock(&self.death);
            if d.is_some() {
                return;
            }
            *d = Some(death.clone());
        }
        lock(&self.writer).take();
        let chans: Vec<Arc<ChanState>> = lock(&self.channels).values().cloned().collect();
        for c in chans {
            c.finish(End::Died(death.clone()));
        }
    }

    fn handle_event(&self, event: Event<'_>) -> std::result::Result<bool, (DeathKind, String)> {
        match event {
            Event::Data {
                channel,
                payload,
                config,
            } => {
                let queued = self
                    .queued
                    .fetch_add(payload.len(), std::sync::atomic::Ordering::SeqCst);
                if queued + payload.len() > self.max_queued {
                    return Err((
                        DeathKind::Overflow,
                        format!(
                            "the worker sent more than {} bytes that were not received",
                            self.max_queued
                        ),
                    ));
                }
                let len = payload.len();
                if !self
                    .channel_state(channel)
                    .deliver(payload.to_vec(), config, &self.limits)
                {
                    self.queued
                        .fetch_sub(len, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Event::Closed { channel, error } => {
                let st = lock(&self.channels).get(&channel).cloned();
                if let Some(st) = st {
                    st.finish(match error {
                        None => End::Closed,
                        Some(payload) => End::Error(error_text(payload)),
                    });
                }
            }
            Event::LastMessage { channel } => {
                if let Some(st) = lock(&self.channels).get(&channel).cloned() {
                    st.finish(End::Closed);
                }
            }
            Event::Terminate => return Ok(false),
            Event::Reconfigure { .. } | Event::Dropped { .. } => {}
            Event::StatusRequest { .. } => {
                return Err(proto_peer(EngineError::WrongDirection(MsgCode::Status)))
            }
            Event::Exec { .. } => {
                return Err(proto_peer(EngineError::WrongDirection(
                    MsgCode::ChannelExec,
                )))
            }
        }
        Ok(true)
    }
}

fn proto_peer(e: EngineError) -> (DeathKind, String) {
    (
        DeathKind::Protocol,
        format!("protocol error from the worker: {e}"),
    )
}

fn proto_local(e: EngineError) -> Error {
    match e {
        EngineError::NotSendable(_) => Error::Closed,
        other => Error::Protocol(other),
    }
}

/// Text of a CHANNEL_CLOSE_ERROR payload (a str of any kind).
fn error_text(payload: &[u8]) -> String {
    let mut nodes = Vec::new();
    match execnet_core::decode::decode_internal(payload, &mut nodes, &Limits::DEFAULT) {
        Ok(ValueRef::Str(s)) => s.chars().collect(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("<undecodable error payload: {e}>"),
    }
}

/// Reads frames until the stream ends; reports the handshake first.
fn reader_loop(
    shared: Arc<Shared>,
    mut input: BufReader<Box<dyn Read + Send>>,
    handshake: mpsc::Sender<std::result::Result<(), String>>,
) {
    let mut first = [0u8; 1];
    match input.read_exact(&mut first) {
        Ok(()) if first == *b"1" => {
            let _ = handshake.send(Ok(()));
        }
        Ok(()) => {
            let mut more = vec![0u8; 200];
            let n = read_some(&mut input, &mut more);
            let mut seen = first.to_vec();
            seen.extend_from_slice(more.get(..n).unwrap_or(&[]));
            let _ = handshake.send(Err(format!(
                "expected the handshake byte '1', got {:?}",
                String::from_utf8_lossy(&seen)
            )));
            return;
        }
        Err(e) => {
            let _ = handshake.send(Err(format!(
                "worker closed its output before the handshake ({e})"
            )));
            return;
        }
    }
    let max = shared.limits.max_message;
    let mut head = [0u8; HEADER_LEN];
    let (kind, cause) = loop {
        match read_header(&mut input, &mut head) {
            Ok(true) => {}
            Ok(false) => {
                break (
                    DeathKind::Closed,
                    "the worker closed the connection".to_string(),
                )
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                break (
                    DeathKind::Truncated,
                    "the worker's output ended inside a message header".to_string(),
                )
            }
            Err(e) => {
                break (
                    DeathKind::Io,
                    format!("reading from the worker failed: {e}"),
                )
            }
        }
        let header = match Header::parse(&head, max) {
            Ok(h) => h,
            Err(e) => break proto_peer(e.into()),
        };
        let mut payload = vec![0u8; header.len as usize];
        if let Err(e) = input.read_exact(&mut payload) {
            break (
                DeathKind::Truncated,
                format!("the worker's output ended inside a message ({e})"),
            );
        }
        let frame = Frame {
            code: header.code,
            channel: header.channel,
            payload: &payload,
        };
        let event = lock(&shared.engine).handle_frame(frame);
        match event
            .map_err(proto_peer)
            .and_then(|ev| shared.handle_event(ev))
        {
            Ok(true) => {}
            Ok(false) => {
                break (
                    DeathKind::Terminated,
                    "the worker terminated the gateway".to_string(),
                )
            }
            Err(end) => break end,
        }
    };
    let death = shared.death_report(kind, cause);
    shared.die(death);
}

/// Reads a header: `Ok(false)` at a clean end of input (no byte of a new message).
fn read_header(input: &mut impl Read, head: &mut [u8; HEADER_LEN]) -> io::Result<bool> {
    let mut got = 0;
    while got < HEADER_LEN {
        match input.read(head.get_mut(got..).unwrap_or(&mut [])) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> usize {
    // Bounded: at most one read of what is already there.
    r.read(buf).unwrap_or(0)
}

/// The worker's platform details, from [`Gateway::rinfo`].
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct RInfo {
    /// `sys.executable`.
    pub executable: String,
    /// `sys.version_info` as `(major, minor, micro, releaselevel, serial)`.
    pub version_info: (i64, i64, i64, String, i64),
    /// The worker's process id.
    pub pid: i64,
    /// Its working directory.
    pub cwd: String,
    /// `sys.platform`.
    pub platform: String,
}

/// The worker's answer to STATUS, from [`Gateway::remote_status`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct RemoteStatus {
    /// Channels open in the worker.
    pub numchannels: i64,
    /// Executions running.
    pub numexecuting: i64,
    /// The execution model (`"thread"`).
    pub execmodel: String,
}

const RINFO_SOURCE: &str = "\
import sys, os
channel.send(dict(executable=sys.executable, version_info=tuple(sys.version_info),
    pid=os.getpid(), cwd=os.getcwd(), platform=sys.platform))
";

/// A connection to one worker. Cloning gives another handle; dropping the last one ends
/// the worker (see [`exit`](Self::exit)).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<GatewayHandle>,
}

struct GatewayHandle {
    shared: Arc<Shared>,
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        shutdown(&self.shared, Duration::from_millis(200));
    }
}

/// Sends GATEWAY_TERMINATE, waits up to `grace` for the worker, then signals its group.
fn shutdown(shared: &Shared, grace: Duration) {
    let _ = shared.write_frame(|engine| {
        if engine.is_terminated() {
            return Err(Error::Closed);
        }
        Ok(engine.terminate().to_bytes().to_vec())
    });
    lock(&shared.writer).take();
    if let Some(p) = &shared.process {
        p.terminate(grace);
    }
    if let Some(close) = &shared.closer {
        close();
    }
    shared.die(Death {
        kind: DeathKind::Terminated,
        cause: "the gateway was closed".into(),
        exit: shared.process.as_ref().and_then(|p| p.try_exit()),
        stderr_tail: Vec::new(),
    });
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Gateway id={} spec={}>",
            self.id(),
            self.inner.shared.spec
        )
    }
}

/// A freshly opened byte stream to a worker, before the handshake.
pub(crate) struct Link {
    pub(crate) input: Box<dyn Read + Send>,
    pub(crate) output: Box<dyn Write + Send>,
    pub(crate) process: Option<Process>,
    pub(crate) closer: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Gateway {
    /// Starts a gateway from a spec string (see [`Spec`]), with default options.
    ///
    /// Usually called through [`Group::makegateway`](crate::Group::makegateway), which
    /// also assigns ids.
    pub fn open(spec: &str) -> Result<Gateway> {
        Self::open_with(Spec::parse(spec)?, "gw0", &Options::default())
    }

    /// Starts a gateway from a parsed spec, with id `id` and the given options.
    pub fn open_with(spec: Spec, id: &str, options: &Options) -> Result<Gateway> {
        let link = crate::transport::connect(&spec, options)?;
        Self::start(spec, id, options, link)
    }

    pub(crate) fn start(spec: Spec, id: &str, options: &Options, link: Link) -> Result<Gateway> {
        let Link {
            input,
            output,
            process,
            closer,
        } = link;
        let shared = Arc::new(Shared {
            id: id.into(),
            spec,
            engine: Mutex::new(Engine::new(Role::Master, Table::new())),
            writer: Mutex::new(Some(output)),
            channels: Mutex::new(HashMap::new()),
            death: Mutex::new(None),
            process,
            limits: options.limits,
            closer,
            queued: std::sync::atomic::AtomicUsize::new(0),
            max_queued: options.max_queued_bytes,
        });
        let gw = Gateway {
            inner: Arc::new(GatewayHandle {
                shared: shared.clone(),
            }),
        };
        let (tx, rx) = mpsc::channel();
        let reader_shared = shared.clone();
        thread::Builder::new()
            .name(format!("execnet-reader-{id}"))
            .spawn(move || {
                reader_loop(reader_shared, BufReader::with_capacity(1 << 16, input), tx)
            })?;
        match rx.recv_timeout(options.startup_timeout) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let death = shared.death_report(DeathKind::Handshake, why);
                if let (
                    crate::spec::Transport::Ssh { destination, .. },
                    Some(crate::process::Exit::Code(255)),
                ) = (&shared.spec.transport, &death.exit)
                {
                    return Err(Error::HostUnreachable {
                        host: destination.clone(),
                        message: death.stderr_tail.join("\n"),
                    });
                }
                return Err(Error::Bootstrap(death));
            }
            Err(_) => {
                let death = Death {
                    kind: DeathKind::Handshake,
                    cause: format!(
                        "no handshake within {:.1} s",
                        options.startup_timeout.as_secs_f64()
                    ),
                    exit: None,
                    stderr_tail: shared
                        .process
                        .as_ref()
                        .map(|p| p.output().tail())
                        .unwrap_or_default(),
                };
                return Err(Error::Bootstrap(death));
            }
        }
        gw.setup_remote()?;
        Ok(gw)
    }

    /// Applies the spec's `chdir` and `env` on the remote side (the agent applies `nice`
    /// itself at bootstrap, before any thread starts, so that it holds process-wide).
    fn setup_remote(&self) -> Result<()> {
        let spec = &self.inner.shared.spec;
        if spec.chdir.is_none() && spec.env.is_empty() {
            return Ok(());
        }
        let ch = self.remote_exec(
            "import os\n\
             path, env = channel.receive()\n\
             if path:\n    if not os.path.exists(path):\n        os.mkdir(path)\n    os.chdir(path)\n\
             for name, value in env.items():\n    os.environ[name] = value\n",
        )?;
        ch.send(&(spec.chdir.as_deref(), &spec.env))?;
        ch.wait_close(None)
    }

    /// The gateway id (`gw0`, or the spec's `id=`).
    pub fn id(&self) -> &str {
        &self.inner.shared.id
    }

    /// The spec the gateway was started from.
    pub fn spec(&self) -> &Spec {
        &self.inner.shared.spec
    }

    /// The worker's process id, for local workers.
    pub fn pid(&self) -> Option<u32> {
        self.inner.shared.process.as_ref().map(Process::pid)
    }

    /// How the local worker process ended, if it has.
    pub fn exit_status(&self) -> Option<crate::process::Exit> {
        self.inner
            .shared
            .process
            .as_ref()
            .and_then(Process::try_exit)
    }

    /// Takes the output captured from the worker so far: its stderr, and whatever its
    /// code printed to stdout (our agent sends that to stderr so that it cannot corrupt
    /// the protocol stream).
    pub fn take_output(&self) -> Vec<u8> {
        self.inner
            .shared
            .process
            .as_ref()
            .map(|p| p.output().take())
            .unwrap_or_default()
    }

    /// Why the gateway died, if it has.
    pub fn death(&self) -> Option<Death> {
        self.inner.shared.dead()
    }

    fn exec_frame(&self, source: &str, call_name: Option<&str>, kwargs: &Value) -> Result<Channel> {
        let shared = &self.inner.shared;
        let payload = Value::Tuple(vec![
            Value::Str(source.into()),
            Value::None,
            call_name.map_or(Value::None, |n| Value::Str(n.into())),
            kwargs.clone(),
        ]);
        let mut body = Vec::new();
        let mut e = Encoder::new(&mut body);
        payload.encode(&mut e)?;
        e.stop()?;
        let mut opened = None;
        shared.write_frame(|engine| {
            let (id, header) = engine.exec(body.len()).map_err(proto_local)?;
            // Registered before the request goes out, so that no reply can come first.
            opened = Some((id, shared.channel_state(id)));
            let mut out = header.to_bytes().to_vec();
            out.extend_from_slice(&body);
            Ok(out)
        })?;
        let (id, st) = opened.ok_or(Error::Closed)?;
        Ok(Channel::new(shared.clone(), id, st))
    }

    /// Runs `source` in the worker, in a fresh namespace where `channel` is the other end
    /// of the returned channel and `__name__ == "__channelexec__"`. The channel closes
    /// when the code finishes; if it raises, the channel's `receive` and `wait_close`
    /// give [`Error::Remote`] with the traceback.
    pub fn remote_exec(&self, source: &str) -> Result<Channel> {
        if let Some(d) = self.inner.shared.dead() {
            return Err(Error::GatewayDied(d));
        }
        self.exec_frame(source, None, &Value::Dict(Vec::new()))
    }

    /// The function form: runs `source` (which defines `call_name`), then calls
    /// `call_name(channel, **kwargs)`. `kwargs` must serialize to a dict with str keys
    /// (a struct or a map).
    pub fn remote_exec_call<K: Serialize + ?Sized>(
        &self,
        source: &str,
        call_name: &str,
        kwargs: &K,
    ) -> Result<Channel> {
        if let Some(d) = self.inner.shared.dead() {
            return Err(Error::GatewayDied(d));
        }
        let bytes = execnet_core::serde::to_vec(kwargs, execnet_core::Envelope::Internal)?;
        let kwargs = Value::decode_internal(&bytes, &Limits::DEFAULT)?;
        if !matches!(kwargs, Value::Dict(_)) {
            return Err(Error::Other(format!(
                "kwargs must be a map or struct, not a {}",
                kwargs.type_name()
            )));
        }
        self.exec_frame(source, Some(call_name), &kwargs)
    }

    /// A new channel (odd id) to pass to remote code as a value
    /// ([`Channel::as_value`]).
    pub fn newchannel(&self) -> Result<Channel> {
        let shared = &self.inner.shared;
        let id = lock(&shared.engine).open_channel().map_err(proto_local)?;
        let st = shared.channel_state(id);
        Ok(Channel::new(shared.clone(), id, st))
    }

    /// The channel with this id, for a [`Value::Channel`] the worker sent.
    pub fn channel(&self, id: i32) -> Result<Channel> {
        let shared = &self.inner.shared;
        lock(&shared.engine)
            .adopt_channel(id)
            .map_err(Error::Protocol)?;
        let st = shared.channel_state(id);
        Ok(Channel::new(shared.clone(), id, st))
    }

    /// Sets the gateway's string config on both ends (see
    /// [`execnet_core::strconfig`]).
    pub fn reconfigure(&self, py2str_as_py3str: bool, py3str_as_py2str: bool) -> Result<()> {
        self.inner
            .shared
            .reconfigure(None, StrConfig::new(py2str_as_py3str, py3str_as_py2str))
    }

    /// The worker's executable, version, pid, working directory and platform.
    pub fn rinfo(&self) -> Result<RInfo> {
        let ch = self.remote_exec(RINFO_SOURCE)?;
        let info = ch.receive::<RInfo>()?;
        ch.wait_close(None)?;
        Ok(info)
    }

    /// Asks the worker for its status (the STATUS message).
    pub fn remote_status(&self) -> Result<RemoteStatus> {
        let shared = &self.inner.shared;
        let mut opened = None;
        shared.write_frame(|engine| {
            let (id, header) = engine.status_request().map_err(proto_local)?;
            opened = Some((id, shared.channel_state(id)));
            Ok(header.to_bytes().to_vec())
        })?;
        let (id, st) = opened.ok_or(Error::Closed)?;
        let ch = Channel::new(shared.clone(), id, st);
        ch.receive::<RemoteStatus>()
    }

    /// Ends the gateway: sends GATEWAY_TERMINATE, waits for the worker to exit (up to the
    /// exit timeout), then sends `SIGTERM` and finally `SIGKILL` to its process group.
    /// Every blocked channel call returns an error.
    pub fn exit(&self) {
        shutdown(&self.inner.shared, Duration::from_secs(5));
    }

    /// As [`exit`](Self::exit), waiting at most `grace` at each step.
    pub fn exit_timeout(&self, grace: Duration) {
        shutdown(&self.inner.shared, grace);
    }

    /// Whether the gateway is still connected.
    pub fn is_alive(&self) -> bool {
        self.inner.shared.dead().is_none()
    }

    /// Waits until the connection ends, at most `timeout`.
    pub fn wait_dead(&self, timeout: Duration) -> Option<Death> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.inner.shared.dead() {
                return Some(d);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}
