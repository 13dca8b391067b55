//! String coercion: how each string opcode loads, given the `(py2str_as_py3str,
//! py3str_as_py2str)` pair.
//!
//! execnet keeps three string opcodes apart (`PY2STRING`, `PY3STRING`, `UNICODE`, plus
//! `BYTES`) and lets each side decide, per gateway and per channel, what a Python 2 `str`
//! or a Python 3 `str` becomes when it arrives. [`load_as`] states that decision as a
//! pure function, so that callers get exactly what `execnet.loads(data,
//! py2str_as_py3str=..., py3str_as_py2str=...)` gives on the reader they care about.

/// The `(py2str_as_py3str, py3str_as_py2str)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StrConfig {
    /// A Python 2 `str` (`PY2STRING`) loads on Python 3 as text decoded from latin-1
    /// rather than as bytes.
    pub py2str_as_py3str: bool,
    /// A Python 3 `str` (`PY3STRING`) loads as raw bytes (a Python 2 `str`) rather than as
    /// text.
    pub py3str_as_py2str: bool,
}

impl StrConfig {
    /// What `execnet.loads()` uses when called without arguments: `(False, False)`.
    pub const LOADS: StrConfig = StrConfig {
        py2str_as_py3str: false,
        py3str_as_py2str: false,
    };
    /// What gateways and channels use until reconfigured: `(True, False)`.
    pub const GATEWAY: StrConfig = StrConfig {
        py2str_as_py3str: true,
        py3str_as_py2str: false,
    };

    /// A pair from its two flags, in execnet's argument order.
    pub const fn new(py2str_as_py3str: bool, py3str_as_py2str: bool) -> Self {
        StrConfig {
            py2str_as_py3str,
            py3str_as_py2str,
        }
    }
}

/// Which wire opcode a string came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StrKind {
    /// `PY2STRING` (`M`): a Python 2 `str`, raw bytes.
    Py2Str,
    /// `PY3STRING` (`N`): a Python 3 `str`, UTF-8.
    Py3Str,
    /// `UNICODE` (`S`): Python 2 `unicode` (text on every reader), UTF-8.
    Unicode,
    /// `BYTES` (`A`).
    Bytes,
}

/// The reading side whose behaviour to reproduce; execnet changed its rules between
/// releases, so the reader matters as much as the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reader {
    /// execnet 2.x on Python 3 (and this crate's own default). Unlike 1.x, it honours
    /// `py3str_as_py2str` on Python 3 too: `PY3STRING` then loads as `bytes`.
    Execnet2Py3,
    /// execnet 1.x on Python 3: `PY3STRING` is always text there.
    Execnet1Py3,
    /// execnet 1.x on Python 2 (CPython 2.7, Jython): `PY2STRING` is always `str`.
    Py2,
}

/// How text is decoded when a string loads as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decoding {
    /// The bytes are UTF-8.
    Utf8,
    /// Each byte is one code point (latin-1), as execnet decodes a Python 2 `str`.
    Latin1,
}

/// What a string becomes on the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Loaded {
    /// Text: Python 3 `str`, Python 2 `unicode`.
    Text(Decoding),
    /// Raw bytes: Python 3 `bytes`, Python 2 `str`.
    Bytes,
}

impl Loaded {
    /// The Python type name the reader sees: `str`/`bytes` on Python 3,
    /// `unicode`/`str` on Python 2.
    pub const fn type_name(self, reader: Reader) -> &'static str {
        match (self, reader) {
            (Loaded::Text(_), Reader::Py2) => "unicode",
            (Loaded::Bytes, Reader::Py2) => "str",
            (Loaded::Text(_), _) => "str",
            (Loaded::Bytes, _) => "bytes",
        }
    }
}

/// What a string of `kind` loads as on `reader` under `config`.
///
/// ```
/// use execnet_core::strconfig::{load_as, Decoding, Loaded, Reader, StrConfig, StrKind};
/// // A Python 2 str read by a Python 3 gateway (default config) becomes latin-1 text...
/// assert_eq!(
///     load_as(StrKind::Py2Str, StrConfig::GATEWAY, Reader::Execnet2Py3),
///     Loaded::Text(Decoding::Latin1)
/// );
/// // ...and bytes under plain `loads()`.
/// assert_eq!(load_as(StrKind::Py2Str, StrConfig::LOADS, Reader::Execnet2Py3), Loaded::Bytes);
/// ```
pub const fn load_as(kind: StrKind, config: StrConfig, reader: Reader) -> Loaded {
    match kind {
        StrKind::Bytes => Loaded::Bytes,
        StrKind::Unicode => Loaded::Text(Decoding::Utf8),
        StrKind::Py2Str => match reader {
            Reader::Py2 => Loaded::Bytes,
            Reader::Execnet2Py3 | Reader::Execnet1Py3 => {
                if config.py2str_as_py3str {
                    Loaded::Text(Decoding::Latin1)
                } else {
                    Loaded::Bytes
                }
            }
        },
        StrKind::Py3Str => match reader {
            Reader::Execnet1Py3 => Loaded::Text(Decoding::Utf8),
            Reader::Execnet2Py3 | Reader::Py2 => {
                if config.py3str_as_py2str {
                    Loaded::Bytes
                } else {
                    Loaded::Text(Decoding::Utf8)
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_execnet() {
        let all = [
            StrConfig::new(false, false),
            StrConfig::new(true, false),
            StrConfig::new(false, true),
            StrConfig::new(true, true),
        ];
        for c in all {
            assert_eq!(load_as(StrKind::Bytes, c, Reader::Py2), Loaded::Bytes);
            assert_eq!(
                load_as(StrKind::Unicode, c, Reader::Execnet1Py3),
                Loaded::Text(Decoding::Utf8)
            );
            assert_eq!(load_as(StrKind::Py2Str, c, Reader::Py2), Loaded::Bytes);
            assert_eq!(
                load_as(StrKind::Py3Str, c, Reader::Execnet1Py3),
                Loaded::Text(Decoding::Utf8)
            );
            let py3 = load_as(StrKind::Py3Str, c, Reader::Execnet2Py3);
            assert_eq!(py3 == Loaded::Bytes, c.py3str_as_py2str);
            assert_eq!(load_as(StrKind::Py3Str, c, Reader::Py2), py3);
        }
        assert_eq!(Loaded::Bytes.type_name(Reader::Py2), "str");
        assert_eq!(
            Loaded::Text(Decoding::Utf8).type_name(Reader::Py2),
            "unicode"
        );
    }
}
