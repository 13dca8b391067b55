//! Resource limits applied to every decode.

/// Bounds that every decoder entry point enforces, so that hostile input can cost no more
/// than the caller agreed to, and that the encoder enforces too (see
/// [`Encoder::with_limits`](crate::encode::Encoder::with_limits)), so that nothing
/// written is refused by a reader with the same limits.
///
/// The defaults accept everything a reference writer can produce (under Python's default
/// recursion limit, execnet 2.1.2 fails to write lists nested about 400 levels deep and
/// tuples about 500) while keeping time and memory linear in the input length, and the
/// recursion of encoding, converting and dropping a decoded value within a 2 MiB thread
/// stack even in debug builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Deepest nesting of containers accepted (a scalar at top level has depth 0, `[1]`
    /// has depth 1). Depths beyond 1,048,575 are refused whatever this says.
    pub max_depth: u32,
    /// Most values (nodes) one payload may hold, containers and scalars together.
    pub max_items: u32,
    /// Longest single string or bytes payload, in bytes.
    pub max_bytes: u32,
    /// Most decimal digits in one `LONGINT` / `LONGLONG` text.
    pub max_bigint_digits: u32,
    /// Largest message (frame payload) the frame reader accepts, in bytes; also the
    /// longest input a whole-buffer decode takes, and the longest value `take_*` takes.
    pub max_message: u32,
}

impl Limits {
    /// Safe defaults: depth 500, 16 Mi values, 256 MiB strings and messages,
    /// 10,000-digit integers.
    pub const DEFAULT: Limits = Limits {
        max_depth: 500,
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

impl Limits {
    /// The depth actually enforced: `max_depth`, but never beyond 1,048,575 (the height a
    /// decode node records; nothing recursive survives such depths anyway).
    pub(crate) const fn depth_cap(&self) -> u32 {
        let cap = crate::value::MAX_HEIGHT;
        if self.max_depth < cap {
            self.max_depth
        } else {
            cap
        }
    }
}
