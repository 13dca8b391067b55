//! Gateways whose other end is a fake interpreter that misbehaves. Each case ends in a
//! specific, typed error within the configured timeout, with no process left behind;
//! memory stays bounded by the maximum message size and the unread-data bound.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use execnet::{DeathKind, Error, Group, Options, Value};
use execnet_tests::interp;

/// A fake interpreter: a Python script (run by CPython 3.11) started in place of
/// `python`. `body` runs after the standard prologue, which reads the bootstrap line.
fn fake(name: &str, body: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let py = interp::require("cpython3.11")?;
    let dir = std::env::temp_dir().join(format!("execnet-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.py"));
    let text = format!(
        "#!{}\nimport os, sys, time, struct\nsys.stdin.buffer.readline()\nout = sys.stdout.buffer\n{body}\n",
        py.path.display()
    );
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(path)
}

fn options() -> Options {
    Options::new()
        .startup_timeout(Duration::from_secs(3))
        .exit_timeout(Duration::from_millis(500))
        .max_queued_bytes(4 << 20)
        .limits(execnet::core::Limits {
            max_message: 1 << 20,
            ..execnet::core::Limits::DEFAULT
        })
}

fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Starts a gateway to the fake; the error if the start fails.
fn start(path: &std::path::Path) -> (Group, Result<execnet::Gateway, Error>) {
    let group = Group::with_options(options());
    let r = group.makegateway(&format!("popen//python={}", path.display()));
    (group, r)
}

/// Runs one exchange against a started fake and returns the error it ends with.
fn exchange_error(path: &std::path::Path) -> (Error, Duration, u32) {
    let (group, gw) = start(path);
    let gw = gw.expect("handshake succeeds");
    let pid = gw.pid().unwrap();
    let t = Instant::now();
    let err = match gw.remote_exec("channel.send(1)") {
        Ok(ch) => ch
            .receive_timeout::<i64>(Duration::from_secs(3))
            .unwrap_err(),
        Err(e) => e,
    };
    let elapsed = t.elapsed();
    group.terminate(Duration::from_secs(1));
    (err, elapsed, pid)
}

fn death_kind(e: &Error) -> Option<DeathKind> {
    match e {
        Error::GatewayDied(d) | Error::Bootstrap(d) => Some(d.kind),
        _ => None,
    }
}

#[test]
fn garbage_instead_of_handshake() {
    let Some(p) = fake(
        "garbage",
        "out.write(b'\\x00garbage\\xff'); out.flush(); time.sleep(30)",
    ) else {
        return;
    };
    let t = Instant::now();
    let (_g, r) = start(&p);
    let err = r.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(death_kind(&err), Some(DeathKind::Handshake), "{err}");
    assert!(err.to_string().contains("garbage"), "{err}");
}

#[test]
fn prints_before_handshake() {
    let Some(p) = fake(
        "chatty",
        "out.write(b'Welcome to Python!\\n1'); out.flush(); time.sleep(30)",
    ) else {
        return;
    };
    let (_g, r) = start(&p);
    let err = r.unwrap_err();
    assert_eq!(death_kind(&err), Some(DeathKind::Handshake), "{err}");
    assert!(err.to_string().contains("Welcome"), "{err}");
}

#[test]
fn never_answers_the_handshake() {
    let Some(p) = fake("silent", "time.sleep(60)") else {
        return;
    };
    let t = Instant::now();
    let (_g, r) = start(&p);
    let err = r.unwrap_err();
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(death_kind(&err), Some(DeathKind::Handshake), "{err}");
}

#[test]
fn never_answers_after_handshake() {
    let Some(p) = fake("mute", "out.write(b'1'); out.flush(); time.sleep(60)") else {
        return;
    };
    let (group, gw) = start(&p);
    let gw = gw.unwrap();
    let pid = gw.pid().unwrap();
    let ch = gw.remote_exec("channel.send(1)").unwrap();
    let t = Instant::now();
    let err = ch
        .receive_timeout::<i64>(Duration::from_millis(500))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(t.elapsed() < Duration::from_secs(1));
    group.terminate(Duration::from_secs(1));
    assert!(gone(pid));
}

#[test]
fn dies_mid_frame() {
    let Some(p) = fake(
        "midframe",
        "out.write(b'1'); out.flush(); sys.stdin.buffer.read(9)\nout.write(b'\\x04\\x00\\x00\\x00\\x02\\x00\\x00\\x00\\x10LQ'); out.flush()\nsys.stderr.write('fake: dying now\\n'); sys.exit(7)",
    ) else {
        return;
    };
    let (err, elapsed, pid) = exchange_error(&p);
    assert!(elapsed < Duration::from_secs(3));
    assert_eq!(death_kind(&err), Some(DeathKind::Truncated), "{err}");
    match &err {
        Error::GatewayDied(d) => {
            assert_eq!(d.exit, Some(execnet::Exit::Code(7)), "{d}");
            assert!(d.stderr_tail.iter().any(|l| l.contains("dying now")), "{d}");
        }
        other => panic!("{other}"),
    }
    assert!(gone(pid));
}

