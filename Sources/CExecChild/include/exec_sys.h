// Thin wrappers for system calls Swift's Glibc module does not expose (they need _GNU_SOURCE or are
// variadic). Parent side only; each returns -1 with errno set on failure, like the call it wraps.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

int execd_pipe2_cloexec(int fds[2]);
int execd_memfd(const char *name);
int execd_pidfd_send_signal(int pidfd, int signal);
/// waitid(P_PIDFD, pidfd, ..., WEXITED | extra_options). On success *code is CLD_EXITED/CLD_KILLED/CLD_DUMPED
/// (0 with WNOHANG when the process still runs) and *status the exit code or signal.
int execd_pidfd_wait(int pidfd, int extra_options, int *code, int *status);
int execd_eventfd(void);
int execd_set_nonblocking(int fd);
int execd_pipe_set_size(int fd, int size);

#ifdef __cplusplus
}
#endif
