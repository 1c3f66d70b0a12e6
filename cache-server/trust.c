/* trust.c - see trust.h. */
#include "trust.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_ac.h"

#define MOD "trust"

typedef Build__Bazel__Remote__Execution__V2__ActionResult action_result;

struct lc_trust {
    int quorum;
    _Atomic uint64_t promoted_trusted, promoted_quorum, rejected, untrusted_updates;
};

lc_trust *lc_trust_new(int promote_quorum)
{
    lc_trust *t = calloc(1, sizeof(*t));
    if (t != NULL)
        t->quorum = promote_quorum;
    return t;
}

void lc_trust_free(lc_trust **t)
{
    if (t == NULL)
        return;
    free(*t);
    *t = NULL;
}

int lc_trust_quorum(const lc_trust *t)
{
    return t != NULL ? t->quorum : 0;
}

void lc_trust_counts_get(const lc_trust *t, lc_trust_counts *out)
{
    memset(out, 0, sizeof(*out));
    if (t == NULL)
        return;
    out->promoted_trusted = atomic_load(&t->promoted_trusted);
    out->promoted_quorum = atomic_load(&t->promoted_quorum);
    out->rejected = atomic_load(&t->rejected);
    out->untrusted_updates = atomic_load(&t->untrusted_updates);
}

const char *lc_trust_name(Layercache__V1__Trust t)
{
    switch (t) {
    case LAYERCACHE__V1__TRUST__UNTRUSTED:
        return "untrusted";
    case LAYERCACHE__V1__TRUST__PROMOTED:
        return "promoted";
    default:
        return "trusted";
    }
}

/* ---- who is calling --------------------------------------------------------- */

static const grpc_metadata *find_md(const grpc_metadata_array *md, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; md != NULL && i < md->count; i++)
        if (GRPC_SLICE_LENGTH(md->metadata[i].key) == klen &&
            memcmp(GRPC_SLICE_START_PTR(md->metadata[i].key), key, klen) == 0)
            return &md->metadata[i];
    return NULL;
}

static int role_of(const char *s, size_t n, lc_auth_role *out)
{
    static const lc_auth_role roles[] = {LC_ROLE_READ, LC_ROLE_UNTRUSTED, LC_ROLE_WRITE,
                                         LC_ROLE_ADMIN};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        const char *name = lc_auth_role_name(roles[i]);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *out = roles[i];
            return 0;
        }
    }
    return -1;
}

void lc_trust_caller_of(const lc_call_ctx *ctx, lc_trust_caller *out)
{
    memset(out, 0, sizeof(*out));
    out->role = ctx->role;
    if (ctx->principal != NULL)
        snprintf(out->name, sizeof(out->name), "%s", ctx->principal);
    /* cluster: a peer's call carries the client it is for. */
    if (!ctx->forwarded || ctx->role != LC_ROLE_ADMIN || ctx->principal != NULL)
        return;
    const grpc_metadata *m = find_md(ctx->metadata, LC_TRUST_CALLER_MD);
    if (m == NULL)
        return;
    const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
    size_t n = GRPC_SLICE_LENGTH(m->value);
    const char *sp = memchr(v, ' ', n);
    size_t rl = sp != NULL ? (size_t)(sp - v) : n;
    lc_auth_role role;
    if (role_of(v, rl, &role) < 0)
        return;
    size_t nl = sp != NULL ? n - rl - 1 : 0;
    if (nl >= sizeof(out->name))
        return;
    for (size_t i = 0; i < nl; i++)
        if ((unsigned char)sp[1 + i] < 0x20 || (unsigned char)sp[1 + i] > 0x7e)
            return;
    if (role == LC_ROLE_UNTRUSTED && nl == 0)
        return;
    out->role = role;
    if (nl > 0)
        memcpy(out->name, sp + 1, nl);
    out->name[nl] = '\0';
}

void lc_trust_caller_format(const lc_trust_caller *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", lc_auth_role_name(c->role), c->name[0] ? " " : "", c->name);
}

bool lc_trust_is_untrusted(const lc_trust_caller *c)
{
    return c->role == LC_ROLE_UNTRUSTED;
}

