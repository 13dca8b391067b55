//! `execnet serve` under a long stream of clients that fail authentication: its threads
//! and memory stay bounded, and an honest client still gets in afterwards.

mod serve_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use execnet::{Group, Options};
use serve_support::{s, secret_file, socket_spec, Server};

/// `n` connections over 4 threads, each sending a handshake of the right size that does
/// not decrypt (to the older line-based challenge it is a line that is not an answer)
/// and reading until the server hangs up. Returns how many failed to connect; gives up
/// after 200 failures in a row (the server is gone).
fn refused_clients(addr: &str, n: usize) -> usize {
    let failures = Arc::new(AtomicUsize::new(0));
    let streak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (addr, failures, streak) = (addr.to_string(), failures.clone(), streak.clone());
            let share = n / 4 + usize::from(t < n % 4);
            thread::spawn(move || {
                let mut junk = vec![0x00, 0x30];
                junk.extend_from_slice(&[0x5a; 48]);
                junk.push(b'\n');
                let mut sink = [0u8; 256];
                for _ in 0..share {
                    if streak.load(Ordering::Relaxed) > 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let Ok(mut c) = TcpStream::connect(&addr) else {
                        failures.fetch_add(1, Ordering::Relaxed);
                        streak.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    streak.store(0, Ordering::Relaxed);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = c.write_all(&junk);
                    while let Ok(got) = c.read(&mut sink) {
                        if got == 0 {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    failures.load(Ordering::Relaxed)
}

#[test]
fn item1_soak_50000_refused_connections_then_an_honest_client() {
    let secret = secret_file("soak", "c4f1a9e27b3d5068e1f2a3b4c5d6e7f8");
    let server = Server::start(&["--secret-file", s(&secret), "--rust-worker"]);
    let start = Instant::now();
    assert_eq!(refused_clients(&server.addr, 1_000), 0);
    thread::sleep(Duration::from_millis(300));
    let (threads0, rss0) = (server.proc_status("Threads"), server.proc_status("VmRSS"));
    let (maps0, fds0) = (maps(server.pid()), server.open_fds());
    let failed = refused_clients(&server.addr, 49_000);
    thread::sleep(Duration::from_millis(300));
    let alive = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).is_ok_and(|st| {
        st.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    });
    if !(alive && failed == 0) {
        let log = server.log();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        panic!("{failed} of 49,000 connections failed; server alive: {alive}; its last lines: {tail:?}");
    }
    let (threads1, rss1) = (server.proc_status("Threads"), server.proc_status("VmRSS"));
    let (maps1, fds1) = (maps(server.pid()), server.open_fds());
    let took = start.elapsed();
    eprintln!(
        "soak: 50,000 refused connections in {:.1} s; server threads {threads0} -> {threads1}, \
         RSS {rss0} kB -> {rss1} kB, memory maps {maps0} -> {maps1}, fds {fds0} -> {fds1}",
        took.as_secs_f64()
    );
    let group = Group::with_options(Options::new().startup_timeout(Duration::from_secs(10)));
    let gw = group
        .makegateway(&socket_spec(&server.addr, &secret))
        .unwrap();
    let ch = gw
        .remote_exec_call("", "add", &BTreeMap::from([("a", 40i64), ("b", 2)]))
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);
    group.terminate(Duration::from_secs(2));
    assert!(threads1 <= threads0 + 2, "threads {threads0} -> {threads1}");
    // glibc gives threads up to eight arenas per core, each a heap and its guard: maps
    // may grow that much once, never per connection.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arenas = 2 * 8 * cores;
    assert!(
        maps1 <= maps0 + arenas + 4,
        "memory maps {maps0} -> {maps1}"
    );
    assert!(rss1 <= rss0 + 8 * 1024, "RSS {rss0} kB -> {rss1} kB");
    assert!(fds1 <= fds0 + 2, "fds {fds0} -> {fds1}");
    let (_, log) = server.stop();
    let lines = log.lines().count();
    eprintln!("soak: {lines} log lines");
    assert!(lines < 2_000, "{lines} log lines for 50,000 refusals");
}

/// Number of memory mappings of `pid` (each unjoined finished thread keeps its stack).
fn maps(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().count())
        .unwrap_or(0)
}
