//! `execnet serve` against hostile and unlucky clients: deadlines and caps before
//! authentication, a session a party on the path can neither join nor alter, secrets
//! that are checked, and workers that keep off the server's stdout and take their
//! children with them.

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;
#[path = "../../tests/src/procs.rs"]
#[allow(dead_code)]
mod procs;
mod serve_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use execnet::{Group, Options};
use serve_support::{
    faithful, read_to_end_within, s, secret_file, socket_spec, temp, Relay, Server, Tamper, BIN,
};

const SECRET: &str = "3b9f7c1e5a2d48f0b6c9e1a7d3f5b2c8";

fn quick() -> Options {
    Options::new()
        .startup_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
}

/// An `execnet serve` of CPython 3.11 workers behind a secret file `name` that holds
/// `SECRET`: the server and the file.
fn python_server(name: &str) -> Option<(Server, std::path::PathBuf)> {
    let py = interp::require("cpython3.11")?;
    let secret = secret_file(name, SECRET);
    let server = Server::start(&[
        "--secret-file",
        s(&secret),
        "--python",
        py.path.to_str().unwrap(),
    ]);
    Some((server, secret))
}

/// An honest client calls `add` on a Rust-worker server.
fn honest_add(addr: &str, secret: &std::path::Path) -> Result<i64, execnet::Error> {
    let group = Group::with_options(quick());
    let result = (|| {
        let gw = group.makegateway(&socket_spec(addr, secret))?;
        let ch = gw.remote_exec_call("", "add", &BTreeMap::from([("a", 40i64), ("b", 2)]))?;
        ch.receive_timeout::<i64>(Duration::from_secs(10))
    })();
    group.terminate(Duration::from_secs(2));
    result
}

/// Connects and waits for the server's first bytes (so that it counts the connection).
fn connect_and_greet(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut c, &mut b).unwrap();
    c
}

