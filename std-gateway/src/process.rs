//! Worker processes: each in its own process group, stdio pipes (which std opens with
//! `O_CLOEXEC`, so no other child inherits them), stderr captured, termination as
//! `SIGTERM` then `SIGKILL` to the whole group, and every child reaped.
//!
//! What ends with a worker, and when (our agent; Linux unless said otherwise):
//!
//! - When the gateway exits, when the worker's input ends (the master closed it or died)
//!   and when the agent refuses a corrupt stream, the agent kills every process below
//!   it, stopping them first so that none forks a replacement, then the rest of its
//!   process group. Processes that left the group with `setsid()` are found as well:
//!   the agent is a child subreaper, so a daemon's double fork leaves the daemon below
//!   it instead of under init. Elsewhere (no `/proc`, no `prctl`) only the process
//!   group is killed, and a `setsid()` child escapes.
//! - When the master dies while the worker's code holds the interpreter in C (so that no
//!   Python-level reader can notice), the kernel acts: the agent asked for `SIGHUP` when
//!   its parent dies (`PR_SET_PDEATHSIG`), and a watchdog it forked at start sees the
//!   input hang up, waits a second for the agent to end by itself, then `SIGKILL`s the
//!   process group. In that one case a child that left the group with `setsid()`
//!   survives. The kernel sends the parent-death signal when the *thread* that started
//!   the worker ends, so every worker is started by one long-lived spawner thread of
//!   this process, never by the caller's thread (which may be short-lived, as in
//!   [`Group::makegateways`](crate::Group::makegateways)).
//! - A worker started through a wrapper script (`python=` a script that runs Python as
//!   its child) does not lead its process group: its agent kills only what is below it.
//! - Orphaned descendants that exit stay zombies of the agent until the agent ends: it
//!   never reaps children it did not start, so that it cannot take an exit status away
//!   from the user's own `subprocess` calls.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How a worker ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    fn from_status(s: ExitStatus) -> Exit {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => write!(f, "killed by signal {s} ({})", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}

/// Where a worker's stderr (and, through our agent, its stdout) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Keep it (up to 1 MiB, oldest bytes dropped first) for
    /// [`Gateway::take_output`](crate::Gateway::take_output).
    #[default]
    Capture,
    /// Copy it to this process's stderr as it arrives (and still keep the last lines
    /// for error reports).
    Forward,
}

/// Most captured output kept per worker.
pub const OUTPUT_CAP: usize = 1 << 20;
/// The pipe buffer size asked for the protocol pipes.
const PIPE_SIZE: i32 = 1 << 20;

/// Lines of stderr kept for error reports.
pub const TAIL_LINES: usize = 20;

#[derive(Default)]
struct OutputState {
    captured: VecDeque<u8>,
    dropped: usize,
    tail: VecDeque<String>,
    partial: Vec<u8>,
    done: bool,
}

/// The captured stderr of a worker.
#[derive(Clone, Default)]
pub struct Output {
    state: Arc<(Mutex<OutputState>, Condvar)>,
}

