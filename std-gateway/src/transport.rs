//! Transports: how a gateway's byte stream reaches its worker, and the bootstrap that
//! turns a plain interpreter into one (the `protocol` page of `execnet_core`, section 3).

use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gateway::{Link, Options};
use crate::process::Process;
use crate::spec::{ExecModel, Spec, Transport};

/// Our Python agent, as the file is (what is sent is `agent_as_sent`, with its cold parts
/// as text).
pub const AGENT_SOURCE: &str = include_str!("agent/agent.py");

/// The agent as it is sent: [`AGENT_SOURCE`] with each part marked cold (from a line
/// `# cold: WHY` to a line `# end cold`, at the indentation of the code they enclose)
/// turned into a call that hands the part to the agent as text, to be compiled on first
/// use (see `_cold` in the agent). Compiling the whole file is most of a worker's start;
/// the cold parts are what a session may never need. Every line keeps its number, so
/// that tracebacks point into the file.
pub fn agent_as_sent() -> &'static str {
    static SENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SENT.get_or_init(|| lazy_agent(AGENT_SOURCE))
}

/// See [`agent_as_sent`]. A part with no end marker runs to the end of the source.
fn lazy_agent(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + source.len() / 8);
    let mut lines = source.split_inclusive('\n').enumerate();
    while let Some((index, line)) = lines.next() {
        let text = line.trim_start_matches(' ');
        if !text.starts_with("# cold:") {
            out.push_str(line);
            continue;
        }
        let indent = line.len() - text.len();
        let margin = " ".repeat(indent);
        // The part's first line, numbered from 1.
        let first = index + 2;
        let mut part = String::new();
        let mut names = Vec::new();
        let mut count = 0;
        for (_, line) in lines.by_ref() {
            if line.trim_end() == format!("{margin}# end cold") {
                count += 1;
                break;
            }
            count += 1;
            // Kept as they are, indentation and all: a class's part is compiled inside a
            // class statement of its own, so that no string in it changes.
            let def = line
                .strip_prefix(margin.as_str())
                .and_then(|l| l.strip_prefix("def ").or_else(|| l.strip_prefix("class ")));
            if let Some(rest) = def {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
            part.push_str(line);
        }
        let tuple = match names.len() {
            1 => format!("('{}',)", names[0]),
            _ => format!(
                "({})",
                names
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let call = if indent == 0 {
            format!("_cold({tuple}, {}, {first})\n", py_literal(&part))
        } else {
            let targets = match names.len() {
                1 => format!("{},", names[0]),
                _ => names.join(", "),
            };
            format!(
                "{margin}{targets} = _cold_methods({tuple}, {}, {first})\n",
                py_literal(&part)
            )
        };
        out.push_str(&call);
        // The marker line holds the call; the part's lines and its end marker stay as
        // empty lines.
        out.extend(std::iter::repeat_n('\n', count));
    }
    out
}

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

/// Splits a `python=` value as a POSIX shell would (quotes, backslash escapes), so that
/// `docker exec -i box python3` is a command with arguments and `/opt/my\ py/python`
/// one path. An unbalanced quote is an error that says so.
pub fn split_python(python: &str) -> Result<Vec<String>> {
    match shlex::split(python) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        Some(_) => Err(Error::Spec(crate::spec::SpecError::MissingValue(
            "python".into(),
        ))),
        None => Err(Error::Spec(crate::spec::SpecError::BadValue {
            key: "python".into(),
            reason: format!("{python:?} has an unclosed quote or a trailing backslash"),
        })),
    }
}

/// The interpreter's argv: `PYTHON [-B] -u -c BOOTSTRAP_LINE`, where `python=` is split
/// as a shell would split it (see [`split_python`]).
pub fn python_argv(spec: &Spec, default_python: &str) -> Vec<String> {
    let python = spec.python.as_deref().unwrap_or(default_python);
    let mut argv: Vec<String> =
        split_python(python).unwrap_or_else(|_| vec![default_python.into()]);
    argv.push("-u".into());
    if spec.dont_write_bytecode {
        argv.push("-B".into());
    }
    argv.push("-c".into());
    argv.push(BOOTSTRAP_LINE.into());
    argv
}

/// What the agent is told at bootstrap, before it serves anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// The execution model (`execmodel=`).
    pub execmodel: ExecModel,
    /// The largest frame the agent accepts from the master; a larger one is a corrupt
    /// stream that ends the agent. The same bound the master applies to the worker's
    /// frames ([`Limits::max_message`](execnet_core::Limits)).
    pub max_message: u32,
    /// The `nice=` increment, applied by the agent before it starts any thread, so that
    /// the whole process runs at it (Linux keeps niceness per thread).
    pub nice: Option<i32>,
    /// The gateway id, shown to remote code as `channel.gateway.id` (`ID-worker`).
    pub id: Option<String>,
    /// Whether the agent reports its compiled code before the handshake byte (see
    /// [`crate::compiled`]).
    pub report_code: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            execmodel: ExecModel::Thread,
            max_message: execnet_core::Limits::DEFAULT.max_message,
            nice: None,
            id: None,
            report_code: false,
        }
    }
}

