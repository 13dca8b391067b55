//! Groups at scale: 16 CPython 3.11 gateways start in parallel and end with no process
//! left. In a test binary of its own, so that no other test's children share the CPU.

use std::time::{Duration, Instant};

use execnet::Group;
use execnet_tests::interp;
use execnet_tests::procs::alive;

/// Each worker waits a second before it starts (an interpreter behind a slow `ssh` or
/// `docker exec` does): started one after the other, 16 would take 16 s; started in
/// parallel, about one second plus their CPU time, whatever else loads the machine.
#[test]
fn sixteen_gateways_start_in_parallel() {
    use std::os::unix::fs::PermissionsExt;
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("execnet-parallel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let slow = dir.join("slow-python");
    std::fs::write(
        &slow,
        format!("#!/bin/sh\nsleep 1\nexec {} \"$@\"\n", py.path.display()),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = format!("popen//python={}", slow.display());

    let group = Group::new();
    let specs = vec![spec.as_str(); 16];
    let t = Instant::now();
    let gws = group.makegateways(&specs).unwrap();
    let sixteen = t.elapsed();
    eprintln!("16 gateways, each a second slow to start: {sixteen:?}");
    assert_eq!(gws.len(), 16);
    let ids: std::collections::BTreeSet<&str> = gws.iter().map(|g| g.id()).collect();
    assert_eq!(ids.len(), 16);
    assert!(
        sixteen < Duration::from_secs(8),
        "16 gateways took {sixteen:?}: they did not start in parallel"
    );
    for gw in &gws {
        let ch = gw.remote_exec("channel.send(1)").unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 1);
    }
    let pids: Vec<u32> = gws.iter().map(|g| g.pid().unwrap()).collect();
    drop(gws);
    let t = Instant::now();
    group.terminate(Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(3));
    for pid in pids {
        assert!(!alive(pid), "worker {pid} survived");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
