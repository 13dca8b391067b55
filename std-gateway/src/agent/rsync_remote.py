"""The receiving side of execnet's RSync for Rust (std-gateway/src/rsync.rs).

Sent with remote_exec and run with `channel` bound. It brings one destination directory
in line with the tree the master describes, then writes the file contents the master
streams to it. ASCII, standard library only, and valid on CPython 2.7 to 3.13, PyPy3 and
Jython 2.7: no f-strings, no nonlocal, no bytes formatting.

What travels, master to worker (paths are bytes, relative, '/'-separated; tags are text):

  (dest, options)                      once, first
  ("s", cost, [entry, ...])            a batch of the tree, in pre-order:
      ("d", relpath, mode, [name, ...])    a directory and the names it holds
      ("f", relpath, mode, mtime_ns, size, index)   a regular file
      ("l", relpath, target, inside)       a symlink; inside: target is relative to dest
  ("p",)                               the tree is complete
  ("w", index, data, last)             first chunk of a file's content
  ("c", data, last)                    the next chunk of the same file
  ("x",)                               the master could not read the file: drop it
  ("u", index)                         content equal after all: set mode and mtime only
  ("z",)                               nothing more: finish

and worker to master:

  ("n", [(index, digest or None), ...])    files whose content this side needs
  ("k", cost)                          this much of what was sent has been dealt with
  ("e", relpath, text)                 something failed on this side for relpath
  ("l", counts)                        the tree has been compared
  ("d", counts)                        all done
"""

import errno
import gc
import hashlib
import os
import shutil
import stat
import sys

BLOCK = 1 << 20
# What a message costs the flow-control window beyond its data: both sides count alike.
OVERHEAD = 64
HAS_NS = sys.version_info[0] >= 3
# Jython's paths are Java strings: names travel as bytes and become text there.
JYTHON = sys.platform.startswith("java")
# PyPy's collector lets freed chunks pile up for a long while: collect every so often.
COLLECT_EVERY = hasattr(sys, "pypy_version_info") and 4 << 20 or 0

COUNT_NAMES = (
    "files",
    "dirs_created",
    "deleted",
    "links",
    "modes",
    "hashed",
    "sent",
    "bytes",
    "touched",
)


def describe(exc):
    """An OS error's text without the path, which the master adds itself."""
    code = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None)
    if text and code is not None:
        return "%s (%s)" % (text, errno.errorcode.get(code, code))
    if text:
        return str(text)
    return "%s: %s" % (type(exc).__name__, exc)


def native(name):
    """A path as the os module of this interpreter takes it."""
    if JYTHON:
        return name.decode("utf-8")
    return name


def wire(name, like):
    """A name from os.listdir as the bytes the master uses, beside `like`."""
    if not isinstance(name, type(like)):
        return name.encode("utf-8")
    return name


def lstat_or_none(path, follow=False):
    try:
        if follow:
            return os.stat(path)
        return os.lstat(path)
    except EnvironmentError:
        return None


def remove(path, st):
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def digest(path):
    h = hashlib.sha256()
    f = open(path, "rb")
    try:
        while 1:
            block = f.read(BLOCK)
            if not block:
                break
            h.update(block)
    finally:
        f.close()
    return h.digest()


def same_mtime(st, mtime_ns):
    if HAS_NS and hasattr(st, "st_mtime_ns"):
        return st.st_mtime_ns == mtime_ns
    # Without nanoseconds (Python 2, Jython) the clock is a float, and the mtime this side
    # set last time was rounded to what utime takes there: a millisecond apart is equal.
    return abs(st.st_mtime - mtime_ns / 1e9) < 1e-3


