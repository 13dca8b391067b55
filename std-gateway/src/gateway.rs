//! Gateways: one connection to one worker, carrying any number of channels.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use execnet_core::engine::{NoKwargs, Role, SendError};
use execnet_core::serde::Serde;
use execnet_core::sink::Sink;
use execnet_core::{EncodeError, Envelope, Limits, StrConfig};
use serde::{Deserialize, Serialize};

use crate::budget::Overflow;
use crate::channel::Channel;
use crate::error::{Death, DeathKind, Error, Result};
use crate::process::{OutputMode, Process};
use crate::session::{Eng, Session, SessionConfig, Slot};
use crate::spec::Spec;

/// Options for starting a gateway: the defaults, changed with one method per field.
///
/// ```
/// use std::time::Duration;
/// use execnet::{Options, Overflow, OutputMode};
/// let defaults = Options::default();
/// assert_eq!(defaults.startup_timeout, Duration::from_secs(60));
/// assert_eq!(defaults.exit_timeout, Duration::from_secs(5));
/// assert_eq!(defaults.connect_timeout, Duration::from_secs(10));
/// assert_eq!(defaults.max_queued_bytes, 256 << 20);
/// assert_eq!(defaults.on_overflow, Overflow::Wait);
/// assert_eq!(defaults.output, OutputMode::Capture);
///
/// let quick = Options::new()
///     .startup_timeout(Duration::from_secs(5))
///     .output(OutputMode::Forward);
/// let group = execnet::Group::with_options(quick);
/// # drop(group);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// How long the worker may take to start, answer the handshake, and apply the spec's
    /// `chdir=` and `env:`.
    pub startup_timeout: Duration,
    /// What to do with the worker's stderr and with what its code prints.
    pub output: OutputMode,
    /// Bounds on what the worker may send.
    pub limits: Limits,
    /// How long [`Gateway::exit`] waits for the worker before signalling it.
    pub exit_timeout: Duration,
    /// How long to wait for a TCP or ssh connection.
    pub connect_timeout: Duration,
    /// Most bytes of received values that may wait unread, over all channels; what
    /// happens there is [`on_overflow`](Self::on_overflow)'s choice.
    pub max_queued_bytes: usize,
    /// At the unread-data bound: stop reading from the worker until values are received
    /// (the default), or end the gateway with [`DeathKind::Overflow`].
    pub on_overflow: Overflow,
}

impl Options {
    /// The defaults (see [`Options`]).
    pub fn new() -> Options {
        Options::default()
    }

    /// How long the worker may take to start and answer the handshake (60 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Options {
        self.startup_timeout = timeout;
        self
    }

    /// Where the worker's stderr and what its code prints go ([`OutputMode::Capture`]).
    pub fn output(mut self, mode: OutputMode) -> Options {
        self.output = mode;
        self
    }

    /// Bounds on what the worker may send ([`Limits::DEFAULT`]).
    pub fn limits(mut self, limits: Limits) -> Options {
        self.limits = limits;
        self
    }

    /// How long [`Gateway::exit`] waits at each step (5 s).
    pub fn exit_timeout(mut self, timeout: Duration) -> Options {
        self.exit_timeout = timeout;
        self
    }

    /// How long to wait for a TCP or ssh connection (10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    /// Most bytes of received values that may wait unread (256 MiB).
    pub fn max_queued_bytes(mut self, bytes: usize) -> Options {
        self.max_queued_bytes = bytes;
        self
    }

    /// What happens at the unread-data bound ([`Overflow::Wait`]).
    pub fn on_overflow(mut self, overflow: Overflow) -> Options {
        self.on_overflow = overflow;
        self
    }
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
            on_overflow: Overflow::Wait,
        }
    }
}

