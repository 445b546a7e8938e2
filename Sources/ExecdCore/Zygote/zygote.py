# execd's Python zygote: a warm interpreter inside a slot sandbox that forks one child per run.
#
# Trust: this file is ours; it runs as root of the slot's user namespace with CAP_SYS_ADMIN, CAP_SETUID,
# CAP_SETGID and CAP_SETPCAP (nothing else), in the slot's namespaces, under execd's seccomp policy minus the rules
# for what the zygote needs (mount, umount2 between runs; io_uring_setup, io_uring_register once, see copy_at_fork;
# /tmp/seccomp.bpf denies them again in each child). User code only ever runs in a forked child, and only after that
# child has: been placed by execd in the run's own cgroup, found a /tmp the zygote mounted fresh for it and no System
# V IPC object of an earlier run, set the run's rlimits, dropped to another uid (so it cannot signal, trace or write
# the zygote), emptied every capability set, locked the securebits, set no_new_privs and added the rest of execd's
# seccomp policy, and closed every fd but its stdio (and the judge's side channel, fd 3).
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
#   zygote -> execd  b"COPY <pages>"                       once, first: the pages each child gets copied at fork
#                                                           (see copy_at_fork; 0: none)
#                    b"WARM" + fds [pidfd of the warm child, execd's end of its link]   a warm child exists (sent by it)
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
import resource
import signal


def precompiled_programs():
    """Programs compiled here, once, rather than in every run: /tmp/harness.py, the judge's runner, which execd
    passes byte for byte as the program of every judged Python run (compiling it costs a fresh fork ≈ 6–9 ms). A run
    whose program is exactly one of these gets its code object, its own copy like all else after the fork. Before
    the preloads: the memory the compiler's parse trees took, freed, then serves them."""
    programs = {}
    try:
        with open("/tmp/harness.py", "rb") as f:
            source = f.read()
        programs[source] = compile(source, "/tmp/main.py", "exec")
    except (OSError, SyntaxError, ValueError):
        pass
    return programs


PRECOMPILED = precompiled_programs()

# Preloaded for the runs (shared, read-only after fork): what students import most. Nothing that starts threads.
import collections, itertools, functools, heapq, bisect, math, re, string, typing, dataclasses  # noqa: E401,F401
import traceback, copy, decimal, fractions, operator, statistics, time, datetime, enum  # noqa: E401,F401
import threading, atexit  # noqa: E401
# What the judge's harness imports besides (Harness/Runners/harness.py): ≈ 7 ms of every judged run otherwise.
import base64, errno, fcntl, json, difflib  # noqa: E401,F401


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


def run_request(main, end=os._exit):
    """The run that REQUEST describes (execd_zygote_receive has set it up)."""
    lengths = REQUEST.arg_lengths[:REQUEST.arg_count]
    args = arguments(ctypes.string_at(REQUEST.args, sum(lengths)), lengths)
    run_user_code(main, args, ctypes.string_at(REQUEST.program, REQUEST.program_length), REQUEST.done_fd,
                  REQUEST.done_inode, end)


def run_user_code(main, args, source, done_fd, done_inode, end):
    """Runs /tmp/main.py (whose bytes are `source`) as `python3 -I -B /tmp/main.py` would, then ends the process
    (`end`). Before that, it closes every fd but the link and says `DONE <wait status>` there: execd then has the
    whole output and the status, and answers while the kernel is still tearing this process down (≈ 0.4 ms)."""
    sys.argv = ["/tmp/main.py"] + args
    code = 0
    try:
        compiled = PRECOMPILED.get(source)
        exec(compiled if compiled is not None else compile(source, "/tmp/main.py", "exec"), main.__dict__)
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
    end(code)


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


