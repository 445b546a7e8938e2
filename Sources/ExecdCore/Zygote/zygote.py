# execd's Python zygote: a warm interpreter inside a slot sandbox that forks one child per run.
#
# Trust: this file is ours; it runs as root of the slot's user namespace with CAP_SYS_ADMIN, CAP_SETUID,
# CAP_SETGID and CAP_SETPCAP (nothing else), no seccomp, in the slot's namespaces. User code only ever runs in a
# forked child, and only after that child has: waited until execd placed it in the run's own cgroup, made a
# private mount namespace with a fresh /tmp, set the run's rlimits, dropped to another uid (so it cannot signal,
# trace or write the zygote), emptied every capability set, locked the securebits, set no_new_privs and installed
# execd's seccomp filter, and closed every fd but its stdio (and the judge's side channel, fd 3).
#
# Control protocol on fd 3 (SOCK_SEQPACKET, one message each):
#   zygote -> execd  b"READY"                      once, when warm
#   execd -> zygote  b"RUN" + fds [payload memfd, stdin, stdout, stderr, go, (side)]
#                    (the zygote hands them to its *warm child*: forked ahead of the run, already in a private
#                    mount namespace with a fresh /tmp, waiting on a socket of its own)
#   zygote -> execd  b"PID" + fds [pidfd of the run child]
#   child  -> execd  b"ERR <stage> <errno>"        setup failed (before any user code)
#   zygote -> execd  b"EXIT <wait status>"         the run child ended
import os
import sys
import socket
import json
import ctypes
import resource
import random
import io
import atexit
import threading
import types
import builtins
import gc

# Preloaded for the runs (shared, read-only after fork): what students import most.
import collections, itertools, functools, heapq, bisect, math, re, string, typing, dataclasses  # noqa: E401,F401
import traceback, copy, decimal, fractions, operator, statistics, time, datetime, enum  # noqa: E401,F401

CONTROL = socket.socket(fileno=3)
LIBC = ctypes.CDLL(None, use_errno=True)
LAST_CAP = int(open("/proc/sys/kernel/cap_last_cap").read())
SECCOMP = open("/tmp/seccomp.bpf", "rb").read()
RUN_ID = 1000  # the uid and gid run children become (mapped to the slot's second host uid)

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 22, 24, 28
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECCOMP_MODE_FILTER = 2
# NOROOT, NOROOT_LOCKED, NO_SETUID_FIXUP_LOCKED (fixup stays on: the uid change clears caps),
# KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, NO_CAP_AMBIENT_RAISE_LOCKED
SECUREBITS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7)


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


def prctl(*args):
    return LIBC.prctl(*[ctypes.c_ulong(a) for a in args])


def read_payload(fd):
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    header, _, blob = data.partition(b"\n")
    return json.loads(header), blob


TMPFS_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC
MS_REMOUNT = 32
DEFAULT_TMPFS = sys.argv[1] if len(sys.argv) > 1 else "size=64m,nr_inodes=4096,mode=1777"


def private_tmp():
    """Done ahead of the run, in the warm child: a mount namespace of its own with a fresh /tmp, and an IPC
    namespace of its own (System V shared memory and semaphores outlive processes: they must not outlive the run)."""
    check("mount and IPC namespaces", LIBC.unshare(CLONE_NEWNS | CLONE_NEWIPC))
    check("unmount the zygote's /tmp", LIBC.umount2(b"/tmp", MNT_DETACH))  # zygote.py, the filter: not the run's
    check("mount /tmp", LIBC.mount(b"tmpfs", b"/tmp", b"tmpfs", TMPFS_FLAGS, DEFAULT_TMPFS.encode()))


