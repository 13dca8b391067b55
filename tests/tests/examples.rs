//! Every example runs, so that none can rot. Cargo builds the examples before it runs
//! the tests; each is started from `target/<profile>/examples`.

use std::path::PathBuf;
use std::process::Command;

use execnet_tests::interp;

fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/examples-HASH -> target/<profile>/examples/NAME
    let dir: PathBuf = exe.parent().unwrap().parent().unwrap().join("examples");
    Command::new(dir.join(name))
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().expect("example starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bare_metal() {
    let out = run(example("bare_metal"));
    assert!(out.contains("cmd=blink times=3"), "{out}");
    assert!(out.contains("5 nodes are enough"), "{out}");
}

#[test]
fn serde_struct() {
    assert!(run(example("serde_struct")).contains("name: \"resize\""));
}

#[test]
fn demo() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let mut cmd = example("demo");
    cmd.arg(&py.path);
    let out = run(cmd);
    assert!(
        out.contains("'square': Int(Small(1208925819614629174706176))")
            || out.contains("1208925819614629174706176"),
        "{out}"
    );
    assert!(out.contains("remote error: ZeroDivisionError"), "{out}");
}

#[test]
fn py2_values() {
    let (Some(py27), Some(py311)) = (
        interp::require_reference("cpython2.7"),
        interp::require_reference("cpython3.11"),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("execnet-ex-py2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.bin");
    let mut dump = interp::python_command(&py27, true);
    dump.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/py/py2_dump.py"))
        .arg(&input);
    run(dump);
    let mut cmd = example("py2_values");
    cmd.arg(&input).arg(&dir);
    let out = run(cmd);
    assert!(out.contains("V1: [\"hello\", \"world\"]"), "{out}");
    for (py, file) in [(&py27, "for-execnet1.bin"), (&py311, "for-execnet2.bin")] {
        let mut check = interp::python_command(py, true);
        check
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/py/load_check.py"))
            .arg(dir.join(file));
        assert_eq!(run(check).trim(), "[('str', 'hello'), ('str', 'world')]");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn numpy_py2() {
    let Some(py27) = interp::require("cpython2.7") else {
        return;
    };
    let mut cmd = example("numpy_py2");
    cmd.arg(&py27.path);
    assert_eq!(
        run(cmd).trim(),
        "array([1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"
    );
}

#[test]
fn string_coercion() {
    for (name, default, reconfigured) in [
        (
            "cpython3.11",
            "str -> str      bytes -> bytes",
            "str -> bytes    bytes -> bytes",
        ),
        (
            "cpython2.7",
            "str -> unicode  bytes -> str",
            "str -> str      bytes -> str",
        ),
    ] {
        let Some(py) = interp::require(name) else {
            continue;
        };
        let mut cmd = example("string_coercion");
        cmd.arg(&py.path);
        let out = run(cmd);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{name}: {out}");
        for (line, expect) in lines
            .iter()
            .zip([default, reconfigured, default, reconfigured])
        {
            assert!(
                line.ends_with(expect),
                "{name}: {line:?} should end with {expect:?}\n{out}"
            );
        }
    }
}

#[test]
fn jython_java() {
    let Some(jy) = interp::require("jython") else {
        return;
    };
    let mut cmd = example("jython_java");
    cmd.arg(&jy.path);
    assert_eq!(run(cmd).trim(), "aaa\nbbb");
}

#[test]
fn rsync() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("execnet-ex-rsync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src/sub")).unwrap();
    std::fs::write(dir.join("src/a.txt"), b"a").unwrap();
    std::fs::write(dir.join("src/sub/b.txt"), b"bb").unwrap();
    let sync = || {
        let mut cmd = example("rsync");
        cmd.arg(dir.join("src"))
            .arg(&py.path)
            .arg(dir.join("one"))
            .arg(dir.join("two"));
        run(cmd)
    };
    let first = sync();
    assert!(
        first
            .starts_with("2 targets: 2 files compared, 2 read and sent (3 bytes) as 4 file writes"),
        "{first}"
    );
    assert_eq!(std::fs::read(dir.join("two/sub/b.txt")).unwrap(), b"bb");
    let second = sync();
    assert!(second.contains("0 read and sent (0 bytes)"), "{second}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The gateway benchmark's own side answers every command it documents with one line of
/// JSON, against a Python worker and against itself as a Rust worker.
#[test]
fn gateway_bench() {
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let commands = [
        ("startup 1", "\"ms\": ["),
        ("startup_first 1", "\"ms\": ["),
        ("rtt 20", "\"worker_cpu_us\""),
        ("rtt_slow 2", "\"cpu_us\""),
        ("small_up 50", "\"per_s\""),
        ("small_down 50", "\"per_s\""),
        ("bulk_up 2", "\"worker_cpu_ms_per_mib\""),
        ("bulk_down 2", "\"worker_cpu_ms_per_mib\""),
        ("value 1024 3", "\"mib_s\""),
        ("value 100000 2", "\"mib_s\""),
        ("channels 5", "\"ms\""),
        ("rust_rtt 20", "\"cpu_us\""),
        ("rust_bulk_up 2", "\"mib_s\""),
        ("rust_bulk_down 2", "\"mib_s\""),
    ];
    let mut cmd = example("gateway_bench");
    cmd.arg("serve").arg(&py.path);
    cmd.stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("gateway_bench starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for (c, _) in commands {
            writeln!(stdin, "{c}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), commands.len(), "{text}");
    for ((c, key), line) in commands.iter().zip(lines) {
        assert!(line.starts_with('{') && line.contains(key), "{c}: {line}");
    }
}
