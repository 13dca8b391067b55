//! The work-distribution helper against real workers: 1,000 tasks over 4 workers with one
//! killed by pid halfway (CPython 3.11, 2.7 and PyPy3), every task answered exactly once;
//! results in order; a task that raises; a task that kills every worker it meets; no
//! worker left; a missing function.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use execnet::distribute::{Distributor, TaskError};
use execnet::{Gateway, Group, Value};
use execnet_tests::interp;

const TASK: &str = "
import os, time

def task(x):
    time.sleep(0.002)
    return (x, x * x, os.getpid())
";

fn workers(name: &str, n: usize) -> Option<(Arc<Group>, Vec<Gateway>, String)> {
    let py = interp::require(name)?;
    let group = Arc::new(Group::new());
    let spec = format!("popen//python={}", py.path.display());
    let gws = group.makegateways(&vec![spec.clone(); n]).unwrap();
    Some((group, gws, spec))
}

fn triple(v: &Value) -> (i64, i64, i64) {
    match v {
        Value::Tuple(items) if items.len() == 3 => (
            items[0].as_i64().unwrap(),
            items[1].as_i64().unwrap(),
            items[2].as_i64().unwrap(),
        ),
        other => panic!("not a triple: {other:?}"),
    }
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// 1,000 tasks over 4 workers; the second worker's process is killed after 500 results.
/// Every task yields exactly one result, with the right value, and the tasks the dead
/// worker held ran again elsewhere.
fn thousand_tasks_one_killed(name: &str) {
    let Some((group, gws, _)) = workers(name, 4) else {
        return;
    };
    let pids: Vec<i64> = gws.iter().map(|g| i64::from(g.pid().unwrap())).collect();
    let victim = gws[1].pid().unwrap();
    let mut pool = Distributor::new(&gws, TASK, "task").unwrap();
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut by_pid: HashMap<i64, usize> = HashMap::new();
    let mut after_kill = 0;
    let mut killed = false;
    for (done, (index, result)) in pool.as_completed(0..1000i64).enumerate() {
        let value = result.unwrap_or_else(|e| panic!("{name}: task {index}: {e}"));
        let (x, square, pid) = triple(&value);
        assert_eq!((x, square), (index as i64, (index * index) as i64));
        assert!(pids.contains(&pid), "{pid} is none of {pids:?}");
        *seen.entry(index).or_default() += 1;
        *by_pid.entry(pid).or_default() += 1;
        if killed {
            after_kill += 1;
        }
        if done == 499 {
            kill(victim);
            killed = true;
        }
    }
    assert_eq!(seen.len(), 1000, "{name}: every task answered");
    assert!(seen.values().all(|&n| n == 1), "{name}: none twice");
    assert_eq!(after_kill, 500);
    let lost = pool.lost();
    assert_eq!(lost.len(), 1, "{name}: {lost:?}");
    assert_eq!(lost[0].gateway, gws[1].id());
    assert!(
        lost[0].requeued >= 1,
        "{name}: the killed worker held tasks: {lost:?}"
    );
    assert!(
        lost[0].cause.contains("SIGKILL") || lost[0].cause.contains("signal"),
        "{lost:?}"
    );
    assert_eq!(pool.workers(), 3);
    // The survivors did the second half.
    for (i, pid) in pids.iter().enumerate() {
        let n = by_pid.get(pid).copied().unwrap_or(0);
        if i != 1 {
            assert!(n > 100, "{name}: worker {i} did only {n} tasks: {by_pid:?}");
        }
    }
    eprintln!(
        "{name}: tasks per worker {:?}; {} requeued from the killed one",
        pids.iter()
            .map(|p| by_pid.get(p).copied().unwrap_or(0))
            .collect::<Vec<_>>(),
        lost[0].requeued
    );
    drop(pool);
    group.terminate(Duration::from_secs(5));
}

#[test]
fn thousand_tasks_one_killed_cpython311() {
    thousand_tasks_one_killed("cpython3.11");
}

#[test]
fn thousand_tasks_one_killed_cpython27() {
    thousand_tasks_one_killed("cpython2.7");
}

#[test]
fn thousand_tasks_one_killed_pypy3() {
    thousand_tasks_one_killed("pypy3");
}

/// Results in task order whatever order they complete in; a task that raises gives its
/// traceback and the worker goes on.
#[test]
fn in_order_with_failures() {
    let Some((group, gws, _)) = workers("cpython3.11", 3) else {
        return;
    };
    let source = "
import random, time

def task(x):
    time.sleep(random.random() * 0.005)
    if x % 50 == 7:
        raise ValueError('seven: %d' % x)
    return x + 1000
";
    let mut pool = Distributor::new(&gws, source, "task").unwrap().prefetch(3);
    let results = pool.map(0..200i64);
    assert_eq!(results.len(), 200);
    for (x, r) in results.iter().enumerate() {
        if x % 50 == 7 {
            match r {
                Err(TaskError::Raised(tb)) => {
                    assert!(tb.contains(&format!("ValueError: seven: {x}")), "{tb}")
                }
                other => panic!("task {x}: {other:?}"),
            }
        } else {
            assert_eq!(r.as_ref().unwrap().as_i64(), Some(x as i64 + 1000));
        }
    }
    assert!(pool.lost().is_empty());
    // The distributor runs another batch on the same workers.
    let again: Vec<_> = pool.in_order(vec![1i64, 2, 3]).collect();
    assert_eq!(
        again
            .iter()
            .map(|r| r.as_ref().unwrap().as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1001, 1002, 1003]
    );
    drop(pool);
    group.terminate(Duration::from_secs(5));
}

/// A task that kills each worker that takes it is given up after `max_attempts`, and
/// the replacements handed over by `on_worker_lost` carry on with the rest.
#[test]
fn a_task_that_kills_workers_is_given_up() {
    let Some((group, gws, spec)) = workers("cpython3.11", 2) else {
        return;
    };
    let source = "
import os

def task(x):
    if x == 13:
        os._exit(3)
    return x
";
    let g = group.clone();
    let mut pool = Distributor::new(&gws, source, "task")
        .unwrap()
        .max_attempts(2)
        .on_worker_lost(move |_lost, _cause| g.makegateway(&spec).ok());
    let results = pool.map(0..40i64);
    for (x, r) in results.iter().enumerate() {
        if x == 13 {
            match r {
                Err(TaskError::WorkerDied { attempts, cause }) => {
                    assert_eq!(*attempts, 2);
                    assert!(cause.contains("exit") || cause.contains('3'), "{cause}");
                }
                other => panic!("task 13: {other:?}"),
            }
        } else {
            assert_eq!(r.as_ref().unwrap().as_i64(), Some(x as i64), "task {x}");
        }
    }
    assert_eq!(pool.lost().len(), 2, "{:?}", pool.lost());
    assert_eq!(pool.workers(), 2);
    drop(pool);
    group.terminate(Duration::from_secs(5));
}

/// When every worker is gone, what remains fails with `NoWorkers`, task by task.
#[test]
fn no_worker_left() {
    let Some((group, gws, _)) = workers("cpython3.11", 1) else {
        return;
    };
    let source = "
import os

def task(x):
    os._exit(1)
";
    let mut pool = Distributor::new(&gws, source, "task").unwrap().prefetch(1);
    let results: Vec<_> = pool.as_completed(0..5i64).collect();
    assert_eq!(results.len(), 5);
    let mut indexes: Vec<usize> = results.iter().map(|(i, _)| *i).collect();
    indexes.sort();
    assert_eq!(indexes, vec![0, 1, 2, 3, 4]);
    assert!(
        results.iter().all(|(_, r)| *r == Err(TaskError::NoWorkers)),
        "{results:?}"
    );
    assert_eq!(pool.workers(), 0);
    drop(pool);
    group.terminate(Duration::from_secs(5));
}

/// A function the source does not define is named, with the gateway, at start.
#[test]
fn a_missing_function_is_named() {
    let Some((group, gws, _)) = workers("cpython3.11", 1) else {
        return;
    };
    let err = Distributor::new(&gws, "def task(x):\n    return x\n", "nope").unwrap_err();
    let text = err.to_string();
    assert!(text.contains(gws[0].id()), "{text}");
    assert!(text.contains("no function 'nope'"), "{text}");
    let err = Distributor::new(&gws, "def task(x):\n    return x +\n", "task").unwrap_err();
    assert!(err.to_string().contains("SyntaxError"), "{err}");
    group.terminate(Duration::from_secs(5));
}

/// One distributor over a worker of every interpreter (CPython 2.7 to 3.13, PyPy3,
/// Jython): each takes tasks and answers them.
#[test]
fn every_interpreter_takes_tasks() {
    let pythons = interp::require_every();
    if pythons.is_empty() {
        return;
    }
    let group = Group::new();
    let specs: Vec<String> = pythons
        .iter()
        .map(|p| format!("popen//python={}", p.path.display()))
        .collect();
    let gws = group.makegateways(&specs).unwrap();
    let source = "
import sys, time

def task(x):
    time.sleep(0.01)
    return (x * 2, sys.executable)
";
    let mut pool = Distributor::new(&gws, source, "task").unwrap().prefetch(1);
    let mut executables = std::collections::HashSet::new();
    for (x, r) in pool.in_order(0..(20 * pythons.len() as i64)).enumerate() {
        let Value::Tuple(items) = r.unwrap() else {
            panic!("not a tuple")
        };
        assert_eq!(items[0].as_i64(), Some(2 * x as i64));
        executables.insert(format!("{:?}", items[1]));
    }
    assert_eq!(
        executables.len(),
        pythons.len(),
        "every interpreter answered: {executables:?}"
    );
    drop(pool);
    group.terminate(Duration::from_secs(10));
}
