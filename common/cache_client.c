/* cache_client.c - channel, unary calls and the concurrent action-cache
 * lookup of the REAPI cache client (see cache_client.h). ByteStream lives
 * in bytestream_client.c. */
#include "cache_client.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <openssl/rand.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "cache_client_int.h"
#include "resource.h"
#include "grpc_msg.h"
#include "peers.h"
#include "placement.h"
#include "tls.h"

#define DEFAULT_DEADLINE_MS 60000
#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_MAX_MESSAGE (64 * 1024 * 1024)
/* Digests per FindMissingBlobs request (~80 bytes each on the wire). */
#define FIND_MISSING_CHUNK 4096
/* GetActionResult calls in flight at once in a concurrent lookup. */
#define LOOKUP_WINDOW 256
/* A peer that answered UNAVAILABLE is tried last for this long. */
#define PEER_DOWN_MS 2000

static const struct {
    const char *path;
    const char *name;
} methods[LC__M_COUNT] = {
    [LC__M_CAPABILITIES] = {"/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
                            "GetCapabilities"},
    [LC__M_GET_ACTION_RESULT] = {"/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
                                 "GetActionResult"},
    [LC__M_UPDATE_ACTION_RESULT] = {"/build.bazel.remote.execution.v2.ActionCache/"
                                    "UpdateActionResult",
                                    "UpdateActionResult"},
    [LC__M_FIND_MISSING] = {"/build.bazel.remote.execution.v2.ContentAddressableStorage/"
                            "FindMissingBlobs",
                            "FindMissingBlobs"},
    [LC__M_BATCH_UPDATE] = {"/build.bazel.remote.execution.v2.ContentAddressableStorage/"
                            "BatchUpdateBlobs",
                            "BatchUpdateBlobs"},
    [LC__M_BATCH_READ] = {"/build.bazel.remote.execution.v2.ContentAddressableStorage/"
                          "BatchReadBlobs",
                          "BatchReadBlobs"},
    [LC__M_BS_READ] = {"/google.bytestream.ByteStream/Read", "ByteStream.Read"},
    [LC__M_BS_WRITE] = {"/google.bytestream.ByteStream/Write", "ByteStream.Write"},
    [LC__M_BS_QUERY] = {"/google.bytestream.ByteStream/QueryWriteStatus",
                        "ByteStream.QueryWriteStatus"},
    [LC__M_ADMIN_GET_STATS] = {"/layercache.v1.Admin/GetStats", "Admin.GetStats"},
    [LC__M_ADMIN_LIST_ACTIONS] = {"/layercache.v1.Admin/ListActions", "Admin.ListActions"},
    [LC__M_ADMIN_PURGE] = {"/layercache.v1.Admin/Purge", "Admin.Purge"},
};

const char *lc__cache_method_name(int m)
{
    return methods[m].name;
}

/* ---- pure helpers ---------------------------------------------------- */

void lc_cache_uuid(char out[LC_CACHE_UUID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        /* Only uniqueness matters here; fall back to a weaker source. */
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)(rand() >> 7);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, LC_CACHE_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

/* Both names come from common/resource.c, the one place that knows their form. */
static int format_resource(lc_resource_kind kind, const char *instance, const char *uuid,
                           const lc_digest *d, char *buf, size_t cap)
{
    lc_resource r = {.kind = kind, .digest = *d};
    if (snprintf(r.instance, sizeof(r.instance), "%s", instance ? instance : "") >=
            (int)sizeof(r.instance) ||
        snprintf(r.uuid, sizeof(r.uuid), "%s", uuid ? uuid : "") >= (int)sizeof(r.uuid))
        return -LC_INVALID_ARGUMENT;
    return lc_resource_format(&r, buf, cap) < 0 ? -LC_INVALID_ARGUMENT : 0;
}

int lc_cache_resource_read(const char *instance, const lc_digest *d, char *buf, size_t cap)
{
    return format_resource(LC_RESOURCE_READ, instance, NULL, d, buf, cap);
}

int lc_cache_resource_upload(const char *instance, const char *uuid, const lc_digest *d, char *buf,
                             size_t cap)
{
    return format_resource(LC_RESOURCE_UPLOAD, instance, uuid, d, buf, cap);
}

int lc_cache_parse_target(const char *target, char *buf, size_t cap, lc_err *err)
{
    if (target == NULL || target[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "empty cache address; expected grpc://HOST:PORT");
    const char *hp = target;
    if (strncmp(target, "grpcs://", 8) == 0)
        hp = target + 8;
    else if (strncmp(target, "grpc://", 7) == 0)
        hp = target + 7;
    else if (strstr(target, "://") != NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "cache address %s: unknown scheme; expected grpc://HOST:PORT or "
                          "grpcs://HOST:PORT (TLS)",
                          target);
    size_t len = strlen(hp);
    while (len > 0 && hp[len - 1] == '/')
        len--; /* "grpc://host:port/" is common in configs */
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
        if (hp[i - 1] == ':') {
            colon = hp + i - 1;
            break;
        }
        if (hp[i - 1] == ']' || hp[i - 1] == '/')
            break;
    }
    size_t hostlen = colon != NULL ? (size_t)(colon - hp) : 0;
    size_t portlen = colon != NULL ? len - hostlen - 1 : 0;
    int port_ok = portlen > 0 && portlen <= 5;
    for (size_t i = 0; port_ok && i < portlen; i++)
        port_ok = colon[1 + i] >= '0' && colon[1 + i] <= '9';
    if (hostlen == 0 || !port_ok || memchr(hp, '/', len) != NULL)
        return lc_err_set(
            err, LC_INVALID_ARGUMENT,
            "cache address %s: expected grpc://HOST:PORT (e.g. grpc://127.0.0.1:9092)", target);
    if (len >= cap)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "cache address %s: too long", target);
    memcpy(buf, hp, len);
    buf[len] = '\0';
    return 0;
}

int lc_cache_target_is_tls(const char *target)
{
    return target != NULL && strncmp(target, "grpcs://", 8) == 0;
}

/* ---- channel ----------------------------------------------------------- */

/* TLS credentials from the option files (read and checked here, so a bad
 * file is named now rather than showing up as a failed handshake). */
static int tls_credentials(const lc_cache_client_options *opts, const char *ca_flag,
                           grpc_channel_credentials **out, lc_err *err)
{
    char *ca = NULL, *cert = NULL, *key = NULL;
    *out = NULL;
    int rc = lc_tls_load(opts->ca_file, ca_flag, opts->cert_file, "--tls-cert", opts->key_file,
                         "--tls-key", &ca, &cert, &key, err);
    if (rc < 0)
        return rc;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    *out = grpc_ssl_credentials_create(ca, cert != NULL ? &pair : NULL, NULL, NULL);
    /* gRPC copied what it needs. */
    lc_tls_pem_free(&key);
    lc_tls_pem_free(&cert);
    lc_tls_pem_free(&ca);
    if (*out == NULL)
        return lc_err_set(err, LC_INTERNAL, "cannot create TLS credentials");
    return 0;
}

