/* cluster.c - see cluster.h. */
#include "cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "peers.h"

#define MOD "cluster"
#define MAX_INSTANCES 8 /* clients per peer, one per instance name seen */
#define ID_MAX LC_PEERS_ID_MAX

struct lc_cluster_peer {
    char id[ID_MAX];    /* HOST:PORT, the placement identity */
    atomic_bool self;   /* this replica */
    atomic_bool alive;  /* last health check (or call) succeeded */
    atomic_bool member; /* in the current peer set */
    pthread_mutex_t mu; /* guards the clients */
    lc_cache_client *health;
    struct {
        char *instance;
        lc_cache_client *client;
    } clients[MAX_INSTANCES];
    size_t n_clients;
};

struct lc_cluster {
    char *peers, *self, *token;
    bool tls;                            /* peer ports serve TLS (lc_cluster_options) */
    char *tls_ca_file, *tls_server_name; /* NULL = system roots / the dialled host */
    char auth_value[512];
    int replication;
    int64_t health_ms, dns_ms, deadline_ms;
    int port_offset;
    bool dns; /* peers is one name resolved to many addresses */
    char dns_host[256], dns_port[16];
    pthread_mutex_t mu; /* guards n_peers and peer membership changes */
    lc_cluster_peer *peer[LC_CLUSTER_MAX_PEERS];
    size_t n_peers;
    pthread_t thread;
    bool thread_started, stop;
    pthread_cond_t cv;
};

/* ---- peers -------------------------------------------------------------- */

const char *lc_cluster_auth_value(const lc_cluster *c)
{
    return c->auth_value;
}

int lc_cluster_replication(const lc_cluster *c)
{
    return c->replication;
}

bool lc_cluster_peer_is_self(const lc_cluster_peer *p)
{
    return atomic_load(&p->self);
}

bool lc_cluster_peer_alive(const lc_cluster_peer *p)
{
    return atomic_load(&p->self) || atomic_load(&p->alive);
}

const char *lc_cluster_peer_id(const lc_cluster_peer *p)
{
    return p->id;
}

void lc_cluster_peer_failed(lc_cluster_peer *p, int rc)
{
    if (rc != -LC_UNAVAILABLE && rc != -LC_DEADLINE_EXCEEDED)
        return;
    if (atomic_exchange(&p->alive, false))
        LC_WARN(MOD, "peer %s is down (a forwarded call failed); skipping it", p->id);
}

static bool id_is_self(lc_cluster *c, const char *id, char self_ids[][ID_MAX], size_t n_self)
{
    if (strcmp(id, c->self) == 0)
        return true;
    for (size_t i = 0; i < n_self; i++)
        if (strcmp(id, self_ids[i]) == 0)
            return true;
    return false;
}

/* Makes the peer set exactly ids[0..n): new peers are added to the table,
 * others leave it (their clients stay until lc_cluster_free). */
static void set_members(lc_cluster *c, char ids[][ID_MAX], size_t n)
{
    char self_ids[16][ID_MAX];
    size_t n_self = 0;
    char sh[256], sp[16];
    if (lc_peers_split_hostport(c->self, sh, sizeof(sh), sp, sizeof(sp)) == 0)
        n_self = lc_peers_resolve(sh, sp, self_ids, 16);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_peers; i++) {
        bool in = false;
        for (size_t k = 0; k < n; k++)
            in |= strcmp(c->peer[i]->id, ids[k]) == 0;
        if (atomic_exchange(&c->peer[i]->member, in) != in)
            LC_INFO(MOD, "peer %s %s", c->peer[i]->id, in ? "joined" : "left");
    }
    for (size_t k = 0; k < n; k++) {
        bool found = false;
        for (size_t i = 0; i < c->n_peers && !found; i++)
            found = strcmp(c->peer[i]->id, ids[k]) == 0;
        if (found)
            continue;
        if (c->n_peers == LC_CLUSTER_MAX_PEERS) {
            LC_WARN(MOD, "more than %d peers: ignoring %s", LC_CLUSTER_MAX_PEERS, ids[k]);
            continue;
        }
        lc_cluster_peer *p = calloc(1, sizeof(*p));
        if (p == NULL)
            continue;
        snprintf(p->id, sizeof(p->id), "%s", ids[k]);
        atomic_init(&p->self, id_is_self(c, ids[k], self_ids, n_self));
        atomic_init(&p->alive, true); /* optimistic until a check fails */
        atomic_init(&p->member, true);
        pthread_mutex_init(&p->mu, NULL);
        c->peer[c->n_peers++] = p;
        LC_INFO(MOD, "peer %s%s", p->id, atomic_load(&p->self) ? " (self)" : "");
    }
    pthread_mutex_unlock(&c->mu);
}

