//! `execnet exec --timeout 10` (and `info`, `rsync`) against peers that misbehave in
//! every phase: each run ends within 12 s with status 3, and leaves no process behind.
//! Also the other faults of the command's error reporting: a header cut at EOF, an
//! unusable `chdir=`, a terminal slower than the worker.

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;
#[path = "../../tests/src/procs.rs"]
#[allow(dead_code)]
mod procs;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn execnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_execnet"))
}

/// A fake interpreter (a CPython 3.11 script started in place of `python`) that writes
/// its pid to `pid` next to it, reads the bootstrap line, then runs `body`.
fn fake(dir: &Path, name: &str, body: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let py = interp::require("cpython3.11")?;
    let path = dir.join(format!("{name}.py"));
    let text = format!(
        "#!{}\nimport os, sys, time, struct\nopen({:?}, 'w').write(str(os.getpid()))\nsys.stdin.buffer.readline()\nout = sys.stdout.buffer\n{body}\n",
        py.path.display(),
        dir.join(format!("{name}.pid")).display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(path)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("execnet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The pids the fakes of `dir` wrote that are still running a moment after the command.
fn left_behind(dir: &Path) -> Vec<i32> {
    let pids: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "pid")
                .then(|| std::fs::read_to_string(&p).ok()?.trim().parse().ok())
                .flatten()
        })
        .collect();
    procs::survivors(&pids, Duration::from_millis(500))
}

struct Case {
    name: String,
    args: Vec<String>,
    dir: PathBuf,
}

