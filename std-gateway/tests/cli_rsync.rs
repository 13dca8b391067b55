//! `execnet rsync SRC SPEC:DEST...`: a tree to two gateways at once, a second run that
//! sends nothing, `--delete`, the summary on stdout, progress on stderr (a line per file
//! off a terminal, a bar on one), and bad targets as usage errors.

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn execnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_execnet"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("execnet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every entry below `root`: relative path, kind, mode, and content or link target.
fn listing(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", meta.permissions().mode() & 0o7777)
            } else {
                format!(
                    "file {:o} {:?}",
                    meta.permissions().mode() & 0o7777,
                    std::fs::read(&p).unwrap()
                )
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

fn ok(out: &Output) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    (stdout, stderr)
}

#[test]
fn rsync_a_tree_to_two_gateways() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let dir = scratch("rsync");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("top.txt"), "top").unwrap();
    std::fs::write(src.join("a/b/deep.bin"), [0u8, 1, 2, 255]).unwrap();
    std::fs::write(src.join("a/empty"), "").unwrap();
    std::fs::write(src.join("a/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("a/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("b/deep.bin", src.join("a/link")).unwrap();
    let spec = format!("popen//python={}", py.path.display());
    let targets = [dir.join("one"), dir.join("two")];
    let args = |extra: &[&str]| {
        let mut cmd = execnet();
        cmd.arg("rsync").args(extra).arg(&src);
        for t in &targets {
            cmd.arg(format!("{spec}:{}", t.display()));
        }
        cmd
    };
    let (stdout, stderr) = ok(&args(&[]).output().unwrap());
    assert!(
        stdout.starts_with("2 targets: 4 files compared, 4 read and sent"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    // Not a terminal: plain lines, one per file.
    assert!(stderr.contains("execnet: 4 files ("), "{stderr}");
    assert!(stderr.contains("[4/4]"), "{stderr}");
    for t in &targets {
        assert_eq!(listing(&src), listing(t), "{}", t.display());
    }
    // Nothing changed: nothing is sent; -q says nothing on stderr.
    let (stdout, stderr) = ok(&args(&["-q"]).output().unwrap());
    assert!(stdout.contains("0 read and sent"), "{stdout}");
    assert_eq!(stderr, "");
    // A change, and an extra file that --delete removes.
    std::fs::write(src.join("top.txt"), "changed").unwrap();
    std::fs::write(targets[1].join("extra"), "x").unwrap();
    let (stdout, _) = ok(&args(&["--delete"]).output().unwrap());
    assert!(
        stdout.contains("1 read and sent") && stdout.contains("1 deleted"),
        "{stdout}"
    );
    for t in &targets {
        assert_eq!(listing(&src), listing(t), "{}", t.display());
    }
    // On a terminal: a progress bar, cleared at the end.
    std::fs::write(src.join("top.txt"), "changed again").unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut cmd = args(&[]);
    cmd.env("TERM", "xterm")
        .stderr(std::process::Stdio::from(pty.slave));
    let out = cmd.output().unwrap();
    drop(cmd);
    let mut seen = Vec::new();
    let mut master = std::fs::File::from(pty.master);
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    ok(&out);
    assert!(
        seen.contains("files") && !seen.contains("[1/1]"),
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rsync_failures_have_documented_statuses() {
    // No source: bad input.
    let out = execnet()
        .args(["rsync", "/no/such/dir", "popen:/tmp/x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("execnet: /no/such/dir"), "{err}");
    // A target whose spec does not parse: usage error before anything starts.
    let out = execnet()
        .args(["rsync", "/tmp", "popen//bogus=1:/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A gateway that cannot start: 3.
    let dir = scratch("rsync-fail");
    let out = execnet()
        .arg("rsync")
        .arg(&dir)
        .arg("popen//python=/no/such/python:/tmp/x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("/no/such/python"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
