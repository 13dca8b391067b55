//! Gateways beyond local pipes: ssh to a loopback sshd of our own, sockets against the
//! reference's socket server, `via=` through another gateway, and groups that start in
//! parallel.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use execnet::{DeathKind, Error, Group, Options};
use execnet_tests::sshd::{free_port, wait_listening, Sshd};
use execnet_tests::{interp, suite};

/// A child process killed and reaped on drop.
struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ssh_api_suite_and_failures() {
    let (Some(py3), Some(py27)) = (
        interp::require("cpython3.11"),
        interp::require("cpython2.7"),
    ) else {
        return;
    };
    let Some(sshd) = Sshd::start("remote") else {
        return;
    };
    let group = Group::new();
    suite::run(
        &group,
        &sshd.spec(&py3.path),
        "ssh cpython3.11",
        false,
        false,
    );
    suite::run(
        &group,
        &sshd.spec(&py27.path),
        "ssh cpython2.7",
        true,
        false,
    );
    // `python=` split as a shell would, and quoted again for the remote shell: an
    // interpreter path with a space and an environment value with one.
    let dir = std::env::temp_dir().join(format!("execnet ssh split {}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("py 3");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&py3.path, &link).unwrap();
    let escaped = link.display().to_string().replace(' ', "\\ ");
    let gw = group
        .makegateway(&sshd.spec(Path::new(&format!("env 'EXECNET_SPLIT=a b' {escaped}"))))
        .unwrap();
    let ch = gw
        .remote_exec("import os\nchannel.send(os.environ['EXECNET_SPLIT'])\n")
        .unwrap();
    assert_eq!(ch.receive::<String>().unwrap(), "a b");
    group.terminate(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);

    let options = Options::new()
        .connect_timeout(Duration::from_secs(3))
        .startup_timeout(Duration::from_secs(10));
    // A host that does not resolve.
    let group = Group::with_options(options.clone());
    let t = Instant::now();
    let err = group
        .makegateway(&sshd.host_spec("no-such-host.invalid", &py3.path))
        .unwrap_err();
    assert!(matches!(&err, Error::HostUnreachable { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // A port where nothing listens.
    let port = free_port();
    let err = group
        .makegateway(&sshd.host_spec(&format!("127.0.0.1:{port}"), &py3.path))
        .unwrap_err();
    match &err {
        Error::HostUnreachable { message, .. } => assert!(message.contains("refused"), "{message}"),
        other => panic!("refused port: {other}"),
    }
    // A remote python that does not exist.
    let err = group
        .makegateway(&sshd.spec(Path::new("/no/such/python")))
        .unwrap_err();
    match &err {
        Error::Bootstrap(d) => {
            assert_eq!(d.kind, DeathKind::Handshake, "{d}");
            assert_eq!(d.exit, Some(execnet::Exit::Code(127)), "{d}");
        }
        other => panic!("missing remote python: {other}"),
    }
}

/// The reference's socket server, one connection.
fn reference_socketserver(py: &interp::Interp, port: u16) -> Daemon {
    let mut cmd = interp::python_command(py, true);
    cmd.args(["-m", "execnet.script.socketserver"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let d = Daemon(cmd.spawn().unwrap());
    wait_listening(port, "the reference's socket server");
    d
}

#[test]
fn socket_client_against_reference_socketserver() {
    let Some(py) = interp::require_reference("cpython3.11") else {
        return;
    };
    let port = free_port();
    let _server = reference_socketserver(&py, port);
    let group = Group::new();
    suite::run(
        &group,
        &format!("socket=127.0.0.1:{port}"),
        "socket",
        false,
        false,
    );
    group.terminate(Duration::from_secs(2));
}

#[test]
fn via_popen_and_socket() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = Group::new();
    group
        .makegateway(&format!("popen//python={}//id=hop", py.path.display()))
        .unwrap();
    suite::run(
        &group,
        &format!("popen//python={}//via=hop", py.path.display()),
        "popen via popen",
        false,
        false,
    );
    let port = free_port();
    let _server = reference_socketserver(&py, port);
    suite::run(
        &group,
        &format!("socket=127.0.0.1:{port}//via=hop"),
        "socket via popen",
        false,
        false,
    );
    group.terminate(Duration::from_secs(2));
}
