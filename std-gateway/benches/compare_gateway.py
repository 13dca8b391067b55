"""Gateway benchmark, ours against the reference execnet, in the same run.

Runs `cargo run --release --example gateway_bench` and the same four measurements with
execnet 2.1.2 (CPython 3.11 master and worker), then prints a Markdown table.

Usage: python3 std-gateway/benches/compare_gateway.py [PYTHON]
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.pyenv/versions/3.11.7/bin/python")
REF = os.environ.get("EXECNET_REFDIR", os.path.join(ROOT, "target", "pyref"))

REFERENCE = r'''
import json, sys, time
import execnet
spec = "popen//python=" + sys.argv[1]
startups = []
for _ in range(10):
    t = time.perf_counter()
    gw = execnet.makegateway(spec)
    ch = gw.remote_exec("channel.send(1)")
    ch.receive()
    startups.append(time.perf_counter() - t)
    gw.exit()
startups.sort()
gw = execnet.makegateway(spec)
echo = gw.remote_exec("for x in channel:\n    channel.send(x)\n")
for i in range(100):
    echo.send(i); echo.receive()
n = 2000
t = time.perf_counter()
for i in range(n):
    echo.send(i); echo.receive()
rtt = (time.perf_counter() - t) / n
echo.close()
sink = gw.remote_exec("n = 0\nfor x in channel:\n    if x is None:\n        break\n    n += 1\nchannel.send(n)\n")
m = 20000
t = time.perf_counter()
for i in range(m):
    sink.send((i, "item"))
sink.send(None)
assert sink.receive() == m
small = m / (time.perf_counter() - t)
bulk = gw.remote_exec("total = 0\nfor x in channel:\n    if x is None:\n        break\n    total += len(x)\nchannel.send(total)\n")
block = bytes(7 for _ in range(1 << 20))
k = 64
t = time.perf_counter()
for _ in range(k):
    bulk.send(block)
bulk.send(None)
total = bulk.receive()
mbps = total / float(1 << 20) / (time.perf_counter() - t)
gw.exit()
print(json.dumps({"startup_ms": startups[len(startups) // 2] * 1e3, "rtt_us": rtt * 1e6,
                  "small_msgs_per_s": small, "bulk_mib_per_s": mbps}))
'''


def main():
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "execnet-2.1.2"))
    ref = json.loads(subprocess.check_output([PYTHON, "-c", REFERENCE, PYTHON], env=env))
    subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "execnet", "--example", "gateway_bench"], cwd=ROOT)
    ours = json.loads(subprocess.check_output(
        [os.path.join(ROOT, "target", "release", "examples", "gateway_bench"), PYTHON], cwd=ROOT))
    bare = []
    for _ in range(10):
        t = time.perf_counter()
        subprocess.check_call([PYTHON, "-u", "-c", "pass"])
        bare.append((time.perf_counter() - t) * 1e3)
    bare.sort()
    floor = bare[len(bare) // 2]
    ours["startup_overhead_ms"] = ours["startup_ms"] - floor
    ref["startup_overhead_ms"] = ref["startup_ms"] - floor
    rows = [
        ("startup (median of 10)", "startup_ms", "ms", False),
        ("startup beyond the bare interpreter's %.1f ms" % floor, "startup_overhead_ms", "ms", False),
        ("round trip (mean of 2000)", "rtt_us", "us", False),
        ("small messages, one way", "small_msgs_per_s", "msg/s", True),
        ("bulk, 1 MiB bytes values", "bulk_mib_per_s", "MiB/s", True),
    ]
    print("| measurement | ours | execnet 2.1.2 | ours vs reference |")
    print("|---|---|---|---|")
    for label, key, unit, higher_better in rows:
        a, b = ours[key], ref[key]
        ratio = (a / b) if higher_better else (b / a)
        print("| %s | %.1f %s | %.1f %s | %.2fx %s |" % (label, a, unit, b, unit, ratio,
                                                      "faster" if ratio >= 1 else "slower"))


if __name__ == "__main__":
    main()
