"""Where the firmware's flash goes, by crate.

Usage: python3 size_report.py [ELF]   (default: the release build)

Every byte of `.text` is attributed to a crate by the debug info (the release profile
keeps it; it does not reach the flash): for each halfword of each function, llvm-symbolizer
gives the chain of functions inlined there, and the innermost one that
belongs to a crate (not to Rust's own `core` library, whose generic helpers are inlined
everywhere) names the owner. Code that is only Rust's `core` or the compiler's runtime
(soft float) is listed as such. `.rodata` and the
vector table are listed whole. Needs llvm-dwarfdump and llvm-symbolizer (Debian's `llvm`).
"""
import collections
import os
import re
import subprocess
import sys

BUILTINS = "compiler-builtins (soft float, int conversions)"
HERE = os.path.dirname(os.path.abspath(__file__))
ELF = os.path.join(HERE, "target", "thumbv7m-none-eabi", "release", "execnet-firmware")


CRATES = [
    ("execnet_firmware", "execnet-firmware"),
    ("execnet_core", "execnet-core"),
    ("cortex_m_semihosting", "cortex-m-semihosting"),
    ("cortex_m_rt", "cortex-m-rt"),
    ("cortex_m", "cortex-m"),
    ("defmt", "defmt"),
    ("compiler_builtins", BUILTINS),
]


def owner(function, path):
    """The crate a frame belongs to, or None for Rust's own library. By the function's
    name first (a generic of Rust's library instantiated for a crate's type names that
    type), then by its source file."""
    for ident, name in CRATES:
        if ident in function:
            return name
    if os.path.join("core", "firmware", "src") in path:
        return "execnet-firmware"
    if re.match(r"^_*aeabi|^__[a-z]+[0-9]|^mem(cpy|move|set|cmp)$", function):
        return BUILTINS
    if "compiler_builtins" in path or "compiler-builtins" in path:
        return BUILTINS
    if re.search(r"(^|/)core/src/", path) and "/rustc/" not in path:
        return "execnet-core"
    m = re.search(r"/registry/src/[^/]+/([A-Za-z0-9_-]+?)-\d+\.\d+\.\d+", path)
    if m:
        return m.group(1)
    return None


def function_halfwords(elf):
    """Every halfword address of every function symbol (Thumb code is made of halfwords;
    a function's size includes its literal pool)."""
    out = subprocess.run(["llvm-nm", "-S", "--defined-only", elf], capture_output=True,
                         text=True, check=True).stdout
    seen = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start = int(parts[0], 16) & ~1
            for a in range(start, start + int(parts[1], 16), 2):
                seen.add(a)
    return sorted(seen)


def chains(elf, addresses):
    """For each address, the inlined frames as (function, source file), innermost first."""
    text = "\n".join("0x%x" % a for a in addresses) + "\n"
    out = subprocess.run(["llvm-symbolizer", "--inlining", "--obj=" + elf], input=text,
                         capture_output=True, text=True, check=True).stdout
    result = []
    for block in out.strip("\n").split("\n\n"):
        lines = block.splitlines()
        result.append([(f, loc.rsplit(":", 2)[0]) for f, loc in zip(lines[0::2], lines[1::2])])
    return result


def main():
    elf = sys.argv[1] if len(sys.argv) > 1 else ELF
    sizes = subprocess.run(["llvm-size", "-A", elf], capture_output=True, text=True,
                           check=True).stdout
    section = {}
    text_start = 0
    for line in sizes.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("."):
            section[parts[0]] = int(parts[1])
            if parts[0] == ".text":
                text_start = int(parts[2])
    text_end = text_start + section.get(".text", 0)
    addresses = [a for a in function_halfwords(elf) if text_start <= a < text_end]
    by = collections.Counter()
    core_files = collections.Counter()
    for files in chains(elf, addresses):
        frame = next(((o, p) for o, p in ((owner(f, p), p) for f, p in files) if o), None)
        who = frame[0] if frame else None
        by[who or "Rust core library (UTF-8 check, slices)"] += 2
        if who == "execnet-core":
            ours = (re.search(r"core/src/(.*)$", p) for _, p in files if "/rustc/" not in p)
            m = next((m for m in ours if m), None)
            core_files[m.group(1) if m else "(Rust library code for its types)"] += 2
    covered = sum(by.values())
    text = section.get(".text", 0)
    if text > covered:
        by["no debug info"] += text - covered
    flash = sum(section.get(s, 0) for s in (".vector_table", ".text", ".rodata", ".data"))
    print("flash: %d bytes (%.1f KiB)" % (flash, flash / 1024))
    for name in (".vector_table", ".rodata", ".data"):
        print("  %-52s %6d" % (name, section.get(name, 0)))
    print("  .text by crate:")
    for who, n in by.most_common():
        print("    %-50s %6d  %4.1f%%" % (who, n, 100.0 * n / flash))
    print("  execnet-core by source file:")
    for name, n in core_files.most_common():
        print("    %-50s %6d" % (name, n))
    print("static RAM (.data + .bss + .uninit): %d bytes"
          % sum(section.get(s, 0) for s in (".data", ".bss", ".uninit")))


main()
