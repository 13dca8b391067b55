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
//! What is trusted, and why. A report is taken only from a worker that this process
//! started itself on this machine and that runs a Python interpreter as the very process
//! this process started (its `/proc/PID/exe` is named `python…` or `pypy…`), and only once
//! it has completed the handshake. A command line whose process is a launcher that runs
//! the interpreter elsewhere (`ssh`, `docker exec`, `srun`, a shell script) may reach a
//! different host or container each time, so its reports are never taken: one host's code
//! is never sent to another. The key is the whole command line and the spec's `env:`
//! settings; the entry is forgotten when a worker that was sent it fails to start.
//! Everything stays in this process's memory: nothing is written anywhere. Where there is
//! no `/proc` to check, nothing is remembered.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use crate::transport::{agent_as_sent, py_literal, AgentConfig};

/// How a worker's start takes part: asked for a report (to remember under this key) or
/// sent an entry (to forget if the worker fails to start), or neither.
pub(crate) enum Use {
    None,
    Report(Vec<String>),
    Sent(Vec<String>),
}

/// What a worker reported: its interpreter's `sys.version` and its compiled agent, as
/// base64 text ready to go into a bootstrap line.
#[derive(Debug)]
pub(crate) struct Compiled {
    version: String,
    code_base64: String,
}

/// The largest report taken: the agent's code is about 100 KB.
const MAX_CODE: usize = 1 << 20;
const MAX_VERSION: usize = 4096;

/// The key of a worker's entry: its command line and the environment the spec adds.
pub(crate) fn key(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut key = argv.to_vec();
    for (k, v) in env {
        // NUL cannot occur in an argument or a variable, so the two parts cannot mix.
        key.push(format!("\0{k}={v}"));
    }
    key
}

fn cache() -> &'static Mutex<HashMap<Vec<String>, Arc<Compiled>>> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<String>, Arc<Compiled>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The compiled agent reported by an earlier worker of this key.
pub(crate) fn lookup(key: &[String]) -> Option<Arc<Compiled>> {
    crate::session::lock(cache()).get(key).cloned()
}

/// Forgets the entry of a key (a worker that was sent it failed to start).
pub(crate) fn forget(key: &[String]) {
    crate::session::lock(cache()).remove(key);
}

/// A worker's report, read before its handshake byte and not yet trusted.
pub(crate) struct Report {
    version: String,
    code: Vec<u8>,
}

impl Report {
    /// Remembers the report for `key` if the worker that sent it, process `pid`, runs a
    /// Python interpreter as the process this process started (see the module's docs).
    /// Called once the handshake has completed.
    pub(crate) fn accept(self, key: Vec<String>, pid: Option<u32>) {
        let Some(pid) = pid else { return };
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            return;
        };
        let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("python") || name.starts_with("pypy")) {
            tracing::debug!(exe = %exe.display(), "not remembering the compiled agent of a launcher");
            return;
        }
        // marshal writes a code object as `c`, with its reference flag (0x80) set or not:
        // anything else is not one, whatever went wrong.
        if self.code.first().map(|b| b & 0x7f) != Some(b'c') {
            return;
        }
        let compiled = Compiled {
            version: self.version,
            code_base64: base64(&self.code),
        };
        crate::session::lock(cache()).insert(key, Arc::new(compiled));
    }
}

/// The bootstrap line for a worker started by this process with `BOOTSTRAP_LINE`
/// (`exec(eval(line))`): an expression that puts the configuration in the worker's
/// namespace and gives the code to run, from `compiled` when there is an entry (compiling
/// the source instead where `sys.version` differs), else compiled from the source. The
/// code is also kept in the namespace as `execnet_agent_code`, for the agent's report.
pub(crate) fn bootstrap_line(config: &AgentConfig, compiled: Option<&Compiled>) -> Vec<u8> {
    // The agent as a literal is the same for every worker: rendered once.
    static SOURCE: OnceLock<String> = OnceLock::new();
    let source = SOURCE.get_or_init(|| py_literal(agent_as_sent()));
    let compile = format!("compile({source}, '<string>', 'exec')");
    let code = match compiled {
        Some(c) => format!(
            "__import__('marshal').loads(__import__('binascii').a2b_base64('{}')) \
             if __import__('sys').version == {} else {compile}",
            c.code_base64,
            py_literal(&c.version)
        ),
        None => compile,
    };
    format!(
        "(globals().__setitem__('execnet_config', {}), \
         globals().setdefault('execnet_agent_code', {code}))[1]\n",
        config.dict_literal()
    )
    .into_bytes()
}

