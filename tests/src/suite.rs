//! The gateway API suite: one function that exercises the whole channel and gateway API
//! against a worker, run over every transport and interpreter by the tests.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use execnet::core::strconfig::{load_as, Reader};
use execnet::core::Int;
use execnet::{Error, Group, Value};

/// An int from decimal text.
pub fn big(text: &str) -> Value {
    Value::Int(Int::parse(text).unwrap())
}

/// Values that every generation sends and receives unchanged.
pub fn sample_values() -> Vec<Value> {
    vec![
        Value::None,
        Value::Bool(true),
        Value::Bool(false),
        Value::int(0),
        Value::int(-1),
        Value::int(2147483647),
        big("2147483648"),
        big("-2147483649"),
        big("123456789012345678901234567890"),
        Value::Float(0.5),
        Value::Float(f64::INFINITY),
        Value::Float(-0.0),
        Value::Complex(1.5, -2.0),
        Value::Bytes(b"\x00\xffbin".to_vec()),
        Value::Str("h\u{e9}llo \u{1F600}".into()),
        Value::List(vec![
            Value::int(1),
            Value::List(vec![]),
            Value::Str("x".into()),
        ]),
        Value::Tuple(vec![Value::int(1), Value::Tuple(vec![])]),
        Value::Dict(vec![
            (Value::Str("k".into()), Value::int(1)),
            (
                Value::Tuple(vec![Value::int(1), Value::int(2)]),
                Value::None,
            ),
        ]),
        Value::Set(vec![Value::int(3)]),
        Value::FrozenSet(vec![Value::Str("f".into())]),
    ]
}

/// Python-level equality for what came back (ints by value, all text kinds alike,
/// bytes and Python 2 str alike, sets unordered).
pub fn same(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Int(x) | Long(x), Int(y) | Long(y)) => x == y,
        (Str(x) | Unicode(x), Str(y) | Unicode(y)) => x == y,
        (Bytes(x) | Py2Str(x), Bytes(y) | Py2Str(y)) => x == y,
        (Float(x), Float(y)) => x.to_bits() == y.to_bits(),
        (List(x), List(y)) | (Tuple(x), Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Set(x), Set(y)) | (FrozenSet(x), FrozenSet(y)) => {
            x.len() == y.len() && x.iter().all(|p| y.iter().any(|q| same(p, q)))
        }
        (Dict(x), Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        _ => a == b,
    }
}

