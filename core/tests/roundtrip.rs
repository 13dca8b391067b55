//! Round trips of arbitrary values: any `Value` tree encodes, decodes (borrowed, through
//! every storage, and owned) to an equal value, and re-encodes to the same bytes.
//! (The serde layer is tested elsewhere.)

mod support;

use std::collections::HashSet;

use execnet_core::{decode, encode, Envelope, Int, Limits, Node, StrConfig, Value, Version};
use proptest::prelude::*;
use support::{float_key, ref_eq, strict_eq};

// ---------------------------------------------------------------------------------------
// Distinct dict keys and set members

/// A key shared by any two hashable values Python 3 finds equal under `loads()` string
/// config (conservatively: some unequal ones share it too).
fn key(v: &Value) -> String {
    match v {
        Value::None => "N".into(),
        Value::Bool(b) => format!("n:{}", u8::from(*b)),
        Value::Int(i) | Value::Long(i) => format!("n:{i}"),
        Value::Float(f) => float_key(*f),
        Value::Complex(re, im) if *im == 0.0 => float_key(*re),
        Value::Complex(re, im) if re.is_nan() || im.is_nan() => "cnan".into(),
        Value::Complex(re, im) => format!("c:{:x}:{:x}", (re + 0.0).to_bits(), im.to_bits()),
        Value::Str(s) | Value::Unicode(s) => format!("t:{s}"),
        Value::Bytes(b) | Value::Py2Str(b) => format!("b:{b:?}"),
        Value::Channel(c) => format!("ch:{c}"),
        Value::Tuple(items) => {
            let keys: Vec<String> = items.iter().map(key).collect();
            format!("({})", keys.join(","))
        }
        Value::FrozenSet(items) => {
            let mut keys: Vec<String> = items.iter().map(key).collect();
            keys.sort();
            format!("z{{{}}}", keys.join(","))
        }
        other => panic!("unhashable {other:?}"),
    }
}

fn distinct(items: Vec<Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|v| seen.insert(key(v))).collect()
}

fn distinct_keys(entries: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .filter(|(k, _)| seen.insert(key(k)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Strategies

fn big_int() -> impl Strategy<Value = Int> {
    ("-?[1-9][0-9]{18,60}", 0usize..3).prop_map(|(t, zeros)| {
        // Sometimes leading zeros or a `+`, which Int::parse canonicalizes.
        let t = match zeros {
            1 => t.replacen('-', "-00", 1),
            2 if !t.starts_with('-') => format!("+{t}"),
            _ => t,
        };
        Int::parse(&t).unwrap()
    })
}

fn int() -> impl Strategy<Value = Int> {
    prop_oneof![
        any::<i64>().prop_map(Int::Small),
        any::<i32>().prop_map(|i| Int::Small(i.into())),
        prop::sample::select(vec![
            0i64,
            1,
            -1,
            i32::MAX.into(),
            i32::MIN.into(),
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN) - 1,
            i64::MAX,
            i64::MIN,
        ])
        .prop_map(Int::Small),
        big_int(),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
            f64::MAX,
            1.0,
            9_223_372_036_854_775_808.0,
        ]),
        any::<f64>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z\u{e9}\u{1F600}\u{10FFFF}\u{0}]{0,8}",]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..32)
}

/// Every scalar kind; all of them are hashable.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        int().prop_map(Value::Int),
        int().prop_map(Value::Long),
        float().prop_map(Value::Float),
        (float(), float()).prop_map(|(r, i)| Value::Complex(r, i)),
        bytes().prop_map(Value::Bytes),
        bytes().prop_map(Value::Py2Str),
        text().prop_map(Value::Str),
        text().prop_map(Value::Unicode),
        any::<i32>().prop_map(Value::Channel),
    ]
}

fn hashable() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            proptest::collection::vec(inner, 0..4).prop_map(|m| Value::FrozenSet(distinct(m))),
        ]
    })
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::vec((hashable(), inner), 0..6)
                .prop_map(|e| Value::Dict(distinct_keys(e))),
            proptest::collection::vec(hashable(), 0..6).prop_map(|m| Value::Set(distinct(m))),
            proptest::collection::vec(hashable(), 0..6).prop_map(|m| Value::FrozenSet(distinct(m))),
        ]
    })
}

