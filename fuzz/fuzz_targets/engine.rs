//! The engine fed a structured sequence of operations: frames of every type, in any
//! order, on any channel id, for both roles, mixed with local sends and closes.
//! Properties: no panic; a fixed table never holds more than its capacity; after a
//! terminate, every call is refused; ids this side opens have its parity.
#![no_main]

use arbitrary::Arbitrary;
use execnet_core::engine::{reconfigure_value, Engine, EngineError, FixedTable, Role};
use execnet_core::frame::{Frame, MsgCode};
use execnet_core::StrConfig;
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
    },
    Open,
    Data(i8),
    LastMessage(i8),
    Close(i8, bool),
    Status,
    Reconfigure(Option<i8>, bool, bool),
    Exec,
    Terminate,
}

#[derive(Arbitrary, Debug)]
struct Input {
    worker: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let role = if input.worker {
        Role::Worker
    } else {
        Role::Master
    };
    let mut engine = Engine::new(role, FixedTable::<8>::new());
    let mut terminated = false;
    for op in input.ops {
        let result: Result<(), EngineError> = match op {
            Op::Incoming {
                code,
                channel,
                payload,
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
                engine
                    .handle_frame(Frame {
                        code,
                        channel: i32::from(channel),
                        payload: bytes,
                    })
                    .map(|_| ())
            }
            Op::Open => engine.open_channel().map(|id| assert!(role.owns(id))),
            Op::Data(id) => engine.data(i32::from(id), 3).map(|_| ()),
            Op::LastMessage(id) => engine.last_message(i32::from(id)).map(|_| ()),
            Op::Close(id, err) => engine.close(i32::from(id), err.then_some(5)).map(|_| ()),
            Op::Status => engine
                .status_request()
                .map(|(id, _)| assert!(role.owns(id))),
            Op::Reconfigure(ch, a, b) => engine
                .reconfigure(ch.map(i32::from), StrConfig::new(a, b))
                .map(|_| ()),
            Op::Exec => engine.exec(10).map(|(id, _)| assert!(role.owns(id))),
            Op::Terminate => {
                engine.terminate();
                terminated = true;
                continue;
            }
        };
        if terminated {
            assert_eq!(result, Err(EngineError::Terminated));
        }
        terminated = engine.is_terminated();
        assert!(engine.channel_count() <= 8);
    }
});
