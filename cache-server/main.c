/* main.c - bin/layercache-server: flags, store, gRPC server, signals.
 *
 * Start-up prints exactly one line to stdout,
 *   layercache-server listening grpc=HOST:PORT http=HOST:PORT
 * with the real bound ports (tests parse it). SIGTERM/SIGINT stop the
 * server: calls in flight get --grace seconds, then the store is closed and
 * the process exits 0. */
#include <errno.h>
#include <malloc.h>
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "cluster.h" /* cluster mode (forward.c) */
#include "evict.h"
#include "flags.h"
#include "health.h" /* health: grpc.health.v1.Health for probes (owner: helm) */
#include "admin.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "services.h"
#include "stats.h"
#include "store.h"
#include "tls.h"
#include "trust.h"

#define MOD "main"

static char *opt_listen, *opt_data, *opt_log_level;
static int64_t opt_threads, opt_grace, opt_max_batch;
static int64_t opt_max_size, opt_max_age; /* evict.h */
static bool opt_sync;
static char *opt_tokens, *opt_tls_cert, *opt_tls_key, *opt_tls_client_ca; /* auth.h, tls.h */
static bool opt_anon_read;
static int64_t opt_promote_quorum;                     /* trust.h */
static char *opt_http_listen;                          /* http.h */
static char *opt_peers, *opt_self, *opt_cluster_token; /* cluster.h */
static char *opt_cluster_ca, *opt_cluster_tls_name;    /* cluster.h, with --tls-cert */
static int64_t opt_replication, opt_peer_port_offset;

