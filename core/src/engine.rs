//! The protocol as a sans-IO state machine: no threads, no IO, no clock.
//!
//! [`Engine`] keeps the protocol state of one gateway end: its role (the master numbers
//! its channels 1, 3, 5, …, the worker 2, 4, 6, …), each channel's life cycle, and the
//! string config for the gateway and per channel. Frames go in through
//! [`Engine::handle_frame`] and come out as [`Event`]s; everything to send is checked by
//! the engine and handed back as a [`Header`] (or whole frame) for the caller to write.
//! [`Connection`] adds byte buffering on top: `handle_bytes` in, `poll_event` and
//! `poll_transmit` out, with caller-chosen buffers, so the same code runs over a pipe
//! on a PC or a UART on a microcontroller without an allocator.
//!
//! Channel life cycle, per side: open, then (after the peer's `LAST_MESSAGE`)
//! send-only, then closed (`CLOSE` or `CLOSE_ERROR` either way). A frame for a channel
//! this side numbered but never opened is an error; for a channel that is already
//! closed it is dropped, as the reference does, and reported as [`Event::Dropped`].

use core::fmt;

use crate::decode;
use crate::frame::{ByteBuf, Frame, FrameError, FrameReader, Header, MsgCode, HEADER_LEN};
use crate::limits::Limits;
use crate::strconfig::StrConfig;
use crate::value::{Node, ValueRef};

/// Which end of the gateway this engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// The side that created the gateway: odd channel ids.
    Master,
    /// The bootstrapped side: even channel ids.
    Worker,
}

impl Role {
    const fn first_id(self) -> i32 {
        match self {
            Role::Master => 1,
            Role::Worker => 2,
        }
    }

    /// Whether `id` is numbered by this role.
    pub const fn owns(self, id: i32) -> bool {
        match self {
            Role::Master => id % 2 != 0,
            Role::Worker => id % 2 == 0,
        }
    }
}

/// Protocol state of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChannelState {
    /// The peer may still send to us.
    pub receiving: bool,
    /// We may still send.
    pub sending: bool,
    /// String config for loading this channel's data: the gateway's when the channel
    /// was created, or what a RECONFIGURE for the channel set.
    pub config: Option<StrConfig>,
}

impl ChannelState {
    const OPEN: ChannelState = ChannelState {
        receiving: true,
        sending: true,
        config: None,
    };
}

/// Where the engine keeps its channels.
pub trait ChannelTable {
    /// The state of channel `id`.
    fn get(&mut self, id: i32) -> Option<&mut ChannelState>;
    /// Adds channel `id`; `false` when the table is full.
    fn insert(&mut self, id: i32, state: ChannelState) -> bool;
    /// Removes channel `id`.
    fn remove(&mut self, id: i32);
    /// Number of channels.
    fn len(&self) -> usize;
    /// Whether there are no channels.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A table of at most `N` channels in a plain array, for hosts without an allocator.
#[derive(Clone, Debug)]
pub struct FixedTable<const N: usize> {
    slots: [Option<(i32, ChannelState)>; N],
}

impl<const N: usize> FixedTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        FixedTable { slots: [None; N] }
    }
}

impl<const N: usize> Default for FixedTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ChannelTable for FixedTable<N> {
    fn get(&mut self, id: i32) -> Option<&mut ChannelState> {
        self.slots.iter_mut().find_map(|s| match s {
            Some((i, st)) if *i == id => Some(st),
            _ => None,
        })
    }
    fn insert(&mut self, id: i32, state: ChannelState) -> bool {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some((id, state));
                true
            }
            None => false,
        }
    }
    fn remove(&mut self, id: i32) {
        for s in self.slots.iter_mut() {
            if matches!(s, Some((i, _)) if *i == id) {
                *s = None;
            }
        }
    }
    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// A growable table (feature `alloc`).
#[cfg(feature = "alloc")]
impl ChannelTable for alloc::collections::BTreeMap<i32, ChannelState> {
    fn get(&mut self, id: i32) -> Option<&mut ChannelState> {
        self.get_mut(&id)
    }
    fn insert(&mut self, id: i32, state: ChannelState) -> bool {
        alloc::collections::BTreeMap::insert(self, id, state);
        true
    }
    fn remove(&mut self, id: i32) {
        alloc::collections::BTreeMap::remove(self, &id);
    }
    fn len(&self) -> usize {
        alloc::collections::BTreeMap::len(self)
    }
}

