"""Codec benchmark, ours against the reference execnet and pickle, in the same run.

Runs the codec bench in JSON mode, then times execnet.loads / execnet.dumps (2.1.2) and
pickle.loads / pickle.dumps (highest protocol) on the same vectors with CPython 3.11, and
prints a Markdown table of times and ratios.

Usage: python3 core/benches/compare.py
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.environ.get("EXECNET_BENCH_PYTHON", os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python"))
REF = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))
VECTORS = ["small_msg", "ints_10k", "floats_10k", "strs_10k", "bytes_1m", "nested", "bigints"]

PYTIMING = r'''
import json, os, pickle, sys, timeit
import execnet
DIR = sys.argv[1]
out = {}
def best(stmt):
    t = timeit.Timer(stmt)
    n, _ = t.autorange()
    return min(t.repeat(5, n)) / n * 1e9
for name in sys.argv[2:]:
    data = open(os.path.join(DIR, name + ".bin"), "rb").read()
    value = execnet.loads(data)
    p = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    out[name] = {
        "execnet_loads_ns": best(lambda: execnet.loads(data)),
        "execnet_dumps_ns": best(lambda: execnet.dumps(value)),
        "pickle_loads_ns": best(lambda: pickle.loads(p)),
        "pickle_dumps_ns": best(lambda: pickle.dumps(value, pickle.HIGHEST_PROTOCOL)),
    }
print(json.dumps(out))
'''


def us(ns):
    return "%.1f" % (ns / 1e3) if ns >= 0 else "-"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ours.json")
        env = dict(os.environ, EXECNET_BENCH_JSON=path)
        subprocess.check_call(["cargo", "bench", "-q", "-p", "execnet-core", "--bench", "codec"], cwd=ROOT, env=env)
        ours = json.load(open(path))
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "execnet-2.1.2"))
    theirs = json.loads(subprocess.check_output(
        [PYTHON, "-c", PYTIMING, os.path.join(ROOT, "tests", "vectors")] + VECTORS, env=env))
    print("| vector | bytes | ours decode, borrowed / owned (us) | ours encode (us) | execnet loads / dumps (us) | pickle loads / dumps (us) | decode vs execnet | encode vs execnet | decode vs pickle | encode vs pickle |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst = {}
    for name in VECTORS:
        o, t = ours[name], theirs[name]
        rows = {
            "decode vs execnet": t["execnet_loads_ns"] / o["decode_owned_ns"],
            "encode vs execnet": t["execnet_dumps_ns"] / o["encode_ns"],
            "decode vs pickle": t["pickle_loads_ns"] / o["decode_owned_ns"],
            "encode vs pickle": t["pickle_dumps_ns"] / o["encode_ns"],
        }
        for k, v in rows.items():
            worst[k] = min(worst.get(k, v), v)
        print("| %s | %d | %s / %s | %s | %s / %s | %s / %s | %.0fx | %.0fx | %.1fx | %.1fx |" % (
            name, o["bytes"], us(o["decode_borrowed_ns"]), us(o["decode_owned_ns"]), us(o["encode_ns"]),
            us(t["execnet_loads_ns"]), us(t["execnet_dumps_ns"]), us(t["pickle_loads_ns"]), us(t["pickle_dumps_ns"]),
            rows["decode vs execnet"], rows["encode vs execnet"], rows["decode vs pickle"], rows["encode vs pickle"]))
    print()
    print("Worst ratios (owned decode, encode): " + ", ".join("%s %.1fx" % kv for kv in worst.items()))


if __name__ == "__main__":
    main()
