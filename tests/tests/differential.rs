//! Differential tests against the reference execnet, both ways, on every interpreter:
//! execnet 2.1.2 on CPython 3.8-3.13 and PyPy3, execnet 1.9.0 on CPython 2.7, 3.6, 3.7
//! and Jython.
//!
//! - Direction A (reference -> ours): `tests/py/diff_dump.py` generates 10,000 values
//!   with a seeded generator in one interpreter process and writes each one's `dumps`
//!   bytes with a canonical text of the value. Each must decode here (borrowed, into a
//!   `Vec` and into a slice sized by `node_bound`), have the same canonical text, and
//!   re-encode byte for byte, from the borrowed view and from the owned `Value`.
//! - Direction B (ours -> reference): a seeded xorshift generator builds 10,000 `Value`
//!   trees of the kinds native to the interpreter's family; we encode them, and
//!   `tests/py/diff_echo.py` `loads` each with the reference and `dumps` it back, in one
//!   process. What comes back must equal what we sent, the way `loads()` (default string
//!   config) then `dumps` changes it: ints by value whatever the opcode, bytes and
//!   Python 2 `str` alike, the text kinds alike, floats bit for bit (any NaN equals any
//!   NaN), sets unordered, dict order kept (except on Python 2, whose dicts have none).
//!   Ints below -2^31, which the reference reads but cannot write, are checked through
//!   `str()` instead.
//!
//! With `CI=true` a missing interpreter or reference install fails the test.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../core/tests/support/mod.rs"]
mod support;

use execnet_core::value::{IntKind, PyStr};
use execnet_core::{decode, encode, Envelope, Int, Limits, Node, Value, ValueRef, Version};
use execnet_tests::interp::{self, Family, Interp};
use support::{float_int_text, float_key, TempDir};

/// Values per interpreter and direction.
const COUNT: usize = 10_000;

// ---------------------------------------------------------------------------------------
// Plumbing

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// Runs a reference script and fails the test with its stderr when it fails.
fn run(py: &Interp, args: &[&std::ffi::OsStr]) -> Duration {
    let mut cmd: Command = interp::python_command(py, true);
    cmd.args(args);
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}: cannot run: {e}", py.name));
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}: {:?} failed ({}):\n{}",
        py.name,
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn is_py2(py: &Interp) -> bool {
    matches!(py.family, Family::CPython2 | Family::Jython)
}

/// The `dumps` version the interpreter's reference release reads and writes.
fn version(py: &Interp) -> Version {
    if interp::reference_path(py).ends_with("execnet-1.9.0") {
        Version::V1
    } else {
        Version::V2
    }
}

/// A seed of its own for each interpreter (FNV-1a of the name).
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn be32(data: &[u8], at: usize) -> usize {
    let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
    usize::try_from(i32::from_be_bytes(b)).expect("negative record length")
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// At most `n` characters of a long text, for failure messages.
fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    }
}

/// Collects failures and reports the first few.
#[derive(Default)]
struct Failures {
    count: usize,
    shown: Vec<String>,
}

impl Failures {
    fn add(&mut self, msg: String) {
        self.count += 1;
        if self.shown.len() < 5 {
            self.shown.push(msg);
        }
    }

