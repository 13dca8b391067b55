//! The main loop: skip the master's bootstrap line, answer the handshake, then move
//! bytes from the UART into the [`Connection`], react to its events, and move its output
//! back to the UART; sleep when there is nothing to read.

use execnet_core::buffer::FixedBuf;
use execnet_core::engine::{self, ChannelTable, Event, FixedTable, Role};
use execnet_core::Limits;

use crate::calls::{self, Outcome};
use crate::hw::{self, Once, Uart};
use crate::text::Text;

/// The input buffer: the largest frame (header included) the device takes; a larger one
/// is refused and closes its channel.
pub const INPUT: usize = 1792;
/// The output queue, for what the engine writes itself (closes, the STATUS answer,
/// refusals); replies go to the UART directly.
pub const OUTPUT: usize = 192;
/// Channels open at once.
pub const CHANNELS: usize = 4;
/// Nodes of decode storage: the most values one payload may hold.
pub const NODES: usize = 96;

/// What the decoder accepts. A message beyond `max_message` is no sane stream for this
/// device and ends the gateway; one between the input buffer and it is refused alone.
pub const LIMITS: Limits = Limits {
    max_depth: 8,
    max_items: 4096,
    max_bytes: INPUT as u32,
    max_bigint_digits: 160,
    max_message: 1 << 20,
};

/// What runs on a channel: the host data of the channel table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, defmt::Format)]
pub enum Task {
    /// Nothing: a call that returns at once, or a channel the master only referred to.
    #[default]
    Idle,
    /// A `mirror` call, which sends back what it receives.
    Mirror,
}

type Table = FixedTable<Task, CHANNELS>;
type Input = &'static mut FixedBuf<INPUT>;
type Output = &'static mut FixedBuf<OUTPUT>;
/// The protocol engine, as the functions see it.
pub type Engine = engine::Engine<Output, Table>;
type Connection = engine::Connection<Input, Output, Table>;

static INPUT_BUF: Once<FixedBuf<INPUT>> = Once::new(FixedBuf::new());
static OUTPUT_BUF: Once<FixedBuf<OUTPUT>> = Once::new(FixedBuf::new());

/// Serves the master until it ends the gateway; then ends the emulation.
pub fn run(mut uart: Uart) -> ! {
    let (Some(input), Some(output)) = (INPUT_BUF.take(), OUTPUT_BUF.take()) else {
        hw::exit(1);
    };
    skip_bootstrap(&mut uart);
    uart.write(b"1");
    defmt::info!("handshake sent");
    let mut conn = Connection::new(
        Role::Worker,
        input,
        output,
        Table::new(),
        LIMITS.max_message,
    );
    loop {
        let n = uart.read_ready(conn.recv_buf());
        conn.recv_commit(n);
        loop {
            match conn.poll_event() {
                Ok(Some(event)) => handle(&mut conn, &mut uart, event),
                Ok(None) => break,
                Err(e) => {
                    defmt::error!("protocol error, the gateway ends: {}", e);
                    flush(&mut conn, &mut uart);
                    hw::exit(1);
                }
            }
            // Each reply leaves at once, so the next one finds the queue empty.
            flush(&mut conn, &mut uart);
        }
        if n == 0 {
            uart.wait();
        }
    }
}

/// Reads up to and including the first newline: the master sends its bootstrap source
/// (Python meant for an interpreter) as one line, then waits for the handshake.
fn skip_bootstrap(uart: &mut Uart) {
    let mut len = 0u32;
    while uart.read_byte() != b'\n' {
        len += 1;
    }
    defmt::info!("bootstrap line of {} bytes skipped", len);
}

/// Writes everything queued to the UART.
pub fn flush(engine: &mut Engine, uart: &mut Uart) {
    while let Some(out) = engine.poll_transmit() {
        uart.write(out);
        let n = out.len();
        engine.transmitted(n);
    }
}

/// Logs a verb that failed: only a bug of this firmware (a reply on a channel it closed,
/// say) makes one fail, and the master learns of it by the channel staying silent.
fn check(what: &str, r: Result<(), engine::SendError>) {
    if r.is_err() {
        defmt::error!("{=str} failed", what);
    }
}

fn handle(conn: &mut Connection, uart: &mut Uart, event: Event<Task>) {
    match event {
        Event::StatusRequest { channel } => {
            let mut running = 0usize;
            conn.table().for_each(&mut |_, e| {
                if e.data == Task::Mirror {
                    running += 1;
                }
            });
            check("status", conn.status_reply(channel, running, "thread"));
        }
        Event::Exec { channel } => {
            let (payload, engine) = conn.split();
            let outcome = calls::exec(engine, uart, channel, payload);
            finish(engine, channel, outcome);
        }
        Event::Data { channel, .. } => {
            if conn.data(channel) == Some(&Task::Mirror) {
                let (payload, engine) = conn.split();
                let outcome = calls::mirror(engine, uart, channel, payload);
                finish(engine, channel, outcome);
            } else {
                defmt::warn!("channel {}: a value nothing reads, dropped", channel);
            }
        }
        // A mirror ends when nothing more can come; other channels wait for a close.
        Event::LastMessage { channel } if conn.data(channel) == Some(&Task::Mirror) => {
            finish(conn, channel, Outcome::Done);
        }
        Event::Closed {
            channel,
            error,
            data,
        } => {
            defmt::info!(
                "channel {}: closed by the master ({}, error: {})",
                channel,
                data,
                error
            );
        }
        Event::Refused {
            channel,
            code,
            reason,
            ..
        } => {
            defmt::warn!("channel {}: {} refused: {}", channel, code, reason);
        }
        Event::Dropped { code, channel } => {
            defmt::info!("channel {}: {} after its close, dropped", channel, code);
        }
        Event::Reconfigure { channel, config } => {
            defmt::info!("reconfigured {}: {}", channel, config);
        }
        Event::Terminate => {
            defmt::info!("the master ends the gateway");
            flush(conn, uart);
            hw::exit(0);
        }
        _ => {}
    }
}

/// Closes the channel of a call that ended.
fn finish(engine: &mut Engine, channel: i32, outcome: Outcome<'_>) {
    match outcome {
        Outcome::Running => {}
        Outcome::Done => check("close", engine.close(channel, None).map(|_| ())),
        Outcome::Failed(failure) => {
            let mut text = Text::new();
            failure.render(&mut text);
            defmt::info!("channel {}: {=str}", channel, text.as_str());
            check(
                "close",
                engine.close(channel, Some(text.as_str())).map(|_| ()),
            );
        }
    }
}
