//! The protocol driver: [`Engine`] (protocol state, channel table, output queue) and
//! [`Connection`] (an engine with its frame reader, for hosts that own both).

use crate::buffer::{InputBuf, OutputBuf};
use crate::encode::{Encode, Encoder};
use crate::error::EncodeError;
use crate::frame::{FrameReader, Header, Incoming, MsgCode, HEADER_LEN};
use crate::sink::Sink;
use crate::strconfig::StrConfig;

use super::messages::{
    channel_refs, parse_reconfigure, reconfigure_value, ErrorText, ExecPayload, RefusalText,
    StatusPayload,
};
use super::table::{ChannelState, ChannelTable, Entry};
use super::{ProtocolError, Refusal, Role, SendError};
use crate::frame::Frame;

/// What an incoming message means for the host. Payloads are not in the event: a host
/// reads the payload of the message it was just given with
/// [`Connection::payload`] (or from the [`Frame`] it handed to
/// [`Engine::handle_frame`]), so that it can reply while it holds it.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<D> {
    /// The master asks for the worker's status; answer with [`Engine::status_reply`].
    StatusRequest {
        /// The channel to answer on.
        channel: i32,
    },
    /// The peer changed the string config, for the whole gateway (`None`) or one
    /// channel; the engine applied it already.
    Reconfigure {
        /// The channel, or `None` for the gateway.
        channel: Option<i32>,
        /// The new config.
        config: StrConfig,
    },
    /// The peer ends the gateway; nothing more will come.
    Terminate,
    /// Execute code on a new channel (worker only); the payload is the request, read it
    /// with [`ExecRequest::decode`](super::ExecRequest::decode). The channel is in the
    /// table with the host data `D::default()`.
    Exec {
        /// The new channel.
        channel: i32,
    },
    /// One value on a channel; the payload is its encoding (internal envelope).
    Data {
        /// The channel.
        channel: i32,
        /// How its strings load on this side.
        config: StrConfig,
    },
    /// The peer will send no more on this channel (it may still receive).
    LastMessage {
        /// The channel.
        channel: i32,
    },
    /// The peer closed the channel, which is gone from the table: here is its data.
    /// With `error`, the payload is the error text (an encoded str, see
    /// [`close_error_text`](super::close_error_text)).
    Closed {
        /// The channel.
        channel: i32,
        /// Whether it was CHANNEL_CLOSE_ERROR.
        error: bool,
        /// The host's data for the channel.
        data: D,
    },
    /// This side refused one message of the peer without ending the connection: a message
    /// too large for the input buffer (its payload skipped), or a CHANNEL_EXEC beyond the
    /// channel table. The channel was closed with an error that tells the peer why (a
    /// CHANNEL_CLOSE_ERROR is queued), and its data, if it was open, is handed back.
    Refused {
        /// The channel.
        channel: i32,
        /// The refused message.
        code: MsgCode,
        /// Why.
        reason: Refusal,
        /// The host's data, when the channel was open.
        data: Option<D>,
    },
    /// A message for a channel that is closed (or a peer channel this side never knew),
    /// dropped as the reference does.
    Dropped {
        /// The message.
        code: MsgCode,
        /// The channel.
        channel: i32,
    },
}

/// A refusal whose CHANNEL_CLOSE_ERROR did not fit the output queue yet.
#[derive(Clone, Copy, Debug)]
struct Deferred {
    channel: i32,
    reason: Refusal,
}

/// The protocol state of one gateway end and its output queue: the channel table (with
/// the host's data per channel), channel numbering, string configs, and every frame to
/// send.
///
/// Incoming frames go through [`handle_frame`](Self::handle_frame) and come out as
/// [`Event`]s. Every verb ([`send`](Self::send), [`close`](Self::close),
/// [`exec`](Self::exec), [`status`](Self::status), [`reconfigure`](Self::reconfigure),
/// [`terminate`](Self::terminate), ...) either queues one whole frame or fails and leaves
/// the queue and the state as they were; [`SendError::OutputFull`] says how many bytes
/// the frame needs. The host moves queued bytes to its transport with
/// [`poll_transmit`](Self::poll_transmit) and [`transmitted`](Self::transmitted) (or
/// [`swap_transmit`](Self::swap_transmit)).
///
/// A host that owns its reader and engine together uses [`Connection`]; the std crate
/// keeps them apart so that its reader thread parses frames without holding the lock its
/// senders take.
#[derive(Debug)]
pub struct Engine<O, T> {
    role: Role,
    next_id: i32,
    /// Highest channel id of the peer's numbering seen so far.
    peer_high: i32,
    table: T,
    config: StrConfig,
    terminated: bool,
    out: O,
    queue_limit: usize,
    deferred: Option<Deferred>,
}