    fn check(self, what: &str) {
        assert!(
            self.count == 0,
            "{what}: {} failures; the first:\n{}",
            self.count,
            self.shown.join("\n---\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Direction A: reference -> ours

/// The canonical text `diff_dump.py` writes (see its docstring), from our decoding.
fn canon(v: &ValueRef<'_, '_>, out: &mut String) {
    match *v {
        ValueRef::None => out.push('N'),
        ValueRef::Bool(b) => out.push(if b { 'T' } else { 'F' }),
        ValueRef::Int(i, IntKind::Int) => {
            let _ = write!(out, "i{i};");
        }
        ValueRef::Int(i, IntKind::Long) => {
            let _ = write!(out, "l{i};");
        }
        ValueRef::BigInt(t, IntKind::Int) => {
            let _ = write!(out, "i{t};");
        }
        ValueRef::BigInt(t, IntKind::Long) => {
            let _ = write!(out, "l{t};");
        }
        ValueRef::Float(f) => {
            let _ = write!(out, "f{:016x};", f.to_bits());
        }
        ValueRef::Complex(r, i) => {
            let _ = write!(out, "c{:016x}{:016x};", r.to_bits(), i.to_bits());
        }
        ValueRef::Bytes(b) => {
            let _ = write!(out, "b{};", hex(b));
        }
        ValueRef::Str(PyStr::Py2(b)) => {
            let _ = write!(out, "p{};", hex(b));
        }
        ValueRef::Str(PyStr::Py3(s)) => {
            let _ = write!(out, "s{};", hex(s.as_bytes()));
        }
        ValueRef::Str(PyStr::Unicode(s)) => {
            let _ = write!(out, "u{};", hex(s.as_bytes()));
        }
        ValueRef::Channel(c) => {
            let _ = write!(out, "C{c};");
        }
        ValueRef::List(items) => seq(out, "[", items, "]"),
        ValueRef::Tuple(items) => seq(out, "(", items, ")"),
        ValueRef::Set(items) => seq(out, "<", items, ">"),
        ValueRef::FrozenSet(items) => seq(out, "z<", items, ">"),
        ValueRef::Dict(map) => {
            out.push('{');
            for (k, v) in map.iter() {
                canon(&k, out);
                canon(&v, out);
            }
            out.push('}');
        }
    }
}

/// Marks which of Python 2 str, unicode, long and bytes occur in `v`.
fn kinds_in(v: &ValueRef<'_, '_>, seen: &mut [bool; 4]) {
    match *v {
        ValueRef::Str(PyStr::Py2(_)) => seen[0] = true,
        ValueRef::Str(PyStr::Unicode(_)) => seen[1] = true,
        ValueRef::Int(_, IntKind::Long) | ValueRef::BigInt(_, IntKind::Long) => seen[2] = true,
        ValueRef::Bytes(_) => seen[3] = true,
        ValueRef::List(items)
        | ValueRef::Tuple(items)
        | ValueRef::Set(items)
        | ValueRef::FrozenSet(items) => items.iter().for_each(|i| kinds_in(&i, seen)),
        ValueRef::Dict(map) => map.iter().for_each(|(k, v)| {
            kinds_in(&k, seen);
            kinds_in(&v, seen);
        }),
        _ => {}
    }
}

fn seq(out: &mut String, open: &str, items: execnet_core::value::Seq<'_, '_>, close: &str) {
    out.push_str(open);
    for item in items.iter() {
        canon(&item, out);
    }
    out.push_str(close);
}

fn reference_to_ours(name: &str) {
    let Some(py) = interp::require_reference(name) else {
        return;
    };
    let tmp = TempDir::new(&format!("diff-a-{name}"));
    let file = tmp.0.join("values.bin");
    let seed = name_seed(name) % 1_000_000_007;
    let py_time = run(
        &py,
        &[
            script("diff_dump.py").as_os_str(),
            seed.to_string().as_ref(),
            COUNT.to_string().as_ref(),
            file.as_os_str(),
        ],
    );
    let data = std::fs::read(&file).unwrap();
    let started = Instant::now();
    let want = version(&py);
    let mut failures = Failures::default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut fixed: Vec<Node> = Vec::new();
    let mut pos = 0;
    let mut n = 0;
    let mut kinds = [0usize; 4]; // Py2 str, unicode, long, bytes seen
    while pos < data.len() {
        let len = be32(&data, pos);
        let bytes = &data[pos + 4..pos + 4 + len];
        pos += 4 + len;
        let tlen = be32(&data, pos);
        let text = std::str::from_utf8(&data[pos + 4..pos + 4 + tlen]).unwrap();
        pos += 4 + tlen;
        let i = n;
        n += 1;
        let ctx = || format!("{name} value {i}: {}", clip(&hex(bytes), 300));

        match decode::decode_dumps(bytes, &mut nodes, &Limits::DEFAULT) {
            Err(e) => failures.add(format!("{}\nborrowed decode failed: {e}", ctx())),
            Ok((version, v)) => {
                if version != want {
                    failures.add(format!("{}\nversion {version:?}", ctx()));
                }
                let mut ours = String::new();
                canon(&v, &mut ours);
                if ours != text {
                    failures.add(format!(
                        "{}\ncanonical text differs:\n reference {}\n ours      {}",
                        ctx(),
                        clip(text, 400),
                        clip(&ours, 400)
                    ));
                }
                let mut seen = [false; 4];
                kinds_in(&v, &mut seen);
                for (k, s) in seen.iter().enumerate() {
                    kinds[k] += usize::from(*s);
                }
                match encode::to_vec(&v, Envelope::Dumps(version)) {
                    Ok(out) if out == bytes => {}
                    Ok(out) => failures.add(format!(
                        "{}\nborrowed re-encode differs: {}",
                        ctx(),
                        clip(&hex(&out), 300)
                    )),
                    Err(e) => failures.add(format!("{}\nborrowed re-encode failed: {e}", ctx())),
                }
            }
        }

        // Into a fixed slice, sized by node_bound.
        match decode::node_bound(&bytes[1..]) {
            Err(e) => failures.add(format!("{}\nnode_bound failed: {e}", ctx())),
            Ok(need) => {
                fixed.clear();
                fixed.resize(need, Node::EMPTY);
                match decode::decode_dumps(bytes, fixed.as_mut_slice(), &Limits::DEFAULT) {
                    Ok((version, v)) => match encode::to_vec(&v, Envelope::Dumps(version)) {
                        Ok(out) if out == bytes => {}
                        _ => failures.add(format!("{}\nfixed-slice re-encode differs", ctx())),
                    },
                    Err(e) => failures.add(format!("{}\nfixed-slice decode failed: {e}", ctx())),
                }
            }
        }

        match Value::decode_dumps(bytes, &Limits::DEFAULT) {
            Err(e) => failures.add(format!("{}\nowned decode failed: {e}", ctx())),
            Ok((version, v)) => match encode::to_vec(&v, Envelope::Dumps(version)) {
                Ok(out) if out == bytes => {}
                Ok(out) => failures.add(format!(
                    "{}\nowned re-encode differs: {}",
                    ctx(),
                    clip(&hex(&out), 300)
                )),
                Err(e) => failures.add(format!("{}\nowned re-encode failed: {e}", ctx())),
            },
        }
    }
    let rust_time = started.elapsed();
    assert_eq!(n, COUNT, "{name}: records");
    if is_py2(&py) {
        assert!(
            kinds[0] > 100 && kinds[1] > 100 && kinds[2] > 100,
            "{name}: Python 2 str / unicode / long too rare: {kinds:?}"
        );
    } else {
        assert!(kinds[3] > 100, "{name}: bytes too rare: {kinds:?}");
    }
    eprintln!(
        "{name}: reference -> ours, {COUNT} values ({} bytes): {:.2?} in the interpreter, {:.2?} here",
        data.len(),
        py_time,
        rust_time
    );
    failures.check(&format!("{name}, reference -> ours"));
}

// ---------------------------------------------------------------------------------------
// Direction B: ours -> reference

/// xorshift64*: small, seeded, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fam {
    /// Python 3: `str` and `bytes`.
    Py3,
    /// Python 2 (CPython 2.7, Jython): `str`, `unicode`, `long`.
    Py2,
}

fn int_value(v: i128) -> Int {
    match i64::try_from(v) {
        Ok(v) => Int::Small(v),
        Err(_) => Int::parse(&v.to_string()).unwrap(),
    }
}

/// A random decimal of exactly `digits` digits (no sign).
fn digits(r: &mut Rng, digits: usize) -> String {
    let mut s = String::with_capacity(digits);
    s.push(char::from(b'1' + r.below(9) as u8));
    for _ in 1..digits {
        s.push(char::from(b'0' + r.below(10) as u8));
    }
    s
}

/// An int the reference can write back: not below -2^31.
fn gen_int(r: &mut Rng) -> Int {
    const EDGES: [i128; 16] = [
        0,
        1,
        -1,
        i32::MAX as i128,
        1 << 31,
        i32::MIN as i128,
        i32::MIN as i128 + 1,
        1 << 32,
        i64::MAX as i128,
        1 << 63,
        i64::MIN as i128,
        1 << 64,
        1_000_000_000_000_000_000,
        10_000_000_000_000_000_000,
        100_000_000_000_000_000_000,
        u64::MAX as i128,
    ];
    let k = r.below(100);
    let v: i128 = if k < 35 {
        r.pick(&EDGES) + r.below(5) as i128 - 2
    } else if k < 40 {
        let n = *r.pick(&[19usize, 20, 21, 39, 40, 50, 300, 1000, 3000, 3999]);
        return Int::parse(&digits(r, n)).unwrap();
    } else if k < 70 {
        r.below(2001) as i128 - 1000
    } else {
        (r.next() as i64) as i128 * (1 + r.below(64) as i128)
    };
    // The reference cannot write ints below -2^31 (struct.error): those go through str().
    int_value(if v < i32::MIN as i128 { -v } else { v })
}

fn gen_float(r: &mut Rng) -> f64 {
    const EDGES: [f64; 19] = [
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        1e16,
        1e-5,
        0.1,
        1.5e-7,
        5e-324,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        9_223_372_036_854_775_808.0,
        -9_223_372_036_854_775_808.0,
        2147483648.0,
        0.5,
        -1.0,
    ];
    if r.chance(50) {
        *r.pick(&EDGES)
    } else {
        f64::from_bits(r.next())
    }
}

fn gen_char(r: &mut Rng) -> char {
    const ASTRAL: [u32; 6] = [0x1F600, 0x1F4A9, 0x10000, 0x10FFFF, 0x1D11E, 0x20000];
    let k = r.below(100);
    let cp = if k < 50 {
        32 + r.below(95) as u32
    } else if k < 60 {
        r.below(32) as u32
    } else if k < 75 {
        0x80 + r.below(0x80) as u32
    } else if k < 90 {
        0x100 + r.below(0xFFFE - 0x100) as u32
    } else if k < 95 {
        *r.pick(&ASTRAL)
    } else {
        0x10000 + r.below(0x100000) as u32
    };
    // Surrogates are not characters: take U+FFFD instead.
    char::from_u32(cp).unwrap_or('\u{FFFD}')
}

fn gen_text(r: &mut Rng) -> String {
    let n = *r.pick(&[0usize, 1, 2, 5, 12, 40]);
    (0..n).map(|_| gen_char(r)).collect()
}

fn gen_bytes(r: &mut Rng) -> Vec<u8> {
    let n = *r.pick(&[0usize, 1, 3, 8, 30, 300]);
    (0..n).map(|_| r.next() as u8).collect()
}

fn scalar(r: &mut Rng, fam: Fam) -> Value {
    match r.below(12) {
        0 => match r.below(3) {
            0 => Value::None,
            1 => Value::Bool(true),
            _ => Value::Bool(false),
        },
        1..=3 => {
            let i = gen_int(r);
            // A Python 2 long; Python 3 reads LONG as int.
            if r.chance(if fam == Fam::Py2 { 30 } else { 5 }) {
                Value::Long(i)
            } else {
                Value::Int(i)
            }
        }
        4 | 5 => Value::Float(gen_float(r)),
        6 => Value::Complex(gen_float(r), gen_float(r)),
        7..=9 => {
            let t = gen_text(r);
            if r.chance(if fam == Fam::Py2 { 50 } else { 10 }) {
                Value::Unicode(t)
            } else {
                Value::Str(t)
            }
        }
        _ => {
            let b = gen_bytes(r);
            if r.chance(if fam == Fam::Py2 { 50 } else { 10 }) {
                Value::Py2Str(b)
            } else {
                Value::Bytes(b)
            }
        }
    }
}

/// A key that two hashable values share whenever Python may find them equal (as dict
/// keys or set members on that family's reader under `loads()` defaults). It is
/// conservative: some unequal values share one too, and are simply not both generated.
fn key(v: &Value, fam: Fam) -> String {
    match v {
        Value::None => "N".into(),
        Value::Bool(b) => format!("n:{}", u8::from(*b)),
        Value::Int(i) | Value::Long(i) => format!("n:{i}"),
        Value::Float(f) => float_key(*f),
        Value::Complex(re, im) if *im == 0.0 => float_key(*re),
        Value::Complex(re, im) if re.is_nan() || im.is_nan() => "cnan".into(),
        Value::Complex(re, im) => format!("c:{:x}:{:x}", (re + 0.0).to_bits(), im.to_bits()),
        Value::Str(s) | Value::Unicode(s) => format!("t:{s}"),
        // Python 2 finds an ASCII str equal to the same unicode; Jython perhaps more.
        Value::Bytes(b) | Value::Py2Str(b) if fam == Fam::Py2 => {
            format!("t:{}", b.iter().map(|&c| char::from(c)).collect::<String>())
        }
        Value::Bytes(b) | Value::Py2Str(b) => format!("b:{}", hex(b)),
        Value::Tuple(items) => {
            let keys: Vec<String> = items.iter().map(|i| key(i, fam)).collect();
            format!("({})", keys.join(","))
        }
        Value::FrozenSet(items) => {
            let mut keys: Vec<String> = items.iter().map(|i| key(i, fam)).collect();
            keys.sort();
            format!("z{{{}}}", keys.join(","))
        }
        other => panic!("unhashable {other:?}"),
    }
}

/// Up to `n` hashables, no two of which Python could find equal.
fn distinct(
    r: &mut Rng,
    n: usize,
    fam: Fam,
    mut make: impl FnMut(&mut Rng) -> Value,
) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let v = make(r);
        if seen.insert(key(&v, fam)) {
            out.push(v);
        }
    }
    out
}

fn hashable(r: &mut Rng, depth: u32, fam: Fam) -> Value {
    let k = r.below(100);
    if depth > 0 && k < 15 {
        let n = r.below(4) as usize;
        Value::Tuple((0..n).map(|_| hashable(r, depth - 1, fam)).collect())
    } else if depth > 0 && k < 25 {
        let n = r.below(4) as usize;
        Value::FrozenSet(distinct(r, n, fam, |r| hashable(r, depth - 1, fam)))
    } else {
        scalar(r, fam)
    }
}

fn deep(r: &mut Rng, fam: Fam) -> Value {
    let mut v = if r.chance(70) {
        scalar(r, fam)
    } else {
        Value::List(vec![])
    };
    for _ in 0..1 + r.below(200) {
        v = match r.below(4) {
            0 => Value::List(vec![v]),
            1 => Value::Tuple(vec![v]),
            2 => Value::Dict(vec![(scalar(r, fam), v)]),
            _ if r.chance(50) => Value::List(vec![v, Value::None]),
            _ => Value::Tuple(vec![Value::None, v]),
        };
    }
    v
}

fn value(r: &mut Rng, depth: u32, fam: Fam) -> Value {
    if depth == 0 || r.chance(30) {
        return scalar(r, fam);
    }
    let n = *r.pick(&[0usize, 0, 1, 2, 3, 4, 6]);
    match r.below(8) {
        0 => Value::List((0..n).map(|_| value(r, depth - 1, fam)).collect()),
        1 => Value::Tuple((0..n).map(|_| value(r, depth - 1, fam)).collect()),
        2 | 3 => {
            let keys = distinct(r, n, fam, |r| hashable(r, 2, fam));
            Value::Dict(
                keys.into_iter()
                    .map(|k| (k, value(r, depth - 1, fam)))
                    .collect(),
            )
        }
        4 => Value::Set(distinct(r, n, fam, |r| hashable(r, 2, fam))),
        5 => Value::FrozenSet(distinct(r, n, fam, |r| hashable(r, 2, fam))),
        // frozensets inside a set
        6 => Value::Set(distinct(r, n, fam, |r| {
            let m = r.below(4) as usize;
            Value::FrozenSet(distinct(r, m, fam, |r| hashable(r, 1, fam)))
        })),
        // tuples as dict keys
        _ => {
            let keys = distinct(r, n, fam, |r| {
                let m = r.below(4) as usize;
                Value::Tuple((0..m).map(|_| hashable(r, 1, fam)).collect())
            });
            Value::Dict(
                keys.into_iter()
                    .map(|k| (k, value(r, depth - 1, fam)))
                    .collect(),
            )
        }
    }
}

/// Hand-picked values every interpreter gets first.
fn fixed_values(fam: Fam) -> Vec<Value> {
    let big = |t: &str| Value::Int(Int::parse(t).unwrap());
    let mut nested = Value::int(1);
    for _ in 0..200 {
        nested = Value::List(vec![nested]);
    }
    let mut v = vec![
        Value::None,
        Value::Bool(true),
        Value::Bool(false),
        Value::int(i64::from(i32::MAX)),
        big("2147483648"),
        Value::int(i64::from(i32::MIN)),
        big("9223372036854775807"),
        big("9223372036854775808"),
        big(&"9".repeat(4000)),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Float(f64::NEG_INFINITY),
        Value::Float(-0.0),
        Value::Complex(f64::NAN, f64::INFINITY),
        Value::Complex(-0.0, f64::NEG_INFINITY),
        Value::Str("\u{1F600} h\u{e9}llo \u{10FFFF}\u{0}".into()),
        Value::Unicode("\u{1F4A9}".into()),
        Value::Bytes((0..=255).collect()),
        Value::Py2Str(b"\xff\x00py2".to_vec()),
        Value::List(vec![]),
        Value::Tuple(vec![]),
        Value::Dict(vec![]),
        Value::Set(vec![]),
        Value::FrozenSet(vec![]),
        Value::Set(vec![
            Value::FrozenSet(vec![Value::int(1), Value::Str("a".into())]),
            Value::FrozenSet(vec![]),
        ]),
        Value::Dict(vec![
            (
                Value::Tuple(vec![Value::int(1), Value::Str("k".into())]),
                Value::None,
            ),
            (Value::Tuple(vec![]), Value::List(vec![Value::Dict(vec![])])),
        ]),
        nested,
    ];
    if fam == Fam::Py2 {
        v.push(Value::Long(Int::Small(5)));
        v.push(Value::Long(
            Int::parse("123456789012345678901234567890").unwrap(),
        ));
    }
    v
}

/// Ints below -2^31 (and a few others), which the reference reads but cannot write.
fn negative_ints(r: &mut Rng) -> Vec<Int> {
    let mut v: Vec<Int> = [
        -(1i128 << 31) - 1,
        -(1i128 << 31) - 2,
        -(1i128 << 32),
        i64::MIN as i128,
        i64::MIN as i128 - 1,
        -(1i128 << 64),
        -(10i128.pow(20)),
        i32::MIN as i128,
    ]
    .into_iter()
    .map(int_value)
    .collect();
    for _ in 0..200 {
        let n = *r.pick(&[10usize, 19, 20, 40, 300, 3999]);
        v.push(Int::parse(&format!("-{}", digits(r, n))).unwrap());
    }
    v
}

fn float_same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Equality through the reference's `loads()` then `dumps` (see the module docs).
fn same(a: &Value, b: &Value, ordered_dicts: bool) -> bool {
    use Value as V;
    match (a, b) {
        (V::None, V::None) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(x) | V::Long(x), V::Int(y) | V::Long(y)) => x == y,
        (V::Float(x), V::Float(y)) => float_same(*x, *y),
        (V::Complex(a, b), V::Complex(c, d)) => float_same(*a, *c) && float_same(*b, *d),
        (V::Bytes(x) | V::Py2Str(x), V::Bytes(y) | V::Py2Str(y)) => x == y,
        (V::Str(x) | V::Unicode(x), V::Str(y) | V::Unicode(y)) => x == y,
        (V::List(x), V::List(y)) | (V::Tuple(x), V::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q, ordered_dicts))
        }
        (V::Set(x), V::Set(y)) | (V::FrozenSet(x), V::FrozenSet(y)) => {
            unordered(x, y, |p, q| same(p, q, ordered_dicts))
        }
        (V::Dict(x), V::Dict(y)) if ordered_dicts => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((k1, v1), (k2, v2))| {
                    same(k1, k2, ordered_dicts) && same(v1, v2, ordered_dicts)
                })
        }
        (V::Dict(x), V::Dict(y)) => unordered(x, y, |(k1, v1), (k2, v2)| {
            same(k1, k2, ordered_dicts) && same(v1, v2, ordered_dicts)
        }),
        (V::Channel(x), V::Channel(y)) => x == y,
        _ => false,
    }
}

