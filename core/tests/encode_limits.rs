//! The encoder checks the same `Limits` as the decoder, so that nothing we write is
//! refused by our own reader with the same limits (issue 11 item 9): a 20,000-digit int
//! and a 300 MB string used to go out and then be refused on arrival.

use execnet_core::encode::{self, Encoder};
use execnet_core::error::Limit;
use execnet_core::sink::SizeSink;
use execnet_core::value::PyStr;
use execnet_core::{DecodeErrorKind, EncodeError, Envelope, Int, Limits, Value, ValueRef, Version};
use proptest::prelude::*;

fn limit_of(e: &EncodeError) -> Option<(Limit, usize, u32)> {
    match *e {
        EncodeError::LimitExceeded { limit, found, max } => Some((limit, found, max)),
        _ => None,
    }
}

#[test]
fn twenty_thousand_digit_int_is_refused_on_the_way_out() {
    let huge = Value::Int(Int::parse(&"9".repeat(20_000)).unwrap());
    let e = encode::to_vec(&huge, Envelope::Internal).unwrap_err();
    assert_eq!(
        limit_of(&e),
        Some((
            Limit::BigIntDigits,
            20_000,
            Limits::DEFAULT.max_bigint_digits
        ))
    );
    let text = e.to_string();
    assert!(
        text.contains("20000") && text.contains("max_bigint_digits") && text.contains("refuse"),
        "{text}"
    );
    // The decoder refuses the same bytes, and both take the limit itself.
    let mut bytes = vec![b'H'];
    bytes.extend_from_slice(&20_000i32.to_be_bytes());
    bytes.extend(std::iter::repeat_n(b'9', 20_000));
    bytes.push(b'Q');
    let d = Value::decode_internal(&bytes, &Limits::DEFAULT).unwrap_err();
    assert!(matches!(
        d.kind,
        DecodeErrorKind::IntTooLong { digits: 20_000, .. }
    ));
    let edge = Value::Int(Int::parse(&"9".repeat(10_000)).unwrap());
    let ok = encode::to_vec(&edge, Envelope::Internal).unwrap();
    assert_eq!(Value::decode_internal(&ok, &Limits::DEFAULT).unwrap(), edge);
    // Through the builder, and for a negative number (the sign is not a digit).
    let mut e = Encoder::new(SizeSink::default());
    let minus = format!("-{}", "1".repeat(10_001));
    assert!(limit_of(
        &e.big_int(&minus, execnet_core::value::IntKind::Int)
            .unwrap_err()
    )
    .is_some());
}

#[test]
fn three_hundred_megabyte_string_is_refused_before_it_is_written() {
    // Zeroed pages that are never touched: the check comes before any copy.
    let big = vec![0u8; 300 << 20];
    let mut sink = Vec::new();
    let e = encode::encode(&ValueRef::Bytes(&big), Envelope::Internal, &mut sink).unwrap_err();
    assert_eq!(
        limit_of(&e),
        Some((Limit::Bytes, 300 << 20, Limits::DEFAULT.max_bytes))
    );
    assert!(
        sink.len() < 16,
        "{} bytes written before refusing",
        sink.len()
    );
    assert!(e.to_string().contains("max_bytes"), "{e}");
    // Every string kind, under a small limit, agrees with the decoder.
    let limits = Limits {
        max_bytes: 4,
        ..Limits::DEFAULT
    };
    for v in [
        ValueRef::Str(PyStr::Py3("12345")),
        ValueRef::Str(PyStr::Unicode("12345")),
        ValueRef::Str(PyStr::Py2(b"12345")),
        ValueRef::Bytes(b"12345"),
    ] {
        let e =
            encode::encode_with_limits(&v, Envelope::Internal, Vec::new(), &limits).unwrap_err();
        assert_eq!(limit_of(&e), Some((Limit::Bytes, 5, 4)));
        let bytes = encode::to_vec(&v, Envelope::Internal).unwrap();
        let d = Value::decode_internal(&bytes, &limits).unwrap_err();
        assert_eq!(d.kind, DecodeErrorKind::StringTooLong { len: 5, max: 4 });
    }
}

fn nested(depth: usize) -> Value {
    let mut v = Value::None;
    for _ in 0..depth {
        v = Value::List(vec![v]);
    }
    v
}

