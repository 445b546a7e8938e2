// The native half of execd's Python zygote (zygote.py loads this library with ctypes from a memfd execd hands it).
//
// Everything between fork and user code that is not Python runs here, as plain system calls: a fresh fork of
// CPython copies every page it writes (CPython 3.11 writes a reference count on every object it touches), so each
// Python-level step of the zygote's loop and of a child's setup cost page faults in every run. The zygote's loop
// (fork, wait, report) and the child's setup (announce, namespaces, privileges, the request, its files and limits,
// its fds) touch only this library's stack and a few static pages.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct execd_zygote_config {
    int32_t control_fd;           ///< the zygote's SOCK_SEQPACKET control socket to execd
    int32_t run_id;               ///< the uid and gid a run's child becomes
    const char *tmpfs_data;       ///< mount data for each child's fresh /tmp
    const void *seccomp_filter;   ///< struct sock_filter[] each child stacks (unshare, mount, umount2 denied)
    uint32_t seccomp_length;      ///< number of instructions
};

/// What a request asks for, once the child is set up and is about to run user code. Pointers are into memory the
/// child owns (the request buffer or the mapped memfd).
struct execd_zygote_request {
    int32_t done_fd;              ///< the link, where the child says `DONE <wait status>` once the program is done
                                  ///< (-1: closed, the run's limit of open files left no room for it)
    uint64_t done_inode;          ///< the link's inode: `DONE` goes out only if `done_fd` is still the link
    int32_t side_channel;         ///< fd 3 is the judge's side channel
    int32_t arg_count;
    const uint64_t *arg_lengths;  ///< arg_count lengths; the arguments are consecutive bytes at `args`
    const char *args;
    const char *program;          ///< the first file's content (/tmp/main.py)
    uint64_t program_length;
};

/// In the zygote: mounts a fresh /tmp, forks the next warm child, waits for it, reports `EXIT <status>` on the
/// control socket, waits for every other process of that run to be gone (the zygote is their subreaper; execd kills
/// them through the run's cgroup), and again, for as long as execd is there (then exits the process). Returns only in each child, once it is warm: announced, in its own IPC
/// namespace, securebits locked, bounding and ambient sets empty, no_new_privs, seccomp stacked (0), or after a step
/// failed (-1: the child reports that step when the request arrives, so the failure ends a run instead of going
/// unnoticed).
int execd_zygote_serve(const struct execd_zygote_config *config);

/// In a warm child: waits for the request on its link, then drops to the run's uid, writes the files, sets the
/// rlimits and the death signal, installs the pipes as fds 0-2 (and the side channel as 3), moves the link to
/// `done_fd`, closes every other fd and enters /tmp. Returns 0 with `request` filled in. On any failure (or a failed
/// warm-up) reports `ERR <stage> <errno>` on the control socket and exits 127; exits 0, silently, if execd closed
/// the link (the slot is being retired).
int execd_zygote_receive(struct execd_zygote_request *request);

#ifdef __cplusplus
}
#endif
