//! What a worker's start costs (issue 12, agent startup): the agent imports no module a
//! session may never need, its cold parts are compiled on first use and work on every
//! interpreter, and tracebacks through the agent, hot or cold, name the lines of
//! `agent.py` itself.

use std::process::Command;
use std::time::Duration;

use execnet::bootstrap::AGENT_SOURCE;
use execnet::{Error, Group, Value};
use execnet_tests::interp;

/// Modules a session may never need, each more than 0.2 ms to import.
const AVOIDED: [&str; 7] = [
    "traceback",
    "linecache",
    "tokenize",
    "textwrap",
    "ctypes",
    "signal",
    "fcntl",
];

fn modules(list: &str) -> Vec<String> {
    list.split_whitespace().map(String::from).collect()
}

#[test]
fn a_fresh_worker_has_not_imported_what_it_may_never_need() {
    for name in ["cpython3.11", "cpython3.13", "cpython3.8", "cpython2.7"] {
        let Some(py) = interp::require(name) else {
            return;
        };
        let bare = Command::new(&py.path)
            .args([
                "-u",
                "-c",
                "import sys; sys.stdout.write(' '.join(sorted(sys.modules)))",
            ])
            .output()
            .expect("the interpreter runs");
        let bare = modules(&String::from_utf8_lossy(&bare.stdout));
        let group = Group::new();
        let gw = group
            .makegateway(&format!("popen//python={}", py.path.display()))
            .expect("gateway starts");
        let list: String = gw
            .remote_exec("import sys\nchannel.send(' '.join(sorted(sys.modules)))")
            .unwrap()
            .receive()
            .unwrap();
        let added: Vec<String> = modules(&list)
            .into_iter()
            .filter(|m| !bare.contains(m))
            .collect();
        for avoided in AVOIDED {
            // Python 2's signal is a small C module; before 3.4, descriptors need fcntl.
            if name == "cpython2.7" && (avoided == "signal" || avoided == "fcntl") {
                continue;
            }
            assert!(
                !added.iter().any(|m| m == avoided),
                "{name}: the agent imported {avoided} (it added {added:?})"
            );
        }
        group.terminate(Duration::from_secs(5));
    }
}

/// The number of the line of `agent.py` that holds `text`, once.
fn agent_line(text: &str) -> usize {
    let found: Vec<usize> = AGENT_SOURCE
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(text))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(found.len(), 1, "{text:?} in agent.py: lines {found:?}");
    found[0]
}

fn remote_traceback(e: Error) -> String {
    match e {
        Error::Remote(r) => r.traceback,
        other => panic!("expected a remote error, found {other}"),
    }
}

#[test]
fn cold_parts_work_and_tracebacks_name_the_lines_of_the_file() {
    let cold = agent_line("i = self.buf.find(type(self.buf)(\"\\n\"))");
    let hot = agent_line("raise DumpError(\"can't serialize %s\" % (t,))");
    for py in interp::all() {
        let group = Group::new();
        let gw = group
            .makegateway(&format!("popen//python={}", py.path.display()))
            .expect("gateway starts");
        // A cold part (the channel's file objects) fails inside: its line is the file's.
        let ch = gw
            .remote_exec("reader = channel.makefile('r')\nchannel.send(1)\nreader.readline()\n")
            .unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 1);
        ch.send(&5).unwrap();
        let tb = remote_traceback(ch.receive::<Value>().unwrap_err());
        assert!(
            tb.contains(&format!("line {cold}, in readline")),
            "{}: the traceback does not name line {cold} of agent.py:\n{tb}",
            py.name
        );
        // So is a hot one's.
        let ch = gw.remote_exec("channel.send(object())").unwrap();
        let tb = remote_traceback(ch.receive::<Value>().unwrap_err());
        assert!(
            tb.contains(&format!("line {hot}, in _save")),
            "{}: the traceback does not name line {hot} of agent.py:\n{tb}",
            py.name
        );
        // The other cold parts: waitclose, setcallback, reconfigure, the status answer.
        let ch = gw
            .remote_exec(
                "got = []\nch = channel.gateway.newchannel()\nch.setcallback(got.append)\n\
                 channel.reconfigure(py2str_as_py3str=False)\nchannel.send(len(got))\n\
                 channel.waitclose(5)\n",
            )
            .unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 0);
        ch.close().unwrap();
        assert!(gw.remote_status().is_ok(), "{}", py.name);
        group.terminate(Duration::from_secs(5));
    }
}

