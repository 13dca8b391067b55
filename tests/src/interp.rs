//! Finding the interpreters, tools and the reference execnet the tests run against.
//!
//! `.ci/setup` writes `interpreters.env` (lines `NAME=PATH`) into the reference
//! directory; without it the interpreters are discovered: pyenv's CPython versions,
//! `pythonX.Y`, `pypy3` and `jython` on `PATH`, and the `python3` on `PATH` under its
//! own version. With `CI=true`, anything missing is a test failure, not a skip.
//!
//! Elsewhere (a machine with Rust and one `python3`), a test whose interpreter, tool or
//! reference install is missing returns early, and says so where a person sees it: a
//! line on the terminal (written past the test harness's capture) naming the test, what
//! it lacks and how to get it, after a summary of what this machine has. The tests
//! written for CPython 3.11, the suite's "any CPython 3", run on the newest CPython 3.8+
//! there is when 3.11 is missing, and the summary says which.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Interpreter families, which decide the reference release that runs on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// CPython 2.7.
    CPython2,
    /// CPython 3.x.
    CPython3 {
        /// The minor version.
        minor: u32,
    },
    /// PyPy 3.
    PyPy3,
    /// Jython 2.7.
    Jython,
}

/// One interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interp {
    /// `cpython2.7`, `cpython3.6` … `cpython3.13`, `pypy3`, `jython`.
    pub name: String,
    /// The executable.
    pub path: PathBuf,
    /// Its family.
    pub family: Family,
}

/// Every name the tests know, in order.
pub const NAMES: [&str; 11] = [
    "cpython2.7",
    "cpython3.6",
    "cpython3.7",
    "cpython3.8",
    "cpython3.9",
    "cpython3.10",
    "cpython3.11",
    "cpython3.12",
    "cpython3.13",
    "pypy3",
    "jython",
];

/// The directory holding the reference installs (`execnet-2.1.2/`, `execnet-1.9.0/`).
pub fn refdir() -> PathBuf {
    match std::env::var_os("EXECNET_REFDIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target")
            .join("pyref"),
    }
}

fn family(name: &str) -> Option<Family> {
    match name {
        "cpython2.7" => Some(Family::CPython2),
        "pypy3" => Some(Family::PyPy3),
        "jython" => Some(Family::Jython),
        n => n
            .strip_prefix("cpython3.")
            .and_then(|m| m.parse().ok())
            .map(|minor| Family::CPython3 { minor }),
    }
}

/// Parses `NAME=PATH` lines; unknown names and blank or `#` lines are skipped.
pub fn parse_env(text: &str) -> Vec<Interp> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (name, path) = line.split_once('=')?;
            Some(Interp {
                name: name.to_string(),
                path: PathBuf::from(path),
                family: family(name)?,
            })
        })
        .collect()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

fn discover() -> Vec<Interp> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        .unwrap_or_default();
    let mut versions: Vec<String> = std::fs::read_dir(root.join("versions"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    let plain = which("python3").and_then(|p| Some((version_of(&p)?, p)));
    let mut found = Vec::new();
    for name in NAMES {
        let path = match name.strip_prefix("cpython") {
            Some(xy) => versions
                .iter()
                .rev()
                .find(|v| v.starts_with(&format!("{xy}.")))
                .map(|v| root.join("versions").join(v).join("bin").join("python"))
                .filter(|p| p.is_file())
                .or_else(|| which(&format!("python{xy}")))
                .or_else(|| {
                    plain
                        .as_ref()
                        .filter(|(v, _)| v == xy)
                        .map(|(_, p)| p.clone())
                }),
            None => which(name),
        };
        if let (Some(path), Some(family)) = (path, family(name)) {
            found.push(Interp {
                name: name.to_string(),
                path,
                family,
            });
        }
    }
    found
}

/// `X.Y` of a Python executable.
fn version_of(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Every interpreter on this machine.
pub fn all() -> Vec<Interp> {
    match std::fs::read_to_string(refdir().join("interpreters.env")) {
        Ok(text) => parse_env(&text),
        Err(_) => {
            // Discovery runs `python3` to learn its version: once per test binary.
            static FOUND: std::sync::OnceLock<Vec<Interp>> = std::sync::OnceLock::new();
            FOUND.get_or_init(discover).clone()
        }
    }
}

/// Whether this run is CI (`CI=true`), where a missing interpreter fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A line where the person running the tests sees it: the harness captures `eprintln!`
/// of passing tests, not writes to the stderr handle.
fn tell(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The test running now, as the harness names its thread.
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}

/// Once per test binary: what this machine has and lacks, and where the rest comes from.
fn summary_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let found = all();
        let have: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
        let missing: Vec<&str> = NAMES.into_iter().filter(|n| !have.contains(n)).collect();
        let mut text = format!(
            "execnet tests: {} of {} interpreters here ({}); missing: {}.",
            have.len(),
            NAMES.len(),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            },
            if missing.is_empty() {
                "none".to_string()
            } else {
                missing.join(", ")
            },
        );
        if let Some(stand_in) = stand_in_for_311(&found) {
            text.push_str(&format!(
                " Tests written for cpython3.11 run on {} ({}).",
                stand_in.name,
                stand_in.path.display()
            ));
        }
        text.push_str(
            " Tests that need what is missing return early and say so below; CI=true makes \
             them fail instead; `bash .ci/run` installs everything (Debian).",
        );
        tell(&text);
    });
}

