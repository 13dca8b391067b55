//! A gateway's life as `tracing` records it: the worker's command line, the handshake,
//! every frame in and out with its channel and size, and the end with its cause, all in
//! the gateway's span.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execnet::Group;
use execnet_tests::interp;

/// Collects formatted events in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_gateway_start_and_a_frame_exchange_are_traced() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Global: the reader thread records the frames that come in.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let pid;
    {
        let group = Group::new();
        let gw = group
            .makegateway(&format!("popen//python={}//id=traced", py.path.display()))
            .unwrap();
        pid = gw.pid().unwrap();
        let ch = gw
            .remote_exec("channel.send(channel.receive() + 1)")
            .unwrap();
        ch.send(&41).unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 42);
        ch.wait_close(Some(Duration::from_secs(10))).unwrap();
        gw.exit_timeout(Duration::from_secs(2));
        // A second worker of the same command is sent the code the first one compiled.
        let again = group
            .makegateway(&format!("popen//python={}//id=again", py.path.display()))
            .unwrap();
        let ch = again.remote_exec("channel.send(7)").unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 7);
        again.exit_timeout(Duration::from_secs(2));
    }
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let pid_field = format!("pid={pid}");
    let expect = [
        "starting the worker",
        py.path.to_str().unwrap(),
        "sending the agent compiled=false",
        pid_field.as_str(),
        "handshake complete",
        "frame out code=\"CHANNEL_EXEC\" channel=1",
        "frame out code=\"CHANNEL_DATA\" channel=1 len=6",
        "frame in code=\"CHANNEL_DATA\" channel=1 len=6",
        "frame in code=\"CHANNEL_CLOSE\" channel=1 len=0",
        "frame out code=\"GATEWAY_TERMINATE\" channel=0",
        "gateway ended",
        // Its cause: the worker ended as told.
        "cause=",
        "sending the agent compiled=true",
    ];
    let mut at = 0;
    for needle in expect {
        match log[at..].find(needle) {
            Some(i) => at += i,
            None => panic!("{needle:?} not found in order in the trace:\n{log}"),
        }
    }
    for line in log.lines().filter(|l| l.contains("frame ")) {
        assert!(
            line.contains("gateway{id=traced") || line.contains("gateway{id=again"),
            "outside the span: {line}"
        );
    }
}
