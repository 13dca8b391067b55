//! Everything that touches the hardware, and with it every `unsafe` block of the firmware:
//! the two UARTs, the interrupt controller, the stack paint, the semihosting exit, the
//! defmt logger and the panic handler.
//!
//! The chip is the LM3S6965 as QEMU's `lm3s6965evb` emulates it: UART0 (PL011 at
//! 0x4000_C000, IRQ 5) carries the protocol, UART1 (0x4000_D000) the defmt log.
//!
//! Why the `unsafe` here is sound: the firmware runs on one core with interrupts masked
//! from reset to exit (PRIMASK is set before anything else and never cleared), so nothing
//! ever preempts anything. Register accesses are volatile reads and writes of addresses the
//! LM3S6965 data sheet gives to these peripherals, and no Rust object lives there. The
//! logger's state is touched only by the logger functions, which never run concurrently
//! (no preemption) and never re-enter (defmt's `acquire`/`release` pairing, checked below).
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::peripheral::NVIC;

/// Base address of UART0, the protocol line.
const UART0: usize = 0x4000_C000;
/// Base address of UART1, the log line.
const UART1: usize = 0x4000_D000;
/// UART0's interrupt number on the LM3S6965.
const UART0_IRQ: u16 = 5;

// PL011 register offsets and bits.
const DR: usize = 0x000;
const FR: usize = 0x018;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const IBRD: usize = 0x024;
const FBRD: usize = 0x028;
const LCRH: usize = 0x02C;
const LCRH_8BITS_FIFO: u32 = 0x70;
const CTL: usize = 0x030;
const CTL_UARTEN_TXE_RXE: u32 = 0x301;
const IMSC: usize = 0x038;
const IMSC_RXIM: u32 = 1 << 4;
const ICR: usize = 0x044;

/// The system control block's clock gating for UARTs (RCGC1: bit 0 UART0, bit 1 UART1).
const RCGC1: usize = 0x400F_E104;

fn reg_read(addr: usize) -> u32 {
    // SAFETY: `addr` is a PL011 or system-control register of this chip (see the module
    // comment); a volatile read of it has no effect beyond the peripheral's.
    unsafe { read_volatile(addr as *const u32) }
}

fn reg_write(addr: usize, value: u32) {
    // SAFETY: as in `reg_read`.
    unsafe { write_volatile(addr as *mut u32, value) }
}

/// UART0's interrupt line, for the NVIC.
#[derive(Clone, Copy)]
struct Uart0Irq;

// SAFETY: 5 is UART0's interrupt number on the LM3S6965, and the vector table below has
// an entry for it.
unsafe impl cortex_m::interrupt::InterruptNumber for Uart0Irq {
    fn number(self) -> u16 {
        UART0_IRQ
    }
}

/// The vectors of IRQ 0 to 5 (cortex-m-rt's `device` feature leaves the table to us; a
/// full one costs a kilobyte of flash). None is taken, since interrupts stay masked.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 6] = {
    extern "C" {
        fn DefaultHandler();
    }
    [DefaultHandler; 6]
};

fn uart_init(base: usize) {
    reg_write(base + CTL, 0);
    // 115200 baud from the 12 MHz clock (QEMU ignores the rate; a board does not).
    reg_write(base + IBRD, 6);
    reg_write(base + FBRD, 33);
    reg_write(base + LCRH, LCRH_8BITS_FIFO);
    reg_write(base + ICR, 0x7FF);
    reg_write(base + CTL, CTL_UARTEN_TXE_RXE);
}

fn uart_put(base: usize, byte: u8) {
    while reg_read(base + FR) & FR_TXFF != 0 {}
    reg_write(base + DR, u32::from(byte));
}

/// The protocol UART. There is one: [`Board::take`] hands it out once.
pub struct Uart(());

impl Uart {
    /// Receives what the UART holds into `buf` without waiting; returns the count.
    pub fn read_ready(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if reg_read(UART0 + FR) & FR_RXFE != 0 {
                break;
            }
            // The data register's low byte is the character; the bits above it are
            // error flags that an emulated line never sets.
            *slot = reg_read(UART0 + DR) as u8;
            n += 1;
        }
        n
    }

    /// One received byte, sleeping until there is one.
    pub fn read_byte(&mut self) -> u8 {
        let mut b = [0u8; 1];
        while self.read_ready(&mut b) == 0 {
            self.wait();
        }
        b[0]
    }

    /// Sleeps until a byte is received (returns at once when one is there already).
    ///
    /// The CPU sleeps in `wfi`. With interrupts masked the UART's interrupt is never taken,
    /// but its becoming pending still ends the `wfi`; clearing it before checking the FIFO
    /// means a byte that lands after the check leaves it pending, so no wake-up is lost.
    /// Busy-polling the flag register instead would hold the emulator's lock and slow every
    /// byte down several times.
    pub fn wait(&mut self) {
        NVIC::unpend(Uart0Irq);
        if reg_read(UART0 + FR) & FR_RXFE != 0 {
            cortex_m::asm::wfi();
        }
    }

    /// Sends `bytes`, waiting while the transmit FIFO is full.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            uart_put(UART0, b);
        }
    }
}

