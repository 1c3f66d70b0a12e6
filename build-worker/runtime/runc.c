/* runc.c - RUN steps through runc (see runc.h). */
#include "build-worker/runtime/runc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/runtime/overlay.h"
#include "build-worker/runtime/stubs.h"

extern char **environ;

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_GROUPS 64

/* Mount points of the kernel file systems every container gets. */
static const char *const base_targets[] = {"/proc", "/dev", "/sys"};
#define NBASE (sizeof(base_targets) / sizeof(base_targets[0]))

struct lc_runc {
    char *bundle;
    char *rootfs;
    char *state_root;
    char *upper;
    char *work;
    char *id;
    char *runc;
    int mounted;
    lc_stubs *stubs; /* mount points made in the rootfs, removed at cleanup */
    const char *argv[12];
};

/* ---- users ---- */
static int read_in_root(const char *root, const char *rel, char **out, lc_err *err)
{
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open %s: %s", root, strerror(errno));
    int dfd = lc_fs_open_dir_beneath(rfd, "etc", 0);
    close(rfd);
    if (dfd < 0)
        return -LC_NOT_FOUND;
    int fd = openat(dfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        return -LC_NOT_FOUND;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (;;) {
        if (n == cap) {
            char *nb = cap < (16u << 20) ? realloc(buf, cap * 2 + 1) : NULL;
            if (nb == NULL)
                break; /* absurdly large: use what we have */
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int is_number(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Splits a colon-separated line into at most max fields (in place). */
static size_t fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == ':') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

/* Finds the passwd line for name (or for uid when name is NULL). */
static int passwd_lookup(char *passwd, const char *name, unsigned uid, unsigned *ouid,
                         unsigned *ogid, char **home, char **oname)
{
    for (char *save = NULL, *line = strtok_r(passwd, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        if (fields(line, f, 7) < 7 || !is_number(f[2]) || !is_number(f[3]))
            continue;
        if (name ? strcmp(f[0], name) == 0 : strtoul(f[2], NULL, 10) == uid) {
            *ouid = (unsigned)strtoul(f[2], NULL, 10);
            *ogid = (unsigned)strtoul(f[3], NULL, 10);
            *home = strdup(f[5]);
            *oname = strdup(f[0]);
            return 0;
        }
    }
    return -1;
}

int lc_runc_resolve_user(const char *root, const char *user, unsigned *uid, unsigned *gid,
                         unsigned *groups, size_t *ngroups, char **home, lc_err *err)
{
    size_t maxg = ngroups ? *ngroups : 0;
    if (ngroups)
        *ngroups = 0;
    *home = NULL;
    *uid = *gid = 0;
    char *u = strdup(user && *user ? user : "0");
    char *passwd = NULL, *group = NULL, *uname = NULL;
    int rc = 0;
    if (u == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    char *g = strchr(u, ':');
    if (g != NULL)
        *g++ = '\0';
    int have_passwd = read_in_root(root, "passwd", &passwd, err) == 0;
    int have_group = read_in_root(root, "group", &group, err) == 0;
    int found = 0;
    if (have_passwd) {
        char *copy = strdup(passwd);
        if (copy != NULL) {
            unsigned pu, pg;
            if (passwd_lookup(copy, is_number(u) ? NULL : u, (unsigned)strtoul(u, NULL, 10), &pu,
                              &pg, home, &uname) == 0) {
                found = 1;
                *uid = pu;
                *gid = pg;
            }
            free(copy);
        }
    }
    if (!found) {
        if (!is_number(u)) {
            rc = lc_err_set(err, LC_NOT_FOUND, "USER %s: no such user in the image's /etc/passwd",
                            user);
            goto out;
        }
        *uid = (unsigned)strtoul(u, NULL, 10);
        *gid = 0;
    }
    if (g != NULL && *g != '\0') {
        if (is_number(g)) {
            *gid = (unsigned)strtoul(g, NULL, 10);
        } else {
            int gfound = 0;
            char *copy = have_group ? strdup(group) : NULL;
            for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
                 line = strtok_r(NULL, "\n", &save)) {
                char *f[4];
                if (fields(line, f, 4) >= 3 && strcmp(f[0], g) == 0 && is_number(f[2])) {
                    *gid = (unsigned)strtoul(f[2], NULL, 10);
                    gfound = 1;
                    break;
                }
            }
            free(copy);
            if (!gfound) {
                rc = lc_err_set(err, LC_NOT_FOUND,
                                "USER %s: no such group in the image's /etc/group", user);
                goto out;
            }
        }
    } else if (uname != NULL && have_group && ngroups != NULL) {
        /* Supplementary groups: every group listing the user as a member. */
        char *copy = strdup(group);
        for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            char *f[4];
            if (fields(line, f, 4) < 4 || !is_number(f[2]))
                continue;
            for (char *s2 = NULL, *m = strtok_r(f[3], ",", &s2); m; m = strtok_r(NULL, ",", &s2)) {
                unsigned gv = (unsigned)strtoul(f[2], NULL, 10);
                if (strcmp(m, uname) == 0 && gv != *gid && *ngroups < maxg)
                    groups[(*ngroups)++] = gv;
            }
        }
        free(copy);
    }
out:
    if (rc < 0) {
        free(*home);
        *home = NULL;
    }
    free(uname);
    free(passwd);
    free(group);
    free(u);
    return rc;
}

/* ---- config.json ---- */
static json_t *strv(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *caps(void)
{
    /* Docker's default set: builds expect chown, setuid, mknod and friends. */
    static const char *const c[] = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE"};
    return strv(c, sizeof(c) / sizeof(c[0]));
}

static json_t *mount_entry(const char *dst, const char *type, const char *src,
                           const char *const *opts, size_t n)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", strv(opts, n));
}

static json_t *build_config(const lc_runc_step *s, const size_t *order, unsigned uid, unsigned gid,
                            const unsigned *groups, size_t ngroups, const lc_strlist *env)
{
    json_t *user = json_pack("{s:I, s:I}", "uid", (json_int_t)uid, "gid", (json_int_t)gid);
    if (ngroups > 0) {
        json_t *ag = json_array();
        for (size_t i = 0; i < ngroups; i++)
            json_array_append_new(ag, json_integer(groups[i]));
        json_object_set_new(user, "additionalGids", ag);
    }
    /* The worker's own hard limit: raising it would need CAP_SYS_RESOURCE. */
    struct rlimit rl;
    rlim_t nofile_max =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY ? rl.rlim_max : 1024;
    json_t *process =
        json_pack("{s:b, s:o, s:o, s:o, s:s, s:{s:o, s:o, s:o}, s:[{s:s, s:I, s:I}], s:b}",
                  "terminal", 0, "user", user, "args", strv(s->argv, s->argc), "env",
                  strv((const char *const *)env->items, env->len), "cwd",
                  s->cwd && *s->cwd ? s->cwd : "/", "capabilities", "bounding", caps(), "effective",
                  caps(), "permitted", caps(), "rlimits", "type", "RLIMIT_NOFILE", "hard",
                  (json_int_t)nofile_max, "soft", (json_int_t)nofile_max, "noNewPrivileges", 0);

    static const char *const dev_o[] = {"nosuid", "strictatime", "mode=755", "size=65536k"};
    static const char *const pts_o[] = {"nosuid",        "noexec",    "newinstance",
                                        "ptmxmode=0666", "mode=0620", "gid=5"};
    static const char *const shm_o[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"};
    static const char *const mq_o[] = {"nosuid", "noexec", "nodev"};
    static const char *const sys_o[] = {"nosuid", "noexec", "nodev", "ro"};
    json_t *mounts = json_array();
    json_array_append_new(mounts, mount_entry("/proc", "proc", "proc", NULL, 0));
    json_array_append_new(mounts, mount_entry("/dev", "tmpfs", "tmpfs", dev_o, 4));
    json_array_append_new(mounts, mount_entry("/dev/pts", "devpts", "devpts", pts_o, 6));
    json_array_append_new(mounts, mount_entry("/dev/shm", "tmpfs", "shm", shm_o, 5));
    json_array_append_new(mounts, mount_entry("/dev/mqueue", "mqueue", "mqueue", mq_o, 3));
    json_array_append_new(mounts, mount_entry("/sys", "sysfs", "sysfs", sys_o, 4));
    for (size_t i = 0; i < s->n_mounts; i++) {
        const lc_runc_mount *m = &s->mounts[order[i]];
        if (m->kind == LC_RUNC_TMPFS) {
            char size[48];
            snprintf(size, sizeof(size), "size=%llu", m->size);
            const char *o[] = {"nosuid", "nodev", m->readonly ? "ro" : "rw", size};
            json_array_append_new(mounts,
                                  mount_entry(m->target, "tmpfs", "tmpfs", o, m->size ? 4 : 3));
        } else {
            const char *o[] = {"rbind", m->readonly ? "ro" : "rw"};
            json_array_append_new(mounts, mount_entry(m->target, "bind", m->source, o, 2));
        }
    }

    json_t *ns = json_array();
    const char *nss[] = {"pid", "ipc", "uts", "mount"};
    for (size_t i = 0; i < 4; i++)
        json_array_append_new(ns, json_pack("{s:s}", "type", nss[i]));
    if (!s->network_host && s->netns_path != NULL)
        json_array_append_new(ns,
                              json_pack("{s:s, s:s}", "type", "network", "path", s->netns_path));
    else if (!s->network_host)
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));

    static const char *const masked[] = {
        "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
        "/sys/firmware",       "/proc/scsi"};
    static const char *const ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                     "/proc/sysrq-trigger"};
    json_t *linux_ = json_pack("{s:{s:[{s:b, s:s}]}, s:o, s:o, s:o}", "resources", "devices",
                               "allow", 0, "access", "rwm", "namespaces", ns, "maskedPaths",
                               strv(masked, sizeof(masked) / sizeof(masked[0])), "readonlyPaths",
                               strv(ro, sizeof(ro) / sizeof(ro[0])));
    return json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2-dev",
                     "process", process, "root", "path", "rootfs", "readonly", 0, "hostname",
                     s->hostname && *s->hostname ? s->hostname : "layercache", "mounts", mounts,
                     "linux", linux_);
}

static int env_has(const lc_strlist *env, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < env->len; i++)
        if (strncmp(env->items[i], key, n) == 0 && env->items[i][n] == '=')
            return 1;
    return 0;
}

