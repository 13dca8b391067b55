"""Gateway benchmark: ours against the reference execnet 2.1.2, interleaved, with the
floors that bound both measured in the same run.

    python3 std-gateway/benches/compare_gateway.py [--rounds 7] [--python PATH] [--ab BINARY]

(about 2 minutes with 7 rounds on the project's 2-core machine, once built). It
builds `examples/gateway_bench.rs` (release) and `benches/floors.c` (with `cc`, into
target/floors/), then keeps three processes for the whole run: our master
(`gateway_bench serve PYTHON`, with a Python worker and a Rust worker), the reference
master (`reference_bench.py` under PYTHON with execnet 2.1.2 on its path, its own
worker), and the floors. Every measurement is taken in every round from both sides, one
right after the other, the side that goes first alternating; the same remote code and
the same statistic on both sides. The ratio is computed per round, and the table gives
each side's median over the rounds and the median and range of the per-round ratio.

Floors, measured in each round right before and right after the row they bound (the
stricter of the two counts: the lower time, the higher bandwidth): a C ping-pong over a
pipe pair (two C processes), a Python echo over pipes driven by the same C program (one
thread that reads and writes; and two threads, a reader handing each message to a
writer), the pipe's bandwidth (1 MiB writes and reads between two C processes, over a
pipe of the size the gateway gives its pipes and over one of the default size), and the
bare interpreter's start (`PYTHON -u -c pass`), which also gives each side's startup
beyond the interpreter's own.

`--ab BINARY` compares against another build of `gateway_bench` (from another revision,
say) instead of the reference: the same table, the other build in the reference's
column. The raw figures of every round go to target/bench/gateway.json.

The reference comes from $EXECNET_REFDIR (default target/pyref) as execnet-2.1.2/.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHES = os.path.join(ROOT, "std-gateway", "benches")
MIB = 1 << 20

# What the rows measure: (key, command, field, unit, higher is better, label).
SIZES = [1 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
REPS = {1 << 10: 1000, 64 << 10: 300, 1 << 20: 32, 4 << 20: 8, 16 << 20: 3, 64 << 20: 2}


def size_name(n):
    return n >= MIB and "%d MiB" % (n // MIB) or "%d KiB" % (n // 1024)


ROWS = [
    ("startup_first", "startup_first 5", "ms", "ms", False, "startup of a command's first gateway, spec to first reply (median of 5)"),
    ("startup", "startup 7", "ms", "ms", False, "startup of its later gateways (median of 7)"),
    ("rtt", "rtt 5000", "us", "us", False, "round trip, small int (mean of 5000)"),
    ("rtt_cpu", None, "cpu_us", "us", False, "master's CPU per round trip"),
    ("rtt_worker_cpu", None, "worker_cpu_us", "us", False, "worker's CPU per round trip"),
    ("rtt_slow", "rtt_slow 300", "us", "us", False, "round trip, the worker answering after 1 ms (mean of 300)"),
    ("rtt_slow_cpu", None, "cpu_us", "us", False, "master's CPU per such round trip"),
    ("small_up", "small_up 20000", "per_s", "msg/s", True, "small messages, master to worker"),
    ("small_down", "small_down 20000", "per_s", "msg/s", True, "small messages, worker to master"),
    ("bulk_up", "bulk_up 128", "mib_s", "MiB/s", True, "bulk up, 1 MiB bytes values"),
    ("bulk_up_cpu", None, "worker_cpu_ms_per_mib", "ms/MiB", False, "worker's CPU per MiB up"),
    ("bulk_down", "bulk_down 128", "mib_s", "MiB/s", True, "bulk down, 1 MiB bytes values"),
    ("bulk_down_cpu", None, "worker_cpu_ms_per_mib", "ms/MiB", False, "worker's CPU per MiB down"),
] + [
    ("value_%d" % s, "value %d %d" % (s, REPS[s]), "mib_s", "MiB/s", True,
     "round trip of a %s bytes value (each way)" % size_name(s))
    for s in SIZES
] + [
    ("channels", "channels 1000", "ms", "ms", False, "1,000 channels started and answered"),
    ("rust_rtt", "rust_rtt 5000", "us", "us", False, "Rust master and worker: round trip (mean of 5000)"),
    ("rust_rtt_cpu", None, "cpu_us", "us", False, "Rust master and worker: master's CPU per round trip"),
    ("rust_bulk_up", "rust_bulk_up 256", "mib_s", "MiB/s", True, "Rust master and worker: bulk up, 1 MiB values"),
    ("rust_bulk_down", "rust_bulk_down 256", "mib_s", "MiB/s", True, "Rust master and worker: bulk down, 1 MiB values"),
]
# Rows whose figures come with another row's command (same command, another field).
SHARED = {"rtt_cpu": "rtt", "rtt_worker_cpu": "rtt", "rtt_slow_cpu": "rtt_slow", "bulk_up_cpu": "bulk_up",
          "bulk_down_cpu": "bulk_down", "rust_rtt_cpu": "rust_rtt"}

ECHO_1 = "import os\nwhile 1:\n    d = os.read(0, 65536)\n    if not d:\n        break\n    os.write(1, d)\n"
ECHO_2 = """import os, threading
from collections import deque
items = deque()
cond = threading.Condition()
def reader():
    while 1:
        d = os.read(0, 65536)
        with cond:
            items.append(d)
            cond.notify()
        if not d:
            return