/// What each request costs: a source sent again is not compiled again, and an execution
/// runs on a bare thread, as under the reference (starting a `threading.Thread` waits
/// for the thread to run, which every request would wait for).
#[test]
fn repeated_sources_are_compiled_once_and_run_on_bare_threads() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = Group::new();
    let gw = group
        .makegateway(&format!("popen//python={}", py.path.display()))
        .expect("gateway starts");
    let source = "import sys, threading\n\
                  code = sys._getframe().f_code\n\
                  first = getattr(sys, '_bench_code', None)\n\
                  sys._bench_code = code\n\
                  channel.send((first is code, isinstance(threading.current_thread(), threading._DummyThread)))\n";
    let (_, bare) = gw
        .remote_exec(source)
        .unwrap()
        .receive::<(bool, bool)>()
        .unwrap();
    assert!(bare, "the execution ran on a threading.Thread");
    let (same, _) = gw
        .remote_exec(source)
        .unwrap()
        .receive::<(bool, bool)>()
        .unwrap();
    assert!(same, "the same source was compiled again");
    // Another source, or the same under another file name, is compiled anew.
    let (same, _) = gw
        .remote_exec(&format!("{source}\n"))
        .unwrap()
        .receive::<(bool, bool)>()
        .unwrap();
    assert!(!same);
    group.terminate(Duration::from_secs(5));
}

/// Large strings, which the agent takes from its input apart from their opcode, length
/// and STOP (so that their bytes are copied once on the way), arrive whole and in order
/// on every interpreter, among small values, and load under the channel's string config.
#[test]
fn large_strings_of_every_kind_arrive_whole() {
    let big = 100_000;
    let text: String = "h\u{e9}llo \u{1F600} ".chars().cycle().take(big).collect();
    let bytes: Vec<u8> = (0..big).map(|i| (i * 7) as u8).collect();
    for py in interp::all() {
        let py2 = matches!(py.family, interp::Family::CPython2 | interp::Family::Jython);
        let group = Group::new();
        let gw = group
            .makegateway(&format!("popen//python={}", py.path.display()))
            .expect("gateway starts");
        let echo = gw
            .remote_exec("for x in channel:\n    channel.send(x)\n")
            .unwrap();
        let mut sent = vec![
            Value::Bytes(bytes.clone()),
            Value::int(1),
            Value::Str(text.clone()),
            Value::Str(text.clone()),
            Value::Tuple(vec![Value::Bytes(bytes.clone())]),
        ];
        if py2 {
            sent.push(Value::Unicode(text.clone()));
            sent.push(Value::Py2Str(bytes.clone()));
        }
        for v in &sent {
            echo.send(v).unwrap();
        }
        for v in &sent {
            let back: Value = echo.receive().unwrap();
            assert!(
                execnet_tests::suite::same(v, &back),
                "{}: {} came back changed",
                py.name,
                v.type_name()
            );
        }
        if !py2 {
            // Loaded under py3str_as_py2str, a str is bytes to the worker's code.
            echo.reconfigure(false, true).unwrap();
            echo.send(&Value::Str(text.clone())).unwrap();
            assert_eq!(
                echo.receive::<Value>().unwrap(),
                Value::Bytes(text.clone().into_bytes()),
                "{}",
                py.name
            );
        }
        echo.close().unwrap();
        group.terminate(Duration::from_secs(5));
    }
}