static int valid_id(const char *id)
{
    if (id == NULL || *id == '\0' || strlen(id) > 128)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

static char *join_or_null(const char *a, const char *b)
{
    return a ? lc_fs_join(a, b) : NULL;
}

/* Mounts shallowest target first (stable), so /a is mounted before /a/b
 * whatever the order written, as BuildKit sorts them. */
static int order_mounts(const lc_runc_step *s, size_t **out, lc_err *err)
{
    size_t n = s->n_mounts, *o = malloc((n ? n : 1) * sizeof(*o));
    if (o == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lc_runc_mount *m = &s->mounts[i];
        if (m->target == NULL || m->target[0] != '/' ||
            (m->kind == LC_RUNC_BIND && m->source == NULL)) {
            free(o);
            return lc_err_set(err, LC_INVALID_ARGUMENT, "mount %zu needs an absolute target%s", i,
                              m->kind == LC_RUNC_BIND ? " and a source" : "");
        }
        o[i] = i;
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, n is small */
        size_t v = o[i], j = i;
        size_t dv = 0;
        for (const char *p = s->mounts[v].target; *p; p++)
            dv += *p == '/';
        while (j > 0) {
            size_t dj = 0;
            for (const char *p = s->mounts[o[j - 1]].target; *p; p++)
                dj += *p == '/';
            if (dj <= dv)
                break;
            o[j] = o[j - 1];
            j--;
        }
        o[j] = v;
    }
    *out = o;
    return 0;
}

/* Whether target lies in or on dir ("/dev" holds "/dev/x"). */
static int under(const char *target, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(target, dir, n) == 0 && (target[n] == '\0' || target[n] == '/');
}

/* Makes the mount points missing from the rootfs (stubs.h). A target below
 * /proc, /dev or /sys, or below another extra mount, is made by runc inside
 * that mount, not in the rootfs. */
static int make_stubs(lc_runc *r, const lc_runc_step *s, const size_t *order, lc_err *err)
{
    size_t n = NBASE + s->n_mounts, k = 0;
    const char **targets = calloc(n, sizeof(*targets));
    bool *is_file = calloc(n, sizeof(*is_file));
    int rc = 0;
    if (targets == NULL || is_file == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < NBASE; i++)
        targets[k++] = base_targets[i];
    for (size_t i = 0; i < s->n_mounts; i++) {
        const lc_runc_mount *m = &s->mounts[order[i]];
        int nested = 0;
        for (size_t b = 0; b < NBASE; b++)
            nested |= under(m->target, base_targets[b]);
        for (size_t j = 0; j < i; j++)
            nested |= under(m->target, s->mounts[order[j]].target);
        if (nested)
            continue;
        struct stat st;
        is_file[k] = m->kind == LC_RUNC_BIND && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode);
        targets[k++] = m->target;
    }
    rc = lc_stubs_make(r->rootfs, targets, is_file, k, &r->stubs, err);
out:
    free(targets);
    free(is_file);
    return rc;
}

