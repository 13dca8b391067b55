//! Codec benchmarks over the shared vectors: the floor (a bare walk over the opcodes),
//! decode into reused node storage (borrowed), decode into an owned `Value`, decode into
//! the vector's natural Rust type through serde (typed), encode; postcard on comparable
//! Rust data as an anchor.
//!
//! `cargo bench -p execnet-core --features serde --bench codec` runs criterion. With
//! `EXECNET_BENCH_JSON=FILE` it instead times each case once over (one round of
//! `core/benches/compare.py`, which interleaves such rounds with the reference's) and
//! writes `{vector: {case: nanoseconds per run}}`; with `EXECNET_BENCH_FILES` too, it
//! times an owned decode of each file named there (`core/benches/colliding.py`).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use execnet_core::{decode, encode, Envelope, Limits, Node, StrConfig, Value, ValueRef, Version};
use serde::Deserialize;

const VECTORS: [&str; 7] = [
    "small_msg",
    "ints_10k",
    "floats_10k",
    "strs_10k",
    "bytes_1m",
    "nested",
    "bigints",
];

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/vectors/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `small_msg`: `{"id": 17, "op": "run", "args": ["a", "b"], "ok": True, "t": 1.5}`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SmallMsg<'a> {
    id: i64,
    op: &'a str,
    #[serde(borrow)]
    args: Vec<&'a str>,
    ok: bool,
    t: f64,
}

/// `nested`: `{"key-k": [(k * 10 + j, "sj", j * 0.25, None, True), ...], ...}`.
type Nested<'a> = HashMap<&'a str, Vec<(i64, &'a str, f64, Option<()>, bool)>>;

/// Decodes the vector into its natural Rust type; returns a size, so that nothing is
/// optimized away.
fn typed(name: &str, data: &[u8]) -> usize {
    let (l, c) = (&Limits::DEFAULT, StrConfig::LOADS);
    use execnet_core::serde::from_dumps;
    match name {
        "small_msg" => from_dumps::<SmallMsg>(data, l, c).unwrap().args.len(),
        "ints_10k" => from_dumps::<Vec<i64>>(data, l, c).unwrap().len(),
        "floats_10k" => from_dumps::<Vec<f64>>(data, l, c).unwrap().len(),
        "strs_10k" => from_dumps::<Vec<&str>>(data, l, c).unwrap().len(),
        "bytes_1m" => from_dumps::<&[u8]>(data, l, c).unwrap().len(),
        "nested" => from_dumps::<Nested>(data, l, c).unwrap().len(),
        "bigints" => from_dumps::<Vec<i128>>(data, l, c).unwrap().len(),
        other => panic!("no natural type for {other}"),
    }
}

/// The vector as plain Rust data, for postcard.
enum Native {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Strs(Vec<String>),
    Bytes(Vec<u8>),
    Other,
}

fn native(value: &Value) -> Native {
    match value {
        Value::List(items)
            if items
                .iter()
                .all(|v| matches!(v, Value::Int(execnet_core::Int::Small(_)))) =>
        {
            Native::Ints(items.iter().filter_map(Value::as_i64).collect())
        }
        Value::List(items) if items.iter().all(|v| matches!(v, Value::Float(_))) => Native::Floats(
            items
                .iter()
                .map(|v| if let Value::Float(f) = v { *f } else { 0.0 })
                .collect(),
        ),
        Value::List(items) if items.iter().all(|v| matches!(v, Value::Str(_))) => Native::Strs(
            items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        ),
        Value::Bytes(b) => Native::Bytes(b.clone()),
        _ => Native::Other,
    }
}

fn postcard_round(n: &Native) -> usize {
    match n {
        Native::Ints(v) => {
            let b = postcard::to_allocvec(v).unwrap();
            postcard::from_bytes::<Vec<i64>>(&b).unwrap().len()
        }
        Native::Floats(v) => {
            let b = postcard::to_allocvec(v).unwrap();
            postcard::from_bytes::<Vec<f64>>(&b).unwrap().len()
        }
        Native::Strs(v) => {
            let b = postcard::to_allocvec(v).unwrap();
            postcard::from_bytes::<Vec<&str>>(&b).unwrap().len()
        }
        Native::Bytes(v) => {
            let b = postcard::to_allocvec(v).unwrap();
            postcard::from_bytes::<&[u8]>(&b).unwrap().len()
        }
        Native::Other => 0,
    }
}

/// One run of each case on one vector.
struct Cases {
    name: &'static str,
    data: Vec<u8>,
    owned: Value,
    native: Native,
    nodes: Vec<Node>,
    out: Vec<u8>,
}

impl Cases {
    fn new(name: &'static str) -> Cases {
        let data = load(name);
        let (_, owned) = Value::decode_dumps(&data, &Limits::DEFAULT).unwrap();
        let native = native(&owned);
        let mut c = Cases {
            name,
            data,
            owned,
            native,
            nodes: Vec::new(),
            out: Vec::new(),
        };
        // Size the reused storage and the output buffer once, as a server would.
        c.decode_borrowed();
        c.encode();
        c
    }

    /// The floor: every opcode read, every operand skipped, nothing built.
    fn walk(&self) -> usize {
        decode::node_bound(self.data.get(1..).unwrap_or(&[])).unwrap()
    }

    fn decode_borrowed(&mut self) -> usize {
        let (_, v) = decode::decode_dumps(&self.data, &mut self.nodes, &Limits::DEFAULT).unwrap();
        match v {
            ValueRef::List(s) => s.len(),
            ValueRef::Dict(m) => m.len(),
            _ => 1,
        }
    }

    fn decode_owned(&self) -> Value {
        Value::decode_dumps(&self.data, &Limits::DEFAULT).unwrap().1
    }

    fn decode_typed(&self) -> usize {
        typed(self.name, &self.data)
    }

    fn encode(&mut self) -> usize {
        self.out.clear();
        encode::encode(&self.owned, Envelope::Dumps(Version::V2), &mut self.out).unwrap();
        self.out.len()
    }
}

/// Median nanoseconds per run of `f` over `samples` batches of about 5 ms each: the
/// statistic `compare.py` takes on the Python side too.
fn time(mut f: impl FnMut(), samples: usize) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().max(Duration::from_nanos(20));
    let batch = ((Duration::from_millis(5).as_nanos() / once.as_nanos()).max(1)) as u32;
    let mut per_run: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .collect();
    per_run.sort_by(f64::total_cmp);
    per_run[per_run.len() / 2]
}

