//! The README's "Many machines" recipe, run for real: one `Group` holding a local
//! worker, one over ssh (the loopback sshd), one started through the ssh host with
//! `via=`, and one running as another user through a command in `python=` (how
//! `sudo -u`, `docker exec -i`, `kubectl exec -i` are used too). One `RSync` sends a
//! tree to all of them at once, and one `Distributor` spreads tasks over them.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use execnet::distribute::Distributor;
use execnet::rsync::{RSync, TargetOptions};
use execnet::{Group, Value};
use execnet_tests::interp;
use execnet_tests::sshd::Sshd;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Regular files by relative path: (mode, content); symlinks: their target.
fn listing(root: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let rel = rel.join(e.unwrap().file_name());
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(rel);
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push((rel, 0, target.into_os_string().into_encoded_bytes()));
            } else {
                out.push((rel, meta.mode() & 0o7777, fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn one_group_across_hosts_users_and_hops() {
    let (Some(py311), Some(py27), Some(pypy)) = (
        interp::require("cpython3.11"),
        interp::require("cpython2.7"),
        interp::require("pypy3"),
    ) else {
        return;
    };
    let Some(sshd) = Sshd::start("many") else {
        return;
    };
    let scratch =
        std::env::temp_dir().join(format!("execnet-many-machines-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    let src = scratch.join("src");
    fs::create_dir_all(src.join("pkg/sub")).unwrap();
    fs::write(src.join("pkg/__init__.py"), b"VALUE = 42\n").unwrap();
    fs::write(src.join("pkg/sub/data.bin"), vec![7u8; 3 << 20]).unwrap();
    fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("pkg/__init__.py", src.join("link.py")).unwrap();

    let group = Group::new();
    let local = group
        .makegateway(&format!("popen//id=local//python={}", py311.path.display()))
        .unwrap();
    let remote = group
        .makegateway(&format!("{}//id=remote", sshd.spec(&py27.path)))
        .unwrap();
    // Started by the ssh host's worker, as a container beside that host would be.
    let behind = group
        .makegateway(&format!(
            "popen//id=behind//python={}//via=remote",
            pypy.path.display()
        ))
        .unwrap();
    let mut targets = vec![
        (local.clone(), scratch.join("on-local")),
        (remote.clone(), scratch.join("on-remote")),
        (behind.clone(), scratch.join("on-behind")),
    ];
    // Another user through a command as `python=`; it needs root to switch users.
    let other_user_dest =
        std::env::temp_dir().join(format!("execnet-many-nobody-{}", std::process::id()));
    let other = if is_root() {
        let gw = group
            .makegateway(
                "popen//id=nobody//chdir=/tmp//python=runuser -u nobody -- /usr/bin/python3",
            )
            .unwrap();
        let _ = fs::remove_dir_all(&other_user_dest);
        targets.push((gw.clone(), other_user_dest.clone()));
        Some(gw)
    } else {
        eprintln!("not root: no worker as another user");
        None
    };

    let mut sync = RSync::new(&src);
    for (gw, dest) in &targets {
        sync.add_target(gw, dest, TargetOptions::new().delete(true));
    }
    let report = sync.send().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.files_read, 3, "{report:?}");
    let want = listing(&src);
    for (gw, dest) in &targets {
        assert_eq!(listing(dest), want, "{} at {}", gw.id(), dest.display());
    }
    if other.is_some() {
        let owner = fs::metadata(other_user_dest.join("pkg/__init__.py"))
            .unwrap()
            .uid();
        assert_eq!(owner, 65534, "written as nobody");
    }

    // The synced package is importable in every worker; tasks go to all of them.
    let source = "
import os, sys

def task(x):
    return (x * 3, os.getuid(), os.getcwd())
";
    let gateways: Vec<_> = targets.iter().map(|(g, _)| g.clone()).collect();
    let mut pool = Distributor::new(&gateways, source, "task")
        .unwrap()
        .prefetch(1);
    let mut uids = std::collections::BTreeSet::new();
    for (x, r) in pool.in_order(0..200i64).enumerate() {
        let Value::Tuple(items) = r.unwrap() else {
            panic!("not a tuple")
        };
        assert_eq!(items[0].as_i64(), Some(3 * x as i64));
        uids.insert(items[1].as_i64().unwrap());
    }
    assert!(uids.contains(&0));
    if other.is_some() {
        assert!(uids.contains(&65534), "{uids:?}");
    }
    for (gw, dest) in &targets {
        let ch = gw
            .remote_exec(&format!(
                "import sys\nsys.path.insert(0, {:?})\nimport pkg\nchannel.send(pkg.VALUE)",
                dest.display().to_string()
            ))
            .unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 42, "{}", gw.id());
    }
    drop(pool);
    group.terminate(Duration::from_secs(5));
    let _ = fs::remove_dir_all(&scratch);
    let _ = fs::remove_dir_all(&other_user_dest);
}
