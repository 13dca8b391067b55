//! Gateway specs: the `popen//python=python2.7//chdir=build//env:NAME=VALUE//id=gw3`
//! strings of execnet, parsed into a typed [`Spec`].
//!
//! Keys are separated by `//`; a key without `=` is a flag. Exactly one transport key is
//! required: `popen`, `ssh=[user@]host[:port]`, or `socket=host:port` (optionally
//! `via=GATEWAY-ID` for the last two and for `popen`). Unknown keys, duplicate keys, a
//! value on a flag or a missing value are errors that name the key.

use std::collections::BTreeMap;
use std::fmt;

/// How to reach the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A local child process over pipes.
    Popen,
    /// The system `ssh` binary to `[user@]host[:port]`.
    Ssh {
        /// `[user@]host`.
        destination: String,
        /// The port, when given.
        port: Option<u16>,
    },
    /// A TCP connection to a socket server at `host:port`.
    Socket {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// How the worker runs remote code (`execmodel=`), as the reference names the models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExecModel {
    /// Each `remote_exec` in a thread of its own (the default).
    #[default]
    Thread,
    /// Every `remote_exec` in the worker's main thread, one at a time; a second one
    /// that comes while the first runs is refused after a second instead of waiting
    /// forever (pytest-xdist asks for this model).
    MainThreadOnly,
    /// Accepted where the `eventlet` package is installed in the worker (the start
    /// fails with a clear error where it is not); code still runs in threads.
    Eventlet,
    /// As `Eventlet`, for `gevent`.
    Gevent,
}

impl ExecModel {
    /// The name on the wire and in specs (`thread`, `main_thread_only`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecModel::Thread => "thread",
            ExecModel::MainThreadOnly => "main_thread_only",
            ExecModel::Eventlet => "eventlet",
            ExecModel::Gevent => "gevent",
        }
    }
}

impl fmt::Display for ExecModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ExecModel {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<ExecModel, SpecError> {
        match s {
            "thread" => Ok(ExecModel::Thread),
            "main_thread_only" => Ok(ExecModel::MainThreadOnly),
            "eventlet" => Ok(ExecModel::Eventlet),
            "gevent" => Ok(ExecModel::Gevent),
            other => Err(SpecError::BadValue {
                key: "execmodel".into(),
                reason: format!(
                    "{other:?} is not an execution model (thread, main_thread_only, eventlet, gevent)"
                ),
            }),
        }
    }
}

/// A parsed gateway spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The transport.
    pub transport: Transport,
    /// The interpreter to run (`python=`, which may carry extra arguments after a space);
    /// `python3` when absent.
    pub python: Option<String>,
    /// Directory to change into on the remote side (created if missing).
    pub chdir: Option<String>,
    /// `os.nice` increment on the remote side.
    pub nice: Option<i32>,
    /// Environment variables for the remote side.
    pub env: BTreeMap<String, String>,
    /// The gateway id (`id=`); the group assigns `gwN` when absent.
    pub id: Option<String>,
    /// Start Python with `-B` (no `.pyc` files).
    pub dont_write_bytecode: bool,
    /// The ssh config file (`ssh_config=`), for ssh gateways.
    pub ssh_config: Option<String>,
    /// Open the gateway through another gateway's remote side (`via=`).
    pub via: Option<String>,
    /// A file holding the shared secret for an `execnet serve` server (`secret=`).
    pub secret: Option<String>,
    /// How the worker runs remote code (`execmodel=`); the group's default when absent.
    pub execmodel: Option<ExecModel>,
    /// A Vagrant machine to reach over `vagrant ssh` (`vagrant_ssh=NAME`), a transport
    /// like `ssh=`.
    pub vagrant_ssh: Option<String>,
    /// `installvia=GATEWAY-ID`: the reference's key for installing execnet through
    /// another gateway before the start. Parsed and kept; our agent needs no install,
    /// so it changes nothing.
    pub installvia: Option<String>,
    /// The text the spec was parsed from.
    pub source: String,
}

