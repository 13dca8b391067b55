//! The zero-copy decoder.
//!
//! Input is a `&'a [u8]`; output is a [`ValueRef`] whose strings and bytes are slices of
//! that input and whose structure lives in [`Node`] storage the caller provides, in the
//! manner of httparse's header array:
//!
//! - a plain slice `&mut [Node]` (fixed, no allocation),
//! - a `heapless::Vec<Node, N>` (feature `heapless`),
//! - a `Vec<Node>` that grows as needed (feature `alloc`).
//!
//! When fixed storage is too small the error is
//! [`StorageFull`](crate::DecodeErrorKind::StorageFull) with a node count that is enough.
//!
//! Entry points come in pairs: `decode_*` wants exactly one value and rejects bytes after
//! `STOP`; `take_*` decodes the value at the front and returns the rest. The `dumps`
//! envelope starts with a version byte (0x01 from execnet 1.x, 0x02 from 2.x); the
//! internal envelope, used for channel payloads, has none.
//!
//! Rules beyond what the reference checks (see PROTOCOL.md, "Ours:"): every length and
//! count is checked against the input and the [`Limits`] before anything is reserved;
//! list items must arrive as `INT 0 .. INT n-1`, in order, each once (every known writer
//! sends them that way, it keeps each list one sibling chain, and it makes every accepted
//! input re-encode to the same bytes; Python would also take negative or `LONG` indexes
//! and leave unset slots `None`); a list must be complete
//! before it is used; dict keys and set members must be hashable; `LONGINT` text must be
//! an optional `+`/`-` and ASCII digits (stricter than Python's `int()`, which also takes
//! spaces and underscores). The decoder never recurses and never panics.

use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::limits::Limits;
use crate::opcode as op;
use crate::value::{
    ContainerKind, IntKind, Node, NodeKind, PyStr, ValueRef, INDEX_PENDING, NIL, UNHASHABLE,
};

/// The `dumps` format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Version {
    /// Byte 0x01, written and read by execnet 1.x (Python 2 era).
    V1,
    /// Byte 0x02, written and read by execnet 2.x.
    #[default]
    V2,
}

impl Version {
    /// The version byte.
    pub const fn byte(self) -> u8 {
        match self {
            Version::V1 => op::VERSION_1,
            Version::V2 => op::VERSION_2,
        }
    }

    /// The version a byte stands for.
    pub const fn from_byte(b: u8) -> Option<Version> {
        match b {
            op::VERSION_1 => Some(Version::V1),
            op::VERSION_2 => Some(Version::V2),
            _ => None,
        }
    }
}

/// Storage that a decode writes its nodes into.
///
/// Implemented for `[Node]` (and so for arrays and `&mut` slices), `heapless::Vec<Node,
/// N>` and `Vec<Node>`.
pub trait NodeStorage<'a> {
    /// Runs the decode with this storage as its arena and returns the tree's nodes.
    #[doc(hidden)]
    fn with_arena<U: ArenaUser<'a>>(
        &mut self,
        input_len: usize,
        user: U,
    ) -> Result<(U::Out, &[Node<'a>]), DecodeError>;
}

/// Work to run over an arena (the decoder), generic so that each storage kind gets its
/// own monomorphized parser.
#[doc(hidden)]
pub trait ArenaUser<'a> {
    /// The result.
    type Out;
    /// Runs over `arena`.
    fn run<A: Arena<'a>>(self, arena: &mut A) -> Result<Self::Out, DecodeError>;
}

/// The decoder's working memory: the finished tree and the stack of pending values.
#[doc(hidden)]
pub trait Arena<'a> {
    /// Pushes a pending value; `false` when there is no room.
    fn push(&mut self, node: Node<'a>) -> bool;
    /// Number of pending values.
    fn depth(&self) -> usize;
    /// The pending value `n` places below the top (0 = top).
    fn peek(&mut self, n: usize) -> Option<&mut Node<'a>>;
    /// Moves the top `n` pending values into the tree as one sibling chain in push order,
    /// and returns the tree index of the first and of the last.
    fn commit(&mut self, n: usize) -> Option<(u32, u32)>;
    /// Drops the top pending value.
    fn pop(&mut self) -> bool;
    /// A node of the tree.
    fn tree(&mut self, index: u32) -> Option<&mut Node<'a>>;
    /// Slots in use (tree and stack), and slots available in all.
    fn usage(&self) -> (usize, usize);
}

