//! Compiled agents, remembered per worker command line.
//!
//! Compiling the agent's source is most of what a worker spends before it answers the
//! handshake (about 10 ms of CPython's time against its own 30 ms start). A master that
//! starts several workers of one interpreter (test distribution, a group of local
//! workers) need not pay it each time: the first worker started with a command line is
//! asked to report its compiled code (`marshal`) and its `sys.version` before the
//! handshake byte; later workers started with the same command line are sent that code,
//! which `marshal.loads` takes in a fraction of a millisecond. The line they are sent
//! checks `sys.version` first and compiles the source, also sent, when it differs (the
//! interpreter was replaced, or the command line now reaches another host), so a stale
//! entry costs a compile and nothing else. Interpreters whose code cannot be marshalled
//! (Jython) report nothing and are always sent the source.
//!
//! Only local (popen) workers take part, and only what this process started itself is
//! remembered, in memory: nothing is written anywhere, and a worker only ever receives
//! code that a worker of the same command line and the same `sys.version` on this machine
//! produced. An ssh destination may reach a different host each time; one host's report
//! is never sent to another.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use crate::transport::{agent_as_sent, py_literal, AgentConfig};

/// What a worker reported: its interpreter's `sys.version` and its compiled agent, as
/// base64 text ready to go into a bootstrap line.
#[derive(Debug)]
pub(crate) struct Compiled {
    version: String,
    code_base64: String,
}

/// The largest report taken: the agent's code is about 100 KB.
const MAX_CODE: usize = 16 << 20;
const MAX_VERSION: usize = 4096;

fn cache() -> &'static Mutex<HashMap<Vec<String>, Arc<Compiled>>> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<String>, Arc<Compiled>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The compiled agent reported by an earlier worker of this command line.
pub(crate) fn lookup(argv: &[String]) -> Option<Arc<Compiled>> {
    crate::session::lock(cache()).get(argv).cloned()
}

/// Remembers a worker's report for its command line.
fn remember(argv: Vec<String>, version: String, code: &[u8]) {
    let compiled = Compiled {
        version,
        code_base64: base64(code),
    };
    crate::session::lock(cache()).insert(argv, Arc::new(compiled));
}

/// The bootstrap line for a worker started by this process with `BOOTSTRAP_LINE`
/// (`exec(eval(line))`): an expression that puts the configuration in the worker's
/// namespace and gives the code to run, from `compiled` when there is an entry (compiling
/// the source instead where `sys.version` differs), else compiled from the source. The
/// code is also kept in the namespace as `execnet_agent_code`, for the agent's report.
pub(crate) fn bootstrap_line(config: &AgentConfig, compiled: Option<&Compiled>) -> Vec<u8> {
    let compile = format!(
        "compile({}, '<string>', 'exec')",
        py_literal(agent_as_sent())
    );
    let code = match compiled {
        Some(c) => format!(
            "__import__('marshal').loads(__import__('binascii').a2b_base64('{}')) \
             if __import__('sys').version == {} else {compile}",
            c.code_base64,
            py_literal(&c.version)
        ),
        None => compile,
    };
    let mut line = format!(
        "(globals().__setitem__('execnet_config', {}), \
         globals().setdefault('execnet_agent_code', {code}))[1]\n",
        config.dict_literal()
    );
    line.shrink_to_fit();
    line.into_bytes()
}

/// Reads the report the agent writes before the handshake byte when asked (after the
/// `C` that announces it): the lengths of `sys.version` and of the code (4 bytes each,
/// big-endian), then both. Remembers it for `argv`.
pub(crate) fn read_report(input: &mut dyn Read, argv: Vec<String>) -> Result<(), String> {
    let mut lengths = [0u8; 8];
    input
        .read_exact(&mut lengths)
        .map_err(|e| format!("the compiled agent's report was cut short ({e})"))?;
    let version_len = u32::from_be_bytes([lengths[0], lengths[1], lengths[2], lengths[3]]);
    let code_len = u32::from_be_bytes([lengths[4], lengths[5], lengths[6], lengths[7]]);
    let (version_len, code_len) = (version_len as usize, code_len as usize);
    if version_len > MAX_VERSION || code_len > MAX_CODE {
        return Err(format!(
            "the compiled agent's report announces {version_len} + {code_len} bytes, above \
             {MAX_VERSION} + {MAX_CODE}"
        ));
    }
    let mut body = vec![0u8; version_len + code_len];
    input
        .read_exact(&mut body)
        .map_err(|e| format!("the compiled agent's report was cut short ({e})"))?;
    let (version, code) = body.split_at(version_len);
    let version = String::from_utf8(version.to_vec())
        .map_err(|_| "the compiled agent's report has a version that is not UTF-8".to_string())?;
    if !code.is_empty() {
        remember(argv, version, code);
    }
    Ok(())
}

/// Standard base64 with padding, as `binascii.a2b_base64` reads it.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_python_reads_it() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x10]), "//4AEA==");
    }

    #[test]
    fn reports_are_bounded_and_an_empty_code_is_not_remembered() {
        let argv = vec!["report-test".to_string()];
        let mut huge: &[u8] = &[0, 0, 0, 4, 0x7f, 0, 0, 0];
        assert!(read_report(&mut huge, argv.clone()).is_err());
        let mut cut: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 9, b'3'];
        assert!(read_report(&mut cut, argv.clone()).is_err());
        let mut empty: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 0, b'3'];
        read_report(&mut empty, argv.clone()).unwrap();
        assert!(lookup(&argv).is_none());
        let mut good: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 2, b'3', 1, 2];
        read_report(&mut good, argv.clone()).unwrap();
        let c = lookup(&argv).unwrap();
        assert_eq!((c.version.as_str(), c.code_base64.as_str()), ("3", "AQI="));
    }

    /// An entry that does not match the interpreter (here a made-up version and code):
    /// the worker compiles the source and runs as usual.
    #[test]
    fn a_stale_entry_costs_a_compile_and_nothing_else() {
        let group = crate::Group::new();
        // `-B` makes this command line this test's own.
        let spec = crate::Spec::parse("popen//python=python3//dont_write_bytecode").unwrap();
        let argv = crate::transport::python_argv(&spec, "python3");
        remember(
            argv.clone(),
            "not this interpreter".into(),
            b"not marshal data",
        );
        let gw = group
            .makegateway("popen//python=python3//dont_write_bytecode")
            .unwrap();
        let ch = gw.remote_exec("channel.send(6 * 7)").unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 42);
        // Not asked for a report: the entry is as it was.
        assert_eq!(lookup(&argv).unwrap().version, "not this interpreter");
    }

    #[test]
    fn lines_are_ascii_and_fall_back_on_the_source() {
        let config = AgentConfig::default();
        let plain = String::from_utf8(bootstrap_line(&config, None)).unwrap();
        assert!(plain.is_ascii() && plain.ends_with(")[1]\n"));
        assert!(plain.starts_with("(globals().__setitem__('execnet_config', {'execmodel': "));
        let compiled = Compiled {
            version: "3.11.7 (main) [GCC]".into(),
            code_base64: "AQI=".into(),
        };
        let cached = String::from_utf8(bootstrap_line(&config, Some(&compiled))).unwrap();
        assert!(cached.is_ascii());
        assert!(cached.contains("a2b_base64('AQI=')) if __import__('sys').version == '3.11.7 (main) [GCC]' else compile("));
    }
}
