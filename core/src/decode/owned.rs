//! The owned decoder: opcodes straight into a [`Value`], in one pass over a stack of
//! values, with no node tree in between.
//!
//! It applies exactly the rules of the borrowed decoder (the same reader, the same checks
//! in the same order, so the same error for every input), and Python's rule for equal
//! dict keys and set members as each dict is used and each set is built.

use alloc::string::String;
use alloc::vec::Vec;

use crate::decode::reader::{flat_at, index_at, Flat, ListRoom, Reader};
use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::limits::Limits;
use crate::opcode as op;
use crate::owned::{Int, Value};
use crate::pyeq::{dedup_entries, dedup_members};
use crate::strconfig::StrConfig;

/// The value is a list, dict or set, or a tuple holding one.
const UNHASHABLE: u32 = 1;
/// A list whose next index has been read.
const PENDING: u32 = 2;

/// A value on the stack with what the checks need to know about it.
struct Slot {
    value: Value,
    /// Height of the value's tree (a scalar is 0).
    height: u32,
    flags: u32,
    /// For a list: the item count `NEWLIST` announced.
    cap: u32,
}

impl Slot {
    #[inline(always)]
    fn leaf(value: Value) -> Slot {
        Slot {
            value,
            height: 0,
            flags: 0,
            cap: 0,
        }
    }

    #[inline(always)]
    fn hashable(&self) -> bool {
        self.flags & UNHASHABLE == 0
    }
}

/// Decodes the value starting at `start`; returns it and where it ended.
pub(crate) fn decode(
    input: &[u8],
    start: usize,
    limits: &Limits,
    config: StrConfig,
) -> Result<(Value, usize), DecodeError> {
    let mut d = Owned {
        r: Reader::new(input, start),
        stack: Vec::with_capacity(16),
        values: 0,
        room: ListRoom::default(),
        max_depth: limits.depth_cap(),
        limits,
        config,
    };
    let v = d.run()?;
    Ok((v, d.r.pos))
}

struct Owned<'a, 'l> {
    r: Reader<'a>,
    stack: Vec<Slot>,
    values: u32,
    room: ListRoom,
    max_depth: u32,
    limits: &'l Limits,
    config: StrConfig,
}

/// An int from validated text (`[+-]?[0-9]+`): `i64` when it fits, canonical text
/// otherwise, parsed once and with no wider type in between.
pub(crate) fn int_from_text(text: &[u8]) -> Int {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, text.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, text.get(1..).unwrap_or(&[])),
        _ => (false, text),
    };
    let zeros = digits.iter().take_while(|&&d| d == b'0').count();
    let digits = digits.get(zeros..).unwrap_or(&[]);
    if digits.len() <= 19 {
        // 19 digits fit u64; whether they fit i64 depends on the sign.
        let m = digits
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        if negative {
            if m <= 1 << 63 {
                return Int::Small(0i64.wrapping_sub_unsigned(m));
            }
        } else if let Ok(v) = i64::try_from(m) {
            return Int::Small(v);
        }
    }
    // One allocation of the exact size: the text as it came, less '+' and leading zeros.
    let canonical: &[u8] = if negative && zeros == 0 { text } else { digits };
    let s = core::str::from_utf8(canonical).unwrap_or("0");
    if negative && zeros > 0 {
        let mut t = String::with_capacity(digits.len() + 1);
        t.push('-');
        t.push_str(s);
        return Int::Big(t.into_boxed_str());
    }
    Int::Big(alloc::boxed::Box::from(s))
}

/// One scalar at the cursor, or `None` (the cursor then somewhere past it) for anything
/// else or anything wrong: the caller rewinds and lets the general path decide.
#[inline(always)]
fn scalar(r: &mut Reader<'_>, limits: &Limits) -> Option<Value> {
    let code = r.next_op()?;
    Some(match code {
        op::INT => Value::Int(Int::Small(i64::from(r.int4().ok()?))),
        op::FLOAT => Value::Float(r.f64().ok()?),
        op::PY3STRING => Value::Str(r.string(limits).ok()?),
        op::NONE => Value::None,
        op::TRUE => Value::Bool(true),
        op::FALSE => Value::Bool(false),
        op::UNICODE => Value::Unicode(r.string(limits).ok()?),
        op::BYTES => {
            let (at, len) = r.blob(limits).ok()?;
            Value::Bytes(r.bytes(at, len).to_vec())
        }
        op::LONGINT => {
            let (at, len) = r.int_text(limits).ok()?;
            Value::Int(int_from_text(r.bytes(at, len)))
        }
        _ => return None,
    })
}