impl AgentConfig {
    /// The configuration for a spec, with the master's frame bound.
    pub fn for_spec(spec: &Spec, max_message: u32) -> AgentConfig {
        AgentConfig {
            execmodel: spec.execmodel.unwrap_or_default(),
            max_message,
            nice: spec.nice,
            id: spec.id.clone(),
            report_code: false,
        }
    }

    /// The Python statement that hands this configuration to the agent: on the agent's
    /// first line, before its comment, so that the agent's lines keep their numbers.
    fn statement(&self) -> String {
        format!("execnet_config = {}  ", self.dict_literal())
    }

    /// The configuration as a Python dict literal.
    pub(crate) fn dict_literal(&self) -> String {
        let mut s = format!(
            "{{'execmodel': '{}', 'max_message': {}",
            self.execmodel.as_str(),
            self.max_message
        );
        if let Some(n) = self.nice {
            s.push_str(&format!(", 'nice': {n}"));
        }
        if let Some(id) = &self.id {
            s.push_str(&format!(", 'id': {}", py_literal(&format!("{id}-worker"))));
        }
        // `EXECNET_DEBUG` here turns the agent's own log on wherever it runs (an ssh
        // host or a socket server does not get this process's environment).
        if std::env::var_os("EXECNET_DEBUG").is_some_and(|v| !v.is_empty() && v != "0") {
            s.push_str(", 'debug': 1");
        }
        if self.report_code {
            s.push_str(", 'report_code': 1");
        }
        s.push('}');
        s
    }
}

/// The one line written to the interpreter's stdin: the agent as a literal, with the
/// default configuration.
pub fn bootstrap_payload() -> Vec<u8> {
    bootstrap_payload_with(&AgentConfig::default())
}

/// The bootstrap line for an agent configured by `config`.
pub fn bootstrap_payload_with(config: &AgentConfig) -> Vec<u8> {
    let mut source = config.statement();
    source.push_str(agent_as_sent());
    let mut line = py_literal(&source).into_bytes();
    line.push(b'\n');
    line
}

/// Quotes one argument for a POSIX shell (the remote side of ssh runs the command
/// through the login shell); an argument holding a NUL byte cannot be passed.
pub fn shell_quote(arg: &str) -> Result<String> {
    shlex::try_quote(arg)
        .map(|q| q.into_owned())
        .map_err(|_| Error::InvalidArgument(format!("{arg:?} cannot be passed to a shell")))
}

