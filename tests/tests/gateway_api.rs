//! The gateway API suite over pipes, one test per behaviour and interpreter: CPython 2.7
//! and 3.6 to 3.13, PyPy3 and Jython, each through our own agent. Behaviours that leave
//! a gateway as they found it share one gateway per interpreter (so that Jython starts a
//! few times, not once per test); reconfigure and exit get gateways of their own.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use execnet::{Gateway, Group};
use execnet_tests::interp;
use execnet_tests::suite::{self, Behaviour, Ctx};

fn ctx(py: &interp::Interp) -> Ctx {
    Ctx {
        name: py.name.clone(),
        py2: matches!(py.family, interp::Family::CPython2 | interp::Family::Jython),
        local: true,
    }
}

fn spec(py: &interp::Interp) -> String {
    format!("popen//python={}", py.path.display())
}

/// One group holding the shared gateway of every interpreter.
fn shared(py: &interp::Interp) -> Gateway {
    static GROUP: OnceLock<Group> = OnceLock::new();
    static STARTED: OnceLock<Mutex<HashMap<String, Gateway>>> = OnceLock::new();
    let group = GROUP.get_or_init(Group::new);
    let mut started = STARTED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    started
        .entry(py.name.clone())
        .or_insert_with(|| group.makegateway(&spec(py)).expect("gateway starts"))
        .clone()
}

/// Runs a behaviour on the shared gateway of `name`.
fn on_shared(behaviour: Behaviour, name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    behaviour(&shared(&py), &ctx(&py));
}

/// Runs a behaviour on a gateway of its own.
fn on_own(behaviour: Behaviour, name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let group = Group::new();
    let gw = group.makegateway(&spec(&py)).expect("gateway starts");
    behaviour(&gw, &ctx(&py));
    group.terminate(Duration::from_secs(2));
}

macro_rules! interpreters {
    ($run:ident, $behaviour:path) => {
        #[test]
        fn cpython27() {
            $run($behaviour, "cpython2.7");
        }
        #[test]
        fn cpython36() {
            $run($behaviour, "cpython3.6");
        }
        #[test]
        fn cpython37() {
            $run($behaviour, "cpython3.7");
        }
        #[test]
        fn cpython38() {
            $run($behaviour, "cpython3.8");
        }
        #[test]
        fn cpython39() {
            $run($behaviour, "cpython3.9");
        }
        #[test]
        fn cpython310() {
            $run($behaviour, "cpython3.10");
        }
        #[test]
        fn cpython311() {
            $run($behaviour, "cpython3.11");
        }
        #[test]
        fn cpython312() {
            $run($behaviour, "cpython3.12");
        }
        #[test]
        fn cpython313() {
            $run($behaviour, "cpython3.13");
        }
        #[test]
        fn pypy3() {
            $run($behaviour, "pypy3");
        }
        #[test]
        fn jython() {
            $run($behaviour, "jython");
        }
    };
}

macro_rules! behaviours {
    ($($run:ident: $($behaviour:ident),*;)*) => {$($(
        mod $behaviour {
            use super::*;
            interpreters!($run, suite::$behaviour);
        }
    )*)*};
}

behaviours! {
    on_shared:
        rinfo_and_status,
        echo_every_value,
        timeout_then_iterate,
        remote_error_carries_the_traceback,
        call_with_kwargs,
        close_with_error_raises_remotely,
        callback_with_endmarker,
        channel_as_read_and_write,
        channel_passed_as_a_value,
        remote_print_does_not_corrupt_the_stream,
        many_channels_at_once;
    on_own:
        reconfigure_gateway_and_channel,
        exit_ends_everything;
}

/// Every shared behaviour of the suite has its tests here.
#[test]
fn every_shared_behaviour_is_listed() {
    let listed = [
        "rinfo_and_status",
        "echo_every_value",
        "timeout_then_iterate",
        "remote_error_carries_the_traceback",
        "call_with_kwargs",
        "close_with_error_raises_remotely",
        "callback_with_endmarker",
        "channel_as_read_and_write",
        "channel_passed_as_a_value",
        "remote_print_does_not_corrupt_the_stream",
        "many_channels_at_once",
    ];
    let in_suite: Vec<&str> = suite::SHARED.iter().map(|(n, _)| *n).collect();
    assert_eq!(in_suite, listed);
}

/// `rinfo` is remembered: a working directory changed since shows only after a refresh.
#[test]
fn rinfo_is_cached_until_refreshed() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = Group::new();
    let gw = group.makegateway(&spec(&py)).unwrap();
    let before = gw.rinfo().unwrap();
    let dir = std::env::temp_dir().canonicalize().unwrap();
    gw.remote_exec(&format!(
        "import os\nos.chdir({:?})",
        dir.display().to_string()
    ))
    .unwrap()
    .wait_close(Some(Duration::from_secs(10)))
    .unwrap();
    assert_eq!(gw.rinfo().unwrap().cwd, before.cwd);
    assert_eq!(gw.refresh_rinfo().unwrap().cwd, dir.display().to_string());
    assert_eq!(gw.rinfo().unwrap().cwd, dir.display().to_string());
    group.terminate(Duration::from_secs(2));
}