/// Where the engine's encoder writes: the free room of the output queue (failing with
/// `SinkFull` beyond `room`), nowhere (only counting: `room` then starts at `usize::MAX`),
/// or the host's transport. One sink type for all three, so that a value's encoding is
/// compiled once however it leaves: a device has no flash for three copies.
struct QueueSink<'q, O> {
    to: Target<'q, O>,
    room: usize,
}

enum Target<'q, O> {
    /// The output queue.
    Queue(&'q mut O),
    /// Nowhere: measuring a frame.
    Count,
    /// The host's transport ([`Engine::send_to`]).
    Transport(&'q mut dyn FnMut(&[u8]) -> Result<(), EncodeError>),
}

impl<O: OutputBuf> Sink for QueueSink<'_, O> {
    type Output = ();
    #[inline]
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.try_extend(&[byte])
    }
    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if bytes.len() > self.room {
            return Err(EncodeError::SinkFull);
        }
        self.room -= bytes.len();
        match &mut self.to {
            Target::Queue(out) => out.extend(bytes).then_some(()).ok_or(EncodeError::SinkFull),
            Target::Count => Ok(()),
            Target::Transport(write) => write(bytes),
        }
    }
    fn finalize(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Writes one payload (the value and `STOP`) into a queue's encoder. The engine queues
/// every value through this one type, so that its queueing code is compiled once, not
/// once per kind of value.
type WritePayload<'v, O> =
    dyn Fn(&mut Encoder<&mut QueueSink<'_, O>>) -> Result<(), EncodeError> + 'v;

fn payload_len(len: usize) -> Result<u32, SendError> {
    u32::try_from(len)
        .ok()
        .filter(|l| i32::try_from(*l).is_ok())
        .ok_or(SendError::Encode(EncodeError::TooLong(len)))
}

impl<O: OutputBuf, T: ChannelTable> Engine<O, T> {
    /// An engine for `role`, keeping channels in `table` and queueing output in `out`, with
    /// the gateway's string config `(True, False)`.
    pub fn new(role: Role, out: O, table: T) -> Self {
        Engine {
            role,
            next_id: role.first_id(),
            peer_high: 0,
            table,
            config: StrConfig::GATEWAY,
            terminated: false,
            out,
            queue_limit: usize::MAX,
            deferred: None,
        }
    }

    /// Caps what [`send`](Self::send) queues at `limit` bytes of queue: a value that would
    /// grow it beyond is refused with [`SendError::OutputFull`], and the host streams it
    /// with [`send_header`](Self::send_header) instead of copying it through the queue.
    /// Other frames are bounded only by the buffer.
    pub fn with_queue_limit(mut self, limit: usize) -> Self {
        self.queue_limit = limit;
        self
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The gateway's string config for loading what the peer sends.
    pub fn config(&self) -> StrConfig {
        self.config
    }

    /// The string config for loading values of channel `id`.
    pub fn channel_config(&self, id: i32) -> StrConfig {
        self.table.get(id).map_or(self.config, |e| e.state.config)
    }

    /// The protocol state of channel `id`, while it is in the table.
    pub fn channel(&self, id: i32) -> Option<ChannelState> {
        self.table.get(id).map(|e| e.state)
    }

    /// The host's data for channel `id`.
    pub fn data(&self, id: i32) -> Option<&T::Data> {
        self.table.get(id).map(|e| &e.data)
    }

    /// The host's data for channel `id`, to change.
    pub fn data_mut(&mut self, id: i32) -> Option<&mut T::Data> {
        self.table.get_mut(id).map(|e| &mut e.data)
    }

    /// The channel table.
    pub fn table(&mut self) -> &mut T {
        &mut self.table
    }

    /// Channels in the table.
    pub fn channel_count(&self) -> usize {
        self.table.len()
    }

    /// Whether either side ended the gateway.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// Whether a refusal waits for room in the output queue; a host that drives the
    /// engine itself must transmit before it hands over more frames.
    pub fn is_blocked(&self) -> bool {
        self.deferred.is_some()
    }

    fn fresh(&self) -> ChannelState {
        ChannelState {
            receiving: true,
            sending: true,
            config: self.config,
        }
    }

    // ---- output queue -------------------------------------------------------------

    /// Room in the queue for one more frame, by the buffer and `limit` on the queue.
    fn room(&self, limit: usize) -> usize {
        self.out
            .spare()
            .min(limit.saturating_sub(self.out.pending().len()))
    }

    /// Queues one frame whose payload is `value` in the internal envelope, or nothing.
    fn queue_value<V: Encode + ?Sized>(
        &mut self,
        code: MsgCode,
        channel: i32,
        value: &V,
        limit: usize,
    ) -> Result<(), SendError> {
        self.queue_payload(code, channel, limit, &|e| {
            value.encode(e)?;
            e.stop()
        })
    }

    /// The bytes `write` writes, counted without a queue.
    fn measure(write: &WritePayload<'_, O>) -> Result<usize, SendError> {
        let mut sink = QueueSink::<O> {
            to: Target::Count,
            room: usize::MAX,
        };
        write(&mut Encoder::new(&mut sink))?;
        Ok(usize::MAX - sink.room)
    }

    /// [`queue_value`](Self::queue_value) for any value.
    fn queue_payload(
        &mut self,
        code: MsgCode,
        channel: i32,
        limit: usize,
        write: &WritePayload<'_, O>,
    ) -> Result<(), SendError> {
        let start = self.out.pending().len();
        let room = self.room(limit);
        let zero = Header {
            code,
            channel,
            len: 0,
        };
        if room < HEADER_LEN || !self.out.extend(&zero.to_bytes()) {
            return Err(SendError::OutputFull {
                needed: HEADER_LEN + Self::measure(write)?,
            });
        }
        let mut sink = QueueSink {
            to: Target::Queue(&mut self.out),
            room: room - HEADER_LEN,
        };
        if let Err(err) = write(&mut Encoder::new(&mut sink)) {
            self.out.truncate(start);
            return Err(match err {
                EncodeError::SinkFull => SendError::OutputFull {
                    needed: HEADER_LEN + Self::measure(write)?,
                },
                other => SendError::Encode(other),
            });
        }
        let len = self.out.pending().len() - start - HEADER_LEN;
        match payload_len(len) {
            Ok(len) => {
                self.out
                    .patch(start, &Header { code, channel, len }.to_bytes());
                Ok(())
            }
            Err(e) => {
                self.out.truncate(start);
                Err(e)
            }
        }
    }

    /// Queues one frame with an already encoded payload, or nothing.
    fn queue_raw(&mut self, code: MsgCode, channel: i32, payload: &[u8]) -> Result<(), SendError> {
        let len = payload_len(payload.len())?;
        let needed = HEADER_LEN + payload.len();
        if needed > self.room(usize::MAX) {
            return Err(SendError::OutputFull { needed });
        }
        let start = self.out.pending().len();
        if !(self.out.extend(&Header { code, channel, len }.to_bytes()) && self.out.extend(payload))
        {
            self.out.truncate(start);
            return Err(SendError::OutputFull { needed });
        }
        Ok(())
    }

    /// Runs `f`, which queues several frames, so that either all stay or none.
    fn all_or_nothing(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let start = self.out.pending().len();
        f(self).map_err(|e| {
            let queued = self.out.pending().len() - start;
            self.out.truncate(start);
            match e {
                // The host needs room for the whole group, not only the frame that failed.
                SendError::OutputFull { needed } => SendError::OutputFull {
                    needed: needed + queued,
                },
                e => e,
            }
        })
    }

    /// The bytes waiting to be written to the transport, if any. Write some or all of
    /// them, then call [`transmitted`](Self::transmitted) with the count.
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        let p = self.out.pending();
        (!p.is_empty()).then_some(p)
    }

    /// Drops the first `n` queued bytes, which the host has written.
    pub fn transmitted(&mut self, n: usize) {
        self.out.consume(n);
        self.flush_deferred();
    }

    /// Exchanges the whole output queue for `spare` (an empty queue the host owns); the
    /// host writes what it got back. Costs no copy with `Vec<u8>` queues.
    pub fn swap_transmit(&mut self, spare: &mut O) {
        core::mem::swap(&mut self.out, spare);
        self.flush_deferred();
    }

    /// Whether output is waiting.
    pub fn has_transmit(&self) -> bool {
        !self.out.pending().is_empty()
    }

    fn flush_deferred(&mut self) {
        if let Some(d) = self.deferred {
            if self.queue_refusal(d.channel, d.reason).is_ok() {
                self.deferred = None;
            }
        }
    }

    fn queue_refusal(&mut self, channel: i32, reason: Refusal) -> Result<(), SendError> {
        self.queue_value(
            MsgCode::ChannelCloseError,
            channel,
            &RefusalText(reason),
            usize::MAX,
        )
    }

    /// Closes a peer's channel with `reason`, now or as soon as the queue has room.
    fn refuse(&mut self, channel: i32, reason: Refusal) {
        if self.queue_refusal(channel, reason).is_err() && self.deferred.is_none() {
            self.deferred = Some(Deferred { channel, reason });
        }
    }

    // ---- verbs --------------------------------------------------------------------

    fn check_alive(&self) -> Result<(), SendError> {
        if self.terminated {
            Err(SendError::Terminated)
        } else {
            Ok(())
        }
    }

    fn sendable(&self, id: i32) -> Result<(), SendError> {
        self.check_alive()?;
        match self.table.get(id) {
            Some(e) if e.state.sending => Ok(()),
            _ => Err(SendError::Closed(id)),
        }
    }

    /// Opens a channel with this side's next id, without telling the peer (it learns of
    /// it when the channel is sent inside a value).
    pub fn open_channel(&mut self, data: T::Data) -> Result<i32, SendError> {
        self.check_alive()?;
        let id = self.next_id;
        let next = id.checked_add(2).ok_or(SendError::TooManyChannels)?;
        let entry = Entry {
            state: self.fresh(),
            data,
        };
        self.table
            .insert(id, entry)
            .map_err(|_| SendError::TooManyChannels)?;
        self.next_id = next;
        Ok(id)
    }

    /// Opens a channel and queues a message on it (CHANNEL_EXEC or STATUS); neither
    /// happens if either cannot.
    fn open_with(
        &mut self,
        code: MsgCode,
        data: T::Data,
        queue: impl FnOnce(&mut Self, i32) -> Result<(), SendError>,
    ) -> Result<i32, SendError> {
        self.check_alive()?;
        if self.role != Role::Master {
            return Err(SendError::WrongRole(code));
        }
        let id = self.open_channel(data)?;
        match queue(self, id) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.table.remove(id);
                self.next_id = id;
                Err(e)
            }
        }
    }

    /// Runs code in the worker (master only): opens a channel and queues CHANNEL_EXEC
    /// with `(source, file_name, call_name, kwargs)`; `kwargs` must encode as a dict
    /// ([`NoKwargs`](super::NoKwargs) for none). Returns the new channel's id.
    pub fn exec<K: Encode + ?Sized>(
        &mut self,
        source: &str,
        file_name: Option<&str>,
        call_name: Option<&str>,
        kwargs: &K,
        data: T::Data,
    ) -> Result<i32, SendError> {
        let payload = ExecPayload {
            source,
            file_name,
            call_name,
            kwargs,
        };
        self.open_with(MsgCode::ChannelExec, data, |e, id| {
            e.queue_value(MsgCode::ChannelExec, id, &payload, usize::MAX)
        })
    }

    /// Asks the worker for its status (master only): opens the channel the answer comes
    /// on (one value, then a close) and queues STATUS.
    pub fn status(&mut self, data: T::Data) -> Result<i32, SendError> {
        self.open_with(MsgCode::Status, data, |e, id| {
            e.queue_raw(MsgCode::Status, id, &[])
        })
    }

    /// Queues a value on channel `id` (CHANNEL_DATA).
    pub fn send<V: Encode + ?Sized>(&mut self, id: i32, value: &V) -> Result<(), SendError> {
        self.sendable(id)?;
        self.queue_value(MsgCode::ChannelData, id, value, self.queue_limit)
    }

    /// Queues an already encoded value (internal envelope) on channel `id`.
    pub fn send_encoded(&mut self, id: i32, payload: &[u8]) -> Result<(), SendError> {
        self.sendable(id)?;
        self.queue_raw(MsgCode::ChannelData, id, payload)
    }

    /// Queues only the header of a CHANNEL_DATA frame of `len` payload bytes, for a value
    /// the host writes straight to its transport instead of copying it through the queue.
    ///
    /// The contract: the host transmits everything queued (this header last), then
    /// writes exactly `len` bytes of payload (the value in the internal envelope, for
    /// example with [`encode::encode`](crate::encode::encode)), and nothing else may
    /// reach the transport in between. [`send_to`](Self::send_to) does all of it for a
    /// host with one writer.
    pub fn send_header(&mut self, id: i32, len: usize) -> Result<(), SendError> {
        self.sendable(id)?;
        let len = payload_len(len)?;
        let header = Header {
            code: MsgCode::ChannelData,
            channel: id,
            len,
        };
        if self.room(usize::MAX) < HEADER_LEN || !self.out.extend(&header.to_bytes()) {
            return Err(SendError::OutputFull { needed: HEADER_LEN });
        }
        Ok(())
    }

    /// Sends a value on channel `id` straight into `sink` (the transport): whatever is
    /// queued first, then the frame, encoded once to measure and once to write. Nothing
    /// of the value passes through the queue. A sink that fails part-way leaves the
    /// stream cut mid-frame: the connection is then unusable.
    pub fn send_to<S: Sink, V: Encode + ?Sized>(
        &mut self,
        sink: &mut S,
        id: i32,
        value: &V,
    ) -> Result<(), SendError> {
        let write: &WritePayload<'_, O> = &|e| {
            value.encode(e)?;
            e.stop()
        };
        self.send_header(id, Self::measure(write)?)?;
        sink.try_extend(self.out.pending())?;
        let n = self.out.pending().len();
        self.transmitted(n);
        let mut transport = |bytes: &[u8]| sink.try_extend(bytes);
        let mut to = QueueSink::<O> {
            to: Target::Transport(&mut transport),
            room: usize::MAX,
        };
        write(&mut Encoder::new(&mut to))?;
        Ok(())
    }

    /// Announces that this side sends no more on `id` (CHANNEL_LAST_MESSAGE); it may
    /// still receive.
    pub fn last_message(&mut self, id: i32) -> Result<(), SendError> {
        self.sendable(id)?;
        self.queue_raw(MsgCode::ChannelLastMessage, id, &[])?;
        if let Some(e) = self.table.get_mut(id) {
            e.state.sending = false;
        }
        Ok(())
    }

    /// Closes channel `id` both ways: queues CHANNEL_CLOSE, or CHANNEL_CLOSE_ERROR with
    /// `error` as its text, and removes the channel, handing back its data.
    pub fn close(&mut self, id: i32, error: Option<&str>) -> Result<T::Data, SendError> {
        self.check_alive()?;
        if self.table.get(id).is_none() {
            return Err(SendError::Closed(id));
        }
        match error {
            None => self.queue_raw(MsgCode::ChannelClose, id, &[])?,
            Some(text) => {
                self.queue_value(MsgCode::ChannelCloseError, id, &ErrorText(text), usize::MAX)?
            }
        }
        self.table
            .remove(id)
            .map(|e| e.data)
            .ok_or(SendError::Closed(id))
    }

    /// Changes how this side loads what the peer sends, for the gateway (`None`) or one
    /// channel, and queues RECONFIGURE so that the peer loads what this side sends the
    /// same way (as execnet's `reconfigure` does on both ends).
    pub fn reconfigure(
        &mut self,
        channel: Option<i32>,
        config: StrConfig,
    ) -> Result<(), SendError> {
        self.check_alive()?;
        if let Some(id) = channel {
            if self.table.get(id).is_none() {
                return Err(SendError::Closed(id));
            }
        }
        self.queue_raw(
            MsgCode::Reconfigure,
            channel.unwrap_or(0),
            &reconfigure_value(config),
        )?;
        match channel {
            None => self.config = config,
            Some(id) => {
                if let Some(e) = self.table.get_mut(id) {
                    e.state.config = config;
                }
            }
        }
        Ok(())
    }

    /// Queues GATEWAY_TERMINATE; from then on every verb fails with
    /// [`SendError::Terminated`].
    pub fn terminate(&mut self) -> Result<(), SendError> {
        self.check_alive()?;
        self.queue_raw(MsgCode::GatewayTerminate, 0, &[])?;
        self.terminated = true;
        Ok(())
    }

    /// Answers a [`Event::StatusRequest`] (worker only): CHANNEL_DATA `{"numchannels": n,
    /// "numexecuting": executing, "execmodel": execmodel}` then CHANNEL_CLOSE, both or
    /// neither.
    pub fn status_reply(
        &mut self,
        channel: i32,
        executing: usize,
        execmodel: &str,
    ) -> Result<(), SendError> {
        self.check_alive()?;
        if self.role != Role::Worker {
            return Err(SendError::WrongRole(MsgCode::Status));
        }
        let payload = StatusPayload {
            channels: self.table.len(),
            executing,
            execmodel,
        };
        self.all_or_nothing(|e| {
            e.queue_value(MsgCode::ChannelData, channel, &payload, usize::MAX)?;
            e.queue_raw(MsgCode::ChannelClose, channel, &[])
        })
    }

    // ---- input --------------------------------------------------------------------

    /// Whether `id` can be a channel of the peer's numbering.
    fn peer_id(&self, id: i32) -> bool {
        id > 0 && !self.role.owns(id)
    }

    /// Registers the channels that a payload refers to (as `CHANNEL` values), as the
    /// reference does when it loads one, so that their messages, which may come before
    /// the host decodes the payload, find them.
    fn adopt_refs(&mut self, payload: &[u8])
    where
        T::Data: Default,
    {
        let mut ids = [0i32; 8];
        let mut n = 0usize;
        let mut more = false;
        channel_refs(payload, |id| match ids.get_mut(n) {
            Some(slot) => {
                *slot = id;
                n += 1;
            }
            None => more = true,
        });
        for &id in ids.iter().take(n) {
            self.adopt(id);
        }
        if more {
            // Rare: more than eight channels in one value.
            let mut skip = ids.len();
            channel_refs(payload, |id| {
                if skip > 0 {
                    skip -= 1;
                } else {
                    self.adopt(id);
                }
            });
        }
    }

    fn adopt(&mut self, id: i32)
    where
        T::Data: Default,
    {
        if self.peer_id(id) && self.table.get(id).is_none() {
            let entry = Entry {
                state: self.fresh(),
                data: T::Data::default(),
            };
            if self.table.insert(id, entry).is_ok() {
                self.peer_high = self.peer_high.max(id);
            }
        }
    }

    /// Checks that a CHANNEL_EXEC may open channel `id` (a worker, a new id of the peer's
    /// numbering), and takes the id.
    fn accept_exec_id(&mut self, id: i32) -> Result<(), ProtocolError> {
        let code = MsgCode::ChannelExec;
        if self.role != Role::Worker {
            return Err(ProtocolError::WrongDirection(code));
        }
        if !self.peer_id(id) || id <= self.peer_high || self.table.get(id).is_some() {
            return Err(ProtocolError::BadChannelId { code, channel: id });
        }
        self.peer_high = id;
        Ok(())
    }

    /// What a message for channel `id`, not in the table, means.
    fn not_open(&self, code: MsgCode, id: i32) -> Result<Event<T::Data>, ProtocolError> {
        if id <= 0 {
            return Err(ProtocolError::BadChannelId { code, channel: id });
        }
        if self.role.owns(id) && id >= self.next_id {
            return Err(ProtocolError::UnknownChannel { code, channel: id });
        }
        Ok(Event::Dropped { code, channel: id })
    }

    /// Processes one incoming frame. Its payload stays with the caller: the event says
    /// what to do with it.
    pub fn handle_frame(&mut self, frame: &Frame<'_>) -> Result<Event<T::Data>, ProtocolError>
    where
        T::Data: Default,
    {
        if self.terminated {
            return Err(ProtocolError::Terminated);
        }
        let (code, id, payload) = (frame.code, frame.channel, frame.payload);
        let empty = || {
            if payload.is_empty() {
                Ok(())
            } else {
                Err(ProtocolError::BadPayload(code))
            }
        };
        match code {
            MsgCode::Status => {
                empty()?;
                if self.role != Role::Worker {
                    return Err(ProtocolError::WrongDirection(code));
                }
                if !self.peer_id(id) {
                    return Err(ProtocolError::BadChannelId { code, channel: id });
                }
                self.peer_high = self.peer_high.max(id);
                Ok(Event::StatusRequest { channel: id })
            }
            MsgCode::Reconfigure => {
                let config = parse_reconfigure(payload).ok_or(ProtocolError::BadPayload(code))?;
                if id == 0 {
                    self.config = config;
                    return Ok(Event::Reconfigure {
                        channel: None,
                        config,
                    });
                }
                match self.table.get_mut(id) {
                    Some(e) => {
                        e.state.config = config;
                        Ok(Event::Reconfigure {
                            channel: Some(id),
                            config,
                        })
                    }
                    None => self.not_open(code, id),
                }
            }
            MsgCode::GatewayTerminate => {
                empty()?;
                self.terminated = true;
                Ok(Event::Terminate)
            }
            MsgCode::ChannelExec => {
                self.accept_exec_id(id)?;
                let entry = Entry {
                    state: self.fresh(),
                    data: T::Data::default(),
                };
                if self.table.insert(id, entry).is_err() {
                    self.refuse(id, Refusal::TooManyChannels);
                    return Ok(Event::Refused {
                        channel: id,
                        code,
                        reason: Refusal::TooManyChannels,
                        data: None,
                    });
                }
                self.adopt_refs(payload);
                Ok(Event::Exec { channel: id })
            }
            MsgCode::ChannelData => match self.table.get(id) {
                Some(e) if e.state.receiving => {
                    let config = e.state.config;
                    self.adopt_refs(payload);
                    Ok(Event::Data {
                        channel: id,
                        config,
                    })
                }
                Some(_) => Ok(Event::Dropped { code, channel: id }),
                None => self.not_open(code, id),
            },
            MsgCode::ChannelLastMessage => {
                empty()?;
                match self.table.get_mut(id) {
                    Some(e) if e.state.receiving => {
                        e.state.receiving = false;
                        Ok(Event::LastMessage { channel: id })
                    }
                    Some(_) => Ok(Event::Dropped { code, channel: id }),
                    None => self.not_open(code, id),
                }
            }
            MsgCode::ChannelClose | MsgCode::ChannelCloseError => {
                let error = code == MsgCode::ChannelCloseError;
                if !error {
                    empty()?;
                }
                match self.table.remove(id) {
                    Some(e) => Ok(Event::Closed {
                        channel: id,
                        error,
                        data: e.data,
                    }),
                    None => self.not_open(code, id),
                }
            }
        }
    }

    /// Processes the header of a message that is larger than the input buffer holds (its
    /// payload is being skipped, see [`Incoming::Oversized`]): the message is refused, and
    /// its channel, if open, closed with an error that tells the peer; `max` is the largest
    /// payload the buffer holds. Messages that are never that large in a sane stream end
    /// the connection.
    pub fn handle_oversized(
        &mut self,
        header: &Header,
        max: usize,
    ) -> Result<Event<T::Data>, ProtocolError> {
        if self.terminated {
            return Err(ProtocolError::Terminated);
        }
        let (code, id) = (header.code, header.channel);
        let reason = Refusal::TooLarge {
            len: header.len,
            max,
        };
        match code {
            MsgCode::ChannelExec => {
                self.accept_exec_id(id)?;
                self.refuse(id, reason);
                Ok(Event::Refused {
                    channel: id,
                    code,
                    reason,
                    data: None,
                })
            }
            MsgCode::ChannelData | MsgCode::ChannelCloseError => match self.table.remove(id) {
                Some(e) => {
                    if code == MsgCode::ChannelData {
                        self.refuse(id, reason);
                    }
                    Ok(Event::Refused {
                        channel: id,
                        code,
                        reason,
                        data: Some(e.data),
                    })
                }
                None => self.not_open(code, id),
            },
            _ => Err(ProtocolError::BadPayload(code)),
        }
    }
}

