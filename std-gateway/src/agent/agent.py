# execnet for Rust: the worker agent.
#
# The master starts an interpreter with
#     PYTHON -u -c "import sys;exec(eval(sys.stdin.readline()))"
# and sends this file as one string literal, its cold parts as text (see "cold parts"
# below), with a statement that sets `execnet_config` (a dict: execmodel, max_message,
# nice, id) before the comment on this first line. It then serves the execnet protocol
# on the process's stdin/stdout (or on `clientsock` when a socket server runs it). One
# source for CPython 2.7 and 3.x, PyPy and Jython: ASCII only, standard library only, no
# syntax that any of them rejects.
import os
import struct
import sys
import threading
import time
from collections import deque

_now = time.time

PY3 = sys.version_info[0] >= 3
JYTHON = sys.platform.startswith("java")
LINUX = sys.platform.startswith("linux")

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


EMPTY = _b("")
_pack = struct.pack
_unpack = struct.unpack
INT_MAX = 2147483647
INT_MIN = -2147483648
# Values at least this long go out as their own write part (os.writev), not copied
# into one joined buffer.
BIG_PART = 32768

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
MESSAGE_NAMES = (
    "STATUS",
    "RECONFIGURE",
    "GATEWAY_TERMINATE",
    "CHANNEL_EXEC",
    "CHANNEL_DATA",
    "CHANNEL_CLOSE",
    "CHANNEL_CLOSE_ERROR",
    "CHANNEL_LAST_MESSAGE",
)

# Texts that user code (and pytest-xdist) may match, as the reference words them.
INTERRUPT_TEXT = "keyboard-interrupted"
MAIN_THREAD_ONLY_DEADLOCK_TEXT = (
    "concurrent remote_exec would cause deadlock for main_thread_only execmodel"
)


class DataFormatError(Exception):
    """A value that cannot be written or read."""


class DumpError(DataFormatError):
    """A value that has no execnet representation."""


class LoadError(DataFormatError):
    """Bytes that do not decode."""


class _SessionEnd(BaseException):
    """Unwinds a session hosted in a process that must go on."""


class ProtocolError(Exception):
    """The master's stream is corrupt: the agent cannot go on."""


class RemoteError(Exception):
    """The other side closed the channel with an error."""

    def __init__(self, formatted):
        Exception.__init__(self, formatted)
        self.formatted = formatted

    def __str__(self):
        return self.formatted

    def __repr__(self):
        return "%s: %s" % (self.__class__.__name__, self.formatted)


class TimeoutError(IOError):
    """A receive or wait ran out of time."""


def _format_exc():
    # traceback (with linecache, tokenize and textwrap) takes 2.5 ms to import: a worker
    # pays for it at its first failure, not at its start.
    import traceback

    return traceback.format_exc()


def _signal_module():
    try:
        # Python 3: the C module itself. `signal` wraps it in enums, which take 0.5 ms to
        # build, and calls it all the same.
        import _signal

        return _signal
    except ImportError:
        import signal

        return signal


# ---------------------------------------------------------------- cold parts
#
# Compiling this file is most of what a worker's start costs. The parts of it that a
# session may never use are marked "cold"; the master sends each of them as text in a
# call of `_cold` or `_cold_methods` (see `lazy_agent` in transport.rs), and a part is
# compiled when one of its functions is first called. Tracebacks keep this file's line
# numbers. Run as it is, the file defines everything at once and these go unused.

_cold_lock = threading.RLock()


def _cold_compile(source, line, namespace):
    code = compile("\n" * (line - 1) + source, "<string>", "exec")
    exec(code, globals(), namespace)


def _cold_class_body(source, line):
    """The functions that `source`, a part of a class body starting at `line`, defines:
    compiled in a class statement of its own, with its indentation as it is."""
    namespace = {}
    _cold_compile("class _Part(object):\n" + source, line - 1, namespace)
    return namespace["_Part"].__dict__


def _cold(names, source, line):
    """Makes `names`, the functions and classes of one cold part, stand-ins that compile
    the part (module level, starting at `line`) at the first call of any of them."""
    done = []

    def load():
        _cold_lock.acquire()
        try:
            if not done:
                _cold_compile(source, line, globals())
                done.append(True)
        finally:
            _cold_lock.release()

    def stand_in(name):
        def call(*args, **kwargs):
            load()
            return globals()[name](*args, **kwargs)

        return call

    for name in names:
        globals()[name] = stand_in(name)


def _cold_methods(names, source, line):
    """Stand-ins for the methods `names` of one class, from a cold part of its body: the
    first call of any compiles them and puts them on the class."""
    methods = {}

    def stand_in(name):
        def call(self, *args, **kwargs):
            _cold_lock.acquire()
            try:
                if not methods:
                    body = _cold_class_body(source, line)
                    for n in names:
                        methods[n] = body[n]
                for cls in type(self).__mro__:
                    if cls.__dict__.get(name) is call:
                        for n in names:
                            setattr(cls, n, methods[n])
            finally:
                _cold_lock.release()
            return methods[name](self, *args, **kwargs)

        return call

    return tuple([stand_in(name) for name in names])


# ---------------------------------------------------------------- serializer


def _save_int(out, i, small, big):
    if INT_MIN <= i <= INT_MAX:
        out.append(small + _pack("!i", i))
    else:
        s = _b(str(i).rstrip("L"))
        out.append(big + _pack("!i", len(s)) + s)


class _Parts(list):
    """Encoded pieces; `big` says whether one of them is a large string kept apart."""

    big = False


def _save_sized(out, op, data):
    if len(data) < BIG_PART:
        out.append(op + _pack("!i", len(data)) + data)
    else:
        out.append(op + _pack("!i", len(data)))
        out.append(data)
        out.big = True


def _save_text(out, op, s):
    try:
        data = s.encode("utf-8")
    except UnicodeError:
        raise DumpError("strings must be utf-8 encodable")
    _save_sized(out, op, data)


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
                raise DumpError("can't serialize %s" % (t,))
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
    _save_sized(out, OP_BYTES, obj)


def _save_py2str(out, obj):
    _save_sized(out, OP_PY2STRING, obj)


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


def dumps_parts(obj):
    """The internal encoding of `obj` as a list of parts (large strings stay apart)."""
    out = _Parts()
    _save(out, obj)
    out.append(OP_STOP)
    return out


def dumps_internal(obj):
    return _b("").join(dumps_parts(obj))