/// A protocol violation by the peer, or a request the state does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EngineError {
    /// Bad framing.
    Frame(FrameError),
    /// A frame for a channel id this side numbers but never opened.
    UnknownChannel {
        /// The message.
        code: MsgCode,
        /// The channel id.
        channel: i32,
    },
    /// A gateway-wide message (STATUS, GATEWAY_TERMINATE) or a channel message with an
    /// id that cannot be a channel (0 or negative where it must not be).
    BadChannelId {
        /// The message.
        code: MsgCode,
        /// The channel id.
        channel: i32,
    },
    /// A message the other role sends (for example CHANNEL_EXEC sent to a master).
    WrongDirection(MsgCode),
    /// A payload that must be empty was not, or a structured payload did not decode.
    BadPayload(MsgCode),
    /// The channel table is full.
    TooManyChannels,
    /// Sending on a channel that is closed for sending.
    NotSendable(i32),
    /// The gateway has terminated.
    Terminated,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Frame(e) => write!(f, "framing error: {e}"),
            EngineError::UnknownChannel { code, channel } => write!(
                f,
                "{} for channel {channel}, which was never opened",
                code.name()
            ),
            EngineError::BadChannelId { code, channel } => {
                write!(f, "{} with invalid channel id {channel}", code.name())
            }
            EngineError::WrongDirection(code) => {
                write!(f, "{} is not sent in this direction", code.name())
            }
            EngineError::BadPayload(code) => write!(f, "malformed {} payload", code.name()),
            EngineError::TooManyChannels => f.write_str("too many open channels"),
            EngineError::NotSendable(id) => write!(f, "channel {id} is closed for sending"),
            EngineError::Terminated => f.write_str("the gateway has terminated"),
        }
    }
}

impl core::error::Error for EngineError {}

impl From<FrameError> for EngineError {
    fn from(e: FrameError) -> Self {
        EngineError::Frame(e)
    }
}

/// What an incoming frame means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The peer asks for status; a worker answers with [`Engine::status_reply`].
    StatusRequest {
        /// Channel to answer on.
        channel: i32,
    },
    /// The peer changed the string config (for the gateway when `channel` is `None`).
    Reconfigure {
        /// The channel, or `None` for the whole gateway.
        channel: Option<i32>,
        /// The new config.
        config: StrConfig,
    },
    /// The peer stops.
    Terminate,
    /// Execute code on a new channel; decode the payload with [`ExecRequest::decode`].
    Exec {
        /// The new channel.
        channel: i32,
        /// `(source, file_name, call_name, kwargs)`, internal envelope.
        payload: &'a [u8],
    },
    /// One value (internal envelope) on a channel.
    Data {
        /// The channel.
        channel: i32,
        /// The encoded value.
        payload: &'a [u8],
        /// The string config to load it with.
        config: StrConfig,
    },
    /// The peer will send no more on this channel.
    LastMessage {
        /// The channel.
        channel: i32,
    },
    /// The peer closed the channel; `error` holds the encoded traceback text when it
    /// closed with an error.
    Closed {
        /// The channel.
        channel: i32,
        /// CHANNEL_CLOSE_ERROR payload (an encoded str), if any.
        error: Option<&'a [u8]>,
    },
    /// A frame for a channel that is already closed, dropped as the reference does.
    Dropped {
        /// The message.
        code: MsgCode,
        /// The channel.
        channel: i32,
    },
}

/// The protocol state of one gateway end.
pub struct Engine<T> {
    role: Role,
    next_id: i32,
    /// Highest channel id of the peer's numbering seen so far.
    peer_high: i32,
    table: T,
    config: StrConfig,
    terminated: bool,
}

fn empty(frame: &Frame<'_>) -> Result<(), EngineError> {
    if frame.payload.is_empty() {
        Ok(())
    } else {
        Err(EngineError::BadPayload(frame.code))
    }
}

/// Decodes a RECONFIGURE payload: a tuple of two bools.
fn reconfigure_payload(payload: &[u8]) -> Option<StrConfig> {
    let mut nodes = [Node::EMPTY; 4];
    let v = decode::decode_internal(payload, &mut nodes, &Limits::TIGHT).ok()?;
    let ValueRef::Tuple(items) = v else {
        return None;
    };
    let mut it = items.iter();
    match (it.next(), it.next(), it.next()) {
        (Some(ValueRef::Bool(a)), Some(ValueRef::Bool(b)), None) => Some(StrConfig::new(a, b)),
        _ => None,
    }
}