/// Why a spec did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// A key this implementation does not know.
    UnknownKey(String),
    /// A key given twice.
    DuplicateKey(String),
    /// A key that needs a value was given without one.
    MissingValue(String),
    /// A flag key was given a value.
    UnexpectedValue(String),
    /// A value that does not parse (says which key, and why).
    BadValue {
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// No transport key (`popen`, `ssh=`, `socket=`), or more than one.
    Transport(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::UnknownKey(k) => write!(
                f,
                "unknown spec key {k:?} (known: popen, ssh, socket, vagrant_ssh, python, chdir, nice, env:NAME, id, dont_write_bytecode, ssh_config, via, secret, execmodel, installvia)"
            ),
            SpecError::DuplicateKey(k) => write!(f, "spec key {k:?} given twice"),
            SpecError::MissingValue(k) => write!(f, "spec key {k:?} needs a value ({k}=...)"),
            SpecError::UnexpectedValue(k) => write!(f, "spec key {k:?} takes no value"),
            SpecError::BadValue { key, reason } => write!(f, "bad value for {key:?}: {reason}"),
            SpecError::Transport(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SpecError {}

fn split_port(key: &str, text: &str) -> Result<(String, Option<u16>), SpecError> {
    let bad = |reason: &str| SpecError::BadValue {
        key: key.into(),
        reason: reason.into(),
    };
    // [user@]host[:port]; an IPv6 address goes in brackets.
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((
                host.into(),
                Some(p.parse().map_err(|_| bad("port is not a number 0-65535"))?),
            )),
            None if after.is_empty() => Ok((host.into(), None)),
            None => Err(bad("text after ']'")),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.into(),
            Some(
                port.parse()
                    .map_err(|_| bad("port is not a number 0-65535"))?,
            ),
        )),
        None => Ok((text.into(), None)),
    }
}

impl Spec {
    /// Parses a spec string.
    ///
    /// ```
    /// use execnet::spec::{Spec, Transport};
    /// let s = Spec::parse("popen//python=python2.7//env:A=1//id=w1").unwrap();
    /// assert_eq!(s.transport, Transport::Popen);
    /// assert_eq!(s.python.as_deref(), Some("python2.7"));
    /// assert_eq!(s.env["A"], "1");
    /// assert!(Spec::parse("popen//pyhton=x").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let mut transport: Option<Transport> = None;
        let mut spec = Spec {
            transport: Transport::Popen,
            python: None,
            chdir: None,
            nice: None,
            env: BTreeMap::new(),
            id: None,
            dont_write_bytecode: false,
            ssh_config: None,
            via: None,
            secret: None,
            execmodel: None,
            vagrant_ssh: None,
            installvia: None,
            source: text.into(),
        };
        let mut seen: Vec<String> = Vec::new();
        for part in text.split("//") {
            if part.is_empty() {
                return Err(SpecError::Transport(format!(
                    "empty key in spec {text:?} (keys are separated by '//')"
                )));
            }
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            };
            if seen.iter().any(|s| s == key) {
                return Err(SpecError::DuplicateKey(key.into()));
            }
            seen.push(key.into());
            let need = |v: Option<&str>| -> Result<String, SpecError> {
                match v {
                    Some(v) if !v.is_empty() => Ok(v.into()),
                    _ => Err(SpecError::MissingValue(key.into())),
                }
            };
            let set_transport = |t: &mut Option<Transport>, new: Transport| {
                if t.is_some() {
                    Err(SpecError::Transport(format!(
                        "spec {text:?} names more than one transport"
                    )))
                } else {
                    *t = Some(new);
                    Ok(())
                }
            };
            match key {
                "popen" => {
                    if value.is_some() {
                        return Err(SpecError::UnexpectedValue(key.into()));
                    }
                    set_transport(&mut transport, Transport::Popen)?;
                }
                "ssh" => {
                    let (destination, port) = split_port(key, &need(value)?)?;
                    if destination.is_empty() || destination.starts_with('-') {
                        return Err(SpecError::BadValue {
                            key: key.into(),
                            reason: "host must not be empty or start with '-'".into(),
                        });
                    }
                    set_transport(&mut transport, Transport::Ssh { destination, port })?;
                }
                "socket" => {
                    let (host, port) = split_port(key, &need(value)?)?;
                    let port = port.ok_or_else(|| SpecError::BadValue {
                        key: key.into(),
                        reason: "expected host:port".into(),
                    })?;
                    set_transport(&mut transport, Transport::Socket { host, port })?;
                }
                "python" => spec.python = Some(need(value)?),
                "chdir" => spec.chdir = Some(need(value)?),
                "nice" => {
                    let v = need(value)?;
                    spec.nice = Some(v.parse().map_err(|_| SpecError::BadValue {
                        key: key.into(),
                        reason: format!("{v:?} is not an integer"),
                    })?);
                }
                "id" => spec.id = Some(need(value)?),
                "ssh_config" => spec.ssh_config = Some(need(value)?),
                "via" => spec.via = Some(need(value)?),
                "secret" => spec.secret = Some(need(value)?),
                "execmodel" => spec.execmodel = Some(need(value)?.parse()?),
                "installvia" => spec.installvia = Some(need(value)?),
                "vagrant_ssh" => {
                    let machine = need(value)?;
                    if machine.starts_with('-') {
                        return Err(SpecError::BadValue {
                            key: key.into(),
                            reason: "machine name must not start with '-'".into(),
                        });
                    }
                    spec.vagrant_ssh = Some(machine.clone());
                    set_transport(
                        &mut transport,
                        Transport::Ssh {
                            destination: machine,
                            port: None,
                        },
                    )?;
                }
                "dont_write_bytecode" => {
                    if value.is_some() {
                        return Err(SpecError::UnexpectedValue(key.into()));
                    }
                    spec.dont_write_bytecode = true;
                }
                k => match k.strip_prefix("env:") {
                    Some(name) if !name.is_empty() => {
                        spec.env.insert(name.into(), value.unwrap_or("").into());
                    }
                    _ => return Err(SpecError::UnknownKey(k.into())),
                },
            }
        }
        spec.transport = transport.ok_or_else(|| {
            SpecError::Transport(format!(
                "spec {text:?} names no transport: start it with popen, ssh=HOST, vagrant_ssh=MACHINE or socket=HOST:PORT"
            ))
        })?;
        if spec.secret.is_some() && !matches!(spec.transport, Transport::Socket { .. }) {
            return Err(SpecError::BadValue {
                key: "secret".into(),
                reason: "only socket gateways use it".into(),
            });
        }
        if spec.ssh_config.is_some() && spec.vagrant_ssh.is_some() {
            return Err(SpecError::BadValue {
                key: "ssh_config".into(),
                reason: "vagrant_ssh gateways use vagrant's own ssh config".into(),
            });
        }
        if spec.ssh_config.is_some() && !matches!(spec.transport, Transport::Ssh { .. }) {
            return Err(SpecError::BadValue {
                key: "ssh_config".into(),
                reason: "only ssh gateways use it".into(),
            });
        }
        Ok(spec)
    }
}