static void refresh_dns(lc_cluster *c)
{
    char ids[LC_CLUSTER_MAX_PEERS][ID_MAX];
    size_t n = lc_peers_resolve(c->dns_host, c->dns_port, ids, LC_CLUSTER_MAX_PEERS);
    if (n == 0) {
        LC_WARN(MOD, "peers name %s resolves to no address yet; keeping the previous peers",
                c->dns_host);
        return;
    }
    set_members(c, ids, n);
}

void lc_cluster_members(lc_cluster *c, lc_cluster_route *r)
{
    r->n = 0;
    r->n_owners = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_peers; i++)
        if (atomic_load(&c->peer[i]->member))
            r->p[r->n++] = c->peer[i];
    pthread_mutex_unlock(&c->mu);
}

void lc_cluster_route_key(lc_cluster *c, const void *key, size_t keylen, lc_cluster_route *r)
{
    lc_cluster_route m;
    const char *ids[LC_CLUSTER_MAX_PEERS] = {0};
    size_t order[LC_CLUSTER_MAX_PEERS];
    lc_cluster_members(c, &m);
    for (size_t i = 0; i < m.n; i++)
        ids[i] = m.p[i]->id;
    lc_placement_rank(ids, m.n, key, keylen, order);
    r->n = m.n;
    for (size_t i = 0; i < m.n; i++)
        r->p[i] = m.p[order[i]];
    r->n_owners = (size_t)c->replication < m.n ? (size_t)c->replication : m.n;
}

void lc_cluster_route_blob(lc_cluster *c, const lc_digest *d, lc_cluster_route *r)
{
    uint8_t key[LC_HASH_LEN];
    size_t n = lc_placement_blob_key(d, key);
    lc_cluster_route_key(c, key, n, r);
}

void lc_cluster_route_action(lc_cluster *c, const char *instance, const lc_digest *d,
                             lc_cluster_route *r)
{
    uint8_t key[1100 + LC_HASH_LEN];
    size_t n = lc_placement_action_key(instance, d, key, sizeof(key));
    lc_cluster_route_key(c, key, n, r);
}

static lc_cache_client *open_client(lc_cluster *c, lc_cluster_peer *p, const char *instance,
                                    int64_t deadline_ms, lc_err *err)
{
    lc_cache_client_options o = {.instance_name = instance,
                                 .token = c->token,
                                 .deadline_ms = deadline_ms,
                                 .connect_timeout_ms = 1000,
                                 .ca_file = c->tls_ca_file,
                                 .tls_server_name = c->tls_server_name,
                                 .ca_flag = "--cluster-ca"};
    lc_cache_client *cl = NULL;
    char host[256], port[16], target[ID_MAX + 16];
    if (lc_peers_split_hostport(p->id, host, sizeof(host), port, sizeof(port)) < 0) {
        lc_err_set(err, LC_INVALID_ARGUMENT, "peer '%s' is not HOST:PORT", p->id);
        return NULL;
    }
    int pp = atoi(port) + c->port_offset; /* the peer port */
    snprintf(target, sizeof(target), strchr(host, ':') ? "%s[%s]:%d" : "%s%s:%d",
             c->tls ? "grpcs://" : "", host, pp);
    if (lc_cache_client_open(target, &o, &cl, err) < 0)
        return NULL;
    return cl;
}

