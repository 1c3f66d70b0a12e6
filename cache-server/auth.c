/* auth.c - see auth.h. */
#include "auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "digest.h"
#include "log.h"

#define MOD "auth"
#define MAX_FILE (16 << 20)
#define MAX_TOKEN_LEN 4096

struct entry {
    uint8_t hash[LC_HASH_LEN]; /* SHA-256 of the token */
    lc_auth_role role;
    char name[LC_AUTH_NAME_MAX];
};

/* Immutable once published. */
struct table {
    struct entry *v;
    size_t n;
};

struct lc_auth {
    char *path; /* NULL when loaded from text */
    bool anon;
    _Atomic(struct table *) table;
    /* Checks register in active[epoch & 1] for as long as they use the
     * table; a reload flips the epoch twice and waits for each side to
     * drain before freeing the old table. */
    atomic_uint epoch;
    atomic_long active[2];
    pthread_mutex_t reload_mu; /* one reload at a time */
};

static void table_free(struct table *t)
{
    if (t == NULL)
        return;
    /* Hashes of live tokens: do not leave them in freed memory. */
    if (t->v != NULL)
        OPENSSL_cleanse(t->v, t->n * sizeof(*t->v));
    free(t->v);
    free(t);
}

/* ---- parsing -------------------------------------------------------------- */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int parse_role(const char *s, size_t len, lc_auth_role *out)
{
    static const struct {
        const char *name;
        lc_auth_role role;
    } roles[] = {{"read", LC_ROLE_READ},
                 {"untrusted", LC_ROLE_UNTRUSTED},
                 {"write", LC_ROLE_WRITE},
                 {"admin", LC_ROLE_ADMIN}};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strlen(roles[i].name) == len && memcmp(roles[i].name, s, len) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return -1;
}

/* Parses one non-comment line (trimmed, len > 0) into e. Messages never
 * quote the token. */
static int parse_line(const char *s, size_t len, const char *what, size_t lineno, struct entry *e,
                      lc_err *err)
{
    size_t i = 0;
    while (i < len && !is_space(s[i]))
        i++;
    size_t tok_len = i;
    if (tok_len > MAX_TOKEN_LEN)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "%s line %zu: the token is longer than %d bytes", what, lineno,
                          MAX_TOKEN_LEN);
    for (size_t k = 0; k < tok_len; k++)
        if ((unsigned char)s[k] < 0x21 || (unsigned char)s[k] > 0x7e)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "%s line %zu: the token has a byte that cannot go in an HTTP "
                              "header (only visible ASCII characters)",
                              what, lineno);
    while (i < len && is_space(s[i]))
        i++;
    size_t role_start = i;
    while (i < len && !is_space(s[i]))
        i++;
    if (i == role_start)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "%s line %zu: missing role: expected '<token> <role> [<name>]' with "
                          "role read, untrusted, write or admin",
                          what, lineno);
    if (parse_role(s + role_start, i - role_start, &e->role) < 0) {
        int rl = (int)(i - role_start > 20 ? 20 : i - role_start);
        char shown[24];
        snprintf(shown, sizeof(shown), "%.*s", rl, s + role_start);
        for (char *p = shown; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                *p = '?';
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "%s line %zu: unknown role '%s' (expected read, untrusted, write or "
                          "admin)",
                          what,
                          lineno, shown);
    }
    while (i < len && is_space(s[i]))
        i++;
    size_t name_len = len - i; /* the rest of the line, already right-trimmed */
    if (name_len >= LC_AUTH_NAME_MAX)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s line %zu: the name is longer than %d bytes",
                          what, lineno, LC_AUTH_NAME_MAX - 1);
    for (size_t k = 0; k < name_len; k++)
        if ((unsigned char)s[i + k] < 0x20 || (unsigned char)s[i + k] > 0x7e)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "%s line %zu: the name may only hold printable ASCII characters",
                              what, lineno);
    /* Its action cache entries are kept under its name (trust.h). */
    if (e->role == LC_ROLE_UNTRUSTED && name_len == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "%s line %zu: an untrusted token needs a name ('<token> untrusted "
                          "<name>'): its action cache entries are kept under it",
                          what, lineno);
    memcpy(e->name, s + i, name_len);
    e->name[name_len] = '\0';
    lc_digest d;
    lc_digest_of(s, tok_len, &d);
    memcpy(e->hash, d.hash, LC_HASH_LEN);
    OPENSSL_cleanse(&d, sizeof(d));
    return 0;
}

