//! The data model: a borrowed view of a decoded value, whose strings and bytes are slices
//! of the input.
//!
//! A decode writes [`Node`]s into storage the caller provides and hands back a
//! [`ValueRef`] that walks them. Nothing is copied: text, bytes and big-integer digits
//! stay in the input buffer. Under the `alloc` feature, [`Value`](crate::Value) is the
//! owned counterpart.
//!
//! The borrowed view shows a dict's entries and a set's members exactly as they came on
//! the wire, equal keys included (a reference writer never sends two equal keys, but
//! hostile bytes can). Python would keep one of them; the owned conversion applies that
//! rule, this view does not.

use core::fmt;

#[cfg(feature = "alloc")]
use crate::strconfig::Decoding;
use crate::strconfig::{load_as, Loaded, Reader, StrConfig, StrKind};

/// Which integer opcode family a value came with: Python 2 kept `int` and `long` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IntKind {
    /// `INT` / `LONGINT`: a plain `int`.
    Int,
    /// `LONG` / `LONGLONG`: a Python 2 `long`.
    Long,
}

/// A string as it came on the wire, with its opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PyStr<'a> {
    /// `PY2STRING`: raw bytes (a Python 2 `str`).
    Py2(&'a [u8]),
    /// `PY3STRING`: a Python 3 `str` (validated UTF-8).
    Py3(&'a str),
    /// `UNICODE`: Python 2 `unicode` (validated UTF-8).
    Unicode(&'a str),
}

impl<'a> PyStr<'a> {
    /// The opcode family.
    pub const fn kind(&self) -> StrKind {
        match self {
            PyStr::Py2(_) => StrKind::Py2Str,
            PyStr::Py3(_) => StrKind::Py3Str,
            PyStr::Unicode(_) => StrKind::Unicode,
        }
    }

    /// The raw payload bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        match self {
            PyStr::Py2(b) => b,
            PyStr::Py3(s) | PyStr::Unicode(s) => s.as_bytes(),
        }
    }

    /// The text, when it can be borrowed: always for `PY3STRING` and `UNICODE`, and for a
    /// `PY2STRING` that is pure ASCII (where latin-1 and UTF-8 agree).
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            PyStr::Py3(s) | PyStr::Unicode(s) => Some(s),
            PyStr::Py2(b) if b.is_ascii() => core::str::from_utf8(b).ok(),
            PyStr::Py2(_) => None,
        }
    }

    /// The characters, decoding a `PY2STRING` as latin-1 (what a Python 3 reader with
    /// `py2str_as_py3str` sees), without allocating.
    pub fn chars(&self) -> StrChars<'a> {
        match self {
            PyStr::Py2(b) => StrChars::Latin1(b.iter()),
            PyStr::Py3(s) | PyStr::Unicode(s) => StrChars::Utf8(s.chars()),
        }
    }

    /// What this string loads as on `reader` under `config`.
    pub const fn load_as(&self, config: StrConfig, reader: Reader) -> Loaded {
        load_as(self.kind(), config, reader)
    }

    /// The text as this crate's own reader (execnet 2.x rules) sees it under `config`,
    /// or `None` when it loads as bytes. Latin-1 text with non-ASCII bytes is converted.
    #[cfg(feature = "alloc")]
    pub fn load_text(&self, config: StrConfig) -> Option<alloc::borrow::Cow<'a, str>> {
        use alloc::borrow::Cow;
        match self.load_as(config, Reader::Execnet2Py3) {
            Loaded::Bytes => None,
            Loaded::Text(Decoding::Utf8) => self.as_str().map(Cow::Borrowed),
            Loaded::Text(Decoding::Latin1) => Some(match self.as_str() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(self.chars().collect()),
            }),
        }
    }
}

/// Characters of a [`PyStr`], decoding `PY2STRING` as latin-1.
#[derive(Clone, Debug)]
pub enum StrChars<'a> {
    /// UTF-8 text.
    Utf8(core::str::Chars<'a>),
    /// latin-1 bytes.
    Latin1(core::slice::Iter<'a, u8>),
}

impl Iterator for StrChars<'_> {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        match self {
            StrChars::Utf8(c) => c.next(),
            StrChars::Latin1(b) => b.next().map(|&b| char::from(b)),
        }
    }
}

/// The kind of a container node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ContainerKind {
    /// `NEWLIST` + `SETITEM`s.
    List,
    /// `BUILDTUPLE`.
    Tuple,
    /// `NEWDICT` + `SETITEM`s; children alternate key, value.
    Dict,
    /// `SET`.
    Set,
    /// `FROZENSET`.
    FrozenSet,
}

/// No node: the end of a sibling chain.
pub(crate) const NIL: u32 = u32::MAX;

