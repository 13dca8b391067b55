//! The Cortex-M firmware (`core/firmware`) under QEMU: the reference execnet 2.1.2 on
//! CPython 3.11 and our Rust master each drive it as they drive a popen gateway, and its
//! flash and RAM stay within budget.
//!
//! The firmware is built in release mode by the first test that needs it (a no-op when it
//! is up to date). Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target, and
//! `defmt-print` to decode the device's log; under `CI=true` a missing one fails the test.
//! The tests take turns: each runs one emulator, and the round-trip figures should not
//! share the two cores with another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use execnet::core::encode::{to_vec, Envelope};
use execnet::core::serde::Serde;
use execnet::core::Int;
use execnet::{Error, Gateway, Group, Value};
use execnet_tests::interp;
use serde::Serialize;

/// Flash the firmware may take: vector table, code, constants (and initial data).
const FLASH_BUDGET: u64 = 24 * 1024;
/// RAM it may take: static data and the deepest the stack ever went.
const RAM_BUDGET: u64 = 8 * 1024;

const WAIT: Duration = Duration::from_secs(30);

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("core")
        .join("firmware")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A tool the test cannot do without: its path, or a panic under CI, or a skip.
fn require_tool(program: &str, install: &str) -> Option<PathBuf> {
    match which(program) {
        Some(p) => Some(p),
        None if interp::in_ci() => panic!("{program} is not installed ({install})"),
        None => {
            interp::skip(program, install);
            None
        }
    }
}

/// The release build of the firmware, built once per test run.
fn firmware() -> Option<PathBuf> {
    require_tool("qemu-system-arm", "apt-get install qemu-system-arm")?;
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = firmware_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let t0 = Instant::now();
        // Its own workspace and target (thumbv7m-none-eabi, from its .cargo/config.toml);
        // flags meant for this host's build must not reach it.
        let out = Command::new(cargo)
            .args(["build", "--release", "--target-dir"])
            .arg(dir.join("target"))
            .current_dir(&dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "firmware build failed (rustup target add thumbv7m-none-eabi?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!("firmware built in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(dir.join("target/thumbv7m-none-eabi/release/execnet-firmware"))
    });
    match built {
        Ok(elf) => Some(elf.clone()),
        Err(e) => panic!("{e}"),
    }
}

/// A scratch directory for one test: the device log, a launcher that writes it.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("execnet-fw-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("device.log")
    }

    /// A launcher for this test: the firmware's, with the log going to this directory.
    /// (The spec's `//env:` would be applied by running Python code on the worker, which
    /// the device does not run.)
    fn launcher(&self) -> PathBuf {
        let path = self.dir.join("launch");
        let script = format!(
            "#!/bin/sh\nEXECNET_FIRMWARE_LOG='{}' exec '{}' \"$@\"\n",
            self.log().display(),
            firmware_dir().join("launch").display()
        );
        std::fs::write(&path, script).unwrap();
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).unwrap();
        path
    }

    /// Fails when an emulator of this test is still running a few seconds after its
    /// master ended (it is found by the log path on its command line).
    fn assert_no_emulator_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.emulators();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "emulator still running: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The command lines of this test's emulators that are running.
    fn emulators(&self) -> Vec<String> {
        let needle = self.log().display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("qemu-system-arm") && c.contains(&needle))
            .collect()
    }

    /// The device's log, decoded with `defmt-print`, when it is installed.
    fn decoded_log(&self, elf: &Path) -> Option<String> {
        let tool = require_tool("defmt-print", "cargo install defmt-print")?;
        let out = Command::new(tool)
            .arg("-e")
            .arg(elf)
            .stdin(std::fs::File::open(self.log()).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "defmt-print failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn reference_master_drives_the_device() {
    let _turn = one_at_a_time();
    let Some(py) = interp::require_reference("cpython3.11") else {
        return;
    };
    let Some(elf) = firmware() else {
        return;
    };
    let scratch = Scratch::new("reference");
    let out = interp::python_command(&py, true)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/py/drive_firmware.py"))
        .arg(scratch.launcher())
        .arg("200")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().next(), Some("OK"), "{stdout}");
    let figures = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FIGURES "))
        .expect("no figures");
    let figures: serde_json::Value = serde_json::from_str(figures).unwrap();
    for name in ["echo_small_int", "echo_small_dict", "remote_exec_add"] {
        let f = &figures[name];
        eprintln!(
            "{name}: median {:.3} ms (min {:.3}, max {:.3}, n {})",
            f["median_ms"].as_f64().unwrap(),
            f["min_ms"].as_f64().unwrap(),
            f["max_ms"].as_f64().unwrap(),
            f["n"]
        );
    }
    eprintln!(
        "startup {:.0} ms; {}",
        figures["startup_ms"].as_f64().unwrap(),
        figures["info"]
    );
    scratch.assert_no_emulator_left();

    let Some(log) = scratch.decoded_log(&elf) else {
        return;
    };
    for line in [
        "handshake sent",
        "channel 1: echo()",
        "add()",
        "NameError: name 'nosuch' is not defined",
        "ChannelExec refused: TooLarge",
        "ChannelData refused: TooLarge",
        "the master ends the gateway",
    ] {
        assert!(log.contains(line), "{line:?} not in the device log:\n{log}");
    }
}

