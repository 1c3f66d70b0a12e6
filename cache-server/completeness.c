/* completeness.c - see completeness.h. */
#include "completeness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_ac.h" /* lc_store_blob_peek */

typedef Build__Bazel__Remote__Execution__V2__ActionResult action_result;
typedef Build__Bazel__Remote__Execution__V2__Digest reapi_digest;
typedef Build__Bazel__Remote__Execution__V2__Directory reapi_directory;
typedef Build__Bazel__Remote__Execution__V2__Tree reapi_tree;

/* A wire Digest named what: INVALID_ARGUMENT when missing or malformed. */
static int parse_digest(const reapi_digest *d, const char *what, lc_digest *out, lc_err *err)
{
    if (d == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s is missing (a Digest with hash and size)",
                          what);
    const char *hash = d->hash != NULL ? d->hash : "";
    lc_err derr = {0};
    if (lc_digest_parse(hash, strlen(hash), d->size_bytes, out, &derr) != 0) {
        char shown[80];
        size_t len = strlen(hash);
        snprintf(shown, sizeof(shown), "%.*s%s", len > 70 ? 70 : (int)len, hash,
                 len > 70 ? "..." : "");
        for (char *p = shown; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s '%s/%lld': %s", what, shown,
                          (long long)d->size_bytes, derr.msg);
    }
    return 0;
}

static int add(lc_complete_needs *n, const lc_digest *d, lc_err *err)
{
    if (lc_digest_is_empty(d))
        return 0;
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        lc_digest *v = realloc(n->v, cap * sizeof(*v));
        if (v == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        n->v = v;
        n->cap = cap;
    }
    n->v[n->n++] = *d;
    return 0;
}

static int add_wire(lc_complete_needs *n, const reapi_digest *d, const char *what, lc_err *err)
{
    lc_digest x;
    int rc = parse_digest(d, what, &x, err);
    return rc < 0 ? rc : add(n, &x, err);
}

static int add_files(lc_complete_needs *n, const reapi_directory *dir, const lc_digest *tree,
                     lc_err *err)
{
    if (dir == NULL)
        return 0;
    for (size_t i = 0; i < dir->n_files; i++) {
        lc_digest x;
        lc_err derr = {0};
        if (dir->files[i] == NULL ||
            parse_digest(dir->files[i]->digest, "file digest", &x, &derr) < 0) {
            char hex[LC_HASH_HEX_LEN + 1];
            lc_digest_hex(tree, hex);
            n->bad_tree = *tree;
            return lc_err_set(err, LC_FAILED_PRECONDITION,
                              "Tree %s/%lld names a file without a valid digest%s%s", hex,
                              (long long)tree->size, derr.msg[0] ? ": " : "", derr.msg);
        }
        int rc = add(n, &x, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The files of the Tree blob t (its digest is already listed). */
static int add_tree(lc_complete_needs *n, const lc_digest *t, lc_complete_fetch_fn fetch,
                    void *fctx, lc_err *err)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(t, hex);
    if (lc_digest_is_empty(t))
        return 0; /* an empty Tree message: no root, no files */
    if (t->size > (int64_t)LC_COMPLETE_MAX_TREE) {
        n->bad_tree = *t;
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "Tree %s/%lld is larger than %u MiB: its files are not checked, so "
                          "the result is not served",
                          hex, (long long)t->size, LC_COMPLETE_MAX_TREE >> 20);
    }
    uint8_t *data = NULL;
    size_t len = 0;
    lc_err ferr = {0};
    int rc = fetch(fctx, t, &data, &len, &ferr);
    if (rc == -LC_NOT_FOUND) {
        n->trees_absent++;
        return 0;
    }
    if (rc < 0) {
        n->bad_tree = *t;
        return lc_err_set(err, rc == -LC_UNAVAILABLE ? LC_UNAVAILABLE : LC_FAILED_PRECONDITION,
                          "cannot read Tree %s/%lld: %s", hex, (long long)t->size, ferr.msg);
    }
    reapi_tree *tree = build__bazel__remote__execution__v2__tree__unpack(NULL, len, data);
    free(data);
    if (tree == NULL) {
        n->bad_tree = *t;
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "blob %s/%lld named as an output directory's tree_digest is not a "
                          "Tree message",
                          hex, (long long)t->size);
    }
    rc = add_files(n, tree->root, t, err);
    for (size_t i = 0; rc == 0 && i < tree->n_children; i++)
        rc = add_files(n, tree->children[i], t, err);
    build__bazel__remote__execution__v2__tree__free_unpacked(tree, NULL);
    return rc;
}

static int digest_cmp(const void *pa, const void *pb)
{
    const lc_digest *a = pa, *b = pb;
    int r = memcmp(a->hash, b->hash, LC_HASH_LEN);
    return r != 0 ? r : (a->size < b->size ? -1 : a->size > b->size);
}

static void sort_unique(lc_complete_needs *n)
{
    if (n->n > 1) {
        qsort(n->v, n->n, sizeof(*n->v), digest_cmp);
        size_t k = 1;
        for (size_t i = 1; i < n->n; i++)
            if (!lc_digest_equal(&n->v[i], &n->v[k - 1]))
                n->v[k++] = n->v[i];
        n->n = k;
    }
    n->bytes = 0;
    for (size_t i = 0; i < n->n; i++)
        n->bytes += (uint64_t)n->v[i].size;
}

