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

/// The kind of a container.
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

/// One slot of decode storage: 16 bytes, holding offsets into the input rather than
/// borrows, so that one storage serves input after input (a `static` array on a device
/// that decodes every frame into the same place, a `Vec` reused by a server).
///
/// Allocate an array of [`Node::EMPTY`] (or use a `heapless::Vec` / `Vec`) and pass it to
/// a decoder; afterwards a prefix of it holds the decoded value as a flat tape: each
/// container lists its children in one contiguous run (a dict's as key, value, key, ...),
/// so a list item is found in O(1). A decode needs at most one node per value-pushing
/// opcode of the input (see [`node_bound`](crate::decode::node_bound)).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Node {
    /// Tag (bits 0-7), flags (bits 8-11), subtree height (bits 12-31).
    pub(crate) head: u32,
    /// Payload offset, a small int, float high bits, a container's first child, or (an
    /// open dict on the decode stack) the next open dict below it.
    pub(crate) a: u32,
    /// Payload length, float low bits, or a container's item (dict: entry) count.
    pub(crate) b: u32,
    /// Offset of the opcode that made the value.
    pub(crate) c: u32,
}

pub(crate) mod tag {
    pub const NONE: u8 = 0;
    pub const TRUE: u8 = 1;
    pub const FALSE: u8 = 2;
    pub const INT: u8 = 3;
    pub const LONG: u8 = 4;
    pub const BIG_INT: u8 = 5;
    pub const BIG_LONG: u8 = 6;
    pub const FLOAT: u8 = 7;
    pub const COMPLEX: u8 = 8;
    pub const BYTES: u8 = 9;
    pub const PY2: u8 = 10;
    pub const PY3: u8 = 11;
    pub const UNICODE: u8 = 12;
    pub const CHANNEL: u8 = 13;
    pub const LIST: u8 = 14;
    pub const TUPLE: u8 = 15;
    pub const DICT: u8 = 16;
    pub const SET: u8 = 17;
    pub const FROZENSET: u8 = 18;
}

/// A list, dict or set, or a tuple holding one: not a dict key or set member.
pub(crate) const UNHASHABLE: u32 = 1 << 8;
/// On a list being decoded: its next index (`INT len`) has been read and the item is
/// expected next. The index is not kept as a node.
pub(crate) const PENDING: u32 = 1 << 9;
/// During a move to the tape: the node is a dict entry, not a container member.
pub(crate) const CHILD: u32 = 1 << 10;
/// Heights fit 20 bits; deeper values are refused whatever the limit says.
pub(crate) const MAX_HEIGHT: u32 = (1 << 20) - 1;

impl Node {
    /// An unused slot.
    pub const EMPTY: Node = Node {
        head: 0,
        a: 0,
        b: 0,
        c: 0,
    };

    #[inline(always)]
    pub(crate) const fn new(tag: u8, a: u32, b: u32, c: u32) -> Node {
        Node {
            head: tag as u32,
            a,
            b,
            c,
        }
    }

    #[inline(always)]
    pub(crate) const fn tag(&self) -> u8 {
        self.head as u8
    }

    #[inline(always)]
    pub(crate) const fn height(&self) -> u32 {
        self.head >> 12
    }

    #[inline(always)]
    pub(crate) fn set_height(&mut self, h: u32) {
        self.head = (self.head & 0xfff) | (h.min(MAX_HEIGHT) << 12);
    }

    #[inline(always)]
    pub(crate) const fn has(&self, flag: u32) -> bool {
        self.head & flag != 0
    }

    #[inline(always)]
    pub(crate) fn set(&mut self, flag: u32) {
        self.head |= flag;
    }

    #[inline(always)]
    pub(crate) fn clear(&mut self, flag: u32) {
        self.head &= !flag;
    }

    #[inline(always)]
    pub(crate) const fn hashable(&self) -> bool {
        self.head & UNHASHABLE == 0
    }