# The version byte of `dumps`: 2 as execnet 2.x writes it, 1 on Python 2, where only
# execnet 1.x runs.
DUMPFORMAT_VERSION = PY3 and _b("\x02") or _b("\x01")


def dumps(obj):
    """The versioned encoding of `obj`, as `execnet.dumps` writes it."""
    return DUMPFORMAT_VERSION + dumps_internal(obj)


def loads(data, py2str_as_py3str=False, py3str_as_py2str=False):
    """Reads what `dumps` (of either execnet generation) wrote."""
    if data[:1] not in (_b("\x01"), _b("\x02")):
        raise LoadError("wrong dumpformat version %r" % (data[:1],))
    return loads_internal(data[1:], (py2str_as_py3str, py3str_as_py2str))


# -------------------------------------------------------------- deserializer


_unpack_from = struct.unpack_from


def loads_internal(data, config=(True, False), gateway=None):
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
                if gateway is None:
                    raise LoadError("a channel outside a gateway")
                push(gateway.channel(_unpack_from("!i", data, pos)[0]))
                pos += 4
            else:
                raise LoadError("unknown opcode %r at %d" % (op, pos - 1))
    except struct.error:
        raise LoadError("truncated value")
    except (TypeError, IndexError, KeyError, ValueError, UnicodeError):
        raise LoadError("malformed value: %s" % (sys.exc_info()[1],))


class _String(object):
    """A payload that is one string, taken from the input without its opcode, length and
    STOP, so that its bytes are copied once on their way from the input to the value."""

    __slots__ = ("op", "data")

    def __init__(self, op, data):
        self.op = op
        self.data = data

    def encoded(self):
        return self.op + _pack("!i", len(self.data)) + self.data + OP_STOP


_STRING_OPS = (OP_BYTES, OP_PY3STRING, OP_PY2STRING, OP_UNICODE)


def _load(payload, config, gateway):
    """`loads_internal` for a received payload, which may be a _String."""
    if payload.__class__ is _String:
        op = payload.op
        raw = payload.data
        try:
            # As loads_internal loads a string.
            if op == OP_PY3STRING:
                if config[1]:
                    return raw
                return raw.decode("utf-8")
            if op == OP_UNICODE:
                return raw.decode("utf-8")
            if op == OP_PY2STRING and PY3 and config[0]:
                return raw.decode("latin-1")
            return raw
        except Exception:
            # loads_internal words the error.
            payload = payload.encoded()
    return loads_internal(payload, config, gateway)


# ----------------------------------------------------------------- execmodel


class ExecModel(object):
    """What `channel.gateway.execmodel` shows remote code: the model's name and the
    primitives that go with it (the reference's worker code reads `backend` and
    `queue`)."""

    def __init__(self, backend):
        self.backend = backend

    def __repr__(self):
        return "<ExecModel %r>" % (self.backend,)

    @property
    def queue(self):
        if self.backend == "eventlet":
            import eventlet.queue

            return eventlet.queue
        if self.backend == "gevent":
            import gevent.queue

            return gevent.queue
        try:
            import queue
        except ImportError:
            import Queue as queue  # noqa: N813 (Python 2)
        return queue

    @property
    def subprocess(self):
        import subprocess

        return subprocess

    @property
    def socket(self):
        import socket

        return socket

    def get_ident(self):
        return _get_ident()

    def sleep(self, delay):
        import time

        time.sleep(delay)

    def start(self, func, args=()):
        t = threading.Thread(target=func, args=args)
        t.daemon = True
        t.start()

    def fdopen(self, fd, mode, bufsize=1, closefd=True):
        if PY3:
            return os.fdopen(fd, mode, bufsize, closefd=closefd)
        return os.fdopen(fd, mode, bufsize)

    def Lock(self):  # noqa: N802 (the reference's name)
        return threading.RLock()

    def RLock(self):  # noqa: N802
        return threading.RLock()

    def Event(self):  # noqa: N802
        return threading.Event()


EXECMODELS = ("thread", "main_thread_only", "eventlet", "gevent")


def get_execmodel(backend):
    if isinstance(backend, ExecModel):
        return backend
    if backend not in EXECMODELS:
        raise ValueError("unknown execmodel %r" % (backend,))
    return ExecModel(backend)


try:
    from _thread import get_ident as _get_ident
    from _thread import start_new_thread as _start_thread
except ImportError:
    # Python 2 (tried second: a failed import searches the whole path).
    from thread import get_ident as _get_ident
    from thread import start_new_thread as _start_thread


# ------------------------------------------------------------------ channels

_NO_ENDMARKER = object()
_END = object()


class _Empty(Exception):
    pass


