//! Sends a directory tree to several Python workers at once with `RSync`, showing
//! progress on stderr and a summary at the end.
//!
//! ```sh
//! cargo run -p execnet --example rsync -- [--delete] [--json] SRC PYTHON DEST [DEST...]
//! ```
//!
//! Each DEST gets its own worker (`popen//python=PYTHON`). With `--json`, one line of
//! figures for the benchmark (`std-gateway/benches/compare_rsync.py`) replaces the
//! summary: the sync alone is timed, not the workers' start, and then a second sync
//! that finds nothing to do.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use execnet::rsync::{RSync, Step, TargetOptions};
use execnet::Group;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut flag = |name: &str| {
        let found = args.iter().any(|a| a == name);
        args.retain(|a| a != name);
        found
    };
    let (delete, json) = (flag("--delete"), flag("--json"));
    let [src, python, dests @ ..] = args.as_slice() else {
        eprintln!("usage: rsync [--delete] [--json] SRC PYTHON DEST [DEST...]");
        return ExitCode::from(2);
    };
    if dests.is_empty() {
        eprintln!("usage: rsync [--delete] [--json] SRC PYTHON DEST [DEST...]");
        return ExitCode::from(2);
    }
    let group = Group::new();
    let specs: Vec<String> = dests
        .iter()
        .map(|_| format!("popen//python={python}"))
        .collect();
    let gateways = match group.makegateways(&specs) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("rsync: {e}");
            return ExitCode::from(3);
        }
    };
    let mut sync = RSync::new(src);
    for (gw, dest) in gateways.iter().zip(dests) {
        sync.add_target(gw, dest, TargetOptions::new().delete(delete));
    }
    let on_terminal = !json;
    sync.on_progress(move |p| {
        if on_terminal && matches!(p.step, Step::File | Step::Planned) {
            eprint!(
                "\r{}/{} files, {:.1}/{:.1} MB",
                p.files_done,
                p.files_total,
                p.bytes_done as f64 / 1e6,
                p.bytes_total as f64 / 1e6
            );
            let _ = std::io::stderr().flush();
        }
    });
    let start = Instant::now();
    let outcome = sync.send();
    let seconds = start.elapsed().as_secs_f64();
    if on_terminal {
        eprintln!();
    }
    // For the benchmark: the highest peak memory of any worker, and of this process, and
    // how long a second sync takes when nothing changed.
    let again_seconds = if json && outcome.is_ok() {
        let start = Instant::now();
        let again = sync.send();
        let t = start.elapsed().as_secs_f64();
        match again {
            Ok(r) if r.files_read == 0 => t,
            _ => f64::NAN,
        }
    } else {
        0.0
    };
    let worker_peak_kb = if json { worker_peak(&gateways) } else { 0 };
    group.terminate(std::time::Duration::from_secs(5));
    match outcome {
        Ok(report) if json => {
            println!(
                "{{\"seconds\": {seconds}, \"again_seconds\": {again_seconds}, \"files_read\": {}, \"bytes_read\": {}, \"targets\": {}, \"master_peak_kb\": {}, \"worker_peak_kb\": {worker_peak_kb}}}",
                report.files_read,
                report.bytes_read,
                report.targets.len(),
                vm_hwm_kb(),
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// This process's peak resident memory in KiB (`VmHWM`), 0 where unknown.
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The highest `VmHWM` of the workers, in KiB.
fn worker_peak(gateways: &[execnet::Gateway]) -> u64 {
    const PEAK: &str = "for line in open('/proc/self/status'):\n    if line.startswith('VmHWM:'):\n        channel.send(int(line.split()[1]))\n";
    gateways
        .iter()
        .filter_map(|gw| gw.remote_exec(PEAK).ok()?.receive::<u64>().ok())
        .max()
        .unwrap_or(0)
}
