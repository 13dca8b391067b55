//! serde mapping: Rust types to execnet bytes and back, borrowing from the input.
use execnet_core::serde::{from_dumps, from_internal, to_vec};
use execnet_core::{Envelope, Limits, StrConfig, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Op {
    Ping,
    Run(String),
    Move { x: i32, y: i32 },
    Pair(u8, bool),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Msg<'a> {
    id: u64,
    name: &'a str,
    #[serde(with = "serde_bytes_like")]
    blob: Vec<u8>,
    ops: Vec<Op>,
    pos: (i64, f64),
    maybe: Option<i128>,
    big: u128,
    map: BTreeMap<String, i32>,
}

mod serde_bytes_like {
    use serde::{Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

#[test]
fn struct_round_trip_borrows_str() {
    let msg = Msg {
        id: 1 << 40,
        name: "wörld",
        blob: vec![0, 255, 7],
        ops: vec![
            Op::Ping,
            Op::Run("ls".into()),
            Op::Move { x: -1, y: 2 },
            Op::Pair(3, true),
        ],
        pos: (-(1 << 62), 0.5),
        maybe: Some(-(1i128 << 100)),
        big: u128::MAX,
        map: [("a".to_string(), 1), ("b".to_string(), 2)].into(),
    };
    let bytes = to_vec(&msg, Envelope::Dumps(Version::V2)).unwrap();
    let back: Msg<'_> = from_dumps(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap();
    assert_eq!(back, msg);
    // `name` points into `bytes`: zero-copy.
    let range = bytes.as_ptr_range();
    assert!(range.contains(&back.name.as_ptr()));
}

#[test]
fn reads_python_written_dict() {
    // execnet.dumps({"id": 17, "op": "run", "args": ["a", "b"], "ok": True, "t": 1.5})
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/small_msg.bin"
    ))
    .unwrap();
    #[derive(Deserialize, Debug, PartialEq)]
    struct Small<'a> {
        id: i32,
        op: &'a str,
        args: Vec<&'a str>,
        ok: bool,
        t: f64,
    }
    let s: Small = from_dumps(&data, &Limits::DEFAULT, StrConfig::LOADS).unwrap();
    assert_eq!(
        s,
        Small {
            id: 17,
            op: "run",
            args: vec!["a", "b"],
            ok: true,
            t: 1.5
        }
    );
}

#[test]
fn mismatch_and_missing_length_are_errors() {
    let bytes = to_vec(&"text", Envelope::Internal).unwrap();
    let e = from_internal::<i32>(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap_err();
    assert!(e.to_string().contains("str"), "{e}");
    struct Unknown;
    impl Serialize for Unknown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let seq = s.serialize_seq(None)?;
            seq.end()
        }
    }
    assert!(to_vec(&Unknown, Envelope::Internal).is_err());
}

#[test]
fn py2str_follows_strconfig() {
    let bytes = b"M\x00\x00\x00\x02\xe9aQ";
    let as_bytes: Vec<u8> = {
        #[derive(Deserialize)]
        struct W(#[serde(with = "serde_bytes_like")] Vec<u8>);
        from_internal::<W>(bytes, &Limits::DEFAULT, StrConfig::LOADS)
            .unwrap()
            .0
    };
    assert_eq!(as_bytes, b"\xe9a");
    let as_text: String = from_internal(bytes, &Limits::DEFAULT, StrConfig::GATEWAY).unwrap();
    assert_eq!(as_text, "\u{e9}a");
    assert!(from_internal::<String>(bytes, &Limits::DEFAULT, StrConfig::LOADS).is_err());
}

/// A serde error names the value it failed on, never a made-up "byte 0".
#[test]
fn serde_errors_carry_the_offset_of_their_value() {
    // (1, "x") into Vec<i64>: the failing value is the "x" at byte 5.
    let bytes = to_vec(&(1, "x"), Envelope::Internal).unwrap();
    let e = from_internal::<Vec<i64>>(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap_err();
    assert_eq!(e.offset, Some(5), "{e}");
    assert!(e.to_string().ends_with("at byte 5"), "{e}");
    // A custom error from a Deserialize implementation: the dict it was reading, at byte
    // 10 of [{}] (after NEWLIST 1 and INT 0).
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Needs {
        field: i64,
    }
    let bytes = to_vec(&vec![BTreeMap::<String, i64>::new()], Envelope::Internal).unwrap();
    let e = from_internal::<Vec<Needs>>(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap_err();
    assert!(e.to_string().contains("field"), "{e}");
    assert_eq!(e.offset, Some(10), "{e}");
    // Over a value with no place in an input: no offset at all.
    let v = execnet_core::ValueRef::Str(execnet_core::value::PyStr::Py3("x"));
    let e = execnet_core::serde::from_value::<i64>(v, StrConfig::LOADS).unwrap_err();
    assert_eq!(e.offset, None, "{e}");
    assert!(!e.to_string().contains("byte"), "{e}");
    // Items a fixed-size type leaves are refused, not dropped.
    let bytes = to_vec(&vec![1, 2, 3], Envelope::Internal).unwrap();
    let e = from_internal::<(i64, i64)>(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap_err();
    assert_eq!(e.offset, Some(0), "{e}");
}