/// Reads the handshake byte (after the compiled agent's report, when one was asked
/// for), then frames until the stream ends; reports the handshake first.
fn reader_thread(
    session: Arc<Session>,
    mut input: Box<dyn Read + Send>,
    handshake: mpsc::Sender<std::result::Result<(), String>>,
    mut report_key: Option<Vec<String>>,
) {
    let mut first = [0u8; 1];
    let mut read = input.read_exact(&mut first);
    let mut report = None;
    if read.is_ok() && first == *b"C" && report_key.is_some() {
        match crate::compiled::read_report(&mut input) {
            Ok(r) => report = r,
            Err(why) => {
                let _ = handshake.send(Err(why));
                return;
            }
        }
        read = input.read_exact(&mut first);
    }
    match read {
        Ok(()) if first == *b"1" => {
            // Trusted only now, and only from a local interpreter (see `compiled`).
            if let (Some(report), Some(key)) = (report, report_key.take()) {
                report.accept(key, session.process.as_ref().map(Process::pid));
            }
            let _ = handshake.send(Ok(()));
        }
        Ok(()) => {
            let mut more = vec![0u8; 200];
            // Bounded: at most one read of what is already there.
            let n = input.read(&mut more).unwrap_or(0);
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
    let ending = session.run_reader(&mut input, None);
    let death = session.death_report(ending.kind, ending.cause);
    session.die(death);
}

/// The worker's platform details, from [`Gateway::rinfo`].
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
///
/// ```
/// let group = execnet::Group::new();
/// let gw = group.makegateway("popen//python=python3")?;
/// let ch = gw.remote_exec("channel.send(channel.receive() * 2)")?;
/// ch.send(&21)?;
/// assert_eq!(ch.receive::<i64>()?, 42);
/// gw.exit();
/// assert!(!gw.is_alive());
/// # Ok::<(), execnet::Error>(())
/// ```
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<GatewayHandle>,
}

struct GatewayHandle {
    session: Arc<Session>,
    spec: Spec,
    rinfo: std::sync::Mutex<Option<RInfo>>,
    /// The group it is in, left on exit.
    group: std::sync::Mutex<std::sync::Weak<crate::group::Members>>,
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.session.shutdown(Duration::from_millis(200));
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Gateway id={} spec={}>", self.id(), self.inner.spec)
    }
}

/// A freshly opened byte stream to a worker, before the handshake.
pub(crate) struct Link {
    pub(crate) input: Box<dyn Read + Send>,
    pub(crate) output: Box<dyn Write + Send>,
    pub(crate) process: Option<Process>,
    pub(crate) closer: Option<Box<dyn Fn() + Send + Sync>>,
    /// How the worker's start takes part in the compiled agents' cache
    /// ([`crate::compiled`]).
    pub(crate) compiled: crate::compiled::Use,
}

/// Checks that a value encodes as a dict, without writing it anywhere.
struct FirstOpcode(Option<u8>);

impl Sink for FirstOpcode {
    type Output = Option<u8>;
    fn try_push(&mut self, byte: u8) -> std::result::Result<(), EncodeError> {
        self.0.get_or_insert(byte);
        Ok(())
    }
    fn try_extend(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError> {
        if let Some(b) = bytes.first() {
            self.0.get_or_insert(*b);
        }
        Ok(())
    }
    fn finalize(self) -> std::result::Result<Option<u8>, EncodeError> {
        Ok(self.0)
    }
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
        let span = tracing::debug_span!("gateway", id = %id, role = "master");
        let link = span.in_scope(|| crate::transport::connect(&spec, options))?;
        Self::start_in(spec, id, options, link, span)
    }

    pub(crate) fn start(spec: Spec, id: &str, options: &Options, link: Link) -> Result<Gateway> {
        let span = tracing::debug_span!("gateway", id = %id, role = "master");
        Self::start_in(spec, id, options, link, span)
    }

