"""Two agents side by side: runs two builds of the `agent_bench` example (built with the
old and the new agent) in interleaved rounds, and prints, per measurement, each side's
median and the median and range of the per-round ratio (new against old; above 1 means
the new agent is better: faster, or more per second).

Usage: python3 std-gateway/benches/agent_ab.py OLD_BINARY NEW_BINARY [PYTHON] [ROUNDS]
"""
import json
import os
import subprocess
import sys

OLD, NEW = sys.argv[1], sys.argv[2]
PYTHON = sys.argv[3] if len(sys.argv) > 3 else os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python")
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 5
# Lower is better for latency; higher for the rates.
LOWER_IS_BETTER = {"startup_ms", "rtt_us", "rtt_worker_cpu_us", "bulk_down_worker_cpu_ms_per_mib",
                   "bulk_up_worker_cpu_ms_per_mib", "small_down_worker_cpu_us"}


def run(binary):
    return json.loads(subprocess.check_output([binary, PYTHON]))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def main():
    old, new = [], []
    for r in range(ROUNDS):
        # Alternate which side goes first, so that neither always runs on a warmer machine.
        if r % 2:
            new.append(run(NEW))
            old.append(run(OLD))
        else:
            old.append(run(OLD))
            new.append(run(NEW))
    print("| measurement (%s, %d rounds) | old agent | new agent | new vs old: median (range) |" % (os.path.basename(PYTHON), ROUNDS))
    print("|---|---|---|---|")
    for key in sorted(old[0]):
        ratios = []
        for o, n in zip(old, new):
            ratios.append(o[key] / n[key] if key in LOWER_IS_BETTER else n[key] / o[key])
        print("| %s | %.3g | %.3g | %.2fx (%.2f-%.2f) |" % (
            key, median([o[key] for o in old]), median([n[key] for n in new]),
            median(ratios), min(ratios), max(ratios)))


main()