impl Output {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutputState> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, data: &[u8], mode: OutputMode) {
        let mut st = self.lock();
        if mode == OutputMode::Capture {
            st.captured.extend(data);
            while st.captured.len() > OUTPUT_CAP {
                st.captured.pop_front();
                st.dropped += 1;
            }
        }
        st.partial.extend_from_slice(data);
        while let Some(pos) = st.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = st.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            st.tail.push_back(text);
            if st.tail.len() > TAIL_LINES {
                st.tail.pop_front();
            }
        }
        if st.partial.len() > 4096 {
            let text = String::from_utf8_lossy(&st.partial).into_owned();
            st.partial.clear();
            st.tail.push_back(text);
            if st.tail.len() > TAIL_LINES {
                st.tail.pop_front();
            }
        }
    }

    fn finish(&self) {
        let mut st = self.lock();
        if !st.partial.is_empty() {
            let text = String::from_utf8_lossy(&st.partial).trim_end().to_string();
            st.partial.clear();
            st.tail.push_back(text);
        }
        st.done = true;
        self.state.1.notify_all();
    }

    /// Takes what was captured so far.
    pub fn take(&self) -> Vec<u8> {
        let mut st = self.lock();
        st.captured.drain(..).collect()
    }

    /// The last lines of stderr (at most [`TAIL_LINES`]), including an unterminated last
    /// line.
    pub fn tail(&self) -> Vec<String> {
        let st = self.lock();
        let mut lines: Vec<String> = st.tail.iter().cloned().collect();
        if !st.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&st.partial).trim_end().to_string());
        }
        lines
    }

    /// Waits until the stream has ended (the worker closed its stderr), at most
    /// `timeout`.
    pub fn wait_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while !st.done {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = match self.state.1.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

/// A running worker process.
pub struct Process {
    child: Mutex<Child>,
    pid: u32,
    exit: Mutex<Option<Exit>>,
    output: Output,
}

/// The pipes of a freshly spawned worker.
pub struct Pipes {
    /// The worker's stdin.
    pub stdin: ChildStdin,
    /// The worker's stdout.
    pub stdout: ChildStdout,
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Starts `cmd` from the process's spawner thread, which lives as long as the process:
/// a worker's parent-death signal then fires only when this process ends.
fn spawn_from_long_lived_thread(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot start, `rx` goes with it and every request fails.
        let _ = thread::Builder::new()
            .name("execnet-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the spawner thread of this process could not start"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread of this process ended"))?
}

impl Process {
    /// Starts `cmd` in a new process group with piped stdio; stderr is read by a thread
    /// into the [`Output`]. The process is started by a long-lived thread (see the
    /// module docs), whichever thread calls this.
    pub fn spawn(mut cmd: Command, mode: OutputMode) -> io::Result<(Process, Pipes)> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = spawn_from_long_lived_thread(cmd)?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("child stdio was not piped"));
        };
        // Larger pipes mean fewer system calls and wake-ups for bulk data; the kernel may
        // refuse (a per-user limit), which only costs speed.
        for fd in [stdin.as_fd(), stdout.as_fd()] {
            let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        }
        let output = Output::default();
        let out = output.clone();
        thread::Builder::new()
            .name(format!("execnet-stderr-{pid}"))
            .spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match stderr.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            let data = buf.get(..n).unwrap_or(&[]);
                            if mode == OutputMode::Forward {
                                use std::io::Write;
                                let _ = std::io::stderr().write_all(data);
                            }
                            out.push(data, mode);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                out.finish();
            })?;
        Ok((
            Process {
                child: Mutex::new(child),
                pid,
                exit: Mutex::new(None),
                output,
            },
            Pipes { stdin, stdout },
        ))
    }

    /// The worker's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The worker's captured stderr.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// How the worker ended, if it has (reaping it if it just did).
    pub fn try_exit(&self) -> Option<Exit> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(Some(status)) = child.try_wait() {
                *exit = Some(Exit::from_status(status));
            }
        }
        exit.clone()
    }

    /// Waits up to `timeout` for the worker to end.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(e) = self.try_exit() {
                return Some(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn signal_group(&self, sig: Signal) {
        if let Ok(pid) = i32::try_from(self.pid) {
            // The group may already be gone; that is the goal, not an error.
            let _ = killpg(Pid::from_raw(pid), sig);
        }
    }

    /// Ends the worker: waits `grace` for it to exit by itself, then sends `SIGTERM` to
    /// its process group, waits `grace` again, then `SIGKILL`s the group and reaps it.
    /// Also kills the group when the worker has already exited, so that no process it
    /// forked survives.
    pub fn terminate(&self, grace: Duration) -> Exit {
        let exit = self.wait_timeout(grace).or_else(|| {
            self.signal_group(Signal::SIGTERM);
            self.wait_timeout(grace)
        });
        self.signal_group(Signal::SIGKILL);
        match exit {
            Some(e) => e,
            None => {
                let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
                let e = match child.wait() {
                    Ok(status) => Exit::from_status(status),
                    Err(_) => Exit::Signal(Signal::SIGKILL as i32),
                };
                drop(child);
                *self.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
                e
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            self.terminate(Duration::from_millis(100));
        } else {
            self.signal_group(Signal::SIGKILL);
        }
    }
}
