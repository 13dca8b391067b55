"""The reference execnet (2.x) as master of the Cortex-M firmware under QEMU.

Usage: PYTHON drive_firmware.py PATH-TO-LAUNCHER [ROUNDS]
`makegateway("popen//python=LAUNCHER")` starts the emulated device as if it were an
interpreter; `remote_exec(func, **kwargs)` calls the device's function of that name.
Prints OK, then one line `FIGURES {json}` (round trips, median of ROUNDS, default 200),
and exits 0 when every check passes.
"""
import json
import math
import statistics
import sys
import time

import execnet


def echo(channel, **kwargs):
    """Sends its keyword arguments back as one dict (runs on the device)."""


def mirror(channel):
    """Sends back every value it receives until the channel closes (runs on the device)."""


def add(channel, a, b):
    """Sends a + b (runs on the device)."""


def info(channel):
    """Sends a dict describing the device (runs on the device)."""


def nosuch(channel):
    """Is not on the device."""


def same(a, b):
    """Equal with the same types all the way down; NaN equals NaN, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    return a == b


# The reference cannot send an int below -2**31 (it packs every int up to 2**31 - 1 into
# four bytes, and those fail), so negative ints beyond 32 bits appear here only as the
# device's results.
LONG = "".join(chr(0x41 + i % 26) for i in range(1500))

VALUES = [
    0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**63, 2**64 + 1, 2**100, 2**200,
    1.5, -0.0, 1e300, 5e-324, float("inf"), float("-inf"), float("nan"),
    complex(1, -2), complex(0.0, -0.0),
    True, False, None,
    "", "text", "caf\u00e9 \U0001F600",
    b"", b"\x00\x01\xff",
    [], [1, [2, [3, "x"]]], (), (1,), (1, ("x", None)),
    {}, {"k": {"n": {"m": [1, 2.5]}}, (1, 2): {"deep": {"x": b"y"}}},
    {1, 2, 3}, set(), frozenset(["a", "b"]), frozenset(),
    LONG,
]

SUMS = [
    (1, 2), (2**31 - 1, 1), (-(2**31), -1), (-(2**31), -(2**31)), (2**63, 2**63),
    (2**100, -5), (2**64, -1), (10**69, 10**69), (True, True), (True, 1.5), (1, 2.5),
    (0.1, 0.2), (1e308, 1e308), (float("inf"), float("-inf")), (2**40, 0.5),
    (complex(1, 2), 1), (1.5, complex(0, -0.0)), (-5, complex(1, 1)),
    (complex(1, -0.0), complex(-1, 0.0)),
]


def remote_error(call, *args, **kwargs):
    """The text of the RemoteError that a call ends with."""
    ch = call(*args, **kwargs) if callable(call) else call
    try:
        got = ch.receive(timeout=30)
    except execnet.RemoteError as e:
        return str(e)
    raise AssertionError("no RemoteError, got %r" % (got,))


def expect_error(text, call, *args, **kwargs):
    got = remote_error(call, *args, **kwargs)
    assert text in got, (text, got)


def timed(n, fn):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times), "n": n}


def main():
    launcher = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    t0 = time.perf_counter()
    gw = execnet.makegateway("popen//python=" + launcher)
    startup_ms = (time.perf_counter() - t0) * 1000.0

    # echo: every kind of value as a keyword argument, decoded and encoded by the device.
    for v in VALUES:
        back = gw.remote_exec(echo, v=v).receive(timeout=30)
        assert same(back, {"v": v}), (v, back)
    kwargs = {"a": 1, "b": "x", "c": [1, 2.5], "d": {"k": None}, "e": b"raw", "f": (1,)}
    assert same(gw.remote_exec(echo, **kwargs).receive(timeout=30), kwargs)
    assert gw.remote_exec(echo).receive(timeout=30) == {}

    # mirror: the same values as channel data.
    ch = gw.remote_exec(mirror)
    for v in VALUES:
        ch.send(v)
        back = ch.receive(timeout=30)
        assert same(back, v), (v, back)
    ch.close()
    ch.waitclose(30)

    # add: Python's numbers, ints of any size.
    for a, b in SUMS:
        got = gw.remote_exec(add, a=a, b=b).receive(timeout=30)
        assert same(got, a + b), (a, b, got, a + b)

    # Two channels at once, interleaved, and the status while both run.
    one, two = gw.remote_exec(mirror), gw.remote_exec(mirror)
    one.send(1)
    two.send("two")
    two.send(2.5)
    one.send([1])
    assert two.receive(timeout=30) == "two"
    assert one.receive(timeout=30) == 1
    assert gw.remote_exec(add, a=20, b=22).receive(timeout=30) == 42
    status = gw.remote_status()
    assert status.numexecuting == 2 and status.numchannels == 2, status
    assert status.execmodel == "thread", status
    assert one.receive(timeout=30) == [1]
    assert two.receive(timeout=30) == 2.5
    one.close()
    two.close()
    one.waitclose(30)
    two.waitclose(30)
    status = gw.remote_status()
    assert status.numexecuting == 0 and status.numchannels == 0, status

    # The device has four channels: a fifth call is refused alone.
    four = [gw.remote_exec(mirror) for _ in range(4)]
    expect_error("too many open channels", gw.remote_exec, add, a=1, b=2)
    for ch in four:
        ch.close()
    assert gw.remote_exec(add, a=1, b=2).receive(timeout=30) == 3

    # Errors close the channel with Python's words; the gateway goes on.
    expect_error("NameError: name 'nosuch' is not defined", gw.remote_exec, nosuch)
    expect_error("NotImplementedError", gw.remote_exec, "x = 1")
    expect_error("TypeError: add() missing 1 required argument: 'b'", gw.remote_exec, add, a=1)
    expect_error("TypeError: add() missing 2 required arguments: 'a' and 'b'",
                 gw.remote_exec, add)
    expect_error("TypeError: add() got an unexpected keyword argument 'c'",
                 gw.remote_exec, add, a=1, b=2, c=3)
    expect_error("unsupported operand type(s) for +: 'NoneType' and 'int'",
                 gw.remote_exec, add, a=None, b=1)
    expect_error("unsupported operand type(s) for +: 'str' and 'str'",
                 gw.remote_exec, add, a="x", b="y")
    expect_error("TypeError: info() got an unexpected keyword argument 'x'",
                 gw.remote_exec, info, x=1)
    ch = gw.remote_exec(mirror)
    ch.send([None] * 120)
    expect_error("MemoryError", ch)
    nested = 1
    for _ in range(9):
        nested = [nested]
    ch = gw.remote_exec(mirror)
    ch.send(nested)
    expect_error("RecursionError", ch)

    # A frame larger than the device's buffer fails its channel only.
    expect_error("larger than this side's buffer", gw.remote_exec, echo, v=b"x" * 5000)
    assert gw.remote_exec(add, a=1, b=2).receive(timeout=30) == 3
    ch = gw.remote_exec(mirror)
    ch.send("small")
    assert ch.receive(timeout=30) == "small"
    ch.send(b"y" * 5000)
    expect_error("larger than this side's buffer", ch)
    ch = gw.remote_exec(mirror)
    ch.send(LONG)
    assert ch.receive(timeout=30) == LONG
    ch.close()

    about = gw.remote_exec(info).receive(timeout=30)
    assert about["firmware"].startswith("execnet-firmware "), about
    assert 0 < about["stack_used"] < about["stack_size"], about

    # Round trips on the emulator.
    ch = gw.remote_exec(mirror)
    small = {"name": "sensor", "values": [1, 2, 3], "ok": True}

    def echo_int():
        ch.send(7)
        ch.receive()

    def echo_dict():
        ch.send(small)
        ch.receive()

    def call_add():
        gw.remote_exec(add, a=1, b=2).receive()

    figures = {
        "startup_ms": startup_ms,
        "echo_small_int": timed(rounds, echo_int),
        "echo_small_dict": timed(rounds, echo_dict),
        "remote_exec_add": timed(rounds, call_add),
    }
    ch.close()
    figures["info"] = gw.remote_exec(info).receive(timeout=30)
    gw.exit()
    execnet.default_group.terminate(timeout=30)
    print("OK")
    print("FIGURES " + json.dumps(figures))


main()
