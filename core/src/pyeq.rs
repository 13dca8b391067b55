//! Python's equality between dict keys and set members, as a Python 3 reader sees them,
//! used to merge equal keys the way `dict` and `set` do.
//!
//! Python's rules: `1 == 1.0 == True`, `0 == -0.0 == False`, an int equals a float only
//! when the float is exactly that integer, `complex(x, 0) == x`, text equals text
//! whatever its opcode, bytes never equal text, and NaN equals nothing. Which strings
//! are text depends on the string config (a `PY2STRING` is latin-1 text only with
//! `py2str_as_py3str`).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::owned::{Int, Value};
use crate::strconfig::StrConfig;

/// A number reduced to the form equality works on.
enum Num<'v> {
    Small(i64),
    Big(&'v str),
    /// A float that is not an integer (or NaN / infinite).
    Float(f64),
    /// A complex with a non-zero imaginary part.
    Complex(f64, f64),
}

fn num(v: &Value) -> Option<Num<'_>> {
    Some(match v {
        Value::Bool(b) => Num::Small(i64::from(*b)),
        Value::Int(Int::Small(i)) | Value::Long(Int::Small(i)) => Num::Small(*i),
        Value::Int(Int::Big(t)) | Value::Long(Int::Big(t)) => Num::Big(t),
        Value::Float(f) => float_num(*f),
        Value::Complex(r, i) if *i == 0.0 => float_num(*r),
        Value::Complex(r, i) => Num::Complex(*r, *i),
        _ => return None,
    })
}

fn float_num(f: f64) -> Num<'static> {
    let two63 = (1u64 << 63) as f64;
    if f.is_finite() && f == f.trunc() && (-two63..two63).contains(&f) {
        Num::Small(f as i64)
    } else {
        Num::Float(f)
    }
}

/// The exact decimal text of an integral float beyond the `i64` range.
fn big_float_text(f: f64) -> Option<String> {
    if !f.is_finite() || f != f.trunc() {
        return None;
    }
    let bits = f.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    if exp < 0 {
        return None;
    }
    // Little-endian base-10^9 limbs of mantissa * 2^exp.
    let mut limbs: Vec<u32> = vec![
        (mantissa % 1_000_000_000) as u32,
        ((mantissa / 1_000_000_000) % 1_000_000_000) as u32,
        (mantissa / 1_000_000_000_000_000_000) as u32,
    ];
    for _ in 0..exp {
        let mut carry = 0u64;
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * 2 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut s = String::new();
    if f < 0.0 {
        s.push('-');
    }
    let mut first = true;
    for limb in limbs.iter().rev() {
        if first {
            s.push_str(&alloc::format!("{limb}"));
            first = false;
        } else {
            s.push_str(&alloc::format!("{limb:09}"));
        }
    }
    Some(s)
}

fn num_eq(a: &Num<'_>, b: &Num<'_>) -> bool {
    match (a, b) {
        (Num::Small(x), Num::Small(y)) => x == y,
        (Num::Big(x), Num::Big(y)) => x == y,
        (Num::Float(x), Num::Float(y)) => x == y,
        (Num::Complex(a, b), Num::Complex(c, d)) => a == c && b == d,
        (Num::Big(t), Num::Float(f)) | (Num::Float(f), Num::Big(t)) => {
            big_float_text(*f).is_some_and(|s| s == **t)
        }
        _ => false,
    }
}

/// Text or bytes, as the reader sees a string value.
enum Chars<'v> {
    Text(&'v [u8], bool),
    Bytes(&'v [u8]),
}

fn chars(v: &Value, config: StrConfig) -> Option<Chars<'_>> {
    Some(match v {
        Value::Unicode(s) => Chars::Text(s.as_bytes(), false),
        Value::Str(s) if config.py3str_as_py2str => Chars::Bytes(s.as_bytes()),
        Value::Str(s) => Chars::Text(s.as_bytes(), false),
        Value::Py2Str(b) if config.py2str_as_py3str => Chars::Text(b, true),
        Value::Py2Str(b) | Value::Bytes(b) => Chars::Bytes(b),
        _ => return None,
    })
}

fn char_iter(bytes: &[u8], latin1: bool) -> impl Iterator<Item = char> + '_ {
    let utf8 = if latin1 {
        ""
    } else {
        core::str::from_utf8(bytes).unwrap_or("")
    };
    let l1 = if latin1 { bytes } else { &[] };
    utf8.chars().chain(l1.iter().map(|&b| char::from(b)))
}