/// A master killed without ending its gateway leaves no emulator running: the UART has
/// no hang-up, so the launcher watches the master and ends QEMU when it is gone.
#[test]
fn a_killed_master_leaves_no_emulator() {
    let _turn = one_at_a_time();
    let Some(py) = interp::require_reference("cpython3.11") else {
        return;
    };
    if firmware().is_none() {
        return;
    }
    let scratch = Scratch::new("killed");
    let mut master = interp::python_command(&py, true)
        .arg("-c")
        .arg(
            "import sys, time, execnet\n\
             gw = execnet.makegateway('popen//python=' + sys.argv[1])\n\
             print('up', flush=True)\n\
             time.sleep(120)\n",
        )
        .arg(scratch.launcher())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(master.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "up");
    assert_eq!(scratch.emulators().len(), 1, "the emulator is not running");
    master.kill().unwrap();
    master.wait().unwrap();
    scratch.assert_no_emulator_left();
}

fn int(text: &str) -> Value {
    Value::Int(Int::parse(text).unwrap())
}

fn encoded(v: &Value) -> Vec<u8> {
    to_vec(v, Envelope::Internal).unwrap()
}

/// Values of every kind, as our master sends them with `send`.
fn values() -> Vec<Value> {
    let long: String = (0..1500)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    vec![
        Value::Int(Int::Small(0)),
        Value::Int(Int::Small(-1)),
        Value::Int(Int::Small(i64::from(i32::MAX) + 1)),
        Value::Int(Int::Small(i64::MIN)),
        int("18446744073709551617"),
        int("-1606938044258990275541962092341162602522202993782792835301376"),
        Value::Float(1.5),
        Value::Float(-0.0),
        Value::Float(f64::NAN),
        Value::Float(f64::NEG_INFINITY),
        Value::Complex(1.0, -2.0),
        Value::Bool(true),
        Value::None,
        Value::Str("caf\u{e9} \u{1F600}".into()),
        Value::Bytes(vec![0, 1, 255]),
        Value::List(vec![Value::from(1i64), Value::List(vec![Value::from("x")])]),
        Value::Tuple(vec![Value::from(1i64), Value::Tuple(vec![Value::None])]),
        Value::Dict(vec![
            (
                Value::from("k"),
                Value::Dict(vec![(
                    Value::Tuple(vec![Value::from(1i64), Value::from(2i64)]),
                    Value::Dict(vec![(Value::from("deep"), Value::Bytes(b"y".to_vec()))]),
                )]),
            ),
            (Value::from("n"), Value::List(vec![])),
        ]),
        Value::Set(vec![Value::from(1i64), Value::from(2i64)]),
        Value::FrozenSet(vec![Value::from("a")]),
        Value::FrozenSet(vec![]),
        Value::Str(long),
    ]
}

