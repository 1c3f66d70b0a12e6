/* network.c - a RUN step's network (see network.h). */
#include "build-worker/runtime/network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"

extern char **environ;

/* slirp4netns's fixed addresses (--configure): the guest is 10.0.2.100,
 * 10.0.2.2 the host (refused with --disable-host-loopback), 10.0.2.3 DNS. */
#define SLIRP_DNS "10.0.2.3"
/* pasta: queries to this address go to the host's resolver (--dns-forward). */
#define PASTA_DNS "169.254.1.53"
/* How long a NAT process may take to come up. */
#define NAT_START_TIMEOUT_MS 10000

static const char *const file_targets[LC_NET_NFILES] = {"/etc/resolv.conf", "/etc/hosts",
                                                        "/etc/hostname"};
static const char *const file_names[LC_NET_NFILES] = {"resolv.conf", "hosts", "hostname"};

struct lc_net {
    lc_net_mode mode;
    lc_net_backend backend;
    int nsfd;        /* the step's network namespace (default mode), else -1 */
    char nspath[64]; /* "/proc/PID/fd/N" */
    pid_t nat_pid;   /* slirp4netns (our child) or pasta (a daemon), 0 = none */
    bool nat_is_child;
    int exit_fd;  /* slirp4netns --exit-fd: it quits when this closes */
    char *nsfile; /* pasta: the namespace bound on a file (it will not open
                     /proc/PID/fd/N), unmounted at close */
    char *files[LC_NET_NFILES];
};

const char *lc_net_file_target(size_t i)
{
    return i < LC_NET_NFILES ? file_targets[i] : NULL;
}

const char *lc_net_file_source(const lc_net *n, size_t i)
{
    return i < LC_NET_NFILES ? n->files[i] : NULL;
}

const char *lc_net_netns_path(const lc_net *n)
{
    return n->nsfd >= 0 ? n->nspath : NULL;
}

static lc_net_backend resolve_backend(lc_net_backend b)
{
    if (b != LC_NET_BACKEND_AUTO)
        return b;
    const char *e = getenv("LAYERCACHE_RUN_NETWORK");
    if (e != NULL && strcmp(e, "pasta") == 0)
        return LC_NET_BACKEND_PASTA;
    return LC_NET_BACKEND_SLIRP4NETNS;
}

const char *lc_net_backend_name(lc_net_backend b)
{
    return resolve_backend(b) == LC_NET_BACKEND_PASTA ? "pasta" : "slirp4netns";
}

/* ---- --add-host ---- */

