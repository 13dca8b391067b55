"""The reference's side of the gateway benchmark: execnet 2.1.2 as master, with its own
worker in the same interpreter, answering the commands `examples/gateway_bench.rs`
answers, with the same remote code and the same statistics (`compare_gateway.py` runs
both). The `rust_*` commands measure the reference's own worker: it has no Rust one.

Usage: PYTHONPATH=.../execnet-2.1.2 PYTHON reference_bench.py PYTHON (commands on stdin)
"""
import json
import os
import resource
import sys
import time

import execnet

MIB = 1 << 20
ECHO = "for x in channel:\n    channel.send(x)\n"
SLOW_ECHO = "import time\nfor x in channel:\n    time.sleep(0.001)\n    channel.send(x)\n"
COUNT = "n = 0\nfor x in channel:\n    if x is None:\n        break\n    n += 1\nchannel.send(n)\n"
SINK = "total = 0\nfor x in channel:\n    if x is None:\n        break\n    total += len(x)\nchannel.send(total)\n"
SOURCE = "block = b'\\x07' * (1 << 20)\nfor _ in range(channel.receive()):\n    channel.send(block)\n"
SMALL_SOURCE = "for i in range(channel.receive()):\n    channel.send((i, 'item'))\n"
ANSWER = "channel.send(channel.receive() * 2)"


def self_cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(") ", 1)[1].split(" ")
    return (float(fields[11]) + float(fields[12])) / 100.0


def check(ok, what):
    if not ok:
        raise RuntimeError("wrong %s in a reply" % what)


def round_trips(ch, n):
    for i in range(200):
        ch.send(i)
        ch.receive()
    c = self_cpu()
    t = time.perf_counter()
    for i in range(n):
        ch.send(i)
        check(ch.receive() == i, "echo")
    us = (time.perf_counter() - t) * 1e6 / n
    return us, (self_cpu() - c) * 1e6 / n


def bulk_up(ch, k):
    block = b"\x07" * MIB
    t = time.perf_counter()
    for _ in range(k):
        ch.send(block)
    ch.send(None)
    total = ch.receive()
    check(total == k * MIB, "total")
    return total / MIB / (time.perf_counter() - t)


def bulk_down(ch, k):
    t = time.perf_counter()
    ch.send(k)
    total = 0
    for _ in range(k):
        total += len(ch.receive())
    check(total == k * MIB, "total")
    return total / MIB / (time.perf_counter() - t)


class Bench:
    def __init__(self, python):
        self.spec = "popen//python=" + python
        self.gw = execnet.makegateway(self.spec)
        self.pid = self.gw.remote_exec("import os; channel.send(os.getpid())").receive()
        self.echo = self.gw.remote_exec(ECHO)

    def timed(self, f):
        c = proc_cpu(self.pid)
        t = time.perf_counter()
        mibs = f()
        mib = mibs * (time.perf_counter() - t)
        return {"mib_s": mibs, "worker_cpu_ms_per_mib": (proc_cpu(self.pid) - c) * 1e3 / mib}

    def run(self, cmd, n, k):
        # The reference compiles its bootstrap every time: a command's first gateway and
        # its later ones cost the same.
        if cmd in ("startup", "startup_first"):
            ms = []
            for _ in range(n):
                t = time.perf_counter()
                gw = execnet.makegateway(self.spec)
                gw.remote_exec("channel.send(1)").receive()
                ms.append((time.perf_counter() - t) * 1e3)
                gw.exit()
            return {"ms": ms}
        if cmd == "rtt":
            c = proc_cpu(self.pid)
            us, cpu = round_trips(self.echo, n)
            return {"us": us, "cpu_us": cpu, "worker_cpu_us": (proc_cpu(self.pid) - c) * 1e6 / n}
        if cmd == "rtt_slow":
            ch = self.gw.remote_exec(SLOW_ECHO)
            us, cpu = round_trips(ch, n)
            ch.close()
            return {"us": us, "cpu_us": cpu}
        if cmd == "rust_rtt":
            us, cpu = round_trips(self.echo, n)
            return {"us": us, "cpu_us": cpu}
        if cmd == "small_up":
            ch = self.gw.remote_exec(COUNT)
            t = time.perf_counter()
            for i in range(n):
                ch.send((i, "item"))
            ch.send(None)
            got = ch.receive()
            rate = n / (time.perf_counter() - t)
            check(got == n, "count")
            return {"per_s": rate}
        if cmd == "small_down":
            ch = self.gw.remote_exec(SMALL_SOURCE)
            t = time.perf_counter()
            ch.send(n)
            for i in range(n):
                check(ch.receive()[0] == i, "order")
            return {"per_s": n / (time.perf_counter() - t)}
        if cmd in ("bulk_up", "rust_bulk_up"):
            ch = self.gw.remote_exec(SINK)
            return self.timed(lambda: bulk_up(ch, n))
        if cmd in ("bulk_down", "rust_bulk_down"):
            ch = self.gw.remote_exec(SOURCE)
            return self.timed(lambda: bulk_down(ch, n))
        if cmd == "value":
            size = n
            value = b"\x07" * size
            self.echo.send(value)
            self.echo.receive()
            t = time.perf_counter()
            for _ in range(k):
                self.echo.send(value)
                check(len(self.echo.receive()) == size, "size")
            return {"mib_s": size * k / MIB / (time.perf_counter() - t)}
        if cmd == "channels":
            t = time.perf_counter()
            chans = [self.gw.remote_exec(ANSWER) for _ in range(n)]
            for i, ch in enumerate(chans):
                ch.send(i)
            for i, ch in enumerate(chans):
                check(ch.receive() == 2 * i, "answer")
            ms = (time.perf_counter() - t) * 1e3
            for ch in chans:
                ch.waitclose(10)
            return {"ms": ms}
        raise ValueError("unknown command %r" % (cmd,))


def main():
    bench = Bench(sys.argv[1])
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        nums = [int(w) for w in words[1:]] + [0, 0]
        print(json.dumps(bench.run(words[0], nums[0], nums[1])), flush=True)
    bench.gw.exit()


if __name__ == "__main__":
    os.environ.pop("EXECNET_DEBUG", None)
    main()
