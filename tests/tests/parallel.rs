//! Groups at scale: 16 CPython 3.11 gateways start in parallel and end with no process
//! left. In a test binary of its own, so that no other test's children share the CPU or
//! the children's CPU count.

use std::time::{Duration, Instant};

use execnet::Group;
use execnet_tests::interp;
use execnet_tests::procs::alive;

/// CPU time (user and system) of this process's reaped children.
fn children_cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

#[test]
fn sixteen_gateways_start_in_parallel() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let spec = format!("popen//python={}", py.path.display());
    // One gateway, for the baseline (median of three), and the CPU time one interpreter
    // start costs (children's CPU time, counted when they are reaped).
    let cpu_before = children_cpu();
    let mut one = Vec::new();
    for _ in 0..3 {
        let g = Group::new();
        let t = Instant::now();
        g.makegateway(&spec).unwrap();
        one.push(t.elapsed());
        g.terminate(Duration::from_secs(2));
    }
    one.sort();
    let one = one[1];
    let cpu_one = (children_cpu() - cpu_before) / 3;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let group = Group::new();
    let specs = vec![spec.as_str(); 16];
    let t = Instant::now();
    let gws = group.makegateways(&specs).unwrap();
    let sixteen = t.elapsed();
    // 16 starts cannot take less than their CPU time spread over the cores; on a machine
    // with few cores that floor, not our parallelism, is the bound.
    let floor = cpu_one * 16 / cores;
    let limit = (one * 3).max(floor * 3 / 2);
    eprintln!(
        "one gateway: {one:?} ({cpu_one:?} CPU); sixteen in parallel: {sixteen:?}; {cores} cores, CPU floor {floor:?}, limit {limit:?}"
    );
    assert_eq!(gws.len(), 16);
    let ids: std::collections::BTreeSet<&str> = gws.iter().map(|g| g.id()).collect();
    assert_eq!(ids.len(), 16);
    assert!(
        sixteen <= limit,
        "16 gateways took {sixteen:?}, limit {limit:?}"
    );
    let pids: Vec<u32> = gws.iter().map(|g| g.pid().unwrap()).collect();
    drop(gws);
    let t = Instant::now();
    group.terminate(Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(3));
    for pid in pids {
        assert!(!alive(pid), "worker {pid} survived");
    }
}