static int cmp_by_hash(const void *a, const void *b, void *v)
{
    const struct entry *e = v;
    int c = memcmp(e[*(const size_t *)a].hash, e[*(const size_t *)b].hash, LC_HASH_LEN);
    if (c != 0)
        return c;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* Each token must be unique, as it decides the role: sort entry indexes by
 * hash and compare neighbours (O(n log n): big files reload quickly). */
static int check_unique(const struct table *t, const size_t *lines, const char *what, lc_err *err)
{
    if (t->n < 2)
        return 0;
    size_t *idx = malloc(t->n * sizeof(*idx));
    if (idx == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < t->n; i++)
        idx[i] = i;
    qsort_r(idx, t->n, sizeof(*idx), cmp_by_hash, t->v);
    int rc = 0;
    size_t first = 0, second = 0; /* the earliest duplicated pair by line */
    for (size_t i = 1; i < t->n; i++) {
        if (memcmp(t->v[idx[i - 1]].hash, t->v[idx[i]].hash, LC_HASH_LEN) == 0 &&
            (rc == 0 || idx[i] < second)) {
            first = idx[i - 1];
            second = idx[i];
            rc = -LC_INVALID_ARGUMENT;
        }
    }
    free(idx);
    if (rc < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "%s line %zu: the same token as line %zu (each token must be unique, "
                          "as it decides the role)",
                          what, lines[second], lines[first]);
    return 0;
}

static int table_parse(const char *text, size_t len, const char *what, struct table **out,
                       lc_err *err)
{
    *out = NULL;
    struct table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    size_t cap = 0;
    size_t *lines = NULL; /* line number of each entry, for duplicate messages */
    int rc = 0;
    size_t lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        const char *s = text + pos;
        size_t l = end - pos;
        pos = nl != NULL ? end + 1 : len;
        lineno++;
        while (l > 0 && (is_space(s[l - 1]) || s[l - 1] == '\r'))
            l--;
        while (l > 0 && is_space(*s)) {
            s++;
            l--;
        }
        if (l == 0 || s[0] == '#')
            continue;
        if (memchr(s, '\0', l) != NULL) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s line %zu: contains a NUL byte", what,
                            lineno);
            goto fail;
        }
        if (t->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct entry *nv = realloc(t->v, ncap * sizeof(*nv));
            if (nv == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto fail;
            }
            t->v = nv;
            size_t *nl2 = realloc(lines, ncap * sizeof(*nl2));
            if (nl2 == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto fail;
            }
            lines = nl2;
            cap = ncap;
        }
        struct entry *e = &t->v[t->n];
        memset(e, 0, sizeof(*e));
        rc = parse_line(s, l, what, lineno, e, err);
        if (rc < 0)
            goto fail;
        lines[t->n] = lineno;
        t->n++;
    }
    rc = check_unique(t, lines, what, err);
    if (rc < 0)
        goto fail;
    free(lines);
    *out = t;
    return 0;
fail:
    free(lines);
    table_free(t);
    return rc;
}

static int read_file(const char *path, char **out, size_t *len, lc_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot open tokens file '%s': %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077) != 0)
        LC_WARN(MOD, "tokens file '%s' can be read by other users (mode %03o): chmod 600 it", path,
                (unsigned)(st.st_mode & 0777));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = 0;
    if (buf == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE) {
                rc = lc_err_set(err, LC_INVALID_ARGUMENT, "tokens file '%s' is larger than %d MiB",
                                path, MAX_FILE >> 20);
                goto out;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = lc_err_set(err, LC_INTERNAL, "cannot read tokens file '%s'", path);
            break;
        }
    }
