//! Typed data everywhere: `receive_each`, the receive queue, callbacks and a Rust
//! worker's keyword arguments take any `Deserialize` type, with `Value` for dynamic data.

use std::sync::mpsc;
use std::time::Duration;

use execnet::multi::QueueItem;
use execnet::serve::{serve, Backend, ServeOptions};
use execnet::worker::Worker;
use execnet::{Group, Value};
use execnet_tests::interp;
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
    label: String,
}

fn group_of(names: &[&str]) -> Option<Group> {
    let mut specs = Vec::new();
    for name in names {
        specs.push(format!(
            "popen//python={}",
            interp::require(name)?.path.display()
        ));
    }
    let group = Group::new();
    group.makegateways(&specs).unwrap();
    Some(group)
}

const POINT: &str = "import sys\nchannel.send({'x': sys.version_info[0], 'y': 2, 'label': 'p'})\n";

#[test]
fn receive_each_decodes_every_channel_as_one_type() {
    let Some(group) = group_of(&["cpython3.11", "cpython2.7", "pypy3"]) else {
        return;
    };
    let mc = group.remote_exec(POINT).unwrap();
    let points: Vec<Point> = mc.receive_each().unwrap();
    let majors: Vec<i64> = points.iter().map(|p| p.x).collect();
    assert_eq!(majors, [3, 2, 3]);
    assert!(points.iter().all(|p| p.y == 2 && p.label == "p"));
    group.terminate(Duration::from_secs(2));
}

#[test]
fn the_receive_queue_is_typed() {
    let Some(group) = group_of(&["cpython3.11", "cpython2.7"]) else {
        return;
    };
    let mc = group.remote_exec(POINT).unwrap();
    let queue = mc.make_receive_queue::<Point>().unwrap();
    let (mut points, mut ends) = (Vec::new(), 0);
    while ends < 2 {
        match queue.recv_timeout(WAIT).unwrap() {
            QueueItem::Value(_, p) => points.push(p),
            QueueItem::End(_) => ends += 1,
        }
    }
    points.sort_by_key(|p| p.x);
    assert_eq!(points.iter().map(|p| p.x).collect::<Vec<_>>(), [2, 3]);
    group.terminate(Duration::from_secs(2));
}

#[test]
fn callbacks_take_a_type_and_a_value_that_does_not_fit_fails_the_channel() {
    let Some(group) = group_of(&["cpython3.11"]) else {
        return;
    };
    let gw = &group.gateways()[0];
    let ch = gw
        .remote_exec(&format!("{POINT}channel.send(1)\n"))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    ch.set_callback(move |p: Point| tx.send(p).unwrap(), None)
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().label, "p");
    // The second value, an int, is no Point: the channel ends with an error saying so.
    let err = ch.wait_close(Some(WAIT)).unwrap_err();
    assert!(err.to_string().contains("did not decode"), "{err}");
    group.terminate(Duration::from_secs(2));
}

#[test]
fn for_value_in_a_channel() {
    let Some(group) = group_of(&["cpython3.11"]) else {
        return;
    };
    let gw = &group.gateways()[0];
    let ch = gw
        .remote_exec("channel.send(1)\nchannel.send((2, 'two'))\nchannel.send({3})")
        .unwrap();
    let mut got = Vec::new();
    for v in &ch {
        got.push(v.unwrap());
    }
    assert_eq!(
        got,
        [
            Value::int(1),
            Value::Tuple(vec![Value::int(2), Value::from("two")]),
            Value::Set(vec![Value::int(3)]),
        ]
    );
    group.terminate(Duration::from_secs(2));
}

#[derive(Deserialize)]
struct Scale {
    point: Point,
    factor: i64,
}

#[test]
fn a_rust_worker_takes_typed_keyword_arguments() {
    let mut worker = Worker::new();
    worker.register("scale", |ch, args: Scale| {
        let p = Point {
            x: args.point.x * args.factor,
            y: args.point.y * args.factor,
            label: args.point.label,
        };
        ch.send(&p).map_err(|e| e.to_string())
    });
    worker.register("echo", |ch, kwargs: Value| {
        ch.send(&kwargs).map_err(|e| e.to_string())
    });
    let mut opts = ServeOptions::new("127.0.0.1:0", None, Backend::Rust(worker));
    opts.max_connections = Some(1);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || serve(opts, move |a| tx.send(a).unwrap(), |_| {}));
    let addr = rx.recv_timeout(WAIT).unwrap();
    let group = Group::new();
    let gw = group.makegateway(&format!("socket={addr}")).unwrap();

    #[derive(Serialize)]
    struct Args<'a> {
        point: &'a Point,
        factor: i64,
    }
    let point = Point {
        x: 1,
        y: -2,
        label: "q".into(),
    };
    let ch = gw
        .remote_exec_call(
            "",
            "scale",
            &Args {
                point: &point,
                factor: 3,
            },
        )
        .unwrap();
    let scaled: Point = ch.receive_timeout(WAIT).unwrap();
    assert_eq!((scaled.x, scaled.y, scaled.label.as_str()), (3, -6, "q"));
    // Arguments that do not fit the function's type are a TypeError for the master.
    let ch = gw
        .remote_exec_call(
            "",
            "scale",
            &std::collections::BTreeMap::from([("factor", 2)]),
        )
        .unwrap();
    let err = ch.receive_timeout::<Value>(WAIT).unwrap_err();
    assert!(err.to_string().contains("TypeError: scale()"), "{err}");
    // Value takes the dict as it came.
    let ch = gw
        .remote_exec_call(
            "",
            "echo",
            &std::collections::BTreeMap::from([("k", (1, 2))]),
        )
        .unwrap();
    let v: Value = ch.receive_timeout(WAIT).unwrap();
    assert_eq!(
        v,
        Value::Dict(vec![(
            Value::from("k"),
            Value::Tuple(vec![Value::int(1), Value::int(2)])
        )])
    );
    group.terminate(Duration::from_secs(2));
}