static void free_runc(lc_runc *r)
{
    free(r->bundle);
    free(r->rootfs);
    free(r->state_root);
    free(r->upper);
    free(r->work);
    free(r->id);
    free(r->runc);
    free(r);
}

int lc_runc_prepare(const lc_runc_step *s, lc_runc **out, lc_err *err)
{
    *out = NULL;
    if (!valid_id(s->id))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "container id \"%s\" must be 1-128 of [A-Za-z0-9_.-]",
                          s->id ? s->id : "");
    if (s->bundle_dir == NULL || s->upper_dir == NULL || s->argc == 0 || s->argv == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "runc step needs bundle_dir, upper_dir, argv");
    lc_runc *r = calloc(1, sizeof(*r));
    lc_strlist env = {0};
    json_t *cfg = NULL;
    char *home = NULL, *cfgpath = NULL, *empty = NULL;
    size_t *order = NULL;
    int rc = 0, made_bundle = 0;
    if (r == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    r->bundle = strdup(s->bundle_dir);
    r->rootfs = join_or_null(s->bundle_dir, "rootfs");
    r->state_root = join_or_null(s->bundle_dir, "state");
    r->upper = strdup(s->upper_dir);
    r->work = s->work_dir ? strdup(s->work_dir) : join_or_null(s->bundle_dir, "work");
    r->id = strdup(s->id);
    r->runc = strdup(s->runc_path ? s->runc_path : "runc");
    cfgpath = join_or_null(s->bundle_dir, "config.json");
    empty = join_or_null(s->bundle_dir, "empty");
    if (!r->bundle || !r->rootfs || !r->state_root || !r->upper || !r->work || !r->id || !r->runc ||
        !cfgpath || !empty) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    char *parent = strdup(s->bundle_dir);
    char *slash = parent ? strrchr(parent, '/') : NULL;
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        lc_fs_mkdir_p(parent);
    }
    free(parent);
    if (mkdir(r->bundle, 0700) < 0) {
        rc = lc_err_set(err, errno == EEXIST ? LC_ALREADY_EXISTS : lc_code_from_errno(errno),
                        "create bundle %s: %s", r->bundle, strerror(errno));
        goto fail;
    }
    made_bundle = 1;
    if (mkdir(r->rootfs, 0755) < 0 || mkdir(r->state_root, 0700) < 0 ||
        (s->n_lower == 0 && mkdir(empty, 0755) < 0)) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "populate bundle %s: %s", r->bundle,
                        strerror(errno));
        goto fail;
    }
    const char *scratch[] = {empty};
    rc = lc_overlay_mount(s->n_lower ? s->lower_dirs : scratch, s->n_lower ? s->n_lower : 1,
                          r->upper, r->work, r->rootfs, err);
    if (rc < 0)
        goto fail;
    r->mounted = 1;
    if ((rc = order_mounts(s, &order, err)) < 0 || (rc = make_stubs(r, s, order, err)) < 0)
        goto fail;

    unsigned uid, gid, groups[MAX_GROUPS];
    size_t ngroups = MAX_GROUPS;
    rc = lc_runc_resolve_user(r->rootfs, s->user, &uid, &gid, groups, &ngroups, &home, err);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < s->n_env; i++) {
        if (lc_strlist_push(&env, s->env[i]) < 0) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
    }
    if (!env_has(&env, "PATH") && lc_strlist_push(&env, DEFAULT_PATH) < 0)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (rc == 0 && !env_has(&env, "HOME")) {
        size_t len = strlen(home && *home ? home : "/") + 6;
        char *h = malloc(len);
        if (h != NULL)
            snprintf(h, len, "HOME=%s", home && *home ? home : "/");
        if (lc_strlist_push_owned(&env, h) < 0)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (rc < 0)
        goto fail;
    cfg = build_config(s, order, uid, gid, groups, ngroups, &env);
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    if (text == NULL) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "runc config: out of memory or an argument/env string is not UTF-8");
        goto fail;
    }
    rc = lc_fs_write_file(cfgpath, text, strlen(text), err);
    explicit_bzero(text, strlen(text)); /* the environment may hold a secret */
    free(text);
    if (rc < 0)
        goto fail;

    size_t a = 0;
    r->argv[a++] = r->runc;
    r->argv[a++] = "--root";
    r->argv[a++] = r->state_root;
    r->argv[a++] = "run";
    r->argv[a++] = "--no-new-keyring";
    r->argv[a++] = "--bundle";
    r->argv[a++] = r->bundle;
    r->argv[a++] = r->id;
    r->argv[a] = NULL;
    *out = r;
    r = NULL;
    goto done;
