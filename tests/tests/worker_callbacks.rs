//! A worker-side callback (`channel.setcallback`) that raises closes its own channel with
//! the error, as the reference does; the gateway and its other channels keep working. A
//! callback may send on its own channel.

use std::time::Duration;

use execnet::{Error, Options};

const DOUBLER: &str = "
def double(item):
    if item == 'boom':
        raise ValueError('callback refused ' + item)
    channel.send(item * 2)
channel.setcallback(double)
channel.waitclose()
";

fn raising_callback_closes_its_channel_only(name: &str) {
    let Some((group, gw)) = execnet_tests::popen(name, Options::default()) else {
        return;
    };
    let other = gw
        .remote_exec("for x in channel:\n    channel.send(x + 1)\n")
        .unwrap();
    let ch = gw.remote_exec(DOUBLER).unwrap();
    ch.send(&21).unwrap();
    assert_eq!(
        ch.receive::<i64>().unwrap(),
        42,
        "{name}: the callback answers"
    );
    ch.send("boom").unwrap();
    match ch.receive_timeout::<i64>(Duration::from_secs(10)) {
        Err(Error::Remote(e)) => {
            assert!(
                e.traceback.contains("ValueError"),
                "{name}: {}",
                e.traceback
            );
            assert!(
                e.traceback.contains("callback refused boom"),
                "{name}: {}",
                e.traceback
            );
        }
        other => panic!("{name}: expected the callback's error, got {other:?}"),
    }
    // The other channel and the gateway go on.
    other.send(&1).unwrap();
    assert_eq!(other.receive::<i64>().unwrap(), 2, "{name}");
    let fresh = gw.remote_exec("channel.send('still here')").unwrap();
    assert_eq!(fresh.receive::<String>().unwrap(), "still here", "{name}");
    assert!(gw.remote_status().is_ok(), "{name}");
    assert!(gw.is_alive(), "{name}");
    group.terminate(Duration::from_secs(2));
}

#[test]
fn raising_worker_callback_closes_its_channel_only_cpython311() {
    raising_callback_closes_its_channel_only("cpython3.11");
}

#[test]
fn raising_worker_callback_closes_its_channel_only_cpython27() {
    raising_callback_closes_its_channel_only("cpython2.7");
}

#[test]
fn raising_worker_callback_closes_its_channel_only_pypy3() {
    raising_callback_closes_its_channel_only("pypy3");
}