/// An [`Engine`] with its [`FrameReader`]: bytes in, events and bytes out, for a host
/// that owns both (one thread, or a device's main loop). It dereferences to the engine,
/// so every verb is called on the connection itself.
///
/// ```
/// use execnet_core::buffer::FixedBuf;
/// use execnet_core::engine::{Connection, Event, FixedTable, NoKwargs, Role};
///
/// let mut master = Connection::new(Role::Master, FixedBuf::<256>::new(), FixedBuf::<256>::new(),
///                                  FixedTable::<(), 4>::new(), 1 << 16);
/// let mut worker = Connection::new(Role::Worker, FixedBuf::<256>::new(), FixedBuf::<256>::new(),
///                                  FixedTable::<(), 4>::new(), 1 << 16);
/// let ch = master.exec("channel.send(42)", None, None, &NoKwargs, ())?;
/// // Move the master's bytes to the worker.
/// let n = worker.handle_bytes(master.poll_transmit().unwrap());
/// master.transmitted(n);
/// assert_eq!(worker.poll_event()?, Some(Event::Exec { channel: ch }));
/// // The worker answers while it holds the request.
/// let (request, engine) = worker.split();
/// assert!(request.starts_with(b"N\0\0\0\x10channel.send(42)"));
/// engine.send(ch, &execnet_core::ValueRef::Int(42, execnet_core::value::IntKind::Int))?;
/// engine.close(ch, None)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Connection<I, O, T> {
    reader: FrameReader<I>,
    engine: Engine<O, T>,
}