# Copy at fork. A fork shares the zygote's pages copy-on-write, and every run's child writes to about 300 of them
# whatever its program: CPython 3.11 writes a reference count on every object it touches (the interpreter's own,
# compile's, print's), and each first write to a shared page is a page fault that copies it (≈ 2.2 µs here). The
# kernel copies a page at fork instead, without a fault, when the page is pinned in the parent (the rule that keeps
# a DMA buffer the parent's own, mm/memory.c's copy_present_page). So before it serves, the zygote sends a few
# trusted *training* children down a run's whole path, reads which of its pages each of them wrote (in
# /proc/<pid>/pagemap a page the child has copied is mapped there alone), and pins the pages all of them wrote by
# registering them as io_uring buffers. The ring never does any I/O: io_uring_enter stays denied to the zygote,
# its children's filter denies io_uring altogether, and its fd is closed with every other before user code runs.
# The copies are made in the zygote's cgroup (the slot's), each child's own until it exits, and a run's own writes
# are private as before. A bare fork loop of this interpreter (print(1), docs/pool.md): 306 -> 81 page faults per
# child, 1.25 -> 0.87 ms of CPU per run. Without io_uring (kernel.io_uring_disabled) the zygote serves uncopied.
TRAINING_PROGRAMS = (
    b"print(1)\n",
    b"import sys\ndef twice(x):\n    return 2 * x\nprint(twice(len(sys.argv)), sys.stdin.read() == '')\n",
    b"values = [i * i for i in range(50)]\nprint(f'{sum(values)} {max(values)}')\n",
)
RING = -1  # the io_uring whose buffers are the pinned pages (kept open for the zygote's life)
LIBC = ctypes.CDLL(None, use_errno=True)
PAGE = os.sysconf("SC_PAGE_SIZE")
PRESENT, EXCLUSIVE = 1 << 63, 1 << 56  # pagemap: page present; mapped by this process alone


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def writable_ranges():
    """The zygote's private writable mappings (anonymous memory, heap, stack, libraries' data), where a child's
    writes are copies of the zygote's pages."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1][1] == "w" and fields[1][3] == "p":
                start, end = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def pages_with(pid, ranges, flags):
    """The pages of `ranges` whose pagemap entries in process `pid` have all of `flags`."""
    pages = set()
    fd = os.open("/proc/%s/pagemap" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in ranges:
            entries = memoryview(os.pread(fd, (end - start) // PAGE * 8, start // PAGE * 8)).cast("Q")
            pages.update(start + i * PAGE for i, entry in enumerate(entries) if entry & flags == flags)
    finally:
        os.close(fd)
    return pages


def training_run(program, ranges):
    """Forks a child the way the zygote's loop does (no Python fork handlers), runs `program` in it the way a run
    goes (prepare, the request, the program, the exit path, DONE), and returns the pages that child wrote, read
    while it is stopped where it would exit. None if it did not get there."""
    done_read, done_write = os.pipe()
    source = ctypes.create_string_buffer(program, len(program))
    no_arguments = (ctypes.c_uint64 * 1)()
    pid = LIBC.fork()
    if pid == 0:
        try:
            main = prepare()
            REQUEST.done_fd, REQUEST.done_inode = done_write, os.fstat(done_write).st_ino
            REQUEST.side_channel, REQUEST.arg_count = 0, 0
            REQUEST.arg_lengths = no_arguments
            REQUEST.args = REQUEST.program = ctypes.addressof(source)
            REQUEST.program_length = len(program)
            run_request(main, end=lambda code: os.kill(os.getpid(), signal.SIGSTOP))
        finally:
            os._exit(127)
    os.close(done_write)
    try:
        if pid < 0:
            return None
        _, status = os.waitpid(pid, os.WUNTRACED)
        os.set_blocking(done_read, False)  # stopped without DONE: nothing to wait for
        if not os.WIFSTOPPED(status) or os.read(done_read, 64) != b"DONE 0":
            return None
        return pages_with(pid, ranges, PRESENT | EXCLUSIVE) & pages_with("self", ranges, PRESENT)
    finally:
        os.close(done_read)
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def pin(pages):
    """Registers `pages` (contiguous ones as one buffer) with a new io_uring, which pins them. The number pinned: all
    or none, none if they need more than the zygote's RLIMIT_MEMLOCK hard limit (which execd sets for this,
    ZygoteSlot.slotRlimits)."""
    global RING
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if not pages or (hard != resource.RLIM_INFINITY and len(pages) * PAGE > hard):
        return 0
    buffers = []
    for page in sorted(pages):
        if buffers and buffers[-1][0] + buffers[-1][1] == page:
            buffers[-1][1] += PAGE
        else:
            buffers.append([page, PAGE])
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))  # pinned pages count against it
        ring = LIBC.syscall(425, 1, (ctypes.c_uint8 * 120)())  # io_uring_setup(1, &params)
        if ring < 0:
            return 0
        iovecs = (IOVec * len(buffers))(*(IOVec(base, length) for base, length in buffers))
        if LIBC.syscall(427, ring, 0, iovecs, len(buffers)) != 0:  # io_uring_register(REGISTER_BUFFERS)
            os.close(ring)
            return 0
        RING = ring
        return len(pages)
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, soft))  # the children's, as before


def copy_at_fork():
    """Pins the pages every training run wrote (see above) and tells execd how many (`COPY <pages>`)."""
    pinned = 0
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        ranges = writable_ranges()
        written = [training_run(program, ranges) for program in TRAINING_PROGRAMS]
        if all(pages is not None for pages in written):
            pinned = pin(set.intersection(*written))
    except (OSError, ValueError):
        pass
    finally:
        for fd, saved_fd in enumerate(saved):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
    os.write(CONFIG.control_fd, b"COPY %d" % pinned)


def serve():
    # compile() sets up CPython's AST types on first use (≈ 1 ms): here, once, not in every child.
    compile("", "/tmp/main.py", "exec")
    # Everything the zygote allocated is now permanent for the collector: a child's collections never walk
    # (and so never copy-on-write) the zygote's objects.
    gc.collect()
    gc.freeze()
    copy_at_fork()
    # Returns only in each warm child (0: set up; -1: a step failed, reported when the request arrives).
    NATIVE.execd_zygote_serve(ctypes.byref(CONFIG))
    main = prepare()
    NATIVE.execd_zygote_receive(ctypes.byref(REQUEST))  # returns once the run is set up
    try:
        run_request(main)
    finally:
        os._exit(127)


serve()
