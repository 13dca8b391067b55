//! Races in the agent between its reader and the threads of remote code, provoked on
//! the interpreters where they show: Jython runs Python threads truly in parallel, PyPy
//! and CPython switch threads between any two bytecodes.

use std::time::Duration;

use execnet::Options;

/// A receiver that checks for an item and then waits must be woken by an item that
/// comes in between: thousands of ping-pongs, each reply a receive racing the reader's
/// delivery of the next value.
fn ping_pong_never_loses_a_wakeup(name: &str) {
    let Some((group, gw)) = execnet_tests::popen(name, Options::default()) else {
        return;
    };
    let ch = gw
        .remote_exec("for x in channel:\n    channel.send(x + 1)\n")
        .unwrap();
    let rounds = if name == "jython" { 3000 } else { 5000 };
    for i in 0..rounds {
        ch.send(&i).unwrap();
        let got: i64 = ch
            .receive_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{name}: round {i}: {e}"));
        assert_eq!(got, i + 1);
    }
    ch.close().unwrap();
    group.terminate(Duration::from_secs(2));
}

#[test]
fn ping_pong_never_loses_a_wakeup_jython() {
    ping_pong_never_loses_a_wakeup("jython");
}

#[test]
fn ping_pong_never_loses_a_wakeup_pypy3() {
    ping_pong_never_loses_a_wakeup("pypy3");
}

#[test]
fn ping_pong_never_loses_a_wakeup_cpython311() {
    ping_pong_never_loses_a_wakeup("cpython3.11");
}

#[test]
fn ping_pong_never_loses_a_wakeup_cpython27() {
    ping_pong_never_loses_a_wakeup("cpython2.7");
}
