//! `repr()` of a loaded value, character for character as CPython prints it.

use execnet_core::strconfig::{load_as, Decoding, Loaded, Reader, StrConfig, StrKind};
use execnet_core::{Int, Value};

use super::printable::NON_PRINTABLE;

/// Which interpreter's `repr` to reproduce, and how strings load there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReprMode {
    /// CPython 3 with execnet 2.x, strings loaded under this config (`loads()` uses
    /// [`StrConfig::LOADS`]).
    Py3(StrConfig),
    /// CPython 2.7 with execnet 1.9 `loads()`: `str`, `u'...'`, `123L`.
    Py2,
}

/// The value as the interpreter of `mode` prints it. Sets print their members in the
/// order they came (Python's own order depends on its hash seed); a channel prints as
/// `<Channel id=N>`.
///
/// ```
/// use execnet::core::{StrConfig, Value};
/// use execnet::literal::{repr, ReprMode};
/// let v = Value::List(vec![Value::Float(1e16), Value::Str("it's".into()), Value::Tuple(vec![Value::int(1)])]);
/// assert_eq!(repr(&v, ReprMode::Py3(StrConfig::LOADS)), "[1e+16, \"it's\", (1,)]");
/// ```
pub fn repr(v: &Value, mode: ReprMode) -> String {
    let mut out = String::new();
    write(&mut out, v, mode);
    out
}

fn printable(c: char) -> bool {
    let cp = c as u32;
    NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// Python's quote choice: `'` unless the text holds `'` and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn text_repr(out: &mut String, chars: impl Iterator<Item = char> + Clone, prefix: &str, py2: bool) {
    let (s, d) = chars
        .clone()
        .fold((false, false), |(s, d), c| (s || c == '\'', d || c == '"'));
    let q = quote_for(s, d);
    out.push_str(prefix);
    out.push(q);
    for c in chars {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x7f => out.push(c),
            // Python 2 escapes every non-ASCII character of a unicode repr.
            c if !py2 && printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(q);
}

fn bytes_repr(out: &mut String, b: &[u8], prefix: &str) {
    let q = quote_for(b.contains(&b'\''), b.contains(&b'"'));
    out.push_str(prefix);
    out.push(q);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if char::from(c) == q => {
                out.push('\\');
                out.push(q);
            }
            0x20..=0x7e => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(q);
}

/// CPython's `float_repr_style = 'short'`: the shortest digits that round-trip, in
/// fixed notation for exponents -4 to 15 and scientific otherwise. `dot0` adds `.0`
/// to integral values (floats do, the parts of a complex do not).
pub(crate) fn float_repr(f: f64, dot0: bool) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits as d.ddde[-]x.
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            s.push_str("0.");
            s.push_str(&"0".repeat((-point) as usize));
            s.push_str(&digits);
        } else if (point as usize) >= digits.len() {
            s.push_str(&digits);
            s.push_str(&"0".repeat(point as usize - digits.len()));
            if dot0 {
                s.push_str(".0");
            }
        } else {
            let (a, b) = digits.split_at(point as usize);
            s.push_str(a);
            s.push('.');
            s.push_str(b);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        s.push_str(first);
        if !rest.is_empty() {
            s.push('.');
            s.push_str(rest);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    s
}

fn complex_repr(out: &mut String, re: f64, im: f64) {
    let signed = |f: f64| {
        let body = float_repr(f, false);
        // CPython shows no sign on NaN: `(1+nanj)` whatever the sign bit.
        if body.starts_with('-') {
            body
        } else {
            format!("+{body}")
        }
    };
    if re == 0.0 && re.is_sign_positive() {
        out.push_str(&float_repr(im, false));
        out.push('j');
    } else {
        out.push('(');
        out.push_str(&float_repr(re, false));
        out.push_str(&signed(im));
        out.push_str("j)");
    }
}

fn seq(out: &mut String, items: &[Value], mode: ReprMode) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(out, item, mode);
    }
}

fn str_kind(v: &Value) -> Option<(StrKind, &[u8])> {
    match v {
        Value::Str(s) => Some((StrKind::Py3Str, s.as_bytes())),
        Value::Unicode(s) => Some((StrKind::Unicode, s.as_bytes())),
        Value::Py2Str(b) => Some((StrKind::Py2Str, b)),
        Value::Bytes(b) => Some((StrKind::Bytes, b)),
        _ => None,
    }
}

