# execnet for Rust: the worker agent.
#
# The master starts an interpreter with
#     PYTHON -u -c "import sys;exec(eval(sys.stdin.readline()))"
# and sends this file as one string literal. It then serves the execnet protocol on the
# process's stdin/stdout (or on `clientsock` when a socket server runs it). One source for
# CPython 2.7 and 3.x, PyPy and Jython: ASCII only, standard library only, no syntax that
# any of them rejects.
import os
import struct
import sys
import threading
import traceback

PY3 = sys.version_info[0] >= 3
JYTHON = sys.platform.startswith("java")

if PY3:
    text_type = str
    bytes_type = bytes
    long_type = int

    def _b(s):
        return s.encode("latin-1")

else:
    text_type = unicode  # noqa: F821 (Python 2)
    bytes_type = str
    long_type = long  # noqa: F821 (Python 2)

    def _b(s):
        return s


_pack = struct.pack
_unpack = struct.unpack
INT_MAX = 2147483647
INT_MIN = -2147483648

OP_BUILDTUPLE = _b("@")
OP_BYTES = _b("A")
OP_CHANNEL = _b("B")
OP_FALSE = _b("C")
OP_FLOAT = _b("D")
OP_FROZENSET = _b("E")
OP_INT = _b("F")
OP_LONG = _b("G")
OP_LONGINT = _b("H")
OP_LONGLONG = _b("I")
OP_NEWDICT = _b("J")
OP_NEWLIST = _b("K")
OP_NONE = _b("L")
OP_PY2STRING = _b("M")
OP_PY3STRING = _b("N")
OP_SET = _b("O")
OP_SETITEM = _b("P")
OP_STOP = _b("Q")
OP_TRUE = _b("R")
OP_UNICODE = _b("S")
OP_COMPLEX = _b("T")

STATUS, RECONFIGURE, GATEWAY_TERMINATE, CHANNEL_EXEC = 0, 1, 2, 3
CHANNEL_DATA, CHANNEL_CLOSE, CHANNEL_CLOSE_ERROR, CHANNEL_LAST_MESSAGE = 4, 5, 6, 7


class DumpError(Exception):
    """A value that has no execnet representation."""


class LoadError(Exception):
    """Bytes that do not decode."""


class RemoteError(Exception):
    """The other side closed the channel with an error."""

    def __init__(self, formatted):
        Exception.__init__(self, formatted)
        self.formatted = formatted

    def __str__(self):
        return self.formatted


class TimeoutError(IOError):
    """A receive or wait ran out of time."""


# ---------------------------------------------------------------- serializer


def _save_int(out, i, small, big):
    if INT_MIN <= i <= INT_MAX:
        out.append(small + _pack("!i", i))
    else:
        s = _b(str(i).rstrip("L"))
        out.append(big + _pack("!i", len(s)) + s)


def _save_text(out, op, s):
    data = s.encode("utf-8")
    out.append(op + _pack("!i", len(data)) + data)


def _save(out, obj):
    t = type(obj)
    f = _DISPATCH.get(t)
    if f is None:
        # Subclasses of the basic types (Jython's sys.platform is a str subclass).
        for base in getattr(t, "__mro__", ())[1:]:
            f = _DISPATCH.get(base)
            if f is not None:
                break
        else:
            if isinstance(obj, Channel):
                f = _save_channel
            else:
                raise DumpError("cannot serialize %r (type %s)" % (obj, t.__name__))
    f(out, obj)


def _save_none(out, obj):
    out.append(OP_NONE)


def _save_bool(out, obj):
    out.append(obj and OP_TRUE or OP_FALSE)


def _save_plain_int(out, obj):
    _save_int(out, obj, OP_INT, OP_LONGINT)


def _save_long(out, obj):
    _save_int(out, obj, OP_LONG, OP_LONGLONG)


def _save_float(out, obj):
    out.append(OP_FLOAT + _pack("!d", obj))


def _save_complex(out, obj):
    out.append(OP_COMPLEX + _pack("!dd", obj.real, obj.imag))


def _save_bytes(out, obj):
    out.append(OP_BYTES + _pack("!i", len(obj)) + obj)


def _save_py2str(out, obj):
    out.append(OP_PY2STRING + _pack("!i", len(obj)) + obj)


def _save_py3str(out, obj):
    _save_text(out, OP_PY3STRING, obj)


def _save_unicode(out, obj):
    _save_text(out, OP_UNICODE, obj)


