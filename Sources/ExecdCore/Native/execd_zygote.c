// The native half of execd's Python zygote: see include/execd_zygote.h for what it is for and zygote.py for the
// protocol it speaks. Runs as root of a slot's user namespace; the child half ends as an unprivileged uid.
#define _GNU_SOURCE
#include "execd_zygote.h"
#include "exec_sys.h"  // CExecChild's wrappers, compiled into this library too

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>
#include <limits.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

enum {
    INLINE_MAX = 64 * 1024,  // execd sends larger requests in a memfd
    MAX_FDS = 6,             // stdin, stdout, stderr, side channel, memfd, and one too many to notice
    MAX_RLIMITS = 64,
    MAX_PATH = 4096,
};

// NOROOT, NOROOT_LOCKED, NO_SETUID_FIXUP_LOCKED (fixup stays on: the uid change clears the capabilities),
// KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, NO_CAP_AMBIENT_RAISE_LOCKED
#define SECUREBITS ((1 << 0) | (1 << 1) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7))

static const struct execd_zygote_config *config;
static int link_fd = -1;             // the warm child's end of its link to execd
static int control_fd = -1;          // the warm child's copy of the zygote's control socket (moved off fd 3)
static const char *failed_stage;     // a warm-up step that failed, reported with the request
static int failed_errno;
static uint64_t bounding_set;        // the zygote's bounding set (bit n: capability n), read before the first fork
static int previous_status = -1;     // the wait status of the previous run's child, when not reported yet (-1: none)
static char buffer[INLINE_MAX + 2];  // the request ('I' and up to INLINE_MAX bytes, and one too many to notice):
                                     // untouched (so not even resident) in the zygote

/// Sends `ERR <stage> <errno>` on the control socket and ends the child: nothing of the run has started. (Not on the
/// link, which user code holds: a report there could be forged.)
static _Noreturn void report(const char *stage, int err) {
    char message[160];
    int length = snprintf(message, sizeof message, "ERR %s %d", stage, err);
    if (length > (int)sizeof message - 1) length = (int)sizeof message - 1;
    (void)send(control_fd, message, (size_t)length, MSG_NOSIGNAL);
    _exit(127);
}

/// The warm child's first act: hands execd its pidfd and execd's end of a new link, on the zygote's control socket,
/// with the previous run's wait status when the zygote left it to this message (`WARM <status>`: one message and one
/// wake-up of execd instead of two). The child keeps that socket until user code's turn, to report a failed setup on
/// it (a channel user code never holds: see `execd_zygote_receive`).
static void announce(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) _exit(127);
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0) _exit(127);
    int fds[2] = {pidfd, pair[0]};
    char message[32] = "WARM";
    int length = previous_status < 0 ? 4 : snprintf(message, sizeof message, "WARM %d", previous_status);
    if (execd_send_with_fds(config->control_fd, message, (size_t)length, fds, 2) < 0) _exit(127);
    close(pidfd);
    close(pair[0]);
    link_fd = pair[1];
    // Off fd 3, which the side channel may take.
    control_fd = fcntl(config->control_fd, F_DUPFD_CLOEXEC, 10);
    if (control_fd < 0) _exit(127);
    close(config->control_fd);
}

#define STEP(stage, call)              \
    do {                               \
        if ((call) != 0) {             \
            failed_stage = (stage);    \
            failed_errno = errno;      \
            return -1;                 \
        }                              \
    } while (0)

