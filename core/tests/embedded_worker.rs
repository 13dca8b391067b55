//! The worker logic as a device without an OS would run it: the sans-IO engine behind an
//! in-memory `embedded-io` byte stream, with fixed buffers, a fixed channel table, node
//! arrays and slice sinks only. Nothing here allocates: no `Vec`, no `Box`, no `String`.

use embedded_io::{ErrorType, Read, Write};
use execnet_core::buffer::FixedBuf;
use execnet_core::decode::decode_internal;
use execnet_core::encode::{to_slice, Encoder, Envelope};
use execnet_core::engine::{reconfigure_value, Connection, Event, ExecRequest, FixedTable, Role};
use execnet_core::frame::{Header, MsgCode, HEADER_LEN};
use execnet_core::sink::SliceSink;
use execnet_core::{Limits, Node, StrConfig, ValueRef};

/// A one-way in-memory byte pipe with a fixed capacity (a UART's FIFO, say).
struct Fifo<const N: usize> {
    data: [u8; N],
    read: usize,
    write: usize,
}

impl<const N: usize> Fifo<N> {
    const fn new() -> Self {
        Fifo {
            data: [0; N],
            read: 0,
            write: 0,
        }
    }
}

impl<const N: usize> ErrorType for Fifo<N> {
    type Error = core::convert::Infallible;
}

impl<const N: usize> Read for Fifo<N> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = (self.write - self.read).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

impl<const N: usize> Write for Fifo<N> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = (N - self.write).min(buf.len());
        self.data[self.write..self.write + n].copy_from_slice(&buf[..n]);
        self.write += n;
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

type Worker = Connection<FixedBuf<512>, FixedBuf<512>, FixedTable<(), 4>>;

/// One step of the device's main loop: move bytes in, handle every event, move bytes out.
fn step(worker: &mut Worker, rx: &mut impl Read, tx: &mut impl Write) {
    let mut chunk = [0u8; 7]; // a small UART read, to exercise partial frames
    loop {
        let n = rx.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(worker.handle_bytes(&chunk[..n]), n);
        while let Some(event) = worker.poll_event().unwrap() {
            match event {
                Event::StatusRequest { channel } => {
                    worker.status_reply(channel, 0, "thread").unwrap();
                }
                Event::Exec { channel } => {
                    // The reply is queued while the request is still held: no copy.
                    let (payload, engine) = worker.split();
                    let mut nodes = [Node::EMPTY; 16];
                    let req = ExecRequest::decode(payload, &mut nodes[..], &Limits::TIGHT).unwrap();
                    match req.call_name {
                        Some("add") => {
                            let kwargs = req.kwargs.unwrap();
                            let a = kwargs.get_str("a").and_then(|v| v.as_i64()).unwrap();
                            let b = kwargs.get_str("b").and_then(|v| v.as_i64()).unwrap();
                            let sum = ValueRef::Int(a + b, execnet_core::value::IntKind::Int);
                            engine.send(channel, &sum).unwrap();
                            engine.close(channel, None).unwrap();
                        }
                        _ => {
                            engine
                                .close(channel, Some("RuntimeError: no such function"))
                                .unwrap();
                        }
                    }
                }
                Event::Terminate => return,
                _ => {}
            }
        }
        while let Some(out) = worker.poll_transmit() {
            let n = out.len().min(64); // a small UART write
            tx.write_all(&out[..n]).unwrap();
            worker.transmitted(n);
        }
    }
}

/// Writes one master frame into the device's input.
fn send_frame(to_device: &mut impl Write, code: MsgCode, channel: i32, payload: &[u8]) {
    let header = Header {
        code,
        channel,
        len: payload.len() as u32,
    };
    to_device.write_all(&header.to_bytes()).unwrap();
    to_device.write_all(payload).unwrap();
}

