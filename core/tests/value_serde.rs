//! `Value` as a serde citizen: through this crate's serializer it writes exactly what
//! its own encoder writes, every kind survives a round trip through the wire, through
//! `to_value` / `from_value`, and nested in a Rust type; other formats see natural data.

use std::collections::BTreeMap;

use execnet_core::serde::{from_internal, from_value, to_value, to_vec};
use execnet_core::{encode, Envelope, Int, Limits, StrConfig, Value};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn every_kind() -> Value {
    Value::Dict(vec![
        (Value::from("none"), Value::None),
        (
            Value::from("bools"),
            Value::List(vec![Value::Bool(true), Value::Bool(false)]),
        ),
        (
            Value::from("ints"),
            Value::Tuple(vec![
                Value::int(-5),
                Value::int(1 << 40),
                Value::Int(Int::parse("170141183460469231731687303715884105728").unwrap()),
                Value::Int(Int::parse(&format!("-{}", "9".repeat(60))).unwrap()),
                Value::Long(Int::Small(7)),
                Value::Long(Int::parse(&"8".repeat(30)).unwrap()),
            ]),
        ),
        (Value::from("float"), Value::Float(-0.0)),
        (Value::from("complex"), Value::Complex(1.5, -2.0)),
        (Value::from("bytes"), Value::Bytes(b"\x00\xff".to_vec())),
        (
            Value::Unicode("unicode".into()),
            Value::Unicode("\u{e9}".into()),
        ),
        (
            Value::Py2Str(b"py2".to_vec()),
            Value::Py2Str(b"\xe9".to_vec()),
        ),
        (
            Value::Tuple(vec![Value::int(1), Value::from("tuple key")]),
            Value::Set(vec![Value::int(1), Value::from("x")]),
        ),
        (
            Value::FrozenSet(vec![Value::int(2)]),
            Value::FrozenSet(vec![Value::Tuple(vec![]), Value::Bytes(vec![])]),
        ),
        (Value::from("channel"), Value::Channel(3)),
        (
            Value::from("empty"),
            Value::List(vec![Value::Dict(vec![]), Value::Set(vec![])]),
        ),
    ])
}

#[test]
fn serializing_a_value_writes_what_the_encoder_writes() {
    let v = every_kind();
    for envelope in [
        Envelope::Internal,
        Envelope::Dumps(execnet_core::Version::V2),
    ] {
        assert_eq!(
            to_vec(&v, envelope).unwrap(),
            encode::to_vec(&v, envelope).unwrap()
        );
    }
}