/// Python's `a == b` between two hashable values.
pub(crate) fn py_eq(a: &Value, b: &Value, config: StrConfig) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_eq(&x, &y);
    }
    if let (Some(x), Some(y)) = (chars(a, config), chars(b, config)) {
        return match (x, y) {
            (Chars::Bytes(x), Chars::Bytes(y)) => x == y,
            (Chars::Text(x, lx), Chars::Text(y, ly)) => {
                if lx == ly {
                    x == y
                } else {
                    char_iter(x, lx).eq(char_iter(y, ly))
                }
            }
            _ => false,
        };
    }
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Channel(x), Value::Channel(y)) => x == y,
        (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q, config))
        }
        (Value::FrozenSet(x), Value::FrozenSet(y)) => {
            x.len() == y.len() && x.iter().all(|p| y.iter().any(|q| py_eq(p, q, config)))
        }
        _ => false,
    }
}

const FNV: u64 = 0x100_0000_01b3;

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(FNV).rotate_left(29)
}

fn hash_bytes(seed: u64, bytes: impl Iterator<Item = u64>) -> u64 {
    bytes.fold(seed, mix)
}

/// A hash consistent with [`py_eq`]: equal values hash equally.
pub(crate) fn py_hash(v: &Value, config: StrConfig) -> u64 {
    if let Some(n) = num(v) {
        return match n {
            Num::Small(i) => mix(1, i as u64),
            Num::Big(t) => hash_bytes(2, t.bytes().map(u64::from)),
            Num::Float(f) => match big_float_text(f) {
                Some(t) => hash_bytes(2, t.bytes().map(u64::from)),
                None => mix(3, f.to_bits()),
            },
            Num::Complex(r, i) => mix(mix(4, (r + 0.0).to_bits()), i.to_bits()),
        };
    }
    if let Some(c) = chars(v, config) {
        return match c {
            Chars::Bytes(b) => hash_bytes(5, b.iter().map(|&b| u64::from(b))),
            Chars::Text(b, latin1) => hash_bytes(6, char_iter(b, latin1).map(u64::from)),
        };
    }
    match v {
        Value::Channel(c) => mix(7, *c as u64),
        Value::Tuple(items) => items.iter().fold(8, |h, i| mix(h, py_hash(i, config))),
        Value::FrozenSet(items) => items.iter().fold(9u64, |h, i| {
            h.wrapping_add(py_hash(i, config).wrapping_mul(FNV))
        }),
        _ => 10,
    }
}

/// An open-addressing index over positions in an output vector.
struct Index {
    slots: Vec<u32>,
    mask: usize,
}

impl Index {
    fn new(n: usize) -> Index {
        let size = (n.max(4) * 2).next_power_of_two();
        Index {
            slots: vec![u32::MAX; size],
            mask: size - 1,
        }
    }

    /// Finds the position of a value equal to `key`, or records `new_pos` for it.
    fn find_or_insert(
        &mut self,
        hash: u64,
        new_pos: usize,
        same: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut at = (hash as usize) & self.mask;
        loop {
            let slot = self.slots.get_mut(at)?;
            if *slot == u32::MAX {
                *slot = new_pos as u32;
                return None;
            }
            let pos = *slot as usize;
            if same(pos) {
                return Some(pos);
            }
            at = (at + 1) & self.mask;
        }
    }
}

