//! Gateways beyond local pipes: ssh to a loopback sshd of our own, sockets against the
//! reference's socket server, `via=` through another gateway, and groups that start in
//! parallel.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use execnet::{DeathKind, Error, Group, Options};
use execnet_tests::{interp, suite};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed and reaped on drop.
struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback sshd with its own host key, user key and config, in a temporary
/// directory; nothing touches the user's ssh files.
struct Sshd {
    dir: PathBuf,
    _daemon: Daemon,
}

impl Sshd {
    fn start() -> Option<Sshd> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(sshd) = sshd else {
            assert!(!interp::in_ci(), "sshd is not installed (run .ci/setup)");
            interp::skip("sshd", "apt-get install openssh-server");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("execnet-sshd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for key in ["host_key", "user_key"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(dir.join(key))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host loopback\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/user_key\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\nHost *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  IdentityFile {d}/user_key\n  LogLevel ERROR\n"
            ),
        )
        .unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let daemon = Command::new(sshd)
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .args(["-D", "-e"])
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon(daemon);
        wait_listening(port);
        Some(Sshd {
            dir,
            _daemon: daemon,
        })
    }

    fn config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }
}

fn ssh_spec(sshd: &Sshd, host: &str, python: &Path) -> String {
    format!(
        "ssh={host}//ssh_config={}//python={}",
        sshd.config().display(),
        python.display()
    )
}

#[test]
fn ssh_api_suite_and_failures() {
    let (Some(py3), Some(py27)) = (
        interp::require("cpython3.11"),
        interp::require("cpython2.7"),
    ) else {
        return;
    };
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let group = Group::new();
    suite::run(
        &group,
        &ssh_spec(&sshd, "loopback", &py3.path),
        "ssh cpython3.11",
        false,
        false,
    );
    suite::run(
        &group,
        &ssh_spec(&sshd, "loopback", &py27.path),
        "ssh cpython2.7",
        true,
        false,
    );
    group.terminate(Duration::from_secs(2));

    let options = Options::new()
        .connect_timeout(Duration::from_secs(3))
        .startup_timeout(Duration::from_secs(10));
    // A host that does not resolve.
    let group = Group::with_options(options.clone());
    let t = Instant::now();
    let err = group
        .makegateway(&ssh_spec(&sshd, "no-such-host.invalid", &py3.path))
        .unwrap_err();
    assert!(matches!(&err, Error::HostUnreachable { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // A port where nothing listens.
    let port = free_port();
    let err = group
        .makegateway(&ssh_spec(&sshd, &format!("127.0.0.1:{port}"), &py3.path))
        .unwrap_err();
    match &err {
        Error::HostUnreachable { message, .. } => assert!(message.contains("refused"), "{message}"),
        other => panic!("refused port: {other}"),
    }
    // A remote python that does not exist.
    let err = group
        .makegateway(&ssh_spec(&sshd, "loopback", Path::new("/no/such/python")))
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
    wait_listening(port);
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
