//! The protocol driver tested as quinn-proto tests its connections: a master and a worker
//! `Connection` in memory, a `drive` helper that moves bytes between them until both are
//! idle, and one test per protocol behaviour. No IO, no threads, no clock.

use std::collections::VecDeque;

use execnet_core::buffer::{FixedBuf, GrowBuf, InputBuf, OutputBuf};
use execnet_core::decode::decode_internal;
use execnet_core::engine::{
    close_error_text, ChannelTable, Connection, Event, ExecRequest, FixedTable, NoKwargs,
    ProtocolError, Refusal, Role, SendError,
};
use execnet_core::frame::MsgCode;
use execnet_core::{Limits, StrConfig, Value, ValueRef};

/// One end: its connection and what it has seen (each event with a copy of its payload).
struct Side<I, O, T> {
    conn: Connection<I, O, T>,
    seen: VecDeque<(Event<u32>, Vec<u8>)>,
}

impl<I: InputBuf, O: OutputBuf, T: ChannelTable<Data = u32>> Side<I, O, T> {
    fn new(conn: Connection<I, O, T>) -> Self {
        Side {
            conn,
            seen: VecDeque::new(),
        }
    }

    fn poll(&mut self) {
        while let Some(ev) = self.conn.poll_event().expect("no protocol error") {
            let payload = self.conn.payload().to_vec();
            self.seen.push_back((ev, payload));
        }
    }

    /// The next event seen, with its payload.
    fn next(&mut self) -> (Event<u32>, Vec<u8>) {
        self.seen.pop_front().expect("an event")
    }

