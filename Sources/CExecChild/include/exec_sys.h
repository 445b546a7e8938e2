// Thin wrappers for system calls Swift's Glibc module does not expose (they need _GNU_SOURCE or are
// variadic), used by the daemon; the fd passing and the file writer also by the sandbox child (after clone3: none of
// them allocates) and the zygote library, which compiles this file in. Each returns -1 with errno set on failure,
// like the call it wraps.
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
/// One message with up to 16 fds attached. Returns bytes sent or -1.
ssize_t execd_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/// One message (recvmsg(2) `flags`, e.g. MSG_CMSG_CLOEXEC, MSG_DONTWAIT); received fds land in fds[0..*nfds), those
/// beyond `maxfds` are closed. Returns bytes received (0 at EOF) or -1.
ssize_t execd_recv_with_fds(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int flags);
/// Creates `path` (O_EXCL, never through a symlink) with `mode` and writes `data` into it; or, when `mode` has
/// S_IFDIR, makes the directory (an existing one is fine).
int execd_write_file(const char *path, uint32_t mode, const void *data, uint64_t length);
int execd_prlimit(pid_t pid, int resource, uint64_t soft, uint64_t hard);
/// The CPUs the calling thread may run on (at most `max`, in `cpus`): how many, or -1.
int execd_thread_cpus(int *cpus, int max);
/// Restricts a process (0: the calling thread) to `count` CPUs. 0 or -1 (errno).
int execd_set_cpus(pid_t pid, const int *cpus, int count);

#ifdef __cplusplus
}
#endif
