
# The worker loop of execnet for Rust's Distributor (std-gateway/src/distribute.rs),
# appended to the user's source and run with `channel` bound. ASCII, standard library
# only, valid on CPython 2.7 to 3.13, PyPy3 and Jython 2.7.
#
# The master sends the name of the task function, then (task_id, argument) pairs; for
# each, the worker answers (task_id, True, result) or (task_id, False, traceback).


def _execnet_distribute(channel, namespace):
    import traceback

    name = channel.receive()
    func = namespace.get(name)
    if not callable(func):
        raise NameError("no function %r in the worker's source" % (name,))
    channel.send(("ready", name))
    for item in channel:
        task_id, arg = item
        try:
            result = func(arg)
            ok = True
        except BaseException:
            # Whatever the task raises is its own failure, SystemExit included: the
            # worker goes on with the next task.
            result = traceback.format_exc()
            ok = False
        try:
            channel.send((task_id, ok, result))
        except Exception:
            channel.send((task_id, False, "the result cannot be sent: " + traceback.format_exc()))


if __name__ == "__channelexec__":
    _execnet_distribute(channel, globals())  # noqa: F821 (bound by remote_exec)
