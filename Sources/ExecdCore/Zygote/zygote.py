# execd's Python zygote: a warm interpreter inside a slot sandbox that forks one child per run.
#
# Trust: this file is ours; it runs as root of the slot's user namespace with CAP_SYS_ADMIN, CAP_SETUID,
# CAP_SETGID and CAP_SETPCAP (nothing else), in the slot's namespaces, under execd's seccomp policy minus the rules
# for what a child needs to set itself up (unshare, mount, umount2; /tmp/seccomp.bpf holds those). User code only
# ever runs in a forked child, and only after that child has: been placed by execd in the run's own cgroup, made a
# private mount and IPC namespace with a fresh /tmp, set the run's rlimits, dropped to another uid (so it cannot
# signal, trace or write the zygote), emptied every capability set, locked the securebits, set no_new_privs and
# added the rest of execd's seccomp policy, and closed every fd but its stdio (and the judge's side channel, fd 3).
#
# The zygote forks the next run's child (the *warm child*) as soon as the previous one is gone, and everything that
# does not depend on the request happens in the warm child before the request exists: execd is then only one
# message away from user code.
#
# Control socket, fd 3 (SOCK_SEQPACKET), zygote -> execd only:
#   b"WARM" + fds [pidfd of the warm child, execd's end of the child's link]   a warm child exists (sent by it)
#   b"EXIT <wait status>"                                                       that child ended (sent by the zygote)
# Link (SOCK_SEQPACKET, one per warm child), execd <-> that child:
#   execd -> child  b"I" + payload, or b"M" and the payload in a memfd (the last fd);
#                   fds [stdin, stdout, stderr, (side channel), (memfd)]
#                   payload: see `parse`
#   child -> execd  b"ERR <stage> <errno>"   setup failed before any user code ran (the child then exits 127)
import os
import sys
import socket
import ctypes
import resource
import random
import types
import builtins
import gc
import array

# Preloaded for the runs (shared, read-only after fork): what students import most. Nothing that starts threads.
import collections, itertools, functools, heapq, bisect, math, re, string, typing, dataclasses  # noqa: E401,F401
import traceback, copy, decimal, fractions, operator, statistics, time, datetime, enum  # noqa: E401,F401
import threading, atexit  # noqa: E401

CONTROL = socket.socket(fileno=3)
LIBC = ctypes.CDLL(None, use_errno=True)
SECCOMP = open("/tmp/seccomp.bpf", "rb").read()
RUN_ID = 1000  # the uid and gid run children become (mapped to the slot's second host uid)
INLINE_MAX = 64 * 1024  # execd sends larger payloads in a memfd
# A run's request lands in memory the zygote allocated once: a fresh buffer per run would be fresh pages (page faults)
# in every child.
REQUEST = bytearray(INLINE_MAX + 1)
ANCILLARY = socket.CMSG_SPACE(6 * array.array("i").itemsize)

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 22, 24, 28
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECCOMP_MODE_FILTER = 2
# NOROOT, NOROOT_LOCKED, NO_SETUID_FIXUP_LOCKED (fixup stays on: the uid change clears caps),
# KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, NO_CAP_AMBIENT_RAISE_LOCKED
SECUREBITS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7)
TMPFS_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC
TMPFS = (sys.argv[1] if len(sys.argv) > 1 else "size=64m,nr_inodes=4096,mode=1777").encode()
# What is left in the zygote's bounding set (execd's sandbox setup dropped the rest).
BOUNDING = [cap for cap in range(64)
            if int(open("/proc/self/status").read().split("CapBnd:")[1].split()[0], 16) >> cap & 1]

# Bound once with their C types: a call is then a plain C call, not a round of ctypes conversions.
PRCTL = LIBC.prctl
PRCTL.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PRCTL.restype = ctypes.c_int
PRCTL_PTR = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, use_errno=True)(("prctl", LIBC))
UNSHARE = LIBC.unshare
UNSHARE.argtypes = [ctypes.c_int]
UMOUNT2 = LIBC.umount2
UMOUNT2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MOUNT = LIBC.mount
MOUNT.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