lc_cache_client *lc_cluster_client(lc_cluster *c, lc_cluster_peer *p, const char *instance,
                                   lc_err *err)
{
    lc_cache_client *cl = NULL;
    if (atomic_load(&p->self)) {
        lc_err_set(err, LC_INTERNAL, "no client for self");
        return NULL;
    }
    instance = instance ? instance : "";
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_clients && cl == NULL; i++)
        if (strcmp(p->clients[i].instance, instance) == 0)
            cl = p->clients[i].client;
    if (cl == NULL) {
        if (p->n_clients == MAX_INSTANCES) {
            lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                       "cluster mode serves at most %d instance names per peer", MAX_INSTANCES);
        } else {
            char *dup = strdup(instance);
            cl = dup ? open_client(c, p, instance, c->deadline_ms, err) : NULL;
            if (cl != NULL) {
                p->clients[p->n_clients].instance = dup;
                p->clients[p->n_clients].client = cl;
                p->n_clients++;
            } else {
                free(dup);
            }
        }
    }
    pthread_mutex_unlock(&p->mu);
    return cl;
}

/* ---- health thread ------------------------------------------------------ */

static void check_peer(lc_cluster *c, lc_cluster_peer *p)
{
    lc_err err = {0};
    if (p->health == NULL)
        p->health = open_client(c, p, "", c->health_ms < 1000 ? c->health_ms : 1000, &err);
    if (p->health == NULL)
        return;
    lc_cache_capabilities caps;
    bool ok = lc_cache_client_get_capabilities(p->health, &caps, &err) == 0;
    bool was = atomic_exchange(&p->alive, ok);
    if (was != ok) {
        if (ok)
            LC_INFO(MOD, "peer %s is up", p->id);
        else
            LC_WARN(MOD, "peer %s is down: %s", p->id, err.msg);
    }
}

static void *health_main(void *arg)
{
    lc_cluster *c = arg;
    int64_t since_dns = 0, since_all = c->health_ms;
    /* Dead peers are retried every tick (a quarter period), so a replica
     * that starts or restarts is used again quickly; live ones each period. */
    int64_t tick = c->health_ms / 4 > 0 ? c->health_ms / 4 : 1;
    for (;;) {
        lc_cluster_route m;
        bool all = since_all >= c->health_ms;
        lc_cluster_members(c, &m);
        for (size_t i = 0; i < m.n; i++)
            if (!atomic_load(&m.p[i]->self) && (all || !atomic_load(&m.p[i]->alive)))
                check_peer(c, m.p[i]);
        since_all = all ? 0 : since_all;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += tick / 1000;
        ts.tv_nsec += (tick % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&c->mu);
        while (!c->stop)
            if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
                break;
        bool stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        since_dns += tick;
        since_all += tick;
        if (c->dns && since_dns >= c->dns_ms) {
            since_dns = 0;
            refresh_dns(c);
        }
    }
    return NULL;
}

/* ---- lifetime ----------------------------------------------------------- */

/* *out = a copy of s, or NULL for NULL or ""; false when out of memory. */
static bool dup_optional(const char *s, char **out)
{
    *out = s != NULL && s[0] != '\0' ? strdup(s) : NULL;
    return *out != NULL || s == NULL || s[0] == '\0';
}