fn write(out: &mut String, v: &Value, mode: ReprMode) {
    let py2 = mode == ReprMode::Py2;
    if let Some((kind, raw)) = str_kind(v) {
        let (config, reader) = match mode {
            ReprMode::Py3(c) => (c, Reader::Execnet2Py3),
            ReprMode::Py2 => (StrConfig::LOADS, Reader::Py2),
        };
        match load_as(kind, config, reader) {
            Loaded::Bytes => bytes_repr(out, raw, if py2 { "" } else { "b" }),
            Loaded::Text(Decoding::Latin1) => text_repr(
                out,
                raw.iter().map(|&b| char::from(b)),
                if py2 { "u" } else { "" },
                py2,
            ),
            Loaded::Text(Decoding::Utf8) => {
                let s = String::from_utf8_lossy(raw);
                text_repr(out, s.chars(), if py2 { "u" } else { "" }, py2);
            }
        }
        return;
    }
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => {
            out.push_str(&i.to_string());
            // Python 2 makes a long of any int beyond the machine word.
            if py2 && matches!(i, Int::Big(_)) {
                out.push('L');
            }
        }
        Value::Long(i) => {
            out.push_str(&i.to_string());
            if py2 {
                out.push('L');
            }
        }
        Value::Float(f) => out.push_str(&float_repr(*f, true)),
        Value::Complex(re, im) => complex_repr(out, *re, *im),
        Value::List(items) => {
            out.push('[');
            seq(out, items, mode);
            out.push(']');
        }
        Value::Tuple(items) => {
            out.push('(');
            seq(out, items, mode);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Value::Set(items) | Value::FrozenSet(items) => {
            let name = if matches!(v, Value::Set(_)) {
                "set"
            } else {
                "frozenset"
            };
            match (py2, items.is_empty(), name) {
                (true, _, _) => {
                    out.push_str(name);
                    out.push_str("([");
                    seq(out, items, mode);
                    out.push_str("])");
                }
                (false, true, _) => {
                    out.push_str(name);
                    out.push_str("()");
                }
                (false, false, "set") => {
                    out.push('{');
                    seq(out, items, mode);
                    out.push('}');
                }
                (false, false, _) => {
                    out.push_str("frozenset({");
                    seq(out, items, mode);
                    out.push_str("})");
                }
            }
        }
        Value::Dict(entries) => {
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(out, k, mode);
                out.push_str(": ");
                write(out, val, mode);
            }
            out.push('}');
        }
        Value::Channel(id) => out.push_str(&format!("<Channel id={id}>")),
        Value::Str(_) | Value::Unicode(_) | Value::Py2Str(_) | Value::Bytes(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py3(v: &Value) -> String {
        repr(v, ReprMode::Py3(StrConfig::LOADS))
    }

    #[test]
    fn floats_like_cpython() {
        for (f, s) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0.0"),
            (2.5e300, "2.5e+300"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_repr(f, true), s, "{f}");
        }
    }

    #[test]
    fn complex_like_cpython() {
        for ((re, im), s) in [
            ((1.0, 2.0), "(1+2j)"),
            ((-0.0, 1.0), "(-0+1j)"),
            ((0.0, -0.0), "-0j"),
            ((f64::NAN, f64::NAN), "(nan+nanj)"),
            ((1e16, 1e-5), "(1e+16+1e-05j)"),
            ((-0.0, -0.0), "(-0-0j)"),
            ((0.0, f64::INFINITY), "infj"),
            ((1.0, f64::NEG_INFINITY), "(1-infj)"),
        ] {
            assert_eq!(py3(&Value::Complex(re, im)), s);
        }
    }

    #[test]
    fn strings_and_containers() {
        assert_eq!(py3(&Value::Str("it's".into())), "\"it's\"");
        assert_eq!(
            py3(&Value::Str("a'\"\u{e9}\u{1F600}\u{200b}\n".into())),
            "'a\\'\"\u{e9}\u{1F600}\\u200b\\n'"
        );
        assert_eq!(
            py3(&Value::Bytes(b"\x00\xff'".to_vec())),
            "b\"\\x00\\xff'\""
        );
        assert_eq!(py3(&Value::Set(vec![])), "set()");
        assert_eq!(
            py3(&Value::FrozenSet(vec![Value::int(1)])),
            "frozenset({1})"
        );
        assert_eq!(
            repr(&Value::Set(vec![Value::int(1)]), ReprMode::Py2),
            "set([1])"
        );
        assert_eq!(
            repr(&Value::FrozenSet(vec![]), ReprMode::Py2),
            "frozenset([])"
        );
        assert_eq!(
            repr(&Value::Unicode("\u{e9}\u{1234}".into()), ReprMode::Py2),
            "u'\\xe9\\u1234'"
        );
        assert_eq!(
            repr(&Value::Py2Str(b"\xe9\x00\"".to_vec()), ReprMode::Py2),
            "'\\xe9\\x00\"'"
        );
        assert_eq!(repr(&Value::Long(Int::Small(5)), ReprMode::Py2), "5L");
        assert_eq!(py3(&Value::Tuple(vec![])), "()");
        assert_eq!(
            py3(&Value::Dict(vec![(Value::Str("k".into()), Value::None)])),
            "{'k': None}"
        );
        // PY2STRING under loads(): bytes; with py2str_as_py3str: latin-1 text.
        let p = Value::Py2Str(b"\xe9".to_vec());
        assert_eq!(py3(&p), "b'\\xe9'");
        assert_eq!(
            repr(&p, ReprMode::Py3(StrConfig::new(true, false))),
            "'\u{e9}'"
        );
    }
}