/// Keyword arguments of every kind serde knows.
#[derive(Serialize)]
struct Kwargs {
    big: i128,
    negative_big: i128,
    small: i32,
    float: f64,
    flag: bool,
    nothing: Option<i32>,
    text: String,
    raw: Raw,
    list: Vec<i64>,
    pair: (i32, String),
    nested: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

/// Bytes (serde writes a `&[u8]` as a list of ints).
struct Raw(Vec<u8>);

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

#[derive(Serialize)]
struct Ab<A, B> {
    a: A,
    b: B,
}

fn open(group: &Group, scratch: &Scratch) -> Gateway {
    group
        .makegateway(&format!("popen//python={}", scratch.launcher().display()))
        .unwrap()
}

fn call<K: Serialize + ?Sized>(gw: &Gateway, name: &str, kwargs: &K) -> execnet::Channel {
    gw.remote_exec_call("", name, kwargs).unwrap()
}

/// The next value on `ch`, waiting at most [`WAIT`].
fn recv(ch: &execnet::Channel) -> Result<Value, Error> {
    ch.receive_with_config::<Value>(Some(WAIT)).map(|(v, _)| v)
}

fn remote_error(result: Result<Value, Error>) -> String {
    match result {
        Err(Error::Remote(e)) => e.traceback,
        other => panic!("expected a RemoteError, got {other:?}"),
    }
}

const NONE: BTreeMap<&str, i32> = BTreeMap::new();

/// The median time of `n` runs of `f`, in milliseconds.
fn median_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

#[test]
fn rust_master_drives_the_device() {
    let _turn = one_at_a_time();
    let Some(elf) = firmware() else {
        return;
    };
    let scratch = Scratch::new("rust");
    let group = Group::new();
    let gw = open(&group, &scratch);

    // echo: serde keyword arguments come back as one dict, re-encoded by the device.
    let kwargs = Kwargs {
        big: 1 << 100,
        negative_big: -(1 << 70),
        small: -7,
        float: 0.1,
        flag: true,
        nothing: None,
        text: "t\u{e9}xt".into(),
        raw: Raw(vec![0, 1, 2, 255]),
        list: vec![1, 2, 3],
        pair: (1, "one".into()),
        nested: BTreeMap::from([(
            "a".into(),
            BTreeMap::from([("b".into(), vec![1.5, f64::INFINITY])]),
        )]),
    };
    let back = recv(&call(&gw, "echo", &kwargs)).unwrap();
    assert_eq!(
        encoded(&back),
        to_vec(&Serde(&kwargs), Envelope::Internal).unwrap()
    );

    // mirror: every kind of value, negative big ints too (the reference cannot send them).
    let ch = call(&gw, "mirror", &NONE);
    for v in values() {
        ch.send(&v).unwrap();
        let back = recv(&ch).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(encoded(&back), encoded(&v), "{v:?} came back as {back:?}");
    }
    ch.close().unwrap();

    // add, computed here the same way.
    for (a, b, sum) in [
        (i128::from(i32::MAX), 1, i128::from(i32::MAX) + 1),
        (-(1i128 << 100), 1 << 99, -(1i128 << 99)),
        (-(1i128 << 64), 1 << 64, 0),
        (i128::MAX, i128::MAX, 0), // checked below as text
    ] {
        let got = recv(&call(&gw, "add", &Ab { a, b })).unwrap();
        if a == i128::MAX {
            assert_eq!(got, int("340282366920938463463374607431768211454"));
        } else {
            assert_eq!(encoded(&got), encoded(&int(&sum.to_string())), "{a} + {b}");
        }
    }
    for (a, b) in [
        (0.1f64, 0.2f64),
        (1e308, 1e308),
        (-0.0, -0.0),
        (1.0, f64::NAN),
    ] {
        let got = recv(&call(&gw, "add", &Ab { a, b })).unwrap();
        assert_eq!(encoded(&got), encoded(&Value::Float(a + b)), "{a} + {b}");
    }
    let got = recv(&call(
        &gw,
        "add",
        &Ab {
            a: 1i64 << 40,
            b: 0.5,
        },
    ));
    assert_eq!(got.unwrap(), Value::Float((1u64 << 40) as f64 + 0.5));

    // Two channels at once; one ends with its last message, the other with a close.
    let one = call(&gw, "mirror", &NONE);
    let two = call(&gw, "mirror", &NONE);
    one.send(&1).unwrap();
    two.send(&"two").unwrap();
    assert_eq!(two.receive_timeout::<String>(WAIT).unwrap(), "two");
    assert_eq!(one.receive_timeout::<i64>(WAIT).unwrap(), 1);
    let status = gw.remote_status().unwrap();
    assert_eq!((status.numchannels, status.numexecuting), (2, 2));
    assert_eq!(status.execmodel, "thread");
    one.send_last_message().unwrap();
    one.wait_close(Some(WAIT)).unwrap();
    two.close().unwrap();
    let status = gw.remote_status().unwrap();
    assert_eq!((status.numchannels, status.numexecuting), (0, 0));

    // Errors in Python's words.
    let text = remote_error(recv(&call(&gw, "nosuch", &NONE)));
    assert!(
        text.contains("NameError: name 'nosuch' is not defined"),
        "{text}"
    );
    let text = remote_error(recv(&gw.remote_exec("x = 1").unwrap()));
    assert!(text.starts_with("NotImplementedError"), "{text}");
    let text = remote_error(recv(&call(&gw, "add", &BTreeMap::from([("b", 1)]))));
    assert!(
        text.contains("TypeError: add() missing 1 required argument: 'a'"),
        "{text}"
    );
    let text = remote_error(recv(&call(&gw, "add", &Ab { a: "x", b: 1 })));
    assert!(
        text.contains("unsupported operand type(s) for +: 'str' and 'int'"),
        "{text}"
    );

    // A frame larger than the device's buffer fails its channel; the next call works.
    let ch = call(&gw, "mirror", &NONE);
    ch.send(&Value::Bytes(vec![7; 5000])).unwrap();
    let text = remote_error(recv(&ch));
    assert!(text.contains("larger than this side's buffer"), "{text}");
    let got = recv(&call(&gw, "add", &Ab { a: 1, b: 2 })).unwrap();
    assert_eq!(got, Value::from(3i64));

    // Round trips through our master, as drive_firmware.py measures them through the
    // reference (the same sensor-like dict).
    #[derive(Serialize)]
    struct Reading {
        name: &'static str,
        values: [i32; 3],
        ok: bool,
    }
    let reading = Reading {
        name: "sensor",
        values: [1, 2, 3],
        ok: true,
    };
    let ch = call(&gw, "mirror", &NONE);
    let echo_int = median_ms(200, || {
        ch.send(&7).unwrap();
        recv(&ch).unwrap();
    });
    let echo_dict = median_ms(200, || {
        ch.send(&reading).unwrap();
        recv(&ch).unwrap();
    });
    ch.close().unwrap();
    let add = median_ms(200, || {
        recv(&call(&gw, "add", &Ab { a: 1, b: 2 })).unwrap();
    });
    eprintln!(
        "our master, median of 200: echo_small_int {echo_int:.3} ms, \
         echo_small_dict {echo_dict:.3} ms, remote_exec_add {add:.3} ms"
    );

    gw.exit();
    assert_eq!(
        gw.exit_status(),
        Some(execnet::Exit::Code(0)),
        "the emulator should exit with the firmware's status 0"
    );
    group.terminate(WAIT);
    scratch.assert_no_emulator_left();
    if let Some(log) = scratch.decoded_log(&elf) {
        assert!(log.contains("the master ends the gateway"), "{log}");
    }
}

/// Section sizes of a 32-bit little-endian ELF file, by name.
fn elf_sections(elf: &[u8]) -> BTreeMap<String, u64> {
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x01\x01",
        "not a 32-bit little-endian ELF"
    );
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()));
    let (shoff, shentsize, shnum, shstrndx) = (
        u32_at(0x20) as usize,
        u16_at(0x2E) as usize,
        u16_at(0x30) as usize,
        u16_at(0x32) as usize,
    );
    let header = |i: usize| shoff + i * shentsize;
    let names = u32_at(header(shstrndx) + 16) as usize;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let name_at = names + u32_at(h) as usize;
            let end = elf[name_at..].iter().position(|&b| b == 0).unwrap();
            let name = String::from_utf8_lossy(&elf[name_at..name_at + end]).into_owned();
            (name, u32_at(h + 20))
        })
        .collect()
}

