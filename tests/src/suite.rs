//! The gateway API suite: one function that exercises the whole channel and gateway API
//! against a worker, run over every transport and interpreter by the tests.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use execnet::core::strconfig::{load_as, Reader};
use execnet::core::Int;
use execnet::{Error, Gateway, Group, Value};

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

/// What a behaviour needs to know about the worker it runs against.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The interpreter's name, for messages.
    pub name: String,
    /// Whether the worker is a Python 2 (CPython 2.7 or Jython).
    pub py2: bool,
    /// Whether it is a local child process (then its pid, exit status and captured
    /// output are checked too).
    pub local: bool,
}

/// One behaviour of the API, checked against a started gateway.
pub type Behaviour = fn(&Gateway, &Ctx);

/// The behaviours that leave the gateway as they found it, so that they can share one.
pub const SHARED: [(&str, Behaviour); 11] = [
    ("rinfo_and_status", rinfo_and_status),
    ("echo_every_value", echo_every_value),
    ("timeout_then_iterate", timeout_then_iterate),
    (
        "remote_error_carries_the_traceback",
        remote_error_carries_the_traceback,
    ),
    ("call_with_kwargs", call_with_kwargs),
    (
        "close_with_error_raises_remotely",
        close_with_error_raises_remotely,
    ),
    ("callback_with_endmarker", callback_with_endmarker),
    ("channel_as_read_and_write", channel_as_read_and_write),
    ("channel_passed_as_a_value", channel_passed_as_a_value),
    (
        "remote_print_does_not_corrupt_the_stream",
        remote_print_does_not_corrupt_the_stream,
    ),
    ("many_channels_at_once", many_channels_at_once),
];

/// Runs the whole API suite against the gateway `spec` opens in `group`: every shared
/// behaviour, then reconfigure, then exit.
pub fn run(group: &Group, spec: &str, name: &str, py2: bool, local: bool) {
    let ctx = Ctx {
        name: name.into(),
        py2,
        local,
    };
    let t = Instant::now();
    let gw = group.makegateway(spec).expect("gateway starts");
    eprintln!("{name}: started in {:?}", t.elapsed());
    for (_, behaviour) in SHARED {
        behaviour(&gw, &ctx);
    }
    reconfigure_gateway_and_channel(&gw, &ctx);
    exit_ends_everything(&gw, &ctx);
}

/// `rinfo` and `remote_status` describe the worker; `rinfo` is remembered until refreshed.
pub fn rinfo_and_status(gw: &Gateway, ctx: &Ctx) {
    let info = gw.rinfo().unwrap();
    assert_eq!(info.version_info.0, if ctx.py2 { 2 } else { 3 }, "{info:?}");
    assert!(info.pid > 0);
    let again = gw.rinfo().unwrap();
    assert_eq!(again, info);
    let fresh = gw.refresh_rinfo().unwrap();
    assert_eq!(fresh.pid, info.pid);
    let st = gw.remote_status().unwrap();
    assert_eq!(st.execmodel, "thread");
}

/// Every value type goes there and back unchanged, as dynamic values and as serde types;
/// a closed channel refuses to send.
pub fn echo_every_value(gw: &Gateway, ctx: &Ctx) {
    let echo = gw
        .remote_exec("for item in channel:\n    channel.send(item)\n")
        .unwrap();
    for v in sample_values() {
        echo.send(&v).unwrap();
        let back = echo.receive::<Value>().unwrap();
        assert!(same(&v, &back), "{}: sent {v:?}, got {back:?}", ctx.name);
    }
    echo.send(&(1u8, "two", vec![3.5f64])).unwrap();
    let (a, b, c): (u8, String, Vec<f64>) = echo.receive().unwrap();
    assert_eq!((a, b.as_str(), c), (1, "two", vec![3.5]));
    echo.close().unwrap();
    assert!(matches!(echo.send(&1), Err(Error::Closed)));
}

/// `receive_timeout` gives up; iteration ends at the close.
pub fn timeout_then_iterate(gw: &Gateway, _ctx: &Ctx) {
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
}

/// A remote exception reaches `receive` and `wait_close` with its traceback.
pub fn remote_error_carries_the_traceback(gw: &Gateway, ctx: &Ctx) {
    let ch = gw
        .remote_exec("def f():\n    raise ValueError('boom 42')\nf()\n")
        .unwrap();
    match ch.receive::<i64>() {
        Err(Error::Remote(e)) => {
            assert!(e.traceback.contains("ValueError"), "{}", e.traceback);
            assert!(e.summary().contains("boom 42"), "{}", e.summary());
        }
        other => panic!("{}: expected a remote error, got {other:?}", ctx.name),
    }
    assert!(matches!(ch.wait_close(None), Err(Error::Remote(_))));
    // A file name given with the source is what the traceback shows.
    let ch = gw
        .remote_exec_named("x = 1\nraise KeyError('k')\n", "named_step.py")
        .unwrap();
    match ch.receive::<i64>() {
        Err(Error::Remote(e)) => {
            assert!(e.traceback.contains("named_step.py"), "{}", e.traceback);
            assert_eq!(e.exception_type(), "KeyError", "{}", e.traceback);
        }
        other => panic!("{}: expected a remote error, got {other:?}", ctx.name),
    }
}

/// The function-call form passes keyword arguments.
pub fn call_with_kwargs(gw: &Gateway, _ctx: &Ctx) {
    let ch = gw
        .remote_exec_call(
            "def add(channel, a, b=0):\n    channel.send(a + b)\n",
            "add",
            &std::collections::BTreeMap::from([("a", 40), ("b", 2)]),
        )
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 42);
}

