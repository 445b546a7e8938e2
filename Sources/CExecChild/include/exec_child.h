// The only code that runs between clone3 and execve.
//
// The parent (Swift, SandboxOS) prepares everything in one `execd_child_config`: strings, argv/envp, the mount
// plan, files to create, rlimits, the exported seccomp BPF program and an empty libcap state. The child only
// reads it and makes async-signal-safe system calls; it never allocates. See child.c for the steps.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What one entry of the mount plan does. Targets are host paths under the root directory, and every directory above
/// a target has an entry of its own before it (the parent computes both before clone3).
enum execd_mount_kind {
    EXECD_MOUNT_BIND_RO = 1,  ///< recursive bind of a host directory or file, read-only, nosuid, nodev
    EXECD_MOUNT_DEVICE = 2,   ///< bind of a host device node (null, zero, ...): writable, nosuid, noexec
    EXECD_MOUNT_SYMLINK = 3,  ///< a symlink whose text is `source`
    EXECD_MOUNT_DIR = 4,      ///< an empty directory (mode 0755)
};

struct execd_mount {
    int32_t kind;
    const char *source;
    const char *target;
};

/// A file created inside the sandbox after its /tmp is mounted (the program, the harness, inputs), or a directory
/// (`mode` has S_IFDIR) above the files that follow it.
struct execd_file {
    const char *path;  ///< a host path under the root directory's /tmp
    const void *data;
    uint64_t length;
    uint32_t mode;
};

struct execd_rlimit {
    int32_t resource;
    uint64_t soft;
    uint64_t hard;
};

#define EXECD_MAX_RLIMITS 16

struct execd_child_config {
    const char *root_dir;         ///< empty host directory; the child mounts its private root tmpfs there
    const char *root_tmpfs_data;  ///< mount data for the root tmpfs ("size=...,mode=0755")
    const char *tmp_tmpfs_data;   ///< mount data for /tmp ("size=...,nr_inodes=...,mode=1777")
    const char *proc_dir;         ///< root_dir + "/proc"
    const char *tmp_dir;          ///< root_dir + "/tmp"
    const struct execd_mount *mounts;
    int32_t mount_count;
    const struct execd_file *files;
    int32_t file_count;
    const char *hostname;
    const char *exec_path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    struct execd_rlimit rlimits[EXECD_MAX_RLIMITS];
    int32_t rlimit_count;
    const void *seccomp_filter;     ///< struct sock_filter[], exported by seccomp_export_bpf in the parent
    uint16_t seccomp_filter_length; ///< number of instructions
    void *empty_caps;               ///< cap_t from cap_init() in the parent
    int32_t last_cap;               ///< highest capability number the kernel knows
    int32_t stdin_fd, stdout_fd, stderr_fd;
    int32_t side_fd;                ///< becomes fd 3 of the program, or -1
    int32_t extra_fd;               ///< becomes fd 4 of the program, or -1 (only with side_fd)
    /// 0: drop every privilege before exec (the normal case). Otherwise the program is a zygote: it keeps the
    /// capabilities in this mask (bounding set; it runs as root of its user namespace) and gets the seccomp filter
    /// without no_new_privs: a filter that still lets it set up each run's child, which drops everything and adds
    /// the rest of the policy before user code runs.
    uint64_t zygote_keep_caps;
    int32_t sync_fd;                ///< read end; the parent writes one byte once id maps and cgroups are set
    int32_t report_fd;              ///< write end for `execd_report` records
    int32_t cgroup_fd;              ///< cgroup v2 directory for CLONE_INTO_CGROUP, or -1
    /// The daemon's argument area (fields 48-49 of its /proc/self/stat, read once by the parent): the reaper, a fork
    /// of the daemon that never execs, zeroes it so that /proc/1/cmdline does not show the sandbox the daemon's
    /// command line. 0, 0: leave it.
    uint64_t arg_start, arg_end;
};

/// Where the child failed. Mirrored in Swift as `ChildStage`.
enum execd_stage {
    EXECD_STAGE_SYNC = 1,
    EXECD_STAGE_SIGNALS,
    EXECD_STAGE_SET_IDS,
    EXECD_STAGE_DEATH_SIGNAL,
    EXECD_STAGE_MOUNT_PRIVATE,
    EXECD_STAGE_MOUNT_ROOT,
    EXECD_STAGE_MOUNT_PLAN,
    EXECD_STAGE_MOUNT_PROC,
    EXECD_STAGE_MOUNT_TMP,
    EXECD_STAGE_WRITE_FILES,
    EXECD_STAGE_PIVOT_ROOT,
    EXECD_STAGE_ROOT_READ_ONLY,
    EXECD_STAGE_HOSTNAME,
    EXECD_STAGE_RLIMITS,
    EXECD_STAGE_FDS,
    EXECD_STAGE_CAPABILITIES,
    EXECD_STAGE_NO_NEW_PRIVS,
    EXECD_STAGE_SECCOMP,
    EXECD_STAGE_FORK,
    EXECD_STAGE_CHDIR,
    EXECD_STAGE_EXEC,
};

enum execd_report_kind {
    EXECD_REPORT_SETUP_FAILED = 1,  ///< `stage` and `error` say where and why
    EXECD_REPORT_EXITED = 2,        ///< the program (pid 2) ended; `wait_status` as from wait4
};

/// A fixed-size record on the report pipe (smaller than PIPE_BUF, so writes are atomic).
struct execd_report {
    int32_t kind;
    int32_t stage;
    int32_t error;
    int32_t wait_status;
};

/// clone3 into fresh namespaces. In the parent returns the child's pid (and its pidfd in *pidfd_out), or -1 with
/// errno set. The child never returns: it sets up the sandbox, becomes pid 1 (a tiny reaper) and runs the program
/// as pid 2.
pid_t execd_spawn(const struct execd_child_config *config, int *pidfd_out);

#ifdef __cplusplus
}
#endif