// ---------------------------------------------------------------------------------------
// Properties

fn check(v: &Value) {
    for envelope in [
        Envelope::Internal,
        Envelope::Dumps(Version::V1),
        Envelope::Dumps(Version::V2),
    ] {
        let bytes = encode::to_vec(v, envelope).unwrap();
        let body = match envelope {
            Envelope::Internal => &bytes[..],
            Envelope::Dumps(version) => {
                assert_eq!(bytes[0], version.byte());
                &bytes[1..]
            }
        };

        // Borrowed, into a growable Vec.
        let mut nodes: Vec<Node> = Vec::new();
        let r = match envelope {
            Envelope::Internal => decode::decode_internal(&bytes, &mut nodes, &Limits::DEFAULT),
            Envelope::Dumps(version) => decode::decode_dumps(&bytes, &mut nodes, &Limits::DEFAULT)
                .map(|(got, r)| {
                    assert_eq!(got, version);
                    r
                }),
        }
        .unwrap_or_else(|e| panic!("decode: {e}"));
        assert!(ref_eq(&r, v), "borrowed view differs: {r:?}");
        assert_eq!(encode::to_vec(&r, envelope).unwrap(), bytes);

        // Borrowed, into a slice of exactly node_bound nodes, and a heapless::Vec.
        let need = decode::node_bound(body).unwrap();
        let mut fixed = vec![Node::EMPTY; need];
        let r = decode::decode_internal(body, fixed.as_mut_slice(), &Limits::DEFAULT).unwrap();
        assert!(ref_eq(&r, v));
        let mut out = vec![0u8; bytes.len()];
        assert_eq!(
            encode::to_slice(&r, Envelope::Internal, &mut out).unwrap(),
            body
        );
        if need <= 256 {
            let mut hv: heapless::Vec<Node, 256> = heapless::Vec::new();
            let r = decode::decode_internal(body, &mut hv, &Limits::DEFAULT).unwrap();
            assert!(ref_eq(&r, v));
        }

        // Owned.
        let owned = match envelope {
            Envelope::Internal => Value::decode_internal(&bytes, &Limits::DEFAULT),
            Envelope::Dumps(_) => Value::decode_dumps(&bytes, &Limits::DEFAULT).map(|(_, v)| v),
        }
        .unwrap();
        assert!(strict_eq(&owned, v), "owned differs: {owned:?}");
        assert_eq!(encode::to_vec(&owned, envelope).unwrap(), bytes);

        // Taken from the front of a stream, the rest left over.
        let mut stream = bytes.clone();
        stream.extend_from_slice(&bytes);
        let rest = match envelope {
            Envelope::Internal => decode::take_internal(&stream, &mut nodes, &Limits::DEFAULT)
                .map(|(r, rest)| (ref_eq(&r, v), rest)),
            Envelope::Dumps(_) => decode::take_dumps(&stream, &mut nodes, &Limits::DEFAULT)
                .map(|(_, r, rest)| (ref_eq(&r, v), rest)),
        }
        .unwrap();
        assert!(rest.0);
        assert_eq!(rest.1, &bytes[..]);
    }
    // The owned conversion under the gateway string config keeps every generated key too
    // (a Python 2 str is latin-1 text there, and may then equal a text key: only compare
    // the shape when none of the strings is a Python 2 str).
    let bytes = encode::to_vec(v, Envelope::Internal).unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    let r = decode::decode_internal(&bytes, &mut nodes, &Limits::DEFAULT).unwrap();
    let gw = Value::from_ref(&r, StrConfig::GATEWAY);
    if !format!("{v:?}").contains("Py2Str") {
        assert!(strict_eq(&gw, v));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn values_round_trip(v in value()) {
        check(&v);
    }

    #[test]
    fn hashables_round_trip_as_keys_and_members(keys in proptest::collection::vec(hashable(), 0..8)) {
        let keys = distinct(keys);
        check(&Value::Set(keys.clone()));
        check(&Value::FrozenSet(keys.clone()));
        check(&Value::Dict(keys.into_iter().map(|k| (k, Value::None)).collect()));
    }
}

/// `depth` levels of lists, tuples and dicts (in turn, or only `kind`) around an int.
fn nested(depth: usize, kind: Option<usize>) -> Value {
    let mut v = Value::int(1);
    for i in 0..depth {
        v = match kind.unwrap_or(i % 3) {
            0 => Value::List(vec![v]),
            1 => Value::Tuple(vec![v]),
            _ => Value::Dict(vec![(Value::from("k"), v)]),
        };
    }
    v
}

/// Encodes, decodes (borrowed and owned) and re-encodes a deep value.
fn deep_round_trip(depth: usize, kind: Option<usize>) {
    let v = nested(depth, kind);
    let bytes = encode::to_vec(&v, Envelope::Dumps(Version::V2)).unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    let (_, r) = decode::decode_dumps(&bytes, &mut nodes, &Limits::DEFAULT).unwrap();
    assert_eq!(
        encode::to_vec(&r, Envelope::Dumps(Version::V2)).unwrap(),
        bytes
    );
    let (_, owned) = Value::decode_dumps(&bytes, &Limits::DEFAULT).unwrap();
    assert_eq!(
        encode::to_vec(&owned, Envelope::Dumps(Version::V2)).unwrap(),
        bytes
    );
}

#[test]
fn deep_values_round_trip() {
    for depth in [1usize, 10, 200, 500] {
        deep_round_trip(depth, None);
    }
}

/// The child half of `values_as_deep_as_the_default_limit_on_a_2mib_stack`: does the
/// work when run by it, nothing otherwise.
#[test]
fn deep_child() {
    let Ok(kind) = std::env::var("EXECNET_DEEP_CHILD") else {
        return;
    };
    let kind = kind.parse().ok();
    let depth = Limits::DEFAULT.max_depth as usize;
    // 2 MiB: Rust's default for spawned threads (and so for test threads).
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || deep_round_trip(depth, kind))
        .unwrap()
        .join()
        .unwrap();
}