out:
    fclose(f);
    if (rc < 0) {
        if (buf != NULL)
            OPENSSL_cleanse(buf, n);
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- the RCU-style swap ------------------------------------------------- */

static struct table *read_begin(lc_auth *a, unsigned *slot)
{
    *slot = atomic_load(&a->epoch) & 1u;
    atomic_fetch_add(&a->active[*slot], 1);
    return atomic_load(&a->table);
}

static void read_end(lc_auth *a, unsigned slot)
{
    atomic_fetch_sub(&a->active[slot], 1);
}

/* After the pointer swap: every check that may still hold the old table
 * registered (before the swap) on one side or the other. Flip the epoch and
 * drain the old side, twice, so both sides have been seen empty after the
 * swap. New checks go to the new side, so each wait is finite. */
static void wait_for_readers(lc_auth *a)
{
    for (int phase = 0; phase < 2; phase++) {
        unsigned old = atomic_fetch_xor(&a->epoch, 1u) & 1u;
        while (atomic_load(&a->active[old]) != 0) {
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static void publish(lc_auth *a, struct table *t)
{
    struct table *old = atomic_exchange(&a->table, t);
    wait_for_readers(a);
    table_free(old);
}

/* ---- public --------------------------------------------------------------- */

static int auth_new(const char *path, bool anon, lc_auth **out, lc_err *err)
{
    *out = NULL;
    lc_auth *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (path != NULL && (a->path = strdup(path)) == NULL) {
        free(a);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    a->anon = anon;
    atomic_init(&a->table, NULL);
    atomic_init(&a->epoch, 0);
    atomic_init(&a->active[0], 0);
    atomic_init(&a->active[1], 0);
    pthread_mutex_init(&a->reload_mu, NULL);
    *out = a;
    return 0;
}

int lc_auth_open(const char *path, bool allow_anonymous_read, lc_auth **out, lc_err *err)
{
    int rc = auth_new(path, allow_anonymous_read, out, err);
    if (rc < 0)
        return rc;
    rc = lc_auth_reload(*out, err);
    if (rc < 0)
        lc_auth_free(out);
    return rc;
}

int lc_auth_open_text(const char *text, size_t len, const char *what, bool allow_anonymous_read,
                      lc_auth **out, lc_err *err)
{
    int rc = auth_new(NULL, allow_anonymous_read, out, err);
    if (rc < 0)
        return rc;
    rc = lc_auth_load_text(*out, text, len, what, err);
    if (rc < 0)
        lc_auth_free(out);
    return rc;
}

int lc_auth_load_text(lc_auth *a, const char *text, size_t len, const char *what, lc_err *err)
{
    struct table *t = NULL;
    int rc = table_parse(text, len, what, &t, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->reload_mu);
    publish(a, t);
    pthread_mutex_unlock(&a->reload_mu);
    return 0;
}

int lc_auth_reload(lc_auth *a, lc_err *err)
{
    if (a->path == NULL)
        return lc_err_set(err, LC_FAILED_PRECONDITION, "no tokens file to reload");
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(a->path, &text, &len, err);
    if (rc < 0)
        return rc;
    char what[300];
    snprintf(what, sizeof(what), "tokens file '%s'", a->path);
    rc = lc_auth_load_text(a, text, len, what, err);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

size_t lc_auth_count(lc_auth *a)
{
    unsigned slot;
    struct table *t = read_begin(a, &slot);
    size_t n = t != NULL ? t->n : 0;
    read_end(a, slot);
    return n;
}

void lc_auth_free(lc_auth **ap)
{
    if (ap == NULL || *ap == NULL)
        return;
    lc_auth *a = *ap;
    pthread_mutex_lock(&a->reload_mu);
    publish(a, NULL);
    pthread_mutex_unlock(&a->reload_mu);
    pthread_mutex_destroy(&a->reload_mu);
    free(a->path);
    free(a);
    *ap = NULL;
}

lc_auth_role lc_auth_method_role(const char *path)
{
    static const char *const reads[] = {
        "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
        "/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree",
        "/google.bytestream.ByteStream/Read",
        /* Says how far an upload got; reveals nothing a read could not. */
        "/google.bytestream.ByteStream/QueryWriteStatus",
    };
    static const char *const writes[] = {
        "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult",
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
        "/google.bytestream.ByteStream/Write",
    };
    if (path == NULL)
        return LC_ROLE_ADMIN;
    /* health.h (owner: helm): probes carry no token; they only learn that
     * the server is up. */
    if (strncmp(path, "/grpc.health.v1.Health/", 23) == 0)
        return LC_ROLE_NONE;
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
        if (strcmp(path, reads[i]) == 0)
            return LC_ROLE_READ;
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        if (strcmp(path, writes[i]) == 0)
            return LC_ROLE_WRITE;
    return LC_ROLE_ADMIN; /* the Admin service, and anything new: fail closed */
}

const char *lc_auth_role_name(lc_auth_role r)
{
    switch (r) {
    case LC_ROLE_READ:
        return "read";
    case LC_ROLE_UNTRUSTED:
        return "untrusted";
    case LC_ROLE_WRITE:
        return "write";
    case LC_ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

bool lc_auth_allows(lc_auth_role have, lc_auth_role need)
{
    return have >= need || (have == LC_ROLE_UNTRUSTED && need == LC_ROLE_WRITE);
}

bool lc_auth_anonymous_read(const lc_auth *a)
{
    return a != NULL && a->anon;
}

/* Finds "authorization: Bearer <token>" in md. 1 with the token span, 0
 * when there is no authorization entry, -1 when it is not a bearer token. */
static int bearer_token(const grpc_metadata_array *md, const char **tok, size_t *len)
{
    static const char key[] = "authorization";
    if (md == NULL)
        return 0;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) != sizeof(key) - 1 ||
            memcmp(GRPC_SLICE_START_PTR(m->key), key, sizeof(key) - 1) != 0)
            continue;
        const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
        size_t n = GRPC_SLICE_LENGTH(m->value);
        if (n < 7 || strncasecmp(v, "bearer", 6) != 0 || !is_space(v[6]))
            return -1;
        size_t s = 7;
        while (s < n && is_space(v[s]))
            s++;
        while (n > s && is_space(v[n - 1]))
            n--;
        if (n == s)
            return -1;
        *tok = v + s;
        *len = n - s;
        return 1;
    }
    return 0;
}

/* All ones when the two hashes are equal, else 0, without a branch or an
 * early exit (CRYPTO_memcmp is a byte loop behind a call: 10x slower on a
 * table of 1000 tokens). */
static uintptr_t hash_eq_mask(const uint8_t *a, const uint8_t *b)
{
    uint64_t diff = 0;
    for (size_t i = 0; i < LC_HASH_LEN; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    /* diff == 0 -> 1, else 0, from the top bit of (diff | -diff). */
    uint64_t nonzero = (diff | (0 - diff)) >> 63;
    return (uintptr_t)0 - (uintptr_t)(1 - nonzero);
}

/* Constant-time over the whole table: every entry is compared, and the
 * match is selected without a branch on the comparison. */
static const struct entry *table_find(const struct table *t, const uint8_t hash[LC_HASH_LEN])
{
    const struct entry *found = NULL;
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        uintptr_t mask = hash_eq_mask(t->v[i].hash, hash);
        found = (const struct entry *)(((uintptr_t)&t->v[i] & mask) | ((uintptr_t)found & ~mask));
    }
    return found;
}

int lc_auth_lookup_hash(lc_auth *a, const uint8_t hash[32], lc_auth_id *id, lc_err *err)
{
    memset(id, 0, sizeof(*id));
    if (a == NULL) {
        id->role = LC_ROLE_ADMIN;
        return 0;
    }
    unsigned slot;
    const struct table *t = read_begin(a, &slot);
    const struct entry *e = table_find(t, hash);
    if (e != NULL) {
        id->role = e->role;
        memcpy(id->name, e->name, sizeof(id->name));
    }
    read_end(a, slot);
    if (e == NULL)
        return lc_err_set(err, LC_UNAUTHENTICATED,
                          "the bearer token is not known to this server (mistyped, revoked, or "
                          "not yet in the server's tokens file)");
    return 0;
}

int lc_auth_lookup(lc_auth *a, const char *token, size_t len, lc_auth_id *id, uint8_t hash[32],
                   lc_err *err)
{
    lc_digest d;
    lc_digest_of(token, len, &d);
    int rc = lc_auth_lookup_hash(a, d.hash, id, err);
    if (hash != NULL)
        memcpy(hash, d.hash, LC_HASH_LEN);
    OPENSSL_cleanse(&d, sizeof(d));
    return rc;
}

static const char *short_method(const char *method)
{
    if (method == NULL)
        return "this method";
    const char *slash = strrchr(method, '/');
    const char *svc = method[0] == '/' ? method + 1 : method;
    /* "/pkg.Service/Method" -> "Service/Method" */
    const char *dot = NULL;
    for (const char *p = svc; slash != NULL && p < slash; p++)
        if (*p == '.')
            dot = p;
    return dot != NULL ? dot + 1 : svc;
}

int lc_auth_check(lc_auth *a, const grpc_metadata_array *md, lc_auth_role need, const char *method,
                  lc_auth_id *id, lc_err *err)
{
    memset(id, 0, sizeof(*id));
    if (a == NULL) {
        id->role = LC_ROLE_ADMIN;
        return 0;
    }
    if (need == LC_ROLE_NONE) /* health checks (lc_auth_method_role): no token needed */
        return 0;
    const char *tok = NULL;
    size_t len = 0;
    int found = bearer_token(md, &tok, &len);
    if (found < 0)
        return lc_err_set(err, LC_UNAUTHENTICATED,
                          "the authorization metadata is not 'Bearer <token>'");
    if (found == 0) {
        if (a->anon && lc_auth_allows(LC_ROLE_READ, need)) {
            id->role = LC_ROLE_READ;
            return 0;
        }
        if (a->anon)
            return lc_err_set(err, LC_UNAUTHENTICATED,
                              "%s needs the '%s' role: anonymous callers may only read; send "
                              "'authorization: Bearer <token>' with a %s token",
                              short_method(method), lc_auth_role_name(need),
                              lc_auth_role_name(need));
        return lc_err_set(err, LC_UNAUTHENTICATED,
                          "this server requires a token: send 'authorization: Bearer <token>' "
                          "(layercache: --token or LAYERCACHE_TOKEN; Bazel: "
                          "--remote_header=authorization=\"Bearer <token>\")");
    }
    int rc = lc_auth_lookup(a, tok, len, id, NULL, err);
    if (rc < 0)
        return rc;
    if (!lc_auth_allows(id->role, need)) {
        char who[LC_AUTH_NAME_MAX + 16];
        if (id->name[0] != '\0')
            snprintf(who, sizeof(who), "token '%s'", id->name);
        else
            snprintf(who, sizeof(who), "this token");
        rc = lc_err_set(err, LC_PERMISSION_DENIED, "%s needs the '%s' role%s; %s has '%s'",
                        short_method(method), lc_auth_role_name(need),
                        need == LC_ROLE_WRITE ? " (or 'untrusted')" : "", who,
                        lc_auth_role_name(id->role));
        lc_auth_role have = id->role;
        memset(id, 0, sizeof(*id));
        id->role = have;
        return rc;
    }
    return 0;
}