impl std::str::FromStr for Spec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Spec, SpecError> {
        Spec::parse(s)
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let s = Spec::parse(
            "ssh=me@host:2222//python=python2.7//chdir=build//nice=5//env:A=b=c//id=gw3//dont_write_bytecode//ssh_config=cfg",
        )
        .unwrap();
        assert_eq!(
            s.transport,
            Transport::Ssh {
                destination: "me@host".into(),
                port: Some(2222)
            }
        );
        assert_eq!(s.nice, Some(5));
        assert_eq!(s.env["A"], "b=c");
        assert!(s.dont_write_bytecode);
        let s = Spec::parse("socket=127.0.0.1:8888//via=gw0").unwrap();
        assert_eq!(
            s.transport,
            Transport::Socket {
                host: "127.0.0.1".into(),
                port: 8888
            }
        );
        assert_eq!(s.via.as_deref(), Some("gw0"));
    }

    #[test]
    fn execmodel_vagrant_and_installvia() {
        let s = Spec::parse("popen//execmodel=main_thread_only//installvia=gw0").unwrap();
        assert_eq!(s.execmodel, Some(ExecModel::MainThreadOnly));
        assert_eq!(s.installvia.as_deref(), Some("gw0"));
        for m in ["thread", "main_thread_only", "eventlet", "gevent"] {
            let s = Spec::parse(&format!("popen//execmodel={m}")).unwrap();
            assert_eq!(s.execmodel.unwrap().as_str(), m);
        }
        let err = Spec::parse("popen//execmodel=fibers").unwrap_err();
        assert!(err.to_string().contains("not an execution model"), "{err}");
        let s = Spec::parse("vagrant_ssh=default//python=python3").unwrap();
        assert_eq!(s.vagrant_ssh.as_deref(), Some("default"));
        assert!(matches!(s.transport, Transport::Ssh { .. }));
        assert!(matches!(
            Spec::parse("vagrant_ssh=default//ssh=h"),
            Err(SpecError::Transport(_))
        ));
        assert!(Spec::parse("vagrant_ssh=-oX").is_err());
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            Spec::parse("popen//bogus=1"),
            Err(SpecError::UnknownKey("bogus".into()))
        );
        assert_eq!(
            Spec::parse("popen//id=a//id=b"),
            Err(SpecError::DuplicateKey("id".into()))
        );
        assert_eq!(
            Spec::parse("popen//python"),
            Err(SpecError::MissingValue("python".into()))
        );
        assert!(matches!(
            Spec::parse("python=x"),
            Err(SpecError::Transport(_))
        ));
        assert!(matches!(
            Spec::parse("popen//ssh=h"),
            Err(SpecError::Transport(_))
        ));
        assert!(matches!(
            Spec::parse("socket=host"),
            Err(SpecError::BadValue { .. })
        ));
        assert!(matches!(
            Spec::parse("popen//nice=x"),
            Err(SpecError::BadValue { .. })
        ));
        assert!(matches!(
            Spec::parse("ssh=-oProxyCommand=x"),
            Err(SpecError::BadValue { .. })
        ));
        assert!(matches!(Spec::parse(""), Err(SpecError::Transport(_))));
        assert_eq!(
            Spec::parse("popen=1"),
            Err(SpecError::UnexpectedValue("popen".into()))
        );
    }
}
