//! The gateway API suite over pipes, against every interpreter the machine has: CPython
//! 2.7 and 3.6 to 3.13, PyPy3 and Jython, each through our own agent.

use execnet::Group;
use execnet_tests::{interp, suite};

fn api_suite(name: &str) {
    let Some(py) = interp::require(name) else {
        return;
    };
    let py2 = matches!(py.family, interp::Family::CPython2 | interp::Family::Jython);
    let group = Group::new();
    suite::run(
        &group,
        &format!("popen//python={}", py.path.display()),
        name,
        py2,
        true,
    );
    group.terminate(std::time::Duration::from_secs(2));
}

macro_rules! suite {
    ($($test:ident => $name:expr),* $(,)?) => {$(
        #[test]
        fn $test() {
            api_suite($name);
        }
    )*};
}

suite! {
    api_cpython27 => "cpython2.7",
    api_cpython36 => "cpython3.6",
    api_cpython37 => "cpython3.7",
    api_cpython38 => "cpython3.8",
    api_cpython39 => "cpython3.9",
    api_cpython310 => "cpython3.10",
    api_cpython311 => "cpython3.11",
    api_cpython312 => "cpython3.12",
    api_cpython313 => "cpython3.13",
    api_pypy3 => "pypy3",
    api_jython => "jython",
}