/// Everything that does not depend on the request. The filter stacks on the zygote's: together they are the policy
/// one-shot sandboxes get.
static int warm_up(void) {
    STEP("death signal", prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    STEP("securebits", prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0));
    for (int cap = 0; cap < 64; cap++) {
        if (bounding_set & (1ULL << cap)) STEP("bounding set", prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
    }
    STEP("ambient set", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    STEP("no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    struct sock_fprog program = {
        .len = (unsigned short)config->seccomp_length, .filter = (struct sock_filter *)config->seccomp_filter,
    };
    STEP("seccomp", prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0));
    return 0;
}

/// The request's numbers line, one number at a time.
struct numbers {
    const char *at, *end;
    int bad;
};

static uint64_t next_number(struct numbers *n) {
    while (n->at < n->end && *n->at == ' ') n->at++;
    if (n->at == n->end || *n->at < '0' || *n->at > '9') {
        n->bad = 1;
        return 0;
    }
    uint64_t value = 0;
    while (n->at < n->end && *n->at >= '0' && *n->at <= '9') {
        uint64_t digit = (uint64_t)(*n->at++ - '0');
        if (value > (UINT64_MAX - digit) / 10) n->bad = 1;
        value = value * 10 + digit;
    }
    return value;
}

/// A file of the request, or a directory (execd lists the directories above each file before it).
static void write_file(const char *path_bytes, uint64_t path_length, uint32_t mode, const char *data, uint64_t length) {
    char path[MAX_PATH];
    if (path_length == 0 || path_length >= sizeof path || memchr(path_bytes, '\0', path_length) != NULL) {
        report("request", EINVAL);
    }
    memcpy(path, path_bytes, path_length);
    path[path_length] = '\0';
    if (execd_write_file(path, mode, data, length) != 0) report(S_ISDIR(mode) ? "mkdir" : "write file", errno);
}

int execd_zygote_receive(struct execd_zygote_request *request) {
    int fds[MAX_FDS];
    int fd_count = 0;
    // Not close-on-exec: they become the program's stdio (dup2 onto an fd that already has the number keeps it).
    ssize_t size = execd_recv_with_fds(link_fd, buffer, sizeof buffer, fds, MAX_FDS, &fd_count, 0);
    if (size <= 0) _exit(0);  // 0: the slot is being retired
    // A failed warm-up is reported only now: it must end a run, not go unnoticed.
    if (failed_stage != NULL) report(failed_stage, failed_errno);
    if (size == (ssize_t)sizeof buffer || fd_count == MAX_FDS || fd_count < 3) report("request", 0);

    const char *data = buffer + 1;
    uint64_t length = (uint64_t)size - 1;
    if (buffer[0] == 'M') {
        int memfd = fds[--fd_count];
        struct stat st;
        if (fd_count < 3 || fstat(memfd, &st) != 0 || st.st_size <= 0) report("request", errno);
        void *mapped = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0);
        if (mapped == MAP_FAILED) report("request", errno);
        close(memfd);
        data = mapped;
        length = (uint64_t)st.st_size;
    } else if (buffer[0] != 'I') {
        report("request", 0);
    }

    // The numbers line, then the bytes it measures: see zygote.py's REQUEST FORMAT.
    const char *newline = memchr(data, '\n', length);
    if (newline == NULL) report("request", 0);
    struct numbers n = {.at = data, .end = newline, .bad = 0};
    const char *blob = newline + 1;
    uint64_t blob_length = length - (uint64_t)(blob - data);
    uint64_t offset = 0;

    int side = next_number(&n) == 1;
    uint64_t arg_count = next_number(&n);
    if (arg_count > (uint64_t)(newline - data)) report("request", 0);  // each length takes two characters
    uint64_t *arg_lengths = malloc((arg_count ? arg_count : 1) * sizeof(uint64_t));
    if (arg_lengths == NULL) report("request", ENOMEM);
    for (uint64_t i = 0; i < arg_count; i++) {
        arg_lengths[i] = next_number(&n);
        if (arg_lengths[i] > blob_length - offset) report("request", 0);
        offset += arg_lengths[i];
    }
    uint64_t rlimit_count = next_number(&n);
    if (rlimit_count > MAX_RLIMITS) report("request", 0);
    struct { int resource; struct rlimit limit; } rlimits[MAX_RLIMITS];
    struct rlimit open_files;
    if (getrlimit(RLIMIT_NOFILE, &open_files) != 0) report("rlimit", errno);
    for (uint64_t i = 0; i < rlimit_count; i++) {
        rlimits[i].resource = (int)next_number(&n);
        rlimits[i].limit.rlim_cur = next_number(&n);
        rlimits[i].limit.rlim_max = next_number(&n);
        if (rlimits[i].resource == RLIMIT_NOFILE) open_files = rlimits[i].limit;
    }
    uint64_t file_count = next_number(&n);
    if (n.bad || file_count == 0 || file_count > (uint64_t)(newline - data)) report("request", 0);

    // As the run's uid from here on, so the program owns its files as in a one-shot sandbox: the uid change clears
    // the permitted and effective sets, and with them every privilege left.
    if (setgroups(0, NULL) != 0) report("setgroups", errno);
    if (setresgid(config->run_id, config->run_id, config->run_id) != 0) report("setresgid", errno);
    if (setresuid(config->run_id, config->run_id, config->run_id) != 0) report("setresuid", errno);
    for (uint64_t i = 0; i < file_count; i++) {
        uint32_t mode = (uint32_t)next_number(&n);
        uint64_t path_length = next_number(&n);
        uint64_t content_length = next_number(&n);
        if (n.bad || path_length > blob_length - offset || content_length > blob_length - offset - path_length) {
            report("request", 0);
        }
        const char *path = blob + offset;
        const char *content = path + path_length;
        offset += path_length + content_length;
        write_file(path, path_length, mode, content, content_length);
        if (i == 0) {
            request->program = content;
            request->program_length = content_length;
        }
    }
    for (uint64_t i = 0; i < rlimit_count; i++) {
        if (setrlimit(rlimits[i].resource, &rlimits[i].limit) != 0) report("rlimit", errno);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) report("death signal", errno);  // the uid change cleared it

    for (int target = 0; target < 3 + side; target++) {
        if (target >= fd_count || dup2(fds[target], target) < 0) report("stdio", errno);
    }
    // The link moves to the highest fd the run may have (close-on-exec), out of the way of the program's own: the
    // child says on it when the program is done (`DONE <status>`, after closing its stdio), which ends the run before
    // the kernel has torn the child down. User code can write there too, but only about its own run: execd then
    // ends it (killing whatever is left) and ignores anything but that one message.
    // (With a limit of open files too small to spare one, the link is closed and the run ends on the zygote's EXIT.)
    int first = 3 + side;
    int done_fd = open_files.rlim_cur > 1024 ? 1023 : (int)open_files.rlim_cur - 1;
    if (done_fd <= first) {
        done_fd = -1;
    } else if (done_fd != link_fd && dup3(link_fd, done_fd, O_CLOEXEC) < 0) {
        report("link", errno);
    }
    // Every other fd (the link's old number, the pipes' other copies, the control socket): user code starts with its
    // stdio (and the side channel) only.
    int closed = done_fd < 0 ? (int)syscall(SYS_close_range, first, ~0U, 0)
                             : (int)(syscall(SYS_close_range, first, done_fd - 1, 0) |
                                     syscall(SYS_close_range, done_fd + 1, ~0U, 0));
    if (closed != 0) _exit(127);  // the control socket may be gone: the zygote's EXIT 127 says enough
    link_fd = done_fd;
    if (chdir("/tmp") != 0) _exit(127);

    struct stat link_stat;
    request->done_inode = done_fd >= 0 && fstat(done_fd, &link_stat) == 0 ? (uint64_t)link_stat.st_ino : 0;
    request->done_fd = done_fd;
    request->side_channel = side;
    request->arg_count = (int32_t)arg_count;
    request->arg_lengths = arg_lengths;
    request->args = blob;
    return 0;
}