impl<T: ChannelTable> Engine<T> {
    /// An engine for `role`, keeping channels in `table`, with the gateway default
    /// string config `(True, False)`.
    pub fn new(role: Role, table: T) -> Self {
        Engine {
            role,
            next_id: role.first_id(),
            peer_high: 0,
            table,
            config: StrConfig::GATEWAY,
            terminated: false,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The gateway-wide string config for loading what the peer sends.
    pub fn config(&self) -> StrConfig {
        self.config
    }

    /// The string config for loading data of channel `id`.
    pub fn channel_config(&mut self, id: i32) -> StrConfig {
        let gw = self.config;
        self.table.get(id).and_then(|s| s.config).unwrap_or(gw)
    }

    /// Channels open on this end.
    pub fn channel_count(&self) -> usize {
        self.table.len()
    }

    /// The state of channel `id`, if it is open in either direction.
    pub fn channel(&mut self, id: i32) -> Option<ChannelState> {
        self.table.get(id).copied()
    }

    /// Whether the gateway has terminated (either side).
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// A new channel's state: open both ways, loading with the gateway's string config
    /// as it is now (as execnet does, a later gateway reconfigure does not change
    /// channels that already exist).
    fn fresh(&self) -> ChannelState {
        ChannelState {
            config: Some(self.config),
            ..ChannelState::OPEN
        }
    }

    /// Opens a new channel with this role's next id.
    pub fn open_channel(&mut self) -> Result<i32, EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        let id = self.next_id;
        if !self.table.insert(id, self.fresh()) {
            return Err(EngineError::TooManyChannels);
        }
        self.next_id = self
            .next_id
            .checked_add(2)
            .ok_or(EngineError::TooManyChannels)?;
        Ok(id)
    }

    fn known(&mut self, code: MsgCode, id: i32) -> Result<Option<&mut ChannelState>, EngineError> {
        if id <= 0 {
            return Err(EngineError::BadChannelId { code, channel: id });
        }
        if self.table.get(id).is_some() {
            return Ok(self.table.get(id));
        }
        let ours = self.role.owns(id);
        let seen_before = if ours {
            id < self.next_id
        } else {
            id <= self.peer_high
        };
        if seen_before {
            // Closed earlier: dropped.
            return Ok(None);
        }
        if ours {
            return Err(EngineError::UnknownChannel { code, channel: id });
        }
        // The peer's numbering: a new channel.
        if !self.table.insert(id, self.fresh()) {
            return Err(EngineError::TooManyChannels);
        }
        self.peer_high = id;
        Ok(self.table.get(id))
    }

    /// Registers a channel that arrived as a `CHANNEL` value inside a payload.
    pub fn adopt_channel(&mut self, id: i32) -> Result<(), EngineError> {
        self.known(MsgCode::ChannelData, id).map(|_| ())
    }

    /// Processes one incoming frame.
    pub fn handle_frame<'a>(&mut self, frame: Frame<'a>) -> Result<Event<'a>, EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        let id = frame.channel;
        let dropped = Event::Dropped {
            code: frame.code,
            channel: id,
        };
        match frame.code {
            MsgCode::Status => {
                empty(&frame)?;
                if self.role == Role::Master {
                    return Err(EngineError::WrongDirection(frame.code));
                }
                if id <= 0 || self.role.owns(id) {
                    return Err(EngineError::BadChannelId {
                        code: frame.code,
                        channel: id,
                    });
                }
                self.peer_high = self.peer_high.max(id);
                Ok(Event::StatusRequest { channel: id })
            }
            MsgCode::Reconfigure => {
                let config = reconfigure_payload(frame.payload)
                    .ok_or(EngineError::BadPayload(frame.code))?;
                if id == 0 {
                    self.config = config;
                    return Ok(Event::Reconfigure {
                        channel: None,
                        config,
                    });
                }
                match self.known(frame.code, id)? {
                    Some(state) => {
                        state.config = Some(config);
                        Ok(Event::Reconfigure {
                            channel: Some(id),
                            config,
                        })
                    }
                    None => Ok(dropped),
                }
            }
            MsgCode::GatewayTerminate => {
                empty(&frame)?;
                self.terminated = true;
                Ok(Event::Terminate)
            }
            MsgCode::ChannelExec => {
                if self.role == Role::Master {
                    return Err(EngineError::WrongDirection(frame.code));
                }
                if id <= 0
                    || self.role.owns(id)
                    || self.table.get(id).is_some()
                    || id <= self.peer_high
                {
                    return Err(EngineError::BadChannelId {
                        code: frame.code,
                        channel: id,
                    });
                }
                self.known(frame.code, id)?;
                Ok(Event::Exec {
                    channel: id,
                    payload: frame.payload,
                })
            }
            MsgCode::ChannelData => {
                let gw = self.config;
                match self.known(frame.code, id)? {
                    Some(state) if state.receiving => Ok(Event::Data {
                        channel: id,
                        payload: frame.payload,
                        config: state.config.unwrap_or(gw),
                    }),
                    _ => Ok(dropped),
                }
            }
            MsgCode::ChannelLastMessage => {
                empty(&frame)?;
                match self.known(frame.code, id)? {
                    Some(state) if state.receiving => {
                        state.receiving = false;
                        Ok(Event::LastMessage { channel: id })
                    }
                    _ => Ok(dropped),
                }
            }
            MsgCode::ChannelClose | MsgCode::ChannelCloseError => {
                let error = if frame.code == MsgCode::ChannelCloseError {
                    Some(frame.payload)
                } else {
                    empty(&frame)?;
                    None
                };
                match self.known(frame.code, id)? {
                    Some(_) => {
                        self.table.remove(id);
                        Ok(Event::Closed { channel: id, error })
                    }
                    None => Ok(dropped),
                }
            }
        }
    }

    fn sendable(&mut self, id: i32) -> Result<&mut ChannelState, EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        match self.table.get(id) {
            Some(state) if state.sending => Ok(state),
            _ => Err(EngineError::NotSendable(id)),
        }
    }

    fn header(code: MsgCode, channel: i32, len: usize) -> Result<Header, EngineError> {
        let len = u32::try_from(len)
            .ok()
            .filter(|l| i32::try_from(*l).is_ok())
            .ok_or(EngineError::BadPayload(code))?;
        Ok(Header { code, channel, len })
    }

    /// Opens a channel and gives the CHANNEL_EXEC header for a payload of `len` bytes
    /// (master only).
    pub fn exec(&mut self, len: usize) -> Result<(i32, Header), EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        if self.role != Role::Master {
            return Err(EngineError::WrongDirection(MsgCode::ChannelExec));
        }
        let id = self.open_channel()?;
        Ok((id, Self::header(MsgCode::ChannelExec, id, len)?))
    }

    /// The CHANNEL_DATA header for `len` payload bytes on channel `id`.
    pub fn data(&mut self, id: i32, len: usize) -> Result<Header, EngineError> {
        self.sendable(id)?;
        Self::header(MsgCode::ChannelData, id, len)
    }

    /// Announces that this side sends no more on `id` (it may still receive).
    pub fn last_message(&mut self, id: i32) -> Result<Header, EngineError> {
        let state = self.sendable(id)?;
        state.sending = false;
        Self::header(MsgCode::ChannelLastMessage, id, 0)
    }

    /// Closes `id`; with `error_len`, as CHANNEL_CLOSE_ERROR with that many payload
    /// bytes (an encoded str).
    pub fn close(&mut self, id: i32, error_len: Option<usize>) -> Result<Header, EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        if self.table.get(id).is_none() {
            return Err(EngineError::NotSendable(id));
        }
        self.table.remove(id);
        match error_len {
            Some(len) => Self::header(MsgCode::ChannelCloseError, id, len),
            None => Self::header(MsgCode::ChannelClose, id, 0),
        }
    }

    /// Asks the worker for its status: opens the channel the answer comes on.
    pub fn status_request(&mut self) -> Result<(i32, Header), EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        if self.role != Role::Master {
            return Err(EngineError::WrongDirection(MsgCode::Status));
        }
        let id = self.open_channel()?;
        Ok((id, Self::header(MsgCode::Status, id, 0)?))
    }

    /// Changes the string config for loading what the peer sends, for the gateway
    /// (`None`) or one channel, and gives the RECONFIGURE message that tells the peer to
    /// use it too (as execnet's `reconfigure` does on both ends): header and payload.
    pub fn reconfigure(
        &mut self,
        channel: Option<i32>,
        config: StrConfig,
    ) -> Result<(Header, [u8; 8]), EngineError> {
        if self.terminated {
            return Err(EngineError::Terminated);
        }
        match channel {
            None => self.config = config,
            Some(id) => match self.table.get(id) {
                Some(state) => state.config = Some(config),
                None => return Err(EngineError::NotSendable(id)),
            },
        }
        let payload = reconfigure_value(config);
        let header = Self::header(MsgCode::Reconfigure, channel.unwrap_or(0), payload.len())?;
        Ok((header, payload))
    }

    /// The GATEWAY_TERMINATE header; the engine stops.
    pub fn terminate(&mut self) -> Header {
        self.terminated = true;
        Header {
            code: MsgCode::GatewayTerminate,
            channel: 0,
            len: 0,
        }
    }

    /// Writes the worker's answer to a STATUS request on `channel` into `out`:
    /// CHANNEL_DATA `{"numchannels": n, "numexecuting": m, "execmodel": "thread"}` then
    /// CHANNEL_CLOSE.
    pub fn status_reply<S: crate::sink::Sink>(
        &mut self,
        channel: i32,
        executing: usize,
        out: &mut S,
    ) -> Result<(), crate::EncodeError> {
        let channels = self.table.len();
        let mut size = crate::sink::SizeSink::default();
        write_status(
            &mut crate::encode::Encoder::new(&mut size),
            channels,
            executing,
        )?;
        let len = u32::try_from(size.0).map_err(|_| crate::EncodeError::TooLong(size.0))?;
        out.try_extend(
            &Header {
                code: MsgCode::ChannelData,
                channel,
                len,
            }
            .to_bytes(),
        )?;
        write_status(
            &mut crate::encode::Encoder::new(&mut *out),
            channels,
            executing,
        )?;
        out.try_extend(
            &Header {
                code: MsgCode::ChannelClose,
                channel,
                len: 0,
            }
            .to_bytes(),
        )
    }
}