#[test]
fn header_announcing_two_gib() {
    let Some(p) = fake(
        "huge",
        "out.write(b'1'); out.flush(); sys.stdin.buffer.read(9)\nout.write(struct.pack('!bii', 4, 1, 0x7fffffff)); out.flush(); time.sleep(30)",
    ) else {
        return;
    };
    let (err, elapsed, pid) = exchange_error(&p);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(death_kind(&err), Some(DeathKind::Protocol), "{err}");
    assert!(err.to_string().contains("maximum message size"), "{err}");
    assert!(gone(pid));
}

#[test]
fn frame_for_a_channel_that_does_not_exist() {
    let Some(p) = fake(
        "unknown-channel",
        "out.write(b'1'); out.flush(); sys.stdin.buffer.read(9)\nout.write(struct.pack('!bii', 4, 99, 2) + b'LQ'); out.flush(); time.sleep(30)",
    ) else {
        return;
    };
    let (err, elapsed, pid) = exchange_error(&p);
    assert!(elapsed < Duration::from_secs(2));
    assert_eq!(death_kind(&err), Some(DeathKind::Protocol), "{err}");
    assert!(err.to_string().contains("never opened"), "{err}");
    assert!(gone(pid));
}

const FLOOD: &str = "out.write(b'1'); out.flush(); sys.stdin.buffer.read(9)\nblock = struct.pack('!bii', 4, 1, 65536 + 6) + b'A' + struct.pack('!i', 65536) + b'x' * 65536 + b'Q'\nwhile 1:\n    out.write(block)";

#[test]
fn floods_data_faster_than_we_read_and_is_cut_off() {
    let Some(p) = fake("flood", FLOOD) else {
        return;
    };
    let group = Group::with_options(options().on_overflow(execnet::Overflow::Fail));
    let gw = group
        .makegateway(&format!("popen//python={}", p.display()))
        .unwrap();
    let pid = gw.pid().unwrap();
    let ch = gw.remote_exec("flood").unwrap();
    // Do not read: the gateway must cut the worker off at the unread-data bound.
    let death = gw.wait_dead(Duration::from_secs(5)).expect("gateway dies");
    assert_eq!(death.kind, DeathKind::Overflow, "{death}");
    let drained = ch.iter::<Value>().count();
    assert!(drained <= (4 << 20) / 65536 + 2, "{drained} values queued");
    group.terminate(Duration::from_secs(1));
    assert!(gone(pid));
}

#[test]
fn floods_data_faster_than_we_read_and_is_paused() {
    let Some(p) = fake("flood-paused", FLOOD) else {
        return;
    };
    let (group, gw) = start(&p);
    let gw = gw.unwrap();
    let pid = gw.pid().unwrap();
    let ch = gw.remote_exec("flood").unwrap();
    // Not read for a while: the reader stops at the bound; nothing dies, nothing is lost.
    assert!(gw.wait_dead(Duration::from_secs(2)).is_none());
    let mut values = 0;
    while let Ok(v) = ch.receive_with_config::<Value>(Some(Duration::from_millis(200))) {
        assert!(matches!(&v.0, execnet::Value::Bytes(b) if b.len() == 65536));
        values += 1;
        if values == 200 {
            break;
        }
    }
    // 200 values are 12.5 MiB, three times the bound: the flood went on as they were read.
    assert_eq!(values, 200);
    assert!(gw.is_alive());
    group.terminate(Duration::from_secs(1));
    assert!(gone(pid));
}