/// Each child gets a /tmp of its own: a fresh tmpfs (a *layer*) that the zygote mounts on the slot's /tmp before the
/// fork, in the slot's mount namespace (a mount namespace per child cost ≈ 0.1 ms of CPU per run). Unmounting waits
/// for an expedited RCU grace period, which interrupts every CPU: an unmount per run cost ≈ 9 % of the throughput at
/// full load. So once every process of a run is gone, its layer is emptied and moved (MS_MOVE, no grace period) into
/// a directory of the *base*, a tmpfs under the layers that no path reaches while a layer covers it; every
/// TMP_LAYERS runs the base is detached with everything moved into it, in one unmount. A layer that still holds
/// something after the emptying (anything but regular files, or more than TMP_CLEAN_MAX of them) is detached at once
/// the same way: nothing a run left stays mounted. A child only ever reaches its own layer: the base is covered, and
/// the zygote's fd of it is closed before user code like every other fd.
#define TMP_LAYERS 32
#define TMP_CLEAN_MAX 64
static int tmp_base = -1;  // O_PATH fd of the base (-1: none mounted)
static int tmp_moved;      // layers moved into the base
static bool tmp_layer;     // a layer is mounted on /tmp

/// Unlinks the regular files of the layer on /tmp; true if it is then empty.
static bool empty_tmp(void) {
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return false;
    char entries[2048] __attribute__((aligned(8)));
    int seen = 0;
    bool empty = true;
    for (int pass = 0; pass < 2 && empty; pass++) {  // the second pass checks that nothing is left
        if (lseek(dir, 0, SEEK_SET) != 0) empty = false;
        long length = 0;
        while (empty && (length = syscall(SYS_getdents64, dir, entries, sizeof entries)) > 0) {
            for (long offset = 0; offset < length && empty;) {
                struct dirent64 *entry = (struct dirent64 *)(entries + offset);
                offset += entry->d_reclen;
                if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
                empty = pass == 0 && entry->d_type == DT_REG && ++seen <= TMP_CLEAN_MAX &&
                        unlinkat(dir, entry->d_name, 0) == 0;
            }
        }
        if (length < 0) empty = false;
    }
    close(dir);
    return empty;
}