    fn is_idle(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Moves everything `from` has queued into `to`, polling `to` whenever its input is full.
fn pump<I1, O1: OutputBuf, T1, I2: InputBuf, O2: OutputBuf, T2>(
    from: &mut Side<I1, O1, T1>,
    to: &mut Side<I2, O2, T2>,
) -> bool
where
    I1: InputBuf,
    T1: ChannelTable<Data = u32>,
    T2: ChannelTable<Data = u32>,
{
    let mut moved = false;
    while let Some(bytes) = from.conn.poll_transmit() {
        let n = to.conn.handle_bytes(bytes);
        from.conn.transmitted(n);
        to.poll();
        moved |= n > 0;
        if n == 0 {
            break;
        }
    }
    to.poll();
    moved
}

type GrowTable = std::collections::BTreeMap<i32, execnet_core::engine::Entry<u32>>;
type Growing = Connection<GrowBuf, Vec<u8>, GrowTable>;
type MasterSide = Side<GrowBuf, Vec<u8>, GrowTable>;
type Small<const IN: usize, const OUT: usize, const CH: usize> =
    Connection<FixedBuf<IN>, FixedBuf<OUT>, FixedTable<u32, CH>>;

fn master() -> MasterSide {
    let conn: Growing = Connection::new(
        Role::Master,
        GrowBuf::new(),
        Vec::new(),
        Default::default(),
        1 << 20,
    );
    Side::new(conn)
}

fn small_worker<const IN: usize, const OUT: usize, const CH: usize>(
) -> Side<FixedBuf<IN>, FixedBuf<OUT>, FixedTable<u32, CH>> {
    let conn: Small<IN, OUT, CH> = Connection::new(
        Role::Worker,
        FixedBuf::new(),
        FixedBuf::new(),
        FixedTable::new(),
        1 << 20,
    );
    Side::new(conn)
}

/// A master and a worker, wired back to back.
struct Pair<M, W> {
    master: M,
    worker: W,
}

macro_rules! drive {
    ($pair:expr) => {{
        let p = &mut $pair;
        while pump(&mut p.master, &mut p.worker) | pump(&mut p.worker, &mut p.master) {}
    }};
}

fn pair() -> Pair<MasterSide, Side<FixedBuf<512>, FixedBuf<512>, FixedTable<u32, 8>>> {
    Pair {
        master: master(),
        worker: small_worker(),
    }
}

fn value(payload: &[u8]) -> Value {
    Value::decode_internal(payload, &Limits::DEFAULT).expect("a value")
}

#[test]
fn exec_then_data_then_close() {
    let mut p = pair();
    let kwargs = Value::Dict(vec![(Value::from("n"), Value::int(3))]);
    let ch = p
        .master
        .conn
        .exec(
            "def f(channel, n): pass",
            Some("<f>"),
            Some("f"),
            &kwargs,
            7,
        )
        .unwrap();
    assert_eq!(ch, 1);
    drive!(p);
    let (ev, payload) = p.worker.next();
    assert_eq!(ev, Event::Exec { channel: ch });
    let mut nodes = Vec::new();
    let req = ExecRequest::decode(&payload, &mut nodes, &Limits::DEFAULT).unwrap();
    assert_eq!(
        (req.source, req.file_name, req.call_name),
        ("def f(channel, n): pass", Some("<f>"), Some("f"))
    );
    assert_eq!(req.kwargs.unwrap().get_str("n").unwrap().as_i64(), Some(3));

    p.worker.conn.send(ch, &Value::int(42)).unwrap();
    p.worker.conn.close(ch, None).unwrap();
    drive!(p);
    let (ev, payload) = p.master.next();
    assert_eq!(
        ev,
        Event::Data {
            channel: ch,
            config: StrConfig::GATEWAY
        }
    );
    assert_eq!(value(&payload), Value::int(42));
    let (ev, _) = p.master.next();
    assert_eq!(
        ev,
        Event::Closed {
            channel: ch,
            error: false,
            data: 7
        }
    );
    assert!(p.master.is_idle() && p.worker.is_idle());
    assert_eq!(p.master.conn.channel_count(), 0);
    assert_eq!(p.worker.conn.channel_count(), 0);
}

#[test]
fn close_with_error_carries_the_text() {
    let mut p = pair();
    let ch = p.master.conn.exec("1/0", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    p.worker.next();
    p.worker
        .conn
        .close(
            ch,
            Some("Traceback ...\nZeroDivisionError: division by zero"),
        )
        .unwrap();
    drive!(p);
    let (ev, payload) = p.master.next();
    assert!(matches!(ev, Event::Closed { channel, error: true, .. } if channel == ch));
    assert_eq!(
        close_error_text(&payload).and_then(|s| s.as_str()),
        Some("Traceback ...\nZeroDivisionError: division by zero")
    );
}

#[test]
fn last_message_ends_one_direction_only() {
    let mut p = pair();
    let ch = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    p.worker.next();
    p.worker.conn.last_message(ch).unwrap();
    assert_eq!(
        p.worker.conn.send(ch, &Value::None),
        Err(SendError::Closed(ch))
    );
    drive!(p);
    assert_eq!(p.master.next().0, Event::LastMessage { channel: ch });
    // The master may still send; the worker still receives.
    p.master.conn.send(ch, &Value::from("still")).unwrap();
    drive!(p);
    let (ev, payload) = p.worker.next();
    assert!(matches!(ev, Event::Data { channel, .. } if channel == ch));
    assert_eq!(value(&payload), Value::from("still"));
}

#[test]
fn frames_after_close_are_dropped() {
    let mut p = pair();
    let ch = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    p.worker.next();
    // Both ends act at once: the master closes while the worker still sends.
    assert_eq!(p.master.conn.close(ch, None), Ok(0));
    p.worker.conn.send(ch, &Value::int(1)).unwrap();
    drive!(p);
    assert_eq!(
        p.master.next().0,
        Event::Dropped {
            code: MsgCode::ChannelData,
            channel: ch
        }
    );
    assert!(matches!(p.worker.next().0, Event::Closed { .. }));
    assert_eq!(
        p.worker.conn.send(ch, &Value::int(2)),
        Err(SendError::Closed(ch))
    );
}

#[test]
fn reconfigure_per_channel_and_per_gateway() {
    let mut p = pair();
    let a = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    p.worker.next();
    let both = StrConfig::new(false, true);
    p.master.conn.reconfigure(Some(a), both).unwrap();
    drive!(p);
    assert_eq!(
        p.worker.next().0,
        Event::Reconfigure {
            channel: Some(a),
            config: both
        }
    );
    assert_eq!(p.worker.conn.channel_config(a), both);
    assert_eq!(p.worker.conn.config(), StrConfig::GATEWAY);
    // A gateway reconfigure applies to channels made after it, not to those that exist.
    let loads = StrConfig::LOADS;
    p.master.conn.reconfigure(None, loads).unwrap();
    let b = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    assert_eq!(
        p.worker.next().0,
        Event::Reconfigure {
            channel: None,
            config: loads
        }
    );
    assert_eq!(p.worker.next().0, Event::Exec { channel: b });
    assert_eq!(p.worker.conn.channel_config(a), both);
    assert_eq!(p.worker.conn.channel_config(b), loads);
}

#[test]
fn status_is_answered_with_a_value_and_a_close() {
    let mut p = pair();
    let a = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    let s = p.master.conn.status(5).unwrap();
    drive!(p);
    assert_eq!(p.worker.next().0, Event::Exec { channel: a });
    assert_eq!(p.worker.next().0, Event::StatusRequest { channel: s });
    p.worker.conn.status_reply(s, 1, "thread").unwrap();
    drive!(p);
    let (ev, payload) = p.master.next();
    assert!(matches!(ev, Event::Data { channel, .. } if channel == s));
    let mut nodes = Vec::new();
    let v = decode_internal(&payload, &mut nodes, &Limits::DEFAULT).unwrap();
    let ValueRef::Dict(d) = v else {
        panic!("{v:?}")
    };
    assert_eq!(d.get_str("numchannels").unwrap().as_i64(), Some(1));
    assert_eq!(d.get_str("numexecuting").unwrap().as_i64(), Some(1));
    assert_eq!(d.get_str("execmodel").unwrap().as_str(), Some("thread"));
    assert_eq!(
        p.master.next().0,
        Event::Closed {
            channel: s,
            error: false,
            data: 5
        }
    );
}

#[test]
fn terminate_stops_both_ends() {
    let mut p = pair();
    let ch = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    p.master.conn.terminate().unwrap();
    assert_eq!(
        p.master.conn.send(ch, &Value::None),
        Err(SendError::Terminated)
    );
    assert_eq!(p.master.conn.terminate(), Err(SendError::Terminated));
    drive!(p);
    assert_eq!(p.worker.next().0, Event::Exec { channel: ch });
    assert_eq!(p.worker.next().0, Event::Terminate);
    assert!(p.worker.conn.is_terminated());
    assert_eq!(
        p.worker.conn.send(ch, &Value::None),
        Err(SendError::Terminated)
    );
    // A message after GATEWAY_TERMINATE is a protocol error.
    let mut late = master();
    late.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    let n = p
        .worker
        .conn
        .handle_bytes(late.conn.poll_transmit().unwrap());
    assert!(n > 0);
    assert_eq!(p.worker.conn.poll_event(), Err(ProtocolError::Terminated));
}

#[test]
fn channels_passed_inside_values() {
    let mut p = pair();
    let ch = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    // The master passes a channel of its own to the worker.
    let extra = p.master.conn.open_channel(9).unwrap();
    p.master.conn.send(ch, &Value::Channel(extra)).unwrap();
    drive!(p);
    p.worker.next();
    assert!(matches!(p.worker.next().0, Event::Data { .. }));
    assert!(
        p.worker.conn.channel(extra).is_some(),
        "the worker knows it"
    );
    p.worker.conn.send(extra, &Value::from("on extra")).unwrap();
    // The worker opens one, passes it, and uses it at once: its first message must not
    // be dropped though the master has not decoded the value that names it yet.
    let mine = p.worker.conn.open_channel(0).unwrap();
    assert_eq!(mine, 2);
    p.worker
        .conn
        .send(ch, &Value::Tuple(vec![Value::Channel(mine)]))
        .unwrap();
    p.worker.conn.send(mine, &Value::int(5)).unwrap();
    drive!(p);
    let (ev, payload) = p.master.next();
    assert!(matches!(ev, Event::Data { channel, .. } if channel == extra));
    assert_eq!(value(&payload), Value::from("on extra"));
    assert!(matches!(p.master.next().0, Event::Data { channel, .. } if channel == ch));
    let (ev, payload) = p.master.next();
    assert!(
        matches!(ev, Event::Data { channel, .. } if channel == mine),
        "{ev:?}"
    );
    assert_eq!(value(&payload), Value::int(5));
}

#[test]
fn a_full_output_queue_leaves_the_queue_intact() {
    let mut w = small_worker::<512, 48, 4>();
    let mut m = master();
    let ch = m.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    pump(&mut m, &mut w);
    w.next();
    w.conn.send(ch, &Value::int(1)).unwrap();
    let before = w.conn.poll_transmit().unwrap().to_vec();
    let long = Value::from("x".repeat(100));
    // 9 header bytes, then N + 4-byte length + 100 bytes + STOP.
    assert_eq!(
        w.conn.send(ch, &long),
        Err(SendError::OutputFull { needed: 9 + 106 })
    );
    assert_eq!(w.conn.poll_transmit().unwrap(), &before[..]);
    // The status answer is two frames: both or neither.
    w.conn.send(ch, &Value::from("y".repeat(14))).unwrap();
    let before = w.conn.poll_transmit().unwrap().to_vec();
    assert!(matches!(
        w.conn.status_reply(99, 0, "thread"),
        Err(SendError::OutputFull { .. })
    ));
    assert_eq!(w.conn.poll_transmit().unwrap(), &before[..]);
    // What was queued still reads as whole frames.
    pump(&mut w, &mut m);
    assert_eq!(value(&m.next().1), Value::int(1));
    assert_eq!(value(&m.next().1), Value::from("y".repeat(14)));
    // A value too large for the queue goes straight to the transport.
    let mut wire = Vec::new();
    w.conn.send_to(&mut wire, ch, &long).unwrap();
    assert_eq!(m.conn.handle_bytes(&wire), wire.len());
    m.poll();
    assert_eq!(value(&m.next().1), long);
}

#[test]
fn an_oversized_frame_closes_one_channel() {
    let mut p = Pair {
        master: master(),
        worker: small_worker::<128, 256, 4>(),
    };
    let a = p.master.conn.exec("", None, None, &NoKwargs, 1).unwrap();
    let b = p.master.conn.exec("", None, None, &NoKwargs, 2).unwrap();
    drive!(p);
    p.worker.next();
    p.worker.next();
    p.master
        .conn
        .send(a, &Value::from("z".repeat(500)))
        .unwrap();
    p.master.conn.send(b, &Value::from("fits")).unwrap();
    drive!(p);
    assert_eq!(
        p.worker.next().0,
        Event::Refused {
            channel: a,
            code: MsgCode::ChannelData,
            reason: Refusal::TooLarge {
                len: 506,
                max: 128 - 9
            },
            data: Some(0)
        }
    );
    let (ev, payload) = p.worker.next();
    assert!(matches!(ev, Event::Data { channel, .. } if channel == b));
    assert_eq!(value(&payload), Value::from("fits"));
    let (ev, payload) = p.master.next();
    assert!(matches!(ev, Event::Closed { channel, error: true, data: 1 } if channel == a));
    let text = close_error_text(&payload).unwrap();
    assert!(
        text.as_str()
            .unwrap()
            .contains("larger than this side's buffer of 119 bytes"),
        "{text:?}"
    );
    // The gateway lives on: channel b still works both ways.
    p.worker.conn.send(b, &Value::int(8)).unwrap();
    drive!(p);
    assert_eq!(value(&p.master.next().1), Value::int(8));
}

#[test]
fn an_exec_beyond_the_channel_table_is_refused() {
    let mut p = Pair {
        master: master(),
        worker: small_worker::<512, 512, 1>(),
    };
    let a = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    let b = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    assert_eq!(p.worker.next().0, Event::Exec { channel: a });
    assert!(matches!(
        p.worker.next().0,
        Event::Refused {
            reason: Refusal::TooManyChannels,
            ..
        }
    ));
    assert!(
        matches!(p.master.next().0, Event::Closed { channel, error: true, .. } if channel == b)
    );
}

#[test]
fn a_message_for_a_never_opened_own_channel_ends_the_connection() {
    let mut p = pair();
    let ch = p.master.conn.exec("", None, None, &NoKwargs, 0).unwrap();
    drive!(p);
    p.worker.next();
    // The worker answers on a channel of the master's numbering that was never opened:
    // it cannot open odd channels itself, so a hostile worker writes it by hand.
    let mut hostile = master();
    let odd = hostile.conn.open_channel(0).unwrap();
    for _ in 0..4 {
        hostile.conn.open_channel(0).unwrap();
    }
    let nine = hostile.conn.open_channel(0).unwrap();
    assert_eq!((odd, nine), (1, 11));
    hostile.conn.send(nine, &Value::None).unwrap();
    let bytes = hostile.conn.poll_transmit().unwrap().to_vec();
    p.master.conn.handle_bytes(&bytes);
    assert_eq!(
        p.master.conn.poll_event(),
        Err(ProtocolError::UnknownChannel {
            code: MsgCode::ChannelData,
            channel: 11
        })
    );
    let _ = ch;
}

#[test]
fn every_verb_checks_its_role() {
    let mut w = small_worker::<64, 64, 2>();
    assert_eq!(
        w.conn.exec("", None, None, &NoKwargs, 0),
        Err(SendError::WrongRole(MsgCode::ChannelExec))
    );
    assert_eq!(w.conn.status(0), Err(SendError::WrongRole(MsgCode::Status)));
    let mut m = master();
    assert_eq!(
        m.conn.status_reply(2, 0, "thread"),
        Err(SendError::WrongRole(MsgCode::Status))
    );
    assert_eq!(m.conn.close(5, None), Err(SendError::Closed(5)));
}

#[test]
fn the_queue_limit_bounds_values_only() {
    let mut e = execnet_core::engine::Engine::new(Role::Master, Vec::new(), GrowTable::new())
        .with_queue_limit(100);
    // A long source still goes out as one CHANNEL_EXEC.
    let ch = e.exec(&"#".repeat(1000), None, None, &NoKwargs, 0).unwrap();
    let queued = e.poll_transmit().unwrap().len();
    e.transmitted(queued);
    let long = Value::from("v".repeat(200));
    assert_eq!(
        e.send(ch, &long),
        Err(SendError::OutputFull {
            needed: 9 + 5 + 200 + 1
        })
    );
    assert!(e.poll_transmit().is_none());
    e.send_header(ch, 206).unwrap();
    assert_eq!(e.poll_transmit().unwrap().len(), 9);
}