/// Runs every case at once; each must end within 12 s with status 3, its stderr naming
/// `expect` when given, and leave none of its fakes running.
fn run_cases(cases: Vec<(Case, Option<&'static str>)>) {
    type Outcome<'e> = (String, Duration, Output, Vec<i32>, Option<&'e str>);
    let results: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .into_iter()
            .map(|(case, expect)| {
                s.spawn(move || {
                    let t = Instant::now();
                    let mut child = execnet()
                        .args(&case.args)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    let mut err = Vec::new();
                    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
                    let status = child.wait().unwrap();
                    let elapsed = t.elapsed();
                    let left = left_behind(&case.dir);
                    let out = Output {
                        status,
                        stdout: Vec::new(),
                        stderr: err,
                    };
                    (case.name, elapsed, out, left, expect)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut problems = Vec::new();
    for (name, elapsed, out, left, expect) in results {
        let err = String::from_utf8_lossy(&out.stderr);
        if elapsed > Duration::from_secs(12) {
            problems.push(format!("{name}: took {elapsed:?}"));
        }
        if out.status.code() != Some(3) {
            problems.push(format!("{name}: status {:?}, stderr {err:?}", out.status));
        }
        if let Some(expect) = expect {
            if !err.contains(expect) {
                problems.push(format!("{name}: stderr {err:?} lacks {expect:?}"));
            }
        }
        if !left.is_empty() {
            problems.push(format!("{name}: left running: {left:?}"));
        }
        eprintln!(
            "{name}: {:?} in {elapsed:.1?}: {}",
            out.status.code(),
            err.trim()
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

const HANDSHAKE: &str = "out.write(b'1'); out.flush()";

/// The hostile fake interpreters of `tests/tests/hostile_peers.rs`, and the phases of
/// issue 11 item 10: a silent interpreter, a silent TCP peer, a `chdir=`/`env:` setup
/// that never answers, a `--send` blocked on a worker that never reads, and `info`.
#[test]
fn exec_timeout_ends_every_phase_within_the_bound() {
    let fakes: [(&str, String); 10] = [
        (
            "garbage",
            "out.write(b'\\x00garbage\\xff'); out.flush(); time.sleep(60)".into(),
        ),
        (
            "chatty",
            "out.write(b'Welcome to Python!\\n1'); out.flush(); time.sleep(60)".into(),
        ),
        ("silent", "time.sleep(60)".into()),
        ("mute", format!("{HANDSHAKE}; time.sleep(60)")),
        (
            "midframe",
            format!("{HANDSHAKE}; sys.stdin.buffer.read(9)\nout.write(b'\\x04\\x00\\x00\\x00\\x02\\x00\\x00\\x00\\x10LQ'); out.flush()\nsys.exit(7)"),
        ),
        (
            "huge",
            format!("{HANDSHAKE}; sys.stdin.buffer.read(9)\nout.write(struct.pack('!bii', 4, 1, 0x7fffffff)); out.flush(); time.sleep(60)"),
        ),
        (
            "unknown-channel",
            format!("{HANDSHAKE}; sys.stdin.buffer.read(9)\nout.write(struct.pack('!bii', 4, 99, 2) + b'LQ'); out.flush(); time.sleep(60)"),
        ),
        (
            "flood",
            format!("{HANDSHAKE}; sys.stdin.buffer.read(9)\nblock = struct.pack('!bii', 4, 1, 65536 + 6) + b'A' + struct.pack('!i', 65536) + b'x' * 65536 + b'Q'\nwhile 1:\n    out.write(block)"),
        ),
        (
            "closed-stdin",
            format!("{HANDSHAKE}; os.close(0)\nnull = os.open('/dev/null', os.O_RDONLY)\ntime.sleep(60)"),
        ),
        // Its input pipe shrunk to a page, so that a --send of 200 KB blocks.
        (
            "never-reads",
            format!("import fcntl\nfcntl.fcntl(0, 1031, 4096)\n{HANDSHAKE}\ntime.sleep(60)"),
        ),
    ];
    let bodies: std::collections::HashMap<&str, &String> =
        fakes.iter().map(|(n, b)| (*n, b)).collect();
    // Each case has its own directory and its own copy of the fakes it starts, so that
    // the pids it leaves behind are its own.
    let mut cases = Vec::new();
    let mut case =
        |name: &str, uses: &[&str], args: &dyn Fn(&[String]) -> Vec<String>, expect| -> bool {
            let dir = scratch(&format!("timeout-{}", cases.len()));
            let mut paths = Vec::new();
            for fake_name in uses {
                match fake(&dir, fake_name, bodies[fake_name]) {
                    Some(p) => paths.push(p.display().to_string()),
                    None => return false,
                }
            }
            cases.push((
                Case {
                    name: name.into(),
                    args: args(&paths),
                    dir,
                },
                expect,
            ));
            true
        };
    let exec = |spec: String| -> Vec<String> {
        vec![
            "exec".into(),
            "--timeout".into(),
            "10".into(),
            spec,
            "channel.send(1)".into(),
        ]
    };
    for (name, _) in &fakes {
        if !case(
            name,
            &[name],
            &|p| exec(format!("popen//python={}", p[0])),
            None,
        ) {
            return;
        }
    }
    // Item 10: the phases that the receive loop's timeout did not cover.
    let starting = Some("timed out after 10 s while starting the gateway");
    case(
        "silent interpreter",
        &["silent"],
        &|p| exec(format!("popen//python={}", p[0])),
        starting,
    );
    case(
        "chdir= never applied",
        &["mute"],
        &|p| exec(format!("popen//python={}//chdir=/tmp", p[0])),
        starting,
    );
    case(
        "env: never applied",
        &["mute"],
        &|p| exec(format!("popen//python={}//env:X=1", p[0])),
        starting,
    );
    case(
        "--send blocked",
        &["never-reads"],
        &|p| {
            let mut args = exec(format!("popen//python={}", p[0]));
            for c in ['x', 'y'] {
                args.push("--send".into());
                args.push(format!("'{}'", c.to_string().repeat(100_000)));
            }
            args
        },
        Some("timed out after 10 s while sending --send value"),
    );
    // A TCP peer that accepts and then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent_peer = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(14));
        drop(held);
    });
    case(
        "silent TCP peer",
        &[],
        &|_| exec(format!("socket=127.0.0.1:{port}")),
        starting,
    );
    // info: one gateway that never starts, one that never answers rinfo.
    case(
        "info",
        &["silent", "never-reads"],
        &|p| {
            vec![
                "info".into(),
                "--timeout".into(),
                "10".into(),
                format!("popen//python={}", p[0]),
                format!("popen//python={}", p[1]),
            ]
        },
        Some("timed out after 10 s"),
    );
    let dirs: Vec<PathBuf> = cases.iter().map(|(c, _)| c.dir.clone()).collect();
    run_cases(cases);
    silent_peer.join().unwrap();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn timeout_values_that_are_not_durations_are_usage_errors() {
    for bad in ["inf", "1e30", "nan", "-1", "0", "soon"] {
        let out = execnet()
            .args(["exec", "--timeout", bad, "popen", "pass"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--timeout {bad}: {err}");
        assert!(err.starts_with("execnet: "), "{err}");
        assert!(err.contains("--timeout"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// A worker's output that ends inside a frame header is a lost gateway, not success.
#[test]
fn header_cut_at_eof_exits_non_zero() {
    let dir = scratch("cut-header");
    let Some(p) = fake(
        &dir,
        "cut",
        &format!("{HANDSHAKE}; sys.stdin.buffer.read(9)\nout.write(b'\\x04\\x00\\x00'); out.flush(); sys.exit(0)"),
    ) else {
        return;
    };
    let out = execnet()
        .args([
            "exec",
            "--timeout",
            "10",
            &format!("popen//python={}", p.display()),
            "channel.send(1)",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.starts_with("execnet: "), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `chdir=` the worker cannot use is a failure to start (3), not the user's code
/// raising (1).
#[test]
fn unusable_chdir_is_a_startup_failure() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let out = execnet()
        .args([
            "exec",
            &format!(
                "popen//python={}//chdir=/proc/no/such/dir",
                py.path.display()
            ),
            "channel.send(1)",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.starts_with("execnet: "), "{err}");
    assert!(err.contains("chdir="), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}

/// A worker that sends far more than the unread-data bound to a reader that is slower
/// than it: `exec` waits for the reader (backpressure) and loses nothing.
#[test]
fn exec_applies_backpressure_to_a_fast_worker() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let mut child = execnet()
        .args([
            "exec",
            &format!("popen//python={}", py.path.display()),
            "for i in range(48):\n    channel.send(str(i) * (1 << 20))",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The worker is done sending long before this reader starts: 48 MiB wait on us.
    std::thread::sleep(Duration::from_secs(4));
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        // A slow terminal.
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert_eq!(lines, 48, "{err}");
}

/// A value the worker cannot load is the worker's error about our input (its `LoadError`,
/// status 1), not a protocol error blamed on the worker.
#[test]
fn a_value_the_worker_cannot_load_is_reported_as_its_error() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    // CPython 3.11 refuses to convert ints of more than 4,300 digits.
    let out = execnet()
        .args([
            "exec",
            "--timeout",
            "20",
            &format!("popen//python={}", py.path.display()),
            "channel.send(channel.receive())",
            "--send",
            &"7".repeat(5000),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("LoadError"), "{err}");
    assert!(!err.contains("protocol error"), "{err}");
}
