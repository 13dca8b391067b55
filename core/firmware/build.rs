//! Puts memory.x and device.x where the linker finds them and passes the linker scripts,
//! here rather than in RUSTFLAGS so that a RUSTFLAGS from the environment cannot drop them.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in ["memory.x", "device.x"] {
        fs::copy(name, out.join(name)).expect("copy linker script");
        println!("cargo:rerun-if-changed={name}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=build.rs");
}
