//! `rsync`: a tree to many gateways at once, over `execnet::rsync::RSync`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use execnet::rsync::{Progress, RSync, Step, TargetOptions};
use execnet::spec::Spec;

use crate::run::{clear_spinner, live_group, phase, spinner, Deadline};
use crate::{output_failed, Fail, Verbosity};

#[derive(clap::Args)]
pub struct RsyncArgs {
    /// The directory (or single file) to send.
    source: PathBuf,
    /// Where to: a gateway spec, `:`, and the destination path there.
    #[arg(required = true, value_name = "SPEC:DEST", value_parser = target)]
    targets: Vec<Target>,
    /// Delete what the destination has and the source does not.
    #[arg(long)]
    delete: bool,
    /// Give up after this many seconds (status 3).
    #[arg(long, value_name = "SECONDS", value_parser = crate::seconds, allow_hyphen_values = true)]
    timeout: Option<Duration>,
}

#[derive(Clone)]
struct Target {
    spec: String,
    dest: String,
}

/// `SPEC:DEST`, split at the last `:` (specs have colons of their own: `ssh=h:22`).
fn target(text: &str) -> Result<Target, String> {
    let (spec, dest) = text
        .rsplit_once(':')
        .filter(|(s, d)| !s.is_empty() && !d.is_empty())
        .ok_or_else(|| format!("expected SPEC:DEST, found {text:?}"))?;
    Spec::parse(spec).map_err(|e| format!("{spec:?}: {e}"))?;
    Ok(Target {
        spec: spec.into(),
        dest: dest.into(),
    })
}

/// How progress is shown: a bar on a terminal, a line per file elsewhere, or nothing.
enum Shown {
    Bar(indicatif::ProgressBar),
    Lines,
    Nothing,
}

fn progress_display(v: Verbosity) -> Shown {
    if v.animate() {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ) {
            bar.set_style(style);
        }
        Shown::Bar(bar)
    } else if v.progress_lines() {
        Shown::Lines
    } else {
        Shown::Nothing
    }
}

fn show(shown: &Shown, p: &Progress<'_>) {
    match (shown, p.step) {
        (Shown::Bar(bar), Step::Planned) => {
            bar.set_length(p.bytes_total);
            bar.set_message(format!("0/{} files", p.files_total));
        }
        (Shown::Bar(bar), _) => {
            bar.set_position(p.bytes_done);
            bar.set_message(format!(
                "{}/{} files {}",
                p.files_done,
                p.files_total,
                p.path.display()
            ));
        }
        (Shown::Lines, Step::Planned) => eprintln!(
            "execnet: {} files ({} bytes) to send",
            p.files_total, p.bytes_total
        ),
        (Shown::Lines, Step::File) => eprintln!(
            "execnet: [{}/{}] {} ({} bytes)",
            p.files_done,
            p.files_total,
            p.path.display(),
            p.file_size
        ),
        _ => {}
    }
}

pub fn cmd_rsync(a: RsyncArgs, v: Verbosity) -> Result<(), Fail> {
    if std::fs::symlink_metadata(&a.source).is_err() {
        return Err(Fail::usage(format!(
            "{}: no such file or directory",
            a.source.display()
        )));
    }
    crate::run::tear_down_on_signals();
    let deadline = Deadline::start(a.timeout);
    let group = live_group(deadline.options(execnet::Options::default()));
    let start = Instant::now();
    phase(format!("starting {} gateways", a.targets.len()));
    spinner(v, format!("starting {} gateways", a.targets.len()));
    let started: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = a
            .targets
            .iter()
            .map(|t| s.spawn(|| crate::run::start_gateway(&group, &t.spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Fail(3, "a gateway thread panicked".into())))
            })
            .collect()
    });
    clear_spinner();
    let mut gateways = Vec::new();
    for r in started {
        gateways.push(r?);
    }
    if v.timings() {
        eprintln!(
            "execnet: {} gateways started in {:.3} s",
            gateways.len(),
            start.elapsed().as_secs_f64()
        );
    }
    phase("sending the tree");
    let shown = progress_display(v);
    let mut sync = RSync::new(&a.source);
    for (gw, t) in gateways.iter().zip(&a.targets) {
        sync.add_target(gw, &t.dest, TargetOptions::new().delete(a.delete));
    }
    let bar = match &shown {
        Shown::Bar(b) => Some(b.clone()),
        _ => None,
    };
    sync.on_progress(move |p| show(&shown, p));
    let result = sync.send();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = match &result {
        Ok(r) => r,
        Err(e) => &*e.report,
    };
    let mut out = crate::stdout();
    writeln!(out, "{}", report.summary())
        .and_then(|()| out.flush())
        .map_err(output_failed)?;
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            for f in e.failures() {
                eprintln!("execnet: {f}");
            }
            let lost = e.report.targets.iter().any(|t| !t.completed);
            Err(Fail(if lost { 3 } else { 1 }, String::new()))
        }
    }
}