int lc_net_parse_host(const char *spec, char **name, char **ip, lc_err *err)
{
    *name = *ip = NULL;
    const char *sep = strchr(spec, '=');
    if (sep == NULL)
        sep = strchr(spec, ':');
    if (sep == NULL || sep == spec)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--add-host '%s': expected NAME:IP or NAME=IP",
                          spec);
    for (const char *p = spec; p < sep; p++)
        if (*p <= ' ' || *p == '#' || *p == 0x7f)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "--add-host '%s': '%.*s' is not a host name", spec, (int)(sep - spec),
                              spec);
    const char *v = sep + 1;
    size_t vl = strlen(v);
    if (vl >= 2 && v[0] == '[' && v[vl - 1] == ']') {
        v++;
        vl -= 2;
    }
    char addr[64];
    snprintf(addr, sizeof(addr), "%.*s", (int)vl, v);
    if (strcmp(addr, "host-gateway") == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--add-host '%s': host-gateway is not supported (RUN steps cannot "
                          "reach the build host's own addresses)",
                          spec);
    unsigned char buf[16];
    if (vl >= sizeof(addr) ||
        (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--add-host '%s': '%s' is not an IPv4 or IPv6 address", spec, addr);
    *name = strndup(spec, (size_t)(sep - spec));
    *ip = strdup(addr);
    if (*name == NULL || *ip == NULL) {
        free(*name);
        free(*ip);
        *name = *ip = NULL;
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

/* ---- the files ---- */

static bool is_loopback_ns(const char *addr)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, addr, b) == 1)
        return b[0] == 127;
    if (inet_pton(AF_INET6, addr, b) == 1)
        return memcmp(b, &in6addr_loopback, 16) == 0;
    return false;
}

/* Appends to a growing buffer; NULL *buf after an allocation failure. */
static void bprintf(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bprintf(char **buf, size_t *len, const char *fmt, ...)
{
    if (*buf == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *g = n >= 0 ? realloc(*buf, *len + (size_t)n + 1) : NULL;
    if (g == NULL) {
        free(*buf);
        *buf = NULL;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(g + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *buf = g;
    *len += (size_t)n;
}

/* The step's resolv.conf from the host's (see network.h). */
static char *make_resolv_conf(const lc_net_opts *o, lc_net_backend backend, size_t *len)
{
    char *host = NULL, *out = strdup("");
    size_t hlen = 0;
    *len = 0;
    if (lc_fs_read_file(o->host_resolv_conf ? o->host_resolv_conf : "/etc/resolv.conf", 1 << 20,
                        &host, &hlen, NULL) < 0)
        host = NULL; /* no resolv.conf on the host: only what we add */
    if (o->mode == LC_NET_HOST && host != NULL) {
        bprintf(&out, len, "%s", host);
        free(host);
        return out;
    }
    for (char *save = NULL, *line = host ? strtok_r(host, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        char word[16], addr[64];
        if (sscanf(line, " %15s %63s", word, addr) == 2 && strcmp(word, "nameserver") == 0) {
            /* default: the NAT's forwarder answers; none: Docker's rule */
            if (o->mode == LC_NET_NONE && !is_loopback_ns(addr))
                bprintf(&out, len, "nameserver %s\n", addr);
            continue;
        }
        if (line[strspn(line, " \t")] == '#' || line[strspn(line, " \t")] == ';')
            continue;
        bprintf(&out, len, "%s\n", line);
    }
    if (o->mode == LC_NET_DEFAULT)
        bprintf(&out, len, "nameserver %s\n",
                backend == LC_NET_BACKEND_PASTA ? PASTA_DNS : SLIRP_DNS);
    free(host);
    return out;
}

static char *make_hosts(const lc_net_opts *o, const char *hostname, size_t *len, lc_err *err)
{
    char *out = strdup("");
    *len = 0;
    bprintf(&out, len, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            hostname);
    for (size_t i = 0; i < o->n_extra_hosts; i++) {
        char *name, *ip;
        if (lc_net_parse_host(o->extra_hosts[i], &name, &ip, err) < 0) {
            free(out);
            return NULL;
        }
        bprintf(&out, len, "%s\t%s\n", ip, name);
        free(name);
        free(ip);
    }
    if (out == NULL)
        lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return out;
}

static int write_files(lc_net *n, const lc_net_opts *o, lc_err *err)
{
    const char *hostname = o->hostname && *o->hostname ? o->hostname : "layercache";
    for (size_t i = 0; i < LC_NET_NFILES; i++) {
        if ((n->files[i] = lc_fs_join(o->dir, file_names[i])) == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    size_t len = 0;
    char *text = make_resolv_conf(o, n->backend, &len);
    if (text == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = lc_fs_write_file(n->files[0], text, len, err);
    free(text);
    if (rc < 0)
        return rc;
    if ((text = make_hosts(o, hostname, &len, err)) == NULL)
        return -LC_INVALID_ARGUMENT;
    rc = lc_fs_write_file(n->files[1], text, len, err);
    free(text);
    if (rc < 0)
        return rc;
    char line[300];
    int l = snprintf(line, sizeof(line), "%s\n", hostname);
    return lc_fs_write_file(n->files[2], line, (size_t)l, err);
}

/* ---- the namespace and its NAT ---- */

static int loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        rc = -errno;
    ifr.ifr_flags |= IFF_UP;
    if (rc == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        rc = -errno;
    close(s);
    return rc;
}

/* A new network namespace, held by an fd: the calling thread steps into a
 * fresh one (unshare only affects this thread), brings its loopback up and
 * steps back. No helper process, about a millisecond. */
static int make_netns(lc_net *n, lc_err *err)
{
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open /proc/thread-self/ns/net: %s",
                          strerror(errno));
    if (unshare(CLONE_NEWNET) < 0) {
        int e = errno;
        close(self);
        return lc_err_set(err, e == EPERM ? LC_PERMISSION_DENIED : lc_code_from_errno(e),
                          "create a network namespace for RUN: %s (needs root)", strerror(e));
    }
    n->nsfd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int ns_errno = errno;
    int lo = n->nsfd >= 0 ? loopback_up() : 0;
    if (setns(self, CLONE_NEWNET) < 0) {
        /* This thread would go on in the step's namespace: the worker's own
         * connections would break in ways nobody could explain. */
        fprintf(stderr, "layercache: cannot return to the worker's network namespace: %s\n",
                strerror(errno));
        abort();
    }
    close(self);
    if (n->nsfd < 0)
        return lc_err_set(err, lc_code_from_errno(ns_errno), "open the new network namespace: %s",
                          strerror(ns_errno));
    if (lo < 0)
        return lc_err_set(err, lc_code_from_errno(-lo), "bring up loopback for RUN: %s",
                          strerror(-lo));
    snprintf(n->nspath, sizeof(n->nspath), "/proc/%d/fd/%d", (int)getpid(), n->nsfd);
    return 0;
}

static int spawn(char *const argv[], const int *keep, size_t nkeep, int out_fd, pid_t *pid,
                 lc_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_adddup2(&fa, devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd >= 0 ? out_fd : devnull, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd >= 0 ? out_fd : devnull, 2);
    /* dup2 onto itself clears close-on-exec (glibc >= 2.29) */
    for (size_t i = 0; i < nkeep; i++)
        posix_spawn_file_actions_adddup2(&fa, keep[i], keep[i]);
    int e = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (devnull >= 0)
        close(devnull);
    if (e != 0)
        return lc_err_set(err, e == ENOENT ? LC_FAILED_PRECONDITION : lc_code_from_errno(e),
                          "start %s: %s%s", argv[0], strerror(e),
                          e == ENOENT ? " (install Debian's slirp4netns or passt)" : "");
    return 0;
}

/* The tail of the NAT's log, for an error message. */
static void log_tail(const char *dir, char *out, size_t cap)
{
    char *path = lc_fs_join(dir, "nat.log"), *text = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (path != NULL && lc_fs_read_file(path, 1 << 20, &text, &len, NULL) == 0) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            text[--len] = '\0';
        const char *t = len > cap - 1 ? text + len - (cap - 1) : text;
        snprintf(out, cap, "%s", t);
    }
    free(text);
    free(path);
}

static int log_fd(const char *dir)
{
    char *path = lc_fs_join(dir, "nat.log");
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    free(path);
    return fd;
}

static int start_slirp(lc_net *n, const char *dir, lc_err *err)
{
    int ready[2] = {-1, -1}, quit[2] = {-1, -1};
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(quit, O_CLOEXEC) < 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (ready[i] >= 0)
                close(ready[i]);
        }
        return lc_err_set(err, lc_code_from_errno(e), "pipe: %s", strerror(e));
    }
    char rfd[32], qfd[32];
    snprintf(rfd, sizeof(rfd), "--ready-fd=%d", ready[1]);
    snprintf(qfd, sizeof(qfd), "--exit-fd=%d", quit[0]);
    /* --disable-host-loopback: 10.0.2.2 no longer leads to the worker's
     * 127.0.0.1. The largest MTU: bulk downloads run several times faster. */
    char *argv[] = {"slirp4netns",
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    "--netns-type=path",
                    rfd,
                    qfd,
                    n->nspath,
                    "tap0",
                    NULL};
    int keep[] = {ready[1], quit[0]};
    int lfd = log_fd(dir);
    int rc = spawn(argv, keep, 2, lfd, &n->nat_pid, err);
    if (lfd >= 0)
        close(lfd);
    close(ready[1]);
    close(quit[0]);
    if (rc < 0) {
        close(ready[0]);
        close(quit[1]);
        n->nat_pid = 0;
        return rc;
    }
    n->nat_is_child = true;
    n->exit_fd = quit[1];
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    char c = 0;
    int pr;
    while ((pr = poll(&p, 1, NAT_START_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    ssize_t got = pr > 0 ? read(ready[0], &c, 1) : -1;
    close(ready[0]);
    if (got != 1 || c != '1') {
        char tail[256];
        log_tail(dir, tail, sizeof(tail));
        return lc_err_set(err, LC_UNAVAILABLE, "slirp4netns did not come up%s: %s",
                          pr == 0 ? " within 10 s" : "", tail[0] ? tail : "(no output)");
    }
    return 0;
}

static int start_pasta(lc_net *n, const char *dir, lc_err *err)
{
    n->nsfile = lc_fs_join(dir, "netns");
    if (n->nsfile == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int fd = open(n->nsfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    if (fd < 0 || mount(n->nspath, n->nsfile, NULL, MS_BIND, NULL) < 0) {
        int e = errno;
        unlink(n->nsfile);
        free(n->nsfile);
        n->nsfile = NULL;
        return lc_err_set(err, lc_code_from_errno(e), "bind the network namespace for pasta: %s",
                          strerror(e));
    }
    char *pidfile = lc_fs_join(dir, "nat.pid");
    if (pidfile == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    /* No port forwarding either way (-t/-u/-T/-U none) and --no-map-gw:
     * nothing in the step reaches the worker's loopback. pasta daemonizes
     * once the namespace is configured. */
    char *argv[] = {
        "pasta",   "-q", "--config-net", "--no-map-gw", "-t",      "none",          "-u",
        "none",    "-T", "none",         "-U",          "none",    "--dns-forward", PASTA_DNS,
        "--runas", "0",  "-P",           pidfile,       "--netns", n->nsfile,       NULL};
    int lfd = log_fd(dir);
    pid_t parent;
    int rc = spawn(argv, NULL, 0, lfd, &parent, err);
    if (lfd >= 0)
        close(lfd);
    int status = 0;
    while (rc == 0 && waitpid(parent, &status, 0) < 0 && errno == EINTR)
        ;
    char *text = NULL;
    size_t len = 0;
    if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
                    lc_fs_read_file(pidfile, 64, &text, &len, NULL) < 0 || atoi(text) <= 1)) {
        char tail[256];
        log_tail(dir, tail, sizeof(tail));
        rc = lc_err_set(err, LC_UNAVAILABLE, "pasta did not come up: %s",
                        tail[0] ? tail : "(no output)");
    }
    if (rc == 0)
        n->nat_pid = (pid_t)atoi(text);
    free(text);
    free(pidfile);
    return rc;
}

void lc_net_close(lc_net **np)
{
    if (np == NULL || *np == NULL)
        return;
    lc_net *n = *np;
    if (n->exit_fd >= 0)
        close(n->exit_fd);
    if (n->nat_pid > 0) {
        /* The step is over: nothing is lost by not waiting for a clean exit. */
        kill(n->nat_pid, SIGKILL);
        while (n->nat_is_child && waitpid(n->nat_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (n->nsfile != NULL) {
        umount2(n->nsfile, MNT_DETACH);
        unlink(n->nsfile);
        free(n->nsfile);
    }
    if (n->nsfd >= 0)
        close(n->nsfd);
    for (size_t i = 0; i < LC_NET_NFILES; i++)
        free(n->files[i]);
    free(n);
    *np = NULL;
}

int lc_net_open(const lc_net_opts *o, lc_net **out, lc_err *err)
{
    *out = NULL;
    lc_net *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    n->mode = o->mode;
    n->backend = resolve_backend(o->backend);
    n->nsfd = n->exit_fd = -1;
    int rc = write_files(n, o, err);
    if (rc == 0 && o->mode == LC_NET_DEFAULT) {
        rc = make_netns(n, err);
        if (rc == 0)
            rc = n->backend == LC_NET_BACKEND_PASTA ? start_pasta(n, o->dir, err)
                                                    : start_slirp(n, o->dir, err);
    }
    if (rc < 0) {
        lc_net_close(&n);
        return rc;
    }
    *out = n;
    return 0;
}
