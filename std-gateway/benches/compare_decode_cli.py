"""`execnet decode` against Python's `repr(execnet.loads(data))`, interleaved in one run.

Each round runs, in alternating order, `execnet decode FILE` (the release binary) and
`python -c "sys.stdout.write(repr(execnet.loads(open(FILE,'rb').read())))"` (execnet
2.1.2 on CPython 3.11), both writing to /dev/null, and takes each process's wall time
and peak RSS (from wait4). The table gives the median and range of each side's time and
of the per-round ratio (reference time / ours: above 1 means ours is faster), and each
side's peak RSS as a multiple of the input's size, for 50 MB of random bytes and for inputs
made of many small values (where a decoded value is larger than its encoding).

Usage: python3 std-gateway/benches/compare_decode_cli.py [ROUNDS] [PYTHON]
(build first: cargo build --release -p execnet --features cli --bin execnet)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
PYTHON = sys.argv[2] if len(sys.argv) > 2 else os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python")
REF = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))
OURS = os.path.join(ROOT, "target", "release", "execnet")

MAKE = r'''
import os, sys, random
import execnet
kind, path = sys.argv[1], sys.argv[2]
random.seed(7)
if kind == "bytes_50mb":
    value = os.urandom(50 * 1000 * 1000)
elif kind == "ints_1m":
    value = [random.randrange(-2**31, 2**31) for _ in range(1000000)]
elif kind == "strs_200k":
    value = ["item-%d-%s" % (i, "x" * (i % 40)) for i in range(200000)]
elif kind == "nested_100k":
    value = {"k%d" % i: (i, 2.5 * i, "v%d" % i, None, [True, False]) for i in range(100000)}
elif kind == "nones_tuple_2m":
    value = (None,) * 2000000
with open(path, "wb") as f:
    f.write(execnet.dumps(value))
'''

REPR = "import sys, execnet; sys.stdout.write(repr(execnet.loads(open(sys.argv[1], 'rb').read())))"


def run(argv, env=None):
    """Wall seconds and peak RSS in bytes of one process, its output to /dev/null."""
    with open(os.devnull, "wb") as null:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=null, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    if status != 0:
        sys.exit("%s failed with status %d" % (argv, status))
    return wall, usage.ru_maxrss * 1024


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    if not os.path.exists(OURS):
        sys.exit("build first: cargo build --release -p execnet --features cli --bin execnet")
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "execnet-2.1.2"))
    tmp = tempfile.mkdtemp(prefix="execnet-decode-bench-")
    kinds = ["bytes_50mb", "ints_1m", "strs_200k", "nested_100k", "nones_tuple_2m"]
    print("%d rounds, ours: %s, reference: execnet 2.1.2 on %s" % (ROUNDS, OURS, PYTHON))
    print()
    print("| input | bytes | ours (s) | repr(loads()) (s) | per-round ratio, median (range) | peak RSS / input, ours | reference |")
    print("|---|---|---|---|---|---|---|")
    for kind in kinds:
        path = os.path.join(tmp, kind + ".bin")
        subprocess.check_call([PYTHON, "-c", MAKE, kind, path], env=env)
        size = os.path.getsize(path)
        ours, theirs, ratios, rss, ref_rss = [], [], [], [], []
        for r in range(ROUNDS):
            sides = [("ours", [OURS, "decode", path]), ("ref", [PYTHON, "-c", REPR, path])]
            if r % 2:
                sides.reverse()
            times = {}
            for name, argv in sides:
                wall, peak = run(argv, env)
                times[name] = wall
                (rss if name == "ours" else ref_rss).append(peak)
            ours.append(times["ours"])
            theirs.append(times["ref"])
            ratios.append(times["ref"] / times["ours"])
        print(
            "| %s | %s | %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) | %.2fx (%.2f-%.2f) | %.2f | %.2f |"
            % (
                kind,
                "{:,}".format(size),
                median(ours), min(ours), max(ours),
                median(theirs), min(theirs), max(theirs),
                median(ratios), min(ratios), max(ratios),
                max(rss) / size,
                max(ref_rss) / size,
            )
        )
        os.remove(path)
    os.rmdir(tmp)


main()