/// Two-ended arena over a fixed slice: the tree grows from the front, the stack from the
/// back; they fail when they meet.
struct SliceArena<'s, 'a> {
    slots: &'s mut [Node<'a>],
    tree: usize,
    stack: usize,
}

impl<'a> Arena<'a> for SliceArena<'_, 'a> {
    fn push(&mut self, node: Node<'a>) -> bool {
        if self.tree + self.stack >= self.slots.len() {
            return false;
        }
        self.stack += 1;
        let at = self.slots.len() - self.stack;
        match self.slots.get_mut(at) {
            Some(slot) => {
                *slot = node;
                true
            }
            None => false,
        }
    }

    fn depth(&self) -> usize {
        self.stack
    }

    fn peek(&mut self, n: usize) -> Option<&mut Node<'a>> {
        if n >= self.stack {
            return None;
        }
        let at = self.slots.len() - self.stack + n;
        self.slots.get_mut(at)
    }

    fn commit(&mut self, n: usize) -> Option<(u32, u32)> {
        if n == 0 || n > self.stack {
            return None;
        }
        // The top n entries sit newest-first at [base, base + n). Moving the block down
        // to the tree's end keeps that order, so entry i of the push order lands at
        // tree + n - 1 - i and links to the slot below it.
        let base = self.slots.len() - self.stack;
        self.slots.copy_within(base..base + n, self.tree);
        let start = self.tree;
        for at in start..start + n {
            let node = self.slots.get_mut(at)?;
            node.link = if at == start { NIL } else { (at - 1) as u32 };
        }
        self.tree += n;
        self.stack -= n;
        Some(((start + n - 1) as u32, start as u32))
    }

    fn pop(&mut self) -> bool {
        if self.stack == 0 {
            return false;
        }
        self.stack -= 1;
        true
    }

    fn tree(&mut self, index: u32) -> Option<&mut Node<'a>> {
        if (index as usize) < self.tree {
            self.slots.get_mut(index as usize)
        } else {
            None
        }
    }

    fn usage(&self) -> (usize, usize) {
        (self.tree + self.stack, self.slots.len())
    }
}

impl<'a> NodeStorage<'a> for [Node<'a>] {
    fn with_arena<U: ArenaUser<'a>>(
        &mut self,
        _input_len: usize,
        user: U,
    ) -> Result<(U::Out, &[Node<'a>]), DecodeError> {
        let mut arena = SliceArena {
            slots: self,
            tree: 0,
            stack: 0,
        };
        let r = user.run(&mut arena)?;
        let used = arena.tree;
        Ok((r, self.get(..used).unwrap_or(&[])))
    }
}

impl<'a, const N: usize> NodeStorage<'a> for [Node<'a>; N] {
    fn with_arena<U: ArenaUser<'a>>(
        &mut self,
        input_len: usize,
        user: U,
    ) -> Result<(U::Out, &[Node<'a>]), DecodeError> {
        self.as_mut_slice().with_arena(input_len, user)
    }
}

#[cfg(feature = "heapless")]
impl<'a, const N: usize> NodeStorage<'a> for heapless::Vec<Node<'a>, N> {
    fn with_arena<U: ArenaUser<'a>>(
        &mut self,
        _input_len: usize,
        user: U,
    ) -> Result<(U::Out, &[Node<'a>]), DecodeError> {
        self.clear();
        // Filling to capacity cannot fail: the vector is empty and N slots are free.
        let _ = self.resize(N, Node::EMPTY);
        let mut arena = SliceArena {
            slots: self.as_mut_slice(),
            tree: 0,
            stack: 0,
        };
        let result = user.run(&mut arena);
        let used = arena.tree;
        self.truncate(used);
        let r = result?;
        Ok((r, self.as_slice()))
    }
}

