//! `decode` and `encode`: execnet's wire format to Python literals or JSON, and back.
//!
//! `decode` builds the value in one pass (no node tree), drops the input, and then
//! prints straight into a buffered stdout: no text of the whole output is ever held.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use clap::ValueEnum;
use execnet::core::repr::{write_repr, ReprMode};
use execnet::core::{encode, Envelope, Limits, StrConfig, Value, Version};

use crate::literal::{self, ParseMode};
use crate::{output_failed, Fail};

#[derive(Clone, Copy, ValueEnum)]
pub enum VersionArg {
    #[value(name = "1")]
    V1,
    #[value(name = "2")]
    V2,
}

#[derive(clap::Args)]
pub struct DecodeArgs {
    /// Input file, or `-` for stdin (default).
    input: Option<PathBuf>,
    /// The input is a channel payload (no version byte).
    #[arg(long)]
    internal: bool,
    /// Print JSON instead of a Python literal.
    #[arg(long)]
    json: bool,
    /// Load Python 2 `str` as text (latin-1), as `loads(py2str_as_py3str=True)`.
    #[arg(long)]
    py2str_as_py3str: bool,
    /// Load Python 3 `str` as bytes, as `loads(py3str_as_py2str=True)`.
    #[arg(long)]
    py3str_as_py2str: bool,
    /// Print as Python 2.7 would (`u'..'`, `123L`).
    #[arg(long)]
    py2: bool,
}

#[derive(clap::Args)]
pub struct EncodeArgs {
    /// The literal, or `-` for stdin (default).
    #[arg(allow_hyphen_values = true)]
    expr: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Format version byte to write (1: execnet 1.x, 2: execnet 2.x).
    #[arg(long, value_enum, default_value = "2")]
    format_version: VersionArg,
    /// Python 2 kinds: plain strings are `str` (bytes), `u'..'` is unicode, `1L` is long.
    #[arg(long)]
    py2: bool,
    /// Write a channel payload (no version byte).
    #[arg(long)]
    internal: bool,
    /// Write the binary output even when stdout is a terminal.
    #[arg(long)]
    force: bool,
}

/// `fmt::Write` over an `io::Write`, keeping the I/O error that `fmt` cannot carry.
struct FmtIo<'w, W: Write + ?Sized> {
    out: &'w mut W,
    error: Option<io::Error>,
}

impl<W: Write + ?Sized> std::fmt::Write for FmtIo<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.out.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            std::fmt::Error
        })
    }
}

/// Writes the value as the Python of `mode` prints it, straight into `out`.
pub fn write_literal<W: Write + ?Sized>(out: &mut W, v: &Value, mode: ReprMode) -> io::Result<()> {
    let mut w = FmtIo { out, error: None };
    match write_repr(&mut w, v, mode) {
        Ok(()) => Ok(()),
        Err(_) => Err(w
            .error
            .unwrap_or_else(|| io::Error::other("the printer failed"))),
    }
}

pub fn cmd_decode(a: DecodeArgs) -> Result<(), Fail> {
    let data = crate::read_input(a.input.as_ref())?;
    let config = StrConfig::new(a.py2str_as_py3str, a.py3str_as_py2str);
    // The bounds a gateway applies to what it receives.
    let limits = Limits::DEFAULT;
    let value = if a.internal {
        Value::decode_internal_with(&data, &limits, config)
    } else {
        Value::decode_dumps_with(&data, &limits, config).map(|(_, v)| v)
    }
    .map_err(|e| Fail::usage(format!("malformed input: {e}")))?;
    drop(data);
    let mut out = crate::stdout();
    let printed = if a.json {
        crate::json::write(&mut out, &value)
    } else if a.py2 {
        write_literal(&mut out, &value, ReprMode::Py2)
    } else {
        write_literal(&mut out, &value, ReprMode::Py3(config))
    };
    printed
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(output_failed)
}

pub fn cmd_encode(a: EncodeArgs) -> Result<(), Fail> {
    if a.output.is_none() && !a.force && io::stdout().is_terminal() {
        return Err(Fail::usage(
            "refusing to write binary output to a terminal: redirect it, use -o FILE, or --force",
        ));
    }
    let text = match a.expr.as_deref() {
        Some(e) if e != "-" => e.to_string(),
        _ => {
            let raw = crate::read_input(None)?;
            String::from_utf8(raw).map_err(|_| Fail::usage("input is not UTF-8 text"))?
        }
    };
    let mode = if a.py2 {
        ParseMode::Py2
    } else {
        ParseMode::Py3
    };
    let value =
        literal::parse(&text, mode).map_err(|e| Fail::usage(format!("malformed literal: {e}")))?;
    let envelope = if a.internal {
        Envelope::Internal
    } else {
        Envelope::Dumps(match a.format_version {
            VersionArg::V1 => Version::V1,
            VersionArg::V2 => Version::V2,
        })
    };
    let bytes =
        encode::to_vec(&value, envelope).map_err(|e| Fail::usage(format!("cannot encode: {e}")))?;
    match &a.output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| Fail(4, format!("cannot write {}: {e}", path.display()))),
        None => {
            let mut out = crate::stdout();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(output_failed)
        }
    }
}