/// Multiset equality under an equivalence relation.
fn unordered<T>(x: &[T], y: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
    if x.len() != y.len() {
        return false;
    }
    let mut used = vec![false; y.len()];
    x.iter().all(|p| {
        let found = (0..y.len()).find(|&j| !used[j] && eq(p, &y[j]));
        if let Some(j) = found {
            used[j] = true;
        }
        found.is_some()
    })
}

/// Debug text of a value, shortened for failure messages.
fn show(v: &Value) -> String {
    clip(&format!("{v:?}"), 600)
}

fn ours_to_reference(name: &str) {
    let Some(py) = interp::require_reference(name) else {
        return;
    };
    let fam = if is_py2(&py) { Fam::Py2 } else { Fam::Py3 };
    let ver = version(&py);
    // Python 2 dicts have no order; Python 3.6+ and PyPy keep insertion order.
    let ordered_dicts = fam == Fam::Py3;
    let mut r = Rng::new(name_seed(name));
    let started = Instant::now();
    let mut sent = fixed_values(fam);
    while sent.len() < COUNT {
        let v = if sent.len().is_multiple_of(50) {
            deep(&mut r, fam)
        } else {
            value(&mut r, 3, fam)
        };
        sent.push(v);
    }
    let negatives = negative_ints(&mut r);
    let mut input = Vec::new();
    let record = |input: &mut Vec<u8>, mode: u8, bytes: &[u8]| {
        input.push(mode);
        input.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        input.extend_from_slice(bytes);
    };
    for v in &sent {
        let bytes = encode::to_vec(v, Envelope::Dumps(ver)).unwrap();
        record(&mut input, b'E', &bytes);
    }
    for (i, n) in negatives.iter().enumerate() {
        let v = if i % 2 == 0 {
            Value::Int(n.clone())
        } else {
            Value::Long(n.clone())
        };
        let bytes = encode::to_vec(&v, Envelope::Dumps(ver)).unwrap();
        record(&mut input, b'S', &bytes);
    }
    let gen_time = started.elapsed();

    let tmp = TempDir::new(&format!("diff-b-{name}"));
    let (fin, fout) = (tmp.0.join("in.bin"), tmp.0.join("out.bin"));
    std::fs::write(&fin, &input).unwrap();
    let py_time = run(
        &py,
        &[
            script("diff_echo.py").as_os_str(),
            fin.as_os_str(),
            fout.as_os_str(),
        ],
    );
    let data = std::fs::read(&fout).unwrap();

    let started = Instant::now();
    let mut failures = Failures::default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut pos = 0;
    let mut i: usize = 0;
    while pos < data.len() {
        let status = data[pos];
        let len = be32(&data, pos + 1);
        let bytes = &data[pos + 5..pos + 5 + len];
        pos += 5 + len;
        let idx = i;
        i += 1;
        if status != b'+' {
            failures.add(format!(
                "{name} record {idx}: the reference failed:\n{}",
                clip(&String::from_utf8_lossy(bytes), 2000)
            ));
            continue;
        }
        if let Some(n) = idx.checked_sub(sent.len()) {
            let want = negatives[n].to_string();
            if bytes != want.as_bytes() {
                failures.add(format!(
                    "{name} negative int {n}: sent {}, the reference read {}",
                    clip(&want, 100),
                    clip(&String::from_utf8_lossy(bytes), 100)
                ));
            }
            continue;
        }
        let v = &sent[idx];
        match Value::decode_dumps(bytes, &Limits::DEFAULT) {
            Err(e) => failures.add(format!(
                "{name} value {idx}: cannot decode the reference's bytes: {e}\nsent {}\ngot {}",
                show(v),
                clip(&hex(bytes), 300)
            )),
            Ok((version, got)) => {
                if version != ver {
                    failures.add(format!("{name} value {idx}: version {version:?}"));
                }
                if !same(v, &got, ordered_dicts) {
                    failures.add(format!(
                        "{name} value {idx}: the reference's value differs\nsent {}\ngot  {}",
                        show(v),
                        show(&got)
                    ));
                }
                // And what the reference wrote re-encodes here byte for byte.
                if encode::to_vec(&got, Envelope::Dumps(version))
                    .ok()
                    .as_deref()
                    != Some(bytes)
                {
                    failures.add(format!("{name} value {idx}: owned re-encode differs"));
                }
            }
        }
        match decode::decode_dumps(bytes, &mut nodes, &Limits::DEFAULT) {
            Ok((version, v)) => {
                if encode::to_vec(&v, Envelope::Dumps(version)).ok().as_deref() != Some(bytes) {
                    failures.add(format!("{name} value {idx}: borrowed re-encode differs"));
                }
            }
            Err(e) => failures.add(format!("{name} value {idx}: borrowed decode: {e}")),
        }
    }
    let check_time = started.elapsed();
    assert_eq!(i, sent.len() + negatives.len(), "{name}: records back");
    eprintln!(
        "{name}: ours -> reference, {} values ({} bytes): {:.2?} generating, {:.2?} in the interpreter, {:.2?} checking",
        i,
        input.len(),
        gen_time,
        py_time,
        check_time
    );
    failures.check(&format!("{name}, ours -> reference"));
}