/// Growable arena: the tree and the stack in two vectors.
#[cfg(feature = "alloc")]
struct VecArena<'v, 'a> {
    tree: &'v mut alloc::vec::Vec<Node<'a>>,
    stack: alloc::vec::Vec<Node<'a>>,
}

#[cfg(feature = "alloc")]
impl<'a> Arena<'a> for VecArena<'_, 'a> {
    fn push(&mut self, node: Node<'a>) -> bool {
        self.stack.push(node);
        true
    }

    fn depth(&self) -> usize {
        self.stack.len()
    }

    fn peek(&mut self, n: usize) -> Option<&mut Node<'a>> {
        let len = self.stack.len();
        if n >= len {
            return None;
        }
        self.stack.get_mut(len - 1 - n)
    }

    fn commit(&mut self, n: usize) -> Option<(u32, u32)> {
        let len = self.stack.len();
        if n == 0 || n > len {
            return None;
        }
        let start = self.tree.len();
        if n == 1 {
            let node = self.stack.pop()?;
            self.tree.push(node);
        } else {
            self.tree.extend(self.stack.drain(len - n..));
        }
        let end = self.tree.len();
        for at in start..end {
            let node = self.tree.get_mut(at)?;
            node.link = if at + 1 == end { NIL } else { (at + 1) as u32 };
        }
        Some((start as u32, (end - 1) as u32))
    }

    fn pop(&mut self) -> bool {
        self.stack.pop().is_some()
    }

    fn tree(&mut self, index: u32) -> Option<&mut Node<'a>> {
        self.tree.get_mut(index as usize)
    }

    fn usage(&self) -> (usize, usize) {
        (self.tree.len() + self.stack.len(), usize::MAX)
    }
}

#[cfg(feature = "alloc")]
impl<'a> NodeStorage<'a> for alloc::vec::Vec<Node<'a>> {
    fn with_arena<U: ArenaUser<'a>>(
        &mut self,
        input_len: usize,
        user: U,
    ) -> Result<(U::Out, &[Node<'a>]), DecodeError> {
        self.clear();
        // A value costs at least one input byte, and most payloads spend 5 to 20 bytes on
        // each: reserving input/8 avoids most regrowth without over-committing.
        self.reserve(input_len / 8 + 4);
        let mut arena = VecArena {
            tree: self,
            stack: alloc::vec::Vec::with_capacity(16),
        };
        let r = user.run(&mut arena)?;
        Ok((r, self.as_slice()))
    }
}

/// A decoded value and where its bytes ended.
struct Decoded {
    root: u32,
    end: usize,
}

/// Upper bound on the nodes a decode of `input` (internal envelope) can need at once:
/// the number of value-pushing opcodes up to the first `STOP`. Scans without storage.
///
/// Returns the decode error when the input cannot be scanned (bad opcode, truncated
/// operand).
pub fn node_bound(input: &[u8]) -> Result<usize, DecodeError> {
    let mut pos = 0usize;
    let mut count = 0usize;
    loop {
        let Some(&code) = input.get(pos) else {
            return Ok(count);
        };
        let at = pos;
        pos += 1;
        let int4 = |pos: usize| -> Result<i32, DecodeError> { read_i32(input, pos, at, code) };
        match code {
            op::STOP => return Ok(count),
            op::SETITEM => {}
            op::NONE | op::TRUE | op::FALSE | op::NEWDICT => count += 1,
            op::INT | op::LONG | op::CHANNEL | op::NEWLIST => {
                int4(pos)?;
                pos += 4;
                count += 1;
            }
            op::BUILDTUPLE | op::SET | op::FROZENSET => {
                int4(pos)?;
                pos += 4;
                count += 1;
            }
            op::FLOAT => {
                pos += 8;
                count += 1;
            }
            op::COMPLEX => {
                pos += 16;
                count += 1;
            }
            op::BYTES
            | op::PY2STRING
            | op::PY3STRING
            | op::UNICODE
            | op::LONGINT
            | op::LONGLONG => {
                let n = int4(pos)?;
                let n = usize::try_from(n)
                    .map_err(|_| DecodeError::new(K::NegativeLength(n), at, Some(code)))?;
                pos = pos.saturating_add(4).saturating_add(n);
                count += 1;
            }
            other => {
                return Err(DecodeError::new(K::UnknownOpcode(other), at, Some(other)));
            }
        }
    }
}

