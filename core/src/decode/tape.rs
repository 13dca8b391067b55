//! The borrowed decoder: opcodes into a flat tape of [`Node`]s in the caller's storage.
//!
//! One slice serves two regions: the tape grows from the front, the stack of pending
//! values from the back, and a decode fails with `StorageFull` only when they meet.
//! Every node lands on the tape once and stays: a list reserves the run of slots for its
//! items when `NEWLIST` announces their count, and each item is written into its slot by
//! its `SETITEM`; a tuple, set or frozenset moves its members off the stack in one run
//! when it is built; a dict, whose size nobody announces, keeps its entries on the stack
//! above itself until it is used, then moves them in one run. Children of every container
//! are therefore contiguous, and indexing is O(1).
//!
//! The stack holds two kinds of entries: the values of the stack machine (its logical
//! stack) and the entries of dicts still open on it. The open dicts are chained (each
//! one's `a` field names the next one below), so that the logical entries near the top are
//! found in O(1): everything above the innermost open dict's entries is a plain value.
//!
//! Size on devices: the hot helpers here and in the reader are forced inline on hosts only
//! (`cfg_attr(not(target_os = "none"), inline(always))`); on a bare-metal target every
//! forced copy costs flash and the compiler's own choice is smaller. The paths that only
//! make a host faster are left out there too (see `SMALL_CODE`).

use crate::decode::reader::{flat_at, index_at, Flat, ListRoom, Reader};
use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::limits::Limits;
use crate::opcode as op;
use crate::value::{tag, Node, CHILD, PENDING, UNHASHABLE};

/// No open dict.
const NIL: u32 = u32::MAX;

/// A finished decode: where the root is, how long the tape is, where the value ended.
pub(crate) struct Done {
    pub(crate) root: usize,
    pub(crate) tape: usize,
    pub(crate) end: usize,
}

/// Decodes the value starting at `start` of `input` into `slots`.
pub(crate) fn run(
    input: &[u8],
    start: usize,
    slots: &mut [Node],
    limits: &Limits,
) -> Result<Done, DecodeError> {
    let mut t = Tape {
        r: Reader::new(input, start),
        error: None,
        s: slots,
        tape: 0,
        depth: 0,
        open: NIL,
        children: 0,
        values: 0,
        room: ListRoom::default(),
        max_depth: limits.depth_cap(),
        limits,
        start,
    };
    let Ok(root) = t.run() else {
        let at = t.r.pos;
        return Err(t.error.unwrap_or(DecodeError::new(K::Internal, at, None)));
    };
    Ok(Done {
        root,
        tape: t.tape,
        end: t.r.pos,
    })
}

/// One scalar at the cursor as a node, or `None` (the cursor then somewhere past it) for
/// anything else or anything wrong: the caller rewinds and lets the general path decide.
#[cfg_attr(not(target_os = "none"), inline(always))]
fn scalar(r: &mut Reader<'_>, limits: &Limits) -> Option<Node> {
    let code = r.next_op()?;
    let at = r.at as u32;
    Some(match code {
        op::INT => Node::new(tag::INT, r.int4().ok()? as u32, 0, at),
        op::FLOAT => {
            let bits = r.f64().ok()?.to_bits();
            Node::new(tag::FLOAT, (bits >> 32) as u32, bits as u32, at)
        }
        op::PY3STRING => {
            let (p, n) = r.text(limits).ok()?;
            Node::new(tag::PY3, p as u32, n as u32, at)
        }
        op::NONE => Node::new(tag::NONE, 0, 0, at),
        op::TRUE => Node::new(tag::TRUE, 0, 0, at),
        op::FALSE => Node::new(tag::FALSE, 0, 0, at),
        op::UNICODE => {
            let (p, n) = r.text(limits).ok()?;
            Node::new(tag::UNICODE, p as u32, n as u32, at)
        }
        op::BYTES => {
            let (p, n) = r.blob(limits).ok()?;
            Node::new(tag::BYTES, p as u32, n as u32, at)
        }
        op::LONGINT => {
            let (p, n) = r.int_text(limits).ok()?;
            Node::new(tag::BIG_INT, p as u32, n as u32, at)
        }
        _ => return None,
    })
}