class _Inbox(object):
    """Received items of one channel. Its condition shares the gateway's lock, so that
    a waiting receiver can be woken both for an item and to take over reading."""

    def __init__(self, gateway):
        self.items = deque()
        self.cond = threading.Condition(gateway._lock)
        self.waiting = 0
        self.gateway = gateway

    def put(self, item):
        # Under the lock: a receiver checks for items and starts waiting under it, so
        # an item appended between its check and its wait would otherwise go unnoticed
        # (Jython runs threads in parallel; CPython may switch between the two).
        gw = self.gateway
        gw._lock.acquire()
        try:
            self.items.append(item)
            if self.waiting:
                self.cond.notify_all()
        finally:
            gw._lock.release()

    def get(self, timeout=None):
        items = self.items
        while 1:
            try:
                return items.popleft()
            except IndexError:
                pass
            if not self.gateway._wait_for(self, items.__len__, timeout):
                raise _Empty()

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
        self._items = _Inbox(gateway)
        self._closed = False
        self._executing = False
        self._receive_closed = threading.Event()
        self._remote_error = None
        self._has_callback = False
        # Like execnet, a channel keeps the gateway's string config of its creation.
        self._strconfig = gateway._chan_config.pop(id, None) or gateway._strconfig
        self._lock = threading.Lock()

    def __repr__(self):
        return "<Channel id=%d %s>" % (self.id, self.isclosed() and "closed" or "open")

    def __del__(self):
        # Dropped by the code that used it: tell the master, as the reference does (a
        # channel with a callback only stops sending; its callback goes on receiving).
        try:
            if self._closed or self._receive_closed.is_set():
                return
            gw = self.gateway
            if gw is None or gw._finished:
                return
            code = self._has_callback and CHANNEL_LAST_MESSAGE or CHANNEL_CLOSE
            gw._send_later(code, self.id)
        except Exception:
            pass

    # receiving side, called by the reader
    def _finish(self, error=None, sendonly=False):
        if self._receive_closed.is_set():
            return
        self._remote_error = error
        if not sendonly:
            self._closed = True
        self._receive_closed.set()
        self._items.put(_END)

    # the API
    def send(self, item):
        if self._closed:
            raise IOError("cannot send to %r" % (self,))
        self.gateway._send(CHANNEL_DATA, self.id, dumps_parts(item))

    def receive(self, timeout=None):
        if self._has_callback:
            raise IOError("cannot receive(), channel has receiver callback")
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
        if self._executing:
            raise IOError("cannot explicitly close channel within remote_exec")
        self._close(error)

    def _close(self, error=None):
        self._lock.acquire()
        try:
            if self._closed:
                return
            self._closed = True
        finally:
            self._lock.release()
        # Unless the master closed the channel (then `_closed` was already set), it
        # hears of the close, also after its LAST_MESSAGE (it still waits for ours).
        gw = self.gateway
        if error is None:
            gw._send(CHANNEL_CLOSE, self.id)
        else:
            if not isinstance(error, (text_type, bytes_type)):
                error = str(error)
            gw._send(CHANNEL_CLOSE_ERROR, self.id, dumps_parts(error))
        if not self._receive_closed.is_set():
            self._receive_closed.set()
            self._items.put(_END)
        gw._forget(self.id)

    # cold: what few channels use
    def waitclose(self, timeout=None):
        if not self._receive_closed.is_set():
            self.gateway._wait_for(self._items, self._receive_closed.is_set, timeout)
        if not self._receive_closed.is_set():
            raise TimeoutError("channel %d not closed after %r seconds" % (self.id, timeout))
        if self._remote_error is not None:
            raise RemoteError(self._remote_error)

    def setcallback(self, callback, endmarker=_NO_ENDMARKER):
        gw = self.gateway
        gw._dispatch_lock.acquire()
        try:
            if self._has_callback:
                raise IOError("%r has callback already registered" % (self,))
            self._has_callback = True
            while 1:
                try:
                    item = self._items.get_nowait()
                except _Empty:
                    break
                if item is _END:
                    self._items.put(_END)
                    if endmarker is not _NO_ENDMARKER:
                        callback(endmarker)
                    return
                callback(item)
            if not self._receive_closed.is_set():
                gw._callbacks[self.id] = (callback, endmarker)
        finally:
            gw._dispatch_lock.release()

    def reconfigure(self, py2str_as_py3str=True, py3str_as_py2str=False):
        self._strconfig = (py2str_as_py3str, py3str_as_py2str)
        self.gateway._send(RECONFIGURE, self.id, dumps_parts(self._strconfig))

    def makefile(self, mode="w", proxyclose=False):
        if mode == "w":
            return _ChannelWriter(self, proxyclose)
        if mode == "r":
            return _ChannelReader(self)
        raise ValueError("mode %r not available" % (mode,))
    # end cold


# cold: channel files
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
# end cold


# ------------------------------------------------------------------------ io

_writev = getattr(os, "writev", None)
IOV_MAX = 512


def _write_all_parts(writev, fd, parts):
    """Writes every part with as few system calls as the kernel allows, slicing the one
    a short write ended in."""
    i = 0
    n = len(parts)
    while i < n:
        done = writev(fd, parts[i : i + IOV_MAX])
        while done:
            size = len(parts[i])
            if done >= size:
                done -= size
                i += 1
            else:
                parts[i] = memoryview(parts[i])[done:]
                done = 0


# Slices a chunk for joining without copying it where bytes.join takes memoryviews.
_view = PY3 and memoryview or (lambda b: b)


class _Reader(object):
    """Buffered input: the chunk being read from (`buf`, from `pos`) and those received
    after it (`more`). A frame that spans chunks is gathered with one join of exactly its
    bytes, so that a large payload is copied once."""

    def __init__(self, read_chunk, fileno, exact=False):
        self.read_chunk = read_chunk
        self.fileno = fileno
        self.exact = exact
        self.buf = _b("")
        self.pos = 0
        self.more = deque()
        self.more_len = 0

    def available(self):
        return len(self.buf) - self.pos + self.more_len

    def take(self, n):
        buf = self.buf
        pos = self.pos
        end = pos + n
        if end <= len(buf):
            if pos == 0 and end == len(buf):
                self.buf = EMPTY
                self.pos = 0
                return buf
            self.pos = end
            return buf[pos:end]
        parts = [_view(buf)[pos:]]
        need = end - len(buf)
        more = self.more
        while need:
            chunk = more.popleft()
            self.more_len -= len(chunk)
            if len(chunk) <= need:
                parts.append(chunk)
                need -= len(chunk)
            else:
                parts.append(_view(chunk)[:need])
                self.buf = chunk
                self.pos = need
                return EMPTY.join(parts)
        self.buf = EMPTY
        self.pos = 0
        return EMPTY.join(parts)

    def peek(self, n):
        """Up to `n` bytes from the front, left in place."""
        head = self.buf[self.pos : self.pos + n]
        for chunk in self.more:
            if len(head) >= n:
                break
            head = head + chunk[: n - len(head)]
        return head

    def fill(self, want, timeout):
        """Reads one chunk (up to what is wanted, at least 64 KiB), or, for a large
        frame, chunks until it is all in: its bytes are on their way, and each pass
        through the caller's loop would cost more than the read. False when nothing
        came within `timeout` (None: wait); EOFError at the end of input."""
        if timeout is not None and self.fileno is not None:
            if not _readable(self.fileno, timeout):
                return False
        large = want >= BIG_PART
        while 1:
            # At most 1 MiB a read: os.read allocates what it is asked for.
            chunk = self.read_chunk(self.exact and want or min(max(65536, want), 1 << 20))
            if not chunk:
                raise EOFError()
            self.more.append(chunk)
            self.more_len += len(chunk)
            want -= len(chunk)
            if want <= 0 or not large:
                return True


def _readable(fd, timeout):
    import select

    try:
        r = select.select([fd], [], [], max(timeout, 0))[0]
    except (select.error, OSError, IOError, ValueError):
        # Interrupted by a signal: the caller looks at its deadline and comes back.
        return False
    return bool(r)


class _FdIO(object):
    """Protocol IO over two private file descriptors."""

    def __init__(self, infd, outfd):
        self.infd = infd
        self.outfd = outfd
        self.reader = _Reader(self._read_chunk, infd)

    def _read_chunk(self, n):
        return os.read(self.infd, n)

    def write(self, data):
        while data:
            n = os.write(self.outfd, data)
            data = data[n:]

    def write_parts(self, parts):
        if _writev is not None:
            _write_all_parts(_writev, self.outfd, parts)
        else:
            self.write(_b("").join(parts))