fn read_i32(input: &[u8], pos: usize, at: usize, code: u8) -> Result<i32, DecodeError> {
    match input.get(pos..pos + 4) {
        Some(&[a, b, c, d]) => Ok(i32::from_be_bytes([a, b, c, d])),
        _ => Err(DecodeError::new(
            K::UnexpectedEnd {
                needed: 4,
                available: input.len().saturating_sub(pos),
            },
            at,
            Some(code),
        )),
    }
}

struct Parser<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    /// Where the value starts (after any version byte).
    start: usize,
    /// Offset and opcode being processed, for errors.
    at: usize,
    code: u8,
    nodes: u32,
}

impl<'a> Parser<'a, '_> {
    fn err(&self, kind: K) -> DecodeError {
        DecodeError::new(kind, self.at, Some(self.code))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.input.len().saturating_sub(self.pos);
        if n > available {
            return Err(self.err(K::UnexpectedEnd {
                needed: n,
                available,
            }));
        }
        let s = self.input.get(self.pos..self.pos + n).ok_or_else(|| {
            self.err(K::UnexpectedEnd {
                needed: n,
                available,
            })
        })?;
        self.pos += n;
        Ok(s)
    }

    fn int4(&mut self) -> Result<i32, DecodeError> {
        let v = read_i32(self.input, self.pos, self.at, self.code)?;
        self.pos += 4;
        Ok(v)
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        match *self.take(8)? {
            [a, b, c, d, e, f, g, h] => Ok(f64::from_be_bytes([a, b, c, d, e, f, g, h])),
            _ => Err(self.err(K::UnexpectedEnd {
                needed: 8,
                available: 0,
            })),
        }
    }

    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.int4()?;
        usize::try_from(n).map_err(|_| self.err(K::NegativeLength(n)))
    }

    fn blob(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.count()?;
        let available = self.input.len().saturating_sub(self.pos);
        if len > available {
            return Err(self.err(K::LengthBeyondInput { len, available }));
        }
        if len > self.limits.max_bytes as usize {
            return Err(self.err(K::StringTooLong {
                len,
                max: self.limits.max_bytes,
            }));
        }
        self.take(len)
    }

    fn text(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.blob()?;
        core::str::from_utf8(b).map_err(|e| {
            self.err(K::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            })
        })
    }

    fn int_text(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.blob()?;
        let digits = match b.first() {
            Some(b'-' | b'+') => b.get(1..).unwrap_or(&[]),
            _ => b,
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(self.err(K::InvalidIntText));
        }
        if digits.len() > self.limits.max_bigint_digits as usize {
            return Err(self.err(K::IntTooLong {
                digits: digits.len(),
                max: self.limits.max_bigint_digits,
            }));
        }
        // All ASCII, so this cannot fail.
        core::str::from_utf8(b).map_err(|_| self.err(K::InvalidIntText))
    }

    fn push<A: Arena<'a>>(&mut self, arena: &mut A, node: Node<'a>) -> Result<(), DecodeError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_items {
            return Err(self.err(K::TooManyItems {
                max: self.limits.max_items,
            }));
        }
        if node.height() > self.limits.max_depth {
            return Err(self.err(K::TooDeep {
                max: self.limits.max_depth,
            }));
        }
        if arena.push(node) {
            Ok(())
        } else {
            Err(self.storage_full(arena))
        }
    }

    fn storage_full<A: Arena<'a>>(&self, arena: &A) -> DecodeError {
        let (_, capacity) = arena.usage();
        let tail = self.input.get(self.start..).unwrap_or(&[]);
        let needed = node_bound(tail).unwrap_or(self.nodes as usize);
        self.err(K::StorageFull { capacity, needed })
    }

    /// Checks that a pending value may be used as a child and returns it.
    fn check_complete(&self, node: &Node<'a>) -> Result<(), DecodeError> {
        if let NodeKind::Container {
            kind: ContainerKind::List,
            len,
            cap,
            ..
        } = node.kind
        {
            if len != cap {
                return Err(self.err(K::ListIncomplete {
                    expected: cap as usize,
                    found: len as usize,
                }));
            }
        }
        Ok(())
    }

    fn top<A: Arena<'a>>(&self, arena: &mut A, n: usize) -> Result<Node<'a>, DecodeError> {
        let available = arena.depth();
        arena.peek(n).copied().ok_or_else(|| {
            self.err(K::StackUnderflow {
                needed: n + 1,
                available,
            })
        })
    }

    fn build<A: Arena<'a>>(
        &mut self,
        arena: &mut A,
        kind: ContainerKind,
    ) -> Result<(), DecodeError> {
        let n = self.count()?;
        let available = arena.depth();
        if n > available {
            return Err(self.err(K::StackUnderflow {
                needed: n,
                available,
            }));
        }
        let mut height = 0;
        let mut hashable = true;
        for i in 0..n {
            let child = self.top(arena, i)?;
            self.check_complete(&child)?;
            if kind != ContainerKind::Tuple && !child.hashable() {
                return Err(self.err(K::Unhashable));
            }
            hashable &= child.hashable();
            height = height.max(child.height());
        }
        let first = if n == 0 {
            NIL
        } else {
            let (first, _) = arena.commit(n).ok_or_else(|| self.internal())?;
            first
        };
        // Only the count check above guards `n`; u32 holds any stack depth we allow.
        let len = u32::try_from(n).map_err(|_| self.internal())?;
        hashable &= matches!(kind, ContainerKind::Tuple | ContainerKind::FrozenSet);
        let node = Node {
            kind: NodeKind::Container {
                kind,
                first,
                len,
                cap: len,
            },
            link: NIL,
            meta: (height + 1) | if hashable { 0 } else { UNHASHABLE },
        };
        self.push(arena, node)
    }

    #[cold]
    fn internal(&self) -> DecodeError {
        self.err(K::Internal)
    }

    /// `SETITEM` for a list whose index was read: the top value becomes its next item.
    fn append_item<A: Arena<'a>>(&mut self, arena: &mut A) -> Result<(), DecodeError> {
        let value = self.top(arena, 0)?;
        self.check_complete(&value)?;
        let (first, last) = arena.commit(1).ok_or_else(|| self.internal())?;
        let max_depth = self.limits.max_depth;
        let target = arena.peek(0).ok_or_else(|| self.internal())?;
        let prev_last = target.link;
        let height = target.height().max(value.height() + 1);
        if height > max_depth {
            return Err(self.err(K::TooDeep { max: max_depth }));
        }
        target.meta = height | UNHASHABLE;
        target.link = last;
        let mut had_items = false;
        if let NodeKind::Container {
            first: ref mut f,
            len: ref mut l,
            ..
        } = target.kind
        {
            had_items = *l > 0;
            if !had_items {
                *f = first;
            }
            *l += 1;
        }
        if had_items {
            let prev = arena.tree(prev_last).ok_or_else(|| self.internal())?;
            prev.link = first;
        }
        Ok(())
    }

    fn setitem<A: Arena<'a>>(&mut self, arena: &mut A) -> Result<(), DecodeError> {
        let pending = arena.peek(1).is_some_and(|n| n.meta & INDEX_PENDING != 0);
        if pending {
            return self.append_item(arena);
        }
        let available = arena.depth();
        if available < 3 {
            return Err(self.err(K::StackUnderflow {
                needed: 3,
                available,
            }));
        }
        let value = self.top(arena, 0)?;
        let key = self.top(arena, 1)?;
        let target = self.top(arena, 2)?;
        let NodeKind::Container {
            kind: kind @ (ContainerKind::List | ContainerKind::Dict),
            len,
            cap,
            ..
        } = target.kind
        else {
            return Err(self.err(K::NotAContainer));
        };
        if target.meta & INDEX_PENDING != 0 {
            // In the stream, the list's index sits above it: that int is the target.
            return Err(self.err(K::NotAContainer));
        }
        self.check_complete(&value)?;
        let (first, last, child_height) = if kind == ContainerKind::List {
            // Only `INT i` with i the next slot: what every writer sends, and what
            // re-encodes to the same bytes.
            let index = match key.kind {
                NodeKind::Int(i, IntKind::Int) => i64::from(i),
                NodeKind::Int(..) | NodeKind::BigInt(..) => {
                    return Err(self.err(K::ListIndexOutOfOrder {
                        expected: len as usize,
                        found: match key.kind {
                            NodeKind::Int(i, _) => i64::from(i),
                            _ => i64::MAX,
                        },
                    }))
                }
                _ => return Err(self.err(K::ListIndexNotInt)),
            };
            if index != i64::from(len) || len >= cap {
                return Err(self.err(K::ListIndexOutOfOrder {
                    expected: len as usize,
                    found: index,
                }));
            }
            let (first, last) = arena.commit(1).ok_or_else(|| self.internal())?;
            if !arena.pop() {
                return Err(self.internal());
            }
            (first, last, value.height())
        } else {
            self.check_complete(&key)?;
            if !key.hashable() {
                return Err(self.err(K::Unhashable));
            }
            let (first, last) = arena.commit(2).ok_or_else(|| self.internal())?;
            (first, last, value.height().max(key.height()))
        };
        let max_depth = self.limits.max_depth;
        let target = arena.peek(0).ok_or_else(|| self.internal())?;
        let prev_last = target.link;
        let height = target.height().max(child_height + 1);
        if height > max_depth {
            return Err(self.err(K::TooDeep { max: max_depth }));
        }
        target.meta = height | UNHASHABLE;
        target.link = last;
        if let NodeKind::Container {
            first: ref mut f,
            len: ref mut l,
            ..
        } = target.kind
        {
            if *l == 0 {
                *f = first;
            }
            *l += 1;
        }
        if len > 0 {
            let prev = arena.tree(prev_last).ok_or_else(|| self.internal())?;
            prev.link = first;
        }
        Ok(())
    }

    /// Runs opcodes until `STOP`; returns the root's tree index.
    fn run<A: Arena<'a>>(&mut self, arena: &mut A) -> Result<u32, DecodeError> {
        loop {
            self.at = self.pos;
            let Some(&code) = self.input.get(self.pos) else {
                self.code = 0;
                return Err(DecodeError::new(K::MissingStop, self.pos, None));
            };
            self.code = code;
            self.pos += 1;
            let leaf = match code {
                op::NONE => NodeKind::None,
                op::TRUE => NodeKind::Bool(true),
                op::FALSE => NodeKind::Bool(false),
                op::INT => {
                    let v = self.int4()?;
                    // The index of the next list item: noted on the list, not kept.
                    if let Some(top) = arena.peek(0) {
                        if let NodeKind::Container {
                            kind: ContainerKind::List,
                            len,
                            cap,
                            ..
                        } = top.kind
                        {
                            if top.meta & INDEX_PENDING == 0
                                && len < cap
                                && i64::from(v) == i64::from(len)
                            {
                                top.meta |= INDEX_PENDING;
                                continue;
                            }
                        }
                    }
                    NodeKind::Int(v, IntKind::Int)
                }
                op::LONG => NodeKind::Int(self.int4()?, IntKind::Long),
                op::LONGINT => NodeKind::BigInt(self.int_text()?, IntKind::Int),
                op::LONGLONG => NodeKind::BigInt(self.int_text()?, IntKind::Long),
                op::FLOAT => NodeKind::Float(self.f64()?),
                op::COMPLEX => {
                    let re = self.f64()?;
                    NodeKind::Complex(re, self.f64()?)
                }
                op::BYTES => NodeKind::Bytes(self.blob()?),
                op::PY2STRING => NodeKind::Str(PyStr::Py2(self.blob()?)),
                op::PY3STRING => NodeKind::Str(PyStr::Py3(self.text()?)),
                op::UNICODE => NodeKind::Str(PyStr::Unicode(self.text()?)),
                op::CHANNEL => NodeKind::Channel(self.int4()?),
                op::NEWDICT => {
                    let node = Node {
                        kind: NodeKind::Container {
                            kind: ContainerKind::Dict,
                            first: NIL,
                            len: 0,
                            cap: 0,
                        },
                        link: NIL,
                        meta: 1 | UNHASHABLE,
                    };
                    self.push(arena, node)?;
                    continue;
                }
                op::NEWLIST => {
                    let n = self.count()?;
                    let rest = self.input.len().saturating_sub(self.pos);
                    let max = (rest / 7).min(self.limits.max_items as usize);
                    if n > max {
                        return Err(self.err(K::ListTooLong { count: n, max }));
                    }
                    let cap = u32::try_from(n).map_err(|_| self.internal())?;
                    let node = Node {
                        kind: NodeKind::Container {
                            kind: ContainerKind::List,
                            first: NIL,
                            len: 0,
                            cap,
                        },
                        link: NIL,
                        meta: 1 | UNHASHABLE,
                    };
                    self.push(arena, node)?;
                    continue;
                }
                op::BUILDTUPLE => {
                    self.build(arena, ContainerKind::Tuple)?;
                    continue;
                }
                op::SET => {
                    self.build(arena, ContainerKind::Set)?;
                    continue;
                }
                op::FROZENSET => {
                    self.build(arena, ContainerKind::FrozenSet)?;
                    continue;
                }
                op::SETITEM => {
                    self.setitem(arena)?;
                    continue;
                }
                op::STOP => {
                    let depth = arena.depth();
                    if depth != 1 {
                        return Err(self.err(K::BadStopStack(depth)));
                    }
                    let root = self.top(arena, 0)?;
                    self.check_complete(&root)?;
                    let (first, _) = arena.commit(1).ok_or_else(|| self.internal())?;
                    return Ok(first);
                }
                other => return Err(self.err(K::UnknownOpcode(other))),
            };
            self.push(arena, Node::leaf(leaf))?;
        }
    }
}

