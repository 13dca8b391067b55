//! `execnet serve`: a socket server that starts one worker per connection, after an
//! authentication it requires by default.
//!
//! # Connections
//!
//! Every connection first runs the handshake of the secure session (below; or, with the insecure
//! mode, merely sends its first byte) within [`ServeOptions::handshake_timeout`]; until
//! then it is *unauthenticated* and nothing is started for it. At most
//! [`ServeOptions::max_unauthenticated`] connections may be in that state, and at most
//! [`ServeOptions::max_concurrent`] open in all; a connection beyond either cap is closed
//! as soon as it is accepted. Only authenticated connections count towards
//! [`ServeOptions::max_connections`], so probes cannot use it up. Connection threads are
//! detached and counted, never collected in a list, so a server that has seen millions of
//! connections holds no more than it holds for the open ones.
//!
//! Refusals, cap hits and accept failures are logged at most a few times a second per
//! kind (with a count of what was left out), so a flood cannot fill a disk; when accept
//! itself fails (out of file descriptors) the loop backs off instead of spinning.
//!
//! # Workers
//!
//! Workers are our Python agent in an interpreter of the caller's choice, or the Rust
//! [`Worker`]. A Python worker finds the connection as a socket named `clientsock`, as
//! the reference's `socketserver.py` provides it, so that a Python master's own bootstrap
//! runs too. In the secure mode that socket is one end of a local socket pair: the server
//! ends the encrypted session itself and relays plaintext, so the worker never holds the
//! keys. With `--insecure-no-auth` the worker gets the TCP connection itself, exactly as
//! under the reference's server.
//!
//! The worker's stdout and stderr both go to the server's stderr (its log): remote
//! `print()` never reaches the server's stdout, where scripts read the `listening on`
//! line. Each Python worker leads its own process group; when it exits, whatever else is
//! left in that group (processes its code started) is killed, and when its client goes
//! away and the worker has not exited [`WORKER_GRACE`] later, the whole group is killed.
//!
//! # The secure session
//!
//! ## Why this design
//!
//! The server runs arbitrary code for whoever connects, so it must know that the peer
//! holds the shared secret *and* that every byte it executes comes from that peer. A
//! challenge-response on its own gives the first and not the second: a party on the path
//! can forward a challenge to a genuine client, pass its answer back, and then speak in
//! the client's place. Binding the secret into the keys of the session closes that gap:
//! whoever does not hold the secret cannot read the session, cannot write into it, and
//! cannot finish the handshake in anyone's name.
//!
//! `NNpsk0` is the Noise pattern for exactly this: no long-term key pairs (so nothing to
//! generate, distribute or pin), only the shared secret:
//!
//! ```text
//! -> psk, e        client: the secret is mixed in first, then a fresh ephemeral key;
//!                  its (empty) payload is encrypted, so the server can check the secret
//! <- e, ee         server: its own fresh ephemeral key and the Diffie-Hellman of both;
//!                  its (empty) payload is encrypted, so the client can check the secret
//! ```
//!
//! Both sides then hold keys derived from the secret and from a Diffie-Hellman that only
//! the two of them know: mutual authentication by the secret, and forward secrecy (a
//! secret stolen later does not decrypt recorded sessions). The first message can be
//! replayed by an eavesdropper, but the replayer cannot derive the session keys, so the
//! server treats a connection as authenticated only once the first *transport* frame
//! decrypts, and starts nothing before that.
//!
//! ## Wire format
//!
//! 1. The server sends one line, `EXECNET-AUTH 2 Noise_NNpsk0_25519_ChaChaPoly_SHA256` (it names the protocol so that a client
//!    without a secret, or a Python master, fails with a message that says why).
//! 2. Every Noise message (handshake or transport) is a 2-byte big-endian length followed
//!    by that many bytes; Noise messages are at most 65535 bytes, so a transport frame
//!    carries at most 65519 bytes of plaintext and longer writes are cut into frames.
//! 3. The prologue (bound into the handshake hash) is a fixed context string followed by the
//!    greeting, so a greeting altered on the path makes the handshake fail.
//!
//! The pre-shared key is SHA-256 over a context string and the secret. Noise does nothing
//! to slow down guessing: a recorded first message lets an eavesdropper test guesses of
//! the secret offline, which is why the secret must be random, not a password (at least
//! 16 bytes; `head -c 32 /dev/urandom | base64` makes a good one).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::auth::Secret;
use crate::auth::{self, Refusal};
use crate::error::{Error, Result};
use crate::worker::Worker;