static int open_peers(lc_cache_client *c, const char *list, const lc_cache_client_options *opts,
                      lc_err *err);

int lc_cache_client_open(const char *target, const lc_cache_client_options *opts,
                         lc_cache_client **out, lc_err *err)
{
    lc_cache_client_options defaults = {0};
    char hostport[512], first[512];
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    lc_cache_client_options list_opts;
    if (target != NULL && strchr(target, ',') != NULL &&
        (opts->peers == NULL || opts->peers[0] == '\0')) {
        /* A comma list as the target: the peer list itself. */
        list_opts = *opts;
        list_opts.peers = target;
        opts = &list_opts;
        target = NULL;
    }
    bool routed = opts->peers != NULL && opts->peers[0] != '\0';
    if (routed && (target == NULL || target[0] == '\0')) {
        /* No front address: unrouted calls go to the first peer. */
        size_t n = strcspn(opts->peers, ", ");
        snprintf(first, sizeof(first), "%.*s", (int)(n < sizeof(first) ? n : 0), opts->peers);
        target = first;
    }
    int rc = lc_cache_parse_target(target, hostport, sizeof(hostport), err);
    if (rc != 0)
        return rc;
    int tls = lc_cache_target_is_tls(target);
    bool tls_files = (opts->ca_file && opts->ca_file[0]) ||
                     (opts->cert_file && opts->cert_file[0]) ||
                     (opts->key_file && opts->key_file[0]);
    if (!tls && tls_files)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "cache address %s is not TLS, yet --cacert/--tls-cert/--tls-key were "
                          "given: use grpcs://%s",
                          target, hostport);

    lc_cache_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    c->target = strdup(hostport);
    c->tls = tls;
    snprintf(c->ca_flag, sizeof(c->ca_flag), "%s", opts->ca_flag ? opts->ca_flag : "--cacert");
    c->instance = strdup(opts->instance_name != NULL ? opts->instance_name : "");
    if (opts->token != NULL && opts->token[0] != '\0') {
        size_t n = strlen(opts->token) + 8;
        c->auth_value = malloc(n);
        if (c->auth_value != NULL)
            snprintf(c->auth_value, n, "Bearer %s", opts->token);
    }
    if (c->target == NULL || c->instance == NULL ||
        (opts->token != NULL && opts->token[0] != '\0' && c->auth_value == NULL)) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail_alloc;
    }
    c->deadline_ms = opts->deadline_ms > 0 ? opts->deadline_ms : DEFAULT_DEADLINE_MS;
    c->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->max_message_size = opts->max_message_size > 0 ? opts->max_message_size : DEFAULT_MAX_MESSAGE;

    grpc_init();
    /* min_reconnect_backoff is the connect timeout of one attempt; a short
     * max backoff notices a restarted server quickly. */
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = c->max_message_size > INT32_MAX ? INT32_MAX : (int)c->max_message_size}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
         {.integer = (int)c->connect_timeout_ms}},
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 500}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 5000}},
        {GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = NULL}},
    };
    size_t n_args = sizeof(args) / sizeof(args[0]) - 1;
    if (tls && opts->tls_server_name != NULL && opts->tls_server_name[0] != '\0')
        args[n_args++].value.string = (char *)opts->tls_server_name; /* gRPC copies it */
    grpc_channel_args chargs = {n_args, args};
    grpc_channel_credentials *creds = NULL;
    if (tls) {
        rc = tls_credentials(opts, c->ca_flag, &creds, err);
        if (rc < 0)
            goto fail_channel;
    } else {
        creds = grpc_insecure_credentials_create();
    }
    c->channel = grpc_channel_create(c->target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    if (c->channel == NULL) {
        rc = lc_err_set(err, LC_INTERNAL, "cannot create a gRPC channel to %s", c->target);
        goto fail_channel;
    }
    for (int m = 0; m < LC__M_COUNT; m++)
        c->methods[m] = grpc_channel_register_call(c->channel, methods[m].path, NULL, NULL);
    if (routed && (rc = open_peers(c, opts->peers, opts, err)) < 0) {
        lc_cache_client_close(&c);
        return rc;
    }
    *out = c;
    return 0;

fail_channel:
    grpc_shutdown();
fail_alloc:
    free(c->auth_value);
    free(c->instance);
    free(c->target);
    free(c);
    return rc;
}

void lc_cache_client_close(lc_cache_client **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    lc_cache_client *c = *cp;
    for (size_t i = 0; i < c->n_peers; i++) {
        lc_cache_client_close(&c->peers[i].client);
        free(c->peers[i].id);
    }
    free(c->peers);
    grpc_channel_destroy(c->channel);
    grpc_shutdown();
    free(c->auth_value);
    free(c->instance);
    free(c->target);
    free(c);
    *cp = NULL;
}

const char *lc_cache_client_target(const lc_cache_client *c)
{
    return c->target;
}

/* ---- cluster routing ------------------------------------------------------ */

/* Adds a peer with placement identity id, called at target. */
static int add_peer(lc_cache_client *c, const char *id, const char *target,
                    const lc_cache_client_options *po, lc_err *err)
{
    if (c->n_peers == LC_PLACEMENT_MAX_PEERS)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "cache peers: more than %d",
                          LC_PLACEMENT_MAX_PEERS);
    lc__cache_peer *p = &c->peers[c->n_peers];
    p->id = strdup(id);
    if (p->id == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    c->n_peers++; /* freed by close from here on */
    return lc_cache_client_open(target, po, &p->client, err);
}

/* The DNS form, one name whose addresses are the replicas: peers get the
 * ids the replicas give each other (common/peers.h), and with TLS the
 * certificate is checked for the name, not for the addresses. */
static int open_dns_peers(lc_cache_client *c, const char *hostport, const char *scheme,
                          lc_cache_client_options *po, lc_err *err)
{
    char host[256], port[16], ids[LC_PLACEMENT_MAX_PEERS][LC_PEERS_ID_MAX];
    if (lc_peers_split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "cache peers '%s' is not HOST:PORT", hostport);
    size_t n = lc_peers_resolve(host, port, ids, LC_PLACEMENT_MAX_PEERS);
    if (n == 0)
        return lc_err_set(err, LC_UNAVAILABLE, "cache peers name %s resolves to no address", host);
    if (po->tls_server_name == NULL || po->tls_server_name[0] == '\0')
        po->tls_server_name = host;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char target[LC_PEERS_ID_MAX + 16];
        snprintf(target, sizeof(target), "%s%.*s", scheme, LC_PEERS_ID_MAX - 1, ids[i]);
        rc = add_peer(c, ids[i], target, po, err);
    }
    return rc;
}

/* Opens one plain client per entry of list (same options; the scheme of
 * the front target applies to entries without one). A list of one name
 * (not an address) is the DNS form, as the replicas' --peers reads it. */
