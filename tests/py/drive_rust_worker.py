"""The reference execnet (2.x) as master of our Rust worker.

Usage: PYTHON drive_rust_worker.py PATH-TO-EXECNET-BINARY
`makegateway("popen//python=BINARY")` starts the binary as if it were an interpreter;
`remote_exec(func, **kwargs)` reaches the registered Rust function of the same name.
Prints OK and exits 0 when every check passes.
"""
import math
import sys

import execnet


def echo(channel, **kwargs):
    """Sends its keyword arguments back (runs in Rust)."""


def mirror(channel):
    """Sends back every value it receives (runs in Rust)."""


def add(channel, a, b):
    """Sends a + b (runs in Rust)."""


def fail(channel, message):
    """Raises (runs in Rust)."""


def nosuch(channel):
    """Is not registered."""


def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


VALUES = [
    None, True, False, 0, -1, 2**31 - 1, 2**31, -(2**31), 2**63, 2**100, -(2**31) - 1 + 1,
    1.5, -0.0, float("inf"), float("nan"), 1e300, complex(1, -2),
    b"", b"\x00\xffbytes", "", "text \u00e9 \U0001F600", [], [1, [2, [3]]], (), (1, ("x",)),
    {}, {"k": (1, 2), (1, 2): [None]}, {1, 2, 3}, frozenset(["a"]), set(),
]


def main():
    gw = execnet.makegateway("popen//python=" + sys.argv[1])
    ch = gw.remote_exec(mirror)
    for v in VALUES:
        ch.send(v)
        back = ch.receive()
        assert same(v, back), (v, back)
    ch.close()
    ch.waitclose(10)

    kwargs = {"a": 1, "b": "x", "c": [1, 2.5], "d": {"k": None}, "e": b"raw", "f": (1,)}
    ch = gw.remote_exec(echo, **kwargs)
    assert ch.receive() == kwargs
    ch.waitclose(10)

    ch = gw.remote_exec(add, a=2**70, b=-5)
    assert ch.receive() == 2**70 - 5
    # Until its channel closes, the call still counts as executing (below).
    ch.waitclose(10)

    for func, kw, text in [(fail, {"message": "boom"}, "boom"), (nosuch, {}, "no Rust function"), ("x = 1", {}, "cannot run Python source")]:
        ch = gw.remote_exec(func, **kw)
        try:
            ch.receive()
        except execnet.RemoteError as e:
            assert text in str(e), str(e)
        else:
            raise AssertionError("no RemoteError for %r" % (func,))

    status = gw.remote_status()
    assert status.execmodel == "thread", status
    assert status.numexecuting == 0, status
    gw.exit()
    gw.join(timeout=10)
    print("OK")


main()