t = threading.Thread(target=reader)
t.daemon = True
t.start()
while 1:
    with cond:
        while not items:
            cond.wait()
        d = items.popleft()
    if not d:
        break
    os.write(1, d)
"""
# The same two, polling instead of sleeping in read(2) and on the condition variable:
# on a virtual machine a sleeping thread whose processor went idle is woken tens of
# microseconds late, and a floor must not be slower than what it bounds.
ECHO_1_POLL = """import os
os.set_blocking(0, False)
while 1:
    try:
        d = os.read(0, 65536)
    except BlockingIOError:
        os.sched_yield()
        continue
    if not d:
        break
    os.write(1, d)
"""
ECHO_2_POLL = """import os, threading
from collections import deque
items = deque()
def reader():
    os.set_blocking(0, False)
    while 1:
        try:
            d = os.read(0, 65536)
        except BlockingIOError:
            os.sched_yield()
            continue
        items.append(d)
        if not d:
            return
t = threading.Thread(target=reader)
t.daemon = True
t.start()
while 1:
    while not items:
        os.sched_yield()
    d = items.popleft()
    if not d:
        break
    os.write(1, d)
"""
# A round trip of ours carries a 15-byte frame (header, INT, STOP) each way.
FRAME = 15


class Side:
    """A benchmark process that answers one JSON line per command line."""

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env, universal_newlines=True, cwd=ROOT)

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            sys.exit("compare_gateway: %s ended on %r (status %s)" % (self.p.args[0], cmd, self.p.wait()))
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        if self.p.wait(timeout=60):
            sys.exit("compare_gateway: %s failed" % self.p.args[0])


def run(argv):
    return float(subprocess.check_output(argv, cwd=ROOT).decode().strip())


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return n % 2 and xs[n // 2] or (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def bare_start(python):
    ms = []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.check_call([python, "-u", "-c", "pass"])
        ms.append((time.perf_counter() - t) * 1e3)
    return median(ms)


def measure_floors(key, floors, python):
    """The floors that bound row `key`, measured right next to it."""
    if key == "startup_first":
        return {"bare_start_ms": bare_start(python)}
    if key == "rtt":
        echo = lambda source: run([floors, "drive", "5000", str(FRAME), python, "-c", source])
        return {
            "py_echo1_us": echo(ECHO_1),
            "py_echo2_us": echo(ECHO_2),
            "py_echo1_poll_us": echo(ECHO_1_POLL),
            "py_echo2_poll_us": echo(ECHO_2_POLL),
        }
    if key == "rust_rtt":
        return {
            "c_pingpong_us": run([floors, "pingpong", "20000", str(FRAME)]),
            "c_pingpong_poll_us": run([floors, "pingpong", "20000", str(FRAME), "poll"]),
        }
    if key == "bulk_down":
        return {
            "pipe_mib_s": run([floors, "bandwidth", "1024", str(1 << 20)]),
            "pipe64k_mib_s": run([floors, "bandwidth", "1024"]),
        }
    return {}


def strictest(key, a, b):
    """Of a floor measured before and after its row, the one that makes our ratio to it
    worse: the lower time, the higher bandwidth."""
    return key.endswith("_s") and max(a, b) or min(a, b)


FLOORS = [
    ("bare_start_ms", "ms", "bare interpreter start, `PYTHON -u -c pass` (median of 7)"),
    ("c_pingpong_us", "us", "C ping-pong over a pipe pair, 15 bytes, sleeping in read (mean of 20000)"),
    ("c_pingpong_poll_us", "us", "the same, polling"),
    ("py_echo1_us", "us", "Python echo over pipes, one thread, driven by C (mean of 5000)"),
    ("py_echo2_us", "us", "Python echo over pipes, reader and writer threads (mean of 5000)"),
    ("py_echo1_poll_us", "us", "Python echo, one thread, polling"),
    ("py_echo2_poll_us", "us", "Python echo, reader and writer threads, polling"),
    ("pipe_mib_s", "MiB/s", "pipe bandwidth, 1 MiB writes and reads, C, 1 MiB pipe (as the gateway's)"),
    ("pipe64k_mib_s", "MiB/s", "the same over a pipe of the kernel's default size (64 KiB)"),
]


def fmt(x, unit):
    if x >= 1000 or unit == "msg/s":
        text = "{:,.0f}".format(x)
    elif x >= 100:
        text = "%.0f" % x
    elif x >= 10:
        text = "%.1f" % x
    else:
        text = "%.2f" % x
    return unit and "%s %s" % (text, unit) or text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--python", default=os.path.join(
        os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "versions", "3.11.7", "bin", "python"))
    ap.add_argument("--ab", metavar="BINARY", help="another gateway_bench build instead of the reference")
    args = ap.parse_args()
    python = args.python
    refdir = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))
    if not os.path.isfile(os.path.join(refdir, "execnet-2.1.2", "execnet", "__init__.py")) and not args.ab:
        sys.exit("compare_gateway: execnet 2.1.2 not found under %s (set EXECNET_REFDIR)" % refdir)
    if not shutil.which("cc"):
        sys.exit("compare_gateway: a C compiler (cc) is needed for the floors")
    started = time.time()
    subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "execnet", "--example", "gateway_bench"], cwd=ROOT)
    os.makedirs(os.path.join(ROOT, "target", "floors"), exist_ok=True)
    floors = os.path.join(ROOT, "target", "floors", "floors")
    subprocess.check_call(["cc", "-O2", "-o", floors, os.path.join(BENCHES, "floors.c")])
    bench = os.path.join(ROOT, "target", "release", "examples", "gateway_bench")

    ours = Side([bench, "serve", python])
    if args.ab:
        ref = Side([os.path.abspath(args.ab), "serve", python])
        ref_name = os.path.basename(args.ab)
    else:
        env = dict(os.environ, PYTHONPATH=os.path.join(refdir, "execnet-2.1.2"))
        ref = Side([python, os.path.join(BENCHES, "reference_bench.py"), python], env=env)
        ref_name = "execnet 2.1.2"

    results = {"ours": [], "ref": [], "floors": []}
    for r in range(args.rounds):
        o, f = {}, {}
        rr = {}
        for i, (key, cmd, _, _, _, _) in enumerate(ROWS):
            if cmd is None:
                continue
            before = measure_floors(key, floors, python)
            first, second = ((ours, o), (ref, rr)) if (r + i) % 2 == 0 else ((ref, rr), (ours, o))
            for side, into in (first, second):
                into[key] = side.ask(cmd)
            after = measure_floors(key, floors, python)
            for k in before:
                f[k] = strictest(k, before[k], after[k])
        results["ours"].append(o)
        results["ref"].append(rr)
        results["floors"].append(f)
        sys.stderr.write("round %d of %d done (%.0f s)\n" % (r + 1, args.rounds, time.time() - started))
    ours.close()
    ref.close()
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench", "gateway.json"), "w") as out:
        json.dump(results, out, indent=1)

    def value(res, key, field):
        v = res[SHARED.get(key, key)][field]
        return median(v) if isinstance(v, list) else v

    per_round = {}
    for key, _, field, _, _, _ in ROWS:
        per_round[key] = ([value(x, key, field) for x in results["ours"]],
                          [value(x, key, field) for x in results["ref"]])
    bare = [f["bare_start_ms"] for f in results["floors"]]
    for key in ("startup_first", "startup"):
        per_round["beyond_" + key] = tuple([x - b for x, b in zip(side, bare)] for side in per_round[key])
    rows = list(ROWS)
    rows.insert(1, ("beyond_startup_first", None, None, "ms", False, "the same, beyond the bare interpreter's start"))
    rows.insert(3, ("beyond_startup", None, None, "ms", False, "the same, beyond the bare interpreter's start"))

    print("Gateway, CPython 3.11 workers (%s), %d interleaved rounds: medians over the rounds; "
          "ours vs reference is the median (min-max) of the per-round ratio, above 1 when ours "
          "is better. The reference has no Rust worker: its rows for one are execnet 2.1.2 "
          "master and worker.\n" % (python, args.rounds))
    print("| measurement | ours | %s | ours vs reference |" % ref_name)
    print("|---|---|---|---|")
    for key, _, _, unit, higher, label in rows:
        a, b = per_round[key]
        if key.startswith("beyond_") and min(a + b) <= 0:
            # A difference of two startups that is within the bare start's own spread:
            # no ratio means anything there.
            print("| %s | %s | %s | (within the bare start's spread: %s to %s) |" % (
                label, fmt(median(a), unit), fmt(median(b), unit), fmt(min(a), unit), fmt(max(a), unit)))
            continue
        ratios = [(x / y if higher else y / x) if x and y else float("nan") for x, y in zip(a, b)]
        print("| %s | %s | %s | %.2fx (%.2f-%.2f) |" % (
            label, fmt(median(a), unit), fmt(median(b), unit), median(ratios), min(ratios), max(ratios)))
    print("\nFloors, measured in the same rounds (median, min-max):\n")
    print("| floor | median (range) |")
    print("|---|---|")
    for key, unit, label in FLOORS:
        xs = [f[key] for f in results["floors"]]
        print("| %s | %s (%s-%s) |" % (label, fmt(median(xs), unit), fmt(min(xs), ""), fmt(max(xs), "")))

    def ratio_line(label, xs, goal, at_least):
        ok = median(xs) >= goal if at_least else median(xs) <= goal
        return "| %s | %s %.2f | %.2f (%.2f-%.2f) | %s |" % (
            label, at_least and ">=" or "<=", goal, median(xs), min(xs), max(xs), ok and "met" or "NOT met")

    o, b = per_round, results["floors"]
    lines = [
        ratio_line("a command's first startup vs reference", [y / x for x, y in zip(*o["startup_first"])], 1.0, True),
        ratio_line("later startups vs reference", [y / x for x, y in zip(*o["startup"])], 1.25, True),
        ratio_line("bulk down vs reference", [x / y for x, y in zip(*o["bulk_down"])], 2.5, True),
        ratio_line("bulk up vs reference", [x / y for x, y in zip(*o["bulk_up"])], 1.5, True),
    ]
    for s in SIZES:
        if s >= 4 << 20:
            k = "value_%d" % s
            lines.append(ratio_line("%s values vs reference" % size_name(s), [x / y for x, y in zip(*o[k])], 1.2, True))
    lines += [
        ratio_line("round trip / two-thread Python echo, sleeping",
                   [x / f["py_echo2_us"] for x, f in zip(o["rtt"][0], b)], 1.5, False),
        ratio_line("round trip / two-thread Python echo, polling",
                   [x / f["py_echo2_poll_us"] for x, f in zip(o["rtt"][0], b)], 1.5, False),
        ratio_line("1,000 channels vs reference", [y / x for x, y in zip(*o["channels"])], 1.0, True),
        ratio_line("Rust worker: bulk up, GiB/s", [x / 1024 for x in o["rust_bulk_up"][0]], 1.0, True),
        ratio_line("Rust worker: bulk down, GiB/s", [x / 1024 for x in o["rust_bulk_down"][0]], 1.0, True),
        ratio_line("Rust worker: round trip / C ping-pong, sleeping",
                   [x / f["c_pingpong_us"] for x, f in zip(o["rust_rtt"][0], b)], 2.0, False),
        ratio_line("Rust worker: round trip / C ping-pong, polling",
                   [x / f["c_pingpong_poll_us"] for x, f in zip(o["rust_rtt"][0], b)], 2.0, False),
    ]
    print("\nGoals (per-round ratios, median and range):\n")
    print("| goal | target | measured | |")
    print("|---|---|---|---|")
    for line in lines:
        print(line)
    sys.stderr.write("total %.0f s\n" % (time.time() - started))


if __name__ == "__main__":
    main()