/// Runs the API suite against the gateway `spec` opens in `group`. `py2` says whether
/// the worker is a Python 2 (CPython 2.7 or Jython); `local` whether it is a local child
/// process (then its pid, exit status and captured output are checked too).
pub fn run(group: &Group, spec: &str, name: &str, py2: bool, local: bool) {
    let t = Instant::now();
    let gw = group.makegateway(spec).expect("gateway starts");
    eprintln!("{name}: started in {:?}", t.elapsed());

    // rinfo and status
    let info = gw.rinfo().unwrap();
    assert_eq!(info.version_info.0, if py2 { 2 } else { 3 }, "{info:?}");
    assert!(info.pid > 0);
    let st = gw.remote_status().unwrap();
    assert_eq!(st.execmodel, "thread");

    // echo of every value type, both ways
    let echo = gw
        .remote_exec("for item in channel:\n    channel.send(item)\n")
        .unwrap();
    for v in sample_values() {
        echo.send_value(&v).unwrap();
        let back = echo.receive_value().unwrap();
        assert!(same(&v, &back), "{name}: sent {v:?}, got {back:?}");
    }
    // serde types
    echo.send(&(1u8, "two", vec![3.5f64])).unwrap();
    let (a, b, c): (u8, String, Vec<f64>) = echo.receive().unwrap();
    assert_eq!((a, b.as_str(), c), (1, "two", vec![3.5]));
    echo.close().unwrap();
    assert!(matches!(echo.send(&1), Err(Error::Closed)));

    // receive with timeout, then iterate until close
    let ch = gw
        .remote_exec("x = channel.receive()\nfor i in range(x):\n    channel.send(i)\n")
        .unwrap();
    assert!(matches!(
        ch.receive_timeout::<i64>(Duration::from_millis(100)),
        Err(Error::Timeout(_))
    ));
    ch.send(&5).unwrap();
    let got: Vec<i64> = ch.iter::<i64>().map(|r| r.unwrap()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(matches!(ch.receive::<i64>(), Err(Error::Eof)));
    ch.wait_close(Some(Duration::from_secs(10))).unwrap();

    // remote errors carry the traceback
    let ch = gw
        .remote_exec("def f():\n    raise ValueError('boom 42')\nf()\n")
        .unwrap();
    match ch.receive::<i64>() {
        Err(Error::Remote(e)) => {
            assert!(e.traceback.contains("ValueError"), "{}", e.traceback);
            assert!(e.summary().contains("boom 42"), "{}", e.summary());
        }
        other => panic!("{name}: expected a remote error, got {other:?}"),
    }
    assert!(matches!(ch.wait_close(None), Err(Error::Remote(_))));

    // the function-call form with kwargs
    let ch = gw
        .remote_exec_call(
            "def add(channel, a, b=0):\n    channel.send(a + b)\n",
            "add",
            &std::collections::BTreeMap::from([("a", 40), ("b", 2)]),
        )
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);

    // close with error: the remote receive raises it
    let side = gw.newchannel().unwrap();
    let ch = gw
        .remote_exec(
            "other = channel.receive()\ntry:\n    channel.receive()\nexcept Exception:\n    import sys\n    other.send(str(sys.exc_info()[1]))\n",
        )
        .unwrap();
    ch.send_value(&side.as_value()).unwrap();
    ch.close_with_error("stop here").unwrap();
    let text: String = side.receive_timeout(Duration::from_secs(10)).unwrap();
    assert!(text.contains("stop here"), "{name}: {text}");

    // callbacks with an end marker
    let ch = gw
        .remote_exec("for i in range(3):\n    channel.send(i)\n")
        .unwrap();
    let (tx, rx) = mpsc::channel();
    ch.set_callback(move |v| tx.send(v).unwrap(), Some(Value::Str("END".into())))
        .unwrap();
    let got: Vec<Value> = (0..4)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            Value::int(0),
            Value::int(1),
            Value::int(2),
            Value::Str("END".into())
        ]
    );

    // a channel as Read / Write
    let ch = gw
        .remote_exec("data = channel.receive()\nchannel.send(data[::-1])\nchannel.send(data)\n")
        .unwrap();
    ch.writer().write_all(b"abc").unwrap();
    let mut text = Vec::new();
    ch.reader().read_to_end(&mut text).unwrap();
    assert_eq!(text, b"cbaabc");

    // a channel created here and passed to the remote code as a value
    let side = gw.newchannel().unwrap();
    let ch = gw
        .remote_exec("other = channel.receive()\nother.send('via side channel')\n")
        .unwrap();
    ch.send_value(&side.as_value()).unwrap();
    assert_eq!(side.receive::<String>().unwrap(), "via side channel");

    // printing in remote code does not corrupt the stream (and, locally, is captured)
    let ch = gw
        .remote_exec("import sys\nsys.stdout.write('printed-by-remote\\n')\nsys.stdout.flush()\nchannel.send(1)\n")
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 1);
    ch.wait_close(Some(Duration::from_secs(10))).unwrap();
    if local {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while Instant::now() < deadline {
            out.extend(gw.take_output());
            if String::from_utf8_lossy(&out).contains("printed-by-remote") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(String::from_utf8_lossy(&out).contains("printed-by-remote"));
    }

    // reconfigure: gateway-wide and per channel
    gw.reconfigure(false, true).unwrap();
    let ch = gw
        .remote_exec("channel.send(type(channel.receive()).__name__)\n")
        .unwrap();
    ch.send("text").unwrap();
    let remote_type: String = ch.receive().unwrap();
    // py3str_as_py2str: a Python 3 str arrives as bytes on 2.x readers and on execnet 2.x
    assert_eq!(remote_type, if py2 { "str" } else { "bytes" });
    gw.reconfigure(true, false).unwrap();
    let ch = gw
        .remote_exec("channel.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)\nchannel.send('abc')\n")
        .unwrap();
    let (v, cfg) = ch.receive_value_with_config(None).unwrap();
    assert_eq!(cfg, execnet::core::StrConfig::new(false, true), "{name}");
    let kind = if py2 {
        execnet::core::strconfig::StrKind::Py2Str
    } else {
        execnet::core::strconfig::StrKind::Py3Str
    };
    assert!(same(&v, &Value::Str("abc".into())) || same(&v, &Value::Bytes(b"abc".to_vec())));
    assert_eq!(
        load_as(kind, cfg, Reader::Execnet2Py3),
        execnet::core::strconfig::Loaded::Bytes,
        "{name}"
    );

    // exit: everything ends, blocked calls fail
    let ch = gw.remote_exec("channel.receive()\n").unwrap();
    gw.exit_timeout(Duration::from_secs(2));
    assert!(ch.receive::<i64>().is_err());
    if local {
        let pid = gw.pid().unwrap();
        assert!(
            gw.exit_status().is_some(),
            "{name}: worker {pid} not reaped"
        );
    }
}