/// A value as deep as `Limits::DEFAULT` accepts decodes, converts to the owned model
/// and re-encodes on a thread with a 2 MiB stack, in a debug build too. Run in a child
/// process, because a stack overflow aborts the whole process rather than failing one
/// test.
///
/// `Encode for ValueRef` / `Value` and `Value::from_ref` recurse once per level (about
/// 2 KiB of stack per level unoptimized): with the former default of 1000 levels this
/// overflowed (the borrowed re-encode at about 950 levels, the owned conversion of
/// nested dicts at about 850).
#[test]
fn values_as_deep_as_the_default_limit_on_a_2mib_stack() {
    let exe = std::env::current_exe().unwrap();
    for kind in ["all", "0", "1", "2"] {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "deep_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("EXECNET_DEEP_CHILD", kind)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "depth {} ({kind}): {}\n{}",
            Limits::DEFAULT.max_depth,
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains("overflow") || l.contains("panicked"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn key_function_is_conservative() {
    // Pairs Python finds equal share a key.
    let big = |t: &str| Value::Int(Int::parse(t).unwrap());
    for (a, b) in [
        (Value::Bool(true), Value::int(1)),
        (Value::Float(-0.0), Value::Bool(false)),
        (Value::Complex(2.0, 0.0), Value::Long(Int::Small(2))),
        (Value::Float(2f64.powi(70)), big("1180591620717411303424")),
        (Value::Str("a".into()), Value::Unicode("a".into())),
        (Value::Bytes(b"a".to_vec()), Value::Py2Str(b"a".to_vec())),
        (
            Value::FrozenSet(vec![Value::int(1), Value::int(2)]),
            Value::FrozenSet(vec![Value::Float(2.0), Value::Bool(true)]),
        ),
        (
            Value::Tuple(vec![Value::int(0)]),
            Value::Tuple(vec![Value::Float(-0.0)]),
        ),
    ] {
        assert_eq!(key(&a), key(&b), "{a:?} {b:?}");
        // and the owned conversion merges them, as Python would
        let d = Value::Dict(vec![(a.clone(), Value::None), (b, Value::None)]);
        let bytes = encode::to_vec(&d, Envelope::Internal).unwrap();
        match Value::decode_internal(&bytes, &Limits::DEFAULT).unwrap() {
            Value::Dict(e) => assert_eq!(e.len(), 1, "{a:?}"),
            other => panic!("{other:?}"),
        }
    }
}
