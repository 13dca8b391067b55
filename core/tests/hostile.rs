//! Hostile input: one test per rule the decoder applies where the reference trusts its
//! input (see the `decode` module docs), each asserting the specific error (and where it
//! was found), through every decoder entry point; a property test that no input makes any
//! entry point panic and that the owned and borrowed decoders fail alike; and the 9-byte
//! `NEWLIST` bomb, refused at once without allocating.

use std::time::{Duration, Instant};

use execnet_core::opcode::*;
use execnet_core::{
    decode, encode, DecodeError, DecodeErrorKind as K, Envelope, Int, Limits, Node, StrConfig,
    Value, ValueRef, Version,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// A little assembler for opcode streams.

#[derive(Clone, Default)]
struct B(Vec<u8>);

impl B {
    fn new() -> B {
        B(Vec::new())
    }
    /// Offset of the next opcode.
    fn at(&self) -> usize {
        self.0.len()
    }
    fn op(mut self, code: u8) -> B {
        self.0.push(code);
        self
    }
    fn i4(mut self, code: u8, v: i32) -> B {
        self.0.push(code);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn blob(mut self, code: u8, bytes: &[u8]) -> B {
        self = self.i4(code, bytes.len() as i32);
        self.0.extend_from_slice(bytes);
        self
    }
    fn raw(mut self, bytes: &[u8]) -> B {
        self.0.extend_from_slice(bytes);
        self
    }
    fn int(self, v: i32) -> B {
        self.i4(INT, v)
    }
    fn none(self) -> B {
        self.op(NONE)
    }
    fn float(self, f: f64) -> B {
        self.op(FLOAT).raw(&f.to_bits().to_be_bytes())
    }
    fn str(self, s: &str) -> B {
        self.blob(PY3STRING, s.as_bytes())
    }
    fn list(self, n: i32) -> B {
        self.i4(NEWLIST, n)
    }
    fn tuple(self, n: i32) -> B {
        self.i4(BUILDTUPLE, n)
    }
    fn setitem(self) -> B {
        self.op(SETITEM)
    }
    fn stop(self) -> B {
        self.op(STOP)
    }
    fn dict(self) -> B {
        self.op(NEWDICT)
    }
    /// A complete list of `items` Nones, as the reference writes it.
    fn nones(mut self, items: i32) -> B {
        self = self.list(items);
        for i in 0..items {
            self = self.int(i).none().setitem();
        }
        self
    }
}

fn with_version(version: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![version];
    v.extend_from_slice(body);
    v
}

/// Decodes `body` (internal envelope) through every entry point and storage, expects all
/// of them to fail alike, and returns the error. The same body in the `dumps` envelope
/// fails the same way one byte further on.
fn fail_with(body: &[u8], limits: &Limits) -> DecodeError {
    let mut vec: Vec<Node> = Vec::new();
    let e = decode::decode_internal(body, &mut vec, limits).expect_err("decoded");
    let mut fixed = vec![Node::EMPTY; 4096];
    let e2 = decode::decode_internal(body, fixed.as_mut_slice(), limits).expect_err("fixed");
    assert_eq!(e2, e, "fixed slice");
    let mut hv: heapless::Vec<Node, 4096> = heapless::Vec::new();
    let e2 = decode::decode_internal(body, &mut hv, limits).expect_err("heapless");
    assert_eq!(e2, e, "heapless::Vec");
    let e2 = decode::take_internal(body, &mut vec, limits).expect_err("take");
    assert_eq!(e2, e, "take_internal");
    let e2 = Value::decode_internal(body, limits).expect_err("owned");
    assert_eq!(e2, e, "owned");

    let dumps = with_version(0x02, body);
    let shifted = DecodeError {
        offset: e.offset.map(|o| o + 1),
        ..e.clone()
    };
    let e2 = decode::decode_dumps(&dumps, &mut vec, limits).expect_err("dumps");
    assert_eq!(e2, shifted, "decode_dumps");
    let e2 = decode::take_dumps(&dumps, &mut vec, limits).expect_err("take dumps");
    assert_eq!(e2, shifted, "take_dumps");
    let e2 = Value::decode_dumps(&with_version(0x01, body), limits).expect_err("owned dumps");
    assert_eq!(e2, shifted, "owned decode_dumps");
    e
}

fn fail(body: &[u8]) -> DecodeError {
    fail_with(body, &Limits::DEFAULT)
}

/// Asserts the error's kind, offset and opcode.
fn expect(body: &[u8], kind: K, offset: usize, opcode: Option<u8>) {
    let e = fail(body);
    assert_eq!(
        e,
        DecodeError::new(kind, offset, opcode),
        "input {}",
        hex(body)
    );
}

/// Decodes `body` through every entry point, which must all succeed, and returns the
/// owned value (string config as `loads()`).
fn ok_with(body: &[u8], limits: &Limits) -> Value {
    let mut vec: Vec<Node> = Vec::new();
    let v = decode::decode_internal(body, &mut vec, limits)
        .unwrap_or_else(|e| panic!("{}: {e}", hex(body)));
    let owned = Value::from_ref(&v, StrConfig::LOADS);
    let mut fixed = vec![Node::EMPTY; decode::node_bound(body).unwrap()];
    decode::decode_internal(body, fixed.as_mut_slice(), limits).expect("fixed slice");
    let (_, rest) = decode::take_internal(body, &mut vec, limits).expect("take");
    assert!(rest.is_empty());
    let (version, _) =
        decode::decode_dumps(&with_version(0x01, body), &mut vec, limits).expect("dumps");
    assert_eq!(version, Version::V1);
    let o2 = Value::decode_internal(body, limits).expect("owned");
    assert_eq!(
        encode::to_vec(&o2, Envelope::Internal),
        encode::to_vec(&owned, Envelope::Internal)
    );
    owned
}

fn ok(body: &[u8]) -> Value {
    ok_with(body, &Limits::DEFAULT)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// One test per rule.

#[test]
fn negative_length_or_count() {
    for code in [
        BYTES, PY2STRING, PY3STRING, UNICODE, LONGINT, LONGLONG, NEWLIST, BUILDTUPLE, SET,
        FROZENSET,
    ] {
        for n in [-1, i32::MIN] {
            let b = B::new().none().i4(code, n).raw(b"abcdefgh").stop();
            expect(&b.0, K::NegativeLength(n), 1, Some(code));
        }
    }
    assert_eq!(
        decode::node_bound(&B::new().i4(BYTES, -5).0)
            .unwrap_err()
            .kind,
        K::NegativeLength(-5)
    );
}

#[test]
fn length_beyond_the_input() {
    for code in [BYTES, PY2STRING, PY3STRING, UNICODE, LONGINT, LONGLONG] {
        let b = B::new().i4(code, 16).raw(b"123");
        expect(
            &b.0,
            K::LengthBeyondInput {
                len: 16,
                available: 3,
            },
            0,
            Some(code),
        );
        // i32::MAX announces 2 GiB: refused before anything is reserved.
        let b = B::new()
            .list(1)
            .int(0)
            .i4(code, i32::MAX)
            .raw(b"12")
            .setitem()
            .stop();
        let e = fail(&b.0);
        assert_eq!(
            e.kind,
            K::LengthBeyondInput {
                len: i32::MAX as usize,
                available: 4
            }
        );
        assert_eq!((e.offset, e.opcode), (Some(10), Some(code)));
    }
    // Operands cut short.
    for (input, needed, available) in [
        (&b"F\x00\x00"[..], 4, 2),
        (b"K", 4, 0),
        (b"D\x00\x00\x00", 8, 3),
        (b"T\x00\x00\x00\x00\x00\x00\x00\x00\x00", 8, 1),
        (b"N\x00\x00\x00", 4, 3),
    ] {
        expect(
            input,
            K::UnexpectedEnd { needed, available },
            0,
            Some(input[0]),
        );
    }
    // A string longer than the limit, though present.
    let limits = Limits {
        max_bytes: 4,
        ..Limits::DEFAULT
    };
    let b = B::new().blob(BYTES, b"12345").stop();
    assert_eq!(
        fail_with(&b.0, &limits).kind,
        K::StringTooLong { len: 5, max: 4 }
    );
    ok_with(&B::new().blob(BYTES, b"1234").stop().0, &limits);
}

#[test]
fn newlist_count_beyond_what_the_rest_can_hold() {
    // [None, None] as the reference writes it: 7 bytes per item, then STOP.
    let good = B::new().nones(2).stop();
    assert_eq!(good.0.len(), 5 + 14 + 1);
    assert_eq!(ok(&good.0), Value::List(vec![Value::None, Value::None]));
    // One more item than 15 remaining bytes can hold.
    let mut bad = good.0.clone();
    bad[1..5].copy_from_slice(&3i32.to_be_bytes());
    expect(&bad, K::ListTooLong { count: 3, max: 2 }, 0, Some(NEWLIST));
    // The cap also follows Limits::max_items.
    let limits = Limits {
        max_items: 1,
        ..Limits::DEFAULT
    };
    assert_eq!(
        fail_with(&good.0, &limits).kind,
        K::ListTooLong { count: 2, max: 1 }
    );
    // Far beyond: the reference would allocate 16 GiB.
    let b = B::new()
        .none()
        .list(i32::MAX)
        .raw(b"LLLLLLLLLLLLLLLLLLLL")
        .stop();
    expect(
        &b.0,
        K::ListTooLong {
            count: i32::MAX as usize,
            max: 3,
        },
        1,
        Some(NEWLIST),
    );
}

#[test]
fn build_count_larger_than_the_stack() {
    for code in [BUILDTUPLE, SET, FROZENSET] {
        let b = B::new().none().int(1).i4(code, 3).stop();
        expect(
            &b.0,
            K::StackUnderflow {
                needed: 3,
                available: 2,
            },
            6,
            Some(code),
        );
        let b = B::new().i4(code, 1).stop();
        expect(
            &b.0,
            K::StackUnderflow {
                needed: 1,
                available: 0,
            },
            0,
            Some(code),
        );
    }
    // An exact count works, and count 0 builds an empty collection.
    assert_eq!(
        ok(&B::new().none().int(1).tuple(2).stop().0),
        Value::Tuple(vec![Value::None, Value::int(1)])
    );
    assert_eq!(ok(&B::new().i4(SET, 0).stop().0), Value::Set(vec![]));
}

#[test]
fn setitem_on_a_stack_of_fewer_than_three() {
    for (b, available) in [
        (B::new().setitem().stop(), 0),
        (B::new().dict().setitem().stop(), 1),
        (B::new().dict().none().setitem().stop(), 2),
    ] {
        let at = b.0.iter().position(|&c| c == SETITEM).unwrap();
        expect(
            &b.0,
            K::StackUnderflow {
                needed: 3,
                available,
            },
            at,
            Some(SETITEM),
        );
    }
}

#[test]
fn setitem_on_a_non_container() {
    let targets: [B; 7] = [
        B::new().none(),
        B::new().int(5),
        B::new().str("x"),
        B::new().tuple(0),
        B::new().i4(SET, 0),
        B::new().i4(FROZENSET, 0),
        B::new().blob(BYTES, b"ab"),
    ];
    for target in targets {
        let b = target.int(0).none();
        let at = b.at();
        let b = b.setitem().stop();
        expect(&b.0, K::NotAContainer, at, Some(SETITEM));
    }
}

#[test]
fn list_index_not_an_int() {
    let keys: [B; 6] = [
        B::new().str("0"),
        B::new().float(0.0),
        B::new().none(),
        B::new().blob(BYTES, b"0"),
        B::new().tuple(0),
        B::new().op(TRUE),
    ];
    for key in keys {
        // (an item of 13 bytes, so that the list's count is plausible)
        let b = B::new().list(1).raw(&key.0).str("abcdefgh");
        let at = b.at();
        let b = b.setitem().stop();
        expect(&b.0, K::ListIndexNotInt, at, Some(SETITEM));
    }
    // Ours takes only `INT i`: an index that came as LONG, LONGINT or LONGLONG is an
    // int, but not what any writer sends, and would not re-encode to the same bytes.
    for (key, found) in [
        (B::new().i4(LONG, 0), 0),
        (B::new().blob(LONGINT, b"0"), i64::MAX),
        (B::new().blob(LONGLONG, b"-1"), i64::MAX),
    ] {
        let b = B::new().list(1).raw(&key.0).none();
        let at = b.at();
        let b = b.setitem().stop();
        expect(
            &b.0,
            K::ListIndexOutOfOrder { expected: 0, found },
            at,
            Some(SETITEM),
        );
    }
}

#[test]
fn list_index_out_of_range_or_order() {
    let cases: Vec<(B, usize, i64)> = vec![
        // index 1 first
        (B::new().list(2).int(1), 0, 1),
        // out of range
        (B::new().list(1).int(5), 0, 5),
        // negative: Python would count from the end
        (B::new().list(1).int(-2), 0, -2),
        (B::new().list(1).int(-1), 0, -1),
        // index 0 twice
        (B::new().list(2).int(0).none().setitem().int(0), 1, 0),
        // one item more than announced
        (B::new().list(1).int(0).none().setitem().int(1), 1, 1),
        // any item in an empty list
        (B::new().list(0).int(0), 0, 0),
        // beyond i64
        (
            B::new().list(1).blob(LONGINT, b"99999999999999999999"),
            0,
            i64::MAX,
        ),
    ];
    for (b, expected, found) in cases {
        let b = b.none();
        let at = b.at();
        let b = b.setitem().raw(b"LLLLLLLLLLLLLLLL").stop();
        expect(
            &b.0,
            K::ListIndexOutOfOrder { expected, found },
            at,
            Some(SETITEM),
        );
    }
    // Python counts negative indexes from the end; ours rejects them (they would not
    // re-encode to the same bytes): -2, -1 do not fill a list of 2.
    let b = B::new().list(2).int(-2).int(7);
    let at = b.at();
    let b = b.setitem().int(-1).int(8).setitem().stop();
    expect(
        &b.0,
        K::ListIndexOutOfOrder {
            expected: 0,
            found: -2,
        },
        at,
        Some(SETITEM),
    );
    // A list used before all its items are set.
    let b = B::new().list(2).int(0).str("abcdefgh").setitem();
    let at = b.at();
    expect(
        &b.clone().stop().0,
        K::ListIncomplete {
            expected: 2,
            found: 1,
        },
        at,
        Some(STOP),
    );
    let at = b.at();
    expect(
        &b.clone().tuple(1).stop().0,
        K::ListIncomplete {
            expected: 2,
            found: 1,
        },
        at,
        Some(BUILDTUPLE),
    );
    let b = B::new().dict().int(1).raw(&b.0);
    let at = b.at();
    expect(
        &b.setitem().stop().0,
        K::ListIncomplete {
            expected: 2,
            found: 1,
        },
        at,
        Some(SETITEM),
    );
}

#[test]
fn unhashable_dict_key_or_set_member() {
    let unhashable: [B; 6] = [
        B::new().list(0),
        B::new().dict(),
        B::new().i4(SET, 0),
        B::new().list(0).tuple(1),
        B::new().none().dict().tuple(2).tuple(1),
        B::new().i4(SET, 0).int(1).tuple(2),
    ];
    for key in &unhashable {
        // As a dict key.
        let b = B::new().dict().raw(&key.0).none();
        let at = b.at();
        expect(&b.setitem().stop().0, K::Unhashable, at, Some(SETITEM));
        // As a set or frozenset member.
        for code in [SET, FROZENSET] {
            let b = B::new().raw(&key.0);
            let at = b.at();
            expect(&b.i4(code, 1).stop().0, K::Unhashable, at, Some(code));
        }
    }
    // Hashable keys are fine: a tuple of tuples, a frozenset, None, a float.
    for key in [
        B::new().int(1).tuple(1).tuple(1),
        B::new().int(1).i4(FROZENSET, 1),
        B::new().none(),
        B::new().float(0.5),
    ] {
        ok(&B::new().dict().raw(&key.0).none().setitem().stop().0);
        ok(&B::new().raw(&key.0).i4(SET, 1).stop().0);
    }
    // A tuple may hold anything; it is only unhashable as a key.
    assert_eq!(
        ok(&B::new().list(0).dict().tuple(2).stop().0),
        Value::Tuple(vec![Value::List(vec![]), Value::Dict(vec![])])
    );
}

#[test]
fn invalid_utf8_in_text() {
    for code in [PY3STRING, UNICODE] {
        for (bytes, valid_up_to) in [
            (&b"\xff"[..], 0),
            (b"a\xc3(", 1),
            (b"ab\xed\xa0\x80", 2),  // an encoded surrogate
            (b"\xc0\x80", 0),        // overlong NUL
            (b"abc\xf0\x9f\x98", 3), // truncated 4-byte sequence
        ] {
            let b = B::new().none().blob(code, bytes).tuple(2).stop();
            expect(&b.0, K::InvalidUtf8 { valid_up_to }, 1, Some(code));
        }
    }
    // The same bytes are fine as bytes and as a Python 2 str.
    assert_eq!(
        ok(&B::new().blob(PY2STRING, b"\xff").stop().0),
        Value::Py2Str(vec![0xff])
    );
    assert_eq!(
        ok(&B::new().blob(BYTES, b"\xc0\x80").stop().0),
        Value::Bytes(vec![0xc0, 0x80])
    );
}

#[test]
fn malformed_longint_text() {
    for code in [LONGINT, LONGLONG] {
        for text in [
            &b""[..],
            b"-",
            b"+",
            b"+-1",
            b"12a",
            b" 12",
            b"12 ",
            b"1_000",
            b"0x10",
            b"1.5",
            b"1e5",
            b"12L",
            "\u{661}\u{662}".as_bytes(), // Arabic-Indic digits, which int() takes
            b"\xff",
        ] {
            let b = B::new().none().blob(code, text).tuple(2).stop();
            expect(&b.0, K::InvalidIntText, 1, Some(code));
        }
        // What is accepted: a sign, leading zeros.
        for (text, v) in [
            ("+5", 5i64),
            ("-0", 0),
            ("007", 7),
            ("-2147483649", -2147483649),
        ] {
            let b = B::new().blob(code, text.as_bytes()).stop();
            assert_eq!(ok(&b.0).as_i64(), Some(v), "{text}");
        }
        // Digits beyond the limit.
        let b = B::new().blob(code, "9".repeat(101).as_bytes()).stop();
        assert_eq!(
            fail_with(&b.0, &Limits::TIGHT).kind,
            K::IntTooLong {
                digits: 101,
                max: 100
            }
        );
        ok_with(
            &B::new().blob(code, "9".repeat(100).as_bytes()).stop().0,
            &Limits::TIGHT,
        );
    }
}

#[test]
fn unknown_opcode() {
    for byte in 0..=255u8 {
        if name(byte).is_some() {
            continue;
        }
        expect(&[byte], K::UnknownOpcode(byte), 0, Some(byte));
        let b = B::new().none().op(byte).stop();
        expect(&b.0, K::UnknownOpcode(byte), 1, Some(byte));
        assert_eq!(
            decode::node_bound(&b.0).unwrap_err().kind,
            K::UnknownOpcode(byte)
        );
    }
}

#[test]
fn missing_stop() {
    expect(b"", K::MissingStop, 0, None);
    expect(b"L", K::MissingStop, 1, None);
    expect(&B::new().list(0).0, K::MissingStop, 5, None);
    expect(&B::new().none().none().tuple(2).0, K::MissingStop, 7, None);
    let mut vec = Vec::new();
    assert_eq!(
        decode::decode_dumps(b"\x02", &mut vec, &Limits::DEFAULT).unwrap_err(),
        DecodeError::new(K::MissingStop, 1, None)
    );
}

#[test]
fn stop_with_zero_or_two_values() {
    expect(b"Q", K::BadStopStack(0), 0, Some(STOP));
    expect(b"LLQ", K::BadStopStack(2), 2, Some(STOP));
    expect(
        &B::new().dict().int(1).stop().0,
        K::BadStopStack(2),
        6,
        Some(STOP),
    );
}

#[test]
fn unknown_version_byte() {
    for byte in 0..=255u8 {
        let input = [byte, NONE, STOP];
        let mut vec: Vec<Node> = Vec::new();
        let got = decode::decode_dumps(&input, &mut vec, &Limits::DEFAULT).map(|(v, _)| v);
        let taken = decode::take_dumps(&input, &mut vec, &Limits::DEFAULT).map(|(v, _, _)| v);
        let owned = Value::decode_dumps(&input, &Limits::DEFAULT).map(|(v, _)| v);
        match byte {
            1 | 2 => {
                let want = if byte == 1 { Version::V1 } else { Version::V2 };
                assert_eq!(got, Ok(want));
                assert_eq!(taken, Ok(want));
                assert_eq!(owned, Ok(want));
            }
            _ => {
                let e = Err(DecodeError::new(K::UnknownVersion(byte), 0, None));
                assert_eq!(got, e);
                assert_eq!(taken, e);
                assert_eq!(owned, e);
            }
        }
    }
    let mut vec: Vec<Node> = Vec::new();
    assert_eq!(
        decode::decode_dumps(b"", &mut vec, &Limits::DEFAULT).unwrap_err(),
        DecodeError::new(
            K::UnexpectedEnd {
                needed: 1,
                available: 0
            },
            0,
            None
        )
    );
}

/// `depth` nested lists around None, as the reference writes them.
fn nested_lists(depth: usize) -> B {
    let mut b = B::new();
    for _ in 0..depth {
        b = b.list(1).int(0);
    }
    b = b.none();
    for _ in 0..depth {
        b = b.setitem();
    }
    b.stop()
}

#[test]
fn nesting_deeper_than_the_limit() {
    let limits = Limits {
        max_depth: 5,
        ..Limits::DEFAULT
    };
    let too_deep = K::TooDeep { max: 5 };
    // Lists: depth 5 is fine, 6 is not.
    ok_with(&nested_lists(5).0, &limits);
    let b = nested_lists(6);
    let e = fail_with(&b.0, &limits);
    assert_eq!((e.kind, e.opcode), (too_deep.clone(), Some(SETITEM)));
    // Tuples.
    let tuples = |d: usize| {
        let mut b = B::new().none();
        for _ in 0..d {
            b = b.tuple(1);
        }
        b.stop()
    };
    ok_with(&tuples(5).0, &limits);
    let b = tuples(6);
    expect_with(&b.0, &limits, too_deep.clone(), b.0.len() - 6, BUILDTUPLE);
    // Dicts, nesting through values and through keys.
    let dicts = |d: usize| {
        let mut b = B::new();
        for _ in 0..d {
            b = b.dict().int(0);
        }
        b = b.none();
        for _ in 0..d {
            b = b.setitem();
        }
        b.stop()
    };
    ok_with(&dicts(5).0, &limits);
    assert_eq!(fail_with(&dicts(6).0, &limits).kind, too_deep);
    let mut key = B::new().none();
    for _ in 0..5 {
        key = key.tuple(1);
    }
    let b = B::new().dict().raw(&key.0).none().setitem().stop();
    assert_eq!(fail_with(&b.0, &limits).kind, too_deep);
    // Frozensets in frozensets.
    let mut b = B::new().none();
    for _ in 0..6 {
        b = b.i4(FROZENSET, 1);
    }
    assert_eq!(fail_with(&b.stop().0, &limits).kind, too_deep);
    // The default allows its max_depth levels and refuses one more; TIGHT allows 32.
    let max = Limits::DEFAULT.max_depth;
    ok(&nested_lists(max as usize).0);
    assert_eq!(
        fail(&nested_lists(max as usize + 1).0).kind,
        K::TooDeep { max }
    );
    ok_with(&nested_lists(32).0, &Limits::TIGHT);
    assert_eq!(
        fail_with(&nested_lists(33).0, &Limits::TIGHT).kind,
        K::TooDeep { max: 32 }
    );
}

fn expect_with(body: &[u8], limits: &Limits, kind: K, offset: usize, opcode: u8) {
    assert_eq!(
        fail_with(body, limits),
        DecodeError::new(kind, offset, Some(opcode))
    );
}

#[test]
fn too_many_items_and_too_little_storage() {
    let limits = Limits {
        max_items: 3,
        ..Limits::DEFAULT
    };
    let b = B::new().none().none().none().tuple(3).stop();
    expect_with(&b.0, &limits, K::TooManyItems { max: 3 }, 3, BUILDTUPLE);
    ok_with(&B::new().none().none().tuple(2).stop().0, &limits);
    // Fixed storage too small: the error names a node count that is enough.
    let b = B::new().none().none().none().tuple(3).stop();
    let mut two = [Node::EMPTY; 2];
    let e = decode::decode_internal(&b.0, &mut two, &Limits::DEFAULT).unwrap_err();
    assert_eq!(
        e.kind,
        K::StorageFull {
            capacity: 2,
            needed: 4
        }
    );
    let mut four = [Node::EMPTY; 4];
    decode::decode_internal(&b.0, &mut four, &Limits::DEFAULT).unwrap();
}

/// A `(key, value)` dict body.
fn dict_of(entries: &[(&B, &B)]) -> B {
    let mut b = B::new().dict();
    for (k, v) in entries {
        b = b.raw(&k.0).raw(&v.0).setitem();
    }
    b.stop()
}

fn set_of(code: u8, members: &[&B]) -> B {
    let mut b = B::new();
    for m in members {
        b = b.raw(&m.0);
    }
    b.i4(code, members.len() as i32).stop()
}

#[test]
fn equal_dict_keys_first_key_last_value() {
    let one = B::new().int(1);
    let one_f = B::new().float(1.0);
    let true_ = B::new().op(TRUE);
    let (a, b, c) = (B::new().str("a"), B::new().str("b"), B::new().str("c"));
    let s = |t: &str| Value::Str(t.into());

    // 1, 1.0 and True are one key: the first key object stays, the last value wins.
    let input = dict_of(&[(&one, &a), (&one_f, &b), (&true_, &c)]);
    let mut nodes = Vec::new();
    let v = decode::decode_internal(&input.0, &mut nodes, &Limits::DEFAULT).unwrap();
    let ValueRef::Dict(map) = v else {
        panic!("not a dict")
    };
    assert_eq!(
        map.len(),
        3,
        "the borrowed view shows every entry as it came"
    );
    assert_eq!(ok(&input.0), Value::Dict(vec![(Value::int(1), s("c"))]));
    let input = dict_of(&[(&true_, &a), (&one, &b)]);
    assert_eq!(ok(&input.0), Value::Dict(vec![(Value::Bool(true), s("b"))]));

    // 0, -0.0 and False.
    let input = dict_of(&[
        (&B::new().float(-0.0), &a),
        (&B::new().op(FALSE), &b),
        (&B::new().int(0), &c),
    ]);
    match ok(&input.0) {
        Value::Dict(d) => {
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].0.type_name(), "float");
            assert_eq!(d[0].1, s("c"));
        }
        other => panic!("{other:?}"),
    }

    // NaN equals nothing: two NaN keys are two entries.
    let nan = B::new().float(f64::NAN);
    match ok(&dict_of(&[(&nan, &a), (&nan, &b)]).0) {
        Value::Dict(d) => assert_eq!(d.len(), 2),
        other => panic!("{other:?}"),
    }

    // Text equals text whatever its opcode; bytes never equal text.
    let uni = B::new().blob(UNICODE, b"a");
    let input = dict_of(&[(&a, &one), (&uni, &true_)]);
    assert_eq!(ok(&input.0), Value::Dict(vec![(s("a"), Value::Bool(true))]));
    let bytes = B::new().blob(BYTES, b"a");
    let py2 = B::new().blob(PY2STRING, b"a");
    match ok(&dict_of(&[(&a, &one), (&bytes, &one)]).0) {
        Value::Dict(d) => assert_eq!(d.len(), 2),
        other => panic!("{other:?}"),
    }
    // Under loads() a Python 2 str loads as bytes: equal to bytes, not to text.
    assert_eq!(
        ok(&dict_of(&[(&bytes, &a), (&py2, &b)]).0),
        Value::Dict(vec![(Value::Bytes(b"a".to_vec()), s("b"))])
    );
    match ok(&dict_of(&[(&py2, &a), (&uni, &b)]).0) {
        Value::Dict(d) => assert_eq!(d.len(), 2),
        other => panic!("{other:?}"),
    }
    // Under the gateway config a Python 2 str is latin-1 text.
    let e9 = B::new().blob(PY2STRING, b"\xe9");
    let e9u = B::new().blob(UNICODE, "\u{e9}".as_bytes());
    let input = dict_of(&[(&e9, &a), (&e9u, &b)]);
    let v = decode::decode_internal(&input.0, &mut nodes, &Limits::DEFAULT).unwrap();
    assert_eq!(
        Value::from_ref(&v, StrConfig::GATEWAY),
        Value::Dict(vec![(Value::Py2Str(vec![0xe9]), s("b"))])
    );
    match Value::from_ref(&v, StrConfig::LOADS) {
        Value::Dict(d) => assert_eq!(d.len(), 2),
        other => panic!("{other:?}"),
    }

    // A big int and the float of the same value; LONG and INT; complex(1, 0) and 1;
    // (1,) and (1.0,).
    let big = B::new().blob(LONGINT, b"9223372036854775808");
    let big_f = B::new().float(9_223_372_036_854_775_808.0);
    assert_eq!(
        ok(&dict_of(&[(&big, &a), (&big_f, &b)]).0),
        Value::Dict(vec![(
            Value::Int(Int::parse("9223372036854775808").unwrap()),
            s("b")
        )])
    );
    let long1 = B::new().i4(LONG, 1);
    assert_eq!(
        ok(&dict_of(&[(&long1, &a), (&one, &b)]).0),
        Value::Dict(vec![(Value::Long(Int::Small(1)), s("b"))])
    );
    let cpx = B::new()
        .op(COMPLEX)
        .raw(&1f64.to_bits().to_be_bytes())
        .raw(&0f64.to_bits().to_be_bytes());
    assert_eq!(
        ok(&dict_of(&[(&cpx, &a), (&one, &b)]).0),
        Value::Dict(vec![(Value::Complex(1.0, 0.0), s("b"))])
    );
    let t1 = B::new().int(1).tuple(1);
    let t1f = B::new().float(1.0).tuple(1);
    assert_eq!(
        ok(&dict_of(&[(&t1, &a), (&t1f, &b)]).0),
        Value::Dict(vec![(Value::Tuple(vec![Value::int(1)]), s("b"))])
    );
}

#[test]
fn equal_set_members_first_stays() {
    let one = B::new().int(1);
    let one_f = B::new().float(1.0);
    let true_ = B::new().op(TRUE);
    for code in [SET, FROZENSET] {
        let wrap = |items: Vec<Value>| {
            if code == SET {
                Value::Set(items)
            } else {
                Value::FrozenSet(items)
            }
        };
        let input = set_of(code, &[&one, &one_f, &true_]);
        let mut nodes = Vec::new();
        let v = decode::decode_internal(&input.0, &mut nodes, &Limits::DEFAULT).unwrap();
        match v {
            ValueRef::Set(items) | ValueRef::FrozenSet(items) => assert_eq!(items.len(), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(ok(&input.0), wrap(vec![Value::int(1)]));
        assert_eq!(
            ok(&set_of(code, &[&true_, &one]).0),
            wrap(vec![Value::Bool(true)])
        );
        // NaN: two members.
        let nan = B::new().float(f64::NAN);
        match ok(&set_of(code, &[&nan, &nan]).0) {
            Value::Set(m) | Value::FrozenSet(m) => assert_eq!(m.len(), 2),
            other => panic!("{other:?}"),
        }
        // Text kinds: one member, the first.
        let uni = B::new().blob(UNICODE, b"x");
        let py3 = B::new().str("x");
        assert_eq!(
            ok(&set_of(code, &[&uni, &py3]).0),
            wrap(vec![Value::Unicode("x".into())])
        );
        // Bytes and text: two.
        let bytes = B::new().blob(BYTES, b"x");
        match ok(&set_of(code, &[&bytes, &py3]).0) {
            Value::Set(m) | Value::FrozenSet(m) => assert_eq!(m.len(), 2),
            other => panic!("{other:?}"),
        }
        // Equal frozensets inside a set: {frozenset({1}), frozenset({True})}.
        let fs1 = B::new().int(1).i4(FROZENSET, 1);
        let fst = B::new().op(TRUE).i4(FROZENSET, 1);
        assert_eq!(
            ok(&set_of(code, &[&fs1, &fst]).0),
            wrap(vec![Value::FrozenSet(vec![Value::int(1)])])
        );
    }
}

#[test]
fn trailing_bytes_after_stop() {
    let mut nodes: Vec<Node> = Vec::new();
    let input = b"LQL";
    assert_eq!(
        decode::decode_internal(input, &mut nodes, &Limits::DEFAULT).unwrap_err(),
        DecodeError::new(K::TrailingBytes(1), 2, None)
    );
    assert_eq!(
        Value::decode_internal(input, &Limits::DEFAULT).unwrap_err(),
        DecodeError::new(K::TrailingBytes(1), 2, None)
    );
    let (v, rest) = decode::take_internal(input, &mut nodes, &Limits::DEFAULT).unwrap();
    assert!(matches!(v, ValueRef::None));
    assert_eq!(rest, b"L");

    let input = b"\x02F\x00\x00\x00\x07Qxy";
    assert_eq!(
        decode::decode_dumps(input, &mut nodes, &Limits::DEFAULT).unwrap_err(),
        DecodeError::new(K::TrailingBytes(2), 7, None)
    );
    assert_eq!(
        Value::decode_dumps(input, &Limits::DEFAULT).unwrap_err(),
        DecodeError::new(K::TrailingBytes(2), 7, None)
    );
    let (version, v, rest) = decode::take_dumps(input, &mut nodes, &Limits::DEFAULT).unwrap();
    assert_eq!(
        (version, v.as_i64(), rest),
        (Version::V2, Some(7), &b"xy"[..])
    );

    // A stream of values, taken one after another.
    let values = [
        Value::int(1),
        Value::from("two"),
        Value::List(vec![Value::None]),
    ];
    let mut stream = Vec::new();
    for v in &values {
        stream.extend(encode::to_vec(v, Envelope::Internal).unwrap());
    }
    let mut rest = &stream[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let (v, r) = decode::take_internal(rest, &mut nodes, &Limits::DEFAULT).unwrap();
        got.push(Value::from_ref(&v, StrConfig::LOADS));
        rest = r;
    }
    assert_eq!(got, values);
}

// ---------------------------------------------------------------------------------------
// The NEWLIST bomb.

#[test]
fn newlist_bomb_fails_at_once_without_allocating() {
    // 9 bytes asking for 2^31 - 1 slots (16 GiB in the reference), then a few more.
    let input = b"K\x7f\xff\xff\xffLLLLPQ";
    let mut nodes = [Node::EMPTY; 4]; // a fixed slice: no allocator involved
    let started = Instant::now();
    let e = decode::decode_internal(input, &mut nodes, &Limits::DEFAULT).unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        e,
        DecodeError::new(
            K::ListTooLong {
                count: i32::MAX as usize,
                max: 0
            },
            0,
            Some(NEWLIST)
        )
    );
    assert!(took < Duration::from_millis(10), "took {took:?}");

    // The same through the growable and owned paths: quick, and the Vec stays small.
    let started = Instant::now();
    let mut vec: Vec<Node> = Vec::new();
    let e2 = decode::decode_internal(input, &mut vec, &Limits::DEFAULT).unwrap_err();
    assert_eq!(e2, e);
    assert!(vec.capacity() < 64, "reserved {} nodes", vec.capacity());
    assert_eq!(
        Value::decode_internal(input, &Limits::DEFAULT).unwrap_err(),
        e
    );
    let dumps = with_version(0x02, input);
    assert_eq!(
        Value::decode_dumps(&dumps, &Limits::DEFAULT)
            .unwrap_err()
            .kind,
        e.kind
    );
    assert!(started.elapsed() < Duration::from_millis(10));

    // A measured case: the reference spent 20 s and gigabytes on a 139-byte list whose
    // count a corrupted byte turned into 939,524,100.
    let list: Vec<Value> = (0..12).map(Value::int).collect();
    let mut bytes = encode::to_vec(&Value::List(list), Envelope::Dumps(Version::V2)).unwrap();
    assert_eq!(bytes.len(), 139);
    bytes[2] = 0x38; // count 12 becomes 0x3800000c
    let started = Instant::now();
    let mut nodes = [Node::EMPTY; 4];
    let e = decode::decode_dumps(&bytes, &mut nodes, &Limits::DEFAULT).unwrap_err();
    assert_eq!(
        e.kind,
        K::ListTooLong {
            count: 939_524_108,
            max: (139 - 6) / 7
        }
    );
    assert!(started.elapsed() < Duration::from_millis(10));
}

// ---------------------------------------------------------------------------------------
// No input makes any entry point panic.

/// Runs `input` through every entry point with `limits`, checking that they agree.
/// Returns whether the internal-envelope decode succeeded.
fn exercise(input: &[u8], limits: &Limits) -> bool {
    let _ = decode::node_bound(input);

    let mut vec: Vec<Node> = Vec::new();
    let internal = decode::decode_internal(input, &mut vec, limits).map(|v| {
        let out = encode::to_vec(&v, Envelope::Internal).expect("re-encode a decoded value");
        (out, Value::from_ref(&v, StrConfig::LOADS))
    });
    if let Err(e) = &internal {
        assert!(
            e.offset.is_some_and(|o| o <= input.len()),
            "{e:?} beyond {}",
            input.len()
        );
    }
    let owned = Value::decode_internal(input, limits);
    match (&owned, &internal) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "owned and borrowed fail differently"),
        _ => panic!("owned and borrowed disagree: {owned:?}"),
    }
    if let (Ok(o), Ok((_, o2))) = (&owned, &internal) {
        assert_eq!(format!("{o:?}"), format!("{o2:?}"));
        encode::to_vec(o, Envelope::Internal).expect("re-encode the owned value");
    }
    if let Ok((out, _)) = &internal {
        // Every accepted input re-encodes to exactly its bytes.
        assert_eq!(out.as_slice(), input, "re-encode differs from the input");
        // What we write from it decodes, and writes the same again.
        let mut vec2: Vec<Node> = Vec::new();
        let again = decode::decode_internal(out, &mut vec2, limits)
            .map(|v| encode::to_vec(&v, Envelope::Internal).unwrap());
        assert_eq!(again.as_ref(), Ok(out));
        // node_bound is enough storage.
        let need = decode::node_bound(input).expect("node_bound of a decodable input");
        let mut fixed = vec![Node::EMPTY; need];
        decode::decode_internal(input, fixed.as_mut_slice(), limits).expect("node_bound nodes");
    }

    // Small fixed storage: the same outcome, or too little storage.
    let mut small = [Node::EMPTY; 8];
    match (
        decode::decode_internal(input, &mut small, limits),
        &internal,
    ) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) => assert!(matches!(e.kind, K::StorageFull { .. }), "{e:?}"),
        (Ok(_), Err(e)) => panic!("fixed storage accepted what Vec refused: {e:?}"),
    }
    let mut hv: heapless::Vec<Node, 16> = heapless::Vec::new();
    match (decode::decode_internal(input, &mut hv, limits), &internal) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) => assert!(matches!(e.kind, K::StorageFull { .. }), "{e:?}"),
        (Ok(_), Err(e)) => panic!("heapless storage accepted what Vec refused: {e:?}"),
    }

    // take_* agrees with decode_*.
    let taken = decode::take_internal(input, &mut vec, limits).map(|(_, rest)| rest.len());
    match &internal {
        Ok(_) => assert_eq!(taken, Ok(0)),
        Err(DecodeError {
            kind: K::TrailingBytes(n),
            ..
        }) => assert_eq!(taken, Ok(*n)),
        Err(e) => assert_eq!(taken.as_ref().unwrap_err(), e),
    }

    // The dumps envelope.
    let dumps = decode::decode_dumps(input, &mut vec, limits)
        .map(|(ver, v)| encode::to_vec(&v, Envelope::Dumps(ver)).expect("re-encode dumps"));
    let taken = decode::take_dumps(input, &mut vec, limits).map(|(_, _, rest)| rest.len());
    match &dumps {
        Ok(_) => assert_eq!(taken, Ok(0)),
        Err(DecodeError {
            kind: K::TrailingBytes(n),
            ..
        }) => assert_eq!(taken, Ok(*n)),
        Err(e) => assert_eq!(taken.as_ref().unwrap_err(), e),
    }
    assert_eq!(
        Value::decode_dumps(input, limits).is_ok(),
        dumps.is_ok(),
        "owned and borrowed dumps disagree"
    );
    let mut small = [Node::EMPTY; 8];
    if let (Ok(_), Err(e)) = (decode::decode_dumps(input, &mut small, limits), &dumps) {
        panic!("fixed storage accepted dumps that Vec refused: {e:?}");
    }
    internal.is_ok()
}

