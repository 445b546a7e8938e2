// Parent-side syscall wrappers; see exec_sys.h.
#define _GNU_SOURCE
#include "exec_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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

int execd_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int execd_pipe_set_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int execd_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
