// The sandbox child: everything between clone3 and execve.
//
// Rules (signal-safety(7)): the parent is a multithreaded Swift process, so this code never allocates, never
// uses stdio, and calls the raw set*id syscalls (glibc's wrappers signal threads that do not exist here).
// On failure it writes {stage, errno} to the report pipe and exits 127.
#define _GNU_SOURCE
#include "exec_child.h"
#include "exec_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof(struct execd_report) == 16, "execd_report is mirrored in Swift");
_Static_assert(sizeof(struct execd_mount) == 24, "execd_mount is mirrored in Swift");
_Static_assert(sizeof(struct execd_file) == 32, "execd_file is mirrored in Swift");
_Static_assert(sizeof(struct sock_filter) == 8, "seccomp filter instructions are 8 bytes");

// Kernel ABI structs, declared here because the uapi headers clash with glibc's.
struct execd_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
        cgroup;
};
struct execd_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define EXECD_CLONE_INTO_CGROUP 0x200000000ULL
#define EXECD_MOUNT_ATTR_RDONLY 0x1
#define EXECD_MOUNT_ATTR_NOSUID 0x2
#define EXECD_MOUNT_ATTR_NODEV 0x4
#define EXECD_MOUNT_ATTR_NOEXEC 0x8
#define EXECD_AT_RECURSIVE 0x8000
#define EXECD_CLOSE_RANGE_CLOEXEC (1U << 2)
#define EXECD_HIGH_FD 64

static void report(int fd, int32_t kind, int32_t stage, int32_t error, int32_t wait_status) {
    struct execd_report record = {kind, stage, error, wait_status};
    ssize_t ignored = write(fd, &record, sizeof record);
    (void)ignored;
}

__attribute__((noreturn)) static void fail(const struct execd_child_config *c, int32_t stage) {
    report(c->report_fd, EXECD_REPORT_SETUP_FAILED, stage, errno, 0);
    _exit(127);
}

static int set_mount_attr(const char *path, uint64_t attrs, unsigned int flags) {
    struct execd_mount_attr attr = {.attr_set = attrs};
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr);
}

// Binds source at path; a directory source gets a directory mount point, anything else a file.
static int bind_at(const char *source, const char *path, uint64_t attrs) {
    struct stat st;
    if (stat(source, &st) != 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return -1;
        close(fd);
    }
    if (mount(source, path, NULL, MS_BIND | MS_REC, NULL) != 0) return -1;
    return set_mount_attr(path, attrs, EXECD_AT_RECURSIVE);
}

static int apply_mount(const struct execd_mount *m) {
    const char *path = m->target;
    switch (m->kind) {
    case EXECD_MOUNT_BIND_RO:
        return bind_at(m->source, path,
                       EXECD_MOUNT_ATTR_RDONLY | EXECD_MOUNT_ATTR_NOSUID | EXECD_MOUNT_ATTR_NODEV);
    case EXECD_MOUNT_DEVICE:
        return bind_at(m->source, path, EXECD_MOUNT_ATTR_NOSUID | EXECD_MOUNT_ATTR_NOEXEC);
    case EXECD_MOUNT_SYMLINK:
        return symlink(m->source, path);
    case EXECD_MOUNT_DIR:
        return (mkdir(path, 0755) == 0 || errno == EEXIST) ? 0 : -1;
    default:
        errno = EINVAL;
        return -1;
    }
}

