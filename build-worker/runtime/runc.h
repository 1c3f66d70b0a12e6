/* runc.h - run one RUN step with runc on an overlayfs rootfs (root only).
 *
 * Two halves, so a libuv orchestrator can own the child process:
 *
 *   lc_runc *r;
 *   lc_runc_prepare(&step, &r, &err);     // bundle dir, config.json, overlay mount
 *   uv_spawn(loop, ..., lc_runc_argv(r))  // args[0] is the runc binary; wire
 *                                         // stdout/stderr pipes, stdin /dev/null
 *   ... on exit: exit status = the command's (128+N when killed by signal N)
 *   lc_runc_cleanup(&r, &err);            // ALWAYS, also after a failed spawn
 *
 * or, blocking (tests, simple callers): lc_runc_run(&step, out_fd, err_fd,
 * &exit_code, &err).
 *
 * The container: its own pid/ipc/uts/mount namespaces; a network
 * namespace with only loopback, or the one at netns_path, or the host's
 * (network_host); Docker's default capability set, /proc, /dev (tmpfs),
 * /dev/pts, /dev/shm, /dev/mqueue, /sys (ro), then step->mounts (binds of
 * host files and directories, tmpfs), shallowest target first.
 *
 * Mount points missing from the rootfs (/proc, /dev, /sys missing from the
 * parent, a bind target like /etc/resolv.conf or /run/secrets/x) are made
 * before runc starts, resolving symlinks inside the rootfs as runc does,
 * and removed from the upper dir at cleanup when they are still empty (a
 * RUN that wrote into one keeps it), together with the parent directories
 * overlayfs copied up only to hold them: mount stubs never become part of
 * the layer (BuildKit's executor/stubs.go does the same).
 *
 * Files a step must not leave on disk (its config.json holds the process
 * environment, which may hold a secret) belong on a tmpfs: put bundle_dir
 * inside one (runtime/mounts.h lc_mount_private_dir).
 *
 * lc_runc_cleanup is blocking (it may run `runc delete --force`, unmounts,
 * removes the bundle dir); call it from a worker thread if the loop must
 * not block. The upper dir is kept: it is the step's layer.
 */
#ifndef LC_RUNC_H
#define LC_RUNC_H

#include <stddef.h>

#include "err.h"
#include "strlist.h"

/* An extra mount of the container. */
typedef enum lc_runc_mount_kind {
    LC_RUNC_BIND,  /* source: a host file, directory or unix socket */
    LC_RUNC_TMPFS, /* source unused */
} lc_runc_mount_kind;

typedef struct lc_runc_mount {
    lc_runc_mount_kind kind;
    const char *target; /* absolute path in the container */
    const char *source; /* host path (BIND) */
    int readonly;
    unsigned long long size; /* TMPFS: bytes, 0 = the kernel's default */
} lc_runc_mount;

typedef struct lc_runc_step {
    const char *id;                /* container id, unique on the host: [A-Za-z0-9_.-]+ */
    const char *bundle_dir;        /* created (must not exist yet); removed by cleanup */
    const char *const *lower_dirs; /* unpacked parent layers (lc_untar OVERLAY mode),
                                      top first; n_lower == 0 means FROM scratch */
    size_t n_lower;
    const char *upper_dir;   /* the step's layer; created if missing */
    const char *work_dir;    /* overlay workdir on upper's filesystem; NULL = <bundle>/work
                                (then the bundle must be on upper's filesystem) */
    const char *const *argv; /* process args (see lc_runc_shell_argv for the shell form) */
    size_t argc;
    const char *const *env; /* "KEY=value"; PATH and HOME are added when missing */
    size_t n_env;
    const char *cwd;             /* NULL = "/" (runc creates it if missing) */
    const char *user;            /* NULL/"" = root; "uid", "uid:gid", "name", "name:group";
                                    names resolve through the rootfs /etc/passwd, /etc/group */
    const char *hostname;        /* NULL = "layercache" */
    int network_host;            /* 1: share the host's network namespace */
    const char *netns_path;      /* join this network namespace (network_host == 0);
                                    NULL = a new one with only loopback */
    const lc_runc_mount *mounts; /* extra mounts (borrowed until prepare returns) */
    size_t n_mounts;
    const char *runc_path; /* NULL = "runc" (found through PATH) */
} lc_runc_step;

typedef struct lc_runc lc_runc;

/* Prepares the bundle and mounts the rootfs. On failure everything done so
 * far is undone and *out stays NULL. */
int lc_runc_prepare(const lc_runc_step *step, lc_runc **out, lc_err *err);

/* NULL-terminated argv to execute (borrowed from r). */
const char *const *lc_runc_argv(const lc_runc *r);

/* The merged rootfs mount point (borrowed), e.g. to inspect it. */
const char *lc_runc_rootfs(const lc_runc *r);

/* Deletes the container if runc left it behind, unmounts, removes mount
 * stubs from the upper dir and the bundle dir; frees r and NULLs it.
 * Accepts NULL. Returns the first error but always does every step. */
int lc_runc_cleanup(lc_runc **r, lc_err *err);

/* Blocking: runs lc_runc_argv(r) with stdin /dev/null, stdout -> out_fd,
 * stderr -> err_fd (-1 = /dev/null), waits, and stores the exit code. */
int lc_runc_wait_run(lc_runc *r, int out_fd, int err_fd, int *exit_code, lc_err *err);

/* Blocking: prepare + wait_run + cleanup. */
int lc_runc_run(const lc_runc_step *step, int out_fd, int err_fd, int *exit_code, lc_err *err);

/* Shell form: appends shell... (default /bin/sh -c when nshell == 0), then
 * cmd, to out. */
int lc_runc_shell_argv(const char *const *shell, size_t nshell, const char *cmd, lc_strlist *out);

/* Resolves a Docker USER string against the passwd/group files of the
 * rootfs at root (read without following symlinks out of it). Fills uid,
 * gid, home (malloc'd, may be NULL) and up to *ngroups supplementary gids
 * (*ngroups updated). NOT_FOUND with a clear message for unknown names. */
int lc_runc_resolve_user(const char *root, const char *user, unsigned *uid, unsigned *gid,
                         unsigned *groups, size_t *ngroups, char **home, lc_err *err);

#endif