    /// Offset of the opcode that made this value.
    pub(crate) const fn offset(&self) -> usize {
        self.c as usize
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("tag", &self.tag())
            .field("a", &self.a)
            .field("b", &self.b)
            .field("at", &self.c)
            .finish()
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

/// The bytes at `[at, at + len)`, or nothing (never for nodes the decoder wrote).
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) fn slice(input: &[u8], at: u32, len: u32) -> &[u8] {
    let at = at as usize;
    input.get(at..at + len as usize).unwrap_or(&[])
}

/// Text the decoder validated; checked again here, as no `unsafe` may skip it.
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) fn text(input: &[u8], at: u32, len: u32) -> &str {
    core::str::from_utf8(slice(input, at, len)).unwrap_or("")
}

/// The 8-byte big-endian double at `at`.
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) fn f64_at(input: &[u8], at: u32) -> f64 {
    match *slice(input, at, 8) {
        [a, b, c, d, e, f, g, h] => f64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => 0.0,
    }
}

impl<'a, 's> ValueRef<'a, 's> {
    // One copy on a device: inlined into every crate that iterates, it would be compiled
    // once per crate.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub(crate) fn from_node(input: &'a [u8], nodes: &'s [Node], node: &Node) -> Self {
        let seq = |n: &Node| Seq {
            input,
            nodes,
            first: n.a,
            len: n.b,
        };
        match node.tag() {
            tag::TRUE => ValueRef::Bool(true),
            tag::FALSE => ValueRef::Bool(false),
            tag::INT => ValueRef::Int(i64::from(node.a as i32), IntKind::Int),
            tag::LONG => ValueRef::Int(i64::from(node.a as i32), IntKind::Long),
            tag::BIG_INT => ValueRef::BigInt(text(input, node.a, node.b), IntKind::Int),
            tag::BIG_LONG => ValueRef::BigInt(text(input, node.a, node.b), IntKind::Long),
            tag::FLOAT => ValueRef::Float(f64::from_bits(
                (u64::from(node.a) << 32) | u64::from(node.b),
            )),
            tag::COMPLEX => {
                ValueRef::Complex(f64_at(input, node.a), f64_at(input, node.a.wrapping_add(8)))
            }
            tag::BYTES => ValueRef::Bytes(slice(input, node.a, node.b)),
            tag::PY2 => ValueRef::Str(PyStr::Py2(slice(input, node.a, node.b))),
            tag::PY3 => ValueRef::Str(PyStr::Py3(text(input, node.a, node.b))),
            tag::UNICODE => ValueRef::Str(PyStr::Unicode(text(input, node.a, node.b))),
            tag::CHANNEL => ValueRef::Channel(node.a as i32),
            tag::LIST => ValueRef::List(seq(node)),
            tag::TUPLE => ValueRef::Tuple(seq(node)),
            tag::SET => ValueRef::Set(seq(node)),
            tag::FROZENSET => ValueRef::FrozenSet(seq(node)),
            tag::DICT => ValueRef::Dict(Map { seq: seq(node) }),
            _ => ValueRef::None,
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

/// Parses validated big-int text (`[+-]?[0-9]+`) if it fits `i128`: eighteen digits at
/// a time in `u64`, so that a long number costs a few wide multiplications.
pub(crate) fn parse_i128(text: &str) -> Option<i128> {
    parse_i128_bytes(text.as_bytes())
}

/// [`parse_i128`] over the text's bytes.
pub(crate) fn parse_i128_bytes(text: &[u8]) -> Option<i128> {
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let zeros = digits.iter().take_while(|&&d| d == b'0').count();
    let digits = digits.get(zeros..)?;
    // i128::MAX has 39 digits.
    if digits.len() > 39 || !crate::decode::reader::all_digits(digits) {
        return None;
    }
    // The leading digits that do not fill a group of eight, then eight at a time.
    let head = digits.len() % 8;
    let (first, rest) = digits.split_at(head);
    let mut acc = first
        .iter()
        .fold(0u128, |acc, &d| acc * 10 + u128::from(d - b'0'));
    for group in rest.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(group);
        acc = acc
            .checked_mul(100_000_000)?
            .checked_add(u128::from(eight_digits(u64::from_le_bytes(w))))?;
    }
    if neg {
        0i128.checked_sub_unsigned(acc)
    } else {
        i128::try_from(acc).ok()
    }
}

/// The value of eight ASCII digits read as a little-endian word, in three multiplies.
#[inline(always)]
fn eight_digits(w: u64) -> u64 {
    let w = w - 0x3030_3030_3030_3030;
    // Pairs of digits, then quadruples, then the eight.
    let w = (w * 10 + (w >> 8)) & 0x00ff_00ff_00ff_00ff;
    let w = (w * 100 + (w >> 16)) & 0x0000_ffff_0000_ffff;
    (w * 10_000 + (w >> 32)) & 0xffff_ffff
}

/// The items of a list, tuple, set or frozenset (for a dict: keys and values
/// alternating; use [`Map`]). Items sit side by side in the node storage, so
/// [`get`](Self::get) is O(1).
#[derive(Clone, Copy)]
pub struct Seq<'a, 's> {
    input: &'a [u8],
    nodes: &'s [Node],
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