/// Reads the report the agent writes before the handshake byte when asked (after the
/// `C` that announces it): the lengths of `sys.version` and of the code (4 bytes each,
/// big-endian), then both. None for a report with nothing to remember (no code, or a
/// version that is not UTF-8); an error when the report is cut short or too large, since
/// the stream cannot then be read on.
pub(crate) fn read_report(input: &mut dyn Read) -> Result<Option<Report>, String> {
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
    let code = body.split_off(version_len);
    match String::from_utf8(body) {
        Ok(version) if !code.is_empty() => Ok(Some(Report { version, code })),
        _ => Ok(None),
    }
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
    fn reports_are_bounded_and_only_a_direct_interpreter_child_is_trusted() {
        let mut huge: &[u8] = &[0, 0, 0, 4, 0, 0x10, 0, 1];
        assert!(read_report(&mut huge).is_err());
        let mut cut: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 9, b'3'];
        assert!(read_report(&mut cut).is_err());
        let mut empty: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 0, b'3'];
        assert!(read_report(&mut empty).unwrap().is_none());
        let mut not_utf8: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 7];
        assert!(read_report(&mut not_utf8).unwrap().is_none());
        let good: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 2, b'3', 0xe3, 2];
        let report = || read_report(&mut &good[..]).unwrap().unwrap();
        // This test's own process is no Python interpreter: its report is not taken.
        let key = vec!["report-test".to_string()];
        report().accept(key.clone(), Some(std::process::id()));
        assert!(lookup(&key).is_none());
        // A `sleep` started as the worker is a launcher, not an interpreter.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        report().accept(key.clone(), Some(child.id()));
        assert!(lookup(&key).is_none());
        let _ = child.kill();
        let _ = child.wait();
        // A Python interpreter is (once it runs: `python3` may be a launcher that execs it).
        let mut python = std::process::Command::new("python3")
            .args(["-c", "print(1); import time; time.sleep(5)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(python.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        report().accept(key.clone(), Some(python.id()));
        let _ = python.kill();
        let _ = python.wait();
        let c = lookup(&key).unwrap();
        assert_eq!((c.version.as_str(), c.code_base64.as_str()), ("3", "4wI="));
        forget(&key);
        assert!(lookup(&key).is_none());
    }

    #[test]
    fn the_key_holds_the_environment() {
        let argv = vec!["python3".to_string()];
        let mut env = std::collections::BTreeMap::new();
        assert_eq!(key(&argv, &env), argv);
        env.insert("PYTHONOPTIMIZE".to_string(), "2".to_string());
        assert_eq!(key(&argv, &env), ["python3", "\0PYTHONOPTIMIZE=2"]);
    }

    /// An entry that does not match the interpreter (here a made-up version and code):
    /// the worker compiles the source and runs as usual.
    #[test]
    fn a_stale_entry_costs_a_compile_and_nothing_else() {
        let group = crate::Group::new();
        // `-B` makes this command line this test's own.
        let spec = crate::Spec::parse("popen//python=python3//dont_write_bytecode").unwrap();
        let argv = crate::transport::python_argv(&spec, "python3");
        let entry = Compiled {
            version: "not this interpreter".into(),
            code_base64: base64(b"not marshal data"),
        };
        crate::session::lock(cache()).insert(argv.clone(), Arc::new(entry));
        let gw = group
            .makegateway("popen//python=python3//dont_write_bytecode")
            .unwrap();
        let ch = gw.remote_exec("channel.send(6 * 7)").unwrap();
        assert_eq!(ch.receive::<i64>().unwrap(), 42);
        // Not asked for a report: the entry is as it was.
        assert_eq!(lookup(&argv).unwrap().version, "not this interpreter");
        forget(&argv);
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
