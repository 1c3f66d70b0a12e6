/* runflags.h - RUN's own flags, parsed and checked as BuildKit's Dockerfile
 * frontend does (instructions/commands_runmount.go, _runnetwork.go,
 * _runsecurity.go; dockerfile2llb/convert_runmount.go, _secrets.go, _ssh.go):
 *
 *   --mount=type=bind|cache|tmpfs|secret|ssh,KEY=VALUE,...   (repeatable)
 *   --network=default|none|host
 *   --security=sandbox          (insecure is refused: no such entitlement)
 *
 * lc_df_run_parse works on a planned step (flag values already expanded
 * with the ARGs and ENV in scope, as BuildKit expands --mount) and fills in
 * BuildKit's defaults: a relative target resolves against WORKDIR; a cache
 * id defaults to its target; a secret's id to source= or the target's base
 * name, its target to /run/secrets/<id> (none when env= is given); an ssh
 * id to "default" and its target to /run/buildkit/ssh_agent.<n>; bind,
 * secret and ssh mounts are read-only unless rw, cache and tmpfs writable.
 * Every option that is unknown, misplaced or malformed is an error naming
 * FILE:LINE:COL of its --mount flag; nothing is silently ignored.
 *
 * Ownership: everything in an lc_df_run is malloc'd and freed by
 * lc_df_run_clear.
 */
#ifndef LC_DF_RUNFLAGS_H
#define LC_DF_RUNFLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dockerfile.h"
#include "err.h"

enum lc_df_mount_type {
    LC_DF_MOUNT_BIND,
    LC_DF_MOUNT_CACHE,
    LC_DF_MOUNT_TMPFS,
    LC_DF_MOUNT_SECRET,
    LC_DF_MOUNT_SSH,
};

enum lc_df_sharing {
    LC_DF_SHARING_SHARED,  /* default: every writer sees the same directory */
    LC_DF_SHARING_PRIVATE, /* a second concurrent user gets a directory of its own */
    LC_DF_SHARING_LOCKED,  /* a second concurrent user waits */
};

enum lc_df_network {
    LC_DF_NET_UNSET, /* not given, or "default": the build's --network */
    LC_DF_NET_DEFAULT,
    LC_DF_NET_NONE,
    LC_DF_NET_HOST,
};

typedef struct lc_df_mount {
    enum lc_df_mount_type type;
    char *target; /* absolute and cleaned; NULL only for a secret with env= and no target */
    char *from;   /* bind/cache: stage name or image; NULL = build context (bind), empty (cache) */
    char *source; /* bind/cache: path inside from (cleaned, relative, "" = its root) */
    char *id;     /* cache, secret, ssh (defaults filled in); NULL otherwise */
    char *env;    /* secret: also (or only) exposed as this environment variable */
    bool readonly;
    bool required;              /* secret, ssh: true unless required=false (see runflags.c) */
    enum lc_df_sharing sharing; /* cache */
    uint64_t size;              /* tmpfs: bytes, 0 = no limit */
    int64_t mode, uid, gid;     /* cache, secret, ssh: -1 = not given */
    lc_df_pos pos;              /* of the --mount flag */
} lc_df_mount;

typedef struct lc_df_run {
    lc_df_mount *mounts; /* in the order written */
    size_t nmounts;
    enum lc_df_network network;
    lc_df_pos network_pos; /* of --network, when given */
} lc_df_run;

/* Parses the RUN flags of st (a planned RUN step). On failure *out is left
 * empty and err says FILE:LINE:COL: what is wrong. */
int lc_df_run_parse(const lc_df_step *st, lc_df_run *out, lc_err *err);
void lc_df_run_clear(lc_df_run *r);

/* "bind", "cache", ... */
const char *lc_df_mount_type_name(enum lc_df_mount_type t);
/* "default", "none", "host" (UNSET reads "default"). */
const char *lc_df_network_name(enum lc_df_network n);
/* Parses "default", "none", "host"; -1 for anything else. */
int lc_df_network_parse(const char *s);

#endif