fn write_status<S: crate::sink::Sink>(
    e: &mut crate::encode::Encoder<S>,
    channels: usize,
    executing: usize,
) -> Result<(), crate::EncodeError> {
    e.new_dict()?;
    e.str("numchannels")?;
    e.int(channels as i128)?;
    e.setitem()?;
    e.str("numexecuting")?;
    e.int(executing as i128)?;
    e.setitem()?;
    e.str("execmodel")?;
    e.str("thread")?;
    e.setitem()?;
    e.stop()
}

/// The RECONFIGURE payload for `config`: the tuple `(py2str_as_py3str,
/// py3str_as_py2str)`, internal envelope: two bools, `BUILDTUPLE 2`, `STOP`.
pub fn reconfigure_value(config: StrConfig) -> [u8; 8] {
    let b = |v: bool| {
        if v {
            crate::opcode::TRUE
        } else {
            crate::opcode::FALSE
        }
    };
    [
        b(config.py2str_as_py3str),
        b(config.py3str_as_py2str),
        crate::opcode::BUILDTUPLE,
        0,
        0,
        0,
        2,
        crate::opcode::STOP,
    ]
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
    pub kwargs: Option<crate::value::Map<'a, 's>>,
}

impl<'a, 's> ExecRequest<'a, 's> {
    /// Decodes `(source, file_name, call_name, kwargs)`.
    pub fn decode<S: decode::NodeStorage + ?Sized>(
        payload: &'a [u8],
        storage: &'s mut S,
        limits: &Limits,
    ) -> Result<Self, EngineError> {
        let bad = EngineError::BadPayload(MsgCode::ChannelExec);
        let v = decode::decode_internal(payload, storage, limits).map_err(|_| bad.clone())?;
        let ValueRef::Tuple(items) = v else {
            return Err(bad);
        };
        let mut it = items.iter();
        let text = |v: Option<ValueRef<'a, 's>>| -> Result<Option<&'a str>, EngineError> {
            match v {
                Some(ValueRef::None) => Ok(None),
                Some(ValueRef::Str(s)) => s.as_str().map(Some).ok_or(bad.clone()),
                _ => Err(bad.clone()),
            }
        };
        let source = text(it.next())?.ok_or(bad.clone())?;
        let file_name = text(it.next())?;
        let call_name = text(it.next())?;
        let kwargs = match it.next() {
            Some(ValueRef::Dict(m)) => Some(m),
            Some(ValueRef::None) | None => None,
            Some(_) => return Err(bad),
        };
        Ok(ExecRequest {
            source,
            file_name,
            call_name,
            kwargs,
        })
    }
}

