//! The functions a master calls by name, with keyword arguments, as it calls the Rust
//! worker's (`gw.remote_exec(add, a=1, b=2)` sends the function's source, its name and
//! the arguments; this device runs no Python, it looks the name up):
//!
//! - `echo(**kwargs)`: sends its keyword arguments back as one dict, then returns.
//! - `mirror()`: sends back every value it receives, until the master closes the
//!   channel or sends its last message.
//! - `add(a, b)`: sends `a + b` (ints of up to 70 digits, float, complex, bool; see
//!   [`arith`](crate::arith)).
//! - `info()`: sends a dict describing the device (see [`info`]).
//!
//! Each value is decoded and encoded again, never copied: what comes back went through
//! the codec both ways. Replies are encoded straight to the UART (see [`send`]). A
//! failure closes the channel with a text in Python's words (`NameError: ...`,
//! `TypeError: ...`), which the master raises as a `RemoteError`.

use execnet_core::decode;
use execnet_core::encode::{Encode, Encoder};
use execnet_core::engine::ExecRequest;
use execnet_core::sink::Sink;
use execnet_core::value::Map;
use execnet_core::{DecodeError, DecodeErrorKind, EncodeError, Node, ValueRef};

use crate::arith::Sum;
use crate::hw::{self, Uart};
use crate::serve::{Engine, Task, CHANNELS, INPUT, LIMITS, NODES, OUTPUT};
use crate::text::Text;

/// The functions, as error texts list them.
const FUNCTIONS: &str = "add, echo, info, mirror";

/// How a call ended.
pub enum Outcome<'a> {
    /// It returned: close the channel.
    Done,
    /// It goes on (a `mirror`): the channel stays open.
    Running,
    /// It raised: close the channel with an error.
    Failed(Failure<'a>),
}

impl<'a> From<Result<Outcome<'a>, Failure<'a>>> for Outcome<'a> {
    fn from(r: Result<Outcome<'a>, Failure<'a>>) -> Self {
        r.unwrap_or_else(Outcome::Failed)
    }
}

/// Why a call failed. Kept as data (names borrowed from the request) and put into words
/// once, when the channel is closed, so that no text buffer is passed around.
#[derive(Clone, Copy)]
pub enum Failure<'a> {
    /// The value needs more nodes than the device has.
    Memory {
        /// Nodes the value may need.
        needed: usize,
    },
    /// The value nests deeper than the device's limit.
    TooDeep,
    /// An int with more digits than the device's limit.
    LongInt {
        /// Its digits.
        digits: usize,
    },
    /// Any other decode failure, at this byte when the decoder knows it.
    Undecodable {
        /// Where.
        offset: Option<usize>,
    },
    /// The CHANNEL_EXEC payload is not `(source, file, name, kwargs)`.
    BadRequest,
    /// Source code without a function name.
    NoSource,
    /// A function name the device does not have.
    UnknownName(&'a str),
    /// A keyword that is not a str.
    KeywordNotStr(&'a str),
    /// A keyword the function does not take.
    UnexpectedKeyword(&'a str, &'a str),
    /// A call without some of its arguments: bit 0 for `a`, bit 1 for `b` (`add` is the
    /// one function that takes any).
    Missing(&'a str, u8),
    /// `add` on operands it does not add: their type names.
    Operands(&'static str, &'static str),
    /// An int too large for this device's float conversion.
    IntTooLargeForFloat,
    /// An int with more digits than `add` takes.
    IntTooLong,
    /// The reply could not be sent.
    CannotSend,
}

impl Failure<'_> {
    /// The error text, in Python's words, as the master's `RemoteError` shows it.
    pub fn render(&self, t: &mut Text) {
        match *self {
            Failure::Memory { needed } => {
                t.s("MemoryError: the value needs up to ")
                    .n(needed)
                    .s(" nodes to decode; this device has ")
                    .n(NODES);
            }
            Failure::TooDeep => {
                t.s("RecursionError: the value nests deeper than this device's limit of ")
                    .n(LIMITS.max_depth as usize);
            }
            Failure::LongInt { digits } => {
                t.s("ValueError: an int of ")
                    .n(digits)
                    .s(" digits is longer than this device's limit of ")
                    .n(LIMITS.max_bigint_digits as usize);
            }
            Failure::Undecodable {
                offset: Some(offset),
            } => {
                t.s("ValueError: this device cannot decode the value (byte ")
                    .n(offset)
                    .s(")");
            }
            Failure::Undecodable { offset: None } => {
                t.s("ValueError: this device cannot decode the value");
            }
            Failure::BadRequest => {
                t.s("ValueError: a CHANNEL_EXEC request that is not (source, file, name, kwargs)");
            }
            Failure::NoSource => {
                t.s("NotImplementedError: this device runs no Python source; call one of its functions by name: ")
                    .s(FUNCTIONS);
            }
            Failure::UnknownName(name) => {
                t.s("NameError: name '")
                    .s(name)
                    .s("' is not defined on this device (it has: ")
                    .s(FUNCTIONS)
                    .s(")");
            }
            Failure::KeywordNotStr(function) => {
                t.s("TypeError: ")
                    .s(function)
                    .s("() keywords must be strings");
            }
            Failure::UnexpectedKeyword(function, key) => {
                t.s("TypeError: ")
                    .s(function)
                    .s("() got an unexpected keyword argument '")
                    .s(key)
                    .s("'");
            }
            Failure::Missing(function, mask) => {
                t.s("TypeError: ").s(function).s("() missing ");
                if mask == 0b11 {
                    t.s("2 required arguments: 'a' and 'b'");
                } else {
                    t.s("1 required argument: ")
                        .s(if mask == 0b01 { "'a'" } else { "'b'" });
                }
            }
            Failure::Operands(a, b) => {
                t.s("TypeError: unsupported operand type(s) for +: '")
                    .s(a)
                    .s("' and '")
                    .s(b)
                    .s("' (this device adds int, float, complex and bool)");
            }
            Failure::IntTooLargeForFloat => {
                t.s("OverflowError: this device converts ints of up to 18 digits to float");
            }
            Failure::IntTooLong => {
                t.s("OverflowError: this device adds ints of up to ")
                    .n(crate::arith::MAX_DIGITS)
                    .s(" digits");
            }
            Failure::CannotSend => {
                t.s("RuntimeError: this device cannot send the reply");
            }
        }
    }
}

/// Every reply the device sends. One type, so that the engine's send path and the
/// encoder are compiled once for it rather than once per kind of reply.
enum Reply<'a, 's> {
    /// A value as it was decoded.
    Value(ValueRef<'a, 's>),
    /// `{}`.
    EmptyDict,
    /// The result of `add`.
    Sum(Sum),
    /// The result of `info`.
    Info(hw::StackUse),
}

impl Encode for Reply<'_, '_> {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        match self {
            Reply::Value(v) => v.encode(e),
            Reply::EmptyDict => e.new_dict(),
            Reply::Sum(s) => s.encode(e),
            Reply::Info(stack) => info(e, stack),
        }
    }
}

