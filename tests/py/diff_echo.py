"""Differential tests, direction B (ours -> reference): loads every record of IN with the
reference's `execnet.loads` (default string config) and writes what it makes of it.

Usage: PYTHON diff_echo.py IN OUT
IN holds records: one mode byte, int4 length, that many bytes of our `dumps` output.
  mode E: write the reference's `dumps` of the loaded value;
  mode S: write `str()` of the loaded value (an int), as ASCII.
OUT holds one record per input record: a status byte (+ ok, ! error), int4 length, and
the bytes (on error: the exception text, UTF-8).

Runs unchanged on CPython 2.7, Jython and Python 3.
"""
import struct
import sys
import traceback

import execnet

sys.setrecursionlimit(20000)


def main():
    f = open(sys.argv[1], "rb")
    try:
        data = f.read()
    finally:
        f.close()
    out = []
    pos = 0
    while pos < len(data):
        mode = data[pos:pos + 1]
        (n,) = struct.unpack("!i", data[pos + 1:pos + 5])
        payload = data[pos + 5:pos + 5 + n]
        pos += 5 + n
        try:
            v = execnet.loads(payload)
            if mode == b"E":
                res = execnet.dumps(v)
            elif mode == b"S":
                res = str(v).encode("ascii")
            else:
                raise ValueError("unknown mode %r" % (mode,))
            out.append(b"+" + struct.pack("!i", len(res)) + res)
        except Exception:
            msg = traceback.format_exc().encode("utf-8", "replace")
            out.append(b"!" + struct.pack("!i", len(msg)) + msg)
    f = open(sys.argv[2], "wb")
    try:
        f.write(b"".join(out))
    finally:
        f.close()


main()