# cold: IO for Jython and sockets
class _FileIO(object):
    """Protocol IO over file objects (Jython), read by one thread only."""

    def __init__(self, infile, outfile):
        self.infile = infile
        self.outfile = outfile
        self.reader = _Reader(self._read_chunk, None, exact=True)

    def _read_chunk(self, n):
        return self.infile.read(n)

    def write(self, data):
        self.outfile.write(data)
        self.outfile.flush()

    def write_parts(self, parts):
        self.write(_b("").join(parts))


class _SocketIO(object):
    """Protocol IO over a connected socket (run by a socket server)."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = _Reader(self._read_chunk, sock.fileno())

    def _read_chunk(self, n):
        return self.sock.recv(min(n, 1 << 20))

    def write(self, data):
        self.sock.sendall(data)

    def write_parts(self, parts):
        self.sock.sendall(_b("").join(parts))
# end cold


# ------------------------------------------------------------- exec threads


class _Pool(object):
    """Threads for remote_exec that are kept for the next execution once theirs ends
    (a few of them: more idle ones end)."""

    MAX_IDLE = 8

    def __init__(self, run):
        self.run = run
        self.lock = threading.Lock()
        self.idle = []

    def submit(self, task):
        self.lock.acquire()
        try:
            if self.idle:
                slot = self.idle.pop()
                slot[1] = task
                slot[0].set()
                return
        finally:
            self.lock.release()
        # A bare thread, as the reference starts its own: threading.Thread.start waits
        # until the new thread runs, which the reader would wait for at every request.
        _start_thread(self._loop, (task,))

    def _loop(self, task):
        slot = [threading.Event(), None]
        while task is not None:
            self.run(task)
            task = None
            self.lock.acquire()
            try:
                if len(self.idle) >= self.MAX_IDLE:
                    return
                slot[0].clear()
                slot[1] = None
                self.idle.append(slot)
            finally:
                self.lock.release()
            slot[0].wait()
            task = slot[1]


# cold: the main_thread_only execution model
class _MainThreadRunner(object):
    """`main_thread_only`: executions run in the main thread, one at a time. A request
    that comes while one runs waits up to a second for it (off the reading path), then
    is refused with the reference's error instead of deadlocking."""

    def __init__(self, run):
        self.run = run
        self.cond = threading.Condition(threading.Lock())
        self.task = None
        self.busy = False
        self.stopped = False

    def stop(self):
        self.cond.acquire()
        try:
            self.stopped = True
            self.cond.notify_all()
        finally:
            self.cond.release()

    def submit(self, task):
        if self._claim(task, 0):
            return
        t = threading.Thread(target=self._claim_or_refuse, args=(task,))
        t.daemon = True
        t.start()

    def _claim(self, task, timeout):
        import time

        deadline = time.time() + timeout
        self.cond.acquire()
        try:
            while self.busy:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
            self.busy = True
            self.task = task
            self.cond.notify_all()
            return True
        finally:
            self.cond.release()

    def _claim_or_refuse(self, task):
        if not self._claim(task, 1.0):
            channel = task[0]
            try:
                channel._close(MAIN_THREAD_ONLY_DEADLOCK_TEXT)
            except Exception:
                pass

    def serve_forever(self):
        while 1:
            self.cond.acquire()
            try:
                while self.task is None and not self.stopped:
                    self.cond.wait()
                if self.task is None:
                    return
                task = self.task
                self.task = None
            finally:
                self.cond.release()
            try:
                self.run(task)
            finally:
                self.cond.acquire()
                try:
                    self.busy = False
                    self.cond.notify_all()
                finally:
                    self.cond.release()
# end cold


# ------------------------------------------------------------------- gateway

# See Gateway._soft.
SOFT_CLAIM = 0.002


def _dedent(source):
    """What `textwrap.dedent` makes of `source` (the reference's master dedents what it
    sends; ours sends it as written): lines of only blanks and tabs are emptied, and the
    margin common to the others goes. Done here because textwrap takes 0.9 ms to import,
    which a worker's first execution would wait for."""
    lines = source.split("\n")
    margin = None
    for i, line in enumerate(lines):
        rest = line.lstrip(" \t")
        if not rest:
            lines[i] = ""
            continue
        indent = line[: len(line) - len(rest)]
        if margin is None or margin.startswith(indent):
            margin = indent
        elif not indent.startswith(margin):
            n = 0
            while margin[n] == indent[n]:
                n += 1
            margin = margin[:n]
    if margin:
        n = len(margin)
        lines = [line[n:] for line in lines]
    return "\n".join(lines)


# Code objects of recent sources: many requests send the same source again.
_CODE = {}
_CODE_MAX = 64
_CODE_MAX_SOURCE = 65536


def _compiled(source, filename):
    key = (source, filename)
    code = _CODE.get(key)
    if code is None:
        code = compile(_dedent(source) + "\n", filename or "<remote exec>", "exec")
        if len(source) <= _CODE_MAX_SOURCE:
            if len(_CODE) >= _CODE_MAX:
                _CODE.clear()
            _CODE[key] = code
    return code