#[test]
fn every_kind_survives_the_wire() {
    let v = every_kind();
    let bytes = encode::to_vec(&v, Envelope::Internal).unwrap();
    // The whole payload (read from the stream)...
    let back: Value = from_internal(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap();
    assert_eq!(back, v);
    // ... nested in a Rust type (read from the tape)...
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapped {
        n: i64,
        v: Value,
        more: Vec<Value>,
    }
    let w = Wrapped {
        n: 1,
        v: v.clone(),
        more: vec![Value::Set(vec![Value::None]), Value::Unicode("u".into())],
    };
    let bytes = to_vec(&w, Envelope::Internal).unwrap();
    let back: Wrapped = from_internal(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap();
    assert_eq!(back, w);
    // ... and through to_value / from_value.
    assert_eq!(to_value(&v).unwrap(), v);
    let again: Value = from_value(&v, StrConfig::LOADS).unwrap();
    assert_eq!(again, v);
    let w2: Wrapped = from_value(&to_value(&w).unwrap(), StrConfig::LOADS).unwrap();
    assert_eq!(w2, w);
}

#[test]
fn rust_types_to_and_from_values() {
    let v = to_value(&(1u8, "two", vec![3.5f64], BTreeMap::from([("k", true)]))).unwrap();
    assert_eq!(
        v,
        Value::Tuple(vec![
            Value::int(1),
            Value::from("two"),
            Value::List(vec![Value::Float(3.5)]),
            Value::Dict(vec![(Value::from("k"), Value::Bool(true))]),
        ])
    );
    let (a, b, c, d): (u8, &str, Vec<f64>, BTreeMap<String, bool>) =
        from_value(&v, StrConfig::LOADS).unwrap();
    assert_eq!((a, b, c, d["k"]), (1, "two", vec![3.5], true));
    // Python ints beyond u64 into u128, and a Python 2 str under either config.
    let big = Value::Int(Int::parse("200000000000000000000").unwrap());
    assert_eq!(
        from_value::<u128>(&big, StrConfig::LOADS).unwrap(),
        200000000000000000000
    );
    let py2 = Value::Py2Str(b"\xe9".to_vec());
    assert_eq!(
        from_value::<String>(&py2, StrConfig::GATEWAY).unwrap(),
        "\u{e9}"
    );
    assert!(from_value::<String>(&py2, StrConfig::LOADS).is_err());
    // Leftover items are refused.
    assert!(from_value::<(i64,)>(
        &Value::List(vec![Value::int(1), Value::int(2)]),
        StrConfig::LOADS
    )
    .is_err());
}

#[test]
fn other_formats_see_natural_data() {
    let v = Value::Dict(vec![
        (
            Value::from("set"),
            Value::Set(vec![Value::int(1), Value::int(2)]),
        ),
        (
            Value::from("tuple"),
            Value::Tuple(vec![Value::None, Value::Float(0.5)]),
        ),
        (Value::from("text"), Value::Unicode("u".into())),
        (
            Value::from("big"),
            Value::Int(Int::parse(&"9".repeat(45)).unwrap()),
        ),
    ]);
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(
        json,
        format!(
            "{{\"set\":[1,2],\"tuple\":[null,0.5],\"text\":\"u\",\"big\":\"{}\"}}",
            "9".repeat(45)
        )
    );
    let back: Value =
        serde_json::from_str("[1, \"a\", {\"k\": null}, 18446744073709551615, 2.5]").unwrap();
    assert_eq!(
        back,
        Value::List(vec![
            Value::int(1),
            Value::from("a"),
            Value::Dict(vec![(Value::from("k"), Value::None)]),
            Value::Int(Int::parse("18446744073709551615").unwrap()),
            Value::Float(2.5),
        ])
    );
}

#[test]
fn a_value_read_from_a_stream_keeps_the_limits() {
    let bytes = encode::to_vec(&Value::from("abcdef"), Envelope::Internal).unwrap();
    let limits = Limits {
        max_bytes: 3,
        ..Limits::DEFAULT
    };
    let e = from_internal::<Value>(&bytes, &limits, StrConfig::LOADS).unwrap_err();
    assert!(
        matches!(
            e.kind,
            execnet_core::DecodeErrorKind::StringTooLong { len: 6, max: 3 }
        ),
        "{e}"
    );
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Int(Int::Small(i))),
        any::<i32>().prop_map(|i| Value::Long(Int::Small(i.into()))),
        "-?[1-9][0-9]{19,60}".prop_map(|t| Value::Int(Int::parse(&t).unwrap())),
        "-?[1-9][0-9]{19,60}".prop_map(|t| Value::Long(Int::parse(&t).unwrap())),
        any::<f64>().prop_map(Value::Float),
        (any::<f64>(), any::<f64>()).prop_map(|(a, b)| Value::Complex(a, b)),
        ".{0,4}".prop_map(Value::Str),
        ".{0,4}".prop_map(Value::Unicode),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Value::Py2Str),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Value::Bytes),
        any::<i32>().prop_map(Value::Channel),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            proptest::collection::vec(inner, 0..4).prop_map(|v| Value::Dict(
                v.into_iter()
                    .enumerate()
                    .map(|(i, v)| (Value::int(i as i64), v))
                    .collect()
            )),
            proptest::collection::vec(any::<u16>(), 0..4).prop_map(|v| {
                let mut v: Vec<u16> = v;
                v.sort_unstable();
                v.dedup();
                Value::Set(v.into_iter().map(|i| Value::int(i.into())).collect())
            }),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_round_trips_through_serde(v in value()) {
        let bytes = encode::to_vec(&v, Envelope::Internal).unwrap();
        prop_assert_eq!(&to_vec(&v, Envelope::Internal).unwrap(), &bytes);
        // Compared by encoding: a NaN is not equal to itself.
        let read: Value = from_internal(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap();
        prop_assert_eq!(&encode::to_vec(&read, Envelope::Internal).unwrap(), &bytes);
        let nested: (Value, Value) = from_internal(
            &to_vec(&(&v, &v), Envelope::Internal).unwrap(),
            &Limits::DEFAULT,
            StrConfig::LOADS,
        )
        .unwrap();
        prop_assert_eq!(&encode::to_vec(&nested.1, Envelope::Internal).unwrap(), &bytes);
        prop_assert_eq!(&encode::to_vec(&to_value(&v).unwrap(), Envelope::Internal).unwrap(), &bytes);
        let via: Value = from_value(&v, StrConfig::LOADS).unwrap();
        prop_assert_eq!(&encode::to_vec(&via, Envelope::Internal).unwrap(), &bytes);
    }
}

