//! The rules of channel callbacks and of the driver around them, on CPython 3.11, 2.7 and
//! PyPy3: a callback runs with no lock held (it may send on its own channel); a callback
//! that panics, or a value it cannot be given, closes its own channel with an error and
//! nothing else; values that nobody will read do not count against the unread-data bound
//! forever.

use std::sync::mpsc;
use std::time::Duration;

use execnet::{Error, Options, Value};

const WAIT: Duration = Duration::from_secs(20);

/// A channel whose callback panics is closed with an error naming the panic, on both
/// ends; the gateway and its other channels go on.
fn panicking_callback(name: &str) {
    let Some((group, gw)) = execnet_tests::popen(name, Options::default()) else {
        return;
    };
    let ch = gw
        .remote_exec(
            "channel.send(1)\n\
             try:\n    channel.receive()\n\
             except Exception:\n    pass\n",
        )
        .unwrap();
    ch.set_callback(|_v: Value| panic!("callback broke on purpose"), None)
        .unwrap();
    let err = ch.wait_close(Some(WAIT)).unwrap_err();
    match &err {
        Error::ChannelFailed(text) => {
            assert!(text.contains("callback broke on purpose"), "{text}")
        }
        other => panic!("expected ChannelFailed, got {other:?}"),
    }
    // The worker's side of that channel was closed with the error, so its receive
    // raised and the code ended; the gateway itself is unharmed.
    assert!(gw.is_alive());
    let other = gw
        .remote_exec("channel.send(channel.receive() + 1)")
        .unwrap();
    other.send(&41).unwrap();
    assert_eq!(other.receive_timeout::<i64>(WAIT).unwrap(), 42);
    // The panic did not kill the reader thread: a second channel still gets values.
    let third = gw.remote_exec("channel.send('still here')").unwrap();
    assert_eq!(third.receive_timeout::<String>(WAIT).unwrap(), "still here");
    group.terminate(Duration::from_secs(2));
}

/// A callback may send on its own channel: no lock of the channel is held while it runs.
fn callback_sends_on_its_own_channel(name: &str) {
    let Some((group, gw)) = execnet_tests::popen(name, Options::default()) else {
        return;
    };
    let ch = gw
        .remote_exec(
            "channel.send(0)\n\
             for x in channel:\n    if x >= 10:\n        break\n    channel.send(x)\n",
        )
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let me = ch.clone();
    ch.set_callback(
        move |v| {
            let n = v.as_i64().unwrap();
            tx.send(n).unwrap();
            let _ = me.send(&(n + 1));
        },
        Some(Value::from("end")),
    )
    .unwrap();
    let mut seen = Vec::new();
    while let Ok(n) = rx.recv_timeout(WAIT) {
        seen.push(n);
        if n == 9 {
            break;
        }
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    ch.wait_close(Some(WAIT)).unwrap();
    group.terminate(Duration::from_secs(2));
}

/// A value the callback cannot be given (it does not decode under this side's limits)
/// closes that channel with an error saying so; it is not silently dropped.
fn undecodable_value_for_a_callback(name: &str) {
    let options = Options::new().limits(execnet::core::Limits {
        max_depth: 3,
        ..execnet::core::Limits::DEFAULT
    });
    let Some((group, gw)) = execnet_tests::popen(name, options) else {
        return;
    };
    let ch = gw
        .remote_exec("channel.send([[[[[1]]]]])\nchannel.receive()")
        .unwrap();
    let (tx, rx) = mpsc::channel();
    ch.set_callback(move |v: Value| tx.send(v).unwrap(), None)
        .unwrap();
    let err = ch.wait_close(Some(WAIT)).unwrap_err();
    match &err {
        Error::ChannelFailed(text) => assert!(text.contains("did not decode"), "{text}"),
        other => panic!("expected ChannelFailed, got {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "nothing reached the callback");
    assert!(gw.is_alive());
    group.terminate(Duration::from_secs(2));
}

/// Values left unread in channels that are dropped give their bytes back: a long run of
/// such channels never trips the unread-data bound.
fn dropped_channels_give_back_their_bytes(name: &str) {
    let options = Options::new().max_queued_bytes(1 << 20);
    let Some((group, gw)) = execnet_tests::popen(name, options) else {
        return;
    };
    for _ in 0..12 {
        let ch = gw
            .remote_exec("channel.send(b'x' * 300000)\nchannel.send(1)")
            .unwrap();
        // Wait until both values are in, then drop the channel unread.
        ch.wait_close(Some(WAIT)).unwrap();
        drop(ch);
    }
    // Values handed to callbacks never counted either.
    for _ in 0..12 {
        let ch = gw.remote_exec("channel.send(b'y' * 300000)").unwrap();
        let (tx, rx) = mpsc::channel();
        ch.set_callback(move |v| tx.send(v).unwrap(), Some(Value::None))
            .unwrap();
        rx.recv_timeout(WAIT).unwrap();
    }
    assert!(gw.is_alive(), "{:?}", gw.death());
    let ch = gw.remote_exec("channel.send(7)").unwrap();
    assert_eq!(ch.receive_timeout::<i64>(WAIT).unwrap(), 7);
    group.terminate(Duration::from_secs(2));
}

macro_rules! on_interpreters {
    ($($test:ident => $body:ident on $name:expr),* $(,)?) => {$(
        #[test]
        fn $test() {
            $body($name);
        }
    )*};
}

on_interpreters! {
    panicking_callback_cpython311 => panicking_callback on "cpython3.11",
    panicking_callback_cpython27 => panicking_callback on "cpython2.7",
    panicking_callback_pypy3 => panicking_callback on "pypy3",
    callback_sends_on_its_own_channel_cpython311 => callback_sends_on_its_own_channel on "cpython3.11",
    callback_sends_on_its_own_channel_cpython27 => callback_sends_on_its_own_channel on "cpython2.7",
    callback_sends_on_its_own_channel_pypy3 => callback_sends_on_its_own_channel on "pypy3",
    undecodable_value_for_a_callback_cpython311 => undecodable_value_for_a_callback on "cpython3.11",
    undecodable_value_for_a_callback_cpython27 => undecodable_value_for_a_callback on "cpython2.7",
    undecodable_value_for_a_callback_pypy3 => undecodable_value_for_a_callback on "pypy3",
    dropped_channels_give_back_their_bytes_cpython311 => dropped_channels_give_back_their_bytes on "cpython3.11",
    dropped_channels_give_back_their_bytes_cpython27 => dropped_channels_give_back_their_bytes on "cpython2.7",
    dropped_channels_give_back_their_bytes_pypy3 => dropped_channels_give_back_their_bytes on "pypy3",
}