/// Closing with an error makes the remote `receive` raise it.
pub fn close_with_error_raises_remotely(gw: &Gateway, ctx: &Ctx) {
    let side = gw.newchannel().unwrap();
    let ch = gw
        .remote_exec(
            "other = channel.receive()\ntry:\n    channel.receive()\nexcept Exception:\n    import sys\n    other.send(str(sys.exc_info()[1]))\n",
        )
        .unwrap();
    ch.send(&side.as_value()).unwrap();
    ch.close_with_error("stop here").unwrap();
    let text: String = side.receive_timeout(Duration::from_secs(10)).unwrap();
    assert!(text.contains("stop here"), "{}: {text}", ctx.name);
}

/// A callback gets every value, then the end marker.
pub fn callback_with_endmarker(gw: &Gateway, _ctx: &Ctx) {
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
}

/// A channel works as `Read` and `Write`.
pub fn channel_as_read_and_write(gw: &Gateway, _ctx: &Ctx) {
    let ch = gw
        .remote_exec("data = channel.receive()\nchannel.send(data[::-1])\nchannel.send(data)\n")
        .unwrap();
    ch.writer().write_all(b"abc").unwrap();
    let mut text = Vec::new();
    ch.reader().read_to_end(&mut text).unwrap();
    assert_eq!(text, b"cbaabc");
}

/// A channel made here and sent as a value is usable by the remote code, and one the
/// remote code makes and sends back is usable here.
pub fn channel_passed_as_a_value(gw: &Gateway, _ctx: &Ctx) {
    let side = gw.newchannel().unwrap();
    let ch = gw
        .remote_exec("other = channel.receive()\nother.send('via side channel')\n")
        .unwrap();
    ch.send(&side.as_value()).unwrap();
    assert_eq!(side.receive::<String>().unwrap(), "via side channel");
    let ch = gw
        .remote_exec(
            "new = channel.gateway.newchannel()\nchannel.send(new)\nnew.send('from the worker')\n",
        )
        .unwrap();
    let Value::Channel(id) = ch.receive::<Value>().unwrap() else {
        panic!("not a channel")
    };
    let theirs = gw.channel(id).unwrap();
    assert_eq!(theirs.receive::<String>().unwrap(), "from the worker");
}

/// Printing in remote code does not corrupt the stream (and, locally, is captured).
pub fn remote_print_does_not_corrupt_the_stream(gw: &Gateway, ctx: &Ctx) {
    let ch = gw
        .remote_exec("import sys\nsys.stdout.write('printed-by-remote\\n')\nsys.stdout.flush()\nchannel.send(1)\n")
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 1);
    ch.wait_close(Some(Duration::from_secs(10))).unwrap();
    if ctx.local {
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
}

/// Fifty channels at once, each answered on its own.
pub fn many_channels_at_once(gw: &Gateway, _ctx: &Ctx) {
    let chans: Vec<_> = (0..50)
        .map(|_| {
            gw.remote_exec("channel.send(channel.receive() * 2)")
                .unwrap()
        })
        .collect();
    for (i, ch) in chans.iter().enumerate() {
        ch.send(&(i as i64)).unwrap();
    }
    for (i, ch) in chans.iter().enumerate().rev() {
        assert_eq!(ch.receive::<i64>().unwrap(), 2 * i as i64);
    }
}

/// Reconfigure, for the gateway and for one channel (changes the gateway: give it one of
/// its own).
pub fn reconfigure_gateway_and_channel(gw: &Gateway, ctx: &Ctx) {
    gw.reconfigure(false, true).unwrap();
    let ch = gw
        .remote_exec("channel.send(type(channel.receive()).__name__)\n")
        .unwrap();
    ch.send("text").unwrap();
    let remote_type: String = ch.receive().unwrap();
    // py3str_as_py2str: a Python 3 str arrives as bytes on 2.x readers and on execnet 2.x
    assert_eq!(remote_type, if ctx.py2 { "str" } else { "bytes" });
    gw.reconfigure(true, false).unwrap();
    let ch = gw
        .remote_exec("channel.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)\nchannel.send('abc')\n")
        .unwrap();
    let (v, cfg) = ch.receive_with_config::<Value>(None).unwrap();
    assert_eq!(
        cfg,
        execnet::core::StrConfig::new(false, true),
        "{}",
        ctx.name
    );
    let kind = if ctx.py2 {
        execnet::core::strconfig::StrKind::Py2Str
    } else {
        execnet::core::strconfig::StrKind::Py3Str
    };
    assert!(same(&v, &Value::Str("abc".into())) || same(&v, &Value::Bytes(b"abc".to_vec())));
    assert_eq!(
        load_as(kind, cfg, Reader::Execnet2Py3),
        execnet::core::strconfig::Loaded::Bytes,
        "{}",
        ctx.name
    );
}

/// Exit ends everything: blocked calls fail, the worker is reaped, and it ended by itself,
/// status 0, as told (ends the gateway: give it one of its own).
pub fn exit_ends_everything(gw: &Gateway, ctx: &Ctx) {
    let ch = gw.remote_exec("channel.receive()\n").unwrap();
    gw.exit_timeout(Duration::from_secs(2));
    assert!(ch.receive::<i64>().is_err());
    if ctx.local {
        let pid = gw.pid().unwrap();
        assert_eq!(
            gw.exit_status(),
            Some(execnet::Exit::Code(0)),
            "{}: worker {pid}",
            ctx.name
        );
    }
}
