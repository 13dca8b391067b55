//! A worker started by `execnet serve` takes down what the client's code forked when the
//! session ends: by `exit()`, or by the client vanishing. The server starts each worker
//! in its own process group, and the agent kills its descendants and that group.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use execnet::serve::{serve, Backend, ServeOptions};
use execnet::Group;
use execnet_tests::interp;
use execnet_tests::procs::{alive, survivors};

fn wait_gone(pid: i64, what: &str) {
    let left = survivors(&[pid], Duration::from_secs(5));
    assert!(left.is_empty(), "{what}: pid {pid} outlived its session");
}

/// A server for `connections` connections, in a thread; its address and secret file.
fn server(name: &str, python: &str, connections: usize) -> (SocketAddr, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("execnet-sockclean-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join(format!("secret-{name}"));
    std::fs::write(&secret, "a secret of more than sixteen bytes\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut opts = ServeOptions::new(
        "127.0.0.1:0",
        Some(execnet::serve::Secret::from_file(&secret).unwrap()),
        Backend::Python(python.into()),
    );
    opts.max_connections = Some(connections);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = serve(opts, move |a| tx.send(a).unwrap(), |_| {});
    });
    (rx.recv_timeout(Duration::from_secs(10)).unwrap(), secret)
}

const FORK: &str =
    "import subprocess\np = subprocess.Popen(['sleep', '1000'])\nchannel.send(p.pid)\n";

fn session_end_kills_forked_children(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let (addr, secret) = server(name, &py.path.display().to_string(), 2);
    let spec = format!("socket={addr}//secret={}", secret.display());

    // The client ends the gateway.
    let group = Group::new();
    let gw = group.makegateway(&spec).unwrap();
    let ch = gw.remote_exec(FORK).unwrap();
    let grandchild: i64 = ch.receive().unwrap();
    assert!(alive(grandchild));
    gw.exit_timeout(Duration::from_secs(2));
    wait_gone(grandchild, &format!("{name}, after exit()"));

    // The client goes away without a word: its socket closes.
    let group = Group::new();
    let gw = group.makegateway(&spec).unwrap();
    let ch = gw
        .remote_exec(&format!("{FORK}channel.receive()\n"))
        .unwrap();
    let grandchild: i64 = ch.receive().unwrap();
    assert!(alive(grandchild));
    drop(ch);
    drop(gw);
    drop(group);
    wait_gone(grandchild, &format!("{name}, after the client vanished"));
}

#[test]
fn socket_session_end_kills_forked_children_cpython311() {
    session_end_kills_forked_children("cpython3.11");
}

#[test]
fn socket_session_end_kills_forked_children_cpython27() {
    session_end_kills_forked_children("cpython2.7");
}

#[test]
fn socket_session_end_kills_forked_children_pypy3() {
    session_end_kills_forked_children("pypy3");
}
