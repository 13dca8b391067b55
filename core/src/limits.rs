//! Resource limits applied to every decode.

/// Bounds that every decoder entry point enforces, so that hostile input can cost no more
/// than the caller agreed to.
///
/// The defaults accept everything a reference writer can produce (execnet cannot even
/// write values nested more than about 1000 levels deep, because of Python's recursion
/// limit) while keeping time and memory linear in the input length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Deepest nesting of containers accepted (a scalar at top level has depth 0, `[1]`
    /// has depth 1).
    pub max_depth: u32,
    /// Most values (nodes) one payload may hold, containers and scalars together.
    pub max_items: u32,
    /// Longest single string or bytes payload, in bytes.
    pub max_bytes: u32,
    /// Most decimal digits in one `LONGINT` / `LONGLONG` text.
    pub max_bigint_digits: u32,
    /// Largest message (frame payload) the frame reader accepts, in bytes.
    pub max_message: u32,
}

impl Limits {
    /// Safe defaults: depth 1000, 16 Mi values, 256 MiB strings and messages,
    /// 10,000-digit integers.
    pub const DEFAULT: Limits = Limits {
        max_depth: 1000,
        max_items: 16 * 1024 * 1024,
        max_bytes: 256 * 1024 * 1024,
        max_bigint_digits: 10_000,
        max_message: 256 * 1024 * 1024,
    };

    /// Small bounds for constrained hosts and fuzzing: depth 32, 4096 values, 64 KiB
    /// strings and messages, 100-digit integers.
    pub const TIGHT: Limits = Limits {
        max_depth: 32,
        max_items: 4096,
        max_bytes: 64 * 1024,
        max_bigint_digits: 100,
        max_message: 64 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
