"""The string-coercion session, driven by the reference execnet as master.

Usage: MASTER-PYTHON strconfig_session.py REMOTE-PYTHON
Prints one JSON list: for each step, [step, remote_type_of_str, remote_type_of_bytes,
local_type_of_echoed_str, local_type_of_echoed_bytes, local_type_of_remote_literal].
The same steps are run by our Rust master in tests/tests/seed.rs.
"""
import json
import sys

import execnet

REMOTE = """
while 1:
    x = channel.receive()
    if x is None:
        break
    if x == 'reconfigure-channel':
        channel.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)
        channel.send('ok')
        continue
    channel.send(type(x).__name__)
    channel.send(x)
    channel.send('literal')
"""


def name_of(x):
    # A type name sent back as a str may arrive as bytes under py3str_as_py2str.
    if not isinstance(x, str):
        x = x.decode("ascii")
    return x


def step(ch, name, text, data):
    out = [name]
    ch.send(text)
    out.append(name_of(ch.receive()))
    echoed_text = ch.receive()
    lit1 = ch.receive()
    ch.send(data)
    out.append(name_of(ch.receive()))
    echoed_data = ch.receive()
    lit2 = ch.receive()
    out += [type(echoed_text).__name__, type(echoed_data).__name__, type(lit1).__name__]
    return out


def main():
    gw = execnet.makegateway("popen//python=" + sys.argv[1])
    ch = gw.remote_exec(REMOTE)
    text = u"text"
    data = "bytes".encode("ascii")
    results = [step(ch, "default", text, data)]
    gw.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)
    results.append(step(ch, "gateway-False-True", text, data))
    gw.reconfigure(py2str_as_py3str=True, py3str_as_py2str=False)
    ch.reconfigure(py2str_as_py3str=False, py3str_as_py2str=True)
    results.append(step(ch, "channel-False-True", text, data))
    ch.reconfigure(py2str_as_py3str=True, py3str_as_py2str=False)
    ch.send("reconfigure-channel")
    ch.receive()
    results.append(step(ch, "remote-channel-False-True", text, data))
    ch.send(None)
    gw.exit()
    print(json.dumps(results))


main()
