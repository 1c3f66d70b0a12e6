/* network.h - the network a RUN step sees, as Docker gives it (root only).
 *
 *   default  a network namespace of the step's own whose only way out is
 *            outbound NAT by a user-mode network stack (slirp4netns, or
 *            pasta from passt): DNS goes through its forwarder, and the
 *            worker's own loopback is NOT reachable (a Dockerfile must not
 *            reach the cache server, a docker socket or anything else
 *            listening on 127.0.0.1 of the build host);
 *   none     a network namespace with only loopback (runc makes it);
 *   host     the worker's network namespace (an entitlement: the caller
 *            checks it was allowed).
 *
 * In every mode the step gets /etc/resolv.conf, /etc/hosts and
 * /etc/hostname as read-only bind mounts of files written here (never part
 * of a layer): resolv.conf is the host's without its nameservers, plus the
 * NAT's DNS forwarder (default), the host's minus loopback nameservers
 * (none, Docker's rule) or the host's as is (host); hosts has localhost,
 * the container's hostname and every --add-host entry.
 *
 *   lc_net *n;
 *   lc_net_open(&(lc_net_opts){.mode = LC_NET_DEFAULT, .dir = bundle_tmpfs, ...}, &n, &err);
 *   runc config: join lc_net_netns_path(n) (NULL: none -> a new namespace,
 *                host -> none at all), bind lc_net_file(n, i) for i < 3
 *   ... run the step ...
 *   lc_net_close(&n);   // stops the NAT process, closes the namespace
 *
 * Backend: slirp4netns unless LAYERCACHE_RUN_NETWORK=pasta (measured in
 * bench/bench-network, docs/BENCHMARKS.md).
 */
#ifndef LC_NETWORK_H
#define LC_NETWORK_H

#include <stddef.h>

#include "err.h"

typedef enum lc_net_mode {
    LC_NET_DEFAULT = 0,
    LC_NET_NONE = 1,
    LC_NET_HOST = 2,
} lc_net_mode;

typedef enum lc_net_backend {
    LC_NET_BACKEND_AUTO = 0, /* $LAYERCACHE_RUN_NETWORK, else slirp4netns */
    LC_NET_BACKEND_SLIRP4NETNS,
    LC_NET_BACKEND_PASTA,
} lc_net_backend;

typedef struct lc_net_opts {
    lc_net_mode mode;
    lc_net_backend backend;
    const char *dir;                /* existing directory for the three files */
    const char *hostname;           /* NULL = "layercache" */
    const char *const *extra_hosts; /* "name:ip" or "name=ip" (lc_net_parse_host) */
    size_t n_extra_hosts;
    const char *host_resolv_conf; /* NULL = /etc/resolv.conf */
} lc_net_opts;

typedef struct lc_net lc_net;

/* Sets up the namespace (default mode) and writes the files. On failure
 * nothing is left behind and *out is NULL. */
int lc_net_open(const lc_net_opts *o, lc_net **out, lc_err *err);

/* The namespace runc should join ("/proc/PID/fd/N", borrowed), or NULL:
 * none -> runc makes an empty one, host -> the worker's. */
const char *lc_net_netns_path(const lc_net *n);

/* The files to bind, i in 0..2: container path ("/etc/resolv.conf",
 * "/etc/hosts", "/etc/hostname") and host path (borrowed). */
#define LC_NET_NFILES 3
const char *lc_net_file_target(size_t i);
const char *lc_net_file_source(const lc_net *n, size_t i);

/* Stops the NAT process, closes the namespace, frees n and NULLs it
 * (accepts NULL). The files stay (they live in the caller's dir). */
void lc_net_close(lc_net **n);

/* Splits an --add-host value "name:ip" or "name=ip" (buildx spelling; an
 * IPv6 address may be written in brackets) into name and ip (malloc'd).
 * INVALID_ARGUMENT naming the value when the name is empty or not a host
 * name, or the address is not IPv4/IPv6 ("host-gateway" is refused: the
 * worker's own addresses are kept out of reach). */
int lc_net_parse_host(const char *spec, char **name, char **ip, lc_err *err);

/* The backend a step would use with o->backend == AUTO ("slirp4netns" or
 * "pasta"); for messages and the benchmark. */
const char *lc_net_backend_name(lc_net_backend b);

#endif