#[test]
fn closes_stdin_early() {
    let Some(p) = fake(
        "closed-stdin",
        "out.write(b'1'); out.flush(); os.close(0)\nnull = os.open('/dev/null', os.O_RDONLY)\ntime.sleep(30)",
    ) else {
        return;
    };
    let (group, gw) = start(&p);
    let gw = gw.unwrap();
    let pid = gw.pid().unwrap();
    let t = Instant::now();
    // Writes to a closed pipe fail: the first that does ends the gateway.
    let payload = "x".repeat(1 << 16);
    let mut err = None;
    for _ in 0..64 {
        match gw.remote_exec(&payload) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("writing to a closed stdin fails");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(death_kind(&err), Some(DeathKind::Io), "{err}");
    group.terminate(Duration::from_secs(1));
    assert!(gone(pid));
}

/// A worker that answers the handshake and never reads: its group, gateway, pid and a
/// fresh channel to it.
fn never_reads(name: &str) -> Option<(Group, execnet::Gateway, u32, execnet::Channel)> {
    let p = fake(name, "out.write(b'1'); out.flush()\ntime.sleep(30)")?;
    let (group, gw) = start(&p);
    let gw = gw.unwrap();
    let pid = gw.pid().unwrap();
    let ch = gw.newchannel().unwrap();
    Some((group, gw, pid, ch))
}

#[test]
fn exit_is_not_held_up_by_a_send_blocked_on_a_full_pipe() {
    let Some((group, gw, pid, ch)) = never_reads("never-reads") else {
        return;
    };
    // The worker never reads: this send fills the pipe and blocks.
    let sender = std::thread::spawn(move || {
        ch.send(&execnet::Value::Bytes(vec![0u8; 16 << 20]))
            .unwrap_err()
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    gw.exit_timeout(Duration::from_millis(500));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let err = sender.join().unwrap();
    assert!(
        matches!(err, Error::GatewayDied(_)),
        "the blocked send ends with the gateway: {err}"
    );
    assert!(t.elapsed() < Duration::from_secs(4));
    group.terminate(Duration::from_secs(1));
    assert!(gone(pid));
}

/// `send_timeout` against a worker that never reads: a small value goes out at once (the
/// pipe takes it); one larger than the pipe gives up with `Timeout` when the time runs
/// out, and the gateway, whose stream now holds half a value, is closed.
#[test]
fn send_timeout_gives_up_on_a_worker_that_never_reads() {
    let Some((group, gw, pid, ch)) = never_reads("never-reads-timeout") else {
        return;
    };
    ch.send_timeout(&42, Duration::from_secs(5)).unwrap();
    let t = Instant::now();
    let err = ch
        .send_timeout(
            &execnet::Value::Bytes(vec![0u8; 16 << 20]),
            Duration::from_millis(500),
        )
        .unwrap_err();
    let waited = t.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(gw.wait_dead(Duration::from_secs(3)).is_some());
    group.terminate(Duration::from_secs(1));
    assert!(gone(pid));
}

/// A worker sends `set(float('nan') for _ in range(50000))`: NaNs are never equal to each
/// other, so every one is a member, and receiving them is linear (it took 37 s when the
/// duplicate index probed each NaN against the others).
#[test]
fn a_set_of_fifty_thousand_nans_from_a_worker_is_received_quickly() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = Group::new();
    let gw = group
        .makegateway(&format!("popen//python={}", py.path.display()))
        .unwrap();
    let ch = gw
        .remote_exec("channel.send(set(float('nan') for _ in range(50000)))")
        .unwrap();
    let t = Instant::now();
    let value: Value = ch.receive().unwrap();
    let took = t.elapsed();
    assert!(
        matches!(&value, Value::Set(items) if items.len() == 50_000),
        "a set of 50,000 members"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    group.terminate(Duration::from_secs(2));
}

/// A first worker whose report of its compiled agent is broken (a code object's first byte,
/// then garbage): the next worker of the same command is sent it, fails to start, and the
/// entry is forgotten, so the one after compiles the source and works.
#[test]
fn a_broken_compiled_agent_is_forgotten_after_one_failed_start() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("execnet-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken-report.py");
    let _ = std::fs::remove_file(dir.join("broken-report.py.count"));
    let script = format!(
        "#!{}\n\
         import os, sys, struct, time\n\
         line = sys.stdin.readline()\n\
         count = __file__ + '.count'\n\
         n = int(open(count).read()) if os.path.exists(count) else 0\n\
         open(count, 'w').write(str(n + 1))\n\
         if n == 0:\n\
         \x20   version = sys.version.encode()\n\
         \x20   code = b'\\xe3 not marshal data'\n\
         \x20   out = sys.stdout.buffer\n\
         \x20   out.write(b'C' + struct.pack('!ii', len(version), len(code)) + version + code + b'1')\n\
         \x20   out.flush()\n\
         \x20   time.sleep(30)\n\
         else:\n\
         \x20   exec(eval(line))\n",
        py.path.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = format!("popen//python={}", path.display());
    let group = Group::with_options(options());
    // The first start completes its handshake: its report is taken.
    let first = group.makegateway(&spec).unwrap();
    first.exit_timeout(Duration::from_millis(200));
    // The second is sent the broken code and fails.
    let err = group.makegateway(&spec).unwrap_err();
    assert!(matches!(err, Error::Bootstrap(_)), "{err}");
    assert!(err.to_string().contains("marshal"), "{err}");
    // The third compiles the source.
    let third = group.makegateway(&spec).unwrap();
    let ch = third.remote_exec("channel.send(6 * 7)").unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);
    group.terminate(Duration::from_secs(2));
}
