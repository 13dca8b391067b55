//! `via=`: a gateway opened through another gateway's remote side.
//!
//! The via gateway runs a small forwarder: it starts the new worker (a local process on
//! its host, or a TCP connection from its host) and relays bytes both ways as `bytes`
//! values on one channel. The new gateway then bootstraps over that channel exactly as
//! over a pipe.

use std::io::Write;

use crate::error::Result;
use crate::gateway::{Gateway, Link, Options};
use crate::spec::{Spec, Transport};
use crate::transport::{bootstrap_payload_with, python_argv, ssh_argv, AgentConfig};

/// The forwarder, run on the via gateway's worker (Python 2 and 3).
const FORWARDER: &str = r#"
import os, socket, subprocess, threading
kind, target = channel.receive()
if kind == 'popen':
    proc = subprocess.Popen(list(target), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    def read():
        return os.read(proc.stdout.fileno(), 65536)
    def write(data):
        while data:
            n = os.write(proc.stdin.fileno(), data)
            data = data[n:]
    def close():
        try:
            proc.stdin.close()
        except Exception:
            pass
        try:
            proc.kill()
        except Exception:
            pass
        proc.wait()
else:
    sock = socket.create_connection((target[0], target[1]))
    def read():
        return sock.recv(65536)
    def write(data):
        sock.sendall(data)
    def close():
        try:
            sock.close()
        except Exception:
            pass
def feed():
    try:
        for data in channel:
            write(data)
    finally:
        close()
t = threading.Thread(target=feed)
t.daemon = True
t.start()
# The execution lasts as long as the new worker's output: its end closes the channel.
while 1:
    data = read()
    if not data:
        break
    channel.send(data)
"#;

/// Opens the gateway of `spec` through `through`.
pub(crate) fn open(through: &Gateway, spec: Spec, id: &str, options: &Options) -> Result<Gateway> {
    let ch = through.remote_exec(FORWARDER)?;
    match &spec.transport {
        Transport::Popen => ch.send(&("popen", python_argv(&spec, "python3")))?,
        Transport::Ssh { .. } => ch.send(&("popen", ssh_argv(&spec, options.connect_timeout)?))?,
        Transport::Socket { host, port } => ch.send(&("socket", (host, port)))?,
    }
    let mut writer = ch.writer();
    writer.write_all(&bootstrap_payload_with(&AgentConfig::for_spec(
        &spec,
        options.limits.max_message,
    )))?;
    let closer_ch = ch.clone();
    let link = Link {
        input: Box::new(ch.reader()),
        output: Box::new(writer),
        process: None,
        closer: Some(Box::new(move || {
            let _ = closer_ch.close();
        })),
        compiled: crate::compiled::Use::None,
    };
    Gateway::start(spec, id, options, link)
}