impl Owned<'_, '_> {
    /// A flat item at the cursor (see [`Flat`]), through its `SETITEM`: the value and
    /// how many values it counts for, or `None` (the caller rewinds).
    #[inline(always)]
    fn flat(r: &mut Reader<'_>, limits: &Limits, config: StrConfig) -> Option<(Value, u32)> {
        let start = r.pos;
        let first = scalar(r, limits)?;
        if r.input.get(r.pos) == Some(&op::SETITEM) {
            r.pos += 1;
            return Some((first, 1));
        }
        let Flat::Members(k, code) = flat_at(r.input, start)? else {
            return None;
        };
        let mut members = Vec::with_capacity(k);
        members.push(first);
        for _ in 1..k {
            members.push(scalar(r, limits)?);
        }
        r.pos += 6;
        let v = match code {
            op::BUILDTUPLE => Value::Tuple(members),
            op::SET => Value::Set(dedup_members(members, config)),
            _ => Value::FrozenSet(dedup_members(members, config)),
        };
        Some((v, k as u32 + 1))
    }

    /// List items that are flat (a scalar, or a tuple or set of scalars), taken in a
    /// tight loop while they last, for the list on top of the stack. Each is taken only
    /// where the general path would take it, and the same way.
    fn fast_items(&mut self) {
        let (limits, config) = (self.limits, self.config);
        let max_items = limits.max_items;
        // A container item makes the list two deep.
        let deep_ok = self.max_depth >= 2;
        let (r, values, room) = (&mut self.r, &mut self.values, &mut self.room);
        let Some(Slot {
            value: Value::List(items),
            cap,
            flags,
            height,
        }) = self.stack.last_mut()
        else {
            return;
        };
        if *flags & PENDING != 0 {
            return;
        }
        let cap = *cap as usize;
        while items.len() < cap {
            let save = r.pos;
            if !index_at(r.input, save, items.len()) {
                return;
            }
            r.pos = save + 5;
            match Self::flat(r, limits, config) {
                Some((v, n)) if *values + n <= max_items && (n == 1 || deep_ok) => {
                    *values += n;
                    if n > 1 {
                        *height = (*height).max(2);
                    }
                    room.unstarted = room.unstarted.saturating_sub(1);
                    items.push(v);
                }
                _ => {
                    r.pos = save;
                    return;
                }
            }
        }
    }