def set_mtime(path, mtime_ns):
    if HAS_NS:
        try:
            os.utime(path, ns=(mtime_ns, mtime_ns))
            return
        except TypeError:
            pass
    # utime takes whole microseconds here, truncating the float: aim at the middle of
    # the right microsecond so that rounding errors of the float cannot cross it.
    t = (mtime_ns // 1000 * 1000 + 500) / 1e9
    os.utime(path, (t, t))


class Refused(Exception):
    pass


class Sync(object):
    def __init__(self, channel, dest, options):
        self.channel = channel
        self.dest = native(dest)
        self.delete = bool(options.get("delete"))
        # The source's name when it is a single file.
        self.name = options.get("name")
        if self.name:
            self.name = native(self.name)
        self.ack_step = int(options.get("ack_step", BLOCK))
        self.unacked = 0
        self.uncollected = 0
        self.wanted = {}
        self.needs = []
        self.late_modes = []
        self.failed_dirs = set()
        self.current = None
        self.counts = dict((name, 0) for name in COUNT_NAMES)

    # -- plumbing ----------------------------------------------------------------------

    def account(self, cost):
        self.unacked += cost
        if COLLECT_EVERY:
            self.uncollected += cost
            if self.uncollected >= COLLECT_EVERY:
                self.uncollected = 0
                gc.collect()
        if self.unacked >= self.ack_step:
            self.channel.send(("k", self.unacked))
            self.unacked = 0

    def fail(self, relpath, what, exc):
        self.channel.send(("e", relpath, "%s: %s" % (what, describe(exc))))

    def path_of(self, relpath):
        if not relpath:
            return self.dest
        if relpath.startswith(b"/"):
            raise Refused("an absolute path")
        for part in relpath.split(b"/"):
            if part in (b"", b".", b".."):
                raise Refused("a path with an empty, '.' or '..' part")
        try:
            return os.path.join(self.dest, native(relpath))
        except UnicodeError:
            raise Refused("a name that is not UTF-8, which Jython cannot use")

    def parent_failed(self, relpath):
        if not relpath:
            return False
        cut = relpath.rfind(b"/")
        parent = relpath[:cut] if cut >= 0 else b""
        return parent in self.failed_dirs

    def counted(self):
        return tuple(self.counts[name] for name in COUNT_NAMES)

    # -- the tree ----------------------------------------------------------------------

    def entry(self, e):
        kind, relpath = e[0], e[1]
        if self.parent_failed(relpath):
            # Its directory could not be made: it has been reported once, not per entry.
            if kind == "d":
                self.failed_dirs.add(relpath)
            return
        try:
            path = self.path_of(relpath)
        except Refused:
            self.channel.send(("e", relpath, "refused: %s" % (sys.exc_info()[1],)))
            if kind == "d":
                self.failed_dirs.add(relpath)
            return
        if kind not in ("d", "f", "l"):
            raise ValueError("unknown tree entry %r" % (kind,))
        try:
            if kind == "d":
                self.directory(relpath, path, e[2], e[3])
            elif kind == "f":
                self.regular(relpath, path, e[2], e[3], e[4], e[5])
            else:
                self.link(relpath, path, e[2], e[3])
        except Exception:
            # Not an OS error (those are reported where they happen): still this entry's
            # failure alone.
            self.fail(relpath, "cannot sync", sys.exc_info()[1])
            if kind == "d":
                self.failed_dirs.add(relpath)

    def directory(self, relpath, path, mode, names):
        try:
            # The destination itself may be a symlink to a directory: follow that one.
            st = lstat_or_none(path, follow=not relpath)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                remove(path, st)
                st = None
            if st is None:
                os.makedirs(path)
                self.counts["dirs_created"] += 1
                st = os.lstat(path)
            # Writable for us while we fill it; the exact mode comes at the end.
            want = mode | 0o700
            if stat.S_IMODE(st.st_mode) != want:
                os.chmod(path, want)
            if want != mode:
                self.late_modes.append((relpath, path, mode))
        except EnvironmentError:
            self.fail(relpath, "cannot create directory", sys.exc_info()[1])
            self.failed_dirs.add(relpath)
            return
        if not self.delete:
            return
        keep = set()
        for name in names:
            try:
                keep.add(native(name))
            except UnicodeError:
                pass
        try:
            present = os.listdir(path)
        except EnvironmentError:
            self.fail(relpath, "cannot list directory", sys.exc_info()[1])
            return
        for name in present:
            if name in keep:
                continue
            other = os.path.join(path, name)
            if relpath:
                rel = relpath + b"/" + wire(name, relpath)
            else:
                rel = wire(name, relpath)
            try:
                st = os.lstat(other)
                remove(other, st)
                self.counts["deleted"] += 1
            except EnvironmentError:
                self.fail(rel, "cannot delete", sys.exc_info()[1])

    def regular(self, relpath, path, mode, mtime_ns, size, index):
        self.counts["files"] += 1
        checksum = None
        if not relpath and self.name:
            st = lstat_or_none(path, follow=True)
            if st is not None and stat.S_ISDIR(st.st_mode):
                # A single file sent to a directory goes into it, as cp does: the
                # directory is not replaced.
                relpath = self.name
                path = os.path.join(path, relpath)
        try:
            st = lstat_or_none(path, follow=not relpath)
            if st is not None and not stat.S_ISREG(st.st_mode):
                remove(path, st)
                st = None
            if st is not None and st.st_size == size:
                if same_mtime(st, mtime_ns):
                    if stat.S_IMODE(st.st_mode) != mode:
                        os.chmod(path, mode)
                        self.counts["modes"] += 1
                    return
                try:
                    checksum = digest(path)
                    self.counts["hashed"] += 1
                except EnvironmentError:
                    checksum = None
        except EnvironmentError:
            self.fail(relpath, "cannot replace", sys.exc_info()[1])
            return
        self.wanted[index] = (relpath, path, mode, mtime_ns)
        self.needs.append((index, checksum))

    def link(self, relpath, path, target, inside):
        target = native(target)
        if inside:
            target = os.path.join(os.path.abspath(self.dest), target)
        try:
            st = lstat_or_none(path)
            if st is not None:
                if stat.S_ISLNK(st.st_mode) and os.readlink(path) == target:
                    return
                remove(path, st)
            os.symlink(target, path)
            self.counts["links"] += 1
        except EnvironmentError:
            self.fail(relpath, "cannot make symlink", sys.exc_info()[1])

    def flush_needs(self):
        if self.needs:
            self.channel.send(("n", self.needs))
            self.needs = []

    # -- contents ----------------------------------------------------------------------

    def begin(self, index):
        if self.current is not None:
            self.drop()
        info = self.wanted.pop(index, None)
        if info is None:
            raise ValueError("content for file %r, which this side did not ask for" % (index,))
        relpath, path, mode, mtime_ns = info
        name = ".execnet-rsync-%d-%d" % (os.getpid(), index)
        parent = os.path.dirname(path)
        tmp = os.path.join(parent, name.encode("ascii"))
        f = None
        try:
            if not relpath and parent and not os.path.isdir(parent):
                # A single file sent as the whole source: its directory is made here.
                os.makedirs(parent)
            f = open(tmp, "wb")
        except EnvironmentError:
            self.fail(relpath, "cannot create", sys.exc_info()[1])
        self.current = [info, tmp, f, 0]

    def write(self, data, last):
        cur = self.current
        if cur is None:
            raise ValueError("file content with no file begun")
        if cur[2] is not None:
            try:
                cur[2].write(data)
                cur[3] += len(data)
            except EnvironmentError:
                self.fail(cur[0][0], "cannot write", sys.exc_info()[1])
                self.drop()
                self.current = [cur[0], cur[1], None, 0]
        self.account(len(data) + OVERHEAD)
        if last:
            self.complete()

    def drop(self):
        cur = self.current
        self.current = None
        if cur is None or cur[2] is None:
            return
        try:
            cur[2].close()
        except EnvironmentError:
            pass
        try:
            os.unlink(cur[1])
        except EnvironmentError:
            pass

    def complete(self):
        (relpath, path, mode, mtime_ns), tmp, f, written = self.current
        if f is None:
            self.current = None
            return
        try:
            f.close()
            os.chmod(tmp, mode)
            set_mtime(tmp, mtime_ns)
            os.rename(tmp, path)
        except EnvironmentError:
            self.fail(relpath, "cannot write", sys.exc_info()[1])
            self.drop()
            return
        self.current = None
        self.counts["sent"] += 1
        self.counts["bytes"] += written

    def touch(self, index):
        info = self.wanted.pop(index, None)
        if info is None:
            raise ValueError("a mode and mtime for file %r, which this side did not ask for" % (index,))
        relpath, path, mode, mtime_ns = info
        try:
            if stat.S_IMODE(os.lstat(path).st_mode) != mode:
                os.chmod(path, mode)
            set_mtime(path, mtime_ns)
            self.counts["touched"] += 1
        except EnvironmentError:
            self.fail(relpath, "cannot set mode and mtime", sys.exc_info()[1])

    def finish(self):
        # Directories that are not writable for their owner get their mode last, deepest
        # first, once nothing more goes into them.
        for relpath, path, mode in reversed(self.late_modes):
            try:
                os.chmod(path, mode)
            except EnvironmentError:
                self.fail(relpath, "cannot set mode", sys.exc_info()[1])

    # -- the conversation --------------------------------------------------------------

    def run(self):
        receive = self.channel.receive
        while 1:
            msg = receive()
            tag = msg[0]
            if tag == "s":
                for e in msg[2]:
                    self.entry(e)
                self.flush_needs()
                self.account(msg[1])
            elif tag == "p":
                break
            else:
                raise ValueError("unexpected message %r while reading the tree" % (tag,))
        self.channel.send(("l", self.counted()))
        while 1:
            msg = receive()
            tag = msg[0]
            if tag == "w":
                self.begin(msg[1])
                self.write(msg[2], msg[3])
            elif tag == "c":
                self.write(msg[1], msg[2])
            elif tag == "x":
                self.drop()
            elif tag == "u":
                self.touch(msg[1])
                self.account(OVERHEAD)
            elif tag == "z":
                break
            else:
                raise ValueError("unexpected message %r while receiving files" % (tag,))
        self.drop()
        self.finish()
        self.channel.send(("d", self.counted()))


def serve(channel):
    dest, options = channel.receive()
    Sync(channel, dest, options).run()


if __name__ == "__channelexec__":
    serve(channel)  # noqa: F821 (bound by remote_exec)