/// `exit` takes a gateway out of its group, and a dead gateway's id can be taken again
/// by a new one (a respawn from the same spec).
#[test]
fn exit_leaves_the_group_and_a_dead_id_is_free_again() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = Group::new();
    let spec = format!("{}//id=worker", spec(&py));
    let gw = group.makegateway(&spec).unwrap();
    assert!(matches!(
        group.makegateway(&spec),
        Err(execnet::Error::DuplicateId(id)) if id == "worker"
    ));
    gw.exit_timeout(Duration::from_secs(2));
    assert!(group.get("worker").is_none());
    assert!(group.gateways().is_empty());
    let again = group.makegateway(&spec).unwrap();
    let pid = again.pid().unwrap();
    // A worker that dies (killed from outside) leaves its id to the next one too.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    again
        .wait_dead(Duration::from_secs(5))
        .expect("the gateway dies");
    let third = group.makegateway(&spec).unwrap();
    assert_eq!(third.id(), "worker");
    assert_eq!(group.gateways().len(), 1);
    group.terminate(Duration::from_secs(2));
}

/// `execnet::makegateway` uses the default group, as `execnet.makegateway` does.
#[test]
fn makegateway_without_a_group_uses_the_default_one() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let gw = execnet::makegateway(&spec(&py)).unwrap();
    assert!(execnet::default_group().get(gw.id()).is_some());
    assert_eq!(
        gw.remote_exec("channel.send(6 * 7)")
            .unwrap()
            .receive::<i64>()
            .unwrap(),
        42
    );
    gw.exit_timeout(Duration::from_secs(2));
    assert!(execnet::default_group().get(gw.id()).is_none());
}

/// `makegateways` gives ids in spec order, as one `makegateway` after another would,
/// whichever gateway starts first; an automatic `gwN` never takes an `id=` of the same
/// call.
#[test]
fn makegateways_gives_ids_in_spec_order() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let plain = spec(&py);
    let specs = [
        plain.clone(),
        format!("{plain}//id=gw1"),
        plain.clone(),
        plain.clone(),
    ];
    for _ in 0..3 {
        let group = execnet::Group::new();
        let gws = group.makegateways(&specs).unwrap();
        let ids: Vec<&str> = gws.iter().map(|g| g.id()).collect();
        assert_eq!(ids, ["gw0", "gw1", "gw2", "gw3"]);
        let seen: Vec<String> = group
            .remote_exec("channel.send(channel.gateway.id)")
            .unwrap()
            .receive_each()
            .unwrap();
        assert_eq!(
            seen,
            ["gw0-worker", "gw1-worker", "gw2-worker", "gw3-worker"]
        );
        group.terminate(Duration::from_secs(5));
    }
}

/// Two concurrent starts naming the same `id=`: one gets it, the other is refused, even
/// while the first is still starting; and an automatic `gwN` never takes an `id=` that a
/// concurrent start holds.
#[test]
fn concurrent_starts_never_share_an_id() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let plain = spec(&py);
    for _ in 0..3 {
        let group = execnet::Group::new();
        let named = format!("{plain}//id=x");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| group.makegateway(&named));
            let b = s.spawn(|| group.makegateway(&named));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(
            a.is_ok() != b.is_ok(),
            "exactly one start gets id=x: {:?} {:?}",
            a.as_ref().map(|g| g.id().to_string()),
            b.as_ref().map(|g| g.id().to_string())
        );
        let err = a.err().or(b.err()).unwrap();
        assert!(
            matches!(err, execnet::Error::DuplicateId(ref id) if id == "x"),
            "{err}"
        );
        let with_gw1 = format!("{plain}//id=gw1");
        let (many, one) = std::thread::scope(|s| {
            let many = s.spawn(|| group.makegateways(&[plain.clone(), plain.clone()]));
            let one = s.spawn(|| group.makegateway(&with_gw1));
            (many.join().unwrap(), one.join().unwrap())
        });
        let mut ids: Vec<String> = group
            .gateways()
            .iter()
            .map(|g| g.id().to_string())
            .collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(
            ids.len(),
            before,
            "an id given twice: {ids:?} ({:?} {:?})",
            many.is_ok(),
            one.is_ok()
        );
        group.terminate(Duration::from_secs(5));
    }
}

/// `exit()` on a dead gateway's old handle leaves alone the live gateway that has since
/// taken its id.
#[test]
fn exit_of_a_dead_handle_leaves_its_successor_in_the_group() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = execnet::Group::new();
    let named = format!("{}//id=x", spec(&py));
    let old = group.makegateway(&named).unwrap();
    let _ = old
        .remote_exec("import os; os._exit(3)")
        .unwrap()
        .wait_close(None);
    assert!(old.wait_dead(Duration::from_secs(5)).is_some());
    let new = group.makegateway(&named).unwrap();
    old.exit();
    assert!(new.is_alive());
    assert!(
        group.get("x").is_some(),
        "the live gateway x left the group"
    );
    assert_eq!(group.gateways().len(), 1);
    group.terminate(Duration::from_secs(2));
}

/// `send_last_message` after the remote code has ended (its side closed the channel)
/// succeeds: there is nobody left to tell. A second one, or one after `close`, is refused.
#[test]
fn last_message_after_the_remote_side_closed_succeeds() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let group = execnet::Group::new();
    let gw = group.makegateway(&spec(&py)).unwrap();
    let ch = gw.remote_exec("channel.send(1)").unwrap();
    assert_eq!(ch.receive::<i64>().unwrap(), 1);
    ch.wait_close(Some(Duration::from_secs(10))).unwrap();
    ch.send_last_message().unwrap();
    assert!(matches!(
        ch.send_last_message(),
        Err(execnet::Error::Closed)
    ));
    let other = gw.remote_exec("channel.receive()").unwrap();
    other.close().unwrap();
    assert!(matches!(
        other.send_last_message(),
        Err(execnet::Error::Closed)
    ));
    group.terminate(Duration::from_secs(2));
}