/// A decode failed; the error waits in [`Tape::error`]. Failures pass up the decoder's
/// calls as this flag rather than as a whole [`DecodeError`], which every `?` would copy
/// (on a device, hundreds of bytes of flash in all).
struct Failed;

/// What the decoder's steps return.
type Step<T = ()> = Result<T, Failed>;

/// A reader's result, its error kept in `slot`.
#[cfg_attr(not(target_os = "none"), inline(always))]
fn keep<T>(slot: &mut Option<DecodeError>, r: Result<T, DecodeError>) -> Step<T> {
    r.map_err(|e| store(slot, e))
}

#[cold]
#[inline(never)]
fn store(slot: &mut Option<DecodeError>, e: DecodeError) -> Failed {
    *slot = Some(e);
    Failed
}

/// An error about the opcode being processed, kept in `slot`.
#[cold]
#[inline(never)]
fn failed(slot: &mut Option<DecodeError>, r: &Reader<'_>, kind: K) -> Failed {
    *slot = Some(r.err(kind));
    Failed
}

struct Tape<'a, 's, 'l> {
    r: Reader<'a>,
    /// Why the decode failed, once it has.
    error: Option<DecodeError>,
    s: &'s mut [Node],
    /// Nodes on the tape (the front of `s`).
    tape: usize,
    /// Nodes on the stack (the back of `s`): stack position `p` is slot `len - 1 - p`.
    depth: usize,
    /// Stack position of the innermost open dict, or [`NIL`].
    open: u32,
    /// Dict entries on the stack (the stack's depth less the logical stack's).
    children: usize,
    /// Values made so far, against `max_items`.
    values: u32,
    room: ListRoom,
    max_depth: u32,
    limits: &'l Limits,
    start: usize,
}

