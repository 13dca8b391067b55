//! A worker does not outlive its master, even when its code holds the interpreter in C
//! (`sum(range(10**13))`, where no Python-level reader can notice the end of input): on
//! Linux the kernel kills it when the master dies, and its watchdog then kills its
//! process group. And because the kernel's signal follows the *thread* that started the
//! worker, workers started from threads that end (as `makegateways` does) must live on.

use std::time::{Duration, Instant};

use execnet::Group;
use execnet_tests::interp;
use execnet_tests::procs::{self, alive, gone_within, kill_all, start_master};

fn workers_outlive_the_threads_that_started_them(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let spec = format!("popen//python={}", py.path.display());
    let group = Group::new();
    let gws = group.makegateways(&[&spec, &spec, &spec]).unwrap();
    // The starting threads have ended; give the kernel time to act if it were going to.
    std::thread::sleep(Duration::from_millis(500));
    for gw in &gws {
        let ch = gw.remote_exec("channel.send(7)").unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 7, "{name}: {}", gw.id());
    }
    group.terminate(Duration::from_secs(2));
}

#[test]
fn makegateways_workers_outlive_their_starting_threads_cpython311() {
    workers_outlive_the_threads_that_started_them("cpython3.11");
}

#[test]
fn makegateways_workers_outlive_their_starting_threads_cpython27() {
    workers_outlive_the_threads_that_started_them("cpython2.7");
}

#[test]
fn makegateways_workers_outlive_their_starting_threads_pypy3() {
    workers_outlive_the_threads_that_started_them("pypy3");
}

const ROLE: &str = "EXECNET_TEST_MASTER_PYTHON";

/// Not a test of its own: the master that the test below starts as a child process and
/// kills. Without the variable it does nothing.
#[test]
fn master_role() {
    procs::master_role(
        ROLE,
        "import os, subprocess\np = subprocess.Popen(['sleep', '1000'])\nchannel.send((os.getpid(), p.pid))\nsum(range(10**13))\n",
    );
}

fn killed_master_takes_down_a_worker_stuck_in_c(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let (mut master, pids) = start_master("master_role", ROLE, &py.path);
    let &[worker, grandchild, ..] = &pids[..] else {
        panic!("the master reports the pids");
    };
    // Let the worker get into the C loop.
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(worker) && alive(grandchild));
    master.kill().unwrap();
    master.wait().unwrap();
    let t = Instant::now();
    let worker_gone = gone_within(&[worker], Duration::from_secs(3));
    let grandchild_gone = gone_within(&[grandchild], Duration::from_secs(3));
    let elapsed = t.elapsed();
    kill_all(&[worker, grandchild]);
    assert!(
        worker_gone,
        "{name}: worker {worker} outlived its killed master"
    );
    assert!(
        grandchild_gone,
        "{name}: the worker's child {grandchild} outlived the killed master"
    );
    eprintln!("{name}: worker and its child gone {elapsed:?} after the master's death");
}

#[test]
fn killed_master_takes_down_worker_stuck_in_c_cpython311() {
    killed_master_takes_down_a_worker_stuck_in_c("cpython3.11");
}

#[test]
fn killed_master_takes_down_worker_stuck_in_c_cpython27() {
    killed_master_takes_down_a_worker_stuck_in_c("cpython2.7");
}

#[test]
fn killed_master_takes_down_worker_stuck_in_c_pypy3() {
    killed_master_takes_down_a_worker_stuck_in_c("pypy3");
}