static int open_peers(lc_cache_client *c, const char *list, const lc_cache_client_options *opts,
                      lc_err *err)
{
    int rc = 0;
    lc_cache_client_options po = *opts;
    po.peers = NULL;
    char *copy = strdup(list), *save = NULL;
    c->peers = calloc(LC_PLACEMENT_MAX_PEERS, sizeof(*c->peers));
    if (copy == NULL || c->peers == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    bool single = strpbrk(list, ", ") == NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        char id[512], host[256], port[16];
        if ((rc = lc_cache_parse_target(tok, id, sizeof(id), err)) < 0)
            goto out;
        const char *scheme = strstr(tok, "://") != NULL
                                 ? (lc_cache_target_is_tls(tok) ? "grpcs://" : "grpc://")
                                 : (c->tls ? "grpcs://" : "");
        if (single && lc_peers_split_hostport(id, host, sizeof(host), port, sizeof(port)) == 0 &&
            !lc_peers_is_numeric_host(host)) {
            rc = open_dns_peers(c, id, scheme, &po, err);
            goto out;
        }
        char target[600];
        snprintf(target, sizeof(target), "%s%s", scheme, id);
        if ((rc = add_peer(c, id, target, &po, err)) < 0)
            goto out;
    }
    if (c->n_peers == 0)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "cache peers '%s' names no HOST:PORT", list);
out:
    free(copy);
    return rc;
}

/* The routed calls (end of file); each sends plain calls to peer clients. */
static int routed_get_capabilities(lc_cache_client *c, lc_cache_capabilities *out, lc_err *err);
static int routed_get_action_result(lc_cache_client *c, const lc_digest *key,
                                    lc_action_result **out, lc_err *err);
static int routed_get_action_results(lc_cache_client *c, const lc_digest *keys, size_t n,
                                     lc_cache_lookup *out, lc_err *err);
static int routed_update_action_result(lc_cache_client *c, const lc_digest *key,
                                       const lc_action_result *result, lc_err *err);
static int routed_find_missing(lc_cache_client *c, const lc_digest *digests, size_t n,
                               unsigned char *missing, lc_err *err);
static int routed_batch(lc_cache_client *c, int m, lc_cache_blob *blobs, size_t n, lc_err *err);

static int64_t mono_ms(void)
{
    gpr_timespec t = gpr_now(GPR_CLOCK_MONOTONIC);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static size_t route_key(lc_cache_client *c, const void *key, size_t keylen, size_t *order)
{
    const char *ids[LC_PLACEMENT_MAX_PEERS];
    size_t rank[LC_PLACEMENT_MAX_PEERS], n = c->n_peers, k = 0;
    for (size_t i = 0; i < n; i++)
        ids[i] = c->peers[i].id;
    lc_placement_rank(ids, n, key, keylen, rank);
    /* Rank order puts the owners first; recently unreachable peers go last. */
    int64_t now = mono_ms();
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if ((c->peers[rank[i]].down_until_ms > now) == (pass == 1))
                order[k++] = rank[i];
    return n;
}

size_t lc__cache_route_blob(lc_cache_client *c, const lc_digest *d, size_t *order)
{
    uint8_t key[LC_HASH_LEN];
    return route_key(c, key, lc_placement_blob_key(d, key), order);
}

static size_t route_action(lc_cache_client *c, const lc_digest *d, size_t *order)
{
    uint8_t key[LC_PLACEMENT_MAX_KEY];
    return route_key(c, key, lc_placement_action_key(c->instance, d, key, sizeof(key)), order);
}

int lc__cache_peer_failed(lc_cache_client *c, size_t i, int rc)
{
    if (rc != -LC_UNAVAILABLE)
        return 0;
    c->peers[i].down_until_ms = mono_ms() + PEER_DOWN_MS;
    return 1;
}

/* Sends the parts of a batch of n keyed items (item i's digest at
 * first + i * stride) to their peers: round r sends every item not yet
 * done to its r-th choice (owners first), one call per peer. fn runs one
 * part (the item indices idx[0..m)) at one peer; it sets *retry when the
 * peer was unreachable and nothing of the part was kept, so the part goes
 * to the next choice. Returns the first error of a part that was not
 * retried (err filled), else 0. */
typedef int (*part_fn)(lc_cache_client *peer, const size_t *idx, size_t m, void *ctx, int *retry,
                       lc_err *err);

static int split_by_owner(lc_cache_client *c, const lc_digest *first, size_t stride, size_t n,
                          part_fn fn, void *ctx, lc_err *err)
{
    int rc = 0;
    size_t np = c->n_peers, m = n;
    size_t *order = calloc(n * np + 1, sizeof(*order));
    size_t *todo = calloc(n + 1, sizeof(*todo)), *idx = calloc(n + 1, sizeof(*idx));
    size_t *left = calloc(n + 1, sizeof(*left));
    if (order == NULL || todo == NULL || idx == NULL || left == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const lc_digest *d = (const lc_digest *)((const char *)first + i * stride);
        lc__cache_route_blob(c, d, order + i * np);
        todo[i] = i;
    }
    for (size_t round = 0; round < np && m > 0; round++) {
        size_t n_left = 0;
        for (size_t p = 0; p < np; p++) {
            size_t k = 0;
            for (size_t j = 0; j < m; j++)
                if (order[todo[j] * np + round] == p)
                    idx[k++] = todo[j];
            if (k == 0)
                continue;
            lc_err e = {0};
            int retry = 0;
            int r = fn(c->peers[p].client, idx, k, ctx, &retry, &e);
            if (retry && lc__cache_peer_failed(c, p, -LC_UNAVAILABLE) && round + 1 < np) {
                memcpy(left + n_left, idx, k * sizeof(*idx));
                n_left += k;
            } else if (r != 0 && rc == 0) {
                rc = r;
                if (err != NULL)
                    *err = e;
            }
        }
        memcpy(todo, left, n_left * sizeof(*todo));
        m = n_left;
    }
out:
    free(left);
    free(idx);
    free(todo);
    free(order);
    return rc;
}

/* ---- call helpers -------------------------------------------------------- */

grpc_call *lc__cache_call(lc_cache_client *c, int m, grpc_completion_queue *cq, int64_t deadline_ms)
{
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(deadline_ms, GPR_TIMESPAN));
    return grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               c->methods[m], deadline, NULL);
}

size_t lc__cache_metadata(const lc_cache_client *c, grpc_metadata md[1])
{
    if (c->auth_value == NULL)
        return 0;
    memset(md, 0, sizeof(*md));
    md[0].key = grpc_slice_from_static_string("authorization");
    md[0].value = grpc_slice_from_static_string(c->auth_value);
    return 1;
}