/// Decodes `payload` with node storage on the stack and hands the value to `f`.
///
/// The one place the firmware decodes. Nodes hold offsets into the payload, 16 bytes
/// each, so the storage is plain data that any frame can use.
fn with_value<'a, R>(
    payload: &'a [u8],
    f: impl for<'s> FnOnce(Result<ValueRef<'a, 's>, DecodeError>) -> R,
) -> R {
    let mut nodes: [Node; NODES] = [Node::EMPTY; NODES];
    f(decode::decode_internal(payload, &mut nodes[..], &LIMITS))
}

/// What a decode failure means to the master.
fn decode_failure(e: DecodeError) -> Failure<'static> {
    defmt::warn!("cannot decode a value: byte {}", e.offset);
    match e.kind {
        DecodeErrorKind::StorageFull { needed, .. } => Failure::Memory { needed },
        DecodeErrorKind::TooDeep { .. } => Failure::TooDeep,
        DecodeErrorKind::IntTooLong { digits, .. } => Failure::LongInt { digits },
        _ => Failure::Undecodable { offset: e.offset },
    }
}

/// The UART as the transport an encoder writes to.
struct UartSink<'u>(&'u mut Uart);

impl Sink for UartSink<'_> {
    type Output = ();
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.0.write(&[byte]);
        Ok(())
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.write(bytes);
        Ok(())
    }
    fn finalize(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Sends `reply` on `channel`, encoded straight to the UART behind its header (the engine
/// encodes it once to measure, then once to write).
///
/// No reply passes through the output queue: a UART write returns when the byte is out,
/// so a queue would add a copy and nothing else, and one path for every reply keeps the
/// encoder compiled once. The queue holds what the engine writes itself (closes, the
/// STATUS answer, refusals), and goes out before the header.
fn send(
    engine: &mut Engine,
    uart: &mut Uart,
    channel: i32,
    reply: &Reply<'_, '_>,
) -> Result<(), Failure<'static>> {
    engine
        .send_to(&mut UartSink(uart), channel, reply)
        .map_err(|_| {
            defmt::error!("channel {}: cannot send the reply", channel);
            Failure::CannotSend
        })
}

/// Serves a CHANNEL_EXEC: decodes the request, calls the function it names.
///
/// Not inlined: its node storage is on the stack only while it runs.
#[inline(never)]
pub fn exec<'a>(
    engine: &mut Engine,
    uart: &mut Uart,
    channel: i32,
    payload: &'a [u8],
) -> Outcome<'a> {
    with_value(payload, |v| {
        let request =
            ExecRequest::from_value(v.map_err(decode_failure)?).map_err(|_| Failure::BadRequest)?;
        let name = request.call_name.ok_or(Failure::NoSource)?;
        defmt::info!("channel {}: {=str}()", channel, name);
        let kwargs = request.kwargs;
        let reply = match name {
            "echo" => kwargs.map_or(Reply::EmptyDict, |m| Reply::Value(ValueRef::Dict(m))),
            "add" => {
                let mut ab = [None; 2];
                bind(name, &["a", "b"], kwargs, &mut ab)?;
                match &ab {
                    [Some(a), Some(b)] => Reply::Sum(crate::arith::add(a, b)?),
                    // Not reached: `bind` filled both slots or failed.
                    _ => return Err(Failure::Missing(name, 0b11)),
                }
            }
            "info" => {
                bind(name, &[], kwargs, &mut [])?;
                Reply::Info(hw::stack_use())
            }
            "mirror" => {
                bind(name, &[], kwargs, &mut [])?;
                if let Some(task) = engine.data_mut(channel) {
                    *task = Task::Mirror;
                }
                return Ok(Outcome::Running);
            }
            _ => return Err(Failure::UnknownName(name)),
        };
        send(engine, uart, channel, &reply)?;
        Ok(Outcome::Done)
    })
    .into()
}

