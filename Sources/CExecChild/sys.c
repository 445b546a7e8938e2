// Syscall wrappers for the daemon, the sandbox child and the zygote library; see exec_sys.h.
#define _GNU_SOURCE
#include "exec_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int execd_pipe2_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int execd_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int execd_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int execd_pidfd_wait(int pidfd, int extra_options, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | extra_options);
    while (rc < 0 && errno == EINTR);
    if (rc != 0) return rc;
    *code = info.si_pid == 0 ? 0 : info.si_code;
    *status = info.si_status;
    return 0;
}

int execd_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

ssize_t execd_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > 16) {
        errno = EINVAL;
        return -1;
    }
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

ssize_t execd_recv_with_fds(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int flags) {
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    *nfds = 0;
    ssize_t n;
    do n = recvmsg(sock, &msg, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received = (int *)CMSG_DATA(cmsg);
        for (int i = 0; i < count; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = received[i];
            else close(received[i]);  // more than the caller can take: never leak them
        }
    }
    return n;
}

int execd_write_file(const char *path, uint32_t mode, const void *data, uint64_t length) {
    if (S_ISDIR(mode)) return (mkdir(path, mode & 07777) == 0 || errno == EEXIST) ? 0 : -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
    if (fd < 0) return -1;
    const char *p = data;
    while (length > 0) {
        ssize_t n = write(fd, p, length > (1u << 30) ? (1u << 30) : (size_t)length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        p += n;
        length -= (uint64_t)n;
    }
    return close(fd);
}

int execd_prlimit(pid_t pid, int resource, uint64_t soft, uint64_t hard) {
    struct rlimit64 limit = {soft, hard};
    return prlimit64(pid, (enum __rlimit_resource)resource, &limit, NULL);
}

int execd_thread_cpus(int *cpus, int max) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < max; cpu++) {
        if (CPU_ISSET(cpu, &set)) cpus[count++] = cpu;
    }
    return count;
}

int execd_set_cpus(pid_t pid, const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) CPU_SET(cpus[i], &set);
    }
    return sched_setaffinity(pid, sizeof set, &set);
}