/// Retires the finished run's layer, if any, and mounts the next child's (see above).
static void fresh_tmp(void) {
    char path[64];
    if (tmp_layer) {
        bool empty = empty_tmp();
        snprintf(path, sizeof path, "%d", tmp_moved);
        if (mkdirat(tmp_base, path, 0700) != 0) _exit(72);
        snprintf(path, sizeof path, "/proc/self/fd/%d/%d", tmp_base, tmp_moved++);
        if (mount("/tmp", path, NULL, MS_MOVE, NULL) != 0) _exit(72);
        tmp_layer = false;
        if (!empty || tmp_moved >= TMP_LAYERS) {
            snprintf(path, sizeof path, "/proc/self/fd/%d", tmp_base);
            if (umount2(path, MNT_DETACH) != 0) _exit(72);  // the base and every layer in it
            close(tmp_base);
            tmp_base = -1;
            tmp_moved = 0;
        }
    }
    if (tmp_base < 0) {
        if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0700") != 0)
            _exit(73);
        if ((tmp_base = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) _exit(73);
    }
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, config->tmpfs_data) != 0) _exit(73);
    tmp_layer = true;
}

/// System V IPC objects outlive the processes that made them, in the slot's IPC namespace: once every process of a
/// run is gone, the zygote removes whatever the run created (it has CAP_SYS_ADMIN there; the *_STAT_ANY commands list
/// objects whatever their modes), so the next run finds none. (A fresh IPC namespace per child did the same, but its
/// creation and teardown, an internal mqueue mount among them, cost ≈ 3 % of the throughput at full load. POSIX
/// message queues, which would need that mount to be listed, are denied to runs by the seccomp policy.)
static void clear_ipc(void) {
    for (int round = 0; round < 2; round++) {
        struct shm_info shm;
        struct seminfo sem;
        struct msginfo msg;
        int shm_top = shmctl(0, SHM_INFO, (struct shmid_ds *)&shm);
        int sem_top = semctl(0, 0, SEM_INFO, &sem);
        int msg_top = msgctl(0, MSG_INFO, (struct msqid_ds *)&msg);
        if (shm_top < 0 || sem_top < 0 || msg_top < 0) _exit(76);
        if (shm.used_ids == 0 && sem.semusz == 0 && msg.msgpool == 0) return;
        if (round == 1) _exit(76);  // still there after a removal: execd replaces the slot
        for (int index = 0; index <= shm_top; index++) {
            struct shmid_ds ds;
            int id = shmctl(index, SHM_STAT_ANY, &ds);
            if (id >= 0) shmctl(id, IPC_RMID, NULL);
        }
        for (int index = 0; index <= sem_top; index++) {
            struct semid_ds ds;
            int id = semctl(index, 0, SEM_STAT_ANY, &ds);
            if (id >= 0) semctl(id, 0, IPC_RMID);
        }
        for (int index = 0; index <= msg_top; index++) {
            struct msqid_ds ds;
            int id = msgctl(index, MSG_STAT_ANY, &ds);
            if (id >= 0) msgctl(id, IPC_RMID, NULL);
        }
    }
}

int execd_zygote_serve(const struct execd_zygote_config *zygote_config) {
    config = zygote_config;
    // Whatever a run leaves behind is reparented to the zygote, not to the sandbox's init: the zygote then sees every
    // process of a run end (execd kills them all through the run's cgroup) before it mounts the next run's /tmp, so
    // nothing of one run can reach into the next one's.
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) _exit(74);
    // The zygote's bounding set, read once: each child drops exactly these (4 calls instead of reading all 41).
    for (int cap = 0; cap < 64; cap++) {
        int present = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (present < 0) break;  // past the kernel's last capability
        if (present == 1) bounding_set |= 1ULL << cap;
    }
    // The zygote's own /tmp (its files, which it has read) goes before the first child.
    if (umount2("/tmp", MNT_DETACH) != 0) _exit(72);
    for (;;) {
        clear_ipc();
        fresh_tmp();
        pid_t pid = fork();
        if (pid == 0) {
            announce();
            return warm_up();
        }
        if (pid < 0) _exit(70);  // execd sees the zygote end and replaces the slot
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) _exit(71);
        }
        // Then the rest of that run, whatever its exit signal (__WALL), until none is left. When nothing else of the
        // run is left, its status goes with the next warm child's announce, a moment later; otherwise it goes now:
        // execd kills the rest when it learns the run ended.
        previous_status = status;
        for (bool reported = false;;) {
            int other;
            pid_t reaped = waitpid(-1, &other, __WALL | (reported ? 0 : WNOHANG));
            if (reaped > 0 || (reaped < 0 && errno == EINTR)) continue;
            if (reaped < 0 && errno == ECHILD) break;
            if (reaped < 0) _exit(71);
            char message[32];  // reaped == 0: some of the run is still alive
            int length = snprintf(message, sizeof message, "EXIT %d", status);
            if (send(config->control_fd, message, (size_t)length, MSG_NOSIGNAL) < 0) _exit(0);  // execd is gone
            previous_status = -1;
            reported = true;
        }
    }
}
