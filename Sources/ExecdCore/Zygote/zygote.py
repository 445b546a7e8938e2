# execd's Python zygote: a warm interpreter inside a slot sandbox that forks one child per run.
#
# Trust: this file is ours; it runs as root of the slot's user namespace with CAP_SYS_ADMIN, CAP_SETUID,
# CAP_SETGID and CAP_SETPCAP (nothing else), in the slot's namespaces, under execd's seccomp policy minus the rules
# for what the zygote needs between runs (mount, umount2; /tmp/seccomp.bpf denies them again in each child). User
# code only ever runs in a forked child, and only after that child has: been placed by execd in the run's own cgroup,
# found a /tmp the zygote mounted fresh for it and no System V IPC object of an earlier run, set the run's rlimits,
# dropped to another uid (so it cannot signal, trace or write the zygote), emptied every capability set, locked the
# securebits, set no_new_privs and added the rest of execd's seccomp policy, and closed every fd but its stdio (and
# the judge's side channel, fd 3).
#
# The zygote forks the next run's child (the *warm child*) as soon as every process of the previous run is gone (the
# zygote is their subreaper and reaps them all; execd kills them through the run's cgroup), and everything that
# does not depend on the request happens in the warm child before the request exists: execd is then only one
# message away from user code.
#
# The loop and every step of a child's setup are C (/tmp/zygote.so, execd's Native/execd_zygote.c, loaded from a
# memfd since /tmp is noexec): a fresh fork of CPython copies each page it writes, and CPython writes a reference
# count on every object it touches, so each Python-level step there cost page faults in every run. What stays in
# Python is what only Python can do: preload, prepare the run's `__main__` and random state, and run the program.
#
# Control socket, fd 3 (SOCK_SEQPACKET):
#   zygote -> execd  b"WARM" + fds [pidfd of the warm child, execd's end of its link]   a warm child exists (sent by it)
#                    b"WARM <wait status>" + the same fds   the same, and the previous child ended (nothing of its
#                                                           run is left; one message where there were two)
#                    b"EXIT <wait status>"                  that child ended while other processes of its run live
# Link (SOCK_SEQPACKET, one per warm child), execd <-> that child:
#   execd -> child  b"I" + request, or b"M" and the request in a memfd (the last fd);
#                   fds [stdin, stdout, stderr, (side channel), (memfd)]
#                   request: one line of decimal numbers, then the bytes it measures. The numbers: side channel
#                   (0/1); the argument count and each argument's length; the rlimit count and (resource, soft,
#                   hard) for each; the file count and (mode, path length, content length) for each. The bytes: the
#                   arguments, then each file's path and content. The program is the first file; directories
#                   (mode S_IFDIR) come before the files under them.
#   child -> execd  b"DONE <wait status>"   the program is done and the child has closed all else; it exits next
#                   (advisory: user code holds the link too, so execd only ends the run on it, see ZygoteRun)
# Control socket, warm child -> execd:
#   b"ERR <stage> <errno>"   setup failed before any user code ran (the child then exits 127)
import os
import sys
import ctypes
import random
import types
import builtins
import gc

# Preloaded for the runs (shared, read-only after fork): what students import most. Nothing that starts threads.
import collections, itertools, functools, heapq, bisect, math, re, string, typing, dataclasses  # noqa: E401,F401
import traceback, copy, decimal, fractions, operator, statistics, time, datetime, enum  # noqa: E401,F401
import threading, atexit  # noqa: E401


def load_native():
    """/tmp is noexec: the library goes through a memfd (mapped from there, never from a path a run can reach)."""
    fd = os.memfd_create("execd-zygote", os.MFD_CLOEXEC)
    with open("/tmp/zygote.so", "rb") as f:
        os.write(fd, f.read())
    library = ctypes.CDLL("/proc/self/fd/%d" % fd)
    os.close(fd)
    return library


class Config(ctypes.Structure):
    _fields_ = [("control_fd", ctypes.c_int32), ("run_id", ctypes.c_int32), ("tmpfs_data", ctypes.c_char_p),
                ("seccomp_filter", ctypes.c_void_p), ("seccomp_length", ctypes.c_uint32)]


