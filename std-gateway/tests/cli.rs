//! The `execnet` command-line tool: agreement with the reference, and one clear line
//! with a documented exit status for every kind of bad input.

#[path = "../../tests/src/interp.rs"]
#[allow(dead_code)]
mod interp;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use execnet::core::Value;

// The binary's literal parser, to compare printed values where set order may differ.
#[path = "../src/bin/execnet/literal.rs"]
#[allow(dead_code)]
mod literal;
use literal::{parse, ParseMode};

fn execnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_execnet"))
}

fn run_with_input(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Equality of two printed values where sets may list their items in any order.
fn same_value(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Float(x), Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Complex(a, b), Complex(c, d)) => {
            same_value(&Float(*a), &Float(*c)) && same_value(&Float(*b), &Float(*d))
        }
        (List(x), List(y)) | (Tuple(x), Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Set(x), Set(y)) | (FrozenSet(x), FrozenSet(y)) => {
            x.len() == y.len() && x.iter().all(|p| y.iter().any(|q| same_value(p, q)))
        }
        (Dict(x), Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same_value(k1, k2) && same_value(v1, v2))
        }
        _ => a == b,
    }
}

/// Records of `tests/py/gen_values.py`: (dumps bytes, repr text).
fn reference_values(count: usize) -> Option<Vec<(Vec<u8>, String)>> {
    let py = interp::require_reference("cpython3.11")?;
    let file = std::env::temp_dir().join(format!("execnet-cli-values-{}.bin", std::process::id()));
    let out = interp::python_command(&py, true)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/py/gen_values.py"
        ))
        .arg("7")
        .arg(count.to_string())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let mut records = Vec::new();
    let mut rest = &data[..];
    let take = |rest: &mut &[u8]| {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let v = rest[4..4 + n].to_vec();
        *rest = &rest[4 + n..];
        v
    };
    while !rest.is_empty() {
        let dumps = take(&mut rest);
        let text = String::from_utf8(take(&mut rest)).unwrap();
        records.push((dumps, text));
    }
    Some(records)
}

