//! `execnet serve` and the Rust worker, driven by our client and by the reference.

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;

mod serve_support;

use std::time::Duration;

use execnet::{Error, Group};
use serve_support::{secret_file, socket_spec, temp, Server, BIN};

#[test]
fn secret_required_and_checked() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let secret = secret_file("secret", "8d0e6f2a9c41b7d35e0f1a2b3c4d5e6f\n");
    let wrong = secret_file("wrong", "8d0e6f2a9c41b7d35e0f1a2b3c4d5e60\n");
    let server = Server::start(&[
        "--secret-file",
        secret.to_str().unwrap(),
        "--python",
        py.path.to_str().unwrap(),
    ]);
    let marker = temp("marker");
    let write_marker = format!(
        "open({:?}, 'w').write('ran')\nchannel.send(1)\n",
        marker.display().to_string()
    );

    // The right secret works.
    let group = Group::new();
    let gw = group
        .makegateway(&socket_spec(&server.addr, &secret))
        .unwrap();
    let ch = gw
        .remote_exec("channel.send(channel.receive() * 2)")
        .unwrap();
    ch.send(&21).unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);
    group.terminate(Duration::from_secs(2));

    // A wrong secret and no secret are refused before any code runs.
    let options = execnet::Options::new()
        .startup_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5));
    let group = Group::with_options(options);
    let err = group
        .makegateway(&socket_spec(&server.addr, &wrong))
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    let err = group.makegateway(&format!("socket={}", server.addr));
    match err {
        Err(Error::Bootstrap(d)) => assert!(d.cause.contains("EXECNET-AUTH"), "{d}"),
        Ok(gw) => {
            // Were it let in, this would leave the marker behind.
            let _ = gw
                .remote_exec(&write_marker)
                .and_then(|ch| ch.receive::<i64>());
            panic!("a client without the secret got in");
        }
        Err(other) => panic!("unexpected error {other}"),
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "code ran without authentication");
    let (_, log) = server.stop();
    assert_eq!(
        log.matches("refused before any code ran").count(),
        2,
        "{log}"
    );
    assert!(log.contains("wrong secret"), "{log}");
}

#[test]
fn reference_master_against_insecure_server() {
    let Some(py) = interp::require_reference("cpython3.11") else {
        return;
    };
    let server = Server::start(&["--insecure-no-auth", "--python", py.path.to_str().unwrap()]);
    let out = interp::python_command(&py, true)
        .arg("-c")
        .arg(format!(
            "import execnet\ngw = execnet.makegateway('socket={}')\nch = gw.remote_exec('import sys; channel.send((sys.version_info[0], channel.receive() + 1))')\nch.send(41)\nprint(ch.receive())\ngw.exit()\n",
            server.addr
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "(3, 42)");
    let (_, log) = server.stop();
    assert!(log.contains("without authentication"), "{log}");
}

#[test]
fn our_client_against_rust_worker_server() {
    let secret = secret_file("secret-rust", "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    let server = Server::start(&["--secret-file", secret.to_str().unwrap(), "--rust-worker"]);
    let group = Group::new();
    let gw = group
        .makegateway(&socket_spec(&server.addr, &secret))
        .unwrap();
    let ch = gw
        .remote_exec_call(
            "",
            "add",
            &std::collections::BTreeMap::from([("a", 40i64), ("b", 2)]),
        )
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);
    let status = gw.remote_status().unwrap();
    assert_eq!(status.execmodel, "thread");
    let err = gw
        .remote_exec("print(1)")
        .unwrap()
        .receive::<i64>()
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot run Python source"),
        "{err}"
    );
    group.terminate(Duration::from_secs(2));
}

#[test]
fn reference_drives_the_rust_worker() {
    let Some(py) = interp::require_reference("cpython3.11") else {
        return;
    };
    let out = interp::python_command(&py, true)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/py/drive_rust_worker.py"
        ))
        .arg(BIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
}