impl<I: InputBuf, O: OutputBuf, T: ChannelTable> Connection<I, O, T>
where
    T::Data: Default,
{
    /// A connection for `role` receiving into `input`, queueing output in `output`,
    /// keeping channels in `table`; messages longer than `max_message` end it (see
    /// [`FrameReader`]); messages that fit that limit but not `input` are refused one by
    /// one ([`Event::Refused`]).
    pub fn new(role: Role, input: I, output: O, table: T, max_message: u32) -> Self {
        Connection {
            reader: FrameReader::new(input, max_message),
            engine: Engine::new(role, output, table),
        }
    }

    /// Copies received bytes in; returns how many were taken (fewer than all when a fixed
    /// input buffer is full: poll events, then hand over the rest).
    pub fn handle_bytes(&mut self, data: &[u8]) -> usize {
        self.reader.feed(data)
    }

    /// Room to read the transport into directly, with no copy; follow with
    /// [`recv_commit`](Self::recv_commit).
    pub fn recv_buf(&mut self) -> &mut [u8] {
        self.reader.space(1)
    }

    /// Marks `n` bytes of [`recv_buf`](Self::recv_buf) as received.
    pub fn recv_commit(&mut self, n: usize) {
        self.reader.commit(n);
    }

    /// The next event, or `None` when more input is needed (or, with a fixed output
    /// queue, when a refusal waits for the host to transmit). The event's payload is
    /// [`payload`](Self::payload) until the next call.
    pub fn poll_event(&mut self) -> Result<Option<Event<T::Data>>, ProtocolError> {
        if self.engine.is_blocked() {
            return Ok(None);
        }
        let max = self.reader_capacity();
        // One conversion of the event into the `Option`, not one per kind of message: each
        // rebuilds the event field by field.
        let event = match self.reader.next_frame()? {
            None => return Ok(None),
            Some(Incoming::Frame(f)) => self.engine.handle_frame(&f),
            Some(Incoming::Oversized(h)) => self.engine.handle_oversized(&h, max),
        };
        event.map(Some)
    }

    fn reader_capacity(&self) -> usize {
        self.reader
            .capacity()
            .saturating_sub(HEADER_LEN)
            .min(self.reader.max_message() as usize)
    }

    /// The payload of the message of the last event (empty when it had none).
    pub fn payload(&self) -> &[u8] {
        self.reader.payload()
    }

    /// The last event's payload and the engine at once, so that a host can reply while
    /// it reads the payload (a worker answers a call without copying its arguments).
    pub fn split(&mut self) -> (&[u8], &mut Engine<O, T>) {
        (self.reader.payload(), &mut self.engine)
    }

    /// The last event's payload, moved out when it arrived in its own allocation (see
    /// [`FrameReader::with_direct_payloads`]), copied otherwise (feature `alloc`).
    #[cfg(feature = "alloc")]
    pub fn take_payload(&mut self) -> alloc::vec::Vec<u8> {
        self.reader.take_payload()
    }

    /// The frame reader.
    pub fn reader(&mut self) -> &mut FrameReader<I> {
        &mut self.reader
    }
}

impl<I, O, T> core::ops::Deref for Connection<I, O, T> {
    type Target = Engine<O, T>;
    fn deref(&self) -> &Engine<O, T> {
        &self.engine
    }
}

impl<I, O, T> core::ops::DerefMut for Connection<I, O, T> {
    fn deref_mut(&mut self) -> &mut Engine<O, T> {
        &mut self.engine
    }
}
