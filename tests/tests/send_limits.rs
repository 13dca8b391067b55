//! `Channel::send` refuses what our own decoder would refuse on arrival (issue 11 item
//! 9), with an error that names the limit, and the channel and gateway stay usable.

use std::time::Duration;

use execnet::{Error, Options, Value};
use execnet_core::error::Limit;
use execnet_core::{EncodeError, Int};

fn limit(e: &Error) -> Option<Limit> {
    match e {
        Error::Encode(EncodeError::LimitExceeded { limit, .. }) => Some(*limit),
        _ => None,
    }
}

#[test]
fn send_refuses_values_beyond_the_decoders_limits() {
    let Some((group, gw)) = execnet_tests::popen("cpython3.11", Options::default()) else {
        return;
    };
    let echo = gw
        .remote_exec("for item in channel:\n    channel.send(item)\n")
        .unwrap();

    let huge = Value::Int(Int::parse(&"9".repeat(20_000)).unwrap());
    let e = echo.send(&huge).unwrap_err();
    assert_eq!(limit(&e), Some(Limit::BigIntDigits), "{e}");
    assert!(e.to_string().contains("max_bigint_digits"), "{e}");

    // 300 MB of untouched zero pages: refused before a byte of it is copied.
    let big = vec![0u8; 300 << 20];
    let e = echo.send(&Borrowed(&big)).unwrap_err();
    assert_eq!(limit(&e), Some(Limit::Bytes), "{e}");
    drop(big);

    // Nothing half-written went out: the channel still echoes. (CPython 3.11 itself
    // refuses to parse more than 4,300 digits, below our 10,000.)
    let edge = Value::Int(Int::parse(&"9".repeat(4_000)).unwrap());
    echo.send(&edge).unwrap();
    assert_eq!(echo.receive::<Value>().unwrap(), edge);
    echo.send(&7).unwrap();
    assert_eq!(echo.receive::<i64>().unwrap(), 7);
    echo.close().unwrap();
    group.terminate(Duration::from_secs(5));
}

/// Bytes sent as they are, without a copy into a `Value`.
struct Borrowed<'a>(&'a [u8]);

impl serde::Serialize for Borrowed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}