def prepare(header, blob):
    """Everything between the go signal and user code: /tmp resized if the run asks for another size (still root
    of the slot namespace), the rest as the run's uid (so the program owns its files, as in a one-shot sandbox)."""
    if header["tmpfs"] != DEFAULT_TMPFS:
        check("resize /tmp", LIBC.mount(b"tmpfs", b"/tmp", b"tmpfs", TMPFS_FLAGS | MS_REMOUNT, header["tmpfs"].encode()))
    check("securebits", prctl(PR_SET_SECUREBITS, SECUREBITS))
    for cap in range(LAST_CAP + 1):
        check("bounding set", prctl(PR_CAPBSET_DROP, cap))
    check("ambient set", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
    os.setgroups([])
    os.setresgid(RUN_ID, RUN_ID, RUN_ID)
    os.setresuid(RUN_ID, RUN_ID, RUN_ID)  # all uids non-zero: permitted and effective sets are cleared
    offset = 0
    for f in header["files"]:
        data = blob[offset:offset + f["len"]]
        offset += f["len"]
        path = f["path"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, f["mode"])
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    for res, soft, hard in header["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    check("death signal", prctl(PR_SET_PDEATHSIG, 9))
    check("no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    check("seccomp", LIBC.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                                ctypes.byref(PROG)))


def run_user_code(header):
    """Runs /tmp/main.py as `python3 -I -B /tmp/main.py` would, then exits the process."""
    main = types.ModuleType("__main__")
    main.__file__ = "/tmp/main.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = ["/tmp/main.py"] + header["args"]
    random.seed()  # never share a random sequence with the zygote's other children
    code = 0
    try:
        with open("/tmp/main.py", "rb") as f:
            source = f.read()
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


def child(fds):
    payload, stdin, stdout, stderr, go = fds[:5]
    side = fds[5] if len(fds) > 5 else -1
    try:
        header, blob = read_payload(payload)
        # execd writes "g" once this process is in the run's cgroup; EOF means the run was abandoned.
        if os.read(go, 1) != b"g":
            os._exit(127)
        prepare(header, blob)
    except SetupError as e:
        CONTROL.send(b"ERR %s %d" % (e.stage.encode(), e.err))
        os._exit(127)
    except BaseException as e:
        CONTROL.send(b"ERR %s %d" % (type(e).__name__.encode(), getattr(e, "errno", 0) or 0))
        os._exit(127)
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    if side >= 0:
        os.dup2(side, 3)  # replaces the control socket's fd 3
    os.closerange(4 if side >= 0 else 3, 1 << 20)
    os.chdir("/tmp")
    run_user_code(header)


def warm_child(link):
    """The next run's process, forked while the slot is idle: everything that does not depend on the request is
    done before the request arrives."""
    failure = None
    try:
        check("death signal", prctl(PR_SET_PDEATHSIG, 9))  # dies with the zygote
        private_tmp()
    except SetupError as e:
        failure = e
    msg, fds, _, _ = socket.recv_fds(link, 4096, 8)
    if msg != b"RUN" or len(fds) < 5:
        os._exit(0)  # the slot is being retired
    if failure is not None:
        CONTROL.send(b"ERR %s %d" % (failure.stage.encode(), failure.err))
        os._exit(127)
    child(fds)


def fork_warm_child():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            warm_child(theirs)
        finally:
            os._exit(127)
    theirs.close()
    return pid, ours


def serve():
    # Everything the zygote allocated is now permanent for the collector: a child's collections never walk
    # (and so never copy-on-write) the zygote's objects.
    gc.collect()
    gc.freeze()
    warm = fork_warm_child()
    CONTROL.send(b"READY")
    while True:
        msg, fds, _, _ = socket.recv_fds(CONTROL, 4096, 8)
        if not msg:
            os._exit(0)  # execd is gone (the warm child follows: its death signal)
        if msg != b"RUN" or len(fds) < 5:
            for fd in fds:
                os.close(fd)
            continue
        pid, link = warm
        try:
            socket.send_fds(link, [b"RUN"], fds)
        except OSError:  # the warm child died while waiting: fork another one for this run
            os.waitpid(pid, 0)
            pid, link = fork_warm_child()
            socket.send_fds(link, [b"RUN"], fds)
        link.close()
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        socket.send_fds(CONTROL, [b"PID"], [pidfd])
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        CONTROL.send(b"EXIT %d" % status)
        warm = fork_warm_child()  # the next run's child, while the slot is idle


serve()
