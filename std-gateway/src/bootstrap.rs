//! How a plain Python interpreter becomes a worker, for programs that start one
//! themselves (a fake interpreter in a test, a launcher, a worker that must recognize
//! that it was started as one).
//!
//! A master starts `PYTHON -u -c BOOTSTRAP_LINE` and writes one line to its stdin that
//! evaluates to the agent: its source as a Python string literal ([`agent_line`], what
//! socket servers and `via=` hops are sent), or, for the master's own local workers, an
//! expression that gives the compiled agent (the code an earlier worker of the same
//! command compiled, when its `sys.version` matches, else the source compiled). The agent
//! then answers with the byte `1` and speaks the protocol on stdin and stdout.

/// The command line that makes a Python interpreter read and run one line from stdin.
pub use crate::transport::BOOTSTRAP_LINE;

/// Renders text as an ASCII Python string literal that Python 2 and 3 both evaluate to
/// the same text.
pub use crate::transport::py_literal;

/// Our Python agent's source, as the file `agent.py` is (a traceback from a worker
/// names its lines).
pub use crate::transport::AGENT_SOURCE;

/// The line a master writes after starting the interpreter: our agent, with the default
/// settings, as a literal, and a newline.
pub fn agent_line() -> Vec<u8> {
    crate::transport::bootstrap_payload()
}