    /// Dict entries of the form scalar key, flat value, `SETITEM`, for the dict on top of
    /// the stack, as [`fast_items`](Self::fast_items) does for lists.
    fn fast_entries(&mut self) {
        let (limits, config) = (self.limits, self.config);
        let max_items = limits.max_items;
        let deep_ok = self.max_depth >= 2;
        let (r, values) = (&mut self.r, &mut self.values);
        let Some(Slot {
            value: Value::Dict(entries),
            height,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        loop {
            let save = r.pos;
            let Some(k) = scalar(r, limits) else {
                r.pos = save;
                return;
            };
            let (after_key, key_code) = (r.pos, r.code);
            match Self::flat(r, limits, config) {
                Some((v, n)) if *values + n < max_items && (n == 1 || deep_ok) => {
                    *values += n + 1;
                    if n > 1 {
                        *height = (*height).max(2);
                    }
                    entries.push((k, v));
                }
                _ => {
                    // The value is not flat: the key stays, pushed as the general path
                    // would push it, which then goes on from the value.
                    r.pos = after_key;
                    if *values < max_items {
                        *values += 1;
                        let cap = if key_code == op::LONGINT { TEXT_INT } else { 0 };
                        self.stack.push(Slot {
                            value: k,
                            height: 0,
                            flags: 0,
                            cap,
                        });
                    } else {
                        r.pos = save;
                    }
                    return;
                }
            }
        }
    }

    /// Counts one more value and checks its height.
    #[inline(always)]
    fn admit(&mut self, height: u32) -> Result<(), DecodeError> {
        self.values += 1;
        if self.values > self.limits.max_items {
            return Err(self.r.err(K::TooManyItems {
                max: self.limits.max_items,
            }));
        }
        if height > self.max_depth {
            return Err(self.r.err(K::TooDeep {
                max: self.max_depth,
            }));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value, DecodeError> {
        let limits = self.limits;
        loop {
            let Some(code) = self.r.next_op() else {
                return Err(self.r.missing_stop());
            };
            let value = match code {
                op::INT => {
                    let v = self.r.int4()?;
                    if self.take_index(v) {
                        continue;
                    }
                    Value::Int(Int::Small(i64::from(v)))
                }
                op::SETITEM => {
                    self.setitem()?;
                    continue;
                }
                op::FLOAT => Value::Float(self.r.f64()?),
                op::PY3STRING => Value::Str(self.r.string(limits)?),
                op::UNICODE => Value::Unicode(self.r.string(limits)?),
                op::NONE => Value::None,
                op::TRUE => Value::Bool(true),
                op::FALSE => Value::Bool(false),
                op::LONG => Value::Long(Int::Small(i64::from(self.r.int4()?))),
                op::LONGINT | op::LONGLONG => {
                    let (at, len) = self.r.int_text(limits)?;
                    let i = int_from_text(self.r.bytes(at, len));
                    let value = if code == op::LONGINT {
                        Value::Int(i)
                    } else {
                        Value::Long(i)
                    };
                    self.admit(0)?;
                    self.stack.push(Slot {
                        value,
                        height: 0,
                        flags: 0,
                        cap: TEXT_INT,
                    });
                    continue;
                }
                op::COMPLEX => {
                    let re = self.r.f64()?;
                    Value::Complex(re, self.r.f64()?)
                }
                op::BYTES => {
                    let (at, len) = self.r.blob(limits)?;
                    Value::Bytes(self.r.bytes(at, len).to_vec())
                }
                op::PY2STRING => {
                    let (at, len) = self.r.blob(limits)?;
                    Value::Py2Str(self.r.bytes(at, len).to_vec())
                }
                op::CHANNEL => Value::Channel(self.r.int4()?),
                op::NEWLIST => {
                    let n = self.r.count()?;
                    self.room.reserve(&self.r, n, limits)?;
                    self.admit(1)?;
                    self.stack.push(Slot {
                        value: Value::List(Vec::with_capacity(n)),
                        height: 1,
                        flags: UNHASHABLE,
                        cap: n as u32,
                    });
                    self.fast_items();
                    continue;
                }
                op::NEWDICT => {
                    self.admit(1)?;
                    self.stack.push(Slot {
                        value: Value::Dict(Vec::new()),
                        height: 1,
                        flags: UNHASHABLE,
                        cap: 0,
                    });
                    self.fast_entries();
                    continue;
                }
                op::BUILDTUPLE | op::SET | op::FROZENSET => {
                    self.build(code)?;
                    continue;
                }
                op::STOP => return self.stop(),
                other => return Err(self.r.err(K::UnknownOpcode(other))),
            };
            self.admit(0)?;
            self.stack.push(Slot::leaf(value));
        }
    }

    /// `INT v` right after a list whose next index is `v`: noted on the list, not kept.
    #[inline(always)]
    fn take_index(&mut self, v: i32) -> bool {
        let Some(top) = self.stack.last_mut() else {
            return false;
        };
        let Value::List(items) = &top.value else {
            return false;
        };
        if top.flags & PENDING != 0 || v < 0 || v as usize != items.len() {
            return false;
        }
        if items.len() >= top.cap as usize {
            return false;
        }
        top.flags |= PENDING;
        self.room.begin();
        true
    }

    /// A list must have all its announced items before it is used.
    #[inline(always)]
    fn complete(&self, slot: &Slot) -> Result<(), DecodeError> {
        if let Value::List(items) = &slot.value {
            if items.len() != slot.cap as usize {
                return Err(self.r.err(K::ListIncomplete {
                    expected: slot.cap as usize,
                    found: items.len(),
                }));
            }
        }
        Ok(())
    }

    /// A value leaving the stack for a container: a dict gets Python's rule for equal
    /// keys now that no entry can be added.
    #[inline(always)]
    fn finish(&self, value: Value) -> Value {
        match value {
            Value::Dict(entries) if entries.len() > 1 => {
                Value::Dict(dedup_entries(entries, self.config))
            }
            other => other,
        }
    }

    fn setitem(&mut self) -> Result<(), DecodeError> {
        let n = self.stack.len();
        let pending = n >= 2
            && self
                .stack
                .get(n - 2)
                .is_some_and(|s| s.flags & PENDING != 0);
        if pending {
            return self.append();
        }
        if n < 3 {
            return Err(self.r.err(K::StackUnderflow {
                needed: 3,
                available: n,
            }));
        }
        let (target, key, value) = match self.stack.get(n - 3..) {
            Some([t, k, v]) => (t, k, v),
            _ => return Err(self.r.err(K::Internal)),
        };
        let is_list = match &target.value {
            Value::List(_) => true,
            Value::Dict(_) => false,
            _ => return Err(self.r.err(K::NotAContainer)),
        };
        if target.flags & PENDING != 0 {
            return Err(self.r.err(K::NotAContainer));
        }
        self.complete(value)?;
        if is_list {
            return Err(self.list_key_error(key, target));
        }
        self.complete(key)?;
        if !key.hashable() {
            return Err(self.r.err(K::Unhashable));
        }
        let height = target.height.max(key.height.max(value.height) + 1);
        if height > self.max_depth {
            return Err(self.r.err(K::TooDeep {
                max: self.max_depth,
            }));
        }
        let (Some(value), Some(key)) = (self.stack.pop(), self.stack.pop()) else {
            return Err(self.r.err(K::Internal));
        };
        let entry = (key.value, self.finish(value.value));
        match self.stack.last_mut() {
            Some(Slot {
                value: Value::Dict(entries),
                height: h,
                ..
            }) => {
                entries.push(entry);
                *h = height;
            }
            _ => return Err(self.r.err(K::Internal)),
        }
        self.fast_entries();
        Ok(())
    }

    #[cold]
    fn list_key_error(&self, key: &Slot, list: &Slot) -> DecodeError {
        let expected = match &list.value {
            Value::List(items) => items.len(),
            _ => 0,
        };
        self.r.err(match &key.value {
            Value::Int(Int::Small(i)) | Value::Long(Int::Small(i)) if key.cap != TEXT_INT => {
                K::ListIndexOutOfOrder {
                    expected,
                    found: *i,
                }
            }
            Value::Int(_) | Value::Long(_) => K::ListIndexOutOfOrder {
                expected,
                found: i64::MAX,
            },
            _ => K::ListIndexNotInt,
        })
    }

    /// The top value becomes the next item of the list below it.
    fn append(&mut self) -> Result<(), DecodeError> {
        let Some(value) = self.stack.pop() else {
            return Err(self.r.err(K::Internal));
        };
        self.complete(&value)?;
        let height = value.height + 1;
        let max_depth = self.max_depth;
        let item = self.finish(value.value);
        match self.stack.last_mut() {
            Some(Slot {
                value: Value::List(items),
                height: h,
                flags,
                ..
            }) => {
                let height = (*h).max(height);
                if height > max_depth {
                    return Err(self.r.err(K::TooDeep { max: max_depth }));
                }
                items.push(item);
                *h = height;
                *flags &= !PENDING;
            }
            _ => return Err(self.r.err(K::Internal)),
        }
        self.room.end();
        self.fast_items();
        Ok(())
    }

    fn build(&mut self, code: u8) -> Result<(), DecodeError> {
        let n = self.r.count()?;
        let len = self.stack.len();
        if n > len {
            return Err(self.r.err(K::StackUnderflow {
                needed: n,
                available: len,
            }));
        }
        let (mut height, mut hashable) = (0, true);
        for m in self.stack.get(len - n..).unwrap_or(&[]).iter().rev() {
            self.complete(m)?;
            if code != op::BUILDTUPLE && !m.hashable() {
                return Err(self.r.err(K::Unhashable));
            }
            hashable &= m.hashable();
            height = height.max(m.height);
        }
        self.admit(height + 1)?;
        let config = self.config;
        let items: Vec<Value> = self
            .stack
            .drain(len - n..)
            .map(|s| match s.value {
                Value::Dict(entries) if entries.len() > 1 => {
                    Value::Dict(dedup_entries(entries, config))
                }
                other => other,
            })
            .collect();
        let (value, flags) = match code {
            op::BUILDTUPLE => (Value::Tuple(items), if hashable { 0 } else { UNHASHABLE }),
            op::SET => (Value::Set(dedup_members(items, config)), UNHASHABLE),
            _ => (Value::FrozenSet(dedup_members(items, config)), 0),
        };
        self.stack.push(Slot {
            value,
            height: height + 1,
            flags,
            cap: 0,
        });
        Ok(())
    }

    fn stop(&mut self) -> Result<Value, DecodeError> {
        if self.stack.len() != 1 {
            return Err(self.r.err(K::BadStopStack(self.stack.len())));
        }
        let Some(root) = self.stack.pop() else {
            return Err(self.r.err(K::Internal));
        };
        self.complete(&root)?;
        Ok(self.finish(root.value))
    }
}

/// Marks (in [`Slot::cap`], unused for ints) an int that came as decimal text, which is
/// never a list index.
const TEXT_INT: u32 = 1;
