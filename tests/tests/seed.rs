//! The seed scenarios, against real interpreters.

use std::process::Command;
use std::time::Duration;

use execnet::core::strconfig::{load_as, Reader, StrKind};
use execnet::core::{decode, encode, Envelope, Limits, StrConfig, Value, Version};
use execnet::{Group, Options};
use execnet_tests::interp;

fn output(mut cmd: Command) -> String {
    let out = cmd.output().expect("interpreter runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn script(name: &str) -> String {
    format!("{}/py/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// (a) A value dumped by execnet 1.9.0 on Python 2.7 loads here, and ours loads there
/// and on Python 3.
#[test]
fn a_python2_dumps_file_round_trip() {
    let (Some(py27), Some(py311)) = (
        interp::require_reference("cpython2.7"),
        interp::require_reference("cpython3.11"),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("execnet-seed-a-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("py2.bin");
    let mut cmd = interp::python_command(&py27, true);
    cmd.arg(script("py2_dump.py")).arg(&file);
    output(cmd);
    let data = std::fs::read(&file).unwrap();
    let mut nodes = Vec::new();
    let (version, v) = decode::decode_dumps(&data, &mut nodes, &Limits::DEFAULT).unwrap();
    assert_eq!(version, Version::V1);
    let words: Vec<String> = match v {
        execnet::core::ValueRef::List(items) => items
            .iter()
            .map(|i| match i {
                execnet::core::ValueRef::Str(s) => {
                    assert_eq!(s.kind(), StrKind::Py2Str);
                    s.load_text(StrConfig::new(true, false))
                        .unwrap()
                        .into_owned()
                }
                other => panic!("not a str: {other:?}"),
            })
            .collect(),
        other => panic!("not a list: {other:?}"),
    };
    assert_eq!(words, ["hello", "world"]);

    // Our dumps of the same value, as version 1 for execnet 1.9 and version 2 for 2.x.
    let value = Value::List(vec![
        Value::Py2Str(b"hello".to_vec()),
        Value::Py2Str(b"world".to_vec()),
    ]);
    for (py, version, expect) in [
        (&py27, Version::V1, "[('str', 'hello'), ('str', 'world')]"),
        (&py311, Version::V2, "[('str', 'hello'), ('str', 'world')]"),
    ] {
        let f = dir.join(format!("ours-{version:?}.bin"));
        std::fs::write(
            &f,
            encode::to_vec(&value, Envelope::Dumps(version)).unwrap(),
        )
        .unwrap();
        let mut cmd = interp::python_command(py, true);
        cmd.arg(script("load_check.py")).arg(&f);
        assert_eq!(output(cmd).trim(), expect, "{}", py.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// (b) numpy in a Python 2.7 worker.
#[test]
fn b_numpy_on_python27() {
    let Some((group, gw)) = execnet_tests::popen("cpython2.7", Options::default()) else {
        return;
    };
    let ch = gw
        .remote_exec(
            "import numpy\na = numpy.array([1, 2, 3])\nfor i in range(10):\n    a = numpy.append(a, channel.receive())\nchannel.send(repr(a))\n",
        )
        .unwrap();
    for i in 0..10 {
        ch.send(&i).unwrap();
    }
    let text: String = ch.receive_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(text, "array([1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])");
    group.terminate(Duration::from_secs(2));
}

fn kind_of(v: &Value) -> StrKind {
    match v {
        Value::Str(_) => StrKind::Py3Str,
        Value::Unicode(_) => StrKind::Unicode,
        Value::Py2Str(_) => StrKind::Py2Str,
        Value::Bytes(_) => StrKind::Bytes,
        other => panic!("not a string: {other:?}"),
    }
}

/// Runs the session of `py/strconfig_session.py` with our master; returns the same rows.
fn our_session(remote: &interp::Interp, reader: Reader) -> Vec<Vec<String>> {
    let group = Group::new();
    let gw = group
        .makegateway(&format!("popen//python={}", remote.path.display()))
        .unwrap();
    let source = std::fs::read_to_string(script("strconfig_session.py")).unwrap();
    let remote_code = source
        .split("REMOTE = \"\"\"")
        .nth(1)
        .and_then(|s| s.split("\"\"\"").next())
        .unwrap()
        .to_string();
    let ch = gw.remote_exec(&remote_code).unwrap();
    let name_of = |(v, cfg): (Value, StrConfig)| {
        load_as(kind_of(&v), cfg, reader)
            .type_name(reader)
            .to_string()
    };
    let step = |name: &str| -> Vec<String> {
        ch.send(&Value::Str("text".into())).unwrap();
        let remote_text: String = ch.receive().unwrap();
        let echoed_text = ch.receive_with_config::<Value>(None).unwrap();
        let literal = ch.receive_with_config::<Value>(None).unwrap();
        ch.send(&Value::Bytes(b"bytes".to_vec())).unwrap();
        let remote_bytes: String = ch.receive().unwrap();
        let echoed_bytes = ch.receive_with_config::<Value>(None).unwrap();
        let _ = ch.receive::<Value>().unwrap();
        vec![
            name.to_string(),
            remote_text,
            remote_bytes,
            name_of(echoed_text),
            name_of(echoed_bytes),
            name_of(literal),
        ]
    };
    let mut rows = vec![step("default")];
    gw.reconfigure(false, true).unwrap();
    rows.push(step("gateway-False-True"));
    gw.reconfigure(true, false).unwrap();
    ch.reconfigure(false, true).unwrap();
    rows.push(step("channel-False-True"));
    ch.reconfigure(true, false).unwrap();
    ch.send("reconfigure-channel").unwrap();
    let _: Value = ch.receive::<Value>().unwrap();
    rows.push(step("remote-channel-False-True"));
    ch.send(&Value::None).unwrap();
    group.terminate(Duration::from_secs(2));
    rows
}

fn reference_session(master: &interp::Interp, remote: &interp::Interp) -> Vec<Vec<String>> {
    let mut cmd = interp::python_command(master, true);
    cmd.arg(script("strconfig_session.py")).arg(&remote.path);
    let text = output(cmd);
    parse_rows(text.trim())
}

/// Parses the script's JSON: a list of lists of strings (no escapes occur).
fn parse_rows(text: &str) -> Vec<Vec<String>> {
    let inner = text.trim_start_matches('[').trim_end_matches(']');
    inner
        .split("], [")
        .map(|row| {
            row.trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .map(|s| s.trim_matches('"').to_string())
                .collect()
        })
        .collect()
}

/// (c) The string-coercion session: remote type names and our received kinds match the
/// reference's in the same session, for Python 3 and Python 2.7 workers.
#[test]
fn c_strconfig_session_matches_reference() {
    let (Some(py311), Some(py27), Some(py37)) = (
        interp::require_reference("cpython3.11"),
        interp::require_reference("cpython2.7"),
        interp::require_reference("cpython3.7"),
    ) else {
        return;
    };
    // Python 3 worker: the reference master is execnet 2.1.2 on 3.11.
    let theirs = reference_session(&py311, &py311);
    let ours = our_session(&py311, Reader::Execnet2Py3);
    assert_eq!(ours, theirs, "Python 3 worker");
    // Python 2.7 worker: execnet 2.x cannot drive it; the reference master is execnet
    // 1.9.0 on CPython 3.7.
    let theirs = reference_session(&py37, &py27);
    let ours = our_session(&py27, Reader::Execnet1Py3);
    assert_eq!(ours, theirs, "Python 2.7 worker");
}

/// (d) Java objects in a Jython worker.
#[test]
fn d_jython_java_vector() {
    let Some(jy) = interp::require("jython") else {
        return;
    };
    let group = Group::new();
    let gw = group
        .makegateway(&format!("popen//python={}", jy.path.display()))
        .unwrap();
    let ch = gw
        .remote_exec(
            "from java.util import Vector\nv = Vector()\nv.add('aaa')\nv.add('bbb')\nfor val in v:\n    channel.send(val)\n",
        )
        .unwrap();
    let items: Vec<String> = ch.iter::<String>().map(|r| r.unwrap()).collect();
    assert_eq!(items, ["aaa", "bbb"]);
    group.terminate(Duration::from_secs(5));
}