class Gateway(object):
    """The worker's side of the gateway, as `channel.gateway` shows it.

    Reading is done by whichever thread needs input (leader/follower): a thread that
    waits in `receive()` while nobody reads takes the lead and reads frames itself, so
    that a reply reaches it without a hand-off between threads; the others wait for
    their item or for the lead. When no receiver waits, an idle reader (the main
    thread, or a reader thread under `main_thread_only`) reads what arrives."""

    RemoteError = RemoteError
    TimeoutError = TimeoutError

    def __init__(self, io, execmodel, max_message, id="<worker>", hosted=False):
        import weakref

        self._hosted = hosted
        self._io = io
        self._reader = io.reader
        self.execmodel = execmodel
        self.id = id
        self._max_message = max_message
        self._write_lock = threading.Lock()
        self._pending = deque()
        self._channels = weakref.WeakValueDictionary()
        self._callbacks = {}
        self._channels_lock = threading.Lock()
        self._next_id = 2
        self._strconfig = (True, False)
        self._chan_config = {}
        self._executing = 0
        self._exec_count_lock = threading.Lock()
        self._finished = False
        # Leadership of the input: who reads, and who waits to.
        self._lock = threading.Lock()
        self._leader = None
        # The last receiver to read keeps a soft claim on the input: it will likely be
        # back for its next item at once, and the idle reader only takes over when the
        # claim has not moved for a while (SOFT_CLAIM seconds).
        self._soft = None
        self._lead_count = 0
        self._waiters = deque()
        self._idle = threading.Condition(self._lock)
        # Frames are dispatched one at a time, whoever reads them.
        self._dispatch_lock = threading.RLock()
        self._header = None
        self._can_lead = io.reader.fileno is not None
        if execmodel.backend == "main_thread_only":
            self._runner = _MainThreadRunner(self._run_exec)
        else:
            self._runner = _Pool(self._run_exec)

    # ------------------------------------------------------------ writing

    def _send(self, code, channel_id, parts=None):
        if not parts:
            data = _pack("!bii", code, channel_id, 0)
            parts = None
        elif not parts.big:
            payload = EMPTY.join(parts)
            data = _pack("!bii", code, channel_id, len(payload)) + payload
            parts = None
        else:
            total = 0
            for p in parts:
                total += len(p)
            parts.insert(0, _pack("!bii", code, channel_id, total))
        self._write_lock.acquire()
        try:
            if parts is None:
                self._io.write(data)
            else:
                self._io.write_parts(parts)
        finally:
            self._write_lock.release()
        if self._pending:
            self._flush_pending()

    def _send_later(self, code, channel_id):
        # Called from __del__, which may run in the middle of another write: queue the
        # frame, and send it now only if nobody (this thread included) is writing.
        self._pending.append((code, channel_id))
        self._flush_pending()

    def _flush_pending(self):
        while self._pending:
            if not self._write_lock.acquire(False):
                return
            try:
                while self._pending:
                    code, channel_id = self._pending.popleft()
                    self._io.write(_pack("!bii", code, channel_id, 0))
            except Exception:
                pass
            finally:
                self._write_lock.release()

    # ----------------------------------------------------------- channels

    def channel(self, id):
        self._channels_lock.acquire()
        try:
            ch = self._channels.get(id)
            if ch is None:
                ch = Channel(self, id)
                self._channels[id] = ch
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
            ch = Channel(self, id)
            self._channels[id] = ch
            return ch
        finally:
            self._channels_lock.release()

    # ------------------------------------------------------------ reading

    def _wait_for(self, inbox, ready, timeout):
        """Waits until `ready()` (checked under the lock; `inbox` is woken by whatever
        could make it true), reading input meanwhile whenever nobody else reads. False
        when `timeout` ran out first."""
        deadline = timeout is not None and _now() + timeout or None
        me = _get_ident()
        lock = self._lock
        woken = False
        while 1:
            lock.acquire()
            try:
                while 1:
                    if ready():
                        if woken and self._leader is None:
                            # The lead may have been handed to us: pass it on.
                            self._notify_next()
                        return True
                    left = None
                    if deadline is not None:
                        left = deadline - _now()
                        if left <= 0:
                            if woken and self._leader is None:
                                self._notify_next()
                            return False
                    if self._can_lead and (self._leader is None or self._leader == me):
                        outer = self._leader
                        self._leader = me
                        self._soft = None
                        self._lead_count += 1
                        break
                    inbox.waiting += 1
                    self._waiters.append(inbox)
                    try:
                        inbox.cond.wait(left)
                    finally:
                        inbox.waiting -= 1
                        woken = True
                        try:
                            self._waiters.remove(inbox)
                        except ValueError:
                            pass
            finally:
                lock.release()
            # We lead: read until ready or out of time, then let another reader in.
            try:
                while not ready():
                    left = None
                    if deadline is not None:
                        left = deadline - _now()
                        if left <= 0:
                            break
                    self._pump(left)
            finally:
                if outer is None:
                    self._release_lead()
            if ready():
                return True
            woken = False

    def _notify_next(self):
        # The lock is held and nobody leads. A waiting receiver reads next; without one,
        # the idle reader watches the input.
        if self._waiters:
            self._waiters[0].cond.notify_all()
        else:
            self._idle.notify()

    def _release_lead(self):
        self._lock.acquire()
        try:
            self._leader = None
            if self._waiters:
                self._waiters[0].cond.notify_all()
            else:
                self._soft = _get_ident()
        finally:
            self._lock.release()

    def _drop_claim(self):
        """Called when a thread leaves remote code: its soft claim on the input goes."""
        me = _get_ident()
        if self._soft != me:
            return
        self._lock.acquire()
        try:
            if self._soft == me:
                self._soft = None
                self._idle.notify()
        finally:
            self._lock.release()

    def _serve_idle(self):
        """The reader of last resort: watches the input whenever no receiver reads or is
        about to, and dispatches what arrives."""
        reader = self._reader
        me = _get_ident()
        if not self._can_lead:
            self._leader = me
            while 1:
                self._pump(None)
        fd = reader.fileno
        lock = self._lock
        while 1:
            lock.acquire()
            try:
                while 1:
                    if self._leader is None and self._soft in (None, me):
                        self._soft = me
                        break
                    seen = (self._leader, self._soft, self._lead_count)
                    self._idle.wait(SOFT_CLAIM)
                    if self._leader is None and (self._leader, self._soft, self._lead_count) == seen:
                        # The claim has not moved for a whole period: its holder is
                        # busy elsewhere, and input must not wait for it.
                        self._soft = me
                        break
            finally:
                lock.release()
            _readable(fd, 3600)
            lock.acquire()
            try:
                if self._leader is not None or self._soft != me:
                    continue
                self._leader = me
                self._soft = None
                self._lead_count += 1
            finally:
                lock.release()
            try:
                self._pump(0)
            finally:
                lock.acquire()
                try:
                    self._leader = None
                    if self._waiters:
                        self._waiters[0].cond.notify_all()
                    else:
                        self._soft = me
                finally:
                    lock.release()

    def _pump(self, timeout):
        """Reads one chunk of input (waiting at most `timeout`) and dispatches every
        complete frame it holds. Only the leader calls it; a fault in the stream ends
        the agent from whichever thread reads."""
        try:
            self._pump_frames(timeout)
        except ProtocolError:
            self._end("fatal", "protocol error from the master: %s; stopping" % (sys.exc_info()[1],))
        except (IOError, OSError, EOFError):
            # Reading or answering failed: the master's end of the stream is gone.
            self._end("eof")
        except Exception:
            self._end("fatal", "internal error, stopping:\n" + _format_exc())

    def _pump_frames(self, timeout):
        reader = self._reader
        header = self._header
        need = header is None and 9 or header[2]
        if reader.available() < need:
            if not reader.fill(need - reader.available(), timeout):
                return
        dispatch = self._dispatch
        dispatch_lock = self._dispatch_lock
        small = min(BIG_PART, self._max_message + 1)
        codes = len(MESSAGE_NAMES)
        while 1:
            header = self._header
            if header is None:
                # The usual case, a whole small frame in the current chunk: taken by its
                # offsets, with no call per step (a flood of small values is paced here).
                buf = reader.buf
                pos = reader.pos
                if pos + 9 <= len(buf):
                    code, id, n = _unpack_from("!bii", buf, pos)
                    end = pos + 9 + n
                    if 0 <= code < codes and 0 <= n < small and end <= len(buf):
                        reader.pos = end
                        dispatch_lock.acquire()
                        try:
                            dispatch(code, id, n and buf[pos + 9 : end] or EMPTY)
                        finally:
                            dispatch_lock.release()
                        continue
                if reader.available() < 9:
                    return
                header = self._parse_header(reader.take(9))
                self._header = header
            n = header[2]
            if reader.available() < n:
                return
            payload = None
            if n >= BIG_PART and header[0] == CHANNEL_DATA:
                # One large string, the usual bulk: its bytes become the value as taken.
                head = reader.peek(5)
                if head[:1] in _STRING_OPS and _unpack("!i", head[1:5])[0] == n - 6:
                    reader.take(5)
                    data = reader.take(n - 6)
                    last = reader.take(1)
                    payload = last == OP_STOP and _String(head[:1], data) or head + data + last
            if payload is None:
                payload = n and reader.take(n) or EMPTY
            self._header = None
            dispatch_lock.acquire()
            try:
                dispatch(header[0], header[1], payload)
            finally:
                dispatch_lock.release()

    def _parse_header(self, raw):
        code, id, length = _unpack("!bii", raw)
        if code < 0 or code >= len(MESSAGE_NAMES):
            raise ProtocolError(
                "unknown message code %d (channel %d, length %d)" % (code, id, length)
            )
        name = MESSAGE_NAMES[code]
        if length < 0:
            raise ProtocolError(
                "%s frame for channel %d announces a negative payload length %d"
                % (name, id, length)
            )
        if length > self._max_message:
            raise ProtocolError(
                "%s frame for channel %d announces %d bytes, above the agent's limit of %d"
                % (name, id, length, self._max_message)
            )
        return (code, id, length)

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, code, id, payload):
        if code == CHANNEL_DATA:
            cb = self._callbacks.get(id)
            if cb is not None:
                self._call_back(id, cb, payload)
                return
            ch = self._channels.get(id)
            if ch is None:
                # No code holds this channel (never handed out, or dropped): as the
                # reference does, the data goes nowhere.
                return
            try:
                item = _load(payload, ch._strconfig, self)
            except Exception:
                ch._close("LoadError: " + _format_exc())
                return
            ch._items.put(item)
        elif code == CHANNEL_EXEC:
            ch = self.channel(id)
            try:
                source, filename, call_name, kwargs = loads_internal(payload, (True, False), self)
            except Exception:
                ch._close("LoadError: bad CHANNEL_EXEC payload: " + _format_exc())
                return
            if call_name:
                _debug("channel %d: call %s" % (id, call_name))
            else:
                _debug("channel %d: exec %d bytes of source" % (id, len(source)))
            self._runner.submit((ch, source, filename, call_name, kwargs))
        elif code == CHANNEL_CLOSE or code == CHANNEL_LAST_MESSAGE:
            self._remote_close(id, None, code == CHANNEL_LAST_MESSAGE)
        elif code == CHANNEL_CLOSE_ERROR:
            try:
                error = loads_internal(payload, (True, False), self)
            except Exception:
                raise ProtocolError(
                    "CHANNEL_CLOSE_ERROR for channel %d carries a payload that does not decode (%s)"
                    % (id, sys.exc_info()[1])
                )
            if not isinstance(error, (text_type, bytes_type)):
                error = str(error)
            self._remote_close(id, error, False)
        elif code == STATUS:
            self._status(id)
        elif code == RECONFIGURE:
            self._reconfigure(id, payload)
        elif code == GATEWAY_TERMINATE:
            self._end("terminate")

    def _remote_close(self, id, error, sendonly):
        cb = self._callbacks.pop(id, None)
        ch = self._channels.get(id)
        if ch is not None:
            ch._finish(error, sendonly)
            if not sendonly:
                self._forget(id)
        if cb is not None and cb[1] is not _NO_ENDMARKER:
            try:
                cb[0](cb[1])
            except Exception:
                self._callback_failed(id)

    # cold: status, reconfiguration, callbacks
    def _status(self, id):
        status = {
            "numchannels": len(self._channels),
            "numexecuting": self._executing,
            "execmodel": self.execmodel.backend,
        }
        self._send(CHANNEL_DATA, id, dumps_parts(status))
        self._send(CHANNEL_CLOSE, id)

    def _reconfigure(self, id, payload):
        try:
            config = loads_internal(payload, (True, False), self)
            if not isinstance(config, (tuple, list)) or len(config) != 2:
                raise LoadError("expected a pair of flags, got %r" % (config,))
            config = (bool(config[0]), bool(config[1]))
        except Exception:
            raise ProtocolError(
                "RECONFIGURE for channel %d carries a bad payload (%s)" % (id, sys.exc_info()[1])
            )
        if id == 0:
            self._strconfig = config
        else:
            ch = self._channels.get(id)
            if ch is not None:
                ch._strconfig = config
            else:
                self._chan_config[id] = config

    def _call_back(self, id, cb, payload):
        ch = self._channels.get(id)
        config = ch is not None and ch._strconfig or self._strconfig
        try:
            item = _load(payload, config, self)
            cb[0](item)
        except Exception:
            self._callback_failed(id)

    def _callback_failed(self, id):
        # As the reference does: the error closes this channel only, on both ends.
        text = _format_exc()
        self._callbacks.pop(id, None)
        ch = self._channels.get(id)
        if ch is not None:
            ch._close(text)
            ch._finish(text)
        else:
            self._send(CHANNEL_CLOSE_ERROR, id, dumps_parts(text))
    # end cold

    # ---------------------------------------------------------- execution

    def _run_exec(self, task):
        channel, source, filename, call_name, kwargs = task
        self._exec_count_lock.acquire()
        self._executing += 1
        self._exec_count_lock.release()
        error = None
        try:
            try:
                namespace = {"channel": channel, "__name__": "__channelexec__"}
                channel._executing = True
                try:
                    code = _compiled(source, filename)
                    exec(code, namespace)
                    if call_name:
                        func = namespace[call_name]
                        args = {}
                        for k, v in (kwargs or {}).items():
                            args[str(k)] = v
                        func(channel, **args)
                finally:
                    channel._executing = False
            except EOFError:
                # The code ran into the end of its channel: a normal end.
                pass
            except KeyboardInterrupt:
                error = INTERRUPT_TEXT
            except:  # noqa: E722 (everything, SystemExit too, as the reference does)
                error = _format_exc()
            namespace = None
            try:
                channel._close(error)
            except Exception:
                pass
        finally:
            self._drop_claim()
            self._exec_count_lock.acquire()
            self._executing -= 1
            self._exec_count_lock.release()

    # ---------------------------------------------------------------- end

    # cold: the end of the session
    def _end(self, why, detail=None):
        self._finished = True
        _debug("ending: %s" % (why,))
        if detail:
            try:
                sys.stderr.write("execnet agent: %s\n" % (detail,))
                sys.stderr.flush()
            except Exception:
                pass
        if self._hosted:
            # Inside a server process that is not ours (the reference's socket server
            # runs us in its own interpreter): end the session, not the process.
            _kill_descendants()
            try:
                self._io.sock.shutdown(2)
            except Exception:
                pass
            stop = getattr(self._runner, "stop", None)
            if stop is not None:
                stop()
            raise _SessionEnd()
        _shutdown(why)
    # end cold


