//! `execnet serve`: a socket server that starts one worker per connection, after an
//! authentication it requires by default.
//!
//! Workers are our Python agent in an interpreter of the caller's choice, or the Rust
//! [`Worker`]. A Python worker gets the connection as a socket
//! named `clientsock`, as the reference's `socketserver.py` provides it, so that a Python
//! master's own bootstrap runs too (with `--insecure-no-auth`, since the reference
//! cannot answer a challenge).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;

use crate::auth;
use crate::error::{Error, Result};
use crate::worker::Worker;

/// What runs behind each connection.
#[derive(Clone)]
pub enum Backend {
    /// Our agent (or whatever the master sends) in this Python interpreter.
    Python(String),
    /// Registered Rust functions.
    Rust(Worker),
}

/// Server settings.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:PORT`; port 0 picks a free one).
    pub bind: String,
    /// The shared secret; `None` only with the explicit insecure mode.
    pub secret: Option<Vec<u8>>,
    /// The worker kind.
    pub backend: Backend,
    /// Stop after this many connections (for tests and one-shot use).
    pub max_connections: Option<usize>,
}

/// The Python side of a served connection: the socket (fd 0) becomes `clientsock`, fd 0
/// itself is pointed at /dev/null, and the first line is executed the way the
/// reference's socket server does.
fn prologue(ipv6: bool) -> String {
    format!(
        "import os, socket\n\
         clientsock = socket.fromfd(0, socket.{}, socket.SOCK_STREAM)\n\
         _null = os.open(os.devnull, os.O_RDONLY)\n\
         os.dup2(_null, 0)\n\
         os.close(_null)\n\
         _f = clientsock.makefile('rb', 0)\n\
         _line = _f.readline()\n\
         _f.close()\n\
         _g = {{'clientsock': clientsock, '__name__': '__main__'}}\n\
         exec(eval(_line), _g)\n",
        if ipv6 { "AF_INET6" } else { "AF_INET" }
    )
}

fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    opts: &ServeOptions,
    log: &(dyn Fn(&str) + Send + Sync),
) {
    let mut stream = stream;
    if let Some(secret) = &opts.secret {
        if let Err(refusal) = auth::challenge(&mut stream, secret) {
            log(&format!("{peer}: refused before any code ran: {refusal}"));
            return;
        }
        log(&format!("{peer}: authenticated"));
    } else {
        log(&format!(
            "{peer}: accepted without authentication (--insecure-no-auth)"
        ));
    }
    match &opts.backend {
        Backend::Rust(worker) => {
            let input = match stream.try_clone() {
                Ok(s) => s,
                Err(e) => return log(&format!("{peer}: {e}")),
            };
            match worker.serve_bootstrapped(input, stream) {
                Ok(()) => log(&format!("{peer}: Rust worker done")),
                Err(e) => log(&format!("{peer}: Rust worker ended: {e}")),
            }
        }
        Backend::Python(python) => {
            let fd: OwnedFd = stream.into();
            let mut cmd = Command::new(python);
            cmd.arg("-u")
                .arg("-c")
                .arg(prologue(peer.is_ipv6()))
                .stdin(Stdio::from(fd))
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
            {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    log(&format!("{peer}: worker pid {}", child.id()));
                    match child.wait() {
                        Ok(status) => log(&format!("{peer}: worker ended: {status}")),
                        Err(e) => log(&format!("{peer}: {e}")),
                    }
                }
                Err(e) => log(&format!("{peer}: cannot start {python:?}: {e}")),
            }
        }
    }
}

/// Listens and serves until `max_connections` connections were handled (forever when
/// `None`). `ready` is called with the bound address once listening.
pub fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    log: impl Fn(&str) + Send + Sync + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(&opts.bind)
        .map_err(|e| Error::Other(format!("cannot listen on {}: {e}", opts.bind)))?;
    let addr = listener.local_addr()?;
    ready(addr);
    let log: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(log);
    let opts = Arc::new(opts);
    let mut handled = 0usize;
    let mut threads = Vec::new();
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log(&format!("accept failed: {e}"));
                continue;
            }
        };
        let peer = stream.peer_addr().unwrap_or(addr);
        let (conn_opts, conn_log) = (opts.clone(), log.clone());
        threads.push(thread::spawn(move || {
            handle(stream, peer, &conn_opts, &*conn_log)
        }));
        handled += 1;
        if opts.max_connections.is_some_and(|m| handled >= m) {
            break;
        }
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