    fn start_in(
        spec: Spec,
        id: &str,
        options: &Options,
        link: Link,
        span: tracing::Span,
    ) -> Result<Gateway> {
        let Link {
            input,
            output,
            process,
            closer,
            compiled,
        } = link;
        let session = Session::new(SessionConfig {
            name: id.into(),
            role: Role::Master,
            output,
            limits: options.limits,
            max_queued: options.max_queued_bytes,
            overflow: options.on_overflow,
            process,
            closer,
            span: Some(span),
        });
        let _span = session.span.enter();
        tracing::debug!(
            spec = %spec,
            pid = session.process.as_ref().map(Process::pid),
            "worker started, waiting for the handshake"
        );
        let gw = Gateway {
            inner: Arc::new(GatewayHandle {
                session: session.clone(),
                spec,
                rinfo: std::sync::Mutex::new(None),
                group: std::sync::Mutex::new(std::sync::Weak::new()),
            }),
        };
        let started = std::time::Instant::now();
        let (tx, rx) = mpsc::channel();
        let reader_session = session.clone();
        let report_key = match &compiled {
            crate::compiled::Use::Report(key) => Some(key.clone()),
            _ => None,
        };
        thread::Builder::new()
            .name(format!("execnet-reader-{id}"))
            .spawn(move || reader_thread(reader_session, input, tx, report_key))?;
        let handshake = rx.recv_timeout(options.startup_timeout);
        if let (crate::compiled::Use::Sent(key), false) =
            (&compiled, matches!(handshake, Ok(Ok(()))))
        {
            // The code it was sent may be what failed: the next worker compiles.
            crate::compiled::forget(key);
        }
        match handshake {
            Ok(Ok(())) => tracing::debug!("handshake complete"),
            Ok(Err(why)) => {
                tracing::warn!(cause = %why, "handshake failed");
                let death = session.death_report(DeathKind::Handshake, why);
                if let (
                    crate::spec::Transport::Ssh { destination, .. },
                    Some(crate::process::Exit::Code(255)),
                ) = (&gw.inner.spec.transport, &death.exit)
                {
                    return Err(Error::HostUnreachable {
                        host: destination.clone(),
                        message: death.stderr_tail.join("\n"),
                    });
                }
                return Err(Error::Bootstrap(death));
            }
            Err(_) => {
                tracing::warn!(timeout = ?options.startup_timeout, "no handshake in time");
                let death = Death {
                    kind: DeathKind::Handshake,
                    cause: format!(
                        "no handshake within {:.1} s",
                        options.startup_timeout.as_secs_f64()
                    ),
                    exit: None,
                    stderr_tail: session
                        .process
                        .as_ref()
                        .map(|p| p.output().tail())
                        .unwrap_or_default(),
                };
                return Err(Error::Bootstrap(death));
            }
        }
        gw.setup_remote(options.startup_timeout.saturating_sub(started.elapsed()))?;
        Ok(gw)
    }

    /// Applies the spec's `chdir` and `env` on the remote side (the agent applies `nice`
    /// itself at bootstrap, before any thread starts, so that it holds process-wide),
    /// within what is left of the startup timeout: a worker that answers the handshake
    /// and then nothing must not hold the start up for ever.
    fn setup_remote(&self, left: Duration) -> Result<()> {
        let spec = &self.inner.spec;
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
        match ch.wait_close(Some(left)) {
            Err(Error::Timeout(_)) => Err(Error::Bootstrap(Death {
                kind: DeathKind::Handshake,
                cause: format!(
                    "no answer to the setup of chdir= and env: within the startup timeout ({:.1} s left)",
                    left.as_secs_f64()
                ),
                exit: None,
                stderr_tail: self
                    .session()
                    .process
                    .as_ref()
                    .map(|p| p.output().tail())
                    .unwrap_or_default(),
            })),
            other => other,
        }
    }

    fn session(&self) -> &Arc<Session> {
        &self.inner.session
    }

    /// The gateway id (`gw0`, or the spec's `id=`).
    pub fn id(&self) -> &str {
        &self.session().name
    }

    /// The spec the gateway was started from.
    pub fn spec(&self) -> &Spec {
        &self.inner.spec
    }

    /// The worker's process id, for local workers.
    pub fn pid(&self) -> Option<u32> {
        self.session().process.as_ref().map(Process::pid)
    }

    /// How the local worker process ended, if it has.
    pub fn exit_status(&self) -> Option<crate::process::Exit> {
        self.session().process.as_ref().and_then(Process::try_exit)
    }

    /// Takes the output captured from the worker so far: its stderr, and whatever its
    /// code printed to stdout (our agent sends that to stderr so that it cannot corrupt
    /// the protocol stream).
    pub fn take_output(&self) -> Vec<u8> {
        self.session()
            .process
            .as_ref()
            .map(|p| p.output().take())
            .unwrap_or_default()
    }