/// What runs behind each connection.
#[derive(Clone)]
pub enum Backend {
    /// Our agent (or whatever the master sends) in this Python interpreter.
    Python(String),
    /// Registered Rust functions.
    Rust(Worker),
}

/// Default of [`ServeOptions::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServeOptions::max_unauthenticated`].
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 64;
/// Default of [`ServeOptions::max_concurrent`].
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// How long a Python worker may outlive its client before its process group is killed.
pub const WORKER_GRACE: Duration = Duration::from_secs(2);

/// Server settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:PORT`; port 0 picks a free one).
    pub bind: String,
    /// The shared secret; `None` only with the explicit insecure mode.
    pub secret: Option<Secret>,
    /// The worker kind.
    pub backend: Backend,
    /// Stop after this many authenticated connections (for tests and one-shot use);
    /// connections that never authenticate do not count.
    pub max_connections: Option<usize>,
    /// Time a connection has to authenticate (to send its first byte, in the insecure
    /// mode), counted from its acceptance.
    pub handshake_timeout: Duration,
    /// Most connections that may be authenticating at once.
    pub max_unauthenticated: usize,
    /// Most connections that may be open at once, authenticated or not.
    pub max_concurrent: usize,
}

impl ServeOptions {
    /// Settings with the default deadline and caps, and no connection limit.
    pub fn new(bind: impl Into<String>, secret: Option<Secret>, backend: Backend) -> Self {
        ServeOptions {
            bind: bind.into(),
            secret,
            backend,
            max_connections: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_unauthenticated: DEFAULT_MAX_UNAUTHENTICATED,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kinds of rate-limited log lines, with how many of each may be logged per second
/// before the rest are only counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A connection refused before authentication.
    Refused,
    /// A connection closed at once for a cap.
    Cap,
    /// accept() failed.
    Accept,
}

impl Kind {
    fn per_second(self) -> u32 {
        match self {
            Kind::Refused => 10,
            Kind::Cap => 3,
            Kind::Accept => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Refused => "refused",
            Kind::Cap => "closed for a cap",
            Kind::Accept => "accept failed",
        }
    }
}

/// The log, with a rate limit for the kinds of line a hostile client can cause.
struct Log {
    sink: Box<dyn Fn(&str) + Send + Sync>,
    limited: Mutex<Vec<Window>>,
}

struct Window {
    kind: Kind,
    start: Instant,
    lines: u32,
    suppressed: u64,
}

impl Log {
    fn line(&self, text: &str) {
        (self.sink)(text)
    }

    /// Logs `text` unless `kind` already had its share this second.
    fn limited(&self, kind: Kind, text: &str) {
        let now = Instant::now();
        let mut windows = lock(&self.limited);
        let w = match windows.iter().position(|w| w.kind == kind) {
            Some(i) => &mut windows[i],
            None => {
                windows.push(Window {
                    kind,
                    start: now,
                    lines: 0,
                    suppressed: 0,
                });
                windows.last_mut().expect("just pushed")
            }
        };
        if now.duration_since(w.start) >= Duration::from_secs(1) {
            let left_out = std::mem::take(&mut w.suppressed);
            w.start = now;
            w.lines = 0;
            if left_out > 0 {
                (self.sink)(&format!(
                    "({left_out} more \"{}\" lines left out)",
                    kind.name()
                ));
            }
        }
        if w.lines < kind.per_second() {
            w.lines += 1;
            (self.sink)(text);
        } else {
            w.suppressed += 1;
        }
    }

    /// Reports what was left out in windows that are over.
    fn flush(&self) {
        let now = Instant::now();
        for w in lock(&self.limited).iter_mut() {
            if w.suppressed > 0 && now.duration_since(w.start) >= Duration::from_secs(1) {
                (self.sink)(&format!(
                    "({} more \"{}\" lines left out)",
                    w.suppressed,
                    w.kind.name()
                ));
                w.suppressed = 0;
                w.start = now;
                w.lines = 0;
            }
        }
    }
}

/// Counts of open connections, shared by the accept loop and the connection threads.
#[derive(Default)]
struct Counts {
    unauthenticated: usize,
    authenticated: usize,
    /// Authenticated connections so far (for `max_connections`).
    served: usize,
    /// No more connections will be served.
    closing: bool,
}

struct Shared {
    opts: ServeOptions,
    log: Log,
    counts: Mutex<Counts>,
    changed: Condvar,
}

/// A connection's place in the counts, given back on drop (also when its thread panics).
struct Slot {
    shared: Arc<Shared>,
    authenticated: bool,
}

impl Slot {
    /// Moves from unauthenticated to authenticated; `false` when the server is closing
    /// (it served its `max_connections` meanwhile).
    fn promote(&mut self) -> bool {
        let mut c = lock(&self.shared.counts);
        if c.closing {
            return false;
        }
        c.unauthenticated -= 1;
        c.authenticated += 1;
        c.served += 1;
        if self
            .shared
            .opts
            .max_connections
            .is_some_and(|m| c.served >= m)
        {
            c.closing = true;
        }
        self.authenticated = true;
        self.shared.changed.notify_all();
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.shared.counts);
        if self.authenticated {
            c.authenticated -= 1;
        } else {
            c.unauthenticated -= 1;
        }
        self.shared.changed.notify_all();
    }
}

/// A TCP stream whose reads and writes all end by one deadline (each operation gets
/// the time that is left, so a peer that trickles bytes gains nothing); without a
/// deadline it is the plain stream.
struct Timed {
    stream: TcpStream,
    deadline: Option<Instant>,
}

impl Timed {
    fn left(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(io::ErrorKind::TimedOut.into())
                } else {
                    Ok(Some(left))
                }
            }
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.stream.set_write_timeout(Some(left))?;
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// An authenticated connection, ready for a worker.
enum Established {
    /// The plaintext side of the secure session.
    Secure {
        input: auth::SecureReader<Timed>,
        output: auth::SecureWriter<TcpStream>,
    },
    /// The insecure mode: the connection itself.
    Plain,
}

/// Runs the handshake (or waits for the first byte) within the deadline.
fn establish(stream: &TcpStream, shared: &Shared) -> std::result::Result<Established, Refusal> {
    let deadline = Instant::now() + shared.opts.handshake_timeout;
    let Some(secret) = &shared.opts.secret else {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(Refusal::Io)?;
        let mut first = [0u8; 1];
        let peeked = loop {
            match stream.peek(&mut first) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        return match peeked {
            Ok(0) => Err(Refusal::Malformed("closed before sending anything".into())),
            Ok(_) => {
                stream.set_read_timeout(None).map_err(Refusal::Io)?;
                Ok(Established::Plain)
            }
            Err(e) => Err(Refusal::Io(e)),
        };
    };
    let clone = || stream.try_clone().map_err(Refusal::Io);
    let mut timed = Timed {
        stream: clone()?,
        deadline: Some(deadline),
    };
    let session = auth::accept(&mut timed, secret)?;
    let (mut input, output) = session.split(timed, clone()?);
    match input.confirm() {
        Ok(true) => {}
        Ok(false) => {
            return Err(Refusal::Unconfirmed(
                "the connection ended before the first encrypted frame".into(),
            ))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            return Err(Refusal::Io(e))
        }
        Err(e) => return Err(Refusal::Unconfirmed(e.to_string())),
    }
    input.get_mut().deadline = None;
    stream
        .set_read_timeout(None)
        .and_then(|_| stream.set_write_timeout(None))
        .map_err(Refusal::Io)?;
    Ok(Established::Secure { input, output })
}

/// The Python side of a served connection: the socket (fd 0) becomes `clientsock`, fd 0
/// itself is pointed at /dev/null, and the first line is executed the way the
/// reference's socket server does.
fn prologue(family: &str) -> String {
    format!(
        "import os, socket\n\
         clientsock = socket.fromfd(0, socket.{family}, socket.SOCK_STREAM)\n\
         _null = os.open(os.devnull, os.O_RDONLY)\n\
         os.dup2(_null, 0)\n\
         os.close(_null)\n\
         _f = clientsock.makefile('rb', 0)\n\
         _line = _f.readline()\n\
         _f.close()\n\
         _g = {{'clientsock': clientsock, '__name__': '__main__'}}\n\
         exec(eval(_line), _g)\n"
    )
}

/// Starts a Python worker on `socket` (its fd 0), in its own process group, its output
/// sent to our stderr.
fn spawn_python(python: &str, family: &str, socket: OwnedFd) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let log_fd = io::stderr().as_fd().try_clone_to_owned()?;
    let mut cmd = Command::new(python);
    cmd.arg("-u")
        .arg("-c")
        .arg(prologue(family))
        .stdin(Stdio::from(socket))
        .stdout(Stdio::from(log_fd))
        .stderr(Stdio::inherit())
        .process_group(0);
    // `cmd` (holding our copy of the socket) is dropped on return, so that the worker's
    // end is open in the worker only.
    cmd.spawn()
}

/// The end of a Python worker: its process group is killed while the worker is still
/// unreaped, so that the group id cannot have been reused by then.
struct Reaper {
    pgid: nix::unistd::Pid,
    reaped: Mutex<bool>,
}

impl Reaper {
    fn kill_group(&self) {
        let reaped = lock(&self.reaped);
        if !*reaped {
            let _ = nix::sys::signal::killpg(self.pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Waits for the worker to exit, kills what is left of its group, then reaps it.
    fn wait(&self, child: &mut Child) -> io::Result<std::process::ExitStatus> {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        while let Err(nix::errno::Errno::EINTR) = waitid(
            Id::Pid(self.pgid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {}
        let mut reaped = lock(&self.reaped);
        let _ = nix::sys::signal::killpg(self.pgid, nix::sys::signal::Signal::SIGKILL);
        let status = child.wait();
        *reaped = true;
        status
    }
}

/// Copies from `from` to `to` until the end of `from` or an error on either side;
/// returns the error of the reading side, if any.
fn pump(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_err() {
            return Ok(());
        }
    }
}

type Relays = (
    thread::JoinHandle<()>,
    thread::JoinHandle<()>,
    std::sync::mpsc::Receiver<String>,
);

/// Starts the two threads that relay between the client's session and the worker's
/// socket: worker to client, and client to worker (which, once the client is gone,
/// gives the worker its grace period and then kills its group).
fn start_relays(
    stream: &TcpStream,
    ours: &UnixStream,
    mut input: auth::SecureReader<Timed>,
    mut output: auth::SecureWriter<TcpStream>,
    reaper: &Arc<Reaper>,
    peer: SocketAddr,
) -> io::Result<Relays> {
    let (mut to_worker, mut from_worker) = (ours.try_clone()?, ours.try_clone()?);
    let tcp = stream.try_clone()?;
    // Worker to client.
    let outbound = thread::Builder::new()
        .name("execnet-serve-out".into())
        .spawn(move || {
            let _ = pump(&mut from_worker, &mut output);
            let _ = tcp.shutdown(Shutdown::Both);
        })?;
    // Client to worker.
    let inbound_reaper = reaper.clone();
    let inbound_log = format!("{peer}: session ended: ");
    let (ended_tx, ended_rx) = std::sync::mpsc::channel::<String>();
    let inbound = thread::Builder::new()
        .name("execnet-serve-in".into())
        .spawn(move || {
            let result = pump(&mut input, &mut to_worker);
            let _ = to_worker.shutdown(Shutdown::Write);
            if let Err(e) = result {
                let _ = to_worker.shutdown(Shutdown::Both);
                let _ = ended_tx.send(format!("{inbound_log}{e}"));
            }
            drop(ended_tx);
            let end = Instant::now() + WORKER_GRACE;
            while Instant::now() < end {
                if *lock(&inbound_reaper.reaped) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            inbound_reaper.kill_group();
        })?;
    Ok((outbound, inbound, ended_rx))
}

fn python_secure(
    shared: &Shared,
    peer: SocketAddr,
    python: &str,
    stream: &TcpStream,
    input: auth::SecureReader<Timed>,
    output: auth::SecureWriter<TcpStream>,
) -> io::Result<()> {
    let (ours, theirs) = UnixStream::pair()?;
    let mut child = spawn_python(python, "AF_UNIX", theirs.into())?;
    shared
        .log
        .line(&format!("{peer}: worker pid {}", child.id()));
    let reaper = Arc::new(Reaper {
        pgid: nix::unistd::Pid::from_raw(child.id() as i32),
        reaped: Mutex::new(false),
    });
    let relays = start_relays(stream, &ours, input, output, &reaper, peer);
    let (outbound, inbound, ended_rx) = match relays {
        Ok(r) => r,
        Err(e) => {
            // Without its relays the worker would wait forever: end it now.
            reaper.kill_group();
            let _ = reaper.wait(&mut child);
            return Err(e);
        }
    };
    let status = reaper.wait(&mut child);
    let _ = stream.shutdown(Shutdown::Both);
    let _ = ours.shutdown(Shutdown::Both);
    let _ = outbound.join();
    let _ = inbound.join();
    if let Ok(why) = ended_rx.try_recv() {
        shared.log.line(&why);
    }
    shared
        .log
        .line(&format!("{peer}: worker ended: {}", status?));
    Ok(())
}

fn python_plain(
    shared: &Shared,
    peer: SocketAddr,
    python: &str,
    stream: TcpStream,
) -> io::Result<()> {
    let family = if peer.is_ipv6() {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let mut child = spawn_python(python, family, stream.into())?;
    shared
        .log
        .line(&format!("{peer}: worker pid {}", child.id()));
    let reaper = Reaper {
        pgid: nix::unistd::Pid::from_raw(child.id() as i32),
        reaped: Mutex::new(false),
    };
    let status = reaper.wait(&mut child)?;
    shared.log.line(&format!("{peer}: worker ended: {status}"));
    Ok(())
}

fn session(shared: &Shared, peer: SocketAddr, stream: TcpStream, established: Established) {
    let log = &shared.log;
    match (&shared.opts.backend, established) {
        (Backend::Rust(worker), established) => {
            let (input, output): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match established {
                Established::Secure { input, output } => (Box::new(input), Box::new(output)),
                Established::Plain => match stream
                    .try_clone()
                    .and_then(|i| Ok((i, stream.try_clone()?)))
                {
                    Ok((input, output)) => (Box::new(input), Box::new(output)),
                    Err(e) => return log.line(&format!("{peer}: {e}")),
                },
            };
            match worker.serve_bootstrapped(input, output) {
                Ok(()) => log.line(&format!("{peer}: Rust worker done")),
                Err(e) => log.line(&format!("{peer}: Rust worker ended: {e}")),
            }
            let _ = stream.shutdown(Shutdown::Both);
        }
        (Backend::Python(python), Established::Secure { input, output }) => {
            if let Err(e) = python_secure(shared, peer, python, &stream, input, output) {
                log.line(&format!("{peer}: cannot serve with {python:?}: {e}"));
            }
        }
        (Backend::Python(python), Established::Plain) => {
            if let Err(e) = python_plain(shared, peer, python, stream) {
                log.line(&format!("{peer}: cannot serve with {python:?}: {e}"));
            }
        }
    }
}

fn connection(stream: TcpStream, peer: SocketAddr, mut slot: Slot) {
    let shared = slot.shared.clone();
    let _ = stream.set_nodelay(true);
    let established = match establish(&stream, &shared) {
        Ok(e) => e,
        Err(refusal) => {
            shared.log.limited(
                Kind::Refused,
                &format!("{peer}: refused before any code ran: {refusal}"),
            );
            return;
        }
    };
    if !slot.promote() {
        shared.log.limited(
            Kind::Refused,
            &format!("{peer}: refused: the server has served its --max-connections"),
        );
        return;
    }
    shared.log.line(&format!(
        "{peer}: {}",
        if shared.opts.secret.is_some() {
            "authenticated"
        } else {
            "accepted without authentication (--insecure-no-auth)"
        }
    ));
    session(&shared, peer, stream, established);
    drop(slot);
}

/// Warns, in the log, that the insecure mode runs anyone's code.
fn warn_insecure(log: &Log, addr: SocketAddr) {
    log.line(&format!(
        "WARNING: --insecure-no-auth: anyone who can connect to {addr} can run any code as \
         this server's user, and nothing on the connections is encrypted or protected"
    ));
    if !addr.ip().is_loopback() {
        log.line(&format!(
            "WARNING: {} is reachable from other hosts: anyone on the network can run code \
             here; bind 127.0.0.1 or use --secret-file",
            addr.ip()
        ));
    }
}

/// Listens and serves until `max_connections` connections were authenticated and have
/// ended (forever when `None`). `ready` is called with the bound address once listening.
pub fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    log: impl Fn(&str) + Send + Sync + 'static,
) -> Result<()> {
    if opts.max_unauthenticated == 0 || opts.max_concurrent == 0 {
        return Err(Error::InvalidArgument(
            "max_unauthenticated and max_concurrent must be at least 1".into(),
        ));
    }
    let listener = TcpListener::bind(&opts.bind).map_err(|error| Error::Listen {
        addr: opts.bind.clone(),
        error,
    })?;
    let addr = listener.local_addr()?;
    // Non-blocking, so that the loop can notice that it is done serving.
    listener.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        opts,
        log: Log {
            sink: Box::new(log),
            limited: Mutex::new(Vec::new()),
        },
        counts: Mutex::new(Counts::default()),
        changed: Condvar::new(),
    });
    if shared.opts.secret.is_none() {
        warn_insecure(&shared.log, addr);
    }
    ready(addr);
    let mut backoff = Duration::ZERO;
    loop {
        shared.log.flush();
        if lock(&shared.counts).closing {
            break;
        }
        let mut fds = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(250u16));
        let (stream, peer) = match listener.accept() {
            Ok(conn) => {
                backoff = Duration::ZERO;
                conn
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Typically out of file descriptors: the connection stays queued, so
                // retrying at once would spin. Wait for sessions to end instead.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                shared.log.limited(
                    Kind::Accept,
                    &format!(
                        "accept failed: {e} (retrying in {} ms)",
                        backoff.as_millis()
                    ),
                );
                thread::sleep(backoff);
                continue;
            }
        };
        if let Err(e) = stream.set_nonblocking(false) {
            shared.log.limited(Kind::Accept, &format!("{peer}: {e}"));
            continue;
        }
        {
            let mut c = lock(&shared.counts);
            let full = if c.unauthenticated >= shared.opts.max_unauthenticated {
                Some("too many unauthenticated connections")
            } else if c.unauthenticated + c.authenticated >= shared.opts.max_concurrent {
                Some("too many connections")
            } else {
                None
            };
            if let Some(why) = full {
                drop(c);
                shared
                    .log
                    .limited(Kind::Cap, &format!("{peer}: closed at once: {why}"));
                continue;
            }
            c.unauthenticated += 1;
        }
        let slot = Slot {
            shared: shared.clone(),
            authenticated: false,
        };
        let spawned = thread::Builder::new()
            .name("execnet-serve-conn".into())
            .spawn(move || connection(stream, peer, slot));
        if let Err(e) = spawned {
            // The closure (and with it the slot and the stream) was dropped.
            shared
                .log
                .limited(Kind::Accept, &format!("{peer}: cannot start a thread: {e}"));
            thread::sleep(Duration::from_millis(50));
        }
    }
    drop(listener);
    let mut c = lock(&shared.counts);
    while c.authenticated + c.unauthenticated > 0 {
        c = shared.changed.wait(c).unwrap_or_else(|e| e.into_inner());
    }
    Ok(())
}
