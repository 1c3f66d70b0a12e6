/* exec.h - running the steps that change files: RUN through runc on an
 * overlayfs over the parent's layers, COPY/ADD into such an overlay. The
 * overlay's upper directory is the step's layer. */
#ifndef LC_EXEC_H
#define LC_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build-worker/context/walk.h"
#include "err.h"

/* One line of a running step's output (no newline). */
typedef void (*lc_exec_output_fn)(void *ctx, const char *line, size_t len);

typedef struct lc_exec_fs {
    const char *const *lowers; /* unpacked parent layers, top first (may be 0) */
    size_t nlowers;
    const char *upper;         /* empty directory that becomes the layer */
    const char *scratch;       /* empty directory for work dir, mount point, bundle */
} lc_exec_fs;

/* What a RUN step mounts besides its rootfs (RUN --mount, prepared on the
 * host by runmounts.h). */
typedef enum lc_exec_mount_kind {
    LC_EXEC_MOUNT_PATH,   /* bind source, a host directory or file */
    LC_EXEC_MOUNT_TMPFS,  /* a fresh tmpfs of at most size bytes (0: no limit) */
    LC_EXEC_MOUNT_SECRET, /* data as a read-only file at target, and/or as env */
    LC_EXEC_MOUNT_AGENT,  /* an ssh agent socket (source) forwarded to target */
} lc_exec_mount_kind;

typedef struct lc_exec_mount {
    lc_exec_mount_kind kind;
    const char *target;  /* absolute; NULL for a secret given only as env */
    const char *source;  /* PATH: host path; AGENT: the agent's socket */
    bool readonly;       /* PATH, TMPFS */
    uint64_t size;       /* TMPFS */
    const void *data;    /* SECRET: the value (borrowed; never written to disk) */
    size_t len;
    const char *env;     /* SECRET: also set this variable to the value */
    unsigned mode, uid, gid; /* SECRET (file), AGENT (socket) */
} lc_exec_mount;

typedef struct lc_exec_run_opts {
    const char *const *argv;   /* full command (shell form already wrapped) */
    size_t argc;
    const char *const *env;    /* "K=V" */
    size_t nenv;
    const char *cwd;           /* absolute */
    const char *user;          /* "uid[:gid]" or names, NULL/"" = root */
    int network;               /* enum lc_net_mode (runtime/network.h): default, none, host */
    const char *const *extra_hosts; /* --add-host "name:ip" */
    size_t n_extra_hosts;
    const lc_exec_mount *mounts;
    size_t nmounts;
    lc_exec_output_fn output;
    void *ctx;
} lc_exec_run_opts;

/* Runs the command; *exit_code gets its status (non-zero is not an error
 * here). Errors are failures to set up or run runc at all. The step's
 * bundle (config.json holds its environment), generated /etc files,
 * secret files and agent sockets live on a tmpfs under fs->scratch that
 * is gone when this returns. The first agent mount sets SSH_AUTH_SOCK
 * unless the environment has it. */
int lc_exec_run(const lc_exec_fs *fs, const lc_exec_run_opts *o, int *exit_code, lc_err *err);

typedef struct lc_exec_copy_opts {
    const char *src_root;        /* context dir, or the source stage's root */
    const lc_ctx_entry *entries; /* what to copy (paths relative to src_root) */
    size_t nentries;
    const char *const *src_paths;/* for --from: source paths (walked under src_root) */
    size_t nsrc_paths;
    const char *const *excludes; /* for --from: --exclude patterns */
    size_t nexcludes;
    const char *const *sources;  /* the local source arguments as expanded, in
                                  * the order entries' src index them (for
                                  * --parents: the /./ pivot) */
    size_t nsources;
    size_t nargs;                /* every source argument, heredocs and URLs
                                  * included (several: a directory) */
    const char *dest;            /* destination as expanded (may be relative) */
    const char *workdir;         /* for relative destinations */
    const char *chown;           /* "--chown" value or NULL */
    const char *chmod;           /* "--chmod" value or NULL */
    bool parents;                /* --parents: keep the source's directories */
    bool is_add;                 /* ADD: local tar archives are extracted */
    const char *const *heredoc_names;   /* COPY <<EOF /path: files to create */
    const char *const *heredoc_bodies;  /* expanded already where they expand */
    size_t nheredocs;
    const char *const *url_files; /* ADD <url>: downloaded files (host paths) */
    const char *const *url_names; /* and their names (from the URL path) */
    const int64_t *url_mtimes;    /* Last-Modified (Unix seconds), -1 if none */
    size_t nurls;
} lc_exec_copy_opts;

/* Copies into the overlay with the Dockerfile reference's rules: the
 * destination is a directory when it ends in "/" or "/.", is ".", exists as
 * a directory, or there are several sources (or a wildcard matched several);
 * a relative one resolves against WORKDIR; parents are created; a
 * directory source copies its contents. Errors name the source. */
int lc_exec_copy(const lc_exec_fs *fs, const lc_exec_copy_opts *o, lc_err *err);

/* WORKDIR: creates directory dir (absolute) and its parents in the
 * overlay; new directories are 0755 and owned by user ("name[:group]",
 * "uid[:gid]", NULL = root; resolved through the image, an unknown name
 * is root, as in BuildKit). An existing directory is left as it is. */
int lc_exec_mkdir(const lc_exec_fs *fs, const char *dir, const char *user, lc_err *err);

/* Mounts a read-only view of layers (top first) at mnt (for COPY --from);
 * *mounted tells whether lc_exec_unmount must be called. With one layer the
 * layer directory itself is the view (written to view). */
int lc_exec_view(const char *const *lowers, size_t nlowers, const char *mnt, char *view,
                 size_t cap, bool *mounted, lc_err *err);
void lc_exec_unmount(const char *mnt);

#endif
