"""Generates random values with a fixed seed and writes, for each, the reference's
`execnet.dumps` bytes and `repr` text.

Usage: PYTHON gen_values.py SEED COUNT OUT
OUT holds records: 4-byte big-endian length + dumps bytes, 4-byte length + UTF-8 repr.
Runs on Python 3 with execnet 2.1.2.
"""
import random
import struct
import sys

import execnet

SEED, COUNT, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(SEED)

EDGE_INTS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64]
FLOATS = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e16, 1e-5, 0.1, 1.5e-7, 5e-324, 1.7976931348623157e308]
TEXT = ["", "a", "'", '"', "'\"", "\\", "\n\t\r", "\x00\x7f\x80\x9f", "\u00e9", "\u200b", "\u2028", "\U0001F600", "\uffff", "ab\u0301"]


def rand_int():
    v = any_int()
    # The reference cannot write ints below -2**31 (struct.error); ours can.
    return -v if v < -(2**31) else v


def any_int():
    k = rnd.random()
    if k < 0.3:
        return rnd.choice(EDGE_INTS) + rnd.randint(-2, 2)
    if k < 0.4:
        return rnd.randint(-(10 ** rnd.randint(20, 3000)), 10 ** rnd.randint(20, 3000))
    return rnd.randint(-(2**40), 2**40)


def rand_float():
    if rnd.random() < 0.4:
        return rnd.choice(FLOATS)
    f = struct.unpack("!d", struct.pack("!Q", rnd.getrandbits(64)))[0]
    return float("nan") if f != f else f


def rand_text():
    if rnd.random() < 0.5:
        return rnd.choice(TEXT) + rnd.choice(TEXT)
    return "".join(chr(rnd.choice([rnd.randint(32, 126), rnd.randint(0, 0x2FFF), rnd.randint(0x10000, 0x10FFFF)])) for _ in range(rnd.randint(0, 12))).encode("utf-8", "replace").decode("utf-8", "replace")


def clean(s):
    # Lone surrogates cannot be written as UTF-8.
    return "".join(c for c in s if not 0xD800 <= ord(c) <= 0xDFFF)


def scalar():
    k = rnd.randint(0, 8)
    if k == 0:
        return rnd.choice([None, True, False])
    if k in (1, 2):
        return rand_int()
    if k == 3:
        return rand_float()
    if k == 4:
        return complex(rand_float(), rand_float())
    if k in (5, 6):
        return clean(rand_text())
    return bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 10)))


def hashable(depth):
    if depth > 0 and rnd.random() < 0.2:
        return tuple(hashable(depth - 1) for _ in range(rnd.randint(0, 3)))
    if depth > 0 and rnd.random() < 0.1:
        return frozenset(hashable(0) for _ in range(rnd.randint(0, 3)))
    v = scalar()
    return v


def value(depth):
    if depth <= 0 or rnd.random() < 0.35:
        return scalar()
    k = rnd.randint(0, 5)
    n = rnd.randint(0, 5)
    if k == 0:
        return [value(depth - 1) for _ in range(n)]
    if k == 1:
        return tuple(value(depth - 1) for _ in range(n))
    if k == 2:
        return dict((hashable(2), value(depth - 1)) for _ in range(n))
    if k == 3:
        return set(hashable(2) for _ in range(n))
    if k == 4:
        return frozenset(hashable(2) for _ in range(n))
    v = scalar()
    for _ in range(rnd.randint(1, 60)):
        v = [v] if rnd.random() < 0.5 else (v,)
    return v


with open(OUT, "wb") as f:
    for i in range(COUNT):
        v = value(4)
        data = execnet.dumps(v)
        text = repr(v).encode("utf-8")
        f.write(struct.pack("!i", len(data)) + data + struct.pack("!i", len(text)) + text)