static const lc_flag flags[] = {
    {"listen", 0, LC_FLAG_STRING, &opt_listen, "0.0.0.0:9092", "ADDR",
     "gRPC listen address HOST:PORT ([::1]:PORT for IPv6); port 0 picks a free port"},
    {"data", 0, LC_FLAG_STRING, &opt_data, "/var/lib/layercache", "DIR",
     "RocksDB data directory (created with its parents if missing)"},
    {"threads", 0, LC_FLAG_INT, &opt_threads, "2", "N",
     "gRPC worker threads, one completion queue each (more than free cores costs throughput)"},
    {"log-level", 0, LC_FLAG_STRING, &opt_log_level, "info", "LEVEL",
     "debug, info, warn, error or off (logs go to stderr)"},
    {"grace", 0, LC_FLAG_DURATION, &opt_grace, "10", "SECONDS",
     "on SIGTERM/SIGINT, let calls in flight finish for this long, then cancel them"},
    {"max-batch-bytes", 0, LC_FLAG_SIZE, &opt_max_batch, "4032K", "BYTES",
     "largest total of blob data BatchUpdateBlobs/BatchReadBlobs accept (advertised as "
     "max_batch_total_size_bytes; must stay below the 16M message limit)"},
    {"sync", 0, LC_FLAG_BOOL, &opt_sync, "false", NULL,
     "fsync the RocksDB WAL on every blob and action-cache commit (survives power loss)"},
    /* evict.h: default unlimited, as a cache that silently drops data at a
     * guessed size would surprise; a full disk still fails writes cleanly. */
    {"max-size", 0, LC_FLAG_SIZE, &opt_max_size, "0", "BYTES",
     "hard limit on what the cache holds (K/M/G/T suffixes): blobs and action results with "
     "~256 bytes of bookkeeping each, and uploads in flight; least recently used blobs and the "
     "action results that need them are evicted from 90 % down to 80 %, and a write that would "
     "cross the limit waits for eviction. The data directory, RocksDB's own files included, "
     "stays within BYTES + BYTES/10 + 64M: give it a volume at least that big (e.g. 100G needs "
     "110.1G; the Helm chart sizes its volume so). 0 = unlimited"},
    {"max-age", 0, LC_FLAG_DURATION, &opt_max_age, "0", "DURATION",
     "evict blobs and action results not used for this long (e.g. 30d); 0 = never"},
    /* auth.h: access control and TLS. */
    {"tokens", 0, LC_FLAG_STRING, &opt_tokens, NULL, "FILE",
     "require bearer tokens: lines '<token> <role> [<name>]' ('#' comments), role read, write "
     "(read + uploads + UpdateActionResult) or admin (write + the Admin service), or "
     "untrusted (named: uploads, and action results seen only by tokens of its name until "
     "promoted; docs/SECURITY.md); clients send 'authorization: Bearer <token>'; re-read on "
     "SIGHUP. Without it every caller may do everything"},
    {"allow-anonymous-read", 0, LC_FLAG_BOOL, &opt_anon_read, "false", NULL,
     "with --tokens: callers without a token may read (lookups and downloads)"},
    {"promote-quorum", 0, LC_FLAG_INT, &opt_promote_quorum, "0", "N",
     "an action result that N (>= 2) distinct untrusted token names stored identically for a "
     "key without a trusted entry becomes visible to every caller; 0 = only a trusted writer "
     "storing the identical result promotes it"},
    {"tls-cert", 0, LC_FLAG_STRING, &opt_tls_cert, NULL, "FILE",
     "serve TLS only (clients use grpcs://) with this PEM certificate chain; needs --tls-key"},
    {"tls-key", 0, LC_FLAG_STRING, &opt_tls_key, NULL, "FILE",
     "PEM private key of --tls-cert (unencrypted)"},
    {"tls-client-ca", 0, LC_FLAG_STRING, &opt_tls_client_ca, NULL, "FILE",
     "mutual TLS: require client certificates signed by a CA in this PEM file"},
    /* http.h: /metrics, /status and the dashboard, apart from gRPC. */
    {"http-listen", 0, LC_FLAG_STRING, &opt_http_listen, "127.0.0.1:9090", "ADDR",
     "HTTP listen address HOST:PORT (numeric IPv4 or [IPv6]) for /metrics (Prometheus), "
     "/status (JSON) and the dashboard page at /; port 0 picks a free port. Loopback unless "
     "told otherwise (e.g. 0.0.0.0:9090): the dashboard shows instruction texts, so with "
     "--tokens every page but /metrics and /healthz needs a token (docs/SECURITY.md)"},
    /* cluster.h: off unless --peers is given. */
    {"peers", 0, LC_FLAG_STRING, &opt_peers, NULL, "LIST|NAME:PORT",
     "cluster mode: the replicas, as a comma-separated HOST:PORT list (this one included) or "
     "one DNS name whose A/AAAA records are the replicas (a Kubernetes headless Service, "
     "re-resolved every 10s); keys are placed on --replication owners by rendezvous hashing "
     "and any replica forwards calls to the owners. Empty = a single node"},
    {"self", 0, LC_FLAG_STRING, &opt_self, NULL, "HOST:PORT",
     "with --peers: this replica's address as the peer list names it (or a name resolving to "
     "one of the peers' addresses)"},
    {"replication", 0, LC_FLAG_INT, &opt_replication, "2", "N",
     "with --peers: how many replicas own (store) each blob and action result"},
    {"cluster-token", 0, LC_FLAG_STRING, &opt_cluster_token, NULL, "TOKEN",
     "with --peers: secret shared by the replicas; peer calls carry it as their bearer token "
     "and are served locally without access control. Required with --tokens; without "
     "--tokens a fixed default is used"},
    {"peer-port-offset", 0, LC_FLAG_INT, &opt_peer_port_offset, "1", "N",
     "with --peers: replicas call each other on a second port, the gRPC port + N (served "
     "by its own threads, so forwarding replicas never wait on each other's busy threads; "
     "cluster token only; TLS with --tls-cert's certificate when that is given)"},
    {"cluster-ca", 0, LC_FLAG_STRING, &opt_cluster_ca, NULL, "FILE",
     "with --peers and --tls-cert: PEM CA certificates that signed the replicas' "
     "certificates, checked when a replica calls another's peer port (default: the "
     "system's roots)"},
    {"cluster-tls-name", 0, LC_FLAG_STRING, &opt_cluster_tls_name, NULL, "NAME",
     "with --peers and --tls-cert: the name every replica's certificate carries, checked "
     "instead of the address a replica is called at (needed when --peers is a DNS name, "
     "whose replicas are called by IP address; e.g. the headless Service's name)"},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

/* mkdir -p */
static int make_dirs(const char *path, lc_err *err)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--data '%s' is empty or too long", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return lc_err_set(err, lc_code_from_errno(errno), "cannot create directory '%s': %s",
                              buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return lc_err_set(err, LC_FAILED_PRECONDITION, "--data '%s' is not a directory", path);
    return 0;
}

