//! `execnet serve --rust-worker` against clients that misbehave: one process serves every
//! client, so nothing a client does may grow it for good.

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use execnet::core::buffer::GrowBuf;
use execnet::core::engine::{Connection, Entry, NoKwargs, Role};
use execnet::core::Value;
use serve_support::Server;

type Master = Connection<GrowBuf, Vec<u8>, std::collections::BTreeMap<i32, Entry<()>>>;

fn master() -> Master {
    Connection::new(
        Role::Master,
        GrowBuf::new(),
        Vec::new(),
        Default::default(),
        1 << 20,
    )
}

/// A raw client past the bootstrap: the server answered the handshake byte.
fn bootstrapped(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"'bootstrap of a master that is not Python'\n")
        .unwrap();
    let mut one = [0u8; 1];
    s.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"1");
    s
}

fn write_queued(conn: &mut Master, s: &mut TcpStream) {
    while let Some(bytes) = conn.poll_transmit() {
        s.write_all(bytes).unwrap();
        let n = bytes.len();
        conn.transmitted(n);
    }
}

/// An honest call still works.
fn honest_call(server: &Server) {
    let group = execnet::Group::new();
    let gw = group
        .makegateway(&format!("socket={}", server.addr))
        .unwrap();
    let ch = gw
        .remote_exec_call(
            "",
            "add",
            &std::collections::BTreeMap::from([("a", 40i64), ("b", 2)]),
        )
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);
    group.terminate(Duration::from_secs(2));
}

#[test]
fn item4_data_on_fresh_channel_ids_does_not_grow_the_server() {
    let server = Server::start(&["--insecure-no-auth", "--rust-worker"]);
    let rss_before = server.proc_status("VmRSS");
    let mut s = bootstrapped(&server);
    // 20,000 values of 10 KB (200 MB), each on a channel nobody opened. The protocol's
    // ids are odd for the master: a worker that made a queue for each would hold them all.
    let mut forger = master();
    let block = Value::Bytes(vec![b'x'; 10_000]);
    for _ in 0..20_000 {
        let id = forger.open_channel(()).unwrap();
        forger.send(id, &block).unwrap();
        write_queued(&mut forger, &mut s);
    }
    // Let the server read it all, then measure.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let rss_after = server.proc_status("VmRSS");
    eprintln!("server RSS: {rss_before} kB before, {rss_after} kB after 200 MB on fresh ids");
    assert!(
        rss_after < rss_before + 50_000,
        "the server grew from {rss_before} kB to {rss_after} kB"
    );
    honest_call(&server);
}

#[test]
fn item4_a_client_that_dies_mid_call_leaks_no_thread() {
    let server = Server::start(&["--insecure-no-auth", "--rust-worker"]);
    honest_call(&server);
    let threads_before = server.proc_status("Threads");
    for _ in 0..50 {
        let mut s = bootstrapped(&server);
        let mut conn = master();
        // `mirror` waits for values until its channel ends.
        conn.exec("", None, Some("mirror"), &NoKwargs, ()).unwrap();
        write_queued(&mut conn, &mut s);
        std::thread::sleep(Duration::from_millis(5));
        // The client vanishes mid-call, without a word.
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut threads = server.proc_status("Threads");
    while threads > threads_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        threads = server.proc_status("Threads");
    }
    eprintln!("server threads: {threads_before} before, {threads} after 50 dead clients");
    assert!(
        threads <= threads_before,
        "{threads} threads, {threads_before} before"
    );
    honest_call(&server);
}