/// Serves a value that came on a `mirror` channel: sends it back.
#[inline(never)]
pub fn mirror(
    engine: &mut Engine,
    uart: &mut Uart,
    channel: i32,
    payload: &[u8],
) -> Outcome<'static> {
    with_value(payload, |v| {
        send(
            engine,
            uart,
            channel,
            &Reply::Value(v.map_err(decode_failure)?),
        )?;
        Ok(Outcome::Running)
    })
    .into()
}

/// Binds keyword arguments to the function's parameters (`bound`, one slot each), or
/// says what Python would.
fn bind<'a, 's>(
    function: &'a str,
    params: &[&str],
    kwargs: Option<Map<'a, 's>>,
    bound: &mut [Option<ValueRef<'a, 's>>],
) -> Result<(), Failure<'a>> {
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key = key.as_str().ok_or(Failure::KeywordNotStr(function))?;
            let slot = params
                .iter()
                .position(|p| *p == key)
                .and_then(|i| bound.get_mut(i));
            *slot.ok_or(Failure::UnexpectedKeyword(function, key))? = Some(value);
        }
    }
    let mut missing = 0u8;
    for (i, b) in bound.iter().enumerate() {
        if b.is_none() {
            missing |= 1 << i;
        }
    }
    if missing != 0 {
        return Err(Failure::Missing(function, missing));
    }
    Ok(())
}

/// The figures of `info()` that are built in.
const FIXED: [(&str, usize); 7] = [
    ("input_buffer", INPUT),
    ("output_queue", OUTPUT),
    ("nodes", NODES),
    ("node_size", core::mem::size_of::<Node>()),
    ("channels", CHANNELS),
    ("max_depth", LIMITS.max_depth as usize),
    ("max_int_digits", LIMITS.max_bigint_digits as usize),
];

/// Writes the `info()` reply: a dict of what the device is and what it has.
///
/// Keys: `device`, `firmware` (name and version), `input_buffer` (bytes: the largest
/// frame, header included), `output_queue` (bytes), `nodes` (values one payload may
/// decode into), `node_size` (bytes), `channels` (open at once), `max_depth`,
/// `max_int_digits`, `stack_size`, `stack_used` (the high-water mark since reset, in
/// bytes), `stack_free`.
fn info<S: Sink>(e: &mut Encoder<S>, stack: &hw::StackUse) -> Result<(), EncodeError> {
    e.new_dict()?;
    e.str("device")?;
    e.str("LM3S6965 (Cortex-M3), QEMU lm3s6965evb")?;
    e.setitem()?;
    e.str("firmware")?;
    e.str(concat!("execnet-firmware ", env!("CARGO_PKG_VERSION")))?;
    e.setitem()?;
    let measured = [
        ("stack_size", stack.size),
        ("stack_used", stack.used),
        ("stack_free", stack.size - stack.used),
    ];
    for &(key, value) in FIXED.iter().chain(measured.iter()) {
        e.str(key)?;
        // All of these are far below 2**31.
        e.int32(value as i32, execnet_core::value::IntKind::Int)?;
        e.setitem()?;
    }
    Ok(())
}