/// Dict entries with Python's rule for equal keys: the first key stays, the last value
/// wins, insertion order is that of first appearance.
pub(crate) fn dedup_entries(
    entries: impl ExactSizeIterator<Item = (Value, Value)>,
    config: StrConfig,
) -> Vec<(Value, Value)> {
    let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
    if entries.len() < 2 {
        out.extend(entries);
        return out;
    }
    let mut index = Index::new(entries.len());
    for (k, v) in entries {
        let h = py_hash(&k, config);
        let pos = out.len();
        let found = index.find_or_insert(h, pos, |p| {
            out.get(p).is_some_and(|(ek, _)| py_eq(ek, &k, config))
        });
        match found.and_then(|p| out.get_mut(p)) {
            Some(entry) => entry.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// Set members with Python's rule: the first of equal members stays.
pub(crate) fn dedup_members(
    members: impl ExactSizeIterator<Item = Value>,
    config: StrConfig,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(members.len());
    if members.len() < 2 {
        out.extend(members);
        return out;
    }
    let mut index = Index::new(members.len());
    for m in members {
        let h = py_hash(&m, config);
        let pos = out.len();
        let found =
            index.find_or_insert(h, pos, |p| out.get(p).is_some_and(|e| py_eq(e, &m, config)));
        if found.is_none() {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn big(s: &str) -> Value {
        Value::Int(Int::parse(s).unwrap())
    }

    #[test]
    fn numeric_equality_follows_python() {
        let c = StrConfig::LOADS;
        assert!(py_eq(&Value::Bool(true), &Value::Float(1.0), c));
        assert!(py_eq(&Value::int(0), &Value::Float(-0.0), c));
        assert!(py_eq(&Value::Complex(2.0, 0.0), &Value::int(2), c));
        assert!(!py_eq(&Value::Float(f64::NAN), &Value::Float(f64::NAN), c));
        assert!(py_eq(
            &big("36893488147419103232"),
            &Value::Float(2f64.powi(65)),
            c
        ));
        assert!(!py_eq(
            &big("36893488147419103233"),
            &Value::Float(2f64.powi(65)),
            c
        ));
        assert_eq!(
            py_hash(&big("36893488147419103232"), c),
            py_hash(&Value::Float(2f64.powi(65)), c)
        );
        assert_eq!(
            big_float_text(-1e20).as_deref(),
            Some("-100000000000000000000")
        );
    }

    #[test]
    fn strings_depend_on_config() {
        let py2 = Value::Py2Str(vec![0xe9]);
        let text = Value::Unicode("\u{e9}".into());
        assert!(!py_eq(&py2, &text, StrConfig::LOADS));
        assert!(py_eq(&py2, &text, StrConfig::GATEWAY));
        assert_eq!(
            py_hash(&py2, StrConfig::GATEWAY),
            py_hash(&text, StrConfig::GATEWAY)
        );
        assert!(!py_eq(
            &Value::Bytes(b"a".to_vec()),
            &Value::from("a"),
            StrConfig::LOADS
        ));
    }

    #[test]
    fn dict_rule_first_key_last_value() {
        let d = dedup_entries(
            vec![
                (Value::int(1), Value::from("a")),
                (Value::from("x"), Value::None),
                (Value::Float(1.0), Value::from("b")),
                (Value::Float(f64::NAN), Value::int(1)),
                (Value::Float(f64::NAN), Value::int(2)),
            ]
            .into_iter(),
            StrConfig::LOADS,
        );
        assert_eq!(d.len(), 4);
        assert_eq!(d[0], (Value::int(1), Value::from("b")));
        let s = dedup_members(
            vec![Value::Bool(true), Value::int(1), Value::int(2)].into_iter(),
            StrConfig::LOADS,
        );
        assert_eq!(s, vec![Value::Bool(true), Value::int(2)]);
    }
}
