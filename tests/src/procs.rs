//! Processes seen from outside, through `/proc`: whether a pid still runs, waiting for
//! pids to go, killing what is left, and a master started as a child process of its own
//! so that a test can kill it. Shared by the tests of both crates (the `execnet` crate's
//! tests include this file by path).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `pid` runs: it has a `/proc` entry and is not a zombie waiting for its reaper.
pub fn alive(pid: impl Into<i64>) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.into())) {
        // The state follows the command name, which is in parentheses and may hold any
        // character, ") " included: the last ") " ends it.
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `limit` until none of `pids` runs; whether they all went.
pub fn gone_within<P: Copy + Into<i64>>(pids: &[P], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|&p| alive(p)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Sends SIGKILL to each of `pids`, ignoring errors: the ones already gone (or reaped
/// and reused, which these short-lived tests do not meet) refuse it.
pub fn kill_all<P: Copy + Into<i64>>(pids: &[P]) {
    for &p in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p.into() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Waits up to `limit` for `pids` to go, then kills the ones that did not; returns those.
pub fn survivors<P: Copy + Into<i64>>(pids: &[P], limit: Duration) -> Vec<P> {
    gone_within(pids, limit);
    let left: Vec<P> = pids.iter().copied().filter(|&p| alive(p)).collect();
    kill_all(&left);
    left
}

/// Starts this test binary again to run the test `role` alone (a [`master_role`]) with
/// the variable `role_var` naming the interpreter `python`. Returns the master and the
/// pids it reported (none when it ended without reporting them).
pub fn start_master(role: &str, role_var: &str, python: &Path) -> (Child, Vec<i64>) {
    let mut master = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", role, "--nocapture", "--test-threads=1"])
        .env(role_var, python)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pids = Vec::new();
    for line in BufReader::new(master.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest may have written "test NAME ... " on the same line.
        if let Some((_, rest)) = line.split_once("PIDS ") {
            pids = rest.split(' ').map(|p| p.parse().unwrap()).collect();
            break;
        }
    }
    (master, pids)
}

/// The body of a master role test, which [`start_master`] starts as a process of its
/// own to kill it: when the variable `role_var` names an interpreter, starts a gateway
/// to it, runs `code` there (which sends a sequence of pids), reports the pids on a
/// line `PIDS a b ...` and sleeps until it is killed. Without the variable it does
/// nothing, and passes as a test.
pub fn master_role(role_var: &str, code: &str) {
    let Ok(python) = std::env::var(role_var) else {
        return;
    };
    let group = execnet::Group::new();
    let gw = group
        .makegateway(&format!("popen//python={python}"))
        .unwrap();
    let ch = gw.remote_exec(code).unwrap();
    let pids: Vec<i64> = ch.receive().unwrap();
    let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    println!("PIDS {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(600));
}