def _save_list(out, obj):
    out.append(OP_NEWLIST + _pack("!i", len(obj)))
    i = 0
    for item in obj:
        out.append(OP_INT + _pack("!i", i))
        _save(out, item)
        out.append(OP_SETITEM)
        i += 1


def _save_dict(out, obj):
    out.append(OP_NEWDICT)
    for key, value in obj.items():
        _save(out, key)
        _save(out, value)
        out.append(OP_SETITEM)


def _save_collection(op):
    def save(out, obj):
        for item in obj:
            _save(out, item)
        out.append(op + _pack("!i", len(obj)))

    return save


def _save_channel(out, obj):
    out.append(OP_CHANNEL + _pack("!i", obj.id))


_DISPATCH = {
    type(None): _save_none,
    bool: _save_bool,
    int: _save_plain_int,
    float: _save_float,
    complex: _save_complex,
    list: _save_list,
    dict: _save_dict,
    tuple: _save_collection(OP_BUILDTUPLE),
    set: _save_collection(OP_SET),
    frozenset: _save_collection(OP_FROZENSET),
}
if PY3:
    _DISPATCH[bytes] = _save_bytes
    _DISPATCH[str] = _save_py3str
else:
    _DISPATCH[long_type] = _save_long
    _DISPATCH[str] = _save_py2str
    _DISPATCH[text_type] = _save_unicode


def dumps_internal(obj):
    out = []
    _save(out, obj)
    out.append(OP_STOP)
    return _b("").join(out)


# -------------------------------------------------------------- deserializer


_unpack_from = struct.unpack_from


def loads_internal(data, config, gateway=None):
    """Decodes one value (internal envelope), loading strings under `config`."""
    py2str_as_py3str, py3str_as_py2str = config
    stack = []
    push = stack.append
    pos = 0
    end = len(data)
    try:
        while 1:
            op = data[pos : pos + 1]
            pos += 1
            if op == OP_INT:
                push(_unpack_from("!i", data, pos)[0])
                pos += 4
            elif op == OP_SETITEM:
                if len(stack) < 3:
                    raise LoadError("not enough items for SETITEM")
                value = stack.pop()
                key = stack.pop()
                stack[-1][key] = value
            elif op == OP_PY3STRING or op == OP_UNICODE or op == OP_BYTES or op == OP_PY2STRING:
                n = _unpack_from("!i", data, pos)[0]
                pos += 4
                if n < 0 or pos + n > end:
                    raise LoadError("string length beyond the payload")
                raw = data[pos : pos + n]
                pos += n
                if op == OP_PY3STRING:
                    if py3str_as_py2str:
                        push(raw)
                    else:
                        push(raw.decode("utf-8"))
                elif op == OP_UNICODE:
                    push(raw.decode("utf-8"))
                elif op == OP_PY2STRING and PY3 and py2str_as_py3str:
                    push(raw.decode("latin-1"))
                else:
                    push(raw)
            elif op == OP_STOP:
                if len(stack) != 1:
                    raise LoadError("bad stack at STOP")
                return stack[0]
            elif op == OP_NONE:
                push(None)
            elif op == OP_TRUE:
                push(True)
            elif op == OP_FALSE:
                push(False)
            elif op == OP_FLOAT:
                push(_unpack_from("!d", data, pos)[0])
                pos += 8
            elif op == OP_BUILDTUPLE or op == OP_SET or op == OP_FROZENSET:
                n = _unpack_from("!i", data, pos)[0]
                pos += 4
                if n < 0 or n > len(stack):
                    raise LoadError("not enough items to build a collection")
                if n:
                    items = stack[-n:]
                    del stack[-n:]
                else:
                    items = []
                if op == OP_BUILDTUPLE:
                    push(tuple(items))
                elif op == OP_SET:
                    push(set(items))
                else:
                    push(frozenset(items))
            elif op == OP_NEWLIST:
                n = _unpack_from("!i", data, pos)[0]
                pos += 4
                if n < 0 or n * 7 > end - pos:
                    raise LoadError("list too long for its payload")
                push([None] * n)
            elif op == OP_NEWDICT:
                push({})
            elif op == OP_LONG:
                push(long_type(_unpack_from("!i", data, pos)[0]))
                pos += 4
            elif op == OP_LONGINT or op == OP_LONGLONG:
                n = _unpack_from("!i", data, pos)[0]
                pos += 4
                if n < 0 or pos + n > end:
                    raise LoadError("integer text beyond the payload")
                text = data[pos : pos + n]
                pos += n
                if op == OP_LONGINT:
                    push(int(text))
                else:
                    push(long_type(text))
            elif op == OP_COMPLEX:
                re, im = _unpack_from("!dd", data, pos)
                pos += 16
                push(complex(re, im))
            elif op == OP_CHANNEL:
                push(gateway.channel(_unpack_from("!i", data, pos)[0]))
                pos += 4
            else:
                raise LoadError("unknown opcode %r at %d" % (op, pos - 1))
    except struct.error:
        raise LoadError("truncated value")


