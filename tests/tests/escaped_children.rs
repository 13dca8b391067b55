//! Children that leave the worker's process group: one started with `setsid()`, and a
//! daemon (fork, `setsid()`, fork again, the middle process exits). Killing the process
//! group misses both; the agent finds them as its descendants (orphans are reparented
//! to it, a Linux child subreaper) and kills them when the gateway exits or when the
//! master dies while the agent can still run.

use std::time::Duration;

use execnet::Options;
use execnet_tests::interp;
use execnet_tests::procs::{alive, master_role, start_master, survivors};

const ESCAPE: &str = r#"
import os, subprocess
lone = subprocess.Popen(['sleep', '1000'], preexec_fn=os.setsid)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.write(w, str(os.getpid()).encode('ascii'))
        os.execvp('sleep', ['sleep', '1000'])
    finally:
        os._exit(1)
os.waitpid(pid, 0)
daemon = int(os.read(r, 32))
channel.send([lone.pid, daemon])
"#;

fn session(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    rest.split(' ').nth(3)?.parse().ok()
}

fn gone_after_exit(name: &str) {
    let Some((_group, gw)) = execnet_tests::popen(name, Options::default()) else {
        return;
    };
    let worker = i64::from(gw.pid().unwrap());
    let ch = gw.remote_exec(ESCAPE).unwrap();
    let pids: Vec<i64> = ch.receive().unwrap();
    for &p in &pids {
        assert!(alive(p), "{name}: {p} did not start");
        assert_ne!(session(p), session(worker), "{name}: {p} left the session");
    }
    gw.exit_timeout(Duration::from_secs(2));
    assert!(
        survivors(&pids, Duration::from_secs(10)).is_empty(),
        "{name}: a setsid() child or a daemon outlived exit(): {pids:?}"
    );
}

#[test]
fn setsid_children_die_with_exit_cpython311() {
    gone_after_exit("cpython3.11");
}

#[test]
fn setsid_children_die_with_exit_cpython27() {
    gone_after_exit("cpython2.7");
}

#[test]
fn setsid_children_die_with_exit_pypy3() {
    gone_after_exit("pypy3");
}

const ROLE: &str = "EXECNET_TEST_ESCAPE_PYTHON";

/// Not a test of its own: the master that the tests below start and kill.
#[test]
fn escape_master_role() {
    master_role(ROLE, ESCAPE);
}

fn gone_after_master_death(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let (mut master, pids) = start_master("escape_master_role", ROLE, &py.path);
    assert_eq!(pids.len(), 2, "{name}: the master reports the pids");
    master.kill().unwrap();
    master.wait().unwrap();
    assert!(
        survivors(&pids, Duration::from_secs(10)).is_empty(),
        "{name}: a setsid() child or a daemon outlived the master: {pids:?}"
    );
}

#[test]
fn setsid_children_die_with_master_cpython311() {
    gone_after_master_death("cpython3.11");
}

#[test]
fn setsid_children_die_with_master_cpython27() {
    gone_after_master_death("cpython2.7");
}

#[test]
fn setsid_children_die_with_master_pypy3() {
    gone_after_master_death("pypy3");
}