// ---------------------------------------------------------------------------------------
// One test per interpreter and direction, so that the harness runs them in parallel.

macro_rules! interpreters {
    ($($a:ident, $b:ident => $name:literal;)*) => {$(
        #[test]
        fn $a() {
            reference_to_ours($name);
        }

        #[test]
        fn $b() {
            ours_to_reference($name);
        }
    )*};
}

interpreters! {
    a_cpython2_7, b_cpython2_7 => "cpython2.7";
    a_cpython3_6, b_cpython3_6 => "cpython3.6";
    a_cpython3_7, b_cpython3_7 => "cpython3.7";
    a_cpython3_8, b_cpython3_8 => "cpython3.8";
    a_cpython3_9, b_cpython3_9 => "cpython3.9";
    a_cpython3_10, b_cpython3_10 => "cpython3.10";
    a_cpython3_11, b_cpython3_11 => "cpython3.11";
    a_cpython3_12, b_cpython3_12 => "cpython3.12";
    a_cpython3_13, b_cpython3_13 => "cpython3.13";
    a_pypy3, b_pypy3 => "pypy3";
    a_jython, b_jython => "jython";
}

// ---------------------------------------------------------------------------------------
// The harness itself.

#[test]
fn generator_keys_follow_python_equality() {
    let f = Fam::Py3;
    let k = |v: Value| key(&v, f);
    assert_eq!(k(Value::Bool(true)), k(Value::int(1)));
    assert_eq!(k(Value::Float(1.0)), k(Value::int(1)));
    assert_eq!(k(Value::Float(-0.0)), k(Value::Bool(false)));
    assert_eq!(k(Value::Complex(2.0, -0.0)), k(Value::int(2)));
    assert_eq!(
        k(Value::Float(9_223_372_036_854_775_808.0)),
        k(Value::Int(Int::parse("9223372036854775808").unwrap()))
    );
    assert_eq!(
        k(Value::Float(2f64.powi(100))),
        k(Value::Int(
            Int::parse("1267650600228229401496703205376").unwrap()
        ))
    );
    assert_eq!(k(Value::Str("a".into())), k(Value::Unicode("a".into())));
    assert_eq!(
        k(Value::Bytes(b"a".to_vec())),
        k(Value::Py2Str(b"a".to_vec()))
    );
    assert_ne!(k(Value::Bytes(b"a".to_vec())), k(Value::Str("a".into())));
    assert_eq!(
        key(&Value::Py2Str(b"a".to_vec()), Fam::Py2),
        key(&Value::Unicode("a".into()), Fam::Py2)
    );
    assert_eq!(
        k(Value::FrozenSet(vec![Value::int(1), Value::int(2)])),
        k(Value::FrozenSet(vec![Value::Float(2.0), Value::Bool(true)]))
    );
    assert_ne!(k(Value::Float(0.5)), k(Value::Float(-0.5)));
    assert_eq!(float_int_text(-1e20), "-100000000000000000000");

    assert!(same(
        &Value::Float(f64::NAN),
        &Value::Float(-f64::NAN),
        true
    ));
    assert!(!same(&Value::Float(0.0), &Value::Float(-0.0), true));
    assert!(same(
        &Value::Set(vec![Value::int(1), Value::int(2)]),
        &Value::Set(vec![Value::int(2), Value::Long(Int::Small(1))]),
        true
    ));
    let d1 = Value::Dict(vec![
        (Value::int(1), Value::None),
        (Value::int(2), Value::None),
    ]);
    let d2 = Value::Dict(vec![
        (Value::int(2), Value::None),
        (Value::int(1), Value::None),
    ]);
    assert!(!same(&d1, &d2, true));
    assert!(same(&d1, &d2, false));
}