fail:
    if (r->mounted && lc_overlay_unmount(r->rootfs, NULL) == 0)
        r->mounted = 0;
    if (!r->mounted)
        lc_stubs_remove(&r->stubs, r->upper);
    if (made_bundle && !r->mounted) /* never rm -rf through a live mount */
        lc_fs_rm_rf(r->bundle);
    free_runc(r);
    r = NULL;
done:
    json_decref(cfg);
    lc_strlist_clear(&env);
    free(order);
    free(home);
    free(cfgpath);
    free(empty);
    return rc;
}

const char *const *lc_runc_argv(const lc_runc *r)
{
    return r->argv;
}

const char *lc_runc_rootfs(const lc_runc *r)
{
    return r->rootfs;
}

static int spawn_wait(char *const argv[], int in_fd, int out_fd, int err_fd, int *status,
                      lc_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_adddup2(&fa, in_fd >= 0 ? in_fd : devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd >= 0 ? out_fd : devnull, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd >= 0 ? err_fd : devnull, 2);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (devnull >= 0)
        close(devnull);
    if (e != 0)
        return lc_err_set(err, e == ENOENT ? LC_FAILED_PRECONDITION : lc_code_from_errno(e),
                          "start %s: %s%s", argv[0], strerror(e),
                          e == ENOENT ? " (install Debian's runc)" : "");
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR)
            return lc_err_set(err, lc_code_from_errno(errno), "wait for %s: %s", argv[0],
                              strerror(errno));
    }
    return 0;
}