fn json_report(path: &str) {
    let samples: usize = std::env::var("EXECNET_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut out = String::from("{");
    for (i, name) in VECTORS.iter().enumerate() {
        let mut c = Cases::new(name);
        let walk = time(
            || {
                black_box(c.walk());
            },
            samples,
        );
        let borrowed = time(
            || {
                black_box(c.decode_borrowed());
            },
            samples,
        );
        let owned = time(
            || {
                black_box(c.decode_owned());
            },
            samples,
        );
        let typed = time(
            || {
                black_box(c.decode_typed());
            },
            samples,
        );
        let enc = time(
            || {
                black_box(c.encode());
            },
            samples,
        );
        let pc = if matches!(c.native, Native::Other) {
            -1.0
        } else {
            time(
                || {
                    black_box(postcard_round(&c.native));
                },
                samples,
            )
        };
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!(
            "\"{name}\": {{\"bytes\": {}, \"walk_ns\": {walk:.1}, \"decode_borrowed_ns\": {borrowed:.1}, \"decode_owned_ns\": {owned:.1}, \"decode_typed_ns\": {typed:.1}, \"encode_ns\": {enc:.1}, \"postcard_round_trip_ns\": {pc:.1}}}",
            c.data.len()
        ));
    }
    out.push('}');
    std::fs::write(path, out).unwrap();
}

/// Times an owned decode of each `dumps` file named in `EXECNET_BENCH_FILES` (separated by
/// `:`), best of `EXECNET_BENCH_REPEAT` runs, and writes `{path: nanoseconds}` to `out`.
fn files_report(files: &str, out: &str) {
    let repeat: usize = std::env::var("EXECNET_BENCH_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut json = String::from("{");
    for (i, path) in files.split(':').enumerate() {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let best = (0..repeat)
            .map(|_| {
                let t = Instant::now();
                black_box(Value::decode_dumps(&data, &Limits::DEFAULT).unwrap());
                t.elapsed().as_nanos()
            })
            .min()
            .unwrap_or(0);
        if i > 0 {
            json.push_str(", ");
        }
        json.push_str(&format!("\"{path}\": {best}"));
    }
    json.push('}');
    std::fs::write(out, json).unwrap();
}

fn benches(c: &mut Criterion) {
    for name in VECTORS {
        let mut cases = Cases::new(name);
        let mut g = c.benchmark_group(name);
        g.sample_size(20)
            .measurement_time(Duration::from_secs(1))
            .warm_up_time(Duration::from_millis(300));
        g.bench_function("walk", |b| b.iter(|| black_box(cases.walk())));
        g.bench_function("decode_borrowed", |b| {
            b.iter(|| black_box(cases.decode_borrowed()))
        });
        g.bench_function("decode_owned", |b| {
            b.iter(|| black_box(cases.decode_owned()))
        });
        g.bench_function("decode_typed", |b| {
            b.iter(|| black_box(cases.decode_typed()))
        });
        g.bench_function("encode", |b| b.iter(|| black_box(cases.encode())));
        if !matches!(cases.native, Native::Other) {
            g.bench_function("postcard_round_trip", |b| {
                b.iter(|| black_box(postcard_round(&cases.native)))
            });
        }
        g.finish();
    }
}

criterion_group!(codec, benches);

fn main() {
    if let (Ok(files), Ok(out)) = (
        std::env::var("EXECNET_BENCH_FILES"),
        std::env::var("EXECNET_BENCH_JSON"),
    ) {
        files_report(&files, &out);
        return;
    }
    if let Ok(path) = std::env::var("EXECNET_BENCH_JSON") {
        json_report(&path);
        return;
    }
    codec();
    Criterion::default().configure_from_args().final_summary();
}