# --------------------------------------------------------- process lifetime


def _prctl(option, arg):
    """prctl(2) through ctypes, where there is both (Linux, not Jython)."""
    if not LINUX or JYTHON:
        return False
    try:
        return _prctl_function()(option, arg) == 0
    except Exception:
        return False


def _prctl_function():
    """prctl(option, arg) from the C library. The `ctypes` module takes 1.7 ms to import,
    its C core alone 0.7 ms: CPython's core is used directly, the documented module
    wherever that fails (PyPy's core differs)."""
    try:
        import _ctypes

        class c_ulong(_ctypes._SimpleCData):  # noqa: N801 (ctypes' name)
            _type_ = "L"

        class c_int(_ctypes._SimpleCData):  # noqa: N801
            _type_ = "i"

        class Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = c_int

        class Libc(object):
            _handle = _ctypes.dlopen(None, 0)

        prctl = Function(("prctl", Libc()))
        return lambda option, arg: prctl(option, c_ulong(arg), 0, 0, 0)
    except Exception:
        import ctypes

        prctl = ctypes.CDLL(None).prctl
        return lambda option, arg: prctl(option, ctypes.c_ulong(arg), 0, 0, 0)


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


# cold: the cleanup at the end
def _proc_table():
    """{pid: (ppid, pgrp, state)} from /proc, or None where there is no /proc."""
    try:
        names = os.listdir("/proc")
    except Exception:
        return None
    table = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            f = open("/proc/%s/stat" % name)
            try:
                stat = f.read()
            finally:
                f.close()
            fields = stat[stat.rfind(")") + 2 :].split()
            table[int(name)] = (int(fields[1]), int(fields[2]), fields[0])
        except Exception:
            continue
    return table


