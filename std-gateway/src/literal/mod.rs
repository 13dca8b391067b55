//! Python literals: printing values exactly as the interpreter's `repr` does
//! ([`repr`]), and reading what `ast.literal_eval` accepts plus everything `repr` prints
//! ([`parse`]), so that `execnet decode` then `execnet encode` gives back the same bytes.

mod parse;
mod repr;

pub use parse::{parse, ParseError, ParseMode};
pub use repr::{repr, write_repr, ReprMode};
