"""Codec benchmark: ours against the reference execnet 2.1.2 and pickle, interleaved.

Each round runs our harness (`cargo bench --bench codec` in JSON mode: the floor, a
borrowed decode into reused node storage, an owned decode, a typed serde decode into the
vector's natural Rust type, encode) and then the reference's `execnet.loads` /
`execnet.dumps` and `pickle.loads` / `pickle.dumps` (highest protocol) on CPython 3.11,
alternating which side goes first. Both sides take the same statistic: the median over
15 batches of about 5 ms of the time per call. Each ratio is computed per round; the
table gives its median and range over the rounds.

The floor is a bare walk over the same bytes: every opcode read and every operand
skipped, nothing built (`decode::node_bound`).

Usage: python3 core/benches/compare.py [ROUNDS]   (at least 5; default 5)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.environ.get("EXECNET_BENCH_PYTHON", os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python"))
REF = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))
VECTORS = ["small_msg", "ints_10k", "floats_10k", "strs_10k", "bytes_1m", "nested", "bigints"]
CARGO = ["cargo", "bench", "-q", "-p", "execnet-core", "--features", "serde", "--bench", "codec"]

PYTIMING = r'''
import json, os, pickle, sys, time
import execnet
DIR = sys.argv[1]
def median_per_call(f, samples=15):
    t = time.perf_counter(); f(); once = max(time.perf_counter() - t, 2e-8)
    batch = max(1, int(0.005 / once))
    per_call = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(batch):
            f()
        per_call.append((time.perf_counter() - t) / batch)
    per_call.sort()
    return per_call[len(per_call) // 2] * 1e9
out = {}
for name in sys.argv[2:]:
    data = open(os.path.join(DIR, name + ".bin"), "rb").read()
    value = execnet.loads(data)
    p = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    out[name] = {
        "execnet_loads_ns": median_per_call(lambda: execnet.loads(data)),
        "execnet_dumps_ns": median_per_call(lambda: execnet.dumps(value)),
        "pickle_loads_ns": median_per_call(lambda: pickle.loads(p)),
        "pickle_dumps_ns": median_per_call(lambda: pickle.dumps(value, pickle.HIGHEST_PROTOCOL)),
    }
print(json.dumps(out))
'''

# name: (numerator side, numerator key, denominator side, denominator key); a ratio above
# 1 is better for us except where noted.
RATIOS = [
    ("owned vs pickle.loads", "ref", "pickle_loads_ns", "ours", "decode_owned_ns"),
    ("owned vs execnet.loads", "ref", "execnet_loads_ns", "ours", "decode_owned_ns"),
    ("borrowed / floor (lower is better)", "ours", "decode_borrowed_ns", "ours", "walk_ns"),
    ("typed / borrowed (lower is better)", "ours", "decode_typed_ns", "ours", "decode_borrowed_ns"),
    ("encode vs pickle.dumps", "ref", "pickle_dumps_ns", "ours", "encode_ns"),
    ("encode vs execnet.dumps", "ref", "execnet_dumps_ns", "ours", "encode_ns"),
]


def ours_round(tmp):
    path = os.path.join(tmp, "ours.json")
    subprocess.check_call(CARGO, cwd=ROOT, env=dict(os.environ, EXECNET_BENCH_JSON=path))
    with open(path) as f:
        return json.load(f)


def ref_round():
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "execnet-2.1.2"))
    return json.loads(subprocess.check_output(
        [PYTHON, "-c", PYTIMING, os.path.join(ROOT, "tests", "vectors")] + VECTORS, env=env))


def us(ns):
    return "%.1f" % (ns / 1e3)


def main():
    rounds = max(5, int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    subprocess.check_call(CARGO + ["--no-run"], cwd=ROOT)
    samples = {v: [] for v in VECTORS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            if r % 2 == 0:
                ours = ours_round(tmp)
                ref = ref_round()
            else:
                ref = ref_round()
                ours = ours_round(tmp)
            for v in VECTORS:
                samples[v].append({"ours": ours[v], "ref": ref[v]})
            print("round %d of %d done" % (r + 1, rounds), file=sys.stderr)

    def med(v, side, key):
        return statistics.median(s[side][key] for s in samples[v])

    print("Times in microseconds, median over %d rounds." % rounds)
    print()
    print("| vector | bytes | floor (walk) | borrowed | owned | typed (serde) | encode | execnet loads / dumps | pickle loads / dumps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v in VECTORS:
        print("| %s | %d | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
            v, samples[v][0]["ours"]["bytes"], us(med(v, "ours", "walk_ns")),
            us(med(v, "ours", "decode_borrowed_ns")), us(med(v, "ours", "decode_owned_ns")),
            us(med(v, "ours", "decode_typed_ns")), us(med(v, "ours", "encode_ns")),
            us(med(v, "ref", "execnet_loads_ns")), us(med(v, "ref", "execnet_dumps_ns")),
            us(med(v, "ref", "pickle_loads_ns")), us(med(v, "ref", "pickle_dumps_ns"))))
    print()
    print("Per-round ratios, median (min-max):")
    print()
    print("| vector | " + " | ".join(r[0] for r in RATIOS) + " |")
    print("|---|" + "---|" * len(RATIOS))
    for v in VECTORS:
        cells = []
        for _, ns, nk, ds, dk in RATIOS:
            rs = [s[ns][nk] / s[ds][dk] for s in samples[v]]
            cells.append("%.2fx (%.2f-%.2f)" % (statistics.median(rs), min(rs), max(rs)))
        print("| %s | %s |" % (v, " | ".join(cells)))


if __name__ == "__main__":
    main()