/// The argv of the local `ssh` process: options, destination, and the remote command as
/// one shell-quoted string. No local shell is involved.
pub fn ssh_argv(spec: &Spec, connect_timeout: Duration) -> Result<Vec<String>> {
    let Transport::Ssh { destination, port } = &spec.transport else {
        return Err(Error::InvalidArgument(format!("{spec} is not an ssh spec")));
    };
    let remote = || -> Result<Vec<String>> {
        python_argv(spec, "python3")
            .iter()
            .map(|a| shell_quote(a))
            .collect()
    };
    if let Some(machine) = &spec.vagrant_ssh {
        // `vagrant ssh MACHINE -- SSH-ARGS... COMMAND`: vagrant supplies host, port and key.
        let mut argv: Vec<String> = vec![
            "vagrant".into(),
            "ssh".into(),
            machine.clone(),
            "--".into(),
            "-C".into(),
            "-o".into(),
            format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)),
        ];
        argv.push(remote()?.join(" "));
        return Ok(argv);
    }
    let mut argv: Vec<String> = vec!["ssh".into(), "-C".into()];
    if let Some(cfg) = &spec.ssh_config {
        argv.push("-F".into());
        argv.push(cfg.clone());
    }
    if let Some(p) = port {
        argv.push("-p".into());
        argv.push(p.to_string());
    }
    argv.push("-o".into());
    argv.push(format!(
        "ConnectTimeout={}",
        connect_timeout.as_secs().max(1)
    ));
    argv.push(destination.clone());
    argv.push(remote()?.join(" "));
    Ok(argv)
}

/// Starts `argv` as a worker process and sends it the agent.
fn spawn_worker(argv: &[String], spec: &Spec, options: &Options, local_env: bool) -> Result<Link> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::InvalidArgument("an empty python= command".into()))?;
    tracing::debug!(?argv, "starting the worker");
    let mut cmd = Command::new(program);
    cmd.args(args);
    if local_env {
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
    }
    let (process, pipes) = Process::spawn(cmd, options.output).map_err(|error| Error::Spawn {
        program: program.clone(),
        error,
    })?;
    let mut config = AgentConfig::for_spec(spec, options.limits.max_message);
    // The compiled agent an earlier worker of this command line reported, or else a
    // request for this one's; popen workers only (`crate::compiled` says which reports
    // are trusted: an ssh destination, or a launcher in python=, may reach another host
    // each time).
    let key = crate::compiled::key(argv, &spec.env);
    let compiled = if local_env {
        crate::compiled::lookup(&key)
    } else {
        None
    };
    config.report_code = local_env && compiled.is_none();
    tracing::debug!(compiled = compiled.is_some(), "sending the agent");
    // Written by a thread of its own, so that the startup timeout also bounds a worker
    // that never reads (a 200 KB line does not fit in a pipe of the default size); the
    // session writes nothing before the handshake, which comes only after the whole line
    // was read. A failed write means the worker died at once; the handshake reports why.
    let line = crate::compiled::bootstrap_line(&config, compiled.as_deref());
    let mut stdin =
        std::fs::File::from(std::os::fd::AsFd::as_fd(&pipes.stdin).try_clone_to_owned()?);
    thread::Builder::new()
        .name("execnet-bootstrap".into())
        .spawn(move || {
            let _ = stdin.write_all(&line);
        })?;
    Ok(Link {
        input: Box::new(pipes.stdout),
        output: Box::new(pipes.stdin),
        process: Some(process),
        closer: None,
        compiled: match (&compiled, config.report_code) {
            (Some(_), _) => crate::compiled::Use::Sent(key),
            (None, true) => crate::compiled::Use::Report(key),
            (None, false) => crate::compiled::Use::None,
        },
    })
}