impl<'a> ArenaUser<'a> for &mut Parser<'a, '_> {
    type Out = Decoded;
    fn run<A: Arena<'a>>(self, arena: &mut A) -> Result<Decoded, DecodeError> {
        let root = Parser::run(self, arena)?;
        Ok(Decoded {
            root,
            end: self.pos,
        })
    }
}

fn decode_at<'a, 's, S: NodeStorage<'a> + ?Sized>(
    input: &'a [u8],
    start: usize,
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(ValueRef<'a, 's>, usize), DecodeError> {
    let mut parser = Parser {
        input,
        pos: start,
        limits,
        start,
        at: start,
        code: 0,
        nodes: 0,
    };
    let (decoded, nodes) = storage.with_arena(input.len().saturating_sub(start), &mut parser)?;
    let root = nodes.get(decoded.root as usize).ok_or(DecodeError::new(
        K::MissingStop,
        decoded.end,
        None,
    ))?;
    Ok((ValueRef::from_node(nodes, root), decoded.end))
}

/// Refuses a whole input longer than `max_message` before any work.
fn within_message(len: usize, limits: &Limits) -> Result<(), DecodeError> {
    if len > limits.max_message as usize {
        return Err(DecodeError::new(
            K::MessageTooLong {
                len,
                max: limits.max_message,
            },
            0,
            None,
        ));
    }
    Ok(())
}