FILTER = ctypes.create_string_buffer(SECCOMP, len(SECCOMP))
PROG = SockFprog(len(SECCOMP) // 8, ctypes.cast(FILTER, ctypes.c_void_p))


class SetupError(Exception):
    def __init__(self, stage, err):
        self.stage, self.err = stage, err


def check(stage, rc):
    if rc != 0:
        raise SetupError(stage, ctypes.get_errno())


def fork():
    """fork(2) itself, not os.fork(): the zygote has one thread and holds no lock, and CPython's at-fork machinery
    (threading's and random's hooks, interpreter re-initialisation for other threads) touched enough memory to
    double the cost of a run (measured: 0.87 vs 0.44 ms for fork + exit of this zygote). What that machinery would
    do that matters here, the child does itself: random is reseeded before user code runs."""
    pid = LIBC.fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork")
    return pid


def ahead():
    """The warm child's setup, before any request: dies with the zygote; a mount namespace of its own with a fresh
    /tmp, and an IPC namespace of its own (System V objects outlive processes: they must not outlive the run); the
    securebits locked, the bounding and ambient sets emptied, no_new_privs, and the rest of execd's seccomp policy
    (stacked on the zygote's filter: together, the policy one-shot sandboxes get). What is left of the zygote's privileges, the effective set the uid change needs, goes
    with that change when the request arrives."""
    check("death signal", PRCTL(PR_SET_PDEATHSIG, 9, 0, 0, 0))
    check("mount and IPC namespaces", UNSHARE(CLONE_NEWNS | CLONE_NEWIPC))
    check("unmount the zygote's /tmp", UMOUNT2(b"/tmp", MNT_DETACH))  # zygote.py, the filter: not the run's
    check("mount /tmp", MOUNT(b"tmpfs", b"/tmp", b"tmpfs", TMPFS_FLAGS, TMPFS))
    check("securebits", PRCTL(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0))
    for cap in BOUNDING:
        check("bounding set", PRCTL(PR_CAPBSET_DROP, cap, 0, 0, 0))
    check("ambient set", PRCTL(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
    check("no_new_privs", PRCTL(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    check("seccomp", PRCTL_PTR(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(PROG)))


def parse(data):
    """A request: one line of decimal numbers, then the bytes it measures. The numbers: side channel (0/1); the
    argument count and each argument's length; the rlimit count and (resource, soft, hard) for each; the file count
    and (mode, path length, content length) for each. The bytes: the arguments, then each file's path and content.
    The program is the first file. (Numbers, not JSON: the json module's first use costs a child ~80 page faults.)"""
    line, _, blob = data.partition(b"\n")
    numbers = [int(n) for n in line.split()]
    side = numbers[0] == 1
    count, at, offset = numbers[1], 2, 0
    args = []
    for length in numbers[at:at + count]:
        args.append(blob[offset:offset + length].decode("utf-8", "surrogateescape"))
        offset += length
    at += count
    count = numbers[at]
    rlimits = [numbers[i:i + 3] for i in range(at + 1, at + 1 + 3 * count, 3)]
    at += 1 + 3 * count
    files = []
    for i in range(at + 1, at + 1 + 3 * numbers[at], 3):
        mode, path_length, length = numbers[i:i + 3]
        path = blob[offset:offset + path_length].decode("utf-8", "surrogateescape")
        offset += path_length
        files.append((path, mode, blob[offset:offset + length]))
        offset += length
    return side, args, rlimits, files


def prepare(rlimits, files):
    """Everything between the request and user code, as the run's uid (so the program owns its files, as in a
    one-shot sandbox): the uid change clears the permitted and effective sets, and with them every privilege left."""
    os.setgroups([])
    os.setresgid(RUN_ID, RUN_ID, RUN_ID)
    os.setresuid(RUN_ID, RUN_ID, RUN_ID)
    for path, mode, content in files:
        if path.count("/") > 2:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    for res, soft, hard in rlimits:
        resource.setrlimit(res, (soft, hard))
    check("death signal", PRCTL(PR_SET_PDEATHSIG, 9, 0, 0, 0))  # the uid change cleared it


def run_user_code(args, source):
    """Runs /tmp/main.py (whose bytes are `source`) as `python3 -I -B /tmp/main.py` would, then exits the process."""
    main = types.ModuleType("__main__")
    main.__file__ = "/tmp/main.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = ["/tmp/main.py"] + args
    random.seed()  # never share a random sequence with the zygote's other children
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
    os._exit(code)


def rehearse():
    """Runs the request path on a canned request (nothing the run can see: a throwaway namespace, no output, no
    files), while the child still waits: the first execution of a code path in a fresh fork touches, and so copies,
    hundreds of the zygote's pages, and this way that happens before the request rather than after it."""
    _, args, rlimits, files = parse(REHEARSAL)
    for res, soft, hard in rlimits:
        resource.setrlimit(res, resource.getrlimit(res))
    exec(compile(files[0][2], "/tmp/main.py", "exec"), {"__builtins__": builtins, "__name__": "__main__"})
    types.ModuleType("__main__")
    random.seed()
    sys.stdout.write("")
    sys.stderr.write("")
    bool(threading._shutdown_locks or threading._threading_atexits)


REHEARSAL = b"0 1 1 1 7 0 0 1 420 12 8\nx/tmp/main.pyx = (1,)\n"


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


def report(link, stage, err):
    try:
        link.send(b"ERR %s %d" % (stage.encode(), err))
    finally:
        os._exit(127)


def warm_child(link):
    """The next run's process. Set up ahead, then waits for its request on the link."""
    failure = None
    try:
        ahead()
        rehearse()
    except SetupError as e:
        failure = e
    except BaseException as e:
        failure = SetupError(type(e).__name__, 0)
    try:
        size, ancillary, flags, _ = link.recvmsg_into([REQUEST], ANCILLARY)
    except OSError:
        os._exit(0)
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    fds = list(fds)
    if size == 0:
        os._exit(0)  # the slot is being retired
    if failure is not None:  # reported only now: a failed setup must end a run, not go unnoticed
        report(link, failure.stage, failure.err)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) < 3:
        report(link, "request", 0)
    try:
        if REQUEST[0] == ord("M"):
            memfd = fds.pop()
            data = os.pread(memfd, os.fstat(memfd).st_size, 0)
            os.close(memfd)
        else:
            data = bytes(memoryview(REQUEST)[1:size])
        side, args, rlimits, files = parse(data)
        prepare(rlimits, files)
    except SetupError as e:
        report(link, e.stage, e.err)
    except BaseException as e:
        report(link, type(e).__name__, getattr(e, "errno", 0) or 0)
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 1)
    os.dup2(fds[2], 2)
    if side:
        os.dup2(fds[3], 3)
    link.detach()  # its fd goes with the others: the socket object must not close a number user code reuses
    os.closerange(4 if side else 3, 1 << 20)  # the link, the pipes' other copies
    os.chdir("/tmp")
    run_user_code(args, files[0][2])  # the program is the first file


def announce():
    """The warm child's first act: hands execd its pidfd and the execd end of its link (on the zygote's control socket,
    which it then closes), so the zygote's own loop stays as small as possible: every page the zygote writes between
    two forks is a page fault in the zygote and in each of its children."""
    ours, link = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pidfd = os.pidfd_open(os.getpid())
    socket.send_fds(CONTROL, [b"WARM"], [pidfd, ours.fileno()])
    os.close(pidfd)
    ours.close()
    CONTROL.close()
    return link


def serve():
    # Everything the zygote allocated is now permanent for the collector: a child's collections never walk
    # (and so never copy-on-write) the zygote's objects.
    gc.collect()
    gc.freeze()
    while True:
        pid = fork()
        if pid == 0:
            try:
                warm_child(announce())
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        try:
            CONTROL.send(b"EXIT %d" % status)
        except OSError:
            os._exit(0)  # execd is gone


serve()