/// Connects to a socket server and sends it the agent; with a secret, over the
/// encrypted session of [`crate::auth`].
fn socket(
    host: &str,
    port: u16,
    secret: Option<&str>,
    options: &Options,
    config: &AgentConfig,
) -> Result<Link> {
    // A secret file that cannot be used is reported before any connection is made.
    let secret = match secret {
        Some(path) => Some(
            crate::auth::Secret::from_file(std::path::Path::new(path)).map_err(|error| {
                Error::Secret {
                    path: path.into(),
                    error,
                }
            })?,
        ),
        None => None,
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::HostUnreachable {
            host: host.into(),
            message: format!("cannot resolve {host}:{port}: {e}"),
        })?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, options.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        Error::Io(
            last.unwrap_or_else(|| std::io::Error::other(format!("{host}:{port}: no address"))),
        )
    })?;
    stream.set_nodelay(true)?;
    let closer = stream.try_clone()?;
    let closer: Option<Box<dyn Fn() + Send + Sync>> = Some(Box::new(move || {
        let _ = closer.shutdown(Shutdown::Both);
    }));
    let Some(secret) = secret else {
        stream.write_all(&bootstrap_payload_with(config))?;
        return Ok(Link {
            input: Box::new(stream.try_clone()?),
            output: Box::new(stream),
            process: None,
            closer,
            compiled: crate::compiled::Use::None,
        });
    };
    stream.set_read_timeout(Some(options.connect_timeout))?;
    stream.set_write_timeout(Some(options.connect_timeout))?;
    let session = crate::auth::connect(&mut stream, &secret).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Error::Refused(e.to_string())
        } else {
            Error::Auth {
                host: format!("{host}:{port}"),
                error: e,
            }
        }
    })?;
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    let (input, mut output) = session.split(stream.try_clone()?, stream);
    output.write_all(&bootstrap_payload_with(config))?;
    Ok(Link {
        input: Box::new(input),
        output: Box::new(output),
        process: None,
        closer,
        compiled: crate::compiled::Use::None,
    })
}

