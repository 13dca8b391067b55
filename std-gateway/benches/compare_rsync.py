"""RSync benchmark: the first sync of one tree to three workers, ours against the
reference's execnet.RSync, interleaved in the same run.

The tree is the one the tests use: 1,000 regular files in nested directories (one
executable, one empty, one of 50 MB, the rest up to 5 KB), a relative and an absolute
symlink. Each round syncs it into fresh destinations twice, once with each
implementation (the order alternates from round to round), with CPython 3.11 workers:

- ours: `cargo run --release --example rsync -- --json SRC PYTHON DEST DEST DEST`
  (a Rust master);
- the reference: execnet 2.1.2's `RSync` on a CPython 3.11 master.

Both time the same span: from handing the targets to the rsync object to the end of
`send()`, with the three workers already started; then, the same for a second sync that
finds nothing changed. Every destination is checked against
the source (content hashes, modes, symlinks) after each run. The table gives the median
and range over the rounds of each side's time, and of the per-round ratio.

Usage: python3 std-gateway/benches/compare_rsync.py [ROUNDS] [PYTHON]
"""
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
PYTHON = sys.argv[2] if len(sys.argv) > 2 else os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python")
REF = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))
BIG = 50 * 1000 * 1000

REFERENCE = r'''
import json, sys, time
import execnet
src, python, dests = sys.argv[1], sys.argv[2], sys.argv[3:]
group = execnet.Group()
gws = [group.makegateway("popen//python=" + python) for _ in dests]
t = time.perf_counter()
rsync = execnet.RSync(src, verbose=False)
for gw, dest in zip(gws, dests):
    rsync.add_target(gw, dest)
rsync.send()
seconds = time.perf_counter() - t
# A second sync, nothing changed: an RSync object sends once, so a new one.
t = time.perf_counter()
again = execnet.RSync(src, verbose=False)
for gw, dest in zip(gws, dests):
    again.add_target(gw, dest)
again.send()
again_seconds = time.perf_counter() - t
PEAK = "for line in open('/proc/self/status'):\n    if line.startswith('VmHWM:'):\n        channel.send(int(line.split()[1]))\n"
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
workers = max(gw.remote_exec(PEAK).receive() for gw in gws)
group.terminate(5)
print(json.dumps({"seconds": seconds, "again_seconds": again_seconds, "master_peak_kb": hwm(),
                  "worker_peak_kb": workers}))
'''


def make_tree(root):
    rnd = random.Random(1)
    files = 0
    size = 0
    for d in range(10):
        for s in range(10):
            for f in range(10):
                n = d * 100 + s * 10 + f
                sub = os.path.join(root, "d%d" % d, "s%d" % s)
                if n % 97 == 5:
                    sub = os.path.join(sub, "deeper", "still")
                os.makedirs(sub, exist_ok=True)
                if n == 0:
                    data = b"#!/bin/sh\necho executable\n"
                elif n == 1:
                    data = b""
                elif n == 2:
                    data = os.urandom(BIG)
                else:
                    data = bytes(rnd.getrandbits(8) for _ in range((n * 37) % 5000))
                path = os.path.join(sub, "f%d.txt" % f)
                with open(path, "wb") as fh:
                    fh.write(data)
                if n == 0:
                    os.chmod(path, 0o755)
                files += 1
                size += len(data)
    os.symlink("s0/f3.txt", os.path.join(root, "d0", "rel-link"))
    os.symlink(os.path.join(root, "d0", "s0", "f4.txt"), os.path.join(root, "d0", "abs-link"))
    return files, size


def snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                if target.startswith(root + os.sep):
                    target = "<root>" + target[len(root):]
                out[rel] = ("link", target)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def main():
    work = tempfile.mkdtemp(prefix="execnet-rsync-bench-")
    try:
        src = os.path.join(work, "src")
        files, size = make_tree(src)
        want = snapshot(src)
        subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "execnet", "--example", "rsync"], cwd=ROOT)
        ours_exe = os.path.join(ROOT, "target", "release", "examples", "rsync")
        env = dict(os.environ, PYTHONPATH=os.path.join(REF, "execnet-2.1.2"))

        def run(which):
            dests = [os.path.join(work, "%s-%d" % (which, i)) for i in range(3)]
            for d in dests:
                shutil.rmtree(d, ignore_errors=True)
            # Start each run with no dirty pages, so that neither side pays for the
            # other's writeback.
            os.sync()
            if which == "ours":
                cmd = [ours_exe, "--json", src, PYTHON] + dests
                out = subprocess.check_output(cmd, cwd=ROOT)
            else:
                out = subprocess.check_output([PYTHON, "-c", REFERENCE, src, PYTHON] + dests, env=env)
            result = json.loads(out.decode().strip().splitlines()[-1])
            for d in dests:
                got = snapshot(d)
                if got != want:
                    bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
                    raise SystemExit("%s: %s differs from the source at %s" % (which, d, bad[:5]))
                shutil.rmtree(d)
            return result

        ours, ref = [], []
        for r in range(ROUNDS):
            order = ("ours", "ref") if r % 2 == 0 else ("ref", "ours")
            got = {}
            for which in order:
                got[which] = run(which)
            ours.append(got["ours"])
            ref.append(got["ref"])
            print("round %d: ours %.3f s, reference %.3f s" % (r + 1, got["ours"]["seconds"], got["ref"]["seconds"]),
                  file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    ratios = [b["seconds"] / a["seconds"] for a, b in zip(ours, ref)]
    ot = [x["seconds"] for x in ours]
    rt = [x["seconds"] for x in ref]
    print("Tree: %d files, %.1f MB, to 3 CPython %s workers; %d rounds, interleaved." % (
        files, mb, subprocess.check_output([PYTHON, "-c", "import sys; print(sys.version.split()[0])"]).decode().strip(),
        ROUNDS))
    print()
    print("| first sync | ours | execnet 2.1.2 | ours vs reference |")
    print("|---|---|---|---|")
    print("| wall time, median (range) | %.3f s (%.3f-%.3f) | %.3f s (%.3f-%.3f) | %.2fx faster (%.2f-%.2f) |" % (
        median(ot), min(ot), max(ot), median(rt), min(rt), max(rt), median(ratios), min(ratios), max(ratios)))
    print("| source MB/s, median | %.1f | %.1f | |" % (mb / median(ot), mb / median(rt)))
    oa = [x["again_seconds"] for x in ours]
    ra = [x["again_seconds"] for x in ref]
    again = [b / a for a, b in zip(oa, ra)]
    print("| second sync, nothing changed, median (range) | %.3f s (%.3f-%.3f) | %.3f s (%.3f-%.3f) | %.2fx faster (%.2f-%.2f) |" % (
        median(oa), min(oa), max(oa), median(ra), min(ra), max(ra), median(again), min(again), max(again)))
    print("| MB/s written over 3 targets, median | %.1f | %.1f | |" % (3 * mb / median(ot), 3 * mb / median(rt)))
    print("| master peak memory, median | %.1f MB | %.1f MB | |" % (
        median([x["master_peak_kb"] for x in ours]) / 1024.0, median([x["master_peak_kb"] for x in ref]) / 1024.0))
    print("| worker peak memory, median of the largest | %.1f MB | %.1f MB | |" % (
        median([x["worker_peak_kb"] for x in ours]) / 1024.0, median([x["worker_peak_kb"] for x in ref]) / 1024.0))


if __name__ == "__main__":
    main()