fn version_of(input: &[u8]) -> Result<Version, DecodeError> {
    match input.first() {
        None => Err(DecodeError::new(
            K::UnexpectedEnd {
                needed: 1,
                available: 0,
            },
            0,
            None,
        )),
        Some(&b) => Version::from_byte(b).ok_or(DecodeError::new(K::UnknownVersion(b), 0, None)),
    }
}

fn no_trailing(input: &[u8], end: usize) -> Result<(), DecodeError> {
    if end < input.len() {
        Err(DecodeError::new(
            K::TrailingBytes(input.len() - end),
            end,
            None,
        ))
    } else {
        Ok(())
    }
}

/// Decodes one channel payload (internal envelope: no version byte), which must fill the
/// whole input.
///
/// ```
/// use execnet_core::{decode, Limits, Node, ValueRef};
/// let bytes = b"F\x00\x00\x00\x2aQ"; // INT 42, STOP
/// let mut nodes = [Node::EMPTY; 4];
/// let v = decode::decode_internal(bytes, &mut nodes, &Limits::DEFAULT).unwrap();
/// assert_eq!(v.as_i64(), Some(42));
/// ```
pub fn decode_internal<'a, 's, S: NodeStorage<'a> + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<ValueRef<'a, 's>, DecodeError> {
    within_message(input.len(), limits)?;
    let (v, end) = decode_at(input, 0, storage, limits)?;
    no_trailing(input, end)?;
    Ok(v)
}