fn exercise_all(input: &[u8]) {
    let tight = exercise(input, &Limits::TIGHT);
    let default = exercise(input, &Limits::DEFAULT);
    assert!(default || !tight, "TIGHT accepted what DEFAULT refused");
}

/// Valid encodings to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let values = vec![
        Value::None,
        Value::List(vec![Value::int(1), Value::from("two"), Value::Float(3.5)]),
        Value::Dict(vec![
            (Value::from("k"), Value::List(vec![Value::None; 3])),
            (
                Value::Tuple(vec![Value::int(1), Value::Bytes(b"b".to_vec())]),
                Value::Set(vec![Value::FrozenSet(vec![Value::int(2)])]),
            ),
        ]),
        Value::Tuple(vec![
            Value::Int(Int::parse("123456789012345678901234567890").unwrap()),
            Value::Long(Int::Small(-4)),
            Value::Complex(1.0, -2.0),
            Value::Unicode("\u{1F600}".into()),
            Value::Py2Str(b"\xff".to_vec()),
            Value::Channel(3),
            Value::Bool(false),
        ]),
        Value::List(vec![Value::List(vec![Value::List(vec![Value::Dict(
            vec![],
        )])])]),
        // Shapes the decoders take on their fast paths: flat list items and dict entries.
        Value::List(vec![
            Value::Tuple(vec![Value::int(1), Value::from("a"), Value::Float(0.5)]),
            Value::Set(vec![Value::int(2), Value::Float(2.5)]),
            Value::FrozenSet(vec![Value::None]),
            Value::Int(Int::parse("123456789012345678901234567890").unwrap()),
            Value::Bytes(b"xy".to_vec()),
        ]),
        Value::Dict(vec![
            (
                Value::from("k"),
                Value::Tuple(vec![Value::Bool(true), Value::None]),
            ),
            (Value::int(7), Value::Unicode("u".into())),
            (Value::Float(1.5), Value::Set(vec![Value::int(1)])),
        ]),
        Value::Tuple(vec![
            Value::Dict(vec![(Value::int(1), Value::int(2))]),
            Value::int(3),
            Value::Dict(vec![(Value::int(4), Value::Tuple(vec![]))]),
        ]),
    ];
    let mut out = Vec::new();
    for v in &values {
        out.push(encode::to_vec(v, Envelope::Internal).unwrap());
        out.push(encode::to_vec(v, Envelope::Dumps(Version::V2)).unwrap());
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// Copies a range of the input to another place (repeats structure).
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        any::<u8>(),
        (0x40u8..=0x54),
        Just(0x00u8),
        Just(0x7fu8),
        Just(0xffu8),
        Just(0x80u8),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
    ]
}

