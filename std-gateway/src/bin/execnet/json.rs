//! Values as JSON, for `execnet exec --json` and `execnet decode --json`, serialized
//! straight into the output (no JSON tree in memory).
//!
//! The mapping: None → `null`; bools; ints → numbers when they fit `i64`, else decimal
//! strings; finite floats → numbers, NaN and infinities → the strings `"nan"`, `"inf"`,
//! `"-inf"`; complex → `[real, imag]`; str (every kind) → string (a Python 2 `str` as
//! latin-1); bytes → array of byte values; list, tuple, set, frozenset → array; dict →
//! object in the order received when every key is a string and no two print the same,
//! else an array of `[key, value]` pairs; channel → `{"channel": id}`.

use std::collections::HashSet;
use std::fmt;
use std::io::Write;

use execnet::core::{Int, Value};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};

/// Writes `v` as JSON into `out`.
pub fn write<W: Write + ?Sized>(out: &mut W, v: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &Json(v)).map_err(|e| match e.io_error_kind() {
        Some(kind) => std::io::Error::new(kind, e.to_string()),
        None => std::io::Error::other(e),
    })
}

struct Json<'v>(&'v Value);

/// A Python 2 `str` read as latin-1, written without building a `String`.
struct Latin1<'b>(&'b [u8]);

impl fmt::Display for Latin1<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        self.0.iter().try_for_each(|&c| f.write_char(char::from(c)))
    }
}

struct Float(f64);

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        if f.is_nan() {
            s.serialize_str("nan")
        } else if f.is_infinite() {
            s.serialize_str(if f > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(f)
        }
    }
}

/// A dict key as JSON object key, when it is text.
enum Key<'v> {
    Text(&'v str),
    Latin1(&'v [u8]),
}

impl Key<'_> {
    fn of(k: &Value) -> Option<Key<'_>> {
        match k {
            Value::Str(s) | Value::Unicode(s) => Some(Key::Text(s)),
            Value::Py2Str(b) => Some(Key::Latin1(b)),
            _ => None,
        }
    }
}

impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Key::Text(t) => s.serialize_str(t),
            Key::Latin1(b) => s.collect_str(&Latin1(b)),
        }
    }
}

/// Whether every key is text and no two print the same (`'a'` and `u'a'` from Python 2
/// are distinct keys there but one JSON name).
fn object_keys(entries: &[(Value, Value)]) -> bool {
    let mut seen: HashSet<std::borrow::Cow<'_, str>> = HashSet::with_capacity(entries.len());
    entries.iter().all(|(k, _)| match Key::of(k) {
        Some(Key::Text(t)) => seen.insert(t.into()),
        Some(Key::Latin1(b)) => seen.insert(b.iter().map(|&c| char::from(c)).collect()),
        None => false,
    })
}

struct Pair<'v>(&'v Value, &'v Value);

impl Serialize for Pair<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Json(self.0))?;
        t.serialize_element(&Json(self.1))?;
        t.end()
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::None => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(Int::Small(i)) | Value::Long(Int::Small(i)) => s.serialize_i64(*i),
            Value::Int(Int::Big(t)) | Value::Long(Int::Big(t)) => s.collect_str(t),
            Value::Float(f) => Float(*f).serialize(s),
            Value::Complex(r, i) => (Float(*r), Float(*i)).serialize(s),
            Value::Str(t) | Value::Unicode(t) => s.serialize_str(t),
            Value::Py2Str(b) => s.collect_str(&Latin1(b)),
            Value::Bytes(b) => {
                let mut seq = s.serialize_seq(Some(b.len()))?;
                for byte in b {
                    seq.serialize_element(byte)?;
                }
                seq.end()
            }
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Json(item))?;
                }
                seq.end()
            }
            Value::Dict(entries) if object_keys(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    if let Some(key) = Key::of(k) {
                        map.serialize_entry(&key, &Json(v))?;
                    }
                }
                map.end()
            }
            Value::Dict(entries) => {
                let mut seq = s.serialize_seq(Some(entries.len()))?;
                for (k, v) in entries {
                    seq.serialize_element(&Pair(k, v))?;
                }
                seq.end()
            }
            Value::Channel(id) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("channel", id)?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Value) -> String {
        let mut out = Vec::new();
        write(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_mapping() {
        let v = Value::Dict(vec![
            (Value::from("b"), Value::Float(f64::NAN)),
            (Value::from("a"), Value::Bytes(vec![0, 255])),
            (
                Value::Py2Str(vec![0xe9]),
                Value::Tuple(vec![Value::Complex(1.0, f64::NEG_INFINITY), Value::None]),
            ),
            (
                Value::from("big"),
                Value::Int(Int::parse("123456789012345678901234567890").unwrap()),
            ),
            (Value::from("ch"), Value::Channel(3)),
        ]);
        assert_eq!(
            json(&v),
            r#"{"b":"nan","a":[0,255],"é":[[1.0,"-inf"],null],"big":"123456789012345678901234567890","ch":{"channel":3}}"#
        );
        let pairs = Value::Dict(vec![(Value::int(1), Value::Bool(true))]);
        assert_eq!(json(&pairs), "[[1,true]]");
        let clash = Value::Dict(vec![
            (Value::Py2Str(b"a".to_vec()), Value::int(1)),
            (Value::Unicode("a".into()), Value::int(2)),
        ]);
        assert_eq!(json(&clash), r#"[["a",1],["a",2]]"#);
    }
}