/// Opens the byte stream for `spec`.
pub(crate) fn connect(spec: &Spec, options: &Options) -> Result<Link> {
    if spec.via.is_some() {
        return Err(Error::InvalidArgument(
            "via= needs a group that holds the named gateway: use Group::makegateway".into(),
        ));
    }
    if let Some(python) = &spec.python {
        split_python(python)?;
    }
    match &spec.transport {
        Transport::Popen => spawn_worker(&python_argv(spec, "python3"), spec, options, true),
        Transport::Ssh { .. } => spawn_worker(
            &ssh_argv(spec, options.connect_timeout)?,
            spec,
            options,
            false,
        ),
        Transport::Socket { host, port } => socket(
            host,
            *port,
            spec.secret.as_deref(),
            options,
            &AgentConfig::for_spec(spec, options.limits.max_message),
        ),
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
    fn ssh_command_is_quoted() {
        let s =
            Spec::parse("ssh=me@host:2200//python=/opt/py 3/python//ssh_config=/tmp/c").unwrap();
        let argv = ssh_argv(&s, Duration::from_secs(7)).unwrap();
        assert_eq!(
            argv[..9],
            [
                "ssh",
                "-C",
                "-F",
                "/tmp/c",
                "-p",
                "2200",
                "-o",
                "ConnectTimeout=7",
                "me@host"
            ]
        );
        // The remote shell splits the command back into the interpreter's argv.
        assert_eq!(
            shlex::split(&argv[9]).unwrap(),
            ["/opt/py", "3/python", "-u", "-c", BOOTSTRAP_LINE]
        );
        for arg in ["it's", "a b", "$HOME", "`x`", "\\", ""] {
            assert_eq!(shlex::split(&shell_quote(arg).unwrap()).unwrap(), [arg]);
        }
        assert!(shell_quote("nul\0").is_err());
    }

    #[test]
    fn python_is_split_as_a_shell_would() {
        let s = Spec::parse("popen//python=docker exec -i 'my box' python3").unwrap();
        assert_eq!(
            python_argv(&s, "python3")[..5],
            ["docker", "exec", "-i", "my box", "python3"]
        );
        let s = Spec::parse(r"popen//python=/opt/my\ py/bin/python").unwrap();
        assert_eq!(python_argv(&s, "python3")[0], "/opt/my py/bin/python");
        assert!(split_python("python3 'unclosed").is_err());
    }

    #[test]
    fn vagrant_ssh_argv() {
        let s = Spec::parse("vagrant_ssh=default//python=python3").unwrap();
        let argv = ssh_argv(&s, Duration::from_secs(5)).unwrap();
        assert_eq!(argv[..5], ["vagrant", "ssh", "default", "--", "-C"]);
        assert!(
            argv.last().unwrap().starts_with("python3 -u -c "),
            "{argv:?}"
        );
    }

    #[test]
    fn agent_config_goes_first() {
        let cfg = AgentConfig {
            execmodel: ExecModel::MainThreadOnly,
            max_message: 1000,
            nice: Some(5),
            id: Some("gw'1".into()),
            report_code: false,
        };
        let line = String::from_utf8(bootstrap_payload_with(&cfg)).unwrap();
        assert!(line.starts_with(
            "'execnet_config = {\\'execmodel\\': \\'main_thread_only\\', \\'max_message\\': 1000, \\'nice\\': 5"
        ), "{}", &line[..120]);
        assert!(line.is_ascii());
    }

    #[test]
    fn cold_parts_become_text_and_lines_keep_their_numbers() {
        let source = "# first\nx = 1\n# cold: rare\ndef a():\n    return 'it''s'\n\n\nclass B(object):\n    pass\n# end cold\nclass C(object):\n    def hot(self):\n        pass\n\n    # cold: rare methods\n    def m(self):\n        return 1\n    # end cold\ny = 2\n";
        let sent = lazy_agent(source);
        assert_eq!(sent.lines().count(), source.lines().count());
        let lines: Vec<&str> = sent.lines().collect();
        assert_eq!(
            lines[2],
            "_cold(('a', 'B'), 'def a():\\n    return \\'it\\'\\'s\\'\\n\\n\\nclass B(object):\\n    pass\\n', 4)"
        );
        assert_eq!(
            lines[14],
            "    m, = _cold_methods(('m',), '    def m(self):\\n        return 1\\n', 16)"
        );
        // Everything else is where it was.
        for (i, (a, b)) in source.lines().zip(sent.lines()).enumerate() {
            if ![2, 14].contains(&i) && !(3..=9).contains(&i) && !(15..=17).contains(&i) {
                assert_eq!(a, b, "line {}", i + 1);
            }
        }
    }

    #[test]
    fn the_agent_as_sent() {
        let sent = agent_as_sent();
        // The configuration goes before the comment on the first line.
        assert!(AGENT_SOURCE.starts_with('#'));
        assert_eq!(sent.lines().count(), AGENT_SOURCE.lines().count());
        let parts = AGENT_SOURCE
            .lines()
            .filter(|l| l.trim_start().starts_with("# cold:"))
            .count();
        let ends = AGENT_SOURCE
            .lines()
            .filter(|l| l.trim() == "# end cold")
            .count();
        assert!(
            parts >= 5 && parts == ends,
            "{parts} cold parts, {ends} ends"
        );
        assert_eq!(
            sent.matches("_cold((").count() + sent.matches("= _cold_methods((").count(),
            parts
        );
        // A cold name is defined only in its part: the stand-in is all the hot code sees.
        for name in [
            "_MainThreadRunner",
            "_ChannelReader",
            "_watchdog",
            "_cleanup",
            "waitclose",
        ] {
            let defines = |l: &str| {
                let l = l.trim_start();
                l.starts_with(&format!("def {name}(")) || l.starts_with(&format!("class {name}("))
            };
            assert!(!sent.lines().any(defines), "{name}");
            assert!(AGENT_SOURCE.lines().any(defines), "{name}");
        }
        assert!(sent.len() < AGENT_SOURCE.len() + AGENT_SOURCE.len() / 4);
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
