//! A running `execnet serve` for the tests, and the helpers around it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The `execnet` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_execnet");

/// A running `execnet serve`, killed and reaped on drop. Its stderr (the log) is read
/// all the time, so that a chatty server never blocks on a full pipe.
pub struct Server {
    child: Child,
    /// `HOST:PORT` from its `listening on` line.
    pub addr: String,
    stdout: BufReader<ChildStdout>,
    log: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Server {
    /// `execnet serve --bind 127.0.0.1:0 ARGS` (no `--bind` added when ARGS has one).
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        if !args.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        cmd.args(args);
        Server::spawn(cmd)
    }

    /// Starts `cmd` (an `execnet serve` command line, possibly behind a wrapper) and
    /// waits for its `listening on` line.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        let drain = thread::spawn(move || {
            let mut line = Vec::new();
            loop {
                line.clear();
                match err.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&line)),
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ").map(String::from) else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = drain.join();
            panic!(
                "unexpected first line {line:?}; log: {}",
                log.lock().unwrap()
            );
        };
        Server {
            child,
            addr,
            stdout,
            log,
            drain: Some(drain),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.log().contains(needle)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A numeric field of `/proc/PID/status` (`Threads`, `VmRSS` in kB, ...).
    pub fn proc_status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Open file descriptors of the server.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Waits for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the server; returns what it wrote to stdout after the `listening on` line,
    /// and its log.
    pub fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let log = self.log();
        (rest, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A path in this test process's own temporary directory.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("execnet-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes a secret file readable by its owner only.
pub fn secret_file(name: &str, content: &str) -> PathBuf {
    let path = temp(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The spec of a socket gateway to `addr` authenticated with the secret file `secret`.
pub fn socket_spec(addr: &str, secret: &Path) -> String {
    format!("socket={addr}//secret={}", secret.display())
}

/// The path as a `&str`.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Reads from `stream` until end of stream, an error or `timeout`; returns what was read
/// and whether the end came (EOF or a reset) before the timeout.
pub fn read_to_end_within(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    let end = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
}

/// A man in the middle: a TCP relay between clients and the server, whose two
/// directions are handed to `tamper` functions that may forward, alter, drop or inject.
pub struct Relay {
    /// The address clients connect to.
    pub addr: String,
}

/// One direction of a relayed connection: decides what to send on for each chunk read.
pub type Tamper = Arc<dyn Fn(usize, &[u8]) -> Vec<u8> + Send + Sync>;

impl Relay {
    /// Relays every accepted connection to `server`; `c2s` and `s2c` see each chunk
    /// read (with its index in that direction) and return the bytes to pass on.
    pub fn start(server: &str, c2s: Tamper, s2c: Tamper) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = server.to_string();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(&server) else {
                    continue;
                };
                for (from, to, f) in [
                    (
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                        c2s.clone(),
                    ),
                    (upstream, client, s2c.clone()),
                ] {
                    thread::spawn(move || pump(from, to, f));
                }
            }
        });
        Relay { addr }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, tamper: Tamper) {
    let mut buf = vec![0u8; 1 << 16];
    let mut index = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let out = tamper(index, &buf[..n]);
        index += 1;
        if !out.is_empty() && to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Passes every chunk on unchanged.
pub fn faithful() -> Tamper {
    Arc::new(|_, chunk| chunk.to_vec())
}