impl Tape<'_, '_, '_> {
    /// A flat item at the cursor (see [`Flat`]), through its `SETITEM`: its node (a
    /// container's members written to the tape) and how many values it counts for, or
    /// `None` (the caller rewinds; nothing it wrote is in use).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn flat(&mut self) -> Option<(Node, u32)> {
        let start = self.r.pos;
        let first = scalar(&mut self.r, self.limits)?;
        if self.r.input.get(self.r.pos) == Some(&op::SETITEM) {
            self.r.pos += 1;
            return Some((first, 1));
        }
        let Flat::Members(k, code) = flat_at(self.r.input, start)? else {
            return None;
        };
        // The members go where the general path would put them: the tape's end.
        if self.tape + self.depth + k + 1 >= self.s.len() {
            return None;
        }
        let at0 = self.tape;
        *self.s.get_mut(at0)? = first;
        for i in 1..k {
            let node = scalar(&mut self.r, self.limits)?;
            *self.s.get_mut(at0 + i)? = node;
        }
        let at = self.r.pos as u32;
        self.r.pos += 6;
        let t = match code {
            op::BUILDTUPLE => tag::TUPLE,
            op::SET => tag::SET,
            _ => tag::FROZENSET,
        };
        let mut node = Node::new(t, at0 as u32, k as u32, at);
        if t == tag::SET {
            node.set(UNHASHABLE);
        }
        node.set_height(1);
        self.tape += k;
        Some((node, k as u32 + 1))
    }

    /// List items that are flat (a scalar, or a tuple or set of scalars), written
    /// straight into their reserved slots while they last, for the list on top of the
    /// stack. Each is taken only where the general path would take it, and the same way.
    fn fast_items(&mut self) {
        if SMALL_CODE {
            return;
        }
        let top = self.s.len().wrapping_sub(self.depth);
        let Some(&list) = self.s.get(top) else {
            return;
        };
        if list.tag() != tag::LIST || list.has(PENDING) {
            return;
        }
        let (cap, first) = (self.cap(&list), list.a as usize);
        let (mut len, mut height) = (list.b, list.height());
        let deep_ok = self.max_depth >= 2;
        while len < cap {
            let (save, tape) = (self.r.pos, self.tape);
            if !index_at(self.r.input, save, len as usize) {
                break;
            }
            self.r.pos = save + 5;
            match self.flat() {
                Some((node, n))
                    if self.values + n <= self.limits.max_items && (n == 1 || deep_ok) =>
                {
                    match self.s.get_mut(first + len as usize) {
                        Some(slot) => *slot = node,
                        None => {
                            (self.r.pos, self.tape) = (save, tape);
                            break;
                        }
                    }
                    self.values += n;
                    if n > 1 {
                        height = height.max(2);
                    }
                    self.room.unstarted = self.room.unstarted.saturating_sub(1);
                    len += 1;
                }
                _ => {
                    (self.r.pos, self.tape) = (save, tape);
                    break;
                }
            }
        }
        if let Some(l) = self.s.get_mut(top) {
            l.b = len;
            l.set_height(height);
        }
    }

    /// Dict entries of the form scalar key, flat value, `SETITEM`, pushed as the entries
    /// of the open dict on top of the stack, as [`fast_items`](Self::fast_items) does for
    /// lists.
    fn fast_entries(&mut self) {
        if SMALL_CODE {
            return;
        }
        let p = self.open as usize;
        let deep_ok = self.max_depth >= 2;
        let (mut added, mut height) = (0, self.at(p).height());
        while self.tape + self.depth + 2 < self.s.len() {
            let (save, tape) = (self.r.pos, self.tape);
            let Some(k) = scalar(&mut self.r, self.limits) else {
                self.r.pos = save;
                break;
            };
            let after_key = self.r.pos;
            match self.flat() {
                Some((v, n))
                    if self.values + n < self.limits.max_items
                        && (n == 1 || deep_ok)
                        && self.tape + self.depth + 2 < self.s.len() =>
                {
                    self.values += n + 1;
                    if n > 1 {
                        height = height.max(2);
                    }
                    self.put(k);
                    self.put(v);
                    added += 1;
                }
                _ => {
                    // The value is not flat: the key stays, pushed as the general path
                    // would push it, which then goes on from the value.
                    (self.r.pos, self.tape) = (after_key, tape);
                    if self.values < self.limits.max_items {
                        self.values += 1;
                        self.put(k);
                    } else {
                        self.r.pos = save;
                    }
                    break;
                }
            }
        }
        if added > 0 {
            self.children += 2 * added as usize;
            if let Ok(d) = self.at_mut(p) {
                d.b += added;
                d.set_height(height);
            }
        }
    }

    /// The slot of stack position `p` (out of range, and so `None` on access, if `p` is
    /// beyond the storage).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn slot(&self, p: usize) -> usize {
        self.s.len().wrapping_sub(p + 1)
    }

    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline(never))]
    fn at(&self, p: usize) -> Node {
        self.s.get(self.slot(p)).copied().unwrap_or(Node::EMPTY)
    }

    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn at_mut(&mut self, p: usize) -> Step<&mut Node> {
        let i = self.slot(p);
        match self.s.get_mut(i) {
            Some(n) => Ok(n),
            None => Err(failed(&mut self.error, &self.r, K::Internal)),
        }
    }

    /// Fails with an error about the opcode being processed.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn fail(&mut self, kind: K) -> Failed {
        failed(&mut self.error, &self.r, kind)
    }

    #[cold]
    #[inline(never)]
    fn full(&mut self) -> Failed {
        let tail = self.r.input.get(self.start..).unwrap_or(&[]);
        let needed = crate::decode::node_bound(tail).unwrap_or(self.values as usize);
        self.fail(K::StorageFull {
            capacity: self.s.len(),
            needed,
        })
    }

    /// Counts one more value and checks its height and a free slot for it.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn admit(&mut self, height: u32, extra: usize) -> Step {
        self.values += 1;
        if self.values > self.limits.max_items {
            return Err(self.fail(K::TooManyItems {
                max: self.limits.max_items,
            }));
        }
        if height > self.max_depth {
            return Err(self.fail(K::TooDeep {
                max: self.max_depth,
            }));
        }
        if self.tape + self.depth + extra >= self.s.len() {
            return Err(self.full());
        }
        Ok(())
    }

    /// Pushes an admitted node.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn put(&mut self, node: Node) {
        let i = self.slot(self.depth);
        if let Some(slot) = self.s.get_mut(i) {
            *slot = node;
        }
        self.depth += 1;
    }

    fn run(&mut self) -> Step<usize> {
        let limits = self.limits;
        loop {
            let Some(code) = self.r.next_op() else {
                return Err(store(&mut self.error, self.r.missing_stop()));
            };
            let at = self.r.at as u32;
            let node = match code {
                op::INT => {
                    let v = keep(&mut self.error, self.r.int4())?;
                    if self.take_index(v) {
                        continue;
                    }
                    Node::new(tag::INT, v as u32, 0, at)
                }
                op::SETITEM => {
                    self.setitem()?;
                    continue;
                }
                op::FLOAT => {
                    let bits = keep(&mut self.error, self.r.f64())?.to_bits();
                    Node::new(tag::FLOAT, (bits >> 32) as u32, bits as u32, at)
                }
                op::PY3STRING | op::UNICODE => {
                    let (p, n) = keep(&mut self.error, self.r.text(limits))?;
                    let t = if code == op::PY3STRING {
                        tag::PY3
                    } else {
                        tag::UNICODE
                    };
                    Node::new(t, p as u32, n as u32, at)
                }
                op::NONE => Node::new(tag::NONE, 0, 0, at),
                op::TRUE => Node::new(tag::TRUE, 0, 0, at),
                op::FALSE => Node::new(tag::FALSE, 0, 0, at),
                op::LONG => Node::new(
                    tag::LONG,
                    keep(&mut self.error, self.r.int4())? as u32,
                    0,
                    at,
                ),
                op::LONGINT | op::LONGLONG => {
                    let (p, n) = keep(&mut self.error, self.r.int_text(limits))?;
                    let t = if code == op::LONGINT {
                        tag::BIG_INT
                    } else {
                        tag::BIG_LONG
                    };
                    Node::new(t, p as u32, n as u32, at)
                }
                op::COMPLEX => {
                    let p = keep(&mut self.error, self.r.skip8())?;
                    keep(&mut self.error, self.r.skip8())?;
                    Node::new(tag::COMPLEX, p as u32, 0, at)
                }
                op::BYTES | op::PY2STRING => {
                    let (p, n) = keep(&mut self.error, self.r.blob(limits))?;
                    let t = if code == op::BYTES {
                        tag::BYTES
                    } else {
                        tag::PY2
                    };
                    Node::new(t, p as u32, n as u32, at)
                }
                op::CHANNEL => Node::new(
                    tag::CHANNEL,
                    keep(&mut self.error, self.r.int4())? as u32,
                    0,
                    at,
                ),
                op::NEWLIST => {
                    self.new_list(at)?;
                    continue;
                }
                op::NEWDICT => {
                    self.admit(1, 0)?;
                    let mut node = Node::new(tag::DICT, self.open, 0, at);
                    node.set(UNHASHABLE);
                    node.set_height(1);
                    self.open = self.depth as u32;
                    self.put(node);
                    self.fast_entries();
                    continue;
                }
                op::BUILDTUPLE => {
                    self.build(tag::TUPLE, at)?;
                    continue;
                }
                op::SET => {
                    self.build(tag::SET, at)?;
                    continue;
                }
                op::FROZENSET => {
                    self.build(tag::FROZENSET, at)?;
                    continue;
                }
                op::STOP => return self.stop(),
                other => return Err(self.fail(K::UnknownOpcode(other))),
            };
            self.admit(0, 0)?;
            self.put(node);
        }
    }

    /// The count a list announced (its `NEWLIST` operand, read again from the input).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn cap(&self, list: &Node) -> u32 {
        self.r.i32_at(list.offset() + 1) as u32
    }

    /// `INT v` right after a list whose next index is `v`: noted on the list, not kept.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn take_index(&mut self, v: i32) -> bool {
        if self.depth == 0 {
            return false;
        }
        let top = self.at(self.depth - 1);
        if top.tag() != tag::LIST || top.has(PENDING) || v < 0 || v as u32 != top.b {
            return false;
        }
        if top.b >= self.cap(&top) {
            return false;
        }
        if let Some(n) = self.s.get_mut(self.s.len().wrapping_sub(self.depth)) {
            n.set(PENDING);
        }
        self.room.begin();
        true
    }

    fn new_list(&mut self, at: u32) -> Step {
        let n = keep(&mut self.error, self.r.count())?;
        keep(&mut self.error, self.room.reserve(&self.r, n, self.limits))?;
        self.admit(1, n)?;
        let mut node = Node::new(tag::LIST, self.tape as u32, 0, at);
        node.set(UNHASHABLE);
        node.set_height(1);
        self.tape += n;
        self.put(node);
        self.fast_items();
        Ok(())
    }

    /// A list must have all its announced items before it is used.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn complete(&mut self, node: &Node) -> Step {
        if node.tag() == tag::LIST {
            let cap = self.cap(node);
            if node.b != cap {
                return Err(self.fail(K::ListIncomplete {
                    expected: cap as usize,
                    found: node.b as usize,
                }));
            }
        }
        Ok(())
    }

    /// Entries above the innermost open dict's own entries.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn free_above_open(&self) -> usize {
        if self.open == NIL {
            return self.depth;
        }
        let o = self.open as usize;
        self.depth - (o + 1 + 2 * self.at(o).b as usize)
    }

    /// Stack position of the logical entry below the one at `pos`.
    fn below(&self, pos: usize) -> usize {
        let mut o = self.open;
        while o != NIL && o as usize >= pos {
            o = self.at(o as usize).a;
        }
        if o != NIL && o as usize + 1 + 2 * self.at(o as usize).b as usize == pos {
            return o as usize;
        }
        pos.wrapping_sub(1)
    }

    fn setitem(&mut self) -> Step {
        // The logical top: the innermost open dict itself when nothing sits above its
        // entries, else the top of the stack.
        let top_is_open = self.open != NIL && self.free_above_open() == 0;
        let pv = if top_is_open {
            self.open as usize
        } else {
            self.depth.wrapping_sub(1)
        };
        // A list with its index read, right below the value: the value is its next item.
        // (A dict entry is never such a list, so the slot below is the logical entry.)
        if pv >= 1 && pv < self.depth {
            let below = self.at(pv - 1);
            if below.tag() == tag::LIST && below.has(PENDING) {
                return self.append(top_is_open);
            }
        }
        let logical = self.depth - self.children;
        if logical < 3 {
            return Err(self.fail(K::StackUnderflow {
                needed: 3,
                available: logical,
            }));
        }
        let pk = self.below(pv);
        let pt = self.below(pk);
        let (value, key, target) = (self.at(pv), self.at(pk), self.at(pt));
        if !matches!(target.tag(), tag::LIST | tag::DICT) || target.has(PENDING) {
            return Err(self.fail(K::NotAContainer));
        }
        self.complete(&value)?;
        if target.tag() == tag::LIST {
            return Err(self.list_key_error(&key, &target));
        }
        self.complete(&key)?;
        if !key.hashable() {
            return Err(self.fail(K::Unhashable));
        }
        let height = target.height().max(key.height().max(value.height()) + 1);
        if height > self.max_depth {
            return Err(self.fail(K::TooDeep {
                max: self.max_depth,
            }));
        }
        if top_is_open {
            self.close_top_dict()?;
        }
        // Key and value now sit right above the target's entries and become two more.
        let t = self.at_mut(pt)?;
        t.b += 1;
        t.set_height(height);
        self.children += 2;
        self.fast_entries();
        Ok(())
    }

    /// Why `SETITEM` on a list without a pending index fails: the index is not `INT i`
    /// for the next slot.
    #[cold]
    fn list_key_error(&mut self, key: &Node, list: &Node) -> Failed {
        let expected = list.b as usize;
        self.fail(match key.tag() {
            tag::INT | tag::LONG => K::ListIndexOutOfOrder {
                expected,
                found: i64::from(key.a as i32),
            },
            tag::BIG_INT | tag::BIG_LONG => K::ListIndexOutOfOrder {
                expected,
                found: i64::MAX,
            },
            _ => K::ListIndexNotInt,
        })
    }

    /// The top value becomes the next item of the list below it.
    fn append(&mut self, top_is_open: bool) -> Step {
        if top_is_open {
            self.close_top_dict()?;
        }
        let value = self.at(self.depth - 1);
        self.complete(&value)?;
        let list = self.at(self.depth - 2);
        let height = list.height().max(value.height() + 1);
        if height > self.max_depth {
            return Err(self.fail(K::TooDeep {
                max: self.max_depth,
            }));
        }
        let at = list.a as usize + list.b as usize;
        match self.s.get_mut(at) {
            Some(slot) if at < self.tape => *slot = value,
            _ => return Err(self.fail(K::Internal)),
        }
        self.depth -= 1;
        let l = self.at_mut(self.depth - 1)?;
        l.b += 1;
        l.clear(PENDING);
        l.set_height(height);
        self.room.end();
        self.fast_items();
        Ok(())
    }

    /// Moves the top `n` stack slots, which start at slot `from`, to the tape in push
    /// order.
    fn move_top(&mut self, from: usize, n: usize) -> Step {
        let (to, len) = (self.tape, self.s.len());
        if from + n > len || to + n > from + n {
            return Err(self.fail(K::Internal));
        }
        if !SMALL_CODE && to + n <= from {
            // Apart: one pass, reversing as it copies (the other way works in every case).
            let (tape, stack) = self.s.split_at_mut(from);
            let (Some(dst), Some(src)) = (tape.get_mut(to..to + n), stack.get(..n)) else {
                return Err(self.fail(K::Internal));
            };
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        } else {
            self.s.copy_within(from..from + n, to);
            if let Some(run) = self.s.get_mut(to..to + n) {
                run.reverse();
            }
        }
        Ok(())
    }

    /// The innermost open dict, whose entries are the top of the stack, is used: its
    /// entries go to the tape.
    fn close_top_dict(&mut self) -> Step {
        let p = self.open as usize;
        let mut d = self.at(p);
        let n = 2 * d.b as usize;
        let first = self.tape;
        self.move_top(self.s.len() - self.depth, n)?;
        self.tape += n;
        self.depth -= n;
        self.children -= n;
        self.open = d.a;
        d.a = first as u32;
        *self.at_mut(p)? = d;
        Ok(())
    }

    /// `BUILDTUPLE`, `SET`, `FROZENSET n`: the top n logical values become the members.
    fn build(&mut self, kind: u8, at: u32) -> Step {
        let n = keep(&mut self.error, self.r.count())?;
        let logical = self.depth - self.children;
        if n > logical {
            return Err(self.fail(K::StackUnderflow {
                needed: n,
                available: logical,
            }));
        }
        // Check the members, top first; find where they start on the stack.
        let (mut pos, mut o) = (self.depth, self.open);
        let (mut height, mut hashable, mut dicts) = (0, true, false);
        for _ in 0..n {
            let p = if o != NIL && o as usize + 1 + 2 * self.at(o as usize).b as usize == pos {
                let q = o as usize;
                o = self.at(q).a;
                dicts = true;
                q
            } else {
                pos - 1
            };
            let m = self.at(p);
            self.complete(&m)?;
            if kind != tag::TUPLE && !m.hashable() {
                return Err(self.fail(K::Unhashable));
            }
            hashable &= m.hashable();
            height = height.max(m.height());
            pos = p;
        }
        self.admit(height + 1, 0)?;
        let region = self.depth - pos;
        let kids = region - n;
        let first = self.tape;
        let top = self.s.len() - self.depth;
        if dicts {
            self.move_region(pos, region, kids)?;
        } else {
            self.move_top(top, n)?;
        }
        self.tape += region;
        self.depth = pos;
        self.children -= kids;
        self.open = o;
        let mut node = Node::new(kind, (first + kids) as u32, n as u32, at);
        if kind == tag::SET || !hashable {
            node.set(UNHASHABLE);
        }
        node.set_height(height + 1);
        self.put(node);
        Ok(())
    }

    /// Moves the stack from position `base` up (`region` slots: members, and after each
    /// member that is an open dict, its entries) to the tape: the dicts' entries first,
    /// each dict's in one run, then the members in one run.
    fn move_region(&mut self, base: usize, region: usize, kids: usize) -> Step {
        let (tape, len) = (self.tape, self.s.len());
        let from = len - self.depth;
        // The in-place way below works in every case; this one is quicker and bigger.
        if !SMALL_CODE && from - tape >= region {
            // Room between tape and stack: place each node straight where it belongs,
            // walking down from the top of the stack.
            let (mut member, mut child) = (tape + region, tape + kids);
            let (mut p, mut o) = (self.depth, self.open);
            while p > base {
                let q = if o != NIL && o as usize + 1 + 2 * self.at(o as usize).b as usize == p {
                    let q = o as usize;
                    let mut d = self.at(q);
                    let n = 2 * d.b as usize;
                    child -= n;
                    for j in 0..n {
                        let e = self.at(q + 1 + j);
                        *self
                            .s
                            .get_mut(child + j)
                            .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))? = e;
                    }
                    o = d.a;
                    d.a = child as u32;
                    member -= 1;
                    *self
                        .s
                        .get_mut(member)
                        .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))? = d;
                    q
                } else {
                    member -= 1;
                    let m = self.at(p - 1);
                    *self
                        .s
                        .get_mut(member)
                        .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))? = m;
                    p - 1
                };
                p = q;
            }
            return Ok(());
        }
        #[cfg(test)]
        IN_PLACE.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // No room: shift the region onto the tape (push order), then sort entries ahead
        // of members in place, keeping each group's order.
        self.move_top(from, region)?;
        let mut o = self.open;
        while o != NIL && o as usize >= base {
            let i = tape + (o as usize - base);
            let d = *self
                .s
                .get(i)
                .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))?;
            for slot in self
                .s
                .get_mut(i + 1..i + 1 + 2 * d.b as usize)
                .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))?
            {
                slot.set(CHILD);
            }
            o = d.a;
        }
        let run = self
            .s
            .get_mut(tape..tape + region)
            .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))?;
        stable_partition(run);
        let (entries, members) = run.split_at_mut(kids);
        for e in entries {
            e.clear(CHILD);
        }
        let mut next = tape;
        for m in members {
            if m.tag() == tag::DICT {
                m.a = next as u32;
                next += 2 * m.b as usize;
            }
        }
        Ok(())
    }

    fn stop(&mut self) -> Step<usize> {
        let logical = self.depth - self.children;
        if logical != 1 {
            return Err(self.fail(K::BadStopStack(logical)));
        }
        let root = self.at(0);
        self.complete(&root)?;
        if self.open != NIL {
            self.close_top_dict()?;
        }
        let root = self.at(0);
        let at = self.tape;
        *self
            .s
            .get_mut(at)
            .ok_or_else(|| failed(&mut self.error, &self.r, K::Internal))? = root;
        self.tape += 1;
        self.depth = 0;
        Ok(at)
    }
}

