//! A large string value received from a worker is handed to the caller in the allocation
//! it was read into (issue 12 item 2): the master's peak memory grows by the value once,
//! not by the payload and then a copy of it. Alone in its test binary, so that no other
//! test moves the process's peak.

use std::time::Duration;

use execnet::{Group, Value};
use execnet_tests::interp;

/// The process's peak resident memory so far, in bytes (`VmHWM`).
fn peak() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .expect("VmHWM in /proc/self/status");
    kb * 1024
}

const SIZE: usize = 64 << 20;

#[test]
fn large_received_strings_are_not_copied() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = Group::new();
    let gw = group
        .makegateway(&format!("popen//python={}", py.path.display()))
        .expect("gateway starts");
    // bytes, then str (two UTF-8 bytes a character), to a Value, a String and a callback.
    let ch = gw
        .remote_exec(
            "n = channel.receive()
for make in [lambda: b'\\x07' * n, lambda: '\\u00e9' * (n // 2), lambda: '\\u00e9' * (n // 2),
             lambda: b'\\x07' * n]:
    channel.send(make())
    channel.receive()
",
        )
        .unwrap();
    // Warm up: a small value through the same path, so that what follows is the values.
    let warm = gw.remote_exec("channel.send(b'x' * 100000)").unwrap();
    assert!(matches!(warm.receive::<Value>().unwrap(), Value::Bytes(b) if b.len() == 100000));
    let before = peak();

    ch.send(&SIZE).unwrap();
    match ch.receive::<Value>().unwrap() {
        Value::Bytes(b) => assert!(b.len() == SIZE && b.iter().all(|&x| x == 7)),
        other => panic!("expected bytes, found {}", other.type_name()),
    }
    ch.send(&0).unwrap();
    match ch.receive::<Value>().unwrap() {
        Value::Str(s) => assert!(s.len() == SIZE && s.chars().all(|c| c == '\u{e9}')),
        other => panic!("expected str, found {}", other.type_name()),
    }
    ch.send(&0).unwrap();
    let s: String = ch.receive().unwrap();
    assert_eq!(s.len(), SIZE);
    drop(s);
    let (tx, rx) = std::sync::mpsc::channel();
    ch.set_callback(
        move |v: Value| {
            let _ = tx.send(matches!(v, Value::Bytes(b) if b.len() == SIZE));
        },
        None,
    )
    .unwrap();
    ch.send(&0).unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(60)).unwrap());

    let grew = peak().saturating_sub(before);
    assert!(
        grew < SIZE + SIZE / 2,
        "receiving values of {} MiB raised the peak by {} MiB: one copy of a value is {} MiB",
        SIZE >> 20,
        grew >> 20,
        SIZE >> 20
    );
    group.terminate(Duration::from_secs(5));
}