int lc__cache_status(lc_cache_client *c, int m, grpc_status_code status, grpc_slice details,
                     lc_err *err)
{
    if (status == GRPC_STATUS_OK)
        return 0;
    char msg[LC_ERR_MSG_MAX];
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof(msg))
        n = sizeof(msg) - 1;
    memcpy(msg, GRPC_SLICE_START_PTR(details), n);
    msg[n] = '\0';
    /* A call that failed without ever reaching the server: say so plainly. */
    if ((status == GRPC_STATUS_UNAVAILABLE || status == GRPC_STATUS_DEADLINE_EXCEEDED) &&
        grpc_channel_check_connectivity_state(c->channel, 0) != GRPC_CHANNEL_READY) {
        /* gRPC reports a refused certificate as a connection failure: say
         * what to check, so it does not read as "server down". */
        char hint[300] = "";
        if (c->tls && (strstr(msg, "andshake") != NULL || strstr(msg, "SSL") != NULL ||
                       strstr(msg, "ssl") != NULL || strstr(msg, "certificate") != NULL))
            snprintf(hint, sizeof(hint),
                     "; TLS handshake failed: check that %s holds the CA that signed the "
                     "server's certificate, that the certificate names this host, and (mutual "
                     "TLS) --tls-cert/--tls-key",
                     c->ca_flag);
        else if (c->tls)
            snprintf(hint, sizeof(hint),
                     "; with TLS (grpcs://): is the server serving TLS, and does %s hold "
                     "the CA of its certificate?",
                     c->ca_flag);
        else if (strstr(msg, "Socket closed") != NULL)
            snprintf(hint, sizeof(hint), "; if the server serves TLS, use grpcs://");
        return lc_err_set(err, LC_UNAVAILABLE, "%s: cache server %s unreachable (%s)%s",
                          methods[m].name, c->target, n > 0 ? msg : lc_code_name(status), hint);
    }
    int code = (int)status > 0 && (int)status <= LC_UNAUTHENTICATED ? (int)status : LC_UNKNOWN;
    return lc_err_set(err, code, "%s: %s", methods[m].name, n > 0 ? msg : lc_code_name(code));
}