class Request(ctypes.Structure):
    _fields_ = [("done_fd", ctypes.c_int32), ("done_inode", ctypes.c_uint64), ("side_channel", ctypes.c_int32),
                ("arg_count", ctypes.c_int32),
                ("arg_lengths", ctypes.POINTER(ctypes.c_uint64)), ("args", ctypes.c_void_p),
                ("program", ctypes.c_void_p), ("program_length", ctypes.c_uint64)]


NATIVE = load_native()
NATIVE.execd_zygote_serve.argtypes = [ctypes.POINTER(Config)]
NATIVE.execd_zygote_receive.argtypes = [ctypes.POINTER(Request)]
SECCOMP = open("/tmp/seccomp.bpf", "rb").read()
FILTER = ctypes.create_string_buffer(SECCOMP, len(SECCOMP))
TMPFS = (sys.argv[1] if len(sys.argv) > 1 else "size=64m,nr_inodes=4096,mode=1777").encode()
# The uid and gid run children become: 1000, mapped to the slot's second host uid.
CONFIG = Config(3, 1000, TMPFS, ctypes.cast(FILTER, ctypes.c_void_p), len(SECCOMP) // 8)
REQUEST = Request()


def prepare():
    """What the run's Python needs that does not depend on the request, done by the warm child before the request
    exists: a fresh `__main__` and a random sequence of its own (never the zygote's, never a sibling's)."""
    main = types.ModuleType("__main__")
    main.__file__ = "/tmp/main.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    random.seed()
    return main


def run_user_code(main, args, source, done_fd, done_inode):
    """Runs /tmp/main.py (whose bytes are `source`) as `python3 -I -B /tmp/main.py` would, then exits the process.
    Before it exits, it closes every fd but the link and says `DONE <wait status>` there: execd then has the whole
    output and the status, and answers while the kernel is still tearing this process down (≈ 0.4 ms)."""
    sys.argv = ["/tmp/main.py"] + args
    code = 0
    try:
        exec(compile(source, "/tmp/main.py", "exec"), main.__dict__)
    except SystemExit as e:
        code = exit_code(e)
    except BaseException as e:  # what the interpreter would print, minus this frame
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        if isinstance(e, SyntaxError):
            tb = None
        sys.excepthook(type(e), e.with_traceback(tb), tb)  # the hook prints e.__traceback__
        code = 1
    try:
        # What the interpreter does at exit: wait for non-daemon threads (if any was started: this costs a child
        # dozens of page faults otherwise), then the atexit handlers.
        if threading._shutdown_locks or threading._threading_atexits:
            threading._shutdown()
        atexit._run_exitfuncs()
    except SystemExit as e:
        code = exit_code(e)
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if done_fd >= 0:
        try:
            os.closerange(0, done_fd)
            os.closerange(done_fd + 1, 1 << 20)
            if os.fstat(done_fd).st_ino == done_inode:  # still the link (the program may have put another file there)
                os.write(done_fd, b"DONE %d" % (code << 8))
        except BaseException:
            pass
    os._exit(code)


def arguments(blob, lengths):
    args, offset = [], 0
    for length in lengths:
        args.append(blob[offset:offset + length].decode("utf-8", "surrogateescape"))
        offset += length
    return args


def exit_code(e):
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    try:
        print(e.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def serve():
    # compile() sets up CPython's AST types on first use (≈ 1 ms): here, once, not in every child.
    compile("", "/tmp/main.py", "exec")
    # Everything the zygote allocated is now permanent for the collector: a child's collections never walk
    # (and so never copy-on-write) the zygote's objects.
    gc.collect()
    gc.freeze()
    # Returns only in each warm child (0: set up; -1: a step failed, reported when the request arrives).
    NATIVE.execd_zygote_serve(ctypes.byref(CONFIG))
    main = prepare()
    NATIVE.execd_zygote_receive(ctypes.byref(REQUEST))  # returns once the run is set up
    try:
        lengths = REQUEST.arg_lengths[:REQUEST.arg_count]
        args = arguments(ctypes.string_at(REQUEST.args, sum(lengths)), lengths)
        run_user_code(main, args, ctypes.string_at(REQUEST.program, REQUEST.program_length), REQUEST.done_fd,
                      REQUEST.done_inode)
    finally:
        os._exit(127)


serve()
