//! Transports: how a gateway's byte stream reaches its worker, and the bootstrap that
//! turns a plain interpreter into one (PROTOCOL.md section 3).

use std::io::Write;
use std::process::Command;

use crate::error::{Error, Result};
use crate::gateway::{Link, Options};
use crate::process::Process;
use crate::spec::{Spec, Transport};

/// Our Python agent, sent to the interpreter at bootstrap.
pub const AGENT_SOURCE: &str = include_str!("agent/agent.py");

/// The command line that makes a Python interpreter read and run one line from stdin.
pub const BOOTSTRAP_LINE: &str = "import sys;exec(eval(sys.stdin.readline()))";

/// Renders `text` as an ASCII Python string literal that Python 2 and 3 both evaluate to
/// the same text.
pub fn py_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('\'');
    out
}

/// The interpreter's argv: `PYTHON [-B] -u -c BOOTSTRAP_LINE`. `python=` may hold extra
/// arguments separated by spaces (as the reference's shell-style split allows).
pub fn python_argv(spec: &Spec, default_python: &str) -> Vec<String> {
    let python = spec.python.as_deref().unwrap_or(default_python);
    let mut argv: Vec<String> = python.split_whitespace().map(String::from).collect();
    if argv.is_empty() {
        argv.push(default_python.into());
    }
    argv.push("-u".into());
    if spec.dont_write_bytecode {
        argv.push("-B".into());
    }
    argv.push("-c".into());
    argv.push(BOOTSTRAP_LINE.into());
    argv
}

/// The one line written to the interpreter's stdin: the agent as a literal.
pub fn bootstrap_payload() -> Vec<u8> {
    let mut line = py_literal(AGENT_SOURCE).into_bytes();
    line.push(b'\n');
    line
}

/// Starts a local interpreter and sends it the agent.
fn popen(spec: &Spec, options: &Options) -> Result<Link> {
    let argv = python_argv(spec, "python3");
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Other("empty command".into()))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let (process, mut pipes) =
        Process::spawn(cmd, options.output).map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
    // A failed write means the interpreter died at once; the handshake reports why.
    let _ = pipes.stdin.write_all(&bootstrap_payload());
    let _ = pipes.stdin.flush();
    Ok(Link {
        input: Box::new(pipes.stdout),
        output: Box::new(pipes.stdin),
        process: Some(process),
        closer: None,
    })
}

/// Opens the byte stream for `spec`.
pub(crate) fn connect(spec: &Spec, options: &Options) -> Result<Link> {
    if spec.via.is_some() {
        return Err(Error::Other(
            "via= needs a group that holds the named gateway: use Group::makegateway".into(),
        ));
    }
    match &spec.transport {
        Transport::Popen => popen(spec, options),
        Transport::Ssh { .. } | Transport::Socket { .. } => Err(Error::Other(format!(
            "transport of spec {spec} is not available in this build"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_ascii_and_escaped() {
        assert_eq!(py_literal("a'b\\c\n"), "'a\\'b\\\\c\\n'");
        assert_eq!(py_literal("\u{e9}\u{1F600}"), "'\\xe9\\U0001f600'");
        assert!(bootstrap_payload().is_ascii());
    }

    #[test]
    fn argv_with_flags() {
        let s = Spec::parse("popen//python=py -X dev//dont_write_bytecode").unwrap();
        assert_eq!(
            python_argv(&s, "python3"),
            ["py", "-X", "dev", "-u", "-B", "-c", BOOTSTRAP_LINE]
        );
    }
}
