"""Dicts and sets with colliding keys: our owned decode against the reference's
execnet.loads (2.1.2, CPython 3.11), interleaved over rounds in one run.

Inputs (written here, byte for byte what execnet.dumps writes for them):
- 40,000 NaN dict keys (issue 11: 24 s before the fix, reference 0.18 s);
- a 1 MB dict of integers crafted against the fixed hash the old index used (11 s);
- a set of 50,000 NaNs (37 s when a worker sent it);
- 40,000 keys that are all equal to 1 (1, 1.0, True, complex(1, 0)).

Usage: python3 core/benches/colliding.py [ROUNDS]
"""
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.environ.get("EXECNET_BENCH_PYTHON", os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python"))
REF = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))

REFTIMING = r'''
import json, sys, time
import execnet
out = {}
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    best = None
    for _ in range(3):
        t = time.perf_counter()
        execnet.loads(data)
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    out[path] = best * 1e9
print(json.dumps(out))
'''


def flt(f):
    return b"D" + struct.pack(">d", f)


def integer(i):
    if -2**31 <= i < 2**31:
        return b"F" + struct.pack(">i", i)
    text = str(i).encode()
    return b"H" + struct.pack(">i", len(text)) + text


def dict_of(keys):
    return b"\x02J" + b"".join(k + b"LP" for k in keys) + b"Q"


def set_of(members):
    return b"\x02" + b"".join(members) + b"O" + struct.pack(">i", len(members)) + b"Q"


def crafted_ints(size):
    fnv = 0x100000001b3
    inv = pow(fnv, -1, 2**64)
    keys, j = [], 1
    total = 2
    while total < size:
        h = (j << 32) & (2**64 - 1)
        x = ((h >> 29) | (h << 35)) & (2**64 - 1)
        i = ((x * inv) & (2**64 - 1)) ^ 1
        if i >= 2**63:
            i -= 2**64
        k = integer(i)
        keys.append(k)
        total += len(k) + 2
        j += 1
    return keys


def inputs():
    nan = flt(float("nan"))
    ones = [integer(1), flt(1.0), b"R", b"T" + struct.pack(">dd", 1.0, 0.0)]
    return {
        "40,000 NaN dict keys": dict_of([nan] * 40000),
        "1 MB dict of crafted ints": dict_of(crafted_ints(1 << 20)),
        "set of 50,000 NaNs": set_of([nan] * 50000),
        "40,000 keys equal to 1": dict_of([ones[i % 4] for i in range(40000)]),
    }


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    subprocess.check_call(["cargo", "bench", "-q", "-p", "execnet-core", "--features", "serde", "--bench", "codec", "--no-run"], cwd=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, data in inputs().items():
            path = os.path.join(tmp, "%d.bin" % len(paths))
            with open(path, "wb") as f:
                f.write(data)
            paths[name] = (path, len(data))
        files = [p for p, _ in paths.values()]
        ratios = {name: [] for name in paths}
        ours_t = {name: [] for name in paths}
        ref_t = {name: [] for name in paths}
        out = os.path.join(tmp, "ours.json")
        for _ in range(rounds):
            env = dict(os.environ, EXECNET_BENCH_FILES=":".join(files), EXECNET_BENCH_JSON=out)
            subprocess.check_call(["cargo", "bench", "-q", "-p", "execnet-core", "--features", "serde", "--bench", "codec"], cwd=ROOT, env=env)
            ours = json.load(open(out))
            env = dict(os.environ, PYTHONPATH=os.path.join(REF, "execnet-2.1.2"))
            theirs = json.loads(subprocess.check_output([PYTHON, "-c", REFTIMING] + files, env=env))
            for name, (path, _) in paths.items():
                ours_t[name].append(ours[path])
                ref_t[name].append(theirs[path])
                ratios[name].append(theirs[path] / ours[path])
        print("| input | bytes | ours (ms, median) | execnet.loads (ms, median) | ours vs reference: median (range) |")
        print("|---|---|---|---|---|")
        for name, (_, size) in paths.items():
            r = ratios[name]
            print("| %s | %d | %.1f | %.1f | %.1fx (%.1f-%.1fx) |" % (
                name, size, statistics.median(ours_t[name]) / 1e6, statistics.median(ref_t[name]) / 1e6,
                statistics.median(r), min(r), max(r)))
        print("\n%d rounds, best of 3 decodes per round on each side." % rounds)


if __name__ == "__main__":
    main()