#[derive(Debug, PartialEq, Deserialize)]
enum Shape {
    Unit,
    Newtype(i64),
    Tuple(i64, i64),
    Struct { x: i64 },
}

/// What `from_value` makes of an owned value and of the same value decoded (the tape):
/// the value, or the error without its offset (an owned value has no input to point
/// into).
fn both_trees<'a, T: Deserialize<'a> + std::fmt::Debug>(
    v: &'a Value,
    bytes: &'a [u8],
    nodes: &'a mut Vec<execnet_core::Node>,
) -> (String, String) {
    let show = |r: Result<T, execnet_core::DecodeError>| match r {
        Ok(t) => format!("{t:?}"),
        Err(e) => format!("{:?}", e.kind),
    };
    let owned = show(from_value(v, StrConfig::LOADS));
    let tape = execnet_core::decode::decode_internal(bytes, nodes, &Limits::DEFAULT).unwrap();
    (owned, show(from_value(tape, StrConfig::LOADS)))
}

/// The owned value and the decoded tape deserialize alike, leftovers, enums and their
/// errors included.
#[test]
fn owned_values_deserialize_as_their_tape_does() {
    let (i, s) = (Value::int, |t: &str| Value::from(t));
    let entry = |k: &str, v: Value| Value::Dict(vec![(s(k), v)]);
    let cases = [
        s("Unit"),
        Value::Py2Str(b"Unit".to_vec()),
        entry("Unit", Value::None),
        entry("Unit", i(1)),
        s("Newtype"),
        entry("Newtype", i(1)),
        entry("Tuple", Value::Tuple(vec![i(1), i(2)])),
        entry("Tuple", Value::List(vec![i(1), i(2), i(3)])),
        entry("Struct", entry("x", i(1))),
        Value::Dict(vec![(s("Struct"), entry("x", i(1))), (s("Unit"), i(2))]),
        Value::Dict(vec![]),
        Value::List(vec![i(1), i(2), i(3)]),
        Value::Set(vec![i(1)]),
        Value::Dict(vec![(s("a"), i(1)), (s("b"), s("x"))]),
        i(5),
    ];
    for v in &cases {
        let bytes = encode::to_vec(v, Envelope::Internal).unwrap();
        let mut nodes = Vec::new();
        let (owned, tape) = both_trees::<Shape>(v, &bytes, &mut nodes);
        assert_eq!(owned, tape, "Shape from {v:?}");
        let (owned, tape) = both_trees::<Vec<Option<Shape>>>(v, &bytes, &mut nodes);
        assert_eq!(owned, tape, "Vec<Option<Shape>> from {v:?}");
        let (owned, tape) = both_trees::<(i64, i64)>(v, &bytes, &mut nodes);
        assert_eq!(owned, tape, "(i64, i64) from {v:?}");
        let (owned, tape) = both_trees::<BTreeMap<String, i64>>(v, &bytes, &mut nodes);
        assert_eq!(owned, tape, "BTreeMap from {v:?}");
    }
}
