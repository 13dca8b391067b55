//! The agent facing a corrupt master: frames with a negative or oversized length, an
//! unknown message code, or a payload that does not decode where the protocol needs one.
//! Each ends the agent within seconds, with a line on stderr that names the fault, without
//! flooding the master, and with the process group (and what the user's code forked)
//! gone. Run on CPython 3.11, 2.7 and PyPy3, speaking raw frames over the agent's pipes.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use execnet::bootstrap::{agent_line as bootstrap_payload, BOOTSTRAP_LINE};
use execnet::core::{Envelope, Value};
use execnet_tests::procs::{alive, survivors};
use execnet_tests::{cases, interp};

/// An agent on raw pipes, in its own process group (as a popen master starts it).
struct Raw {
    child: Child,
    stdin: ChildStdin,
    out: mpsc::Receiver<Vec<u8>>,
    err: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

fn pump(mut from: impl Read, tx: mpsc::Sender<Vec<u8>>) {
    let mut b = [0u8; 65536];
    while let Ok(n) = from.read(&mut b) {
        if n == 0 || tx.send(b[..n].to_vec()).is_err() {
            break;
        }
    }
}

/// What arrived on `rx` within `wait` (a forked grandchild may hold the pipe open, so
/// its end cannot be awaited).
fn drain(rx: &mpsc::Receiver<Vec<u8>>, wait: Duration) -> Vec<u8> {
    let deadline = Instant::now() + wait;
    let mut all = Vec::new();
    while let Ok(c) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        all.extend(c);
    }
    all
}