/// How often the in-place way of moving a tuple's members ran (tests check that both ways
/// are exercised).
#[cfg(test)]
static IN_PLACE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// On bare-metal targets flash is scarce and inputs are small: the fast paths for runs of
/// flat list items and dict entries, and the quick way of moving a tuple's members, which
/// only speed up what the general path does the same way, are left out of the build there
/// (and under `--cfg execnet_small_code`, which builds a host the same way so that the
/// tests cover what a device runs).
const SMALL_CODE: bool = cfg!(any(target_os = "none", execnet_small_code));

/// Reorders `v` so that the nodes marked [`CHILD`] come first, each group keeping its
/// order: bottom-up merging of sorted runs by rotation, O(n log n) without memory.
fn stable_partition(v: &mut [Node]) {
    let n = v.len();
    let mut width = 1;
    while width < n {
        let mut lo = 0;
        while lo + width < n {
            let mid = lo + width;
            let hi = (lo + 2 * width).min(n);
            let a = lo
                + v.get(lo..mid)
                    .map_or(0, |s| s.partition_point(|x| x.has(CHILD)));
            let b = mid
                + v.get(mid..hi)
                    .map_or(0, |s| s.partition_point(|x| x.has(CHILD)));
            if let Some(s) = v.get_mut(a..b) {
                rotate(s, mid - a);
            }
            lo = hi;
        }
        width *= 2;
    }
}