/// The peripherals this firmware uses, set up.
pub struct Board {
    /// The protocol line.
    pub uart: Uart,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Board {
    /// Masks interrupts, clocks and sets up both UARTs, and lets UART0's receive interrupt
    /// wake the CPU. Returns `None` after the first call.
    pub fn take() -> Option<Board> {
        cortex_m::interrupt::disable();
        if TAKEN.swap(true, Ordering::Relaxed) {
            return None;
        }
        reg_write(RCGC1, reg_read(RCGC1) | 0b11);
        uart_init(UART1);
        uart_init(UART0);
        reg_write(UART0 + IMSC, IMSC_RXIM);
        // SAFETY: unmasking in the NVIC cannot break a critical section here: PRIMASK
        // stays set, so the interrupt only becomes pending (which ends `wfi`) and its
        // handler never runs.
        unsafe { NVIC::unmask(Uart0Irq) };
        Some(Board { uart: Uart(()) })
    }
}

/// A value in a static, lent out once for the rest of the program: how the firmware keeps
/// its large buffers out of the stack. Its initializer is a constant, so a zeroed buffer
/// lands in `.bss` and is never built on the stack.
pub struct Once<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reachable only through the one `&mut` that `take` hands out.
unsafe impl<T> Sync for Once<T> {}

impl<T> Once<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Once {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time; `None` after.
    // The `&mut` comes from the `UnsafeCell`, handed out once: what clippy's lint guards
    // against (two `&mut` from one `&`) cannot happen.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `taken` was false, so no other reference to the value exists or will.
        Some(unsafe { &mut *self.value.get() })
    }
}

/// What the stack looks like: its size and the most of it ever used.
#[derive(Clone, Copy, Debug)]
pub struct StackUse {
    /// Bytes between the end of the static data and the top of RAM.
    pub size: usize,
    /// Bytes from the top down to the deepest word ever written (the high-water mark).
    pub used: usize,
}

/// Measures the stack: cortex-m-rt painted it with `STACK_PAINT_VALUE` at reset (feature
/// `paint-stack`), so the deepest word that no longer holds the paint is as deep as the
/// stack ever went.
pub fn stack_use() -> StackUse {
    extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut at = bottom;
    while at < top {
        // SAFETY: every word between `_stack_end` and `_stack_start` is RAM that belongs to
        // the stack; reading one that a frame holds reads an initialized integer.
        let word = unsafe { read_volatile(at as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        at += 4;
    }
    StackUse {
        size: top - bottom,
        used: top - at,
    }
}

/// Ends the emulation with `status` (semihosting `SYS_EXIT`); QEMU exits with it.
pub fn exit(status: i32) -> ! {
    let how = if status == 0 {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    loop {
        cortex_m_semihosting::debug::exit(how);
    }
}

// ---- the defmt logger on UART1 ------------------------------------------------------

#[defmt::global_logger]
struct Logger;

/// Whether a log frame is being written (between `acquire` and `release`).
static LOGGING: AtomicBool = AtomicBool::new(false);
/// The frame encoder. Only `Logger`'s functions touch it, one at a time (see the module
/// comment and `LOGGING`).
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();

fn log_bytes(bytes: &[u8]) {
    for &b in bytes {
        uart_put(UART1, b);
    }
}

// SAFETY: defmt requires that `acquire` .. `release` exclude each other. Nothing preempts
// (interrupts are masked), and a log call from inside a log call (only a panic in the
// encoder could cause one) is refused by `LOGGING`.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if LOGGING.swap(true, Ordering::Acquire) {
            // Re-entered from a panic while logging: the frame in progress is lost
            // anyway, so end quietly rather than corrupt the log further.
            exit(101);
        }
        // SAFETY: `LOGGING` was false, so no other reference to ENCODER exists.
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).start_frame(log_bytes) }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: called after `acquire`, which made this the only user of ENCODER.
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).end_frame(log_bytes) }
        LOGGING.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: as in `release`.
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).write(bytes, log_bytes) }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The panic message is not formatted: that would link core's formatting of every
    // type it could name. A panic is a bug of this firmware; the log says where it ran.
    if !LOGGING.load(Ordering::Relaxed) {
        defmt::error!("panic: the firmware stops");
    }
    exit(101)
}