    /// Why the gateway died, if it has.
    pub fn death(&self) -> Option<Death> {
        self.session().dead()
    }

    /// Opens a channel with `open` (which queues its first message), and transmits.
    fn open_channel(
        &self,
        open: impl FnOnce(&mut Eng, Slot) -> std::result::Result<i32, SendError>,
    ) -> Result<Channel> {
        let session = self.session();
        if let Some(d) = session.dead() {
            return Err(Error::GatewayDied(d));
        }
        // Registered before the request goes out, so that no reply can come first.
        let st = session.new_chan();
        let slot = Some(st.clone());
        let id = session.transmit(|e| open(e, slot))?;
        Ok(Channel::new(session.clone(), id, st))
    }

    /// Runs `source` in the worker, in a fresh namespace where `channel` is the other end
    /// of the returned channel and `__name__ == "__channelexec__"`. The channel closes
    /// when the code finishes; if it raises, the channel's `receive` and `wait_close`
    /// give [`Error::Remote`] with the traceback.
    ///
    /// ```
    /// let group = execnet::Group::new(); // dropping the group would end its gateways
    /// let gw = group.makegateway("popen//python=python3")?;
    /// let ch = gw.remote_exec(
    ///     "
    ///     for line in channel:
    ///         channel.send(line.upper())
    ///     ",
    /// )?;
    /// ch.send("hello")?;
    /// assert_eq!(ch.receive::<String>()?, "HELLO");
    /// ch.close()?;
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn remote_exec(&self, source: &str) -> Result<Channel> {
        self.open_channel(|e, slot| e.exec(source, None, None, &NoKwargs, slot))
    }

    /// As [`remote_exec`](Self::remote_exec), with `source` compiled under `file_name`,
    /// which tracebacks show.
    ///
    /// ```
    /// let group = execnet::Group::new();
    /// let gw = group.makegateway("popen//python=python3")?;
    /// let err = gw.remote_exec_named("1 / 0", "setup_step.py")?.receive::<i64>().unwrap_err();
    /// assert!(err.to_string().contains("setup_step.py"));
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn remote_exec_named(&self, source: &str, file_name: &str) -> Result<Channel> {
        self.open_channel(|e, slot| e.exec(source, Some(file_name), None, &NoKwargs, slot))
    }

    /// The function form: runs `source` (which defines `call_name`), then calls
    /// `call_name(channel, **kwargs)`. `kwargs` must serialize to a dict with str keys
    /// (a struct or a map).
    ///
    /// ```
    /// let group = execnet::Group::new(); // dropping the group would end its gateways
    /// let gw = group.makegateway("popen//python=python3")?;
    /// let source = "def scale(channel, values, factor):\n    channel.send([v * factor for v in values])\n";
    /// #[derive(serde::Serialize)]
    /// struct Args { values: Vec<i64>, factor: i64 }
    /// let ch = gw.remote_exec_call(source, "scale", &Args { values: vec![1, 2, 3], factor: 10 })?;
    /// assert_eq!(ch.receive::<Vec<i64>>()?, [10, 20, 30]);
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn remote_exec_call<K: Serialize + ?Sized>(
        &self,
        source: &str,
        call_name: &str,
        kwargs: &K,
    ) -> Result<Channel> {
        let kwargs = Serde(kwargs);
        let first = execnet_core::encode::encode(&kwargs, Envelope::Internal, FirstOpcode(None))?;
        if first != Some(execnet_core::opcode::NEWDICT) {
            return Err(Error::Encode(EncodeError::Unsupported(
                "keyword arguments that are not a map or struct",
            )));
        }
        self.open_channel(|e, slot| e.exec(source, None, Some(call_name), &kwargs, slot))
    }

    /// A new channel (odd id) to pass to remote code as a value
    /// ([`Channel::as_value`]).
    pub fn newchannel(&self) -> Result<Channel> {
        let session = self.session();
        let st = session.new_chan();
        let id = session
            .with_engine(|e| e.open_channel(Some(st.clone())))
            .map_err(|e| session.refused(e))?;
        Ok(Channel::new(session.clone(), id, st))
    }

