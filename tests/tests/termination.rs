//! Termination: workers that loop forever, ignore SIGTERM, fork grandchildren or die in
//! the middle of a message all end within the timeout with a clear error, leaving no
//! zombie and no file descriptor behind.
//!
//! One test runs the scenarios in sequence so that the descriptor counts of this process
//! are not disturbed by other tests running in parallel threads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use execnet::{Error, Group, Options};
use execnet_tests::interp;

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (bounded) for the descriptor count to come back to `baseline`: reader threads
/// close their pipe ends as they finish.
fn assert_fds_back(baseline: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count() > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        fd_count() <= baseline,
        "{what}: {} descriptors open, {baseline} before",
        fd_count()
    );
}

/// State of a process: `None` when it no longer exists.
fn proc_state(pid: i64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

fn assert_gone(pid: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(state) = proc_state(pid) {
        // An orphaned grandchild is reaped by init, not by us: dead is enough there.
        if state == 'Z' && what.contains("grandchild") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: pid {pid} still there (state {state})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn stuck_ignoring_forking_and_dying_workers_all_end_cleanly() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let python = py.path.display().to_string();
    let dir = std::env::temp_dir().join(format!("execnet-term-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let baseline = fd_count();
    let options = Options::new().exit_timeout(Duration::from_secs(1));

    // 1. An endless loop in remote code.
    {
        let group = Group::with_options(options.clone());
        let gw = group
            .makegateway(&format!("popen//python={python}"))
            .unwrap();
        let pid = i64::from(gw.pid().unwrap());
        let ch = gw
            .remote_exec("channel.send(1)\nwhile 1:\n    pass\n")
            .unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 1);
        let t = Instant::now();
        group.terminate(Duration::from_secs(2));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "loop: {:?}",
            t.elapsed()
        );
        let err = ch.receive::<i64>().unwrap_err();
        assert!(matches!(err, Error::GatewayDied(_)), "loop: {err}");
        assert_gone(pid, "endless loop worker");
    }

    // 2. A worker that ignores SIGTERM and does not exit when its interpreter does (a
    //    shell wrapper that ignores TERM and outlives Python).
    {
        let wrapper = script(
            &dir,
            "ignore-term.sh",
            &format!("#!/bin/sh\ntrap '' TERM\n{python} \"$@\"\nwhile :; do sleep 1; done\n"),
        );
        let group = Group::with_options(options.clone());
        let gw = group
            .makegateway(&format!("popen//python={}", wrapper.display()))
            .unwrap();
        let pid = i64::from(gw.pid().unwrap());
        let ch = gw
            .remote_exec("import signal\nchannel.send(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)\nwhile 1:\n    pass\n")
            .unwrap();
        assert!(ch.receive::<bool>().unwrap(), "SIGTERM is not ignored");
        let t = Instant::now();
        group.terminate(Duration::from_secs(2));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "ignore TERM: {:?}",
            t.elapsed()
        );
        match gw.exit_status() {
            Some(execnet::Exit::Signal(9)) => {}
            other => panic!("ignore TERM: expected SIGKILL, got {other:?}"),
        }
        assert!(ch.receive::<i64>().is_err());
        assert_gone(pid, "TERM-ignoring worker");
    }

    // 3. A worker whose code forked a grandchild.
    {
        let group = Group::with_options(options.clone());
        let gw = group
            .makegateway(&format!("popen//python={python}"))
            .unwrap();
        let pid = i64::from(gw.pid().unwrap());
        let ch = gw
            .remote_exec(
                "import subprocess\np = subprocess.Popen(['sleep', '1000'])\nchannel.send(p.pid)\n",
            )
            .unwrap();
        let grandchild: i64 = ch.receive().unwrap();
        assert_eq!(proc_state(grandchild).map(|s| s != 'Z'), Some(true));
        let t = Instant::now();
        group.terminate(Duration::from_secs(2));
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_gone(pid, "forking worker");
        assert_gone(grandchild, "grandchild");
    }

    // 4. A worker that dies in the middle of a message.
    {
        let fake = script(
            &dir,
            "dies-mid-frame.py",
            &format!(
                "#!{python}\nimport sys, os\nsys.stdin.readline()\nos.write(1, b'1')\nos.read(0, 9)\nos.write(1, b'\\x04\\x00\\x00')\nsys.stderr.write('fake worker: giving up\\n')\nos._exit(3)\n"
            ),
        );
        let group = Group::with_options(options.clone());
        let gw = group
            .makegateway(&format!("popen//python={}", fake.display()))
            .unwrap();
        let pid = i64::from(gw.pid().unwrap());
        let t = Instant::now();
        let ch = gw.remote_exec("channel.send(1)").unwrap();
        let err = ch
            .receive_timeout::<i64>(Duration::from_secs(5))
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        match &err {
            Error::GatewayDied(d) => {
                assert!(d.cause.contains("inside a message"), "{d}");
                assert_eq!(d.exit, Some(execnet::Exit::Code(3)), "{d}");
                assert!(d.stderr_tail.iter().any(|l| l.contains("giving up")), "{d}");
            }
            other => panic!("mid-frame: {other}"),
        }
        group.terminate(Duration::from_secs(1));
        assert_gone(pid, "mid-frame worker");
    }

    assert_fds_back(baseline, "after all scenarios");
    let _ = std::fs::remove_dir_all(&dir);
}
