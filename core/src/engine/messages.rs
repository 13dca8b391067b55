//! The payloads of the protocol's messages: what RECONFIGURE, CHANNEL_EXEC, the STATUS
//! answer and CHANNEL_CLOSE_ERROR carry, written and read in one place.

use crate::decode::{self, NodeStorage};
use crate::encode::{Encode, Encoder};
use crate::error::EncodeError;
use crate::frame::MsgCode;
use crate::limits::Limits;
use crate::opcode;
use crate::sink::Sink;
use crate::strconfig::StrConfig;
use crate::value::{Map, Node, PyStr, ValueRef};

use super::{ProtocolError, Refusal};

/// The RECONFIGURE payload for `config`: the tuple `(py2str_as_py3str,
/// py3str_as_py2str)` in the internal envelope (two bools, `BUILDTUPLE 2`, `STOP`).
pub fn reconfigure_value(config: StrConfig) -> [u8; 8] {
    let b = |v: bool| if v { opcode::TRUE } else { opcode::FALSE };
    [
        b(config.py2str_as_py3str),
        b(config.py3str_as_py2str),
        opcode::BUILDTUPLE,
        0,
        0,
        0,
        2,
        opcode::STOP,
    ]
}

/// Reads a RECONFIGURE payload: a tuple of two bools.
pub(crate) fn parse_reconfigure(payload: &[u8]) -> Option<StrConfig> {
    let mut nodes = [Node::EMPTY; 4];
    // As a slice: the decoder compiled for slices serves every host's own decodes too.
    let v = decode::decode_internal(payload, &mut nodes[..], &Limits::TIGHT).ok()?;
    let ValueRef::Tuple(items) = v else {
        return None;
    };
    let mut it = items.iter();
    match (it.next(), it.next(), it.next()) {
        (Some(ValueRef::Bool(a)), Some(ValueRef::Bool(b)), None) => Some(StrConfig::new(a, b)),
        _ => None,
    }
}

/// The CHANNEL_EXEC payload: `(source, file_name, call_name, kwargs)`.
pub(crate) struct ExecPayload<'r, K: ?Sized> {
    pub source: &'r str,
    pub file_name: Option<&'r str>,
    pub call_name: Option<&'r str>,
    pub kwargs: &'r K,
}

impl<K: Encode + ?Sized> Encode for ExecPayload<'_, K> {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        e.str(self.source)?;
        match self.file_name {
            Some(f) => e.str(f)?,
            None => e.none()?,
        }
        match self.call_name {
            Some(c) => e.str(c)?,
            None => e.none()?,
        }
        self.kwargs.encode(e)?;
        e.build_tuple(4)
    }
}

/// An empty dict: the keyword arguments of a plain `remote_exec`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKwargs;

impl Encode for NoKwargs {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        e.new_dict()
    }
}

/// The worker's STATUS answer: `{"numchannels": n, "numexecuting": m, "execmodel":
/// model}`.
pub(crate) struct StatusPayload<'m> {
    pub channels: usize,
    pub executing: usize,
    pub execmodel: &'m str,
}

impl Encode for StatusPayload<'_> {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        e.new_dict()?;
        e.str("numchannels")?;
        e.int(self.channels as i128)?;
        e.setitem()?;
        e.str("numexecuting")?;
        e.int(self.executing as i128)?;
        e.setitem()?;
        e.str("execmodel")?;
        e.str(self.execmodel)?;
        e.setitem()
    }
}

/// The CHANNEL_CLOSE_ERROR payload: the error text as a str.
pub(crate) struct ErrorText<'t>(pub &'t str);

impl Encode for ErrorText<'_> {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        e.str(self.0)
    }
}

/// The CHANNEL_CLOSE_ERROR payload of a refusal: `RuntimeError: ` and what
/// [`Refusal`]'s `Display` says, written without `core::fmt`, which a device that formats
/// nothing else would link (several kilobytes of flash) for this one text.
pub(crate) struct RefusalText(pub Refusal);

impl Encode for RefusalText {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        let mut text = TextBuf {
            buf: [0; 112],
            len: 0,
        };
        text.push("RuntimeError: ");
        match self.0 {
            Refusal::TooLarge { len, max } => {
                text.push("a message of ");
                text.number(len as usize);
                text.push(" bytes is larger than this side's buffer of ");
                text.number(max);
                text.push(" bytes");
            }
            Refusal::TooManyChannels => text.push("too many open channels"),
        }
        e.str(text.as_str())
    }
}

/// ASCII text in a fixed buffer, long enough for every [`RefusalText`].
struct TextBuf {
    buf: [u8; 112],
    len: usize,
}

impl TextBuf {
    fn push(&mut self, s: &str) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s.as_bytes());
            self.len += s.len();
        }
    }

    fn number(&mut self, mut n: usize) {
        // usize division is one instruction on 32-bit devices (no 64- or 128-bit helpers).
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if let Some(d) = digits.get(at..).and_then(|d| core::str::from_utf8(d).ok()) {
            self.push(d);
        }
    }

    fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("RuntimeError")
    }
}

/// The text a CHANNEL_CLOSE_ERROR payload carries (a str of any of the three kinds), or
/// `None` when the payload is not one str.
pub fn close_error_text(payload: &[u8]) -> Option<PyStr<'_>> {
    let mut nodes = [Node::EMPTY; 1];
    match decode::decode_internal(payload, &mut nodes[..], &Limits::DEFAULT) {
        Ok(ValueRef::Str(s)) => Some(s),
        _ => None,
    }
}