fn frame(code: i8, channel: i32, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![code as u8];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn payload(v: &Value) -> Vec<u8> {
    execnet::core::encode::to_vec(v, Envelope::Internal).unwrap()
}

fn exec_payload(source: &str) -> Vec<u8> {
    payload(&Value::Tuple(vec![
        Value::Str(source.into()),
        Value::None,
        Value::None,
        Value::Dict(vec![]),
    ]))
}

impl Raw {
    fn start(py: &interp::Interp) -> Raw {
        let mut child = Command::new(&py.path)
            .args(["-u", "-c", BOOTSTRAP_LINE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, out) = mpsc::channel();
        std::thread::spawn(move || pump(stdout, tx));
        let (tx, err) = mpsc::channel();
        std::thread::spawn(move || pump(stderr, tx));
        stdin.write_all(&bootstrap_payload()).unwrap();
        let mut raw = Raw {
            child,
            stdin,
            out,
            err,
            buf: Vec::new(),
        };
        assert_eq!(raw.take(1, Duration::from_secs(20)), b"1", "handshake");
        raw
    }

    /// Takes exactly `n` bytes of the agent's output.
    fn take(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(chunk) => self.buf.extend(chunk),
                Err(e) => panic!("waiting for {n} bytes of output: {e}"),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one frame: (code, channel, payload).
    fn frame(&mut self) -> (i8, i32, Vec<u8>) {
        let h = self.take(9, Duration::from_secs(20));
        let code = h[0] as i8;
        let ch = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        let len = i32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        (code, ch, self.take(len as usize, Duration::from_secs(20)))
    }

    fn send(&mut self, bytes: &[u8]) {
        // The agent may already have gone: that is what some cases expect.
        let _ = self.stdin.write_all(bytes);
        let _ = self.stdin.flush();
    }

    /// Starts remote code that forks `sleep 1000` and reports its pid.
    fn fork_grandchild(&mut self) -> i32 {
        self.send(&frame(
            3,
            1,
            &exec_payload(
                "import subprocess\np = subprocess.Popen(['sleep', '1000'])\nchannel.send(p.pid)\nchannel.receive()\n",
            ),
        ));
        let (code, ch, data) = self.frame();
        assert_eq!((code, ch), (4, 1), "the pid comes back as data");
        let v = Value::decode_internal(&data, &execnet::core::Limits::DEFAULT).unwrap();
        i32::try_from(v.as_i64().unwrap()).unwrap()
    }

    /// Waits for the agent to exit; returns how long it took, the bytes it wrote after
    /// the fault, and its stderr.
    fn wait_end(mut self, timeout: Duration) -> (Duration, usize, String) {
        let t = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            if t.elapsed() > timeout {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = self.child.wait();
                let flood = self.buf.len() + drain(&self.out, Duration::from_millis(200)).len();
                panic!(
                    "the agent still runs {timeout:?} after the fault ({flood} bytes written)\nstderr: {}",
                    String::from_utf8_lossy(&drain(&self.err, Duration::from_millis(200)))
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let elapsed = t.elapsed();
        drop(self.stdin);
        let stderr = drain(&self.err, Duration::from_millis(500));
        let written = self.buf.len() + drain(&self.out, Duration::from_millis(200)).len();
        (
            elapsed,
            written,
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }
}

fn wait_gone(pid: i32, what: &str) {
    let left = survivors(&[pid], Duration::from_secs(5));
    assert!(left.is_empty(), "{what}: pid {pid} outlived the agent");
}

/// Sends `bad` after a grandchild was forked; the agent must end, say `expect` on
/// stderr, write at most a little, and leave no grandchild.
fn corrupt(name: &str, bad: &[u8], expect: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let mut raw = Raw::start(&py);
    let grandchild = raw.fork_grandchild();
    assert!(alive(grandchild));
    raw.send(bad);
    let (elapsed, written, stderr) = raw.wait_end(Duration::from_secs(5));
    assert!(elapsed < Duration::from_secs(5), "{name}: {elapsed:?}");
    assert!(
        written < 4096,
        "{name}: the agent wrote {written} bytes after the fault"
    );
    assert!(
        stderr.contains(expect),
        "{name}: stderr does not say {expect:?}:\n{stderr}"
    );
    wait_gone(grandchild, name);
}

fn negative_length(name: &str) {
    corrupt(
        name,
        &[4, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfb],
        "negative payload length -5",
    );
}

fn oversize(name: &str) {
    corrupt(
        name,
        &[4, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff],
        "2147483647 bytes",
    );
}

fn unknown_code(name: &str) {
    corrupt(name, &frame(42, 1, b""), "unknown message code 42");
}

fn bad_reconfigure(name: &str) {
    corrupt(name, &frame(1, 0, b"garbage"), "RECONFIGURE");
}

fn bad_close_error(name: &str) {
    corrupt(name, &frame(6, 1, b"\xff\xff"), "CHANNEL_CLOSE_ERROR");
}

cases! {
    negative_length_ends_agent_cpython311 => negative_length("cpython3.11"),
    negative_length_ends_agent_cpython27 => negative_length("cpython2.7"),
    negative_length_ends_agent_pypy3 => negative_length("pypy3"),
    oversize_frame_ends_agent_cpython311 => oversize("cpython3.11"),
    oversize_frame_ends_agent_cpython27 => oversize("cpython2.7"),
    oversize_frame_ends_agent_pypy3 => oversize("pypy3"),
    unknown_code_ends_agent_cpython311 => unknown_code("cpython3.11"),
    unknown_code_ends_agent_cpython27 => unknown_code("cpython2.7"),
    unknown_code_ends_agent_pypy3 => unknown_code("pypy3"),
    bad_reconfigure_payload_ends_agent_cpython311 => bad_reconfigure("cpython3.11"),
    bad_reconfigure_payload_ends_agent_cpython27 => bad_reconfigure("cpython2.7"),
    bad_reconfigure_payload_ends_agent_pypy3 => bad_reconfigure("pypy3"),
    bad_close_error_payload_ends_agent_cpython311 => bad_close_error("cpython3.11"),
    bad_close_error_payload_ends_agent_cpython27 => bad_close_error("cpython2.7"),
    bad_close_error_payload_ends_agent_pypy3 => bad_close_error("pypy3"),
}

/// A bad data payload is not fatal: that channel closes with the error, and the gateway
/// goes on serving.
fn bad_data_payload(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let mut raw = Raw::start(&py);
    raw.send(&frame(
        3,
        1,
        &exec_payload("channel.send(channel.receive())\n"),
    ));
    raw.send(&frame(4, 1, b"\x99Q"));
    let (code, ch, _) = raw.frame();
    assert_eq!((code, ch), (6, 1), "{name}: channel 1 closes with an error");
    raw.send(&frame(3, 3, &exec_payload("channel.send(42)\n")));
    let (code, ch, data) = raw.frame();
    assert_eq!((code, ch), (4, 3), "{name}: the gateway still serves");
    let v = Value::decode_internal(&data, &execnet::core::Limits::DEFAULT).unwrap();
    assert_eq!(v.as_i64(), Some(42));
    raw.send(&frame(2, 0, b""));
    let (_, written, _) = raw.wait_end(Duration::from_secs(5));
    assert!(written <= 9, "{name}: {written} bytes after terminate");
}

cases! {
    bad_data_payload_closes_one_channel_cpython311 => bad_data_payload("cpython3.11"),
    bad_data_payload_closes_one_channel_cpython27 => bad_data_payload("cpython2.7"),
    bad_data_payload_closes_one_channel_pypy3 => bad_data_payload("pypy3"),
}