/// Reads the frames the device wrote: (code, channel, payload range in `buf`).
fn frames(buf: &[u8]) -> impl Iterator<Item = (MsgCode, i32, &[u8])> {
    let mut at = 0;
    core::iter::from_fn(move || {
        let head: &[u8; HEADER_LEN] = buf.get(at..at + HEADER_LEN)?.try_into().ok()?;
        let h = Header::parse(head, 1 << 16).unwrap();
        let payload = &buf[at + HEADER_LEN..at + HEADER_LEN + h.len as usize];
        at += HEADER_LEN + h.len as usize;
        Some((h.code, h.channel, payload))
    })
}

#[test]
fn worker_engine_over_embedded_io_without_allocation() {
    let mut to_device = Fifo::<1024>::new();
    let mut from_device = Fifo::<1024>::new();
    let mut worker: Worker = Connection::new(
        Role::Worker,
        FixedBuf::new(),
        FixedBuf::new(),
        FixedTable::new(),
        512,
    );

    // CHANNEL_EXEC on channel 1: ("", None, "add", {"a": 40, "b": 2}).
    let mut payload = [0u8; 128];
    let len = {
        let mut e = Encoder::new(SliceSink::new(&mut payload));
        e.str("").unwrap();
        e.none().unwrap();
        e.str("add").unwrap();
        e.new_dict().unwrap();
        e.str("a").unwrap();
        e.int(40).unwrap();
        e.setitem().unwrap();
        e.str("b").unwrap();
        e.int(2).unwrap();
        e.setitem().unwrap();
        e.build_tuple(4).unwrap();
        e.stop().unwrap();
        e.finish().unwrap().len()
    };
    send_frame(&mut to_device, MsgCode::ChannelExec, 1, &payload[..len]);
    // An unknown function on channel 3, a STATUS on 5, a RECONFIGURE, then terminate.
    let len3 = {
        let mut e = Encoder::new(SliceSink::new(&mut payload));
        e.str("").unwrap();
        e.none().unwrap();
        e.str("nosuch").unwrap();
        e.new_dict().unwrap();
        e.build_tuple(4).unwrap();
        e.stop().unwrap();
        e.finish().unwrap().len()
    };
    send_frame(&mut to_device, MsgCode::ChannelExec, 3, &payload[..len3]);
    send_frame(&mut to_device, MsgCode::Status, 5, &[]);
    send_frame(
        &mut to_device,
        MsgCode::Reconfigure,
        0,
        &reconfigure_value(StrConfig::new(false, true)),
    );

    step(&mut worker, &mut to_device, &mut from_device);
    assert_eq!(worker.config(), StrConfig::new(false, true));

    let written = &from_device.data[..from_device.write];
    let got: [(MsgCode, i32); 5] = {
        let mut it = frames(written);
        core::array::from_fn(|_| {
            let (c, ch, _) = it.next().unwrap();
            (c, ch)
        })
    };
    assert_eq!(
        got,
        [
            (MsgCode::ChannelData, 1),
            (MsgCode::ChannelClose, 1),
            (MsgCode::ChannelCloseError, 3),
            (MsgCode::ChannelData, 5),
            (MsgCode::ChannelClose, 5),
        ]
    );
    let mut nodes = [Node::EMPTY; 16];
    let (_, _, sum) = frames(written).next().unwrap();
    let v = decode_internal(sum, &mut nodes[..], &Limits::TIGHT).unwrap();
    assert_eq!(v.as_i64(), Some(42));
    let (_, _, status) = frames(written).nth(3).unwrap();
    let v = decode_internal(status, &mut nodes[..], &Limits::TIGHT).unwrap();
    let ValueRef::Dict(map) = v else {
        panic!("status is not a dict")
    };
    assert_eq!(
        map.get_str("execmodel").and_then(|v| v.as_str()),
        Some("thread")
    );

    // Terminate stops the loop; the engine refuses anything after it.
    send_frame(&mut to_device, MsgCode::GatewayTerminate, 0, &[]);
    step(&mut worker, &mut to_device, &mut from_device);
    assert!(worker.is_terminated());
    let mut small = [0u8; 16];
    assert!(to_slice(&ValueRef::None, Envelope::Internal, &mut small).is_ok());
}