# ------------------------------------------------------------------ channels

_NO_ENDMARKER = object()
_END = object()


class _Empty(Exception):
    pass


class _Inbox(object):
    """A queue for one consumer: the producer only takes the lock when the consumer
    waits, so that a busy consumer costs the reader nothing but an append."""

    def __init__(self):
        from collections import deque

        self.items = deque()
        self.cond = threading.Condition(threading.Lock())
        self.waiting = 0

    def put(self, item):
        self.items.append(item)
        if self.waiting:
            self.cond.acquire()
            try:
                self.cond.notify()
            finally:
                self.cond.release()

    def get(self, timeout=None):
        try:
            return self.items.popleft()
        except IndexError:
            pass
        self.cond.acquire()
        try:
            self.waiting += 1
            try:
                if timeout is None:
                    while not self.items:
                        self.cond.wait()
                else:
                    import time

                    deadline = time.time() + timeout
                    while not self.items:
                        left = deadline - time.time()
                        if left <= 0:
                            raise _Empty()
                        self.cond.wait(left)
            finally:
                self.waiting -= 1
            return self.items.popleft()
        finally:
            self.cond.release()

    def get_nowait(self):
        try:
            return self.items.popleft()
        except IndexError:
            raise _Empty()


class Channel(object):
    """One end of a channel, as remote code sees it."""

    RemoteError = RemoteError
    TimeoutError = TimeoutError

    def __init__(self, gateway, id):
        self.gateway = gateway
        self.id = id
        self._items = _Inbox()
        self._closed = False
        self._receive_closed = threading.Event()
        self._remote_error = None
        self._callback = None
        self._endmarker = _NO_ENDMARKER
        # Like execnet, a channel keeps the gateway's string config of its creation.
        self._strconfig = gateway._strconfig
        self._lock = threading.Lock()

    def __repr__(self):
        return "<Channel id=%d %s>" % (self.id, self.isclosed() and "closed" or "open")

    # receiving side, called by the reader
    def _deliver(self, item):
        cb = self._callback
        if cb is not None:
            cb(item)
        else:
            self._items.put(item)

    def _finish(self, error=None):
        if self._receive_closed.is_set():
            return
        self._remote_error = error
        self._receive_closed.set()
        cb = self._callback
        if cb is not None:
            if self._endmarker is not _NO_ENDMARKER:
                cb(self._endmarker)
        else:
            self._items.put(_END)

    # the API
    def send(self, item):
        if self._closed:
            raise IOError("cannot send to %r" % (self,))
        self.gateway._send(CHANNEL_DATA, self.id, dumps_internal(item))

    def receive(self, timeout=None):
        if self._callback is not None:
            raise IOError("%r has a callback" % (self,))
        try:
            item = self._items.get(timeout)
        except _Empty:
            raise TimeoutError("no item after %r seconds" % (timeout,))
        if item is _END:
            self._items.put(_END)
            if self._remote_error is not None:
                raise RemoteError(self._remote_error)
            raise EOFError("channel %d closed" % (self.id,))
        return item

    def next(self):
        try:
            return self.receive()
        except EOFError:
            raise StopIteration

    __next__ = next

    def __iter__(self):
        return self

    def isclosed(self):
        return self._receive_closed.is_set()

    def close(self, error=None):
        self._lock.acquire()
        try:
            if self._closed:
                return
            self._closed = True
        finally:
            self._lock.release()
        if error is None:
            self.gateway._send(CHANNEL_CLOSE, self.id)
        else:
            if not isinstance(error, (text_type, bytes_type)):
                error = str(error)
            self.gateway._send(CHANNEL_CLOSE_ERROR, self.id, dumps_internal(error))
        if not self._receive_closed.is_set():
            self._finish()
        self.gateway._forget(self.id)

    def waitclose(self, timeout=None):
        self._receive_closed.wait(timeout)
        if not self._receive_closed.is_set():
            raise TimeoutError("channel %d not closed after %r seconds" % (self.id, timeout))
        if self._remote_error is not None:
            raise RemoteError(self._remote_error)

    def setcallback(self, callback, endmarker=_NO_ENDMARKER):
        self._endmarker = endmarker
        while 1:
            try:
                item = self._items.get_nowait()
            except _Empty:
                break
            if item is _END:
                if endmarker is not _NO_ENDMARKER:
                    callback(endmarker)
                return
            callback(item)
        self._callback = callback
        if self._receive_closed.is_set() and endmarker is not _NO_ENDMARKER:
            callback(endmarker)

    def reconfigure(self, py2str_as_py3str=True, py3str_as_py2str=False):
        self._strconfig = (py2str_as_py3str, py3str_as_py2str)
        self.gateway._send(RECONFIGURE, self.id, dumps_internal(self._strconfig))

    def makefile(self, mode="w", proxyclose=False):
        if mode == "w":
            return _ChannelWriter(self, proxyclose)
        if mode == "r":
            return _ChannelReader(self)
        raise ValueError("mode %r not available" % (mode,))