int lc__cache_pluck(grpc_completion_queue *cq, void *tag)
{
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

void lc__cache_cq_destroy(grpc_completion_queue **cq)
{
    if (*cq == NULL)
        return;
    grpc_completion_queue_shutdown(*cq);
    grpc_event ev;
    do {
        ev = grpc_completion_queue_pluck(*cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } while (ev.type != GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(*cq);
    *cq = NULL;
}

void lc__cache_digest_to_msg(const lc_digest *d, char *hex,
                             Build__Bazel__Remote__Execution__V2__Digest *msg)
{
    build__bazel__remote__execution__v2__digest__init(msg);
    lc_digest_hex(d, hex);
    msg->hash = hex;
    msg->size_bytes = d->size;
}

int lc__cache_digest_from_msg(const Build__Bazel__Remote__Execution__V2__Digest *msg,
                              lc_digest *out, lc_err *err)
{
    if (msg == NULL || msg->hash == NULL)
        return lc_err_set(err, LC_INTERNAL, "digest missing in the server's response");
    return lc_digest_parse(msg->hash, strlen(msg->hash), msg->size_bytes, out, err);
}

void lc__cache_unary_ops(grpc_op ops[6], grpc_metadata *md, size_t n_md, grpc_byte_buffer *req,
                         grpc_byte_buffer **resp, grpc_metadata_array *init_md,
                         grpc_metadata_array *trail_md, grpc_status_code *status,
                         grpc_slice *details)
{
    memset(ops, 0, 6 * sizeof(*ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = n_md;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = trail_md;
    ops[5].data.recv_status_on_client.status = status;
    ops[5].data.recv_status_on_client.status_details = details;
}

/* One unary call: everything its single batch needs. */
typedef struct unary {
    grpc_call *call;
    grpc_byte_buffer *req;
    grpc_byte_buffer *resp;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_metadata md[3]; /* authorization, then extra metadata */
} unary;

static void unary_init(unary *u)
{
    memset(u, 0, sizeof(*u));
    grpc_metadata_array_init(&u->init_md);
    grpc_metadata_array_init(&u->trail_md);
    u->details = grpc_empty_slice();
}

static void unary_cleanup(unary *u)
{
    if (u->call != NULL)
        grpc_call_unref(u->call);
    if (u->resp != NULL)
        grpc_byte_buffer_destroy(u->resp);
    if (u->req != NULL)
        grpc_byte_buffer_destroy(u->req);
    grpc_metadata_array_destroy(&u->trail_md);
    grpc_metadata_array_destroy(&u->init_md);
    grpc_slice_unref(u->details);
    u->call = NULL;
    u->resp = u->req = NULL;
}

/* Starts the call's one batch; tag arrives on cq exactly when this returns 0. */
static int unary_start_md(lc_cache_client *c, int m, const ProtobufCMessage *req,
                          const grpc_metadata *extra, size_t n_extra, grpc_completion_queue *cq,
                          void *tag, unary *u, lc_err *err)
{
    u->req = lc_grpc_pack(req);
    if (u->req == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "%s: out of memory", methods[m].name);
    u->call = lc__cache_call(c, m, cq, c->deadline_ms);
    if (u->call == NULL)
        return lc_err_set(err, LC_INTERNAL, "%s: cannot create the call", methods[m].name);
    grpc_op ops[6];
    size_t n_md = lc__cache_metadata(c, u->md);
    for (size_t i = 0; i < n_extra && n_md < sizeof(u->md) / sizeof(u->md[0]); i++)
        u->md[n_md++] = extra[i];
    lc__cache_unary_ops(ops, u->md, n_md, u->req, &u->resp, &u->init_md, &u->trail_md, &u->status,
                        &u->details);
    grpc_call_error ce = grpc_call_start_batch(u->call, ops, 6, tag, NULL);
    if (ce != GRPC_CALL_OK)
        return lc_err_set(err, LC_INTERNAL, "%s: cannot start the call (grpc_call_error %d)",
                          methods[m].name, (int)ce);
    return 0;
}

static int unary_start(lc_cache_client *c, int m, const ProtobufCMessage *req,
                       grpc_completion_queue *cq, void *tag, unary *u, lc_err *err)
{
    return unary_start_md(c, m, req, NULL, 0, cq, tag, u, err);
}

/* Turns a completed batch into the response message (owned by the caller). */
static int unary_finish(lc_cache_client *c, int m, unary *u, int success,
                        const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, lc_err *err)
{
    *out = NULL;
    if (!success && u->status == GRPC_STATUS_OK)
        return lc_err_set(err, LC_INTERNAL, "%s: the call failed without a status",
                          methods[m].name);
    int rc = lc__cache_status(c, m, u->status, u->details, err);
    if (rc != 0)
        return rc;
    if (u->resp == NULL)
        return lc_err_set(err, LC_INTERNAL, "%s: the server sent no response", methods[m].name);
    *out = lc_grpc_unpack(desc, u->resp, NULL);
    if (*out == NULL)
        return lc_err_set(err, LC_INTERNAL, "%s: the server's response is not a valid %s",
                          methods[m].name, desc->short_name);
    return 0;
}

int lc__cache_unary(lc_cache_client *c, int m, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, lc_err *err)
{
    return lc__cache_unary_md(c, m, req, NULL, 0, desc, out, err);
}

int lc__cache_unary_md(lc_cache_client *c, int m, const ProtobufCMessage *req,
                       const grpc_metadata *extra, size_t n_extra,
                       const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, lc_err *err)
{
    unary u;
    unary_init(&u);
    *out = NULL;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    int rc = unary_start_md(c, m, req, extra, n_extra, cq, &u, &u, err);
    if (rc == 0) {
        int ok = lc__cache_pluck(cq, &u);
        rc = unary_finish(c, m, &u, ok, desc, out, err);
    }
    unary_cleanup(&u);
    lc__cache_cq_destroy(&cq);
    return rc;
}

/* ---- Capabilities --------------------------------------------------------- */

static int get_capabilities(lc_cache_client *c, lc_cache_capabilities *out, lc_err *err)
{
    Build__Bazel__Remote__Execution__V2__GetCapabilitiesRequest req =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_CAPABILITIES_REQUEST__INIT;
    req.instance_name = c->instance;
    Build__Bazel__Remote__Execution__V2__ServerCapabilities *caps = NULL;
    memset(out, 0, sizeof(*out));
    int rc = lc__cache_unary(c, LC__M_CAPABILITIES, &req.base,
                             &build__bazel__remote__execution__v2__server_capabilities__descriptor,
                             (ProtobufCMessage **)&caps, err);
    if (rc != 0)
        return rc;
    Build__Bazel__Remote__Execution__V2__CacheCapabilities *cc = caps->cache_capabilities;
    if (cc != NULL) {
        for (size_t i = 0; i < cc->n_digest_functions; i++)
            if (cc->digest_functions[i] ==
                BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256)
                out->sha256 = 1;
        out->update_enabled = cc->action_cache_update_capabilities != NULL &&
                              cc->action_cache_update_capabilities->update_enabled;
        out->max_batch_total_size = cc->max_batch_total_size_bytes;
    }
    if (caps->low_api_version != NULL) {
        out->low_major = caps->low_api_version->major;
        out->low_minor = caps->low_api_version->minor;
    }
    if (caps->high_api_version != NULL) {
        out->high_major = caps->high_api_version->major;
        out->high_minor = caps->high_api_version->minor;
    }
    protobuf_c_message_free_unpacked(&caps->base, NULL);
    return 0;
}

int lc_cache_client_get_capabilities(lc_cache_client *c, lc_cache_capabilities *out, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_get_capabilities(c, out, err);
    return get_capabilities(c, out, err);
}

int lc_cache_capabilities_check(const lc_cache_capabilities *caps, int need_update, lc_err *err)
{
    if (!caps->sha256)
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "cache server does not offer SHA-256 digests");
    /* Versions compare as major*1000+minor; 2.x must lie in [low, high]. */
    int low = caps->low_major * 1000 + caps->low_minor;
    int high = caps->high_major * 1000 + caps->high_minor;
    if (low > 2999 || high < 2000)
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "cache server speaks REAPI %d.%d..%d.%d, not 2.x", caps->low_major,
                          caps->low_minor, caps->high_major, caps->high_minor);
    if (need_update && !caps->update_enabled)
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "cache server does not accept action cache updates");
    return 0;
}

/* ---- Action cache ----------------------------------------------------------- */

void lc_action_result_free(lc_action_result **r)
{
    if (r == NULL || *r == NULL)
        return;
    protobuf_c_message_free_unpacked(&(*r)->base, NULL);
    *r = NULL;
}

int lc_cache_client_get_action_result(lc_cache_client *c, const lc_digest *key,
                                      lc_action_result **out, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_get_action_result(c, key, out, err);
    char hex[LC_HASH_HEX_LEN + 1];
    Build__Bazel__Remote__Execution__V2__Digest dmsg;
    lc__cache_digest_to_msg(key, hex, &dmsg);
    Build__Bazel__Remote__Execution__V2__GetActionResultRequest req =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_ACTION_RESULT_REQUEST__INIT;
    req.instance_name = c->instance;
    req.action_digest = &dmsg;
    req.digest_function = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
    return lc__cache_unary(c, LC__M_GET_ACTION_RESULT, &req.base,
                           &build__bazel__remote__execution__v2__action_result__descriptor,
                           (ProtobufCMessage **)out, err);
}

typedef struct lookup_slot {
    unary u;
    int started;
} lookup_slot;

/* "GetActionResult: key 1234abcd...: <what went wrong>". */
static int lookup_error(lc_err *err, int code, const char *hex, const char *msg)
{
    const char *name = methods[LC__M_GET_ACTION_RESULT].name;
    size_t n = strlen(name);
    if (strncmp(msg, name, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        msg += n + 2;
    return lc_err_set(err, code, "%s: key %.12s...: %s", name, hex, msg);
}

/* The concurrent lookup of keys[0..n), key i at per_key[i] (or all at c
 * when per_key is NULL). */
static int lookup_many(lc_cache_client *c, lc_cache_client *const *per_key, const lc_digest *keys,
                       size_t n, lc_cache_lookup *out, lc_err *err)
{
    int first_rc = 0;
    for (size_t i = 0; i < n; i++) {
        out[i].result = NULL;
        out[i].status = -LC_UNKNOWN;
    }
    if (n == 0)
        return 0;
    lookup_slot *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "GetActionResult: out of memory");
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    size_t next = 0, active = 0, done = 0;
    while (done < n) {
        /* Keep the window full, then collect whichever call ends first. */
        while (next < n && active < LOOKUP_WINDOW) {
            size_t i = next++;
            char hex[LC_HASH_HEX_LEN + 1];
            Build__Bazel__Remote__Execution__V2__Digest dmsg;
            lc__cache_digest_to_msg(&keys[i], hex, &dmsg);
            Build__Bazel__Remote__Execution__V2__GetActionResultRequest req =
                BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_ACTION_RESULT_REQUEST__INIT;
            req.action_digest = &dmsg;
            req.digest_function =
                BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
            lc_err e = {0};
            lc_cache_client *ci = per_key != NULL ? per_key[i] : c;
            req.instance_name = ci->instance;
            unary_init(&slots[i].u);
            int rc =
                unary_start(ci, LC__M_GET_ACTION_RESULT, &req.base, cq, &slots[i], &slots[i].u, &e);
            if (rc != 0) {
                out[i].status = rc;
                if (first_rc == 0)
                    first_rc = lookup_error(err, e.code, hex, e.msg);
                unary_cleanup(&slots[i].u);
                done++;
                continue;
            }
            slots[i].started = 1;
            active++;
        }
        if (active == 0)
            continue;
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            continue; /* cannot happen before shutdown; calls have deadlines */
        lookup_slot *s = ev.tag;
        size_t i = (size_t)(s - slots);
        lc_err e = {0};
        int rc = unary_finish(per_key != NULL ? per_key[i] : c, LC__M_GET_ACTION_RESULT, &s->u,
                              ev.success,
                              &build__bazel__remote__execution__v2__action_result__descriptor,
                              (ProtobufCMessage **)&out[i].result, &e);
        out[i].status = rc;
        if (rc != 0 && rc != -LC_NOT_FOUND && first_rc == 0) {
            char hex[LC_HASH_HEX_LEN + 1];
            lc_digest_hex(&keys[i], hex);
            first_rc = lookup_error(err, e.code, hex, e.msg);
        }
        unary_cleanup(&s->u);
        active--;
        done++;
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    free(slots);
    return first_rc;
}

int lc_cache_client_get_action_results(lc_cache_client *c, const lc_digest *keys, size_t n,
                                       lc_cache_lookup *out, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_get_action_results(c, keys, n, out, err);
    return lookup_many(c, NULL, keys, n, out, err);
}

int lc_cache_client_update_action_result(lc_cache_client *c, const lc_digest *key,
                                         const lc_action_result *result, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_update_action_result(c, key, result, err);
    char hex[LC_HASH_HEX_LEN + 1];
    Build__Bazel__Remote__Execution__V2__Digest dmsg;
    lc__cache_digest_to_msg(key, hex, &dmsg);
    Build__Bazel__Remote__Execution__V2__UpdateActionResultRequest req =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__UPDATE_ACTION_RESULT_REQUEST__INIT;
    req.instance_name = c->instance;
    req.action_digest = &dmsg;
    req.action_result = (lc_action_result *)result; /* only read by pack */
    req.digest_function = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
    lc_action_result *echo = NULL;
    int rc = lc__cache_unary(c, LC__M_UPDATE_ACTION_RESULT, &req.base,
                             &build__bazel__remote__execution__v2__action_result__descriptor,
                             (ProtobufCMessage **)&echo, err);
    lc_action_result_free(&echo);
    return rc;
}

/* ---- CAS ---------------------------------------------------------------------- */

static int digest_cmp(const lc_digest *a, const lc_digest *b)
{
    int r = memcmp(a->hash, b->hash, LC_HASH_LEN);
    if (r != 0)
        return r;
    return a->size < b->size ? -1 : a->size > b->size;
}

/* Finds the index of the first item of list[0..n) (indexes idx, sorted by
 * digest) equal to d, or n. */
static size_t sorted_find(const lc_digest *list, const size_t *idx, size_t n, const lc_digest *d)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (digest_cmp(&list[idx[mid]], d) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* qsort has no context argument; per thread, as calls may run in parallel. */
static _Thread_local const lc_digest *tl_sort_base;
static int idx_cmp(const void *a, const void *b)
{
    return digest_cmp(&tl_sort_base[*(const size_t *)a], &tl_sort_base[*(const size_t *)b]);
}

int lc_cache_client_find_missing(lc_cache_client *c, const lc_digest *digests, size_t n,
                                 unsigned char *missing, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_find_missing(c, digests, n, missing, err);
    int rc = 0;
    size_t chunk = n < FIND_MISSING_CHUNK ? n : FIND_MISSING_CHUNK;
    Build__Bazel__Remote__Execution__V2__Digest *msgs = calloc(chunk + 1, sizeof(*msgs));
    Build__Bazel__Remote__Execution__V2__Digest **ptrs = calloc(chunk + 1, sizeof(*ptrs));
    char(*hex)[LC_HASH_HEX_LEN + 1] = calloc(chunk + 1, sizeof(*hex));
    size_t *idx = calloc(chunk + 1, sizeof(*idx));
    if (msgs == NULL || ptrs == NULL || hex == NULL || idx == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "FindMissingBlobs: out of memory");
        goto out;
    }
    memset(missing, 0, n);
    for (size_t base = 0; base < n; base += chunk) {
        size_t m = n - base < chunk ? n - base : chunk;
        const lc_digest *part = digests + base;
        for (size_t i = 0; i < m; i++) {
            lc__cache_digest_to_msg(&part[i], hex[i], &msgs[i]);
            ptrs[i] = &msgs[i];
            idx[i] = i;
        }
        Build__Bazel__Remote__Execution__V2__FindMissingBlobsRequest req =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__FIND_MISSING_BLOBS_REQUEST__INIT;
        req.instance_name = c->instance;
        req.n_blob_digests = m;
        req.blob_digests = ptrs;
        req.digest_function = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
        Build__Bazel__Remote__Execution__V2__FindMissingBlobsResponse *resp = NULL;
        rc = lc__cache_unary(
            c, LC__M_FIND_MISSING, &req.base,
            &build__bazel__remote__execution__v2__find_missing_blobs_response__descriptor,
            (ProtobufCMessage **)&resp, err);
        if (rc != 0)
            goto out;
        tl_sort_base = part;
        qsort(idx, m, sizeof(*idx), idx_cmp);
        for (size_t j = 0; j < resp->n_missing_blob_digests; j++) {
            lc_digest d;
            if (lc__cache_digest_from_msg(resp->missing_blob_digests[j], &d, NULL) != 0)
                continue; /* not one we asked about */
            for (size_t k = sorted_find(part, idx, m, &d);
                 k < m && digest_cmp(&part[idx[k]], &d) == 0; k++)
                missing[base + idx[k]] = 1;
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
out:
    free(idx);
    free(hex);
    free(ptrs);
    free(msgs);
    return rc;
}

/* Index of the blob a batch response is about: the next unanswered blob
 * with that digest, searched from the cursor (servers answer in order). */
static size_t match_blob(lc_cache_blob *blobs, const unsigned char *answered, size_t n,
                         size_t *cursor, const lc_digest *d)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (*cursor + k) % n;
        if (!answered[i] && lc_digest_equal(&blobs[i].digest, d)) {
            *cursor = (i + 1) % n;
            return i;
        }
    }
    return n;
}

/* The per-blob status of a batch response as an lc return code. */
static int blob_status(const char *method, const Google__Rpc__Status *st, const lc_digest *d,
                       int *first_rc, lc_err *err)
{
    if (st == NULL || st->code == 0)
        return 0;
    int code = st->code > 0 && st->code <= LC_UNAUTHENTICATED ? st->code : LC_UNKNOWN;
    if (*first_rc == 0) {
        char hex[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(d, hex);
        *first_rc =
            lc_err_set(err, code, "%s: blob %s/%" PRId64 ": %s", method, hex, d->size,
                       st->message != NULL && st->message[0] ? st->message : lc_code_name(code));
    }
    return -code;
}

/* Blobs the server did not mention get INTERNAL. */
static void unanswered(const char *method, lc_cache_blob *blobs, const unsigned char *answered,
                       size_t n, int *first_rc, lc_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (answered[i])
            continue;
        blobs[i].status = -LC_INTERNAL;
        if (*first_rc == 0) {
            char hex[LC_HASH_HEX_LEN + 1];
            lc_digest_hex(&blobs[i].digest, hex);
            *first_rc = lc_err_set(err, LC_INTERNAL, "%s: no answer for blob %s/%" PRId64, method,
                                   hex, blobs[i].digest.size);
        }
    }
}

/* One batch call; a call that fails is every blob's status. */
static int batch_call(lc_cache_client *c, int m, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                      lc_cache_blob *blobs, size_t n, lc_err *err)
{
    int rc = lc__cache_unary(c, m, req, desc, resp, err);
    for (size_t i = 0; rc != 0 && i < n; i++)
        blobs[i].status = rc;
    return rc;
}

int lc_cache_client_batch_update(lc_cache_client *c, lc_cache_blob *blobs, size_t n, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_batch(c, LC__M_BATCH_UPDATE, blobs, n, err);
    int rc = 0;
    Build__Bazel__Remote__Execution__V2__BatchUpdateBlobsRequest__Request *reqs =
        calloc(n + 1, sizeof(*reqs));
    Build__Bazel__Remote__Execution__V2__BatchUpdateBlobsRequest__Request **ptrs =
        calloc(n + 1, sizeof(*ptrs));
    Build__Bazel__Remote__Execution__V2__Digest *dmsgs = calloc(n + 1, sizeof(*dmsgs));
    char(*hex)[LC_HASH_HEX_LEN + 1] = calloc(n + 1, sizeof(*hex));
    unsigned char *answered = calloc(n + 1, 1);
    Build__Bazel__Remote__Execution__V2__BatchUpdateBlobsResponse *resp = NULL;
    if (reqs == NULL || ptrs == NULL || dmsgs == NULL || hex == NULL || answered == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "BatchUpdateBlobs: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        build__bazel__remote__execution__v2__batch_update_blobs_request__request__init(&reqs[i]);
        lc__cache_digest_to_msg(&blobs[i].digest, hex[i], &dmsgs[i]);
        reqs[i].digest = &dmsgs[i];
        reqs[i].data.data = blobs[i].data;
        reqs[i].data.len = blobs[i].len;
        ptrs[i] = &reqs[i];
        blobs[i].status = -LC_UNKNOWN;
    }
    Build__Bazel__Remote__Execution__V2__BatchUpdateBlobsRequest req =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__BATCH_UPDATE_BLOBS_REQUEST__INIT;
    req.instance_name = c->instance;
    req.n_requests = n;
    req.requests = ptrs;
    req.digest_function = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
    rc = batch_call(c, LC__M_BATCH_UPDATE, &req.base,
                    &build__bazel__remote__execution__v2__batch_update_blobs_response__descriptor,
                    (ProtobufCMessage **)&resp, blobs, n, err);
    if (rc != 0)
        goto out;
    size_t cursor = 0;
    for (size_t j = 0; j < resp->n_responses; j++) {
        lc_digest d;
        if (lc__cache_digest_from_msg(resp->responses[j]->digest, &d, NULL) != 0)
            continue;
        size_t i = match_blob(blobs, answered, n, &cursor, &d);
        if (i == n)
            continue;
        answered[i] = 1;
        blobs[i].status = blob_status("BatchUpdateBlobs", resp->responses[j]->status, &d, &rc, err);
    }
    unanswered("BatchUpdateBlobs", blobs, answered, n, &rc, err);
out:
    if (resp != NULL)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    free(answered);
    free(hex);
    free(dmsgs);
    free(ptrs);
    free(reqs);
    return rc;
}

int lc_cache_client_batch_read(lc_cache_client *c, lc_cache_blob *blobs, size_t n, lc_err *err)
{
    if (c->n_peers > 0)
        return routed_batch(c, LC__M_BATCH_READ, blobs, n, err);
    int rc = 0;
    Build__Bazel__Remote__Execution__V2__Digest *dmsgs = calloc(n + 1, sizeof(*dmsgs));
    Build__Bazel__Remote__Execution__V2__Digest **ptrs = calloc(n + 1, sizeof(*ptrs));
    char(*hex)[LC_HASH_HEX_LEN + 1] = calloc(n + 1, sizeof(*hex));
    unsigned char *answered = calloc(n + 1, 1);
    Build__Bazel__Remote__Execution__V2__BatchReadBlobsResponse *resp = NULL;
    for (size_t i = 0; i < n; i++) {
        blobs[i].data = NULL;
        blobs[i].len = 0;
        blobs[i].status = -LC_UNKNOWN;
    }
    if (dmsgs == NULL || ptrs == NULL || hex == NULL || answered == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "BatchReadBlobs: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        lc__cache_digest_to_msg(&blobs[i].digest, hex[i], &dmsgs[i]);
        ptrs[i] = &dmsgs[i];
    }
    Build__Bazel__Remote__Execution__V2__BatchReadBlobsRequest req =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__BATCH_READ_BLOBS_REQUEST__INIT;
    req.instance_name = c->instance;
    req.n_digests = n;
    req.digests = ptrs;
    req.digest_function = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256;
    rc = batch_call(c, LC__M_BATCH_READ, &req.base,
                    &build__bazel__remote__execution__v2__batch_read_blobs_response__descriptor,
                    (ProtobufCMessage **)&resp, blobs, n, err);
    if (rc != 0)
        goto out;
    size_t cursor = 0;
    for (size_t j = 0; j < resp->n_responses; j++) {
        Build__Bazel__Remote__Execution__V2__BatchReadBlobsResponse__Response *r =
            resp->responses[j];
        lc_digest d;
        if (lc__cache_digest_from_msg(r->digest, &d, NULL) != 0)
            continue;
        size_t i = match_blob(blobs, answered, n, &cursor, &d);
        if (i == n)
            continue;
        answered[i] = 1;
        blobs[i].status = blob_status("BatchReadBlobs", r->status, &d, &rc, err);
        if (blobs[i].status != 0)
            continue;
        lc_digest got;
        lc_digest_of(r->data.data, r->data.len, &got);
        if (!lc_digest_equal(&got, &d)) {
            blobs[i].status = -LC_DATA_LOSS;
            if (rc == 0)
                rc = lc_err_set(err, LC_DATA_LOSS,
                                "BatchReadBlobs: blob %s/%" PRId64
                                ": the server sent %zu bytes that do not match the digest",
                                hex[i], d.size, r->data.len);
            continue;
        }
        blobs[i].data = malloc(r->data.len + 1); /* +1: non-NULL for the empty blob */
        if (blobs[i].data == NULL) {
            blobs[i].status = -LC_RESOURCE_EXHAUSTED;
            if (rc == 0)
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "BatchReadBlobs: out of memory");
            continue;
        }
        if (r->data.len > 0)
            memcpy(blobs[i].data, r->data.data, r->data.len);
        blobs[i].len = r->data.len;
    }
    unanswered("BatchReadBlobs", blobs, answered, n, &rc, err);
out:
    if (resp != NULL)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    free(answered);
    free(hex);
    free(ptrs);
    free(dmsgs);
    return rc;
}

/* ---- routed calls (opts.peers) --------------------------------------------- */

static int routed_get_capabilities(lc_cache_client *c, lc_cache_capabilities *out, lc_err *err)
{
    /* The front target first, then any peer. */
    int rc = get_capabilities(c, out, err);
    for (size_t i = 0; rc == -LC_UNAVAILABLE && i < c->n_peers; i++)
        if ((rc = lc_cache_client_get_capabilities(c->peers[i].client, out, err)) != 0)
            lc__cache_peer_failed(c, i, rc);
    return rc;
}

static int routed_get_action_result(lc_cache_client *c, const lc_digest *key,
                                    lc_action_result **out, lc_err *err)
{
    size_t order[LC_PLACEMENT_MAX_PEERS];
    size_t n = route_action(c, key, order);
    int rc = -LC_UNAVAILABLE;
    for (size_t k = 0; k < n; k++) {
        rc = lc_cache_client_get_action_result(c->peers[order[k]].client, key, out, err);
        if (!lc__cache_peer_failed(c, order[k], rc))
            break;
    }
    return rc;
}

static int routed_update_action_result(lc_cache_client *c, const lc_digest *key,
                                       const lc_action_result *result, lc_err *err)
{
    /* One owner is enough: the replica writes to every owner. */
    size_t order[LC_PLACEMENT_MAX_PEERS];
    size_t n = route_action(c, key, order);
    int rc = -LC_UNAVAILABLE;
    for (size_t k = 0; k < n; k++) {
        rc = lc_cache_client_update_action_result(c->peers[order[k]].client, key, result, err);
        if (!lc__cache_peer_failed(c, order[k], rc))
            break;
    }
    return rc;
}

/* Rounds of concurrent lookups: every key at its r-th choice, keys whose
 * peer was unreachable go round again. */
static int routed_get_action_results(lc_cache_client *c, const lc_digest *keys, size_t n,
                                     lc_cache_lookup *out, lc_err *err)
{
    int rc = 0;
    size_t np = c->n_peers, m = n;
    lc_err last = {0};
    for (size_t i = 0; i < n; i++) {
        out[i].result = NULL;
        out[i].status = -LC_UNKNOWN;
    }
    size_t *order = calloc(n * np + 1, sizeof(*order)), *todo = calloc(n + 1, sizeof(*todo));
    lc_cache_client **cls = calloc(n + 1, sizeof(*cls));
    lc_digest *sub = calloc(n + 1, sizeof(*sub));
    lc_cache_lookup *sout = calloc(n + 1, sizeof(*sout));
    if (order == NULL || todo == NULL || cls == NULL || sub == NULL || sout == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "GetActionResult: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        route_action(c, &keys[i], order + i * np);
        todo[i] = i;
    }
    for (size_t round = 0; round < np && m > 0; round++) {
        for (size_t j = 0; j < m; j++) {
            cls[j] = c->peers[order[todo[j] * np + round]].client;
            sub[j] = keys[todo[j]];
        }
        lc_err e = {0};
        int r = lookup_many(c, cls, sub, m, sout, &e);
        size_t left = 0;
        for (size_t j = 0; j < m; j++) {
            size_t i = todo[j];
            out[i] = sout[j];
            if (lc__cache_peer_failed(c, order[i * np + round], sout[j].status) && round + 1 < np)
                todo[left++] = i;
        }
        if (r != 0) {
            last = e;
            if (r != -LC_UNAVAILABLE && rc == 0) {
                rc = r;
                if (err != NULL)
                    *err = e;
            }
        }
        m = left;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (out[i].status != 0 && out[i].status != -LC_NOT_FOUND) {
            rc = out[i].status;
            if (err != NULL)
                *err = last;
        }
out:
    free(sout);
    free(sub);
    free(cls);
    free(todo);
    free(order);
    return rc;
}

typedef struct find_part {
    const lc_digest *digests;
    unsigned char *missing;
} find_part;

static int find_part_fn(lc_cache_client *peer, const size_t *idx, size_t m, void *ctx, int *retry,
                        lc_err *err)
{
    find_part *f = ctx;
    lc_digest *sub = calloc(m, sizeof(*sub));
    unsigned char *miss = calloc(m, 1);
    int rc = 0;
    if (sub == NULL || miss == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "FindMissingBlobs: out of memory");
        goto out;
    }
    for (size_t j = 0; j < m; j++)
        sub[j] = f->digests[idx[j]];
    rc = lc_cache_client_find_missing(peer, sub, m, miss, err);
    *retry = rc == -LC_UNAVAILABLE;
    for (size_t j = 0; rc == 0 && j < m; j++)
        f->missing[idx[j]] = miss[j];
out:
    free(miss);
    free(sub);
    return rc;
}

static int routed_find_missing(lc_cache_client *c, const lc_digest *digests, size_t n,
                               unsigned char *missing, lc_err *err)
{
    find_part f = {digests, missing};
    memset(missing, 0, n);
    return split_by_owner(c, digests, sizeof(*digests), n, find_part_fn, &f, err);
}

typedef struct batch_part {
    int method;
    lc_cache_blob *blobs;
} batch_part;

static int batch_part_fn(lc_cache_client *peer, const size_t *idx, size_t m, void *ctx, int *retry,
                         lc_err *err)
{
    batch_part *b = ctx;
    lc_cache_blob *sub = calloc(m, sizeof(*sub));
    if (sub == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "batch call: out of memory");
    for (size_t j = 0; j < m; j++)
        sub[j] = b->blobs[idx[j]]; /* update: data is only read */
    int rc = b->method == LC__M_BATCH_UPDATE ? lc_cache_client_batch_update(peer, sub, m, err)
                                             : lc_cache_client_batch_read(peer, sub, m, err);
    /* Unreachable: every blob failed so, nothing to keep. */
    *retry = rc == -LC_UNAVAILABLE;
    for (size_t j = 0; *retry && j < m; j++)
        *retry = sub[j].status == -LC_UNAVAILABLE;
    for (size_t j = 0; !*retry && j < m; j++) {
        b->blobs[idx[j]].status = sub[j].status;
        if (b->method == LC__M_BATCH_READ) {
            b->blobs[idx[j]].data = sub[j].data; /* handed over */
            b->blobs[idx[j]].len = sub[j].len;
        }
    }
    free(sub);
    return rc;
}

static int routed_batch(lc_cache_client *c, int m, lc_cache_blob *blobs, size_t n, lc_err *err)
{
    batch_part b = {m, blobs};
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (m == LC__M_BATCH_READ) {
            blobs[i].data = NULL;
            blobs[i].len = 0;
        }
        blobs[i].status = -LC_UNAVAILABLE; /* until a peer answers */
    }
    int rc = split_by_owner(c, &blobs[0].digest, sizeof(*blobs), n, batch_part_fn, &b, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (blobs[i].status != 0)
            rc = lc_err_set(err, -blobs[i].status, "%s: a blob's replicas were unreachable",
                            lc__cache_method_name(m));
    return rc;
}