int lc_cluster_new(const lc_cluster_options *o, lc_cluster **out, lc_err *err)
{
    int rc = 0;
    if (o->peers == NULL || o->peers[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--peers is empty");
    if (o->self == NULL || o->self[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--peers needs --self HOST:PORT (this replica as the peer list names "
                          "it)");
    if (o->replication < 1 || o->replication > LC_CLUSTER_MAX_PEERS)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--replication must be 1..%d, got %d",
                          LC_CLUSTER_MAX_PEERS, o->replication);
    lc_cluster *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->replication = o->replication;
    c->port_offset = o->peer_port_offset;
    c->health_ms = o->health_ms > 0 ? o->health_ms : 2000;
    c->dns_ms = o->dns_refresh_ms > 0 ? o->dns_refresh_ms : 10000;
    c->deadline_ms = o->call_deadline_ms > 0 ? o->call_deadline_ms : 60000;
    c->peers = strdup(o->peers);
    c->self = strdup(o->self);
    c->token =
        strdup(o->token != NULL && o->token[0] != '\0' ? o->token : LC_CLUSTER_DEFAULT_TOKEN);
    c->tls = o->tls;
    bool tls_ok = dup_optional(o->tls_ca_file, &c->tls_ca_file);
    tls_ok = dup_optional(o->tls_server_name, &c->tls_server_name) && tls_ok;
    if (c->peers == NULL || c->self == NULL || c->token == NULL || !tls_ok) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    snprintf(c->auth_value, sizeof(c->auth_value), "Bearer %s", c->token);
    char sh[256], sp[16];
    if (lc_peers_split_hostport(c->self, sh, sizeof(sh), sp, sizeof(sp)) < 0) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--self '%s' is not HOST:PORT", c->self);
        goto fail;
    }

    /* Many entries, or one numeric address: a static list. One name: DNS. */
    char ids[LC_CLUSTER_MAX_PEERS][ID_MAX];
    size_t n = 0;
    bool single = strchr(c->peers, ',') == NULL;
    char host[256], port[16];
    char *list = strdup(c->peers), *save = NULL;
    if (list == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    for (char *tok = strtok_r(list, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (lc_peers_split_hostport(tok, host, sizeof(host), port, sizeof(port)) < 0) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--peers entry '%s' is not HOST:PORT", tok);
            free(list);
            goto fail;
        }
        if (n == LC_CLUSTER_MAX_PEERS) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--peers lists more than %d peers",
                            LC_CLUSTER_MAX_PEERS);
            free(list);
            goto fail;
        }
        snprintf(ids[n++], ID_MAX, "%s", tok);
    }
    free(list);
    if (n == 0) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--peers '%s' names no peer", c->peers);
        goto fail;
    }
    if (single && !lc_peers_is_numeric_host(host) && strcmp(ids[0], c->self) != 0) {
        c->dns = true;
        snprintf(c->dns_host, sizeof(c->dns_host), "%s", host);
        snprintf(c->dns_port, sizeof(c->dns_port), "%s", port);
        refresh_dns(c);
    } else {
        set_members(c, ids, n);
    }
    if (pthread_create(&c->thread, NULL, health_main, c) != 0) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot start the peer health thread");
        goto fail;
    }
    c->thread_started = true;
    LC_INFO(MOD, "cluster mode: %zu peers%s%s, replication %d, self %s", c->n_peers,
            c->dns ? " from DNS name " : "", c->dns ? c->dns_host : "", c->replication, c->self);
    *out = c;
    return 0;
fail:
    lc_cluster_free(&c);
    return rc;
}

void lc_cluster_free(lc_cluster **pc)
{
    lc_cluster *c = pc ? *pc : NULL;
    if (c == NULL)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    for (size_t i = 0; i < c->n_peers; i++) {
        lc_cluster_peer *p = c->peer[i];
        for (size_t k = 0; k < p->n_clients; k++) {
            lc_cache_client_close(&p->clients[k].client);
            free(p->clients[k].instance);
        }
        lc_cache_client_close(&p->health);
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->token);
    free(c->tls_ca_file);
    free(c->tls_server_name);
    free(c->self);
    free(c->peers);
    free(c);
    *pc = NULL;
}
