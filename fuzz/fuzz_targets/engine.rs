//! The protocol driver fed a structured sequence of operations: frames of every type, in
//! any order, on any channel id, in chunks, for both roles, mixed with every local verb.
//! Properties: no panic; a verb that fails leaves the output queue exactly as it was;
//! the queue always holds whole frames; a fixed table never holds more than its
//! capacity; after a terminate every verb is refused; ids this side opens have its
//! parity.
#![no_main]

use arbitrary::Arbitrary;
use execnet_core::buffer::FixedBuf;
use execnet_core::engine::{
    reconfigure_value, Connection, FixedTable, NoKwargs, Role, SendError,
};
use execnet_core::frame::{parse_frame, Header, MsgCode, Parsed};
use execnet_core::value::{IntKind, PyStr};
use execnet_core::{StrConfig, ValueRef};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Payload {
    Empty,
    Reconfigure(bool, bool),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Incoming {
        code: u8,
        channel: i8,
        payload: Payload,
        chunk: u8,
    },
    Open,
    Send(i8, i16),
    SendText(i8, u8),
    LastMessage(i8),
    Close(i8, bool),
    Status,
    StatusReply(i8, u8),
    Reconfigure(Option<i8>, bool, bool),
    Exec(u8),
    Terminate,
    Transmit(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    worker: bool,
    ops: Vec<Op>,
}

type Conn = Connection<FixedBuf<96>, FixedBuf<128>, FixedTable<(), 8>>;

/// Whether `bytes` is a run of whole frames.
fn whole_frames(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match parse_frame(bytes, u32::MAX >> 1) {
            Ok(Parsed::Complete(_, used)) => bytes = &bytes[used..],
            _ => return false,
        }
    }
    true
}

fuzz_target!(|input: Input| {
    let role = if input.worker {
        Role::Worker
    } else {
        Role::Master
    };
    let mut conn: Conn = Connection::new(
        role,
        FixedBuf::new(),
        FixedBuf::new(),
        FixedTable::new(),
        1 << 16,
    );
    let text = "x".repeat(300);
    // Everything transmitted so far: with what is still queued, whole frames.
    let mut wire = Vec::new();
    for op in input.ops {
        let terminated = conn.is_terminated();
        let before = conn.poll_transmit().unwrap_or(&[]).to_vec();
        let incoming = matches!(op, Op::Incoming { .. });
        let result: Result<(), SendError> = match op {
            Op::Incoming {
                code,
                channel,
                payload,
                chunk,
            } => {
                let Some(code) = MsgCode::from_byte(code % 9) else {
                    continue;
                };
                let reconf;
                let bytes: &[u8] = match &payload {
                    Payload::Empty => &[],
                    Payload::Reconfigure(a, b) => {
                        reconf = reconfigure_value(StrConfig::new(*a, *b));
                        &reconf
                    }
                    Payload::Raw(v) => v,
                };
                let mut frame = Header {
                    code,
                    channel: i32::from(channel),
                    len: bytes.len() as u32,
                }
                .to_bytes()
                .to_vec();
                frame.extend_from_slice(bytes);
                let step = usize::from(chunk % 16) + 1;
                let mut rest = &frame[..];
                while !rest.is_empty() {
                    let n = conn.handle_bytes(&rest[..step.min(rest.len())]);
                    rest = &rest[n..];
                    loop {
                        match conn.poll_event() {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            // A protocol error ends a real connection; keep going here to
                            // see that the state stays sound anyway.
                            Err(_) => return,
                        }
                    }
                    if n == 0 {
                        // Input full and blocked on output: transmit and go on.
                        let pending = conn.poll_transmit().unwrap_or(&[]).to_vec();
                        wire.extend_from_slice(&pending);
                        conn.transmitted(pending.len());
                        if conn.handle_bytes(&[]) == 0 && conn.is_blocked() {
                            return;
                        }
                    }
                }
                Ok(())
            }
            Op::Open => conn.open_channel(()).map(|id| assert!(role.owns(id))),
            Op::Send(id, v) => conn.send(
                i32::from(id),
                &ValueRef::Int(i64::from(v), IntKind::Int),
            ),
            Op::SendText(id, n) => conn.send(
                i32::from(id),
                &ValueRef::Str(PyStr::Py3(&text[..usize::from(n)])),
            ),
            Op::LastMessage(id) => conn.last_message(i32::from(id)),
            Op::Close(id, err) => conn
                .close(i32::from(id), err.then_some("ValueError: fuzz"))
                .map(|_| ()),
            Op::Status => conn.status(()).map(|id| assert!(role.owns(id))),
            Op::StatusReply(id, n) => conn.status_reply(i32::from(id), usize::from(n), "thread"),
            Op::Reconfigure(ch, a, b) => {
                conn.reconfigure(ch.map(i32::from), StrConfig::new(a, b))
            }
            Op::Exec(n) => conn
                .exec(&text[..usize::from(n)], None, None, &NoKwargs, ())
                .map(|id| assert!(role.owns(id))),
            Op::Terminate => conn.terminate(),
            Op::Transmit(n) => {
                let pending = conn.poll_transmit().unwrap_or(&[]);
                let n = usize::from(n).min(pending.len());
                wire.extend_from_slice(&pending[..n]);
                conn.transmitted(n);
                continue;
            }
        };
        if result.is_err() {
            assert_eq!(conn.poll_transmit().unwrap_or(&[]), &before[..]);
        }
        if terminated && !incoming {
            assert_eq!(result, Err(SendError::Terminated));
        }
        assert!(conn.channel_count() <= 8);
        let mut all = wire.clone();
        all.extend_from_slice(conn.poll_transmit().unwrap_or(&[]));
        assert!(whole_frames(&all), "the output is not whole frames");
    }
});
