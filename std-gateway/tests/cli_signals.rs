//! `execnet exec` interrupted (SIGINT, SIGTERM) while its worker's code holds the
//! interpreter in C: the command ends its gateways and exits with 128 + the signal, and
//! neither the worker nor what it forked survives.

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;
#[path = "../../tests/src/procs.rs"]
#[allow(dead_code)]
mod procs;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn interrupted(sig: Signal) {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let mut cli = Command::new(env!("CARGO_BIN_EXE_execnet"))
        .arg("exec")
        .arg(format!("popen//python={}", py.path.display()))
        .arg("import os, subprocess\np = subprocess.Popen(['sleep', '1000'])\nchannel.send([os.getpid(), p.pid])\nsum(range(10**13))\n")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(cli.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: Vec<i32> = line
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(cli.id() as i32), sig).unwrap();
    let t = Instant::now();
    let status = cli.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    let _ = cli.stderr.take().unwrap().read_to_string(&mut err);
    let all_gone = pids
        .iter()
        .all(|&p| procs::gone_within(&[p], Duration::from_secs(3)));
    procs::kill_all(&pids);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(status.code(), Some(128 + sig as i32), "{status:?} {err}");
    assert!(err.contains(sig.as_str()), "{err}");
    assert!(all_gone, "worker or its child survived {sig}: {pids:?}");
}

#[test]
fn sigint_ends_gateways_of_exec() {
    interrupted(Signal::SIGINT);
}

#[test]
fn sigterm_ends_gateways_of_exec() {
    interrupted(Signal::SIGTERM);
}
