"""Differential tests, direction A (reference -> ours): generates values with a seeded
generator and writes, for each, the reference's `execnet.dumps` bytes and a canonical
text of the value, which the Rust side recomputes from its own decoding.

Usage: PYTHON diff_dump.py SEED COUNT OUT
OUT holds COUNT records: int4 length + dumps bytes, int4 length + ASCII canonical text.

Runs unchanged on CPython 2.7 and Jython (execnet 1.9.0: str, unicode, long) and on
Python 3 (execnet 1.9.0 or 2.1.2: str, bytes).

Canonical text (the Rust side of tests/tests/differential.rs builds the same):
  None N, True T, False F, int i<decimal>; , Python 2 long l<decimal>; ,
  float f<16 hex digits of the IEEE bits>; , complex c<32 hex digits>; ,
  Python 3 bytes b<hex>; , Python 3 str s<hex of UTF-8>; ,
  Python 2 str p<hex>; , Python 2 unicode u<hex of UTF-8>; ,
  list [..], tuple (..), dict {key value ..}, set <..>, frozenset z<..>,
  items in iteration order (the order dumps writes them in).
"""
import binascii
import random
import struct
import sys

import execnet

PY2 = sys.version_info[0] == 2
if PY2:
    text_type = unicode  # noqa: F821
    long_type = long  # noqa: F821
else:
    text_type = str
    long_type = int

sys.setrecursionlimit(20000)

SEED, COUNT, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(SEED)
_random = rnd.random


def ri(a, b):
    """A random int in [a, b]; cheaper than randint for the small ranges used here."""
    return a + int(_random() * (b - a + 1))


def pick(seq):
    return seq[int(_random() * len(seq))]

EDGE_INTS = [
    0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) + 1, 2**32, 2**63 - 1, 2**63,
    -(2**63), 2**64, 10**18, 10**19, 10**20,
]
INF = float("inf")
NAN = float("nan")
FLOATS = [
    0.0, -0.0, INF, -INF, NAN, -NAN, 1e16, 1e-5, 0.1, 1.5e-7, 5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, -1.7976931348623157e308, 2.0**63, 2.0**31, 0.5,
    # Not the literal -(2.0**63): PyPy 7.3.11 constant-folds that into the int -2**63.
    float("-9223372036854775808"),
]
ASTRAL = [0x1F600, 0x1F4A9, 0x10000, 0x10FFFF, 0x1D11E, 0x20000]
TEXTS = [
    "", "a", "'", '"', "\\", "\n\t\r", "\x00", "\x7f", "hello", "item-1",
]


def uchr(cp):
    """The character cp as text, built from its UTF-8 (works on narrow builds too)."""
    if cp < 0x80:
        b = [cp]
    elif cp < 0x800:
        b = [0xC0 | (cp >> 6), 0x80 | (cp & 0x3F)]
    elif cp < 0x10000:
        b = [0xE0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F)]
    else:
        b = [0xF0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3F), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F)]
    return bytes(bytearray(b)).decode("utf-8")


def rand_cp():
    k = _random()
    if k < 0.5:
        return ri(32, 126)
    if k < 0.6:
        return ri(0, 31)
    if k < 0.75:
        return ri(0x80, 0xFF)
    if k < 0.9:
        cp = ri(0x100, 0xFFFD)
        return 0xFFFD if 0xD800 <= cp <= 0xDFFF else cp
    if k < 0.95:
        return pick(ASTRAL)
    return ri(0x10000, 0x10FFFF)


def fresh_text():
    if _random() < 0.3:
        return text_type(pick(TEXTS)) + uchr(rand_cp())
    n = pick([0, 1, 2, 5, 12, 40])
    return u"".join(uchr(rand_cp()) for _ in range(n))


def fresh_bytes():
    n = pick([0, 1, 3, 8, 30, 300])
    if n == 0:
        return b""
    return binascii.unhexlify("%0*x" % (2 * n, rnd.getrandbits(8 * n)))


# Pools keep generation cheap; a tenth of the strings are fresh.
BIG_POOL = [rnd.randint(10 ** (d - 1), 10**d - 1) for d in [19, 20, 21, 39, 40, 50, 300, 1000, 3000, 3999] * 3]
TEXT_POOL = [fresh_text() for _ in range(300)]
BYTES_POOL = [fresh_bytes() for _ in range(100)]


def rand_text():
    return fresh_text() if _random() < 0.1 else pick(TEXT_POOL)


def rand_bytes():
    return fresh_bytes() if _random() < 0.1 else pick(BYTES_POOL)


