"""Loads a dumps file with the reference and prints repr and type names of the items."""
import sys

import execnet

with open(sys.argv[1], "rb") as f:
    data = f.read()
value = execnet.loads(data, py2str_as_py3str=True)
print(repr([(type(x).__name__, x) for x in value]))