int lc_complete_needs_of(const action_result *ar, lc_complete_fetch_fn fetch, void *fetch_ctx,
                         lc_complete_needs *out, lc_err *err)
{
    char what[96];
    int rc = 0;
    out->n = 0;
    out->bytes = 0;
    out->trees_absent = 0;
    memset(&out->bad_tree, 0, sizeof(out->bad_tree));
    for (size_t i = 0; i < ar->n_output_files; i++) {
        const Build__Bazel__Remote__Execution__V2__OutputFile *f = ar->output_files[i];
        if (f == NULL || f->path == NULL || f->path[0] == '\0')
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "action_result.output_files[%zu] has no path", i);
        snprintf(what, sizeof(what), "action_result.output_files[%zu].digest", i);
        if ((rc = add_wire(out, f->digest, what, err)) < 0)
            return rc;
    }
    for (int i = 0; i < 2; i++) {
        const reapi_digest *d = i == 0 ? ar->stdout_digest : ar->stderr_digest;
        /* Optional; when present they must be valid. */
        if (d != NULL &&
            (rc = add_wire(out, d,
                           i == 0 ? "action_result.stdout_digest" : "action_result.stderr_digest",
                           err)) < 0)
            return rc;
    }
    /* Tree digests first, their files after: Trees are read only once
     * every field validated. */
    for (size_t i = 0; i < ar->n_output_directories; i++) {
        const Build__Bazel__Remote__Execution__V2__OutputDirectory *d = ar->output_directories[i];
        if (d == NULL)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "action_result.output_directories[%zu] is empty", i);
        snprintf(what, sizeof(what), "action_result.output_directories[%zu].tree_digest", i);
        if ((rc = add_wire(out, d->tree_digest, what, err)) < 0)
            return rc;
        if (d->root_directory_digest != NULL) {
            snprintf(what, sizeof(what),
                     "action_result.output_directories[%zu].root_directory_digest", i);
            if ((rc = add_wire(out, d->root_directory_digest, what, err)) < 0)
                return rc;
        }
    }
    if (fetch != NULL) {
        for (size_t i = 0; i < ar->n_output_directories; i++) {
            lc_digest t;
            if (parse_digest(ar->output_directories[i]->tree_digest, "tree", &t, NULL) < 0)
                continue; /* validated above: cannot happen */
            if ((rc = add_tree(out, &t, fetch, fetch_ctx, err)) < 0)
                return rc;
        }
    }
    sort_unique(out);
    return 0;
}

void lc_complete_needs_clear(lc_complete_needs *n)
{
    if (n == NULL)
        return;
    free(n->v);
    memset(n, 0, sizeof(*n));
}

int lc_complete_fetch_store(void *store, const lc_digest *d, uint8_t **data, size_t *len,
                            lc_err *err)
{
    return lc_store_blob_get(store, d, data, len, err);
}

int lc_complete_fetch_quiet(void *store, const lc_digest *d, uint8_t **data, size_t *len,
                            lc_err *err)
{
    return lc_store_blob_peek(store, d, data, len, err);
}

/* quiet: no access recorded; newest as lc_complete_check_quiet. */
static int check(lc_store *s, const action_result *ar, bool quiet, lc_complete_report *rep,
                 int64_t *newest, lc_err *err)
{
    lc_complete_report local;
    if (rep == NULL)
        rep = &local;
    memset(rep, 0, sizeof(*rep));
    if (newest != NULL)
        *newest = INT64_MIN;
    lc_complete_needs n = {0};
    bool *missing = NULL;
    int64_t *atimes = NULL;
    int rc = lc_complete_needs_of(ar, quiet ? lc_complete_fetch_quiet : lc_complete_fetch_store, s,
                                  &n, err);
    if (rc == -LC_FAILED_PRECONDITION) {
        /* A Tree that cannot be served: the result is incomplete. */
        rep->needed = n.n;
        rep->missing = 1;
        rep->first = n.bad_tree;
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    rep->needed = n.n;
    rep->bytes = n.bytes;
    if (n.n == 0) {
        rc = 1;
        goto out;
    }
    missing = calloc(n.n, sizeof(*missing));
    atimes = quiet ? calloc(n.n, sizeof(*atimes)) : NULL;
    if (missing == NULL || (quiet && atimes == NULL)) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (quiet) {
        if ((rc = lc_store_blob_atimes(s, n.v, n.n, atimes, err)) < 0)
            goto out;
        for (size_t i = 0; i < n.n; i++) {
            missing[i] = atimes[i] < 0;
            if (!missing[i] && atimes[i] != INT64_MAX && newest != NULL && atimes[i] > *newest)
                *newest = atimes[i];
        }
    } else if ((rc = lc_store_find_missing(s, n.v, n.n, missing, err)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < n.n; i++)
        if (missing[i] && rep->missing++ == 0)
            rep->first = n.v[i];
    rc = rep->missing == 0 ? 1 : 0;
out:
    free(atimes);
    free(missing);
    lc_complete_needs_clear(&n);
    return rc;
}

int lc_complete_check(lc_store *s, const action_result *ar, lc_complete_report *rep, lc_err *err)
{
    return check(s, ar, false, rep, NULL, err);
}

int lc_complete_check_quiet(lc_store *s, const action_result *ar, lc_complete_report *rep,
                            int64_t *newest, lc_err *err)
{
    return check(s, ar, true, rep, newest, err);
}