/// An [`Engine`] with input and output buffers: bytes in, events and bytes out.
pub struct Connection<I, O, T> {
    engine: Engine<T>,
    reader: FrameReader<I>,
    out: O,
}

impl<I: ByteBuf, O: ByteBuf, T: ChannelTable> Connection<I, O, T> {
    /// A connection for `role` with an input buffer, an output buffer and a channel
    /// table; messages longer than `max_message` are refused.
    pub fn new(role: Role, input: I, output: O, table: T, max_message: u32) -> Self {
        Connection {
            engine: Engine::new(role, table),
            reader: FrameReader::new(input, max_message),
            out: output,
        }
    }

    /// The protocol state.
    pub fn engine(&mut self) -> &mut Engine<T> {
        &mut self.engine
    }

    /// Feeds received bytes; returns how many were taken (fewer when a fixed input
    /// buffer is full: poll events, then feed the rest).
    pub fn handle_bytes(&mut self, data: &[u8]) -> usize {
        self.reader.feed(data)
    }

    /// The next event, or `None` when more input is needed.
    pub fn poll_event(&mut self) -> Result<Option<Event<'_>>, EngineError> {
        match self.reader.next_frame()? {
            Some(frame) => self.engine.handle_frame(frame).map(Some),
            None => Ok(None),
        }
    }

    /// Copies pending output into `buf`; returns the number of bytes copied.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> usize {
        let pending = self.out.bytes();
        let n = pending.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), pending.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.out.consume(n);
        n
    }

    /// Whether output is waiting.
    pub fn has_transmit(&self) -> bool {
        !self.out.bytes().is_empty()
    }

    fn queue(&mut self, header: Header, payload: &[u8]) -> Result<(), EngineError> {
        let need = HEADER_LEN + payload.len();
        let room = self.out.append(&header.to_bytes());
        let room = room + self.out.append(payload);
        if room != need {
            return Err(EngineError::BadPayload(header.code));
        }
        Ok(())
    }

    /// Queues a value on channel `id`, encoded into `scratch` first.
    pub fn send<V: crate::encode::Encode + ?Sized>(
        &mut self,
        id: i32,
        value: &V,
        scratch: &mut [u8],
    ) -> Result<(), EngineError> {
        let bytes = crate::encode::to_slice(value, crate::Envelope::Internal, scratch)
            .map_err(|_| EngineError::BadPayload(MsgCode::ChannelData))?;
        let header = self.engine.data(id, bytes.len())?;
        self.queue(header, bytes)
    }

    /// Queues CHANNEL_CLOSE (or CHANNEL_CLOSE_ERROR with `error` text).
    pub fn close(
        &mut self,
        id: i32,
        error: Option<&str>,
        scratch: &mut [u8],
    ) -> Result<(), EngineError> {
        match error {
            None => {
                let h = self.engine.close(id, None)?;
                self.queue(h, &[])
            }
            Some(text) => {
                let bytes = crate::encode::to_slice(
                    &ValueRef::Str(crate::value::PyStr::Py3(text)),
                    crate::Envelope::Internal,
                    scratch,
                )
                .map_err(|_| EngineError::BadPayload(MsgCode::ChannelCloseError))?;
                let h = self.engine.close(id, Some(bytes.len()))?;
                self.queue(h, bytes)
            }
        }
    }

    /// Queues the answer to a STATUS request.
    pub fn status_reply(&mut self, channel: i32, executing: usize) -> Result<(), EngineError> {
        let mut sink = BufSink(&mut self.out);
        self.engine
            .status_reply(channel, executing, &mut sink)
            .map_err(|_| EngineError::BadPayload(MsgCode::Status))
    }
}

struct BufSink<'b, B>(&'b mut B);

impl<B: ByteBuf> crate::sink::Sink for BufSink<'_, B> {
    type Output = ();
    fn try_push(&mut self, byte: u8) -> Result<(), crate::EncodeError> {
        self.try_extend(&[byte])
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), crate::EncodeError> {
        if self.0.append(bytes) == bytes.len() {
            Ok(())
        } else {
            Err(crate::EncodeError::SinkFull)
        }
    }
    fn finalize(self) -> Result<(), crate::EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `engine` fuzz target: a terminated worker answered a status request
    /// with WrongDirection instead of Terminated.
    #[test]
    fn everything_after_terminate_is_terminated() {
        for role in [Role::Master, Role::Worker] {
            let mut e = Engine::new(role, FixedTable::<2>::new());
            e.terminate();
            assert_eq!(e.status_request().unwrap_err(), EngineError::Terminated);
            assert_eq!(e.exec(1).unwrap_err(), EngineError::Terminated);
            assert_eq!(e.open_channel().unwrap_err(), EngineError::Terminated);
        }
    }
}