fn apply(input: &mut Vec<u8>, m: &Mutation) {
    let len = input.len();
    if len == 0 {
        if let Mutation::Insert(_, b) = m {
            input.push(*b);
        }
        return;
    }
    match *m {
        Mutation::Set(i, b) => input[i % len] = b,
        Mutation::Insert(i, b) => input.insert(i % (len + 1), b),
        Mutation::Remove(i) => {
            input.remove(i % len);
        }
        Mutation::Truncate(i) => input.truncate(i % len),
        Mutation::Splice(a, b, at) => {
            let (a, b) = (a % len, b % len);
            let (lo, hi) = (a.min(b), a.max(b).min(a.min(b) + 32));
            let piece: Vec<u8> = input[lo..hi].to_vec();
            let at = at % (len + 1);
            input.splice(at..at, piece);
        }
    }
}

/// Bytes biased towards opcodes and small or extreme int4 operands.
fn opcode_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        (0x40u8..=0x54).prop_map(|b| vec![b]),
        (0u8..4).prop_map(|n| vec![0, 0, 0, n]),
        Just(vec![0xff, 0xff, 0xff, 0xff]),
        Just(vec![0x7f, 0xff, 0xff, 0xff]),
        Just(vec![0x80, 0, 0, 0]),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        exercise_all(&input);
        let mut with_v2 = vec![0x02];
        with_v2.extend_from_slice(&input);
        exercise_all(&with_v2);
    }

    #[test]
    fn opcode_soup_never_panics(input in opcode_soup()) {
        exercise_all(&input);
        let mut with_v1 = vec![0x01];
        with_v1.extend_from_slice(&input);
        exercise_all(&with_v1);
    }

    #[test]
    fn mutated_encodings_never_panic(
        seed in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        let mut input = seed.get(&seeds).clone();
        for m in &mutations {
            apply(&mut input, m);
        }
        exercise_all(&input);
    }
}

#[test]
fn seeds_decode() {
    for s in seeds() {
        let internal = exercise(&s, &Limits::DEFAULT);
        let dumps = Value::decode_dumps(&s, &Limits::DEFAULT).is_ok();
        assert!(internal || dumps, "{}", hex(&s));
    }
}