/* ---- identical results ------------------------------------------------------ */

int lc_trust_result_id(const action_result *ar, lc_digest *out, lc_err *err)
{
    action_result copy = *ar;
    copy.execution_metadata = NULL;
    size_t n = build__bazel__remote__execution__v2__action_result__get_packed_size(&copy);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    build__bazel__remote__execution__v2__action_result__pack(&copy, buf);
    lc_digest_of(buf, n, out);
    free(buf);
    return 0;
}

/* The result identity of a stored entry; -1 when it does not parse. */
static int stored_id(const uint8_t *value, size_t len, lc_digest *out)
{
    Layercache__V1__StoredActionResult *s =
        layercache__v1__stored_action_result__unpack(NULL, len, value);
    if (s == NULL)
        return -1;
    action_result *ar = build__bazel__remote__execution__v2__action_result__unpack(
        NULL, s->action_result.len, s->action_result.data);
    int rc = ar != NULL ? lc_trust_result_id(ar, out, NULL) : -1;
    if (ar != NULL)
        build__bazel__remote__execution__v2__action_result__free_unpacked(ar, NULL);
    layercache__v1__stored_action_result__free_unpacked(s, NULL);
    return rc < 0 ? -1 : 0;
}

/* ---- update ------------------------------------------------------------------- */

/* Untrusted writers of one key whose result has identity id. */
typedef struct same {
    lc_digest id;
    char **names;
    size_t n, cap;
    int rc;
    lc_err *err;
} same;

static int collect_same(void *ctx, const char *instance, const lc_digest *action,
                        const char *writer, const uint8_t *value, size_t len)
{
    same *x = ctx;
    (void)instance;
    (void)action;
    lc_digest id;
    if (stored_id(value, len, &id) < 0 || !lc_digest_equal(&id, &x->id))
        return 0;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        char **v = realloc(x->names, cap * sizeof(*v));
        if (v == NULL)
            goto oom;
        x->names = v;
        x->cap = cap;
    }
    if ((x->names[x->n] = strdup(writer)) == NULL)
        goto oom;
    x->n++;
    return 0;
oom:
    x->rc = lc_err_set(x->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return 1;
}

static void same_clear(same *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->names[i]);
    free(x->names);
    x->names = NULL;
    x->n = x->cap = 0;
}

static int find_same(lc_store *s, const char *instance, const lc_digest *action, same *x,
                     lc_err *err)
{
    x->err = err;
    int rc = lc_store_ac_untrusted_of(s, instance, action, collect_same, x, err);
    return rc < 0 ? rc : x->rc;
}

static int pack_put(lc_store *s, const char *instance, const lc_digest *action,
                    const char *untrusted_writer, const Layercache__V1__StoredActionResult *st,
                    lc_err *err)
{
    size_t n = layercache__v1__stored_action_result__get_packed_size(st);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    layercache__v1__stored_action_result__pack(st, buf);
    int rc = untrusted_writer != NULL
                 ? lc_store_ac_untrusted_put(s, instance, action, untrusted_writer, buf, n, err)
                 : lc_store_ac_put(s, instance, action, buf, n, err);
    free(buf);
    return rc;
}

/* The trusted entry's identity: 1 found, 0 none (or unreadable: it is a
 * miss for everyone), < 0 error. */
static int trusted_id(lc_store *s, const char *instance, const lc_digest *action, lc_digest *id,
                      lc_err *err)
{
    uint8_t *value = NULL;
    size_t len = 0;
    int rc = lc_store_ac_get(s, instance, action, &value, &len, err);
    if (rc == -LC_NOT_FOUND) {
        lc_err_clear(err);
        return 0;
    }
    if (rc < 0)
        return rc;
    rc = stored_id(value, len, id) == 0 ? 1 : 0;
    free(value);
    return rc;
}

/* Deletes the untrusted entries of x's names. */
static int drop_same(lc_store *s, const char *instance, const lc_digest *action, const same *x,
                     lc_hits *h, lc_err *err)
{
    for (size_t i = 0; i < x->n; i++) {
        int rc = lc_store_ac_untrusted_delete(s, instance, action, x->names[i], err);
        if (rc < 0)
            return rc;
        lc_hits_forget(h, instance, action, x->names[i]);
    }
    return 0;
}