/// Runs `f` over the records on a few threads; returns the failures.
fn check_all(
    records: &[(Vec<u8>, String)],
    f: impl Fn(&[u8], &str) -> Option<String> + Sync,
) -> Vec<String> {
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for chunk in records.chunks(records.len().div_ceil(4).max(1)) {
            let f = &f;
            let failures = &failures;
            s.spawn(move || {
                for (dumps, text) in chunk {
                    if let Some(problem) = f(dumps, text) {
                        failures.lock().unwrap().push(problem);
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn decode_and_encode_agree_with_the_reference() {
    let Some(records) = reference_values(2000) else {
        return;
    };
    assert_eq!(records.len(), 2000);
    let decode_failures = check_all(&records, |dumps, text| {
        let mut cmd = execnet();
        cmd.arg("decode");
        let out = run_with_input(cmd, dumps);
        let ours = String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_string();
        if !out.status.success() {
            return Some(format!(
                "decode failed for {text}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if ours == text {
            return None;
        }
        // Only set order may differ.
        match (parse(&ours, ParseMode::Py3), parse(text, ParseMode::Py3)) {
            (Ok(a), Ok(b)) if same_value(&a, &b) && text.contains('{') => None,
            _ => Some(format!("decode differs:\n ours: {ours}\n ref:  {text}")),
        }
    });
    assert!(
        decode_failures.is_empty(),
        "{} failures, first: {}",
        decode_failures.len(),
        decode_failures[0]
    );
    let encode_failures = check_all(&records, |dumps, text| {
        let out = execnet().arg("encode").arg(text).output().unwrap();
        if out.stdout == dumps {
            None
        } else {
            Some(format!(
                "encode differs for {text}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    assert!(
        encode_failures.is_empty(),
        "{} failures, first: {}",
        encode_failures.len(),
        encode_failures[0]
    );
}

#[test]
fn decode_agrees_on_every_vector() {
    let Some(py) = interp::require_reference("cpython3.11") else {
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let reference = interp::python_command(&py, true)
            .arg("-c")
            .arg("import sys, execnet; sys.stdout.write(repr(execnet.loads(open(sys.argv[1], 'rb').read())))")
            .arg(&path)
            .output()
            .unwrap();
        assert!(reference.status.success());
        let ours = execnet().arg("decode").arg(&path).output().unwrap();
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let ours = String::from_utf8(ours.stdout).unwrap();
        assert_eq!(
            ours.trim_end(),
            String::from_utf8(reference.stdout).unwrap(),
            "{}",
            path.display()
        );
        // And back: encode of that text gives the vector's bytes.
        let mut cmd = execnet();
        cmd.arg("encode").arg("-");
        let enc = run_with_input(cmd, ours.as_bytes());
        assert_eq!(
            enc.stdout,
            std::fs::read(&path).unwrap(),
            "{}",
            path.display()
        );
    }
}

/// One line on stderr, starting with `execnet:`, and the given exit status.
fn assert_one_line_error(out: &Output, status: i32, contains: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("execnet: "), "{err}");
    assert!(err.contains(contains), "{err:?} lacks {contains:?}");
}

#[test]
fn bad_input_gives_one_line_and_a_documented_status() {
    // decode: malformed bytes, with the byte offset; exit 2.
    let mut cmd = execnet();
    cmd.arg("decode");
    let out = run_with_input(cmd, b"\x02K\x7f\xff\xff\xffQ");
    assert_one_line_error(&out, 2, "at byte 1");
    let mut cmd = execnet();
    cmd.args(["decode", "--internal"]);
    assert_one_line_error(&run_with_input(cmd, b"LL"), 2, "malformed input");
    // encode: malformed literal; exit 2.
    let out = execnet().args(["encode", "[1, 2"]).output().unwrap();
    assert_one_line_error(&out, 2, "malformed literal");
    let out = execnet()
        .args(["encode", "__import__('os')"])
        .output()
        .unwrap();
    assert_one_line_error(&out, 2, "not a literal");
    // exec: bad spec (2), missing interpreter (3), remote exception (1, traceback on
    // stderr).
    let out = execnet()
        .args(["exec", "popen//bogus=1", "pass"])
        .output()
        .unwrap();
    assert_one_line_error(&out, 2, "unknown spec key");
    let out = execnet()
        .args(["exec", "popen//python=/no/such/python", "pass"])
        .output()
        .unwrap();
    assert_one_line_error(&out, 3, "cannot start");
    // info: missing interpreter.
    let out = execnet()
        .args(["info", "popen//python=/no/such/python"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start"));
    let Some(py) = interp::require("cpython3.11") else {
        return;
    };
    let spec = format!("popen//python={}", py.path.display());
    let out = execnet()
        .args(["exec", &spec, "raise KeyError('nope')"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Traceback") && err.contains("KeyError: 'nope'"),
        "{err}"
    );
}

#[test]
fn exec_prints_values_and_info_prints_a_table() {
    let (Some(py3), Some(py2)) = (
        interp::require("cpython3.11"),
        interp::require("cpython2.7"),
    ) else {
        return;
    };
    let spec = format!("popen//python={}", py3.path.display());
    let out = execnet()
        .args([
            "exec",
            &spec,
            "for x in channel:\n    channel.send((x, [x * 2], {'k': None}))",
            "--send",
            "1",
            "--send",
            "'a'",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The channel stays open for receiving until the code ends; --send values come first.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(1, [2], {'k': None})\n('a', ['aa'], {'k': None})\n"
    );
    let out = execnet()
        .args([
            "exec",
            "--json",
            &spec,
            "channel.send({'a': [1, 2.5, None]})",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"a\":[1,2.5,null]}\n",
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = execnet()
        .args([
            "info",
            &spec,
            &format!("popen//python={}", py2.path.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("spec") && lines[0].contains("startup"));
    assert!(
        lines[1].contains(" 3.") && lines[2].contains(" 2.7."),
        "{table}"
    );
}