def rand_int():
    k = _random()
    if k < 0.35:
        v = pick(EDGE_INTS) + ri(-2, 2)
    elif k < 0.4:
        v = pick(BIG_POOL) + ri(-3, 3)
        if _random() < 0.5:
            v = -v
    elif k < 0.7:
        v = ri(-1000, 1000)
    else:
        v = rnd.randint(-(2**70), 2**70)
    # The reference cannot write ints below -2**31 (struct.error).
    if v < -(2**31):
        v = -v
    if PY2 and _random() < 0.3:
        return long_type(v)
    return v


def rand_float():
    if _random() < 0.5:
        return pick(FLOATS)
    return struct.unpack("!d", struct.pack("!Q", rnd.getrandbits(64)))[0]


def scalar():
    k = ri(0, 11)
    if k == 0:
        return pick([None, True, False])
    if k in (1, 2, 3):
        return rand_int()
    if k in (4, 5):
        return rand_float()
    if k == 6:
        return complex(rand_float(), rand_float())
    if k in (7, 8, 9):
        t = rand_text()
        if PY2 and _random() < 0.4:
            # A Python 2 str: bytes that are often ASCII text.
            return t.encode("utf-8") if _random() < 0.5 else rand_bytes()
        return t
    return rand_bytes()


def hashable(depth):
    k = _random()
    if depth > 0 and k < 0.15:
        return tuple(hashable(depth - 1) for _ in range(ri(0, 3)))
    if depth > 0 and k < 0.25:
        return frozenset(hashable(depth - 1) for _ in range(ri(0, 3)))
    return scalar()


def deep():
    v = scalar() if _random() < 0.7 else []
    for _ in range(ri(1, 200)):
        k = ri(0, 3)
        if k == 0:
            v = [v]
        elif k == 1:
            v = (v,)
        elif k == 2:
            v = {hashable(0): v}
        else:
            v = [v, None] if _random() < 0.5 else (None, v)
    return v


def value(depth):
    if depth <= 0 or _random() < 0.3:
        return scalar()
    k = ri(0, 7)
    n = pick([0, 0, 1, 2, 3, 4, 6])
    if k == 0:
        return [value(depth - 1) for _ in range(n)]
    if k == 1:
        return tuple(value(depth - 1) for _ in range(n))
    if k in (2, 3):
        return dict((hashable(2), value(depth - 1)) for _ in range(n))
    if k == 4:
        return set(hashable(2) for _ in range(n))
    if k == 5:
        return frozenset(hashable(2) for _ in range(n))
    if k == 6:
        # frozensets inside a set, tuples as dict keys
        return set(frozenset(hashable(1) for _ in range(ri(0, 3))) for _ in range(n))
    if _random() < 0.1:
        return deep()
    return dict((tuple(hashable(1) for _ in range(ri(0, 3))), value(depth - 1)) for _ in range(n))


def hexs(b):
    return binascii.hexlify(b).decode("ascii")


def canon(v, out):
    t = type(v)
    if v is None:
        out.append("N")
    elif t is bool:
        out.append("T" if v else "F")
    elif t is int:
        out.append("i%d;" % v)
    elif PY2 and t is long_type:
        out.append("l%d;" % v)
    elif t is float:
        out.append("f" + hexs(struct.pack("!d", v)) + ";")
    elif t is complex:
        out.append("c" + hexs(struct.pack("!dd", v.real, v.imag)) + ";")
    elif t is text_type:
        out.append(("u" if PY2 else "s") + hexs(v.encode("utf-8")) + ";")
    elif t is bytes:
        out.append(("p" if PY2 else "b") + hexs(v) + ";")
    elif t is list:
        out.append("[")
        for x in v:
            canon(x, out)
        out.append("]")
    elif t is tuple:
        out.append("(")
        for x in v:
            canon(x, out)
        out.append(")")
    elif t is dict:
        out.append("{")
        for k, x in v.items():
            canon(k, out)
            canon(x, out)
        out.append("}")
    elif t is set:
        out.append("<")
        for x in v:
            canon(x, out)
        out.append(">")
    elif t is frozenset:
        out.append("z<")
        for x in v:
            canon(x, out)
        out.append(">")
    else:
        raise TypeError("no canonical form for %r" % (t,))


def main():
    f = open(OUT, "wb")
    try:
        for i in range(COUNT):
            v = value(3) if i % 50 else deep()
            data = execnet.dumps(v)
            parts = []
            canon(v, parts)
            text = "".join(parts).encode("ascii")
            f.write(struct.pack("!i", len(data)) + data + struct.pack("!i", len(text)) + text)
    finally:
        f.close()


main()