class _ChannelWriter(object):
    def __init__(self, channel, proxyclose):
        self.channel = channel
        self.proxyclose = proxyclose

    def write(self, data):
        self.channel.send(data)

    def flush(self):
        pass

    def close(self):
        if self.proxyclose:
            self.channel.close()

    def isatty(self):
        return False


class _ChannelReader(object):
    def __init__(self, channel):
        self.channel = channel
        self.buf = None

    def _more(self):
        try:
            data = self.channel.receive()
        except EOFError:
            return False
        if self.buf is None:
            self.buf = data
        else:
            self.buf = self.buf + data
        return True

    def read(self, n=-1):
        while n < 0 or self.buf is None or len(self.buf) < n:
            if not self._more():
                break
        if self.buf is None:
            return ""
        if n < 0:
            n = len(self.buf)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def readline(self):
        while 1:
            if self.buf is not None:
                i = self.buf.find(type(self.buf)("\n"))
                if i >= 0:
                    line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
                    return line
            if not self._more():
                line, self.buf = self.buf, None
                return line or ""


# ------------------------------------------------------------------- gateway


class _BufferedIO(object):
    """Reads through a buffer and an offset, so that taking a message out of a large
    read does not copy the rest of the buffer."""

    def __init__(self):
        self.buf = _b("")
        self.pos = 0

    def read(self, n):
        pos = self.pos
        buf = self.buf
        end = pos + n
        if end <= len(buf):
            self.pos = end
            return buf[pos:end]
        rest = buf[pos:]
        parts = [rest]
        have = len(rest)
        while have < n:
            chunk = self._read_chunk(max(65536, n - have))
            if not chunk:
                self.buf = _b("").join(parts)
                self.pos = 0
                raise EOFError()
            parts.append(chunk)
            have += len(chunk)
        rest = _b("").join(parts)
        self.buf = rest
        self.pos = n
        if have == n:
            return rest
        return rest[:n]


class _FdIO(_BufferedIO):
    """Protocol IO over two private file descriptors."""

    def __init__(self, infd, outfd):
        _BufferedIO.__init__(self)
        self.infd = infd
        self.outfd = outfd

    def _read_chunk(self, n):
        return os.read(self.infd, n)

    def write(self, data):
        while data:
            n = os.write(self.outfd, data)
            data = data[n:]


class _FileIO(object):
    """Protocol IO over file objects (Jython)."""

    def __init__(self, infile, outfile):
        self.infile = infile
        self.outfile = outfile

    def read(self, n):
        data = self.infile.read(n)
        while len(data) < n:
            more = self.infile.read(n - len(data))
            if not more:
                raise EOFError()
            data = data + more
        return data

    def write(self, data):
        self.outfile.write(data)
        self.outfile.flush()


class _SocketIO(_BufferedIO):
    """Protocol IO over a connected socket (run by a socket server)."""

    def __init__(self, sock):
        _BufferedIO.__init__(self)
        self.sock = sock

    def _read_chunk(self, n):
        return self.sock.recv(n)

    def write(self, data):
        self.sock.sendall(data)


