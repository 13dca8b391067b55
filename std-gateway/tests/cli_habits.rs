//! The command fits a person's habits (issue 14, items 2 and 5): `info --json`, `exec -f
//! -`, shell completions, a spinner on a terminal, a closed stdout ends quietly, `encode`
//! keeps binary off a terminal, usage errors in the `execnet:` form, `encode
//! --format-version`, and `-v`/`-q`/`EXECNET_DEBUG` for tracing (the agent's too).

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn execnet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_execnet"));
    cmd.env_remove("EXECNET_DEBUG");
    cmd
}

fn spec() -> Option<String> {
    let py = interp::require("cpython3.11")?;
    Some(format!("popen//python={}", py.path.display()))
}

/// A pseudo-terminal: the side to give a child, and everything written to it.
struct Pty {
    slave: Option<OwnedFd>,
    reader: std::thread::JoinHandle<Vec<u8>>,
}

impl Pty {
    fn new() -> Pty {
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut master = std::fs::File::from(pty.master);
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Reading ends with EIO once no one holds the other side open.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            seen
        });
        Pty {
            slave: Some(pty.slave),
            reader,
        }
    }

    fn stdio(&self) -> Stdio {
        Stdio::from(self.slave.as_ref().unwrap().try_clone().unwrap())
    }

    /// What was written, once the child has exited.
    fn seen(mut self) -> String {
        drop(self.slave.take());
        String::from_utf8_lossy(&self.reader.join().unwrap()).into_owned()
    }
}