/// What one node holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NodeKind<'a> {
    None,
    Bool(bool),
    Int(i32, IntKind),
    BigInt(&'a str, IntKind),
    Float(f64),
    Complex(f64, f64),
    Bytes(&'a [u8]),
    Str(PyStr<'a>),
    Channel(i32),
    /// `first` is the first child (or [`NIL`]); `len` counts items (dict: entries).
    Container {
        kind: ContainerKind,
        first: u32,
        len: u32,
        /// For a list under construction: the item count `NEWLIST` announced.
        cap: u32,
    },
}

/// One slot of decode storage. Allocate an array of [`Node::EMPTY`] (or use a
/// `heapless::Vec` / `Vec`) and pass it to a decoder; it holds the tree afterwards.
///
/// A node is 40 bytes on 64-bit targets; a decode needs at most one node per value-pushing
/// opcode of the input (see [`node_bound`](crate::decode::node_bound)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node<'a> {
    pub(crate) kind: NodeKind<'a>,
    /// In the tree: the next sibling. On the decode stack: the last child so far.
    pub(crate) link: u32,
    /// Height of the subtree (a scalar is 0) and, in the top bit, "unhashable".
    pub(crate) meta: u32,
}

pub(crate) const UNHASHABLE: u32 = 1 << 31;
/// On a list being decoded: its next index (`INT len`) has been read and the item is
/// expected next. The index is not kept as a node.
pub(crate) const INDEX_PENDING: u32 = 1 << 30;

impl Node<'_> {
    /// An unused slot.
    pub const EMPTY: Node<'static> = Node {
        kind: NodeKind::None,
        link: NIL,
        meta: 0,
    };

    pub(crate) const fn leaf(kind: NodeKind<'_>) -> Node<'_> {
        Node {
            kind,
            link: NIL,
            meta: 0,
        }
    }

    pub(crate) const fn height(&self) -> u32 {
        self.meta & !(UNHASHABLE | INDEX_PENDING)
    }

    pub(crate) const fn hashable(&self) -> bool {
        self.meta & UNHASHABLE == 0
    }
}

impl Default for Node<'_> {
    fn default() -> Self {
        Node::EMPTY
    }
}

/// A decoded value, borrowing strings from the input (`'a`) and structure from the node
/// storage (`'s`).
#[derive(Clone, Copy, Debug)]
pub enum ValueRef<'a, 's> {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int that came as `INT` or `LONG` (always within the signed 32-bit range).
    Int(i64, IntKind),
    /// An int that came as decimal text (`LONGINT` / `LONGLONG`): an optional sign and
    /// ASCII digits, exactly as on the wire.
    BigInt(&'a str, IntKind),
    /// A float, bit for bit (NaN payloads and -0.0 included).
    Float(f64),
    /// A complex number `(real, imag)`.
    Complex(f64, f64),
    /// `bytes`.
    Bytes(&'a [u8]),
    /// One of the three string kinds.
    Str(PyStr<'a>),
    /// A reference to channel `id` of the gateway.
    Channel(i32),
    /// A list.
    List(Seq<'a, 's>),
    /// A tuple.
    Tuple(Seq<'a, 's>),
    /// A set, members in wire order.
    Set(Seq<'a, 's>),
    /// A frozenset, members in wire order.
    FrozenSet(Seq<'a, 's>),
    /// A dict, entries in wire order.
    Dict(Map<'a, 's>),
}

impl<'a, 's> ValueRef<'a, 's> {
    pub(crate) fn from_node(nodes: &'s [Node<'a>], node: &Node<'a>) -> Self {
        match node.kind {
            NodeKind::None => ValueRef::None,
            NodeKind::Bool(b) => ValueRef::Bool(b),
            NodeKind::Int(i, k) => ValueRef::Int(i64::from(i), k),
            NodeKind::BigInt(t, k) => ValueRef::BigInt(t, k),
            NodeKind::Float(f) => ValueRef::Float(f),
            NodeKind::Complex(r, i) => ValueRef::Complex(r, i),
            NodeKind::Bytes(b) => ValueRef::Bytes(b),
            NodeKind::Str(s) => ValueRef::Str(s),
            NodeKind::Channel(c) => ValueRef::Channel(c),
            NodeKind::Container {
                kind, first, len, ..
            } => {
                let seq = Seq { nodes, first, len };
                match kind {
                    ContainerKind::List => ValueRef::List(seq),
                    ContainerKind::Tuple => ValueRef::Tuple(seq),
                    ContainerKind::Set => ValueRef::Set(seq),
                    ContainerKind::FrozenSet => ValueRef::FrozenSet(seq),
                    ContainerKind::Dict => ValueRef::Dict(Map { seq }),
                }
            }
        }
    }

    /// The Python type name (`"int"`, `"str"`, `"list"`, ...), as a Python 3 reader under
    /// the gateway default string config would name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::None => "NoneType",
            ValueRef::Bool(_) => "bool",
            ValueRef::Int(..) | ValueRef::BigInt(..) => "int",
            ValueRef::Float(_) => "float",
            ValueRef::Complex(..) => "complex",
            ValueRef::Bytes(_) => "bytes",
            ValueRef::Str(_) => "str",
            ValueRef::Channel(_) => "Channel",
            ValueRef::List(_) => "list",
            ValueRef::Tuple(_) => "tuple",
            ValueRef::Set(_) => "set",
            ValueRef::FrozenSet(_) => "frozenset",
            ValueRef::Dict(_) => "dict",
        }
    }

