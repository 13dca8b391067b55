"""Writes execnet.dumps(['hello', 'world']) (execnet 1.9.0, Python 2 str) to a file."""
import sys

import execnet

with open(sys.argv[1], "wb") as f:
    f.write(execnet.dumps(["hello", "world"]))
