//! Worker-side behaviour that users of the reference execnet rely on, on CPython 3.11,
//! 2.7 and PyPy3: the `main_thread_only` execution model (and its refusal of a concurrent
//! `remote_exec`), dedented source, `channel.close()` inside remote code, channels closed
//! when remote code drops them, a process-wide `nice=`, `python=` split as a shell would,
//! `import execnet` in remote code, and the reference's error texts.

use std::time::{Duration, Instant};

use execnet::spec::ExecModel;
use execnet::{Error, Group, Value};
use execnet_tests::{cases, interp};

fn start(group: &Group, name: &str, extra: &str) -> Option<execnet::Gateway> {
    let py = interp::require(name)?;
    Some(
        group
            .makegateway(&format!("popen//python={}{extra}", py.path.display()))
            .unwrap(),
    )
}

fn remote_error(r: execnet::Result<Value>) -> String {
    match r {
        Err(Error::Remote(e)) => e.traceback,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

const IN_MAIN: &str =
    "import threading\nchannel.send(isinstance(threading.current_thread(), threading._MainThread))\n";

fn main_thread_only(name: &str) {
    let group = Group::new();
    let Some(gw) = start(&group, name, "//execmodel=main_thread_only") else {
        return;
    };
    assert_eq!(gw.remote_status().unwrap().execmodel, "main_thread_only");
    let ch = gw.remote_exec(IN_MAIN).unwrap();
    assert!(
        ch.receive::<bool>().unwrap(),
        "{name}: not in the main thread"
    );
    let ch = gw
        .remote_exec("channel.send(channel.gateway.execmodel.backend)")
        .unwrap();
    assert_eq!(ch.receive::<String>().unwrap(), "main_thread_only");
    ch.wait_close(None).unwrap();

    // A second execution while the first runs is refused with the reference's text.
    let busy = gw
        .remote_exec("channel.send('busy')\nchannel.receive()\n")
        .unwrap();
    assert_eq!(busy.receive::<String>().unwrap(), "busy");
    let t = Instant::now();
    let second = gw.remote_exec("channel.send(1)").unwrap();
    let text = remote_error(second.receive::<Value>());
    assert!(
        text.contains("concurrent remote_exec would cause deadlock for main_thread_only execmodel"),
        "{name}: {text}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    busy.send(&0).unwrap();
    busy.wait_close(Some(Duration::from_secs(10))).unwrap();
    // Once it is free, the main thread runs the next one, even after an error.
    let failing = gw.remote_exec("raise ValueError('x')").unwrap();
    assert!(failing.wait_close(None).is_err());
    let ch = gw.remote_exec(IN_MAIN).unwrap();
    assert!(ch.receive::<bool>().unwrap(), "{name}");
    group.terminate(Duration::from_secs(2));

    // The group's default applies to specs that name no model.
    let group = Group::with_execmodel(ExecModel::MainThreadOnly);
    let gw = start(&group, name, "").unwrap();
    assert_eq!(gw.remote_status().unwrap().execmodel, "main_thread_only");
    let gw = start(&group, name, "//execmodel=thread").unwrap();
    let st = gw.remote_status().unwrap();
    assert_eq!(st.execmodel, "thread");
    let ch = gw.remote_exec(IN_MAIN).unwrap();
    assert!(
        !ch.receive::<bool>().unwrap(),
        "{name}: thread model in main"
    );
    group.terminate(Duration::from_secs(2));
}

fn missing_green_library(name: &str) {
    let group = Group::new();
    let Some(py) = interp::require(name) else {
        return;
    };
    for lib in ["eventlet", "gevent"] {
        // Where the library is installed the start succeeds; here, it must say why not.
        let probe = std::process::Command::new(&py.path)
            .args(["-c", &format!("import {lib}")])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let r = group.makegateway(&format!(
            "popen//python={}//execmodel={lib}",
            py.path.display()
        ));
        if probe.success() {
            assert_eq!(r.unwrap().remote_status().unwrap().execmodel, lib);
            continue;
        }
        let err = r.unwrap_err();
        let text = format!("{err}");
        assert!(
            text.contains(&format!("execmodel '{lib}' needs the {lib} package")),
            "{name}: {text}"
        );
    }
}

fn source_and_channel_semantics(name: &str) {
    let group = Group::new();
    let Some(gw) = start(&group, name, "") else {
        return;
    };
    // Indented source is dedented.
    let ch = gw
        .remote_exec("\n    x = 20\n    channel.send(x + 1)\n")
        .unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 21, "{name}");

    // close() inside remote_exec raises, and what is raised after it is reported.
    let ch = gw
        .remote_exec(
            "try:\n    channel.close()\nexcept IOError:\n    import sys\n    channel.send(str(sys.exc_info()[1]))\nraise ValueError('raised after close')\n",
        )
        .unwrap();
    assert_eq!(
        ch.receive::<String>().unwrap(),
        "cannot explicitly close channel within remote_exec"
    );
    let text = remote_error(ch.receive::<Value>());
    assert!(text.contains("raised after close"), "{name}: {text}");

    // A channel that remote code drops is closed, as the reference does on collection.
    let ch = gw
        .remote_exec(
            "import gc\nc = channel.gateway.newchannel()\nchannel.send(c)\nchannel.receive()\ndel c\ngc.collect()\nchannel.receive()\n",
        )
        .unwrap();
    let id = match ch.receive::<Value>().unwrap() {
        Value::Channel(id) => id,
        other => panic!("{name}: {other:?}"),
    };
    let dropped = gw.channel(id).unwrap();
    // Dropped only once this side holds it (a close of a channel id that this side has
    // not adopted yet would find nothing to close).
    ch.send(&0).unwrap();
    dropped
        .wait_close(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{name}: a dropped channel stays open: {e}"));
    ch.send(&0).unwrap();

    // The reference's serializer error text.
    let ch = gw
        .remote_exec(
            "try:\n    channel.send(object())\nexcept Exception:\n    import sys\n    e = sys.exc_info()[1]\n    channel.send((type(e).__name__, str(e)))\n",
        )
        .unwrap();
    let (kind, text): (String, String) = ch.receive().unwrap();
    assert_eq!(kind, "DumpError");
    assert!(
        text == "can't serialize <class 'object'>" || text == "can't serialize <type 'object'>",
        "{name}: {text}"
    );

    // import execnet, and what pytest-xdist's worker reads.
    let ch = gw
        .remote_exec(
            "import execnet\nfrom execnet.gateway_base import dumps, loads, DumpError\nq = channel.gateway.execmodel.queue.Queue()\nq.put(tuple(loads(dumps([1, 'a']))))\nchannel.send((q.get(), channel.gateway.execmodel.backend, issubclass(DumpError, Exception)))\n",
        )
        .unwrap();
    let (items, backend, ok): ((i64, String), String, bool) = ch.receive().unwrap();
    assert_eq!(items, (1, "a".to_string()), "{name}");
    assert_eq!(backend, "thread");
    assert!(ok);
    group.terminate(Duration::from_secs(2));
}

fn nice_is_process_wide(name: &str) {
    let group = Group::new();
    let Some(gw) = start(&group, name, "//nice=7") else {
        return;
    };
    // Every thread runs at it: the one running the code, a new one, and the main thread.
    let ch = gw
        .remote_exec(
            "import os, threading\nout = []\nt = threading.Thread(target=lambda: out.append(os.nice(0)))\nt.start()\nt.join()\nmain = open('/proc/%d/stat' % os.getpid()).read().rsplit(') ', 1)[1].split()[16]\nchannel.send((os.nice(0), out[0], int(main)))\n",
        )
        .unwrap();
    let (here, fresh, main): (i64, i64, i64) = ch.receive().unwrap();
    assert_eq!((here, fresh, main), (7, 7, 7), "{name}");
    group.terminate(Duration::from_secs(2));
}

fn python_split_as_a_shell(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("execnet sem {}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(format!("py {name}"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&py.path, &link).unwrap();
    let escaped = link.display().to_string().replace(' ', "\\ ");
    let group = Group::new();
    let gw = group
        .makegateway(&format!("popen//python=env 'EXECNET_SPLIT=a b' {escaped}"))
        .unwrap();
    let ch = gw
        .remote_exec(
            "import os, sys\nchannel.send((os.environ['EXECNET_SPLIT'], sys.executable))\n",
        )
        .unwrap();
    let (value, _exe): (String, String) = ch.receive().unwrap();
    assert_eq!(value, "a b", "{name}");
    let err = group
        .makegateway("popen//python=python3 'unclosed")
        .unwrap_err();
    assert!(err.to_string().contains("unclosed quote"), "{err}");
    group.terminate(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
}

cases! {
    main_thread_only_cpython311 => main_thread_only("cpython3.11"),
    main_thread_only_cpython27 => main_thread_only("cpython2.7"),
    main_thread_only_pypy3 => main_thread_only("pypy3"),
    green_execmodel_without_library_cpython311 => missing_green_library("cpython3.11"),
    green_execmodel_without_library_cpython27 => missing_green_library("cpython2.7"),
    green_execmodel_without_library_pypy3 => missing_green_library("pypy3"),
    source_and_channel_semantics_cpython311 => source_and_channel_semantics("cpython3.11"),
    source_and_channel_semantics_cpython27 => source_and_channel_semantics("cpython2.7"),
    source_and_channel_semantics_pypy3 => source_and_channel_semantics("pypy3"),
    nice_is_process_wide_cpython311 => nice_is_process_wide("cpython3.11"),
    nice_is_process_wide_cpython27 => nice_is_process_wide("cpython2.7"),
    nice_is_process_wide_pypy3 => nice_is_process_wide("pypy3"),
    python_split_as_a_shell_cpython311 => python_split_as_a_shell("cpython3.11"),
    python_split_as_a_shell_cpython27 => python_split_as_a_shell("cpython2.7"),
    python_split_as_a_shell_pypy3 => python_split_as_a_shell("pypy3"),
}

#[test]
fn socket_host_that_does_not_resolve_is_unreachable() {
    let group = Group::new();
    let err = group
        .makegateway("socket=no-such-host.invalid:8888")
        .unwrap_err();
    assert!(matches!(err, Error::HostUnreachable { .. }), "{err}");
}

/// The execution model reaches the worker whatever the transport: through another
/// gateway (`via=`) and over a socket server.
#[test]
fn execmodel_over_via_and_socket() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let python = py.path.display().to_string();
    let group = Group::new();
    group
        .makegateway(&format!("popen//python={python}//id=hop"))
        .unwrap();
    let gw = group
        .makegateway(&format!(
            "popen//python={python}//via=hop//execmodel=main_thread_only"
        ))
        .unwrap();
    assert_eq!(gw.remote_status().unwrap().execmodel, "main_thread_only");
    let ch = gw.remote_exec(IN_MAIN).unwrap();
    assert!(ch.receive::<bool>().unwrap(), "via: not in the main thread");

    let dir = std::env::temp_dir().join(format!("execnet-sem-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "a secret of more than sixteen bytes\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut opts = execnet::serve::ServeOptions::new(
        "127.0.0.1:0",
        Some(execnet::serve::Secret::from_file(&secret).unwrap()),
        execnet::serve::Backend::Python(python.clone()),
    );
    opts.max_connections = Some(1);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = execnet::serve::serve(opts, move |a| tx.send(a).unwrap(), |_| {});
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let gw = group
        .makegateway(&format!(
            "socket={addr}//secret={}//execmodel=main_thread_only",
            secret.display()
        ))
        .unwrap();
    assert_eq!(gw.remote_status().unwrap().execmodel, "main_thread_only");
    let ch = gw.remote_exec(IN_MAIN).unwrap();
    assert!(
        ch.receive::<bool>().unwrap(),
        "socket: not in the main thread"
    );
    group.terminate(Duration::from_secs(2));
}

/// After the master's LAST_MESSAGE (it will send no more), the worker's code still runs
/// to its end, and its channel's close reaches the master.
fn close_after_last_message(name: &str) {
    let group = Group::new();
    let Some(gw) = start(&group, name, "") else {
        return;
    };
    let ch = gw
        .remote_exec("for x in channel:\n    channel.send(x * 2)\n")
        .unwrap();
    ch.send(&4).unwrap();
    ch.send_last_message().unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 8);
    ch.wait_close(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{name}: no close after LAST_MESSAGE: {e}"));
    group.terminate(Duration::from_secs(2));
}

cases! {
    close_after_last_message_cpython311 => close_after_last_message("cpython3.11"),
    close_after_last_message_cpython27 => close_after_last_message("cpython2.7"),
    close_after_last_message_pypy3 => close_after_last_message("pypy3"),
}