class Gateway(object):
    """The worker's side of the gateway, as `channel.gateway` shows it."""

    RemoteError = RemoteError
    TimeoutError = TimeoutError

    def __init__(self, io):
        self._io = io
        self._write_lock = threading.Lock()
        self._channels = {}
        self._channels_lock = threading.Lock()
        self._next_id = 2
        self._strconfig = (True, False)
        self._executing = 0

    def _send(self, code, channel_id, payload=_b("")):
        header = _pack("!bii", code, channel_id, len(payload))
        self._write_lock.acquire()
        try:
            self._io.write(header + payload)
        finally:
            self._write_lock.release()

    def channel(self, id):
        ch = self._channels.get(id)
        if ch is not None:
            return ch
        self._channels_lock.acquire()
        try:
            ch = self._channels.get(id)
            if ch is None:
                ch = self._channels[id] = Channel(self, id)
            return ch
        finally:
            self._channels_lock.release()

    def _forget(self, id):
        self._channels_lock.acquire()
        try:
            self._channels.pop(id, None)
        finally:
            self._channels_lock.release()

    def newchannel(self):
        self._channels_lock.acquire()
        try:
            id = self._next_id
            self._next_id += 2
            ch = self._channels[id] = Channel(self, id)
            return ch
        finally:
            self._channels_lock.release()


    def _execute(self, channel, source, filename, call_name, kwargs):
        self._executing += 1
        try:
            try:
                namespace = {"channel": channel, "__name__": "__channelexec__"}
                code = compile(source + "\n", filename or "<remote exec>", "exec")
                exec(code, namespace)
                if call_name:
                    func = namespace[call_name]
                    args = {}
                    for k, v in (kwargs or {}).items():
                        args[str(k)] = v
                    func(channel, **args)
            except EOFError:
                # The code ran into the end of its channel: a normal end.
                channel.close()
            except:  # noqa: E722 (everything, as the reference does)
                channel.close(traceback.format_exc())
            else:
                channel.close()
        finally:
            self._executing -= 1

    def serve(self):
        read = self._io.read
        unpack = _unpack
        while 1:
            try:
                header = read(9)
            except EOFError:
                return
            code, id, length = unpack("!bii", header)
            payload = read(length) if length else _b("")
            if code == CHANNEL_DATA:
                ch = self.channel(id)
                try:
                    item = loads_internal(payload, ch._strconfig, self)
                except Exception:
                    ch.close("LoadError: " + traceback.format_exc())
                    continue
                ch._deliver(item)
            elif code == CHANNEL_EXEC:
                ch = self.channel(id)
                try:
                    source, filename, call_name, kwargs = loads_internal(payload, (True, False), self)
                except Exception:
                    ch.close("LoadError: " + traceback.format_exc())
                    continue
                t = threading.Thread(
                    target=self._execute, args=(ch, source, filename, call_name, kwargs)
                )
                t.daemon = True
                t.start()
            elif code == CHANNEL_CLOSE or code == CHANNEL_LAST_MESSAGE:
                ch = self._channels.get(id)
                if ch is not None:
                    ch._finish()
                    if code == CHANNEL_CLOSE and ch._closed:
                        self._forget(id)
            elif code == CHANNEL_CLOSE_ERROR:
                ch = self._channels.get(id)
                if ch is not None:
                    error = loads_internal(payload, (True, False), self)
                    ch._finish(error)
            elif code == STATUS:
                status = {
                    "numchannels": len(self._channels),
                    "numexecuting": self._executing,
                    "execmodel": "thread",
                }
                self._send(CHANNEL_DATA, id, dumps_internal(status))
                self._send(CHANNEL_CLOSE, id)
            elif code == RECONFIGURE:
                config = tuple(loads_internal(payload, (True, False), self))
                if id == 0:
                    self._strconfig = config
                else:
                    self.channel(id)._strconfig = config
            elif code == GATEWAY_TERMINATE:
                return "terminate"
            else:
                sys.stderr.write("execnet agent: unknown message code %r\n" % (code,))
                return


def _hard_exit(code):
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def _kill_group():
    # The master is gone: take down whatever the user's code started, then ourselves,
    # but only when we lead our process group (a popen master makes us do so); started
    # any other way (over ssh, through a via forwarder) the group is not ours to end.
    try:
        import signal

        if os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
    except Exception:
        pass


def _main(namespace):
    sock = namespace.get("clientsock")
    if sock is not None:
        io = _SocketIO(sock)
        io.write(_b("1"))
        Gateway(io).serve()
        return
    if JYTHON or not hasattr(os, "dup"):
        io = _FileIO(sys.stdin, sys.stdout)
        try:
            from StringIO import StringIO
        except ImportError:
            from io import StringIO
        sys.stdin = StringIO()
        sys.stdout = sys.stderr
    else:
        infd = os.dup(0)
        outfd = os.dup(1)
        try:
            import fcntl

            for fd in (infd, outfd):
                fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
        except Exception:
            pass
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        io = _FdIO(infd, outfd)
    io.write(_b("1"))
    why = Gateway(io).serve()
    if why != "terminate" and not JYTHON:
        _kill_group()
    _hard_exit(0)


_main(globals())