int lc_runc_wait_run(lc_runc *r, int out_fd, int err_fd, int *exit_code, lc_err *err)
{
    int status;
    int rc = spawn_wait((char *const *)r->argv, -1, out_fd, err_fd, &status, err);
    if (rc < 0)
        return rc;
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return 0;
}

int lc_runc_cleanup(lc_runc **rp, lc_err *err)
{
    if (rp == NULL || *rp == NULL)
        return 0;
    lc_runc *r = *rp;
    int rc = 0;
    /* runc removes the container when `run` returns; after a crash or a
     * kill it may not have. */
    char *sdir = lc_fs_join(r->state_root, r->id);
    struct stat st;
    if (sdir != NULL && stat(sdir, &st) == 0) {
        char *argv[] = {r->runc, "--root", r->state_root, "delete", "--force", r->id, NULL};
        int status;
        spawn_wait(argv, -1, -1, -1, &status, NULL);
    }
    free(sdir);
    if (r->mounted) {
        int u = lc_overlay_unmount(r->rootfs, err);
        if (u < 0)
            rc = u;
        else
            r->mounted = 0;
    }
    if (!r->mounted) {
        lc_stubs_remove(&r->stubs, r->upper);
        int d = lc_fs_rm_rf(r->bundle);
        if (d < 0 && rc == 0)
            rc = lc_err_set(err, lc_code_from_errno(-d), "remove bundle %s: %s", r->bundle,
                            strerror(-d));
    }
    free_runc(r);
    *rp = NULL;
    return rc;
}

int lc_runc_run(const lc_runc_step *step, int out_fd, int err_fd, int *exit_code, lc_err *err)
{
    lc_runc *r = NULL;
    int rc = lc_runc_prepare(step, &r, err);
    if (rc < 0)
        return rc;
    rc = lc_runc_wait_run(r, out_fd, err_fd, exit_code, err);
    int c = lc_runc_cleanup(&r, rc < 0 ? NULL : err);
    return rc < 0 ? rc : c;
}

int lc_runc_shell_argv(const char *const *shell, size_t nshell, const char *cmd, lc_strlist *out)
{
    static const char *const def[] = {"/bin/sh", "-c"};
    if (nshell == 0) {
        shell = def;
        nshell = 2;
    }
    for (size_t i = 0; i < nshell; i++)
        if (lc_strlist_push(out, shell[i]) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    return lc_strlist_push(out, cmd) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
}