/// Reports that the running test returns early for want of `what` (outside CI).
pub fn skip(what: &str, install: &str) {
    summary_once();
    tell(&format!(
        "SKIP {}: {what} is not installed ({install})",
        test_name()
    ));
}

/// The CPython 3 that stands in for 3.11 when 3.11 is missing: the newest 3.8+.
fn stand_in_for_311(found: &[Interp]) -> Option<Interp> {
    if found.iter().any(|i| i.name == "cpython3.11") {
        return None;
    }
    found
        .iter()
        .filter(|i| matches!(i.family, Family::CPython3 { minor } if minor >= 8))
        .max_by_key(|i| match i.family {
            Family::CPython3 { minor } => minor,
            _ => 0,
        })
        .cloned()
}

/// The interpreter called `name`. When it is missing: a panic under CI, otherwise a
/// reported skip and `None`. Outside CI, `cpython3.11` (the suite's "any CPython 3") is
/// stood in for by the newest CPython 3.8+ there is.
pub fn require(name: &str) -> Option<Interp> {
    let found = all();
    match found.iter().find(|i| i.name == name) {
        Some(i) => Some(i.clone()),
        None if in_ci() => panic!("interpreter {name} is not installed (run .ci/setup)"),
        None => {
            if name == "cpython3.11" {
                if let Some(stand_in) = stand_in_for_311(&found) {
                    summary_once();
                    return Some(stand_in);
                }
            }
            let install = match name {
                "pypy3" | "jython" => "run .ci/setup, or apt-get install pypy3 jython",
                _ => "run .ci/setup, or install it with pyenv",
            };
            skip(name, install);
            None
        }
    }
}

/// Every interpreter of [`NAMES`], each as [`require`] finds it: under CI a missing one
/// panics; elsewhere the ones there are (a stand-in may appear twice), each missing one
/// reported.
pub fn require_every() -> Vec<Interp> {
    NAMES.iter().filter_map(|n| require(n)).collect()
}

/// As [`require`], and the reference execnet for it must be installed too.
pub fn require_reference(name: &str) -> Option<Interp> {
    let interp = require(name)?;
    let dir = reference_path(&interp);
    if dir.join("execnet").is_dir() {
        return Some(interp);
    }
    if in_ci() {
        panic!(
            "reference execnet missing at {} (run .ci/setup)",
            dir.display()
        );
    }
    skip(
        &format!("the reference execnet for {} (at {})", interp.name, dir.display()),
        "run .ci/setup, or `pip install --target DIR execnet==2.1.2` (1.9.0 for Python 2 and Jython) and set EXECNET_REFDIR",
    );
    None
}

/// A program on `PATH`; when it is missing, a panic under CI, otherwise a reported skip
/// and `None`.
pub fn require_tool(program: &str, install: &str) -> Option<PathBuf> {
    match which(program) {
        Some(p) => Some(p),
        None if in_ci() => panic!("{program} is not installed ({install})"),
        None => {
            skip(program, install);
            None
        }
    }
}

/// The reference release for an interpreter: execnet 2.1.2 on CPython 3.8+ and PyPy3,
/// 1.9.0 on CPython 2.7, 3.6, 3.7 and Jython.
pub fn reference_path(interp: &Interp) -> PathBuf {
    let release = match interp.family {
        Family::CPython3 { minor } if minor >= 8 => "execnet-2.1.2",
        Family::PyPy3 => "execnet-2.1.2",
        _ => "execnet-1.9.0",
    };
    refdir().join(release)
}

/// A command running `interp`, with the reference importable when `with_reference`
/// (`PYTHONPATH`, or `JYTHONPATH` for Jython) and no bytecode written. A missing
/// reference install panics under CI; elsewhere the command is returned as it is and
/// fails when it imports execnet.
pub fn python_command(interp: &Interp, with_reference: bool) -> Command {
    let mut cmd = Command::new(&interp.path);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    if with_reference {
        let dir = reference_path(interp);
        if !dir.join("execnet").is_dir() && in_ci() {
            panic!(
                "reference execnet missing at {} (run .ci/setup)",
                dir.display()
            );
        }
        let var = if interp.family == Family::Jython {
            "JYTHONPATH"
        } else {
            "PYTHONPATH"
        };
        cmd.env(var, dir);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interpreters_env() {
        let list = parse_env("# made by setup\ncpython2.7=/a/python\n\ncpython3.13=/b/python\npypy3=/usr/bin/pypy3\nbogus=/x\n");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].family, Family::CPython2);
        assert_eq!(list[1].family, Family::CPython3 { minor: 13 });
        assert_eq!(list[2].path, PathBuf::from("/usr/bin/pypy3"));
    }

    #[test]
    fn reference_release_per_family() {
        let i = |name: &str| Interp {
            name: name.into(),
            path: PathBuf::new(),
            family: family(name).unwrap(),
        };
        assert!(reference_path(&i("cpython3.8")).ends_with("execnet-2.1.2"));
        assert!(reference_path(&i("cpython3.7")).ends_with("execnet-1.9.0"));
        assert!(reference_path(&i("jython")).ends_with("execnet-1.9.0"));
        assert!(reference_path(&i("pypy3")).ends_with("execnet-2.1.2"));
    }
}