/// `s.rotate_left(k)` by three reversals: a fraction of the standard library's code,
/// which picks among several algorithms; this runs only when the storage is nearly full.
fn rotate(s: &mut [Node], k: usize) {
    if k <= s.len() {
        let (front, back) = s.split_at_mut(k);
        front.reverse();
        back.reverse();
        s.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{to_slice, Envelope};
    use crate::value::ValueRef;

    #[test]
    fn partition_keeps_both_orders() {
        let mut v: [Node; 11] = core::array::from_fn(|i| {
            let mut n = Node::new(tag::INT, i as u32, 0, 0);
            if i % 3 != 0 {
                n.set(CHILD);
            }
            n
        });
        stable_partition(&mut v);
        let order: [u32; 11] = core::array::from_fn(|i| v[i].a);
        assert_eq!(order, [1, 2, 4, 5, 7, 8, 10, 0, 3, 6, 9]);
    }

    /// Tuples whose members are dicts with entries, inside lists and dicts, decoded into
    /// every storage size from just enough to roomy: both ways of moving a tuple's
    /// members (straight into free room, or in place when there is none) give the same
    /// tape, which re-encodes to the input.
    #[test]
    fn dicts_in_tuples_in_any_storage() {
        let inputs: [&[u8]; 4] = [
            // ({1: 2}, 3)
            b"JF\x00\x00\x00\x01F\x00\x00\x00\x02PF\x00\x00\x00\x03@\x00\x00\x00\x02Q",
            // (0, {1: 2, 3: {4: 5}}, {}, {6: (7, {8: 9})})
            b"F\x00\x00\x00\x00JF\x00\x00\x00\x01F\x00\x00\x00\x02PF\x00\x00\x00\x03JF\x00\x00\x00\x04F\x00\x00\x00\x05PPJJF\x00\x00\x00\x06F\x00\x00\x00\x07JF\x00\x00\x00\x08F\x00\x00\x00\x09P@\x00\x00\x00\x02P@\x00\x00\x00\x04Q",
            // [({1: 2}, {3: 4}), 5]
            b"K\x00\x00\x00\x02F\x00\x00\x00\x00JF\x00\x00\x00\x01F\x00\x00\x00\x02PJF\x00\x00\x00\x03F\x00\x00\x00\x04P@\x00\x00\x00\x02PF\x00\x00\x00\x01F\x00\x00\x00\x05PQ",
            // {0: ({1: 2}, [3])}
            b"JF\x00\x00\x00\x00JF\x00\x00\x00\x01F\x00\x00\x00\x02PK\x00\x00\x00\x01F\x00\x00\x00\x00F\x00\x00\x00\x03P@\x00\x00\x00\x02PQ",
        ];
        let before = IN_PLACE.load(core::sync::atomic::Ordering::Relaxed);
        for input in inputs {
            let need = crate::decode::node_bound(input).unwrap();
            for size in need..need + 24 {
                let mut nodes = [Node::EMPTY; 64];
                let slots = &mut nodes[..size];
                let done = run(input, 0, slots, &Limits::DEFAULT).unwrap();
                let tape = &slots[..done.tape];
                let v = ValueRef::from_node(input, tape, &tape[done.root]);
                let mut out = [0u8; 256];
                let written = to_slice(&v, Envelope::Internal, &mut out).unwrap();
                assert_eq!(&written[..], input, "size {size}");
            }
        }
        let in_place = IN_PLACE.load(core::sync::atomic::Ordering::Relaxed) - before;
        assert!(in_place >= 8, "the in-place move ran {in_place} times");
    }
}