    fn run(&self, count: usize) -> &'s [Node] {
        let first = self.first as usize;
        self.nodes.get(first..first + count).unwrap_or(&[])
    }

    /// The items in order.
    pub fn iter(&self) -> SeqIter<'a, 's> {
        SeqIter {
            input: self.input,
            nodes: self.nodes,
            items: self.run(self.len()).iter(),
        }
    }

    /// The items with the input offset of the opcode that made each.
    #[cfg(feature = "serde")]
    pub(crate) fn with_offsets(&self) -> Placed<'a, 's> {
        Placed {
            input: self.input,
            nodes: self.nodes,
            items: self.run(self.len()).iter(),
        }
    }

    /// The item at `index`, in O(1).
    pub fn get(&self, index: usize) -> Option<ValueRef<'a, 's>> {
        self.run(self.len())
            .get(index)
            .map(|n| ValueRef::from_node(self.input, self.nodes, n))
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
    input: &'a [u8],
    nodes: &'s [Node],
    items: core::slice::Iter<'s, Node>,
}

impl<'a, 's> Iterator for SeqIter<'a, 's> {
    type Item = ValueRef<'a, 's>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let node = self.items.next()?;
        Some(ValueRef::from_node(self.input, self.nodes, node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for SeqIter<'_, '_> {}

/// Items with the input offset of the opcode that made each (for errors that say where).
#[cfg(feature = "serde")]
#[derive(Clone)]
pub(crate) struct Placed<'a, 's> {
    input: &'a [u8],
    nodes: &'s [Node],
    items: core::slice::Iter<'s, Node>,
}

#[cfg(feature = "serde")]
impl<'a, 's> Iterator for Placed<'a, 's> {
    type Item = (ValueRef<'a, 's>, usize);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let n = self.items.next()?;
        Some((ValueRef::from_node(self.input, self.nodes, n), n.offset()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

#[cfg(feature = "serde")]
impl ExactSizeIterator for Placed<'_, '_> {}

/// Dict entries as placed key and value (over the keys and values alternating).
#[cfg(feature = "serde")]
#[derive(Clone)]
pub(crate) struct PlacedEntries<'a, 's>(Placed<'a, 's>);

#[cfg(feature = "serde")]
impl<'a, 's> Iterator for PlacedEntries<'a, 's> {
    type Item = ((ValueRef<'a, 's>, usize), (ValueRef<'a, 's>, usize));
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let key = self.0.next()?;
        Some((key, self.0.next()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len() / 2;
        (n, Some(n))
    }
}

#[cfg(feature = "serde")]
impl ExactSizeIterator for PlacedEntries<'_, '_> {}

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
            input: self.seq.input,
            nodes: self.seq.nodes,
            entries: self.seq.run(2 * self.len()).chunks_exact(2),
        }
    }

    /// The entries in wire order, key and value each with the input offset of its
    /// opcode.
    #[cfg(feature = "serde")]
    pub(crate) fn with_offsets(&self) -> PlacedEntries<'a, 's> {
        let seq = Seq {
            len: self.seq.len * 2,
            ..self.seq
        };
        PlacedEntries(seq.with_offsets())
    }

    /// The entry at `index` in wire order, in O(1).
    pub fn entry(&self, index: usize) -> Option<(ValueRef<'a, 's>, ValueRef<'a, 's>)> {
        let run = self.seq.run(2 * self.len());
        let k = run.get(2 * index)?;
        let v = run.get(2 * index + 1)?;
        let (input, nodes) = (self.seq.input, self.seq.nodes);
        Some((
            ValueRef::from_node(input, nodes, k),
            ValueRef::from_node(input, nodes, v),
        ))
    }

    /// The value of the last entry whose key is the text `key` (of any string kind),
    /// which is the entry Python would keep.
    pub fn get_str(&self, key: &str) -> Option<ValueRef<'a, 's>> {
        let mut found = None;
        for (k, v) in self.iter() {
            if let ValueRef::Str(s) = k {
                let same = match s.as_str() {
                    Some(t) => t == key,
                    None => s.chars().eq(key.chars()),
                };
                if same {
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
    input: &'a [u8],
    nodes: &'s [Node],
    entries: core::slice::ChunksExact<'s, Node>,
}

impl<'a, 's> Iterator for MapIter<'a, 's> {
    type Item = (ValueRef<'a, 's>, ValueRef<'a, 's>);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.entries.next()? {
            [k, v] => Some((
                ValueRef::from_node(self.input, self.nodes, k),
                ValueRef::from_node(self.input, self.nodes, v),
            )),
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for MapIter<'_, '_> {}

#[cfg(test)]
mod tests {
    use super::parse_i128;

    #[test]
    fn parse_i128_edges() {
        for v in [
            0i128,
            1,
            -1,
            999_999_999_999_999_999,
            1_000_000_000_000_000_000,
            i128::from(i64::MAX) + 1,
            i128::MAX,
            i128::MIN,
            i128::MIN + 1,
            -(1i128 << 100) - 7,
        ] {
            let text = alloc_free(v);
            assert_eq!(parse_i128(text.as_str()), Some(v), "{v}");
        }
        assert_eq!(parse_i128("+0007"), Some(7));
        assert_eq!(parse_i128("-000"), Some(0));
        assert_eq!(parse_i128("170141183460469231731687303715884105728"), None);
        assert_eq!(parse_i128("-170141183460469231731687303715884105729"), None);
        assert_eq!(parse_i128(&"9".repeat(40)), None);
        assert_eq!(parse_i128("12a"), None);
    }

    #[test]
    fn parse_i128_agrees_with_the_standard_parser() {
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for i in 0..20_000u32 {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(1);
            // Every length from 1 to 39 digits, both signs.
            let v = (x >> (i % 127)) as i128;
            let v = if i % 2 == 0 { v } else { v.wrapping_neg() };
            let text = alloc_free(v);
            assert_eq!(parse_i128(text.as_str()), Some(v), "{}", text.as_str());
        }
    }

    /// Decimal text of `v` in a fixed buffer (the crate may build without `alloc`).
    fn alloc_free(v: i128) -> Text {
        let mut t = Text([0; 48], 48);
        let mut n = v.unsigned_abs();
        loop {
            t.1 -= 1;
            t.0[t.1] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            t.1 -= 1;
            t.0[t.1] = b'-';
        }
        t
    }

    struct Text([u8; 48], usize);
    impl Text {
        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.0[self.1..]).unwrap()
        }
    }
}