// ---- memory routines ------------------------------------------------------------------
//
// compiler-builtins' memcpy and memmove are unrolled for speed and take 2.3 KB of flash
// (its memcmp, a word at a time, 116 bytes); these byte loops take a tenth of that. Speed
// does not matter here: they move or compare a few hundred bytes per frame, while the
// UART takes microseconds per byte. Volatile accesses keep LLVM from recognizing a loop
// as a copy and calling these very functions from it. compiler-builtins defines its
// versions as weak symbols, so these take their place.

/// Copies `n` bytes from `src` to `dst`, lowest address first.
///
/// # Safety
/// Both ranges are valid for `n` bytes; `dst` may overlap `src` only below it.
unsafe fn copy_up(dst: *mut u8, src: *const u8, n: usize) {
    for i in 0..n {
        // SAFETY: the caller's promise covers `i < n`.
        unsafe { write_volatile(dst.add(i), read_volatile(src.add(i))) };
    }
}

/// Copies `n` bytes from `src` to `dst`, highest address first.
///
/// # Safety
/// Both ranges are valid for `n` bytes; `dst` may overlap `src` only above it.
unsafe fn copy_down(dst: *mut u8, src: *const u8, n: usize) {
    for i in (0..n).rev() {
        // SAFETY: the caller's promise covers `i < n`.
        unsafe { write_volatile(dst.add(i), read_volatile(src.add(i))) };
    }
}

/// Sets `n` bytes at `dst` to `c`.
///
/// # Safety
/// The range is valid for `n` bytes.
unsafe fn fill(dst: *mut u8, c: u8, n: usize) {
    for i in 0..n {
        // SAFETY: the caller's promise covers `i < n`.
        unsafe { write_volatile(dst.add(i), c) };
    }
}

/// Copies between ranges in either order of addresses.
///
/// # Safety
/// Both ranges are valid for `n` bytes.
unsafe fn copy_any(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the direction makes overlap harmless; the ranges are the caller's.
    unsafe {
        if (dst as usize) <= (src as usize) {
            copy_up(dst, src, n)
        } else {
            copy_down(dst, src, n)
        }
    }
}

/// Compares `n` bytes: the difference of the first pair that differs, or 0.
///
/// # Safety
/// Both ranges are valid for `n` bytes.
#[inline(never)]
unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller's promise covers `i < n`.
        let (x, y) = unsafe { (read_volatile(a.add(i)), read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

// The C and ARM EABI entry points the compiler calls. SAFETY (all of them): the compiler
// calls them with ranges valid for `n` bytes, as the C standard and the ARM EABI require.

#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    unsafe { copy_up(dst, src, n) };
    dst
}

#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    unsafe { copy_any(dst, src, n) };
    dst
}

#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    unsafe { compare(a, b, n) }
}

#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    unsafe { compare(a, b, n) }
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    unsafe { fill(dst, c as u8, n) };
    dst
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memcpy(dst: *mut u8, src: *const u8, n: usize) {
    unsafe { copy_up(dst, src, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memcpy4(dst: *mut u8, src: *const u8, n: usize) {
    unsafe { copy_up(dst, src, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memcpy8(dst: *mut u8, src: *const u8, n: usize) {
    unsafe { copy_up(dst, src, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memmove(dst: *mut u8, src: *const u8, n: usize) {
    unsafe { copy_any(dst, src, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memmove4(dst: *mut u8, src: *const u8, n: usize) {
    unsafe { copy_any(dst, src, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memmove8(dst: *mut u8, src: *const u8, n: usize) {
    unsafe { copy_any(dst, src, n) }
}

// The EABI's memset takes the length before the value, and memclr has no value.

#[no_mangle]
unsafe extern "C" fn __aeabi_memset(dst: *mut u8, n: usize, c: i32) {
    unsafe { fill(dst, c as u8, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memset4(dst: *mut u8, n: usize, c: i32) {
    unsafe { fill(dst, c as u8, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memset8(dst: *mut u8, n: usize, c: i32) {
    unsafe { fill(dst, c as u8, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memclr(dst: *mut u8, n: usize) {
    unsafe { fill(dst, 0, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memclr4(dst: *mut u8, n: usize) {
    unsafe { fill(dst, 0, n) }
}

#[no_mangle]
unsafe extern "C" fn __aeabi_memclr8(dst: *mut u8, n: usize) {
    unsafe { fill(dst, 0, n) }
}