def _descendants(table, root):
    children = {}
    for pid, entry in table.items():
        children.setdefault(entry[0], []).append(pid)
    found = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _kill_descendants():
    """Stops, then kills, every process below this one (the subreaper setting keeps
    orphans and setsid() escapees below it). Stopping first keeps a process from
    forking a replacement while its parent is being killed. The processes killed, or
    None where there is no /proc to read."""
    signal = _signal_module()

    me = os.getpid()
    stopped = {}
    for _ in range(50):
        table = _proc_table()
        if table is None:
            return None
        fresh = [p for p in _descendants(table, me) if p not in stopped]
        if not fresh:
            break
        for pid in fresh:
            stopped[pid] = 1
            try:
                os.kill(pid, signal.SIGSTOP)
            except Exception:
                pass
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except Exception:
            pass
    return stopped


def _group_has_others(killed):
    """Whether our process group holds a live process besides us and those just
    killed (the watchdog among them): then the group is killed, and we with it."""
    table = _proc_table()
    if table is None or killed is None:
        return True
    me = os.getpid()
    pgrp = os.getpgrp()
    for pid, (_, group, state) in table.items():
        if group == pgrp and pid != me and pid not in killed and state != "Z":
            return True
    return False


def _cleanup():
    """Takes down whatever the user's code started: every descendant, and the rest of
    our process group when we lead it (a popen master, the socket server and sshd make
    us do so; a wrapper script that runs us does not, and its group is not ours)."""
    try:
        signal = _signal_module()

        killed = _kill_descendants()
        if (
            hasattr(os, "getpgrp")
            and os.getpgrp() == os.getpid()
            and _group_has_others(killed)
        ):
            os.killpg(os.getpgrp(), signal.SIGKILL)
    except Exception:
        pass
# end cold


_EXIT_CODES = {"terminate": 0, "eof": 0, "fatal": 1}

# EXECNET_DEBUG (as the reference reads it), in the environment or passed on by the
# master in the configuration: a line on stderr at start, for each execution and at the
# end. The master forwards or captures stderr, never the protocol.
_DEBUG = os.environ.get("EXECNET_DEBUG") not in (None, "", "0")


def _debug(text):
    if _DEBUG:
        try:
            sys.stderr.write("execnet agent[%d]: %s\n" % (os.getpid(), text))
            sys.stderr.flush()
        except Exception:
            pass


def _shutdown(why):
    _cleanup()
    _hard_exit(_EXIT_CODES.get(why, 1))


def _hard_exit(code):
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


# How long the watchdog lets an agent whose master is gone end by itself (and take
# everything it started with it) before it kills the agent's process group.
WATCHDOG_GRACE = 1.0


# cold: the watchdog, compiled in its own process
def _watchdog(agent, infd):
    """The body of a small forked process that takes the agent's process group down when
    the agent cannot: the agent died (the kernel sends SIGUSR1), or the master is gone
    (the agent's input hangs up) and the agent did not end within the grace period, as
    when its code holds the interpreter in C."""
    import select
    signal = _signal_module()
    import time

    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            os.closerange(3, infd)
            os.closerange(infd + 1, 65536)
        except Exception:
            pass
        pgrp = os.getpgrp()

        def fire(signum, frame):
            os.killpg(pgrp, signal.SIGKILL)
            os._exit(0)

        signal.signal(signal.SIGUSR1, fire)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not _prctl(PR_SET_PDEATHSIG, signal.SIGUSR1) or os.getppid() != agent:
            fire(0, None)
        poller = select.poll()
        # No events asked for: poll reports only the hang-up (every writer closed).
        poller.register(infd, 0)
        while 1:
            try:
                if poller.poll():
                    break
            except Exception:
                pass
        time.sleep(WATCHDOG_GRACE)
        fire(0, None)
    finally:
        os._exit(0)