    /// The channel with this id, for a [`Value::Channel`](crate::Value::Channel) the worker
    /// sent.
    pub fn channel(&self, id: i32) -> Result<Channel> {
        let session = self.session();
        let st = session.chan(id).ok_or(Error::UnknownChannel(id))?;
        Ok(Channel::new(session.clone(), id, st))
    }

    /// Sets the gateway's string config on both ends (see
    /// [`execnet_core::strconfig`]).
    pub fn reconfigure(&self, py2str_as_py3str: bool, py3str_as_py2str: bool) -> Result<()> {
        let config = StrConfig::new(py2str_as_py3str, py3str_as_py2str);
        self.session().transmit(|e| e.reconfigure(None, config))
    }

    /// The worker's executable, version, pid, working directory and platform, asked
    /// once and then remembered, as the reference's `_rinfo()` does; see
    /// [`refresh_rinfo`](Self::refresh_rinfo) for a fresh answer.
    ///
    /// ```
    /// let group = execnet::Group::new(); // dropping the group would end its gateways
    /// let gw = group.makegateway("popen//python=python3")?;
    /// let info = gw.rinfo()?;
    /// assert!(info.pid > 0 && info.version_info.0 >= 2);
    /// println!("{} {:?} in {}", info.executable, info.version_info, info.cwd);
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn rinfo(&self) -> Result<RInfo> {
        if let Some(info) = crate::session::lock(&self.inner.rinfo).clone() {
            return Ok(info);
        }
        self.refresh_rinfo()
    }

    /// Asks the worker again (its working directory may have changed) and remembers the
    /// answer.
    pub fn refresh_rinfo(&self) -> Result<RInfo> {
        let ch = self.remote_exec(RINFO_SOURCE)?;
        let info = ch.receive::<RInfo>()?;
        ch.wait_close(None)?;
        *crate::session::lock(&self.inner.rinfo) = Some(info.clone());
        Ok(info)
    }

    /// Asks the worker for its status (the STATUS message).
    ///
    /// ```
    /// let group = execnet::Group::new(); // dropping the group would end its gateways
    /// let gw = group.makegateway("popen//python=python3")?;
    /// let status = gw.remote_status()?;
    /// assert_eq!(status.numexecuting, 0);
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn remote_status(&self) -> Result<RemoteStatus> {
        let ch = self.open_channel(|e, slot| e.status(slot))?;
        ch.receive::<RemoteStatus>()
    }

    pub(crate) fn join_group(&self, group: std::sync::Weak<crate::group::Members>) {
        *crate::session::lock(&self.inner.group) = group;
    }

    /// Ends the gateway: sends GATEWAY_TERMINATE, waits for the worker to exit (up to the
    /// exit timeout), then sends `SIGTERM` and finally `SIGKILL` to its process group,
    /// and takes it out of its group. Every blocked channel call returns an error. It
    /// never waits behind a send that blocks on a full pipe.
    ///
    /// ```
    /// let group = execnet::Group::new();
    /// let gw = group.makegateway("popen//python=python3//id=worker")?;
    /// let ch = gw.remote_exec("channel.receive()")?; // waits for a value that never comes
    /// gw.exit();
    /// assert!(!gw.is_alive());
    /// assert!(ch.receive::<i64>().is_err());
    /// assert!(group.get("worker").is_none()); // no longer in its group
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn exit(&self) {
        self.exit_timeout(Duration::from_secs(5));
    }

    /// As [`exit`](Self::exit), waiting at most `grace` at each step.
    pub fn exit_timeout(&self, grace: Duration) {
        self.session().shutdown(grace);
        let group = crate::session::lock(&self.inner.group).upgrade();
        if let Some(group) = group {
            group.remove(self);
        }
    }

    /// Whether `other` is a handle of this very gateway (not merely one with its id).
    pub(crate) fn same(&self, other: &Gateway) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether the gateway is still connected.
    pub fn is_alive(&self) -> bool {
        self.session().dead().is_none()
    }

    /// Waits until the connection ends, at most `timeout`.
    pub fn wait_dead(&self, timeout: Duration) -> Option<Death> {
        self.session().wait_dead(timeout)
    }
}