/* The host part of HOST:PORT as the user wrote it ("0.0.0.0", "[::1]"). */
static void listen_host(const char *addr, char *out, size_t outlen)
{
    const char *colon = strrchr(addr, ':');
    size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, addr, len);
    out[len] = '\0';
}

/* http: each table is wrapped so its calls are counted and timed. */
static int add_table(lc_srv *srv, lc_http *http, const lc_method *table, size_t n, lc_err *err)
{
    /* cluster.h: the peer port registers the tables unobserved (http NULL). */
    const lc_method *m = http != NULL ? lc_http_observe(http, table, n) : table;
    return lc_srv_add_methods(srv, m, n, err);
}

static int register_tables(lc_srv *srv, lc_http *http, lc_err *err)
{
    for (size_t i = 0; i < lc_svc_n_tables; i++) {
        int rc = add_table(srv, http, lc_svc_tables[i].m, *lc_svc_tables[i].n, err);
        if (rc < 0)
            return rc;
    }
    return add_table(srv, http, lc_health_methods, lc_health_n_methods, err); /* health.h */
}

int main(int argc, char **argv)
{
    lc_err err = {0};
    int status = 1;
    lc_store *store = NULL;
    lc_stats *stats = NULL;
    lc_hits *hits = NULL; /* admin */
    lc_trust *trust = NULL; /* trust.h */
    lc_srv *srv = NULL;
    lc_evict *evict = NULL;
    /* auth.h, tls.h */
    lc_auth *auth = NULL;
    char *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL;
    lc_http *http = NULL;       /* http.h */
    lc_cluster *cluster = NULL; /* cluster.h */
    lc_srv *peer_srv = NULL;    /* cluster.h: the peer port */
    bool grpc_up = false;

    /* Stream buffers (gRPC slices, RocksDB's blob reads, chunk batches) are
     * ~1 MiB and often freed on other threads than they were allocated on.
     * Left to glibc, the dynamic mmap threshold moves them into per-thread
     * arenas that keep the memory (64 concurrent uploads: 1.5 GiB RSS); a
     * threshold below 1 MiB makes every buffer a fresh mmap whose page
     * faults were a quarter of ByteStream.Read's CPU (~500 MB/s). One arena
     * with a fixed 4 MiB threshold reuses the buffers: Read ~1200 MB/s, and
     * 64 concurrent uploads peak at 190-235 MiB instead of 320-380. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_ARENA_MAX, 1);

    /* Blocked before any thread exists (gRPC's inherit the mask); a sigwait
     * below handles them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = lc_flags_parse(flags, N_FLAGS, "LAYERCACHE_", argc, argv, 1, NULL, &err);
    if (rc == LC_FLAGS_HELP) {
        lc_flags_usage(stdout,
                       "usage: layercache-server [options]\n\n"
                       "Serves the REAPI v2 remote cache (ActionCache, CAS, ByteStream,\n"
                       "Capabilities) and layercache.v1.Admin over gRPC, stored in RocksDB.\n"
                       "Every option can also be set by the environment variable shown.\n"
                       "Access control is off unless --tokens is given: then every call needs\n"
                       "a token with the method's role (UNAUTHENTICATED without a known token,\n"
                       "PERMISSION_DENIED with too low a role); SIGHUP re-reads the file.\n"
                       "Untrusted tokens' action results stay theirs until a trusted writer (or\n"
                       "--promote-quorum untrusted names) stores the identical result.",
                       flags, N_FLAGS, "LAYERCACHE_");
        status = 0;
        goto out;
    }
    if (rc < 0) {
        fprintf(stderr, "layercache-server: %s (see --help)\n", err.msg);
        status = 2;
        goto out;
    }
    int level = lc_log_level_parse(opt_log_level);
    if (level < 0) {
        fprintf(stderr,
                "layercache-server: --log-level '%s' is not one of debug, info, warn, "
                "error, off\n",
                opt_log_level);
        status = 2;
        goto out;
    }
    lc_log_set_level(level);
    if (opt_threads < 1 || opt_threads > 256) {
        fprintf(stderr, "layercache-server: --threads must be 1..256, got %lld\n",
                (long long)opt_threads);
        status = 2;
        goto out;
    }
    if (opt_max_batch < 1 || opt_max_batch > LC_SRV_MAX_MESSAGE - LC_SRV_BATCH_HEADROOM) {
        fprintf(stderr,
                "layercache-server: --max-batch-bytes must be 1..%d (the gRPC message "
                "limit minus headroom), got %lld\n",
                LC_SRV_MAX_MESSAGE - LC_SRV_BATCH_HEADROOM, (long long)opt_max_batch);
        status = 2;
        goto out;
    }

    if (make_dirs(opt_data, &err) < 0) {
        fprintf(stderr, "layercache-server: %s\n", err.msg);
        goto out;
    }
    if (opt_max_size < 0 || opt_max_age < 0) {
        fprintf(stderr, "layercache-server: --max-size and --max-age must not be negative\n");
        status = 2;
        goto out;
    }
    /* auth.h: before the store, so a bad file fails fast. */
    if (opt_tokens != NULL && lc_auth_open(opt_tokens, opt_anon_read, &auth, &err) < 0) {
        fprintf(stderr, "layercache-server: --tokens: %s\n", err.msg);
        status = 2;
        goto out;
    }
    if (opt_tokens == NULL && opt_anon_read)
        LC_WARN(MOD, "--allow-anonymous-read has no effect without --tokens (everyone may write)");
    /* trust.h: a quorum of one would make every untrusted write trusted. */
    if (opt_promote_quorum == 1 || opt_promote_quorum < 0 || opt_promote_quorum > 1000) {
        fprintf(stderr,
                "layercache-server: --promote-quorum must be 0 (off) or 2..1000, got %lld (a "
                "quorum of 1 would trust every untrusted write: give that writer a write "
                "token instead)\n",
                (long long)opt_promote_quorum);
        status = 2;
        goto out;
    }
    if (opt_tls_client_ca != NULL && opt_tls_cert == NULL) {
        fprintf(stderr, "layercache-server: --tls-client-ca needs --tls-cert and --tls-key\n");
        status = 2;
        goto out;
    }
    if (lc_tls_load(opt_tls_client_ca, "--tls-client-ca", opt_tls_cert, "--tls-cert", opt_tls_key,
                    "--tls-key", &tls_ca, &tls_cert, &tls_key, &err) < 0) {
        fprintf(stderr, "layercache-server: %s\n", err.msg);
        status = 2;
        goto out;
    }
    lc_store_options sopts = {.sync_writes = opt_sync, .max_bytes = opt_max_size};
    if (lc_store_open(opt_data, &sopts, &store, &err) < 0) {
        fprintf(stderr, "layercache-server: cannot open the store in '%s': %s\n", opt_data,
                err.msg);
        goto out;
    }
    stats = lc_stats_new();
    if (stats == NULL) {
        fprintf(stderr, "layercache-server: out of memory\n");
        goto out;
    }
    /* admin: hit counts written in batches (hits.h); flushed by lc_hits_free. */
    hits = lc_hits_new(store);
    if (hits == NULL) {
        fprintf(stderr, "layercache-server: out of memory\n");
        goto out;
    }
    trust = lc_trust_new((int)opt_promote_quorum);
    if (trust == NULL) {
        fprintf(stderr, "layercache-server: out of memory\n");
        goto out;
    }
    lc_svc_env env = {.store = store,
                      .stats = stats,
                      .max_batch_bytes = opt_max_batch,
                      .hits = hits,
                      .trust = trust};
    /* cluster.h: before any call can arrive. */
    if (opt_peers != NULL && opt_peers[0] != '\0') {
        if (auth != NULL && (opt_cluster_token == NULL || opt_cluster_token[0] == '\0')) {
            fprintf(stderr, "layercache-server: --peers with --tokens needs --cluster-token "
                            "(a secret shared by the replicas)\n");
            status = 2;
            goto out;
        }
        if (tls_cert == NULL &&
            ((opt_cluster_ca != NULL && opt_cluster_ca[0] != '\0') ||
             (opt_cluster_tls_name != NULL && opt_cluster_tls_name[0] != '\0'))) {
            fprintf(stderr, "layercache-server: --cluster-ca and --cluster-tls-name need "
                            "--tls-cert and --tls-key (the peer port serves TLS with them)\n");
            status = 2;
            goto out;
        }
        /* Read now only to report a bad file at start (peers read it when they dial). */
        char *cluster_ca = NULL, *no_cert = NULL, *no_key = NULL;
        int ca_rc = lc_tls_load(opt_cluster_ca, "--cluster-ca", NULL, NULL, NULL, NULL, &cluster_ca,
                                &no_cert, &no_key, &err);
        lc_tls_pem_free(&cluster_ca);
        if (ca_rc < 0) {
            fprintf(stderr, "layercache-server: %s\n", err.msg);
            status = 2;
            goto out;
        }
        lc_cluster_options co = {.peers = opt_peers,
                                 .self = opt_self,
                                 .replication = (int)opt_replication,
                                 .token = opt_cluster_token,
                                 .peer_port_offset = (int)opt_peer_port_offset,
                                 .tls = tls_cert != NULL,
                                 .tls_ca_file = opt_cluster_ca,
                                 .tls_server_name = opt_cluster_tls_name};
        if (opt_replication < 1 || opt_replication > LC_CLUSTER_MAX_PEERS ||
            opt_peer_port_offset < 1 || opt_peer_port_offset > 1000 ||
            lc_cluster_new(&co, &cluster, &err) < 0) {
            fprintf(stderr, "layercache-server: %s\n",
                    err.msg[0] ? err.msg
                               : "--replication must be 1..64, --peer-port-offset 1..1000");
            status = 2;
            goto out;
        }
        env.cluster = cluster;
    }
    /* evict.h: access times flushed always, limits applied when set. */
    env.max_bytes = opt_max_size;
    lc_evict_options eo = {.max_bytes = opt_max_size, .max_age = opt_max_age};
    if (lc_evict_start(store, stats, &eo, &evict, &err) < 0) {
        fprintf(stderr, "layercache-server: %s\n", err.msg);
        goto out;
    }

    /* http: its own libuv thread; up before gRPC so no call goes unobserved. */
    lc_http_ctx hctx = {.store = store,
                        .stats = stats,
                        .max_bytes = opt_max_size,
                        .max_age = opt_max_age,
                        .describe = lc_admin_describe,
                        .auth = auth,       /* auth.h: pages need a token too */
                        .trust = trust,     /* trust.h */
                        .hits = hits,       /* admin.h: the entry list */
                        .entries = lc_admin_entries_json};
    char http_addr[300];
    if (lc_http_start(opt_http_listen, &hctx, &http, http_addr, sizeof(http_addr), &err) < 0) {
        fprintf(stderr, "layercache-server: %s\n", err.msg);
        goto out;
    }

    grpc_init();
    grpc_up = true;
    lc_srv_options o = {
        .listen = opt_listen, .threads = (int)opt_threads, .env = &env, .stats = stats};
    o.auth = auth; /* auth.h */
    o.tls_cert_pem = tls_cert;
    o.tls_key_pem = tls_key;
    o.tls_client_ca_pem = tls_ca;
    o.peer_auth = cluster != NULL ? lc_cluster_auth_value(cluster) : NULL; /* cluster.h */
    int port = 0;
    if (lc_srv_new(&o, &srv, &err) < 0 || register_tables(srv, http, &err) < 0 ||
        lc_srv_start(srv, &port, &err) < 0) {
        fprintf(stderr, "layercache-server: %s\n", err.msg);
        goto out;
    }
    char host[256];
    listen_host(opt_listen, host, sizeof(host));
    /* cluster.h: the peer port, raw tables (peer calls are not client traffic). */
    if (cluster != NULL) {
        char peer_listen[300];
        snprintf(peer_listen, sizeof(peer_listen), "%s:%d", host, port + (int)opt_peer_port_offset);
        lc_srv_options po = {.listen = peer_listen,
                             .threads = (int)opt_threads,
                             .env = &env,
                             .peer_auth = lc_cluster_auth_value(cluster),
                             .peers_only = true,
                             /* the client port's certificate; peers present no
                              * client certificate, the cluster token admits them */
                             .tls_cert_pem = tls_cert,
                             .tls_key_pem = tls_key};
        int pport = 0;
        if (lc_srv_new(&po, &peer_srv, &err) < 0 || register_tables(peer_srv, NULL, &err) < 0 ||
            lc_srv_start(peer_srv, &pport, &err) < 0) {
            fprintf(stderr, "layercache-server: peer port %s: %s\n", peer_listen, err.msg);
            goto out;
        }
        LC_INFO(MOD, "cluster peer port %s%s", peer_listen, tls_cert != NULL ? " (TLS)" : "");
    }
    printf("layercache-server listening grpc=%s:%d http=%s\n", host, port, http_addr);
    fflush(stdout);
    LC_INFO(MOD, "serving %s:%d, data %s, %lld threads, max batch %lld bytes%s", host, port,
            opt_data, (long long)opt_threads, (long long)opt_max_batch, opt_sync ? ", sync" : "");
    /* auth.h: never the tokens themselves. */
    if (auth != NULL)
        LC_INFO(MOD, "access control: %zu tokens from %s%s", lc_auth_count(auth), opt_tokens,
                opt_anon_read ? ", anonymous read allowed" : "");
    else
        LC_INFO(MOD, "access control off (no --tokens): every caller may read, write and purge");
    if (tls_cert != NULL)
        LC_INFO(MOD, "TLS on%s", tls_ca != NULL ? ", client certificates required" : "");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* auth.h: a new table is swapped in; connections stay up. */
            if (auth == NULL) {
                LC_INFO(MOD, "SIGHUP: nothing to reload");
            } else if (lc_auth_reload(auth, &err) < 0) {
                LC_ERROR(MOD, "SIGHUP: keeping the previous tokens: %s", err.msg);
                lc_err_clear(&err);
            } else {
                LC_INFO(MOD, "SIGHUP: reloaded %zu tokens from %s", lc_auth_count(auth),
                        opt_tokens);
            }
            continue;
        }
        LC_INFO(MOD, "%s: shutting down (grace %llds)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                (long long)opt_grace);
        break;
    }
    /* health.h: open Watch streams get NOT_SERVING and end, so they do not
     * hold the shutdown for the whole grace period. */
    lc_health_set_serving(false);
    lc_srv_wake_streams(srv);
    lc_srv_shutdown(srv, opt_grace);
    if (peer_srv != NULL) /* cluster.h */
        lc_srv_shutdown(peer_srv, opt_grace);
    status = 0;
out:
    lc_srv_free(&srv);
    lc_srv_free(&peer_srv);    /* cluster.h */
    lc_cluster_free(&cluster); /* cluster.h: after the last call */
    lc_evict_stop(&evict);     /* evict.h: after the workers, before the store closes */
    lc_http_stop(&http);       /* http: after the workers (they report to it), before the store */
    if (grpc_up)
        grpc_shutdown_blocking();
    lc_hits_free(&hits); /* admin: after the last handler, before the store closes */
    lc_trust_free(&trust); /* trust.h: after the last handler and the HTTP side */
    lc_auth_free(&auth); /* auth.h: after the last call */
    lc_tls_pem_free(&tls_key);
    lc_tls_pem_free(&tls_cert);
    lc_tls_pem_free(&tls_ca);
    lc_stats_free(&stats);
    lc_store_close(&store);
    if (status == 0 && store == NULL && grpc_up)
        LC_INFO(MOD, "stopped");
    lc_flags_free(flags, N_FLAGS);
    return status;
}