#[test]
fn firmware_fits_its_budget() {
    let _turn = one_at_a_time();
    let Some(elf) = firmware() else {
        return;
    };
    let sections = elf_sections(&std::fs::read(&elf).unwrap());
    let size = |name: &str| sections.get(name).copied().unwrap_or(0);
    let flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data");
    let statics = size(".data") + size(".bss") + size(".uninit");
    assert!(size(".text") > 0, "no .text in {sections:?}");

    // Drive the device through its deepest paths before reading the stack's high-water
    // mark: the deepest value it takes, the longest string, the largest sums, refusals.
    let scratch = Scratch::new("budget");
    let group = Group::new();
    let gw = open(&group, &scratch);
    let mut deep = Value::from(1i64);
    for level in 0..8 {
        deep = match level % 3 {
            0 => Value::List(vec![deep]),
            1 => Value::Dict(vec![(Value::from("k"), deep)]),
            _ => Value::Tuple(vec![deep, Value::Float(2.5)]),
        };
    }
    let ch = call(&gw, "mirror", &NONE);
    for v in [deep.clone(), Value::Str("x".repeat(1500))] {
        ch.send(&v).unwrap();
        assert_eq!(encoded(&recv(&ch).unwrap()), encoded(&v));
    }
    ch.close().unwrap();
    // Six levels inside the kwargs dict, inside the request tuple: the depth limit.
    let nested = vec![vec![vec![vec![vec![vec![1.5]]]]]];
    assert!(recv(&call(&gw, "echo", &BTreeMap::from([("v", nested)]))).is_ok());
    let a = i128::MAX;
    assert!(recv(&call(&gw, "add", &Ab { a, b: a })).is_ok());
    assert!(recv(&call(&gw, "add", &Ab { a, b: 0.5 })).is_err());
    let ch = call(&gw, "mirror", &NONE);
    ch.send(&Value::List(vec![Value::None; 120])).unwrap();
    assert!(remote_error(recv(&ch)).contains("MemoryError"));
    let ch = call(&gw, "mirror", &NONE);
    ch.send(&Value::Bytes(vec![0; 4000])).unwrap();
    assert!(recv(&ch).is_err());
    assert_eq!(gw.remote_status().unwrap().numexecuting, 0);

    let info = recv(&call(&gw, "info", &NONE)).unwrap();
    let Value::Dict(items) = &info else {
        panic!("info() is not a dict: {info:?}")
    };
    let field = |key: &str| -> u64 {
        items
            .iter()
            .find_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Int(Int::Small(n))) if k == key => Some(*n as u64),
                _ => None,
            })
            .unwrap_or_else(|| panic!("info() has no {key}: {info:?}"))
    };
    let stack = field("stack_used");
    gw.exit();
    group.terminate(WAIT);
    scratch.assert_no_emulator_left();

    let ram = statics + stack;
    eprintln!(
        "flash {flash} bytes (vector table {}, text {}, rodata {}, data {}) of {FLASH_BUDGET}, \
         {} free; RAM {ram} bytes (static {statics}, stack high-water mark {stack}) of \
         {RAM_BUDGET}, {} free",
        size(".vector_table"),
        size(".text"),
        size(".rodata"),
        size(".data"),
        FLASH_BUDGET.saturating_sub(flash),
        RAM_BUDGET.saturating_sub(ram),
    );
    assert!(flash <= FLASH_BUDGET, "flash {flash} > {FLASH_BUDGET}");
    assert!(ram <= RAM_BUDGET, "RAM {ram} > {RAM_BUDGET}");
}