# end cold


def _arm_parent_death(infd):
    """Linux: the worker must not outlive its master. The kernel sends the agent SIGHUP
    when the thread that started it ends (PR_SET_PDEATHSIG; the master starts workers
    from a thread that lives as long as it does), and the agent then ends as at the end
    of its input, killing everything below it. When its code holds the interpreter in C,
    no Python handler can run: a forked watchdog then kills the process group."""
    if not LINUX or JYTHON:
        return
    signal = _signal_module()
    parent = os.getppid()

    def hangup(signum, frame):
        _shutdown("eof")

    try:
        signal.signal(signal.SIGHUP, hangup)
    except Exception:
        return
    if not _prctl(PR_SET_PDEATHSIG, signal.SIGHUP):
        return
    if os.getppid() != parent:
        # The master died before the setting took: nobody is left to serve.
        _shutdown("eof")
    if hasattr(os, "fork") and hasattr(os, "killpg") and os.getpgrp() == os.getpid():
        me = os.getpid()
        try:
            pid = os.fork()
        except Exception:
            return
        if pid == 0:
            _watchdog(me, infd)


# ------------------------------------------------------------- import execnet


def _install_execnet_module(namespace):
    """Makes `import execnet` (and `execnet.gateway_base`) work in remote code where no
    execnet is installed, with the names the reference's worker-side code uses. An
    installed execnet comes first."""
    import types

    names = (
        "dumps",
        "loads",
        "dumps_internal",
        "loads_internal",
        "DataFormatError",
        "DumpError",
        "LoadError",
        "RemoteError",
        "TimeoutError",
        "Channel",
        "ExecModel",
        "get_execmodel",
    )

    def make(name):
        m = types.ModuleType(name)
        for n in names:
            setattr(m, n, namespace[n])
        m.__file__ = "<execnet agent>"
        return m

    class Finder(object):
        def find_module(self, fullname, path=None):
            if fullname in ("execnet", "execnet.gateway_base"):
                return self
            return None

        def load_module(self, fullname):
            mod = sys.modules.get(fullname)
            if mod is None:
                mod = make(fullname)
                if fullname == "execnet":
                    mod.__path__ = []
                    mod.gateway_base = self.load_module("execnet.gateway_base")
                sys.modules[fullname] = mod
            return mod

        def find_spec(self, fullname, path=None, target=None):
            if fullname not in ("execnet", "execnet.gateway_base"):
                return None
            import importlib.machinery

            return importlib.machinery.ModuleSpec(
                fullname, self, is_package=(fullname == "execnet")
            )

        def create_module(self, spec):
            return make(spec.name)

        def exec_module(self, module):
            if module.__name__ == "execnet":
                module.__path__ = []

    # Last on the path: only where the real execnet is not importable.
    sys.meta_path.append(Finder())


# ------------------------------------------------------------------- startup


def _report_code(io, code):
    """For a master that asked: this agent's compiled code and the interpreter's
    sys.version, before the handshake byte, so that the next worker it starts with the
    same command is sent the code and need not compile the source. Nothing where the
    code cannot be marshalled (Jython)."""
    if code is None:
        return
    try:
        import marshal

        blob = marshal.dumps(code)
    except Exception:
        return
    version = sys.version
    if PY3:
        version = version.encode("utf-8", "replace")
    io.write(_b("C") + _pack("!ii", len(version), len(blob)) + version + blob)


def _main(namespace):
    global _DEBUG
    config = namespace.get("execnet_config") or {}
    if config.get("debug"):
        _DEBUG = True
    backend = config.get("execmodel") or "thread"
    max_message = config.get("max_message") or 256 * 1024 * 1024
    if backend in ("eventlet", "gevent"):
        try:
            __import__(backend)
        except Exception:
            sys.stderr.write(
                "execnet agent: execmodel %r needs the %s package, which this interpreter"
                " (%s) cannot import: %s\n" % (backend, backend, sys.executable, sys.exc_info()[1])
            )
            _hard_exit(1)
        sys.stderr.write(
            "execnet agent: execmodel %r is accepted, but remote code runs in threads as"
            " under 'thread'\n" % (backend,)
        )
    execmodel = get_execmodel(backend)
    if config.get("nice") and hasattr(os, "nice"):
        # Before any thread starts: threads inherit the niceness of the one that starts
        # them (Linux sets it per thread), so the whole worker runs at it.
        os.nice(config["nice"])
    _install_execnet_module(namespace)
    sock = namespace.get("clientsock")
    # The reference's socket server runs us inside its own long-lived process (its
    # namespace carries the client's address); `execnet serve` starts a process each.
    hosted = sock is not None and "address" in namespace
    if not hosted:
        # Orphans of the user's code (a daemon's double fork, a setsid() child whose
        # parent ended) are reparented to us, not to init, so that the cleanup finds them.
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if sock is not None:
        io = _SocketIO(sock)
    elif JYTHON or not hasattr(os, "dup"):
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
        # Kept from the user's child processes. Python 3.4 and later make every new
        # descriptor so (PEP 446); older ones are told.
        if sys.version_info < (3, 4):
            try:
                import fcntl

                for fd in (infd, outfd):
                    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                    fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            except Exception:
                pass
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        io = _FdIO(infd, outfd)
        _arm_parent_death(infd)
    gateway = Gateway(io, execmodel, max_message, config.get("id") or "<worker>", hosted)
    if config.get("report_code"):
        _report_code(io, namespace.get("execnet_agent_code"))
    io.write(_b("1"))
    _debug(
        "started: %s %s, execmodel %s"
        % (sys.executable, ".".join([str(x) for x in sys.version_info[:3]]), backend)
    )
    try:
        if backend == "main_thread_only":
            t = threading.Thread(target=gateway._serve_idle)
            t.daemon = True
            t.start()
            gateway._runner.serve_forever()
        else:
            gateway._serve_idle()
    except _SessionEnd:
        return
    except BaseException:
        try:
            gateway._end("fatal", "internal error, stopping:\n" + _format_exc())
        except _SessionEnd:
            return


_main(globals())