// Builds the private root: tmpfs, read-only binds, /dev, a fresh /proc, /tmp with the run's files.
static void build_root(const struct execd_child_config *c) {
    // No mount event of ours may propagate back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(c, EXECD_STAGE_MOUNT_PRIVATE);
    if (mount("tmpfs", c->root_dir, "tmpfs", MS_NOSUID | MS_NODEV, c->root_tmpfs_data) != 0)
        fail(c, EXECD_STAGE_MOUNT_ROOT);
    for (int i = 0; i < c->mount_count; i++)
        if (apply_mount(&c->mounts[i]) != 0) fail(c, EXECD_STAGE_MOUNT_PLAN);
    // proc must be mounted while the host's /proc is still visible (the kernel checks it is not "too revealing").
    if ((mkdir(c->proc_dir, 0555) != 0 && errno != EEXIST) ||
        mount("proc", c->proc_dir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        fail(c, EXECD_STAGE_MOUNT_PROC);
    if ((mkdir(c->tmp_dir, 01777) != 0 && errno != EEXIST) ||
        mount("tmpfs", c->tmp_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, c->tmp_tmpfs_data) != 0)
        fail(c, EXECD_STAGE_MOUNT_TMP);
    for (int i = 0; i < c->file_count; i++)
        if (execd_write_file(c->files[i].path, c->files[i].mode, c->files[i].data, c->files[i].length) != 0)
            fail(c, EXECD_STAGE_WRITE_FILES);
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves no host path reachable.
    if (chdir(c->root_dir) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 ||
        chdir("/") != 0)
        fail(c, EXECD_STAGE_PIVOT_ROOT);
    // The root tmpfs itself becomes read-only; /tmp is a separate mount and stays writable.
    if (set_mount_attr("/", EXECD_MOUNT_ATTR_RDONLY | EXECD_MOUNT_ATTR_NOSUID | EXECD_MOUNT_ATTR_NODEV, 0) != 0)
        fail(c, EXECD_STAGE_ROOT_READ_ONLY);
}

// A zygote keeps only the capabilities in its mask (bounding set) and runs as root of its namespace.
static void limit_zygote_capabilities(const struct execd_child_config *c) {
    for (int cap = 0; cap <= c->last_cap; cap++)
        if (!(c->zygote_keep_caps & (1ULL << cap)) && cap_drop_bound((cap_value_t)cap) != 0)
            fail(c, EXECD_STAGE_CAPABILITIES);
    if (cap_reset_ambient() != 0) fail(c, EXECD_STAGE_CAPABILITIES);
}

// Drops every capability for good: securebits locked, bounding and ambient sets emptied, then the rest.
static void drop_capabilities(const struct execd_child_config *c) {
    const unsigned bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                          SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                          SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (cap_set_secbits(bits) != 0) fail(c, EXECD_STAGE_CAPABILITIES);
    for (int cap = 0; cap <= c->last_cap; cap++)
        if (cap_drop_bound((cap_value_t)cap) != 0) fail(c, EXECD_STAGE_CAPABILITIES);
    if (cap_reset_ambient() != 0) fail(c, EXECD_STAGE_CAPABILITIES);
    if (cap_set_proc((cap_t)c->empty_caps) != 0) fail(c, EXECD_STAGE_CAPABILITIES);
}

// pid 2: wire stdio, close everything else on exec, run the program.
__attribute__((noreturn)) static void exec_program(const struct execd_child_config *c, int in, int out, int err,
                                                   int side, int extra) {
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || (side >= 0 && dup2(side, 3) < 0) ||
        (extra >= 0 && dup2(extra, 4) < 0))
        fail(c, EXECD_STAGE_FDS);
    int first_closed = extra >= 0 ? 5 : side >= 0 ? 4 : 3;
    if (syscall(SYS_close_range, first_closed, ~0U, EXECD_CLOSE_RANGE_CLOEXEC) != 0) fail(c, EXECD_STAGE_FDS);
    if (chdir(c->cwd) != 0) fail(c, EXECD_STAGE_CHDIR);
    execve(c->exec_path, c->argv, c->envp);
    fail(c, EXECD_STAGE_EXEC);
}

// pid 1: reap everything; when the program ends, report its status and exit, which kills the namespace.
__attribute__((noreturn)) static void reap(int report_fd, pid_t program) {
    for (;;) {
        int status = 0;
        pid_t pid = wait4(-1, &status, __WALL, NULL);
        if (pid == program) {
            report(report_fd, EXECD_REPORT_EXITED, 0, 0, status);
            _exit(0);
        }
        if (pid < 0 && errno != EINTR) _exit(1);
    }
}

// Lifts the fds the child needs above 0-3 (close-on-exec) and closes every other fd inherited from the daemon,
// including other sandboxes' pipes that a concurrent spawn left open in this address space.
static void keep_only_own_fds(struct execd_child_config *c) {
    int32_t *fds[] = {&c->stdin_fd, &c->stdout_fd, &c->stderr_fd, &c->side_fd, &c->extra_fd, &c->sync_fd, &c->report_fd};
    int keep[7], count = 0;
    for (int i = 0; i < 7; i++) {
        if (*fds[i] < 0) continue;
        int lifted = fcntl(*fds[i], F_DUPFD_CLOEXEC, EXECD_HIGH_FD);
        if (lifted < 0) fail(c, EXECD_STAGE_FDS);
        *fds[i] = lifted;
        int j = count++;
        for (; j > 0 && keep[j - 1] > lifted; j--) keep[j] = keep[j - 1];
        keep[j] = lifted;
    }
    int next = 0;
    for (int i = 0; i < count; i++) {
        if (keep[i] > next) syscall(SYS_close_range, next, keep[i] - 1, 0);
        next = keep[i] + 1;
    }
    syscall(SYS_close_range, next, ~0U, 0);
}

// The reaper is a fork of the daemon and never execs: zero the inherited argument area (its bounds come from the
// parent) and name the thread.
static void hide_daemon_identity(const struct execd_child_config *c) {
    prctl(PR_SET_NAME, "execd-init", 0, 0, 0);
    if (c->arg_start && c->arg_end > c->arg_start && c->arg_end - c->arg_start < (1 << 20))
        memset((void *)(uintptr_t)c->arg_start, 0, c->arg_end - c->arg_start);
}

__attribute__((noreturn)) static void child_main(const struct execd_child_config *config) {
    struct execd_child_config c = *config;
    // Handlers are the parent's; reset all to default, then unblock (the parent blocked every signal).
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) fail(&c, EXECD_STAGE_SIGNALS);
    // Dies with the spawning thread until the ids are set (set*id clears this; it is set again below).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(&c, EXECD_STAGE_DEATH_SIGNAL);
    keep_only_own_fds(&c);
    hide_daemon_identity(&c);

    // Wait until the parent has written our id maps (and, on cgroup v1, placed us in the run's cgroups).
    char go = 0;
    ssize_t n;
    do n = read(c.sync_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) _exit(127);  // the parent gave up on us; nothing to report to
    close(c.sync_fd);

    // Become root of the new user namespace (mapped to an unprivileged host uid) with no supplementary groups.
    if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setgroups, 0, NULL) != 0 ||
        syscall(SYS_setresuid, 0, 0, 0) != 0)
        fail(&c, EXECD_STAGE_SET_IDS);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(&c, EXECD_STAGE_DEATH_SIGNAL);

    build_root(&c);
    if (sethostname(c.hostname, strlen(c.hostname)) != 0) fail(&c, EXECD_STAGE_HOSTNAME);
    for (int i = 0; i < c.rlimit_count; i++) {
        struct rlimit rl = {c.rlimits[i].soft, c.rlimits[i].hard};
        if (setrlimit(c.rlimits[i].resource, &rl) != 0) fail(&c, EXECD_STAGE_RLIMITS);
    }
    struct sock_fprog prog = {.len = c.seccomp_filter_length, .filter = (struct sock_filter *)c.seccomp_filter};
    if (c.zygote_keep_caps) {
        limit_zygote_capabilities(&c);
        // The zygote's own filter (without the rules it needs to set up its children; each child adds them back):
        // allowed without no_new_privs because the zygote still holds CAP_SYS_ADMIN.
        if (c.seccomp_filter_length > 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            fail(&c, EXECD_STAGE_SECCOMP);
    } else {
        drop_capabilities(&c);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(&c, EXECD_STAGE_NO_NEW_PRIVS);
        // Seccomp last: everything above needed syscalls the filter denies.
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) fail(&c, EXECD_STAGE_SECCOMP);
    }

    pid_t program = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (program < 0) fail(&c, EXECD_STAGE_FORK);
    if (program == 0) exec_program(&c, c.stdin_fd, c.stdout_fd, c.stderr_fd, c.side_fd, c.extra_fd);
    // The reaper keeps only the report pipe, so the program's pipes see EOF as soon as it and its children end.
    close(c.stdin_fd);
    close(c.stdout_fd);
    close(c.stderr_fd);
    if (c.side_fd >= 0) close(c.side_fd);
    if (c.extra_fd >= 0) close(c.extra_fd);
    reap(c.report_fd, program);
}

pid_t execd_spawn(const struct execd_child_config *config, int *pidfd_out) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    struct execd_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                 CLONE_NEWCGROUP | CLONE_PIDFD;
    if (config->cgroup_fd >= 0) {
        args.flags |= EXECD_CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)config->cgroup_fd;
    }
    args.pidfd = (uint64_t)(uintptr_t)pidfd_out;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) child_main(config);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return (pid_t)pid;
}