    /// The integer value if it is an int (or bool) that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ValueRef::Int(i, _) => Some(i),
            ValueRef::Bool(b) => Some(i64::from(b)),
            ValueRef::BigInt(t, _) => parse_i128(t).and_then(|v| i64::try_from(v).ok()),
            _ => None,
        }
    }

    /// The integer value if it is an int (or bool) that fits `i128`.
    pub fn as_i128(&self) -> Option<i128> {
        match *self {
            ValueRef::Int(i, _) => Some(i128::from(i)),
            ValueRef::Bool(b) => Some(i128::from(b)),
            ValueRef::BigInt(t, _) => parse_i128(t),
            _ => None,
        }
    }

    /// The text of a `PY3STRING` / `UNICODE` (or ASCII `PY2STRING`).
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => s.as_str(),
            _ => None,
        }
    }
}

/// Parses validated big-int text (`[+-]?[0-9]+`) if it fits `i128`.
pub(crate) fn parse_i128(text: &str) -> Option<i128> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let mut acc: i128 = 0;
    for d in digits.bytes() {
        let d = i128::from(d.checked_sub(b'0').filter(|d| *d < 10)?);
        acc = acc.checked_mul(10)?;
        acc = if neg {
            acc.checked_sub(d)?
        } else {
            acc.checked_add(d)?
        };
    }
    Some(acc)
}

/// The items of a list, tuple, set or frozenset (for a dict: keys and values
/// alternating; use [`Map`]).
#[derive(Clone, Copy)]
pub struct Seq<'a, 's> {
    nodes: &'s [Node<'a>],
    first: u32,
    len: u32,
}

impl<'a, 's> Seq<'a, 's> {
    /// Number of items.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no items.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items in order.
    pub fn iter(&self) -> SeqIter<'a, 's> {
        SeqIter {
            nodes: self.nodes,
            next: self.first,
            left: self.len,
        }
    }

    /// The item at `index` (walks the sibling chain: O(index)).
    pub fn get(&self, index: usize) -> Option<ValueRef<'a, 's>> {
        self.iter().nth(index)
    }
}

impl fmt::Debug for Seq<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, 's> IntoIterator for Seq<'a, 's> {
    type Item = ValueRef<'a, 's>;
    type IntoIter = SeqIter<'a, 's>;
    fn into_iter(self) -> SeqIter<'a, 's> {
        self.iter()
    }
}

/// Iterator over a [`Seq`].
#[derive(Clone)]
pub struct SeqIter<'a, 's> {
    nodes: &'s [Node<'a>],
    next: u32,
    left: u32,
}

impl<'a, 's> Iterator for SeqIter<'a, 's> {
    type Item = ValueRef<'a, 's>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let node = self.nodes.get(self.next as usize)?;
        self.left -= 1;
        self.next = node.link;
        Some(ValueRef::from_node(self.nodes, node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for SeqIter<'_, '_> {}

/// The entries of a dict, in wire order.
#[derive(Clone, Copy)]
pub struct Map<'a, 's> {
    seq: Seq<'a, 's>,
}

impl<'a, 's> Map<'a, 's> {
    /// Number of entries (equal keys counted separately; see the module docs).
    pub const fn len(&self) -> usize {
        self.seq.len()
    }

    /// Whether there are no entries.
    pub const fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    /// `(key, value)` pairs in wire order.
    pub fn iter(&self) -> MapIter<'a, 's> {
        MapIter {
            inner: SeqIter {
                nodes: self.seq.nodes,
                next: self.seq.first,
                left: self.seq.len.saturating_mul(2),
            },
        }
    }

    /// The value of the last entry whose key is the text `key` (of any string kind),
    /// which is the entry Python would keep.
    pub fn get_str(&self, key: &str) -> Option<ValueRef<'a, 's>> {
        let mut found = None;
        for (k, v) in self.iter() {
            if let ValueRef::Str(s) = k {
                if s.chars().eq(key.chars()) {
                    found = Some(v);
                }
            }
        }
        found
    }
}

impl fmt::Debug for Map<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, 's> IntoIterator for Map<'a, 's> {
    type Item = (ValueRef<'a, 's>, ValueRef<'a, 's>);
    type IntoIter = MapIter<'a, 's>;
    fn into_iter(self) -> MapIter<'a, 's> {
        self.iter()
    }
}

/// Iterator over a [`Map`].
#[derive(Clone)]
pub struct MapIter<'a, 's> {
    inner: SeqIter<'a, 's>,
}

impl<'a, 's> Iterator for MapIter<'a, 's> {
    type Item = (ValueRef<'a, 's>, ValueRef<'a, 's>);
    fn next(&mut self) -> Option<Self::Item> {
        let k = self.inner.next()?;
        let v = self.inner.next()?;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.inner.left as usize / 2;
        (n, Some(n))
    }
}

impl ExactSizeIterator for MapIter<'_, '_> {}
