//! Values as JSON, for `execnet exec --json` and `execnet decode --json`.
//!
//! The mapping: None → `null`; bools; ints → numbers when they fit `i64`, else decimal
//! strings; finite floats → numbers, NaN and infinities → the strings `"nan"`, `"inf"`,
//! `"-inf"`; complex → `[real, imag]`; str (every kind) → string (a Python 2 `str` as
//! latin-1); bytes → array of byte values; list, tuple, set, frozenset → array; dict →
//! object when every key is a string, else an array of `[key, value]` pairs; channel →
//! `{"channel": id}`.

use execnet_core::{Int, Value};
use serde_json::Value as J;

fn float(f: f64) -> J {
    if f.is_nan() {
        J::from("nan")
    } else if f.is_infinite() {
        J::from(if f > 0.0 { "inf" } else { "-inf" })
    } else {
        serde_json::Number::from_f64(f).map_or(J::Null, J::Number)
    }
}

/// Converts a value to JSON (see the module docs for the mapping).
pub fn to_json(v: &Value) -> J {
    match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(Int::Small(i)) | Value::Long(Int::Small(i)) => J::from(*i),
        Value::Int(Int::Big(t)) | Value::Long(Int::Big(t)) => J::from(t.to_string()),
        Value::Float(f) => float(*f),
        Value::Complex(r, i) => J::Array(vec![float(*r), float(*i)]),
        Value::Str(s) | Value::Unicode(s) => J::from(s.as_str()),
        Value::Py2Str(b) => J::from(b.iter().map(|&c| char::from(c)).collect::<String>()),
        Value::Bytes(b) => J::Array(b.iter().map(|&c| J::from(c)).collect()),
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            J::Array(items.iter().map(to_json).collect())
        }
        Value::Dict(entries) => {
            let text_key = |k: &Value| match k {
                Value::Str(s) | Value::Unicode(s) => Some(s.clone()),
                Value::Py2Str(b) => Some(b.iter().map(|&c| char::from(c)).collect()),
                _ => None,
            };
            if entries.iter().all(|(k, _)| text_key(k).is_some()) {
                J::Object(
                    entries
                        .iter()
                        .filter_map(|(k, v)| text_key(k).map(|k| (k, to_json(v))))
                        .collect(),
                )
            } else {
                J::Array(
                    entries
                        .iter()
                        .map(|(k, v)| J::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                )
            }
        }
        Value::Channel(id) => serde_json::json!({ "channel": id }),
    }
}
