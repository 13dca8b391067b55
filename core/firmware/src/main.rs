//! An execnet worker on a Cortex-M3 microcontroller (the LM3S6965 that QEMU's
//! `lm3s6965evb` machine emulates), driven over its UART by any execnet master: Python's
//! reference execnet or the `execnet` crate, as if it were a Python interpreter.
//!
//! The protocol is `execnet-core`'s [`Connection`](execnet_core::engine::Connection), fed
//! from the UART and drained into it, with fixed buffers only: no allocator. The master
//! calls functions by name (`remote_exec(add, a=1, b=2)` in Python), see [`calls`].
//!
//! - [`serve`]: the main loop (bootstrap line, handshake, events, output).
//! - [`calls`]: the functions a master can call, and their errors in Python's words.
//! - [`arith`]: `add` on Python's numbers, ints of any size included.
//! - [`text`]: error texts in a fixed buffer.
//! - [`hw`]: the UARTs, sleep, stack measurement, exit, the defmt logger; all `unsafe`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod arith;
mod calls;
mod hw;
mod serve;
mod text;

#[cortex_m_rt::entry]
fn main() -> ! {
    match hw::Board::take() {
        Some(board) => serve::run(board.uart),
        None => hw::exit(1),
    }
}