static int update_trusted(lc_trust *t, lc_store *s, lc_hits *h, const char *instance,
                          const lc_digest *action, const lc_digest *id,
                          Layercache__V1__StoredActionResult *st, size_t *promoted, lc_err *err)
{
    same x = {.id = *id};
    int rc = find_same(s, instance, action, &x, err);
    if (rc < 0)
        goto out;
    st->trust = LAYERCACHE__V1__TRUST__TRUSTED;
    st->n_promoted_from = x.n;
    st->promoted_from = x.names;
    rc = pack_put(s, instance, action, NULL, st, err);
    st->n_promoted_from = 0;
    st->promoted_from = NULL;
    if (rc < 0 || (rc = drop_same(s, instance, action, &x, h, err)) < 0)
        goto out;
    *promoted = x.n;
    if (x.n > 0)
        atomic_fetch_add(&t->promoted_trusted, 1);
out:
    same_clear(&x);
    return rc;
}

static int update_untrusted(lc_trust *t, lc_store *s, lc_hits *h, const lc_trust_caller *c,
                            const char *instance, const lc_digest *action, const lc_digest *id,
                            Layercache__V1__StoredActionResult *st, lc_trust_outcome *outcome,
                            size_t *promoted, lc_err *err)
{
    lc_digest tid;
    int have_trusted = trusted_id(s, instance, action, &tid, err);
    if (have_trusted < 0)
        return have_trusted;
    if (have_trusted && lc_digest_equal(&tid, id)) {
        /* Everyone has it already; the writer gets the trusted entry. */
        *outcome = LC_TRUST_MATCHED;
        lc_hits_forget(h, instance, action, c->name);
        return lc_store_ac_untrusted_delete(s, instance, action, c->name, err);
    }
    if (have_trusted)
        atomic_fetch_add(&t->rejected, 1);
    st->trust = LAYERCACHE__V1__TRUST__UNTRUSTED;
    int rc = pack_put(s, instance, action, c->name, st, err);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&t->untrusted_updates, 1);
    *outcome = LC_TRUST_STORED_UNTRUSTED;
    if (t->quorum < 2 || have_trusted)
        return 0; /* a quorum never replaces a trusted writer's entry */
    same x = {.id = *id};
    if ((rc = find_same(s, instance, action, &x, err)) < 0 || x.n < (size_t)t->quorum)
        goto out;
    st->trust = LAYERCACHE__V1__TRUST__PROMOTED;
    st->n_promoted_from = x.n;
    st->promoted_from = x.names;
    rc = pack_put(s, instance, action, NULL, st, err);
    st->n_promoted_from = 0;
    st->promoted_from = NULL;
    if (rc < 0 || (rc = drop_same(s, instance, action, &x, h, err)) < 0)
        goto out;
    atomic_fetch_add(&t->promoted_quorum, 1);
    *outcome = LC_TRUST_PROMOTED;
    *promoted = x.n;
out:
    same_clear(&x);
    return rc;
}

int lc_trust_update(lc_trust *t, lc_store *s, lc_hits *h, const lc_trust_caller *c,
                    const char *instance, const lc_digest *action, const action_result *ar,
                    Layercache__V1__StoredActionResult *stored, lc_trust_outcome *outcome,
                    size_t *promoted, lc_err *err)
{
    size_t np = 0;
    lc_digest id;
    int rc = lc_trust_result_id(ar, &id, err);
    if (rc < 0)
        return rc;
    lc_trust fallback = {.quorum = 0};
    if (t == NULL)
        t = &fallback;
    lc_hits_lock(h, action);
    if (lc_trust_is_untrusted(c)) {
        rc = update_untrusted(t, s, h, c, instance, action, &id, stored, outcome, &np, err);
    } else {
        *outcome = LC_TRUST_STORED;
        rc = update_trusted(t, s, h, instance, action, &id, stored, &np, err);
    }
    lc_hits_unlock(h, action);
    if (promoted != NULL)
        *promoted = np;
    return rc;
}