#[test]
fn item2_handshake_deadline_closes_idle_and_slow_clients() {
    let secret = secret_file("deadline", SECRET);
    let server = Server::start(&[
        "--secret-file",
        s(&secret),
        "--rust-worker",
        "--handshake-timeout",
        "1",
    ]);
    // Silent.
    let start = Instant::now();
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    let (_, ended) = read_to_end_within(&mut idle, Duration::from_secs(6));
    let took = start.elapsed();
    assert!(ended, "an idle connection was still open after 6 s");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // One byte every 200 ms: each read succeeds, but the deadline is for the whole
    // handshake.
    let start = Instant::now();
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let dripping = thread::spawn(move || {
        // A plausible length prefix, then the message a byte at a time.
        let _ = writer.write_all(&[0x00, 0x30]);
        for _ in 0..40 {
            if writer.write_all(b"\x5a").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let (_, ended) = read_to_end_within(&mut slow, Duration::from_secs(6));
    let took = start.elapsed();
    assert!(ended && took < Duration::from_secs(4), "{took:?}");
    let _ = slow.shutdown(std::net::Shutdown::Both);
    dripping.join().unwrap();
    assert_eq!(honest_add(&server.addr, &secret).unwrap(), 42);
    let (_, log) = server.stop();
    assert!(log.matches("handshake timed out").count() >= 2, "{log}");
}

#[test]
fn item2_unauthenticated_and_total_connections_are_capped() {
    let secret = secret_file("caps", SECRET);
    let server = Server::start(&[
        "--secret-file",
        s(&secret),
        "--rust-worker",
        "--handshake-timeout",
        "30",
        "--max-unauthenticated",
        "3",
        "--max-concurrent",
        "4",
    ]);
    let idle: Vec<TcpStream> = (0..3).map(|_| connect_and_greet(&server.addr)).collect();
    // A fourth handshake is one too many: closed at once, without a greeting.
    let mut extra = TcpStream::connect(&server.addr).unwrap();
    let (got, ended) = read_to_end_within(&mut extra, Duration::from_secs(3));
    assert!(ended && got.is_empty(), "{got:?}");
    assert!(server.wait_log("too many unauthenticated", Duration::from_secs(2)));
    drop(idle);
    // Once they are gone, sessions fill the total cap: three held, a fourth is served,
    // a fifth connection is refused at once.
    thread::sleep(Duration::from_millis(300));
    let group = Group::with_options(quick());
    let held: Vec<_> = (0..4)
        .map(|_| {
            group
                .makegateway(&socket_spec(&server.addr, &secret))
                .unwrap()
        })
        .collect();
    let mut fifth = TcpStream::connect(&server.addr).unwrap();
    let (got, ended) = read_to_end_within(&mut fifth, Duration::from_secs(3));
    assert!(ended && got.is_empty(), "{got:?}");
    assert!(server.wait_log("too many connections", Duration::from_secs(2)));
    drop(held);
    group.terminate(Duration::from_secs(2));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(honest_add(&server.addr, &secret).unwrap(), 42);
}

#[test]
fn item2_probes_do_not_use_up_max_connections() {
    let secret = secret_file("probes", SECRET);
    let mut server = Server::start(&[
        "--secret-file",
        s(&secret),
        "--rust-worker",
        "--max-connections",
        "1",
    ]);
    for i in 0..6 {
        let mut probe = TcpStream::connect(&server.addr).unwrap();
        if i % 2 == 1 {
            let _ = probe.write_all(b"GET / HTTP/1.0\r\n\r\n");
        }
        let _ = read_to_end_within(&mut probe, Duration::from_millis(200));
    }
    assert_eq!(honest_add(&server.addr, &secret).unwrap(), 42);
    // That was the one connection it serves: it then exits by itself.
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        server.log()
    );
}

#[test]
fn item2_accept_loop_survives_fd_exhaustion() {
    let secret = secret_file("fds", SECRET);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 40 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--secret-file"])
        .arg(&secret)
        .args([
            "--rust-worker",
            "--handshake-timeout",
            "2",
            "--max-unauthenticated",
            "500",
            "--max-concurrent",
            "500",
        ]);
    let server = Server::spawn(cmd);
    // More silent connections than the server has descriptors: the kernel queues the
    // rest, and accept fails until some are closed.
    let idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let log = server.log();
    let accept_lines = log.lines().filter(|l| l.contains("accept")).count();
    assert!(
        accept_lines > 0 && accept_lines < 10,
        "{accept_lines} accept lines in 1.5 s:\n{}",
        log.chars().take(2000).collect::<String>()
    );
    drop(idle);
    // The silent ones time out or are seen closed; an honest client then gets in.
    let start = Instant::now();
    let result = loop {
        match honest_add(&server.addr, &secret) {
            Ok(v) => break Ok(v),
            Err(e) if start.elapsed() > Duration::from_secs(15) => break Err(e),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(result.unwrap(), 42, "{}", server.log());
}

/// A Python code string, as the one line a worker executes, padded with a comment so
/// that a reader of the new protocol sees a whole (if garbled) frame.
fn injected_bootstrap(code: &str) -> Vec<u8> {
    let mut line = execnet::bootstrap::py_literal(&format!("{code}\n#{}", "A".repeat(70_000)));
    line.push('\n');
    line.into_bytes()
}

#[test]
fn item3_relayed_authentication_cannot_run_code() {
    let Some((server, secret)) = python_server("relay") else {
        return;
    };
    let marker = temp("relay-marker");
    let injection = injected_bootstrap(&format!(
        "open({:?}, 'w').write('relayed')",
        marker.display().to_string()
    ));
    // The relay passes the authentication on in both directions, then, once the server
    // has answered a second time (it has accepted the client), drops what the client
    // sends and speaks in its place.
    let accepted = Arc::new(AtomicBool::new(false));
    let injected = Arc::new(AtomicBool::new(false));
    let flag = accepted.clone();
    let s2c: Tamper = Arc::new(move |i, chunk| {
        if i == 1 {
            flag.store(true, Ordering::SeqCst);
        }
        chunk.to_vec()
    });
    let c2s: Tamper = Arc::new(move |_, chunk| {
        if !accepted.load(Ordering::SeqCst) {
            chunk.to_vec()
        } else if !injected.swap(true, Ordering::SeqCst) {
            injection.clone()
        } else {
            Vec::new()
        }
    });
    let relay = Relay::start(&server.addr, c2s, s2c);
    let group = Group::with_options(quick().startup_timeout(Duration::from_secs(4)));
    let client = group.makegateway(&socket_spec(&relay.addr, &secret));
    thread::sleep(Duration::from_secs(1));
    drop(client);
    group.terminate(Duration::from_secs(1));
    assert!(
        !marker.exists(),
        "the relay ran its own code in the client's authenticated session"
    );
    assert!(
        server.wait_log("refused before any code ran", Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

#[test]
fn item3_replayed_session_cannot_run_code_again() {
    let Some((server, secret)) = python_server("replay") else {
        return;
    };
    let counter = temp("replay-counter");
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tape = recorded.clone();
    let c2s: Tamper = Arc::new(move |_, chunk| {
        tape.lock().unwrap().extend_from_slice(chunk);
        chunk.to_vec()
    });
    let relay = Relay::start(&server.addr, c2s, faithful());
    let group = Group::with_options(quick());
    let gw = group
        .makegateway(&socket_spec(&relay.addr, &secret))
        .unwrap();
    let ch = gw
        .remote_exec(&format!(
            "open({:?}, 'a').write('x')\nchannel.send(1)",
            counter.display().to_string()
        ))
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 1);
    group.terminate(Duration::from_secs(2));
    // Everything the client sent, replayed on a fresh connection.
    let tape = recorded.lock().unwrap().clone();
    let mut replay = TcpStream::connect(&server.addr).unwrap();
    let _ = replay.write_all(&tape);
    let _ = read_to_end_within(&mut replay, Duration::from_secs(5));
    thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "x");
}

#[test]
fn item3_flipped_byte_ends_the_session() {
    let Some((server, secret)) = python_server("flip") else {
        return;
    };
    // Flips one byte in the middle of the next chunk longer than 100 bytes, once armed.
    fn flipper(armed: Arc<AtomicUsize>) -> Tamper {
        Arc::new(move |_, chunk| {
            let mut out = chunk.to_vec();
            if out.len() > 100 && armed.swap(0, Ordering::SeqCst) == 1 {
                let mid = out.len() / 2;
                out[mid] ^= 0x01;
            }
            out
        })
    }
    for to_server in [true, false] {
        let armed = Arc::new(AtomicUsize::new(0));
        let (c2s, s2c) = if to_server {
            (flipper(armed.clone()), faithful())
        } else {
            (faithful(), flipper(armed.clone()))
        };
        let relay = Relay::start(&server.addr, c2s, s2c);
        let group = Group::with_options(quick());
        let gw = group
            .makegateway(&socket_spec(&relay.addr, &secret))
            .unwrap();
        let ch = gw.remote_exec("for x in channel: channel.send(x)").unwrap();
        let a = "A".repeat(1000);
        ch.send(&a).unwrap();
        assert_eq!(
            ch.receive_timeout::<String>(Duration::from_secs(10))
                .unwrap(),
            a
        );
        armed.store(1, Ordering::SeqCst);
        let b = "B".repeat(1000);
        ch.send(&b).unwrap();
        let got = ch.receive_timeout::<String>(Duration::from_secs(10));
        assert!(
            got.is_err(),
            "a flipped byte {} went unnoticed",
            if to_server {
                "to the server"
            } else {
                "to the client"
            }
        );
        if !to_server {
            let err = got.unwrap_err().to_string();
            assert!(err.contains("failed authentication"), "{err}");
        }
        group.terminate(Duration::from_secs(2));
    }
    assert!(
        server.wait_log("failed authentication", Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

/// Runs `execnet serve ARGS`, expecting it to refuse to start: its exit status and log.
fn serve_refuses(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    (status.code(), log)
}

#[test]
fn item3_short_exposed_or_huge_secrets_are_refused() {
    let short = secret_file("short", "0123456789\n");
    let exposed = secret_file("exposed", SECRET);
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let group_readable = secret_file("group", SECRET);
    std::fs::set_permissions(&group_readable, std::fs::Permissions::from_mode(0o640)).unwrap();
    let huge = secret_file("huge", &"k".repeat(1 << 20));
    for (path, expect) in [
        (&short, "at least 16"),
        (&exposed, "chmod 600"),
        (&group_readable, "chmod 600"),
        (&huge, "larger than"),
    ] {
        let (code, log) = serve_refuses(&["--secret-file", s(path), "--rust-worker"]);
        assert_eq!(code, Some(2), "{}: {log}", path.display());
        assert!(log.contains(expect), "{}: {log}", path.display());
        // A client refuses the same files before it connects anywhere.
        let err = Group::with_options(quick())
            .makegateway(&socket_spec("127.0.0.1:9", path))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{}: {err}", path.display());
    }
}

#[test]
fn item3_insecure_mode_warns_loudly() {
    let local = Server::start(&["--insecure-no-auth", "--rust-worker"]);
    assert!(
        local.wait_log("WARNING", Duration::from_secs(3)),
        "{}",
        local.log()
    );
    let (_, log) = local.stop();
    assert!(log.contains("anyone who can connect"), "{log}");
    assert!(!log.contains("other hosts"), "{log}");
    let open = Server::start(&["--insecure-no-auth", "--rust-worker", "--bind", "0.0.0.0:0"]);
    assert!(
        open.wait_log("other hosts", Duration::from_secs(3)),
        "{}",
        open.log()
    );
}

#[test]
fn item4_remote_print_goes_to_the_server_log_not_its_stdout() {
    let Some((server, secret)) = python_server("print") else {
        return;
    };
    let group = Group::with_options(quick());
    let gw = group
        .makegateway(&socket_spec(&server.addr, &secret))
        .unwrap();
    let ch = gw
        .remote_exec("import sys\nprint('printed-remotely')\nsys.stdout.flush()\nchannel.send(1)")
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 1);
    group.terminate(Duration::from_secs(2));
    assert!(server.wait_log("printed-remotely", Duration::from_secs(3)));
    let (stdout, _) = server.stop();
    assert!(stdout.is_empty(), "server stdout got {stdout:?}");
}

#[test]
fn item4_bootstrap_line_without_newline_is_bounded() {
    let server = Server::start(&["--insecure-no-auth", "--rust-worker"]);
    let before = server.proc_status("VmRSS");
    let mut c = TcpStream::connect(&server.addr).unwrap();
    let chunk = vec![b'x'; 1 << 16];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        if c.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = c.shutdown(std::net::Shutdown::Write);
    let _ = read_to_end_within(&mut c, Duration::from_secs(5));
    let after = server.proc_status("VmRSS");
    assert!(
        sent < 64 << 20,
        "the server read 64 MiB without a newline (RSS {before} kB -> {after} kB)"
    );
    assert!(after < before + 16 * 1024, "RSS {before} kB -> {after} kB");
    assert!(
        server.wait_log("bootstrap line", Duration::from_secs(3)),
        "{}",
        server.log()
    );
    // The same bound when a Python master starts this binary as its interpreter.
    let mut worker = Command::new(BIN)
        .args(["-u", "-c", execnet::bootstrap::BOOTSTRAP_LINE])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = worker.stdin.take().unwrap();
    let mut sent = 0usize;
    while sent < 64 << 20 {
        if stdin.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    drop(stdin);
    let out = worker.wait_with_output().unwrap();
    assert!(sent < 64 << 20, "the worker read 64 MiB without a newline");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bootstrap line"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn item5_processes_started_by_remote_code_end_with_the_session() {
    let Some((server, secret)) = python_server("children") else {
        return;
    };
    // The client leaves while the worker is stuck in C code (the GIL held) and a child
    // it started is still running: the server ends both.
    let group = Group::with_options(quick());
    let gw = group
        .makegateway(&socket_spec(&server.addr, &secret))
        .unwrap();
    let ch = gw
        .remote_exec(
            "import os, subprocess\n\
             p = subprocess.Popen(['sleep', '300'])\n\
             channel.send((os.getpid(), p.pid))\n\
             sum(range(10 ** 13))\n",
        )
        .unwrap();
    let (worker, child): (u32, u32) = ch.receive().unwrap();
    group.terminate(Duration::from_millis(500));
    procs::gone_within(&[worker, child], Duration::from_secs(10));
    let (worker_gone, child_gone) = (!procs::alive(worker), !procs::alive(child));
    procs::kill_all(&[worker, child]);
    assert!(worker_gone, "the worker outlived its client");
    assert!(
        child_gone,
        "a process started by remote code outlived the client"
    );
}