/// Decodes the channel payload at the front of `input` and returns it with the bytes
/// after its `STOP`.
pub fn take_internal<'a, 's, S: NodeStorage<'a> + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(ValueRef<'a, 's>, &'a [u8]), DecodeError> {
    let (v, end) = decode_at(input, 0, storage, limits)?;
    within_message(end, limits)?;
    Ok((v, input.get(end..).unwrap_or(&[])))
}

/// Decodes `dumps` output (a version byte, 0x01 or 0x02, then the value), which must fill
/// the whole input.
///
/// ```
/// use execnet_core::{decode, Limits, Node};
/// let mut nodes = [Node::EMPTY; 8];
/// let (version, v) = decode::decode_dumps(b"\x02LQ", &mut nodes, &Limits::DEFAULT).unwrap();
/// assert_eq!(version, decode::Version::V2);
/// assert!(matches!(v, execnet_core::ValueRef::None));
/// ```
pub fn decode_dumps<'a, 's, S: NodeStorage<'a> + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(Version, ValueRef<'a, 's>), DecodeError> {
    within_message(input.len(), limits)?;
    let version = version_of(input)?;
    let (v, end) = decode_at(input, 1, storage, limits)?;
    no_trailing(input, end)?;
    Ok((version, v))
}

/// Decodes the `dumps` output at the front of `input` and returns it with the rest.
pub fn take_dumps<'a, 's, S: NodeStorage<'a> + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(Version, ValueRef<'a, 's>, &'a [u8]), DecodeError> {
    let version = version_of(input)?;
    let (v, end) = decode_at(input, 1, storage, limits)?;
    within_message(end, limits)?;
    Ok((version, v, input.get(end..).unwrap_or(&[])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeErrorKind;

    /// Found by the `decode` fuzz target: a list item set with index -1 (which Python
    /// counts from the end) decoded, but re-encoded as index 0.
    #[test]
    fn list_index_must_be_the_next_int() {
        let mut nodes = [Node::EMPTY; 8];
        for bad in [
            &b"K\x00\x00\x00\x01F\xff\xff\xff\xffLPQ"[..],
            b"K\x00\x00\x00\x01G\x00\x00\x00\x00LPQ",
            b"K\x00\x00\x00\x01H\x00\x00\x00\x010LPQ",
        ] {
            let e = decode_internal(bad, &mut nodes[..], &Limits::DEFAULT).unwrap_err();
            assert!(
                matches!(
                    e.kind,
                    DecodeErrorKind::ListIndexOutOfOrder { expected: 0, .. }
                ),
                "{e}"
            );
        }
        assert!(decode_internal(
            b"K\x00\x00\x00\x01F\x00\x00\x00\x00LPQ",
            &mut nodes[..],
            &Limits::DEFAULT
        )
        .is_ok());
    }
}