/// A decoded CHANNEL_EXEC payload.
#[derive(Clone, Copy, Debug)]
pub struct ExecRequest<'a, 's> {
    /// The source code.
    pub source: &'a str,
    /// The file name to compile it under, if given.
    pub file_name: Option<&'a str>,
    /// The function to call, if given.
    pub call_name: Option<&'a str>,
    /// Keyword arguments for the call (a dict).
    pub kwargs: Option<Map<'a, 's>>,
}

impl<'a, 's> ExecRequest<'a, 's> {
    /// Decodes `(source, file_name, call_name, kwargs)`.
    pub fn decode<S: NodeStorage + ?Sized>(
        payload: &'a [u8],
        storage: &'s mut S,
        limits: &Limits,
    ) -> Result<Self, ProtocolError> {
        let bad = ProtocolError::BadPayload(MsgCode::ChannelExec);
        let v = decode::decode_internal(payload, storage, limits).map_err(|_| bad)?;
        Self::from_value(v)
    }

    /// Reads `(source, file_name, call_name, kwargs)` from a payload the host decoded
    /// itself (a host that reports why a decode failed, or that owns the node storage).
    pub fn from_value(v: ValueRef<'a, 's>) -> Result<Self, ProtocolError> {
        // A constant, not one error cloned: each use is a fresh value, with no call.
        const BAD: ProtocolError = ProtocolError::BadPayload(MsgCode::ChannelExec);
        let ValueRef::Tuple(items) = v else {
            return Err(BAD);
        };
        let mut it = items.iter();
        let text = |v: Option<ValueRef<'a, 's>>| -> Result<Option<&'a str>, ProtocolError> {
            match v {
                Some(ValueRef::None) => Ok(None),
                Some(ValueRef::Str(s)) => s.as_str().map(Some).ok_or(BAD),
                _ => Err(BAD),
            }
        };
        let source = text(it.next())?.ok_or(BAD)?;
        let file_name = text(it.next())?;
        let call_name = text(it.next())?;
        let kwargs = match it.next() {
            Some(ValueRef::Dict(m)) => Some(m),
            Some(ValueRef::None) | None => None,
            Some(_) => return Err(BAD),
        };
        Ok(ExecRequest {
            source,
            file_name,
            call_name,
            kwargs,
        })
    }
}

/// Calls `f` with the id of every `CHANNEL` value in an encoded payload, by walking its
/// opcodes without building anything. A malformed payload ends the walk early: its
/// decoder reports the fault later.
pub(crate) fn channel_refs(payload: &[u8], mut f: impl FnMut(i32)) {
    let mut at = 0usize;
    let int4 = |at: usize| -> Option<i32> {
        let b = payload.get(at..)?.first_chunk::<4>()?;
        Some(i32::from_be_bytes(*b))
    };
    while let Some(&op) = payload.get(at) {
        at += 1;
        let skip = match op {
            opcode::FALSE | opcode::TRUE | opcode::NONE | opcode::NEWDICT | opcode::SETITEM => 0,
            opcode::STOP => return,
            opcode::FLOAT => 8,
            opcode::COMPLEX => 16,
            opcode::INT
            | opcode::LONG
            | opcode::NEWLIST
            | opcode::BUILDTUPLE
            | opcode::SET
            | opcode::FROZENSET => 4,
            opcode::CHANNEL => match int4(at) {
                Some(id) => {
                    f(id);
                    4
                }
                None => return,
            },
            opcode::BYTES
            | opcode::LONGINT
            | opcode::LONGLONG
            | opcode::PY2STRING
            | opcode::PY3STRING
            | opcode::UNICODE => match int4(at).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => 4 + n,
                None => return,
            },
            _ => return,
        };
        at = match at.checked_add(skip) {
            Some(a) => a,
            None => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_refs_skip_operands_that_look_like_opcodes() {
        // (b"B\0\0\0\x07", <channel 5>, 2.0)
        let mut p = alloc::vec![opcode::BYTES, 0, 0, 0, 5, b'B', 0, 0, 0, 7];
        p.extend([opcode::CHANNEL, 0, 0, 0, 5, opcode::FLOAT]);
        p.extend(2.0f64.to_be_bytes());
        p.extend([opcode::BUILDTUPLE, 0, 0, 0, 3, opcode::STOP]);
        let mut seen = alloc::vec::Vec::new();
        channel_refs(&p, |id| seen.push(id));
        assert_eq!(seen, [5]);
    }

    #[test]
    fn refusal_text_says_what_display_says() {
        use alloc::format;
        for reason in [
            Refusal::TooLarge { len: 0, max: 0 },
            Refusal::TooLarge {
                len: u32::MAX,
                max: usize::MAX,
            },
            Refusal::TooLarge {
                len: 5009,
                max: 2039,
            },
            Refusal::TooManyChannels,
        ] {
            let bytes =
                crate::encode::to_vec(&RefusalText(reason), crate::Envelope::Internal).unwrap();
            assert_eq!(
                close_error_text(&bytes).and_then(|s| s.as_str()),
                Some(format!("RuntimeError: {reason}").as_str())
            );
        }
    }

    #[test]
    fn reconfigure_round_trip() {
        for c in [
            StrConfig::LOADS,
            StrConfig::GATEWAY,
            StrConfig::new(true, true),
        ] {
            assert_eq!(parse_reconfigure(&reconfigure_value(c)), Some(c));
        }
        assert_eq!(parse_reconfigure(b"CQ"), None);
    }
}
