//! A loopback sshd of our own for tests: its own host key, user key and configs in a
//! temporary directory, nothing touching the user's ssh files.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::interp;

/// A running sshd, killed and reaped (and its directory removed) on drop.
pub struct Sshd {
    dir: PathBuf,
    daemon: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits up to 10 s until something accepts connections on 127.0.0.1:`port`; `what`
/// names it in the panic otherwise.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

impl Sshd {
    /// Starts one under `tag` (which keeps parallel tests apart). Missing sshd: a panic
    /// under CI, otherwise a reported skip and `None`.
    pub fn start(tag: &str) -> Option<Sshd> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(sshd) = sshd else {
            assert!(!interp::in_ci(), "sshd is not installed (run .ci/setup)");
            interp::skip("sshd", "apt-get install openssh-server");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("execnet-sshd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for sshd");
        for key in ["host_key", "user_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(dir.join(key)));
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))
            .expect("authorized_keys");
        let port = free_port();
        let user = Command::new("id")
            .arg("-un")
            .output()
            .expect("id -un")
            .stdout;
        let user = String::from_utf8_lossy(&user).trim().to_string();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
            ),
        )
        .expect("sshd_config");
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host loopback\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/user_key\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\nHost *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  IdentityFile {d}/user_key\n  LogLevel ERROR\n"
            ),
        )
        .expect("ssh_config");
        // Debian's sshd refuses to start without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("sshd.log");
        let daemon = Command::new(sshd)
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .args(["-D", "-e"])
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let sshd = Sshd { dir, daemon };
        wait_listening(port, "sshd");
        Some(sshd)
    }

    /// The ssh_config file that defines the host `loopback`, and for any other host
    /// (one that does not resolve, a port where nothing listens) the same
    /// non-interactive settings and key.
    pub fn config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// A spec for `python` on the host `loopback`.
    pub fn spec(&self, python: &Path) -> String {
        self.host_spec("loopback", python)
    }

    /// A spec for `python` on `host` (`loopback`, or any host to fail against) with this
    /// sshd's ssh_config.
    pub fn host_spec(&self, host: &str, python: &Path) -> String {
        format!(
            "ssh={host}//ssh_config={}//python={}",
            self.config().display(),
            python.display()
        )
    }
}
