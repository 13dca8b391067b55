//! The `execnet` command-line tool.

fn main() {
    eprintln!("execnet: no subcommands yet");
    std::process::exit(2);
}