#[test]
fn nesting_beyond_max_depth_is_refused_both_ways() {
    let max = Limits::DEFAULT.max_depth as usize;
    let bytes = encode::to_vec(&nested(max), Envelope::Internal).unwrap();
    Value::decode_internal(&bytes, &Limits::DEFAULT).unwrap();
    let e = encode::to_vec(&nested(max + 1), Envelope::Internal).unwrap_err();
    assert_eq!(limit_of(&e), Some((Limit::Depth, max + 1, max as u32)));
    assert!(e.to_string().contains("max_depth"), "{e}");
}

#[test]
fn items_and_message_size_are_checked_both_ways() {
    let list = Value::List(vec![Value::int(1), Value::int(2), Value::int(3)]);
    let limits = Limits {
        max_items: 3,
        ..Limits::DEFAULT
    };
    let e = encode::encode_with_limits(&list, Envelope::Internal, Vec::new(), &limits).unwrap_err();
    assert_eq!(limit_of(&e), Some((Limit::Items, 4, 3)));
    let bytes = encode::to_vec(&list, Envelope::Internal).unwrap();
    assert!(Value::decode_internal(&bytes, &limits).is_err());

    let limits = Limits {
        max_message: 16,
        ..Limits::DEFAULT
    };
    let long = Value::from("a string of twenty bytes");
    let e = encode::encode_with_limits(&long, Envelope::Internal, Vec::new(), &limits).unwrap_err();
    assert!(matches!(limit_of(&e), Some((Limit::Message, _, 16))), "{e}");
    let bytes = encode::to_vec(&long, Envelope::Internal).unwrap();
    let d = Value::decode_internal(&bytes, &limits).unwrap_err();
    assert_eq!(
        d.kind,
        DecodeErrorKind::MessageTooLong {
            len: bytes.len(),
            max: 16
        }
    );
}

#[cfg(feature = "serde")]
#[test]
fn serde_values_are_checked_too() {
    let e = execnet_core::serde::to_vec(&"x".repeat(70_000), Envelope::Internal);
    assert!(e.is_ok());
    let deep: Vec<Vec<Vec<u8>>> = vec![vec![vec![1]]];
    let limits = Limits {
        max_depth: 2,
        ..Limits::DEFAULT
    };
    let e =
        execnet_core::serde::to_vec_with_limits(&deep, Envelope::Internal, &limits).unwrap_err();
    assert_eq!(limit_of(&e), Some((Limit::Depth, 3, 2)));
    let ok = execnet_core::serde::to_vec(&deep, Envelope::Internal).unwrap();
    assert!(Value::decode_internal(&ok, &limits).is_err());
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<i64>().prop_map(|i| Value::Int(Int::Small(i))),
        "[0-9]{1,40}".prop_map(|t| Value::Int(Int::parse(&t).unwrap())),
        ".{0,12}".prop_map(|s| Value::from(s.as_str())),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        any::<f64>().prop_map(Value::Float),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(|kv| {
                Value::Dict(
                    kv.into_iter()
                        .enumerate()
                        .map(|(i, (_, v))| (Value::int(i as i64), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn limits() -> impl Strategy<Value = Limits> {
    (0u32..8, 1u32..60, 0u32..14, 1u32..40, 1u32..400).prop_map(|(d, i, b, g, m)| Limits {
        max_depth: d,
        max_items: i,
        max_bytes: b,
        max_bigint_digits: g,
        max_message: m,
    })
}

proptest! {
    /// Whatever the limits, the encoder accepts a value exactly when the decoder with the
    /// same limits accepts its bytes.
    #[test]
    fn encoder_and_decoder_agree_on_every_limit(v in value(), limits in limits(), dumps in any::<bool>()) {
        let envelope = if dumps { Envelope::Dumps(Version::V2) } else { Envelope::Internal };
        let written = encode::encode_with_limits(&v, envelope, Vec::new(), &limits);
        let bytes = encode::to_vec(&v, envelope).unwrap();
        let read = if dumps {
            Value::decode_dumps(&bytes, &limits).map(|(_, v)| v)
        } else {
            Value::decode_internal(&bytes, &limits)
        };
        prop_assert_eq!(written.is_ok(), read.is_ok(), "encode {:?} decode {:?}", written.err(), read.err());
    }
}