#[test]
fn info_json_gives_one_object_per_spec() {
    let Some(spec) = spec() else { return };
    let out = execnet()
        .args(["info", "--json", &spec, "popen//python=/no/such/python"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["spec"], spec.as_str());
    assert!(items[0]["version"].as_str().unwrap().starts_with("3."));
    assert_eq!(items[0]["version_info"][0], 3);
    assert!(items[0]["pid"].as_i64().unwrap() > 0);
    assert!(items[0]["startup_seconds"].as_f64().unwrap() > 0.0);
    assert!(items[1]["error"]
        .as_str()
        .unwrap()
        .contains("/no/such/python"));
}

#[test]
fn exec_reads_the_code_from_stdin() {
    let Some(spec) = spec() else { return };
    let mut child = execnet()
        .args(["exec", &spec, "-f", "-", "--send", "20"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"x = channel.receive()\nchannel.send(x + 1)\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "21\n");
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef execnet"),
        ("fish", "complete -c execnet"),
    ] {
        let out = execnet().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..200.min(text.len())]
        );
        for sub in ["exec", "rsync", "decode", "timeout", "format-version"] {
            assert!(text.contains(sub), "{shell} lacks {sub}");
        }
    }
    let out = execnet().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn spinner_on_a_terminal_while_a_slow_gateway_starts() {
    use std::os::unix::fs::PermissionsExt;
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    // An interpreter that takes a second to start, as Jython takes several.
    let slow = std::env::temp_dir().join(format!("execnet-slow-python-{}", std::process::id()));
    std::fs::write(
        &slow,
        format!("#!/bin/sh\nsleep 1\nexec {} \"$@\"\n", py.path.display()),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = format!("popen//python={}", slow.display());
    let run = |quiet: bool| {
        let pty = Pty::new();
        let mut cmd = execnet();
        if quiet {
            cmd.arg("-q");
        }
        cmd.args(["exec", &spec, "channel.send(1)"])
            .env("TERM", "xterm")
            .stderr(pty.stdio());
        let out = cmd.output().unwrap();
        // The command holds its copy of the terminal until it is dropped.
        drop(cmd);
        (out, pty.seen())
    };
    let (out, seen) = run(false);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    assert!(seen.contains(&format!("starting {spec}")), "{seen:?}");
    let (out, seen) = run(true);
    assert!(out.status.success());
    assert!(!seen.contains("starting"), "-q still drew: {seen:?}");
    // Not a terminal: no spinner either.
    let out = execnet()
        .args(["exec", &spec, "channel.send(1)"])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&slow);
}

/// `| head`: the reader goes away; the command ends at once, says nothing, status 0.
#[test]
fn a_closed_stdout_ends_quietly() {
    let Some(spec) = spec() else { return };
    let mut child = execnet()
        .args(["exec", &spec, "while 1: channel.send(1)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "1\n");
    // The reader is gone (dropped with the BufReader).
    let t = Instant::now();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    // decode of a large value into a reader that takes ten bytes.
    let mut data = vec![2u8, b'A'];
    data.extend_from_slice(&(4u32 << 20).to_be_bytes());
    data.extend(std::iter::repeat_n(0u8, 4 << 20));
    data.push(b'Q');
    let mut child = execnet()
        .arg("decode")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let out2 = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(&head[..3], b"b'\\");
    assert_eq!(out2.status.code(), Some(0));
    assert!(
        out2.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
}

#[test]
fn encode_keeps_binary_off_a_terminal() {
    let pty = Pty::new();
    let out = execnet()
        .args(["encode", "[1, 2]"])
        .stdout(pty.stdio())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("execnet: ") && err.contains("terminal"),
        "{err}"
    );
    let out = execnet()
        .args(["encode", "--force", "[1, 2]"])
        .stdout(pty.stdio())
        .output()
        .unwrap();
    assert!(out.status.success());
    let seen = pty.seen();
    assert!(seen.contains('K') && seen.ends_with('Q'), "{seen:?}");
}

#[test]
fn usage_errors_are_one_execnet_line_with_status_2() {
    for args in [
        &["--bogus"][..],
        &["exec"][..],
        &["encode", "--version-byte", "1", "1"][..],
        &["exec", "--timeout", "inf", "popen", "pass"][..],
        &["decode", "--internal", "a", "b"][..],
        &["rsync", "src"][..],
        &["rsync", "src", "no-colon"][..],
    ] {
        let out = execnet().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("execnet: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // Help and version are not errors.
    let out = execnet().arg("--help").output().unwrap();
    assert!(out.status.success());
    let out = execnet().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn encode_format_version_is_not_the_program_version() {
    let out = execnet()
        .args(["encode", "--format-version", "1", "[1]"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout[0], 1);
    let out = execnet().args(["encode", "[1]"]).output().unwrap();
    assert_eq!(out.stdout[0], 2);
    let out = execnet().args(["encode", "--version"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// Default: nothing on stderr. `-vv` or `EXECNET_DEBUG`: the library's debug tracing
/// (spawn, handshake) and the agent's own lines (start, each exec, end). `-q` with
/// `EXECNET_DEBUG` set still gets the agent's lines, which the worker writes.
#[test]
fn verbosity_and_execnet_debug_turn_tracing_on() {
    let Some(spec) = spec() else { return };
    let run = |args: &[&str], debug: bool| {
        let mut cmd = execnet();
        cmd.args(args).args(["exec", &spec, "channel.send(1)"]);
        if debug {
            cmd.env("EXECNET_DEBUG", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let quiet = run(&[], false);
    assert_eq!(quiet, "");
    for (args, debug) in [(&["-vv"][..], false), (&[][..], true)] {
        let err = run(args, debug);
        for needle in [
            "DEBUG",
            "starting the worker",
            "handshake complete",
            "execnet agent[",
            "started:",
            "channel 1: exec 15 bytes of source",
            "ending: terminate",
        ] {
            assert!(
                err.contains(needle),
                "{args:?} {debug}: {needle:?} missing in\n{err}"
            );
        }
        assert!(!err.contains("TRACE"), "{err}");
    }
    // A worker that does not inherit the environment (as over ssh) hears it from the
    // master at bootstrap.
    let py = interp::require("cpython3.11").unwrap();
    let out = execnet()
        .env("EXECNET_DEBUG", "1")
        .args([
            "exec",
            &format!("popen//python=env -u EXECNET_DEBUG {}", py.path.display()),
            "import os; channel.send(os.environ.get('EXECNET_DEBUG'))",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "None\n", "{err}");
    assert!(
        err.contains("execnet agent[") && err.contains("started:"),
        "{err}"
    );
    let err = run(&["-vvv"], false);
    assert!(err.contains("TRACE"), "{err}");
    let err = run(&["-v"], false);
    assert!(err.contains("started in"), "{err}");
    assert!(!err.contains("DEBUG"), "{err}");
}