#[test]
fn generator_is_seeded_and_varied() {
    let gen = |seed| {
        let mut r = Rng::new(seed);
        (0..200)
            .map(|_| value(&mut r, 3, Fam::Py3))
            .collect::<Vec<_>>()
    };
    let (a, b) = (gen(7), gen(7));
    assert!(a.iter().zip(&b).all(|(x, y)| same(x, y, true)));
    let mut kinds = std::collections::BTreeSet::new();
    fn walk(v: &Value, kinds: &mut std::collections::BTreeSet<&'static str>) {
        kinds.insert(match v {
            Value::Long(_) => "long",
            Value::Unicode(_) => "unicode",
            Value::Py2Str(_) => "py2str",
            other => other.type_name(),
        });
        match v {
            Value::List(x) | Value::Tuple(x) | Value::Set(x) | Value::FrozenSet(x) => {
                x.iter().for_each(|i| walk(i, kinds))
            }
            Value::Dict(x) => x.iter().for_each(|(k, v)| {
                walk(k, kinds);
                walk(v, kinds)
            }),
            _ => {}
        }
    }
    a.iter().for_each(|v| walk(v, &mut kinds));
    for kind in [
        "NoneType",
        "bool",
        "int",
        "float",
        "complex",
        "bytes",
        "str",
        "list",
        "tuple",
        "dict",
        "set",
        "frozenset",
    ] {
        assert!(kinds.contains(kind), "{kind} never generated: {kinds:?}");
    }
}
